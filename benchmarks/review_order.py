"""The review queue's order: how many wrong labels a reviewer finds in the first reviews, by strategy.

    python benchmarks/review_order.py --work /tmp/ro                 # forest extracted once (real_data.py)
    python benchmarks/review_order.py --forest /tmp/lead/forest/feat --demo /tmp/lead/demo/extract \\
        --demo-truth /tmp/lead/demo/data/truth.csv

Two real tables, with 15 % of the labels flipped (seeded, one copy per seed): the 96 forest recordings
(``real_data.py``: night/day from the file names) and the demo's clips (``acoustic-env demo``: their true class
from its truth.csv, so the demo's own flips are undone first). Each copy is audited as a user would
(``ae.audit``, the defaults); then a scripted reviewer, who answers from the truth file, goes through the queue
of each strategy of ``learn/review_order.py`` in batches of ten (the review page's batch), the queue re-ranked
after each batch with the verdicts so far (a wrong verdict carries the right class, as the page's "right class"
does). Counted: wrong labels found in the first 10, 25 and 50 reviews, mean over the seeds.

Beside it, the interval the review's estimate gives: the 95 % Wilson interval of the label accuracy after N
random reviews (``audit-estimate``'s, from the random sample alone), its mean width and how often it held
the true accuracy over many random samples.

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
import pyarrow as pa
import pyarrow.parquet as pq
from machine import describe  # benchmarks/machine.py (scripts run from this folder)
from real_data import DATA, TASK, extract, flipped_copy

import acoustic_env as ae
from acoustic_env.jobs.audit.estimate import estimate_accuracy
from acoustic_env.pages.review import review_pool
from acoustic_env.learn.review_order import STRATEGIES, Pool, next_batch
from acoustic_env.storage import read_part

BATCH = 10
CHECKPOINTS = (10, 25, 50)
INTERVAL_N = (25, 50, 100)
DEMO_TASK = "labels:urban,natural"


def demo_copy(table: str, truth_csv: str, work: Path, share: float, seed: int) -> tuple[str, str]:
    """The demo's table with each clip's true class as its label, then ``share`` of them flipped (seeded);
    returns the copy and its truth CSV (clip_id, flipped)."""
    with open(truth_csv, newline="") as fh:
        true_class = {r["clip_id"]: r["true_class"] for r in csv.DictReader(fh)}
    t = pq.read_table(Path(table) / "features")
    ids = t["clip_id"].to_pylist()
    flip = set(np.random.default_rng(seed).choice(len(ids), int(round(share * len(ids))), replace=False).tolist())
    other = {"urban": "natural", "natural": "urban"}
    labels = [[other[true_class[c]] if i in flip else true_class[c]] for i, c in enumerate(ids)]
    t = t.set_column(t.schema.get_field_index("labels"), "labels", pa.array(labels, pa.list_(pa.string())))
    out = work / f"demo-flip{int(share * 100)}-seed{seed}"
    (out / "features").mkdir(parents=True, exist_ok=True)
    pq.write_table(t, out / "features" / "part-0.parquet")
    with open(out / "truth.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["clip_id", "flipped"])
        w.writerows([c, int(i in flip)] for i, c in enumerate(ids))
    return str(out), str(out / "truth.csv")


def audited_pool(flipped: str, truth: str, task: str) -> tuple[Pool, np.ndarray, float]:
    """Audit the copy; the pool the strategies choose from (as the review server reads it), each clip's true class
    index, and the wall time."""
    t = time.time()
    out = f"{flipped}-audit"
    result = ae.audit(flipped, out, task=task, truth=truth, review_top=0, random_sample=0)
    table = read_part(f"{out}/audit.parquet")
    pool = review_pool(table, tuple(result.record["task"]["classes"]), "single_label")
    with open(truth, newline="") as fh:
        wrong = {r["clip_id"] for r in csv.DictReader(fh) if r["flipped"] == "1"}
    flipped_rows = np.array([c in wrong for c in table["clip_id"].to_pylist()])
    return pool, np.where(flipped_rows, 1 - pool.given, pool.given), time.time() - t  # two classes: the other one


def found_by(strategy: str, pool: Pool, true: np.ndarray, reviews: int, seed: int) -> tuple[np.ndarray, float]:
    """Cumulative wrong labels found, review by review, with a reviewer who answers from the truth; and the
    mean seconds to choose a batch."""
    reviewed: dict[int, int] = {}
    order: list[int] = []
    t = time.time()
    while len(order) < reviews:
        batch = next_batch(strategy, pool, reviewed, BATCH, seed)
        if not batch:
            break
        for pick in batch:
            reviewed[pick.index] = int(true[pick.index])
            order.append(pick.index)
    wall = (time.time() - t) / max(1, -(-len(order) // BATCH))
    return np.cumsum(true[order] != pool.given[order]), wall


def interval_rows(name: str, pools: list[Pool], true: list[np.ndarray], draws: int) -> list[str]:
    """Width and coverage of the random sample's 95 % interval after N reviews (over ``draws`` samples a seed)."""
    rows = []
    for n in INTERVAL_N:
        widths, held = [], []
        for seed, t in enumerate(true):
            accuracy = float((t == pools[seed].given).mean())
            rng = np.random.default_rng([seed, n])
            for _ in range(draws):
                rows_ = rng.choice(len(t), size=min(n, len(t)), replace=False)
                records = [{"clip_id": str(i), "given_labels": [], "sample": "random",
                            "verdict": "correct" if t[i] == pools[seed].given[i] else "wrong", "time": ""}
                           for i in rows_]
                est = estimate_accuracy(records)["overall"]
                widths.append(est["high"] - est["low"])
                held.append(est["low"] <= accuracy <= est["high"])
        rows.append(f"| {name} | {min(n, len(true[0]))} | {np.mean(widths):.3f} | {np.mean(held):.0%} |")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "acoustic-env-review-order"))
    ap.add_argument("--forest", help="the forest feature table (default: extracted under --work)")
    ap.add_argument("--data", type=Path, default=DATA, help="the maad_soundscapes folder")
    ap.add_argument("--demo", help="the demo's extract output (acoustic-env demo's extract/)")
    ap.add_argument("--demo-truth", help="the demo's truth.csv (its data/truth.csv)")
    ap.add_argument("--flip", type=float, default=0.15, help="share of labels flipped")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds of the flips (mean reported)")
    ap.add_argument("--draws", type=int, default=200, help="random samples a seed for the interval's width")
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    forest = args.forest or extract(work, args.data)
    sets = {"forest (96)": lambda s: (*flipped_copy(forest, work, args.flip, s), TASK)}
    if args.demo and args.demo_truth:
        sets["demo"] = lambda s: (*demo_copy(args.demo, args.demo_truth, work, args.flip, s), DEMO_TASK)
    print(f"`{shlex.join(['python', 'benchmarks/review_order.py', *sys.argv[1:]])}` on {describe()}, "
          f"{dt.date.today().isoformat()}; {args.flip:.0%} of the labels flipped, seeds {args.seeds}, "
          f"batches of {BATCH}\n")
    found_rows, interval = [], []
    for name, make in sets.items():
        pools, truths, audit_s = [], [], []
        for seed in args.seeds:
            pool, true, wall = audited_pool(*make(seed))
            pools.append(pool)
            truths.append(true)
            audit_s.append(wall)
        wrong = np.mean([(t != p.given).sum() for p, t in zip(pools, truths)])
        for strategy in STRATEGIES:
            runs = [found_by(strategy, p, t, max(CHECKPOINTS), seed)
                    for seed, p, t in zip(args.seeds, pools, truths)]
            at = [np.mean([r[0][min(k, len(r[0])) - 1] for r in runs]) for k in CHECKPOINTS]
            found_rows.append(f"| {name} | {len(pools[0].given)} | {wrong:.1f} | {strategy} | "
                              + " | ".join(f"{a:.1f}" for a in at)
                              + f" | {np.mean([r[1] for r in runs]) * 1000:.0f} |")
            print(found_rows[-1], file=sys.stderr)
        interval += interval_rows(name, pools, truths, args.draws)
        print(f"{name}: audits {np.mean(audit_s):.0f} s each", file=sys.stderr)
    print("| table | clips | wrong labels | order | found in first " + " | ".join(map(str, CHECKPOINTS))
          + " | ms a batch |\n|---|---|---|---|" + "---|" * (len(CHECKPOINTS) + 1))
    print("\n".join(found_rows))
    print("\n| table | random reviews | mean width of the 95 % interval | held the true accuracy |\n|---|---|---|---|")
    print("\n".join(interval))


if __name__ == "__main__":
    main()
