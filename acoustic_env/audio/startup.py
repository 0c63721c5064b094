"""An extract actor's start-up, timed where it happens and shown in the run record (``startup``).

A stage's actor pays its start-up once: its constructor imports the stage code (torch, for an
embedder), loads its network and, on the Ray pipeline, warms it with one dummy batch (``warm_clips``);
then it waits for its first batch. The first pass of a network on a card loads its kernels, FFT plans
and library handles (seconds), so an actor that warms pays that while the CPU actors decode the first
blocks instead of on its first real batch. On a CPU the first pass costs one clip's time more than the
next (measured: 0.03 s YAMNet and VGGish, 0.3 s PANNs, 0.1 s BirdNET), so the warm batch there is one clip.

Each actor keeps an :class:`ActorClock` and stamps its start-up onto the first table it hands on: one
JSON entry appended to the row-0 list of the :data:`COLUMN` column, which travels with that row
through the later stages (the writer gathers the column into its part's summary and stores none of it).
The driver turns the entries into the record's ``startup`` with :func:`summarise`. The stamps are
wall-clock times (``time.time()``): actors on other nodes are as right as the nodes' clocks.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Callable

import numpy as np
import pyarrow as pa

#: The column that carries the start-up entries between stages and in the parts' summaries (never stored).
COLUMN = "_startup"
TYPE = pa.list_(pa.string())
#: The length of a warm-up clip: AudioSet's, the clips a card's batch most often holds.
WARM_CLIP_S = 10.0


def field() -> pa.Field:
    """The start-up column of the row schema every stage reads and writes."""
    return pa.field(COLUMN, TYPE)


def warm_clips(device: str, batch_size: int, sample_rate: int) -> list[np.ndarray]:
    """The dummy batch an actor warms its network with: seeded low noise, :data:`WARM_CLIP_S` each.

    On a card, ``batch_size`` clips (the steady state's shapes, whose kernels the first pass loads); on
    a CPU one, which pays the first pass's extra cost for a few tenths of a second of one core.
    """
    n = batch_size if device.startswith("cuda") else 1
    rng = np.random.default_rng(0)
    return [0.01 * rng.standard_normal(int(WARM_CLIP_S * sample_rate)).astype(np.float32) for _ in range(n)]


class ActorClock:
    """One actor's start-up: when its constructor began, its load and warm-up seconds, its first batch.

    ``stage`` names the actor's stage as the record does (``features``, ``decode``, ``embed_yamnet``,
    ``device``). Created first thing in the constructor; :meth:`phase` times a part of it; :meth:`stamp`
    puts the entry on the first table the actor hands on.
    """

    def __init__(self, stage: str):
        self.stage = stage
        self.started = self.ready = time.time()
        self.seconds = {"load": 0.0, "warm": 0.0}
        self.warm_error: str | None = None
        self.stamped = False

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time ``name`` (``load`` or ``warm``) of the constructor; the constructor is done at the end of each."""
        t0 = time.time()
        try:
            yield
        finally:
            self.ready = time.time()
            self.seconds[name] += self.ready - t0

    def warm(self, run: Callable[[], Any]) -> None:
        """Run the dummy batch ``run`` as the ``warm`` phase. A failure is kept (``warm_error``), not raised:
        the real batches meet the same network, and a clip that fails there becomes an error row."""
        with self.phase("warm"):
            try:
                run()
            except Exception as exc:  # noqa: BLE001 - the warm-up only moves a cost; the batches decide
                self.warm_error = f"{type(exc).__name__}: {str(exc)[:200]}"

    def stamp(self, table: pa.Table, began: float) -> pa.Table:
        """``table`` as the actor hands it on: the first time, with this actor's entry on row 0 (its first
        batch began at ``began``, a ``time.time()``, and is done now)."""
        if self.stamped or not table.num_rows:
            return table
        self.stamped = True
        entry = {"stage": self.stage, "started": self.started, "ready": self.ready, "load_s": self.seconds["load"],
                 "warm_s": self.seconds["warm"], "first_batch": began, "first_batch_s": time.time() - began}
        if self.warm_error:
            entry["warm_error"] = self.warm_error
        return append(table, [json.dumps(entry)])


def append(table: pa.Table, entries: list[str]) -> pa.Table:
    """``table`` with ``entries`` added to its row 0's list in :data:`COLUMN` (the column added if absent)."""
    if not entries:
        return table
    values = table[COLUMN].to_pylist() if COLUMN in table.column_names else [None] * table.num_rows
    values[0] = (values[0] or []) + entries
    column = pa.array(values, TYPE)
    if COLUMN in table.column_names:
        return table.set_column(table.column_names.index(COLUMN), field(), column)
    return table.append_column(field(), column)


def entries(table: pa.Table) -> list[str]:
    """Every start-up entry of ``table``'s rows (a batch, or the summaries of written parts)."""
    if COLUMN not in table.column_names:
        return []
    return [e for row in table[COLUMN].to_pylist() if row for e in row]


def summarise(found: list[str], t0: float) -> dict[str, Any]:
    """The record's ``startup``: per stage, when its actors first became busy, each actor's times, seconds after
    ``t0`` (the run's start: ``wall_s`` counts from it too).

    Per actor, sorted by its first batch: ``started_s`` (its constructor began), ``load_s`` (imports and the
    network), ``warm_s`` (the dummy batch; 0 where the stage does not warm), ``ready_s`` (constructor done),
    ``first_batch_s`` (its first batch began: how long data kept it waiting shows as ``first_batch_s -
    ready_s``) and ``first_batch_took_s``. Per stage, ``first_busy_s``: its earliest first batch.
    """
    stages: dict[str, list[dict[str, Any]]] = {}
    for text in found:
        e = json.loads(text)
        actor = {"started_s": e["started"] - t0, "load_s": e["load_s"], "warm_s": e["warm_s"],
                 "ready_s": e["ready"] - t0, "first_batch_s": e["first_batch"] - t0,
                 "first_batch_took_s": e["first_batch_s"]}
        if e.get("warm_error"):
            actor["warm_error"] = e["warm_error"]
        stages.setdefault(e["stage"], []).append({k: round(v, 3) if isinstance(v, float) else v
                                                  for k, v in actor.items()})
    return {stage: {"first_busy_s": min(a["first_batch_s"] for a in actors),
                    "actors": sorted(actors, key=lambda a: a["first_batch_s"])}
            for stage, actors in sorted(stages.items(), key=lambda kv: min(a["first_batch_s"] for a in kv[1]))}
