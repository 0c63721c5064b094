"""Where a command's own lines go and where the rest goes: the log file each command names once.

Its own module so that the catalogue's command wiring (``cli/jobs``) and any other command call it
without importing each other.
"""

from __future__ import annotations

import argparse
import os
import time


def log_path(command: str, output: str | None) -> str:
    """Where a command's log goes: ``<output>/logs/`` for a local output, else the user's cache."""
    from acoustic_env.storage import is_local

    name = f"{command}-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}.log"
    if output and is_local(output):
        return os.path.join(output.removeprefix("file://"), "logs", name)
    return os.path.join(os.path.expanduser("~/.cache/acoustic-env/logs"), name)


def console(args: argparse.Namespace, output: str | None) -> None:
    """Unless ``-v``: send Ray's output and warnings to the command's log file; say where, once."""
    if args.verbose:
        return
    from acoustic_env.distributed.session import quiet_console

    print(f"{args.command}: details and Ray's output go to {quiet_console(log_path(args.command, output))}")
