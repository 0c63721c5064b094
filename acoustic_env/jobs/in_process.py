"""The extract job's stages in this process, for a local run with a handful of clips.

A Ray start-up costs a local run about 5 s and 7 CPU-seconds before the first clip
(its own processes, Ray Data's bookkeeping actors, one worker per stage importing the
stage code): more than featurising a few dozen short clips one after another. So a run
that names no cluster (no ``--ray-address``, no ``RAY_ADDRESS``) and has at most
``in_process_max`` clips to do calls the stages itself: the chain Ray's actor pools run
(``audio/chain.py``), the same objects in the same order on batches of the same sizes. It
writes the same table as the Ray pipeline, and the run record says which ran
(``resources.executor``).
``predict`` draws the same line for the same reason (``config.IN_PROCESS_MAX``). A cluster
is always used when one is named (a submitted job wants its nodes, however small the list), and so is
``--device cuda``, which asks for the GPU pipeline.
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Iterable, Iterator

import pyarrow as pa

from acoustic_env.audio.chain import Stage, chain_schema, extract_chain, rebatched
from acoustic_env.audio.progress import JobProgress, add_summary, new_totals
from acoustic_env.config import ExtractConfig


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
    target = {"output": cfg.output, "run_id": run_id, "meta": meta}
    chain = extract_chain(cfg, chain_schema(chunks[0].schema, cfg), target, weights, device)
    progress = JobProgress(n_rows, cfg.progress)
    try:
        for summary in run_chain(chain, chunks):
            add_summary(totals, summary, progress)
    finally:
        progress.close()
    totals["resources"] = {"executor": "in-process", "torch_device": device, "feature_device": None}
    totals["timing_s"] = {"stream": time.monotonic() - t0}
    return totals


def run_chain(chain: tuple[Stage, ...], batches: Iterable[pa.Table]) -> Iterator[pa.Table]:
    """The last stage's outputs (the parts' summaries): each stage built once, fed its predecessor's outputs
    re-cut to its own ``batch_size``, as Ray Data does between two actor pools. Each stage that holds
    something of the process (``DecodeStage``'s thread limits) gives it back at the end."""
    built: list[Any] = []
    try:
        for stage in chain:
            built.append(stage.cls(**stage.kwargs))
            batches = _outputs(built[-1], rebatched(batches, stage.batch_size))
        yield from batches
    finally:
        for actor in built:
            if hasattr(actor, "close"):
                actor.close()


def _outputs(actor: Callable[[pa.Table], Any], batches: Iterable[pa.Table]) -> Iterator[pa.Table]:
    """What ``actor`` returns for each batch: a batch, or the batches it yields (a stage that writes parts)."""
    for batch in batches:
        out = actor(batch)
        if isinstance(out, pa.Table):
            yield out
        else:
            yield from out
