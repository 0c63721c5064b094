"""The feature stage on a device (the torch path) against a process pool of the numpy path, clips/s.

    python benchmarks/gpu_features.py --device cuda --clips 512 --batch-size 64 --write   # on a GPU node
    python benchmarks/gpu_features.py --device cpu --clips 8 --batch-size 4              # anywhere

Both paths compute every feature of every signal (separation; indices, spectral
statistics and MPS of raw, fg and bg) of the same generated 10-s soundscapes, already
decoded (decoding is the same CPU work on either path, and is left out):

* **numpy**: ``cpu_features`` per clip in a ``multiprocessing.Pool`` of ``--pool``
  processes (default: every core), native thread pools at one thread each, as in the
  extract's actors;
* **torch**: ``batch_features`` on ``--batch-size`` clips at a time on ``--device``, one
  process (after one warm-up batch: CUDA context, kernels, FFT plans), with device
  seconds per stage, and on CUDA the GPU's utilisation sampled every 0.2 s during the
  timed batches (``nvidia-smi``, else ``torch.cuda.utilization``).

It also reports the largest difference between the two paths' features, per column
group, on the first clips. Prints a markdown section headed by the command, the machine
and the date; ``--write`` also puts it into benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
from extract_stages import write_section  # benchmarks/extract_stages.py, beside this script
from machine import describe

from acoustic_env.config import FeatureParams
from acoustic_env.embedders.spec import SAMPLE_RATE
from acoustic_env.features import cpu_features

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "RESULTS.md"
HEADING = "## Feature stage on a device: torch vs the numpy process pool (gpu_features.py)"
SR = SAMPLE_RATE


def soundscapes(n: int, seconds: float) -> list[np.ndarray]:
    """n generated soundscapes (acoustic_env.demo.synth), RMS-normalised as the decoder does."""
    from acoustic_env.demo.synth import make_clip

    rng = np.random.default_rng(0)
    clips = []
    for i in range(n):
        audio, _ = make_clip(rng, ("urban", "natural")[i % 2], seconds, SR, 1)
        x = np.asarray(audio, dtype=np.float32).reshape(-1)
        clips.append((x * 0.1 / np.sqrt(np.mean(x.astype(np.float64) ** 2))).astype(np.float32))
    return clips


def _pool_init() -> None:
    from threadpoolctl import threadpool_limits

    global _LIMITS
    _LIMITS = threadpool_limits(limits=1)


def _numpy_features(x: np.ndarray) -> dict[str, np.ndarray]:
    return cpu_features(x, SR, FeatureParams())[0]


def numpy_pool(clips: list[np.ndarray], processes: int) -> float:
    """clips/s of the numpy path in a process pool (pool start-up and one clip per process excluded).

    Forked (the workers need no import of this script by name), before this process
    runs anything in torch.
    """
    with multiprocessing.get_context("fork").Pool(processes, initializer=_pool_init) as pool:
        pool.map(_numpy_features, clips[:processes], chunksize=1)  # imports, caches
        t0 = time.perf_counter()
        pool.map(_numpy_features, clips, chunksize=1)
        return len(clips) / (time.perf_counter() - t0)


class Utilisation:
    """Samples the GPU's utilisation (%) every 0.2 s on a thread while it is running."""

    def __init__(self, device: str):
        self.device, self.samples, self._stop = device, [], threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> float | None:
        if shutil.which("nvidia-smi"):
            out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
                                  "-i", str(max(0, int(self.device.partition(":")[2] or 0)))],
                                 capture_output=True, text=True, timeout=5)
            return float(out.stdout.split()[0]) if out.returncode == 0 and out.stdout.strip() else None
        import torch

        return float(torch.cuda.utilization(self.device))

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            value = self._sample()
            if value is not None:
                self.samples.append(value)

    def __enter__(self) -> Utilisation:
        if self.device.startswith("cuda"):
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()


def torch_path(clips: list[np.ndarray], device: str, batch_size: int
               ) -> tuple[float, dict[str, float], list[float], dict[str, np.ndarray]]:
    """clips/s, device seconds per stage (timed batches), utilisation samples, and the first batch's features."""
    from acoustic_env.features.torch.batch import batch_features

    first, _ = batch_features(clips[:batch_size], SR, FeatureParams(), device)  # warm-up, and the comparison
    seconds: dict[str, float] = {}
    with Utilisation(device) as util:
        t0 = time.perf_counter()
        for i in range(0, len(clips), batch_size):
            _, s = batch_features(clips[i : i + batch_size], SR, FeatureParams(), device)
            for k, v in s.items():
                seconds[k] = seconds.get(k, 0.0) + v
        wall = time.perf_counter() - t0
    return len(clips) / wall, seconds, util.samples, first


def largest_differences(clips: list[np.ndarray], torch_out: dict[str, np.ndarray]) -> dict[str, tuple[float, float]]:
    """Per column: (largest |torch - numpy|, the same relative to the largest |numpy| value) over the clips given."""
    out: dict[str, tuple[float, float]] = {}
    for i, x in enumerate(clips):
        ref = _numpy_features(x)
        for col, vec in ref.items():
            if col == "nonfinite_features":
                continue
            diff = float(np.max(np.abs(torch_out[col][i] - vec)))
            scale = float(np.max(np.abs(vec))) or 1.0
            old = out.get(col, (0.0, 0.0))
            out[col] = (max(old[0], diff), max(old[1], diff / scale))
    return out


def section(args: argparse.Namespace, argv: list[str], pool_rate: float, torch_rate: float,
            seconds: dict[str, float], util: list[float], diffs: dict[str, tuple[float, float]]) -> str:
    import torch

    device = args.device
    name = torch.cuda.get_device_name(device) if device.startswith("cuda") else "CPU"
    lines = [HEADING, "",
             f"Command: `python benchmarks/gpu_features.py {shlex.join(argv)}`  ",
             f"Machine: {describe()}, torch {torch.__version__} ({torch.get_num_threads()} CPU threads), "
             f"device {device} ({name})  ",
             f"Date: {dt.date.today().isoformat()}; {args.clips} generated {args.seconds:g}-s soundscapes, features "
             f"only (decoded audio in memory), every signal (raw, fg, bg)", "",
             "| path | clips/s |", "|---|---|",
             f"| numpy `cpu_features`, pool of {args.pool} processes | {pool_rate:.2f} |",
             f"| torch `batch_features` on {device}, batches of {args.batch_size} | {torch_rate:.2f} |", "",
             f"torch / numpy pool: {torch_rate / pool_rate:.2f}×. Device seconds per stage over the timed batches: "
             + ", ".join(f"{k} {v:.2f} s" for k, v in seconds.items()) + "."]
    if util:
        lines.append(f"GPU utilisation during the timed batches ({len(util)} samples, 0.2 s apart): median "
                     f"{statistics.median(util):.0f} %, mean {statistics.fmean(util):.0f} %, max {max(util):.0f} %.")
    elif device.startswith("cuda"):
        lines.append("GPU utilisation: no sample (the run was shorter than 0.2 s).")
    worst = max(diffs.items(), key=lambda kv: kv[1][1])
    lines += ["", f"Largest difference torch − numpy on the first {args.compare} clips: "
              + ", ".join(f"{col} {d:.1e} ({r:.1e} of its largest value)" for col, (d, r) in diffs.items()
                          if col.endswith("_raw") or col == worst[0]) + "."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default=None, help="torch device (default: cuda when torch sees one, else cpu)")
    ap.add_argument("--clips", type=int, default=64, help="clips timed on each path")
    ap.add_argument("--seconds", type=float, default=10.0, help="clip length (s)")
    ap.add_argument("--batch-size", type=int, default=32, help="clips per torch batch")
    ap.add_argument("--pool", type=int, default=len(os.sched_getaffinity(0)), help="numpy pool processes")
    ap.add_argument("--compare", type=int, default=2, help="clips whose features are compared between the paths")
    ap.add_argument("--write", action="store_true", help=f"write the section into {RESULTS.relative_to(REPO)}")
    args = ap.parse_args(argv)
    clips = soundscapes(max(args.clips, args.batch_size), args.seconds)
    pool_rate = numpy_pool(clips[: args.clips], args.pool)
    import torch

    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    torch_rate, seconds, util, first = torch_path(clips[: args.clips], args.device, args.batch_size)
    diffs = largest_differences(clips[: args.compare], first)
    text = section(args, argv, pool_rate, torch_rate, seconds, util, diffs)
    print(text)
    if args.write:
        write_section(text, RESULTS, HEADING)
    return 0


if __name__ == "__main__":
    sys.exit(main())
