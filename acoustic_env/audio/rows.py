"""The row contract between pipeline stages, kept in columns: the output table schemas and their builders.

Every stage receives and returns Arrow batches with the same manifest columns.
A row that failed carries ``error_stage``/``error_type``/``error_message`` and
is passed through untouched by later stages, so that the writer can put it in
errors/ instead of features/: no stage ever drops a row. The manifest itself may
hand over rows that already failed (a duplicate id, a file outside the allowed
roots), and it renames a column of its own that would collide with one the
pipeline writes (``pipeline_fields``).

Why columns and not rows: a 10-s clip is 160,000 samples. Turning a batch into
Python dicts (``to_pylist``) makes each sample a Python float at every actor
boundary, which cost as much CPU as the features themselves. Here audio travels
as one float32 buffer with offsets (``large_list<float32>``) and is read through
zero-copy numpy views (``audio_views``); feature vectors are written from 2-D
arrays (``vector_array``); failures are a column mask plus three string columns
(``Failures``). The only per-row Python objects are the strings a failure or a
URI needs.
"""

from __future__ import annotations

import re
import traceback
from dataclasses import dataclass
from typing import Iterable, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from acoustic_env.audio import startup
from acoustic_env.errors import ClipError
from acoustic_env.storage import SECRET_QUERY_PARAMS, redact
from acoustic_env.table import IMAGE_TYPE, vector_type

ERROR_COLUMNS = ("error_stage", "error_type", "error_message")
DECODE_COLUMNS = {
    "orig_sample_rate": pa.int32(),
    "channels": pa.int32(),
    "orig_duration_s": pa.float64(),
    "duration_s": pa.float64(),
    "is_silent": pa.bool_(),
}
AUDIO = "audio"
AUDIO_TYPE = pa.large_list(pa.float32())
#: The separated signals the feature stage can hand to the embedders, each in its own audio column.
SEPARATED = ("fg", "bg")
CPU_PREFIX = "_cpu_"  # per-row CPU seconds per stage; summed by the writer, never stored


class Failure(NamedTuple):
    """The error columns of one failed row."""

    stage: str
    error_type: str
    message: str


def failure(exc: BaseException, stage: str) -> Failure:
    """What an exception raised for a clip means for its row (never raises)."""
    if isinstance(exc, ClipError):
        return Failure(exc.stage, exc.error_type, exc.message)
    where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    loc = f" at {where.filename.rsplit('/', 1)[-1]}:{where.lineno}" if where else ""
    return Failure(stage=stage, error_type="internal", message=f"{type(exc).__name__}: {exc}{loc}")


@dataclass
class Failures:
    """The error columns of a batch while a stage works on it: a mask plus the failures it added.

    ``ok`` is True for the rows the stage should still process; ``fail`` records one
    clip's failure; ``columns`` gives the three error columns for the output batch
    (the incoming ones, with this stage's failures filled in).
    """

    ok: np.ndarray
    incoming: dict[str, pa.ChunkedArray | pa.Array]
    added: dict[int, Failure]

    @classmethod
    def of(cls, batch: pa.Table) -> Failures:
        if "error_type" in batch.column_names:
            ok = batch["error_type"].is_null().to_numpy(zero_copy_only=False)
            incoming = {c: batch[c] for c in ERROR_COLUMNS}
        else:
            ok = np.ones(batch.num_rows, dtype=bool)
            incoming = {c: pa.nulls(batch.num_rows, pa.string()) for c in ERROR_COLUMNS}
        return cls(ok=np.array(ok, dtype=bool), incoming=incoming, added={})

    def fail(self, i: int, exc: BaseException, stage: str) -> None:
        self.ok[i] = False
        self.added[i] = failure(exc, stage)

    def columns(self) -> dict[str, pa.Array]:
        if not self.added:
            return dict(self.incoming)
        out = {}
        for k, name in enumerate(ERROR_COLUMNS):
            values = self.incoming[name].to_pylist()  # one string (or None) per clip of the batch
            for i, f in self.added.items():
                values[i] = f[k]
            out[name] = pa.array(values, pa.string())
        return out


def _array(col: pa.ChunkedArray | pa.Array) -> pa.Array:
    return col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col


def error_mask(batch: pa.Table) -> np.ndarray:
    """True for the rows that failed (in this stage or an earlier one)."""
    return batch["error_type"].is_valid().to_numpy(zero_copy_only=False).astype(bool)


# --- audio and vectors as columns ---

def audio_array(clips: list[np.ndarray | None]) -> pa.LargeListArray:
    """Clips (None for a failed row) → one float32 buffer with offsets: a single copy, no per-sample objects."""
    sizes = np.array([0 if c is None else c.size for c in clips], dtype=np.int64)
    offsets = np.zeros(len(clips) + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    flat = np.empty(int(offsets[-1]), dtype=np.float32)
    for c, start, stop in zip(clips, offsets[:-1], offsets[1:]):
        if c is not None:
            flat[start:stop] = c
    mask = pa.array(np.array([c is None for c in clips], dtype=bool))
    return pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(flat), mask=mask)


def audio_views(column: pa.ChunkedArray | pa.Array) -> list[np.ndarray | None]:
    """Zero-copy float32 views into a ``large_list<float32>`` column (None where null)."""
    if isinstance(column, pa.ChunkedArray):  # chunk by chunk: combining them would copy the audio
        return [view for chunk in column.chunks for view in audio_views(chunk)]
    arr = column
    offsets = arr.offsets.to_numpy()  # this array's own len + 1 offsets, a slice's included
    values = arr.values.to_numpy(zero_copy_only=True) if len(arr.values) else np.empty(0, np.float32)
    valid = arr.is_valid().to_numpy(zero_copy_only=False)
    return [values[int(a):int(b)] if v else None for a, b, v in zip(offsets[:-1], offsets[1:], valid)]


def vector_array(matrix: np.ndarray, valid: np.ndarray) -> pa.FixedSizeListArray:
    """An [n, d] float32 matrix → a fixed-size-list column (null where ``valid`` is False), one buffer."""
    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(matrix.reshape(-1)), matrix.shape[1], mask=pa.array(~valid))


def masked(values: np.ndarray, valid: np.ndarray, type_: pa.DataType) -> pa.Array:
    """A numpy column → Arrow, null where ``valid`` is False."""
    return pa.array(values, type=type_, mask=~valid)


# --- the one schema every stage writes ---

def audio_column(signal: str) -> str:
    """The column that carries a signal's audio between stages: ``audio`` (raw), ``audio_fg``, ``audio_bg``."""
    return AUDIO if signal == "raw" else f"{AUDIO}_{signal}"


def audio_columns(batch: pa.Table) -> list[str]:
    """The audio columns of a batch (never stored: the writer drops them)."""
    names = {audio_column(s) for s in ("raw", *SEPARATED)}
    return [f.name for f in batch.schema if f.name in names and f.type == AUDIO_TYPE]


def pipeline_fields(vectors: dict[str, int], stages: tuple[str, ...],
                    separated: tuple[str, ...] = (), images: tuple[str, ...] = ()) -> list[pa.Field]:
    """The columns the stages add to the manifest's (a manifest column of one of these names is renamed).

    ``separated``: the signals whose audio the feature stage hands on to the embedders (``audio_fg``, ...).
    ``images``: the image columns (``IMAGE_TYPE``: ``logmel``).
    """
    fields = [pa.field(n, t) for n, t in DECODE_COLUMNS.items()]
    fields += [pa.field(n, vector_type(d)) for n, d in vectors.items()]
    fields += [pa.field(n, IMAGE_TYPE) for n in images]
    fields.append(pa.field("nonfinite_features", pa.int32()))
    fields += [pa.field(audio_column(s), AUDIO_TYPE) for s in ("raw", *separated)]
    fields += [pa.field(n, pa.string()) for n in ERROR_COLUMNS]
    fields += [pa.field(CPU_PREFIX + s, pa.float64()) for s in stages]
    fields.append(startup.field())  # each actor's start-up, on the row it first handed on; never stored
    return fields


def row_schema(manifest_schema: pa.Schema, vectors: dict[str, int], stages: tuple[str, ...],
               separated: tuple[str, ...] = (), images: tuple[str, ...] = ()) -> pa.Schema:
    """The one schema every stage reads and writes: later stages fill columns earlier ones left null.

    The manifest's error columns (rows it rejected) are the pipeline's own.
    """
    own = pipeline_fields(vectors, stages, separated, images)
    names = {f.name for f in own}
    return pa.schema([f for f in manifest_schema if f.name not in names] + own)


def conform(batch: pa.Table, schema: pa.Schema, columns: dict[str, pa.Array | pa.ChunkedArray] | None = None
            ) -> pa.Table:
    """``batch`` in ``schema``: ``columns`` replace or add columns, absent ones are null (no row is touched)."""
    columns = columns or {}
    arrays = []
    for field in schema:
        if field.name in columns:
            col = columns[field.name]
        elif field.name in batch.column_names:
            col = batch[field.name]
        else:
            col = pa.nulls(batch.num_rows, field.type)
        arrays.append(col if col.type == field.type else col.cast(field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


# --- secrets ---

def _secret_pattern(extra_params: Iterable[str]) -> str:
    """What any string that :func:`redact` would change contains (a superset is fine: redact decides)."""
    names = "|".join(re.escape(n) for n in (*SECRET_QUERY_PARAMS, *extra_params))
    return rf"(?i)(://[^/?#\s]*@|[?&;](?:{names})=)"


def redact_columns(table: pa.Table, extra_params: tuple[str, ...] = ()) -> pa.Table:
    """Secrets in URLs (``uri``, messages, string columns) replaced by ``***``, once a batch's URIs are read.

    A vectorised match finds the few values that hold a secret; only those go through
    :func:`redact`. ``clip_id`` is kept as it is: it is the clip's identity across runs.
    """
    pattern = _secret_pattern(extra_params)
    for i, field in enumerate(table.schema):
        if field.name == "clip_id" or not pa.types.is_string(field.type):
            continue
        col = _array(table.column(i))
        hit = pc.fill_null(pc.match_substring_regex(col, pattern), False)
        if not pc.any(hit).as_py():
            continue
        rows = np.flatnonzero(hit.to_numpy(zero_copy_only=False))
        clean = [redact(v, extra_params) for v in col.take(pa.array(rows)).to_pylist()]
        values = col.to_pylist()  # only for a column that holds a secret somewhere in this batch
        for r, v in zip(rows, clean):
            values[r] = v
        table = table.set_column(i, field, pa.array(values, field.type))
    return table
