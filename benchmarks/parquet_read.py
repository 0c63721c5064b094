"""Ray Data's two Parquet readers on a small table read again and again, as the streamed CNN reads its images.

    python benchmarks/parquet_read.py --files 40 --reads 3 --repeats 3

Each run is a fresh process with its own local Ray (2 CPUs): it reads the table ``--reads`` times, keeping only the
``clip_id`` column as ``distributed/images.py`` keeps two, with Ray 2.60's default reader (``ListFiles`` then
``ReadFilesParquetV2``, whose footers are read by a pool of ``FooterReader`` actors each read starts and ends) or with
``ReadParquet`` (``DataContext.use_datasource_v2`` off: footers read in the calling process), the one ``images.py``
uses. Reported: the medians of the run's wall seconds and of the CPU seconds the whole machine was busy
(``/proc/stat``, so Ray's processes are counted, its start included), the runs alternating. Linux only; run it on a
machine with nothing else of ours running.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from machine import describe

READERS = {"default (FooterReader actors)": "1", "ReadParquet (images.py)": "0"}

CHILD = """
import sys
import acoustic_env.distributed  # RAY_AUTH_MODE before Ray's first import
import ray, ray.data
folder, reads, v2 = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
context = ray.data.DataContext.get_current()
context.use_datasource_v2, context.enable_progress_bars = v2, False
for _ in range(reads):
    ds = ray.data.read_parquet(folder, columns=["clip_id"], shuffle="files")
    assert sum(b.num_rows for b in ds.iter_batches(batch_format="pyarrow", batch_size=None)) > 0
ray.shutdown()
"""


def busy_s() -> float:
    """CPU seconds the machine has been busy (every core, every process) since boot."""
    with open("/proc/stat") as fh:
        ticks = [int(v) for v in fh.readline().split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # less idle and iowait


def run(folder: Path, reads: int, v2: str) -> tuple[float, float]:
    """(wall s, busy CPU-s) of one child process."""
    b0, t0 = busy_s(), time.monotonic()
    subprocess.run([sys.executable, "-c", CHILD, str(folder), str(reads), v2], check=True, capture_output=True)
    return time.monotonic() - t0, busy_s() - b0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--files", type=int, default=40, help="Parquet files in the table")
    p.add_argument("--reads", type=int, default=3, help="reads of the table per run")
    p.add_argument("--repeats", type=int, default=3, help="runs per reader")
    args = p.parse_args()
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for i in range(args.files):
            pq.write_table(pa.table({"clip_id": [f"c{i}_{j}" for j in range(12)], "x": np.arange(12.0)}),
                           folder / f"part-{i:05d}.parquet")
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in READERS}
        for _ in range(args.repeats):
            for name, v2 in READERS.items():
                times[name].append(run(folder, args.reads, v2))
    print(f"{describe()}; {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; command: python benchmarks/parquet_read.py "
          f"--files {args.files} --reads {args.reads} --repeats {args.repeats}\n")
    print("| reader | wall s (median) | busy CPU-s (median) |\n|---|---|---|")
    for name, runs in times.items():
        print(f"| {name} | {statistics.median(w for w, _ in runs):.1f} | {statistics.median(c for _, c in runs):.1f} |")


if __name__ == "__main__":
    main()
