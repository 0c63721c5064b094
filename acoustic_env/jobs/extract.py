"""The extract job: manifest → plan → pipeline → features/, errors/, runs/.

This is the Python API behind ``acoustic-env extract``, which a cluster runs as the job of ``jobs/extract/``.
"""

from __future__ import annotations

import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, Literal

from acoustic_env import layout
from acoustic_env.audio.manifest import job_manifest
from acoustic_env.audio.startup import summarise
from acoustic_env.audio.stages import table_metadata
from acoustic_env.config import EMBEDDERS, ConfigError, ExtractConfig, validate
from acoustic_env.config.common import AUTO, NO_EMBEDDERS
from acoustic_env.distributed.pipeline import run_pipeline
from acoustic_env.embedders.registry import get
from acoustic_env.embedders.weights import (
    WeightsError,
    announce_licence,
    extra_install,
    missing_message,
    runs_at,
    status,
)
from acoustic_env.jobs.in_process import run_in_process, runs_in_process
from acoustic_env.jobs.preflight import preflight
from acoustic_env.jobs.record import Run, lifecycle
from acoustic_env.jobs.results import ExtractResult
from acoustic_env.storage import join, read_json

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


@dataclass(frozen=True)
class EmbedderChoice:
    """Which embedders a run computes, and why: what ``--embedders`` asked for, what runs, and, for ``auto``, why
    each other registered embedder does not (its runtime is not installed, no checkpoint, or one that fails its
    check). The run record keeps it (``embedders``), and the console and the dry run print :meth:`line`."""

    requested: tuple[str, ...]
    ran: tuple[str, ...]
    left_out: dict[str, str]
    checked: bool  # the chosen weights were hashed (the run), or only found (the dry run)
    source: str = "--embedders"  # or the environment variable that stood for auto

    def line(self) -> str:
        """One line: what runs, and why the others do not."""
        if self.requested != (AUTO,):
            return f"embedders: {', '.join(self.ran) or 'none'} ({self.source} {','.join(self.requested) or 'none'})"
        why: dict[str, list[str]] = {}
        for name, reason in self.left_out.items():
            why.setdefault(reason, []).append(name)
        out = "; ".join(f"{', '.join(names)}: {reason}" for reason, names in why.items())
        ran = (", ".join(self.ran) + (" (pretrained, checked)" if self.checked else " (pretrained; checked when the "
                                      "job starts)") if self.ran else "none available offline")
        return f"embedders (auto): {ran}" + (f"; left out: {out}" if out else "") + "; --embedders none opts out"

    def record(self) -> dict[str, Any]:
        return {"requested": list(self.requested), "ran": list(self.ran), "left_out": self.left_out,
                "summary": self.line()}


def _left_out(name: str, checkpoint: Checkpoint) -> str:
    """Why ``auto`` passes over an embedder, in a few words that say what would make it run."""
    spec = get(name)
    if spec.missing_extra():
        return f"not installed ({extra_install(spec.weights.extra or name)})"
    if checkpoint.sha256 is None and checkpoint.size is None:
        return "no checkpoint in the weights cache (`acoustic-env models fetch NAME`; auto never uses random weights)"
    return f"its checkpoint fails its check ({checkpoint.message})"


#: What ``auto`` stands for on a machine where it should mean something else (``none`` on a CI runner, a fixed list
#: on a cluster whose cache holds more than its jobs should run): the same words as ``--embedders``.
EMBEDDERS_ENV = "ACOUSTIC_ENV_EMBEDDERS"


def _from_environment() -> tuple[str, ...]:
    """``$ACOUSTIC_ENV_EMBEDDERS`` as ``--embedders`` would take it, checked by the field's own rules."""
    try:
        return validate(replace(ExtractConfig(manifest="-", output="-"),
                                embedders=tuple(v.strip() for v in os.environ[EMBEDDERS_ENV].split(",")))).embedders
    except ConfigError as exc:
        raise ConfigError(f"${EMBEDDERS_ENV} (what --embedders auto stands for): {exc}") from None


def _signals_embedded(cfg: ExtractConfig, choice: EmbedderChoice) -> None:
    """``embed_signals`` beyond ``raw`` needs an embedder: validation cannot tell when ``auto`` finds none."""
    if not choice.ran and cfg.embed_signals != ("raw",):
        raise ConfigError(f"embed_signals: names the signals the embedders embed, and no embedder runs "
                          f"({choice.line()})")


def choose_embedders(cfg: ExtractConfig, verify: bool) -> tuple[ExtractConfig, dict[str, Checkpoint], EmbedderChoice]:
    """``cfg`` with ``auto`` or ``none`` replaced by the embedders that run, their checkpoints, and the choice.

    ``auto`` (the default) takes every registered embedder whose real weights are here and check (``verify``: hashed;
    the dry run only looks for them): a pretrained network is the best path, so it runs unless switched off, and
    random weights, which carry no meaning, are never chosen. Named embedders keep today's rule (``checkpoints``).
    """
    source = "--embedders"
    if cfg.embedders == (AUTO,) and os.environ.get(EMBEDDERS_ENV):
        cfg, source = replace(cfg, embedders=_from_environment()), f"${EMBEDDERS_ENV}"
    if cfg.embedders in ((), (NO_EMBEDDERS,)):
        choice = EmbedderChoice(cfg.embedders, (), {}, verify, source)
        _signals_embedded(cfg, choice)
        return replace(cfg, embedders=()), {}, choice
    if cfg.embedders != (AUTO,):
        return cfg, checkpoints(cfg, verify), EmbedderChoice(cfg.embedders, cfg.embedders, {}, verify, source)
    every = checkpoints(replace(cfg, embedders=tuple(EMBEDDERS), allow_random_weights=False), verify)
    ran = {name: c for name, c in every.items() if c.use == "checkpoint"}
    left_out = {name: _left_out(name, c) for name, c in every.items() if name not in ran}
    choice = EmbedderChoice(cfg.embedders, tuple(ran), left_out, verify)
    _signals_embedded(cfg, choice)
    return replace(cfg, embedders=tuple(ran)), ran, choice


def resolve_weights(found: dict[str, Checkpoint]) -> dict[str, str]:
    """Each embedder's checkpoint SHA-256, or "random": checked here, before Ray starts.

    A missing or bad checkpoint stops the job now with the registry's one-line message,
    not later in every actor.
    """
    ids: dict[str, str] = {}
    for name, checkpoint in found.items():
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


#: The settings that decide a clip's values and columns (flattened as a record holds them: ``features.mps_n_wt``);
#: the read limits decide only whether a clip is read at all.
VALUE_SETTINGS = ("embedders", "embed_signals", "embed_precision", "decode", "features")
READ_LIMITS = ("decode.read_timeout_s", "decode.max_bytes")
#: Settings that name what is computed: a run asking for fewer (annotate with a model that uses one of the
#: table's embedders) computes nothing the clips done lack.
NAME_SETTINGS = ("embedders", "embed_signals", "features.signals")


def _settings(config: dict[str, Any]) -> dict[str, Any]:
    """The value settings of a config as a run record stores it (lists, not tuples), flat."""
    flat: dict[str, Any] = {}
    for key in VALUE_SETTINGS:
        value = config.get(key)
        if isinstance(value, dict):
            flat.update({f"{key}.{k}": v for k, v in value.items() if f"{key}.{k}" not in READ_LIMITS})
        elif key in config:
            flat[key] = value
    return flat


def other_settings(cfg: ExtractConfig, runs: tuple[str, ...]) -> dict[str, str]:
    """{setting: "earlier -> now"} where the runs whose parts hold the clips done (``runs``, their records in
    runs/) computed a clip otherwise than ``cfg`` would. Those clips count as done and keep their values: a run
    that says nothing would leave a table whose old clips lack the new columns or hold other values."""
    now = _settings(json.loads(json.dumps(cfg.to_dict())))

    def record(run_id: str) -> dict[str, Any]:
        try:
            return read_json(join(cfg.output, layout.RUNS, f"{run_id}.json"))
        except (OSError, ValueError):  # no record (a part copied in by hand): nothing to compare with
            return {}

    differ: dict[str, str] = {}
    with ThreadPoolExecutor(max_workers=16) as pool:
        for rec in pool.map(record, runs):
            before = _settings(rec.get("config") or {}) if rec.get("job") == "extract" else {}
            for key, old in before.items():
                new = now.get(key, old)
                changed = set(new) - set(old) if key in NAME_SETTINGS else new != old
                if changed and key not in differ:
                    differ[key] = f"{_shown(old)} -> {_shown(new)}"
    return differ


def _shown(value: Any) -> str:
    return (",".join(map(str, value)) or "none") if isinstance(value, list) else str(value)


def extract(cfg: ExtractConfig) -> ExtractResult:
    """Run the job; its counts, error types and weights, and the run record (written to runs/<run_id>.json)."""
    validate(cfg)
    preflight(cfg)
    cfg, found, choice = choose_embedders(cfg, verify=True)
    log.info("%s", choice.line())
    weights = resolve_weights(found)
    with layout.output_lock(cfg.output), \
            lifecycle("extract", cfg.to_dict(), cfg.output, redact_params=cfg.redact_query_params) as run:
        return ExtractResult.from_record(_extract(cfg, run, weights, choice))


def _extract(cfg: ExtractConfig, run: Run, weights: dict[str, Any], choice: EmbedderChoice) -> dict[str, Any]:
    """The job's work once its record is written: plan, run the pipeline, compact the errors; the record."""
    run_id = run.run_id
    t_manifest = time.time()
    manifest = job_manifest(cfg)
    t_read = time.time()
    index = layout.index_output(cfg.output)  # the one pass over what earlier runs left
    t_planned = time.time()
    run.save(manifest={"source": manifest.source, "format": manifest.format,
                       "renamed_columns": manifest.renamed_columns},
             embedders=choice.record(), weights=weights, weights_licences=licences(cfg, weights),
             precision={name: runs_at(get(name).weights, cfg.embed_precision) for name in cfg.embedders},
             timing_s={"manifest": t_read - t_manifest, "plan": t_planned - t_read})
    # the clip list streams from its file through the resume filter into Ray (or, for a local run with a few clips
    # to do, into this process's stages: jobs/in_process.py), a chunk at a time
    tally = layout.Tally()
    todo = layout.pending(manifest.chunks(), index.done, index.failed, tally)

    differ = other_settings(cfg, index.runs)

    def planned(n: int) -> None:
        log.info("run %s: %d clips in the manifest, %d already done, %d to process (%d retried)",
                 run_id, manifest.rows, tally.skipped, n, tally.retried)
        if tally.skipped and differ:
            log.warning("%d clips already in %s count as done, but runs that wrote them used other settings "
                        "(%s): they keep their values; to compute every clip with these settings, give a new "
                        "--output", tally.skipped, cfg.output, "; ".join(f"{k} {v}" for k, v in differ.items()))

    to_do = max(manifest.rows - len(index.done), 0)  # at most: a retried error row counts once
    meta = table_metadata(cfg, run_id, weights)
    if runs_in_process(cfg, to_do):
        totals = run_in_process(todo, cfg, run_id, meta, weights, on_planned=planned)
    else:
        totals = run_pipeline(todo, to_do, cfg, run_id, meta, weights, on_planned=planned)
    # the index built for planning serves the compaction too: features/ is read once per run
    remaining_errors = layout.compact_errors(cfg.output, run_id, index, tally.processed())
    from acoustic_env.learn.vector_index import update_beside  # here: scikit-learn only when a run gets this far

    indexes = update_beside(cfg.output)  # the output's search indexes, extended with this run's parts
    for line in indexes:
        log.info("%s", line)
    return run.complete(indexes=indexes,
        counts={"input": manifest.rows, "duplicate_ids": manifest.duplicates,
                "ids_made_unique": manifest.ids_made_unique,
                "skipped": tally.skipped, "retried": tally.retried, "processed": tally.todo,
                "ok": totals["ok"], "failed": totals["failed"], "errors_in_output": remaining_errors,
                "duplicates_repaired": index.duplicates_removed},
        quarantined=index.quarantined, other_settings=differ if tally.skipped else {},
        error_types=totals["error_types"], cpu_s=totals["cpu_s"], resources=totals.get("resources"),
        timing_s={**run.record["timing_s"], **totals.get("timing_s", {})},
        startup=summarise(totals["startup"], run.started),
    )


def summary_lines(result: ExtractResult) -> list[str]:
    """What ``acoustic-env extract`` prints when the run is done: the counts, the embedders, the error types, where
    the outputs are."""
    c, out = result.counts, result.output.rstrip("/")
    lines = [f"extract {result.run_id}: {c['ok']} clips extracted, {c['failed']} failed, {c['skipped']} already done "
             f"({result.wall_s:.1f} s)", f"  {result.record['embedders']['summary']}"]
    if result.error_types:
        lines.append("  errors by type: " + ", ".join(f"{k}={v}" for k, v in sorted(result.error_types.items())))
    lines.append(f"  features: {result.features}/  errors: {result.errors}/ ({c['errors_in_output']} clips)  "
                 f"record: {out}/runs/{result.run_id}.json")
    return lines + [f"  {line}" for line in result.record.get("indexes") or []]
