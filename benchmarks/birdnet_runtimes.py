"""BirdNET's converted copy against its TF Lite graph: clips/s and CPU-s a clip, side by side in one run.

    cd benchmarks && python birdnet_runtimes.py                     # the CPU: ONNX Runtime against TF Lite
    cd benchmarks && python birdnet_runtimes.py --device cuda --batch 64 --clips 256   # a card: its runtime too

The same 3-s windows (``--clips`` clips of ``--seconds`` s, a chirp over noise, cut by the embedder's own
``windows``) go through each runtime ``--batch`` windows a call, on ``--threads`` threads. The runtimes take turns
pass by pass (A B A B …: a load that comes and goes on a shared machine falls on both alike); each pass is timed by
the wall clock and by this process's CPU time, and the table gives the medians over ``--repeats`` passes after one
warm-up pass each, with the converted copy's ratio to TF Lite. On ``--device cuda`` the card's runtime (what
``load_embedder("birdnet", device="cuda")`` picks: ONNX Runtime's CUDA provider, else torch through onnx2torch) is
measured beside the two on the host. The last line is the agreement of the runtimes on these windows (least cosine
of the embeddings, per window). Prints a Markdown section headed by the command, the machine and the date.

Needs the birdnet extra; the converted copy is built into the model cache first if it is not there.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shlex
import statistics
import sys
import time

import numpy as np
import torch
from machine import describe  # benchmarks/machine.py (scripts run from this folder)

from acoustic_env.embedders.birdnet import MODEL
from acoustic_env.embedders.birdnet.convert import converted_model
from acoustic_env.embedders.birdnet.model import windows
from acoustic_env.embedders.birdnet.runtimes import OnnxRuntime, runtime
from acoustic_env.embedders.birdnet.tflite import Runtime
from acoustic_env.embedders.spec import SAMPLE_RATE
from acoustic_env.embedders.weights import WeightsSource


def clips(n: int, seconds: float) -> np.ndarray:
    """The windows of ``n`` clips: a chirp sweeping 2-6 kHz every half second over noise, at 16 kHz."""
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    chirp = np.sin(2 * np.pi * (2000 + 8000 * (t % 0.5)) * t) * (t % 0.5 < 0.2)
    rng = np.random.default_rng(0)
    return np.concatenate([windows((0.3 * chirp + 0.02 * rng.standard_normal(t.size)).astype(np.float32))
                           for _ in range(n)])


def one_pass(run: object, batch: np.ndarray, size: int) -> tuple[float, float]:
    """Wall and CPU seconds of one pass over ``batch``, ``size`` windows a call."""
    wall, cpu = time.perf_counter(), time.process_time()
    for start in range(0, batch.shape[0], size):
        run(batch[start:start + size])
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--batch", type=int, default=8, help="windows a call (the embedder's CPU default: 8)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, _ = WeightsSource().file(MODEL)
    converted, _ = converted_model(model)
    runs = {"TF Lite (XNNPACK)": Runtime(model, args.threads), "ONNX Runtime (CPU)": OnnxRuntime(converted, args.threads)}
    if args.device != "cpu":
        card = runtime(converted, torch.device(args.device), args.threads)
        runs[f"{type(card).__name__} ({args.device})"] = card
    batch = clips(args.clips, args.seconds)
    outputs = {name: run(batch[: args.batch]) for name, run in runs.items()}  # the warm-up call, kept for agreement
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
    for name, run in runs.items():
        one_pass(run, batch, args.batch)  # warm-up pass
    for _ in range(args.repeats):
        for name, run in runs.items():
            times[name].append(one_pass(run, batch, args.batch))

    reference = times["TF Lite (XNNPACK)"]
    base_wall = statistics.median(w for w, _ in reference)
    base_cpu = statistics.median(c for _, c in reference)
    print(f"### BirdNET's runtimes: the converted copy against TF Lite\n\n"
          f"`cd benchmarks && python {' '.join(shlex.quote(a) for a in sys.argv)}`  \n"
          f"{describe()}, torch {torch.__version__}, {args.threads} thread(s); {dt.date.today().isoformat()}; "
          f"{args.clips} clips of {args.seconds:g} s = {batch.shape[0]} windows, {args.batch} a call, "
          f"medians of {args.repeats} interleaved passes\n")
    print("| runtime | clips/s (wall) | CPU-s a clip | wall vs TF Lite | CPU vs TF Lite |\n|---|---|---|---|---|")
    for name, measured in times.items():
        wall = statistics.median(w for w, _ in measured)
        cpu = statistics.median(c for _, c in measured)
        print(f"| {name} | {args.clips / wall:.2f} | {cpu / args.clips:.3f} | {base_wall / wall:.2f}× | "
              f"{base_cpu / cpu:.2f}× |")
    ours, theirs = outputs["ONNX Runtime (CPU)"][0], outputs["TF Lite (XNNPACK)"][0]
    agree = {name: float(np.min(np.sum(out[0] * theirs, 1) / np.linalg.norm(out[0], axis=1)
                                / np.linalg.norm(theirs, axis=1))) for name, out in outputs.items()}
    print("\nleast cosine of the embeddings against TF Lite's, per window: "
          + ", ".join(f"{name} {value:.6f}" for name, value in agree.items()) + f" (ONNX Runtime vs TF Lite "
          f"max |diff| {np.abs(ours - theirs).max():.2e})")


if __name__ == "__main__":
    main()
