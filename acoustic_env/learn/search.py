"""Each model's own hyper-parameter search: grouped cross-validation on the rows the model is fitted on, and no others.

Why grouped CV and not one validation split: a validation split of a few dozen
clips moves by several AUC points from one seed to the next, so the setting it
picks is partly noise; pooling every training row's inner out-of-fold
prediction scores each setting on all of them. Why on the fitted rows only:
the train job fits each model once per outer fold on that fold's training
rows, so a search run inside ``fit`` can never score a setting on a clip of the
fold that will evaluate the model (nested cross-validation), and the same code
searches once more on every clip for the saved model.

The inner folds keep every group (source recording, or near-duplicates merged
by the leakage guard) on one side of each split, as the outer folds do.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple

import numpy as np

#: An inner fold: (row positions fitted on, row positions scored on), both into the rows the search was given.
Split = tuple[np.ndarray, np.ndarray]


class SearchPlan(NamedTuple):
    """How large each model's search is: ``trials`` settings of ``learn.params.CANDIDATES`` (1: the defaults, no
    search; logistic regression's C search runs regardless), each scored on ``inner_folds`` grouped folds."""

    trials: int = 1
    inner_folds: int = 3


@dataclass
class SearchRecord:
    """What one search tried, on which folds, what it chose and what it cost."""

    splits: list[Split]
    trials: list[dict[str, Any]]  # per setting tried: {"params": the overrides, "score": pooled inner score}
    best: dict[str, Any]  # the chosen overrides
    seconds: float = 0.0
    fits: int = field(default=0)  # inner fits run (settings x inner folds)
    metric: str = "selection"  # the trials' score: the selection metric (learn.fit.val_score), or an estimator's own


def strata(y: np.ndarray) -> np.ndarray:
    """One stratum per row: the class, or for a multi-label matrix the row's label pattern."""
    y = np.asarray(y)
    return y if y.ndim == 1 else np.unique(y, axis=0, return_inverse=True)[1].reshape(-1)


def inner_splits(target: np.ndarray, groups: np.ndarray, n_folds: int, seed: int) -> list[Split]:
    """Stratified folds over the rows given that keep every group on one side of each split.

    Fewer folds when there are fewer groups; an empty list (no search possible) below two.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    groups = np.asarray(groups).astype(str)
    n = min(n_folds, len(np.unique(groups)))
    if n < 2:
        return []
    splitter = StratifiedGroupKFold(n_splits=n, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # a rare class or label pattern with fewer rows than folds is expected
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        return list(splitter.split(np.zeros(len(target)), strata(target), groups))


def grouped_search(build: Callable[[dict[str, Any]], Any], candidates: list[dict[str, Any]], x: np.ndarray,
                   y: np.ndarray, groups: np.ndarray, n_folds: int, seed: int, kind: str) -> SearchRecord | None:
    """Score each candidate (overrides for ``build``) by its pooled inner out-of-fold score; None when no search.

    The score is the train job's selection metric (``learn.fit.val_score``:
    ROC AUC, or mAP for multi-label tasks); ties go to the earlier candidate,
    so the defaults (listed first) win unless another setting does better.
    """
    from acoustic_env.learn.fit import val_score  # imports torch: only when a search runs

    start = time.time()
    splits = inner_splits(y, groups, n_folds, seed)
    if len(candidates) < 2 or len(splits) < 2:
        return None
    trials = []
    for overrides in candidates:
        proba = None
        for fit_on, scored in splits:
            p = build(overrides).fit(x[fit_on], y[fit_on]).predict_proba(x[scored])
            proba = np.zeros((len(y), p.shape[1])) if proba is None else proba
            proba[scored] = p
        trials.append({"params": overrides, "score": val_score(kind, y, proba)})
    best = max(range(len(trials)), key=lambda i: (round(trials[i]["score"], 12), -i))
    return SearchRecord(splits, trials, trials[best]["params"], time.time() - start, len(candidates) * len(splits))
