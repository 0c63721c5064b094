"""Out-of-fold class probabilities: every clip is scored by a model that never saw its label.

Confident learning is only as honest as its probabilities: a model that trained
on a clip has memorised that clip's (possibly wrong) label and will vouch for
it. So the clips are split into K folds and each fold is scored by a model fit
on the other K-1. Clips of one ``group`` (segments of one video, one recording
site) always share a fold, or a near-duplicate in the training folds would
leak the label back.

* single-label: ``StratifiedGroupKFold`` (or ``StratifiedKFold`` when the
  table has no groups), so each fold keeps the class balance;
* multi-label: iterative stratification (Sechidis et al., 2011) over groups,
  written out here because scikit-learn has none.

The models come from the estimator zoo (``learn.zoo``), fixed and fast: the
audit needs calibrated-enough probabilities, not the best classifier. Folds
run one after another in this process by default (a fold of logistic
regression on thousands of clips takes seconds, and xgboost uses every core
itself); ``parallel="ray"`` sends each fold to a Ray task of one CPU
(``distributed.fanout``) for large tables on a cluster.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import clone
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from acoustic_env.config import ConfigError
from acoustic_env.distributed.fanout import map_tasks
from acoustic_env.learn.zoo import ZooClassifier

# ----------------------------------------------------------------------------- folds

def _check_counts(counts: np.ndarray, names: tuple[str, ...], n_folds: int) -> None:
    for name, n in zip(names, counts):
        if n < n_folds:
            raise ConfigError(f"folds: every class needs at least `folds` labelled clips; class {name!r} has {int(n)}, "
                              f"got folds={n_folds}")


def _iterative_stratification(unit_labels: np.ndarray, unit_sizes: np.ndarray, n_folds: int,
                              rng: np.random.Generator) -> np.ndarray:
    """Assign units (groups of clips) to folds so each label's positives spread evenly.

    The rarest label still to place goes first; each of its units joins the fold
    that most lacks that label (ties: the fold that most lacks clips, then random).
    """
    n_units = len(unit_sizes)
    want_labels = np.tile(unit_labels.sum(axis=0) / n_folds, (n_folds, 1)).astype(float)
    want_size = np.full(n_folds, unit_sizes.sum() / n_folds, dtype=float)
    fold = np.full(n_units, -1)
    left = np.ones(n_units, dtype=bool)
    while left.any():
        remaining = unit_labels[left].sum(axis=0)
        if remaining.any():
            label = int(np.argmin(np.where(remaining > 0, remaining, np.inf)))
            units = np.flatnonzero(left & (unit_labels[:, label] > 0))
        else:
            label, units = None, np.flatnonzero(left)
        for u in rng.permutation(units):
            score = (want_labels[:, label] if label is not None else np.zeros(n_folds), want_size, rng.random(n_folds))
            f = int(np.lexsort(score[::-1])[-1])
            fold[u] = f
            want_labels[f] -= unit_labels[u]
            want_size[f] -= unit_sizes[u]
            left[u] = False
    return fold


def assign_folds(targets: np.ndarray, groups: np.ndarray, class_names: tuple[str, ...], n_folds: int,
                 seed: int = 0) -> np.ndarray:
    """Fold index per clip; all clips of a group share one fold."""
    unique_groups, group_index = np.unique(groups.astype(str), return_inverse=True)
    if len(unique_groups) < n_folds:
        raise ConfigError(f"folds: needs at least `folds` groups (or clips), the table has {len(unique_groups)}, "
                          f"got folds={n_folds}")
    if targets.ndim == 1:
        _check_counts(np.bincount(targets, minlength=len(class_names)), class_names, n_folds)
        if len(unique_groups) == len(targets):
            splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
            splits = splitter.split(np.zeros(len(targets)), targets)
        else:
            splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
            splits = splitter.split(np.zeros(len(targets)), targets, group_index)
        fold = np.full(len(targets), -1)
        for k, (_, test) in enumerate(splits):
            fold[test] = k
        return fold
    _check_counts(targets.sum(axis=0), class_names, n_folds)
    unit_labels = np.zeros((len(unique_groups), targets.shape[1]))
    np.add.at(unit_labels, group_index, targets)
    unit_sizes = np.bincount(group_index, minlength=len(unique_groups))
    unit_fold = _iterative_stratification(unit_labels, unit_sizes, n_folds, np.random.default_rng(seed))
    return unit_fold[group_index]


# ----------------------------------------------------------------------------- fitting

def _fold_proba(k: int, estimator: ZooClassifier, X: np.ndarray, targets: np.ndarray,
               folds: np.ndarray) -> np.ndarray:
    """Fit a fresh copy of ``estimator`` on every fold but ``k``; return its probabilities for fold ``k``."""
    test = folds == k
    return clone(estimator).fit(X[~test], targets[~test]).predict_proba(X[test])


def out_of_fold(estimator: ZooClassifier, X: np.ndarray, targets: np.ndarray, folds: np.ndarray,
                parallel: str = "sequential") -> np.ndarray:
    """``(n, K)`` probabilities, each row from the model of the fold that held the clip out."""
    ks = sorted(set(folds.tolist()))
    if parallel == "ray":
        one_cpu = clone(estimator).set_params(threads=1)
        results = map_tasks(_fold_proba, ks, estimator=one_cpu, X=X, targets=targets, folds=folds)
    else:
        results = [_fold_proba(k, estimator, X, targets, folds) for k in ks]
    probs = np.zeros((len(X), estimator.n_classes))
    for k, p in zip(ks, results):
        probs[folds == k] = p
    return probs
