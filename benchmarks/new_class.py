"""A new class from one example: the ROC AUC after each round of ``labels new-class``, against random reviews.

    python benchmarks/new_class.py --forest /tmp/lead/forest/feat --demo /tmp/lead/demo/extract \\
        --demo-truth /tmp/lead/demo/data/truth.csv

Two real tables: the 96 forest recordings (``real_data.py``: the class ``night``, seeded from one night
recording, truth from the file names) and the demo's clips (``acoustic-env demo``: the class ``natural`` from one
natural clip, truth from its truth.csv). A scripted reviewer answers from the truth. Round 0 is the example's
``search`` (its ``--k`` hits, the example itself answered too); each round after it judges ``--batch`` more clips,
chosen by the round's ``review.csv`` (``mixed``, the loop's default) or drawn at random from the clips nobody
judged (the same number of reviews). Each round is one ``labels new-class`` round
(``acoustic_env.jobs.new_class.run_round``: the store, the list with random negatives, the train job, the next
picks).

Measured after each round, against the truth:

* the out-of-fold ROC AUC over the whole table of what the round's labels teach: the table cut into 5 folds by
  recording group, each fold scored by a logistic regression (on the saved model's feature columns) fitted to
  the round's list on the other folds. The same clips in every round and arm, so the rounds and the two orders
  compare;
* the saved model's ROC AUC over the clips its list gave no class (never trained on); active picks take the
  clearest positives out of that set, so it does not compare across orders;
* the train job's own out-of-fold ROC AUC over the clips it trained on (against the list, whose random
  negatives may hold positives), and the positives found so far.

Prints markdown headed by the command, the machine and the date.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow.parquet as pq
from machine import describe  # benchmarks/machine.py (scripts run from this folder)
from real_data import DATA, extract, fmt
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import acoustic_env as ae
from acoustic_env.config import from_dict
from acoustic_env.config.labelling import NewClassConfig
from acoustic_env.jobs.new_class import run_round

ARMS = ("mixed", "random")
OOF_FOLDS = 5


def forest_truth(features: str) -> dict[str, bool]:
    """Clip -> night, from the table's labels (real_data.py names them from the recording's time)."""
    t = pq.read_table(Path(features) / "features", columns=["clip_id", "labels"])
    return {c: ls == ["night"] for c, ls in zip(t["clip_id"].to_pylist(), t["labels"].to_pylist())}


def demo_truth(truth_csv: str, cls: str, features: str) -> dict[str, bool]:
    """Clip -> of ``cls``, for the clips of the table (the demo's broken files never made a row)."""
    held = set(pq.read_table(Path(features) / "features", columns=["clip_id"])["clip_id"].to_pylist())
    with open(truth_csv, newline="") as fh:
        return {r["clip_id"]: r["true_class"] == cls for r in csv.DictReader(fh) if r["clip_id"] in held}


def answer(path: Path, clips: list[str], truth: dict[str, bool]) -> str:
    """The scripted reviewer's answers to ``clips``, as a user fills the verdict column."""
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["clip_id", "verdict"])
        w.writerows([c, "yes" if truth[c] else "no"] for c in clips)
    return str(path)


def table_matrix(model: str, features: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(clip ids, the saved model's feature columns side by side, the recording groups) of the table."""
    data = ae.load_model(model).read_features(features)
    X = np.nan_to_num(np.hstack([np.asarray(m, dtype=np.float64) for m in data.X.values()]))
    return data.ids.tolist(), X, np.asarray(data.groups, dtype=str)


def auc_figures(model: str, features: str, listed: str, cls: str, truth: dict[str, bool]) -> dict[str, float]:
    """The round's figures against the truth (see the module docstring): held-out and out-of-fold ROC AUC."""
    with open(listed, newline="") as fh:
        given = {r["clip_id"]: r["labels"] == cls for r in csv.DictReader(fh) if r["labels"]}
    scored = ae.load_model(model).predict_table(features).to_pylist()
    rest = [r for r in scored if r["clip_id"] not in given and np.isfinite(r[f"prob_{cls}"])]
    y = [truth[r["clip_id"]] for r in rest]
    held = float(roc_auc_score(y, [r[f"prob_{cls}"] for r in rest])) if 0 < sum(y) < len(y) else None  # one class
    ids, X, groups = table_matrix(model, features)
    oof = np.zeros(len(ids))
    for fit, score in GroupKFold(OOF_FOLDS).split(X, groups=groups):
        rows = [i for i in fit if ids[i] in given]
        learner = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
        learner.fit(X[rows], [given[ids[i]] for i in rows])
        oof[score] = learner.predict_proba(X[score])[:, 1]
    return {"held_auc": held, "held_out": len(rest), "oof_auc": float(roc_auc_score([truth[c] for c in ids], oof))}


def run_arms(name: str, features: str, example: str, cls: str, truth: dict[str, bool], work: Path,
             args: argparse.Namespace) -> Iterator[dict]:
    """Round 0 (the search's hits, shared), then rounds 1..``args.rounds`` of each arm in turn: figures a round."""
    hits = ae.search(features, example, k=args.k).table["clip_id"].to_pylist()
    rng = np.random.default_rng(args.seed)
    state = {arm: {"answers": [], "judged": set(), "next": hits} for arm in ARMS}
    for r in range(args.rounds + 1):
        for arm in ARMS[:1] if r == 0 else ARMS:
            base, s, t = work / name / arm, state[arm], time.time()
            base.mkdir(parents=True, exist_ok=True)
            s["answers"].append(answer(base / f"answers-{r}.csv", s["next"], truth))
            cfg = from_dict(NewClassConfig, {
                "features": features, "name": cls, "example": example, "reviewer": "script",
                "verdicts": s["answers"], "output": str(base / f"round-{r}"), "store": str(base / "store"),
                "negatives": args.negatives, "batch": args.batch, "seed": args.seed, "strategy": "mixed",
                "train_config": args.train_config})
            done = run_round(cfg)  # the random arm's first store gets round 0's answers with its round 1's
            s["judged"] |= set(s["next"])
            ev = done.train.evaluation
            yield {"round": r, "arm": arm if r else "search", "reviews": len(s["judged"]),
                   "positives": sum(truth[c] for c in s["judged"]), "s": time.time() - t,
                   "train_oof": done.train.metrics[ev["chosen"]]["roc_auc"],
                   **auc_figures(done.train.model, features, done.label_list, cls, truth)}
            if r == 0:
                state["random"] = {"answers": list(s["answers"]), "judged": set(s["judged"])}
            free = sorted(set(truth) - s["judged"])
            picks = {"mixed": [c for c, _ in done.picks],
                     "random": [free[i] for i in rng.permutation(len(free))[:args.batch]]}
            for other in (ARMS if r == 0 else (arm,)):
                state[other]["next"] = picks[other]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "acoustic-env-new-class"))
    ap.add_argument("--forest", help="the forest feature table (default: extracted under --work)")
    ap.add_argument("--data", type=Path, default=DATA, help="the maad_soundscapes folder")
    ap.add_argument("--demo", help="the demo's extract output (acoustic-env demo's extract/)")
    ap.add_argument("--demo-truth", help="the demo's truth.csv (its data/truth.csv)")
    ap.add_argument("--only", choices=("forest", "demo"), help="one table only")
    ap.add_argument("--rounds", type=int, default=5, help="rounds after the search's")
    ap.add_argument("--batch", type=int, default=10, help="reviews a round")
    ap.add_argument("--k", type=int, default=10, help="search hits judged in round 0 (the example besides)")
    ap.add_argument("--negatives", type=int, default=20, help="random negatives a round")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cv-folds", type=int, default=3, help="the train job's folds (fewer fits a round)")
    ap.add_argument("--train-config", help="train fields over the round's defaults (YAML/JSON; replaces --cv-folds)")
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    if not args.train_config:
        args.train_config = str(work / "train.json")
        Path(args.train_config).write_text(json.dumps({"cv_folds": args.cv_folds}))
    sets = {}
    if args.only != "demo":
        forest = args.forest or extract(work, args.data)
        sets["forest (96)"] = (forest, "S4A03895_20190522_020000", "night", forest_truth(forest))
    if args.only != "forest" and args.demo and args.demo_truth:
        truth = demo_truth(args.demo_truth, "natural", args.demo)
        sets[f"demo ({len(truth)})"] = (args.demo, next(c for c, v in sorted(truth.items()) if v), "natural", truth)
    print(f"`{shlex.join(['python', 'benchmarks/new_class.py', *sys.argv[1:]])}` on {describe()}, "
          f"{dt.date.today().isoformat()}; round 0: the example and its {args.k} search hits, then {args.rounds} "
          f"rounds of {args.batch} reviews; {args.negatives} random negatives, seed {args.seed}; train: "
          f"{Path(args.train_config).read_text().strip()}\n")
    print("| table | class (share) | reviews | order | positives found | out-of-fold ROC AUC, whole table | "
          "saved model's ROC AUC, clips it never saw (n) | train's out-of-fold ROC AUC (its list) | s a round |\n"
          "|---|---|---|---|---|---|---|---|---|")
    for name, (features, example, cls, truth) in sets.items():
        share = np.mean(list(truth.values()))
        for row in run_arms(name.split()[0], features, example, cls, truth, work, args):
            oof = fmt(row["train_oof"])
            print(f"| {name} | {cls} ({share:.0%}) | {row['reviews']} | {row['arm']} | {row['positives']} | "
                  f"{row['oof_auc']:.3f} | {fmt(row['held_auc'])} ({row['held_out']}) | {oof} | {row['s']:.0f} |",
                  flush=True)


if __name__ == "__main__":
    main()
