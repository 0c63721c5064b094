"""Ending a local Ray instance's processes when the driver that started them dies.

Why: ``ray.init`` starts the GCS and the raylet fate-shared with the driver, so a
SIGKILLed driver takes them along at once, and the workers follow the raylet within
seconds. The raylet's agents (``ray::DashboardAgent``, ``ray::RuntimeEnvAgent``) do not:
once they notice the raylet is gone they report its death to the GCS, which died with
the driver, through a call with a fixed 60-s timeout
(``ray._private.process_watcher.report_raylet_error_logs``), and only then exit. They
outlived every killed driver by 61-68 s, holding ports and memory. No Ray setting
shortens that call (``RAY_gcs_rpc_server_reconnect_timeout_s`` was tried: still 60 s).

So a local instance gets a watcher: a small process (no Ray import) that reads a pipe
whose only writer is the driver. End of file means the driver is gone, however it went.
The watcher then leaves Ray's own shutdown ``GRACE_S`` and ends what is left of the
processes ``ray.init`` started and their descendants (SIGTERM, then SIGKILL after
``KILL_AFTER_S``). Each is known by pid *and* start time, so a pid the system has since
given to another process is never touched. A cluster (``--ray-address``) is not the
driver's to end, and gets no watcher.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time

import psutil

#: Seconds after the driver's end before the watcher ends what is left (a normal shutdown is done by then).
GRACE_S = 3.0
#: Seconds between SIGTERM and SIGKILL.
KILL_AFTER_S = 3.0
#: Seconds between two looks at the processes to watch (agents and workers start after ``ray.init``; an actor
#: started late and not yet seen would outlive a killed driver).
SCAN_EVERY_S = 1.0

_watchers: list[subprocess.Popen] = []  # held for the driver's life: their pipes close when it ends
_roots: list[psutil.Process] = []  # what ray.init started in this process, for end_now


def children() -> set[int]:
    """The pids of this process's direct children."""
    return {c.pid for c in psutil.Process().children()}


def watch(before: set[int]) -> None:
    """Start a watcher over the children this process gained since ``before`` (what ``ray.init`` started)."""
    roots = sorted(children() - before)
    if not roots:
        return
    for pid in roots:
        with contextlib.suppress(psutil.Error):
            _roots.append(psutil.Process(pid))
    proc = subprocess.Popen([sys.executable, "-m", "acoustic_env.distributed.reaper", *map(str, roots)],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # a Ctrl-C to the driver's group must not end it first
    _watchers.append(proc)


def started_any() -> bool:
    """Whether this process started a local instance that :func:`end_now` has not ended."""
    return bool(_roots)


def end_new(before: set[int]) -> None:
    """SIGKILL the children this process gained since ``before``, descendants included: what a
    ``ray.init`` that failed half-way had started (its GCS lives on otherwise)."""
    for pid in sorted(children() - before):
        with contextlib.suppress(psutil.Error):
            _roots.append(psutil.Process(pid))
    end_now()


def end_now() -> bool:
    """SIGKILL what ``ray.init`` started in this process, descendants included, and wait until
    it is gone; False when it started nothing (no local instance, or a cluster's).

    For a driver about to exit whose work is done: Ray's graceful shutdown ends the raylet,
    then the GCS, then the rest, one after the other, each given time to exit (1.4-1.6 s
    on 2 cores, measured); a local instance that ends with its driver keeps nothing worth
    that time. Its families are gathered first (:func:`_scan`, by pid and start time, as the
    watcher does), so a worker the raylet's end orphans is still ended.
    """
    known: set[tuple[int, float]] = set()
    _scan(_roots, known)
    _roots.clear()
    for p in _alive(known):
        with contextlib.suppress(psutil.Error):
            p.kill()
    deadline = time.monotonic() + KILL_AFTER_S
    while _alive(known) and time.monotonic() < deadline:
        time.sleep(0.01)  # psutil.wait_procs polls orphans with back-off: 1.2 s here against 0.03
    return bool(known)


def _identity_of(pid: int) -> tuple[int, float] | None:
    try:
        return pid, psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def _scan(roots: list[psutil.Process], known: set[tuple[int, float]]) -> None:
    """Add every living root and its descendants to ``known``, from one pass over the machine's processes.

    One pass for all the roots: ``Process.children(recursive=True)`` reads every process of the machine once per
    root, and a watcher looking once a second at an instance's five roots used 130 CPU-s of a loaded 2-core test
    suite (py-spy, 2026-11-27). A root that is gone is skipped: its children were seen while it lived."""
    children: dict[int, list[int]] = {}
    for pid, ppid in psutil._ppid_map().items():  # what children(recursive=True) reads, read once (1.4 ms, 84 pids)
        children.setdefault(ppid, []).append(pid)
    for root in roots:
        if not root.is_running():  # gone, or its pid reused by another process
            continue
        family = [root.pid]
        for pid in family:  # grows as it is walked: breadth first down the tree
            family.extend(children.get(pid, ()))
        known.update(i for i in map(_identity_of, family) if i is not None)


def _alive(known: set[tuple[int, float]]) -> list[psutil.Process]:
    alive = []
    for pid, created in known:
        try:
            p = psutil.Process(pid)
            if p.create_time() == created and p.status() != psutil.STATUS_ZOMBIE:
                alive.append(p)
        except psutil.Error:
            continue
    return alive


def main(argv: list[str]) -> int:
    """The watcher: follow the roots' families until stdin ends, then end the survivors."""
    roots = []
    for pid in argv:
        try:
            roots.append(psutil.Process(int(pid)))
        except psutil.Error:
            continue
    known: set[tuple[int, float]] = set()
    driver_gone = threading.Event()

    def wait_for_eof() -> None:
        sys.stdin.buffer.read()  # returns only once the driver's end of the pipe is closed
        driver_gone.set()

    threading.Thread(target=wait_for_eof, daemon=True).start()
    _scan(roots, known)
    while not driver_gone.wait(SCAN_EVERY_S):
        _scan(roots, known)
    time.sleep(GRACE_S)
    survivors = _alive(known)
    for p in survivors:
        with contextlib.suppress(psutil.Error):
            p.terminate()
    _, still = psutil.wait_procs(survivors, timeout=KILL_AFTER_S)
    for p in still:
        with contextlib.suppress(psutil.Error):
            p.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
