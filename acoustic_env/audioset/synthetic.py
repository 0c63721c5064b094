"""Synthetic segment lists in AudioSet's published format, for tests and benchmarks at the real list's scale.

Rows are random YTIDs (11 characters of YouTube's alphabet), 10-s segments and one to
four labels drawn from the 527 classes of ``class_labels_indices.csv``, some MIDs made
more frequent (``boost``), as Speech and Music are in the real lists. Built with Arrow
compute, so the 2-million-row list of the benchmark is written in seconds.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from acoustic_env.vocabulary.classes import AUDIOSET_CLASSES

ALPHABET = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", dtype="S1")


def synthetic_segments(rows: int, seed: int = 0, boost: dict[str, float] | None = None) -> pa.Table:
    """``rows`` segments: YTID, start_s, end_s, labels (MIDs), the columns of a segment list."""
    rng = np.random.default_rng(seed)
    ytid = pa.array(rng.choice(ALPHABET, size=(rows, 11)).view("S11").ravel(), pa.binary(11)).cast(pa.string())
    start = rng.integers(0, 60, size=rows).astype(np.float64) * 10.0
    mids = np.array([mid for mid, _ in AUDIOSET_CLASSES])
    weights = np.array([(boost or {}).get(mid, 1.0) for mid in mids])
    counts = rng.integers(1, 5, size=rows)
    flat = pa.array(mids).take(rng.choice(len(mids), size=int(counts.sum()), p=weights / weights.sum()))
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    labels = pa.ListArray.from_arrays(pa.array(offsets), flat)
    return pa.table({"YTID": ytid, "start_s": start, "end_s": start + 10.0, "labels": labels})

