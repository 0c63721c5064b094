"""The extract's stage chain, declared once: which stages run, in which order, on batches of which size.

Two executors run it: ``jobs/in_process.py`` calls the stages one after another in the job's
process (a local run with a few clips), and ``distributed/pipeline.py`` maps each onto a Ray Data
actor pool. Both read :func:`extract_chain`, so a new stage is one :class:`Stage` here; how many
actors a pool gets and what share of a CPU or GPU each holds depends on the cluster, so a stage names
its pool and ``distributed/pipeline.py`` sizes the pools (``plan_extract_resources``).

Three shapes: with embedders, decode + CPU features → one stage per embedder → write; without,
one stage that decodes, computes the features and writes its own parts (a writer of its own would
only add a process and a trip through Ray's object store); on CUDA GPUs, decode → the device stage
(every feature and embedding on the card) → write.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Literal

import pyarrow as pa

from acoustic_env.audio.rows import row_schema
from acoustic_env.audio.stages import (
    CpuFeatureStage,
    DecodeStage,
    DeviceStage,
    EmbedderStage,
    FeatureWriterStage,
    PartWriter,
    image_columns,
    separated_signals,
    stages,
    vector_columns,
)
from acoustic_env.config import ExtractConfig
from acoustic_env.embedders.registry import get

#: The pools a stage can run in (``distributed/pipeline.py`` sizes each from the cluster): ``cpu`` one
#: actor per free core, ``embed`` an embedder's actors (on accelerators or CPUs), ``device`` one actor
#: per GPU, ``write`` the part writers.
Pool = Literal["cpu", "embed", "device", "write"]


@dataclass(frozen=True)
class Stage:
    """One stage of the chain: a class of ``audio/stages.py`` built once per actor (or once in the job's
    process) with ``kwargs``, then called on each batch of ``batch_size`` rows (None: whole blocks as they
    come); it returns a batch, or yields one summary per part it writes."""

    cls: type
    kwargs: dict[str, Any]
    batch_size: int | None
    pool: Pool
    #: bytes of memory an actor reserves (an embedder's ``EmbedderSpec.memory``); None: Ray's default
    memory: float | None = None


def chain_schema(manifest_schema: pa.Schema, cfg: ExtractConfig, device_stage: bool = False) -> pa.Schema:
    """The row schema every stage of the chain reads and writes. The separated signals' audio travels only to
    embedder stages, which the device stage replaces."""
    separated = () if device_stage else separated_signals(cfg)
    return row_schema(manifest_schema, vector_columns(cfg), stages(cfg), separated, image_columns(cfg))


def extract_chain(cfg: ExtractConfig, schema: pa.Schema, target: dict[str, Any], weights: dict[str, str],
                  device: str | None, device_stage: bool = False, warm: bool = False) -> tuple[Stage, ...]:
    """The extract's stages in order.

    Args:
        cfg: the extract's config (batch sizes, embedders).
        schema: :func:`chain_schema` of the clip list.
        target: where the parts go: ``output``, ``run_id`` and ``meta`` (the table's metadata).
        weights: embedder name → the weights id the driver checked.
        device: the embedders' torch device (with ``device_stage``, the device stage's); None without embedders.
        device_stage: decode, then one stage that computes every feature and embedding on ``device``.
        warm: the embedder and device stages warm their networks with a dummy batch when built (the Ray
            pipeline, where the CPU actors decode the first blocks meanwhile; in one process nothing would).

    Returns:
        The stages, first to last; the last one's outputs are the parts' one-row summaries.
    """
    specs = {name: get(name) for name in cfg.embedders}  # the specs themselves: a driver-only registration loads too
    writer = Stage(PartWriter, target, cfg.write_batch_size, "write")
    if device_stage:
        return (Stage(DecodeStage, {"cfg": cfg, "schema": schema}, cfg.batch_size, "cpu"),
                Stage(DeviceStage, {"cfg": cfg, "schema": schema, "device": device, "specs": specs,
                                    "weights": weights, "warm": warm},
                      cfg.device_batch_size, "device", memory=sum(s.memory for s in specs.values()) or None),
                writer)
    if not specs:
        return (Stage(FeatureWriterStage, {"cfg": cfg, "schema": schema, **target}, None, "cpu"),)
    # one subclass per embedder, so that Ray's logs name each operator
    embed = [Stage(type(f"Embed{name.capitalize()}", (EmbedderStage,), {}),
                   {"spec": spec, "cfg": cfg, "schema": schema, "device": device, "weights_id": weights[name],
                    "warm": warm},
                   cfg.embed_batch_size, "embed", memory=spec.memory) for name, spec in specs.items()]
    return (Stage(CpuFeatureStage, {"cfg": cfg, "schema": schema}, cfg.batch_size, "cpu"), *embed, writer)


def rebatched(batches: Iterable[pa.Table], size: int | None) -> Iterator[pa.Table]:
    """``batches`` re-cut into batches of ``size`` rows in order, the last one shorter; ``size`` None: as they come.

    The driver's blocks for Ray (``distributed/pipeline.py``), and each stage's batches in the job's process
    (``jobs/in_process.py``), cut as Ray Data cuts them between two actor pools.
    """
    if size is None:
        yield from batches
        return
    rest: pa.Table | None = None
    for batch in batches:
        rest = batch if rest is None else pa.concat_tables([rest, batch])
        while rest.num_rows >= size:
            yield rest.slice(0, size)
            rest = rest.slice(size)
    if rest is not None and rest.num_rows:
        yield rest
