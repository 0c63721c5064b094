"""The record a run leaves (``runs/<run_id>.json``), and one lifecycle for it: started, then completed or failed.

The record holds the job's config (never credentials: they come from the environment, and
a secret written into a URL anyway is masked), package versions, the git revision, weight
checksums, counts and time per stage.

A job writes its record when it starts (``status: running``), so that a crash leaves a
trace, and rewrites it when it ends. A job that stopped on an exception between the two
(too few clips, a Ray failure, Ctrl-C) would leave ``running`` for ever, and the next
person could not tell a dead run from a live one. :func:`lifecycle` is the one place that
does this for every job: it writes the started record, hands the job a :class:`Run` to
record its results in, and on any exception rewrites a record still ``running`` as
``failed`` with the reason (the exception's type and first line), then lets the exception
go on. Records are written through :func:`write_record`, which masks every secret in them.
"""

from __future__ import annotations

import platform
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from acoustic_env.config import ConfigError
from acoustic_env.layout import RUNS, new_run_id
from acoustic_env.storage import join, redact, redact_all, transport_failure, write_json


PACKAGES = ("acoustic-env", "ray", "pyarrow", "numpy", "scipy", "librosa", "soundfile", "soxr", "noisereduce",
            "scikit-maad", "soundsig", "torch", "fsspec", "s3fs")


def package_versions(extra: tuple[str, ...] = ()) -> dict[str, str | None]:
    """Installed versions of the core packages plus a job's own (``extra``); None when absent."""
    out: dict[str, str | None] = {}
    for name in PACKAGES + extra:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    out["python"] = platform.python_version()
    return out


def git_revision() -> str | None:
    """The checkout's commit (with '+dirty' if modified), or None outside a git checkout."""
    here = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        if rev.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return rev.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def base_record(run_id: str, job: str, config: dict[str, Any]) -> dict[str, Any]:
    return {"run_id": run_id, "job": job, "status": "running", "config": config,
            "versions": package_versions(), "git_revision": git_revision(), "host": platform.node()}


def write_record(record: dict[str, Any], uri: str, redact_params: tuple[str, ...] = ()) -> dict[str, Any]:
    """Write a run record with every secret in its URLs (user-info, token query values) replaced by ***.

    Returns what was written, which is what a job should hand back or print.
    """
    clean = redact_all(record, redact_params)
    write_json(clean, uri)
    return clean


def failure_reason(exc: BaseException) -> str:
    """``Type: first line of the message`` (Ctrl-C reads ``interrupted``)."""
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


@dataclass
class Run:
    """A job's run record while the job runs: where it is written, and since when the job runs."""

    record: dict[str, Any]
    uri: str
    redact_params: tuple[str, ...]
    started: float

    @property
    def run_id(self) -> str:
        return self.record["run_id"]

    def elapsed(self) -> float:
        return time.time() - self.started

    def save(self, **fields: Any) -> dict[str, Any]:
        """Add ``fields`` to the record and rewrite it; returns what was written (masked)."""
        self.record.update(fields)
        return write_record(self.record, self.uri, self.redact_params)

    def complete(self, **fields: Any) -> dict[str, Any]:
        """The record ``completed`` with its wall time and ``fields``, written; returns what was written."""
        return self.save(status="completed", wall_s=round(self.elapsed(), 3), **fields)


@contextmanager
def lifecycle(job: str, config: dict[str, Any], output: str, *, prefix: str = "",
              redact_params: tuple[str, ...] = (), **fields: Any) -> Iterator[Run]:
    """The run record of a ``job`` writing into ``output``: ``<output>/runs/<prefix><run_id>.json``.

    Written ``running`` (with ``fields``) on entry: it is the output's first write, so a
    missing bucket or refused credentials stop here with one line. Rewritten ``failed``
    with the reason if the block raises while it is still running, ``completed`` on a
    normal exit if the job did not complete it (:meth:`Run.complete`) itself.
    """
    run_id = new_run_id()
    run = Run({**base_record(run_id, job, config), **fields}, join(output, RUNS, f"{prefix}{run_id}.json"),
              tuple(redact_params), time.time())
    try:
        run.save()
    except Exception as exc:  # noqa: BLE001 - every transport says it its own way
        error_type, reason = transport_failure(exc)
        if error_type == "missing_file":
            reason = "it does not exist (a bucket is never created for you)"
        raise ConfigError(redact(f"output: cannot write to {output}: {reason}", redact_params)) from None
    try:
        yield run
    except BaseException as exc:
        if run.record.get("status") == "running":
            try:
                run.save(status="failed", error=failure_reason(exc), wall_s=round(run.elapsed(), 3))
            except Exception:  # noqa: BLE001 - the job's own error is the one to report
                pass
        raise
    if run.record.get("status") == "running":
        run.complete()
