"""The extract job's progress and totals, whichever runs its stages (Ray, or this process).

Both executors hand back one summary row per written part (``audio.stages.write_batch``);
:func:`add_summary` adds them up the same way, and :class:`JobProgress` turns them into
the job's one progress line.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

import pyarrow as pa

from acoustic_env.audio import startup
from acoustic_env.audio.rows import CPU_PREFIX
from acoustic_env.audio.stages import stages
from acoustic_env.config import ExtractConfig

#: Seconds between two progress lines when the console is not a terminal.
PROGRESS_EVERY_S = 10.0


def new_totals(cfg: ExtractConfig) -> dict[str, Any]:
    """The counts a run adds up: clips written and failed, error types, CPU seconds per stage, and the actors'
    start-up entries (``audio/startup.py``)."""
    return {"ok": 0, "failed": 0, "error_types": {}, "cpu_s": dict.fromkeys(stages(cfg), 0.0), "startup": []}


def add_summary(totals: dict[str, Any], summary: pa.Table, progress: JobProgress) -> None:
    """Add the summaries of written parts (one row each) to ``totals`` and to the progress line."""
    totals["startup"] += startup.entries(summary)
    for row in summary.to_pylist():
        totals["ok"] += row["n_ok"]
        totals["failed"] += row["n_failed"]
        for t in filter(None, row["error_types"].split(",")):
            totals["error_types"][t] = totals["error_types"].get(t, 0) + 1
        for stage in totals["cpu_s"]:
            totals["cpu_s"][stage] += row.get(CPU_PREFIX + stage) or 0.0
        progress.update(row["n_ok"], row["n_failed"])


class JobProgress:
    """One honest line for the whole job: clips written of the total, rate, ETA, failures so far.

    On a terminal a tqdm bar; otherwise (a log file, ``ray job submit``) a plain line
    every ``every_s`` seconds and one at the end. Counts come from the writer's
    summaries, so a clip is counted once it is on storage.
    """

    def __init__(self, total: int, enabled: bool, stream: TextIO | None = None, every_s: float = PROGRESS_EVERY_S):
        self.total, self.done, self.failed = total, 0, 0
        self.printed: int | None = None  # the count of the last plain line
        self.stream = stream or sys.stderr
        self.every_s = every_s
        self.t0 = self.last = time.monotonic()
        self.bar = None
        self.enabled = enabled
        if enabled and self.stream.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="clip", desc="extract", file=self.stream, dynamic_ncols=True)

    def update(self, ok: int, failed: int) -> None:
        self.done += ok + failed
        self.failed += failed
        if self.bar is not None:
            self.bar.update(ok + failed)
            self.bar.set_postfix(failed=self.failed, refresh=False)
        elif self.enabled and time.monotonic() - self.last >= self.every_s:
            self._line()

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.t0, 1e-9)
        rate = self.done / elapsed
        eta_text = f"{(self.total - self.done) / rate:.0f} s" if rate > 0 else "?"
        return (f"extract: {self.done} of {self.total} clips ({100 * self.done / max(self.total, 1):.0f} %), "
                f"{rate:.2f} clips/s, ETA {eta_text}, {self.failed} failed")

    def _line(self) -> None:
        self.last = time.monotonic()
        self.printed = self.done
        print(self.line(), file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.enabled and self.printed != self.done:  # the final count, unless the last line said it
            self._line()
