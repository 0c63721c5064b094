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

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from acoustic_env import runs
from acoustic_env.audio.manifest import read_manifest
from acoustic_env.audioset.ontology import ONTOLOGY_URL, load_ontology
from acoustic_env.audioset.tasks import Task, task_from_definition
from acoustic_env.config import EMBEDDERS, ConfigError, extract_config_from_dict
from acoustic_env.extract import extract
from acoustic_env.runs import base_record
from acoustic_env.storage import join, read_parts, write_json, write_parquet
from acoustic_env.table import now_utc

log = logging.getLogger("acoustic_env.annotate")
ANNOTATIONS = "annotations"


@dataclass(frozen=True)
class AnnotateConfig:
    """The new list, the model, the shared feature table and where annotations go."""

    manifest: str
    model: str
    features: str  # the extract output shared by every run (features/, errors/, runs/ below it)
    output: str
    flag_threshold: float = 0.5
    extract: dict[str, Any] = field(default_factory=dict)  # any ExtractConfig field (audio_root, ...)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def annotate_config_from_dict(data: dict[str, Any]) -> AnnotateConfig:
    known = {f.name for f in dataclasses.fields(AnnotateConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown field (known: {', '.join(sorted(known))})")
    for name in ("manifest", "model", "features", "output"):
        if not data.get(name):
            raise ConfigError(f"{name}: is required (--{name})")
    cfg = AnnotateConfig(**data)
    if not 0.0 < cfg.flag_threshold < 1.0:
        raise ConfigError(f"flag_threshold: must be in (0, 1), got {cfg.flag_threshold!r}")
    return cfg


def _load_model(uri: str):
    from acoustic_env.learn.artifact import load_model

    try:
        return load_model(uri)
    except FileNotFoundError:
        raise ConfigError(f"model: no model artifact at {uri} (expected model.json, weights.pt, preprocessing.npz)") from None


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
    t0 = time.time()
    model = _load_model(cfg.model)
    model_id = str(model.meta.get("run_id") or cfg.model)
    definition = model.meta["task"]["definition"]
    ontology_uri = cfg.extract.get("ontology")
    needs_ontology = any((spec or {}).get("descendants") for spec in definition.get("classes", {}).values())
    task = task_from_definition(definition, load_ontology(ontology_uri or ONTOLOGY_URL) if needs_ontology else None)
    if sorted(task.class_names) != sorted(model.class_names):
        raise ConfigError(f"model: its task definition names {task.class_names}, its outputs {model.class_names}")
    embedders = [g for g in model.groups if g in EMBEDDERS]
    ext = extract_config_from_dict({**cfg.extract, "manifest": cfg.manifest, "output": cfg.features,
                                    "embedders": embedders})
    run_id = runs.new_run_id()
    record = base_record(run_id, "annotate", cfg.to_dict())
    record["model_id"] = model_id
    extract_record = extract(ext)
    manifest = read_manifest(ext.manifest, ext.audio_root, ext.manifest_format, ext.path_template,
                             ext.audio_extensions, ext.cut_segments, ext.ontology, ext.limit).table
    done = _annotated_ids(cfg.output, model_id)
    wanted = [c for c in manifest["clip_id"].to_pylist() if c not in done]
    features = read_parts(join(cfg.features, runs.FEATURES), columns=["clip_id", *model.groups])
    table = pa.table({"clip_id": pa.array([], pa.string())}) if features is None else features
    table = table.filter(pc.is_in(table["clip_id"], value_set=pa.array(wanted, pa.string())))
    written = 0
    if table.num_rows:
        scored = model.predict_table(table)
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
    failed = len(wanted) - table.num_rows
    record.update(status="completed", wall_s=time.time() - t0, extract_run=extract_record["run_id"],
                  counts={"listed": manifest.num_rows, "already_annotated": len(done & set(manifest["clip_id"].to_pylist())),
                          "extracted": extract_record["counts"]["ok"], "extract_skipped": extract_record["counts"]["skipped"],
                          "annotated": written, "flagged": int(sum(scored["flagged"].to_pylist())) if written else 0,
                          "not_annotated_failed_extract": failed})
    write_json(record, join(cfg.output, runs.RUNS, f"annotate-{run_id}.json"))
    return record
