"""Near-duplicate clips by nearest neighbours, and the leakage guard that train and audit run on them.

Collections hold the same recording more than once: re-uploaded, re-encoded, cut
at another point, resampled, louder. A copy on each side of a train/test split
inflates the test score, and in the audit a copy in the training folds vouches for
its twin's label. This module finds such pairs from any vector columns and merges
their groups, so grouped splits and folds keep the copies together.

**Distance.** Each vector column is standardised over the clips (a constant
dimension is dropped), each row L2-normalised, and the columns are placed side by
side scaled by ``1/sqrt(columns)``; the squared Euclidean distance between two
clips divided by two is then the mean over the columns of their cosine distances
(0: same direction, 1: unrelated, 2: opposite). Standardising first matters:
the raw spectral statistics share a large common offset that would make every
pair of clips look alike.

**Threshold.** Two clips are near-duplicates when that distance is at most
``DEFAULT_THRESHOLD`` (0.05). Measured on the extract features of every group (indices,
spectral statistics and MPS of the raw, foreground and background signals) of
2-s synthetic scenes (``tests/test_duplicates.py``): copies written as 16-bit WAV
resampled to 44.1 kHz, or as FLAC 9 dB quieter, lie at 0.001 or less from the
original (the decoder resamples to 16 kHz and normalises the level), Vorbis at
quality 0.9 at 0.014 or less, and the closest distinct scenes at 0.13. Vorbis at
libsndfile's default quality (0.4) moved the noise-like scenes up to 0.11 away:
on these features a low-bit-rate lossy copy is not reliably found, and no single
threshold would separate it from distinct scenes of the same kind.

**Search.** scikit-learn's ``NearestNeighbors.radius_neighbors``: every pair
within the threshold, exactly. Its cost grows with the square of the clips in
high dimension, so the guard in train and audit runs on up to ``MAX_CLIPS``
clips held in memory and records why it was skipped above that; the
``acoustic-env duplicates`` command has no such limit. ``acoustic-env search``
asks the same space for the ``k`` nearest clips of one example
(:func:`nearest`, ``NearestNeighbors.kneighbors``): one pass over the clips,
so it costs what the table costs to read. The standardisation is fitted on the
table's clips (:class:`DistanceSpace`), so that an example from outside the table
lands in the same space.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
from sklearn.neighbors import NearestNeighbors

from acoustic_env.table import FeatureSet

DEFAULT_THRESHOLD = 0.05
MAX_CLIPS = 100_000
#: The audit table's column: a near-duplicate of the clip whose given label differs (null: none).
DISAGREE_COLUMN = "near_duplicate_disagrees"
PAIR_SCHEMA = pa.schema([("clip_a", pa.string()), ("clip_b", pa.string()), ("distance", pa.float32()),
                         ("group_a", pa.string()), ("group_b", pa.string())])


#: Rows standardised at a time: the float64 work of a 100,000 x 1,024 table stays a few tens of MiB.
_CHUNK = 8192


@dataclass(frozen=True)
class DistanceSpace:
    """Where the cosine distances of near-duplicates and of search by example are measured. Per column: the mean
    and standard deviation over the clips it was fitted on, and the dimensions kept (a constant dimension is
    dropped). Fitted once on a table, it places any clip, in the table or not. (Not a hyper-parameter search's
    space: that is ``candidates/space.py``.)"""

    means: tuple[np.ndarray, ...]
    stds: tuple[np.ndarray, ...]

    @classmethod
    def fit(cls, mats: Sequence[np.ndarray]) -> DistanceSpace:
        means, stds = [], []
        for m in mats:
            mean = np.asarray(m).mean(axis=0, dtype=np.float64)
            square = np.zeros_like(mean)
            for start in range(0, len(m), _CHUNK):
                d = np.asarray(m[start:start + _CHUNK], np.float64) - mean
                square += np.einsum("ij,ij->j", d, d)
            means.append(mean)
            stds.append(np.sqrt(square / max(len(m), 1)))
        return cls(tuple(means), tuple(stds))

    def transform(self, mats: Sequence[np.ndarray]) -> np.ndarray:
        """The rows of ``mats`` (one matrix per fitted column, rows alike) in the space: float32 [n, kept dims]."""
        keep = [s > 0 for s in self.stds]
        widths = [int(k.sum()) for k in keep]
        offsets = np.cumsum([0, *widths])
        n = len(mats[0]) if mats else 0
        out = np.empty((n, offsets[-1]), dtype=np.float32)
        scale = 1 / np.sqrt(len(mats))  # each column's share of the squared distance
        for start in range(0, n, _CHUNK):
            for m, mean, std, kept, at in zip(mats, self.means, self.stds, keep, offsets):
                z = np.array(m[start:start + _CHUNK], dtype=np.float64)  # a copy: changed in place below
                z = z if kept.all() else z[:, kept]
                z -= mean[kept]
                z /= std[kept]
                norm = np.sqrt(np.einsum("ij,ij->i", z, z))
                z *= np.divide(scale, norm, out=np.zeros_like(norm), where=norm > 0)[:, None]
                out[start:start + len(z), at:at + z.shape[1]] = z
        return out


def embed_for_search(mats: Sequence[np.ndarray]) -> np.ndarray:
    """The search space of the module docstring: per column standardised, L2-normalised, side by side."""
    return DistanceSpace.fit(mats).transform(mats)


def nearest(space: np.ndarray, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` rows of ``space`` nearest to each row of ``query`` (both in a :class:`DistanceSpace`), nearest
    first: (row indices, mean cosine distances), each [queries, k]. Exact (brute force): one pass over the rows."""
    nn = NearestNeighbors(n_neighbors=min(k, len(space)), algorithm="brute").fit(space)
    dist, idx = nn.kneighbors(np.atleast_2d(query), return_distance=True)
    return idx.astype(np.int64), (dist ** 2 / 2).astype(np.float32)


def find_pairs(mats: Sequence[np.ndarray], threshold: float = DEFAULT_THRESHOLD) -> tuple[np.ndarray, np.ndarray,
                                                                                             np.ndarray]:
    """Every pair (i < j) of rows within ``threshold`` (mean cosine distance over the columns): i, j, distance."""
    if not 0 <= threshold < 2:
        raise ValueError(f"threshold: must be in [0, 2), got {threshold}")
    z = embed_for_search(mats)
    if len(z) < 2:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float32)
    if not z.shape[1]:  # every dimension constant: the clips are alike in every column, each pair at distance 0
        i, j = np.triu_indices(len(z), k=1)
        return i.astype(np.int64), j.astype(np.int64), np.zeros(len(i), np.float32)
    nn = NearestNeighbors(radius=float(np.sqrt(2 * threshold))).fit(z)
    dist, idx = nn.radius_neighbors(z, return_distance=True)
    i = np.repeat(np.arange(len(z)), [len(r) for r in idx])
    j = np.concatenate(idx).astype(np.int64)
    d = (np.concatenate(dist) ** 2 / 2).astype(np.float32)
    keep = i < j
    order = np.lexsort((j[keep], i[keep]))
    return i[keep][order], j[keep][order], d[keep][order]


def pairs_table(features: FeatureSet, threshold: float = DEFAULT_THRESHOLD,
                columns: Sequence[str] | None = None) -> pa.Table:
    """The near-duplicate pairs of a FeatureSet (``PAIR_SCHEMA``), from ``columns`` (default: its feature groups)."""
    x = features.X if features.X is not None else features.rows(np.arange(len(features)))
    names = list(columns or features.columns)
    i, j, d = find_pairs([x[c] for c in names], threshold)
    ids, groups = features.ids, features.groups
    return pa.Table.from_pydict({"clip_a": ids[i].tolist(), "clip_b": ids[j].tolist(), "distance": d,
                                 "group_a": groups[i].tolist(), "group_b": groups[j].tolist()}, schema=PAIR_SCHEMA)


def _components(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """Union-find over groups: each merged group → the smallest group name of its component."""
    parent: dict[str, str] = {}

    def root(g: str) -> str:
        while parent.setdefault(g, g) != g:
            parent[g] = parent[parent[g]]
            g = parent[g]
        return g

    for a, b in pairs:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return {g: root(g) for g in parent}


@dataclass(frozen=True)
class DuplicateGuard:
    """What the leakage guard found: the merged groups, the pairs, and counts for the run record."""

    groups: np.ndarray  # object: each clip's group after merging
    has_groups: bool
    pairs: pa.Table  # PAIR_SCHEMA
    counts: dict[str, Any]

    def apply(self, features: FeatureSet) -> FeatureSet:
        """The FeatureSet with the merged groups (what splits and folds then keep together)."""
        return dataclasses.replace(features, groups=self.groups, has_groups=self.has_groups)

    def label_disagreements(self, table: pa.Table, labels_column: str = "given_labels") -> pa.Table:
        """``table`` (one row per clip) with ``DISAGREE_COLUMN``: the nearest near-duplicate whose label differs."""
        ids = table["clip_id"].to_pylist()
        given = dict(zip(ids, map(tuple, (sorted(ls or []) for ls in table[labels_column].to_pylist()))))
        found: dict[str, tuple[float, str]] = {}
        for a, b, d in zip(*(self.pairs[c].to_pylist() for c in ("clip_a", "clip_b", "distance"))):
            if a in given and b in given and given[a] != given[b]:
                for x, y in ((a, b), (b, a)):
                    if x not in found or d < found[x][0]:
                        found[x] = (d, y)
        return table.append_column(DISAGREE_COLUMN, pa.array([found.get(c, (0, None))[1] for c in ids], pa.string()))


def merge_duplicate_groups(features: FeatureSet, threshold: float = DEFAULT_THRESHOLD,
                           columns: Sequence[str] | None = None, max_clips: int = MAX_CLIPS) -> DuplicateGuard:
    """Find near-duplicates among ``features`` and merge the groups of each pair into one.

    A pair whose clips are already in one group changes nothing; a pair across two
    groups joins them (transitively), so no later split can put the copies apart.
    ``counts``: ``pairs``, ``pairs_across_groups``, ``groups_merged`` (groups absorbed
    into another), ``clips_regrouped``, or ``skipped`` with the reason.
    """
    base = {"threshold": threshold, "columns": list(columns or features.columns)}
    if features.X is None or len(features) > max_clips:
        why = "the table is streamed (over memory_gb)" if features.X is None else f"over {max_clips} clips"
        return skipped_guard(features, base, why)
    return merge_pairs(features, pairs_table(features, threshold, columns), base)


def skipped_guard(features: FeatureSet, base: dict[str, Any], why: str) -> DuplicateGuard:
    """The guard that did not search (``why``): the groups as they were, recorded with ``base``."""
    return DuplicateGuard(features.groups, features.has_groups, PAIR_SCHEMA.empty_table(),
                          {**base, "skipped": why, "pairs": 0, "groups_merged": 0})


def merge_pairs(features: FeatureSet, pairs: pa.Table, base: dict[str, Any]) -> DuplicateGuard:
    """The guard from near-duplicate ``pairs`` (``PAIR_SCHEMA`` columns, whichever way they were found): the groups
    of each pair merged, transitively; ``counts`` are ``base`` and those of :func:`merge_duplicate_groups`."""
    across = [(a, b) for a, b in zip(pairs["group_a"].to_pylist(), pairs["group_b"].to_pylist()) if a != b]
    mapping = _components(across)
    groups = np.array([mapping.get(g, g) for g in features.groups], dtype=object)
    counts = {**base, "pairs": pairs.num_rows, "pairs_across_groups": len(across),
              "groups_merged": sum(g != r for g, r in mapping.items()),
              "clips_regrouped": int((groups != features.groups).sum()),
              "groups_before": len(set(features.groups.tolist())), "groups_after": len(set(groups.tolist())),
              "merges": _merges(pairs, mapping)}
    return DuplicateGuard(groups, features.has_groups or bool(across), pairs, counts)


def _merges(pairs: pa.Table, mapping: dict[str, str], max_pairs: int = 3) -> list[dict[str, Any]]:
    """Per merged component: its groups and (up to ``max_pairs``) closest clip pairs that joined them."""
    found: dict[str, dict[str, Any]] = {}
    for a, b, d, ga, gb in zip(*(pairs[c].to_pylist() for c in PAIR_SCHEMA.names)):
        if ga != gb:
            m = found.setdefault(mapping[ga], {"groups": set(), "pairs": []})
            m["groups"].update((ga, gb))
            m["pairs"].append([a, b, round(float(d), 4)])
    return [{"groups": sorted(m["groups"]), "pairs": sorted(m["pairs"], key=lambda p: p[2])[:max_pairs],
             "pairs_total": len(m["pairs"])} for _, m in sorted(found.items())]


def merge_lines(counts: dict[str, Any], limit: int = 10) -> list[str]:
    """What the guard merged and why, one line per merged set of groups (console and report)."""
    lines = []
    for m in (counts.get("merges") or [])[:limit]:
        why = ", ".join(f"{a} ~ {b} ({d:.3f})" for a, b, d in m["pairs"])
        more = f" and {m['pairs_total'] - len(m['pairs'])} more pair(s)" if m["pairs_total"] > len(m["pairs"]) else ""
        lines.append(f"groups {' + '.join(m['groups'])} merged: near-duplicate clips {why}{more}")
    if len(counts.get("merges") or []) > limit:
        lines.append(f"... and {len(counts['merges']) - limit} more merged set(s) (run record: counts.duplicates)")
    return lines


def merge_summary(counts: dict[str, Any]) -> str:
    """``"the near-duplicate guard merged 5 groups into 4 (groups 3 + 4 ...)"`` or "" when nothing was merged."""
    if not counts.get("groups_merged"):
        return ""
    rule = counts.get("rule") or f"mean cosine distance <= {counts['threshold']:g}"  # chunk mode states its rule
    return (f"the near-duplicate guard ({rule}) merged "
            f"{counts['groups_before']} groups into {counts['groups_after']}: " + "; ".join(merge_lines(counts, 3)))
