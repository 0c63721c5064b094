"""The expensive worlds, built once per test session and shared by every test that only reads them.

A world is anything that costs seconds to make: a trained report, a demo extract with a model
on it, the running ``acoustic-env serve`` service, a browser. Tests that change a world make
their own; tests that read one take it from here (conftest registers this module as a plugin),
so that no module rebuilds what another already built.
"""

from __future__ import annotations

import csv
import os
import queue
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import require, tone_clip
from documentation import section

import acoustic_env as ae
from acoustic_env.config import TrainConfig, from_dict
from acoustic_env.demo.quick_model import quick_model
from acoustic_env.demo.synth import generate_demo
from acoustic_env.demo.tables import synthetic_features, write_features
from acoustic_env.jobs.train.job import train

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

# ----------------------------------------------------------------------------- headless Chromium


@pytest.fixture
def browser(tmp_path, request):
    """Headless Chromium; a test module adds flags with a module-level ``CHROMIUM_FLAGS`` tuple."""
    require(CHROMIUM and CHROMEDRIVER,
            "headless browser test needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,1000",
                 "--autoplay-policy=no-user-gesture-required", *getattr(request.module, "CHROMIUM_FLAGS", ())):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def console_errors(driver) -> list[str]:
    """The page's console errors and failed loads so far (Chromium's browser log, level SEVERE)."""
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def fetched_elsewhere(driver, *allowed: str) -> list[str]:
    """Every resource the page loaded from outside ``allowed`` (prefixes): a page that works from disk has none."""
    names = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    return [n for n in names if not n.startswith(allowed)]


def wait_for(driver, script: str, timeout: float = 20.0):
    """The first truthy value of ``script`` in the page, polled until ``timeout``."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for: {script}")


#: A page's players are ready: every one has loaded its Ogg (its duration known), every spectrogram is decoded.
MEDIA_READY = """
const audio = [...document.querySelectorAll('audio')], imgs = [...document.querySelectorAll('img')];
return audio.length > 0 && imgs.length === audio.length
  && audio.every(a => a.readyState >= 1 && a.duration > 0.5 && !a.error)
  && imgs.every(i => i.complete && i.naturalWidth > 0);
"""


# ----------------------------------------------------------------------------- trained reports

REPORT_CLIPS = 90


@pytest.fixture(scope="session")
def report(ray_session, tmp_path_factory) -> Path:
    """``<train>/report/`` of a run on a train/val/test split (weak signal, flipped labels: there are mistakes)."""
    root = tmp_path_factory.mktemp("report")
    uris = [str(tone_clip(root / f"c{i}.wav", seconds=1.0, freq=250 + 40 * (i % 7), seed=i))
            for i in range(REPORT_CLIPS)]
    synth = synthetic_features(REPORT_CLIPS, seed=3, separation=0.5, flip=0.15, uris=uris, embedders=("vggish",),
                               signals=("raw", "fg"))
    features = write_features(synth.table, str(root / "extract"))
    train(from_dict(TrainConfig, {
        "features": features, "output": str(root / "train"), "trials": 0, "cv_folds": 0, "max_rounds": 3,
        "steps_per_round": 10, "baselines": ("logreg",), "ablations": False, "shap_samples": 0, "signals": ("raw",),
        "test_size": 0.3, "progress": False}))
    return root / "train" / "report"


@pytest.fixture(scope="session")
def cv_report(ray_session, tmp_path_factory) -> Path:
    """``<train>/report/`` of a run evaluated by 3-fold cross-validation (out-of-fold figures over every clip)."""
    root = tmp_path_factory.mktemp("cv_report")
    uris = [str(tone_clip(root / f"c{i}.wav", seconds=1.0, seed=i)) for i in range(60)]
    synth = synthetic_features(60, seed=4, separation=0.5, flip=0.15, uris=uris, signals=("raw",))
    train(from_dict(TrainConfig, {
        "features": write_features(synth.table, str(root / "extract")), "output": str(root / "train"), "trials": 0,
        "cv_folds": 3, "baselines": ("logreg",), "ablations": False, "shap_samples": 0, "progress": False}))
    return root / "train" / "report"


# ----------------------------------------------------------------------------- a model on real clips

#: the feature groups of the model on real clips: one of each kind, and YAMNet so that tags come back
MODEL_GROUPS = ["indices_raw", "spectral_fg", "mps_bg", "yamnet"]


@pytest.fixture(scope="session")
def clips_model(ray_session, tmp_path_factory):
    """(demo clips with one broken file, their extract output, a model trained on it, the weights cache).

    The extract is the real job on Ray with YAMNet (seeded random weights: no download), the model
    ``demo.quick_model`` (no Ray) on that table.
    """
    root = tmp_path_factory.mktemp("clips_model")
    data = generate_demo(root / "data", n_clips=13, duration_s=2.0, n_broken=1, seed=11)
    out, cache, model = root / "features", root / "no-weights", root / "model"
    ae.extract(str(data.clips_csv), str(out), audio_root=str(data.audio_dir), embedders=["yamnet"],
               allow_random_weights=True, weights_cache=str(cache), progress=False)
    quick_model(str(out), str(model), feature_groups=MODEL_GROUPS, include_random_weights=True)
    return data, out, model, cache


# ----------------------------------------------------------------------------- the demo, run once


def choosing_commands() -> list[str]:
    """The shell commands of the "Choosing a model" page, in order (a ``\\`` line break joined)."""
    text = section("Choosing a model: the grid")
    return [c.replace("\\\n", " ") for b in re.findall(r"```sh\n(.*?)```", text, re.S)
            for c in re.split(r"(?<!\\)\n", b.strip())]


#: what only a shell reads (pipes, redirections, quotes, globs, expansions): a documented command without any is what
#: ``shlex.split`` makes of it
SHELL_SYNTAX = re.compile(r"[|&;<>()$`*?'\"\\~]")


def run_as_written(command: str, capfd: pytest.CaptureFixture[str]) -> str:
    """A documented ``acoustic-env ...`` line as written, through ``cli.main`` in this process: exit status 0 and no
    traceback on the console; its stdout. A subprocess would add an interpreter, the package's imports and, for a job
    on Ray, a local Ray instance of its own: the console entry point and a command's own Ray are tested through the
    demo's command (tests/test_console.py)."""
    from acoustic_env.cli import main

    assert not SHELL_SYNTAX.search(command), f"shell syntax: run it in a shell: {command}"
    argv = shlex.split(command)
    assert argv[0] == "acoustic-env", command
    code = main(argv[1:])
    out, err = capfd.readouterr()
    assert code == 0, f"{command}\n{out}\n{err}"
    assert "Traceback" not in out + err, command
    return out


def shell_env() -> dict[str, str]:
    """The environment a user's shell has after ``source .venv/bin/activate``, on this checkout's package."""
    root = str(Path(__file__).resolve().parents[1])  # this checkout's package, whichever one is installed
    user = {k: v for k, v in os.environ.items() if k != "ACOUSTIC_ENV_EMBEDDERS"}  # the default, auto, as a user has it
    return {**user, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "PYTHONPATH": os.pathsep.join([root, *filter(None, [os.environ.get("PYTHONPATH")])])}


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """(the working directory, the finished process) of ``acoustic-env demo`` as the "Choosing a model"
    page writes it: ``make demo``'s command with a size (tests/test_console.py holds the two together).
    Generate → extract (the default embedders: BirdNET, pretrained; six broken files) → train → audit, on its own
    local Ray; the console test reads its output, the grid walk-through trains on its table."""
    cwd = tmp_path_factory.mktemp("demo_run")
    r = subprocess.run(choosing_commands()[0], shell=True, cwd=cwd, env=shell_env(), capture_output=True,
                       text=True, timeout=1800)
    return cwd, r


# ----------------------------------------------------------------------------- the running service

#: the service's limits: small, so that the tests can cross them cheaply
MAX_UPLOAD_MB, MAX_DURATION_S, TIMEOUT_S = 1.0, 5.0, 8.0


class _Files(SimpleHTTPRequestHandler):
    """Serves the test's directory; anything under /slow/ answers only after 3 x the service's timeout."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if self.path.startswith("/slow/"):
            time.sleep(3 * TIMEOUT_S)
        self.path = "/" + self.path.split("/", 2)[-1]  # /ok/x.flac and /slow/x.flac are x.flac
        super().do_GET()

    def log_message(self, *args) -> None:
        pass


class _FileServer(ThreadingHTTPServer):
    """The world's file server. A client that hung up is not its error: the service gives up on /slow/ at its
    timeout, and socketserver would print the broken pipe's traceback 24 s later into whichever test then
    reads its captured stderr (two one-line-error tests of test_windows.py failed so, run in one process)."""

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@pytest.fixture(scope="session")
def serve_world(clips_model, tmp_path_factory):
    """(directory of good clips, model, weights cache, a 16-bit WAV of a demo clip, file server URL)."""
    data, _, model, cache = clips_model
    clips = tmp_path_factory.mktemp("serve") / "clips"
    clips.mkdir()
    truth = csv.DictReader(data.truth_csv.open())
    good = {r["clip_id"] for r in truth if r["broken"] == "0"}
    for flac in sorted(data.audio_dir.glob("*.flac")):
        if flac.stem in good:
            shutil.copy(flac, clips / flac.name)
    audio, sr = sf.read(sorted(clips.glob("*.flac"))[0], dtype="float32")
    wav = clips / "street corner.wav"
    sf.write(wav, audio, sr, subtype="PCM_16")
    server = _FileServer(("127.0.0.1", 0), partial(_Files, directory=str(clips)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield clips, model, cache, wav, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


@pytest.fixture(scope="session")
def serve_long(serve_world) -> Path:
    """A recording of MAX_DURATION_S: the serve world's WAV twice, then its first second (windows of its 2 s)."""
    wav = serve_world[3]
    audio, sr = sf.read(wav, dtype="int16")
    long = wav.parent.parent / "long walk.wav"
    sf.write(long, np.concatenate([audio, audio, audio[:sr]]), sr, subtype="PCM_16")
    return long


def serve_readme_commands() -> list[str]:
    """The shell lines of the README's "Serve a model" section, in order."""
    text = section("Serve a model")
    return [line for block in re.findall(r"```sh\n(.*?)```", text, re.S) for line in block.splitlines() if line]


def _lines(stream, out: queue.Queue) -> None:
    for line in stream:
        out.put(line)


#: how to end each running world now, registered while it runs: ``tests/conftest.py`` ends it after the last test that
#: reads it (``ENDED_AFTER_LAST_READER``) instead of minutes later with the session
running: dict[str, Callable[[], None]] = {}


@pytest.fixture(scope="session")
def service(serve_world):
    """(base URL, the process, its stdout lines so far, the queue of later ones) of the README's
    ``acoustic-env serve``, with small limits and batching, on its own local Ray. It ends (and is
    checked to stop cleanly) after the last test that reads it: idle, a Ray Serve application costs
    5 CPU-seconds a minute."""
    clips, model, cache, wav, files = serve_world
    [command] = [c for c in serve_readme_commands() if c.startswith("acoustic-env serve ")]
    argv = shlex.split(command.replace("trained/model", str(model)).replace("--port 8000", "--port 0"))
    proc = subprocess.Popen([sys.executable, "-m", "acoustic_env.cli", *argv[1:],
                             "--weights-cache", str(cache), "--max-upload-mb", str(MAX_UPLOAD_MB),
                             "--max-duration-s", str(MAX_DURATION_S), "--request-timeout-s", str(TIMEOUT_S),
                             "--allowed-url-prefixes", f"{files}ok/,{files}slow/",
                             "--batch-max-size", "4", "--batch-wait-s", "0.05"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env={k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"})  # its own local Ray
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_lines, args=(proc.stdout, lines), daemon=True).start()
    seen: list[str] = []
    base: list[str] = []  # the service's URL, once it is up

    def end() -> None:
        running.pop("service", None)
        try:
            if base and proc.poll() is None:
                _stops_cleanly_on_sigterm(base[0], proc, seen, lines)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    try:
        deadline = time.time() + 300
        while not any(line.startswith("serve: http") for line in seen):
            assert time.time() < deadline and proc.poll() is None, f"serve did not start: {seen} {proc.stderr.read()}"
            try:
                seen.append(lines.get(timeout=1))
            except queue.Empty:
                pass
        base.append(seen[-1].split()[1])
        running["service"] = end
        yield base[0], proc, seen, lines
    finally:
        if "service" in running or proc.poll() is None:
            end()


def _stops_cleanly_on_sigterm(base: str, proc: subprocess.Popen, seen: list[str], lines: queue.Queue) -> None:
    """The service's last check, once every test is done with it: SIGTERM shuts it down cleanly
    (exit 0, "serve: stopped", no traceback, the HTTP proxy gone). A failure here is an error at
    the teardown of the session's last test that used the service."""
    port = int(base.rstrip("/").rsplit(":", 1)[1])
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(120) == 0
    time.sleep(0.5)
    rest = []
    while not lines.empty():
        rest.append(lines.get())
    assert seen[0].startswith("serve: details and Ray's output go to ") and rest[-1] == "serve: stopped\n", rest
    assert "Traceback" not in proc.stderr.read()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass  # the HTTP proxy is gone with it
