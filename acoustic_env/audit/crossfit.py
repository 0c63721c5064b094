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

Models are fixed and fast by default (no tuning inside the folds): the audit
needs calibrated-enough probabilities, not the best classifier.
``logreg`` = standardise + L2 logistic regression; ``xgboost`` = gradient
boosted trees (hist). Folds run one after another in this process by default
(a fold of logistic regression on thousands of clips takes seconds, and
xgboost uses every core itself); ``parallel="ray"`` sends each fold to a Ray
task for large tables on a cluster.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from acoustic_env.config import ConfigError

LOGREG_CS = list(np.logspace(-4, -1, 7))  # L2 strengths (half-decade steps) tried by an inner 3-fold CV on log loss
LOGREG_FALLBACK_C = 0.01  # too few clips for an inner CV
XGB_PARAMS = {"n_estimators": 200, "max_depth": 4, "learning_rate": 0.1, "subsample": 0.8,
              "colsample_bytree": 0.5, "tree_method": "hist", "verbosity": 0}


@dataclass(frozen=True)
class ModelSpec:
    name: str  # one of config.MODELS
    multi_label: bool
    n_classes: int
    seed: int = 0
    threads: int | None = None  # xgboost threads; None = every core (one Ray task gets one)


def make_model(spec: ModelSpec, smallest_class: int = 3):
    """A fresh, unfitted estimator with ``predict_proba``.

    Logistic regression picks its L2 strength by an inner CV on log loss: with
    noisy labels the right amount of regularisation decides whether the
    probabilities are trustworthy, and it depends on the number of clips and
    features. ``smallest_class`` (clips in the rarest class of the training
    folds) bounds the inner folds; below 2 a fixed strong penalty is used.
    """
    if spec.name == "logreg":
        inner = min(3, smallest_class)
        clf = (LogisticRegressionCV(Cs=LOGREG_CS, l1_ratios=(0.0,), cv=inner, scoring="neg_log_loss", max_iter=2000,
                                    use_legacy_attributes=False) if inner >= 2
               else LogisticRegression(C=LOGREG_FALLBACK_C, max_iter=2000))
        return make_pipeline(StandardScaler(), OneVsRestClassifier(clf) if spec.multi_label else clf)
    if spec.name == "xgboost":
        from xgboost import XGBClassifier

        return XGBClassifier(**XGB_PARAMS, random_state=spec.seed, n_jobs=spec.threads)
    if spec.name == "mlp":
        from acoustic_env.learn.mlp_estimator import MLPClassifier

        return MLPClassifier(seed=spec.seed)
    raise ConfigError(f"model: unknown model, got {spec.name!r}")


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

def fit_predict(spec: ModelSpec, X_train: np.ndarray, y_train: np.ndarray, X_test: np.ndarray) -> np.ndarray:
    """Fit on the training folds, return ``(n_test, K)`` probabilities for the held-out fold.

    A class absent from the training folds gets probability 0 (single-label) or
    the constant training rate (multi-label); the estimators cannot fit a class
    they never saw.
    """
    K = spec.n_classes
    if spec.multi_label:
        out = np.tile(y_train.mean(axis=0), (len(X_test), 1)).astype(float)
        varying = np.flatnonzero(y_train.min(axis=0) != y_train.max(axis=0))
        if len(varying):
            target = y_train[:, varying] if len(varying) > 1 else y_train[:, varying[0]]
            positives = y_train[:, varying].sum(axis=0)
            smallest = int(np.minimum(positives, len(y_train) - positives).min())
            model = make_model(dataclasses.replace(spec, multi_label=len(varying) > 1, n_classes=len(varying)),
                               smallest)
            p = model.fit(X_train, target).predict_proba(X_test)
            out[:, varying] = p if len(varying) > 1 else p[:, 1:]
        return out
    out = np.zeros((len(X_test), K))
    present = np.unique(y_train)
    if len(present) == 1:
        out[:, present[0]] = 1.0
        return out
    encoded = np.searchsorted(present, y_train)
    model = make_model(spec, int(np.bincount(encoded).min()))
    out[:, present] = model.fit(X_train, encoded).predict_proba(X_test)
    return out


def _fold(spec: ModelSpec, X: np.ndarray, targets: np.ndarray, folds: np.ndarray, k: int) -> np.ndarray:
    test = folds == k
    return fit_predict(spec, X[~test], targets[~test], X[test])


def out_of_fold(spec: ModelSpec, X: np.ndarray, targets: np.ndarray, folds: np.ndarray,
                parallel: str = "sequential", ray_address: str | None = None) -> np.ndarray:
    """``(n, K)`` probabilities, each row from the model of the fold that held the clip out."""
    ks = sorted(set(folds.tolist()))
    if parallel == "ray":
        import ray

        if not ray.is_initialized():
            ray.init(address=ray_address, include_dashboard=False, ignore_reinit_error=True)
        task = ray.remote(num_cpus=1)(_fold)
        X_ref, t_ref, f_ref = ray.put(X), ray.put(targets), ray.put(folds)
        one_cpu = dataclasses.replace(spec, threads=1)
        results = ray.get([task.remote(one_cpu, X_ref, t_ref, f_ref, k) for k in ks])
    else:
        results = [_fold(spec, X, targets, folds, k) for k in ks]
    probs = np.zeros((len(X), spec.n_classes))
    for k, p in zip(ks, results):
        probs[folds == k] = p
    return probs
