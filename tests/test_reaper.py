"""The watcher's look at the processes (``distributed/reaper.py: _scan``): every descendant of every root, in one pass."""

from __future__ import annotations

import subprocess
import sys
import time

import psutil

from acoustic_env.distributed import reaper

#: a process that starts two children, one of which starts a grandchild, then sleeps
TREE = ("import subprocess, sys, time\n"
        "subprocess.Popen([sys.executable, '-c', \"import subprocess, time; subprocess.Popen(['sleep', '60']); "
        "time.sleep(60)\"])\n"
        "subprocess.Popen(['sleep', '60'])\n"
        "time.sleep(60)\n")


def _family(pid: int) -> set[tuple[int, float]]:
    """What psutil says ``pid``'s family is (the root and every descendant), by pid and start time."""
    root = psutil.Process(pid)
    return {(p.pid, p.create_time()) for p in [root, *root.children(recursive=True)]}


def test_a_look_finds_every_descendant_of_every_living_root_and_skips_a_dead_one():
    trees = [subprocess.Popen([sys.executable, "-c", TREE]) for _ in range(2)]
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.monotonic() + 30
        while any(len(_family(t.pid)) < 4 for t in trees):  # the root, its two children, a grandchild
            assert time.monotonic() < deadline, "the trees did not start"
            time.sleep(0.1)
        dead_root = psutil.Process(dead.pid)
        dead.wait()
        known: set[tuple[int, float]] = set()
        reaper._scan([psutil.Process(t.pid) for t in trees] + [dead_root], known)
        assert known == _family(trees[0].pid) | _family(trees[1].pid)
        assert len(known) == 8 and dead.pid not in {pid for pid, _ in known}
    finally:
        for t in trees:
            for p in [*psutil.Process(t.pid).children(recursive=True), psutil.Process(t.pid)]:
                p.kill()
            t.wait()
