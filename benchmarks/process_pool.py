"""The baseline extract is compared with: the ten-line script a user would write instead.

    python benchmarks/process_pool.py CLIPS.csv [PROCESSES]

A ``multiprocessing.Pool`` of one process per core calls the extract's own ``decode_clip``
and ``cpu_features`` on every ``uri`` of the CSV, each worker's native thread pools
limited to one thread as in the extract's actors. It writes nothing: its results are
thrown away, so it is the floor of what the same stage code costs. ``pipeline.py`` runs
it as a command, like ``acoustic-env extract``, and times it from launch to exit (Python
start, imports, the pool's start and end included). On stdout, one JSON object: the
wall-clock time (``time.time()``) at which each clip finished, and the stage CPU seconds.
"""

from __future__ import annotations

import csv
import json
import multiprocessing as mp
import os
import sys
import time

from threadpoolctl import threadpool_limits

from acoustic_env.audio.decode import decode_clip
from acoustic_env.config import DecodeParams, FeatureParams
from acoustic_env.embedders.spec import SAMPLE_RATE
from acoustic_env.features import cpu_features


def one_thread() -> None:
    """Pool initializer. Without it each worker runs OpenBLAS/OpenMP pools as wide as the
    machine on the other workers' cores: on 2 cores that halved the pool (4.7 against 9.4
    clips/s), a baseline weak enough to flatter the pipeline."""
    global _limits
    _limits = threadpool_limits(limits=1)


def clip_cpu_seconds(uri: str) -> float:
    """Decode and featurise one clip; return the stage CPU seconds (as the run record counts them)."""
    t0 = time.thread_time()
    clip = decode_clip(uri, DecodeParams())
    decode_s = time.thread_time() - t0
    _, cpu = cpu_features(clip.audio, SAMPLE_RATE, FeatureParams())
    return decode_s + sum(cpu.values())


def main(manifest: str, processes: int) -> dict[str, object]:
    with open(manifest, newline="") as fh:
        uris = [row["uri"] for row in csv.DictReader(fh)]
    done, cpu = [], 0.0
    with mp.get_context("fork").Pool(processes, initializer=one_thread) as pool:
        for seconds in pool.imap_unordered(clip_cpu_seconds, uris, chunksize=1):
            cpu += seconds
            done.append(time.time())
    return {"done": done, "cpu_s": cpu}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else os.cpu_count() or 1)))
