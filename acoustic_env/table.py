"""The feature table: its schemas, its metadata, and the one reader every job uses.

``features/`` holds one row per clip that succeeded: the manifest's columns, decode
facts, and feature vectors as Arrow fixed-size lists of float32 whose names, shapes,
axes and provenance live in the schema metadata under ``acoustic_env``.
``errors/`` holds one row per clip that failed (``ERRORS_SCHEMA``).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa

METADATA_KEY = b"acoustic_env"

ERRORS_SCHEMA = pa.schema([
    ("clip_id", pa.string()),
    ("uri", pa.string()),
    ("stage", pa.string()),
    ("error_type", pa.string()),
    ("message", pa.string()),
    ("run_id", pa.string()),
    ("time", pa.timestamp("us", tz="UTC")),
])


def vector_type(length: int) -> pa.DataType:
    return pa.list_(pa.float32(), length)


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


def metadata_json(meta: dict[str, Any]) -> dict[bytes, bytes]:
    return {METADATA_KEY: json.dumps(meta, sort_keys=True).encode()}


def read_metadata(schema: pa.Schema) -> dict[str, Any]:
    """The acoustic-env metadata stored in a features/ part's schema."""
    raw = (schema.metadata or {}).get(METADATA_KEY)
    return json.loads(raw) if raw else {}
