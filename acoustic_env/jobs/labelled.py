"""The labelled set that train and audit learn from: task → feature table → near-duplicates merged → folds.

Both jobs read the clips of a feature table that have a target of their task
and finite features, check there are enough of them (each job its own minimum
and wording), and merge the groups of near-duplicate clips (the leakage guard,
``learn.duplicates``) so that copies stay on one side of every fold or split.
Their grouped, stratified folds come from ``grouped_folds``, whose error for too few
groups says when the guard's merging is the cause.

With a corrected label list (``--labels``, :mod:`acoustic_env.labels.label_list`) the
listed clips take the list's classes in place of the table's, without re-extracting
anything: the rows with a target are decided from the clip facts alone, and only their
vectors are read. Clips absent from the list keep the table's labels. What the list
changed is counted against the table, for the run record.

Here, a step the jobs share and no job of its own: train, audit and the dry run's plan
(``jobs/plan.py``) read their clips through it, and it joins the label list (``labels/``)
with the chunk guard's reader (``jobs/chunk_reader.py``, which decodes audio), which only
the jobs' floor may import together (``tests/test_layers.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable

import numpy as np

from acoustic_env.vocabulary.tasks import Task, load_task
from acoustic_env.config import ConfigError
from acoustic_env.jobs.chunk_reader import read_chunks
from acoustic_env.learn.duplicate_chunks import merge_chunk_duplicate_groups
from acoustic_env.learn.duplicates import DuplicateGuard, merge_duplicate_groups, merge_summary
from acoustic_env.learn.splits import assign_folds
from acoustic_env.labels.label_list import LabelList, read_label_list
from acoustic_env.table import FeatureSet, read_features, selection


@dataclass(frozen=True)
class LabelledSet:
    """What both jobs learn from: the task, its labelled clips, and what the near-duplicate guard merged."""

    task: Task
    features: FeatureSet  # with the merged groups
    duplicates: DuplicateGuard  # what the guard merged (its counts go to the run record and the console)
    label_list: dict[str, Any] | None = None  # the corrected list used (LabelList.describe), None: the table's labels


def read_labelled(uri: str, task: str, ontology: str | None, check: Callable[[FeatureSet, Task], None],
                  labels: str | None = None, duplicate_chunks: bool = False, **read_options: Any) -> LabelledSet:
    """The labelled clips of the feature table at ``uri`` for ``task``, near-duplicates in one group.

    ``check(features, task)`` raises when the job cannot run on what was read
    (too few clips); it runs before the guard's neighbour search, which is the
    costly part. ``labels``: a corrected label list (see the module docstring). ``duplicate_chunks``: the guard
    compares the clips chunk by chunk (``learn.duplicate_chunks``), which finds time-shifted and partial copies.
    ``read_options`` go to ``table.read_features``.
    """
    labelled = load_task(task, ontology)
    if labels is None:
        features, used = read_features(uri, task=labelled, **read_options), None
    else:
        features, used = _read_relabelled(uri, labelled, read_label_list(labels, labelled), read_options)
    check(features, labelled)
    # leakage guard: near-duplicates share a group
    duplicates = (merge_chunk_duplicate_groups(features, read_chunks) if duplicate_chunks
                  else merge_duplicate_groups(features))
    return LabelledSet(labelled, duplicates.apply(features), duplicates, used)


@dataclass(frozen=True)
class Relabelled:
    """The table's targets once a corrected list's classes replace the table's, from the clip facts alone."""

    target: dict[str, list[int]]  # clip id -> its class indices, for the clips with a target
    excluded: dict[str, int]  # rows left without a target (single-label: no class, ambiguous)
    used: dict[str, Any]  # the list as the run record keeps it (LabelList.describe: how many targets it changed)


def relabelled(facts: Any, task: Task, listed: LabelList) -> Relabelled:
    """The targets of the clips in ``facts`` (a table's clip facts: ``clip_id``, ``labels``) with ``listed``'s
    classes in place of the table's: what the job learns from, and what its dry run counts."""
    ids = facts["clip_id"].to_pylist()
    hits = [task.memberships(labels or []) for labels in facts["labels"].to_pylist()]
    table_hits = {c: tuple(h) for c, h in zip(ids, hits)}
    for i, clip_id in enumerate(ids):
        if clip_id in listed.labels:
            hits[i] = sorted(task.class_names.index(name) for name in listed.labels[clip_id])
    changed = sum(tuple(hits[i]) != table_hits[c] for i, c in enumerate(ids) if c in listed.labels)
    if task.kind == "multi_label":
        keep = np.ones(len(ids), dtype=bool)
        excluded: dict[str, int] = {}
    else:
        keep = np.array([len(h) == 1 for h in hits], dtype=bool)
        excluded = {"no_class": sum(not h for h in hits), "ambiguous": sum(len(h) > 1 for h in hits)}
    return Relabelled({c: h for c, h, k in zip(ids, hits, keep) if k}, excluded,
                      listed.describe(changed, absent=len(listed.labels.keys() - set(ids))))


def _read_relabelled(uri: str, task: Task, listed: LabelList, read_options: dict[str, Any]
                     ) -> tuple[FeatureSet, dict[str, Any]]:
    """The table's clips with a target once the list's classes replace the table's (:func:`relabelled`); the list
    used, with how many targets it changed (``LabelList.describe``)."""
    facts = selection(uri, clip_ids=read_options.get("clip_ids")).facts
    found = relabelled(facts, task, listed)
    target, excluded = found.target, found.excluded
    features = read_features(uri, **{**read_options, "clip_ids": list(target)})
    rows = [target[c] for c in features.ids]
    y = (np.array([[int(k in h) for k in range(task.n_classes)] for h in rows], dtype=np.int64).reshape(-1, task.n_classes)
         if task.kind == "multi_label" else np.array([h[0] for h in rows], dtype=np.int64))
    return replace(features, y=y, n_read=facts.num_rows, excluded={**features.excluded, "rows": {
        **excluded, **features.excluded["rows"]}}), found.used


def grouped_folds(features: FeatureSet, task: Task, n_folds: int, seed: int, duplicates: dict[str, Any],
          field: str = "folds") -> np.ndarray:
    """Grouped, stratified folds (``learn.splits.assign_folds``; ``field``: the option its errors name).

    Too few groups may be the guard's doing: the error then says what it merged
    (``duplicates``: the guard's counts).
    """
    try:
        return assign_folds(features.y, features.groups, task.class_names, n_folds, seed, field=field)
    except ConfigError as e:
        merged = merge_summary(duplicates)
        raise (ConfigError(f"{e}; {merged}") if merged else e) from None
