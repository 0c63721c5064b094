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
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import posixpath
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import IO, Any, Collection
from urllib.parse import urlsplit

import fsspec
import pyarrow as pa
import pyarrow.json as pajson
import pyarrow.parquet as pq

from acoustic_env.audio.rows import CPU_PREFIX, ERROR_COLUMNS
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


def read_audioset_csv(uri: str) -> list[dict[str, Any]]:
    """Parse an AudioSet segment list: ``#`` comment lines, then 4 fields per row."""
    rows = []
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
            rows.append({"YTID": ytid.strip(), "start_s": start_s, "end_s": end_s,
                         "labels": [m.strip() for m in labels.split(",") if m.strip()]})
    return rows


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
                          extensions: tuple[str, ...]) -> list[str]:
    """Map each row to a file, trying each extension in order against a listing."""
    if "{ext}" not in template:
        return [_render(template, audio_root, r, "") for r in rows]
    first = [_render(template, audio_root, r, extensions[0]) for r in rows]
    by_dir: dict[str, list[int]] = defaultdict(list)
    for i, uri in enumerate(first):
        by_dir[posixpath.dirname(uri)].append(i)
    out = list(first)
    for directory, idx in by_dir.items():
        present = _listing(directory)
        for i in idx:
            for ext in extensions:
                candidate = _render(template, audio_root, rows[i], ext)
                if posixpath.basename(candidate) in present:
                    out[i] = candidate
                    break
    return out


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
        rows = list(csv.DictReader(fh))
    if not rows:
        return pa.table({"uri": pa.array([], pa.string())})
    return pa.Table.from_pylist(rows)


def _generic_rows(table: pa.Table, uri: str, audio_root: str | None) -> tuple[list[dict[str, Any]], list[str]]:
    if "uri" not in table.column_names:
        raise ManifestError(f"{uri}: a generic manifest needs a 'uri' column (has: {', '.join(table.column_names)})")
    extra = [c for c in table.column_names if c not in CLIP_SCHEMA.names]
    rows = []
    for n, rec in enumerate(table.to_pylist(), start=1):
        clip_uri = str(rec["uri"] or "").strip()
        if not clip_uri:
            raise ManifestError(f"{uri}: row {n} has an empty 'uri'")
        if "://" not in clip_uri and not clip_uri.startswith("/"):
            # relative to --audio-root, else to the working directory; stored absolute either way,
            # since Ray's workers and later readers run elsewhere
            clip_uri = join(audio_root, clip_uri) if audio_root else os.path.abspath(clip_uri)
        row = {
            "clip_id": None if rec.get("clip_id") in (None, "") else str(rec["clip_id"]), "uri": clip_uri,
            "start_s": _float_or_none(rec.get("start_s"), uri, n, "start_s"),
            "end_s": _float_or_none(rec.get("end_s"), uri, n, "end_s"),
            "labels": _labels_value(rec.get("labels")),
            "group": None if rec.get("group") in (None, "") else str(rec["group"]),
        }
        row.update({c: rec[c] for c in extra})
        rows.append(row)
    return rows, extra


def _float_or_none(value: Any, uri: str, n: int, name: str) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ManifestError(f"{uri}: row {n}: {name} is not a number: {value!r}") from None


def _directory_rows(uri: str) -> list[dict[str, Any]]:
    """Every audio file below ``uri``; ids are left to ``_derive_ids`` (relative path, ``/`` → ``__``)."""
    fs, root = fsspec.core.url_to_fs(uri)
    files = sorted(p for p in fs.find(root) if p.rsplit(".", 1)[-1].lower() in AUDIO_EXTENSIONS)
    return [{"clip_id": None, "uri": strip_protocol_keep(uri, p), "start_s": None, "end_s": None,
             "labels": [], "group": None, "_rel": posixpath.relpath(p, root)} for p in files]


def _derive_ids(rows: list[dict[str, Any]]) -> int:
    """Fill in the ids of rows that have none, from the file name; returns how many needed a suffix.

    A name shared by several files (``a/x.wav`` and ``b/x.wav``, ``x.wav`` and ``x.flac``)
    gets ``-<8 hex digits of the URI's hash>`` on each: stable across runs whatever the
    order, so a resumed run finds its clips again. Secrets in the URL (its query, its
    user-info) never reach the id.
    """
    derived = [r for r in rows if r["clip_id"] is None]
    for r in derived:
        rel = r.pop("_rel", None)
        if rel is not None:
            r["clip_id"] = posixpath.splitext(rel)[0].replace("/", "__")
        else:
            path = urlsplit(r["uri"]).path if "://" in r["uri"] else r["uri"]
            r["clip_id"] = posixpath.splitext(posixpath.basename(path))[0]
    counts = Counter(r["clip_id"] for r in rows)
    shared = [r for r in derived if counts[r["clip_id"]] > 1]
    for r in shared:
        r["clip_id"] += "-" + hashlib.sha1(redact(r["uri"]).encode()).hexdigest()[:8]
    return len(shared)


def _reject(row: dict[str, Any], error_type: str, message: str) -> None:
    row.update(error_stage="manifest", error_type=error_type, error_message=message)


def _reject_duplicates(rows: list[dict[str, Any]]) -> int:
    """A row repeating an earlier row's id becomes a duplicate_id error naming both files; returns how many."""
    first: dict[str, int] = {}
    rejected = 0
    for n, r in enumerate(rows, start=1):
        clip_id = r["clip_id"]
        if clip_id not in first:
            first[clip_id] = n
            continue
        earlier = first[clip_id]
        r["clip_id"] = f"{clip_id}#row{n}"  # its own id: errors/ holds one row per id
        _reject(r, "duplicate_id", f"row {n} ({r['uri']}) has the clip_id {clip_id!r} of row {earlier} "
                                   f"({rows[earlier - 1]['uri']}); give each clip its own clip_id")
        rejected += 1
    return rejected


def _rename_reserved(rows: list[dict[str, Any]], extra: list[str], reserved: Collection[str]) -> dict[str, str]:
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
    for r in rows:
        for old, new in renamed.items():
            r[new] = r.pop(old)
    return renamed


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
            raw = read_audioset_csv(uri)
            if limit:
                raw = raw[:limit]
            if cut_segments and template == "{audio_root}/{YTID}_{start_ms}.{ext}":
                template = WHOLE_VIDEO_TEMPLATE
            uris = resolve_audioset_uris(raw, audio_root or posixpath.dirname(uri), template, extensions)
            rows = [{"clip_id": f"{r['YTID']}_{_ms(r['start_s'])}", "uri": u,
                     "start_s": r["start_s"], "end_s": r["end_s"], "labels": r["labels"], "group": r["YTID"]}
                    for r, u in zip(raw, uris)]
        elif fmt == "directory":
            rows = _directory_rows(uri)
        elif fmt in ("csv", "parquet", "jsonl"):
            rows, extra = _generic_rows(_read_generic(uri, fmt), uri, audio_root)
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
        rows = rows[:limit]
    renamed = _rename_reserved(rows, extra, reserved)  # first: the error columns below are the pipeline's
    extra = [renamed.get(c, c) for c in extra]
    for r in rows:
        r.update(dict.fromkeys(ERROR_COLUMNS))
    made_unique = _derive_ids(rows)
    duplicates = _reject_duplicates(rows)
    if allowed_roots:
        for r in rows:
            if r["error_type"] is None and not within_roots(r["uri"], allowed_roots):
                _reject(r, "outside_allowed_roots",
                        f"{r['uri']} is not under any of allowed_roots ({', '.join(allowed_roots)})")
    schema = CLIP_SCHEMA
    if extra:
        probe = pa.Table.from_pylist([{c: r[c] for c in extra} for r in rows]) if rows else None
        for c in extra:
            schema = schema.append(probe.schema.field(c) if probe is not None else pa.field(c, pa.string()))
    for c in ERROR_COLUMNS:
        schema = schema.append(pa.field(c, pa.string()))
    return Manifest(table=pa.Table.from_pylist(rows, schema=schema), duplicates=duplicates,
                    ids_made_unique=made_unique, renamed_columns=renamed, source=uri, format=fmt)


def label_counts(table: pa.Table, mid: str) -> int:
    """How many clips carry a MID (for checking a list against its published counts)."""
    return sum(mid in labels for labels in table["labels"].to_pylist())
