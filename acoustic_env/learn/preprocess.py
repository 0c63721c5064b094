"""Fitting the per-group preprocessing on the training split (scikit-learn).

Each group is standardised first (the indices mix decibels, ratios and counts;
without it the PCA would only see the loudest units), then projected on its
leading principal components (a count, or the fewest that reach a variance
fraction), then scaled. Only training rows are used, so nothing of the
validation or test clips leaks into the model through the preprocessing.

The preprocessing is the first step of every vector model (``Preprocessing``, the way scikit-learn's
``Pipeline`` puts a ``ColumnTransformer`` before an estimator): wherever a model is fitted (an inner split of a
search, an outer fold, the saved model), its per-group PCA is fitted on those rows too. Fitted once on an outer
fold's rows and then scored on inner folds of them, the whitened projections of the fitted rows satisfy
ZᵀZ = n·I: with as many components as rows, every fitted row is as far from every other and the held-out inner
rows lose their class structure (a BirdNET set scored 0.41 ROC AUC inside, 0.96 outside). Fits are cached by the
rows' content (``fit``), so the many models of one search share each split's PCA.

When the raw vectors do not fit in memory, the same three steps are fitted
while streaming the table (``StandardScaler.partial_fit`` then
``IncrementalPCA.partial_fit``), and only the projections are kept.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Callable, Iterator, Sequence

import numpy as np
from sklearn.decomposition import PCA, IncrementalPCA
from sklearn.preprocessing import StandardScaler

from acoustic_env.learn.transform import GroupTransform
from acoustic_env.table import FeatureSet, GroupInfo

Stream = Callable[[], Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]]
#: A component whose spread on the training rows is below this share of the leading one's is rounding: the rows
#: span fewer directions than the components asked (a column that copies or doubles another). Dividing by it
#: would blow the rounding up into inputs of millions, so it is left unscaled: an input of about 0.
NO_SPREAD = 1e-4


#: The rule for how many components the rows can carry: at most one per ``ROWS_PER_COMPONENT`` rows the PCA is fitted
#: on (and no more than the group's columns). Whitened, every component weighs as much as the leading one, so the
#: trailing components of a PCA fitted on few rows are noise the model is handed at full scale
#: (benchmarks/RESULTS.md, "Leak-free inner folds"). The default: where the rule cuts a group's target, train searches
#: it among ``RULES`` on inner folds (``learn.feature_sets.choose_sets``).
ROWS_PER_COMPONENT = 4
#: The count rules searched where they cut a target (``Preprocessing.rules``): every component the rows carry (one per
#: row, less one), and the default. Pinned, the first gave logistic regression 0.954 out-of-fold ROC AUC on the forest
#: recordings against 0.933; on the demo the default did as well or better (benchmarks/RESULTS.md).
RULES = (1, ROWS_PER_COMPONENT)


def component_cap(n_train: int, dim: int, rows_per_component: int | None = None) -> int:
    """The most components a group of ``dim`` columns keeps when its PCA is fitted on ``n_train`` rows, at one per
    ``rows_per_component`` rows (None: ``ROWS_PER_COMPONENT``)."""
    return int(max(1, min(dim, (n_train - 1) // (rows_per_component or ROWS_PER_COMPONENT))))


def component_rule() -> str:
    """The count rule in words, for the report and the run record."""
    return (f"each group keeps its --pca target, at most one component per R rows its PCA is fitted on (less one) "
            f"and no more than its columns; R is {ROWS_PER_COMPONENT}, or where that cuts a target, chosen among "
            f"{', '.join(map(str, RULES))} on the inner folds with the feature sets")


def n_components_for(target: float, n_train: int, dim: int, rows_per_component: int | None = None) -> int | float:
    """A count is capped by what the rows can carry (``component_cap``); a fraction is passed through (``fit_group``
    caps the count it reaches)."""
    if isinstance(target, float) and target < 1:
        return target
    return int(max(1, min(int(target), component_cap(n_train, dim, rows_per_component))))


def _finish(group: str, scaler: StandardScaler, components: np.ndarray, ratio: np.ndarray,
            projected_train: np.ndarray) -> GroupTransform:
    scale = projected_train.std(axis=0)
    return GroupTransform(group=group, in_mean=scaler.mean_.astype(np.float32),
                          in_scale=scaler.scale_.astype(np.float32), components=components.astype(np.float32),
                          out_mean=projected_train.mean(axis=0).astype(np.float32),
                          out_scale=np.where(scale > NO_SPREAD * scale.max(), scale, 1.0).astype(np.float32),
                          explained_variance_ratio=ratio.astype(np.float32))


def fit_group(x_train: np.ndarray, target: float, group: str, seed: int = 0,
              rows_per_component: int | None = None) -> GroupTransform:
    """Standardise → PCA → scale, fitted in memory on the training rows of one group (at most one component per
    ``rows_per_component`` rows; None: ``ROWS_PER_COMPONENT``)."""
    scaler = StandardScaler().fit(x_train)
    z = scaler.transform(x_train)
    pca = PCA(n_components=n_components_for(target, len(z), z.shape[1], rows_per_component),
              random_state=seed).fit(z)
    k = min(len(pca.components_), component_cap(len(z), z.shape[1], rows_per_component))  # a fraction's, capped too
    components = pca.components_[:k]
    return _finish(group, scaler, components, pca.explained_variance_ratio_[:k], z @ components.T)


def fit_streaming(stream: Stream, groups: Sequence[GroupInfo], targets: dict[str, float], is_train: np.ndarray,
                  n_rows: int) -> tuple[list[GroupTransform], dict[str, np.ndarray]]:
    """Fit every group over three passes of ``stream``; return the transforms and the projections of all rows.

    ``is_train[pos]`` marks the training rows. Every value must be finite
    (``acoustic_env.table.read_features`` leaves broken rows out).
    """
    n_train = int(is_train.sum())
    scalers = {g.name: StandardScaler() for g in groups}
    for pos, mats in stream():
        for g in groups:
            x = mats[g.name][is_train[pos]]
            if len(x):
                scalers[g.name].partial_fit(x)
    wanted = {g.name: n_components_for(targets[g.name], n_train, g.dim) for g in groups}
    # A variance target needs the spectrum first: fit as many components as a batch allows, then cut.
    fit_k = {g.name: (k if isinstance(k, int) else min(g.dim, n_train - 1, 512)) for g, k in
             zip(groups, wanted.values())}
    ipcas = {name: IncrementalPCA(n_components=k) for name, k in fit_k.items()}
    buffers: dict[str, list[np.ndarray]] = {g.name: [] for g in groups}
    for pos, mats in stream():
        for g in groups:
            x = mats[g.name][is_train[pos]]
            if len(x):  # a batch of scored rows only: nothing to add (the scaler refuses no rows)
                buffers[g.name].append(scalers[g.name].transform(x))
            if sum(len(b) for b in buffers[g.name]) >= max(4 * fit_k[g.name], 2048):
                ipcas[g.name].partial_fit(np.vstack(buffers[g.name]))
                buffers[g.name] = []
    components: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for g in groups:
        rest = np.vstack(buffers[g.name]) if buffers[g.name] else np.empty((0, g.dim))
        if len(rest) >= fit_k[g.name]:  # a smaller remainder cannot update the fit; it is negligible
            ipcas[g.name].partial_fit(rest)
        ipca = ipcas[g.name]
        ratio = ipca.explained_variance_ratio_
        k = wanted[g.name]
        if isinstance(k, float):  # the fewest that reach the fraction, within what the rows carry
            k = int(min(len(ratio), np.searchsorted(np.cumsum(ratio), k) + 1, component_cap(n_train, g.dim)))
        components[g.name] = (ipca.components_[:k], ratio[:k])
    projected = {g.name: np.empty((n_rows, len(components[g.name][1])), dtype=np.float32) for g in groups}
    for pos, mats in stream():
        for g in groups:
            projected[g.name][pos] = scalers[g.name].transform(mats[g.name]) @ components[g.name][0].T
    transforms = []
    for g in groups:
        comp, ratio = components[g.name]
        t = _finish(g.name, scalers[g.name], comp, ratio, projected[g.name][is_train])
        projected[g.name] = ((projected[g.name] - t.out_mean) / t.out_scale).astype(np.float32)
        transforms.append(t)
    return transforms, projected


@dataclass(frozen=True)
class Slot:
    """One feature group's place in a model's raw input matrix (columns ``start:stop``) and its PCA target."""

    group: str
    start: int
    stop: int
    target: float


#: Fitted groups kept for reuse (``Preprocessing.fit``): a search fits its split's PCA once for every setting and
#: every feature set that holds the group. A BirdNET group's entry is at most 0.5 MB.
CACHE_SIZE = 256
_CACHE: OrderedDict[tuple, GroupTransform] = OrderedDict()


@dataclass(frozen=True)
class Preprocessing:
    """The first step of a vector model: per-group standardise → PCA → scale of the raw input matrix's columns.

    A model built with it (``learn.zoo.make_estimator(preprocessing=...)``) takes every group's raw columns side by
    side (``raw``), fits this on exactly the rows it is fitted on and reads the projections, so a search, a feature
    set's choice and a probability map scored on inner folds score each held-out row through a PCA fitted without it.
    """

    slots: tuple[Slot, ...]
    seed: int = 0
    #: at most one component per this many rows of a fit (None: ``ROWS_PER_COMPONENT``)
    rows_per_component: int | None = None

    @classmethod
    def of(cls, features: FeatureSet, targets: dict[str, float], seed: int = 0) -> Preprocessing:
        """The preprocessing of ``features``' groups (in their order) with each group's target by name."""
        slots, start = [], 0
        for g in features.feature_groups:
            slots.append(Slot(g.name, start, start + g.dim, targets[g.name]))
            start += g.dim
        return cls(tuple(slots), seed)

    @property
    def groups(self) -> tuple[str, ...]:
        return tuple(s.group for s in self.slots)

    def only(self, groups: Sequence[str]) -> Preprocessing:
        """The same preprocessing of ``groups`` alone (a feature set), reading the same raw matrix."""
        unknown = sorted(set(groups) - set(self.groups))
        if unknown:
            raise ValueError(f"no preprocessing for group(s) {', '.join(unknown)} (has: {', '.join(self.groups)})")
        return replace(self, slots=tuple(s for s in self.slots if s.group in set(groups)))

    def with_rule(self, rows_per_component: int) -> Preprocessing:
        """The same preprocessing keeping at most one component per ``rows_per_component`` rows of a fit."""
        return replace(self, rows_per_component=rows_per_component)

    @property
    def rule(self) -> int:
        """The rows per component this preprocessing keeps."""
        return self.rows_per_component or ROWS_PER_COMPONENT

    def rules(self, n_rows: int) -> tuple[int, ...]:
        """The count rules worth trying for fits on ``n_rows`` rows: this one first, then each of ``RULES`` that
        keeps other counts (a fraction counts as cut wherever a rule caps below the group's columns). Where no rule
        cuts any target, this one alone: the search is skipped where it cannot matter (large tables)."""
        def counts(rule: int) -> tuple[int, ...]:
            return tuple(component_cap(n_rows, s.stop - s.start, rule) if isinstance(s.target, float) and
                         s.target < 1 else n_components_for(s.target, n_rows, s.stop - s.start, rule)
                         for s in self.slots)
        out: dict[tuple[int, ...], int] = {counts(self.rule): self.rule}
        for rule in RULES:
            out.setdefault(counts(rule), rule)
        return tuple(out.values())

    def fit(self, raw: np.ndarray) -> tuple[GroupTransform, ...]:
        """Each group fitted on the rows of ``raw`` (``fit_group``), reused when the same rows were fitted before."""
        raw = np.ascontiguousarray(raw)
        digest = hashlib.blake2b(raw.view(np.uint8).reshape(-1), digest_size=16).digest()
        out = []
        for s in self.slots:
            key = (digest, raw.shape, s.start, s.stop, s.target, self.seed, s.group, self.rule)
            if key in _CACHE:
                _CACHE.move_to_end(key)
            else:
                _CACHE[key] = fit_group(raw[:, s.start:s.stop], s.target, s.group, self.seed, self.rule)
                while len(_CACHE) > CACHE_SIZE:
                    _CACHE.popitem(last=False)
            out.append(_CACHE[key])
        return tuple(out)

    def transform(self, transforms: Sequence[GroupTransform], raw: np.ndarray) -> np.ndarray:
        """The model inputs of ``raw``'s rows: each group's projections side by side, in the slots' order."""
        return np.hstack([t.transform(raw[:, s.start:s.stop]) for s, t in zip(self.slots, transforms)]
                         ).astype(np.float32)


def raw_matrix(features: FeatureSet) -> np.ndarray:
    """Every group's raw columns side by side, in the groups' order: what ``Preprocessing.of(features)`` reads."""
    return np.hstack([features.X[g.name] for g in features.feature_groups]).astype(np.float32)
