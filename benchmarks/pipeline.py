"""The extract pipeline against a plain process pool on the same clips; resume planning; driver memory.

    python benchmarks/pipeline.py                       # 120 clips, 2 repeats, planning at 2M, memory at 20k/200k/2M
    python benchmarks/pipeline.py --clips 588 --repeats 3 --write
    python benchmarks/pipeline.py --device cuda --skip overhead,planning,memory --clips 4096 --repeats 1 \
        --extract-args "--embedders vggish,yamnet,panns --allow-random-weights" --write   # on a GPU node

Three measurements, printed as one markdown section (``--write`` also puts it into
benchmarks/RESULTS.md, replacing this script's previous section):

1. **Throughput.** Demo clips (``generate_demo``, 10 s each) copied under distinct clip
   ids into one CSV manifest. In each repeat, alternately, two commands, each timed from
   launch to exit (Python start-up, imports, workers, everything): ``process_pool.py``, the
   ten-line script a user would write instead (a ``multiprocessing.Pool`` of one process
   per core, native thread pools limited to one thread as in the extract's actors, calling
   ``decode_clip`` + ``cpu_features`` on every clip and writing nothing), and
   ``acoustic-env extract`` on a fresh output. Steady state excludes start-up: clips/s between the
   first and the last written part (their mtimes) for the pipeline, between the same
   clip counts for the pool. Efficiency = stage CPU seconds / (wall × cores). Medians
   over the repeats, and the ratio pipeline / pool. ``--device`` is passed to the extract;
   the seconds per stage come from its run record (``cpu_s``: with ``--device cuda``, the
   device stage's wall seconds on the card for every stage but decode), and with
   ``--device cuda`` the GPU's utilisation is sampled every 0.2 s while the extract runs
   (``nvidia-smi``), and ``--write`` puts the section under its own heading.
2. **Ray overhead.** The same command on as many rows of files that do not exist:
   no decoding or features, so its wall time is start-up plus Ray Data's per-operator
   and per-block costs; the run record splits Ray's start from the stream.
3. **Resume planning and driver memory.** A synthetic output of ``--plan-clips`` clips
   in parts of 64 rows holding only ``clip_id`` (as many parts as a real run of that
   size writes), indexed by ``layout.make_plan`` with 32 threads and with 1; and
   ``acoustic-env extract`` on manifests of 20k, 200k and 2M missing files: seconds
   to read and check the list and index the output (run record: ``manifest`` + ``plan``;
   the list is then streamed into Ray's object store a second time, chunk by chunk),
   seconds until the first part is on disk, and the driver's peak RSS (``VmHWM``) and
   private memory (``RssAnon``) until a few seconds after that, when the job is interrupted.
"""

from __future__ import annotations

import argparse
import csv
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

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from gpu_features import Utilisation  # benchmarks/gpu_features.py, beside this script
from machine import describe

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "RESULTS.md"
HEADING = "## Extract pipeline vs a process pool; resume planning; driver memory (pipeline.py)"
GPU_HEADING = "## Extract on one GPU node: the device stage vs a process pool (pipeline.py --device cuda)"
CLI = [sys.executable, "-m", "acoustic_env.cli", "extract"]
WRITE_BATCH = 16  # rows per part in the throughput runs: enough parts to time the steady state


# --- 1. throughput ---

def make_clips(workdir: Path, n_clips: int, n_source: int, seconds: float = 10.0) -> Path:
    """A CSV manifest of ``n_clips`` rows: the demo's good clips (``seconds`` each), repeated under distinct ids."""
    from acoustic_env.demo.synth import generate_demo

    demo = generate_demo(workdir / "demo", n_clips=n_source, seed=11, duration_s=seconds, n_broken=0)
    files = sorted(demo.audio_dir.iterdir())
    path = workdir / "clips.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["clip_id", "uri", "labels"])
        for i in range(n_clips):
            w.writerow([f"c{i:05d}", str(files[i % len(files)]), ""])
    return path


def run_pool(manifest: Path, cores: int) -> dict[str, float]:
    """``process_pool.py`` as a command, timed like the extract: from launch to exit."""
    t0 = time.time()
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "process_pool.py"), str(manifest), str(cores)],
                         capture_output=True, text=True, cwd=manifest.parent)
    wall = time.time() - t0
    if out.returncode != 0:
        raise SystemExit(f"process pool failed: {out.stderr[-2000:]}")
    result = json.loads(out.stdout)
    done, n = result["done"], len(result["done"])
    first = min(WRITE_BATCH, n) - 1
    steady = (n - first - 1) / (done[-1] - done[first]) if n > first + 1 else float("nan")
    return {"wall_s": wall, "clips_s": n / wall, "steady_clips_s": steady,
            "efficiency": result["cpu_s"] / (wall * cores)}


def run_extract(manifest: Path, output: Path, cores: int, extra: list[str] = (), device: str = "auto"
                ) -> dict[str, Any]:
    """The extract as a command, timed from launch to exit; on ``--device cuda`` the GPU's utilisation sampled."""
    cmd = [*CLI, "--manifest", str(manifest), "--output", str(output), "--no-progress",
           "--write-batch-size", str(WRITE_BATCH), "--device", device, *extra]
    env = {**os.environ, "RAY_ADDRESS": ""}
    t0 = time.time()
    with Utilisation(device) as util:  # samples on CUDA only
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=output.parent)
    wall = time.time() - t0
    if out.returncode != 0:
        raise SystemExit(f"extract failed: {out.stderr[-2000:]}")
    record = json.loads(next((output / "runs").glob("*.json")).read_text())
    n = record["counts"]["processed"]
    parts = sorted((p.stat().st_mtime, pq.read_metadata(p).num_rows) for p in (output / "features").glob("*.parquet"))
    steady = float("nan")
    if len(parts) > 1:
        steady = sum(k for _, k in parts[1:]) / (parts[-1][0] - parts[0][0])
    cpu = sum(record["cpu_s"].values())
    return {"wall_s": wall, "clips_s": n / wall, "steady_clips_s": steady, "efficiency": cpu / (wall * cores),
            "ok": record["counts"]["ok"], "failed": record["counts"]["failed"], "stage_s": record["cpu_s"],
            "gpu_util": util.samples, "resources": record.get("resources") or {},
            **{f"t_{k}": v for k, v in record.get("timing_s", {}).items()}}


def stage_lines(pipes: list[dict[str, Any]], device: str) -> list[str]:
    """Seconds per stage from the run records, and on CUDA the GPU's utilisation during the runs."""
    res = pipes[0]["resources"]
    seconds = {k: statistics.median(p["stage_s"].get(k, 0.0) for p in pipes) for k in pipes[0]["stage_s"]}
    kind = ("the device stage's wall seconds on the card, decode's CPU seconds" if res.get("device")
            else "CPU seconds")
    lines = [f"Seconds per stage (run record `cpu_s`, {kind}; medians): "
             + ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items())
             + f". Features on {res.get('feature_device') or 'the CPUs (numpy)'}, "
             f"embedders on {res.get('torch_device') or 'none'}; {res.get('max_actors')} decode"
             + ("" if res.get("device") else " + feature") + f" actors, {res.get('device_actors', 0)} device actors."]
    util = [u for p in pipes for u in p["gpu_util"]]
    if util:
        lines.append(f"GPU utilisation while the extract ran (nvidia-smi every 0.2 s, {len(util)} samples, "
                     f"start-up included): median {statistics.median(util):.0f} %, mean {statistics.fmean(util):.0f} %, "
                     f"max {max(util):.0f} %; busy (> 0 %) in {100 * sum(u > 0 for u in util) / len(util):.0f} % of "
                     "the samples.")
    elif device == "cuda":
        lines.append("GPU utilisation: no sample (no nvidia-smi, or the runs were shorter than 0.2 s).")
    return lines


def throughput(workdir: Path, n_clips: int, n_source: int, repeats: int, cores: int,
               extract_args: list[str] = (), device: str = "auto") -> tuple[list[str], dict]:
    manifest = make_clips(workdir, n_clips, n_source)
    pools, pipes = [], []
    for r in range(repeats):
        pools.append(run_pool(manifest, cores))
        pipes.append(run_extract(manifest, workdir / f"out-{r}", cores, extract_args, device))
        print(f"  repeat {r}: pool {pools[-1]['clips_s']:.2f} clips/s, extract {pipes[-1]['clips_s']:.2f} clips/s",
              file=sys.stderr)
    med = {k: {m: statistics.median(x[m] for x in runs) for m in ("wall_s", "clips_s", "steady_clips_s",
                                                                   "efficiency")}
           for k, runs in (("pool", pools), ("extract", pipes))}
    lines = [f"{n_clips} clips of 10 s ({n_source} generated demo clips, each under {n_clips // n_source}+ ids), "
             f"{repeats} repeats alternating; `--write-batch-size {WRITE_BATCH}`; medians.", "",
             "| | wall s | clips/s | steady clips/s | efficiency |", "|---|---:|---:|---:|---:|"]
    for k, label in (("pool", f"`multiprocessing.Pool({cores})`, one thread each: decode + cpu_features"),
                     ("extract", "`acoustic-env extract` (Ray Data, local)")):
        m = med[k]
        lines.append(f"| {label} | {m['wall_s']:.1f} | {m['clips_s']:.2f} | {m['steady_clips_s']:.2f} | "
                     f"{m['efficiency']:.2f} |")
    lines.append(f"| **extract / pool** | | **{med['extract']['clips_s'] / med['pool']['clips_s']:.2f}** | "
                 f"**{med['extract']['steady_clips_s'] / med['pool']['steady_clips_s']:.2f}** | |")
    t = {k: statistics.median(x[k] for x in pipes) for k in pipes[0] if k.startswith("t_")}
    lines += ["", "Per run: " + "; ".join(f"pool {p['clips_s']:.2f} / extract {e['clips_s']:.2f} clips/s "
                                          f"(steady {p['steady_clips_s']:.2f} / {e['steady_clips_s']:.2f})"
                                          for p, e in zip(pools, pipes)) + ".",
              f"Inside extract (run record `timing_s`, medians): plan {t.get('t_plan', 0):.2f} s, "
              f"Ray start {t.get('t_ray_start', 0):.1f} s, blocks {t.get('t_blocks', 0):.1f} s, "
              f"stream {t.get('t_stream', 0):.1f} s "
              f"(first part after {t.get('t_first_part', 0):.1f} s).", *stage_lines(pipes, device)]
    return lines, med


def overhead(workdir: Path, n_rows: int, cores: int) -> list[str]:
    manifest = workdir / "missing.csv"
    write_missing(manifest, n_rows)
    r = run_extract(manifest, workdir / "out-missing", cores)
    return [f"Ray overhead: `acoustic-env extract` on {n_rows} rows of missing files (every stage runs, no "
            f"decoding or features): {r['wall_s']:.1f} s wall, of which Ray start {r.get('t_ray_start', 0):.1f} s, "
            f"stream {r.get('t_stream', 0):.1f} s (actors' start, blocks, writes); the rest is Python start-up, "
            f"imports, planning and the run record."]


# --- 3. planning and driver memory ---

def write_missing(path: Path, n_rows: int) -> None:
    """A manifest of ``n_rows`` files that do not exist (AudioSet-like ids and paths)."""
    ids = pa.array([f"Y{i:010d}_30000" for i in range(n_rows)])
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    uris = pc.binary_join_element_wise("/nonexistent/audio/", ids, ".flac", "")
    table = pa.table({"clip_id": ids, "uri": uris, "labels": pa.array(["/m/09x0r;/t/dd00128"] * n_rows)})
    pacsv.write_csv(table, path)


def synthetic_output(root: Path, n_clips: int, per_part: int = 64) -> int:
    """features/ of ``n_clips`` clips in parts of ``per_part`` rows holding only clip_id; returns the part count."""
    features = root / "features"
    features.mkdir(parents=True)
    ids = np.array([f"Y{i:010d}_30000" for i in range(n_clips)], dtype=object)
    n_parts = 0
    for start in range(0, n_clips, per_part):
        pq.write_table(pa.table({"clip_id": pa.array(ids[start:start + per_part], pa.string())}),
                       features / f"part-run-{n_parts:08d}.parquet", compression="none")
        n_parts += 1
    return n_parts


def planning(workdir: Path, n_clips: int) -> list[str]:
    from acoustic_env import layout

    root = workdir / "planned"
    t0 = time.monotonic()
    n_parts = synthetic_output(root, n_clips)
    made = time.monotonic() - t0
    extra = n_clips // 200
    manifest = pa.table({"clip_id": pa.array([f"Y{i:010d}_30000" for i in range(n_clips + extra)])})
    lines = [f"Resume planning: a synthetic output of {n_clips:,} clips in {n_parts:,} parts of 64 rows (only "
             f"`clip_id`; written in {made:.0f} s), a manifest of {n_clips + extra:,} rows; `layout.make_plan` "
             "(list, read every part's clip_id, repair duplicates, filter the manifest), page cache warm:", "",
             "| index threads | wall s | CPU s | to do |", "|---:|---:|---:|---:|"]
    for threads in (layout.INDEX_THREADS, 1):
        saved, layout.INDEX_THREADS = layout.INDEX_THREADS, threads
        try:
            t0, c0 = time.monotonic(), time.process_time()
            plan = layout.make_plan(manifest, str(root))
            lines.append(f"| {threads} | {time.monotonic() - t0:.1f} | {time.process_time() - c0:.1f} | "
                         f"{plan.todo.num_rows:,} |")
        finally:
            layout.INDEX_THREADS = saved
        assert plan.skipped == n_clips and plan.todo.num_rows == extra
    return lines


def _status_mb(pid: int) -> dict[str, float]:
    """VmHWM (peak RSS, shared object-store pages the driver wrote included) and RssAnon (private), MB."""
    with open(f"/proc/{pid}/status") as fh:
        fields = dict(line.split(":", 1) for line in fh if ":" in line)
    return {k: int(fields[k].split()[0]) / 1024 for k in ("VmHWM", "RssAnon")}


def driver_memory(workdir: Path, sizes: list[int], linger_s: float) -> list[str]:
    lines = ["Driver memory: `acoustic-env extract` on a CSV manifest of N missing files, interrupted "
             f"{linger_s:.0f} s after its first part is on disk. VmHWM counts the shared-memory pages of the "
             "blocks the driver put into Ray's object store; RssAnon is the driver's own memory:", "",
             "| manifest rows | read + check + index s | first part after s | driver peak RSS (VmHWM) MB | "
             "driver peak private (RssAnon, sampled every 0.2 s) MB |", "|---:|---:|---:|---:|---:|"]
    for n in sizes:
        manifest = workdir / f"missing-{n}.csv"
        write_missing(manifest, n)
        output = workdir / f"mem-{n}"
        cmd = [*CLI, "--manifest", str(manifest), "--output", str(output), "--no-progress"]
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
                                env={**os.environ, "RAY_ADDRESS": ""})
        first = None
        peak = {"VmHWM": 0.0, "RssAnon": 0.0}
        try:
            while proc.poll() is None:
                now = _status_mb(proc.pid)
                peak = {k: max(peak[k], now[k]) for k in peak}
                if first is None and any((output / "errors").glob("part-*.parquet")):
                    first = time.monotonic() - t0
                if first is not None and time.monotonic() - t0 > first + linger_s:
                    break
                time.sleep(0.2)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGINT)  # the driver shuts its local Ray down
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
        record = json.loads(next((output / "runs").glob("*.json")).read_text())
        timing = record.get("timing_s", {})  # written once the plan is made
        read_plan = timing.get("manifest", float("nan")) + timing.get("plan", float("nan"))
        lines.append(f"| {n:,} | {read_plan:.1f} | {first if first is not None else float('nan'):.1f} | "
                     f"{peak['VmHWM']:.0f} | {peak['RssAnon']:.0f} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", type=int, default=120)
    ap.add_argument("--source-clips", type=int, default=40, help="demo clips generated (copied to make --clips)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--plan-clips", type=int, default=2_000_000)
    ap.add_argument("--memory-rows", default="20000,200000,2000000")
    ap.add_argument("--linger", type=float, default=10.0, help="seconds the memory runs go on after the first part")
    ap.add_argument("--skip", default="", help="comma list of parts to skip: throughput,overhead,planning,memory")
    ap.add_argument("--extract-args", default="", help="more options for the extract runs, e.g. "
                    "'--embedders vggish,yamnet,panns --allow-random-weights' on a GPU machine (the pool "
                    "runs the CPU features only, so the ratio then says what the embedders cost)")
    ap.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                    help="the extract's --device; cuda also samples the GPU's utilisation and writes under its own "
                         "heading")
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    cores = os.cpu_count() or 1
    load = os.getloadavg()[0]
    body: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        workdir = Path(tmp)
        if "throughput" not in skip:
            body += throughput(workdir, args.clips, args.source_clips, args.repeats, cores,
                               shlex.split(args.extract_args), args.device)[0] + [""]
        if "overhead" not in skip:
            body += overhead(workdir, args.clips, cores) + [""]
        if "planning" not in skip:
            body += planning(workdir, args.plan_clips) + [""]
        if "memory" not in skip:
            body += driver_memory(workdir, [int(x) for x in args.memory_rows.split(",")], args.linger) + [""]
    import pyarrow
    import ray

    heading = GPU_HEADING if args.device == "cuda" else HEADING
    head = [heading, "",
            f"`python benchmarks/pipeline.py {shlex.join(sys.argv[1:])}`, {dt.date.today().isoformat()}  ",
            f"{describe()}, {platform.platform()}, Python {platform.python_version()}, ray {ray.__version__}, "
            f"pyarrow {pyarrow.__version__}; load average {load:.1f} at the start "
            f"({os.getloadavg()[0]:.1f} at the end): the machine was shared with other jobs.", ""]
    section = "\n".join(head + body).rstrip() + "\n"
    print(section)
    if args.write:
        text = RESULTS.read_text()
        if heading in text:
            before, rest = text.split(heading, 1)
            idx = rest.find("\n## ")
            text = before + section + ("\n" + rest[idx + 1:] if idx >= 0 else "")
        else:
            text = text.rstrip() + "\n\n" + section
        RESULTS.write_text(text)


if __name__ == "__main__":
    main()
