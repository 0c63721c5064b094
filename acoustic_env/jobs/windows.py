"""Long recordings: each file cut into windows, each window scored as a clip, a table of windows out.

Users of tools like BirdNET-Analyzer expect, for an hour of field recording, a row per
window with its times and scores, and a summary per file; ``predict --windows``, the
Python API (``ae.predict_windows``), ``annotate --windows`` and the service
(``POST /predict?windows=1``) all go through :func:`recording_rows`:

* the windows are read from the open file one batch at a time
  (:class:`acoustic_env.audio.windows.Recording`), so memory holds ``window_batch``
  windows of audio whatever the length of the file;
* a batch is scored by :func:`score_clips`, the CPU features and embedders of
  :func:`acoustic_env.audio.featurize.batch_outputs` and the model's ``predict_table``,
  with the decode and feature parameters of the model's training table: the steps
  ``predict`` runs on a clip, so a window that covers a whole clip gets its probabilities.

The window table has predict's columns plus ``start_s`` and ``end_s``;
:func:`summarize` makes the per-file summary from it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any

import numpy as np
import pyarrow as pa

from acoustic_env.audio.decode import DecodedClip
from acoustic_env.audio.featurize import batch_outputs, clip_note, load_nets, pick_columns
from acoustic_env.audio.rows import redact_columns
from acoustic_env.audio.windows import Recording, Window
from acoustic_env.config import ConfigError, DecodeParams, FeatureParams, WindowParams
from acoustic_env.errors import ClipError
from acoustic_env.features.logmel import COLUMN as LOGMEL
from acoustic_env.learn.artifact import Model

#: The columns a window row adds to predict's.
TIMES = (("start_s", pa.float64()), ("end_s", pa.float64()))


@dataclass(frozen=True)
class WindowResult:
    """One row per window (``clip_id``, ``uri``, ``start_s``, ``end_s``, ``predicted``, ``prob_<class>``,
    ``error``, ``note``) and one per file (:func:`summarize`), with the window and hop used."""

    table: pa.Table
    summary: pa.Table
    window_s: float
    hop_s: float


def window_lengths(window: WindowParams, model: Model, decode: DecodeParams) -> tuple[float, float]:
    """(window_s, hop_s): the given ones, else the training clip length; checked against the decode limits.

    A window is a clip: shorter than ``decode.min_duration_s`` it would be refused, longer
    than ``decode.max_duration_s`` it would be cut (so the default is at most that).
    """
    window_s = window.window_s or min(model.training_clip_s()[0], decode.max_duration_s)
    if not decode.min_duration_s <= window_s <= decode.max_duration_s:
        raise ConfigError(f"window_s: must be in [decode.min_duration_s, decode.max_duration_s] = "
                          f"[{decode.min_duration_s:g}, {decode.max_duration_s:g}] s, got {window_s:g}")
    return window_s, window.hop_s or window_s


def score_clips(model: Model, clips: Sequence[DecodedClip], columns: Mapping[str, int], nets: Mapping[str, Any],
                decode: DecodeParams, features: FeatureParams) -> tuple[dict[str, list[Any]], dict[str, Any]]:
    """(the model's ``predict_table`` as columns, every computed column as [n, dim]: the images as a list) for
    decoded clips."""
    outs = [pick_columns(o, columns) for o in batch_outputs(clips, columns, nets, decode, features)]
    vectors = {c: [o[c] for o in outs] if c == LOGMEL else np.stack([o[c] for o in outs]) for c in columns}
    return model.predict_table({c: vectors[c] for c in model.inputs}).to_pydict(), vectors


def batches(items: Iterable[Window], size: int) -> Iterator[list[Window]]:
    """Consecutive lists of ``size`` items (the last one shorter), drawn as they are wanted."""
    it = iter(items)
    while batch := list(islice(it, size)):
        yield batch


def recording_rows(model: Model, windows: Iterable[Window], base: Mapping[str, Any], *, columns: Mapping[str, int],
                   nets: Mapping[str, Any], decode: DecodeParams, features: FeatureParams,
                   batch: int) -> Iterator[dict[str, Any]]:
    """One row per window (``base`` holds ``clip_id`` and ``uri``), scored ``batch`` windows at a time."""
    probs = [f"prob_{c}" for c in model.class_names]
    for group in batches(windows, batch):
        clips = [w.clip for w in group if w.clip is not None]
        scored = score_clips(model, clips, columns, nets, decode, features)[0] if clips else {}
        k = 0
        for w in group:
            row = {**base, "start_s": w.start_s, "end_s": w.end_s, "error": w.error, "note": None,
                   "silent": False}
            if w.clip is not None:
                row.update({p: scored[p][k] for p in ("predicted", *probs)}, silent=w.clip.is_silent,
                           note=clip_note(w.clip.is_silent, w.clip.orig_duration_s, w.end_s - w.start_s, decode))
                k += 1
            yield row


def predict_windows(inputs: Sequence[str], model: str, *, window: WindowParams = WindowParams(windows=True),
                    audio_root: str | None = None, weights_cache: str | None = None,
                    device: str = "cpu") -> WindowResult:
    """Score every file of ``inputs`` (files, a directory or a clip list) in windows, in this process."""
    from acoustic_env.jobs.predict import input_rows
    from acoustic_env.jobs.preflight import check_device, check_input
    from acoustic_env.learn.artifact import load_model

    check_input(model, "model")
    check_device(device)
    m = load_model(model)
    return score_windows(m, input_rows(inputs, audio_root)[0], window, weights_cache=weights_cache, device=device)


def score_windows(m: Model, rows: Sequence[Mapping[str, Any]], window: WindowParams, *,
                  weights_cache: str | None = None, device: str = "cpu") -> WindowResult:
    """Score the recordings of ``rows`` (``clip_id``, ``uri``) in windows, one after the other.

    The decode and feature parameters are those of the model's training table; a file
    that cannot be opened is a summary row with its error and no windows.
    """
    from acoustic_env.jobs.predict import rows_table

    decode, features, _ = m.extraction_params()
    window_s, hop_s = window_lengths(window, m, decode)
    embedders, _, columns = m.feature_plan()
    columns = {c: columns[c] for c in m.inputs}  # the tagger's scores are for a clip's tags, not kept per window
    nets = load_nets(embedders, weights_cache, device)
    out: list[dict[str, Any]] = []
    files: list[dict[str, Any]] = []
    for r in rows:
        base = {"clip_id": str(r["clip_id"]), "uri": str(r["uri"])}
        try:
            with Recording(str(r["uri"]), decode) as rec:
                stream = rec.windows(window_s, hop_s, window.max_windows)
                files.append({**base, "duration_s": rec.duration_s, "error": None})
                out.extend(recording_rows(m, stream, base, columns=columns, nets=nets, decode=decode,
                                          features=features, batch=window.window_batch))
        except ClipError as exc:
            files.append({**base, "duration_s": None, "error": str(exc)})
    table = rows_table(m, out, TIMES)
    summary = summarize(table, files, m.class_names, m.kind)
    return WindowResult(redact_columns(table), redact_columns(summary), window_s, hop_s)


def summarize(table: pa.Table, files: Sequence[Mapping[str, Any]], class_names: Sequence[str],
              kind: str) -> pa.Table:
    """One row per file: its length, how many windows were scored, silent or failed, and per class the mean and
    the highest probability over the scored windows and the share of them predicted as that class.

    ``files``: ``clip_id``, ``uri``, ``duration_s`` and ``error`` (a file that could not be opened has no windows).
    """
    ids = np.asarray(table["clip_id"].to_pylist(), dtype=object)
    probs = np.stack([table[f"prob_{c}"].to_numpy(zero_copy_only=False) for c in class_names], axis=1) \
        if table.num_rows else np.empty((0, len(class_names)))
    predicted = table["predicted"].to_pylist()
    errors = np.array([e is not None for e in table["error"].to_pylist()], dtype=bool)
    out = []
    for f in files:
        mine = ids == f["clip_id"]
        scored = mine & np.isfinite(probs).all(axis=1)
        p = probs[scored]
        chosen = [predicted[i] for i in np.flatnonzero(scored)]
        row: dict[str, Any] = {**f, "windows": int(mine.sum()), "scored": int(scored.sum()),
                               "silent": int((mine & ~scored & ~errors).sum()), "failed": int((mine & errors).sum())}
        for j, c in enumerate(class_names):
            hits = sum(c in x if kind == "multi_label" else c == x for x in chosen)
            row.update({f"mean_{c}": float(p[:, j].mean()) if len(p) else None,
                        f"max_{c}": float(p[:, j].max()) if len(p) else None,
                        f"share_{c}": hits / len(p) if len(p) else None})
        out.append(row)
    schema = pa.schema([("clip_id", pa.string()), ("uri", pa.string()), ("duration_s", pa.float64()),
                        ("error", pa.string()), ("windows", pa.int64()), ("scored", pa.int64()),
                        ("silent", pa.int64()), ("failed", pa.int64()),
                        *[(f"{s}_{c}", pa.float64()) for c in class_names for s in ("mean", "max", "share")]])
    return pa.Table.from_pylist(out, schema=schema)
