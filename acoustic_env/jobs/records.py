"""Every run record ends ``completed`` or ``failed``, whatever stops the job.

A job writes its record when it starts (``status: running``), so that a crash leaves a
trace, and rewrites it when it ends. A job that stops on an exception between the two
(too few clips, a Ray failure, Ctrl-C) would leave ``running`` for ever, and the next
person cannot tell a dead run from a live one. :func:`track` registers a record once it
is written; :func:`finishes_records` wraps a job function so that, on any exception, each
record it registered that is still ``running`` is rewritten as ``failed`` with the reason
(the exception's type and first line), then the exception goes on as before. Records are
written through :func:`acoustic_env.runs.write_record`, which masks every secret in them.
"""

from __future__ import annotations

import functools
import time
from contextvars import ContextVar
from typing import Any, Callable, TypeVar

from acoustic_env.runs import write_record

F = TypeVar("F", bound=Callable[..., Any])
Writer = Callable[[dict[str, Any], str], Any]
_open: ContextVar[list[tuple[dict[str, Any], str, Writer, float]] | None] = ContextVar("open_records", default=None)


def track(record: dict[str, Any], uri: str, write: Writer = write_record) -> None:
    """Have the enclosing :func:`finishes_records` job mark ``record`` failed if the job raises."""
    opened = _open.get()
    if opened is not None:
        opened.append((record, uri, write, time.time()))


def failure_reason(exc: BaseException) -> str:
    """``Type: first line of the message`` (Ctrl-C reads ``interrupted``)."""
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def finishes_records(job: F) -> F:
    """Decorate a job function: records it :func:`track`-ed end ``failed`` with the reason if it raises."""

    @functools.wraps(job)
    def run(*args: Any, **kwargs: Any) -> Any:
        token = _open.set([])
        try:
            return job(*args, **kwargs)
        except BaseException as exc:
            for record, uri, write, t0 in _open.get() or []:
                if record.get("status") == "running":
                    record.update(status="failed", error=failure_reason(exc),
                                  wall_s=record.get("wall_s") or time.time() - t0)
                    try:
                        write(record, uri)
                    except Exception:  # noqa: BLE001 - the job's own error is the one to report
                        pass
            raise
        finally:
            _open.reset(token)

    return run  # type: ignore[return-value]
