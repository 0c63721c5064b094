"""How long `acoustic-env predict --windows` takes on a long recording, and how much memory it holds.

    python benchmarks/windows.py [--minutes 10,60] [--work /tmp/acoustic-env-windows-bench]
                                 [--serve [--url] [--hop-s S]]

Builds a small world once (generated 10-s clips, the extract job's table with every CPU
feature and signal, a model trained without Ray on it, as benchmarks/predict.py does),
then writes each recording (16 kHz mono 16-bit WAV, generated soundscapes of alternating
classes, 10 s each) and runs, as a user would, in a fresh process:

    acoustic-env predict REC.wav --model M --windows --save windows.csv --selections selections/

timing the whole command (imports included); its peak resident memory is the one it prints
(the kernel's ``ru_maxrss`` of the process). The decoded hour alone would be 230 MB of float32:
a peak that does not grow with the length is the point. Prints a Markdown table for
benchmarks/RESULTS.md.

``--serve`` times the same recordings through the service instead: the real
``acoustic-env serve --model M --port 0`` in a subprocess (its own local Ray, the default
limits), one warm-up request (a 10-s clip), then per recording one
``POST /predict?windows=1`` of the WAV file's bytes (streamed from the file by the
client, as ``curl --data-binary @REC.wav`` sends them), timed from the first byte sent to
the parsed answer. Memory is the kernel's own peak of each of the service's processes
(``VmHWM`` in /proc: the Serve replica that scores, Serve's HTTP proxy that the body
passes through, the ``serve`` command itself), read before the request and after it;
and the sum of the resident memory of every process of the service (Ray's raylet, GCS,
controller and idle workers included), polled every 0.2 s. Needs psutil. ``--url``: the
service fetches the recording from a local HTTP server instead (``POST {"url": ...}``,
``--allowed-url-prefixes``), so the bytes do not pass through Serve's proxy; ``--hop-s
600``: a window every 10 minutes, which leaves the cost of moving the bytes in (the
scoring of 6 windows an hour is a few seconds).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import soundfile as sf

from machine import describe

SR = 16000
SEGMENT_S = 10


def _model(work: Path) -> Path:
    import acoustic_env as ae
    from acoustic_env.demo.quick_model import quick_model
    from acoustic_env.demo.synth import generate_demo

    model = work / "model"
    if not (model / "model.json").is_file():
        demo = generate_demo(work / "data", n_clips=12, duration_s=float(SEGMENT_S), n_broken=0, seed=3)
        ae.extract(str(demo.clips_csv), str(work / "features"), audio_root=str(demo.audio_dir), progress=False)
        quick_model(str(work / "features"), str(model))
    return model


def _recording(path: Path, minutes: int) -> None:
    """``minutes`` of 10-s generated soundscapes, urban and natural in turn, written as they are made."""
    from acoustic_env.demo.synth import make_clip

    rng = np.random.default_rng(7)
    segments = [make_clip(rng, cls, SEGMENT_S, SR, 1)[0] for cls in ("urban", "natural") * 6]
    with sf.SoundFile(path, "w", SR, 1, "PCM_16") as f:
        for k in range(minutes * 60 // SEGMENT_S):
            f.write(segments[k % len(segments)])


def _status(pid: int) -> dict[str, float]:
    """VmHWM (the kernel's peak resident memory), VmRSS and RssAnon of a process, MiB (empty once it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
    except OSError:
        return {}
    return {k: int(fields[k].split()[0]) / 1024 for k in ("VmHWM", "VmRSS", "RssAnon") if k in fields}


def _role(p) -> str:
    """What a process of the service is: the replica, the HTTP proxy, the controller, ... by its title."""
    try:
        title = " ".join(p.cmdline()) or p.name()
    except Exception:  # noqa: BLE001 - gone meanwhile
        return "gone"
    for key, role in (("ServeReplica", "replica"), ("ProxyActor", "proxy"), ("ServeController", "controller"),
                      ("acoustic_env.cli", "serve command"), ("raylet", "raylet"), ("gcs_server", "gcs")):
        if key in title:
            return role
    return "other"


class Serving:
    """``acoustic-env serve`` in a subprocess, its processes found by role and their memory watched."""

    def __init__(self, model: Path, *flags: str) -> None:
        from serve_load import start_serve

        self.proc, self.url = start_serve(model, *flags)
        self.peak_total, self._stop = 0.0, threading.Event()
        self._watch = threading.Thread(target=self._poll, daemon=True)
        self._watch.start()

    def processes(self) -> dict[str, list[int]]:
        import psutil

        root = psutil.Process(self.proc.pid)
        out: dict[str, list[int]] = {}
        for p in [root, *root.children(recursive=True)]:
            out.setdefault(_role(p), []).append(p.pid)
        return out

    def hwm(self) -> dict[str, float]:
        """The peak resident memory (VmHWM) of the replica, the proxy and the serve command, MiB."""
        procs = self.processes()
        return {role: max(_status(pid).get("VmHWM", 0.0) for pid in procs.get(role, [0]))
                for role in ("replica", "proxy", "serve command")}

    def _poll(self) -> None:
        while not self._stop.wait(0.2):
            try:
                total = sum(_status(pid).get("VmRSS", 0.0) for pids in self.processes().values() for pid in pids)
            except Exception:  # noqa: BLE001 - a process ended between the listing and the read
                continue
            self.peak_total = max(self.peak_total, total)

    def post(self, path: Path, query: str = "", files: str | None = None) -> tuple[dict, float]:
        """POST the file's bytes to /predict?windows=1, streamed from the file, or with ``files`` (the base URL
        of a server of its directory) its URL; (the answer, seconds)."""
        with path.open("rb") as f:
            body, ctype, size = (f, "audio/wav", path.stat().st_size) if files is None else (
                json.dumps({"url": files + path.name}).encode(), "application/json", None)
            req = urllib.request.Request(self.url + "predict?windows=1" + query, data=body, method="POST",
                                         headers={"Content-Type": ctype, **({"Content-Length": str(size)} if size
                                                                            else {})})
            t = time.perf_counter()
            try:
                with urllib.request.urlopen(req, timeout=7200) as r:
                    answer = json.load(r)
            except urllib.error.HTTPError as e:
                raise RuntimeError(f"{path.name}: HTTP {e.code} {e.read().decode()}") from None
        return answer, time.perf_counter() - t

    def stop(self) -> int:
        import signal

        self._stop.set()
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(120)


def _files(root: Path) -> str:
    """A local HTTP server of ``root`` in a thread, with byte ranges (as S3 or nginx: fsspec reads in blocks)."""
    from functools import partial
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class Ranges(SimpleHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            m = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
            path = Path(self.translate_path(self.path))
            if not m or not path.is_file():
                return super().do_GET()
            size = path.stat().st_size
            start, end = int(m.group(1)), min(int(m.group(2) or size - 1), size - 1)
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            self.send_header("Content-Length", str(end - start + 1))
            self.end_headers()
            with path.open("rb") as f:
                f.seek(start)
                self.wfile.write(f.read(end - start + 1))

        def end_headers(self) -> None:
            self.send_header("Accept-Ranges", "bytes")
            super().end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Ranges, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/"


def _serve(work: Path, model: Path, minutes: list[int], url: bool, hop_s: float | None) -> None:
    """The recordings through ``acoustic-env serve`` (see the module docstring); prints the table."""
    files = _files(work) if url else None
    service = Serving(model, *(["--allowed-url-prefixes", files] if files else []))
    query = f"&hop_s={hop_s:g}" if hop_s else ""
    try:
        warm = sorted((work / "data").rglob("*.flac"))[0]
        service.post(warm)
        rows = []
        for m in minutes:
            rec = _ensure(work, m)
            before = service.hwm()
            answer, wall = service.post(rec, query, files)
            after = service.hwm()
            windows, n = answer["windows"], -(-m * 60 // (hop_s or SEGMENT_S))
            assert len(windows) == n and windows[-1]["end_s"] == (n - 1) * (hop_s or SEGMENT_S) + SEGMENT_S, windows[-1]
            assert answer["duration_s"] == m * 60 and answer["summary"]["scored"] == len(windows), answer["summary"]
            rows.append((m, rec.stat().st_size / 2**20, len(windows), wall, answer["elapsed_ms"] / 1000, before,
                         after))
            print(f"{m} min: {wall:.1f} s, before {before}, after {after}", file=sys.stderr)
        total = service.peak_total
        print(f"processes: { {k: len(v) for k, v in service.processes().items()} }", file=sys.stderr)
    finally:
        rc = service.stop()
    print(f"Machine: {describe()}; load average after the run {os.getloadavg()[0]:.1f}; serve exited {rc}; "
          f"sent as {'a URL the service fetches' if url else 'the body'}, "
          f"{f'a window every {hop_s:g} s' if hop_s else 'windows end to end'}")
    print("| recording | file | windows (10 s) | wall time (POST to answer) | service's elapsed | replica peak RSS "
          "(before → after) | proxy peak RSS (before → after) | serve command peak RSS |")
    print("|---|---|---|---|---|---|---|---|")
    for m, size, n, wall, elapsed, before, after in rows:
        print(f"| {m} min, 16 kHz mono | {size:.0f} MiB | {n} | {wall:.1f} s | {elapsed:.1f} s | "
              f"{before['replica']:.0f} → {after['replica']:.0f} MiB | "
              f"{before['proxy']:.0f} → {after['proxy']:.0f} MiB | {after['serve command']:.0f} MiB |")
    print(f"\nAll the service's processes together (Ray's included), resident at once at the most: {total:.0f} MiB "
          "(polled every 0.2 s).")


def _ensure(work: Path, minutes: int) -> Path:
    rec = work / f"recording-{minutes}min.wav"
    if not rec.is_file():
        _recording(rec, minutes)
    return rec


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", default="10,60", help="recording lengths to time, comma-separated")
    ap.add_argument("--work", default="/tmp/acoustic-env-windows-bench")
    ap.add_argument("--serve", action="store_true", help="through `acoustic-env serve` (POST ?windows=1) instead of "
                                                         "`predict --windows`")
    ap.add_argument("--url", action="store_true", help="--serve: POST the recording's URL (a local HTTP server)")
    ap.add_argument("--hop-s", type=float, help="--serve: a window every this many seconds (default: end to end)")
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    model = _model(work)
    if args.serve:
        return _serve(work, model, [int(m) for m in args.minutes.split(",")], args.url, args.hop_s)
    rows = []
    for minutes in map(int, args.minutes.split(",")):
        rec = _ensure(work, minutes)
        saved = work / f"windows-{minutes}min.csv"
        t = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "acoustic_env.cli", "predict", str(rec), "--model", str(model),
                              "--windows", "--save", str(saved), "--selections", str(work / "selections")],
                             check=True, capture_output=True, text=True).stdout
        wall = time.perf_counter() - t
        peak_mib = float(re.search(r"peak memory (\d+) MiB", out).group(1))
        windows = list(csv.DictReader(saved.open()))
        ends = [float(w["end_s"]) for w in windows]
        assert len(windows) == minutes * 60 // SEGMENT_S and ends[-1] == minutes * 60, (len(windows), ends[-1])
        rows.append((minutes, rec.stat().st_size / 2**20, len(windows), wall, peak_mib))
    print(f"Machine: {describe()}")
    print("| recording | file | windows (10 s) | wall time | per window | peak RSS |")
    print("|---|---|---|---|---|---|")
    for minutes, size, n, wall, peak in rows:
        print(f"| {minutes} min, 16 kHz mono | {size:.0f} MiB | {n} | {wall:.1f} s | {wall / n:.2f} s | {peak:.0f} MiB |")


if __name__ == "__main__":
    main()
