"""Synthetic feature tables with class structure, for the audit tests (no test functions here).

The audit's "done when" numbers need data whose true classes a model can learn
and whose labels were flipped by a known amount. Extracting hundreds of real
clips is too slow for a test, so this builds a feature table in the extract
job's schema from a generative model shaped like the demo soundscapes: each
clip mixes two or three *sources* of its true class (each source a fixed
direction in feature space, with a random gain), plus clip-level noise. Then a
known share of the labels is flipped to another class.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

URBAN, NATURAL = "/t/dd00128", "/t/dd00129"
WIDTHS = {"indices_raw": 60, "mps_raw": 96, "panns_scores": 8}


def _vectors(matrix: np.ndarray) -> pa.Array:
    width = matrix.shape[1]
    return pa.FixedSizeListArray.from_arrays(pa.array(matrix.astype(np.float32).ravel()), width)


def make_table(path: Path, n: int, class_mids: list[list[str]], flip: float, seed: int = 0,
               multi_label: bool = False, groups: int | None = None, noise: float = 1.0,
               uris: list[str] | None = None) -> dict:
    """Write ``path`` (one Parquet file) and return the truth: true/given targets and flipped clip ids.

    Single-label: each clip has one true class; ``flip`` of the clips get another class's MIDs.
    Multi-label: each class is present with probability 0.4; ``flip`` of the clips get one
    class membership toggled. ``groups``: that many groups, clips of a group share their true class.
    """
    rng = np.random.default_rng(seed)
    K = len(class_mids)
    d = sum(w for k, w in WIDTHS.items() if not k.endswith("_scores"))
    sources = rng.standard_normal((K, 4, d)) * 0.35
    group_of = rng.integers(0, groups, n) if groups else None
    if multi_label:
        true = (rng.random((n, K)) < 0.4).astype(int)
    else:
        base = rng.integers(0, K, groups) if groups else None
        true = base[group_of] if groups else rng.integers(0, K, n)
    X = rng.standard_normal((n, d)) * noise
    for i in range(n):
        present = np.flatnonzero(true[i]) if multi_label else [true[i]]
        for c in present:
            for s in rng.choice(4, size=rng.integers(2, 4), replace=False):
                X[i] += sources[c, s] * rng.lognormal(0.0, 0.3)
    given = true.copy()
    flipped = rng.choice(n, size=int(round(flip * n)), replace=False)
    for i in flipped:
        if multi_label:
            given[i, rng.integers(K)] ^= 1
        else:
            given[i] = (true[i] + rng.integers(1, K)) % K
    labels = [[m for c in (np.flatnonzero(g) if multi_label else [g]) for m in class_mids[c]] + ["/m/other"]
              for g in given]
    ids = [f"clip{i:04d}" for i in range(n)]
    cols = {
        "clip_id": pa.array(ids),
        "uri": pa.array(uris if uris is not None else [f"/nonexistent/{c}.wav" for c in ids]),
        "start_s": pa.array([0.0] * n), "end_s": pa.array([2.0] * n),
        "labels": pa.array(labels, pa.list_(pa.string())),
        "group": pa.array([f"g{g}" for g in group_of] if groups else [None] * n, pa.string()),
        "duration_s": pa.array([2.0] * n),
    }
    offset = 0
    for name, width in WIDTHS.items():
        if name.endswith("_scores"):
            cols[name] = _vectors(rng.random((n, width)))
        else:
            cols[name] = _vectors(X[:, offset:offset + width])
            offset += width
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(cols), path)
    return {"ids": ids, "true": true, "given": given, "flipped": {ids[i] for i in flipped},
            "groups": [f"g{g}" for g in group_of] if groups else None}
