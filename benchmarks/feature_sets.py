"""The feature set as a searched choice: train and the audit with it (the default) against every group pinned.

    python benchmarks/feature_sets.py --work /tmp/fs                  # the 96 forest recordings (extracted once)
    python benchmarks/feature_sets.py --work /tmp/fs --table T        # any extract output with labels (T)

The forest recordings of ``../shared/data/maad_soundscapes`` are labelled night/day with clock-hour groups
(``real_data.py``), extracted with the default embedders (``--embedders auto``: BirdNET with its extra). Then:

* train with the defaults (each model chooses its feature set on inner folds, ``learn/feature_sets.py``) and with
  ``--feature-groups`` naming every group (the set every model read before): each model's pooled out-of-fold ROC
  AUC with its interval, its expected calibration error after and before the probability maps each fold model
  chose (``learn/calibrate.py``), the model x feature-set table, the saved model's set, and the wall time;
* the audit at ``--flip`` of the labels flipped (seeded copies, mean over ``--seeds``), with the default (the
  feature set chosen by the probe's out-of-fold log loss) and with every group: precision, recall and F1 of the
  flags against the flips, and the estimated share of wrong labels against the true one; beside them, a ceiling:
  the default train's model of record, fitted on the true labels, flagging where its out-of-fold probability of
  the given label is below one half (``ceiling_row``).

Prints markdown tables headed by the command, the machine and the date.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from machine import describe  # benchmarks/machine.py (scripts run from this folder)
from real_data import DATA, TASK, extract, flipped_copy

import acoustic_env as ae
from acoustic_env.table import read_features

COMMON = {"ablations": False, "shap_samples": 0, "progress": False}


def every_group(table: str, task: str) -> list[str]:
    """The groups train reads from ``table`` by default: what ``--feature-groups`` names to pin them all."""
    return list(read_features(table, task=task).columns)


def train_rows(table: str, task: str, work: Path) -> list[str]:
    rows = []
    for label, extra in (("searched (default)", {}), ("every group", {"feature_groups": every_group(table, task)})):
        t = time.time()
        r = ae.train(table, str(work / ("train-" + label.split()[0])), task=task, **COMMON, **extra)
        wall = time.time() - t
        ev = r.evaluation
        fs = ev.get("feature_sets") or {}
        for name, m in r.metrics.items():
            ci = ev["models"][name]["intervals"]["roc_auc"]
            per = (fs.get("table") or {}).get(name, {})
            chose = ", ".join(f"{s} x{c['chosen_in']}" for s, c in per.items() if c["chosen_in"]) or "–"
            ece = "–" if m.get("ece") is None else f"{m['ece']:.3f}" + (
                "" if m.get("ece_before") is None else f" ({m['ece_before']:.3f})")
            rows.append(f"| {label} | {name}{' (record)' if name == ev['chosen'] else ''} | {m['roc_auc']:.3f} "
                        f"[{ci[0]:.2f}, {ci[1]:.2f}] | {ece} | {chose} | "
                        f"{(fs.get('saved') or {}).get('set', '–') if name == ev['saved_model'] else ''} | "
                        f"{wall:.0f} |")
        if fs:
            names = list(fs["sets"])
            print(f"\nmodel x feature set ({table}): mean inner score (folds that chose it)\n\n| model | "
                  + " | ".join(names) + " |\n|---|" + "---|" * len(names))
            for m, per in fs["table"].items():
                print(f"| {m} | " + " | ".join(f"{per[s]['inner_score']:.3f} ({per[s]['chosen_in']})" for s in names)
                      + " |")
    return rows


def audit_rows(table: str, task: str, work: Path, share: float, seeds: list[int]) -> list[str]:
    rows = []
    for label, extra in (("searched (default)", {}), ("every group", {"feature_groups": every_group(table, task)})):
        got = []
        for seed in seeds:
            flipped, truth = flipped_copy(table, work, share, seed)
            t = time.time()
            s = ae.audit(flipped, f"{flipped}-{label.split()[0]}", task=task, truth=truth, review_top=0,
                         random_sample=0, **extra)
            f = s.record["truth"]["flagged"]
            p, r = f["precision"] or 0.0, f["recall"] or 0.0
            got.append((p, r, 2 * p * r / (p + r) if p + r else 0.0, s.estimated_wrong_share,
                        s.record["truth"]["known_wrong"] / s.audited, s.record["model"].get("feature_set") or "all",
                        time.time() - t))
        a = np.array([g[:5] for g in got])
        rows.append(f"| {share:.0%} | {label} | {', '.join(sorted({g[5] for g in got}))} | {a[:, 0].mean():.2f} | "
                    f"{a[:, 1].mean():.2f} | {a[:, 2].mean():.2f} | {a[:, 3].mean():.1%} (true {a[:, 4].mean():.1%}) "
                    f"| {np.mean([g[6] for g in got]):.0f} |")
        print(rows[-1], file=sys.stderr)
    rows.append(ceiling_row(table, work, share, seeds))
    return rows


def ceiling_row(table: str, work: Path, share: float, seeds: list[int]) -> str:
    """What a model that never saw a wrong label flags: the default train's model of record, fitted on the true
    labels (``train_rows``' run), flagging each clip whose out-of-fold probability of its flipped copy's label is
    below one half, scored against the same flips. A reference for the audit's F1: where the classes overlap, even
    that model disagrees with some right labels and agrees with some wrong ones."""
    oof = pq.read_table(work / "train-searched" / "report" / "predictions.parquet").to_pydict()
    right = {c: p[t[0]] for c, t, p in zip(oof["clip_id"], oof["target"], oof["proba"])}  # P(the true label)
    got = []
    for seed in seeds:
        _, truth = flipped_copy(table, work, share, seed)
        with open(truth, newline="") as fh:
            flipped = {row["clip_id"]: row["flipped"] == "1" for row in csv.DictReader(fh)}
        flags = {c: (1 - right[c] if wrong else right[c]) < 0.5 for c, wrong in flipped.items()}
        hits = sum(flags[c] and flipped[c] for c in flipped)
        p, r = hits / max(sum(flags.values()), 1), hits / max(sum(flipped.values()), 1)
        got.append((p, r, 2 * p * r / (p + r) if p + r else 0.0))
    p, r, f1 = np.mean(got, axis=0)
    return (f"| {share:.0%} | a model of the true labels (a ceiling) | the record's | {p:.2f} | {r:.2f} | {f1:.2f} "
            "| – | – |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "acoustic-env-feature-sets"))
    ap.add_argument("--table", help="an extract output with labels (default: the forest recordings, extracted)")
    ap.add_argument("--task", default=TASK)
    ap.add_argument("--data", type=Path, default=DATA, help="the maad_soundscapes folder")
    ap.add_argument("--flip", type=float, default=0.15, help="share of labels flipped for the audit")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds of the flips (mean reported)")
    ap.add_argument("--skip-audit", action="store_true", help="train only")
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    table = args.table or extract(work, args.data)
    print(f"`{shlex.join(['python', 'benchmarks/feature_sets.py', *sys.argv[1:]])}` on {describe()}, "
          f"{dt.date.today().isoformat()}; table {table}, task {args.task}\n")
    trained = train_rows(table, args.task, work)  # prints the model x feature-set table first
    print("\n| train | model | pooled out-of-fold ROC AUC [95 % CI] | ECE (before the maps) | sets chosen (outer folds) "
          "| saved model's set | wall s |\n|---|---|---|---|---|---|---|")
    print("\n".join(trained))
    if not args.skip_audit:
        print("\n| flipped | audit | feature set | precision | recall | F1 | estimated wrong share | wall s |\n"
              "|---|---|---|---|---|---|---|---|")
        print("\n".join(audit_rows(table, args.task, work, args.flip, args.seeds)))


if __name__ == "__main__":
    main()
