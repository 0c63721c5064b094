"""Leak-free inner folds (issue 81): train with the defaults on a table, each candidate's outer and inner figures.

    python benchmarks/inner_folds.py --table /tmp/fs/features --task labels:night,day     # the forest recordings
    python benchmarks/inner_folds.py --table demo-output/extract --task urban_natural \\
        --extra '{"max_rounds": 12, "grace_rounds": 3, "patience": 4}'                   # make demo's train
    PYTHONPATH=/path/to/worktree-before python benchmarks/inner_folds.py ...               # the code before

Prints, for each candidate: its pooled out-of-fold ROC AUC and ECE with its floor (``learn.metrics.ece_floor``: a
calibrated model's as sharp, on these clips; the chosen model marked), each feature set's
inner score averaged over the outer folds with the folds that chose it, the saved model's set and PCA components,
and the job's CPU seconds (this process and its children). The forest table is ``real_data.py``'s extract (BirdNET
with its extra); ``--rows-per-component`` sets the count rule (``learn/preprocess.py``) for a comparison.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import shlex
import sys
import tempfile
import time

from machine import describe  # benchmarks/machine.py (scripts run from this folder)

import acoustic_env as ae
from acoustic_env.learn import preprocess


def cpu_seconds() -> float:
    """User and system CPU of this process and its finished children."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--table", required=True, help="an extract output with labels")
    ap.add_argument("--task", default="urban_natural")
    ap.add_argument("--extra", default="{}", help="more train fields, as JSON")
    ap.add_argument("--rows-per-component", type=int, help="the PCA count rule (the code before has none)")
    args = ap.parse_args()
    if args.rows_per_component and hasattr(preprocess, "ROWS_PER_COMPONENT"):
        preprocess.ROWS_PER_COMPONENT = args.rows_per_component
    start, cpu = time.time(), cpu_seconds()
    with tempfile.TemporaryDirectory() as out:
        r = ae.train(args.table, out, task=args.task, ablations=False, shap_samples=0, progress=False,
                     **json.loads(args.extra))
    wall, cpu = time.time() - start, cpu_seconds() - cpu
    ev = r.evaluation
    fs = ev.get("feature_sets") or {}
    names = list(fs.get("sets") or {})
    print(f"`python benchmarks/inner_folds.py {shlex.join(sys.argv[1:])}`, {describe()}, "
          f"{dt.date.today().isoformat()}: {wall:.0f} s, {cpu:.0f} CPU-s\n")
    print("| model | ROC AUC | ECE (its floor) | " + " | ".join(f"inner {n}" for n in names) + " |")
    print("|---|---|---|" + "---|" * len(names))
    for m, met in r.metrics.items():
        per = (fs.get("table") or {}).get(m, {})
        cells = [f"{per[n]['inner_score']:.3f} ({per[n]['chosen_in']})" if n in per else "–" for n in names]
        ece = "–" if met.get("ece") is None else f"{met['ece']:.3f} ({met['ece_floor']:.3f})"
        print(f"| {m}{' (record)' if m == ev['chosen'] else ''} | {met['roc_auc']:.3f} | {ece} | "
              + " | ".join(cells) + " |")
    if fs.get("saved"):
        print(f"\nsaved: {fs['saved']['set']}; components {json.dumps((ev.get('components') or {}).get('saved'))}")


if __name__ == "__main__":
    main()
