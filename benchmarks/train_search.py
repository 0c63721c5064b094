"""Wall time of the train job (read + PCA, Bayesian search with Ray Train) against the number of rows.

    python benchmarks/train_search.py                          # 10k and 100k rows, 4 trials
    python benchmarks/train_search.py --rows 10000 --trials 8

Synthetic feature tables with the extract job's schema (indices and MPS for
raw/fg/bg: 1,764 values per clip; ``acoustic_env.demo.tables``) are written
to a temporary directory and trained on with local Ray. Baselines, ablations
and SHAP are off: the numbers are the training and the search. Prints a
markdown table headed by the command, the machine and the date, ready to paste
into benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shlex
import sys
import tempfile
import time

import ray
import torch
from machine import describe  # benchmarks/machine.py (scripts run from this folder)

from acoustic_env.config import TrainConfig, from_dict
from acoustic_env.demo.tables import synthetic_table, write_features
from acoustic_env.jobs.train.job import train


def machine() -> str:
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30
    return f"{describe()}, {mem:.0f} GiB, torch {torch.__version__}, ray {ray.__version__}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--trials", type=int, default=4)
    ap.add_argument("--max-rounds", type=int, default=5)
    ap.add_argument("--time-budget", type=float, default=1800.0)
    args = ap.parse_args()
    ray.init(include_dashboard=False, log_to_driver=False)
    rows = []
    for n in args.rows:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.time()
            write_features(synthetic_table(n, seed=0, separation=0.05), tmp, n_parts=max(2, n // 20_000))
            gen = time.time() - t0
            summary = train(from_dict(TrainConfig, {
                "features": tmp, "output": os.path.join(tmp, "train"), "trials": args.trials,
                "max_rounds": args.max_rounds, "time_budget_s": args.time_budget, "baselines": (),
                "ablations": False, "shap_samples": 0, "progress": False}))
        t = summary.timings
        trials = summary.search["trials"]
        rows.append(f"| {n:,} | {t['read_and_preprocess_s']:.1f} | {t['search_s']:.1f} | {len(trials)} | "
                    f"{sum(r['rounds'] or 0 for r in trials)} | {summary.wall_s:.1f} | "
                    f"{summary.metrics['mlp']['roc_auc']:.3f} | {gen:.1f} |")
        print(rows[-1], file=sys.stderr, flush=True)
    print(f"### Train + search time against rows\n\n`{shlex.join(['python', *sys.argv])}`  \n"
          f"{machine()}; {dt.date.today().isoformat()}. {args.trials} trials (Optuna TPE + ASHA), at most "
          f"{args.max_rounds} rounds each, 1 Ray Train worker; 1,764 raw features per row → 90 PCA inputs.\n")
    print("| rows | read + PCA (s) | search (s) | trials | rounds run | job total (s) | test ROC AUC | "
          "writing the table (s) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
