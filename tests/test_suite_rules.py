"""The suite's own rules, checked by running pytest on itself in a subprocess.

What a test needs and the machine may lack (Chromium here) makes it skip with the reason on a
developer's machine, and fail with the reason in CI (``CI=true``): a CI machine without a browser
must not pass having tested less (``conftest.require``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import pytest_runtest_protocol

REPO = Path(__file__).resolve().parents[1]
#: a browser test whose other fixtures cost nothing, so the check is quick
BROWSER_TEST = "tests/test_audit_review.py::test_multi_label_page_takes_the_right_set_of_classes"


def _pytest_without_chromium(ci: str | None, tmp_path: Path) -> subprocess.CompletedProcess:
    bare = tmp_path / "bin"  # a PATH with no chromium or chromedriver on it
    bare.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PATH"] = str(bare)
    if ci is not None:
        env["CI"] = ci
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", BROWSER_TEST],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("ci", ["true", None])
def test_a_missing_browser_fails_in_ci_and_skips_with_the_reason_elsewhere(ci, tmp_path):
    r = _pytest_without_chromium(ci, tmp_path)
    reason = "headless browser test needs Debian's chromium and chromium-driver"
    if ci:
        assert r.returncode == 1, r.stdout[-2000:]
        assert f"required in CI (CI=true): {reason}" in r.stdout and "1 error" in r.stdout, r.stdout[-2000:]
    else:
        assert r.returncode == 0 and "1 skipped" in r.stdout, r.stdout[-2000:]
        assert "SKIPPED [1]" in r.stdout and reason in r.stdout, r.stdout[-2000:]


def test_the_suite_cpu_benchmark_charges_a_childs_cpu_to_its_kind_and_test(monkeypatch, tmp_path):
    """``benchmarks/suite_cpu.py`` (how RESULTS.md splits the suite's CPU): a subprocess that spins for a second is
    found, charged about its CPU, under its kind and the test that started it."""
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))  # as when run as a script: benchmarks/machine.py
    import suite_cpu
    spin = "import time\nt = time.process_time()\nwhile time.process_time() - t < 1.0: pass\ntime.sleep(0.6)"
    # a process someone else starts meanwhile (no SUITE_CPU_TESTS in its environment; started 0.2 s into the sample,
    # after its list of the processes already running) is not the command's
    started: list[subprocess.Popen] = []
    timer = threading.Timer(0.2, lambda: started.append(subprocess.Popen(
        [sys.executable, "-c", spin.replace("1.0", "0.3")],
        env={k: v for k, v in os.environ.items() if k != suite_cpu.TESTS_ENV})))
    timer.start()
    rc, wall, records, others = suite_cpu.sample([sys.executable, "-c", spin], tmp_path / "t.txt", interval_s=0.1)
    timer.join()
    [elsewhere] = started
    elsewhere.wait(timeout=30)
    # (others: at least its 0.3 s; the suite's other test processes start processes meanwhile too)
    assert rc == 0 and wall >= 1.0 and others >= 0.25 and elsewhere.pid not in {r["pid"] for r in records}, others
    this_test = os.environ["PYTEST_CURRENT_TEST"].split(" (")[0]  # the other xdist process starts processes too
    (child,) = [r for r in records if r["test"] == this_test]
    assert 0.9 <= child["cpu_s"] <= 1.5 and list(child["by_kind"]) == [f"other: {Path(sys.executable).name}"]
    # a child that clears its environment (as Chromium's do) is still the command's
    parent = f"import subprocess, sys\nsubprocess.run([sys.executable, '-c', {spin!r}], env={{}})"
    _, _, records_cleared, _ = suite_cpu.sample([sys.executable, "-c", parent], tmp_path / "t.txt", interval_s=0.1)
    assert [r for r in records_cleared if r["test"] == "" and r["cpu_s"] >= 0.9], records_cleared
    text = suite_cpu.summary(records, wall)
    assert f"other: {Path(sys.executable).name}" in text and child["test"] in text
    # a pytest session under it appends each test's CPU in its own process (tests/conftest.py), which the table of
    # tests adds to the processes the test started
    own = tmp_path / "tests.txt"
    monkeypatch.setenv(suite_cpu.TESTS_ENV, str(own))
    for _ in range(2):  # the hook of tests/conftest.py around two runs of a test that spins a quarter second
        wrapper = pytest_runtest_protocol(SimpleNamespace(nodeid="tests/test_x.py::test_spin[a b]"), None)
        next(wrapper)
        t = time.process_time()
        while time.process_time() - t < 0.25:
            pass
        with pytest.raises(StopIteration):
            next(wrapper)
    [(test, cpu)] = suite_cpu.own_cpu(own).items()
    assert test == "tests/test_x.py::test_spin[a b]" and 0.5 <= cpu < 0.8, (test, cpu)
    table = suite_cpu.summary([], 1.0, own=suite_cpu.own_cpu(own)).split("CPU-s  test")[1]
    assert "and its own CPU in the test process" in table and f"{cpu:6.1f}  {test}" in table, table
    # charged once: to the test, not again to the test process that no test started
    process = {"pid": 1, "cpu_s": 2.0, "test": "", "by_kind": {"pytest-xdist worker": 2.0}}
    table = suite_cpu.summary([process], 1.0, own=suite_cpu.own_cpu(own)).split("CPU-s  test")[1]
    assert f"{2.0 - cpu:6.1f}  (no test)" in table and f"{cpu:6.1f}  {test}" in table, table
    assert suite_cpu.kind_of("ray::MapWorker(FeatureWriterStage)", "ray::MapWorker") == "ray::MapWorker"
    assert suite_cpu.kind_of("/x/bin/python -m acoustic_env.cli extract --manifest m", "python") == "acoustic-env extract"
    for argv, message in ((["--", "/no/such/program"], "cannot run '/no/such/program': No such file or directory"),
                          ([], "give the command to measure after --")):
        r = subprocess.run([sys.executable, str(REPO / "benchmarks" / "suite_cpu.py"), *argv], capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].endswith(message), r.stderr
        assert "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / "suite_cpu.py"), "--", "true", "s3://k:s3cr3t@b/x"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "command: true s3://***@b/x" in r.stderr and "s3cr3t" not in r.stderr, r.stderr
    assert suite_cpu.budget_line([child], 2) == f"CPU: {child['cpu_s']:,.0f} CPU-s of a budget of 2 (within it)"
    assert suite_cpu.budget_line([child], 0).endswith(" over)")
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / "suite_cpu.py"), "--budget", "1800", "--", "false"],
                       capture_output=True, text=True, timeout=60)  # CI's use: the command's status, then the total
    assert r.returncode == 1 and r.stderr.strip().splitlines()[-1].startswith("CPU: ") and "budget of 1,800" in r.stderr


def test_the_suite_and_what_it_starts_write_bytecode_caches():
    """``tests/conftest.py`` turns Python's bytecode cache back on where the environment turned it off (CI's
    machine sets ``PYTHONDONTWRITEBYTECODE``): for this process, and for the subprocesses and Ray workers it starts."""
    assert sys.dont_write_bytecode is False
    child = subprocess.run([sys.executable, "-c", "import sys; print(sys.dont_write_bytecode)"],
                           capture_output=True, text=True, timeout=60)
    assert child.stdout.strip() == "False", child.stderr


def _teardown(item, nextitem) -> None:
    """``conftest.pytest_runtest_teardown`` around a test's own (empty) teardown."""
    import conftest

    hook = conftest.pytest_runtest_teardown(item, nextitem)
    next(hook)
    with pytest.raises(StopIteration):
        hook.send(None)


def test_a_running_world_and_the_session_ray_end_after_their_last_reader(request, monkeypatch):
    """The order run puts every group that uses the session's Ray instance before the rest of the tail; after its
    teardown, the last reader of a running world ends it (and no other test does), and a test whose next one comes
    after every Ray group ends the session's instance (and only then, and only the session's own)."""
    import conftest
    import worlds

    items = request.session.items
    ranks = [conftest._rank[conftest.group_of(i.nodeid)] for i in items]
    assert ranks == sorted(ranks)
    on_ray = [r for r, i in zip(ranks, items) if "ray_session" in i.fixturenames]
    assert conftest._ray_until == ([max(on_ray)] if on_ray else [])
    readers = [i.nodeid for i in items if "service" in i.fixturenames]
    assert conftest._last_reader.get("service") == (readers[-1] if readers else None)

    class Ray:  # stands in for the ray module: what the hook asks of it
        def __init__(self, gcs: str) -> None:
            self.gcs, self.shut = gcs, 0

        def is_initialized(self) -> bool:
            return True

        def get_runtime_context(self):
            return type("Context", (), {"gcs_address": self.gcs})()

        def shutdown(self) -> None:
            self.shut += 1

    ray = Ray("127.0.0.1:1")
    monkeypatch.setitem(sys.modules, "ray", ray)
    monkeypatch.setattr(conftest, "_ray_gcs", [ray.gcs])
    monkeypatch.setattr(conftest, "_ray_until", [(0, False, 0)])  # every group but a first one is past it
    monkeypatch.setattr(conftest, "_rank", {"g-before": (0, False, 0), "g-after": (1, True, 0)})
    monkeypatch.setattr(conftest, "group_of", lambda nodeid: nodeid.split("::")[0])
    first, last, after = (type("Item", (), {"nodeid": n})() for n in ("g-before::a", "g-before::b", "g-after::c"))
    ended: list[str] = []
    monkeypatch.setitem(worlds.running, "probe", lambda: ended.append("probe"))
    monkeypatch.setattr(conftest, "_last_reader", {"probe": last.nodeid})
    _teardown(first, last)
    assert ended == [] and ray.shut == 0  # the world's last reader and a Ray test come next
    _teardown(last, after)
    assert ended == ["probe"] and ray.shut == 1
    conftest._ray_gcs[:] = ["another instance"]
    _teardown(after, None)
    assert ray.shut == 1  # not the session's instance: not ours to end


def test_a_parse_is_tried_again_on_cpythons_spurious_recursion_depth_error_only(monkeypatch):
    import ast

    from conftest import parse_python

    real, calls = ast.parse, []

    def flaky(source: str, filename: str, message: str = "AST constructor recursion depth mismatch (before=9, after=3)"):
        calls.append(source)
        if len(calls) == 1:
            raise SystemError(message)
        return real(source, filename)

    monkeypatch.setattr(ast, "parse", flaky)
    assert isinstance(parse_python("x = 1"), ast.Module) and len(calls) == 2
    calls.clear()
    monkeypatch.setattr(ast, "parse", lambda source, filename: flaky(source, filename, "something else"))
    with pytest.raises(SystemError, match="something else"):
        parse_python("x = 1")


def test_make_check_leaves_out_every_test_that_starts_ray_a_browser_or_the_demo(request):
    """``make check`` selects ``not slow and not integration``; every collected test whose fixtures start the
    session's Ray instance (or a world built on it), a browser or the demo run carries ``integration``
    (``tests/conftest.py: INTEGRATION_FIXTURES``), so the unit layer never waits on one. Under ``make test`` each
    test process collects the whole suite, so this reads every test."""
    from conftest import INTEGRATION_FIXTURES

    make = (REPO / "Makefile").read_text()
    assert '\ncheck: $(STAMP)\n\t$(BIN)/python -m pytest -q -n 3 -m "not slow and not integration"' in make
    unmarked = [item.nodeid for item in request.session.items
                if INTEGRATION_FIXTURES & set(item.fixturenames) and "integration" not in item.keywords]
    assert not unmarked, unmarked[:10]
    assert "integration" in request.config.getini("markers")[1]  # registered, so --strict-markers takes it
