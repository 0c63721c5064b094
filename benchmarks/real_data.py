"""Cross-validated quality on real recordings: train (CV) and the label audit with flipped labels.

    python benchmarks/real_data.py                       # extract once (reused), then train CV + audits
    python benchmarks/real_data.py --work /tmp/maad-run  # where the manifest, features and outputs go

The 96 forest recordings of ``../shared/data/maad_soundscapes`` (one 10-s clip
every 15 minutes over 24 hours, file names ``S4A03895_20190522_HHMMSS.wav``)
are labelled ``night`` or ``day`` from the time in their names through the
plain-label task ``labels:night,day`` (no ontology). Clips of one clock hour
share a ``group``: four clips 15 minutes apart share weather and chorus, so a
fold that held one of them out while training on its neighbours would score a
near copy.

Then, with the CPU features only (``ae.extract``, run once; a second run reuses
the output):

* train with the defaults before issue 12 (split, logistic regression baseline
  reported on the 20 % test split) and after (grouped 5-fold CV, model chosen
  by pooled out-of-fold ROC AUC);
* audit with 10 % and 20 % of the labels flipped (seeded), before
  (``--classifier logreg``) and after (``--classifier auto``): precision and
  recall of the flagged set against the flips.

Prints a markdown table headed by the command, the machine and the date.
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
import pyarrow as pa
import pyarrow.parquet as pq
from machine import describe  # benchmarks/machine.py (scripts run from this folder)

import acoustic_env as ae

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "maad_soundscapes"
TASK = "labels:night,day"
DAY_HOURS = range(6, 21)  # 06:00-20:59 is day: sunrise about 06:00 and sunset about 21:15 in late May


def label_of(name: str) -> str:
    """``night`` or ``day`` from ``S4A03895_20190522_HHMMSS.wav``."""
    hour = int(name.rsplit("_", 1)[1][:2])
    return "day" if hour in DAY_HOURS else "night"


def write_manifest(path: Path, data: Path = DATA) -> int:
    """uri, labels, group (the clock hour) for every recording; returns the number of rows."""
    files = sorted(data.glob("S4A03895_*.wav"))
    if not files:
        sys.exit(f"data: no S4A03895_*.wav under {data}")
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["uri", "labels", "group"])
        for f in files:
            w.writerow([str(f), label_of(f.name), f"hour-{f.name.rsplit('_', 1)[1][:2]}"])
    return len(files)


def extract(work: Path, data: Path = DATA) -> str:
    """The feature table (CPU features only), extracted once and reused."""
    out = work / "features"
    manifest = work / "manifest.csv"
    n = write_manifest(manifest, data)
    if not (out / "features").exists():
        result = ae.extract(str(manifest), str(out), progress=False)
        print(f"extracted {result.counts} ({n} files)", file=sys.stderr)
    return str(out)


def flipped_copy(features: str, work: Path, share: float, seed: int) -> tuple[str, str]:
    """A copy of the feature table with ``share`` of the labels flipped (night <-> day); returns it and its truth CSV."""
    table = pq.read_table(Path(features) / "features")
    rng = np.random.default_rng(seed)
    flip = set(rng.choice(table.num_rows, int(round(share * table.num_rows)), replace=False).tolist())
    other = {"night": "day", "day": "night"}
    labels = [[other[ls[0]]] if i in flip else ls for i, ls in enumerate(table["labels"].to_pylist())]
    table = table.set_column(table.schema.get_field_index("labels"), "labels", pa.array(labels, pa.list_(pa.string())))
    out = work / f"flip{int(share * 100)}-seed{seed}"
    (out / "features").mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out / "features" / "part-0.parquet")
    truth = out / "truth.csv"
    with open(truth, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["clip_id", "flipped"])
        for i, cid in enumerate(table["clip_id"].to_pylist()):
            w.writerow([cid, int(i in flip)])
    return str(out), str(truth)


def fmt(v: float | None, span: list[float] | None = None) -> str:
    if v is None:
        return "–"
    return f"{v:.3f}" + (f" [{span[0]:.2f}, {span[1]:.2f}]" if span else "")


COMMON = {"task": TASK, "ablations": False, "shap_samples": 0, "progress": False}


def train_rows(features: str, work: Path) -> list[str]:
    """Train before (one split, default hyper-parameters) and after (grouped 5-fold CV): one row per model."""
    rows = []
    for label, extra in (("before: split 60/20/20 %, test split", {"cv_folds": 0, "trials": 0}),
                         ("after: grouped 5-fold CV, pooled out of fold", {})):
        t = time.time()
        r = ae.train(features, str(work / ("train-" + label.split(":")[0])), **COMMON, **extra)
        ev = r.evaluation
        for name, m in r.metrics.items():
            ci = ev["models"][name]["intervals"]
            mark = " (chosen)" if name == ev["chosen"] else ""
            rows.append(f"| {label} | {name}{mark} | {m['n']} | {fmt(m['roc_auc'], ci['roc_auc'])} | "
                        f"{fmt(m['accuracy'], ci['accuracy'])} | {fmt(m['macro_f1'], ci['macro_f1'])} | "
                        f"{time.time() - t:.0f} |")
        print(f"train {label}: saved {ev['saved_model']}, {time.time() - t:.0f} s", file=sys.stderr)
    return rows


def audit_rows(features: str, work: Path, shares: list[float], seeds: list[int]) -> list[str]:
    """Audit flipped copies before (logreg) and after (auto): precision and recall of the flags, mean over seeds."""
    rows = []
    for share in shares:
        for label, classifier in (("before: logreg", "logreg"), ("after: auto", "auto")):
            got = []
            for seed in seeds:
                flipped, truth = flipped_copy(features, work, share, seed)
                t = time.time()
                s = ae.audit(flipped, f"{flipped}-{classifier}", task=TASK, classifier=classifier, truth=truth,
                             review_top=0, random_sample=0)
                got.append((s.record["truth"], s.record["model"]["chosen"], s.estimated_wrong_share, time.time() - t))
            mean = lambda key, sub="flagged": np.mean([g[0][sub][key] or 0.0 for g in got])  # noqa: E731
            top = [g[0]["top_k"][str(g[0]["known_wrong"])] for g in got]
            rows.append(f"| {share:.0%} | {label} | {', '.join(sorted({g[1] for g in got}))} | "
                        f"{np.mean([g[0]['known_wrong'] for g in got]):.1f} | {mean('n'):.1f} | "
                        f"{mean('precision'):.2f} | {mean('recall'):.2f} | "
                        f"{np.mean([t['precision'] for t in top]):.2f} | {np.mean([g[2] for g in got]):.1%} | "
                        f"{np.mean([g[3] for g in got]):.0f} |")
            print(rows[-1], file=sys.stderr)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "acoustic-env-real-data"))
    ap.add_argument("--data", type=Path, default=DATA, help="the maad_soundscapes folder")
    ap.add_argument("--extract-only", action="store_true")
    ap.add_argument("--skip-train", action="store_true", help="only the audits")
    ap.add_argument("--flips", type=float, nargs="+", default=[0.1, 0.2], help="shares of labels flipped")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds of the flips (mean reported)")
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    features = extract(work, args.data)
    if args.extract_only:
        return
    print(f"`{shlex.join(['python', 'benchmarks/real_data.py', *sys.argv[1:]])}` on {describe()}, "
          f"{dt.date.today().isoformat()}; {len(args.seeds)} flip seed(s)\n")
    if not args.skip_train:
        print("| evaluation | model | clips scored | ROC AUC [95 % CI] | accuracy [95 % CI] | macro F1 [95 % CI] | "
              "train wall s |")
        print("|---|---|---|---|---|---|---|")
        print("\n".join(train_rows(features, work)))
    print("\n| flipped | audit | model used | wrong labels | flagged | precision | recall | top-k precision "
          "(k = wrong) | estimated wrong share | wall s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(audit_rows(features, work, args.flips, args.seeds)))


if __name__ == "__main__":
    main()
