"""The suite's closing lines under ``-n`` (tests/conftest.py): when each test process ended its last test and its
time in tests, latest first, so that a run's log shows whether the processes finished together or one ran on alone.
Without ``-n`` (no process named on the reports) there is no such section."""

from __future__ import annotations

import re
import time

import conftest

SECTION = "test processes: last test ended, time in tests"


class _Terminal:
    """What ``pytest_terminal_summary`` writes to: its sections and lines, kept."""

    def __init__(self) -> None:
        self.sections: list[str] = []
        self.lines: list[str] = []

    def section(self, title: str) -> None:
        self.sections.append(title)

    def write_line(self, line: str) -> None:
        self.lines.append(line)


def _report(duration: float, worker: str | None = None):
    """A test's report as the controller receives it: pytest-xdist names the process on it (``report.node``)."""
    fields = {"when": "call", "duration": duration, "keywords": {}, "nodeid": "tests/test_x.py::test_y"}
    if worker is not None:
        fields["node"] = type("Worker", (), {"gateway": type("Gateway", (), {"id": worker})()})()
    return type("Report", (), fields)()


def test_each_test_process_says_when_it_ended_and_its_time_in_tests(monkeypatch):
    monkeypatch.setattr(conftest, "_worker_times", {})
    monkeypatch.setattr(conftest, "_unmarked_slow", [])
    monkeypatch.setattr(conftest, "_START", time.monotonic() - 600)  # the run began ten minutes ago
    for worker, seconds in (("gw0", 2.0), ("gw1", 5.0), ("gw0", 4.0)):  # gw0's last test ends last
        conftest.pytest_runtest_logreport(_report(seconds, worker))
    terminal = _Terminal()
    conftest.pytest_terminal_summary(terminal)
    assert terminal.sections == [SECTION]
    parsed = [re.fullmatch(r"(gw\d): +(\d+) s into the run, +(\d+) s in tests", line) for line in terminal.lines]
    assert all(parsed), terminal.lines
    assert [(m[1], int(m[3])) for m in parsed] == [("gw0", 6), ("gw1", 5)]
    assert all(600 <= int(m[2]) < 660 for m in parsed), terminal.lines


def test_a_run_in_one_process_has_no_such_section(monkeypatch):
    monkeypatch.setattr(conftest, "_worker_times", {})
    monkeypatch.setattr(conftest, "_unmarked_slow", [])
    conftest.pytest_runtest_logreport(_report(1.0))
    terminal = _Terminal()
    conftest.pytest_terminal_summary(terminal)
    assert terminal.sections == [] and terminal.lines == []
