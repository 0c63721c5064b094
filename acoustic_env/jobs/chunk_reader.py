"""The chunks the chunk-mode near-duplicate finder compares (``learn.duplicate_chunks``), read from each clip's
log-mel image.

Read from the table's ``logmel`` column where it holds the 64-band log-mel the chunk
threshold was measured on; otherwise (no image column, an MFCC image, another band count,
a row without an image) computed from the clip's audio: its ``uri`` decoded again with the
parameters the table was extracted with (``learn.artifact.table_extraction``), as the file
is, so a table extracted with ``--cut-segments`` needs its images. A clip that cannot be
read any more (moved, deleted) is counted, and named once for the console. Here, not in
learn/, because decoding audio is the jobs' (``tests/test_layers.py``).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa

from acoustic_env.audio.decode import decode_clip
from acoustic_env.config import DecodeParams, from_dict
from acoustic_env.errors import ClipError
from acoustic_env.features.logmel import COLUMN as LOGMEL_COLUMN
from acoustic_env.features.logmel import LOGMEL, logmel
from acoustic_env.learn.artifact import table_extraction
from acoustic_env.learn.duplicate_chunks import ClipChunks, chunk_summaries
from acoustic_env.table import TableInfo, decode_images


def _column_is_logmel(table: TableInfo) -> bool:
    """The table's image column holds the 64-band log-mel the chunk threshold was measured on (not an
    MFCC image, not another band count)."""
    meta = table.columns.get(LOGMEL_COLUMN) or {}  # none: a table from before the image kinds, a log-mel
    return (LOGMEL_COLUMN in table.schema.names and meta.get("image", "logmel") == "logmel"
            and int(meta.get("bands", LOGMEL.bands)) == LOGMEL.bands)


def read_chunks(table: TableInfo, clips: pa.Table) -> ClipChunks:
    """The chunk summaries of ``clips`` (``FeatureSet.clips``: clip_id, uri, start_s, end_s): from the table's log-mel
    images where it has them, otherwise from each clip's audio, decoded again (a few threads)."""
    ids = clips["clip_id"].to_pylist()
    images: dict[str, np.ndarray | None] = {}
    if _column_is_logmel(table):
        read = table.dataset().to_table(columns=["clip_id", LOGMEL_COLUMN])
        images = dict(zip(read["clip_id"].to_pylist(), decode_images(read[LOGMEL_COLUMN])))
    params = from_dict(DecodeParams, table_extraction(table.source)["decode"])
    rows = list(zip(ids, clips["uri"].to_pylist(), clips["start_s"].to_pylist(), clips["end_s"].to_pylist()))

    def frames(row: tuple[str, str | None, float | None, float | None]) -> tuple[np.ndarray | None, str]:
        clip_id, uri, start, end = row
        if images.get(clip_id) is not None:
            return chunk_summaries(images[clip_id]), "logmel column"
        if not uri:
            return None, "no uri"
        try:
            return chunk_summaries(logmel(decode_clip(uri, params, start, end).audio)), "audio"
        except (ClipError, OSError) as exc:
            return None, str(exc)

    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        done = list(pool.map(frames, rows))
    sources = {"logmel column": 0, "audio": 0, "unread": 0}
    first_unread = None
    for clip_id, (found, why) in zip(ids, done):
        sources["unread" if found is None else why] += 1
        if found is None and first_unread is None:
            first_unread = f"{clip_id}: {why}"
    return ClipChunks([c for c, _ in done], sources, first_unread)
