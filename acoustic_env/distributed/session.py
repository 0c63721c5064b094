"""Starting Ray, and what of its output reaches the console: the one place for both.

Every job (extract, train, audit) calls ``start_ray`` before it hands Ray any
work, so the three behave alike:

* ``address`` (``--ray-address``), else ``RAY_ADDRESS`` (set by ``ray job
  submit``), names a cluster to join. Its workers run on other machines, so
  their output is forwarded to the driver: it is the only place a user sees it.
  A job started by ``ray job submit`` takes token authentication as its node has it
  (``distributed/__init__.py``).
* Otherwise a fresh local instance starts, quietly: no dashboard, no workers
  started before there is work for them, no worker output on the console (errors still reach the driver as exceptions), Ray's
  own log lines only from WARNING up, and token authentication stated
  explicitly (``distributed/__init__.py``: Ray's default for a new local
  instance, which it otherwise announces with a warning).
* A new local instance gets a watcher (``distributed/reaper.py``) that ends its
  processes once the driver is gone, so that a SIGKILLed driver's Ray agents do not
  live on for another minute.
* A Ray Data stage's own exception reaches the driver with its type (Ray's
  ``raise_original_map_exception``), so an ``OutputWriteError`` can be reported as
  the one line it is.
* ``progress`` switches Ray Data's own progress bars and its per-dataset log
  lines ("Starting execution of Dataset ...") on the console together.

The console policy (:func:`quiet_console`), set once by a front door such as the
``acoustic-env`` command: a person at a terminal wants the tool's own lines (one per
phase, one progress bar per job), not Ray's. With it, everything else goes to a log
file: Ray's Python loggers (status lines, Tune/Train's "failed" blocks for trials the
tuning stopped on purpose), Python warnings, what Ray's own threads in the driver print
(the cluster's messages, such as a node marked dead), and whatever C/C++ code writes to file
descriptor 2 (the raylet's and core worker's glog lines and stack traces, which no
Python setting reaches). ``sys.stderr`` itself keeps pointing at the terminal, so the
tool's progress bars and one-line errors still show. The ``acoustic_env`` loggers'
warnings still reach the console, as one line each. Without the policy (a notebook, the
tests), nothing here touches the process's streams.
"""

from __future__ import annotations

import atexit
import io
import logging
import os
import sys
import threading
from pathlib import Path
from typing import Any

from acoustic_env.distributed import reaper
from acoustic_env.storage import redact

#: The log file of this process once :func:`quiet_console` ran (None: Ray's defaults).
_log_file: Path | None = None
_file_handler: logging.Handler | None = None
LOG_FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"


class RedactingFormatter(logging.Formatter):
    """A log line (traceback included) with the secrets of any URL in it replaced by ``***``."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def start_ray(address: str | None = None, progress: bool = False) -> dict[str, float]:
    """Join or start Ray (a no-op when this process already has); return the cluster's resources."""
    import ray  # RAY_AUTH_MODE was stated before Ray's first import: see distributed/__init__.py

    route_ray_logs()
    if not ray.is_initialized():
        address = address or os.environ.get("RAY_ADDRESS")
        if address:
            ray.init(address=address, log_to_driver=True)
        else:
            _start_local(ray)
        route_ray_logs()
    _ray_data_output(progress and _log_file is None)
    return ray.cluster_resources()


#: Ray's settings for a local instance. No worker pre-started per core: with from_arrow_refs' tasks on them the stage
#: actors got none (16 cores: twice the processes starting at once, see distributed/pipeline.py), and without those
#: tasks Ray Data's bookkeeping actors take them first (2 cores: no gain).
LOCAL_SYSTEM_CONFIG = {"prestart_worker_first_driver": False}


def _start_local(ray) -> None:  # the ray module, imported by the caller
    """A new local instance, tried three times: on a loaded machine Ray 2.60's raylet exits when its
    agents take over 15 s to start (a fixed timeout, ray-project/ray#65983), or does not register
    within the driver's fixed 30 s, and ``ray.init`` then fails (twice in a row once, in a test's
    subprocess beside a loaded suite). What the failed try started is ended first."""
    for attempt in (1, 2, 3):
        before = reaper.children()
        try:
            ray.init(address="local", log_to_driver=False, include_dashboard=False,
                     logging_level=logging.INFO if _log_file else logging.WARNING, _system_config=LOCAL_SYSTEM_CONFIG)
        except Exception as exc:
            ray.shutdown()
            reaper.end_new(before)
            if attempt == 3:
                raise
            logging.getLogger(__name__).warning("local Ray did not start (%s); trying again",
                                                " ".join(str(exc).split())[:200])
            continue
        reaper.watch(before)  # what ray.init started ends with this process, however it ends
        return


def run_exit_handlers() -> None:
    """Run this process's exit handlers, then end its local Ray instance at once: for a process
    about to exit once its work is done (``cli.run``).

    Ray's own handler (``ray.shutdown``) ends a local instance gracefully, process type by
    process type, 1.4-1.6 s on 2 cores after it first sleeps 0.5 s for log lines a local
    instance does not print (``log_to_driver=False``). Nothing of a finished job lives in those
    processes, so that handler is dropped and they are SIGKILLed instead (``reaper.end_now``),
    but only after the other handlers ran (Tune's and Train's talk to the GCS, and against a
    dead one they waited 60 s and then ended the process with status 1) and after the driver
    has left the instance (:func:`_leave`). A cluster's processes are not this process's to
    end: with ``--ray-address`` Ray's handler runs as usual.
    """
    local = "ray" in sys.modules and reaper.started_any()
    if local:
        import ray

        atexit.unregister(ray.shutdown)
    atexit._run_exitfuncs()  # the handlers an interpreter exit runs; CPython's, stable since 3.0
    if local:
        _leave(ray)
        reaper.end_now()


def _leave(ray) -> None:  # the ray module, imported by the caller
    """``ray.shutdown`` without its end of the instance's processes: the driver's core worker
    disconnects and its threads stop, and the processes are left to ``reaper.end_now``.

    Why first: SIGKILLed in whatever order, an agent may die before the GCS. The raylet then
    fate-shares with it and the GCS tells the still-connected driver that its node died; the
    driver tries to recover the objects it owns, finds the object store gone and ends its own
    process with status 1 ("The connection to the plasma store is failed"). A job that had
    printed its summary exited 1 (seen twice in about a thousand local starts of the suite).

    The package's second use of a private Ray module (``ray._private.worker``; the first is
    ``distributed/pipeline.py``'s): Ray has no public "disconnect, keep the processes". Should the
    name move in another Ray, this is Ray's own graceful shutdown, only slower; the test that
    fails loudly then is ``tests/test_layers.py::test_the_private_names_the_package_uses_exist``.
    """
    from ray._private import worker  # Ray 2.60: ray.shutdown ends the processes of _global_node

    if hasattr(worker, "_global_node"):
        worker._global_node = None
    ray.shutdown()


def _ray_data_output(progress: bool) -> None:
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = progress
    ctx.verbose_progress = False
    # A stage's exception reaches the driver as itself (RayTaskError(OutputWriteError)), not as
    # Ray Data's UserCodeException, whose pickled copy loses the cause: the driver can then turn
    # it into one line (distributed/pipeline.py). Stages catch per-clip failures themselves.
    ctx.raise_original_map_exception = True
    route_ray_logs()  # ray.data sets up its own handlers on first import
    # Ray Data logs to a file in the session directory and to the console; only the console is turned down.
    for handler in logging.getLogger("ray.data").handlers:
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
            handler.setLevel(logging.INFO if progress else logging.ERROR)


# --- the console policy --------------------------------------------------------------------

class _OwnWarnings(logging.Filter):
    """Only this package's records reach the console; Ray's, libraries' and Python warnings do not."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.name == "acoustic_env" or record.name.startswith("acoustic_env.")


#: The threads Ray starts in a driver that print: the cluster's error messages (GCS) and, with
#: log_to_driver, the workers' output (names from ray/_private/worker.py, Ray 2.60).
RAY_PRINT_THREADS = frozenset({"ray_listen_error_messages", "ray_print_logs"})


class _DriverStream:
    """A console stream whose writes from Ray's printing threads (``RAY_PRINT_THREADS``) go to the log
    file instead, masked; everything else about the stream is the console's."""

    def __init__(self, console: Any, log: io.TextIOBase):
        self._console, self._log = console, log

    def write(self, text: str) -> int:
        if threading.current_thread().name in RAY_PRINT_THREADS:
            self._log.write(redact(text))
            return len(text)
        return self._console.write(text)

    def flush(self) -> None:
        self._console.flush()
        self._log.flush()

    def __getattr__(self, name: str) -> Any:  # fileno, isatty, encoding, buffer: the console's
        return getattr(self._console, name)


def log_file() -> Path | None:
    """Where this process logs when the console is quiet (None: it is not)."""
    return _log_file


def quiet_console(path: str | os.PathLike[str]) -> Path:
    """Send everything but the tool's own lines to ``path``; returns it (absolute).

    Idempotent within a process: a second call keeps the first file.
    """
    global _log_file, _file_handler
    if _log_file is not None:
        return _log_file
    target = Path(path).expanduser().resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    stream = target.open("a", buffering=1, encoding="utf-8")
    _file_handler = logging.StreamHandler(stream)
    _file_handler.setFormatter(RedactingFormatter(LOG_FORMAT))
    _file_handler.setLevel(logging.INFO)
    # C/C++ code writes to descriptor 2: point it at the file. Where Python's stderr is that
    # descriptor (a terminal, a pipe), give Python a new stderr on a copy of the old one, so the
    # tool's own output stays on the terminal; where it is something else (a notebook's or a
    # test's capture), leave it: the tool's lines go where the caller looks.
    sys.stderr.flush()
    try:
        python_on_fd2 = sys.stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):
        python_on_fd2 = False
    terminal = os.dup(2) if python_on_fd2 else None
    os.dup2(stream.fileno(), 2)
    if terminal is not None:
        sys.stderr = io.TextIOWrapper(os.fdopen(terminal, "wb", buffering=0), encoding="utf-8",
                                      errors="backslashreplace", line_buffering=True, write_through=True)
    # Ray's threads in the driver print what the cluster reports (a node marked dead, a worker
    # killed) to sys.stdout, whatever log_to_driver says: those lines go to the file too.
    sys.stdout, sys.stderr = _DriverStream(sys.stdout, stream), _DriverStream(sys.stderr, stream)
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.WARNING)
    console.addFilter(_OwnWarnings())
    console.setFormatter(RedactingFormatter("acoustic-env: %(levelname)s: %(message)s"))
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(_file_handler)
    root.addHandler(console)
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)  # warnings.warn -> the "py.warnings" logger -> the file only
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # Tune's newer console reporter ignores verbose=0
    _log_file = target
    route_ray_logs()
    return target


def route_ray_logs() -> None:
    """Move Ray's console handlers to the log file (no-op without :func:`quiet_console`).

    Ray installs its own handlers (``propagate=False``) when ``ray``, ``ray.data``,
    ``ray.tune`` or ``ray.train`` is first imported, so this runs again after each of
    those imports: their records then reach the root logger, i.e. the log file.
    """
    if _log_file is None:
        return
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if not isinstance(logger, logging.Logger) or not (name == "ray" or name.startswith("ray.")):
            continue
        for handler in list(logger.handlers):
            if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
                logger.removeHandler(handler)
        logger.propagate = True
