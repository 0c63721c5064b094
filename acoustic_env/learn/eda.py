"""Exploratory analysis of the features a model was trained on: the tables behind the report's EDA section.

Users of acoustic indices want to see which indices separate their classes
before they trust a network, so the training report shows, per feature group:

- **differences**: every value of the group tested between the clips of a class
  and the others (Welch's t, which does not assume equal variances: the indices
  are in mixed units and the classes differ in spread), with Hedges' g as the
  effect size (Cohen's d corrected for small samples: "how many pooled standard
  deviations apart", comparable across groups, unlike p) and p-values corrected
  by Benjamini-Hochberg within each group and comparison (hundreds of values are
  tested at once; uncorrected, a few would look significant by chance alone);
- **correlations** (Spearman: the indices are skewed, rank correlation is not
  led by a few loud clips) among the named indices of a narrow group, ordered by
  hierarchical clustering so that redundant indices sit together;
- **a 2-D map** (t-SNE) of the clips in the model's own input space (the fitted
  per-group standardise → PCA → scale), to be coloured by class.

Beside them, the figures of the study this project reproduces, drawn its way:

- **one ranking** (``ranking``): every named value of every group (the indices and
  spectral statistics of each signal) in one list per comparison, by |Welch's t|, the
  top ``TOP_RANKING``, with q corrected over the whole list as well as within its group
  (the study ranked all signals and index families together, not group by group);
- **the MPS's t-values** (``mps_t``): each modulation cell's t as a grid over the MPS
  column's own axes (spectral × temporal modulation, from the table metadata), per
  signal and comparison;
- **a map per embedder** (``embedder_maps``): t-SNE of each embedding column alone
  (standardised; a seeded sample of at most ``MAX_EMBEDDER_MAP_POINTS`` clips), where
  the model input's map mixes every group.

Comparisons are one-vs-rest per class (multi-class and multi-label tasks); a
binary task has one, first class against second. Everything is numpy/scipy/
scikit-learn on in-memory rows and returns plain JSON-able data, deterministic
for a seed. Degenerate inputs (non-finite values, constant columns, a class with
fewer than two clips, too few clips for a map) give a note, never an exception.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from scipy import stats
from scipy.cluster.hierarchy import leaves_list, linkage
from scipy.spatial.distance import squareform
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from threadpoolctl import threadpool_limits

from acoustic_env.learn.transform import GroupTransform, transform_all
from acoustic_env.table import FeatureSet, GroupInfo

#: Rows the statistics use at most (a random sample beyond: the tests and correlations are settled long before).
MAX_ROWS = 20_000
#: Clips the t-SNE map shows at most: Barnes-Hut t-SNE is O(n log n) but still ~10 s per 2,000 clips on one core.
MAX_MAP_POINTS = 2_000
#: Fewer clips than this make no map worth drawing (t-SNE needs perplexity < n).
MIN_MAP_POINTS = 5
#: The map's input is reduced to this many principal components first (the usual t-SNE practice: denoises, speeds up).
MAP_PCA = 50
#: A correlation heatmap is drawn for a group of named values no wider than this (wider: unreadable labels).
MAX_HEATMAP = 64
#: Most correlated pairs listed per group.
TOP_PAIRS = 10
#: Values in the study's one ranking across groups (per comparison).
TOP_RANKING = 20
#: Clips per embedder map at most (a seeded sample beyond): one t-SNE per embedding column must stay a few seconds.
MAX_EMBEDDER_MAP_POINTS = 300


def comparisons(kind: str, class_names: list[str], y: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """(label, mask of the clips in the class) per one-vs-rest comparison; a binary task has one."""
    if kind == "multi_label":
        return [(f"{c} vs not {c}", np.asarray(y)[:, j] == 1) for j, c in enumerate(class_names)]
    y = np.asarray(y)
    if len(class_names) == 2:
        return [(f"{class_names[0]} vs {class_names[1]}", y == 0)]
    return [(f"{c} vs rest", y == j) for j, c in enumerate(class_names)]


def hedges_g(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hedges' g per column: (mean a − mean b) / pooled SD, times the small-sample correction J."""
    na, nb = len(a), len(b)
    pooled = np.sqrt(((na - 1) * a.var(axis=0, ddof=1) + (nb - 1) * b.var(axis=0, ddof=1)) / (na + nb - 2))
    correction = 1 - 3 / (4 * (na + nb) - 9)
    return (a.mean(axis=0) - b.mean(axis=0)) / pooled * correction


def differences(x: np.ndarray, names: list[str], inside: np.ndarray) -> dict[str, Any]:
    """Every column of ``x`` tested between the ``inside`` rows and the others, sorted by |g|, largest first.

    Rows with a non-finite value and columns constant within both sides are left
    out (a t statistic is undefined there) and named in the result.
    """
    x = np.asarray(x, dtype=np.float64)
    finite = np.isfinite(x).all(axis=1)
    a, b = x[finite & inside], x[finite & ~inside]
    out: dict[str, Any] = {"n_values": len(names), "n_in": len(a), "n_out": len(b),
                           "non_finite_rows": int((~finite).sum()), "constant": [], "rows": []}
    if len(a) < 2 or len(b) < 2:
        out["skipped"] = f"{min(len(a), len(b))} clip(s) on one side: a t-test needs at least 2 on each"
        return out
    spread = (a.var(axis=0, ddof=1) + b.var(axis=0, ddof=1)) > 0
    out["constant"] = [n for n, s in zip(names, spread) if not s]
    if not spread.any():
        out["skipped"] = "every value is constant within both sides"
        return out
    a, b = a[:, spread], b[:, spread]
    with warnings.catch_warnings():
        # a column constant on one side only (a feature silent at night) is a valid Welch test: scipy warns of
        # precision loss for near-identical values, which a variance of 0 cannot suffer; train printed it to users
        warnings.filterwarnings("ignore", "Precision loss occurred", RuntimeWarning)
        t, p = stats.ttest_ind(a, b, equal_var=False, axis=0)
    q = stats.false_discovery_control(p, method="bh")
    g = hedges_g(a, b)
    kept = [n for n, s in zip(names, spread) if s]
    order = np.lexsort((q, -np.abs(g)))  # largest effect first; equal effects: the better-supported first
    out["rows"] = [{"name": kept[i], "mean_in": float(a[:, i].mean()), "mean_out": float(b[:, i].mean()),
                    "t": float(t[i]), "p": float(p[i]), "q": float(q[i]), "g": float(g[i])} for i in order]
    return out


def spearman(x: np.ndarray) -> np.ndarray:
    """Spearman's rho between the columns of ``x``: Pearson's r of the ranks (ties averaged), always a matrix."""
    ranks = stats.rankdata(np.asarray(x, dtype=np.float64), axis=0)
    return np.atleast_2d(np.corrcoef(ranks, rowvar=False))


def correlations(x: np.ndarray, names: list[str]) -> dict[str, Any]:
    """Spearman matrix of the non-constant columns, their clustered order and the most correlated pairs."""
    x = np.asarray(x, dtype=np.float64)
    finite = np.isfinite(x).all(axis=1)
    x = x[finite]
    varies = x.std(axis=0) > 0 if len(x) else np.zeros(len(names), dtype=bool)
    kept = [n for n, v in zip(names, varies) if v]
    out: dict[str, Any] = {"method": "spearman", "n": len(x), "non_finite_rows": int((~finite).sum()),
                           "constant": [n for n, v in zip(names, varies) if not v], "names": kept}
    if len(kept) < 2 or len(x) < 3:
        out["skipped"] = f"{len(kept)} non-constant value(s) over {len(x)} clips: nothing to correlate"
        return out
    rho = spearman(x[:, varies])
    distance = np.clip(1 - np.abs(rho), 0, None)
    np.fill_diagonal(distance, 0)
    order = leaves_list(linkage(squareform(distance, checks=False), method="average"))
    i, j = np.triu_indices(len(kept), k=1)
    top = np.lexsort((j, i, -np.abs(rho[i, j])))[:TOP_PAIRS]
    out.update(matrix=rho.round(6).tolist(), order=order.tolist(),
               top_pairs=[{"a": kept[i[k]], "b": kept[j[k]], "rho": float(rho[i[k], j[k]])} for k in top])
    return out


def embed_2d(inputs: np.ndarray, seed: int) -> dict[str, Any]:
    """t-SNE of the rows of ``inputs`` (already standardised), with the perplexity it used; or why not."""
    n = len(inputs)
    if n < MIN_MAP_POINTS:
        return {"skipped": f"{n} clips: a map needs at least {MIN_MAP_POINTS}"}
    x = np.asarray(inputs, dtype=np.float64)
    reduced = x.shape[1] > MAP_PCA
    perplexity = float(min(30.0, max(2.0, (n - 1) / 3)))  # sklearn's default 30, lowered for small n
    # One thread: the same map to the bit on every machine, and no collapse on a busy one (the Barnes-Hut
    # gradient's OpenMP threads spin-wait: 200 clips took 42 s instead of 0.7 s on a shared 2-core machine).
    with threadpool_limits(limits=1):
        if reduced:
            x = PCA(n_components=min(MAP_PCA, n), random_state=seed).fit_transform(x)
        init = "pca" if x.shape[1] >= 2 else "random"  # a PCA start needs two input dimensions
        xy = TSNE(n_components=2, perplexity=perplexity, init=init, learning_rate="auto",
                  random_state=seed).fit_transform(x)
    return {"method": "t-SNE", "perplexity": perplexity, "pca": min(MAP_PCA, n) if reduced else None,
            "dims": int(inputs.shape[1]), "xy": xy.round(4).tolist()}


def ranking(diffs: dict[str, dict[str, dict[str, Any]]], groups: list[GroupInfo],
            top: int = TOP_RANKING) -> dict[str, dict[str, Any]]:
    """The study's one ranking per comparison: every named value of every group together, by |t|, the top ``top``.

    ``diffs``: ``differences`` per group and comparison. Only named groups take part (the
    indices and spectral statistics of each signal): an MPS cell has its own heatmap and an
    embedding's dimensions no meaning to rank. ``q_all`` is Benjamini-Hochberg over every
    value of the list (``q`` stays the within-group one), since one list is one family of tests.
    """
    named = [g.name for g in groups if g.names]
    out: dict[str, dict[str, Any]] = {}
    for label in next(iter(diffs.values()), {}):
        rows = [{"group": g, **r} for g in named for r in diffs[g][label]["rows"]]
        if not rows:
            out[label] = {"by": "|t|", "groups": named, "n_tested": 0, "rows": []}
            continue
        q_all = stats.false_discovery_control([r["p"] for r in rows], method="bh")
        for r, q in zip(rows, q_all):
            r["q_all"] = float(q)
        rows.sort(key=lambda r: (-abs(r["t"]), r["p"]))
        out[label] = {"by": "|t|", "groups": named, "n_tested": len(rows), "rows": rows[:top]}
    return out


def mps_t(per_comparison: dict[str, dict[str, Any]], group: GroupInfo) -> dict[str, Any]:
    """Each modulation cell's Welch t as a [wf, wt] grid per comparison (None where untested: constant, or skipped).

    The grid's layout is the MPS column's (row-major ``[wf, wt]``, its axes from the table metadata).
    """
    wf, wt = group.axes["wf_cycles_per_hz"], group.axes["wt_hz"]
    names = short_names(group)
    grids = {}
    for label, d in per_comparison.items():
        t = {r["name"]: r["t"] for r in d["rows"]}
        grids[label] = np.array([t.get(n, np.nan) for n in names], dtype=np.float64).reshape(len(wf), len(wt))
    return {"wf_cycles_per_hz": list(wf), "wt_hz": list(wt),
            "t": {label: [[None if np.isnan(v) else round(float(v), 6) for v in row] for row in grid]
                  for label, grid in grids.items()}}


def embedder_map(x: np.ndarray, seed: int) -> dict[str, Any]:
    """t-SNE of one embedding column's rows, each dimension standardised (a constant one left at 0)."""
    x = np.asarray(x, dtype=np.float64)
    sd = x.std(axis=0)
    return embed_2d((x - x.mean(axis=0)) / np.where(sd > 0, sd, 1.0), seed)


def _sample(n: int, cap: int, seed: int) -> np.ndarray:
    """All positions, or a sorted random ``cap`` of them (sorted: the rows stay in clip_id order)."""
    if n <= cap:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, cap, replace=False))


def short_names(group: GroupInfo) -> list[str]:
    """The group's value names without the group prefix (``ACI``, ``wf=0.31/kHz,wt=+4Hz``, ``dim 17``).

    The tables and plots are per group and say which, so the prefix only costs width.
    """
    if not group.names and not (group.grid and group.axes):
        return [f"dim {i}" for i in range(group.dim)]
    return [n.removeprefix(f"{group.name}:").removeprefix(group.name).strip("[]") for n in group.feature_names()]


def class_labels(kind: str, class_names: list[str], y: np.ndarray) -> list[str]:
    """Each clip's given class as text; a multi-label clip's set joined with '+', '(none)' when empty."""
    if kind == "multi_label":
        return ["+".join(c for c, v in zip(class_names, row) if v) or "(none)" for row in np.asarray(y)]
    return [class_names[int(v)] for v in np.asarray(y)]


def explore(features: FeatureSet, transforms: list[GroupTransform], kind: str, class_names: list[str],
            seed: int = 0) -> dict[str, Any]:
    """The whole EDA of a training run, as JSON-able data (``results["eda"]`` of the train job).

    ``features``: the clips and groups the model was trained on (in memory or
    streamed: at most ``MAX_ROWS`` rows are read). ``transforms``: the model's
    fitted preprocessing, which places the clips of the map in the space the
    model sees.
    """
    if features.y is None:
        raise ValueError("explore needs a FeatureSet read with a task (its y)")
    rows = _sample(len(features), MAX_ROWS, seed)
    mats = features.rows(rows)
    y = features.y[rows]
    pairs = comparisons(kind, class_names, y)
    notes = []
    if len(rows) < len(features):
        notes.append(f"Statistics on a random sample of {len(rows)} of the {len(features)} clips.")
    diffs: dict[str, dict[str, Any]] = {}
    corr: dict[str, dict[str, Any]] = {}
    for g in features.feature_groups:
        names = short_names(g)
        diffs[g.name] = {label: differences(mats[g.name], names, inside) for label, inside in pairs}
        if g.names and g.dim <= MAX_HEATMAP:
            corr[g.name] = correlations(mats[g.name], names)
        else:
            why = (f"{g.dim} values, too many for a readable heatmap (at most {MAX_HEATMAP})" if g.names else
                   f"{g.dim} unnamed values (an embedding or a modulation grid): correlations of its "
                   "dimensions say nothing about named indices")
            corr[g.name] = {"skipped": why}
    picked = _sample(len(rows), MAX_MAP_POINTS, seed)
    if len(picked) < len(rows):
        notes.append(f"The map shows a random {len(picked)} of the {len(rows)} clips (t-SNE's cost).")
    inputs = transform_all(transforms, {k: m[picked] for k, m in mats.items()})
    finite = np.isfinite(inputs).all(axis=1)
    picked, inputs = picked[finite], inputs[finite]
    embedding = embed_2d(inputs, seed)
    embedding.update(clip_id=features.ids[rows[picked]].tolist(), label=class_labels(kind, class_names, y[picked]))
    return {"n": len(rows), "of": len(features), "comparisons": [label for label, _ in pairs],
            "differences": diffs, "correlations": corr, "map": embedding, "notes": notes,
            "ranking": ranking(diffs, features.feature_groups),
            "mps_t": {g.name: mps_t(diffs[g.name], g) for g in features.feature_groups if g.grid and g.axes},
            "embedder_maps": _embedder_maps(features, mats, rows, kind, class_names, y, seed)}


def _embedder_maps(features: FeatureSet, mats: dict[str, np.ndarray], rows: np.ndarray, kind: str,
                   class_names: list[str], y: np.ndarray, seed: int) -> dict[str, dict[str, Any]]:
    """One t-SNE per embedding column (a group with neither names nor a grid), on the same seeded sample of clips."""
    picked = _sample(len(rows), MAX_EMBEDDER_MAP_POINTS, seed)
    maps = {}
    for g in features.feature_groups:
        if g.names or g.grid:
            continue
        x = mats[g.name][picked]
        finite = np.isfinite(x).all(axis=1)
        found = embedder_map(x[finite], seed)
        found.update(clip_id=features.ids[rows[picked[finite]]].tolist(),
                     label=class_labels(kind, class_names, y[picked[finite]]), of=len(rows))
        maps[g.name] = found
    return maps
