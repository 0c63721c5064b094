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

Labels may be MIDs or display names; names are mapped to MIDs through the
ontology, which is only loaded when some label is not a MID.
"""

from __future__ import annotations

import csv
import io
import json
import posixpath
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.json as pajson
import pyarrow.parquet as pq

from acoustic_env.audioset.ontology import ONTOLOGY_URL, is_mid, load_ontology
from acoustic_env.storage import join, strip_protocol_keep

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
    """The clips to process and what was set aside while reading them."""

    table: pa.Table  # CLIP_SCHEMA columns first, then pass-through columns
    duplicates: int  # rows dropped because their clip_id was already seen
    source: str
    format: str


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
        with fsspec.open(uri, "rt", encoding="utf-8", errors="replace") as fh:
            first = fh.readline()
        return "audioset" if first.startswith("#") else "csv"
    raise ManifestError(f"{uri}: cannot tell the manifest format from its name; pass --manifest-format")


def read_audioset_csv(uri: str) -> list[dict[str, Any]]:
    """Parse an AudioSet segment list: ``#`` comment lines, then 4 fields per row."""
    rows = []
    with fsspec.open(uri, "rt", encoding="utf-8") as fh:
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


def _render(template: str, audio_root: str | None, row: dict[str, Any], ext: str) -> str:
    start_ms = int(round(row["start_s"] * 1000))
    end_ms = int(round(row["end_s"] * 1000))
    return template.format(audio_root=(audio_root or ".").rstrip("/"), YTID=row["YTID"], start_ms=start_ms,
                           end_ms=end_ms, start_seconds=_fmt_seconds(row["start_s"]),
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
        with fsspec.open(uri, "rb") as fh:
            return pq.read_table(fh)
    if fmt == "jsonl":
        with fsspec.open(uri, "rb") as fh:
            return pajson.read_json(io.BytesIO(fh.read()))
    with fsspec.open(uri, "rt", encoding="utf-8") as fh:
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
        if audio_root and "://" not in clip_uri and not clip_uri.startswith("/"):
            clip_uri = join(audio_root, clip_uri)
        clip_id = rec.get("clip_id") or posixpath.splitext(posixpath.basename(clip_uri))[0]
        row = {
            "clip_id": str(clip_id), "uri": clip_uri,
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
    fs, root = fsspec.core.url_to_fs(uri)
    files = sorted(p for p in fs.find(root) if p.rsplit(".", 1)[-1].lower() in AUDIO_EXTENSIONS)
    rows = []
    for p in files:
        rel = posixpath.relpath(p, root)
        rows.append({"clip_id": posixpath.splitext(rel)[0].replace("/", "__"),
                     "uri": strip_protocol_keep(uri, p), "start_s": None, "end_s": None,
                     "labels": [], "group": None})
    return rows


def _names_to_mids(rows: list[dict[str, Any]], ontology_uri: str | None, source: str) -> None:
    if all(is_mid(label) for r in rows for label in r["labels"]):
        return
    ontology = load_ontology(ontology_uri or ONTOLOGY_URL)
    for n, r in enumerate(rows, start=1):
        try:
            r["labels"] = [ontology.to_mid(label) for label in r["labels"]]
        except ValueError as exc:
            raise ManifestError(f"{source}: row {n}: {exc}") from None


def read_manifest(uri: str, audio_root: str | None = None, fmt: str = "auto",
                  template: str = "{audio_root}/{YTID}_{start_ms}.{ext}",
                  extensions: tuple[str, ...] = AUDIO_EXTENSIONS, cut_segments: bool = False,
                  ontology_uri: str | None = None, limit: int | None = None) -> Manifest:
    """Read any supported clip list into a Manifest (first occurrence of a clip_id wins)."""
    try:
        fmt = detect_format(uri) if fmt == "auto" else fmt
    except FileNotFoundError:
        raise ManifestError(f"{uri}: manifest not found") from None
    extra: list[str] = []
    try:
        if fmt == "audioset":
            raw = read_audioset_csv(uri)
            if limit:
                raw = raw[:limit]
            if cut_segments and template == "{audio_root}/{YTID}_{start_ms}.{ext}":
                template = WHOLE_VIDEO_TEMPLATE
            uris = resolve_audioset_uris(raw, audio_root or posixpath.dirname(uri), template, extensions)
            rows = [{"clip_id": f"{r['YTID']}_{int(round(r['start_s'] * 1000))}", "uri": u,
                     "start_s": r["start_s"], "end_s": r["end_s"], "labels": r["labels"], "group": r["YTID"]}
                    for r, u in zip(raw, uris)]
        elif fmt == "directory":
            rows = _directory_rows(uri)
        elif fmt in ("csv", "parquet", "jsonl"):
            rows, extra = _generic_rows(_read_generic(uri, fmt), uri, audio_root)
        else:
            raise ManifestError(f"{uri}: unknown manifest format {fmt!r}")
    except FileNotFoundError:
        raise ManifestError(f"{uri}: manifest not found") from None
    except (UnicodeDecodeError, pa.ArrowInvalid, csv.Error, json.JSONDecodeError) as exc:
        raise ManifestError(f"{uri}: cannot parse as {fmt}: {exc}") from None
    if limit:
        rows = rows[:limit]
    _names_to_mids(rows, ontology_uri, uri)
    seen: set[str] = set()
    unique = []
    for r in rows:
        if r["clip_id"] not in seen:
            seen.add(r["clip_id"])
            unique.append(r)
    schema = CLIP_SCHEMA
    if extra:
        probe = pa.Table.from_pylist([{c: r[c] for c in extra} for r in unique]) if unique else None
        for c in extra:
            schema = schema.append(probe.schema.field(c) if probe is not None else pa.field(c, pa.string()))
    table = pa.Table.from_pylist(unique, schema=schema)
    return Manifest(table=table, duplicates=len(rows) - len(unique), source=uri, format=fmt)


def label_counts(table: pa.Table, mid: str) -> int:
    """How many clips carry a MID (for checking a list against its published counts)."""
    return sum(mid in labels for labels in table["labels"].to_pylist())
