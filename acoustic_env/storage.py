"""One filesystem layer for local paths, s3://, gs:// and https:// (fsspec).

Credentials and endpoints come from the environment (``AWS_ACCESS_KEY_ID``,
``AWS_ENDPOINT_URL``, instance profiles, ...) through the providers' standard
chains; nothing here accepts or records a secret.

Parquet parts are written atomically: a local file goes to a hidden temporary
name and is renamed, an object-store PUT is atomic by itself. A reader (or a
resumed run) therefore never sees half a part, which is what makes
"every clip exactly once" hold across interrupted runs.
"""

from __future__ import annotations

import io
import json
import posixpath
import uuid
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq


def filesystem(uri: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The filesystem and the protocol-less path of a URI."""
    return fsspec.core.url_to_fs(uri)


def is_local(uri: str) -> bool:
    return "://" not in uri or uri.startswith("file://")


def join(base: str, *parts: str) -> str:
    return posixpath.join(base.rstrip("/"), *parts)


def strip_protocol_keep(reference: str, path: str) -> str:
    """Turn a protocol-less path returned by a filesystem back into a URI like ``reference``."""
    if "://" in reference and not reference.startswith("file://"):
        protocol = reference.split("://", 1)[0]
        return f"{protocol}://{path}"
    return path


def write_parquet(table: pa.Table, uri: str) -> None:
    """Write one Parquet file atomically (temp name + rename locally; single PUT remotely)."""
    fs, path = filesystem(uri)
    fs.makedirs(posixpath.dirname(path), exist_ok=True)
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    data = buf.getvalue()
    if is_local(uri):
        tmp = posixpath.join(posixpath.dirname(path), f".tmp-{uuid.uuid4().hex}")
        with fs.open(tmp, "wb") as fh:
            fh.write(data)
        fs.mv(tmp, path)
    else:
        fs.pipe_file(path, data)


def list_parts(directory: str) -> list[str]:
    """Completed Parquet parts in a directory (hidden temporaries excluded), as URIs, sorted."""
    fs, path = filesystem(directory)
    fs.invalidate_cache(path)  # other processes write here: a cached listing would miss their parts
    try:
        names = fs.ls(path, detail=False)
    except FileNotFoundError:
        return []
    parts = [p for p in names if p.endswith(".parquet") and not posixpath.basename(p).startswith(".")]
    return sorted(strip_protocol_keep(directory, p) for p in parts)


def read_parts(directory: str, columns: list[str] | None = None) -> pa.Table | None:
    """Concatenate the parts of a directory (None if there are none)."""
    tables = []
    for part in list_parts(directory):
        fs, path = filesystem(part)
        with fs.open(path, "rb") as fh:
            tables.append(pq.read_table(fh, columns=columns))
    if not tables:
        return None
    return pa.concat_tables(tables, promote_options="permissive")


def read_part(uri: str, columns: list[str] | None = None) -> pa.Table:
    fs, path = filesystem(uri)
    with fs.open(path, "rb") as fh:
        return pq.read_table(fh, columns=columns)


def delete(uri: str) -> None:
    fs, path = filesystem(uri)
    fs.rm(path)


def write_json(obj: Any, uri: str) -> None:
    fs, path = filesystem(uri)
    fs.makedirs(posixpath.dirname(path), exist_ok=True)
    fs.pipe_file(path, json.dumps(obj, indent=2, sort_keys=True, default=str).encode())


def read_json(uri: str) -> Any:
    fs, path = filesystem(uri)
    return json.loads(fs.cat_file(path))
