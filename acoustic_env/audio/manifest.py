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
turning them into classes is the task's business (acoustic_env.vocabulary.tasks),
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
2 million), so the driver never holds it whole. ``read_manifest`` reads the file once, in
chunks of about ``CHUNK`` rows (``pyarrow.csv.open_csv``, ``pyarrow.json.open_json``,
Parquet batches), checks every row and keeps a 64-bit hash of each id, which finds the
repeated ids; ``Manifest.chunks()`` reads it again and yields the final rows chunk by
chunk, so the extract job streams them to Ray. Pass-through columns stay Arrow columns;
what needs Python per row (an id from a file name, an AudioSet template, a path under
``allowed_roots``) runs one chunk at a time.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import posixpath
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from itertools import chain
from typing import IO, TYPE_CHECKING, Any, Callable, Collection, Iterator
from urllib.parse import urlsplit

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

if TYPE_CHECKING:
    from acoustic_env.config import ExtractConfig

from acoustic_env.audio.rows import CPU_PREFIX, ERROR_COLUMNS, pipeline_fields
from acoustic_env.bounded import MAX_MANIFEST_BYTES, open_stream
from acoustic_env.csv_writer import restore_column
from acoustic_env.errors import ConfigError
from acoustic_env.layout import id_hashes
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
#: An AudioSet YTID, a YouTube video id: 11 characters of A-Z, a-z, 0-9, _ and - (so never a path).
YTID = r"[A-Za-z0-9_-]{11}"


class ManifestError(ValueError):
    """The clip list cannot be read; the message names the file and the row."""


def _open(uri: str, mode: str = "rb", **kwargs: Any) -> IO[Any]:
    """Open a clip list by the one reader of a user's files (``bounded.open_stream``: a regular file of at most
    ``bounded.MAX_MANIFEST_BYTES``, never a FIFO or a device), through the URI's filesystem (``fsspec.open`` would
    take a ``?`` in a URL for a glob); ``mode`` ``rt`` wraps it as text (``kwargs``: its encoding, errors)."""
    try:
        fh = open_stream(uri, "manifest", MAX_MANIFEST_BYTES, "a clip list")
    except ConfigError as exc:
        raise ManifestError(str(exc)) from None
    return io.TextIOWrapper(fh, **kwargs) if "t" in mode else fh


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


#: Rows per chunk where the reader decides (Parquet batches, AudioSet rows, a directory's files),
#: and rows turned into Python objects at once where a rule needs Python per row.
CHUNK = 16_384


def read_audioset_csv(uri: str) -> Iterator[dict[str, Any]]:
    """Parse an AudioSet segment list: ``#`` comment lines, then 4 fields per row (rows yielded one by one).

    Fields after the fourth are ignored (a rescored label list adds six), as
    ``acoustic_env.audioset.segments.read_segments`` ignores them.
    """
    with _open(uri, "rt", encoding="utf-8-sig") as fh:
        reader = csv.reader((line for line in fh if not line.startswith("#") and line.strip()),
                            skipinitialspace=True)
        for n, fields in enumerate(reader, start=1):
            if len(fields) < 4:
                raise ManifestError(f"{uri}: data row {n} has {len(fields)} fields, expected 4 "
                                    "(YTID, start_seconds, end_seconds, \"labels\")")
            ytid, start, end, labels = fields[:4]
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


def _audioset_chunks(uri: str, audio_root: str | None, template: str, extensions: tuple[str, ...],
                     listings: dict[str, set[str]]) -> Iterator[pa.Table]:
    """An AudioSet list as CLIP_SCHEMA tables of ``CHUNK`` rows (Python objects for one chunk at a time)."""
    def table(rows: list[dict[str, Any]]) -> pa.Table:
        uris = resolve_audioset_uris(rows, audio_root, template, extensions, listings)
        return pa.table({
            "clip_id": [f"{r['YTID']}_{_ms(r['start_s'])}" for r in rows], "uri": uris,
            "start_s": [r["start_s"] for r in rows], "end_s": [r["end_s"] for r in rows],
            "labels": [r["labels"] for r in rows], "group": [r["YTID"] for r in rows]}, schema=CLIP_SCHEMA)

    yield table([])
    rows: list[dict[str, Any]] = []
    for row in read_audioset_csv(uri):
        rows.append(row)
        if len(rows) == CHUNK:
            yield table(rows)
            rows = []
    yield table(rows)


def _labels_value(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value if v is not None and str(v).strip()]  # a null is no label "None"
    text = str(value).strip()
    if text.startswith("["):  # a JSON list: its blank entries dropped as a list column's are
        return _labels_value(json.loads(text))
    sep = ";" if ";" in text else ","
    return [t.strip() for t in text.split(sep) if t.strip()]


def _generic_chunks(uri: str, fmt: str) -> Iterator[pa.Table]:
    """A generic manifest's own columns, ``CHUNK`` rows or so at a time, parsed from the stream.

    CSV columns are all read as text, as written (a value is never guessed into a number
    or a date); JSON lines take the types of their first MB. Blocks of 1 MB: the readers read
    several blocks ahead, so larger blocks cost the driver tens of MB on a big list.
    """
    if fmt == "parquet":
        with _open(uri) as fh:
            pf = pq.ParquetFile(fh)
            yield pf.schema_arrow.empty_table()
            for batch in pf.iter_batches(batch_size=CHUNK):
                yield pa.Table.from_batches([batch])
        return
    if fmt == "jsonl":
        with _open(uri) as fh:
            reader = pajson.open_json(fh, read_options=pajson.ReadOptions(use_threads=False, block_size=1 << 20))
            yield reader.schema.empty_table()
            for batch in reader:
                yield pa.Table.from_batches([batch])
        return
    delimiter = "\t" if uri.split("?")[0].lower().endswith(".tsv") else ","  # a .tsv list is tab-separated
    with _open(uri, "rt", encoding="utf-8-sig") as fh:
        header = next((row for row in csv.reader(fh, delimiter=delimiter) if row), None)  # Arrow skips blank lines
    if not header:
        yield pa.table({"uri": pa.array([], pa.string())})
        return
    with _open(uri, "rb") as fh:
        reader = pacsv.open_csv(fh, read_options=pacsv.ReadOptions(use_threads=False, block_size=1 << 20),
                                parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
                                convert_options=pacsv.ConvertOptions(column_types=dict.fromkeys(header, pa.string()),
                                                                     strings_can_be_null=False))
        yield reader.schema.empty_table()
        for batch in reader:  # each cell as written before the CSV writer's rule (a recipe's or fetch's list)
            yield pa.table([restore_column(c) for c in batch.columns], names=batch.schema.names)


def _map_rows(table: pa.Table, columns: list[str], fn: Callable[..., Any], type_: pa.DataType,
              offset: int = 0) -> pa.ChunkedArray:
    """``fn(row_number, *values)`` for each row, ``CHUNK`` rows of Python objects at a time."""
    out = []
    for start in range(0, table.num_rows, CHUNK):
        part = table.slice(start, CHUNK)
        values = [part[c].to_pylist() if c in part.column_names else [None] * part.num_rows for c in columns]
        out.append(pa.array([fn(offset + start + k + 1, *v) for k, v in enumerate(zip(*values))], type_))
    return pa.chunked_array(out, type_)


def _generic_table(table: pa.Table, uri: str, audio_root: str | None, offset: int = 0) -> tuple[pa.Table, list[str]]:
    """A generic manifest's CLIP_SCHEMA columns (rows numbered from ``offset`` + 1 in messages);
    pass-through columns are kept as the Arrow columns they are."""
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

    def column(name: str, fn: Callable[..., Any], type_: pa.DataType) -> pa.Array | pa.ChunkedArray:
        fast = _FAST.get(name) if name in table.column_names and pa.types.is_string(table.schema.field(name).type) else None
        got = fast(table[name].combine_chunks()) if fast else None
        if got is None:  # not text, or a value the vectorised rule leaves to the per-row one
            got = _map_rows(table, [name], fn, type_, offset)
        return got

    columns = {
        "clip_id": column("clip_id", text_or_none, pa.string()),
        "uri": column("uri", clip_uri, pa.string()),
        "start_s": column("start_s", lambda n, v: _float_or_none(v, uri, n, "start_s"), pa.float64()),
        "end_s": column("end_s", lambda n, v: _float_or_none(v, uri, n, "end_s"), pa.float64()),
        "labels": column("labels", lambda n, v: _labels_value(v), pa.list_(pa.string())),
        "group": column("group", text_or_none, pa.string()),
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


# --- the same rules on whole text columns (Arrow compute), for the rows they cover ---
# Each returns None where some value needs the per-row rule (its message, or a case such
# as a JSON list of labels), and the caller then runs that rule on the column.


def _fast_text_or_none(col: pa.Array) -> pa.Array:
    return pc.if_else(pc.equal(col, ""), pa.scalar(None, pa.string()), col)


def _fast_uri(col: pa.Array) -> pa.Array | None:
    text = pc.utf8_trim_whitespace(pc.fill_null(col, ""))
    absolute = pc.or_(pc.match_substring(text, "://"), pc.starts_with(text, "/"))
    return text if pc.all(absolute).as_py() is not False else None  # empty or relative: per row


def _fast_float(col: pa.Array) -> pa.Array | None:
    try:
        return pc.cast(pc.if_else(pc.equal(col, ""), pa.scalar(None, pa.string()), col), pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None  # a value Arrow does not read as a number: the per-row rule accepts it or says which


def _fast_labels(col: pa.Array) -> pa.Array | None:
    text = pc.utf8_trim_whitespace(pc.fill_null(col, ""))
    if pc.any(pc.starts_with(text, "[")).as_py():
        return None  # JSON lists
    parts = pc.if_else(pc.match_substring(text, ";"), pc.split_pattern(text, ";"), pc.split_pattern(text, ","))
    flat = pc.utf8_trim_whitespace(pc.list_flatten(parts))
    keep = pc.not_equal(flat, "").to_numpy(zero_copy_only=False)
    counts = np.bincount(pc.list_parent_indices(parts).to_numpy()[keep], minlength=len(col))
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), flat.filter(pa.array(keep)))


_FAST: dict[str, Callable[[pa.Array], pa.Array | None]] = {
    "clip_id": _fast_text_or_none, "group": _fast_text_or_none, "uri": _fast_uri,
    "start_s": _fast_float, "end_s": _fast_float, "labels": _fast_labels}


def _directory_table(uri: str) -> pa.Table:
    """Every audio file below ``uri``; ids are left to ``_pre_ids`` (relative path, ``/`` → ``__``)."""
    fs, root = fsspec.core.url_to_fs(uri)
    files = sorted(p for p in fs.find(root) if p.rsplit(".", 1)[-1].lower() in AUDIO_EXTENSIONS)
    n = len(files)
    table = pa.table({"clip_id": pa.nulls(n, pa.string()), "uri": [strip_protocol_keep(uri, p) for p in files],
                      "start_s": pa.nulls(n, pa.float64()), "end_s": pa.nulls(n, pa.float64()),
                      "labels": pa.array([[]] * n, pa.list_(pa.string())), "group": pa.nulls(n, pa.string())},
                     schema=CLIP_SCHEMA)
    return table.append_column("_rel", pa.array([posixpath.relpath(p, root) for p in files], pa.string()))


def _replace(column: pa.Array, rows: np.ndarray, values: list[Any]) -> pa.Array:
    """``column`` with ``values`` at ``rows`` (few rows: a rejected or renamed clip)."""
    if not len(rows):
        return column
    mask = np.zeros(len(column), dtype=bool)
    mask[rows] = True
    order = np.argsort(rows, kind="stable")  # replace_with_mask takes the replacements in row order
    return pc.replace_with_mask(column, pa.array(mask), pa.array([values[k] for k in order], column.type))


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


def _pre_ids(table: pa.Table) -> tuple[pa.Array, np.ndarray]:
    """Each row's id before any suffix (its own, else from its file name), and which rows derived theirs."""
    derived = table["clip_id"].is_null().to_numpy(zero_copy_only=False)
    if not derived.any():
        return table["clip_id"].combine_chunks(), derived

    def from_name(n: int, clip_id: str | None, uri: str, rel: str | None) -> str:
        if clip_id is not None:
            return clip_id
        if rel is not None:
            return posixpath.splitext(rel)[0].replace("/", "__")
        path = urlsplit(uri).path if "://" in uri else uri
        return posixpath.splitext(posixpath.basename(path))[0]

    return _map_rows(table, ["clip_id", "uri", "_rel"], from_name, pa.string()).combine_chunks(), derived


def _suffixed(ids: pa.Array, uris: pa.Array) -> list[str]:
    """``<id>-<8 hex digits of the URI's hash>``: stable across runs; the URL's secrets never reach it."""
    return [f"{i}-{hashlib.sha1(redact(u).encode()).hexdigest()[:8]}" for i, u in zip(ids.to_pylist(), uris.to_pylist())]


def _repeated(hashes: np.ndarray, in_place: bool = False) -> tuple[np.ndarray, int]:
    """The hash values held by more than one row (sorted), and how many rows repeat an earlier one.

    ``in_place`` sorts ``hashes`` itself: no second copy of 8 bytes a row.
    """
    ordered = hashes if in_place else np.sort(hashes)
    if in_place:
        ordered.sort()
    same = ordered[1:] == ordered[:-1]
    return np.unique(ordered[1:][same]), int(same.sum())


@dataclass(frozen=True)
class _Chunk:
    offset: int  # row number of its first row, from 0
    table: pa.Table  # CLIP_SCHEMA, pass-through columns renamed away from the pipeline's names (and _rel)
    ids: pa.Array  # ids before any suffix
    derived: np.ndarray  # rows whose id came from the file name


@dataclass(frozen=True)
class Manifest:
    """A clip list read once to validate and count it, and read again chunk by chunk by ``chunks()``.

    The first pass (``read_manifest``) raises ManifestError for a list that cannot be used
    and keeps only 64-bit hashes of the ids while it runs (8 bytes a row, freed at its end),
    and afterwards only the rows that need an id changed: the driver's memory stays flat
    whether the list has 20 thousand rows or 2 million. ``chunks()`` yields the final
    rows (ids, pass-through columns, ERROR_COLUMNS: null unless rejected); ``table`` is all
    of them at once, for the callers that need a small list whole.
    """

    rows: int
    duplicates: int  # rows rejected as duplicate_id
    ids_made_unique: int  # derived ids given a suffix because several files shared them
    renamed_columns: dict[str, str]  # pass-through columns renamed away from the pipeline's names
    source: str
    format: str
    _read: Callable[[], Iterator[_Chunk]]  # the source again, validated and normalised chunk by chunk
    _shared: np.ndarray  # rows (sorted) whose derived id gets the URI suffix
    _repeated: np.ndarray  # id hashes that several rows hold (sorted): candidates for duplicate_id
    _allowed_roots: tuple[str, ...]
    _redact_params: tuple[str, ...]

    def chunks(self) -> Iterator[pa.Table]:
        """The rows, in order, ``CHUNK`` or so at a time (one empty table for an empty list)."""
        try:
            yield from self._finished()
        except ManifestError as exc:  # the file changed between the two passes
            raise ManifestError(redact(str(exc), self._redact_params)) from None

    def _finished(self) -> Iterator[pa.Table]:
        firsts: dict[str, tuple[int, str]] = {}  # id → (row, uri) of its first row, for the candidates only
        for chunk in self._read():
            table, n = chunk.table, chunk.table.num_rows
            ids = chunk.ids
            lo, hi = np.searchsorted(self._shared, [chunk.offset, chunk.offset + n])
            shared = self._shared[lo:hi] - chunk.offset
            if len(shared):
                take = pa.array(shared, pa.int64())
                ids = _replace(ids, shared, _suffixed(ids.take(take), table["uri"].combine_chunks().take(take)))
            found: dict[int, tuple[str, str]] = {}
            candidates = np.flatnonzero(np.isin(id_hashes(ids), self._repeated)) if len(self._repeated) else []
            renamed, new_ids = [], []
            for r in np.asarray(candidates).tolist():
                clip_id, uri, row = ids[r].as_py(), table["uri"][r].as_py(), chunk.offset + r
                if clip_id not in firsts:  # a first row (or a hash shared by different ids: not a repeat)
                    firsts[clip_id] = (row, uri)
                    continue
                earlier, earlier_uri = firsts[clip_id]
                renamed.append(r)
                new_ids.append(f"{clip_id}#row{row + 1}")  # its own id: errors/ holds one row per id
                found[r] = ("duplicate_id", f"row {row + 1} ({uri}) has the clip_id {clip_id!r} of row {earlier + 1} "
                                            f"({earlier_uri}); give each clip its own clip_id")
            ids = _replace(ids, np.array(renamed, dtype=np.int64), new_ids)
            table = table.set_column(table.schema.get_field_index("clip_id"), "clip_id", ids)
            if "_rel" in table.column_names:
                table = table.drop_columns(["_rel"])
            if self._allowed_roots:
                outside = _map_rows(table, ["uri"], lambda _, u: not within_roots(u, self._allowed_roots), pa.bool_())
                for r in np.flatnonzero(outside.to_numpy(zero_copy_only=False)).tolist():
                    if r not in found:
                        found[r] = ("outside_allowed_roots", f"{table['uri'][r].as_py()} is not under any of "
                                                             f"allowed_roots ({', '.join(self._allowed_roots)})")
            for name, column in _error_columns(n, found).items():
                table = table.append_column(pa.field(name, pa.string()), column)
            yield table

    @cached_property
    def table(self) -> pa.Table:
        """Every row at once: for small lists and the callers that need one (recipes, annotate, tests)."""
        return pa.concat_tables(list(self.chunks()))


def read_manifest(uri: str, audio_root: str | None = None, fmt: str = "auto",
                  template: str = "{audio_root}/{YTID}_{start_ms}.{ext}",
                  extensions: tuple[str, ...] = AUDIO_EXTENSIONS, cut_segments: bool = False,
                  limit: int | None = None, *, allowed_roots: tuple[str, ...] = (),
                  reserved: Collection[str] = (), redact_params: tuple[str, ...] = ()) -> Manifest:
    """Read and check any supported clip list (see the module docstring for ids and rejected rows).

    ``reserved``: the columns the caller's pipeline writes; ``redact_params``: secret
    query parameters to hide in a ManifestError's message, besides the usual ones.
    """
    try:
        if fmt == "auto":
            with _parse_errors(uri, fmt):
                fmt = detect_format(uri)
        if fmt not in ("audioset", "directory", "csv", "parquet", "jsonl"):
            raise ManifestError(f"{uri}: unknown manifest format {fmt!r}")
        if fmt == "audioset" and cut_segments and template == "{audio_root}/{YTID}_{start_ms}.{ext}":
            template = WHOLE_VIDEO_TEMPLATE
        renamed: dict[str, str] = {}
        listings: dict[str, set[str]] = {}  # AudioSet: one listing per directory, kept for the second pass
        directory: list[pa.Table] = []  # a directory's listing, kept for the second pass

        def read() -> Iterator[_Chunk]:
            with _parse_errors(uri, fmt):
                yield from _clip_chunks(uri, fmt, audio_root, template, extensions, limit, reserved, renamed,
                                        listings, directory)

        rows, hashes, derived_rows, suffix_hashes = 0, [], [], []
        for chunk in read():
            hashes.append(id_hashes(chunk.ids))
            if chunk.derived.any():
                rows_here = np.flatnonzero(chunk.derived)
                take = pa.array(rows_here, pa.int64())
                derived_rows.append(rows_here + chunk.offset)
                suffix_hashes.append(id_hashes(pa.array(
                    _suffixed(chunk.ids.take(take), chunk.table["uri"].combine_chunks().take(take)), pa.string())))
            rows += chunk.table.num_rows
    except ManifestError as exc:
        raise ManifestError(redact(str(exc), redact_params)) from None
    all_hashes = np.concatenate(hashes) if hashes else np.zeros(0, np.uint64)
    del hashes
    shared = np.zeros(0, dtype=np.int64)
    if derived_rows:  # a derived id that any other row holds too gets the URI suffix
        candidates = np.concatenate(derived_rows)
        is_shared = np.isin(all_hashes[candidates], _repeated(all_hashes)[0])
        shared = candidates[is_shared]
        all_hashes[shared] = np.concatenate(suffix_hashes)[is_shared]
    repeated, duplicates = _repeated(all_hashes, in_place=True)
    del all_hashes
    return Manifest(rows=rows, duplicates=duplicates, ids_made_unique=len(shared), renamed_columns=renamed,
                    source=uri, format=fmt, _read=read, _shared=shared, _repeated=repeated,
                    _allowed_roots=tuple(allowed_roots), _redact_params=tuple(redact_params))


def job_manifest(cfg: ExtractConfig) -> Manifest:
    """The clip list an extract config names, read with all of its fields (a column of a name the config's
    pipeline writes is renamed ``manifest_<name>``): the one way the extract, annotate and their dry runs
    read it, so the dry run counts the clips the job will see."""
    from acoustic_env.audio.stages import image_columns, separated_signals, stages, vector_columns  # the feature code

    reserved = [f.name for f in pipeline_fields(vector_columns(cfg), stages(cfg), separated_signals(cfg),
                                                image_columns(cfg))]
    return read_manifest(cfg.manifest, cfg.audio_root, cfg.manifest_format, cfg.path_template,
                         cfg.audio_extensions, cfg.cut_segments, limit=cfg.limit, allowed_roots=cfg.allowed_roots,
                         reserved=reserved, redact_params=cfg.redact_query_params)


@contextmanager
def _parse_errors(uri: str, fmt: str) -> Iterator[None]:
    """Reading and parsing failures of the source as one ManifestError line."""
    try:
        yield
    except OSError as exc:  # local, HTTP (refused, 5xx, timeout) and object-store failures alike
        error_type, reason = transport_failure(exc)
        if error_type == "missing_file":
            raise ManifestError(f"{uri}: manifest not found") from None
        raise ManifestError(f"{uri}: cannot read the manifest: {reason}") from None
    except (UnicodeDecodeError, pa.ArrowInvalid, csv.Error, json.JSONDecodeError) as exc:
        raise ManifestError(f"{uri}: cannot parse as {fmt}: {exc}") from None


def _clip_chunks(uri: str, fmt: str, audio_root: str | None, template: str, extensions: tuple[str, ...],
                 limit: int | None, reserved: Collection[str], renamed: dict[str, str],
                 listings: dict[str, set[str]], directory: list[pa.Table]) -> Iterator[_Chunk]:
    """The source as CLIP_SCHEMA chunks (pass-through columns renamed into ``renamed``) with their ids.

    Always at least one chunk, possibly empty, so that an empty list still has its columns.
    """
    if fmt == "audioset":
        raw: Iterator[pa.Table] = _audioset_chunks(uri, audio_root or posixpath.dirname(uri), template, extensions,
                                                   listings)
    elif fmt == "directory":
        if not directory:
            directory.append(_directory_table(uri))
        listed = directory[0]
        raw = chain([listed.slice(0, 0)], (listed.slice(s, CHUNK) for s in range(0, listed.num_rows, CHUNK)))
    else:
        raw = _generic_chunks(uri, fmt)
    offset, empty = 0, None
    for table in raw:  # every reader starts with an empty table carrying the source's columns
        table = table.slice(0, max(limit - offset, 0)) if limit else table
        if not table.num_rows:
            empty = table if empty is None else empty
            continue
        yield _clip_chunk(table, offset, fmt, uri, audio_root, reserved, renamed)
        offset += table.num_rows
        if limit and offset >= limit:
            return
    if offset == 0 and empty is not None:
        yield _clip_chunk(empty, 0, fmt, uri, audio_root, reserved, renamed)


def _clip_chunk(table: pa.Table, offset: int, fmt: str, uri: str, audio_root: str | None,
                reserved: Collection[str], renamed: dict[str, str]) -> _Chunk:
    extra: list[str] = []
    if fmt in ("csv", "parquet", "jsonl"):
        table, extra = _generic_table(table, uri, audio_root, offset)
    table, names = _rename_reserved(table, extra, reserved)
    renamed.update(names)
    ids, derived = _pre_ids(table)
    return _Chunk(offset=offset, table=table, ids=ids, derived=derived)


def label_counts(table: pa.Table, mid: str) -> int:
    """How many clips carry a MID (for checking a list against its published counts)."""
    return sum(mid in labels for labels in table["labels"].to_pylist())
