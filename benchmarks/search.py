"""How long `acoustic-env search` takes on a large table: one query among 100,000 clips.

    python benchmarks/search.py [--rows 100000] [--embedder yamnet] [--repeats 5] [--work /tmp/search-bench] [--index]

Builds once a synthetic feature table (``demo.tables.synthetic_features``: ``--rows`` clips in 20
Parquet parts, the embedder's column at its width, e.g. 1,024 for YAMNet, 2,048 for PANNs, recorded
as random weights as every embedder here is), then times, as a user would see them:

- ``acoustic-env search --features T --example ID --embedder E --include-random-weights -k 20``:
  the whole command in a fresh process (imports, reading the column, the search space, the query);
- ``ae.search`` in a warm process, and its parts: reading the column (``read_features``), fitting
  and applying the standardisation (``DistanceSpace``) and the exact nearest-neighbour query
  (``duplicates.nearest``).

``--index`` times instead ``acoustic-env index`` once (fresh process, f16), then the command, ``ae.search`` and one
query (``VectorIndex.nearest``) answering from it. Medians of ``--repeats`` runs, each on another example; prints a
Markdown table.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from machine import describe


def _table(work: Path, rows: int, embedder: str) -> Path:
    from acoustic_env.demo.tables import synthetic_features, write_features

    out = work / f"table-{rows}-{embedder}"
    if not (out / "features").is_dir():
        t = time.perf_counter()
        table = synthetic_features(rows, embedders=(embedder,), signals=("raw",)).table
        write_features(table, str(out), n_parts=20)
        print(f"(table of {rows} clips written in {time.perf_counter() - t:.0f} s: {out})", file=sys.stderr)
    return out


def _median(run, repeats: int) -> float:
    times = []
    for i in range(repeats):
        t = time.perf_counter()
        run(i)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--embedder", default="yamnet")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--work", default="/tmp/acoustic-env-search-bench")
    ap.add_argument("--index", action="store_true", help="build the table's index, then time search from it")
    args = ap.parse_args()
    import acoustic_env as ae
    from acoustic_env.embedders.registry import get
    from acoustic_env.learn.duplicates import DistanceSpace, nearest

    table = _table(Path(args.work), args.rows, args.embedder)
    example = [f"clip{(i * 7919) % args.rows:07d}" for i in range(args.repeats)]
    cli = [sys.executable, "-m", "acoustic_env.cli", "search", "--features", str(table), "--embedder",
           args.embedder, "--include-random-weights", "-k", "20", "--example"]
    results = _indexed(table, cli, example, args) if args.index else []
    if results:
        _print(results, args, get(args.embedder).dim)
        return
    results = [("`acoustic-env search ... -k 20`, fresh process",
                _median(lambda i: subprocess.run([*cli, example[i]], check=True, capture_output=True),
                        args.repeats))]
    options = {"embedder": args.embedder, "include_random_weights": True, "k": 20}
    results.append(("`ae.search`, warm process", _median(lambda i: ae.search(str(table), example[i], **options),
                                                          args.repeats)))
    read = {}
    results.append(("  reading the column (`read_features`)",
                    _median(lambda i: read.update(data=ae.read_features(str(table), feature_groups=[args.embedder],
                                                                        include_random_weights=True)),
                            args.repeats)))
    mats = [read["data"].X[args.embedder]]
    space = {}
    results.append(("  the search space (`DistanceSpace.fit`, `.transform`)",
                    _median(lambda i: space.update(z=DistanceSpace.fit(mats).transform(mats)), args.repeats)))
    z = space["z"]
    results.append(("  one query (`duplicates.nearest`, k = 21)",
                    _median(lambda i: nearest(z, z[i * 7919 % len(z)], 21), args.repeats)))
    _print(results, args, get(args.embedder).dim)


def _indexed(table: Path, cli: list[str], example: list[str], args: argparse.Namespace) -> list[tuple[str, float]]:
    """``--index``: the index built once, then search answering from it."""
    import acoustic_env as ae
    from acoustic_env.learn.vector_index import load
    from acoustic_env.table import open_table

    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "acoustic_env.cli", "index", "--features", str(table), "--embedder",
                    args.embedder, "--include-random-weights", "--rebuild"], check=True, capture_output=True)
    results = [("`acoustic-env index` (f16, fresh process, once)", time.perf_counter() - t)]
    results.append(("`acoustic-env search ... -k 20` from the index, fresh process",
                    _median(lambda i: subprocess.run([*cli, example[i]], check=True, capture_output=True),
                            args.repeats)))
    options = {"embedder": args.embedder, "include_random_weights": True, "k": 20}
    results.append(("`ae.search` from the index, warm process",
                    _median(lambda i: ae.search(str(table), example[i], **options), args.repeats)))
    index = load(open_table(str(table)), [args.embedder], "random")
    results.append(("  one query (`VectorIndex.nearest`, k = 21)",
                    _median(lambda i: index.nearest(index.vector(i * 7919 % len(index)), 21), args.repeats)))
    return results


def _print(results: list[tuple[str, float]], args: argparse.Namespace, dim: int) -> None:
    print(f"{time.strftime('%Y-%m-%d')}, {describe()}, Python {platform.python_version()}; {args.rows} clips x "
          f"{dim} values ({args.embedder}), median of {args.repeats}\n")
    print("\n".join(["| what | wall s |", "|---|---:|", *(f"| {what} | {s:.4f} |" for what, s in results)]))


if __name__ == "__main__":
    main()
