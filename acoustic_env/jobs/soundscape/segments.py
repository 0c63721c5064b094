"""A recording's segments scored: the indices, the per-bin spectral indices and, with a model, its class shares.

A segment is ``segment_s`` seconds of one file from its start (the last one shorter; a tail under
:data:`MIN_SEGMENT_S` is left out unless it is the whole file). Its indices are computed on the file's own samples
at its own rate (the channels averaged, nothing resampled or normalised: the levels and the background are the
recorder's), with the vectorised scikit-maad indices of ``features/fast/indices.py`` and the per-bin indices of
``features/spectral_bins.py``. The file is read one segment at a time, so a worker holds one segment of audio
whatever the file's length (a 24-hour file included).

With a model, the windows of the segment are scored as ``predict --windows`` scores them
(:class:`~acoustic_env.jobs.windows.SpanScorer`: the model's decode and features, its embedders loaded once), and
the segment keeps each class's mean probability and share of windows predicted as it, and the windows themselves
(``win_*`` list columns), from which the job draws events.

A span (:class:`SegmentSpan`) is segments ``first`` .. ``end - 1`` of one file: what one worker scores at a time,
and one Parquet part that a resumed run reads back instead of scoring again. A file or segment that cannot be read
is a row with its ``error`` and no values: nothing is dropped.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import soundfile as sf

from acoustic_env.audio.decode import STAGE
from acoustic_env.audio.windows import open_recording, spans
from acoustic_env.config import DecodeParams, FeatureParams, WindowParams
from acoustic_env.errors import ClipError
from acoustic_env.features.fast.indices import hann_psd, spectral_indices, temporal_indices
from acoustic_env.features.reference.indices import INDEX_NAMES
from acoustic_env.features.spectral_bins import BIN_INDICES, per_bin_indices
from acoustic_env.jobs.windows import Span

#: A tail shorter than this is not a segment (the indices of a fraction of a second say little).
MIN_SEGMENT_S = 1.0
#: What a recording may weigh: a segment is read at a time, so the clip read limit (256 MiB) does not apply.
READ = DecodeParams(max_bytes=1 << 50)


@dataclass(frozen=True)
class SegmentSpan(Span):
    """Segments ``first`` .. ``end - 1`` of one placed recording (a :class:`~acoustic_env.jobs.windows.Span` of
    segments, its part named the same way); ``site`` and ``start``: the file's, in epoch seconds."""

    site: str = ""
    start: float = 0.0


def segment_bounds(frames: int, sr: int, segment_s: float) -> list[tuple[int, int]]:
    """(first frame, end frame) of each segment of a ``frames``-long file."""
    length = max(1, round(segment_s * sr))
    out = [(a, min(a + length, frames)) for a in range(0, frames, length)]
    return [b for i, b in enumerate(out) if i == 0 or b[1] - b[0] >= MIN_SEGMENT_S * sr]


def settings_key(segment_s: float, params: FeatureParams, model_id: str | None, window_s: float | None) -> str:
    """The folder of a run's parts: another segment length, index setting or model writes beside them."""
    said = json.dumps([segment_s, params.maad_nperseg, params.maad_noverlap, params.maad_db_threshold, model_id,
                       window_s])
    return hashlib.sha256(said.encode()).hexdigest()[:16]


def schema(class_names: tuple[str, ...] = ()) -> pa.Schema:
    """The segment table's columns: where and when, the 60 indices, the per-bin indices, the class shares."""
    return pa.schema([
        ("site", pa.string()), ("clip_id", pa.string()), ("uri", pa.string()),
        ("start_time", pa.timestamp("ms", tz="UTC")), ("offset_s", pa.float64()), ("duration_s", pa.float64()),
        ("sample_rate", pa.int32()), ("bin_hz", pa.float64()), ("error", pa.string()),
        *[(name, pa.float64()) for name in INDEX_NAMES],
        *[(f"bins_{name}", pa.list_(pa.float32())) for name in BIN_INDICES],
        *([("windows", pa.int32()), *[(f"{s}_{c}", pa.float64()) for c in class_names for s in ("mean", "share")],
           ("win_start_s", pa.list_(pa.float64())), ("win_end_s", pa.list_(pa.float64())),
           *[(f"win_prob_{c}", pa.list_(pa.float64())) for c in class_names]] if class_names else [])])


def open_audio(uri: str) -> tuple[Any, sf.SoundFile]:
    """(file object, libsndfile's reader) of a recording; ClipError (``decode/not_audio``, or the transport's) when
    it cannot be opened."""
    fh = open_recording(uri, READ)
    try:
        return fh, sf.SoundFile(fh)
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as exc:
        fh.close()
        reason = getattr(exc, "error_string", None) or str(exc)
        raise ClipError(STAGE, "not_audio", f"libsndfile cannot read it ({reason})") from None


def segment_values(x: np.ndarray, sr: int, params: FeatureParams) -> dict[str, Any]:
    """The 60 indices and the per-bin indices of one segment's mono samples."""
    with np.errstate(all="ignore"):
        temporal = temporal_indices(x, sr, params)
        sxx, tn, fn = hann_psd(x, sr, params.maad_nperseg, params.maad_noverlap)
        spectral = spectral_indices(sxx, tn, fn, params)
    values = dict(zip(INDEX_NAMES, (float(v) if np.isfinite(v) else None for v in
                                    np.concatenate([temporal, spectral]))))
    bins = per_bin_indices(sxx, float(tn[1] - tn[0]), params.maad_db_threshold)
    return {**values, **{f"bins_{k}": np.where(np.isfinite(v), v, np.nan).astype(np.float32) for k, v in bins.items()},
            "bin_hz": float(fn[1] - fn[0])}


class SegmentScorer:
    """Scores spans of segments: the model (if any) and its embedders loaded once (a Ray actor's life, or this
    process's run); ``device``: the embedders' (Ray's actors pass their share)."""

    def __init__(self, segment_s: float, params: FeatureParams, model: Any = None, window_s: float | None = None, *,
                 weights_cache: str | None = None, device: str = "cpu") -> None:
        self.segment_s, self.params, self.model = segment_s, params, model
        self.classes: tuple[str, ...] = tuple(model.class_names) if model is not None else ()
        self.windows = None
        if model is not None:
            from acoustic_env.jobs.windows import SpanScorer, window_lengths

            window = WindowParams(windows=True, window_s=window_s)
            self.window_s, self.hop_s = window_lengths(window, model, model.extraction_params()[0])
            self.windows = SpanScorer(model, window, self.window_s, self.hop_s, weights_cache=weights_cache,
                                      device=device)

    def __call__(self, span: SegmentSpan) -> pa.Table:
        """The span's rows, one per segment, in time order."""
        bounds = segment_bounds(span.frames, span.sr, self.segment_s)[span.first:span.end]
        rows = list(self._rows(span, bounds))
        if self.windows is not None:
            self._add_windows(span, bounds, rows)
        return pa.Table.from_pylist(rows, schema=schema(self.classes))

    def _rows(self, span: SegmentSpan, bounds: list[tuple[int, int]]) -> Iterator[dict[str, Any]]:
        base = {"site": span.site, "clip_id": span.clip_id, "uri": span.uri, "sample_rate": span.sr}
        try:
            fh, f = open_audio(span.uri)
        except ClipError as exc:  # opened when the run was planned, not now: each segment says why
            yield from ({**base, **_when(span, a, b), "error": str(exc)} for a, b in bounds)
            return
        try:
            yield from self._read(f, span, bounds, base)
        finally:
            f.close()
            fh.close()

    def _read(self, f: sf.SoundFile, span: SegmentSpan, bounds: list[tuple[int, int]],
              base: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Each segment read and computed, or its error."""
        for a, b in bounds:
            row = {**base, **_when(span, a, b), "error": None}
            try:
                f.seek(a)
                audio = f.read(frames=b - a, dtype="float64", always_2d=True)
                if audio.shape[0] < b - a:
                    raise ClipError(STAGE, "truncated", f"the file ends at {(a + audio.shape[0]) / span.sr:.1f} s,"
                                                        f" its header declares {span.frames / span.sr:.1f} s")
                if not np.isfinite(audio).all():
                    raise ClipError(STAGE, "nan_samples", "NaN/inf samples in the segment")
                row.update(segment_values(audio.mean(axis=1), span.sr, self.params))
            except ClipError as exc:
                row["error"] = str(exc)
            except (sf.LibsndfileError, RuntimeError) as exc:
                row["error"] = f"{STAGE}/corrupt: {exc}"
            yield row

    def _add_windows(self, span: SegmentSpan, bounds: list[tuple[int, int]], rows: list[dict[str, Any]]) -> None:
        """Each segment's windows (those starting in it) scored, and the class means and shares."""
        starts = [a / span.sr for a, _ in spans(span.frames, span.sr, self.window_s, self.hop_s,
                                                self.windows.decode.min_duration_s)]
        lo, hi = bounds[0][0] / span.sr, bounds[-1][1] / span.sr
        picked = [i for i, s in enumerate(starts) if lo <= s < hi]
        table = self.windows(Span(span.file, span.clip_id, span.uri, picked[0], picked[-1] + 1, span.frames, span.sr)) \
            if picked else None
        scored = table.to_pylist() if table is not None else []
        kind = self.model.kind
        for row, (a, b) in zip(rows, bounds):
            mine = [w for w in scored if a / span.sr <= w["start_s"] < b / span.sr]
            ok = [w for w in mine if w["error"] is None and w["predicted"] is not None]
            row.update(windows=len(mine), win_start_s=[w["start_s"] for w in mine],
                       win_end_s=[w["end_s"] for w in mine])
            for c in self.classes:
                p = [w[f"prob_{c}"] for w in ok]
                hits = sum(c in w["predicted"] if kind == "multi_label" else c == w["predicted"] for w in ok)
                row.update({f"mean_{c}": float(np.mean(p)) if p else None, f"share_{c}": hits / len(ok) if ok else None,
                            f"win_prob_{c}": [w[f"prob_{c}"] for w in mine]})


def _when(span: SegmentSpan, a: int, b: int) -> dict[str, Any]:
    """A segment's start time (ms since the epoch, UTC), offset and length."""
    return {"start_time": round((span.start + a / span.sr) * 1000), "offset_s": a / span.sr,
            "duration_s": (b - a) / span.sr}
