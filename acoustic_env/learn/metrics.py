"""Test-set metrics for any model's probabilities, and accuracy adjusted for label noise.

Single-label tasks (binary or multi-class): accuracy, balanced accuracy, ROC AUC
(macro one-vs-rest for several classes), per-class precision/recall/F1, macro
and micro F1, mAP, the confusion matrix and a reliability curve of the
predicted class's probability. Multi-label tasks: the same per class with a
0.5 threshold; accuracy is the exact-match (subset) accuracy, balanced accuracy
the mean over classes, and mAP the macro average precision.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Iterator

import numpy as np
from scipy.stats import rankdata
from sklearn.calibration import calibration_curve
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    multilabel_confusion_matrix,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
)


def _safe(fn: Any, *args: Any, **kwargs: Any) -> float | None:
    """A metric, or None where the test split makes it undefined (e.g. one class only)."""
    try:
        value = float(fn(*args, **kwargs))
    except ValueError:
        return None
    return None if math.isnan(value) else value


def _one_hot(y: np.ndarray, k: int) -> np.ndarray:
    out = np.zeros((len(y), k), dtype=int)
    out[np.arange(len(y)), y] = 1
    return out


def evaluate(kind: str, class_names: list[str], y: np.ndarray, proba: np.ndarray) -> dict[str, Any]:
    """Every metric of the report for one model on one split (plain JSON-able data)."""
    k = len(class_names)
    if kind == "multi_label":
        truth, pred = y.astype(int), (proba >= 0.5).astype(int)
        cols = [j for j in range(k) if 0 < truth[:, j].sum() < len(truth)]
        out = {
            "accuracy": float(accuracy_score(truth, pred)),
            "balanced_accuracy": float(np.mean([balanced_accuracy_score(truth[:, j], pred[:, j]) for j in cols]))
            if cols else None,
            "roc_auc": float(np.mean([roc_auc_score(truth[:, j], proba[:, j]) for j in cols])) if cols else None,
            "map": float(np.mean([average_precision_score(truth[:, j], proba[:, j]) for j in cols])) if cols else None,
            "confusion": multilabel_confusion_matrix(truth, pred).tolist(),
        }
        onehot, scores = truth, proba
    else:
        pred = proba.argmax(axis=1)
        truth = y.astype(int)
        onehot = _one_hot(truth, k)
        roc = _single_label_auc(truth, proba)
        present = [j for j in range(k) if 0 < onehot[:, j].sum() < len(truth)]
        out = {
            "accuracy": float(accuracy_score(truth, pred)),
            "balanced_accuracy": float(balanced_accuracy_score(truth, pred)),
            "roc_auc": roc,
            "map": float(np.mean([average_precision_score(onehot[:, j], proba[:, j]) for j in present]))
            if present else None,
            "confusion": confusion_matrix(truth, pred, labels=list(range(k))).tolist(),
        }
        scores = proba
    p, r, f, s = precision_recall_fscore_support(truth, pred, labels=list(range(k)) if kind != "multi_label" else None,
                                                 zero_division=0)
    out["per_class"] = {c: {"precision": float(p[j]), "recall": float(r[j]), "f1": float(f[j]), "support": int(s[j])}
                        for j, c in enumerate(class_names)}
    avg_labels = list(range(k)) if kind != "multi_label" else None
    out["macro_f1"] = _macro_f1(truth, pred, avg_labels)
    out["micro_f1"] = float(f1_score(truth, pred, average="micro", labels=avg_labels, zero_division=0))
    out["n"] = int(len(truth))
    out["roc_curves"] = {}
    for j, c in enumerate(class_names):
        if 0 < onehot[:, j].sum() < len(onehot) and (k > 2 or kind == "multi_label" or j == 1):
            fpr, tpr, _ = roc_curve(onehot[:, j], scores[:, j])
            out["roc_curves"][c] = {"fpr": fpr.tolist(), "tpr": tpr.tolist()}
    out["calibration"] = calibration(kind, onehot, scores, pred if kind != "multi_label" else None)
    out["max_accuracy"], out["max_accuracy_threshold"] = max_accuracy(kind, truth, scores)
    return out


def max_accuracy(kind: str, truth: np.ndarray, proba: np.ndarray) -> tuple[float | None, float | None]:
    """The best accuracy over decision thresholds on P(second class), and that threshold (binary tasks only).

    The study reported this figure; it is optimistic (the threshold is chosen on
    the very clips it is scored on), so the report shows it beside the accuracy
    at 0.5, never instead of it.
    """
    if kind != "single_label" or proba.shape[1] != 2 or len(np.unique(truth)) < 2:
        return None, None
    fpr, tpr, thresholds = roc_curve(truth, proba[:, 1])
    pos = float((truth == 1).sum())
    acc = (tpr * pos + (1 - fpr) * (len(truth) - pos)) / len(truth)
    best = int(np.argmax(acc))
    return float(acc[best]), float(min(thresholds[best], 1.0))


def _single_label_auc(truth: np.ndarray, proba: np.ndarray) -> float | None:
    """ROC AUC of class indices: binary, or macro one-vs-rest over K classes."""
    k = proba.shape[1]
    return (_safe(roc_auc_score, truth, proba[:, 1]) if k == 2 else
            _safe(roc_auc_score, truth, proba, multi_class="ovr", average="macro", labels=list(range(k))))


def _macro_f1(truth: np.ndarray, pred: np.ndarray, labels: list[int] | None) -> float:
    return float(f1_score(truth, pred, average="macro", labels=labels, zero_division=0))


def headline(kind: str, y: np.ndarray, proba: np.ndarray) -> dict[str, float | None]:
    """ROC AUC, accuracy and macro F1 as ``evaluate`` computes them, without the rest: the bootstrap's statistic.

    Evaluated 500 times per model and interval, so the binary AUCs and the F1 are counted here in numpy
    (scikit-learn's checks cost more than the metric on a few hundred clips: a quarter of a small train
    job); ``tests/test_metrics.py`` holds them to scikit-learn's values. Several classes' one-vs-rest
    AUC stays scikit-learn's (it checks that the rows are probabilities).
    """
    if kind == "multi_label":
        truth, pred = y.astype(int), (proba >= 0.5).astype(int)
        aucs = [_binary_auc(truth[:, j], proba[:, j]) for j in range(truth.shape[1])]
        defined = [a for a in aucs if a is not None]
        return {"roc_auc": float(np.mean(defined)) if defined else None,
                "accuracy": float((truth == pred).all(axis=1).mean()),
                "macro_f1": float(np.mean([_f1(truth[:, j] == 1, pred[:, j] == 1) for j in range(truth.shape[1])]))}
    truth, pred = y.astype(int), proba.argmax(axis=1)
    k = proba.shape[1]
    return {"roc_auc": _binary_auc(truth, proba[:, 1]) if k == 2 else _single_label_auc(truth, proba),
            "accuracy": float((pred == truth).mean()),
            "macro_f1": float(np.mean([_f1(truth == j, pred == j) for j in range(k)]))}


def _binary_auc(truth: np.ndarray, score: np.ndarray) -> float | None:
    """ROC AUC of 0/1 ``truth`` as the Mann-Whitney statistic (ties count half), None with one class only."""
    positive = truth == 1
    n1 = int(positive.sum())
    n0 = len(truth) - n1
    if n1 == 0 or n0 == 0:
        return None
    ranks = rankdata(score)
    return float((ranks[positive].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def _f1(truth: np.ndarray, pred: np.ndarray) -> float:
    """F1 of one class from boolean masks; 0 where it is undefined (scikit-learn's ``zero_division=0``)."""
    tp = float(np.sum(truth & pred))
    denominator = 2 * tp + float(np.sum(truth & ~pred)) + float(np.sum(~truth & pred))
    return 2 * tp / denominator if denominator else 0.0


BOOTSTRAP_REPLICATES = 500
INTERVAL_NOTE = ("95 % percentile intervals from {n} bootstrap replicates that resample whole groups (a group's "
                 "clips are drawn together, so the interval reflects how many independent recordings there are, "
                 "not how many clips); accuracy also has a Wilson 95 % interval over clips, which assumes "
                 "independent clips and is narrower when groups hold several clips.")


def resample_groups(units: np.ndarray, replicates: int, seed: int = 0) -> Iterator[np.ndarray]:
    """Row indices of ``replicates`` bootstrap samples that draw whole groups (``units``) with replacement."""
    _, inverse = np.unique(np.asarray(units).astype(str), return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    members = np.split(order, np.cumsum(np.bincount(inverse))[:-1])
    rng = np.random.default_rng(seed)
    for _ in range(replicates):
        yield np.concatenate([members[i] for i in rng.integers(0, len(members), len(members))])


def intervals(kind: str, y: np.ndarray, proba: np.ndarray, units: np.ndarray, seed: int = 0,
              replicates: int = BOOTSTRAP_REPLICATES) -> dict[str, list[float] | None]:
    """95 % intervals of ``headline``'s metrics by a bootstrap over ``units`` (groups, or clips), plus Wilson.

    Out-of-fold predictions of clips of one recording are correlated; resampling
    clips would treat them as independent and give intervals that are too narrow.
    A replicate where a metric is undefined (one class drawn) is skipped; the
    interval is None when fewer than half the replicates define it.
    """
    draws: dict[str, list[float]] = {"roc_auc": [], "accuracy": [], "macro_f1": []}
    with warnings.catch_warnings():  # a replicate with one class: counted out below, not warned about
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        for rows in resample_groups(units, replicates, seed):
            for name, value in headline(kind, y[rows], proba[rows]).items():
                if value is not None:
                    draws[name].append(value)
    out: dict[str, list[float] | None] = {
        name: ([float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))] if len(v) >= replicates / 2 else None)
        for name, v in draws.items()}
    correct = ((proba >= 0.5).astype(int) == y.astype(int)).all(axis=1) if kind == "multi_label" else (
        proba.argmax(axis=1) == y)
    out["accuracy_wilson"] = list(wilson(float(correct.sum()), len(y)))
    return out


def calibration(kind: str, onehot: np.ndarray, proba: np.ndarray, pred: np.ndarray | None,
                n_bins: int = 10) -> dict[str, Any]:
    """Reliability curve and expected calibration error.

    Binary: the positive class's probability. Multi-class: the predicted
    class's probability against being right. Multi-label: every (clip, class) pair.
    """
    if kind == "multi_label":
        hit, conf = onehot.ravel(), proba.ravel()
    elif proba.shape[1] == 2:
        hit, conf = onehot[:, 1], proba[:, 1]
    else:
        hit = onehot[np.arange(len(pred)), pred]
        conf = proba[np.arange(len(pred)), pred]
    if len(np.unique(hit)) < 2:
        return {"observed": [], "predicted": [], "counts": [], "ece": None, "ece_floor": None}
    observed, predicted = calibration_curve(hit, conf, n_bins=n_bins, strategy="uniform")
    # clips per point of the curve (calibration_curve's own binning, empty bins dropped): a point of 3 clips
    # says little, and the report prints the count beside it
    counts = np.bincount(np.searchsorted(np.linspace(0.0, 1.0, n_bins + 1)[1:-1], conf), minlength=n_bins)
    bins = np.minimum((conf * n_bins).astype(int), n_bins - 1)
    ece = sum(abs(hit[bins == b].mean() - conf[bins == b].mean()) * (bins == b).mean()
              for b in range(n_bins) if (bins == b).any())
    return {"observed": observed.tolist(), "predicted": predicted.tolist(),
            "counts": counts[counts > 0].tolist(), "ece": float(ece), "ece_floor": ece_floor(conf, n_bins)}


#: Outcomes drawn for ``ece_floor`` (fewer on a table where they would exceed ``FLOOR_VALUES`` random values).
FLOOR_DRAWS = 400
FLOOR_VALUES = 40_000_000


def ece_floor(conf: np.ndarray, n_bins: int = 10, seed: int = 0) -> float:
    """The ECE a perfectly calibrated model as sharp as this one would score on as many clips: the median, over
    ``FLOOR_DRAWS`` draws, of ``calibration``'s ECE of ``conf`` against outcomes drawn with those probabilities
    themselves (each a hit with probability ``conf``).

    Why: binned, the ECE of a few hundred clips is mostly sampling noise (a calibrated model as sharp as the demo's
    scores about 0.05 on its 194 clips, the forest recordings' about 0.08 on 96), so an ECE is read against this
    floor, not against 0; it falls toward 0 as clips are added or the model grows sharp."""
    conf = np.asarray(conf)
    bins = np.minimum((conf * n_bins).astype(int), n_bins - 1)  # calibration's bins
    expected = np.bincount(bins, weights=conf, minlength=n_bins)  # each bin's summed probability
    rng = np.random.default_rng(seed)
    # the ECE is the bins' summed |hits - expected| over the clips: each bin's mean gap weighed by its share
    eces = [np.abs(np.bincount(bins, weights=rng.random(len(conf)) < conf, minlength=n_bins) - expected).sum()
            / len(conf) for _ in range(max(20, min(FLOOR_DRAWS, FLOOR_VALUES // max(len(conf), 1))))]
    return float(np.median(eces))


# --- accuracy adjusted for label noise -------------------------------------------------

ADJUSTMENT_FORMULA = (
    "The noise-model estimate. With label accuracy a (the share of given labels that are right, from the audit) "
    "and K classes, assume a wrong label is any other class with equal chance, independently of the model's errors. "
    "Then the observed accuracy is acc_obs = a·acc_true + (1−a)(1−acc_true)/(K−1), so "
    "acc_true = (acc_obs − (1−a)/(K−1)) / (a − (1−a)/(K−1)); for K = 2, (acc_obs − (1−a)) / (2a − 1). "
    "The interval is the range of this formula over the audit's interval [low, high] for a and the "
    "Wilson 95% interval of acc_obs on the test clips, clipped to [0, 1].")


Z95 = 1.959963984540054  # the normal quantile of a two-sided 95 % interval


def wilson(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for ``successes`` in ``n`` trials (the audit's label accuracy, the test accuracy).

    Unlike the normal approximation it keeps its coverage for small n and for proportions near 0 or 1.
    """
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def true_accuracy(acc_obs: float, a: float, k: int) -> float | None:
    """The accuracy against correct labels implied by ``acc_obs`` against labels that are right with probability a."""
    wrong = (1 - a) / (k - 1)
    if a - wrong <= 0:
        return None  # labels no better than chance carry no information about accuracy
    return (acc_obs - wrong) / (a - wrong)


STUDY_RATIO_FORMULA = (
    "The study's figure divides the accuracy by the label accuracy: acc_obs / a (0.721 / 0.8 = 0.901). It reads a "
    "as a ceiling (a model that is always right agrees with labels right a of the time only a of the time) and gives "
    "the share of it reached. It is not the accuracy against correct labels: where a label is wrong, a model that is "
    "wrong too agrees with it and is counted right, which the ratio leaves in and the noise model takes out, so the "
    "ratio is the higher of the two whenever acc_obs < a (binary, a = 0.8: 0.721 gives 0.901 by the ratio, 0.868 by "
    "the noise model; a model at chance, 0.5, gives 0.625 and 0.5). Its interval: acc_obs's Wilson interval divided "
    "by the label accuracy's [high, low]; not clipped, so a value above 1 says the model agrees with the labels more "
    "often than they are right, which contradicts the a used.")


def study_ratio(acc_obs: float, a: float) -> float | None:
    """The study's adjusted accuracy, ``acc_obs / a`` (see ``STUDY_RATIO_FORMULA``; None for a = 0)."""
    return acc_obs / a if a > 0 else None


def assumed_label_accuracy(a: float) -> dict[str, Any]:
    """An estimate for ``adjusted_accuracy`` from an assumed label accuracy (the study assumed 0.8): no interval
    of its own, so the adjusted figures' intervals carry only the test clips' sampling error."""
    return {"method": "assumed", "sample": None, "overall": {"accuracy": a, "low": a, "high": a, "n": None}}


def adjusted_accuracy(acc_obs: float, n: int, estimate: dict[str, Any], k: int) -> dict[str, Any]:
    """Both adjusted figures and their intervals, beside (never instead of) the raw one.

    ``adjusted``: the noise-model estimate (``ADJUSTMENT_FORMULA``); ``study_ratio``: the study's
    acc_obs / a (``STUDY_RATIO_FORMULA``), kept apart because the two differ and the study's
    figures can only be compared with the second.
    """
    overall = estimate["overall"]
    a, lo, hi = float(overall["accuracy"]), float(overall["low"]), float(overall["high"])
    point = true_accuracy(acc_obs, a, k)
    obs_lo, obs_hi = wilson(acc_obs * n, n)
    # increasing in acc_obs; in a it need not be monotone, so a grid over [low, high]
    corners = [true_accuracy(o, float(q), k) for o in (obs_lo, obs_hi) for q in np.linspace(lo, hi, 21)]
    corners = [c for c in corners if c is not None]
    clip = lambda v: None if v is None else float(min(1.0, max(0.0, v)))  # noqa: E731
    ratio_lo, ratio_hi = study_ratio(obs_lo, hi), study_ratio(obs_hi, lo)
    return {"raw": acc_obs, "raw_interval": [obs_lo, obs_hi], "adjusted": clip(point),
            "interval": [clip(min(corners)), clip(max(corners))] if corners else None,
            "study_ratio": study_ratio(acc_obs, a),
            "study_ratio_interval": None if ratio_hi is None else [ratio_lo, ratio_hi],
            "label_accuracy": {"accuracy": a, "low": lo, "high": hi, "n": overall.get("n"),
                               "method": estimate.get("method"), "sample": estimate.get("sample")},
            "formula": ADJUSTMENT_FORMULA, "study_ratio_formula": STUDY_RATIO_FORMULA}
