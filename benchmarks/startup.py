"""Where an extract's fixed start-up goes: a timeline of the command's processes, launch to exit.

    python benchmarks/startup.py --clips 1024 --repeats 3
    python benchmarks/startup.py --clips 1024 --repeats 3 \\
        --variant "no-prestart RAY_prestart_worker_first_driver=0"

``pipeline.py`` says how much slower than a process pool the extract is; this says where
the difference goes, which the run record alone cannot: Ray starts processes of its own
(GCS, raylet, agents, pre-started workers) and the actors start theirs while the driver
waits. Three measurements, printed as one markdown section:

1. **Imports**: a bare ``python -c pass``, the command's own imports
   (``acoustic_env.cli``), and what each feature actor imports before its first block
   (``ray`` + ``acoustic_env.audio.stages``), each timed inside a fresh process, with that
   process's wall time beside it (start and exit included), medians.
2. **Ray alone**: ``import ray``, ``ray.init`` as ``start_ray`` calls it (local, no
   dashboard), the time until every worker Ray pre-starts is up (``ray::IDLE``), and
   ``ray.shutdown``, per variant.
3. **The extract's timeline**: ``acoustic-env extract`` on demo clips (``pipeline.make_clips``),
   sampled every ``--every`` s with psutil: when each process started and what it was
   doing (Ray names a worker ``ray::IDLE``, then ``ray::MapWorker(...)`` once an actor's
   constructor runs, ``ray::MapWorker(...).submit`` while it works on a block), the
   parts' mtimes, the run record's own ``timing_s``, and the exit. Seconds from launch;
   medians over ``--repeats`` runs per variant, the variants interleaved.

A variant is a name followed by environment settings (``NAME=VALUE``) and extract options
(``--batch-size 16``), e.g. Ray's own knobs (``RAY_prestart_worker_first_driver=0``,
``RAY_worker_maximum_startup_concurrency=32``). ``--json`` keeps every run's raw samples.
"""

from __future__ import annotations

import argparse
import datetime as dt
import glob
import json
import math
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from machine import describe  # benchmarks/machine.py, beside this script
from pipeline import (  # the same clips and command as the throughput runs
    CLI,
    WRITE_BATCH,
    make_clips,
)

#: Roles by a fragment of the command line (the first match wins); Ray workers are "worker".
#: A worker's command line names the raylet and the GCS, so it is matched before them (the raylet's
#: names the worker's script, so it comes first).
ROLES = (("raylet/raylet", "raylet"), ("default_worker.py", "worker"), ("dashboard/agent.py", "dashboard agent"),
         ("DashboardAgent", "dashboard agent"), ("runtime_env/agent", "runtime-env agent"),
         ("RuntimeEnvAgent", "runtime-env agent"), ("gcs_server", "gcs"),
         ("log_monitor.py", "log monitor"), ("autoscaler/_private/monitor.py", "monitor"),
         ("dashboard/dashboard.py", "api server"), ("acoustic_env.distributed.reaper", "reaper"),
         ("acoustic_env.cli", "driver"), ("ray::", "worker"))
METHOD = re.compile(r"\)\.(\w+)(\(\))?$")  # ray::MapWorker(MapBatches(X)).submit
ACTOR = "MapWorker("  # Ray Data's actor class wraps the stage's
METADATA_TASK = "get_table_block_metadata_schema"  # from_arrow_refs: one remote task per block


@dataclass
class Variant:
    name: str
    env: dict[str, str] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str) -> Variant:
        name, *rest = shlex.split(text)
        env = dict(t.split("=", 1) for t in rest if "=" in t and not t.startswith("-"))
        return cls(name, env, [t for t in rest if not ("=" in t and not t.startswith("-"))])


def role(cmdline: str) -> str:
    return next((r for frag, r in ROLES if frag in cmdline), "other")


# --- 1. and 2.: imports, Ray alone ---

RAY_ALONE = r"""
import json, time
import acoustic_env.distributed  # states RAY_AUTH_MODE before Ray's first import, as the jobs do
t0 = time.time()
import ray, psutil
t1 = time.time()
from acoustic_env.distributed.session import start_ray
start_ray()  # exactly as the jobs start a local instance
t2 = time.time()
me = psutil.Process()
idle, n, t_idle = 0, 0, float("nan")
while time.time() - t2 < 20:
    titles = []
    for p in me.children(recursive=True):
        try:
            titles.append(" ".join(p.cmdline()))
        except psutil.Error:
            pass
    # the raylet's own command line names default_worker.py (the command it starts workers with)
    workers = [t for t in titles if ("default_worker.py" in t and "raylet/raylet" not in t) or t.startswith("ray::IDLE")]
    n, idle = max(n, len(workers)), sum(t.startswith("ray::IDLE") for t in workers)
    if n and idle == len(workers):
        t_idle = time.time() - t2
        break
    if not n and time.time() - t2 > 3:  # nothing pre-started
        break
    time.sleep(0.05)
t3 = time.time()
ray.shutdown()
print(json.dumps({"import_s": t1 - t0, "init_s": t2 - t1, "workers": n, "workers_idle_s": t_idle,
                  "shutdown_s": time.time() - t3}))
"""


def timed(code: str, env: dict[str, str] | None = None) -> tuple[float, str]:
    t0 = time.time()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                         env={**os.environ, "RAY_ADDRESS": "", **(env or {})})
    if out.returncode:
        raise SystemExit(f"{code[:60]!r} failed: {out.stderr[-1500:]}")
    return time.time() - t0, out.stdout


def imports(repeats: int) -> list[str]:
    """Each import timed inside a fresh process, and that process's wall time (start and exit included)."""
    rows = [("nothing (`python -c pass`)", "pass"),
            ("the command's (`import acoustic_env.cli`)", "import acoustic_env.cli"),
            ("a feature actor's (`import ray, acoustic_env.audio.stages`)", "import ray, acoustic_env.audio.stages")]
    lines = ["| imports, a fresh process each time | import s (median) | process wall s (median) |",
             "|---|---:|---:|"]
    for label, stmt in rows:
        runs = [timed(f"import time\nt = time.perf_counter()\n{stmt}\nprint(time.perf_counter() - t)")
                for _ in range(repeats)]
        lines.append(f"| {label} | {statistics.median(float(out) for _, out in runs):.2f} | "
                     f"{statistics.median(wall for wall, _ in runs):.2f} |")
    return lines


def ray_alone(variants: list[Variant], repeats: int) -> list[str]:
    runs: dict[str, list[dict]] = {v.name: [] for v in variants}
    for _ in range(repeats):
        for v in variants:
            wall, out = timed(RAY_ALONE, v.env)
            runs[v.name].append({**json.loads(out), "wall_s": wall})
    lines = [("| variant | `import ray` s | `ray.init` s | workers pre-started | all idle after init, s | "
             "`ray.shutdown` s | process wall s |"), "|---|---:|---:|---:|---:|---:|---:|"]
    for v in variants:
        m = {k: statistics.median(r[k] for r in runs[v.name]) for k in runs[v.name][0]}
        lines.append(f"| {v.name} | {m['import_s']:.2f} | {m['init_s']:.2f} | {m['workers']:.0f} | "
                     f"{m['workers_idle_s']:.2f} | {m['shutdown_s']:.2f} | {m['wall_s']:.2f} |")
    return lines


# --- 3. the extract's timeline ---

def _watch(proc: subprocess.Popen, t0: float, output: Path, every: float) -> tuple[dict[int, dict], float | None]:
    """Sample the command's processes (``proc`` and its descendants: not another job's on a shared machine) until
    ``proc`` ends; also when the run record first appears."""
    procs: dict[int, dict] = {}
    t_record = None
    while proc.poll() is None:
        now = time.time() - t0
        try:
            tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
        except psutil.Error:
            tree = []
        for q in tree:
            try:
                q.info = q.as_dict(["pid", "cmdline", "name", "cpu_times", "create_time"])
                if q.info["create_time"] < t0 - 0.5:
                    continue
                full = " ".join(q.info["cmdline"] or [q.info["name"] or ""]).strip()
                title = full[:160]
                ct = q.info["cpu_times"]
                p = procs.setdefault(q.info["pid"], {"start": q.info["create_time"] - t0, "titles": [],
                                                     "role": role(full)})  # before the cut: a long path hides it
                if not p["titles"] or p["titles"][-1][1] != title:
                    p["titles"].append((now, title, ct.user + ct.system))
                p["cpu"], p["last"] = ct.user + ct.system, now
            except (psutil.Error, TypeError):
                pass
        if t_record is None and glob.glob(str(output / "runs" / "*.json")):
            t_record = time.time() - t0
        time.sleep(every)
    return procs, t_record


def sample(cmd: list[str], env: dict[str, str], output: Path, every: float) -> dict:
    """Run ``cmd``; return its processes' histories (start, titles with times, CPU), parts and record."""
    with tempfile.TemporaryFile("w+") as err:  # not a pipe: nobody reads it while the command runs
        t0 = time.time()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err, cwd=output.parent)
        procs, t_record = _watch(proc, t0, output, every)
        t_exit = time.time() - t0
        err.seek(0)
        if proc.returncode:
            raise SystemExit(f"extract failed ({proc.returncode}): {err.read()[-2000:]}")
    parts = sorted(os.path.getmtime(f) - t0 for f in glob.glob(str(output / "features" / "*.parquet")))
    record_path = next((output / "runs").glob("*.json"))
    record = json.loads(record_path.read_text())
    return {"exit": t_exit, "t_record_first": t_record, "t_record_last": record_path.stat().st_mtime - t0,
            "parts": parts, "record": {k: record.get(k) for k in ("timing_s", "resources", "counts", "cpu_s", "startup")},
            "procs": procs}


def _first(procs: list[dict], pred) -> list[tuple[float, float]]:
    """Per process, (time, CPU s) of its first title that satisfies ``pred``; sorted by time."""
    out = []
    for p in procs:
        hit = next(((t, c) for t, title, c in p["titles"] if pred(title)), None)
        if hit:
            out.append(hit)
    return sorted(out)


def metrics(run: dict) -> dict[str, float]:
    """The timeline's landmarks, seconds from launch."""
    procs = list(run["procs"].values())
    by = {r: [p for p in procs if p["role"] == r] for r in {p["role"] for p in procs}}
    workers = by.get("worker", [])
    timing = run["record"]["timing_s"] or {}
    gcs = min((p["start"] for p in by.get("gcs", [])), default=float("nan"))
    ctor = _first(workers, lambda t: ACTOR in t)
    busy = _first(workers, lambda t: ACTOR in t and (m := METHOD.search(t)) is not None and m.group(1) != "__init__")
    meta = _first(workers, lambda t: METADATA_TASK in t)
    actor_starts = sorted(p["start"] for p in workers if any(ACTOR in title for _, title, _ in p["titles"]))
    idle = _first(workers, lambda t: t.startswith("ray::IDLE"))
    parts, nan = run["parts"], float("nan")
    n = (run["record"]["counts"] or {}).get("processed", 0)
    cpu = {r: sum(p.get("cpu", 0.0) for p in ps) for r, ps in by.items()}
    return {
        "record": run["t_record_first"] or nan,
        "ray_init_begin": gcs,
        "ray_init_end": gcs + timing.get("ray_start", nan),
        "ray_init_s": timing.get("ray_start", nan),
        "workers": len(workers),
        "workers_first_start": min((p["start"] for p in workers), default=nan),
        "workers_idle_last": idle[-1][0] if idle else nan,
        "actors": len(ctor),
        "actor_proc_first": actor_starts[0] if actor_starts else nan,
        "actor_proc_last": actor_starts[-1] if actor_starts else nan,
        "metadata_first": meta[0][0] if meta else nan,
        "metadata_last": meta[-1][0] if meta else nan,
        "ctor_first": ctor[0][0] if ctor else nan,
        "ctor_last": ctor[-1][0] if ctor else nan,
        "busy_first": busy[0][0] if busy else nan,
        "busy_last": busy[-1][0] if busy else nan,
        "actor_cpu_before_busy": statistics.median(c for _, c in busy) if busy else nan,
        "first_part": parts[0] if parts else nan,
        "last_part": parts[-1] if parts else nan,
        "record_last": run["t_record_last"],
        "exit": run["exit"],
        "steady_clips_s": (n * (len(parts) - 1) / len(parts)) / (parts[-1] - parts[0]) if len(parts) > 1 else nan,
        **{f"cpu_{r}": c for r, c in cpu.items()},
        "cpu_all": sum(cpu.values()),
    }


def timeline(run: dict) -> list[str]:
    """One run's landmarks as a list: what happened when."""
    m = metrics(run)
    procs = list(run["procs"].values())
    sys_starts = sorted((p["start"], p["role"]) for p in procs if p["role"] not in ("worker", "other"))
    t = run["record"]["timing_s"] or {}
    ev = [(m["record"], "run record first written (Python start, imports, config, preflight done)"),
          *[(s, f"{r} process started") for s, r in sys_starts],
          (m["ray_init_end"], f"`ray.init` returned ({m['ray_init_s']:.1f} s; run record `ray_start`)"),
          (m["workers_first_start"], "first worker process started"),
          (m["workers_idle_last"], f"last worker idle (`ray::IDLE`; {m['workers']} worker processes in all)"),
          (m["metadata_first"], "first `from_arrow_refs` metadata task seen on a worker"),
          (m["metadata_last"], "last `from_arrow_refs` metadata task seen"),
          (m["actor_proc_first"], "first process that will hold an actor started"),
          (m["actor_proc_last"], "last process that will hold an actor started"),
          (m["ctor_first"], "first actor process takes its actor (`ray::MapWorker(...)`)"),
          (m["ctor_last"], f"last actor process takes its actor ({m['actors']} actors)"),
          (m["busy_first"], "first actor working on a block (`.submit`)"),
          (m["busy_last"], (f"last actor working on a block (median CPU s per actor by then: "
                           f"{m['actor_cpu_before_busy']:.1f})")),
          (m["first_part"], f"first part written (run record: stream began {t.get('first_part', 0):.1f} s before)"),
          (m["last_part"], f"last part written ({len(run['parts'])} parts)"),
          (m["record_last"], "run record final"),
          (m["exit"], "exit")]
    seen = sorted((s, e) for s, e in ev if not math.isnan(s))  # a landmark the run did not reach has none
    return ["| s from launch | event |", "|---:|---|"] + [f"| {s:.2f} | {e} |" for s, e in seen]


def extract_runs(workdir: Path, manifest: Path, variants: list[Variant], repeats: int, every: float,
                 extra: list[str]) -> dict[str, list[dict]]:
    runs: dict[str, list[dict]] = {v.name: [] for v in variants}
    for r in range(repeats):
        for v in variants:
            output = workdir / f"out-{v.name}-{r}"
            cmd = [*CLI, "--manifest", str(manifest), "--output", str(output), "--no-progress",
                   "--write-batch-size", str(WRITE_BATCH), *extra, *v.args]
            runs[v.name].append(sample(cmd, {**os.environ, "RAY_ADDRESS": "", **v.env}, output, every))
            m = metrics(runs[v.name][-1])
            print(f"  repeat {r} {v.name}: exit {m['exit']:.1f} s, first part {m['first_part']:.1f} s, "
                  f"last part {m['last_part']:.1f} s", file=sys.stderr)
    return runs


COLUMNS = (("exit", "wall s"), ("record", "record written"), ("ray_init_begin", "ray.init begins"),
           ("ray_init_s", "ray.init s"), ("ctor_last", "last actor ctor"), ("busy_first", "first actor busy"),
           ("busy_last", "last actor busy"), ("first_part", "first part"), ("last_part", "last part"),
           ("steady_clips_s", "clips/s first→last part"), ("cpu_all", "CPU s, every process"))


def summary(runs: dict[str, list[dict]]) -> list[str]:
    lines = ["| variant | " + " | ".join(label for _, label in COLUMNS) + " | exit − last part s |",
             "|---|" + "---:|" * (len(COLUMNS) + 1)]
    for name, rs in runs.items():
        ms = [metrics(r) for r in rs]
        med = {k: statistics.median(m[k] for m in ms) for k, _ in COLUMNS}
        tail = statistics.median(m["exit"] - m["last_part"] for m in ms)
        lines.append(f"| {name} | " + " | ".join(f"{med[k]:.1f}" if k != "steady_clips_s" else f"{med[k]:.2f}"
                                                 for k, _ in COLUMNS) + f" | {tail:.1f} |")
    return lines + actor_startup(runs)


def actor_startup(runs: dict[str, list[dict]]) -> list[str]:
    """The run record's ``startup`` (a variant whose code writes one), medians per stage: when the stage's
    first actor began, was ready, first became busy, and its load and warm-up seconds; from the run's start,
    which is ``record written`` after launch."""
    lines = []
    for name, rs in runs.items():
        stages: dict[str, list[dict]] = {}
        for r in rs:
            for stage, got in (r["record"].get("startup") or {}).items():
                stages.setdefault(stage, []).append(got["actors"][0])
        lines += [f"| {name} | {stage} | " + " | ".join(
            f"{statistics.median(a[k] for a in actors):.1f}"
            for k in ("started_s", "load_s", "warm_s", "ready_s", "first_batch_s", "first_batch_took_s")) + " |"
            for stage, actors in stages.items()]
    if not lines:
        return []
    return ["", ("The run record's `startup`, each stage's first actor (s from the run's start; medians): constructor "
                 "began, load, warm-up, ready, first batch began, first batch took:"), "",
            "| variant | stage | started | load s | warm s | ready | first batch | first batch s |",
            "|---|---|---:|---:|---:|---:|---:|---:|", *lines]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", type=int, default=1024)
    ap.add_argument("--source-clips", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--variant", action="append", default=[],
                    help="NAME [ENV=VALUE ...] [extract options]; repeatable (default: one, 'default')")
    ap.add_argument("--extract-args", default="", help="options for every extract run")
    ap.add_argument("--every", type=float, default=0.1, help="seconds between two samples")
    ap.add_argument("--skip", default="", help="comma list: imports,ray,extract")
    ap.add_argument("--json", help="write every run's raw samples here")
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    variants = [Variant.parse(v) for v in args.variant] or [Variant("default")]
    load = os.getloadavg()[0]
    body: list[str] = []
    raw: dict = {}
    if "imports" not in skip:
        body += ["Imports, each in a fresh process:", "", *imports(args.repeats), ""]
    if "ray" not in skip:
        body += [("Ray alone (`start_ray()`, a local instance as the jobs start one; "
                 "medians):"), "", *ray_alone(variants, args.repeats), ""]
    if "extract" not in skip:
        with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
            workdir = Path(tmp)
            manifest = make_clips(workdir, args.clips, args.source_clips)
            raw = extract_runs(workdir, manifest, variants, args.repeats, args.every, shlex.split(args.extract_args))
        first = next(iter(raw))
        body += [(f"`acoustic-env extract` on {args.clips} clips of 10 s ({args.source_clips} demo clips under "
                 f"distinct ids), `--write-batch-size {WRITE_BATCH}`, CPU features only unless the variant says "
                 f"otherwise; seconds from launch, medians of {args.repeats} runs per variant, variants interleaved:"),
                 "", *summary(raw), "", f"One run ({first}, repeat 0), landmark by landmark:", "",
                 *timeline(raw[first][0]), ""]
        cpu = {k: round(v, 1) for k, v in metrics(raw[first][0]).items() if k.startswith("cpu_")}
        body += [f"CPU seconds by process role in that run: {cpu}.", ""]
    if args.json:
        Path(args.json).write_text(json.dumps(raw))
    import ray

    head = ["## Extract start-up, process by process (startup.py)", "",
            (f"`python benchmarks/startup.py {shlex.join(sys.argv[1:])}`, "
            f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC  "),
            (f"{describe()}, {platform.platform()}, Python {platform.python_version()}, ray {ray.__version__}; "
            f"load average {load:.1f} at the start ({os.getloadavg()[0]:.1f} at the end)."), ""]
    print("\n".join(head + body).rstrip())


if __name__ == "__main__":
    main()
