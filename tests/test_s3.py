"""Input and output on s3:// against a real S3 endpoint on loopback (moto server mode).

Credentials and the endpoint reach s3fs only through the environment
(AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...), as on a real cluster.
"""

from __future__ import annotations

import http.server
import io
import json
import os
import subprocess
import sys
import threading

import pyarrow.parquet as pq
import pytest
import s3fs

from acoustic_env.config import ConfigError, ExtractConfig, from_dict
from acoustic_env.demo.synth import generate_demo
from acoustic_env.jobs.extract import extract


@pytest.mark.slow
def test_s3_round_trip(ray_session, s3_endpoint, tmp_path):
    fs = s3fs.S3FileSystem()
    fs.mkdir("acoustic-in")
    fs.mkdir("acoustic-out")
    demo = generate_demo(tmp_path / "demo", n_clips=6, seed=11, duration_s=2.0, n_broken=2)
    fs.put(str(demo.audio_dir) + "/", "acoustic-in/audio/", recursive=True)
    fs.put(str(demo.clips_csv), "acoustic-in/lists/clips.csv")
    cfg = from_dict(ExtractConfig, {"manifest": "s3://acoustic-in/lists/clips.csv",
                                    "audio_root": "s3://acoustic-in/audio",
                                    "output": "s3://acoustic-out/run1", "progress": False})
    result = extract(cfg)
    assert result.counts["ok"] == demo.n_good and result.counts["failed"] == demo.n_broken
    fs.invalidate_cache()
    parts = fs.glob("acoustic-out/run1/features/*.parquet")
    assert parts
    ids = [i for p in parts for i in pq.read_table(io.BytesIO(fs.cat_file(p)), columns=["clip_id"])["clip_id"].to_pylist()]
    assert len(ids) == len(set(ids)) == demo.n_good
    assert all(u.startswith("s3://acoustic-in/audio/") for p in parts
               for u in pq.read_table(io.BytesIO(fs.cat_file(p)), columns=["uri"])["uri"].to_pylist())
    errors = [pq.read_table(io.BytesIO(fs.cat_file(p))) for p in fs.glob("acoustic-out/run1/errors/*.parquet")]
    assert sum(t.num_rows for t in errors) == demo.n_broken
    run = json.loads(fs.cat_file(f"acoustic-out/run1/runs/{result.run_id}.json"))
    assert run["status"] == "completed"
    text = json.dumps(run)
    assert "testing" not in text and "AWS_SECRET" not in text  # no credentials in the record
    again = extract(cfg)
    assert again.counts["skipped"] == demo.n_good and again.counts["ok"] == 0


def test_missing_output_bucket_is_one_line_and_never_created(s3_endpoint, tmp_path):
    (tmp_path / "clips.csv").write_text("uri,labels\n/nonexistent/a.wav,urban\n")  # the manifest is checked first
    cfg = from_dict(ExtractConfig, {"manifest": str(tmp_path / "clips.csv"), "output": "s3://no-such-bucket/run1",
                                    "progress": False})
    with pytest.raises(ConfigError, match=r"^output: cannot write to s3://no-such-bucket/run1: it does not exist"):
        extract(cfg)
    fs = s3fs.S3FileSystem()
    fs.invalidate_cache()
    assert "no-such-bucket" not in fs.ls("")


class _DenyAll(http.server.BaseHTTPRequestHandler):
    """An S3 endpoint that refuses every request, as S3 does for wrong credentials."""

    def _deny(self) -> None:
        body = b"<?xml version='1.0'?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
        self.send_response(403)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _deny  # noqa: N815 - the stdlib's names

    def log_message(self, *args) -> None:
        pass


def test_refused_output_credentials_are_one_line(tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _DenyAll)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {**os.environ, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{server.server_address[1]}",
           "AWS_ACCESS_KEY_ID": "wrong", "AWS_SECRET_ACCESS_KEY": "wrong", "AWS_DEFAULT_REGION": "us-east-1"}
    (tmp_path / "clips.csv").write_text("uri,labels\n/nonexistent/a.wav,urban\n")  # the manifest is checked first
    try:
        out = subprocess.run([sys.executable, "-m", "acoustic_env.cli", "extract", "--manifest", "clips.csv",
                              "--output", "s3://bucket/run1"], env=env, cwd=tmp_path, capture_output=True, text=True,
                             timeout=120)
    finally:
        server.shutdown()
    assert out.returncode == 2 and "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "output: cannot write to s3://bucket/run1: permission denied" in lines[0]
