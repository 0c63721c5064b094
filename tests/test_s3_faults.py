"""Object-store faults on loopback: a fault-injecting proxy (tests/s3_fault_proxy.py) in front of
moto's S3 server, and real ``acoustic-env extract`` runs pointed at it through AWS_ENDPOINT_URL.

Transient faults (500, 503, 503 SlowDown, resets mid-upload, a reset after the store took the
write, slow and stalled answers) must be retried with backoff and leave every clip exactly
once in features/ or errors/; persistent faults must end the job in bounded time with one clear
line (output) or ``read_failed`` rows (inputs). The retry settings under test are
``acoustic_env.storage.s3_retries`` (README, "Object storage").

Each extract runs as a CLI process with its own local Ray (``--in-process-max 0``: these lists are
small enough to run in the command's process otherwise), so that its workers, like a cluster's, take
the endpoint from their environment; the persistent output fault runs in-process too. Every run has a
timeout: a hang fails.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import s3fs
from s3_fault_proxy import Fault, FaultProxy

from acoustic_env.demo.synth import generate_demo
from acoustic_env.storage import S3_READ_ATTEMPTS, S3_WRITE_ATTEMPTS, filesystem, read_filesystem

RUN_TIMEOUT_S = 900  # a loaded 2-core machine starts Ray slowly; a hang still ends here
#: the whole-job tests of persistent faults set AWS_MAX_ATTEMPTS to this: a user's setting must bound the tries in
#: every process, and the backoff before giving up is shorter than with the defaults (which the one-object tests
#: below check: S3_READ_ATTEMPTS, S3_WRITE_ATTEMPTS)
JOB_ATTEMPTS = 2


@pytest.fixture
def proxy(s3_endpoint):
    with FaultProxy(s3_endpoint, lifetime_s=RUN_TIMEOUT_S + 120) as p:
        yield p


@pytest.fixture
def via_proxy(proxy, monkeypatch):
    """This process's S3 clients on the proxy. fsspec caches filesystems by their options, not by the
    environment: the cache is cleared on the way in (no client of the store itself) and out (no
    client of a stopped proxy for later tests)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
    s3fs.S3FileSystem.clear_instance_cache()
    yield proxy
    s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture
def direct():
    """The store itself (moto, not the proxy), to set up inputs and inspect outputs."""
    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    yield fs


def bucket(fs: s3fs.S3FileSystem, name: str) -> str:
    if not fs.exists(name):
        fs.mkdir(name)
    return name


def extract_cli(proxy: FaultProxy, tmp_path: Path, *args: str, env: dict[str, str] | None = None,
                in_process_max: int = 0) -> subprocess.CompletedProcess:
    """``acoustic-env extract`` against the proxy; on Ray unless ``in_process_max`` lets the clips run in its process."""
    run_env = {**os.environ, "AWS_ENDPOINT_URL": proxy.endpoint, **(env or {})}
    return subprocess.run([sys.executable, "-m", "acoustic_env.cli", "extract", "--no-progress",
                           "--in-process-max", str(in_process_max), *args],
                          env=run_env, cwd=tmp_path, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)


def outputs(fs: s3fs.S3FileSystem, prefix: str) -> tuple[list[str], dict[str, str]]:
    """(clip ids in features/, {clip id: error type} in errors/) under ``prefix``, read from the store."""
    fs.invalidate_cache()

    def rows(sub: str, columns: list[str]) -> list[dict]:
        return [r for p in fs.glob(f"{prefix}/{sub}/*.parquet")
                for r in pq.read_table(io.BytesIO(fs.cat_file(p)), columns=columns).to_pylist()]

    errors = rows("errors", ["clip_id", "error_type"])
    assert len(errors) == len({r["clip_id"] for r in errors}), "one errors/ row per clip"
    return [r["clip_id"] for r in rows("features", ["clip_id"])], {r["clip_id"]: r["error_type"] for r in errors}


def demo_on_s3(fs: s3fs.S3FileSystem, tmp_path: Path, name: str, n_clips: int = 10, n_broken: int = 2):
    demo = generate_demo(tmp_path / "demo", n_clips=n_clips, seed=21, duration_s=1.5, n_broken=n_broken)
    fs.put(str(demo.audio_dir) + "/", f"{bucket(fs, name)}/audio/", recursive=True)
    with open(demo.truth_csv) as fh:
        truth = {r["clip_id"]: r for r in csv.DictReader(fh)}
    return demo, truth


def truth_ids(demo) -> list[str]:
    with open(demo.truth_csv) as fh:
        return [r["clip_id"] for r in csv.DictReader(fh)]


def retried(proxy: FaultProxy, fault: Fault) -> bool:
    """Whether every request hit by ``fault`` was later sent again and answered 2xx (the retry worked)."""
    hits = [e for e in proxy.events if e.action == fault.action and Fault(fault.action, fault.method,
                                                                           fault.path).takes(e.method, e.path, set())]
    return bool(hits) and all(any(later.t > e.t and later.path.split("?")[0] == e.path.split("?")[0]
                                  and later.status is not None and later.status < 300 for later in proxy.events)
                              for e in hits)


# --- the retry settings themselves, on one object ---

@pytest.mark.slow  # backoff waits: 10-16 s on a loaded 2-core machine
def test_a_write_is_retried_with_growing_backoff_and_lands_once(via_proxy, direct):
    proxy = via_proxy
    name = bucket(direct, "fault-unit")
    proxy.set_schedule([Fault("503", "PUT", "/fault-unit/x", times=S3_WRITE_ATTEMPTS - 1)])
    fs, path = filesystem(f"s3://{name}/x")
    fs.pipe_file(path, b"payload")
    puts = [e for e in proxy.events if e.method == "PUT" and e.path == "/fault-unit/x"]
    assert [e.status for e in puts] == [503] * (S3_WRITE_ATTEMPTS - 1) + [200]
    gaps = [b.t - a.t for a, b in zip(puts, puts[1:])]
    # botocore standard mode: a random delay in [0, 2^(n-1)) s before try n+1; four tries
    # waiting under half a second in all would mean no backoff (chance ~1e-5 with it).
    assert sum(gaps) > 0.5, gaps
    assert direct.cat_file(path) == b"payload"


@pytest.mark.slow  # backoff waits: 10-16 s on a loaded 2-core machine
def test_persistent_faults_stop_after_the_configured_attempts(via_proxy, direct, monkeypatch):
    proxy = via_proxy
    name = bucket(direct, "fault-unit")
    direct.pipe_file(f"{name}/r", b"data")
    proxy.set_schedule([Fault("slowdown", path="/fault-unit/", times=-1)])
    fs, path = filesystem(f"s3://{name}/w")
    with pytest.raises(OSError, match="reduce your request rate"):
        fs.pipe_file(path, b"x")
    assert len(proxy.injected()) == S3_WRITE_ATTEMPTS  # s3fs's own loop no longer multiplies them
    proxy.events.clear()
    fs, path = read_filesystem(f"s3://{name}/r", timeout_s=5)
    with pytest.raises(OSError):
        fs.cat_file(path)
    assert len(proxy.injected()) == S3_READ_ATTEMPTS
    # the user's AWS_MAX_ATTEMPTS wins
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    proxy.events.clear()
    fs, path = filesystem(f"s3://{name}/w2")
    with pytest.raises(OSError):
        fs.pipe_file(path, b"x")
    assert len(proxy.injected()) == 2


# --- whole extract runs ---

@pytest.mark.slow
def test_transient_faults_on_inputs_and_output_lose_and_duplicate_nothing(proxy, direct, tmp_path):
    demo, truth = demo_on_s3(direct, tmp_path, "fault-in")
    bucket(direct, "fault-out")
    parts = r"/fault-out/run1/(features|errors)/"
    clips = r"/fault-in/audio/"
    schedule = [
        # the output: each of these hits a different Parquet part once; its retry must land it
        Fault("reset", "PUT", parts, fresh=True), Fault("500", "PUT", parts, fresh=True),
        Fault("503", "PUT", parts, fresh=True), Fault("slowdown", "PUT", parts, fresh=True),
        Fault("reset_after", "PUT", parts, fresh=True),  # the store has it; the client cannot know
        # the inputs: one fault on each of six different clips
        Fault("500", "*", clips, fresh=True), Fault("503", "*", clips, fresh=True),
        Fault("slowdown", "*", clips, fresh=True), Fault("reset", "*", clips, fresh=True),
        Fault("trickle", "GET", clips, seconds=2.0, fresh=True),  # slow, but within the read timeout
        Fault("stall", "GET", clips, seconds=9.0, fresh=True),  # past the 5-s read timeout: retried
    ]
    proxy.set_schedule(schedule)
    t0 = time.monotonic()
    out = extract_cli(proxy, tmp_path, "--manifest", str(demo.clips_csv), "--audio-root", "s3://fault-in/audio",
                      "--output", "s3://fault-out/run1", "--batch-size", "1", "--write-batch-size", "1",
                      "--decode-read-timeout-s", "5", "--signals", "raw")  # room for a loaded machine
    wall = time.monotonic() - t0
    assert out.returncode == 0, out.stderr[-3000:]
    unused = [f"{f.action} {f.path}" for f in schedule if f.used != f.times]
    assert not unused, f"faults never injected (the run did less I/O than planned): {unused}"
    assert all(retried(proxy, f) for f in schedule if f.action != "trickle"), proxy.injected()
    features, errors = outputs(direct, "fault-out/run1")
    good = {c for c, r in truth.items() if r["broken"] == "0"}
    assert len(features) == len(set(features)) and set(features) == good, (sorted(features), errors)
    assert set(errors) == set(truth) - good and "read_failed" not in errors.values()
    print(f"{len(proxy.injected())} faults injected, {len(proxy.events)} requests, {wall:.0f} s")


@pytest.mark.slow
def test_persistent_input_faults_become_read_failed_rows_in_bounded_time(proxy, direct, tmp_path):
    demo, truth = demo_on_s3(direct, tmp_path, "fault-in2", n_clips=6, n_broken=0)
    bucket(direct, "fault-out2")
    proxy.set_schedule([Fault("503", "*", r"/fault-in2/audio/", times=-1)])
    out = extract_cli(proxy, tmp_path, "--manifest", str(demo.clips_csv), "--audio-root", "s3://fault-in2/audio",
                      "--output", "s3://fault-out2/run1", "--batch-size", "2", "--signals", "raw",
                      env={"AWS_MAX_ATTEMPTS": str(JOB_ATTEMPTS)})
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    features, errors = outputs(direct, "fault-out2/run1")
    assert features == [] and set(errors) == set(truth) and set(errors.values()) == {"read_failed"}
    # each clip was tried as often as the user's setting says (it reaches Ray's workers), then given up
    per_object: dict[str, int] = {}
    for e in proxy.injected():
        per_object[e.path.split("?")[0]] = per_object.get(e.path.split("?")[0], 0) + 1
    assert len(per_object) == len(truth) and set(per_object.values()) == {JOB_ATTEMPTS}, per_object


@pytest.mark.slow
@pytest.mark.parametrize("in_process_max", [0, 32], ids=["ray", "in-process"])
def test_persistent_output_faults_end_in_one_line_naming_output(proxy, direct, tmp_path, in_process_max):
    demo = generate_demo(tmp_path / "demo", n_clips=4, seed=22, duration_s=1.5, n_broken=0)
    name = f"fault-out3-{in_process_max}"
    bucket(direct, name)
    executor = {"in_process_max": in_process_max, "env": {"AWS_MAX_ATTEMPTS": str(JOB_ATTEMPTS)}}
    # the run record goes through (the first write), then every Parquet part is refused
    proxy.set_schedule([Fault("503", "PUT", rf"/{name}/run1/(features|errors)/", times=-1)])
    t0 = time.monotonic()
    out = extract_cli(proxy, tmp_path, "--manifest", str(demo.clips_csv), "--audio-root", str(demo.audio_dir),
                      "--output", f"s3://{name}/run1", "--signals", "raw", **executor)
    assert out.returncode in (1, 2) and "Traceback" not in out.stderr, out.stderr[-3000:]
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("acoustic-env: error: "), lines
    assert time.monotonic() - t0 < RUN_TIMEOUT_S
    # each part was tried as often as the user's setting says, then the job stopped (Ray Data does not retry it)
    tries: dict[str, int] = {}
    for e in proxy.injected():
        tries[e.path] = tries.get(e.path, 0) + 1
    assert tries and max(tries.values()) == JOB_ATTEMPTS, tries
    features, errors = outputs(direct, f"{name}/run1")
    assert features == [] and errors == {}
    # the line names the setting and the store's answer, not Ray's wrapper
    assert f"OutputWriteError: output: cannot write to s3://{name}/run1: " in lines[0], lines[0]
    assert "Service is unable to handle request" in lines[0], lines[0]  # the store's own answer (the 503)
    assert "RayTaskError" not in lines[0] and "UserCodeException" not in lines[0]
    (record,) = [json.loads(direct.cat_file(p)) for p in direct.glob(f"{name}/run1/runs/*.json")]
    assert record["status"] == "failed" and "output: cannot write to" in record["error"], record.get("error")
    # the fault clears: a resume completes every clip exactly once (in the command's process: four clips)
    proxy.set_schedule([])
    again = extract_cli(proxy, tmp_path, "--manifest", str(demo.clips_csv), "--audio-root", str(demo.audio_dir),
                        "--output", f"s3://{name}/run1", "--signals", "raw", in_process_max=32)
    assert again.returncode == 0, again.stderr[-3000:]
    features, errors = outputs(direct, f"{name}/run1")
    assert sorted(features) == sorted(truth_ids(demo)) and errors == {}


def test_refused_output_at_the_first_write_is_one_line(proxy, direct, tmp_path):
    bucket(direct, "fault-out4")
    proxy.set_schedule([Fault("slowdown", "PUT", r"/fault-out4/", times=-1)])
    (tmp_path / "clips.csv").write_text("uri,labels\nx.wav,/m/0\n")
    out = extract_cli(proxy, tmp_path, "--manifest", "clips.csv", "--output", "s3://fault-out4/run1",
                      env={"AWS_MAX_ATTEMPTS": "3"})
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-3000:]
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("acoustic-env: error: output: cannot write to s3://fault-out4/run1")
    assert "reduce your request rate" in lines[0]
    assert len(proxy.injected()) == 3
