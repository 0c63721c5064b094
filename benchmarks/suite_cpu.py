"""Where a command's CPU goes, process by process: by kind (Ray's processes by title, the CLI by subcommand, the test
processes) and by the test that started each process.

    python benchmarks/suite_cpu.py -- .venv/bin/python -m pytest -q -n 2
    python benchmarks/suite_cpu.py --json cpu.json -- .venv/bin/acoustic-env extract --manifest m.csv --output o
    python benchmarks/suite_cpu.py --budget 1800 -- make test      # what .ci/run does

It prints the machine, the date and the command (credentials in a URI masked) above its tables, and with
``--budget`` a last line: the total against that many CPU-s. Its exit status is the command's.

Every 0.5 s it reads ``/proc/<pid>/stat`` of every process. A process started after the command is charged its CPU
since the last sample under the title it has then (a Ray worker is ``ray::IDLE`` while it imports, then its actor's
name), and to the test in its ``PYTEST_CURRENT_TEST`` (pytest sets it; a subprocess and the local Ray instance it starts
inherit it; the session's own Ray instance is charged to the test that started it). What a process spends in the half
second before it exits is lost, so the totals are a little low. A pytest session also writes each test's CPU in its own
process (tests/conftest.py, through ``SUITE_CPU_TESTS``), which the table of tests adds. Processes already running when the command starts
(the kernel's, other jobs') are not counted, nor those started meanwhile that neither carry ``SUITE_CPU_TESTS`` in
their environment (the command's children, Ray's daemons and workers and a ``ray start`` node inherit it) nor are the
child of a process that does (Chromium's, which clear theirs): another user's tests or mutation run on a shared
machine, whose total is printed apart.
Linux only (``/proc``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

from machine import describe

from acoustic_env.storage import redact

HZ = os.sysconf("SC_CLK_TCK")
INFRA = ("dashboard/agent.py", "runtime_env/agent", "log_monitor", "monitor.py", "dashboard/dashboard.py", "reaper",
         "chromium", "chromedriver", "moto_server", "ray.scripts", "setup_worker")


def kind_of(cmdline: str, comm: str) -> str:
    """A process's kind from its command line (Ray's workers retitle themselves ``ray::<actor or task>``)."""
    if cmdline.startswith("ray::") or comm.startswith("ray::"):
        m = re.match(r"ray::([\w.]+)", cmdline or comm)
        return "ray::" + (m.group(1).split(".")[0] if m else comm)
    exe = cmdline.split(" ")[0].rsplit("/", 1)[-1] if cmdline else comm
    if exe in ("raylet", "gcs_server"):
        return exe
    if "default_worker.py" in cmdline:
        return "ray worker starting"
    for name in INFRA:
        if name in cmdline:
            return name
    m = re.search(r"acoustic_env\.cli\s+(\S+)|acoustic-env\s+(\S+)", cmdline)
    if m:
        return "acoustic-env " + (m.group(1) or m.group(2))
    if "execnet" in cmdline or "exec(eval" in cmdline:
        return "pytest-xdist worker"
    if "pytest" in cmdline:
        return "pytest"
    return "other: " + exe[:40]


def _read(pid: str) -> tuple[str, float, int, int]:
    """A process's name, CPU-s, start time (clock ticks since boot) and parent's pid."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    end = stat.rindex(")")
    fields = stat[end + 2:].split()
    return stat[stat.index("(") + 1:end], (int(fields[11]) + int(fields[12])) / HZ, int(fields[19]), int(fields[1])


def _environ(pid: str) -> list[bytes]:
    return Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")


def _test_of(env: list[bytes]) -> str:
    value = next((v[20:].decode() for v in env if v.startswith(b"PYTEST_CURRENT_TEST=")), "")
    return value.split(" (")[0]


#: The file a pytest session under this command appends each test's CPU in its own process to (tests/conftest.py:
#: one "nodeid seconds" line a test): a test process's CPU is otherwise charged to no test.
TESTS_ENV = "SUITE_CPU_TESTS"


def sample(command: list[str], tests_file: Path, interval_s: float = 0.5) -> tuple[int, float, list[dict], float]:
    """Run ``command`` with ``TESTS_ENV`` set to ``tests_file``; return its exit code, wall seconds, one record per
    process it started (each inherits that variable), and the CPU-s of the processes others started meanwhile
    (without it: another user's tests, a mutation run), which are not the command's."""
    env = {**os.environ, TESTS_ENV: str(tests_file)}
    marker = f"{TESTS_ENV}={tests_file}".encode()
    foreign: dict[tuple[str, int], float] = {}
    counted: set[int] = set()
    before = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            before.add((pid, _read(pid)[2]))
        except (OSError, ValueError, IndexError):  # gone between the listing and the read
            continue
    seen: dict[tuple[str, int], dict] = {}
    t0 = time.monotonic()
    proc = subprocess.Popen(command, env=env)
    while proc.poll() is None:
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                comm, cpu, start, parent = _read(pid)
                key = (pid, start)
                if key in before:
                    continue
                if key in foreign:
                    foreign[key] = cpu
                    continue
                entry = seen.get(key)
                if entry is None:
                    environ = _environ(pid)
                    if marker not in environ and parent not in counted:  # a child that cleared its environment
                        foreign[key] = cpu                                 # (Chromium's) is still the command's
                        continue
                    counted.add(int(pid))
                    entry = seen[key] = {"pid": int(pid), "cpu_s": 0.0, "test": _test_of(environ), "by_kind": {}}
                if cpu > entry["cpu_s"] or not entry["by_kind"]:
                    kind = kind_of(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip(),
                                   comm)
                    entry["by_kind"][kind] = entry["by_kind"].get(kind, 0.0) + cpu - entry["cpu_s"]
                    entry["cpu_s"] = cpu
            except (OSError, ValueError, IndexError):  # gone between the listing and the read
                continue
        time.sleep(interval_s)
    return proc.returncode, time.monotonic() - t0, list(seen.values()), sum(foreign.values())


def own_cpu(path: Path) -> Counter:
    """Each test's CPU in its own process, from the lines the tests appended to ``path`` (``TESTS_ENV``)."""
    found: Counter = Counter()
    for line in path.read_text().splitlines() if path.is_file() else ():
        test, _, cpu = line.rpartition(" ")
        found[test] += float(cpu)
    return found


def summary(records: list[dict], wall_s: float, top: int = 25, own: Counter | None = None) -> str:
    """The tables: CPU by kind of process, and by test (the processes it started, plus its ``own`` CPU in the test
    process where the tests wrote it)."""
    by_kind, by_test, processes = Counter(), Counter(own or {}), Counter()
    for r in records:
        for kind, cpu in r["by_kind"].items():
            by_kind[kind] += cpu
        if r["by_kind"]:
            processes[max(r["by_kind"], key=r["by_kind"].get)] += 1
        by_test[r["test"] or "(no test)"] += r["cpu_s"]
    # a test's own CPU is part of its test process's, which no test started: charged once, to the test
    by_test["(no test)"] -= sum((own or {}).values())
    total = sum(by_kind.values())
    lines = [f"{total:.0f} CPU-s in {wall_s:.0f} s wall ({total / wall_s:.2f} cores on average), "
             f"{len(records)} processes", "", "CPU-s  processes  kind"]
    lines += [f"{cpu:6.1f} {processes[k]:6d}  {k}" for k, cpu in by_kind.most_common(top)]
    lines += ["", "CPU-s  test (the processes it started" + (", and its own CPU in the test process)" if own else
                                                         "; not the test process itself)")]
    lines += [f"{cpu:6.1f}  {t}" for t, cpu in by_test.most_common(top)]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", help="also write every process's record here")
    parser.add_argument("--top", type=int, default=25, help="rows per table")
    parser.add_argument("--budget", type=float, help="CPU-s the command may take: the last line says whether it kept "
                                                     "to them (make test's: docs/development.md)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to measure after --")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            tests = Path(tmp) / "tests.txt"
            rc, wall, records, others = sample(command, tests)
            own = own_cpu(tests)
    except OSError as exc:  # no such program, not executable
        parser.error(f"cannot run {command[0]!r}: {exc.strerror}")
    if args.json:  # .ci/run's goes under build/, which a fresh clone has not made yet
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(records))
    print(f"\nmachine: {describe()}; {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; command: {redact(' '.join(command))}",
          file=sys.stderr)
    print(summary(records, wall, args.top, own), file=sys.stderr)
    if others:
        print(f"(not counted: {others:.0f} CPU-s of processes others started meanwhile)", file=sys.stderr)
    if args.budget is not None:
        print(budget_line(records, args.budget), file=sys.stderr)
    return rc


def budget_line(records: list[dict], budget: float) -> str:
    """The command's CPU against its budget, one line (the end of CI's log)."""
    total = sum(sum(r["by_kind"].values()) for r in records)
    verdict = "within it" if total <= budget else f"{total - budget:,.0f} over"
    return f"CPU: {total:,.0f} CPU-s of a budget of {budget:,.0f} ({verdict})"


if __name__ == "__main__":
    sys.exit(main())
