"""Near-duplicates chunk by chunk: time-shifted and partial copies, found by k-NN over chunks of MFCCs.

The per-clip finder (:mod:`acoustic_env.learn.duplicates`) compares one vector per clip.
A copy cut 2 s later than its original, or a clip that is 3 s of another, summarises
differently over its whole length and can be missed. The YouTube study found its
duplicates by nearest neighbours over chunks of MFCCs; so does this module:

- **Frames.** Each clip's log-mel image (``features/logmel.py``: 64 bands, 100 frames a
  second): the table's ``logmel`` column, or computed from the clip's audio
  (``jobs/chunk_reader.py``: learn/ decodes no audio). The MFCCs are the image's DCT
  (type II, orthonormal: ``librosa.feature.mfcc`` of a dB mel spectrogram), ``N_MFCC``
  of them; the 0th, the level, is dropped, because the decoder normalises each clip's
  loudness, so a 3-s excerpt sits at another level than the same 3 s inside its original.
- **Chunks.** ``CHUNK_S`` (1 s) of frames, summarised by the mean and the standard
  deviation of each coefficient over them (a clip shorter than a chunk is one chunk of
  what it has). The chunks of every clip every ``INDEX_HOP_S`` (0.1 s) are indexed, and
  each clip's chunks every ``QUERY_HOP_S`` (0.5 s) are looked up among them, so a copy
  cut anywhere meets a chunk of its original within 0.05 s of alignment.
- **Distance.** The per-clip finder's space (``duplicates.embed_for_search``): each
  summary dimension standardised over all indexed chunks, each chunk L2-normalised; two
  chunks' distance is their cosine distance (0 same, 1 unrelated).
- **Lookup.** scikit-learn's ``NearestNeighbors.kneighbors``, exact: each looked-up
  chunk's ``NEIGHBOURS`` nearest chunks of other clips (the lookup asks for the chunks
  of its own clip that overlap it on top), kept when within ``CHUNK_THRESHOLD``. Its cost
  is the looked-up chunks times the indexed ones, so the train job's guard runs it on
  up to ``MAX_CLIPS`` clips.
- **Rule.** Two clips are near-duplicates when at least ``MIN_SHARE`` (half) of the
  looked-up chunks of the one with fewer of them, and at least ``MIN_MATCHED``, match a
  chunk of the other; with as many each, the smaller share counts. So a partial copy
  pairs with its original (all its chunks match), a copy shifted by 2 s of a 10-s clip
  too (14 of its 18), but a clip does not pair with every clip that shares one sound with
  it. A clip under about 1.5 s has one chunk to look up and is never paired. The pair's
  ``distance`` is the mean over the deciding clip's matched chunks of their nearest
  distance, ``share`` the share matched.

**Threshold** 0.015, measured on real field recordings in ``tests/test_duplicates_chunks.py``
(``docs/duplicates.md``): copies cut anywhere, resampled, quieter or in Vorbis at quality 0.9 pair
from 0.008 on, distinct recordings of the same steady night-time insects 15 minutes apart only
from 0.029 on. A low-bit-rate lossy copy is not reliably found (Vorbis at quality 0.4: 0.03 and
more), and neither is a copy played at another speed or pitch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
from scipy import fft as sfft
from sklearn.neighbors import NearestNeighbors

from acoustic_env.features.logmel import LOGMEL
from acoustic_env.learn.duplicates import PAIR_SCHEMA, DuplicateGuard, embed_for_search, merge_pairs, skipped_guard
from acoustic_env.table import FeatureSet, TableInfo

N_MFCC = 20
CHUNK_S = 1.0
INDEX_HOP_S = 0.1
QUERY_HOP_S = 0.5
CHUNK_THRESHOLD = 0.015
MIN_SHARE = 0.5
MIN_MATCHED = 2
NEIGHBOURS = 10
MAX_CLIPS = 5_000
FRAMES_PER_S = LOGMEL.sample_rate / LOGMEL.hop_length
CHUNK_PAIR_SCHEMA = PAIR_SCHEMA.append(pa.field("share", pa.float32()))


def mfcc(log_mel: np.ndarray, n_mfcc: int = N_MFCC) -> np.ndarray:
    """MFCCs [n_mfcc, frames] of a dB mel image [bands, frames]: ``librosa.feature.mfcc(S=log_mel)``'s DCT."""
    return sfft.dct(np.asarray(log_mel, np.float32), type=2, norm="ortho", axis=0)[:n_mfcc]


def chunk_summaries(log_mel: np.ndarray, chunk_s: float = CHUNK_S, hop_s: float = INDEX_HOP_S) -> np.ndarray:
    """[chunks, 2 * (N_MFCC - 1)] float32: per chunk of ``chunk_s`` every ``hop_s``, the mean and then the standard
    deviation of MFCCs 1.. over its frames (MFCC 0, the level, dropped)."""
    coefs = mfcc(log_mel)[1:]
    width, hop = max(1, round(chunk_s * FRAMES_PER_S)), max(1, round(hop_s * FRAMES_PER_S))
    if coefs.shape[1] <= width:
        windows = coefs[None]
    else:
        windows = np.lib.stride_tricks.sliding_window_view(coefs, width, axis=1)[:, ::hop].transpose(1, 0, 2)
    return np.concatenate([windows.mean(axis=2), windows.std(axis=2)], axis=1).astype(np.float32)


def chunk_pairs(chunks: Sequence[np.ndarray], threshold: float = CHUNK_THRESHOLD, min_share: float = MIN_SHARE,
                neighbours: int = NEIGHBOURS) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every pair (i < j) of clips that are near-duplicates by the module's rule: i, j, distance, share.

    ``chunks``: per clip its chunk summaries every ``INDEX_HOP_S`` (:func:`chunk_summaries`)."""
    if not 0 <= threshold < 2:
        raise ValueError(f"threshold: must be in [0, 2), got {threshold}")
    if not 0 < min_share <= 1:
        raise ValueError(f"min_share: must be in (0, 1], got {min_share}")
    counts = np.array([len(c) for c in chunks], dtype=np.int64)
    if len(chunks) < 2:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float32), np.empty(0, np.float32)
    clip = np.repeat(np.arange(len(chunks)), counts)
    every = round(QUERY_HOP_S / INDEX_HOP_S)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    query = np.concatenate([s + np.arange(0, n, every) for s, n in zip(starts, counts)])
    looked_up = np.bincount(clip[query], minlength=len(chunks))
    z = embed_for_search([np.concatenate(chunks)])
    z = z if z.shape[1] else np.zeros((len(z), 1), np.float32)  # every dimension constant: all chunks alike
    own = 2 * round(CHUNK_S / INDEX_HOP_S) + 1  # the chunks of its own clip that overlap a looked-up chunk
    k = min(len(z), neighbours + own)
    dist, idx = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(z).kneighbors(z[query])
    q, hit, d = np.repeat(query, k), idx.reshape(-1), dist.reshape(-1).astype(np.float64) ** 2 / 2
    keep = (clip[q] != clip[hit]) & (d <= threshold)
    q, other, d = q[keep], clip[hit[keep]], d[keep]
    # each looked-up chunk once per other clip, at its nearest distance there (the neighbours come nearest first)
    first = np.unique(q * len(chunks) + other, return_index=True)[1]
    q, other, d = q[first], other[first], d[first]
    keys, inverse, matched = np.unique(clip[q] * len(chunks) + other, return_inverse=True, return_counts=True)
    mean_d = np.bincount(inverse, weights=d) / matched
    found = {(int(key // len(chunks)), int(key % len(chunks))): (m / looked_up[key // len(chunks)], int(m), float(v))
             for key, m, v in zip(keys, matched, mean_d)}
    out = []
    for (a, b), side in found.items():
        back = found.get((b, a), (0.0, 0, 0.0))
        if a < b or (b, a) not in found:  # each pair once, whichever side found it
            deciding = (side if looked_up[a] < looked_up[b] else back if looked_up[b] < looked_up[a]
                        else min(side, back))
            if deciding[0] >= min_share and deciding[1] >= MIN_MATCHED:
                out.append((min(a, b), max(a, b), deciding[2], deciding[0]))
    out.sort()
    i, j, dd, share = (np.array(c) for c in zip(*out)) if out else ([],) * 4
    return (np.asarray(i, np.int64), np.asarray(j, np.int64), np.asarray(dd, np.float32),
            np.asarray(share, np.float32))


@dataclass(frozen=True)
class ClipChunks:
    """Each clip's chunk summaries (None where its audio could not be read), and where they came from."""

    chunks: list[np.ndarray | None]
    sources: dict[str, int]  # "logmel column" / "audio" / "unread" → clips
    first_unread: str | None  # "clip_id: why", for the console


#: What reads the chunks of a table's clips (``jobs.chunk_reader.read_chunks``: learn/ decodes no audio).
ChunkReader = Callable[[TableInfo, pa.Table], ClipChunks]


def chunk_pairs_table(summaries: ClipChunks, ids: np.ndarray, groups: np.ndarray, threshold: float = CHUNK_THRESHOLD,
                      min_share: float = MIN_SHARE) -> pa.Table:
    """The chunk-mode near-duplicate pairs of the clips ``ids`` (``CHUNK_PAIR_SCHEMA``: ``PAIR_SCHEMA`` and ``share``)
    from their chunk ``summaries``. A clip whose audio could not be read is in no pair."""
    read = np.flatnonzero([c is not None for c in summaries.chunks])
    i, j, d, share = chunk_pairs([summaries.chunks[k] for k in read], threshold, min_share)
    i, j = read[i], read[j]
    return pa.Table.from_pydict({"clip_a": ids[i].tolist(), "clip_b": ids[j].tolist(), "distance": d,
                                 "group_a": groups[i].tolist(), "group_b": groups[j].tolist(), "share": share},
                                schema=CHUNK_PAIR_SCHEMA)


def rule(threshold: float = CHUNK_THRESHOLD, min_share: float = MIN_SHARE) -> str:
    """The rule in words, for the run record, the console and the report."""
    return (f"at least {min_share:.0%} of the shorter clip's {CHUNK_S:g}-s MFCC chunks within cosine distance "
            f"{threshold:g} of the other's")


def merge_chunk_duplicate_groups(features: FeatureSet, read: ChunkReader, threshold: float = CHUNK_THRESHOLD,
                                 min_share: float = MIN_SHARE, max_clips: int = MAX_CLIPS) -> DuplicateGuard:
    """The leakage guard in chunk mode: ``duplicates.merge_duplicate_groups`` with the pairs of this module, the
    clips' chunks read by ``read``.

    ``counts`` add ``mode`` ("chunks"), ``rule``, ``min_share`` and ``frames`` (clips whose frames came from the
    log-mel column, from the audio, or could not be read: those stay in their own group)."""
    base: dict[str, Any] = {"mode": "chunks", "threshold": threshold, "min_share": min_share,
                            "rule": rule(threshold, min_share), "columns": [f"{CHUNK_S:g}-s MFCC chunks"]}
    if len(features) > max_clips:
        return skipped_guard(features, base, f"over {max_clips} clips (chunk mode)")
    summaries = read(features.table, features.clips)
    pairs = chunk_pairs_table(summaries, features.ids, features.groups, threshold, min_share)
    return merge_pairs(features, pairs, {**base, "frames": summaries.sources})
