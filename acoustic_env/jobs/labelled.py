"""The labelled set that train and audit learn from: task → feature table → near-duplicates merged → folds.

Both jobs read the clips of a feature table that have a target of their task
and finite features, check there are enough of them (each job its own minimum
and wording), and merge the groups of near-duplicate clips (the leakage guard,
``learn.duplicates``) so that copies stay on one side of every fold or split.
Their grouped, stratified folds come from ``grouped_folds``, whose error for too few
groups says when the guard's merging is the cause.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from acoustic_env.vocabulary.tasks import Task, load_task
from acoustic_env.config import ConfigError
from acoustic_env.learn.duplicates import DuplicateGuard, merge_duplicate_groups, merge_summary
from acoustic_env.learn.splits import assign_folds
from acoustic_env.table import FeatureSet, read_features


@dataclass(frozen=True)
class LabelledSet:
    """What both jobs learn from: the task, its labelled clips, and what the near-duplicate guard merged."""

    task: Task
    features: FeatureSet  # with the merged groups
    duplicates: DuplicateGuard  # what the guard merged (its counts go to the run record and the console)


def read_labelled(uri: str, task: str, ontology: str | None, check: Callable[[FeatureSet, Task], None],
                  **read_options: Any) -> LabelledSet:
    """The labelled clips of the feature table at ``uri`` for ``task``, near-duplicates in one group.

    ``check(features, task)`` raises when the job cannot run on what was read
    (too few clips); it runs before the guard's neighbour search, which is the
    costly part. ``read_options`` go to ``table.read_features``.
    """
    labelled = load_task(task, ontology)
    features = read_features(uri, task=labelled, **read_options)
    check(features, labelled)
    duplicates = merge_duplicate_groups(features)  # leakage guard: near-duplicates share a group
    return LabelledSet(labelled, duplicates.apply(features), duplicates)


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
