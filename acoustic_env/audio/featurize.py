"""A handful of clips to feature vectors in this process: the extract job's calls, without Ray.

Labelling three files should not cost a Ray start-up (about 10 s) and a Parquet
round trip. These are the same functions the extract pipeline's stages call, on the
same parameters: :func:`~acoustic_env.audio.decode.decode_clip`, then
:func:`~acoustic_env.features.cpu_features`, then each embedder from
:func:`~acoustic_env.embedders.factory.load_embedder` (one clip per forward pass, so no
padding is involved), and the vectors are cast to float32 as the feature table stores
them. A model scoring these vectors therefore gives what it gives on the same clips
read back from an extract output. A clip that fails (not audio, too short, missing)
keeps its row, with NaN vectors and the reason. What a prediction must say about its
input besides the classes (digital silence, a file cut to ``decode.max_duration_s``)
is :func:`clip_note`, which ``predict`` and ``serve`` both print.
"""

from __future__ import annotations

import os
import posixpath
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from acoustic_env.audio.decode import DecodedClip, decode_clip
from acoustic_env.config import SIGNALS, ConfigError, DecodeParams, FeatureParams
from acoustic_env.embedders.registry import get
from acoustic_env.errors import ClipError
from acoustic_env.features import cpu_features, separate_signals
from acoustic_env.features.logmel import COLUMN as LOGMEL
from acoustic_env.features.logmel import compute_image, image_settings
from acoustic_env.storage import redact
from acoustic_env.table import embedding_column


@dataclass(frozen=True)
class Featurized:
    """One entry per input clip, in input order."""

    clip_ids: list[str]
    uris: list[str]
    vectors: dict[str, np.ndarray]  # column -> float32 [n, dim], NaN rows where the clip failed; the image
    # column (``logmel``): an object array of float32 [bands, frames] images, None where the clip failed
    errors: list[str | None]  # "stage/error_type: message", or None
    notes: list[str | None]  # clip_note: silent, or cut; None when there is nothing to say
    silent: list[bool]  # digital silence: the caller gives it no class probabilities


def featurize(rows: Sequence[Mapping[str, Any]], columns: Mapping[str, int], *,
              decode: DecodeParams = DecodeParams(), features: FeatureParams = FeatureParams(),
              embedders: Mapping[str, str] | None = None, weights_cache: str | None = None,
              device: str = "cpu", cut_segments: bool = False) -> Featurized:
    """The vectors of ``columns`` (name -> width) for each row (``clip_id``, ``uri``, optional ``start_s``/``end_s``).

    ``embedders``: name -> weights id (a checkpoint's SHA-256, or ``"random"``) for the
    embedders whose columns are wanted; their checkpoints are checked against it. The image column
    (``logmel``, an image model's input) holds each clip's image as computed (float dB), which
    ``Model.images`` stores and reads back as the table does.
    """
    n = len(rows)
    vectors = {c: np.full(n, None, dtype=object) if c == LOGMEL else np.full((n, d), np.nan, dtype=np.float32)
               for c, d in columns.items()}
    errors: list[str | None] = [None] * n
    notes: list[str | None] = [None] * n
    silent = [False] * n
    nets = load_nets(embedders or {}, weights_cache, device)
    for i, row in enumerate(rows):
        try:
            clip = decode_clip(row["uri"], decode, row.get("start_s"), row.get("end_s"), cut_segments)
            [out] = batch_outputs([clip], columns, nets, decode, features)
        except ClipError as exc:
            errors[i] = str(exc)
            continue
        except Exception as exc:  # noqa: BLE001 - as in the pipeline: one bad clip is one error, not a stop
            errors[i] = f"features/{type(exc).__name__}: {exc}"
            continue
        for c, v in pick_columns(out, columns).items():
            vectors[c][i] = v
        notes[i] = clip_note(clip.is_silent, clip.orig_duration_s, clip.audio.size / decode.sample_rate, decode)
        silent[i] = clip.is_silent
    return Featurized(clip_ids=[str(r["clip_id"]) for r in rows], uris=[str(r["uri"]) for r in rows],
                      vectors=vectors, errors=errors, notes=notes, silent=silent)


def clip_note(is_silent: bool, orig_duration_s: float, scored_s: float, decode: DecodeParams) -> str | None:
    """What a prediction says about its input besides the classes, or None.

    Digital silence (RMS below ``decode.silence_rms``) carries no evidence of any
    environment, yet a network still maps its features somewhere, often confidently:
    it is reported as silent and given no class probabilities. A recording longer than
    ``decode.max_duration_s`` is scored on its first part only, which the answer says.
    """
    notes = []
    if is_silent:
        notes.append(f"silent: digital silence (RMS below decode.silence_rms = {decode.silence_rms:g}); "
                     "no class probabilities")
    if orig_duration_s > decode.max_duration_s:
        notes.append(f"cut: scored the first {scored_s:g} s of {orig_duration_s:.1f} s")
    return "; ".join(notes) or None


def load_nets(embedders: Mapping[str, str], weights_cache: str | None = None, device: str = "cpu") -> dict[str, Any]:
    """name -> loaded embedder, each checkpoint checked against its weights id (``"random"``: seeded random)."""
    from acoustic_env.embedders.factory import load_embedder

    return {name: load_embedder(name, device=device, allow_random_weights=wid == "random", cache_dir=weights_cache,
                                sha256=None if wid == "random" else wid)
            for name, wid in embedders.items()}


def batch_outputs(clips: Sequence[DecodedClip], columns: Mapping[str, int], nets: Mapping[str, Any],
                  decode: DecodeParams = DecodeParams(), features: FeatureParams = FeatureParams()) -> list[dict[str, Any]]:
    """Every output (feature and embedder columns) per decoded clip, in order.

    The CPU features run clip by clip (only when a wanted column needs them: the log-mel image alone, an
    image model's one column, is computed without the costly vectors); each
    embedder runs once over the whole list per signal it embeds, zero-padded with the
    true lengths, which every embedder honours (:mod:`acoustic_env.embedders.base`): a
    clip's vector does not depend on what it was batched with, so the live service can
    batch requests and still give what ``predict`` gives for one file. An embedder embeds
    the signals its wanted columns are of (``yamnet_fg``: the foreground, separated as the
    extract's feature stage separates it; the raw signal when no column says).
    """
    signals = {name: _signals_of(name, columns) for name in nets}
    separate = any(s != "raw" for wanted in signals.values() for s in wanted)
    embedded = {embedding_column(c, s) for name, wanted in signals.items() for s in wanted
                for c in get(name).columns()}
    wants_vectors = any(c not in embedded and c != LOGMEL for c in columns)
    features = replace(features, logmel=LOGMEL in columns)
    outs: list[dict[str, Any]] = []
    separated: list[dict[str, np.ndarray]] = []
    for c in clips:
        found: dict[str, np.ndarray] = {}
        if wants_vectors:
            outs.append(dict(cpu_features(c.audio, decode.sample_rate, features, found if separate else None)[0]))
        else:
            outs.append({LOGMEL: compute_image(c.audio, image_settings(features))} if features.logmel else {})
            if separate:
                found = separate_signals(c.audio, decode.sample_rate, features)
        separated.append(found)
    for signal in SIGNALS:
        users = [name for name, wanted in signals.items() if signal in wanted]
        if not users or not clips:
            continue
        clip_audio = [c.audio if signal == "raw" else found[signal] for c, found in zip(clips, separated)]
        lengths = np.array([len(a) for a in clip_audio], dtype=np.int64)
        audio = np.zeros((len(clips), int(lengths.max())), dtype=np.float32)
        for i, a in enumerate(clip_audio):
            audio[i, : lengths[i]] = a
        for name in users:
            for key, value in nets[name].embed(audio, lengths).items():
                for out, row in zip(outs, value):
                    out[embedding_column(key, signal)] = row
    return outs


def _signals_of(name: str, columns: Mapping[str, int]) -> tuple[str, ...]:
    """The signals embedder ``name`` embeds for ``columns``: those its wanted columns are of, else the raw one."""
    outputs = get(name).columns()
    return tuple(s for s in SIGNALS if any(embedding_column(c, s) in columns for c in outputs)) or ("raw",)


def pick_columns(out: Mapping[str, Any], columns: Mapping[str, int]) -> dict[str, np.ndarray]:
    """The wanted columns of one clip's outputs as flat float32, as the feature table stores them (the image as
    computed, [bands, frames])."""
    missing = [c for c in columns if c not in out]
    if missing:
        raise KeyError(f"no stage computes the column {missing[0]!r} (features.signals, the embedders or their "
                       "signals differ)")
    picked = {c: np.asarray(out[c], dtype=np.float32) for c in columns}
    return {c: v if c == LOGMEL else v.reshape(-1) for c, v in picked.items()}


def clip_rows(files: Sequence[str | Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rows for :func:`featurize` from file paths/URLs (or mappings with ``uri``).

    A clip's id is its file name without the extension, as the extract job derives it
    for a directory, when no other input's id is the same; otherwise every file of that
    name is named by more of its path (:func:`unique_ids`), so two files never share an
    id, whatever they are called. Local paths are made absolute, as every stored ``uri``
    is; a ``#`` or ``?`` in a local file name is part of the name.
    """
    rows = [dict(f) if isinstance(f, Mapping) else {"uri": f} for f in files]
    for row in rows:
        uri = str(row["uri"])
        row["uri"] = uri if "://" in uri else os.path.abspath(os.path.expanduser(uri))
    derived = [r for r in rows if not r.get("clip_id")]
    ids = unique_ids([r["uri"] for r in derived], taken=[str(r["clip_id"]) for r in rows if r.get("clip_id")])
    for row, clip_id in zip(derived, ids):
        row["clip_id"] = clip_id
    return rows


def unique_ids(uris: Sequence[str], taken: Sequence[str] = ()) -> list[str]:
    """One id per URI, none equal to another or to one of ``taken``: the file name without its extension, else
    the file name, else one more folder at a time, else the whole URI.

    A suffix counter (``a-2``) can be another file's own name; a longer part of the path
    cannot, since every id but a stem is a path that only its own file ends with (and the
    whole URI is distinct by itself). ``ConfigError`` names a URI given twice.
    """
    forms = [_names(u) for u in uris]
    level = [0] * len(uris)
    while True:
        ids = [f[k] for f, k in zip(forms, level)]
        holders = Counter([*ids, *taken])
        clash = [i for i, x in enumerate(ids) if holders[x] > 1]
        if not clash:
            return ids
        stuck = [i for i in clash if level[i] == len(forms[i]) - 1]
        if len(stuck) == len(clash):
            raise ConfigError(f"inputs: {redact(uris[stuck[0]])} is given twice" if uris.count(uris[stuck[0]]) > 1
                              else f"inputs: {redact(uris[stuck[0]])} has the clip_id of another row")
        for i in clash:
            level[i] = min(level[i] + 1, len(forms[i]) - 1)


def _names(uri: str) -> list[str]:
    """The ids :func:`unique_ids` tries for ``uri``, shortest first."""
    path = urlsplit(uri).path if "://" in uri else uri
    parts = [p for p in path.split("/") if p]
    tails = ["/".join(parts[-k:]) for k in range(1, len(parts) + 1)]
    stem = posixpath.splitext(parts[-1])[0] if parts else ""
    return list(dict.fromkeys(x for x in (stem, *tails, redact(uri)) if x))
