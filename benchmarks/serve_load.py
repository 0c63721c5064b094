"""Load test of `acoustic-env serve`: latency percentiles and requests/s for 10-s clips on loopback.

    python benchmarks/serve_load.py [--requests 32] [--concurrency 4] [--batch 4] [--work DIR]

Builds a world once (generated 10-s demo clips, the extract job's table with YAMNet on
seeded random weights, a model trained without Ray on indices, spectral, MPS and YAMNet
columns: the same compute as a pretrained tagger), then for each configuration starts the
real command (``acoustic-env serve --port 0``, its own local Ray, one replica of
``--replica-cpus``) and sends a bounded load: exactly ``--requests`` POSTs of the clips'
bytes, ``--concurrency`` at a time, from threads with ``urllib``. Configurations:

- ``no batching`` (``--batch-max-size 1``) and ``batching`` (``--batch-max-size B``,
  ``--batch-wait-s 0.05``), the same valid requests;
- ``mixed``: the batching service again, with every other request a bad one (not audio,
  too large, malformed JSON, a URL not allowed, too long) — each must get its documented
  error, every valid one its 200, and ``/healthz`` must answer afterwards.

Latency is each request's wall time at the client (connect to last byte); requests/s is
requests over the run's wall time. Prints a Markdown table for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe  # noqa: E402

GROUPS = ["indices_raw", "spectral_fg", "mps_bg", "yamnet"]
MAX_UPLOAD_MB, MAX_DURATION_S = 2.0, 12.0


def world(work: Path) -> tuple[list[Path], Path, Path]:
    """(10-s clips, model, weights cache), built on the first run and reused."""
    import acoustic_env as ae
    from acoustic_env.demo.quick_model import quick_model
    from acoustic_env.demo.synth import generate_demo

    model, cache, data = work / "model", work / "no-weights", work / "data"
    if not (model / "model.json").is_file():
        demo = generate_demo(data, n_clips=12, duration_s=10.0, n_broken=0, seed=4)
        ae.extract(str(demo.clips_csv), str(work / "features"), audio_root=str(demo.audio_dir), embedders=["yamnet"],
                   allow_random_weights=True, weights_cache=str(cache), progress=False)
        quick_model(str(work / "features"), str(model), feature_groups=GROUPS, include_random_weights=True)
    return sorted((data / "audio").glob("*.flac")), model, cache


def bad_requests(work: Path) -> list[tuple[bytes, str, str]]:
    """(body, content type, the error type it must get)."""
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.zeros(int(16000 * (MAX_DURATION_S + 3)), np.float32) + 0.01, 16000, format="WAV",
             subtype="PCM_16")
    return [(b"this is not audio\n" * 100, "text/plain", "not_audio"),
            (os.urandom(int(MAX_UPLOAD_MB * 2**20) + 1), "audio/wav", "too_large"),
            (b'{"url": ', "application/json", "bad_request"),
            (b'{"url": "https://example.com/a.wav"}', "application/json", "url_not_allowed"),
            (buf.getvalue(), "audio/wav", "too_long")]


def post(url: str, body: bytes, ctype: str) -> tuple[int, dict, float]:
    req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": ctype})
    t = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=300) as r:
            status, answer = r.status, json.load(r)
    except urllib.error.HTTPError as e:
        status, answer = e.code, json.load(e)
    return status, answer, time.perf_counter() - t


def start_serve(model: Path, *flags: str) -> tuple[subprocess.Popen, str]:
    """``acoustic-env serve --model M --port 0 FLAGS`` in a subprocess (its own local Ray): (the process, its URL),
    once it printed the URL."""
    proc = subprocess.Popen([sys.executable, "-m", "acoustic_env.cli", "serve", "--model", str(model), "--port", "0",
                             *flags], stdout=subprocess.PIPE, text=True,
                            env={k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"})
    for line in proc.stdout:
        if line.startswith("serve: http"):
            return proc, line.split()[1]
    raise RuntimeError(f"serve exited {proc.wait()}")


class Service:
    """``acoustic-env serve`` in a subprocess; ``url`` once it printed it."""

    def __init__(self, model: Path, cache: Path, *flags: str) -> None:
        t = time.perf_counter()
        self.proc, self.url = start_serve(model, "--weights-cache", str(cache), "--max-upload-mb", str(MAX_UPLOAD_MB),
                                          "--max-duration-s", str(MAX_DURATION_S), "--request-timeout-s", "120",
                                          *flags)
        self.startup_s = time.perf_counter() - t

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(120)


def run(url: str, jobs: list[tuple[bytes, str, str | None]], concurrency: int) -> dict:
    """Send ``jobs`` (body, type, expected error or None), ``concurrency`` at a time; check every answer."""
    t = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        answers = list(pool.map(lambda j: post(url + "predict", j[0], j[1]), jobs))
    wall = time.perf_counter() - t
    wrong = [(job[2], status, answer) for job, (status, answer, _) in zip(jobs, answers)
             if (status == 200) != (job[2] is None) or (job[2] and answer["error"]["type"] != job[2])]
    if wrong:
        raise AssertionError(f"{len(wrong)} wrong answers, e.g. {wrong[0]}")
    ok = [s for (_, _, s), job in zip(answers, jobs) if job[2] is None]
    bad = [s for (_, _, s), job in zip(answers, jobs) if job[2] is not None]
    pct = np.percentile(np.array(ok) * 1000, [50, 90, 99])
    with urllib.request.urlopen(url + "healthz", timeout=10) as r:
        healthy = json.load(r) == {"status": "ok"}
    return {"n": len(jobs), "wall_s": wall, "rps": len(jobs) / wall, "p50": pct[0], "p90": pct[1], "p99": pct[2],
            "bad": len(bad), "bad_p50": statistics.median(bad) * 1000 if bad else None, "healthy": healthy,
            "service_ms": statistics.median(a["elapsed_ms"] for s, a, _ in answers if s == 200)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=32, help="requests per configuration")
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--batch", type=int, default=4, help="--batch-max-size of the batching configuration")
    ap.add_argument("--replica-cpus", default="1")
    ap.add_argument("--work", default="/tmp/acoustic-env-serve-load")
    args = ap.parse_args()
    work = Path(args.work)
    clips, model, cache = world(work)
    valid = [(clips[i % len(clips)].read_bytes(), "audio/flac", None) for i in range(args.requests)]
    bad = bad_requests(work)
    mixed = [valid[i // 2] if i % 2 == 0 else bad[(i // 2) % len(bad)] for i in range(args.requests)]
    configs = [("no batching", ["--batch-max-size", "1"], valid),
               (f"batching (max {args.batch}, wait 50 ms)", ["--batch-max-size", str(args.batch),
                                                             "--batch-wait-s", "0.05"], valid),
               ("batching, every other request bad", ["--batch-max-size", str(args.batch),
                                                       "--batch-wait-s", "0.05"], mixed)]
    rows = []
    for name, flags, jobs in configs:
        service = Service(model, cache, "--replica-cpus", args.replica_cpus, *flags)
        try:
            post(service.url + "predict", valid[0][0], valid[0][1])  # warm-up: first forward passes
            r = run(service.url, jobs, args.concurrency)
        finally:
            rc = service.stop()
        rows.append((name, r, service.startup_s, rc))
        print(f"{name}: {r} (startup {service.startup_s:.1f} s, exit {rc})", file=sys.stderr)
    load = os.getloadavg()
    print(f"\n`python benchmarks/serve_load.py --requests {args.requests} --concurrency {args.concurrency} "
          f"--batch {args.batch} --replica-cpus {args.replica_cpus}`  ")
    print(f"{describe()}, {platform.platform()}, Python {platform.python_version()}; "
          f"{time.strftime('%Y-%m-%d')}; load average after the run {load[0]:.1f} (machine shared)  ")
    print(f"{len(clips)} generated 10-s clips (FLAC, ~{np.mean([c.stat().st_size for c in clips]) / 1e3:.0f} KB), "
          f"model on {', '.join(GROUPS)} (YAMNet on random weights: the compute of the pretrained one); "
          f"one replica, loopback HTTP, a fixed {args.requests} requests at concurrency {args.concurrency}.\n")
    print("| configuration | requests (bad) | p50 ms | p90 ms | p99 ms | requests/s | service ms p50 | "
          "bad p50 ms | /healthz after | exit |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|---:|")
    for name, r, _, rc in rows:
        bad_p50 = f"{r['bad_p50']:.0f}" if r["bad_p50"] is not None else "–"
        print(f"| {name} | {r['n']} ({r['bad']}) | {r['p50']:.0f} | {r['p90']:.0f} | {r['p99']:.0f} | "
              f"{r['rps']:.2f} | {r['service_ms']:.0f} | {bad_p50} | {'ok' if r['healthy'] else 'DOWN'} | {rc} |")
    base = rows[0][1]["rps"]
    print(f"\nrequests/s, batching over no batching: {rows[1][1]['rps'] / base:.2f}x; "
          f"service start-up (Ray, Serve, model load): {statistics.median(s for _, _, s, _ in rows):.0f} s median.")


if __name__ == "__main__":
    main()
