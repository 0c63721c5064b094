"""Every shell command of the documentation (README and docs/) is run: the job pages' commands here, the rest by named tests.

The job pages (docs/: Extract, Train, Audit, Near-duplicates, Annotate) write their examples
against an AudioSet segment list, ``/data/audioset`` and ``s3://bucket``. Here the segment list is
the demo generator's (real FLAC files in AudioSet's ``<YTID>_<start_ms>`` layout), ``/data/audioset``
a local folder of them, and ``s3://bucket`` a fresh bucket on the loopback S3 server (moto). Each
command runs exactly as written, after only those substitutions, in the site's order (``documentation.pages``),
through ``cli.main`` in this process (``worlds.run_as_written``) on the session's Ray instance, with a fresh S3 client
as a new process has; ``audit-review --serve``, which runs until Ctrl-C, in a process of its own. (A subprocess per
command cost an interpreter and the package's imports each, eight times, and a local Ray instance for each train.)
Commands of the other sections are run by the tests that ``ELSEWHERE`` names, and
``test_every_readme_command_is_run_somewhere`` fails when a command appears that nobody runs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import documentation
import pyarrow.parquet as pq
import pytest

from acoustic_env.demo.synth import generate_demo
from worlds import run_as_written

ROOT = Path(__file__).resolve().parents[1]

#: the pages (or README sections) whose commands this module runs
RUN_HERE = ("Extract", "Train", "Audit", "Near-duplicates", "Annotate")
#: the other sections with shell commands, and the test (or CI step) that runs their commands as written
ELSEWHERE = {
    "Quickstart": "tests/test_console.py",  # make demo's command (make test is .ci/run's)
    "Guide: your own recordings": "tests/test_readme_guide.py",
    "Recipes": "tests/test_recipes.py",
    "AudioSet embeddings": "tests/test_audioset_embeddings.py",
    "AudioSet from its segment lists": "tests/test_audioset_sample.py",
    "Run on a cluster": "tests/test_cluster_integration.py",
    "Serve a model": "tests/test_serve.py",
    "Choosing a model: the grid": "tests/test_grid.py",
    "Search by example": "tests/test_search_by_example.py",
    "Curating labels": "tests/test_labels_guide.py",
    "Soundscapes over time": "tests/test_soundscape_job.py",
}


def test_every_readme_command_is_run_somewhere():
    commands = documentation.commands()
    assert len(commands) >= 20
    for section, command in commands:
        assert section in RUN_HERE or section in ELSEWHERE, f"nobody runs the README's `{command}` ({section})"
    for section, runner in ELSEWHERE.items():
        words = {c.split()[1] for s, c in commands if s == section and c.startswith("acoustic-env ")}
        text = (ROOT / runner).read_text()
        if section == "Quickstart":  # make demo's command (read from the Makefile) in a test; make test in CI
            assert "makefile_demo()" in text and "demo_run" in text and "make test" in (ROOT / ".ci" / "run").read_text()
            assert {c for s, c in commands if s == section} == {"make demo", "make test"}
            continue
        if runner == "tests/test_readme_guide.py":  # it executes the guide's blocks themselves, line by line
            assert 'split("\\n## Guide: your own recordings\\n"' in text
            continue
        for word in words:  # the runner invokes that subcommand
            assert f'"{word}"' in text or f"acoustic-env {word}" in text, \
                f"{runner} does not run `acoustic-env {word}` ({section})"


def _substitute(command: str, bucket: str, audioset: Path) -> str:
    command = re.sub(r"\[(--[^\]]+)\]", r"\1", command)  # an optional flag shown in brackets: run it too
    return command.replace("s3://bucket", f"s3://{bucket}").replace("/data/audioset", str(audioset))


@pytest.mark.slow
def test_reference_commands_run_as_written(s3_endpoint, ray_session, tmp_path, monkeypatch, capfd):
    import s3fs

    bucket = f"readme-{uuid.uuid4().hex[:8]}"
    s3 = s3fs.S3FileSystem()
    s3.mkdir(bucket)
    # the collection the examples name: an AudioSet segment list and its audio, 32 clips of 2 s
    data = generate_demo(tmp_path / "generated", n_clips=32, duration_s=2.0, n_broken=1, seed=5)
    shutil.copy(data.clips_csv, tmp_path / "eval_segments.csv")
    audioset = tmp_path / "audioset"
    shutil.copytree(data.audio_dir, audioset)
    # annotate's new list: other clips, their audio under s3://bucket/audio
    new = generate_demo(tmp_path / "generated-new", n_clips=6, duration_s=2.0, n_broken=0, seed=6)
    shutil.copy(new.clips_csv, tmp_path / "new_clips.csv")
    s3.put(str(new.audio_dir) + "/", f"{bucket}/audio/", recursive=True)

    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    commands = [_substitute(c, bucket, audioset) for s, c in documentation.commands() if s in RUN_HERE]
    assert [c.split()[1] for c in commands] == [
        "extract", "train", "train", "audit", "audit-review", "audit-estimate", "duplicates", "duplicates", "annotate"]

    monkeypatch.chdir(tmp_path)
    for command in commands:
        if command.split()[1] == "train" and "demo-output/extract" in command:
            # the demo's layout: its extract output, copied from the bucket
            s3.get(f"{bucket}/features-v1/", str(tmp_path / "demo-output" / "extract"), recursive=True)
        if command.split()[1] == "audit-review":
            _review_server(command, tmp_path, env)
            continue
        s3fs.S3FileSystem.clear_instance_cache()  # no listing cached by an earlier command: as in a new process
        run_as_written(command, capfd)

    # what the commands left behind, read back (a fresh listing: the commands wrote behind this client's cache)
    s3.invalidate_cache()
    features = pq.read_table(f"{bucket}/features-v1/features", filesystem=s3)
    errors = pq.read_table(f"{bucket}/features-v1/errors", filesystem=s3)
    assert features.num_rows + errors.num_rows == data.n_good + data.n_broken + new.n_good  # every clip, once
    assert errors.num_rows == data.n_broken
    assert s3.exists(f"{bucket}/model-v1/model/model.json")
    assert (tmp_path / "demo-output" / "train" / "model" / "model.json").is_file()
    assert pq.read_table(f"{bucket}/audit-v1/audit.parquet", filesystem=s3).num_rows > 0
    estimate = json.loads((tmp_path / "accuracy.json").read_text())
    assert estimate["overall"]["n"] == 1
    assert "share" in pq.read_schema(tmp_path / "pairs.parquet").names  # the chunk mode's pairs, written last
    annotations = pq.read_table(f"{bucket}/annotations/annotations", filesystem=s3)
    assert annotations.num_rows == 6


def _review_server(command: str, cwd: Path, env: dict[str, str]) -> None:
    """``audit-review --serve`` runs until stopped: fetch its page, post one verdict as the page does, stop it."""
    with subprocess.Popen(command, shell=True, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, start_new_session=True) as proc:
        try:
            line = proc.stdout.readline()
            url = re.search(r"http://127\.0\.0\.1:\d+/", line)
            assert url, f"{command}: {line}{proc.stderr.read() if proc.poll() is not None else ''}"
            page = urllib.request.urlopen(url.group(0) + "index.html", timeout=30).read().decode()
            clip = re.search(r'"clip_id":\s*"([^"]+)"', page)
            assert clip, "the review page lists no clip"
            verdict = {"clip_id": clip.group(1), "given_labels": ["urban"], "verdict": "correct", "sample": "random"}
            req = urllib.request.Request(url.group(0) + "api/verdicts", data=json.dumps(verdict).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
            assert json.loads(urllib.request.urlopen(req, timeout=30).read())["total"] == 1
        finally:
            os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)  # never a hang: the test fails on the timeout
                raise
