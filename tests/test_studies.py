"""docs/studies.md: every command it gives for a study's method is one the CLI takes, with the flags it names.

The page lists each study's figures beside the command that reproduces the method here; a renamed or
removed flag would leave a command no user can run. Each ``acoustic-env ...`` in the page is parsed by the
command's own parser (nothing runs), and every figure section the issue names is there.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from acoustic_env.cli import build_parser

PAGE = Path(__file__).resolve().parents[1] / "docs" / "studies.md"


def _commands() -> list[str]:
    return re.findall(r"`(acoustic-env [^`]+)`", PAGE.read_text())


def test_the_page_names_each_study_and_figure():
    text = PAGE.read_text()
    for needle in ("0.721 / 0.8 = 90.1 %", "0.868", "101 × 77", "top-20", "t-SNE", "ten folds", "Gini",
                   "elastic", "8 bins", "90.6 %", "91.4 %", "--oversample", "--features-logmel", "cnn"):
        assert needle in text, needle
    assert len(_commands()) >= 15


@pytest.mark.parametrize("command", _commands())
def test_every_command_of_the_page_parses(command, capsys):
    argv = shlex.split(command)[1:]
    try:
        args = build_parser().parse_args(argv)
    except SystemExit:
        pytest.fail(f"docs/studies.md: `{command}` is refused: {capsys.readouterr().err.strip().splitlines()[-1]}")
    assert callable(args.func)
