"""Calibrated probabilities: a monotone map from a model's probabilities to frequencies, chosen on inner folds.

Why: the audit ranks clips by the probability of their given label, the windows and the service print
probabilities, and a threshold of 0.5 means something only if 0.7 is right seven times in ten. A regularised logistic
regression on hundreds of PCA components, or a network stopped early, is often far from that (an ECE of 0.16 on real
recordings). Each model of the train job is therefore calibrated where it is fitted: its own settings' out-of-fold
probabilities on the grouped inner folds of its training rows (never a row it is then scored on) are mapped by
Platt's sigmoid or an isotonic step function, each cross-fitted on those folds, and the map with the lowest
out-of-fold log loss is kept (``choose``) when it beats the model's own probabilities by ``MARGIN``.

A network that chooses no map on its inner folds (the CNN: that would cost two more trainings a fold) takes one
chosen across the outer folds instead (``across_folds``): each fold's probabilities mapped by the map chosen on the
other folds' out-of-fold probabilities, and the saved network's chosen on all of them (``outer_map``).

The map is numpy only: Platt's two numbers or the isotonic thresholds per class, applied per class column
(one-vs-rest); a single-label row is then normalised to sum to 1, and a two-class model maps its positive class only.
The saved model stores those arrays (``learn.portable``), so a loaded model gives the fitted one's probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Every map tried; ``none`` first so that it wins a tie.
METHODS = ("none", "platt", "isotonic")
#: Probabilities are clipped this far from 0 and 1 for the logit and the log loss.
EPS = 1e-6
#: A map is kept only if it lowers the log loss by this share at least: a smaller gain is within what refitting on
#: other rows moves it, and a map fitted to that noise would only reorder the clips of a fold.
MARGIN = 0.01
#: Platt's prior: its log density's weight on the squared distance of the slope from 1 and the intercept from 0.
PRIOR = 1.0


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, EPS, 1 - EPS)
    return np.log(p / (1 - p))


@dataclass(frozen=True)
class Calibrator:
    """A fitted map: ``method`` (``platt`` or ``isotonic``), the class ``columns`` it maps, and per column Platt's
    slope and intercept (``a``, ``b``) or the isotonic thresholds (``x``, ``y``, concatenated; ``sizes`` per column).
    """

    method: str
    kind: str
    columns: np.ndarray
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    def __call__(self, proba: np.ndarray) -> np.ndarray:
        """``proba`` [n, classes] mapped: its ``columns`` calibrated, a single-label row normalised."""
        out = np.array(proba, dtype=np.float64, copy=True)
        cols = self.columns
        if self.method == "platt":
            out[:, cols] = 1 / (1 + np.exp(-(self.arrays["a"] * _logit(out[:, cols]) + self.arrays["b"])))
        else:
            ends = np.concatenate([[0], np.cumsum(self.arrays["sizes"])])
            for j, c in enumerate(cols):
                x, y = self.arrays["x"][ends[j]:ends[j + 1]], self.arrays["y"][ends[j]:ends[j + 1]]
                out[:, c] = np.interp(out[:, c], x, y)
        if self.kind != "multi_label":
            if out.shape[1] == 2 and len(cols) == 1:
                out[:, 1 - cols[0]] = 1 - out[:, cols[0]]
            else:
                total = out.sum(axis=1, keepdims=True)
                out = np.divide(out, total, out=np.full_like(out, 1 / out.shape[1]), where=total > 0)
        return out

    def describe(self) -> dict[str, Any]:
        """What model.json records of the map: its method, columns and size (checked before the arrays are read)."""
        return {"method": self.method, "columns": self.columns.tolist(),
                "points": int(max((v.size for v in self.arrays.values()), default=0))}


def _columns(kind: str, fitted: np.ndarray, n_classes: int) -> np.ndarray:
    """The class columns a map calibrates: the positive class of a two-class model, else every fitted class."""
    fitted = np.asarray(fitted, np.int64)
    return fitted[1:] if kind != "multi_label" and n_classes == 2 and len(fitted) == 2 else fitted


def _targets(kind: str, y: np.ndarray, n_classes: int) -> np.ndarray:
    return np.asarray(y, np.float64) if kind == "multi_label" else np.eye(n_classes)[np.asarray(y)]


class NotIncreasing(ValueError):
    """A Platt fit whose slope is not positive: it would reverse or erase the model's ranking, not calibrate it (the
    inner models' probabilities disagree with their targets, as an early-stopped network on a few dozen clips can)."""


def _platt(s: np.ndarray, t: np.ndarray) -> tuple[float, float]:
    """Platt's slope and intercept for logits ``s`` and 0/1 targets ``t``: the most likely under a Gaussian prior
    centred on no change (slope 1, intercept 0) of weight ``PRIOR``, so a few dozen rows that the inner models
    happen to separate do not give a slope of hundreds (an overconfident map) that one clip of another split refutes."""
    from scipy.optimize import minimize
    from scipy.special import expit

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        z = w[0] * s + w[1]
        r = expit(z) - t  # no overflow warning where the line search tries a steep slope
        grad = np.array([r @ s + 2 * PRIOR * (w[0] - 1), r.sum() + 2 * PRIOR * w[1]])
        return float(np.sum(np.logaddexp(0, z) - t * z) + PRIOR * ((w[0] - 1) ** 2 + w[1] ** 2)), grad

    w = minimize(loss, np.array([1.0, 0.0]), jac=True, method="L-BFGS-B").x
    return float(w[0]), float(w[1])


def fit(method: str, proba: np.ndarray, y: np.ndarray, kind: str, fitted: np.ndarray) -> Calibrator:
    """The ``method`` map of ``proba`` [n, classes] to the targets ``y`` (class indices, or a 0/1 matrix).

    Raises:
        NotIncreasing: Platt's slope for a class is not positive.
    """
    from sklearn.isotonic import IsotonicRegression

    cols = _columns(kind, fitted, proba.shape[1])
    target = _targets(kind, y, proba.shape[1])
    if method == "platt":
        a, b = np.ones(len(cols)), np.zeros(len(cols))
        for j, c in enumerate(cols):
            t = target[:, c]
            if t.min() != t.max():  # a class absent from these rows keeps its probabilities
                a[j], b[j] = _platt(_logit(proba[:, c]), t)
                if a[j] <= 0:
                    raise NotIncreasing(f"Platt's slope {a[j]:.3g} for class {c}")
        return Calibrator(method, kind, cols, {"a": a, "b": b})
    xs, ys = [], []
    for c in cols:
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(proba[:, c], target[:, c])
        xs.append(np.asarray(iso.X_thresholds_, np.float64))
        ys.append(np.asarray(iso.y_thresholds_, np.float64))
    return Calibrator(method, kind, cols, {"x": np.concatenate(xs), "y": np.concatenate(ys),
                                           "sizes": np.array([len(x) for x in xs], np.int64)})


def _ranking(proba: np.ndarray, y: np.ndarray, kind: str) -> float:
    """The mean one-vs-rest ROC AUC of ``proba`` over the classes (label columns) present and absent in ``y``."""
    from sklearn.metrics import roc_auc_score

    target = _targets(kind, y, proba.shape[1])
    aucs = [roc_auc_score(target[:, c], proba[:, c]) for c in range(proba.shape[1])
            if 0 < target[:, c].sum() < len(target)]
    return float(np.mean(aucs)) if aucs else 0.5


def log_loss(proba: np.ndarray, y: np.ndarray, kind: str) -> float:
    """Mean log loss of ``proba`` (clipped by ``EPS``): of the given class, or the mean binary one per label."""
    p = np.clip(proba, EPS, 1 - EPS)
    if kind == "multi_label":
        t = np.asarray(y, np.float64)
        return float(-np.mean(t * np.log(p) + (1 - t) * np.log(1 - p)))
    return float(-np.mean(np.log(p[np.arange(len(y)), np.asarray(y)])))


def cross_fitted(oof: np.ndarray, y: np.ndarray, kind: str, fitted: np.ndarray,
                 splits: list[tuple[np.ndarray, np.ndarray]]) -> tuple[str, np.ndarray, dict[str, float | None]]:
    """The map with the lowest log loss on ``oof`` (out-of-fold probabilities of these rows), each map fitted on the
    other ``splits``' rows and scored on each split's held-out rows (cross-fitted: a map never scores the rows it was
    fitted on). Returns its name (``none`` when the model's own probabilities do as well, within ``MARGIN``), the
    rows' probabilities under it, and every method's loss (None: not tried).

    Inner models that rank the rows no better than chance (ROC AUC at most 0.5: an early-stopped network on a few
    dozen clips) tell nothing about the model fitted on every row: a map learnt from them would only flatten that
    model's ranking, so none is tried.
    """
    losses: dict[str, float | None] = {"none": round(log_loss(oof, y, kind), 6)}
    if _ranking(oof, y, kind) <= 0.5:
        return "none", oof, {**losses, **{m: None for m in METHODS[1:]}}
    mapped = {}
    for method in METHODS[1:]:
        mapped[method] = np.zeros_like(oof)
        try:
            for fit_on, scored in splits:
                mapped[method][scored] = fit(method, oof[fit_on], y[fit_on], kind, fitted)(oof[scored])
            losses[method] = round(log_loss(mapped[method], y, kind), 6)
        except NotIncreasing:  # no map of this kind on some split: not a candidate (no loss: JSON has no inf)
            losses[method] = None
    tried = [m for m in METHODS[1:] if losses[m] is not None]
    best = min(tried, key=lambda m: (losses[m], METHODS.index(m)), default=None)
    if best is None or losses[best] > losses["none"] * (1 - MARGIN):
        return "none", oof, losses
    return best, mapped[best], losses


def choose(oof: np.ndarray, y: np.ndarray, kind: str, fitted: np.ndarray,
           splits: list[tuple[np.ndarray, np.ndarray]]) -> tuple[Calibrator | None, dict[str, float | None]]:
    """The map ``cross_fitted`` chooses for ``oof``, refitted on every row (None: no map). Every method's loss."""
    best, _, losses = cross_fitted(oof, y, kind, fitted, splits)
    if best == "none":
        return None, losses
    try:
        return fit(best, oof, y, kind, fitted), losses
    except NotIncreasing:
        return None, losses


def fitted_classes(y: np.ndarray, kind: str) -> np.ndarray:
    """The classes (single-label) or label columns (multi-label) that vary in the rows ``y``: what a model fitted on
    them was fitted on, and so what a map of its probabilities maps (``learn.zoo.ZooClassifier.columns_``)."""
    y = np.asarray(y)
    return np.flatnonzero(y.min(axis=0) != y.max(axis=0)) if kind == "multi_label" else np.unique(y)


def fold_splits(folds: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """(the other folds' rows, the fold's rows) for each fold label of ``folds``, in order."""
    return [(np.flatnonzero(folds != k), np.flatnonzero(folds == k)) for k in np.unique(folds)]


def outer_map(raw: np.ndarray, y: np.ndarray, kind: str,
              folds: np.ndarray) -> tuple[Calibrator | None, dict[str, float | None] | None]:
    """The map (``choose``) of out-of-fold probabilities ``raw`` of every row, cross-fitted over their ``folds``
    (those of the models that held each row out), and every method's loss; (None, None) below two folds."""
    splits = fold_splits(folds)
    return choose(raw, y, kind, fitted_classes(y, kind), splits) if len(splits) >= 2 else (None, None)


def across_folds(raw: np.ndarray, y: np.ndarray, kind: str,
                 folds: np.ndarray) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Out-of-fold probabilities ``raw`` of a model that chooses no map on its inner folds, each fold's rows mapped by
    the map ``outer_map`` chooses on the other folds' rows (so no row's map saw its label), and each fold's record
    (``fold``, ``method``, ``log_loss``: every method's loss on the other folds, None where fewer than two are left),
    as ``learn.cv`` records an inner-fold map's."""
    mapped, records = raw.copy(), []
    for k in np.unique(folds):
        rest = folds != k
        calibrator, losses = outer_map(raw[rest], y[rest], kind, folds[rest])
        if calibrator is not None:
            mapped[folds == k] = calibrator(raw[folds == k])
        records.append({"fold": int(k), "method": calibrator.method if calibrator is not None else "none",
                        "log_loss": losses})
    return mapped, records
