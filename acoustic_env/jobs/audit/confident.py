"""Confident learning (cleanlab) on out-of-fold probabilities: which labels look wrong, and how many.

Confident learning (Northcutt et al., 2021) counts, per given class, the clips
whose out-of-fold probability for another class clears that class's own
average confidence; calibrated to the class sizes, these counts estimate the
joint distribution ``P(given label, true label)``. Its off-diagonal mass is the
estimated share of wrong labels, and the clips it flags are those whose given
label the probabilities support least, as many per class pair as the joint
says are wrong (``filter_by="prune_by_noise_rate"``).

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

MULTILABEL_THRESHOLD = 0.5  # a class is suggested when its out-of-fold probability reaches this


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


def single_label_issues(labels: np.ndarray, probs: np.ndarray, class_names: tuple[str, ...],
                        filter_by: str = "prune_by_noise_rate") -> LabelIssues:
    """Binary and multi-class tasks: ``labels`` is a class index per clip."""
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
    noise = {
        "estimated_wrong_share": round(float(1 - np.trace(joint)), 6),
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
                       filter_by: str = "prune_by_noise_rate") -> LabelIssues:
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
    noise = {
        # clip level: a clip's label set is wrong when any membership is; cleanlab flags exactly those
        "estimated_wrong_share": round(float(flagged.mean()), 6),
        "flagged_share": round(float(flagged.mean()), 6),
        "per_class": per_class,
        "joint": _round(joint),
        "axes": {"0": "class", "1": "given 0/1", "2": "true 0/1", "classes": list(class_names)},
    }
    suggested = (probs >= MULTILABEL_THRESHOLD).astype(np.int64)
    return LabelIssues(quality=np.asarray(quality, dtype=float), flagged=flagged, suggested=suggested, noise=noise)
