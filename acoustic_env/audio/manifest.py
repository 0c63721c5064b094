"""Clip lists → one Arrow table of clips (the Clip contract of DESIGN.md).

Three inputs, one output schema:

* AudioSet segment CSVs in their published format (three ``#`` header lines,
  then ``YTID, start_seconds, end_seconds, "mid,mid,..."``). Each row is mapped
  to a file by a template, ``{audio_root}/{YTID}_{start_ms}.{ext}`` by default;
  ``{ext}`` is resolved against a listing of the directory, so a collection of
  mixed .flac/.wav/.mp3 files works without renaming. With ``cut_segments`` the
  file holds the whole video and decode cuts ``start_s..end_s`` out of it.
* Generic CSV/Parquet/JSONL manifests with ``uri`` and ``labels`` columns
  (optional ``clip_id``, ``start_s``, ``end_s``, ``group``; other columns are
  carried through to the feature table).
* A directory of audio files (recursively), unlabelled.

Labels are stored as given (MIDs, AudioSet display names or any label strings):
turning them into classes is the task's business (acoustic_env.audioset.tasks),
so reading a manifest never needs the ontology.

Nothing is dropped or merged: every row of the list is a row of the table.
Ids derived from file names (no ``clip_id`` given) that two files share get a
suffix from the file's URI (``x-1a2b3c4d``), the same in every run; a row that
repeats an id of an earlier row, or whose file lies outside ``allowed_roots``,
is kept as a failed row (``duplicate_id``, ``outside_allowed_roots``) that the
pipeline writes to errors/. A pass-through column named like a column the
pipeline writes (``duration_s``, ``error_type``, ...) is carried as
``manifest_<name>``. CSV files may start with a UTF-8 byte-order mark.

Memory: a clip list can hold millions of rows (AudioSet's unbalanced train list has
2 million), so rows never become Python dicts all at once. Generic CSVs are parsed by
pyarrow.csv, pass-through columns stay Arrow columns, ids and duplicates are found
with Arrow group-bys, and what needs Python per row (an id from a file name, an
AudioSet template, a path under ``allowed_roots``) runs ``CHUNK`` rows at a time.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import posixpath
from collections import defaultdict
from dataclasses import dataclass
from typing import IO, Any, Callable, Collection, Iterator
from urllib.parse import urlsplit

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from acoustic_env.audio.rows import CPU_PREFIX, ERROR_COLUMNS
from acoustic_env.runs import first_occurrence
from acoustic_env.storage import (
    join,
    redact,
    strip_protocol_keep,
    transport_failure,
    within_roots,
)

CLIP_SCHEMA = pa.schema(
    [
        ("clip_id", pa.string()),
        ("uri", pa.string()),
        ("start_s", pa.float64()),
        ("end_s", pa.float64()),
        ("labels", pa.list_(pa.string())),
        ("group", pa.string()),
    ]
)
AUDIO_EXTENSIONS = ("flac", "wav", "ogg", "mp3", "m4a", "opus", "aiff", "aif")
WHOLE_VIDEO_TEMPLATE = "{audio_root}/{YTID}.{ext}"


class ManifestError(ValueError):
    """The clip list cannot be read; the message names the file and the row."""


@dataclass(frozen=True)
class Manifest:
    """Every row of a clip list; the rows it could not accept carry their error."""

    table: pa.Table  # CLIP_SCHEMA columns, pass-through columns, then ERROR_COLUMNS (null unless rejected)
    duplicates: int  # rows rejected as duplicate_id
    ids_made_unique: int  # derived ids given a suffix because several files shared them
    renamed_columns: dict[str, str]  # pass-through columns renamed away from the pipeline's names
    source: str
    format: str


def _open(uri: str, mode: str = "rb", **kwargs: Any) -> IO[Any]:
    """Open through the URI's filesystem (``fsspec.open`` would take a ``?`` in a URL for a glob)."""
    fs, path = fsspec.core.url_to_fs(uri)
    return fs.open(path, mode, **kwargs)


def detect_format(uri: str) -> str:
    base = uri.split("?")[0].rstrip("/").lower()
    fs, path = fsspec.core.url_to_fs(uri)
    if fs.isdir(path):
        return "directory"
    if base.endswith((".parquet", ".pq")):
        return "parquet"
    if base.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    if base.endswith((".csv", ".tsv", ".txt")):
        with _open(uri, "rt", encoding="utf-8-sig", errors="replace") as fh:
            first = fh.readline()
        return "audioset" if first.startswith("#") else "csv"
    raise ManifestError(f"{uri}: cannot tell the manifest format from its name; pass --manifest-format")


#: Rows turned into Python objects at once where a rule needs Python per row.
CHUNK = 16_384


def read_audioset_csv(uri: str) -> Iterator[dict[str, Any]]:
    """Parse an AudioSet segment list: ``#`` comment lines, then 4 fields per row (rows yielded one by one)."""
    with _open(uri, "rt", encoding="utf-8-sig") as fh:
        reader = csv.reader((line for line in fh if not line.startswith("#") and line.strip()),
                            skipinitialspace=True)
        for n, fields in enumerate(reader, start=1):
            if len(fields) != 4:
                raise ManifestError(f"{uri}: data row {n} has {len(fields)} fields, expected 4 "
                                    "(YTID, start_seconds, end_seconds, \"labels\")")
            ytid, start, end, labels = fields
            try:
                start_s, end_s = float(start), float(end)
            except ValueError:
                raise ManifestError(f"{uri}: data row {n}: start/end are not numbers: {start!r}, {end!r}") from None
            yield {"YTID": ytid.strip(), "start_s": start_s, "end_s": end_s,
                   "labels": [m.strip() for m in labels.split(",") if m.strip()]}


def _fmt_seconds(x: float) -> str:
    return f"{x:.3f}"


def _ms(seconds: float) -> int | str:
    """Milliseconds for ids and file names; "nan"/"inf" stay text (decode reports them as bad_segment)."""
    return int(round(seconds * 1000)) if abs(seconds) != float("inf") and seconds == seconds else str(seconds)


def _render(template: str, audio_root: str | None, row: dict[str, Any], ext: str) -> str:
    return template.format(audio_root=(audio_root or ".").rstrip("/"), YTID=row["YTID"], start_ms=_ms(row["start_s"]),
                           end_ms=_ms(row["end_s"]), start_seconds=_fmt_seconds(row["start_s"]),
                           end_seconds=_fmt_seconds(row["end_s"]), ext=ext)


def _listing(directory: str) -> set[str]:
    """Basenames present in a directory (one listing call; empty if it does not exist)."""
    fs, path = fsspec.core.url_to_fs(directory)
    try:
        return {posixpath.basename(p.rstrip("/")) for p in fs.ls(path, detail=False)}
    except (FileNotFoundError, NotADirectoryError):
        return set()


def resolve_audioset_uris(rows: list[dict[str, Any]], audio_root: str | None, template: str,
                          extensions: tuple[str, ...], listings: dict[str, set[str]] | None = None) -> list[str]:
    """Map each row to a file, trying each extension in order against a listing (kept in ``listings``)."""
    if "{ext}" not in template:
        return [_render(template, audio_root, r, "") for r in rows]
    listings = {} if listings is None else listings
    first = [_render(template, audio_root, r, extensions[0]) for r in rows]
    by_dir: dict[str, list[int]] = defaultdict(list)
    for i, uri in enumerate(first):
        by_dir[posixpath.dirname(uri)].append(i)
    out = list(first)
    for directory, idx in by_dir.items():
        if directory not in listings:
            listings[directory] = _listing(directory)
        present = listings[directory]
        for i in idx:
            for ext in extensions:
                candidate = _render(template, audio_root, rows[i], ext)
                if posixpath.basename(candidate) in present:
                    out[i] = candidate
                    break
    return out


def _audioset_table(uri: str, audio_root: str | None, template: str, extensions: tuple[str, ...],
                    limit: int | None) -> pa.Table:
    """An AudioSet list as CLIP_SCHEMA columns, ``CHUNK`` rows of Python objects at a time."""
    listings: dict[str, set[str]] = {}
    chunks: list[pa.Table] = []

    def flush(rows: list[dict[str, Any]]) -> None:
        uris = resolve_audioset_uris(rows, audio_root, template, extensions, listings)
        chunks.append(pa.table({
            "clip_id": [f"{r['YTID']}_{_ms(r['start_s'])}" for r in rows], "uri": uris,
            "start_s": [r["start_s"] for r in rows], "end_s": [r["end_s"] for r in rows],
            "labels": [r["labels"] for r in rows], "group": [r["YTID"] for r in rows]}, schema=CLIP_SCHEMA))

    rows: list[dict[str, Any]] = []
    for n, row in enumerate(read_audioset_csv(uri), start=1):
        rows.append(row)
        if len(rows) == CHUNK:
            flush(rows)
            rows = []
        if limit and n >= limit:
            break
    if rows or not chunks:
        flush(rows)
    return pa.concat_tables(chunks)


def _labels_value(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value if str(v).strip()]
    text = str(value).strip()
    if text.startswith("["):
        return [str(v).strip() for v in json.loads(text)]
    sep = ";" if ";" in text else ","
    return [t.strip() for t in text.split(sep) if t.strip()]


def _read_generic(uri: str, fmt: str) -> pa.Table:
    if fmt == "parquet":
        with _open(uri) as fh:
            return pq.read_table(fh)
    if fmt == "jsonl":
        with _open(uri) as fh:
            return pajson.read_json(io.BytesIO(fh.read()))
    with _open(uri, "rt", encoding="utf-8-sig") as fh:
        header = next(csv.reader(fh), None)
    if not header:
        return pa.table({"uri": pa.array([], pa.string())})
    # every column as text, as written (a value is never guessed into a number or a date);
    # parsed from the stream, never held as one string
    with _open(uri, "rb") as fh:
        return pacsv.read_csv(fh, read_options=pacsv.ReadOptions(use_threads=False), parse_options=pacsv.ParseOptions(newlines_in_values=True),
                              convert_options=pacsv.ConvertOptions(column_types=dict.fromkeys(header, pa.string()),
                                                                   strings_can_be_null=False))


def _map_rows(table: pa.Table, columns: list[str], fn: Callable[..., Any], type_: pa.DataType,
              offset: int = 0) -> pa.ChunkedArray:
    """``fn(row_number, *values)`` for each row, ``CHUNK`` rows of Python objects at a time."""
    out = []
    for start in range(0, table.num_rows, CHUNK):
        part = table.slice(start, CHUNK)
        values = [part[c].to_pylist() if c in part.column_names else [None] * part.num_rows for c in columns]
        out.append(pa.array([fn(offset + start + k + 1, *v) for k, v in enumerate(zip(*values))], type_))
    return pa.chunked_array(out, type_)


def _generic_table(table: pa.Table, uri: str, audio_root: str | None) -> tuple[pa.Table, list[str]]:
    """A generic manifest's CLIP_SCHEMA columns; pass-through columns are kept as the Arrow columns they are."""
    if "uri" not in table.column_names:
        raise ManifestError(f"{uri}: a generic manifest needs a 'uri' column (has: {', '.join(table.column_names)})")
    extra = [c for c in table.column_names if c not in CLIP_SCHEMA.names]

    def clip_uri(n: int, value: Any) -> str:
        text = str(value or "").strip()
        if not text:
            raise ManifestError(f"{uri}: row {n} has an empty 'uri'")
        if "://" not in text and not text.startswith("/"):
            # relative to --audio-root, else to the working directory; stored absolute either way,
            # since Ray's workers and later readers run elsewhere
            text = join(audio_root, text) if audio_root else os.path.abspath(text)
        return text

    def text_or_none(n: int, value: Any) -> str | None:
        return None if value in (None, "") else str(value)

    columns = {
        "clip_id": _map_rows(table, ["clip_id"], text_or_none, pa.string()),
        "uri": _map_rows(table, ["uri"], clip_uri, pa.string()),
        "start_s": _map_rows(table, ["start_s"], lambda n, v: _float_or_none(v, uri, n, "start_s"), pa.float64()),
        "end_s": _map_rows(table, ["end_s"], lambda n, v: _float_or_none(v, uri, n, "end_s"), pa.float64()),
        "labels": _map_rows(table, ["labels"], lambda n, v: _labels_value(v), pa.list_(pa.string())),
        "group": _map_rows(table, ["group"], text_or_none, pa.string()),
    }
    out = pa.table(columns, schema=CLIP_SCHEMA)
    for c in extra:
        out = out.append_column(c, table[c])
    return out, extra


def _float_or_none(value: Any, uri: str, n: int, name: str) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ManifestError(f"{uri}: row {n}: {name} is not a number: {value!r}") from None


def _directory_table(uri: str) -> pa.Table:
    """Every audio file below ``uri``; ids are left to ``_derive_ids`` (relative path, ``/`` → ``__``)."""
    fs, root = fsspec.core.url_to_fs(uri)
    files = sorted(p for p in fs.find(root) if p.rsplit(".", 1)[-1].lower() in AUDIO_EXTENSIONS)
    n = len(files)
    table = pa.table({"clip_id": pa.nulls(n, pa.string()), "uri": [strip_protocol_keep(uri, p) for p in files],
                      "start_s": pa.nulls(n, pa.float64()), "end_s": pa.nulls(n, pa.float64()),
                      "labels": pa.array([[]] * n, pa.list_(pa.string())), "group": pa.nulls(n, pa.string())},
                     schema=CLIP_SCHEMA)
    return table.append_column("_rel", pa.array([posixpath.relpath(p, root) for p in files], pa.string()))


def _replace(column: pa.ChunkedArray | pa.Array, rows: np.ndarray, values: list[Any]) -> pa.Array:
    """``column`` with ``values`` at ``rows`` (few rows: a rejected or renamed clip)."""
    col = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if not len(rows):
        return col
    mask = np.zeros(len(col), dtype=bool)
    mask[rows] = True
    order = np.argsort(rows, kind="stable")  # replace_with_mask takes the replacements in row order
    return pc.replace_with_mask(col, pa.array(mask), pa.array([values[k] for k in order], col.type))


def _counts(ids: pa.Array) -> np.ndarray:
    """For each row, how many rows share its value."""
    first = first_occurrence(ids)
    return np.bincount(first, minlength=len(first))[first]


def _derive_ids(table: pa.Table) -> tuple[pa.Table, int]:
    """Fill in the ids of rows that have none, from the file name; returns how many needed a suffix.

    A name shared by several files (``a/x.wav`` and ``b/x.wav``, ``x.wav`` and ``x.flac``)
    gets ``-<8 hex digits of the URI's hash>`` on each: stable across runs whatever the
    order, so a resumed run finds its clips again. Secrets in the URL (its query, its
    user-info) never reach the id.
    """
    derived = table["clip_id"].is_null().to_numpy(zero_copy_only=False)

    def from_name(n: int, clip_id: str | None, uri: str, rel: str | None) -> str:
        if clip_id is not None:
            return clip_id
        if rel is not None:
            return posixpath.splitext(rel)[0].replace("/", "__")
        path = urlsplit(uri).path if "://" in uri else uri
        return posixpath.splitext(posixpath.basename(path))[0]

    ids = _map_rows(table, ["clip_id", "uri", "_rel"], from_name, pa.string()).combine_chunks() \
        if derived.any() else table["clip_id"].combine_chunks()
    shared = np.flatnonzero(derived & (_counts(ids) > 1)) if derived.any() else np.zeros(0, dtype=np.int64)
    uris = table["uri"].take(pa.array(shared, pa.int64())).to_pylist()
    suffixed = [f"{i}-{hashlib.sha1(redact(u).encode()).hexdigest()[:8]}"
                for i, u in zip(ids.take(pa.array(shared, pa.int64())).to_pylist(), uris)]
    table = table.set_column(table.schema.get_field_index("clip_id"), "clip_id", _replace(ids, shared, suffixed))
    if "_rel" in table.column_names:
        table = table.drop_columns(["_rel"])
    return table, len(shared)


def _reject(found: dict[int, tuple[str, str]], error_type: str, row: int, message: str) -> None:
    found[row] = (error_type, message)


def _reject_duplicates(table: pa.Table, found: dict[int, tuple[str, str]]) -> pa.Table:
    """A row repeating an earlier row's id becomes a duplicate_id error naming both files."""
    ids = table["clip_id"].combine_chunks()
    n = len(ids)
    first_row = first_occurrence(ids)
    repeats = np.flatnonzero(first_row != np.arange(n))
    uris = table["uri"].combine_chunks()
    new_ids = []
    for r in repeats.tolist():
        clip_id, earlier = ids[r].as_py(), int(first_row[r])
        new_ids.append(f"{clip_id}#row{r + 1}")  # its own id: errors/ holds one row per id
        _reject(found, "duplicate_id", r, f"row {r + 1} ({uris[r].as_py()}) has the clip_id {clip_id!r} of row "
                                          f"{earlier + 1} ({uris[earlier].as_py()}); give each clip its own clip_id")
    return table.set_column(table.schema.get_field_index("clip_id"), "clip_id", _replace(ids, repeats, new_ids))


def _reject_outside_roots(table: pa.Table, allowed_roots: tuple[str, ...], found: dict[int, tuple[str, str]]) -> None:
    outside = _map_rows(table, ["uri"], lambda n, u: not within_roots(u, allowed_roots), pa.bool_())
    for r in np.flatnonzero(outside.to_numpy()).tolist():
        if r not in found:
            uri = table["uri"][r].as_py()
            _reject(found, "outside_allowed_roots", r,
                    f"{uri} is not under any of allowed_roots ({', '.join(allowed_roots)})")


def _error_columns(n: int, found: dict[int, tuple[str, str]]) -> dict[str, pa.Array]:
    rows = np.array(sorted(found), dtype=np.int64)
    columns = {name: pa.nulls(n, pa.string()) for name in ERROR_COLUMNS}
    if not found:
        return columns
    return {"error_stage": _replace(columns["error_stage"], rows, ["manifest"] * len(rows)),
            "error_type": _replace(columns["error_type"], rows, [found[r][0] for r in rows.tolist()]),
            "error_message": _replace(columns["error_message"], rows, [found[r][1] for r in rows.tolist()])}


def _rename_reserved(table: pa.Table, extra: list[str], reserved: Collection[str]) -> tuple[pa.Table, dict[str, str]]:
    """Rename pass-through columns named like a pipeline column to ``manifest_<name>``; returns old → new."""
    taken = {*CLIP_SCHEMA.names, *extra, *reserved, *ERROR_COLUMNS}
    renamed: dict[str, str] = {}
    for c in extra:
        if c in reserved or c in ERROR_COLUMNS or c.startswith(CPU_PREFIX):
            new = "manifest_" + c
            while new in taken:
                new = "manifest_" + new
            taken.add(new)
            renamed[c] = new
    return table.rename_columns([renamed.get(c, c) for c in table.column_names]), renamed


def read_manifest(uri: str, audio_root: str | None = None, fmt: str = "auto",
                  template: str = "{audio_root}/{YTID}_{start_ms}.{ext}",
                  extensions: tuple[str, ...] = AUDIO_EXTENSIONS, cut_segments: bool = False,
                  limit: int | None = None, *, allowed_roots: tuple[str, ...] = (),
                  reserved: Collection[str] = (), redact_params: tuple[str, ...] = ()) -> Manifest:
    """Read any supported clip list into a Manifest (see the module docstring for ids and rejected rows).

    ``reserved``: the columns the caller's pipeline writes; ``redact_params``: secret
    query parameters to hide in a ManifestError's message, besides the usual ones.
    """
    try:
        return _read_manifest(uri, audio_root, fmt, template, extensions, cut_segments, limit, allowed_roots,
                              reserved)
    except ManifestError as exc:
        raise ManifestError(redact(str(exc), redact_params)) from None


def _read_manifest(uri: str, audio_root: str | None, fmt: str, template: str, extensions: tuple[str, ...],
                   cut_segments: bool, limit: int | None, allowed_roots: tuple[str, ...],
                   reserved: Collection[str]) -> Manifest:
    extra: list[str] = []
    try:
        fmt = detect_format(uri) if fmt == "auto" else fmt
        if fmt == "audioset":
            if cut_segments and template == "{audio_root}/{YTID}_{start_ms}.{ext}":
                template = WHOLE_VIDEO_TEMPLATE
            table = _audioset_table(uri, audio_root or posixpath.dirname(uri), template, extensions, limit)
        elif fmt == "directory":
            table = _directory_table(uri)
        elif fmt in ("csv", "parquet", "jsonl"):
            raw = _read_generic(uri, fmt)
            table, extra = _generic_table(raw.slice(0, limit) if limit else raw, uri, audio_root)
        else:
            raise ManifestError(f"{uri}: unknown manifest format {fmt!r}")
    except OSError as exc:  # local, HTTP (refused, 5xx, timeout) and object-store failures alike
        error_type, reason = transport_failure(exc)
        if error_type == "missing_file":
            raise ManifestError(f"{uri}: manifest not found") from None
        raise ManifestError(f"{uri}: cannot read the manifest: {reason}") from None
    except (UnicodeDecodeError, pa.ArrowInvalid, csv.Error, json.JSONDecodeError) as exc:
        raise ManifestError(f"{uri}: cannot parse as {fmt}: {exc}") from None
    if limit:
        table = table.slice(0, limit)
    table, renamed = _rename_reserved(table, extra, reserved)  # first: the error columns below are the pipeline's
    table, made_unique = _derive_ids(table)
    found: dict[int, tuple[str, str]] = {}
    table = _reject_duplicates(table, found)
    duplicates = len(found)
    if allowed_roots:
        _reject_outside_roots(table, allowed_roots, found)
    for name, column in _error_columns(table.num_rows, found).items():
        table = table.append_column(pa.field(name, pa.string()), column)
    return Manifest(table=table, duplicates=duplicates, ids_made_unique=made_unique,
                    renamed_columns=renamed, source=uri, format=fmt)


def label_counts(table: pa.Table, mid: str) -> int:
    """How many clips carry a MID (for checking a list against its published counts)."""
    return sum(mid in labels for labels in table["labels"].to_pylist())
