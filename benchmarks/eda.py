"""How long the training report's exploratory analysis takes, and why its t-SNE runs on one thread.

    python benchmarks/eda.py [--repeats 3] [--sizes 200,2000]

For each size, a synthetic table in the extract job's schema with the demo's nine CPU
feature groups (indices, spectral statistics and MPS of the raw, fg and bg signals),
read with ``read_features`` and preprocessed as the train job does (``fit_group``, 20
components), then timed:

- ``learn.eda.explore`` (the tests, correlations and the t-SNE map);
- ``report.eda_figures`` (every PNG of the section);
- the map's t-SNE alone on the same inputs with one thread (as ``explore`` runs it) and
  with scikit-learn's default OpenMP threads, side by side.

Medians of ``--repeats`` runs; prints a Markdown table for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import describe  # noqa: E402 - after the path insert


def _median(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", default="200,2000", help="clips per table, comma-separated")
    args = parser.parse_args()

    print(f"{describe()}, {date.today()}; medians of {args.repeats}\n")
    print("| clips | explore s | figures s | t-SNE, 1 thread s | t-SNE, default threads s | ratio |")
    print("|---:|---:|---:|---:|---:|---:|")
    for n in (int(s) for s in args.sizes.split(",")):
        print(_row(n, args.repeats), flush=True)


def _row(n: int, repeats: int) -> str:
    """One table row: a table of ``n`` clips, built and preprocessed, then each step timed."""
    import numpy as np
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    from acoustic_env.demo.tables import synthetic_table, write_features
    from acoustic_env.pages.report import eda_figures
    from acoustic_env.learn import eda
    from acoustic_env.learn.preprocess import fit_group
    from acoustic_env.learn.transform import transform_all
    from acoustic_env.table import read_features

    classes = ["urban", "natural"]
    with tempfile.TemporaryDirectory() as work:
        fs = read_features(write_features(synthetic_table(n, seed=1, separation=0.6), work), task="urban_natural")
        transforms = [fit_group(fs.X[g.name], 20, g.name) for g in fs.feature_groups]
        found = eda.explore(fs, transforms, "single_label", classes)
        results = {"eda": found, "task": {"kind": "single_label", "class_names": classes}, "predictions": None}
        t_explore = _median(lambda: eda.explore(fs, transforms, "single_label", classes), repeats)
        t_figures = _median(lambda: eda_figures(results), repeats)
        picked = np.arange(min(n, eda.MAX_MAP_POINTS))
        x = PCA(eda.MAP_PCA, random_state=0).fit_transform(transform_all(transforms, fs.rows(picked)))

        def tsne() -> None:
            TSNE(perplexity=30, init="pca", learning_rate="auto", random_state=0).fit_transform(x)

        def one_thread() -> None:
            with threadpool_limits(limits=1):
                tsne()

        t_one = _median(one_thread, repeats)
        t_default = _median(tsne, repeats)
    return (f"| {n} | {t_explore:.2f} | {t_figures:.2f} | {t_one:.2f} | {t_default:.2f} | "
            f"{t_default / t_one:.1f}x |")

if __name__ == "__main__":
    main()
