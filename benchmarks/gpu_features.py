"""The feature stage on a device (the torch path) against a process pool of the numpy path, clips/s.

    python benchmarks/gpu_features.py --device cuda --clips 512 --batch-size 64 --write   # on a GPU node
    python benchmarks/gpu_features.py --device cpu --clips 8 --batch-size 4              # anywhere
    python benchmarks/gpu_features.py --device cuda --clips 1024 --batch-size 64 \
        --embedders vggish,yamnet,panns --compare-precision                              # the extract's device stage

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
group, on the first clips. With ``--embedders`` the torch path is the extract's device
stage: the same pass also embeds raw, fg and bg with each of them (weights from the model
cache, seeded random ones where it has none), at ``--precision``; ``--compare-precision``
adds the cosine of each clip's embeddings in bf16 against fp32, on the first batch.
Prints a markdown section headed by the command, the machine and the date; ``--write``
also puts it into benchmarks/RESULTS.md.
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


def load_embedders(names: list[str], device: str, precision: str) -> dict[str, object]:
    """The embedders, as the device stage loads them (seeded random weights where the cache has none)."""
    from acoustic_env.embedders.factory import load_embedder

    return {name: load_embedder(name, device=device, precision=precision, allow_random_weights=True)
            for name in names}


def torch_path(clips: list[np.ndarray], device: str, batch_size: int, embedders: dict[str, object]
               ) -> tuple[float, dict[str, float], list[float], dict[str, np.ndarray]]:
    """clips/s, device seconds per stage (timed batches), utilisation samples, and the first batch's outputs."""
    from acoustic_env.features.torch.batch import batch_features

    # warm-up, and the comparison
    first, _ = batch_features(clips[:batch_size], SR, FeatureParams(), device, embedders=embedders)
    seconds: dict[str, float] = {}
    with Utilisation(device) as util:
        t0 = time.perf_counter()
        for i in range(0, len(clips), batch_size):
            _, s = batch_features(clips[i : i + batch_size], SR, FeatureParams(), device, embedders=embedders)
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


def precision_agreement(clips: list[np.ndarray], device: str, names: list[str]) -> dict[str, tuple[float, float]]:
    """Per embedding column: (the worst clip's cosine, max |bf16 − fp32| / max |fp32|) of the device stage's pass."""
    from acoustic_env.features.torch.batch import batch_features

    ref, low = (batch_features(clips, SR, FeatureParams(), device, embedders=load_embedders(names, device, p))[0]
                for p in ("fp32", "bf16"))
    from acoustic_env.audio.stages import embedder_columns
    from acoustic_env.config import SIGNALS
    from acoustic_env.embedders.registry import get

    out = {}
    for col in (c for name in names for c in embedder_columns(get(name), SIGNALS)):
        a, b = ref[col].astype(np.float64), low[col].astype(np.float64)
        cosine = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
        out[col] = (float(cosine.min()), float(np.abs(b - a).max() / np.abs(a).max()))
    return out


def section(args: argparse.Namespace, argv: list[str], pool_rate: float, torch_rate: float,
            seconds: dict[str, float], util: list[float], diffs: dict[str, tuple[float, float]],
            agreement: dict[str, tuple[float, float]]) -> str:
    import torch

    device = args.device
    name = torch.cuda.get_device_name(device) if device.startswith("cuda") else "CPU"
    lines = [HEADING, "",
             f"Command: `python benchmarks/gpu_features.py {shlex.join(argv)}`  ",
             f"Machine: {describe()}, torch {torch.__version__} ({torch.get_num_threads()} CPU threads), "
             f"device {device} ({name})  ",
             f"Date: {dt.date.today().isoformat()}; {args.clips} generated {args.seconds:g}-s soundscapes, features "
             f"(decoded audio in memory), every signal (raw, fg, bg)"
             + (f"; on the torch path also {args.embedders} ({args.precision}) on each signal in the same pass"
                if args.embedders else ""), "",
             "| path | clips/s |", "|---|---|",
             f"| numpy `cpu_features`, pool of {args.pool} processes | {pool_rate:.2f} |",
             f"| torch `batch_features` on {device}, batches of {args.batch_size}"
             f"{' with the embedders' if args.embedders else ''} | {torch_rate:.2f} |", "",
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
    if agreement:
        lines += ["", f"bf16 against fp32 on the first {args.batch_size} clips (worst clip's cosine, max |bf16 − fp32| "
                  "/ max |fp32|): " + ", ".join(f"{col} {c:.5f}, {r:.1e}" for col, (c, r) in agreement.items()) + "."]
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
    ap.add_argument("--embedders", default="", help="comma list: embedders in the torch pass (the device stage)")
    ap.add_argument("--precision", choices=("fp32", "bf16"), default="fp32", help="the embedders' networks")
    ap.add_argument("--compare-precision", action="store_true",
                    help="with --embedders: bf16 against fp32 on the first batch")
    ap.add_argument("--write", action="store_true", help=f"write the section into {RESULTS.relative_to(REPO)}")
    args = ap.parse_args(argv)
    clips = soundscapes(max(args.clips, args.batch_size), args.seconds)
    pool_rate = numpy_pool(clips[: args.clips], args.pool)
    import torch

    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    names = [n for n in args.embedders.split(",") if n]
    embedders = load_embedders(names, args.device, args.precision)
    torch_rate, seconds, util, first = torch_path(clips[: args.clips], args.device, args.batch_size, embedders)
    diffs = largest_differences(clips[: args.compare], first)
    agreement = precision_agreement(clips[: args.batch_size], args.device, names) if args.compare_precision else {}
    text = section(args, argv, pool_rate, torch_rate, seconds, util, diffs, agreement)
    print(text)
    if args.write:
        write_section(text, RESULTS, HEADING)
    return 0


if __name__ == "__main__":
    sys.exit(main())
