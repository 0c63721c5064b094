"""How a command that runs until a person ends it (``serve``, ``audit-review --serve``) is ended.

Ctrl-C, ``kill`` and a closed terminal all end it the same way: through its clean-up (Ray Serve's
applications shut down; the review server's lock released, which on object storage is a marker
object that nothing else removes). Python alone turns only SIGINT into KeyboardInterrupt, and not
even that when the process started with SIGINT ignored (a command that a script started with
``&``), so a plain ``kill`` would skip the clean-up.
"""

from __future__ import annotations

import signal
import threading
from types import TracebackType
from typing import Any

#: the signals that stop the command; SIGHUP only when the process did not start with it ignored (``nohup``)
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class StopSignals:
    """``with StopSignals() as stop: ...; stop.wait()``: the signals set ``stop.event`` instead of ending the
    process, and their previous handlers come back on leaving the block."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self._previous: dict[signal.Signals, Any] = {}

    def __enter__(self) -> StopSignals:
        self._previous = {s: signal.getsignal(s) for s in SIGNALS}
        self.catch()
        return self

    def catch(self) -> None:
        """Install the handlers (again: a library may have put its own in since, as Ray's core worker does)."""
        for s in SIGNALS:
            if not (s == signal.SIGHUP and self._previous[s] == signal.SIG_IGN):
                signal.signal(s, lambda *_: self.event.set())

    def wait(self) -> None:
        """Until a stop signal (in short waits: a signal handler runs only between the main thread's steps)."""
        while not self.event.wait(0.5):
            pass

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, signal.SIG_DFL if handler is None else handler)
