"""Long recordings on Ray: the spans of windows of every file scored by an actor pool on every core (and GPU).

``jobs/windows.py`` cuts each file's windows into spans and owns what a span is and how it is
scored (``SpanScorer``: plain numpy and Arrow, the same object an in-process run calls). This
module only spreads them: the spans become the rows of a Ray Data dataset, one row per call,
and an actor pool whose every actor builds the scorer once (the model and its embedders
loaded once per actor, not per span) scores them; each actor writes its span's part itself
(the scorer does, when the run has an output) and hands the rows back with the span's
number, so the driver can put them in file and time order whatever order they finish in.

Resources: one actor per CPU of the cluster, each holding a little less than a whole CPU
(an actor pool that holds every CPU starves anything else Ray Data schedules; Ray gives
each actor one native thread, so every core runs one scorer). With ``device`` ``cuda``
(or ``auto`` on a cluster with GPUs) each actor also holds an equal share of the GPUs and
runs its embedders there: the card takes batches of windows from every actor, that is
from many files at once. A span's memory is ``window_batch`` windows of audio, whatever
the file's length.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from acoustic_env.config import ConfigError
from acoustic_env.distributed.session import start_ray
from acoustic_env.errors import OutputWriteError
from acoustic_env.storage import redact

#: The column the actors add to say which span (its place in the list given) a row belongs to.
ITEM = "__span"
#: CPUs left unheld beside the actors, so that a light task Ray Data runs always finds room.
SPARE_CPUS = 0.25


@dataclass(frozen=True)
class SpanResources:
    """How many scoring actors run, and what each holds: ``cpus`` CPUs, ``gpus`` of a GPU on ``device``."""

    actors: int
    cpus: float
    gpus: float
    device: str


def plan_span_resources(cluster: Mapping[str, float], spans: int, device: str, memory: float = 0.0) -> SpanResources:
    """One actor per CPU of the cluster (never more than there are spans, nor than the cluster's memory holds at
    ``memory`` bytes each), each with an equal share of the GPUs when the embedders run on them; ``device``
    ``cuda`` on a cluster without a GPU is a ConfigError naming it."""
    cpus, gpus = float(cluster.get("CPU", 1.0)), float(cluster.get("GPU", 0.0))
    if device == "cuda" and gpus <= 0:
        raise ConfigError("device: --device cuda, but the Ray cluster has no GPU (use --device auto or cpu)")
    fit = math.floor(cluster.get("memory", 0.0) / memory) if memory else spans
    actors = max(1, min(spans, math.floor(cpus), fit))
    per_cpu = min(1.0, math.floor(max(cpus - SPARE_CPUS, 0.25) / actors * 1000) / 1000)
    on_gpu = device != "cpu" and gpus > 0
    per_gpu = math.floor(min(gpus, actors) / actors * 1e4) / 1e4 if on_gpu else 0.0
    return SpanResources(actors, per_cpu, per_gpu, "cuda" if on_gpu else "cpu")


#: The most spans of one input block: a block goes to one actor whole, so a long one could leave the others idle at
#: the end; a block each costs the driver memory that stays until the job ends, so a million spans cannot each have one.
MAX_BLOCK_SPANS = 64


def input_blocks(spans: int, actors: int) -> int:
    """How many blocks the spans are put in: about 16 per actor (an even finish), at most ``MAX_BLOCK_SPANS`` spans
    each."""
    per = min(MAX_BLOCK_SPANS, max(1, math.ceil(spans / (actors * 16))))
    return math.ceil(spans / per)


class _SpanActor:
    """A Ray Data actor around a span scorer: ``make(*args, **kwargs, device=...)`` once, then one span per call."""

    def __init__(self, make: Callable[..., Callable[[Any], pa.Table]], item: type, args: tuple[Any, ...],
                 kwargs: dict[str, Any]) -> None:
        self.score, self.item = make(*args, **kwargs), item

    def __call__(self, batch: pa.Table) -> pa.Table:
        out = []
        for row in batch.to_pylist():
            i = row.pop(ITEM)
            table = self.score(self.item(**row))
            out.append(table.append_column(ITEM, pa.array(np.full(table.num_rows, i, np.int64))))
        return pa.concat_tables(out)


def score_spans(spans: Sequence[Any], make: Callable[..., Callable[[Any], pa.Table]], args: tuple[Any, ...],
                kwargs: dict[str, Any], *, address: str | None = None, device: str = "cpu",
                memory: float = 0.0) -> Iterator[tuple[Any, pa.Table]]:
    """(span, its rows) for every span, as the actors finish them (any order).

    ``spans``: dataclass instances of scalar fields (one row each of the dataset); ``make(*args, **kwargs,
    device=...)`` builds, in each actor, the callable that scores one span into a table; ``memory``: the bytes
    each actor reserves (its embedders' networks, as the extract's embedder actors do). Starts a local Ray
    instance, or joins ``address`` (else ``RAY_ADDRESS``), as every job does.
    """
    import ray.data

    cluster = start_ray(address, progress=False)
    res = plan_span_resources(cluster, len(spans), device, memory)
    items = [{**dataclasses.asdict(s), ITEM: i} for i, s in enumerate(spans)]
    ds = ray.data.from_items(items, override_num_blocks=input_blocks(len(items), res.actors)).map_batches(
        _SpanActor, batch_size=1, batch_format="pyarrow", num_cpus=res.cpus, num_gpus=res.gpus or None,
        memory=memory or None,
        compute=ray.data.ActorPoolStrategy(size=res.actors, max_tasks_in_flight_per_actor=2),
        fn_constructor_kwargs={"make": make, "item": type(spans[0]), "args": args,
                               "kwargs": {**kwargs, "device": res.device}})
    try:
        for block in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
            for i in np.unique(block[ITEM].to_numpy()):
                yield spans[int(i)], block.filter(pc.equal(block[ITEM], i)).drop_columns([ITEM])
    except Exception as exc:
        found = OutputWriteError.found_in(exc)  # an actor's failed part arrives wrapped by Ray
        if found is None:
            raise
        raise OutputWriteError(redact(str(found))) from None
