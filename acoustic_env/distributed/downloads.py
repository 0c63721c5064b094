"""Many slow, independent downloads as Ray tasks: a bounded number at once, started at a polite rate.

The driver is the only place that starts work, so it keeps the rate: each item gets a
start slot at least ``1 / rate_per_s`` after the previous one, handed to the task, which
waits for it (``not_before``); at most ``workers`` tasks are in flight. The k-th download
of a run therefore starts no earlier than ``k / rate_per_s`` after the first slot, on
one machine or many. Results come back as they finish (``on_result``), so the job can
record them while the rest run, and a killed job loses only the downloads in flight.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from acoustic_env.distributed.session import start_ray

#: CPUs a download task reserves: it mostly waits on the network (and ffmpeg cuts a 10-s segment in a blink).
TASK_CPUS = 0.25


def _at(fn: Callable[..., Any], item: Any, not_before: float, shared: dict[str, Any]) -> Any:
    return fn(item, not_before=not_before, **shared)


def run_downloads(fn: Callable[..., Any], items: Iterable[Any], workers: int, rate_per_s: float,
                  on_result: Callable[[Any], None], address: str | None = None, **shared: Any) -> float:
    """``fn(item, not_before=slot, **shared)`` for every item as Ray tasks; returns the first slot (epoch s)."""
    import ray

    if not ray.is_initialized():
        start_ray(address)
    task = ray.remote(num_cpus=TASK_CPUS, max_retries=0)(_at)
    shared_ref = ray.put(shared)
    pending: list[Any] = []
    first = slot = time.time()
    started = 0
    for item in items:
        if len(pending) >= workers:
            done, pending = ray.wait(pending, num_returns=1)
            on_result(ray.get(done[0]))
        slot = max(slot, time.time()) if started == 0 else max(slot + 1.0 / rate_per_s, time.time())
        first = slot if started == 0 else first
        pending.append(task.remote(fn, item, slot, shared_ref))
        started += 1
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        on_result(ray.get(done[0]))
    return first
