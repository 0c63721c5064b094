"""Shared fixtures: one Ray instance and one loopback S3 server per test session, and the rule for
what a test may skip.

The S3 endpoint (moto in server mode, as s3fs's own tests use) is one server for the session;
a test that uses it gets the endpoint and dummy credentials in its environment for its own
duration only (``s3_endpoint``), so nothing leaks into later tests. Ray's workers get the same
variables from the environment the session's instance started with, exactly as a cluster's
workers inherit real ones from their nodes.

A test that needs something the machine may lack (Chromium, ``../shared``, a tool) calls
:func:`require`: it skips with the reason on a developer's machine, which ``-ra`` lists at the
end of the run, and fails with the reason in CI (``CI=true``), where a missing browser or
reference data must not turn into a green run that tested less.
"""

from __future__ import annotations

import os

# One native thread per process (OpenMP, OpenBLAS; torch reads it when it loads), here and in every subprocess and
# Ray worker the tests start: ``make test`` runs two test processes on two cores, and a second thread per process
# on cores that are already busy costs far more than it gains (an MLP fit: 11-40 s against 1.2 s).
# Set before numpy and torch load, as a CI runner's environment would.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
# Ray's workers at the test processes' priority, not Ray's default nice 15 (every Ray instance the tests start reads
# it: the session's, a subprocess's, a `ray start` node's). At nice 15 a Ray worker gets about 3 % of a core that a
# test process also wants: the data-parallel CNN test took 426 s beside two busy processes, 90 s at nice 0, and the
# Ray daemons' polling over the longer wait cost more CPU (114 CPU-s against 90) in a suite that is CPU-bound.
os.environ.setdefault("RAY_worker_niceness", "0")
# No usage report from the suite's Ray instances (a CI runner's choice, as Ray documents it): each instance that runs a
# job otherwise starts a _UsageCollectionActor, a process of about 3 CPU-s.
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# What extract's default `--embedders auto` stands for in the suite: none. With the birdnet extra installed, auto runs
# BirdNET (about 0.4 CPU-s a clip and 2 s to load, in every extract of every test); the tests of the default path
# itself (the README guide, make demo's command: tests/worlds.py's shell_env, tests/test_embedders_auto.py) clear it.
os.environ.setdefault("ACOUSTIC_ENV_EMBEDDERS", "none")

import logging
import socket
import sys
import time
from collections.abc import Iterator
from unittest import mock

# Python's bytecode cache on (Python's default) where the environment turned it off (PYTHONDONTWRITEBYTECODE, as on
# this project's CI machine): else every test process rewrites the asserts of every test module again (4 CPU-s each)
# and every subprocess and Ray worker the suite starts compiles the package's modules from source.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
sys.dont_write_bytecode = False
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
pytest_plugins = ["worlds"]  # the shared worlds: tests/worlds.py

IN_CI = os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")

#: The dummy credentials of the loopback S3 server: in a test's environment only while it runs.
S3_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
#: The Ray instance's settings (like the CI machine: 2 CPUs); a different live instance is replaced.
RAY_CPUS = 2


def require(condition: object, reason: str) -> None:
    """Go on only if ``condition``: else skip with ``reason`` here, and fail with it in CI."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required in CI (CI=true): {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session", autouse=True)
def _one_pca_rule():
    """In-process trains keep one PCA count rule, the default's (``learn.preprocess.RULES``): the rule's search runs
    the feature sets' choice once more on every small table, the suite's tables all are, and only the tests that ask
    for it (``tuned_pca_rules``) read what it chooses. The demo, the README's commands and every command run in a
    subprocess or on Ray keep the search."""
    from acoustic_env.learn import preprocess

    searched = preprocess.RULES
    preprocess.RULES = (preprocess.ROWS_PER_COMPONENT,)
    yield searched
    preprocess.RULES = searched


@pytest.fixture
def tuned_pca_rules(_one_pca_rule, monkeypatch) -> None:
    """The PCA count rule searched as a user's train searches it (``_one_pca_rule``)."""
    from acoustic_env.learn import preprocess

    monkeypatch.setattr(preprocess, "RULES", _one_pca_rule)


@pytest.fixture
def mlp_ways(monkeypatch) -> list[str]:
    """How each MLP fit of the test is fitted, in order ("at once" or "in rounds", ``learn.mlp_estimator``); its
    rounds capped at 2 (the rounds themselves are ``test_fit.py``'s)."""
    from acoustic_env.candidates import PARAMS
    from acoustic_env.learn import mlp_estimator

    seen: list[str] = []
    at_once, rounds = mlp_estimator.full_batch, mlp_estimator.fit
    monkeypatch.setattr(mlp_estimator, "full_batch", lambda *a, **k: (seen.append("at once"), at_once(*a, **k))[1])
    monkeypatch.setattr(mlp_estimator, "fit", lambda *a, **k: (seen.append("in rounds"), rounds(*a, **k))[1])
    monkeypatch.setitem(PARAMS["mlp"], "max_rounds", 2)
    return seen


@pytest.fixture
def unmapped() -> Iterator[str]:
    """The elastic net registered again, under its own name, as a model that chooses no probability map on its inner
    folds, as the CNN does (``CandidateSpec.calibrated``); unregistered after the test."""
    from dataclasses import replace

    from acoustic_env import candidates

    spec = candidates.register(replace(candidates.get("elasticnet"), name="unmapped", calibrated=False))
    yield spec.name
    candidates.unregister(spec.name)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    """Under ``benchmarks/suite_cpu.py``: each test's CPU in this process (its setup, call and teardown) appended to
    the file it names, for its table of tests, which otherwise sees only the processes a test starts."""
    path = os.environ.get("SUITE_CPU_TESTS")
    start = time.process_time()
    yield
    if path:
        with open(path, "a") as out:
            out.write(f"{item.nodeid} {time.process_time() - start:.3f}\n")


@pytest.fixture(autouse=True)
def _isolated():
    """Each test leaves the process as it found it: its environment variables, the root logger,
    and the console policy a command run in-process may set (``session.quiet_console``: the log
    file, fd 2, the warnings capture), so that no test's settings reach a later one."""
    from acoustic_env.distributed import session

    environ = dict(os.environ)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    stderr, stderr_fd = sys.stderr, os.dup(2)
    yield
    if session._log_file is not None:  # the policy was set: undo it
        session._file_handler.close()
        session._log_file = session._file_handler = None
        logging.captureWarnings(False)
    sys.stderr = stderr
    os.dup2(stderr_fd, 2)
    os.close(stderr_fd)
    root.handlers[:] = handlers
    root.setLevel(level)
    os.environ.clear()
    os.environ.update(environ)


def parse_python(source: str, filename: str = "<unknown>") -> "ast.Module":
    """``ast.parse``, tried once more on CPython 3.11's spurious "AST constructor recursion depth mismatch"
    SystemError (python/cpython#106905, fixed in 3.11.8): with other threads of the test process compiling at the
    same time, a parse of an unchanged file failed once in the suite."""
    import ast

    try:
        return ast.parse(source, filename)
    except SystemError as exc:
        if "recursion depth mismatch" not in str(exc):
            raise
        return ast.parse(source, filename)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    require((SHARED / "audioset" / "ontology.json").is_file(),
            f"reference data not found at {SHARED} (../shared is absent in a user's clone)")
    return SHARED


@pytest.fixture(scope="session")
def s3_server() -> str:
    """A real S3 API on 127.0.0.1 (moto server mode) for the whole session: its endpoint."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def s3_environment(endpoint: str) -> dict[str, str]:
    """The variables an S3 client reads: the loopback endpoint and the dummy credentials."""
    return {"AWS_ENDPOINT_URL": endpoint, **S3_CREDENTIALS}


@pytest.fixture
def s3_endpoint(s3_server, monkeypatch) -> str:
    """The loopback S3 endpoint, with it and the credentials in this test's environment only.

    fsspec caches filesystems by their options, not by the environment: the cache is cleared on
    the way in and out, so no client made here outlives the test.
    """
    import s3fs

    for key, value in s3_environment(s3_server).items():
        monkeypatch.setenv(key, value)
    s3fs.S3FileSystem.clear_instance_cache()
    yield s3_server
    s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture(scope="session")
def ray_session(s3_server):
    """The session's local Ray instance: 2 CPUs, the S3 variables in its workers' environment."""
    import ray

    _ensure_ray(s3_server)
    yield ray
    if ray.is_initialized():
        ray.shutdown()


@pytest.fixture(autouse=True)
def _ray_as_the_session_left_it(request):
    """Before each test that uses ``ray_session``: the session's instance, started afresh if an
    earlier test shut it down or left one with other settings in its place."""
    if "ray_session" in request.fixturenames:
        _ensure_ray(request.getfixturevalue("s3_server"))


_ray_gcs: list[str] = []  # the GCS address of the instance this session started


def _ensure_ray(endpoint: str) -> None:
    """The session's instance, with the settings the product gives a local one (``LOCAL_SYSTEM_CONFIG``)."""
    import ray

    from acoustic_env.distributed.session import LOCAL_SYSTEM_CONFIG

    if ray.is_initialized():
        if _ray_gcs and ray.get_runtime_context().gcs_address == _ray_gcs[-1]:
            return
        ray.shutdown()  # not the session's instance: another test's, with its own settings
    # The S3 variables in this process's environment while the instance starts only: its raylet inherits them and
    # passes them to every worker, as a node's environment reaches a cluster's workers. Not a runtime_env: with one
    # Ray starts each worker through its setup_worker, a second interpreter that imports Ray (about 1 CPU-s a worker).
    with mock.patch.dict(os.environ, s3_environment(endpoint)):
        for attempt in (1, 2):  # address="local": never another test's `ray start` cluster
            try:
                ray.init(address="local", num_cpus=RAY_CPUS, include_dashboard=False, log_to_driver=False,
                         _system_config=LOCAL_SYSTEM_CONFIG)
                break
            except Exception:  # a loaded machine: Ray's raylet gives its agents 15 s (ray-project/ray#65983)
                ray.shutdown()
                if attempt == 2:
                    raise
    _ray_gcs.append(ray.get_runtime_context().gcs_address)


def tone_clip(path: Path, seconds: float = 1.5, sr: int = 16000, freq: float = 440.0, channels: int = 1,
              subtype: str = "PCM_16", seed: int = 0) -> Path:
    """A small real audio file: a tone plus noise, so every feature has something to measure."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    x = 0.3 * np.sin(2 * np.pi * freq * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t)) + 0.05 * rng.standard_normal(t.size)
    data = np.repeat(x[:, None], channels, axis=1) if channels > 1 else x
    sf.write(path, data.astype(np.float32), sr, subtype=subtype)
    return path


def mixed_clips(folder: Path) -> Path:
    """``folder`` with three tones of two lengths and one file that is not audio: a batch with buckets and an
    error row, as the torch feature path and the device stage are tested on."""
    folder.mkdir(parents=True, exist_ok=True)
    tone_clip(folder / "a.wav", seconds=1.0)
    tone_clip(folder / "b.wav", seconds=0.75, freq=880.0, seed=1)
    tone_clip(folder / "c.wav", seconds=1.0, freq=2000.0, seed=2)
    (folder / "d.wav").write_bytes(b"not audio at all")
    return folder


# ----------------------------------------------------------------------------- the slow marker

#: a test not marked slow should stay under this (seconds, the 2-core machine); make check relies on it
FAST_LIMIT_S = 10.0
_unmarked_slow: list[tuple[str, float]] = []
_START = time.monotonic()  # when conftest was loaded: the run's start, to within its collection
_worker_times: dict[str, tuple[float, float]] = {}  # test process -> (its last report, seconds, since _START; in tests)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" and report.duration > FAST_LIMIT_S and "slow" not in report.keywords:
        _unmarked_slow.append((report.nodeid, report.duration))
    worker = getattr(report, "node", None)  # under -n: the test process that ran it (pytest-xdist sets it)
    if worker is not None:
        busy = _worker_times.get(worker.gateway.id, (0.0, 0.0))[1]
        _worker_times[worker.gateway.id] = (time.monotonic() - _START, busy + report.duration)


def pytest_terminal_summary(terminalreporter) -> None:
    """Name the tests that took over FAST_LIMIT_S without the slow marker (a loaded machine can cause it); under
    ``-n``, when each test process ended its last test and how long it spent in tests, so that a run's log shows
    whether the processes finished together (the order of ``pytest_collection_modifyitems``) or one ran on alone."""
    if _unmarked_slow:
        terminalreporter.section(f"not marked slow, over {FAST_LIMIT_S:g} s")
        for nodeid, seconds in sorted(_unmarked_slow, key=lambda x: -x[1]):
            terminalreporter.write_line(f"{seconds:6.1f} s  {nodeid}")
    if _worker_times:
        terminalreporter.section("test processes: last test ended, time in tests")
        for worker, (ended, busy) in sorted(_worker_times.items(), key=lambda x: -x[1][0]):
            terminalreporter.write_line(f"{worker}: {ended:6.0f} s into the run, {busy:6.0f} s in tests")


# ----------------------------------------------------------------------------- parallel runs (pytest-xdist)

#: modules that read the same session world (tests/worlds.py) run in one process, so that the world is built
#: once; checked against the fixtures each module really uses whenever the suite is collected
WORLD_GROUPS = {
    "test_console": "demo_run", "test_grid": "demo_run",
    "test_report": "report", "test_eda": "report", "test_duplicates": "report",
    "test_predict": "clips_model", "test_serve": "clips_model", "test_serve_page": "clips_model",
    "test_windows": "clips_model", "test_new_class": "clips_model",
}


#: the groups that took longest in a measured run (make test, 2 cores, 2026-11-24; 35 s and more), started first so
#: that no long group starts last and leaves one process working alone; the rest by their slow tests. The
#: data-parallel CNN (about eight Ray Train actors) starts fifth, not beside the cluster and the demo: started with
#: them it took 160 s in a fresh clone's suite (47 s alone), started fifth 102 s
#: (the suite 636 s against 670, a run each)
LONGEST_FIRST = ("test_cluster_integration", "demo_run", "test_s3_faults", "test_train", "test_cnn_train",
                 "clips_model", "test_robustness", "test_readme_reference", "report", "test_hostile", "test_soak",
                 "test_recipes", "test_readme_guide", "test_pipeline", "test_audioset_fetch")


def group_of(nodeid: str) -> str:
    """A test's process group under ``-n``: its module's world group, else its module."""
    module = nodeid.split("::", 1)[0].rsplit("/", 1)[-1].removesuffix(".py")
    return WORLD_GROUPS.get(module, module)


def pytest_xdist_make_scheduler(config, log):
    """Under ``-n N`` (make test): each group of :func:`group_of` runs in one process, in order, so that a
    module's fixtures and a shared world are built once. (xdist's own ``--dist loadgroup`` cannot do this
    with pytest 9: it renames ``item._nodeid``, which pytest 9 no longer reads.)"""
    from xdist.scheduler import LoadScopeScheduling

    if config.getvalue("dist") != "load":  # another --dist asked for by name: as asked
        return None
    # LoadScope's default reorders the groups by their number of tests, which undid the longest-first order of
    # pytest_collection_modifyitems: a one-test group (the soak) ran last, alone, for a minute
    config.option.loadscopereorder = False

    class ByGroup(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return group_of(nodeid)

    return ByGroup(config, log)


# ----------------------------------------------------------------------------- the integration marker

#: fixtures that make a test an integration one, which `make check` leaves out: the session's Ray instance (and the
#: worlds built on it), a browser, the demo run by make demo's command
INTEGRATION_FIXTURES = {"ray_session", "browser", "demo_run"}


#: tests that run a whole job end to end (train, audit, extract, predict, a command over a table or a real model's
#: conversion: 15-130 s each on two loaded cores, about a third of the unit layer's CPU), by module or by test:
#: integration tests too, which `make check` leaves out (docs/development.md, "Tests")
WHOLE_JOBS = tuple(f"tests/{name}" for name in (
    "test_audit.py::", "test_saved_average.py::", "test_balance.py::", "test_soundscape_job.py::",
    "test_cnn_score.py::", "test_cnn_train.py::", "test_birdnet_converted.py::",
    "test_augment.py::test_train_records_the_resampling", "test_birdnet.py::test_extract_train_and_predict",
    "test_fast_features.py::test_indices_match_scikit_maad", "test_cv.py::test_the_ablations_cross_validate",
    "test_cv.py::test_train_cross_validates_over_given_folds", "test_labels_jobs.py::test_train_with_the_corrected",
    "test_multilabel_parity.py::test_a_multi_label_table_trains", "test_device_stage.py::test_the_device_stage_gives",
    "test_dry_run.py::test_extract_dry_run_counts",
    "test_dry_run.py::test_train_with_too_few_clips", "test_hostile.py::test_predict_on_the_catalogue",
    "test_feature_sets.py::test_the_settings_search_takes_the_defaults_score", "test_suite_rules.py::test_a_missing_",
    "test_audioset_embeddings.py::test_command_converts", "test_candidates.py::test_train_compares_a_vector_toy",
    "test_spectral.py::test_cpu_features_columns_stage_and_switch", "test_bounded.py::test_every_reader_refuses_a_fifo",
    "test_docs.py::test_the_site_builds", "test_audit_job.py::test_an_audit_writes_the_documented_summary",
    "test_audioset_sample.py::test_cli_samples_the_real", "test_recipes.py::test_command_prints_a_summary",
    "test_embedders.py::test_panns_checkpoint_in_official_format", "test_feature_sets.py::test_train_saves_the_model",
    "test_feature_sets.py::test_each_outer_fold_chooses_its_set"))


def pytest_itemcollected(item: pytest.Item) -> None:
    """Mark ``integration`` each test whose fixtures start Ray, a browser or the demo, and each whole job
    (``WHOLE_JOBS``), as it is collected: before ``-m`` selects (the tests that start them otherwise, a Ray cluster or
    a documented command run as written, say so themselves)."""
    if "integration" not in item.keywords and (INTEGRATION_FIXTURES & set(getattr(item, "fixturenames", ()))
                                               or item.nodeid.startswith(WHOLE_JOBS)):
        item.add_marker(pytest.mark.integration)


@pytest.hookimpl(trylast=True)  # after -m and -k have deselected: the order of the tests that will run
def pytest_collection_modifyitems(config, items: list[pytest.Item]) -> None:
    """The longest groups first (LONGEST_FIRST), then the other groups that use the session's Ray instance, then
    the rest, each part by its number of slow tests, so that the processes finish close together instead of one
    waiting on a long group that started last, and each process can end its Ray instance once past the last group
    that uses it; and WORLD_GROUPS checked against the session worlds each collected module really uses (a module
    that starts reading a world must join its group)."""
    uses: dict[str, set[str]] = {}
    slow: dict[str, int] = {}
    on_ray: set[str] = set()
    for item in items:
        group = group_of(item.nodeid)
        slow[group] = slow.get(group, 0) + ("slow" in item.keywords)
        if "ray_session" in item.fixturenames:
            on_ray.add(group)
        for name in item.fixturenames:
            defs = item._fixtureinfo.name2fixturedefs.get(name)
            if defs and defs[-1].scope == "session" and defs[-1].func.__module__ == "worlds":
                uses.setdefault(name, set()).add(group)
    split = {world: groups for world, groups in uses.items() if len(groups) > 1}
    if split:
        raise pytest.UsageError(f"tests/conftest.py WORLD_GROUPS: modules reading one world are in different "
                                f"groups, so the world would be built once per process: {split}")
    _rank.clear()
    for group in slow:
        first = LONGEST_FIRST.index(group) if group in LONGEST_FIRST else len(LONGEST_FIRST)
        _rank[group] = (first, group not in on_ray, -slow[group])
    items.sort(key=lambda item: _rank[group_of(item.nodeid)])  # stable: each module keeps its order
    _last_reader.update({name: item.nodeid for item in items for name in ENDED_AFTER_LAST_READER
                         if name in item.fixturenames})
    _ray_until[:] = [max(_rank[g] for g in on_ray)] if on_ray else []


# ----------------------------------------------------------------------------- what ends before the session does

#: session worlds that keep processes running (``worlds.running``): each ends after the last test that reads it
ENDED_AFTER_LAST_READER = ("service",)
_last_reader: dict[str, str] = {}  # world -> the node id of the last test (in the order run) that reads it
_rank: dict[str, tuple[int, bool, int]] = {}  # group -> its place in the order run
_ray_until: list[tuple[int, bool, int]] = []  # the place of the last group that uses the session's Ray instance


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None):
    """After a test's teardown: end the running worlds it was the last reader of, and the session's Ray instance
    once the next test comes after every group that uses it (none would again). Idle, each costs CPU every second
    until the session ends, minutes later: the service 5 CPU-s a minute, a Ray instance 3.5 (its daemons, Ray Data's
    actors, its idle workers). A failure of a world's last check is an error of this test's teardown."""
    result = yield
    from worlds import running

    for world, nodeid in _last_reader.items():
        if item.nodeid == nodeid and world in running:
            running[world]()
    ray = sys.modules.get("ray")  # never imported here: nothing to end
    if ray and _ray_until and (nextitem is None or _rank[group_of(nextitem.nodeid)] > _ray_until[0]):
        if ray.is_initialized() and _ray_gcs and ray.get_runtime_context().gcs_address == _ray_gcs[-1]:
            ray.shutdown()
    return result
