"""Throughput of reading AudioSet's released embeddings (TFRecord) into a feature table, per million segments.

    python benchmarks/audioset_embeddings.py                        # 100 files x 500 segments, 3 repeats
    python benchmarks/audioset_embeddings.py --files 40 --segments 500 --repeats 5

TFRecord files in the published schema (``acoustic_env.jobs.audioset.embeddings``: one
SequenceExample per segment, 10 frames of 128 quantised bytes, like a 10-s segment)
are written to a temporary directory with random codes and labels, about 500
segments per file as in ``unbal_train/`` (2.04M segments in 4,096 files). Two
timings, each the median of ``--repeats``:

- *parse*: ``read_segments`` over every file (the ``tfrecord`` reader + protobuf);
- *convert*: ``convert`` into a fresh output (parse, de-quantise, mean and max,
  Parquet parts with metadata, the run record).

Prints a markdown table headed by the command, the machine and the date, ready for
benchmarks/RESULTS.md. One process, one core: the conversion does not use Ray.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from machine import describe  # benchmarks/machine.py (scripts run from this folder)

from acoustic_env.jobs.audioset.embeddings import convert, list_tfrecords, read_segments


def write_files(directory: Path, n_files: int, per_file: int, seed: int = 0) -> int:
    from tfrecord.writer import TFRecordWriter

    rng = np.random.default_rng(seed)
    n = 0
    for f in range(n_files):
        writer = TFRecordWriter(str(directory / f"{f:04d}.tfrecord"))
        for i in range(per_file):
            q = rng.integers(0, 256, size=(10, 128), dtype=np.uint8)
            writer.write({"video_id": (f"v{f:04d}_{i:04d}".encode(), "byte"), "start_time_seconds": (30.0, "float"),
                          "end_time_seconds": (40.0, "float"),
                          "labels": (rng.integers(0, 527, size=int(rng.integers(1, 4))).tolist(), "int")},
                         {"audio_embedding": ([row.tobytes() for row in q], "byte")})
            n += 1
        writer.close()
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=100)
    ap.add_argument("--segments", type=int, default=500, help="segments per file")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "unbal_train"
        src.mkdir()
        total = write_files(src, args.files, args.segments)
        size = sum(p.stat().st_size for p in src.iterdir())
        files = list_tfrecords(str(src))
        parse, full = [], []
        for r in range(args.repeats):
            t = time.perf_counter()
            n = sum(1 for f in files for _ in read_segments(f))
            parse.append(time.perf_counter() - t)
            assert n == total
            t = time.perf_counter()
            record = convert(str(src), str(Path(tmp) / f"out{r}"))
            full.append(time.perf_counter() - t)
            assert record["counts"]["segments"] == total
    load = os.getloadavg()[0]
    print(f"`python benchmarks/{Path(__file__).name} {shlex.join(sys.argv[1:])}`".replace(" `", "`"))
    print(f"{describe()}, Python {sys.version.split()[0]}; {dt.date.today()}; load average {load:.1f} at the end")
    print(f"{total:,} segments (10 frames each) in {args.files} files, {size / 2 ** 20:.0f} MiB of TFRecords on "
          f"local disk; median of {args.repeats} repeats, one process\n")
    print("| step | s | segments/s | s per million segments |")
    print("|---|---:|---:|---:|")
    for name, times in (("parse (read_segments)", parse), ("convert (parse + table + Parquet)", full)):
        m = statistics.median(times)
        print(f"| {name} | {m:.2f} | {total / m:,.0f} | {1e6 * m / total:,.0f} |")


if __name__ == "__main__":
    main()
