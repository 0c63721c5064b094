"""`acoustic-env audioset fetch` end to end against a media server on 127.0.0.1.

The server serves real audio files (one clip of noise per video, longer than the
segment), one video that is gone (404), one that hangs, and one whose file has no
audio in it. The downloader is a small Python command given through the config
(urllib to fetch, soundfile to cut), in place of yt-dlp and ffmpeg, which are the
user's to install. Checked: the clips hold the right samples, each failure is one
row with its reason, the manifest is read by extract's reader and decoded, the rate
limit spaces the starts, and a run killed midway is resumed without fetching a
finished clip or a recorded failure again (only a download in flight at the kill is repeated).
"""

from __future__ import annotations

import http.server
import io
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from acoustic_env.audio.decode import decode_clip
from acoustic_env.audio.manifest import read_manifest
from acoustic_env.audioset.fetch import Downloader, fetch_segment
from acoustic_env.config import DecodeParams, from_dict
from acoustic_env.config.audioset import FetchConfig
from acoustic_env.jobs.audioset.fetch import fetch

SR = 8000
GOOD = ("vidgood0001", "vidgood0002", "vidgood0003", "vidgood0004")
GONE, HANG, SILENT = "vidgone0001", "vidhang0001", "vidnone0001"
#: the download timeout: the hanging video ends on it; a good one (a Python downloader that imports soundfile, on a
#: loaded machine running the suite on three processes) stays well inside it
TIMEOUT_S = 8.0

DOWNLOADER = textwrap.dedent('''
    import io, sys, urllib.error, urllib.request
    import soundfile as sf
    url, start, duration, out = sys.argv[1:5]
    try:
        data = urllib.request.urlopen(url, timeout=60).read()
    except urllib.error.HTTPError as exc:
        sys.exit(f"ERROR: [youtube] Video unavailable (HTTP {exc.code})")
    info = sf.info(io.BytesIO(data))
    if info.frames == 0:
        sys.exit("ERROR: the source has no audio stream")
    x, sr = sf.read(io.BytesIO(data), start=round(float(start) * info.samplerate),
                    frames=round(float(duration) * info.samplerate))
    sf.write(out, x, sr)
''')


def source(ytid: str) -> np.ndarray:
    """The whole 'video' of a good id: 60 s of seeded noise, so each cut is recognisable."""
    return np.random.default_rng(int(ytid[-4:])).uniform(-0.5, 0.5, 60 * SR).astype(np.float32)


class MediaServer:
    """Media files on 127.0.0.1; counts the responses it finished per video."""

    def __init__(self, delay_s: float = 0.0):
        self.served: Counter[str] = Counter()
        self.arrivals: list[float] = []
        self.delay_s = delay_s
        self.stop = threading.Event()
        files = {}
        for ytid in GOOD:
            buf = io.BytesIO()
            sf.write(buf, source(ytid), SR, format="WAV", subtype="FLOAT")
            files[ytid] = buf.getvalue()
        buf = io.BytesIO()
        sf.write(buf, np.zeros(0, np.float32), SR, format="WAV")
        files[SILENT] = buf.getvalue()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - the http.server API
                server.arrivals.append(time.time())
                ytid = self.path.rsplit("/", 1)[-1].split(".")[0]
                if ytid == HANG:
                    server.stop.wait(60)
                    return
                if ytid not in files:
                    self.send_error(404)
                    return
                time.sleep(server.delay_s)
                self.send_response(200)
                self.send_header("Content-Length", str(len(files[ytid])))
                self.end_headers()
                self.wfile.write(files[ytid])
                server.served[ytid] += 1

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/media/{{ytid}}.wav"

    def close(self):
        self.stop.set()
        self.httpd.shutdown()


@pytest.fixture
def media():
    server = MediaServer()
    yield server
    server.close()


def segment_list(path: Path, failing: tuple[str, ...] = (GONE, HANG, SILENT)) -> Path:
    rows = [f'{y}, {10.0 * (i + 1):.3f}, {10.0 * (i + 2):.3f}, "/t/dd00128,/m/09x0r"' for i, y in enumerate(GOOD)]
    rows += [f'{y}, 0.000, 10.000, "/t/dd00129"' for y in failing]
    path.write_text("# test\n# num_ytids=7\n# YTID, start_seconds, end_seconds, positive_labels\n" + "\n".join(rows) + "\n")
    return path


def config(tmp_path: Path, server: MediaServer, failing: tuple[str, ...] = (GONE, HANG, SILENT), **extra) -> dict:
    script = tmp_path / "download.py"
    script.write_text(DOWNLOADER)
    return {"segments": str(segment_list(tmp_path / "segments.csv", failing)), "output": str(tmp_path / "out"),
            "downloader": f"{sys.executable} {script} {{url}} {{start}} {{duration}} {{out}}",
            "url_template": server.url, "clip_format": "wav", "timeout_s": TIMEOUT_S, "rate_per_s": 20.0, "workers": 3,
            **extra}


def failures(out: Path) -> dict[str, str]:
    table = pq.read_table(out / "failures")
    return dict(zip(table["clip_id"].to_pylist(), table["reason"].to_pylist()))


def test_fetch_writes_the_right_clips_failure_rows_and_a_manifest(ray_session, media, tmp_path):
    cfg = from_dict(FetchConfig, config(tmp_path, media))
    result = fetch(cfg)
    out = tmp_path / "out"
    assert result.counts["fetched"] == 4 and result.counts["failed_by_reason"] == {
        "unavailable": 1, "timeout": 1, "no_audio": 1}
    assert failures(out) == {f"{GONE}_0": "unavailable", f"{HANG}_0": "timeout", f"{SILENT}_0": "no_audio"}
    for i, ytid in enumerate(GOOD):  # each clip is its segment of its video
        clip, sr = sf.read(out / "audio" / f"{ytid}_{10000 * (i + 1)}.wav", dtype="float32")
        assert sr == SR and np.allclose(clip, source(ytid)[10 * (i + 1) * SR:10 * (i + 2) * SR], atol=2 ** -14)
    manifest = read_manifest(str(out / "manifest.csv")).table  # what extract reads
    assert sorted(manifest["clip_id"].to_pylist()) == sorted(f"{y}_{10000 * (i + 1)}" for i, y in enumerate(GOOD))
    assert manifest["labels"].to_pylist()[0] == ["/t/dd00128", "/m/09x0r"]
    row = manifest.to_pylist()[0]
    assert decode_clip(row["uri"], DecodeParams(), row["start_s"], row["end_s"]).orig_duration_s == pytest.approx(10.0)
    messages = dict(zip(*pq.read_table(out / "failures", columns=["clip_id", "message"]).to_pydict().values()))
    assert "Video unavailable (HTTP 404)" in messages[f"{GONE}_0"] and f"{TIMEOUT_S:g} s" in messages[f"{HANG}_0"]

    # a second run fetches nothing: every clip is there, every failure recorded
    before = dict(media.served)
    again = fetch(cfg)
    assert media.served == before
    assert again.counts["already_fetched"] == 4 and again.counts["already_failed"] == 3
    assert "fetched" not in again.counts


def test_rate_limit_spaces_the_starts(ray_session, media, tmp_path):
    rate = 5.0
    result = fetch(from_dict(FetchConfig, config(tmp_path, media, failing=(GONE, SILENT), rate_per_s=rate, workers=4)))
    arrivals = sorted(media.arrivals)  # each download asks the server once, after its start
    assert len(arrivals) == 6
    assert all(t >= result.record["first_slot"] + k / rate - 1e-3 for k, t in enumerate(arrivals))


def test_retry_failed_tries_the_failures_again(ray_session, media, tmp_path):
    cfg = config(tmp_path, media, failing=(GONE, SILENT), timeout_s=10.0)  # no hang here: room for a loaded machine
    fetch(from_dict(FetchConfig, cfg))
    result = fetch(from_dict(FetchConfig, {**cfg, "retry_failed": True}))
    assert result.counts["already_fetched"] == 4 and result.counts["failed"] == 2
    assert len(pq.read_table(tmp_path / "out" / "failures")) == 4  # each try is a row
    assert all(media.served[y] == 1 for y in GOOD)


#: Stand-ins for yt-dlp and ffmpeg, put first on PATH: each checks the arguments the default
#: command gives it and does its part with real audio files.
YT_DLP = textwrap.dedent('''
    import sys
    import numpy as np, soundfile as sf
    args = sys.argv[1:]
    assert args[args.index("--format") + 1] == "bestaudio", args
    template, url = args[args.index("--output") + 1], args[-1]
    assert template.endswith("/source.%(ext)s") and url.endswith("?v=vidgood0001"), args
    sf.write(template.replace("%(ext)s", "webm"), np.random.default_rng(1).uniform(-0.5, 0.5, 60 * 8000), 8000,
             format="WAV", subtype="FLOAT")
''')
FFMPEG = textwrap.dedent('''
    import sys
    import soundfile as sf
    args = sys.argv[1:]
    start, duration, source, out = (float(args[args.index("-ss") + 1]), float(args[args.index("-t") + 1]),
                                    args[args.index("-i") + 1], args[-1])
    assert source.endswith("/source.webm"), args  # the shell expanded source.*
    info = sf.info(source)
    x, sr = sf.read(source, start=round(start * info.samplerate), frames=round(duration * info.samplerate))
    sf.write(out, x, sr)  # the format of out's extension, as ffmpeg chooses
''')


def test_the_default_downloader_runs_yt_dlp_then_ffmpeg(tmp_path, monkeypatch):
    """The default command, rendered as a fetch renders it, run by /bin/sh with stand-ins for both tools."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in (("yt-dlp", YT_DLP), ("ffmpeg", FFMPEG)):
        (bin_dir / name).write_text(f"#!{sys.executable}\n{body}")
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    cfg = from_dict(FetchConfig, {"segments": str(tmp_path / "s.csv"), "output": str(tmp_path / "out")})
    downloader = Downloader(cfg.downloader, cfg.url_template, cfg.clip_format, cfg.timeout_s, cfg.max_bytes)
    segment = {"YTID": "vidgood0001", "start_s": 20.0, "end_s": 30.0, "clip_id": "vidgood0001_20000"}
    row = fetch_segment(segment, downloader, str(tmp_path / "out" / "audio"))
    assert row["ok"], row
    clip, sr = sf.read(tmp_path / "out" / "audio" / "vidgood0001_20000.flac", dtype="float32")
    expected = np.random.default_rng(1).uniform(-0.5, 0.5, 60 * 8000)[20 * 8000:30 * 8000]
    assert sr == 8000 and row["duration_s"] == 10.0 and np.allclose(clip, expected, atol=2 ** -14)


def test_bad_downloader_template_is_one_line(tmp_path, media, capsys):
    from acoustic_env.cli import main

    cfg = config(tmp_path, media)
    assert main(["audioset", "fetch", "--segments", str(tmp_path / "none.csv"), "--output", cfg["output"]]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "segments: no such file or directory" in err[0], err
    for template, message in (("curl {url} -o {clip}", "downloader: unknown placeholder(s) ['clip']"),
                              ("curl {url}", "downloader: must write the clip to {out}"),
                              ("yt-dlp -o {tmp}/x.%(ext)s {url} && cp {tmp}/x.* {out}",
                               "downloader: not a valid /bin/sh command")):
        assert main(["audioset", "fetch", "--segments", cfg["segments"], "--output", cfg["output"],
                     "--downloader", template]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err


@pytest.mark.slow
def test_a_killed_fetch_resumes_without_fetching_anything_twice(ray_session, tmp_path):
    server = MediaServer(delay_s=1.0)
    try:
        cfg = config(tmp_path, server, workers=1, rate_per_s=1.0)
        out = tmp_path / "out"
        argv = [sys.executable, "-m", "acoustic_env.cli", "audioset", "fetch", "--segments", cfg["segments"],
                "--output", cfg["output"], "--downloader", cfg["downloader"], "--url-template", cfg["url_template"],
                "--clip-format", "wav", "--timeout-s", f"{TIMEOUT_S:g}", "--rate-per-s", "1", "--workers", "1"]
        with open(tmp_path / "stderr.txt", "w") as err:
            proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.time() + 300  # a loaded 2-core machine starts Ray slowly
        while len(list((out / "audio").glob("*.wav"))) < 2:
            assert proc.poll() is None, f"the fetch ended before the kill: {(tmp_path / 'stderr.txt').read_text()[-2000:]}"
            assert time.time() < deadline, "no two clips fetched within 300 s"
            time.sleep(0.2)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        done = {p.name.split("_")[0] for p in (out / "audio").glob("*.wav")}
        assert 2 <= len(done) < len(GOOD), "the run was not stopped midway"
        served = dict(server.served)
        result = fetch(from_dict(FetchConfig, cfg))
        assert result.counts["already_fetched"] == len(done)
        assert all(server.served[y] == served[y] == 1 for y in done)  # nothing finished is fetched twice
        # the one download in flight at the kill (workers=1) may have been served to the orphaned downloader:
        # it made no clip, so it is fetched again; every other video once
        again = [y for y in GOOD if server.served[y] > 1]
        assert len(again) <= 1 and not set(again) & done and all(server.served[y] >= 1 for y in GOOD)
        assert set(failures(out).values()) == {"unavailable", "timeout", "no_audio"}
        assert len(pq.read_table(out / "failures")) == 3  # each failure recorded once
        assert read_manifest(str(out / "manifest.csv")).rows == len(GOOD)
    finally:
        server.close()


def test_fetch_to_object_storage(ray_session, s3_endpoint, media, tmp_path):
    import s3fs

    s3 = s3fs.S3FileSystem()
    s3.mkdir("fetch-test")
    cfg = config(tmp_path, media, failing=(GONE,), output="s3://fetch-test/audioset")
    result = fetch(from_dict(FetchConfig, cfg))
    assert result.counts["fetched"] == 4 and result.counts["failed_by_reason"] == {"unavailable": 1}
    s3.invalidate_cache()
    assert len(s3.ls("fetch-test/audioset/audio")) == 4
    manifest = read_manifest("s3://fetch-test/audioset/manifest.csv").table
    assert all(u.startswith("s3://fetch-test/audioset/audio/") for u in manifest["uri"].to_pylist())
    again = fetch(from_dict(FetchConfig, cfg))
    assert again.counts["already_fetched"] == 4 and again.counts["already_failed"] == 1
