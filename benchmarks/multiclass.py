"""A multi-class task on real recordings: train's defaults against a plain logistic regression on the embedding alone.

    python benchmarks/multiclass.py --work /tmp/fs        # the 96 forest recordings (extracted once, as real_data.py)

Issue 81 asks that on a multi-class task the model of record's accuracy be ahead of a plain, standardised logistic
regression on the pretrained embedding alone. The forest recordings of ``../shared/data/maad_soundscapes`` (one 10-s
clip every 15 minutes over 24 hours) are labelled by the part of the day of their clock hour (``PARTS``: night
22-05 h, dawn 06-09 h, day 10-17 h, dusk 18-21 h; sunrise about 06:00 and sunset about 21:15 in late May), and
published as 4 folds of clock hours (fold = hour mod 4, so each fold holds every part: 2 night, 1 dawn, 2 day and 1
dusk hours), the clips of an hour a group. Then, on those folds:

* ``train`` with its defaults and ``folds_column``: each model's pooled out-of-fold accuracy, balanced accuracy
  and ROC AUC, the model of record marked (chosen by ROC AUC, the default), and its ECE;
* the plain baseline: scikit-learn's ``StandardScaler`` and ``LogisticRegression`` (its defaults) on the
  embedding column alone, fitted on each fold's training clips; its pooled accuracy.

Prints markdown tables headed by the command, the machine and the date.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shlex
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from machine import describe  # benchmarks/machine.py (scripts run from this folder)
from real_data import DATA, extract

import acoustic_env as ae

#: The part of the day of each clock hour: four contiguous blocks of 4 or 8 hours, so folds by hour mod 4 hold each.
PARTS = {**{h: "night" for h in (22, 23, 0, 1, 2, 3, 4, 5)}, **{h: "dawn" for h in range(6, 10)},
         **{h: "day" for h in range(10, 18)}, **{h: "dusk" for h in range(18, 22)}}
TASK = "labels:night,dawn,day,dusk"


def relabelled(features: str, work: Path) -> str:
    """A copy of the forest table labelled by part of the day, with its ``fold`` column (hour mod 4)."""
    table = pq.read_table(Path(features) / "features")
    hours = [int(c.rsplit("_", 1)[1][:2]) for c in table["clip_id"].to_pylist()]
    table = table.set_column(table.schema.get_field_index("labels"), "labels",
                             pa.array([[PARTS[h]] for h in hours], pa.list_(pa.string())))
    table = table.append_column("fold", pa.array([f"hours-mod-4-{h % 4}" for h in hours]))
    out = work / "parts-of-day"
    (out / "features").mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out / "features" / "part-0.parquet")
    return str(out)


def plain_accuracy(table_uri: str, column: str) -> float:
    """Pooled out-of-fold accuracy of a standardised logistic regression (scikit-learn's defaults) on ``column``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    table = pq.read_table(Path(table_uri) / "features")
    x = np.stack(table[column].to_numpy(zero_copy_only=False)).astype(np.float64)
    y = np.array([ls[0] for ls in table["labels"].to_pylist()])
    folds = np.array(table["fold"].to_pylist())
    hits = 0
    for f in np.unique(folds):
        test = folds == f
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)).fit(x[~test], y[~test])
        hits += int((model.predict(x[test]) == y[test]).sum())
    return hits / len(y)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "acoustic-env-feature-sets"))
    ap.add_argument("--data", type=Path, default=DATA, help="the maad_soundscapes folder")
    ap.add_argument("--embedding", default="birdnet", help="the pretrained embedding column of the baseline")
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    table = relabelled(extract(work, args.data), work)
    print(f"`{shlex.join(['python', 'benchmarks/multiclass.py', *sys.argv[1:]])}` on {describe()}, "
          f"{dt.date.today().isoformat()}; task {TASK}, 4 folds of clock hours\n")
    with tempfile.TemporaryDirectory() as out:
        r = ae.train(table, out, task=TASK, folds_column="fold", ablations=False, shap_samples=0, progress=False)
    print("| model | accuracy | balanced accuracy | ROC AUC | ECE |\n|---|---|---|---|---|")
    for m, met in r.metrics.items():
        ece = "–" if met.get("ece") is None else f"{met['ece']:.3f}"
        print(f"| {m}{' (record)' if m == r.evaluation['chosen'] else ''} | {met['accuracy']:.3f} | "
              f"{met['balanced_accuracy']:.3f} | {met['roc_auc']:.3f} | {ece} |")
    print(f"| plain logistic regression on `{args.embedding}` alone | {plain_accuracy(table, args.embedding):.3f} "
          "| | | |")


if __name__ == "__main__":
    main()
