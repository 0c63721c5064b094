"""Confident learning (cleanlab) on out-of-fold probabilities: which labels look wrong, and how many.

Confident learning (Northcutt et al., 2021) counts, per given class, the clips
whose out-of-fold probability for another class clears that class's own
average confidence; calibrated to the class sizes, these counts estimate the
joint distribution ``P(given label, true label)``. Its off-diagonal mass is the
estimated share of wrong labels, and the clips it flags are those whose given
label the probabilities support least, as many per class pair as the joint
says are wrong (``filter_by="prune_by_noise_rate"``).

The estimated share of wrong labels per class comes with a 95 % interval: a
percentile bootstrap that redraws whole groups (recordings) and re-estimates
the joint, so it reflects how few clips a rare class has (``INTERVAL_NOTE``).

Each clip's ``label_quality`` is cleanlab's *self-confidence*: the out-of-fold
probability of the label it was given (multi-label: cleanlab's per-clip score
that pools the self-confidence of every class membership, weighted towards the
worst). The review list puts the flagged clips first, each block ordered by
this score, lowest (most suspect) first.

Multi-label tasks are treated one class at a time (one-vs-rest), as
``cleanlab.multilabel_classification`` does: a clip is flagged when any of its
class memberships looks wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from cleanlab.count import estimate_joint
from cleanlab.filter import find_label_issues
from cleanlab.multilabel_classification.filter import (
    find_label_issues as find_multilabel_issues,
)
from cleanlab.multilabel_classification.rank import (
    get_label_quality_scores as multilabel_quality_scores,
)
from cleanlab.rank import get_label_quality_scores

from acoustic_env.learn.metrics import resample_groups

MULTILABEL_THRESHOLD = 0.5  # a class is suggested when its out-of-fold probability reaches this
BOOTSTRAP_REPLICATES = 200
INTERVAL_NOTE = ("95 % percentile interval over {n} bootstrap replicates that redraw whole groups (recordings) "
                 "and re-estimate the confident joint")


@dataclass(frozen=True)
class LabelIssues:
    """Per clip: ``quality`` in [0, 1] (low = suspect), ``flagged``, ``suggested`` (0/1 per class);
    ``noise``: the estimated noise statistics (plain data, for summary.json)."""

    quality: np.ndarray
    flagged: np.ndarray
    suggested: np.ndarray  # (n, K) 0/1
    noise: dict[str, Any]


def _round(x: Any) -> Any:
    return np.round(np.asarray(x, dtype=float), 6).tolist()


def _wrong_shares(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Estimated share of wrong labels per given class (K values) and overall (last value), single-label."""
    joint = estimate_joint(labels, probs)
    given = joint.sum(axis=1)
    per_class = np.where(given > 0, 1 - np.diag(joint) / np.where(given > 0, given, 1.0), 0.0)
    return np.append(per_class, 1 - np.trace(joint))


def _multilabel_wrong_shares(targets: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Estimated share of wrong memberships per class (given 1, true 0), multi-label."""
    joint = estimate_joint([np.flatnonzero(r).tolist() for r in targets], probs, multi_label=True)
    return np.array([j[1, 0] / j[1].sum() if j[1].sum() > 0 else 0.0 for j in joint])


def bootstrap_intervals(statistic: Any, targets: np.ndarray, probs: np.ndarray, units: np.ndarray | None,
                        replicates: int = BOOTSTRAP_REPLICATES, seed: int = 0) -> list[list[float] | None]:
    """95 % intervals of each value of ``statistic(targets, probs)`` over ``replicates`` group-level redraws.

    A replicate that lacks a class (the estimate is undefined there) is skipped;
    with fewer than half the replicates left, the intervals are None.
    """
    units = np.arange(len(targets)) if units is None else units
    draws = []
    n_classes = probs.shape[1]
    for rows in resample_groups(units, replicates, seed):
        t = targets[rows]
        present = np.bincount(t, minlength=n_classes) if t.ndim == 1 else t.sum(axis=0)
        if (present == 0).any():
            continue
        draws.append(statistic(t, probs[rows]))
    if len(draws) < replicates / 2:
        return [None] * len(statistic(targets, probs))
    lo, hi = np.percentile(np.array(draws), [2.5, 97.5], axis=0)
    return [[round(float(a), 6), round(float(b), 6)] for a, b in zip(lo, hi)]


def single_label_issues(labels: np.ndarray, probs: np.ndarray, class_names: tuple[str, ...],
                        filter_by: str = "prune_by_noise_rate", units: np.ndarray | None = None,
                        seed: int = 0) -> LabelIssues:
    """Binary and multi-class tasks: ``labels`` is a class index per clip; ``units``: its group (intervals)."""
    K = len(class_names)
    flagged = find_label_issues(labels, probs, filter_by=filter_by, n_jobs=1)
    quality = get_label_quality_scores(labels, probs, method="self_confidence")
    joint = estimate_joint(labels, probs)  # rows: given label, columns: true label; sums to 1
    given_share = joint.sum(axis=1)
    true_share = joint.sum(axis=0)
    per_class = {
        name: {"given": int((labels == i).sum()), "flagged": int((flagged & (labels == i)).sum()),
               "estimated_wrong_share": round(float(1 - joint[i, i] / given_share[i]) if given_share[i] > 0 else 0.0, 6),
               "estimated_true_share": round(float(true_share[i]), 6)}
        for i, name in enumerate(class_names)
    }
    spans = bootstrap_intervals(_wrong_shares, labels, probs, units, seed=seed)
    for name, span in zip(class_names, spans):
        per_class[name]["interval"] = span
    noise = {
        "estimated_wrong_share": round(float(1 - np.trace(joint)), 6),
        "interval": spans[-1], "interval_method": INTERVAL_NOTE.format(n=BOOTSTRAP_REPLICATES),
        "flagged_share": round(float(flagged.mean()), 6),
        "per_class": per_class,
        "joint": _round(joint),
        "noise_matrix": _round(joint / np.where(true_share > 0, true_share, 1.0)),  # P(given=i | true=j)
        "axes": {"rows": "given label", "columns": "true label", "classes": list(class_names)},
    }
    suggested = np.eye(K, dtype=np.int64)[probs.argmax(axis=1)]
    return LabelIssues(quality=np.asarray(quality, dtype=float), flagged=np.asarray(flagged, dtype=bool),
                       suggested=suggested, noise=noise)


def multi_label_issues(targets: np.ndarray, probs: np.ndarray, class_names: tuple[str, ...],
                       filter_by: str = "prune_by_noise_rate", units: np.ndarray | None = None,
                       seed: int = 0) -> LabelIssues:
    """Multi-label tasks: ``targets`` is an ``(n, K)`` 0/1 matrix, ``probs`` independent per class."""
    labels = [np.flatnonzero(row).tolist() for row in targets]
    flagged = np.asarray(find_multilabel_issues(labels=labels, pred_probs=probs, filter_by=filter_by, n_jobs=1),
                         dtype=bool)
    quality = multilabel_quality_scores(labels, probs)
    joint = estimate_joint(labels, probs, multi_label=True)  # (K, 2, 2): class, given 0/1, true 0/1
    per_class = {}
    for k, name in enumerate(class_names):
        j = joint[k]
        per_class[name] = {
            "given": int(targets[:, k].sum()), "flagged": int((flagged & (targets[:, k] == 1)).sum()),
            "estimated_wrong_share": round(float(j[1, 0] / j[1].sum()) if j[1].sum() > 0 else 0.0, 6),
            "estimated_missing_share": round(float(j[0, 1] / j[0].sum()) if j[0].sum() > 0 else 0.0, 6),
            "estimated_true_share": round(float(j[:, 1].sum()), 6),
        }
    spans = bootstrap_intervals(_multilabel_wrong_shares, targets, probs, units, seed=seed)
    for name, span in zip(class_names, spans):
        per_class[name]["interval"] = span
    noise = {
        "interval_method": INTERVAL_NOTE.format(n=BOOTSTRAP_REPLICATES),
        # clip level: a clip's label set is wrong when any membership is; cleanlab flags exactly those
        "estimated_wrong_share": round(float(flagged.mean()), 6),
        "flagged_share": round(float(flagged.mean()), 6),
        "per_class": per_class,
        "joint": _round(joint),
        "axes": {"0": "class", "1": "given 0/1", "2": "true 0/1", "classes": list(class_names)},
    }
    suggested = (probs >= MULTILABEL_THRESHOLD).astype(np.int64)
    return LabelIssues(quality=np.asarray(quality, dtype=float), flagged=flagged, suggested=suggested, noise=noise)
