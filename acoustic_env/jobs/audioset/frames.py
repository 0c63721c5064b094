"""``acoustic-env audioset frames``: networks over the ten frames against the pooled vector on AudioSet's released
embeddings, and the frame study's grid of losses, batch sizes, input scalings and pooling.

Reads ``<features>/frames/`` (written by ``recipe audioset-embeddings --keep-frames``: only
segments with all ten frames, whatever their labels), gives each clip the task's target
(``targets``: single-label, a clip of no class or of two or more is left out and counted;
with ``multi_label`` a 0/1 row over the classes, every clip of at least one class kept, as
the study kept them), feeds the uint8 codes scaled each way asked (``SCALINGS``), and
compares every cell of the grid (:mod:`acoustic_env.learn.audioset_frames`) on one split,
the same for every scaling. The result is written as JSON: a row per cell (``results``) and
each cell's test accuracy under its label (``test_accuracy``); ``table`` lays the rows out.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from acoustic_env.config import ConfigError
from acoustic_env.config.audioset import FramesConfig
from acoustic_env.jobs.audioset.embeddings import FRAMES, FRAMES_COLUMN, dequantize
from acoustic_env.learn.audioset_frames import DIM, MULTI, N_FRAMES, SINGLE, compare
from acoustic_env.storage import join, read_parts, write_json
from acoustic_env.vocabulary.tasks import Task, load_task

#: How the uint8 codes reach the models (``FramesConfig.inputs``): the release's values (the inverse of VGGish's
#: quantisation), the study's normalisation (/255, into [0, 1]) or the codes as they are (0-255).
SCALINGS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "dequantized": dequantize,
    "scaled": lambda q: q.astype(np.float32) / np.float32(255),
    "raw": lambda q: q.astype(np.float32),
}
#: A grid axis of the rows beside the model, and how ``table`` and the labels show it.
AXES = (("loss", "loss"), ("batch_size", "batch"), ("inputs", "inputs"), ("final_pool", "final pool"))


def targets(task: Task, label_lists: Sequence[Sequence[str]], multi_label: bool) -> tuple[np.ndarray, np.ndarray, int]:
    """(which clips are kept, their targets, how many clips claim two or more classes).

    Single-label: the clips of exactly one class, ``y`` its index. Multi-label: the clips of
    at least one class, ``y`` their 0/1 rows.
    """
    hot = np.array([task.multi_hot(labels) for labels in label_lists], dtype=np.int64).reshape(-1, task.n_classes)
    hits = hot.sum(axis=1)
    keep = hits >= 1 if multi_label else hits == 1
    return keep, (hot[keep] if multi_label else hot[keep].argmax(axis=1)), int((hits >= 2).sum())


def _shown(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if key == "final_pool":
        return "with" if value else "without"
    return str(value)


def label(row: dict[str, Any], varied: Sequence[str]) -> str:
    """A cell's name: its model, then its value on each axis of ``varied`` that applies to it."""
    parts = [row["model"]] + [f"{name} {_shown(key, row[key])}" for key, name in AXES
                              if key in varied and row.get(key) is not None]
    return " / ".join(parts)


def table(rows: Sequence[dict[str, Any]]) -> str:
    """The rows as a plain-text table, one line per cell, columns aligned."""
    head = ["model", *(name for _, name in AXES), "test accuracy", "95 % interval", "macro F1", "rounds", "wall s"]
    lines = [[r["model"], *(_shown(key, r.get(key)) for key, _ in AXES), f"{r['accuracy']:.1%}",
              f"[{r['low']:.1%}, {r['high']:.1%}]", f"{r['macro_f1']:.3f}", _shown("rounds", r["rounds"]),
              f"{r['wall_s']:.1f}"] for r in rows]
    widths = [max(len(str(c)) for c in col) for col in zip(head, *lines)]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(line, widths)).rstrip() for line in [head, *lines])


def compare_frames(cfg: FramesConfig) -> dict[str, Any]:
    """Fit and compare every cell of the grid; returns (and writes to ``cfg.output``) the result."""
    t0 = time.time()
    task = load_task(cfg.task, cfg.ontology)
    if task.kind != SINGLE and not cfg.multi_label:
        raise ConfigError(f"task: {task.name!r} is {task.kind}; compare its frames with --multi-label")
    frames = read_parts(join(cfg.features, FRAMES))
    if frames is None or not frames.num_rows:
        raise ConfigError(f"features: no frames in {join(cfg.features, FRAMES)} "
                          "(convert with `acoustic-env recipe audioset-embeddings ... --keep-frames`)")
    keep, y, two_or_more = targets(task, frames["labels"].to_pylist(), cfg.multi_label)
    codes = frames[FRAMES_COLUMN].combine_chunks().flatten().to_numpy().reshape(-1, N_FRAMES, DIM)[keep]
    groups = np.array(frames["group"].to_pylist())[keep]
    losses = cfg.losses or (("binary_crossentropy",) if cfg.multi_label else ("categorical_crossentropy",))
    final_pools = tuple(p == "with" for p in cfg.final_pool)
    rows, result = [], None
    for inputs in cfg.inputs:
        result = compare(SCALINGS[inputs](codes), y, groups, task.n_classes, seed=cfg.seed, test_size=cfg.test_size,
                         threads=cfg.threads, models=cfg.models, oversample=cfg.oversample, losses=losses,
                         batch_sizes=cfg.batch_sizes, final_pools=final_pools)
        rows += [{**row, "inputs": inputs} for row in result.rows]
    grid = {"loss": list(losses), "batch_size": list(cfg.batch_sizes), "inputs": list(cfg.inputs),
            "final_pool": list(final_pools)}
    varied = [key for key, values in grid.items() if len(values) > 1]
    counts = y.sum(axis=0) if cfg.multi_label else np.bincount(y, minlength=task.n_classes)
    out = {"task": task.name, "mode": MULTI if cfg.multi_label else SINGLE,
           "classes": dict(zip(task.class_names, counts.tolist())),
           "clips": int(keep.sum()), "left_out": int((~keep).sum()), "two_or_more_classes": two_or_more,
           "split": {"train": result.n_train, "val": result.n_val, "test": result.n_test},
           "oversampled": {task.class_names[c]: n for c, n in result.oversampled.items()} if cfg.oversample else None,
           "grid": grid, "results": rows,
           "test_accuracy": {label(r, varied): {k: r[k] for k in ("accuracy", "low", "high", "n", "macro_f1")}
                             for r in rows},
           "wall_s": round(time.time() - t0, 3)}
    write_json(out, cfg.output)
    return out
