"""Every ``acoustic-env`` command the README and docs/ show passes its command's own checks: the flags parse, and
the config they build passes the config's validation (each field's declaration and the cross-field rules, as the
command checks it before anything runs), not argparse alone: ``train --baselines mlp,xgboost`` parses, and the
config refuses it. Paths are not opened: the pages name files a reader has (``F``, ``/data/UrbanSound8K``)."""

from __future__ import annotations

import argparse
import shlex

import documentation
import pytest

from acoustic_env.cli import build_parser
from acoustic_env.config import ConfigError, from_args
from acoustic_env.jobs import catalog

#: commands a page shows that no installation has: docs/development.md's toy, registered from a test module
#: (tests/test_catalog.py runs it)
NOT_INSTALLED = {("development.md", "toys tally TABLE")}
SHOWN = [shown for shown in documentation.shown_commands() if shown not in NOT_INSTALLED]


def _spec(args: argparse.Namespace) -> catalog.JobSpec:
    """The catalogued job a parsed command runs: its name, or its group's and its own (``audioset sample``)."""
    sub = getattr(args, f"{args.command}_command", None)
    return catalog.get(f"{args.command} {sub}" if sub else args.command)


def validated(command: str) -> object:
    """The config ``acoustic-env <command>`` would run with; pytest.fail naming the command and the one line of
    the refusal when argparse or the config refuses it."""
    argv = shlex.split(command)
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        if exc.code == 0 and ("--help" in argv or "--version" in argv):
            return None  # what --help and --version print is the parser's own
        pytest.fail(f"`acoustic-env {command}` is refused by its flags")
    try:
        return from_args(_spec(args).config, args)
    except ConfigError as exc:
        pytest.fail(f"`acoustic-env {command}` is refused: {exc}")


def test_the_pages_show_commands_of_every_kind():
    pages = {page for page, _ in SHOWN}
    assert {"README.md", "studies.md", "train.md", "recipes.md", "cluster.md"} <= pages, pages
    assert len(SHOWN) >= 80
    assert any(c.startswith("extract ") and "s3://" in c for _, c in SHOWN)  # the cluster's submitted command


@pytest.mark.parametrize("page, command", SHOWN, ids=[f"{p}:{c[:60]}" for p, c in SHOWN])
def test_every_shown_command_passes_its_configs_validation(page, command, capsys):
    validated(command)
    capsys.readouterr()  # --help's page


def test_a_command_argparse_takes_and_the_config_refuses_fails_naming_the_field(capsys):
    with pytest.raises(pytest.fail.Exception, match="baselines: must be a subset"):
        validated("train --features F --output OUT --baselines mlp,xgboost")
    with pytest.raises(pytest.fail.Exception, match="refused by its flags"):
        validated("train --features F --output OUT --no-such-flag")
