"""``acoustic-env audioset frames``: networks over the ten frames against the pooled vector on AudioSet's released embeddings.

Reads ``<features>/frames/`` (written by ``recipe audioset-embeddings --keep-frames``:
only segments with all ten frames), gives each clip the task's class (a clip the
single-label task finds ambiguous or of no class is left out and counted), de-quantises
the codes as the release documents, and compares the chosen models on one split
(:mod:`acoustic_env.learn.audioset_frames`). The result is printed and written as JSON.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from acoustic_env.vocabulary.tasks import load_task
from acoustic_env.config import ConfigError
from acoustic_env.config.audioset import FramesConfig
from acoustic_env.learn.audioset_frames import DIM, N_FRAMES, compare
from acoustic_env.jobs.audioset_embeddings import FRAMES, FRAMES_COLUMN, dequantize
from acoustic_env.storage import join, read_parts, write_json


def compare_frames(cfg: FramesConfig) -> dict[str, Any]:
    """Fit and compare both models; returns (and writes to ``cfg.output``) the result."""
    t0 = time.time()
    task = load_task(cfg.task, cfg.ontology)
    if task.kind != "single_label":
        raise ConfigError(f"task: the frame comparison needs a single-label task, {task.name!r} is {task.kind}")
    table = read_parts(join(cfg.features, FRAMES))
    if table is None or not table.num_rows:
        raise ConfigError(f"features: no frames in {join(cfg.features, FRAMES)} "
                          "(convert with `acoustic-env recipe audioset-embeddings ... --keep-frames`)")
    targets = [task.assign(labels) for labels in table["labels"].to_pylist()]
    keep = np.array([t is not None for t in targets])
    y = np.array([t for t in targets if t is not None], dtype=np.int64)
    codes = table[FRAMES_COLUMN].combine_chunks().flatten().to_numpy().reshape(-1, N_FRAMES, DIM)[keep]
    groups = np.array(table["group"].to_pylist())[keep]
    result = compare(dequantize(codes), y, groups, task.n_classes, seed=cfg.seed, test_size=cfg.test_size,
                     threads=cfg.threads, models=cfg.models, oversample=cfg.oversample)
    out = {"task": task.name, "classes": dict(zip(task.class_names, np.bincount(y, minlength=task.n_classes).tolist())),
           "clips": int(keep.sum()), "left_out": int((~keep).sum()),
           "split": {"train": result.n_train, "val": result.n_val, "test": result.n_test},
           "oversampled": {task.class_names[c]: n for c, n in result.oversampled.items()} if cfg.oversample else None,
           "test_accuracy": result.accuracy, "wall_s": round(time.time() - t0, 3)}
    write_json(out, cfg.output)
    return out
