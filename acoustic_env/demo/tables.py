"""Synthetic feature tables with the extract job's schema, for tests and benchmarks.

Same columns, types and schema metadata as ``features/`` (fixed-size float32 lists,
AudioSet MIDs in ``labels``, a ``group`` per source recording), built from a generative
model shaped like the demo soundscapes: each clip mixes two or three *sources* of each
class it belongs to (a fixed direction per source, random gain), plus clip noise and a
per-recording offset (so leaking recordings across splits would flatter a model), in
mixed units as the indices have. A known share of the given labels can be flipped, and
the truth comes back with the table, so train, audit and benchmarks can be tested and
timed without running extraction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from acoustic_env.config import FeatureParams
from acoustic_env.embedders import registry
from acoustic_env.features import feature_metadata
from acoustic_env.storage import join, write_parquet
from acoustic_env.table import encode_images, metadata_json, vector_type

URBAN, NATURAL = "/t/dd00128", "/t/dd00129"
UNRELATED = "/m/0jbk"  # a MID no task claims, as real clips carry many


@dataclass(frozen=True)
class Synthetic:
    """The table and its truth: ``true``/``given`` are class indices (single-label) or [n, K] 0/1 (multi-label)."""

    table: pa.Table
    ids: list[str]
    true: np.ndarray
    given: np.ndarray
    flipped: set[str]
    images: list[np.ndarray] | None = None  # the log-mel images before the table's 8-bit storage (``logmel_s``)


def synthetic_features(n_rows: int, class_mids: Sequence[str | Sequence[str]] = (URBAN, NATURAL), *,
                       multi_label: bool = False, seed: int = 0, rows_per_group: int | None = 3,
                       embedders: tuple[str, ...] = (), scores: tuple[str, ...] = (),
                       signals: tuple[str, ...] | None = None, separation: float = 1.0, flip: float = 0.0,
                       uris: list[str] | None = None, logmel_s: float = 0.0, weights: str = "random") -> Synthetic:
    """``n_rows`` clips of ``len(class_mids)`` classes (each class: one MID or a list of MIDs).

    Single-label clips are balanced over the classes; multi-label clips hold each class
    with probability 0.4. ``flip`` of the clips get a wrong given label (single-label:
    another class; multi-label: one membership toggled). ``rows_per_group`` consecutive
    clips share a recording (``None``: no group column values). ``embedders`` add their
    vectors (recorded as ``weights``: random, or a stand-in checksum for a table that must look pretrained);
    ``scores`` add ``<name>_scores`` columns of
    random tagger scores. ``logmel_s`` > 0 adds a ``logmel`` image column of clips that long
    (:func:`synthetic_images`).
    """
    rng = np.random.default_rng(seed)
    mids = [[m] if isinstance(m, str) else list(m) for m in class_mids]
    k = len(mids)
    if multi_label:
        true = (rng.random((n_rows, k)) < 0.4).astype(np.int64)
        member = true.astype(float)
    else:
        true = rng.permutation(np.arange(n_rows) % k)
        member = np.eye(k)[true]
    given = true.copy()
    flipped = rng.choice(n_rows, size=int(round(flip * n_rows)), replace=False)
    for i in flipped:
        if multi_label:
            given[i, rng.integers(k)] ^= 1
        else:
            given[i] = (true[i] + rng.integers(1, k)) % k
    labels = [[m for c in (np.flatnonzero(g) if multi_label else [g]) for m in mids[c]] + [UNRELATED] for g in given]
    ids = [f"clip{i:07d}" for i in range(n_rows)]
    group_ids = np.arange(n_rows) // (rows_per_group or 1)

    params = FeatureParams(signals=signals) if signals else FeatureParams()
    cpu = feature_metadata(params)
    dims = {name: int(np.prod(m["shape"])) for name, m in cpu.items()}
    dims.update({e: registry.get(e).dim for e in embedders})
    columns: dict[str, pa.Array] = {
        "clip_id": pa.array(ids),
        "uri": pa.array(uris if uris is not None else [f"/nonexistent/{c}.wav" for c in ids]),
        "start_s": pa.array(np.zeros(n_rows)), "end_s": pa.array(np.full(n_rows, 10.0)),
        "labels": pa.array(labels, pa.list_(pa.string())),
        "group": pa.array([f"rec{g:06d}" for g in group_ids] if rows_per_group else [None] * n_rows, pa.string()),
        "duration_s": pa.array(np.full(n_rows, 10.0)),
    }
    n_groups = int(group_ids.max()) + 1 if n_rows else 0
    for name, d in dims.items():
        sources = rng.standard_normal((k, 4, d)) * 0.6 * separation
        active = rng.random((n_rows, k, 4)) < 0.6  # two or three of a class's four sources, on average
        gains = rng.lognormal(0.0, 0.3, (n_rows, k, 4)) * active * member[:, :, None]
        rec_offset = 0.5 * rng.standard_normal((n_groups, d)) if rows_per_group else np.zeros((n_groups, d))
        x = rng.standard_normal((n_rows, d)) + np.einsum("nks,ksd->nd", gains, sources) + rec_offset[group_ids]
        units = np.exp(rng.uniform(-3, 4, d))
        columns[name] = pa.FixedSizeListArray.from_arrays(pa.array((x * units).astype(np.float32).ravel()), d)
    for name in scores:
        columns[f"{name}_scores"] = pa.FixedSizeListArray.from_arrays(pa.array(rng.random(n_rows * 8, np.float32)), 8)
        dims[f"{name}_scores"] = 8
    images = synthetic_images(member, group_ids, logmel_s, rng) if logmel_s > 0 else None
    if images is not None:
        columns["logmel"] = encode_images(images)
    meta = {"format_version": 1, "package_version": "synthetic", "run_id": "synthetic", "columns": cpu,
            "weights": {e: weights for e in embedders}}
    schema = pa.schema([pa.field(n, vector_type(dims[n]) if n in dims else a.type) for n, a in columns.items()],
                       metadata=metadata_json(meta))
    table = pa.Table.from_arrays(list(columns.values()), schema=schema)
    return Synthetic(table=table, ids=ids, true=true, given=given, flipped={ids[i] for i in flipped}, images=images)


def synthetic_images(member: np.ndarray, group_ids: np.ndarray, seconds: float,
                     rng: np.random.Generator) -> list[np.ndarray]:
    """Log-mel-like images (64 bands, 100 frames a second, dB) of clips of ``seconds``: a noise floor tilted per
    recording, and short events whose band depends on the class (each class's band overlaps its neighbour's),
    so that where in frequency and time energy lies tells the classes apart, as in real soundscapes."""
    bands, frames = 64, max(8, 1 + (int(seconds * 16000) - 400) // 160)
    tilt = rng.normal(0, 4, int(group_ids.max()) + 1)
    images = []
    for row, g in zip(member, group_ids):
        image = rng.normal(-60, 3, (bands, frames)) + tilt[g] * np.linspace(-1, 1, bands)[:, None]
        for c in np.flatnonzero(row):
            centre = 8 + (48 * c) // max(len(row) - 1, 1)
            for _ in range(rng.integers(2, 6)):
                low, start = int(np.clip(centre + rng.integers(-6, 7), 0, bands - 8)), int(rng.integers(0, frames))
                image[low:low + 8, start:start + int(rng.integers(5, 30))] += rng.uniform(8, 20)
        images.append(image.astype(np.float32))
    return images


def synthetic_table(n_rows: int, class_mids: Sequence[str | Sequence[str]] = (URBAN, NATURAL),
                    multi_label: bool = False, **options) -> pa.Table:
    """Just the table of :func:`synthetic_features` (labels as generated, none flipped unless ``flip``)."""
    return synthetic_features(n_rows, class_mids, multi_label=multi_label, **options).table


def write_features(table: pa.Table, output: str, n_parts: int = 2) -> str:
    """Write ``table`` as ``<output>/features/part-*.parquet``, as the extract job would; returns ``output``."""
    step = max(1, -(-table.num_rows // n_parts))
    for i, start in enumerate(range(0, table.num_rows, step)):
        write_parquet(table.slice(start, step), join(output, "features", f"part-synthetic-{i:04d}.parquet"))
    return output
