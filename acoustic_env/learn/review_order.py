"""Which clips a reviewer should hear next: the strategies of the audit's review queue.

A reviewer's time is the scarce thing in a label audit, so the order of the queue matters. Each strategy takes
the audit's out-of-fold probabilities, the given labels, an embedding of the clips (the audit's feature vectors,
or their PCA: :func:`embed`) and the verdicts so far, and returns the next clips with the reason each was picked:

* ``suspect``: lowest label quality first (cleanlab's flags first when given): the audit's own order, the one
  that finds wrong labels fastest when the out-of-fold model is good;
* ``uncertain``: smallest margin between the two most probable classes: the clips the model can least decide,
  which teach a model most (margin sampling, as in Perch's agile modelling);
* ``diverse``: greedy k-centre over the embedding, each clip the farthest from every clip reviewed or picked:
  coverage at a cold start, when no model can yet be trusted (BioDCASE 2026's active-learning finding);
* ``mixed``: the first batch diverse among the most suspect, then the lowest label quality under a model
  refitted on the verdict-corrected labels (a logistic regression on the embedding, out of fold, averaged with
  the audit's probabilities): the verdicts re-rank what is left after every batch;
* ``random``: uniform order, the baseline (the review page's random sample is drawn apart from any of these:
  it is what the accuracy estimate rests on).

Labels are class indices (single-label, ``given`` of shape ``(n,)``) or 0/1 rows (multi-label, ``(n, k)``).
``reviewed`` maps a clip's row to the label a reviewer settled on (the given one for ``correct``, the corrected
one for ``wrong``) or to None (``unsure``, or wrong without the right class): every reviewed clip leaves the
queue; only the settled ones teach the refitted model. This module knows nothing of pages, files or Ray.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import pairwise_distances_argmin_min
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

#: Dimensions :func:`embed` keeps: distances in a few dozen principal components are cheap and less noisy than
#: in hundreds of raw feature columns, and the refit in ``mixed`` stays well under a second per thousand clips.
EMBED_DIMS = 32
#: ``mixed``'s cold start picks diversely among this many times the batch of the lowest label quality: spread
#: over the space, but not spent on clips the audit already finds plainly right.
COLD_POOL = 2
#: The refitted model's folds (fewer when a class has fewer settled clips).
REFIT_FOLDS = 5


@dataclass(frozen=True)
class Pool:
    """What the strategies choose from: one row per audited clip."""

    probs: np.ndarray
    given: np.ndarray
    embedding: np.ndarray
    #: label quality (low = suspect); None: the probability of the given label (its least supported class)
    quality: np.ndarray | None = None
    #: cleanlab's flags, which ``suspect`` puts first (the audit's own order); None: no flags
    flagged: np.ndarray | None = None

    @property
    def multi_label(self) -> bool:
        return self.given.ndim == 2

    def label_quality(self, probs: np.ndarray | None = None) -> np.ndarray:
        """Self-confidence of the given labels under ``probs`` (the pool's own quality when None and known)."""
        if probs is None and self.quality is not None:
            return self.quality
        p = self.probs if probs is None else probs
        if self.multi_label:
            return np.where(self.given == 1, p, 1 - p).min(axis=1)
        return p[np.arange(len(p)), self.given]


@dataclass(frozen=True)
class Pick:
    """One clip to review (its row) and why it was picked, in words the review page shows."""

    index: int
    reason: str


Reviewed = Mapping[int, Any]
Strategy = Callable[[Pool, Reviewed, int, int], list[Pick]]


def embed(X: np.ndarray, dims: int = EMBED_DIMS, seed: int = 0) -> np.ndarray:
    """The standardised features' first ``dims`` principal components (float32): the space ``diverse`` covers."""
    z = StandardScaler().fit_transform(np.nan_to_num(np.asarray(X, dtype=np.float64)))
    keep = min(dims, *z.shape)
    return PCA(n_components=keep, random_state=seed).fit_transform(z).astype(np.float32)


def _open(pool: Pool, reviewed: Reviewed) -> np.ndarray:
    mask = np.ones(len(pool.probs), dtype=bool)
    mask[list(reviewed)] = False
    return mask


def suspect(pool: Pool, reviewed: Reviewed, n: int, seed: int = 0) -> list[Pick]:
    """Lowest label quality first; flagged clips before the rest when the pool has flags (the audit's order)."""
    quality = pool.label_quality()
    flagged = pool.flagged if pool.flagged is not None else np.zeros(len(quality), dtype=bool)
    order = [i for i in np.lexsort((quality, ~flagged)) if i not in reviewed][:n]
    return [Pick(int(i), f"lowest label quality {quality[i]:.2f}" + (", flagged" if flagged[i] else ""))
            for i in order]


def margins(probs: np.ndarray, multi_label: bool) -> np.ndarray:
    """How decided the model is: top-two margin (single-label), twice the distance to 0.5 of the closest class."""
    if multi_label:
        return (2 * np.abs(probs - 0.5)).min(axis=1)
    top = np.sort(probs, axis=1)
    return top[:, -1] - top[:, -2]


def uncertain(pool: Pool, reviewed: Reviewed, n: int, seed: int = 0) -> list[Pick]:
    """Smallest margin first: the clips the out-of-fold model can least decide between two classes."""
    margin = margins(pool.probs, pool.multi_label)
    order = [i for i in np.argsort(margin, kind="stable") if i not in reviewed][:n]
    return [Pick(int(i), f"margin {margin[i]:.2f}") for i in order]


def k_centre(embedding: np.ndarray, seen: np.ndarray, candidates: np.ndarray, n: int) -> list[tuple[int, float]]:
    """Greedy k-centre: ``n`` of ``candidates``, each the farthest from every ``seen`` row and earlier pick
    (the one nearest the centroid first when nothing is seen; its distance is then NaN)."""
    picks: list[tuple[int, float]] = []
    cand = np.asarray(candidates)
    if seen.size and cand.size:  # chunked by scikit-learn: 20,000 clips against hundreds reviewed stay a few MB
        # at a time; no candidate left (every clip reviewed): nothing to measure, and scikit-learn refuses no rows
        dist = pairwise_distances_argmin_min(embedding[cand], embedding[seen])[1].astype(np.float64)
    else:
        dist = np.full(len(cand), np.inf)
    while len(picks) < min(n, len(cand)):
        if np.isinf(dist).all():
            j = int(np.argmin(np.linalg.norm(embedding[cand] - embedding.mean(axis=0), axis=1)))
            picks.append((int(cand[j]), float("nan")))
        else:
            j = int(np.argmax(dist))
            picks.append((int(cand[j]), float(dist[j])))
        dist = np.minimum(dist, np.linalg.norm(embedding[cand] - embedding[cand[j]], axis=1))
        dist[j] = -np.inf
    return picks


def _far(index: int, distance: float, extra: str = "") -> Pick:
    where = "nearest the centre of the collection" if np.isnan(distance) else \
        f"farthest from reviewed clips ({distance:.2f})"
    return Pick(index, where + extra)


def diverse(pool: Pool, reviewed: Reviewed, n: int, seed: int = 0) -> list[Pick]:
    """Greedy k-centre over the embedding: coverage of the collection, whatever the model thinks."""
    open_ = _open(pool, reviewed)
    seen = np.flatnonzero(~open_)
    return [_far(i, d) for i, d in k_centre(pool.embedding, seen, np.flatnonzero(open_), n)]


def settled(pool: Pool, reviewed: Reviewed) -> tuple[np.ndarray, np.ndarray]:
    """(labels: the given ones with every settled verdict's label in place, usable: rows a model may learn from)."""
    labels = pool.given.copy()
    usable = np.ones(len(labels), dtype=bool)
    for i, label in reviewed.items():
        if label is None:
            usable[i] = False
        else:
            labels[i] = label
    return labels, usable


def refit(pool: Pool, reviewed: Reviewed, seed: int = 0) -> np.ndarray:
    """Out-of-fold probabilities of a logistic regression on the embedding, fitted to the verdict-corrected labels.

    Out of fold, so that a clip's own (perhaps wrong) label does not vouch for itself. Rows without a settled
    label (reviewed, so out of the queue anyway) keep the pool's probabilities, and so does every row when the
    settled labels hold a single class or value (nothing to fit).
    """
    labels, usable = settled(pool, reviewed)
    X, y = pool.embedding[usable], labels[usable]
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    out = pool.probs.copy()
    if pool.multi_label:
        if not ((0 < y.sum(axis=0)) & (y.sum(axis=0) < len(y))).all():
            return out
        folds = KFold(min(REFIT_FOLDS, len(y)), shuffle=True, random_state=seed)
        out[usable] = cross_val_predict(OneVsRestClassifier(model), X, y, cv=folds, method="predict_proba")
        return out
    counts = np.bincount(y, minlength=pool.probs.shape[1])
    present = np.flatnonzero(counts)
    if len(present) < 2 or counts[present].min() < 2:
        return out
    folds = StratifiedKFold(int(min(REFIT_FOLDS, counts[present].min())), shuffle=True, random_state=seed)
    rows = np.flatnonzero(usable)
    out[rows] = 0.0  # a class no settled clip carries gets probability 0
    out[np.ix_(rows, present)] = cross_val_predict(model, X, y, cv=folds, method="predict_proba")
    return out


def mixed(pool: Pool, reviewed: Reviewed, n: int, seed: int = 0) -> list[Pick]:
    """Diverse among the most suspect at a cold start; after verdicts, lowest label quality under the audit's
    probabilities averaged with a model refitted on the verdict-corrected labels (:func:`refit`)."""
    open_ = _open(pool, reviewed)
    if not any(label is not None for label in reviewed.values()):
        quality = pool.label_quality()
        cold = [i for i in np.argsort(quality, kind="stable") if open_[i]][:COLD_POOL * n]
        return [_far(i, d, f", label quality {quality[i]:.2f}")
                for i, d in k_centre(pool.embedding, np.flatnonzero(~open_), np.asarray(cold, dtype=int), n)]
    blended = (pool.probs + refit(pool, reviewed, seed)) / 2
    quality = pool.label_quality(blended)
    order = [i for i in np.argsort(quality, kind="stable") if open_[i]][:n]
    verdicts = sum(label is not None for label in reviewed.values())
    return [Pick(int(i), f"label quality {quality[i]:.2f} after a refit on {verdicts} verdicts") for i in order]


def random(pool: Pool, reviewed: Reviewed, n: int, seed: int = 0) -> list[Pick]:
    """Uniform order (seeded by ``seed`` and how many clips are reviewed, so each batch draws afresh)."""
    order = np.random.default_rng([seed, len(reviewed)]).permutation(np.flatnonzero(_open(pool, reviewed)))[:n]
    return [Pick(int(i), "random order") for i in order]


STRATEGIES: dict[str, Strategy] = {"suspect": suspect, "uncertain": uncertain, "diverse": diverse,
                                   "mixed": mixed, "random": random}
#: The orders whose next picks depend on the verdicts (not only on which clips are reviewed): the review page
#: asks for a fresh batch after each batch of verdicts only for these.
ADAPTIVE = frozenset({"diverse", "mixed"})


def next_batch(strategy: str, pool: Pool, reviewed: Reviewed | None = None, n: int = 10,
               seed: int = 0) -> list[Pick]:
    """The next ``n`` clips (fewer when fewer are left unreviewed) by ``strategy``, most useful first."""
    if strategy not in STRATEGIES:
        raise ValueError(f"review_order: must be one of {sorted(STRATEGIES)}, got {strategy!r}")
    return STRATEGIES[strategy](pool, reviewed or {}, n, seed)
