"""Hostile inputs: nothing lost, nothing hangs, nothing leaks.

Every read here that the code under test could get stuck in runs in a daemon thread
joined with a timeout, and every server stops itself, so a regression fails the test
instead of hanging the suite.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import re
import socket
import subprocess
import sys
import textwrap
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf
from conftest import REPO, tone_clip
from documentation import all_text

from acoustic_env.audio.decode import decode_clip
from acoustic_env.config import DecodeParams, ExtractConfig, from_dict
from acoustic_env.errors import ClipError, DamagedFileError
from acoustic_env.jobs.results import ExtractResult
from acoustic_env.layout import make_plan
from acoustic_env.storage import read_part, redact, write_parquet

FAST = DecodeParams(read_timeout_s=1.0)


def bounded(fn: Callable[[], Any], timeout_s: float = 20.0) -> Any:
    """``fn()`` in a daemon thread: its result or exception, or a test failure if it blocks."""
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            out["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout_s)
    assert not thread.is_alive(), f"still blocked after {timeout_s} s"
    if "error" in out:
        raise out["error"]
    return out["value"]


def clip_error(uri: str, params: DecodeParams = FAST, **kw: Any) -> ClipError:
    with pytest.raises(ClipError) as info:
        bounded(lambda: decode_clip(uri, params, **kw))
    return info.value


@contextlib.contextmanager
def silent_server(lifetime_s: float = 600.0) -> Iterator[int]:
    """A TCP server on loopback that accepts connections and never answers; yields its port.

    It stops by itself after ``lifetime_s`` even if the test never returns.
    """
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.settimeout(0.2)
    stop = threading.Event()
    held: list[socket.socket] = []
    deadline = time.monotonic() + lifetime_s

    def accept() -> None:
        while not stop.is_set() and time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                held.append(sock.accept()[0])
        for conn in held:
            conn.close()
        sock.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)


@contextlib.contextmanager
def file_server(root: Path) -> Iterator[int]:
    """A plain HTTP server over ``root`` on loopback (query strings and user-info ignored); yields its port."""

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a: Any, **kw: Any):
            super().__init__(*a, directory=str(root), **kw)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()


# --- reads that would block forever or never end ---

def test_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "clip.wav"
    os.mkfifo(fifo)
    try:
        err = clip_error(str(fifo))
        assert err.error_type == "not_audio" and "regular file" in err.message
    finally:  # release a reader blocked in open(), should there be one
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


def test_endless_device_is_refused_without_reading():
    err = clip_error("/dev/zero")
    assert err.error_type == "not_audio" and "regular file" in err.message


def test_byte_cap(tmp_path):
    path = tone_clip(tmp_path / "long.wav", seconds=40.0)  # 1.28 MB
    err = clip_error(str(path), DecodeParams(max_bytes=1_000_000))
    assert err.error_type == "too_large" and "max_bytes" in err.message
    assert decode_clip(str(path), DecodeParams(max_bytes=2_000_000)).audio.size == 40 * 16000


def test_server_that_never_answers_times_out():
    with silent_server() as port:
        t0 = time.monotonic()
        err = clip_error(f"http://127.0.0.1:{port}/clip.wav")
    assert err.error_type == "read_timeout"
    assert time.monotonic() - t0 < 10 * FAST.read_timeout_s


@contextlib.contextmanager
def dripping_server(size: int, seconds_per_request: float) -> Iterator[int]:
    """An HTTP server on loopback that serves ``size`` zero bytes with ranges, each answer paced over
    ``seconds_per_request``: no single wait is long, yet the whole read never ends in time. Yields its port."""

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _head(self, start: int, end: int) -> None:
            self.send_response(206 if self.headers.get("Range") else 200)
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(end - start))
            if self.headers.get("Range"):
                self.send_header("Content-Range", f"bytes {start}-{end - 1}/{size}")
            self.end_headers()

        def _range(self) -> tuple[int, int]:
            m = re.match(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
            return (int(m.group(1)), min(size, int(m.group(2) or size - 1) + 1)) if m else (0, size)

        def do_HEAD(self) -> None:
            self._head(0, size)

        def do_GET(self) -> None:
            start, end = self._range()
            self._head(start, end)
            pieces = 20
            step = -(-(end - start) // pieces)
            for _ in range(pieces):
                time.sleep(seconds_per_request / pieces)
                with contextlib.suppress(OSError):
                    self.wfile.write(bytes(min(step, end - start)))
                start += step
                if start >= end:
                    return

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_a_server_that_drips_is_cut_at_the_deadline_though_no_wait_is_long():
    """Every wait is far below the read timeout; the deadline, counted from the open, still ends the read."""
    from acoustic_env.audio.decode import copy_clip

    with dripping_server(size=24 << 20, seconds_per_request=0.5) as port:
        t0 = time.monotonic()
        with pytest.raises(ClipError) as caught:
            copy_clip(f"http://127.0.0.1:{port}/clip.wav", DecodeParams(read_timeout_s=30.0), lambda b: None,
                      deadline_s=1.0)
    assert caught.value.error_type == "read_timeout" and "not read within 1 s" in caught.value.message
    assert time.monotonic() - t0 < 30.0


def test_a_slow_open_is_not_counted_against_the_read_deadline(monkeypatch, tmp_path):
    """The deadline starts once the clip is open: a cold, low-priority Ray worker on a busy node once spent 12.5 s
    importing the HTTP transport, and a healthy clip became ``read_timeout``. Opening has its own bound, the
    transport's ``read_timeout_s`` per wait."""
    import acoustic_env.audio.decode as decode

    real = decode.read_filesystem

    def slow_start(uri: str, timeout_s: float):
        time.sleep(0.5)  # as a starved worker's imports and session start
        return real(uri, timeout_s)

    monkeypatch.setattr(decode, "read_filesystem", slow_start)
    path = tone_clip(tmp_path / "x.wav")
    assert decode.copy_clip(str(path), DecodeParams(), lambda b: None, deadline_s=0.2) == path.stat().st_size


def test_multi_hour_silent_flac_decodes_in_bounded_memory(tmp_path):
    """A 3-hour silent FLAC is a few hundred KB; decoding it whole took GBs."""
    path = tmp_path / "bomb.flac"
    with sf.SoundFile(path, "w", 8000, 1, "PCM_16", format="FLAC") as f:
        block = np.zeros(8000 * 600, dtype=np.int16)
        for _ in range(18):
            f.write(block)
    assert path.stat().st_size < 2_000_000
    tracemalloc.start()
    try:
        clip = decode_clip(str(path), DecodeParams())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert clip.is_silent and clip.audio.size == 60 * 16000
    assert clip.orig_duration_s == pytest.approx(3 * 3600)
    assert peak < 64 * 2**20, f"decoding took {peak / 2**20:.0f} MiB"


# --- what is written: secrets, temporaries, damaged parts ---

def test_redact_user_info_and_secret_query_values():
    text = ("read https://alice:pa55@host/a.wav?x=1&token=t0k&X-Amz-Signature=abc#f failed; "
            "url='s3://b/k?Sig=s1g&apikey=k3y'")
    out = redact(text, ("apikey",))
    for secret in ("alice", "pa55", "t0k", "abc", "s1g", "k3y"):
        assert secret not in out
    assert "https://***@host/a.wav?x=1&token=***" in out and "#f" in out


def test_redact_keeps_the_punctuation_after_a_secret():
    """The message's own ``:`` (or ``,``, ``.``, ``)``) after a redacted value stays; one inside the value goes."""
    assert redact("cannot read https://h/a?token=t0k: not found") == "cannot read https://h/a?token=***: not found"
    assert redact("(https://h/a?sig=s1g), then h://b?key=k3y.") == "(https://h/a?sig=***), then h://b?key=***."
    assert redact("https://h/a?token=t0k:more.t0k;x t") == "https://h/a?token=*** t"


def test_failed_write_leaves_no_temporary(tmp_path):
    """A full disk mid-write (here: the file-size limit, EFBIG) must not leave .tmp-* behind."""
    script = ("import os, resource, sys\nimport pyarrow as pa\nfrom acoustic_env.storage import write_parquet\n"
              "resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))\n"
              "table = pa.table({'x': [os.urandom(64).hex() for _ in range(2000)]})\n"
              "try:\n    write_parquet(table, sys.argv[1] + '/part.parquet')\nexcept OSError as exc:\n"
              "    sys.exit(3 if exc.errno == 27 else 4)\n")
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3, proc.stderr
    assert list(tmp_path.iterdir()) == []


def _writer(directory: Path, then: str) -> subprocess.Popen:
    """A process that opens a temporary the way ``write_parquet`` names it, writes a little, then ``then``."""
    script = ("import sys, time\nfrom acoustic_env.storage import _temporary_name\n"
              "fh = open(sys.argv[1] + '/' + _temporary_name(), 'wb'); fh.write(b'PAR1 half a part'); fh.flush()\n"
              f"print('ready', flush=True)\n{then}\n")
    proc = subprocess.Popen([sys.executable, "-c", script, str(directory)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def test_temporaries_of_dead_writers_are_removed_at_planning_and_a_live_writers_kept(tmp_path):
    out = tmp_path / "out"
    features, errors = out / "features", out / "errors"
    features.mkdir(parents=True)
    errors.mkdir()
    write_parquet(pa.table({"clip_id": ["a"]}), str(features / "part-1-aa.parquet"))
    killed = _writer(features, "time.sleep(600)")
    killed.kill()  # SIGKILL mid-write: nothing of the writer's own cleanup runs
    killed.wait()
    live = _writer(errors, "time.sleep(600)")  # a concurrent run, its part half written
    try:
        old = errors / ".tmp-0123456789abcdef"  # an older name, without its writer: judged by age alone
        old.write_bytes(b"left by ENOSPC")
        recent = features / ".tmp-fedcba9876543210"
        recent.write_bytes(b"maybe a live writer on another host")
        an_hour_ago = time.time() - 3600
        os.utime(old, (an_hour_ago, an_hour_ago))
        time.sleep(0.05)  # every file above is older than the run that plans next
        before = {p.name for d in (features, errors) for p in d.iterdir()}
        plan = make_plan(pa.table({"clip_id": ["a", "b"]}), str(out))
        after = {p.name for d in (features, errors) for p in d.iterdir()}
        assert plan.todo["clip_id"].to_pylist() == ["b"]
        gone = before - after
        assert gone == {old.name} | {n for n in before if n.startswith(f".tmp-{killed.pid}@")}, (before, after)
        assert len(gone) == 2 and live.poll() is None
        assert any(n.startswith(f".tmp-{live.pid}@") for n in after) and recent.name in after
        # the live writer dies: the next run removes its temporary too; the recent unknown one stays
        live.kill()
        live.wait()
        make_plan(pa.table({"clip_id": ["a", "b"]}), str(out))
        assert {p.name for d in (features, errors) for p in d.iterdir()} == {"part-1-aa.parquet", recent.name}
    finally:
        live.kill()


def test_a_part_the_output_refuses_is_one_output_write_error(tmp_path):
    """write_batch on an output that cannot hold a part; the error, also wrapped the way Ray
    hands a task's exception to the driver, reads as one line naming ``output``."""
    from acoustic_env.audio.stages import write_batch
    from acoustic_env.errors import OutputWriteError

    (tmp_path / "out").write_text("a file where the output directory should be")
    batch = pa.table({"clip_id": ["a", "b"], "uri": ["a.wav", "b.wav"], "x": [1.0, 2.0],
                      "error_stage": [None, "decode"], "error_type": [None, "empty_file"],
                      "error_message": [None, "file is empty"]})
    with pytest.raises(OutputWriteError) as info:
        write_batch(batch, str(tmp_path / "out"), "run1", {})
    line = str(info.value)
    assert line.startswith(f"output: cannot write to {tmp_path / 'out'}: ") and "\n" not in line
    assert "features/part-run1-" in line and isinstance(info.value.__cause__, OSError)

    class TaskError(Exception):  # Ray's RayTaskError(cause): text = the worker's traceback, .cause = the error
        def __init__(self, cause: BaseException):
            super().__init__(f"ray::MapBatches(write_batch)()\nTraceback ...\n{cause}\nFailed to apply UDF")
            self.cause = cause

    wrapped = type("RayTaskError(OutputWriteError)", (TaskError, OutputWriteError), {})(info.value)
    assert str(OutputWriteError.found_in(wrapped)) == line
    chained = RuntimeError("the executor stopped")
    chained.__cause__ = wrapped
    assert str(OutputWriteError.found_in(chained)) == line
    assert OutputWriteError.found_in(RuntimeError("anything else")) is None


def test_damaged_parts_are_quarantined_and_their_clips_recomputed(tmp_path):
    out = tmp_path / "out"
    write_parquet(pa.table({"clip_id": ["a", "b"], "x": [1, 2]}), str(out / "features" / "part-1-aa.parquet"))
    write_parquet(pa.table({"clip_id": ["c", "d"], "x": [3, 4]}), str(out / "features" / "part-2-bb.parquet"))
    write_parquet(pa.table({"clip_id": ["e"], "x": [5]}), str(out / "errors" / "errors-3.parquet"))
    for part in (out / "features" / "part-2-bb.parquet", out / "errors" / "errors-3.parquet"):
        part.write_bytes(part.read_bytes()[:40])  # cut short, as by a full disk
    with pytest.raises(DamagedFileError, match="part-2-bb.parquet"):
        read_part(str(out / "features" / "part-2-bb.parquet"))
    plan = make_plan(pa.table({"clip_id": list("abcde")}), str(out))
    assert plan.todo["clip_id"].to_pylist() == ["c", "d", "e"] and plan.skipped == 2 and plan.retried == 0
    assert sorted(Path(p).relative_to(out).as_posix() for p in plan.quarantined) == [
        "quarantine/errors/errors-3.parquet", "quarantine/features/part-2-bb.parquet"]
    assert sorted(p.name for p in (out / "features").iterdir()) == ["part-1-aa.parquet"]
    assert make_plan(pa.table({"clip_id": list("abcde")}), str(out)).quarantined == []  # once, not every run


def test_readme_error_table_names_exactly_the_types_the_code_produces():
    code = "\n".join(p.read_text() for p in (REPO / "acoustic_env").rglob("*.py"))
    producers = {  # each way the code names an error type; each must still find some (a refactor is noticed)
        "decode": r'ClipError\(\w+, "(\w+)"',
        "transport": r'^\s+return "(\w+)", ',  # storage.transport_failure, read through ClipError(STAGE, error_type)
        "manifest": r'found\[\w+\] = \("(\w+)"',
        "any other exception in a stage": r'error_type="(\w+)"',
    }
    sources = {"transport": (REPO / "acoustic_env" / "storage.py").read_text()}
    found = {k: set(re.findall(rx, sources.get(k, code), re.M)) for k, rx in producers.items()}
    assert all(found.values()), found
    produced = set().union(*found.values())
    readme = all_text()
    table = readme[readme.index("| error_type | when |"):]
    table = table[:table.index("\n\n")]
    documented = set(re.findall(r"^\| `(\w+)` \|", table, re.M))
    assert "outside_allowed_roots" in produced and "read_timeout" in produced and "internal" in produced
    assert documented == produced


# --- the whole job on a hostile clip list ---

def _outputs_text(out: Path) -> str:
    """Every value and every metadata byte of every output file, as text (Parquet is compressed)."""
    chunks = []
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        if path.suffix == ".parquet":
            with contextlib.suppress(Exception):  # a quarantined part is not readable; its bytes are below
                table = pq.read_table(path)
                chunks += [json.dumps(table.to_pylist(), default=str), str(table.schema.metadata)]
        chunks.append(path.read_bytes().decode("utf-8", "replace"))
    return "\n".join(chunks)


@pytest.mark.parametrize("in_process_max", [pytest.param(32, id="in-process"),
                                            pytest.param(0, id="ray", marks=pytest.mark.slow)])
def test_extract_on_a_hostile_list_writes_every_row_once_and_no_secret(ray_session, tmp_path, caplog, in_process_max):
    audio = tmp_path / "audio"
    for d in ("sub1", "sub2"):
        (audio / d).mkdir(parents=True)
    tone_clip(audio / "sub1" / "x.wav")
    tone_clip(audio / "sub2" / "x.wav", seed=1)  # same stem, another folder
    tone_clip(audio / "x.flac", seed=2)  # same stem, another format
    tone_clip(audio / "seg.wav", seed=3)
    tone_clip(audio / "served.wav", seed=4)
    (tmp_path / "private").mkdir()
    tone_clip(tmp_path / "private" / "secret.wav")
    out = tmp_path / "out"
    (out / "features").mkdir(parents=True)
    (out / "features" / "part-19700101T000000Z-000000-00.parquet").write_bytes(b"PAR1 cut short by a full disk")
    with file_server(tmp_path) as port, silent_server() as silent:
        rows = [
            (f"{audio}/sub1/x.wav", ""), (f"{audio}/sub2/x.wav", ""), (f"{audio}/x.flac", ""),
            ("served.wav", ""),  # below the credentialed audio_root
            (f"http://127.0.0.1:{port}/audio/served.wav?token=SECRET2", ""),
            (f"http://127.0.0.1:{silent}/audio/slow.wav", ""),  # read_timeout, and its batch goes on
            ("../private/secret.wav", ""), (f"file://{tmp_path}/private/secret.wav", ""),  # outside the roots
            (f"{audio}/sub1/x.wav", ""),  # the same file twice: duplicate_id
            (f"{audio}/seg.wav", "nan"),  # bad_segment
        ]
        lines = ["uri,labels,start_s,duration_s,channels,error_type"]
        lines += [f"{uri},/m/0,{start},12.5,{n},sheet-{n}" for n, (uri, start) in enumerate(rows)]
        (tmp_path / "clips.csv").write_text("\ufeff" + "\n".join(lines) + "\n")
        cfg = from_dict(ExtractConfig, {
            "manifest": str(tmp_path / "clips.csv"), "output": str(out), "progress": False, "batch_size": 4,
            "audio_root": f"http://user:SECRET1@127.0.0.1:{port}/audio",
            "allowed_roots": [str(audio), f"http://127.0.0.1:{port}/audio", f"http://127.0.0.1:{silent}/audio"],
            "decode": {"read_timeout_s": 2.0}, "features": {"signals": ["raw"]}, "in_process_max": in_process_max})
        result = bounded(lambda: extract_quietly(cfg, caplog), timeout_s=600)
    features = pq.read_table(out / "features").to_pylist()
    errors = pq.read_table(out / "errors").to_pylist()
    ids = [r["clip_id"] for r in features + errors]
    assert len(ids) == len(set(ids)) == len(rows) == result.counts["input"]
    kinds = sorted(r["error_type"] for r in errors)
    assert len(features) == 5 and result.counts["ok"] == 5, "\n".join(f"{r['error_type']}: {r['message']}"
                                                                        for r in errors)
    assert kinds == ["bad_segment", "duplicate_id", "outside_allowed_roots", "outside_allowed_roots", "read_timeout"]
    dup = next(r for r in errors if r["error_type"] == "duplicate_id")
    assert dup["message"].count(f"{audio}/sub1/x.wav") == 2 and "row 1" in dup["message"]
    # the sheet's own columns travel under their own names; the decode facts keep theirs
    by_uri = {r["uri"]: r for r in features}
    first = by_uri[f"{audio}/sub1/x.wav"]
    assert (first["manifest_duration_s"], first["manifest_channels"], first["manifest_error_type"]) == (
        "12.5", "0", "sheet-0")
    assert first["duration_s"] == pytest.approx(1.5) and first["channels"] == 1
    assert result.record["manifest"]["renamed_columns"] == {
        "duration_s": "manifest_duration_s", "channels": "manifest_channels", "error_type": "manifest_error_type"}
    # the damaged part was set aside, named in the record, and did not stop the run
    assert [Path(p).name for p in result.record["quarantined"]] == ["part-19700101T000000Z-000000-00.parquet"]
    assert (out / "quarantine" / "features" / "part-19700101T000000Z-000000-00.parquet").is_file()
    # no secret anywhere: Parquet values and metadata, run records, logs (this package's at every level; the
    # libraries' from INFO, what a run's log file keeps: fsspec's own DEBUG lines name the URLs it opens)
    logged = [caplog.handler.format(r) for r in caplog.records if r.name.startswith("acoustic_env") or r.levelno >= 20]
    text = _outputs_text(out) + "\n".join(logged)
    assert "SECRET1" not in text and "SECRET2" not in text
    assert "http://***@127.0.0.1" in text and "token=***" in text


def extract_quietly(cfg: ExtractConfig, caplog: pytest.LogCaptureFixture) -> ExtractResult:
    from acoustic_env.jobs.extract import extract

    with caplog.at_level("DEBUG"):
        return extract(cfg)


# --- no Ray process outlives the command (a SIGKILLed driver's: tests/test_soak.py) ---

def _family(pid: int) -> set[tuple[int, float]]:
    """(pid, start time) of ``pid``'s descendants: this test's own driver's Ray processes, never
    another run's (other Ray instances on the machine are not below it)."""
    import psutil

    found = set()
    for p in psutil.Process(pid).children(recursive=True):
        with contextlib.suppress(psutil.Error):
            found.add((p.pid, p.create_time()))
    return found


def _alive(family: set[tuple[int, float]]) -> list[str]:
    import psutil

    alive = []
    for pid, created in family:
        with contextlib.suppress(psutil.Error):
            p = psutil.Process(pid)
            if p.create_time() == created and p.status() != psutil.STATUS_ZOMBIE:
                words = [os.path.basename(w) if w.startswith("/") else w for w in p.cmdline()]  # any checkout's path
                alive.append(f"{pid} {p.name()} {' '.join(words)[:120]}")
    return alive


def test_end_now_kills_what_was_started_and_its_descendants(monkeypatch):
    """``reaper.end_now`` ends each root and every descendant (the raylet's workers), gathered
    before any dies so that none is orphaned unseen, and waits until they are gone; a second
    call, with nothing left to end, says so."""
    import psutil

    from acoustic_env.distributed import reaper

    before = reaper.children()
    grandchild = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); time.sleep(60)"
    roots = [subprocess.Popen([sys.executable, "-c", grandchild]) for _ in range(2)]
    try:
        deadline = time.monotonic() + 30
        while sum(len(psutil.Process(r.pid).children()) for r in roots) < 2:  # both grandchildren started
            assert time.monotonic() < deadline
            time.sleep(0.05)
        family = {(p.pid, p.create_time()) for r in roots for p in [psutil.Process(r.pid), *psutil.Process(r.pid).children()]}
        # the roots as if this process's ray.init had started them; the module's own list is put back after
        monkeypatch.setattr(reaper, "_roots", [psutil.Process(pid) for pid in sorted(reaper.children() - before)])
        assert len(reaper._roots) == 2
        assert reaper.end_now() is True
        assert not _alive(family), _alive(family)
        assert reaper.end_now() is False
    finally:
        for r in roots:
            r.kill()
            r.wait()


@pytest.mark.slow
def test_the_command_ends_its_ray_processes_before_its_quick_exit(tmp_path):
    """``acoustic-env`` skips Python's teardown and Ray's graceful shutdown (``cli.run``): every
    process of its local instance is ended (``session.run_exit_handlers``) by the time the
    command returns, and the summary and exit code are intact."""
    from acoustic_env.demo.synth import generate_demo

    from acoustic_env.config import IN_PROCESS_MAX

    n = IN_PROCESS_MAX + 8  # more than run in the command's process: on its local Ray
    demo = generate_demo(tmp_path / "demo", n_clips=n, seed=4, duration_s=1.0, n_broken=0)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "acoustic_env.cli", "extract", "--no-progress", "--manifest", str(demo.clips_csv),
           "--audio-root", str(demo.audio_dir), "--output", str(out), "--signals", "raw", "--write-batch-size", "4"]
    driver = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    family: set[tuple[int, float]] = set()
    try:
        deadline = time.monotonic() + 600
        while not list((out / "features").glob("*.parquet")):  # mid-run: the instance is up
            assert driver.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        family = _family(driver.pid)
        assert "raylet" in " ".join(_alive(family))
        stdout, stderr = driver.communicate(timeout=600)
        assert driver.returncode == 0, stderr[-2000:]
        assert f"{n} clips extracted, 0 failed" in stdout
        left = [p for p in _alive(family) if "reaper" not in p]  # the watcher waits out its grace, then ends
        assert not left, f"alive after the command returned: {left}"
    finally:
        for entry in _alive(family):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry.split()[0]), 9)


@pytest.mark.slow
def test_the_quick_exit_survives_an_agent_dying_first(tmp_path):
    """The quick exit SIGKILLs the instance's processes in no set order. When a raylet agent dies
    before the GCS, the raylet fate-shares with it and the GCS tells a driver still connected that
    its node died; that driver then ended its own process with status 1 while recovering the objects
    it owned, after the job's summary was out. The driver leaves the instance first
    (``session._leave``), so an agent dying first (forced here) changes nothing."""
    script = textwrap.dedent("""
        import os, time
        import numpy as np
        import psutil
        import ray
        from acoustic_env.distributed import reaper
        from acoustic_env.distributed.session import run_exit_handlers, start_ray

        os.environ.pop("RAY_ADDRESS", None)
        start_ray()
        held = ray.put(np.zeros(10**6))  # objects the driver owns, in the object store

        @ray.remote
        def task():
            return np.ones(10**6)

        result = task.remote()
        assert ray.get(result).sum() == 10**6
        real_end_now = reaper.end_now

        def agent_first():
            family = psutil.Process().children(recursive=True)
            agent = next(p for p in family if p.name() == "ray::RuntimeEnvAgent")
            raylet = next(p for p in family if p.name() == "raylet")
            agent.kill()
            raylet.wait(timeout=30)  # it fate-shares with its agent
            time.sleep(1)  # the GCS's word of the node's death reaches a driver still connected
            return real_end_now()

        reaper.end_now = agent_first
        run_exit_handlers()
        time.sleep(1)
        print("exited as asked", flush=True)
        os._exit(0)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "exited as asked", out.stderr[-2000:]


@pytest.mark.slow
def test_a_local_start_that_fails_is_cleaned_up_and_tried_once_more(monkeypatch, caplog):
    """Ray 2.60's raylet exits when its agents take over 15 s to start on a loaded machine
    (ray-project/ray#65983). ``start_ray`` ends what the failed ``ray.init`` started (here a
    child standing in for its GCS), says so in one warning, and starts a working instance."""
    import ray

    from acoustic_env.distributed import session

    if ray.is_initialized():
        ray.shutdown()
    real_init, calls, stray = ray.init, [], []

    def init(*args, **kwargs):
        calls.append(kwargs.get("address"))
        if len(calls) == 1:
            stray.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"]))
            raise RuntimeError("The current node timed out during startup.\nThis could happen because ...")
        return real_init(*args, **kwargs)

    monkeypatch.setattr(ray, "init", init)
    try:
        with caplog.at_level("WARNING", logger="acoustic_env.distributed.session"):
            resources = session.start_ray()
        assert calls == ["local", "local"] and resources.get("CPU", 0) >= 1
        assert stray[0].wait(timeout=10) == -9  # SIGKILLed by start_ray, not left to run
        assert [r.getMessage() for r in caplog.records] == [
            "local Ray did not start (The current node timed out during startup. This could happen because ...); "
            "trying again"]
        assert ray.get(ray.put(7)) == 7
    finally:
        ray.shutdown()
        session.reaper.end_now()
