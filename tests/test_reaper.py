"""The watcher's look at the processes (``distributed/reaper.py: _scan``): every descendant of every root, in one pass;
and what it ends at the last (``_alive``): only the processes it saw, by pid and start time."""

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


def test_a_pid_now_held_by_another_process_or_a_zombie_is_not_ended():
    """The watcher ends only what it saw: a pid whose process has another start time than the one it recorded now
    belongs to a process that reused the number, and a zombie has nothing left to end."""
    live = subprocess.Popen(["sleep", "60"])
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        started = psutil.Process(live.pid).create_time()
        zombie_started = psutil.Process(zombie.pid).create_time()
        deadline = time.monotonic() + 30
        while psutil.Process(zombie.pid).status() != psutil.STATUS_ZOMBIE:  # exited, not yet waited for
            assert time.monotonic() < deadline, "the short process did not exit"
            time.sleep(0.05)
        assert [p.pid for p in reaper._alive({(live.pid, started)})] == [live.pid]
        assert reaper._alive({(live.pid, started + 1.0)}) == []  # the number reused by another process
        assert reaper._alive({(zombie.pid, zombie_started)}) == []
    finally:
        live.kill()
        live.wait()
        zombie.wait()
