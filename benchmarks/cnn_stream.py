"""The driver's memory while the CNN trains on images streamed by Ray Data from a table larger than its budget.

    cd benchmarks && python cnn_stream.py                       # 4,000 clips of 5 s, a 256 MiB driver budget
    cd benchmarks && python cnn_stream.py --clips 20000 --seconds 10 --budget-mb 1024

A child process writes a synthetic image table (``demo.tables.synthetic_features`` with log-mel images, in parts
of 250 clips, so that no process of the benchmark ever holds it), whose decoded float32 training images exceed the
driver's budget. This process, the driver, then starts a local Ray (as the train job does) and trains the CNN
for one epoch on 80 % of the clips, early stopping on (and scoring) the other 20 %
(``distributed.tune.fit_cnn``: the survey, one Tune trial, the best round loaded back), while a thread samples its
resident memory (psutil, every 0.2 s) and the largest of its Ray processes'. Prints the peak over the start
(flat: the driver's growth far below the table), as a markdown table headed by the command, machine and date.
"""

from __future__ import annotations

import argparse
import multiprocessing
import shlex
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

import numpy as np
import psutil
import pyarrow as pa
from machine import describe  # benchmarks/machine.py (scripts run from this folder)

PART_CLIPS = 250


def write_table(root: str, clips: int, seconds: float) -> None:
    """The synthetic table in parts of ``PART_CLIPS`` clips, each part generated and written on its own."""
    from acoustic_env.demo.tables import synthetic_features
    from acoustic_env.storage import join, write_parquet

    for part, start in enumerate(range(0, clips, PART_CLIPS)):
        n = min(PART_CLIPS, clips - start)
        table = synthetic_features(n, seed=part, logmel_s=seconds).table
        ids = pa.array([f"clip{start + i:07d}" for i in range(n)])
        groups = pa.array([f"rec{(start + i) // 3:06d}" for i in range(n)])
        table = table.set_column(table.schema.get_field_index("clip_id"), "clip_id", ids)
        table = table.set_column(table.schema.get_field_index("group"), "group", groups)
        write_parquet(table, join(root, "features", f"part-{part:05d}.parquet"))


class Sampler(threading.Thread):
    """Samples this process's resident memory, and the largest of its descendants' (Ray's), until stopped."""

    def __init__(self, every_s: float = 0.2):
        super().__init__(daemon=True)
        self.every_s, self.done = every_s, threading.Event()
        self.me = psutil.Process()
        self.start_rss = self.me.memory_info().rss
        self.driver: list[int] = []
        self.worker = 0

    def run(self) -> None:
        while not self.done.is_set():
            self.driver.append(self.me.memory_info().rss)
            for child in self.me.children(recursive=True):
                try:
                    self.worker = max(self.worker, child.memory_info().rss)
                except psutil.Error:  # a task's process that ended meanwhile
                    pass
            time.sleep(self.every_s)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=4000)
    parser.add_argument("--seconds", type=float, default=5.0, help="clip length (100 image frames a second)")
    parser.add_argument("--budget-mb", type=float, default=256.0, help="what the driver may add to its memory")
    parser.add_argument("--work", default=None, help="where the table and the run go (default: a temporary dir)")
    args = parser.parse_args(argv)
    work = Path(args.work or tempfile.mkdtemp(prefix="cnn-stream-"))
    source = str(work / "table")
    t = time.time()
    writer = multiprocessing.get_context("spawn").Process(target=write_table, args=(source, args.clips, args.seconds))
    writer.start()
    writer.join()
    write_s = time.time() - t

    from acoustic_env.distributed.images import Rows
    from acoustic_env.distributed.session import start_ray  # first: it states Ray's settings before Ray's import
    from acoustic_env.distributed.tune import Setup, fit_cnn
    from acoustic_env.learn.fit import Schedule
    from acoustic_env.candidates import PARAMS
    from acoustic_env.table import read_features

    features = read_features(source, task="urban_natural", feature_groups=["indices_raw"])
    ids, y = features.ids, features.y
    cut = int(0.8 * len(ids))
    frames = max(8, 1 + (int(args.seconds * 16000) - 400) // 160)
    image_bytes = cut * 64 * frames * 4  # the training images as the network reads them (float32)
    stored = sum(p.stat().st_size for p in (work / "table" / "features").glob("*.parquet"))
    start_ray()  # a local instance, as the train job starts it (tried twice on a loaded machine)
    sampler = Sampler()
    sampler.start()
    t = time.time()
    setup = Setup("single_label", 2, Schedule(max_rounds=1, patience=1), seed=0, workers=1,
                  worker_cpus=1.0, use_gpu=False,
                  storage=str(work / "ray"), network="cnn")
    held_out = Rows(ids[cut:], y[cut:])
    _, _, found, _ = fit_cnn(features.table, Rows(ids[:cut], y[:cut]), held_out, held_out, setup,
                             PARAMS["cnn"]["network"])
    train_s = time.time() - t
    sampler.done.set()
    sampler.join()
    import ray

    ray.shutdown()
    mib = 2 ** 20
    peak = max(sampler.driver)
    growth = (peak - sampler.start_rss) / mib
    print(f"`python benchmarks/cnn_stream.py {shlex.join(argv if argv is not None else sys.argv[1:])}`; "
          f"{describe()}; {date.today()}\n")
    print("| clips (train/val) | training images, float32 | table on disk | driver budget | driver RSS start → "
          "peak | growth | largest Ray process | epoch (survey, trial, load) | validation ROC AUC |")
    print("|---|---|---|---|---|---|---|---|---|")
    print(f"| {cut}/{len(ids) - cut} of {args.seconds:g} s | {image_bytes / mib:,.0f} MiB | {stored / mib:,.0f} MiB "
          f"| {args.budget_mb:,.0f} MiB | {sampler.start_rss / mib:,.0f} → {peak / mib:,.0f} MiB "
          f"({peak / sampler.start_rss:.2f}×) | {growth:,.0f} MiB | {sampler.worker / mib:,.0f} MiB | {train_s:.0f} s "
          f"| {found.best_val_score:.3f} |")
    print(f"\n{len(sampler.driver)} samples; table written in {write_s:.0f} s by a child process; "
          f"{'within' if growth <= args.budget_mb and image_bytes > args.budget_mb * mib else 'NOT within'} the "
          f"budget while the training images exceed it")
    return 0 if growth <= args.budget_mb else 1


if __name__ == "__main__":
    sys.exit(main())
