"""One GPU node's extract figures in one short command (issue 87, part 4): clips/s, each stage's card time, start-up.

    python benchmarks/gpu_node.py                               # on a GPU node: 4,096 10-s clips, under 8 minutes
    python benchmarks/gpu_node.py --peak-tflops 495             # with the share of the card's peak (H200, TF32 dense)
    python benchmarks/gpu_node.py --device cpu --clips 6 --source-clips 2 --seconds 2 --pool 2 \\
        --sets three --three yamnet --signals raw               # the smoke test, on any machine (tests/test_gpu_node.py)

Every run is a command timed from launch to exit, on the same clips (``pipeline.make_clips``: the demo's
clips under distinct ids), one after the other:

1. **The pool**: ``process_pool.py``, a ``multiprocessing.Pool`` of ``--pool`` processes (16: the node's cores)
   calling ``decode_clip`` + ``cpu_features`` on every clip, writing nothing: the CPU floor of the features.
2. **Each set** of ``--sets``: ``acoustic-env extract --device DEVICE`` (``--in-process-max 0``: always the Ray
   pipeline), ``default`` with the default embedders (``--embedders auto``: what a user gets) and ``three``
   with ``--three`` (VGGish, YAMNet, PANNs) on ``--signals`` (raw, fg, bg), random weights where the cache has none
   (the same arithmetic). A run still going after ``--run-timeout`` s is interrupted (Ctrl-C, then killed) and
   reported as unfinished, with the clips it wrote and its steady rate: the command stays within its time.

Reported: clips/s for the whole command and in the steady part (between the first and the last written part), each
against the pool's; from each run record, each stage's seconds a clip (``cpu_s``: with ``--device cuda`` the device
stage's wall seconds on the card, the device synchronised at each stage's end; decode's are CPU seconds), for the
embedders beside their networks' multiply-adds a clip (torch's ``FlopCounterMode`` on one clip on the CPU, times the
signals embedded; none for a network that is not torch) as achieved TFLOP/s and, with ``--peak-tflops``, the share
of the card's peak; the record's ``startup`` (when the decode and device actors first became busy, the device
actor's load and warm-up); the GPU's utilisation (``nvidia-smi`` every 0.2 s). ``--json`` keeps every figure.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from gpu_features import Utilisation  # benchmarks/, beside this script
from machine import describe
from pipeline import CLI, WRITE_BATCH, make_clips, run_pool

SETS = ("default", "three")
THREE = "vggish,yamnet,panns"
SIGNALS = "raw,fg,bg"


def set_args(name: str, three: str, signals: str) -> list[str]:
    """The extract options of a set: ``default`` adds none (``--embedders auto``)."""
    if name == "default":
        return []
    return ["--embedders", three, "--embed-signals", signals, "--allow-random-weights"]


def run_extract(manifest: Path, output: Path, device: str, extra: list[str], timeout: float) -> dict[str, Any]:
    """``acoustic-env extract`` timed from launch to exit, stopped after ``timeout`` s; its parts and run record."""
    cmd = [*CLI, "--manifest", str(manifest), "--output", str(output), "--no-progress", "--write-batch-size",
           str(WRITE_BATCH), "--device", device, "--in-process-max", "0", *extra]
    with tempfile.TemporaryFile("w+") as err, Utilisation(device) as util:
        t0 = time.time()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, cwd=output.parent,
                                env={**os.environ, "RAY_ADDRESS": ""})
        try:
            proc.wait(timeout=timeout)
            finished = True
        except subprocess.TimeoutExpired:
            finished = False
            proc.send_signal(signal.SIGINT)  # as Ctrl-C: the record ends `failed: interrupted`, Ray is ended
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        wall = time.time() - t0
        if finished and proc.returncode:
            err.seek(0)
            raise SystemExit(f"extract failed ({proc.returncode}): {err.read()[-2000:]}")
    parts = sorted((p.stat().st_mtime - t0, pq.read_metadata(p).num_rows) for p in (output / "features").glob("*.parquet"))
    records = list((output / "runs").glob("*.json"))
    record = json.loads(records[0].read_text()) if records else {}
    n = sum(k for _, k in parts)
    steady = sum(k for _, k in parts[1:]) / (parts[-1][0] - parts[0][0]) if len(parts) > 1 else float("nan")
    return {"finished": finished, "wall_s": wall, "clips": n, "clips_s": n / wall if finished else float("nan"),
            "steady_clips_s": steady, "first_part_s": parts[0][0] if parts else float("nan"),
            "cpu_s": record.get("cpu_s") or {}, "startup": record.get("startup") or {},
            "resources": record.get("resources") or {}, "timing_s": record.get("timing_s") or {},
            "embedders": (record.get("embedders") or {}).get("ran", []),
            "embed_signals": (record.get("config") or {}).get("embed_signals", ["raw"]), "gpu_util": util.samples}


def network_macs(name: str, seconds: float) -> float | None:
    """Multiply-adds of one ``seconds`` clip through an embedder (torch's count, on the CPU); None when its network
    is not torch (a TF Lite graph)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from acoustic_env.embedders.factory import load_embedder
    from acoustic_env.embedders.spec import SAMPLE_RATE

    embedder = load_embedder(name, device="cpu", allow_random_weights=True)
    counter = FlopCounterMode(display=False)
    with counter:
        embedder.embed_tensor(torch.zeros(1, int(seconds * SAMPLE_RATE)))
    return counter.get_total_flops() / 2 or None


def stage_table(run: dict[str, Any], macs: dict[str, float | None], peak_tflops: float | None) -> list[str]:
    """Each stage's milliseconds a clip from the record, and for an embedder its multiply-adds and achieved rate."""
    n = run["clips"]
    if not run["cpu_s"] or not n:
        return ["(no run record with stage seconds: the run did not finish)"]
    on_card = bool(run["resources"].get("device"))
    unit = "card ms a clip (decode: CPU ms)" if on_card else "CPU ms a clip"
    lines = [f"| stage | {unit} | network GMAC a clip | TFLOP/s | share of peak |", "|---|---:|---:|---:|---:|"]
    signals = len(run["embed_signals"])
    for stage, seconds in run["cpu_s"].items():
        ms = 1e3 * seconds / n
        mac = macs.get(stage.removeprefix("embed_")) if stage.startswith("embed_") else None
        if mac and seconds > 0:
            tflops = 2 * mac * signals * n / seconds / 1e12
            share = f"{100 * tflops / peak_tflops:.1f} %" if peak_tflops else "-"
            lines.append(f"| {stage} | {ms:.2f} | {mac * signals / 1e9:.2f} ({signals} signals) | {tflops:.1f} | {share} |")
        else:
            lines.append(f"| {stage} | {ms:.2f} | - | - | - |")
    return lines


def startup_line(run: dict[str, Any]) -> str:
    """The record's ``startup`` in one sentence: when each stage first became busy, the warmed actors' costs."""
    parts = []
    for stage, got in run["startup"].items():
        first = got["actors"][0]
        warm = f", load {first['load_s']:.1f} s, warm-up {first['warm_s']:.1f} s" if first["warm_s"] else ""
        parts.append(f"{stage} busy {got['first_busy_s']:.1f} s (ready {first['ready_s']:.1f} s{warm})")
    ray = run["timing_s"].get("ray_start")
    head = f"Ray's start {ray:.1f} s; " if ray is not None else ""
    return (f"Start-up (run record `startup`, s after the run started): {head}" + "; ".join(parts)
            + f"; first part {run['first_part_s']:.1f} s after launch.") if parts else "Start-up: no run record."


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}×" if b == b and a == a and b else "-"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", type=int, default=4096)
    ap.add_argument("--source-clips", type=int, default=40, help="generated demo clips, repeated under distinct ids")
    ap.add_argument("--seconds", type=float, default=10.0, help="each clip's length")
    ap.add_argument("--device", default="cuda", help="the extract's --device (cpu: the smoke test)")
    ap.add_argument("--pool", type=int, default=16, help="processes of the CPU pool")
    ap.add_argument("--sets", default=",".join(SETS), help="comma list of: default (--embedders auto), three")
    ap.add_argument("--three", default=THREE, help="the embedders of the set 'three'")
    ap.add_argument("--signals", default=SIGNALS, help="the signals the set 'three' embeds")
    ap.add_argument("--device-batch-size", type=int, default=64)
    ap.add_argument("--run-timeout", type=float, default=130.0, help="seconds an extract run may take")
    ap.add_argument("--peak-tflops", type=float, help="the card's peak, for the networks' share of it")
    ap.add_argument("--json", help="write every figure here")
    args = ap.parse_args()
    sets = [s for s in args.sets.split(",") if s]
    if unknown := set(sets) - set(SETS):
        raise SystemExit(f"--sets: unknown {sorted(unknown)}; choose from {', '.join(SETS)}")
    load = os.getloadavg()[0]
    t_start = time.time()
    with tempfile.TemporaryDirectory(prefix="bench-gpu-node-") as tmp:
        workdir = Path(tmp)
        manifest = make_clips(workdir, args.clips, args.source_clips, args.seconds)
        pool = run_pool(manifest, args.pool)
        print(f"  pool: {pool['clips_s']:.1f} clips/s ({pool['wall_s']:.0f} s)", file=sys.stderr)
        runs = {}
        for name in sets:
            extra = [*set_args(name, args.three, args.signals), "--device-batch-size", str(args.device_batch_size)]
            runs[name] = run_extract(manifest, workdir / f"out-{name}", args.device, extra, args.run_timeout)
            runs[name]["args"] = extra
            print(f"  {name}: {runs[name]['clips']} clips in {runs[name]['wall_s']:.0f} s"
                  f"{'' if runs[name]['finished'] else ' (stopped)'}", file=sys.stderr)
    embedders = sorted({e for r in runs.values() for e in r["embedders"]})
    macs = {e: network_macs(e, args.seconds) for e in embedders}
    print("\n".join(report(args, pool, runs, macs, load, time.time() - t_start)))
    if args.json:
        Path(args.json).write_text(json.dumps({"pool": pool, "runs": runs, "macs": macs}, indent=1))


def report(args: argparse.Namespace, pool: dict[str, Any], runs: dict[str, dict[str, Any]],
           macs: dict[str, float | None], load: float, took: float) -> list[str]:
    """The markdown section: the runs beside the pool, then per run its stages and its start-up."""
    import ray
    import torch

    card = torch.cuda.get_device_name() if args.device.startswith("cuda") and torch.cuda.is_available() else "no card"
    lines = ["## Extract on one GPU node: clips/s, each stage's card time, start-up (gpu_node.py)", "",
             f"`python benchmarks/gpu_node.py {shlex.join(sys.argv[1:])}`, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} "
             f"UTC, {took:.0f} s in all  ",
             f"{describe()}, {card}, {platform.platform()}, Python {platform.python_version()}, ray {ray.__version__}, "
             f"torch {torch.__version__}; load average {load:.1f} at the start ({os.getloadavg()[0]:.1f} at the end).",
             "", f"{args.clips} clips of {args.seconds:g} s ({args.source_clips} generated demo clips under distinct "
             f"ids), `--write-batch-size {WRITE_BATCH}`, `--device {args.device}`:", "",
             "| run | clips | wall s | clips/s, whole command | steady clips/s | × pool, whole | × pool, steady | "
             "GPU utilisation, median |", "|---|---:|---:|---:|---:|---:|---:|---:|",
             f"| `multiprocessing.Pool({args.pool})`: decode + CPU features | {args.clips} | {pool['wall_s']:.1f} | "
             f"{pool['clips_s']:.1f} | {pool['steady_clips_s']:.1f} | | | |"]
    for name, run in runs.items():
        label = (f"extract, {name}: {', '.join(run['embedders']) or 'no embedder'} on "
                 f"{','.join(run['embed_signals'])}" + ("" if run["finished"] else
                                                       f" (stopped at {args.run_timeout:.0f} s)"))
        util = f"{statistics.median(run['gpu_util']):.0f} %" if run["gpu_util"] else "-"
        whole = f"{run['clips_s']:.1f}" if run["finished"] else "-"
        lines.append(f"| {label} | {run['clips']} | {run['wall_s']:.1f} | {whole} | {run['steady_clips_s']:.1f} | "
                     f"{ratio(run['clips_s'], pool['clips_s'])} | {ratio(run['steady_clips_s'], pool['steady_clips_s'])} "
                     f"| {util} |")
    for name, run in runs.items():
        lines += ["", f"**{name}** (`{shlex.join(run['args'])}`): each stage from the run record, over "
                  f"{run['clips']} clips:", "", *stage_table(run, macs, args.peak_tflops), "", startup_line(run)]
    return lines


if __name__ == "__main__":
    main()
