"""Out-of-fold class probabilities: every clip is scored by a model that never saw its label.

Confident learning is only as honest as its probabilities: a model that trained
on a clip has memorised that clip's (possibly wrong) label and will vouch for
it. So the clips are split into K folds and each fold is scored by a model fit
on the other K-1. Clips of one ``group`` (segments of one video, one recording
site) always share a fold, or a near-duplicate in the training folds would
leak the label back.

The folds are ``learn.splits.assign_folds``, the same as train's
cross-validation: stratified and grouped (iterative stratification for
multi-label tasks).

The models come from the estimator zoo (``learn.zoo``) at fixed
hyper-parameters. Which one gives the most trustworthy probabilities depends on
the data (a linear model on few clips, trees on indices with thresholds, ...),
so ``classifier="auto"`` fits them all on the same folds and keeps the one
with the lowest out-of-fold log loss against the given labels, counting their
average as a fourth candidate (``choose_by_log_loss``), each model's
probabilities first mapped by the calibration its other folds choose
(``calibrated``). Log loss, not
accuracy: confident learning uses the probabilities themselves, and log loss
is what punishes a confident wrong one. Folds
run one after another in this process by default (a fold of logistic
regression on thousands of clips takes seconds, and xgboost uses every core
itself); ``parallel="ray"`` sends each fold to a Ray task of one CPU
(``distributed.fanout``) for large tables on a cluster.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import clone

from acoustic_env.candidates import AVERAGE
from acoustic_env.distributed.fanout import map_tasks
from acoustic_env.learn.calibrate import cross_fitted, fold_splits, log_loss
from acoustic_env.learn.zoo import ZooClassifier, make_estimator

AUTO = "auto"

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


def calibrated(probs: np.ndarray, targets: np.ndarray, kind: str, folds: np.ndarray) -> tuple[str, np.ndarray]:
    """``probs`` (out of fold) under the probability map (``learn.calibrate.cross_fitted``) that lowers their log loss,
    each fold's map fitted on the other folds' rows only; the map's name (``none``: kept as they are).

    Why: a network fitted on a few dozen clips with noisy labels is sure of everything (out-of-fold log loss 1.0-1.3
    on the flipped forest recordings, against 0.52-0.56 for logistic regression), so it lost ``auto``'s choice and
    dragged the average down with it, although it ranks the clips well enough to help.
    """
    classes = np.arange(probs.shape[1]) if kind == "multi_label" else np.unique(targets)
    method, mapped, _ = cross_fitted(probs, targets, kind, classes, fold_splits(folds))
    return method, mapped


def choose_by_log_loss(names: tuple[str, ...], kind: str, n_classes: int, seed: int, X: np.ndarray,
                       targets: np.ndarray, folds: np.ndarray, parallel: str = "sequential",
                       requested: str = AUTO) -> tuple[str, np.ndarray, dict[str, float], dict[str, str]]:
    """Out-of-fold probabilities of every model in ``names`` (and their average when several) on the same folds,
    each ``calibrated``.

    Returns the model kept (``requested``, or the lowest log loss when it is
    ``auto``; ties go to the earlier name), its probabilities, every log loss, and each model's map.
    """
    probs, maps = {}, {}
    for n in names:
        raw = out_of_fold(make_estimator(n, kind, n_classes, seed), X, targets, folds, parallel)
        maps[n], probs[n] = calibrated(raw, targets, kind, folds)
    if len(names) > 1:
        probs[AVERAGE] = np.mean([probs[n] for n in names], axis=0)
    losses = {n: round(log_loss(p, targets, kind), 6) for n, p in probs.items()}
    chosen = min(losses, key=losses.get) if requested == AUTO else requested
    return chosen, probs[chosen], losses, maps


def choose_model_and_set(names: tuple[str, ...], kind: str, n_classes: int, seed: int, inputs: dict[str, np.ndarray],
                         targets: np.ndarray, folds: np.ndarray, parallel: str = "sequential",
                         requested: str = AUTO) -> tuple[str, str, np.ndarray, dict[str, float], dict[str, float]]:
    """The feature set (``inputs``: set name → matrix, ``learn.feature_sets``) whose out-of-fold log loss is lowest
    for a probe model, then ``choose_by_log_loss`` among ``names`` on that set.

    Which groups to trust is as much the data's question as which model: on real recordings one pretrained embedder
    can judge the labels far better than every group together. The probe is logistic regression (the requested
    model when one is named): the cheapest of the zoo, so that trying every set costs a few linear fits, not every
    model on every set. Ties go to the earlier set. Returns the model, the set, their probabilities, the models' log
    losses on that set and the probe's on every set.
    """
    probe = "logreg" if requested in (AUTO, AVERAGE) else requested
    by_set = {}
    if len(inputs) > 1:
        for name, X in inputs.items():
            oof = out_of_fold(make_estimator(probe, kind, n_classes, seed), X, targets, folds, parallel)
            by_set[name] = round(log_loss(oof, targets, kind), 6)
    feature_set = min(by_set, key=by_set.get) if by_set else next(iter(inputs))
    chosen, probs, losses, maps = choose_by_log_loss(names, kind, n_classes, seed, inputs[feature_set], targets,
                                                     folds, parallel, requested)
    return chosen, feature_set, probs, losses, by_set, maps
