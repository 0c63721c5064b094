"""The extract job's stages in this process, for a local run with a handful of clips.

A Ray start-up costs a local run about 5 s and 7 CPU-seconds before the first clip
(its own processes, Ray Data's bookkeeping actors, one worker per stage importing the
stage code): more than featurising a few dozen short clips one after another. So a run
that names no cluster (no ``--ray-address``, no ``RAY_ADDRESS``) and has at most
``in_process_max`` clips to do calls the stages itself, the same objects Ray's actors hold
(``audio.stages``), on the same batches, and writes the same parts: the table is the one
the Ray pipeline writes, and the run record says which ran (``resources.executor``).
``predict`` draws the same line for the same reason (``config.IN_PROCESS_MAX``). A cluster
is always used when one is named (a submitted job wants its nodes, however small the list), and so is
``--device cuda``, which asks for the GPU pipeline.
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Iterable, Iterator

import pyarrow as pa

from acoustic_env.audio.rows import row_schema
from acoustic_env.audio.stages import (
    CpuFeatureStage,
    EmbedderStage,
    FeatureWriterStage,
    image_columns,
    separated_signals,
    stages,
    vector_columns,
    write_batch,
)
from acoustic_env.config import ExtractConfig
from acoustic_env.embedders.registry import get
from acoustic_env.audio.progress import JobProgress, add_summary, new_totals


def runs_in_process(cfg: ExtractConfig, clips_to_do: int) -> bool:
    """Whether the run's stages run here: no cluster named, at most ``cfg.in_process_max`` clips to do, and no
    ``--device cuda`` (which asks for the device stage: every feature on the card, ``distributed/pipeline.py``)."""
    named = cfg.ray_address or os.environ.get("RAY_ADDRESS")
    return not named and cfg.device != "cuda" and clips_to_do <= cfg.in_process_max


def embed_device(cfg: ExtractConfig) -> str:
    """The torch device of the embedders here: with ``--device auto``, a CUDA GPU when torch sees one."""
    if cfg.device == "cpu":
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def run_in_process(todo: Iterable[pa.Table], cfg: ExtractConfig, run_id: str, meta: dict[str, Any],
                   weights: dict[str, str], on_planned: Callable[[int], None] = lambda n: None) -> dict[str, Any]:
    """The ``todo`` chunks through the stages in this process; counts, CPU seconds per stage and timings,
    as ``distributed.pipeline.run_pipeline`` returns them."""
    totals = new_totals(cfg)
    chunks = [c for c in todo if c.num_rows]
    n_rows = sum(c.num_rows for c in chunks)
    on_planned(n_rows)
    if not n_rows:
        return totals
    t0 = time.monotonic()
    device = embed_device(cfg) if cfg.embedders else None
    schema = row_schema(chunks[0].schema, vector_columns(cfg), stages(cfg), separated_signals(cfg), image_columns(cfg))
    target = {"output": cfg.output, "run_id": run_id, "meta": meta}
    progress = JobProgress(n_rows, cfg.progress)
    try:
        for summary in _summaries(chunks, cfg, schema, target, weights, device):
            add_summary(totals, summary, progress)
    finally:
        progress.close()
    totals["resources"] = {"executor": "in-process", "torch_device": device, "feature_device": None}
    totals["timing_s"] = {"stream": time.monotonic() - t0}
    return totals


def _summaries(chunks: list[pa.Table], cfg: ExtractConfig, schema: pa.Schema, target: dict[str, Any],
               weights: dict[str, str], device: str | None) -> Iterator[pa.Table]:
    """One summary per written part: the feature stage writing its own parts, or features → embedders → write."""
    if not cfg.embedders:
        writer = FeatureWriterStage(cfg=cfg, schema=schema, **target)
        try:
            for chunk in chunks:
                yield from writer(chunk)
        finally:
            writer.close()
        return
    features = CpuFeatureStage(cfg, schema)
    try:
        embedders = [EmbedderStage(get(name), cfg, schema, device, weights[name]) for name in cfg.embedders]
        rows = pa.concat_tables(chunks)
        for start in range(0, rows.num_rows, cfg.write_batch_size):
            part = rows.slice(start, cfg.write_batch_size)
            batch = pa.concat_tables([features(part.slice(i, cfg.batch_size))
                                      for i in range(0, part.num_rows, cfg.batch_size)])
            for embed in embedders:
                batch = pa.concat_tables([embed(batch.slice(i, cfg.embed_batch_size))
                                          for i in range(0, batch.num_rows, cfg.embed_batch_size)])
            yield write_batch(batch, **target)
    finally:
        features.close()
