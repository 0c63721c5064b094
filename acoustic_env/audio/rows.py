"""The row contract between pipeline stages, and the output table schemas.

Every stage receives and returns Arrow batches with the same manifest columns.
A row that failed carries ``error_stage``/``error_type``/``error_message`` and
is passed through untouched by later stages, so that the writer can put it in
errors/ instead of features/: no stage ever drops a row. The manifest itself may
hand over rows that already failed (a duplicate id, a file outside the allowed
roots), and it renames a column of its own that would collide with one the
pipeline writes (``pipeline_fields``).
"""

from __future__ import annotations

import traceback
from typing import Any, Callable

import numpy as np
import pyarrow as pa

from acoustic_env.errors import ClipError
from acoustic_env.storage import redact
from acoustic_env.table import vector_type

ERROR_COLUMNS = ("error_stage", "error_type", "error_message")
DECODE_COLUMNS = {
    "orig_sample_rate": pa.int32(),
    "channels": pa.int32(),
    "orig_duration_s": pa.float64(),
    "duration_s": pa.float64(),
    "is_silent": pa.bool_(),
}
AUDIO = "audio"
CPU_PREFIX = "_cpu_"  # per-row CPU seconds per stage; summed by the writer, never stored



def is_error(row: dict[str, Any]) -> bool:
    return row.get("error_type") is not None


def mark_error(row: dict[str, Any], exc: BaseException, stage: str) -> dict[str, Any]:
    """Turn an exception into the error columns of a row (never raises)."""
    if isinstance(exc, ClipError):
        row.update(error_stage=exc.stage, error_type=exc.error_type, error_message=exc.message)
    else:
        where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
        loc = f" at {where.filename.rsplit('/', 1)[-1]}:{where.lineno}" if where else ""
        row.update(error_stage=stage, error_type="internal", error_message=f"{type(exc).__name__}: {exc}{loc}")
    return row


def process_rows(batch: pa.Table, fn: Callable[[dict[str, Any]], dict[str, Any]], stage: str) -> list[dict[str, Any]]:
    """Apply ``fn`` to each healthy row; failures become error rows, error rows pass through."""
    out = []
    for row in batch.to_pylist():
        if not is_error(row):
            try:
                row = fn(row)
            except Exception as exc:  # noqa: BLE001 - a bad clip must never take the batch down
                row = mark_error(row, exc, stage)
        out.append(row)
    return out


def pipeline_fields(vectors: dict[str, int], stages: tuple[str, ...]) -> list[pa.Field]:
    """The columns the stages add to the manifest's (a manifest column of one of these names is renamed)."""
    fields = [pa.field(n, t) for n, t in DECODE_COLUMNS.items()]
    fields += [pa.field(n, vector_type(d)) for n, d in vectors.items()]
    fields.append(pa.field("nonfinite_features", pa.int32()))
    fields.append(pa.field(AUDIO, pa.large_list(pa.float32())))
    fields += [pa.field(n, pa.string()) for n in ERROR_COLUMNS]
    fields += [pa.field(CPU_PREFIX + s, pa.float64()) for s in stages]
    return fields


def row_schema(manifest_schema: pa.Schema, vectors: dict[str, int], stages: tuple[str, ...]) -> pa.Schema:
    """The one schema every stage reads and writes: later stages fill columns earlier ones left null.

    The manifest's error columns (rows it rejected) are the pipeline's own.
    """
    own = pipeline_fields(vectors, stages)
    names = {f.name for f in own}
    return pa.schema([f for f in manifest_schema if f.name not in names] + own)


def redact_row(row: dict[str, Any], extra_params: tuple[str, ...] = ()) -> dict[str, Any]:
    """Secrets in URLs (``uri``, messages, string columns) replaced by ``***``, once a row is read.

    ``clip_id`` is kept as it is: it is the clip's identity across runs.
    """
    for key, value in row.items():
        if isinstance(value, str) and key != "clip_id":
            row[key] = redact(value, extra_params)
    return row


def to_table(rows: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    """Rows (dicts, numpy vectors allowed) → a table of the row schema."""
    columns = []
    for field in schema:
        values = [r.get(field.name) for r in rows]
        if pa.types.is_fixed_size_list(field.type) or pa.types.is_large_list(field.type):
            values = [None if v is None else np.asarray(v, dtype=np.float32) for v in values]
        columns.append(pa.array(values, type=field.type))
    return pa.Table.from_arrays(columns, schema=schema)
