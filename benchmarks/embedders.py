"""Throughput of the embedders (clips/s), and bf16-vs-fp32 agreement (on CUDA or the CPU).

    python benchmarks/embedders.py                       # CPU, 10-s clips, every registered one
    python benchmarks/embedders.py --device cuda --precision bf16 --compare-precision \
        --clips 256 --batch-size 64 --repeats 5

Prints a markdown table headed by the command, the machine and the date, ready to paste
into benchmarks/RESULTS.md. Pretrained weights are used when the model cache has them,
random weights otherwise (same compute; the table says which). With random weights the
bf16-vs-fp32 agreement measures the arithmetic on the same (random) network, not on the
activations a pretrained one produces. clips/s is the median over ``--repeats`` timed
passes over all the clips (one warm-up batch first); on CUDA the table adds each
embedder's peak GPU memory (``torch.cuda.max_memory_allocated`` from its load through
its timed passes, one embedder at a time).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import gc
import shlex
import statistics
import sys
import time

import numpy as np
import torch
from machine import describe  # benchmarks/machine.py (scripts run from this folder)

from acoustic_env.embedders.factory import load_embedder
from acoustic_env.embedders.registry import names
from acoustic_env.embedders.spec import SAMPLE_RATE


def machine() -> str:
    """CPU model, cores, torch threads and version, and the GPU if one is used."""
    gpu = f", {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    return f"{describe()}, torch {torch.__version__} ({torch.get_num_threads()} threads){gpu}"


def audio(n: int, seconds: float, seed: int = 0) -> np.ndarray:
    """[n, samples] of tone plus noise at the models' rate."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    rng = np.random.default_rng(seed)
    return (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal((n, t.size))).astype(np.float32)


def throughput(embedder: object, clips: np.ndarray, batch_size: int, repeats: int = 1) -> list[float]:
    """Clips per second of each of ``repeats`` passes over all of ``clips``, after one warm-up batch.

    ``embed`` returns host arrays, so each batch ends with a device-to-host copy that waits
    for the GPU; the synchronize calls only make the bounds exact.
    """
    embedder.embed(clips[:batch_size])
    rates = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        for i in range(0, len(clips), batch_size):
            embedder.embed(clips[i: i + batch_size])
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        rates.append(len(clips) / (time.perf_counter() - start))
    return rates


def agreement(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> str:
    """Per column: max |a - b| relative to max |a|, and the worst per-clip cosine similarity."""
    parts = []
    for key in a:
        x, y = a[key].astype(np.float64), b[key].astype(np.float64)
        rel = np.abs(x - y).max() / max(np.abs(x).max(), 1e-12)
        cos = (x * y).sum(1) / np.maximum(np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1), 1e-30)
        parts.append(f"{key}: rel {rel:.2e}, min cos {cos.min():.5f}")
    return "; ".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--embedders", default=",".join(names()))
    parser.add_argument("--clips", type=int, default=16, help="clips timed per embedder")
    parser.add_argument("--seconds", type=float, default=10.0, help="clip length")
    parser.add_argument("--batch-size", type=int, default=8, help="clips per embed() call")
    parser.add_argument("--repeats", type=int, default=1, help="timed passes per embedder (median reported)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--compare-precision", action="store_true",
                        help="also report bf16-vs-fp32 agreement")
    parser.add_argument("--cache-dir", help="model cache (default: the usual one)")
    args = parser.parse_args(argv)

    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    clips = audio(args.clips, args.seconds)
    on_cuda = torch.device(args.device).type == "cuda"
    rows = []
    for name in args.embedders.split(","):
        if on_cuda:
            torch.cuda.reset_peak_memory_stats()
        emb = load_embedder(name, device=args.device, precision=args.precision,
                            allow_random_weights=True, cache_dir=args.cache_dir)
        rates = throughput(emb, clips, args.batch_size, args.repeats)
        rate = statistics.median(rates)
        row = [name, f"{rate:.2f}", f"{min(rates):.2f}–{max(rates):.2f}", f"{args.seconds * rate:.0f}",
               "random" if emb.weights_id == "random" else emb.weights_id[:12]]
        if on_cuda:
            row.append(f"{torch.cuda.max_memory_allocated() / 2**20:.0f}")
        del emb
        if args.compare_precision:
            ref = load_embedder(name, device=args.device, precision="fp32",
                                allow_random_weights=True, cache_dir=args.cache_dir)
            low = load_embedder(name, device=args.device, precision="bf16",
                                allow_random_weights=True, cache_dir=args.cache_dir)
            row.append(agreement(ref.embed(clips[: args.batch_size]), low.embed(clips[: args.batch_size])))
            del ref, low
        rows.append(row)
        gc.collect()  # the next embedder's peak must not count this one's tensors
        if on_cuda:
            torch.cuda.empty_cache()

    command = " ".join(shlex.quote(a) for a in [os.path.relpath(sys.argv[0])] + (argv or sys.argv[1:]))
    print(f"Command: `python {command}`  ")
    print(f"Machine: {machine()}  ")
    print(f"Date: {dt.datetime.now().astimezone().isoformat(timespec='minutes')}  ")
    print(f"Load average (1 min) at the end: {os.getloadavg()[0]:.1f} "
          "(numbers are only comparable on an otherwise idle machine)  ")
    tf32 = (f", TF32 for fp32 convolutions {torch.backends.cudnn.allow_tf32} and matmuls "
            f"{torch.backends.cuda.matmul.allow_tf32} (PyTorch's defaults)" if on_cuda else "")
    print(f"Setup: {args.clips} clips of {args.seconds:g} s, batch size {args.batch_size}, "
          f"device {args.device}, precision {args.precision}{tf32}; clips/s: median of "
          f"{args.repeats} timed passes\n")
    header = ["embedder", "clips/s", "range", "audio s/s", "weights"]
    if on_cuda:
        header.append("peak GPU MiB")
    if args.compare_precision:
        header.append("bf16 vs fp32")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
