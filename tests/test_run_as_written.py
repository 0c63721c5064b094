"""``worlds.run_as_written``, which runs the documentation's commands in the test's process (the README guide, the job
pages, the grid page): a command that fails, one that a shell would read differently from ``shlex.split``, and one that
prints a traceback each fail the test that runs it."""

from __future__ import annotations

import sys

import pytest
from worlds import run_as_written

import acoustic_env.cli


def test_a_command_that_fails_fails_naming_it(tmp_path, monkeypatch, capfd):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(AssertionError, match="acoustic-env extract --manifest missing.csv"):
        run_as_written("acoustic-env extract --manifest missing.csv --output out", capfd)


@pytest.mark.parametrize("command", ["acoustic-env export t --output a.csv > b.csv", "acoustic-env export 'my t'",
                                     "acoustic-env export $HOME/t", "acoustic-env export t*"])
def test_shell_syntax_is_refused_before_anything_runs(command, capfd, monkeypatch):
    monkeypatch.setattr(acoustic_env.cli, "main", lambda argv: pytest.fail(f"ran {argv}"))
    with pytest.raises(AssertionError, match="shell syntax"):
        run_as_written(command, capfd)


def test_a_traceback_on_the_console_fails_though_the_status_is_0(monkeypatch, capfd):
    def noisy(argv: list[str]) -> int:
        print("Traceback (most recent call last):", file=sys.stderr)
        return 0

    monkeypatch.setattr(acoustic_env.cli, "main", noisy)
    with pytest.raises(AssertionError, match="acoustic-env export t"):
        run_as_written("acoustic-env export t --output t.csv", capfd)
    monkeypatch.setattr(acoustic_env.cli, "main", lambda argv: print("ok") or 0)
    assert run_as_written("acoustic-env export t --output t.csv", capfd) == "ok\n"
