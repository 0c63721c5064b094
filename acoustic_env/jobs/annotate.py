"""The annotate job: label a new clip list with a trained model, extracting only what is new.

Meant to run on a schedule against lists that grow or overlap:

1. extract the list into the shared ``features`` table (the extract job's plan skips
   every clip already there, so an overlapping list is never extracted twice), with
   the embedders the model needs;
2. score the list's clips that are not yet annotated by this model;
3. append ``annotations/part-<run_id>-<digest>.parquet``: ``clip_id``, ``predicted``,
   ``prob_<class>``, ``model_id``, ``time``, and where the list carries labels the given
   labels, the probability of the given label (``label_quality``) and ``flagged``
   (the model disagrees with the given label at ``flag_threshold``).

Running it twice on the same list writes nothing the second time.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from acoustic_env import runs
from acoustic_env.audio.manifest import read_manifest
from acoustic_env.audioset.tasks import Task, task_from_definition
from acoustic_env.config import (
    EMBEDDERS,
    AnnotateConfig,
    ConfigError,
    ExtractConfig,
    from_dict,
)
from acoustic_env.jobs.extract import extract
from acoustic_env.jobs.preflight import preflight
from acoustic_env.runs import base_record
from acoustic_env.storage import join, list_parts, read_parts, write_json, write_parquet
from acoustic_env.table import now_utc

log = logging.getLogger("acoustic_env.jobs.annotate")
ANNOTATIONS = "annotations"


def _annotated_ids(output: str, model_id: str) -> set[str]:
    table = read_parts(join(output, ANNOTATIONS), columns=["clip_id", "model_id"])
    if table is None:
        return set()
    return set(table.filter(pc.equal(table["model_id"], model_id))["clip_id"].to_pylist())


def _given_label_columns(task: Task, labels: list[list[str]], probs: np.ndarray, threshold: float) -> dict[str, Any]:
    """The given labels in the task's terms, the model's probability for them, and the flag."""
    if task.kind == "multi_label":
        given = np.array([task.multi_hot(ls) for ls in labels], dtype=float)
        has = np.array([bool(ls) for ls in labels])
        agree = np.where(given == 1, probs, 1 - probs)
        quality = np.where(has, agree.min(axis=1), np.nan)
        flagged = has & (quality < threshold)
        given_names = [[c for c, on in zip(task.class_names, row) if on] if h else None
                       for row, h in zip(given.astype(int), has)]
        return {"given": pa.array(given_names, pa.list_(pa.string())), "label_quality": pa.array(quality),
                "flagged": pa.array(flagged)}
    idx = [task.assign(ls) for ls in labels]
    quality = np.array([probs[i, j] if j is not None else np.nan for i, j in enumerate(idx)])
    flagged = np.array([j is not None and bool(q < threshold) for j, q in zip(idx, quality)])
    return {"given": pa.array([task.class_names[j] if j is not None else None for j in idx], pa.string()),
            "label_quality": pa.array(quality), "flagged": pa.array(flagged)}


def annotate(cfg: AnnotateConfig) -> dict[str, Any]:
    """Run the job; returns the run record (also written to ``<output>/runs/annotate-<run_id>.json``)."""
    preflight(cfg)
    t0 = time.time()
    from acoustic_env.learn.artifact import load_model

    model = load_model(cfg.model)
    model_id = str(model.meta.get("run_id") or cfg.model)
    definition = model.meta["task"]["definition"]
    task = task_from_definition(definition, cfg.extract.get("ontology"))
    if sorted(task.class_names) != sorted(model.class_names):
        raise ConfigError(f"model: its task definition names {task.class_names}, its outputs {model.class_names}")
    embedders = [g for g in model.groups if g in EMBEDDERS]
    ext = from_dict(ExtractConfig, {**cfg.extract, "manifest": cfg.manifest, "output": cfg.features,
                                    "embedders": embedders})
    run_id = runs.new_run_id()
    record = base_record(run_id, "annotate", cfg.to_dict())
    record["model_id"] = model_id
    extract_record = extract(ext)
    manifest = read_manifest(ext.manifest, ext.audio_root, ext.manifest_format, ext.path_template,
                             ext.audio_extensions, ext.cut_segments, limit=ext.limit).table
    done = _annotated_ids(cfg.output, model_id)
    wanted = [c for c in manifest["clip_id"].to_pylist() if c not in done]
    # every clip extracted may have failed, in which case there is no table yet
    has_table = bool(list_parts(join(cfg.features, runs.FEATURES)))
    data = model.read_features(cfg.features, clip_ids=wanted) if wanted and has_table else None
    written = 0
    if data is not None and len(data):
        scored = model.predict_table(data)
        # by name: the artifact's JSON keeps the task definition with its keys sorted
        probs = np.stack([scored[f"prob_{c}"].to_numpy(zero_copy_only=False) for c in task.class_names], axis=1)
        labels_by_id = dict(zip(manifest["clip_id"].to_pylist(), manifest["labels"].to_pylist()))
        labels = [labels_by_id[c] for c in scored["clip_id"].to_pylist()]
        for name, column in _given_label_columns(task, labels, probs, cfg.flag_threshold).items():
            scored = scored.append_column(name, column)
        scored = scored.append_column("model_id", pa.array([model_id] * scored.num_rows, pa.string()))
        scored = scored.append_column("time", pa.array([now_utc()] * scored.num_rows, pa.timestamp("us", tz="UTC")))
        ids = scored["clip_id"].to_pylist()
        write_parquet(scored, join(cfg.output, ANNOTATIONS, runs.part_name(run_id, ids)))
        written = scored.num_rows
    found = data.n_read if data is not None else 0
    record.update(status="completed", wall_s=time.time() - t0, extract_run=extract_record["run_id"],
                  counts={"listed": manifest.num_rows, "already_annotated": len(done & set(manifest["clip_id"].to_pylist())),
                          "extracted": extract_record["counts"]["ok"], "extract_skipped": extract_record["counts"]["skipped"],
                          "annotated": written, "flagged": int(sum(scored["flagged"].to_pylist())) if written else 0,
                          "not_annotated_failed_extract": len(wanted) - found,
                          "not_annotated_broken_features": found - written})
    write_json(record, join(cfg.output, runs.RUNS, f"annotate-{run_id}.json"))
    return record
