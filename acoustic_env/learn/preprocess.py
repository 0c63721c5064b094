"""Fitting the per-group preprocessing on the training split (scikit-learn).

Each group is standardised first (the indices mix decibels, ratios and counts;
without it the PCA would only see the loudest units), then projected on its
leading principal components (a count, or the fewest that reach a variance
fraction), then scaled. Only training rows are used, so nothing of the
validation or test clips leaks into the model through the preprocessing.

When the raw vectors do not fit in memory, the same three steps are fitted
while streaming the table (``StandardScaler.partial_fit`` then
``IncrementalPCA.partial_fit``), and only the projections are kept.
"""

from __future__ import annotations

from typing import Callable, Iterator, Sequence

import numpy as np
from sklearn.decomposition import PCA, IncrementalPCA
from sklearn.preprocessing import StandardScaler

from acoustic_env.learn.transform import GroupTransform
from acoustic_env.table import GroupInfo

Stream = Callable[[], Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]]
#: A component whose spread on the training rows is below this share of the leading one's is rounding: the rows
#: span fewer directions than the components asked (a column that copies or doubles another). Dividing by it
#: would blow the rounding up into inputs of millions, so it is left unscaled: an input of about 0.
NO_SPREAD = 1e-4


def n_components_for(target: float, n_train: int, dim: int) -> int | float:
    """A count is capped by what the data can support; a fraction is passed through."""
    if isinstance(target, float) and target < 1:
        return target
    return int(max(1, min(int(target), dim, n_train - 1)))


def _finish(group: str, scaler: StandardScaler, components: np.ndarray, ratio: np.ndarray,
            projected_train: np.ndarray) -> GroupTransform:
    scale = projected_train.std(axis=0)
    return GroupTransform(group=group, in_mean=scaler.mean_.astype(np.float32),
                          in_scale=scaler.scale_.astype(np.float32), components=components.astype(np.float32),
                          out_mean=projected_train.mean(axis=0).astype(np.float32),
                          out_scale=np.where(scale > NO_SPREAD * scale.max(), scale, 1.0).astype(np.float32),
                          explained_variance_ratio=ratio.astype(np.float32))


def fit_group(x_train: np.ndarray, target: float, group: str, seed: int = 0) -> GroupTransform:
    """Standardise → PCA → scale, fitted in memory on the training rows of one group."""
    scaler = StandardScaler().fit(x_train)
    z = scaler.transform(x_train)
    pca = PCA(n_components=n_components_for(target, len(z), z.shape[1]), random_state=seed).fit(z)
    return _finish(group, scaler, pca.components_, pca.explained_variance_ratio_, z @ pca.components_.T)


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
        if isinstance(k, float):
            k = int(min(len(ratio), np.searchsorted(np.cumsum(ratio), k) + 1))
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
