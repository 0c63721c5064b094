"""Soak: thousands of short clips, good and every bad kind, through ``acoustic-env extract`` with
one SIGKILL of the driver and one of a Ray worker, then verified clip by clip.

    python benchmarks/soak.py --clips 10000 --workdir /tmp/soak        # the recorded run
    python benchmarks/soak.py --clips 200 --write-batch-size 8        # the smoke size (tests/test_soak.py)

What it does:

1. Writes ``--clips`` rows: short good clips (0.6–1 s tone + noise, so a 10,000-clip run fits
   in minutes on two cores) and, for a ``--bad-share`` of them, every bad kind the pipeline must
   turn into one error row: empty, not audio, truncated WAV, NaN samples, too short, missing,
   duplicate ids, outside the allowed roots, a FIFO, endless character devices (``/dev/zero``,
   ``/dev/urandom``, allowed explicitly so that the reader, not the root check, meets them), and
   two multi-hour silent FLACs (valid: trimmed to ``max_duration_s``, flagged silent).
2. Run 1: the CLI, in its own session; once ``--kill-driver-at`` of the good clips are in
   features/, ``SIGKILL`` of the CLI process alone (not its process group: the Ray instance it
   started must notice and go by itself). The script waits until features/ stops changing and
   records how long the orphaned Ray processes lived.
3. Run 2 (the resume): once ``--kill-worker-at`` of the remaining work is done, ``SIGKILL`` of one
   Ray worker (a feature actor if one is found). The run must still finish on its own.
4. Verification: every manifest row exactly once across features/ and errors/, no id in both,
   each bad clip with its expected error type, each good clip in features/, and no ``.tmp-*``
   temporary left (a killed writer's are removed by the resume's planning).

The driver's RSS is sampled every ``--sample-s`` over both runs. Everything is printed as
Markdown for benchmarks/RESULTS.md and, with ``--json``, written as data.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import shlex
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import psutil
import pyarrow.parquet as pq
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe  # noqa: E402 - benchmarks/machine.py

SR = 16000
#: bad kind -> the error type it must end as ("ok": valid input that must reach features/)
BAD_KINDS: dict[str, str] = {
    "empty": "empty_file", "not_audio": "not_audio", "truncated": "truncated", "nan": "nan_samples",
    "too_short": "too_short", "missing": "missing_file", "duplicate": "duplicate_id",
    "outside_roots": "outside_allowed_roots", "fifo": "not_audio", "device": "not_audio",
    "huge_silent_flac": "ok",
}
#: kinds that are few by nature (devices exist once; a 2-hour FLAC costs 60 s of features)
FIXED_COUNTS = {"device": 2, "huge_silent_flac": 2}


@dataclass
class Dataset:
    manifest: Path
    audio: Path
    allowed_roots: list[str]
    expected: dict[str, str]  # clip_id as it must appear in the output -> "ok" or the error type
    kinds: dict[str, str]  # clip_id -> kind ("good" or a bad kind)


@dataclass
class Run:
    rc: int | None
    wall_s: float
    rss_mb: list[float] = field(default_factory=list)  # the driver's, every sample_s
    killed: str = ""  # what was killed in this run
    at_kill: list[str] = field(default_factory=list)  # after a driver kill: its session's processes at the kill
    orphans_lived_s: float | None = None  # after a driver kill: until no process of its session was left
    orphans_left: list[str] = field(default_factory=list)  # still alive after 3 minutes (then killed)
    orphans_after_5s: list[str] = field(default_factory=list)  # which processes outlived the driver
    stderr_tail: str = ""


# --- the clips ---

def _tone(rng: np.random.Generator, seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    f = rng.uniform(200, 4000)
    x = 0.3 * np.sin(2 * np.pi * f * t) * (1 + 0.5 * np.sin(2 * np.pi * rng.uniform(1, 8) * t))
    return (x + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


def _truncated_wav(path: Path, rng: np.random.Generator) -> None:
    sf.write(path, _tone(rng, 0.8), SR, subtype="PCM_16")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # the header still claims every frame


def _silent_flac(path: Path, hours: float) -> None:
    """A FLAC claiming ``hours`` of digital silence: a few hundred KB on disk, block-wise written."""
    block = np.zeros(SR * 60, dtype=np.int16)
    with sf.SoundFile(path, "w", samplerate=SR, channels=1, format="FLAC", subtype="PCM_16") as fh:
        for _ in range(int(hours * 60)):
            fh.write(block)


def make_dataset(root: Path, n_clips: int, bad_share: float = 0.1, seed: int = 0) -> Dataset:
    """``n_clips`` manifest rows under ``root``: good clips and ``bad_share`` of every bad kind."""
    rng = np.random.default_rng(seed)
    audio, private = root / "audio", root / "private"
    audio.mkdir(parents=True, exist_ok=True)
    private.mkdir(exist_ok=True)
    per_kind = max(1, round(n_clips * bad_share / len(BAD_KINDS)))
    plan = [k for k in BAD_KINDS for _ in range(FIXED_COUNTS.get(k, per_kind))]
    if len(plan) >= n_clips:
        raise SystemExit(f"--clips {n_clips}: too few for one of each of the {len(plan)} bad clips")
    plan += ["good"] * (n_clips - len(plan))
    rng.shuffle(plan)
    rows, expected, kinds, first_ids = [], {}, {}, []
    devices = iter(("/dev/zero", "/dev/urandom"))
    for i, kind in enumerate(plan):
        cid = f"c{i:06d}"
        path = audio / f"{cid}.wav"
        if kind == "good":
            sf.write(path, _tone(rng, rng.uniform(0.6, 1.0)), SR, subtype="PCM_16")
            first_ids.append(cid)
        elif kind == "empty":
            path.touch()
        elif kind == "not_audio":
            # an error page saved under an audio name (random bytes could start with an MPEG frame
            # sync, 0xFFE, and then rightly count as a corrupt MP3 rather than not audio)
            path.write_bytes(b"<!DOCTYPE html><title>404 Not Found</title>" + rng.bytes(2048))
        elif kind == "truncated":
            _truncated_wav(path, rng)
        elif kind == "nan":
            x = _tone(rng, 0.8)
            x[100:200] = np.nan
            sf.write(path, x, SR, subtype="FLOAT")
        elif kind == "too_short":
            sf.write(path, _tone(rng, 0.2), SR, subtype="PCM_16")
        elif kind == "missing":
            pass  # listed, never written
        elif kind == "outside_roots":
            path = private / f"{cid}.wav"
            sf.write(path, _tone(rng, 0.8), SR, subtype="PCM_16")
        elif kind == "fifo":
            os.mkfifo(path)
        elif kind == "device":
            path = Path(next(devices))
        elif kind == "huge_silent_flac":
            path = audio / f"{cid}.flac"
            _silent_flac(path, hours=2.0)
        if kind == "duplicate":
            # a valid file whose row repeats an earlier row's clip_id: rejected, never merged
            sf.write(path, _tone(rng, 0.8), SR, subtype="PCM_16")
            if not first_ids:  # no earlier good row yet: this one becomes the original
                first_ids.append(cid)
                rows.append((cid, str(path)))
                expected[cid], kinds[cid] = "ok", "good"
                continue
            twin = first_ids[int(rng.integers(len(first_ids)))]
            rows.append((twin, str(path)))
            dup_id = f"{twin}#row{len(rows)}"  # the manifest's rule: errors/ holds one row per id
            expected[dup_id], kinds[dup_id] = "duplicate_id", kind
            continue
        rows.append((cid, str(path)))
        expected[cid], kinds[cid] = BAD_KINDS.get(kind, "ok"), kind
    manifest = root / "clips.csv"
    with open(manifest, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["clip_id", "uri", "labels"])
        w.writerows((cid, uri, "/m/0") for cid, uri in rows)
    return Dataset(manifest, audio, [str(audio), "/dev/zero", "/dev/urandom"], expected, kinds)


# --- running and killing ---

class FeatureCounter:
    """Rows in features/ so far (each part's row count read once from its footer)."""

    def __init__(self, out: Path):
        self.dir = out / "features"
        self.rows: dict[str, int] = {}

    def __call__(self) -> int:
        for p in self.dir.glob("part-*.parquet") if self.dir.is_dir() else ():
            if p.name not in self.rows:
                try:
                    self.rows[p.name] = pq.read_metadata(p).num_rows
                except (OSError, ValueError):  # renamed or quarantined under our feet
                    continue
        return sum(self.rows.values())


def wait_until_quiet(out: Path, quiet_s: float = 5.0, limit_s: float = 300.0) -> None:
    """Return once features/ and errors/ have not changed for ``quiet_s`` (a killed driver's
    workers may still finish a part or two)."""
    def state() -> list[str]:
        return sorted(p.name for d in ("features", "errors") if (out / d).is_dir() for p in (out / d).iterdir())

    before, since, end = state(), time.monotonic(), time.monotonic() + limit_s
    while time.monotonic() - since < quiet_s and time.monotonic() < end:
        time.sleep(0.5)
        if (now := state()) != before:
            before, since = now, time.monotonic()


def _session_processes(sid: int) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter():
        try:
            if os.getsid(p.pid) == sid:
                found.append(p)
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
    return found


def _title(p: psutil.Process) -> str:
    """A process's command up to its first flag, with paths cut to their last part: a CI checkout's long
    path would otherwise push the program's name (``gcs_server``, ``raylet``) past the cut."""
    try:
        words = p.cmdline() or [p.name()]
    except psutil.Error:
        return "?"
    line = " ".join(os.path.basename(w) if w.startswith("/") else w for w in words)
    return line.split(" --")[0][:80].strip()


def _ray_worker(sid: int) -> psutil.Process | None:
    """A Ray worker of the run's session, a feature actor if there is one."""
    workers = []
    for p in _session_processes(sid):
        try:
            title = " ".join(p.cmdline()) or p.name()
        except psutil.Error:
            continue
        if title.startswith("ray::") and "IDLE" not in title:
            workers.append((("CpuFeature" not in title), title, p))
    return min(workers, key=lambda w: (w[0], w[1]))[2] if workers else None


def run_extract(cmd: list[str], out: Path, total_todo: int, kill: str = "", kill_at: float = 0.5,
                sample_s: float = 1.0, timeout_s: float = 3600.0) -> Run:
    """Run the CLI; ``kill``: "driver" or "worker" once ``kill_at`` of ``total_todo`` rows are in
    features/ (counted from the start of this run)."""
    count = FeatureCounter(out)
    start_rows = count()
    t0 = time.monotonic()
    log = out.parent / f"extract-{time.time_ns()}.stderr"  # a file, not a pipe: a full pipe would stall the CLI
    with open(log, "w") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
    driver = psutil.Process(proc.pid)
    run = Run(rc=None, wall_s=0.0)
    next_sample, next_report = t0, t0 + 30
    while proc.poll() is None:
        now = time.monotonic()
        if now > t0 + timeout_s:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise RuntimeError(f"extract did not finish within {timeout_s} s: {' '.join(cmd)}")
        if now >= next_sample:
            try:
                run.rss_mb.append(driver.memory_info().rss / 2**20)
            except psutil.Error:
                pass
            next_sample += sample_s
        if now >= next_report:  # a long soak shows where it is (stderr; stdout is the report)
            print(f"[soak] {now - t0:5.0f} s: {count()} rows in features/, driver RSS "
                  f"{run.rss_mb[-1] if run.rss_mb else 0:.0f} MB", file=sys.stderr, flush=True)
            next_report += 30
        if kill and not run.killed and count() - start_rows >= kill_at * total_todo:
            if kill == "driver":
                run.at_kill = sorted({_title(p) for p in _session_processes(proc.pid)})
                proc.send_signal(signal.SIGKILL)  # the CLI process alone
                run.killed = f"driver (pid {proc.pid}) at {count()} rows"
            else:
                worker = _ray_worker(proc.pid)
                if worker is not None:
                    title = " ".join(worker.cmdline())[:60]
                    worker.send_signal(signal.SIGKILL)
                    run.killed = f"worker {title!r} (pid {worker.pid}) at {count()} rows"
        time.sleep(0.2)
    run.rc = proc.returncode
    run.wall_s = time.monotonic() - t0
    run.stderr_tail = log.read_text(errors="replace")[-2000:]
    print(f"[soak] run ended: exit {run.rc}, {run.wall_s:.0f} s, {count()} rows in features/, {run.killed}",
          file=sys.stderr, flush=True)
    if kill == "driver" and run.killed:
        t_kill = time.monotonic()
        while _session_processes(proc.pid) and time.monotonic() - t_kill < 180:
            time.sleep(0.5)
            if not run.orphans_after_5s and time.monotonic() - t_kill >= 5:
                run.orphans_after_5s = sorted({_title(p) for p in _session_processes(proc.pid)})
        run.orphans_lived_s = time.monotonic() - t_kill
        for p in _session_processes(proc.pid):  # still there after 3 minutes: noted, then ended
            run.orphans_left.append(p.name())
            p.kill()
        if run.orphans_left:  # a process just killed may have had a part half-written; with none left, none writes
            wait_until_quiet(out)
    return run


# --- verification ---

def verify(out: Path, data: Dataset) -> dict:
    """Every expected id exactly once across features/ and errors/, with its expected type."""
    feats = pq.read_table(out / "features", columns=["clip_id", "is_silent", "duration_s"]).to_pylist()
    errs = pq.read_table(out / "errors", columns=["clip_id", "error_type"]).to_pylist()
    feat_ids = [r["clip_id"] for r in feats]
    err_ids = [r["clip_id"] for r in errs]
    problems: list[str] = []
    for name, ids in (("features/", feat_ids), ("errors/", err_ids)):
        if len(ids) != len(set(ids)):
            problems.append(f"{len(ids) - len(set(ids))} ids twice in {name}")
    both = set(feat_ids) & set(err_ids)
    if both:
        problems.append(f"{len(both)} ids in both features/ and errors/, e.g. {sorted(both)[:3]}")
    got = {r["clip_id"]: "ok" for r in feats} | {r["clip_id"]: r["error_type"] for r in errs}
    lost = sorted(set(data.expected) - set(got))
    extra = sorted(set(got) - set(data.expected))
    if lost:
        problems.append(f"{len(lost)} clips lost, e.g. {lost[:5]}")
    if extra:
        problems.append(f"{len(extra)} unexpected ids, e.g. {extra[:5]}")
    by_kind: dict[str, dict[str, int]] = {}
    for cid, want in data.expected.items():
        have = got.get(cid, "lost")
        kind = data.kinds[cid]
        by_kind.setdefault(kind, {}).setdefault(have, 0)
        by_kind[kind][have] += 1
        if have != want and have != "lost":
            problems.append(f"{cid} ({kind}): {have}, expected {want}")
    huge = [r for r in feats if data.kinds.get(r["clip_id"]) == "huge_silent_flac"]
    if not all(r["is_silent"] for r in huge):
        problems.append("a silent FLAC was not flagged is_silent")
    # a killed writer's half-written temporaries: the resume's planning must have removed them
    temporaries = sorted(p.name for d in ("features", "errors") for p in (out / d).glob(".tmp-*"))
    if temporaries:
        problems.append(f"{len(temporaries)} temporaries left, e.g. {temporaries[:3]}")
    return {"features": len(feat_ids), "errors": len(err_ids), "expected": len(data.expected),
            "by_kind": by_kind, "problems": problems[:20], "n_problems": len(problems), "temporaries_left": temporaries,
            "huge_flac_duration_s": sorted(r["duration_s"] for r in huge)}


def rss_summary(samples: list[float]) -> dict[str, float]:
    """Driver RSS over a run: median of its first and last quarters after start-up, and the max."""
    if len(samples) < 8:
        return {"n": len(samples), "max_mb": max(samples, default=0.0)}
    body = samples[len(samples) // 8:]  # start-up (imports, Ray) is not the steady state
    q = max(1, len(body) // 4)
    first, last = statistics.median(body[:q]), statistics.median(body[-q:])
    return {"n": len(samples), "first_quarter_mb": first, "last_quarter_mb": last, "max_mb": max(samples),
            "growth_mb": last - first}


# --- the whole soak ---

def soak(n_clips: int, workdir: Path, batch_size: int = 4, write_batch_size: int = 64, bad_share: float = 0.1,
         kill_driver_at: float = 0.4, kill_worker_at: float = 0.3, worker_kill: bool = True,
         extra_args: list[str] | None = None, timeout_s: float = 3600.0, sample_s: float = 1.0) -> dict:
    t_gen = time.monotonic()
    data = make_dataset(workdir / "data", n_clips, bad_share)
    gen_s = time.monotonic() - t_gen
    out = workdir / "out"
    cmd = [sys.executable, "-m", "acoustic_env.cli", "extract", "--manifest", str(data.manifest),
           "--output", str(out), "--allowed-roots", ",".join(data.allowed_roots), "--no-progress",
           "--batch-size", str(batch_size), "--write-batch-size", str(write_batch_size), *(extra_args or [])]
    n_ok = sum(v == "ok" for v in data.expected.values())
    first = run_extract(cmd, out, n_ok, "driver", kill_driver_at, sample_s, timeout_s)
    done_after_kill = FeatureCounter(out)()
    runs = [first]
    # the resume; should it fail (the worker kill broke it, or Ray could not start on a loaded
    # machine) it is run again, recorded, and the worker kill goes to the next try if it never landed
    while len(runs) < 4 and (len(runs) == 1 or runs[-1].rc != 0):
        pending = worker_kill and not any(r.killed.startswith("worker") for r in runs)
        todo = max(1, n_ok - FeatureCounter(out)())
        runs.append(run_extract(cmd, out, todo, "worker" if pending else "", kill_worker_at, sample_s, timeout_s))
    result = verify(out, data)
    records = sorted((out / "runs").glob("*.json"))
    last = json.loads(records[-1].read_text()) if records else {}
    return {"command": cmd, "clips": n_clips, "generate_s": gen_s, "done_when_driver_killed": done_after_kill,
            "runs": [asdict(r) | {"rss": rss_summary(r.rss_mb)} for r in runs], "verify": result,
            "last_record_counts": last.get("counts"), "last_record_status": last.get("status")}


def markdown(res: dict, argv: list[str]) -> str:
    v = res["verify"]
    lines = [f"`python benchmarks/soak.py {shlex.join(argv)}` — {describe()}, "
             f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC, load average at the end "
             f"{os.getloadavg()[0]:.1f} (shared machine)", "",
             f"{res['clips']} manifest rows generated in {res['generate_s']:.0f} s; "
             f"{res['done_when_driver_killed']} clips were in features/ after the driver kill.", "",
             "| run | killed | exit | wall s | driver RSS MB: first quarter → last quarter (max) | orphans lived s |",
             "|---|---|---:|---:|---|---:|"]
    for i, r in enumerate(res["runs"], 1):
        rss = r["rss"]
        span = (f"{rss['first_quarter_mb']:.0f} → {rss['last_quarter_mb']:.0f} ({rss['max_mb']:.0f})"
                if "first_quarter_mb" in rss else f"max {rss['max_mb']:.0f}")
        orphans = "" if r["orphans_lived_s"] is None else f"{r['orphans_lived_s']:.1f}"
        lines.append(f"| {i} | {r['killed'] or '—'} | {r['rc']} | {r['wall_s']:.0f} | {span} | {orphans} |")
    for r in res["runs"]:
        if r["orphans_after_5s"]:
            lines += ["", f"Alive 5 s after the driver kill: {'; '.join(r['orphans_after_5s'])}"]
    lines += ["", f"features/ {v['features']} + errors/ {v['errors']} = {v['features'] + v['errors']} rows for "
              f"{v['expected']} expected ids; problems: {v['n_problems']}", "",
              "| kind | outcome (count) |", "|---|---|"]
    for kind, outcomes in sorted(v["by_kind"].items()):
        lines.append(f"| {kind} | {', '.join(f'{k} {n}' for k, n in sorted(outcomes.items()))} |")
    if v["problems"]:
        lines += ["", "Problems:", *[f"- {p}" for p in v["problems"]]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", type=int, default=10_000, help="manifest rows (good and bad)")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/acoustic-env-soak"))
    ap.add_argument("--bad-share", type=float, default=0.1, help="share of bad rows, split over the bad kinds")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--write-batch-size", type=int, default=64)
    ap.add_argument("--kill-driver-at", type=float, default=0.4, help="share of good clips done in run 1")
    ap.add_argument("--kill-worker-at", type=float, default=0.3, help="share of the rest done in run 2")
    ap.add_argument("--no-worker-kill", action="store_true")
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds per run before it counts as hung")
    ap.add_argument("--json", type=Path, help="also write the full result here")
    ap.add_argument("extract_args", nargs="*", help="more `acoustic-env extract` flags, after --")
    args = ap.parse_args(argv)
    if args.workdir.exists() and any(args.workdir.iterdir()):
        raise SystemExit(f"--workdir {args.workdir}: must be empty or absent")
    res = soak(args.clips, args.workdir, args.batch_size, args.write_batch_size, args.bad_share,
               args.kill_driver_at, args.kill_worker_at, not args.no_worker_kill, args.extract_args, args.timeout)
    print(markdown(res, argv))
    if args.json:
        args.json.write_text(json.dumps(res, indent=2, default=str))
    return 0 if not res["verify"]["n_problems"] else 1


if __name__ == "__main__":
    sys.exit(main())
