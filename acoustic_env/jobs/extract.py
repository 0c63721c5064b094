"""The extract job: manifest → plan → pipeline → features/, errors/, runs/.

This is the Python API behind ``acoustic-env extract`` and ``jobs/extract.py``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Literal

from acoustic_env import layout
from acoustic_env.audio.manifest import job_manifest
from acoustic_env.audio.stages import table_metadata
from acoustic_env.config import ExtractConfig, validate
from acoustic_env.distributed.pipeline import run_pipeline
from acoustic_env.embedders.registry import get
from acoustic_env.embedders.weights import WeightsError, announce_licence, missing_message, status
from acoustic_env.jobs.in_process import run_in_process, runs_in_process
from acoustic_env.jobs.preflight import preflight
from acoustic_env.jobs.record import Run, lifecycle
from acoustic_env.jobs.results import ExtractResult

log = logging.getLogger("acoustic_env.jobs.extract")


@dataclass(frozen=True)
class Checkpoint:
    """An embedder's checkpoint as the weights cache holds it, and what a run does with it.

    ``use``: ``checkpoint``; ``random`` (none in the cache, and ``allow_random_weights``);
    ``stop`` (none, or a bad one: ``message`` is the registry's one line, which names the
    file, its source and ``acoustic-env models fetch``).
    """

    path: str
    use: Literal["checkpoint", "random", "stop"]
    sha256: str | None  # known once the file is hashed (``verify``)
    size: int | None
    message: str | None


def checkpoints(cfg: ExtractConfig, verify: bool) -> dict[str, Checkpoint]:
    """Each embedder's checkpoint and what the run does with it: the one rule the job applies (``verify``: the
    file is hashed) and the dry run reports (only whether each file is there: hashing 300 MB is the run's job)."""
    found: dict[str, Checkpoint] = {}
    for name in cfg.embedders:
        spec = get(name).weights
        state = status(spec, cfg.weights_cache, verify=verify)
        if extra := get(name).missing_extra():  # its runtime is not installed: no weights make it run
            found[name] = Checkpoint(state["path"], "stop", None, None, extra)
        elif state["status"] == "missing" and (spec.package or not cfg.allow_random_weights):
            found[name] = Checkpoint(state["path"], "stop", None, None, missing_message(spec, state["path"]))
        elif state["status"] == "missing":
            found[name] = Checkpoint(state["path"], "random", None, None, None)
        elif state["status"] == "bad":
            found[name] = Checkpoint(state["path"], "stop", state["sha256"], state["size"], state["reason"])
        else:
            found[name] = Checkpoint(state["path"], "checkpoint", state["sha256"], state["size"], None)
    return found


def resolve_weights(cfg: ExtractConfig) -> dict[str, str]:
    """Each embedder's checkpoint SHA-256, or "random": checked here, before Ray starts.

    A missing or bad checkpoint stops the job now with the registry's one-line message,
    not later in every actor.
    """
    ids: dict[str, str] = {}
    for name, checkpoint in checkpoints(cfg, verify=True).items():
        if checkpoint.use == "stop":
            raise WeightsError(checkpoint.message)
        if checkpoint.use == "random":
            log.warning("embedder %s: no checkpoint at %s, using RANDOM weights (--allow-random-weights)",
                        name, checkpoint.path)
        else:
            announce_licence(get(name).weights)
        ids[name] = checkpoint.sha256 if checkpoint.use == "checkpoint" else "random"
    return ids


def licences(cfg: ExtractConfig, weights: dict[str, str]) -> dict[str, str]:
    """The licence of each pretrained file the run uses, where the registry states one (BirdNET's)."""
    return {name: lic for name in cfg.embedders
            if weights[name] != "random" and (lic := get(name).weights.licence)}


def extract(cfg: ExtractConfig) -> ExtractResult:
    """Run the job; its counts, error types and weights, and the run record (written to runs/<run_id>.json)."""
    validate(cfg)
    preflight(cfg)
    weights = resolve_weights(cfg)
    with layout.output_lock(cfg.output), \
            lifecycle("extract", cfg.to_dict(), cfg.output, redact_params=cfg.redact_query_params) as run:
        return ExtractResult.from_record(_extract(cfg, run, weights))


def _extract(cfg: ExtractConfig, run: Run, weights: dict[str, Any]) -> dict[str, Any]:
    """The job's work once its record is written: plan, run the pipeline, compact the errors; the record."""
    run_id = run.run_id
    t_manifest = time.time()
    manifest = job_manifest(cfg)
    t_read = time.time()
    index = layout.index_output(cfg.output)  # the one pass over what earlier runs left
    t_planned = time.time()
    run.save(manifest={"source": manifest.source, "format": manifest.format,
                       "renamed_columns": manifest.renamed_columns},
             weights=weights, weights_licences=licences(cfg, weights), timing_s={"manifest": t_read - t_manifest, "plan": t_planned - t_read})
    # the clip list streams from its file through the resume filter into Ray (or, for a local run with a few clips
    # to do, into this process's stages: jobs/in_process.py), a chunk at a time
    tally = layout.Tally()
    todo = layout.pending(manifest.chunks(), index.done, index.failed, tally)

    def planned(n: int) -> None:
        log.info("run %s: %d clips in the manifest, %d already done, %d to process (%d retried)",
                 run_id, manifest.rows, tally.skipped, n, tally.retried)

    to_do = max(manifest.rows - len(index.done), 0)  # at most: a retried error row counts once
    meta = table_metadata(cfg, run_id, weights)
    if runs_in_process(cfg, to_do):
        totals = run_in_process(todo, cfg, run_id, meta, weights, on_planned=planned)
    else:
        totals = run_pipeline(todo, to_do, cfg, run_id, meta, weights, on_planned=planned)
    # the index built for planning serves the compaction too: features/ is read once per run
    remaining_errors = layout.compact_errors(cfg.output, run_id, index, tally.processed())
    return run.complete(
        counts={"input": manifest.rows, "duplicate_ids": manifest.duplicates,
                "ids_made_unique": manifest.ids_made_unique,
                "skipped": tally.skipped, "retried": tally.retried, "processed": tally.todo,
                "ok": totals["ok"], "failed": totals["failed"], "errors_in_output": remaining_errors,
                "duplicates_repaired": index.duplicates_removed},
        quarantined=index.quarantined,
        error_types=totals["error_types"], cpu_s=totals["cpu_s"], resources=totals.get("resources"),
        timing_s={**run.record["timing_s"], **totals.get("timing_s", {})},
    )
