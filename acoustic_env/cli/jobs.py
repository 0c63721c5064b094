"""Every command of the job catalogue (``jobs/catalog.py``) on the ``acoustic-env`` parser.

A catalogued command takes every option from its config's declarations (``--config FILE`` too, and ``--dry-run``
where the job has a plan); a command in a group (``audioset sample``) sits under the group's own sub-command. Each
command checks its config (the dry run stops there with the plan), then imports what it runs, and prints the lines
that say what it did.
"""

from __future__ import annotations

import argparse
from typing import Any, Callable

from acoustic_env.cli.console import console
from acoustic_env.config import add_flags, from_args
from acoustic_env.jobs import catalog
from acoustic_env.demo.command import register as register_demo
from acoustic_env.jobs.catalog import GROUPS, JobSpec
from acoustic_env.storage import redact
from acoustic_env.web.commands import register as register_web_commands

register_web_commands()  # serve and audit-review, which live on the web floor
register_demo()  # demo, on the floor of the demo it runs


def _command(spec: JobSpec) -> Callable[[argparse.Namespace], int]:
    """The command of a catalogued job: its config from the flags, the dry run or the checks, the job, and the
    lines that say what it did."""

    def command(args: argparse.Namespace) -> int:
        cfg = from_args(spec.config, args)
        if getattr(args, "dry_run", False):
            print("\n".join(spec.plan(cfg)["lines"]))
            return 0
        spec.check(cfg)  # before the log file is made below the output
        output = getattr(cfg, "output", None)
        if spec.console == "before":
            console(args, output)
        kwargs = {"on_ray": lambda: console(args, output)} if spec.console == "on_ray" else {}
        result = spec.run(cfg, **kwargs)
        lines = spec.lines(result)
        if lines:
            print(redact("\n".join(lines)))  # the lines quote URIs: never their secrets
        return spec.status(result) if spec.status is not None else 0

    return command


def add_job_parsers(sub: argparse._SubParsersAction) -> None:
    """The catalogue's commands on the ``acoustic-env`` parser (``sub``: its sub-parsers), each group's under it."""
    groups: dict[str, Any] = {}
    for spec in catalog.specs():
        group, _, name = spec.name.rpartition(" ")
        if group and group not in groups:
            groups[group] = sub.add_parser(group, help=GROUPS.get(group, f"the {group} commands")).add_subparsers(
                dest=f"{group}_command", required=True)
        p = (groups[group] if group else sub).add_parser(
            name, help=spec.summary, description=f"{spec.summary[0].upper()}{spec.summary[1:]}.", usage=spec.usage)
        add_flags(p, spec.config, dry_run=spec.plan is not None)
        p.set_defaults(func=_command(spec))
