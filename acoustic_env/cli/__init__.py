"""The ``acoustic-env`` command. A submitted Ray job runs it as ``python -m acoustic_env.cli <job>``.

Every command is a job of the catalogue (``jobs/catalog.py``: extract, train, audit, annotate, predict,
search, export, duplicates, the recipe, models, audioset and labels commands, ...); its options are generated
from the config declarations (:mod:`acoustic_env.config`), so a concept has one name on every command and in
every config file. User mistakes (a bad flag or value, an unreadable manifest, a damaged input file,
missing weights) end with one line naming the problem and exit status 2, never a
traceback. Building the parser imports no heavy library: a command checks its config,
then imports what it runs, so ``--help`` and a bad value cost a fraction of a second.

The console (see :func:`acoustic_env.distributed.session.quiet_console`): a job prints
one line per phase and its result; Ray's output, library warnings and tracebacks go to
a log file whose path it prints once (``<output>/logs/`` for a local output). ``-v``
puts everything back on the console. A failure that is not a user mistake prints one
line and the log's path, exit status 1. ``--dry-run`` (the jobs with a plan: extract, train, audit,
annotate, search, duplicates, recipe, models, ...) prints the plan (:mod:`acoustic_env.jobs.plan`) and starts nothing.
"""

from __future__ import annotations

import argparse
import difflib
import logging
import os
import sys
from typing import Any, NoReturn, Sequence

import acoustic_env
from acoustic_env.cli.jobs import add_job_parsers
from acoustic_env.config import ConfigError
from acoustic_env.errors import AuditError, DamagedFileError, MissingExtraError, WeightsError


def _user_errors() -> tuple[type[Exception], ...]:
    """The exceptions that mean a user mistake (imported once a command failed: they pull in pyarrow)."""
    from acoustic_env.audio.manifest import ManifestError
    from acoustic_env.vocabulary.ontology import OntologyError
    from acoustic_env.vocabulary.tasks import TaskError

    return (ConfigError, ManifestError, OntologyError, TaskError, AuditError, WeightsError, MissingExtraError,
            DamagedFileError)  # a damaged input file (a truncated TFRecord) is named, and is the user's to replace


class _Parser(argparse.ArgumentParser):
    """A mistake in the arguments ends in one line too (argparse would print the whole usage first), pointing at
    the help of the command it was given to (argparse finds an unknown flag only back in the top parser)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> tuple[argparse.Namespace, list[str]]:
        namespace = namespace if namespace is not None else argparse.Namespace()
        namespace._command_parser = self  # a subcommand's parser runs after its parent's: the innermost stays
        return super().parse_known_args(args, namespace)

    def parse_args(self, args: Any = None, namespace: Any = None) -> argparse.Namespace:  # type: ignore[override]
        parsed, extras = self.parse_known_args(args, namespace)
        command = vars(parsed).pop("_command_parser", self)
        if extras:
            flags = [f for f in command._option_string_actions if f.startswith("--")]
            near = [m for e in extras if e.startswith("--")
                    for m in difflib.get_close_matches(e.split("=", 1)[0], flags, n=1, cutoff=0.8)]
            guess = f"; did you mean {' '.join(near)}?" if near else ""
            self.exit(2, f"{self.prog}: error: unrecognized arguments: {' '.join(extras)}{guess} "
                         f"(see {command.prog} --help)\n")
        return parsed


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="acoustic-env", description=(
        "Feature extraction, environment classification and label audit for audio collections. "
        "New here: `acoustic-env demo`, then the README's guide. `acoustic-env COMMAND --help` lists a "
        "command's options with their defaults. From Python: `import acoustic_env as ae`."))
    # The only flags written by hand, acoustic-env's own: every job's options come from its config (cli/jobs.py).
    # --version: not a job option (the package's version)
    parser.add_argument("--version", action="version", version=f"acoustic-env {acoustic_env.__version__}")
    # -v: not a job option (where any command's log lines go)
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show Ray's output, warnings and INFO logs on the console (default: they go to the "
                             "log file each job names)")
    sub = parser.add_subparsers(dest="command", required=True)

    add_job_parsers(sub)
    return parser


def run(argv: Sequence[str] | None = None) -> NoReturn:
    """``acoustic-env``, and ``python -m acoustic_env.cli`` in a submitted job: :func:`main`, then a quick exit.

    Once a job's record is written, a process that imported Ray, pyarrow and scipy spends
    about a second more in Python's own teardown, freeing every module, and Ray's graceful
    shutdown of a local instance 2 s more; and that teardown can abort a finished job with
    status -6 (``terminate called without an active exception``: a native thread, Arrow's
    thread pool as in apache/arrow#34314, still joinable when the C++ runtime exits; 3 of 360
    ``extract --dry-run`` processes over an earlier run's Parquet here, 0 of 180 with this
    exit). The exit handlers run,
    the local instance's processes are then ended at once (``session.run_exit_handlers``: none
    outlives the command), and the process ends without that teardown. Tests and notebooks
    call :func:`main`, which returns and shuts Ray down as usual.
    """
    code = main(argv)
    from acoustic_env.distributed.session import run_exit_handlers  # imports no Ray of its own

    run_exit_handlers()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # a command without a log file (predict): its warnings in the console policy's form; -v: every record, timed
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s" if args.verbose
                        else "acoustic-env: %(levelname)s: %(message)s")
    try:
        return args.func(args)
    except Exception as exc:
        from acoustic_env.storage import redact  # the one line quotes URIs: their secrets are *** here too

        if isinstance(exc, _user_errors()):
            print(redact(f"acoustic-env: error: {exc}"), file=sys.stderr)
            return 2
        from acoustic_env.distributed.session import log_file

        log = log_file()
        if log is None:
            raise
        logging.getLogger("traceback").error("%s failed", args.command, exc_info=exc)  # to the log file only
        print(redact(f"acoustic-env: error: {args.command} failed: {type(exc).__name__}: "
                     f"{(str(exc).strip().splitlines() or [''])[0]} (details: {log})"), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("acoustic-env: interrupted", file=sys.stderr)
        return 130
