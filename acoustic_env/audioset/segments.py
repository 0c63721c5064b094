"""AudioSet's segment lists read as Arrow batches, and written back in the same format.

The published lists (``balanced_train_segments.csv``, ``unbalanced_train_segments.csv``
with 2 million rows, ``eval_segments.csv``) are ``#`` comment lines, then
``YTID, start_seconds, end_seconds, "mid,mid,..."``: a CSV whose quoted field follows a
space, which a CSV parser without ``skipinitialspace`` (Arrow's) splits at every comma of
the label list. So Arrow reads whole lines (``pyarrow.csv`` streaming, one column, no
quoting: fast and in bounded memory) and Arrow compute splits them at the first three
commas: no Python per row, which is what lets a sample of the 2-million-row list take
seconds. ``acoustic_env.audio.manifest`` reads the same format row by row for extract.

Both readers read the first four fields of a row and ignore any after them, so a list
with more columns, such as the rescored label list of ``audioset rescore``
(:mod:`acoustic_env.jobs.audioset.rescored`), reads as the segment list of its clips with
their labels as given.

**Rows that are not a segment.** An id is data, never a path: a row whose YTID is not a
YouTube id (11 characters of A-Z, a-z, 0-9, ``_`` and ``-``, the rule of the ``audioset``
recipe; so never ``..``, ``a/b``, an absolute path, a NUL or an empty id) is
``bad_id``, and one whose bounds are not seconds with ``0 <= start < end <= MAX_SECONDS`` is
``bad_segment``: :func:`refusals` says which, and ``sample`` leaves such rows out and
``fetch`` records them as failures, before any download.

**Damaged lists** are one :class:`ManifestError` line naming the file: an empty (0-byte)
file, a line longer than a block (``BLOCK_BYTES``; a segment row is under a kilobyte),
text that is not UTF-8.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from acoustic_env.audio.manifest import YTID, ManifestError
from acoustic_env.csv_writer import safe_column
from acoustic_env.storage import filesystem, transport_failure, write_bytes

#: Columns of a batch: ``row`` counts data rows from 1 (what an error message names).
SEGMENT_SCHEMA = pa.schema([("row", pa.int64()), ("YTID", pa.string()), ("start_s", pa.float64()),
                            ("end_s", pa.float64()), ("labels", pa.list_(pa.string())), ("clip_id", pa.string())])
#: The labels in the rest of a line after its third comma: the quoted field (``""`` inside it is one
#: quote, as CSV writes it; a closing quote missing: the rest), else up to the next comma; what
#: follows (a rescored list's columns) is not read.
LABELS_FIELD = r'^(?:"((?:[^"]|"")*)"?|([^,]*)).*$'
#: The latest second a bound may name (116 days: longer than any video), so that its milliseconds fit an id.
MAX_SECONDS = 1e7
BLOCK_BYTES = 1 << 20  # ~20 thousand rows a batch: tens of MB of driver memory, whatever the list's length


def clip_ids(ytid: pa.Array, start_s: pa.Array) -> pa.Array:
    """``<YTID>_<start in ms>``: the id extract and the embedding recipe give the same segment."""
    ms = pc.cast(pc.round(pc.multiply(start_s, 1000.0)), pa.int64())
    return pc.binary_join_element_wise(ytid, pc.cast(ms, pa.string()), "_")


def _lines(uri: str) -> Iterator[pa.Array]:
    fs, path = filesystem(uri)
    try:
        fh = fs.open(path, "rb")
    except OSError as exc:
        error_type, reason = transport_failure(exc)
        raise ManifestError(f"{uri}: segment list not found" if error_type == "missing_file"
                            else f"{uri}: cannot read the segment list: {reason}") from None
    with fh:  # pyarrow.csv's errors (an empty file, a line over a block) are ArrowInvalid: read_segments words them
        reader = pacsv.open_csv(
            fh, read_options=pacsv.ReadOptions(column_names=["line"], block_size=BLOCK_BYTES, use_threads=False),
            parse_options=pacsv.ParseOptions(delimiter="\x1f", quote_char=False, ignore_empty_lines=True),
            convert_options=pacsv.ConvertOptions(column_types={"line": pa.string()}))
        for batch in reader:
            yield batch.column(0)


def read_segments(uri: str) -> Iterator[pa.Table]:
    """The list's data rows as ``SEGMENT_SCHEMA`` tables, in order; a malformed row is one ManifestError naming it."""
    row = 0
    for lines in _guarded(_lines(uri), uri, lambda: row):
        lines = pc.utf8_ltrim(lines, "\ufeff") if row == 0 else lines  # a byte-order mark, as spreadsheets write
        trimmed = pc.utf8_ltrim_whitespace(lines)  # comment lines and blank ones (spaces only) are no rows
        lines = lines.filter(pc.invert(pc.or_(pc.starts_with(trimmed, "#"), pc.equal(trimmed, ""))))
        n = len(lines)
        if not n:
            continue
        rows = pa.array(np.arange(row + 1, row + n + 1), pa.int64())
        fields = pc.split_pattern(lines, ",", max_splits=3)
        short = pc.less(pc.list_value_length(fields), 4).to_numpy(zero_copy_only=False)
        if short.any():
            k = int(np.flatnonzero(short)[0])
            raise ManifestError(f"{uri}: data row {row + k + 1} has fewer than 4 fields "
                                f"(YTID, start_seconds, end_seconds, \"labels\"): {lines[k].as_py()!r}")
        part = [pc.utf8_trim_whitespace(pc.list_element(fields, i)) for i in range(4)]
        start, end = (_seconds(part[i], uri, row, name) for i, name in ((1, "start_seconds"), (2, "end_seconds")))
        labels = pc.split_pattern(_labels_text(part[3]), ",")
        flat = pc.utf8_trim_whitespace(pc.list_flatten(labels))
        labels = pa.ListArray.from_arrays(labels.offsets, flat)
        labels = pa.ListArray.from_arrays(*_drop_empty(labels))
        ids = clip_ids(part[0], start) if pc.all(_countable(start)).as_py() else _ids_allowing_bad(part[0], start)
        yield pa.table([rows, part[0], start, end, labels, ids], schema=SEGMENT_SCHEMA)
        row += n


def _guarded(lines: Iterator[pa.Array], uri: str, rows_read: Callable[[], int]) -> Iterator[pa.Array]:
    """The blocks of ``lines``; Arrow's error on a damaged list becomes one line naming the file (and where)."""
    while True:
        try:
            yield next(lines)
        except StopIteration:
            return
        except pa.ArrowInvalid as exc:
            text, row = str(exc), rows_read()
            if "Empty CSV file" in text:
                raise ManifestError(f"{uri}: the segment list is empty (0 bytes)") from None
            if "straddling" in text:
                raise ManifestError(f"{uri}: a line after data row {row} is longer than {BLOCK_BYTES >> 20} MB "
                                    "(a segment row is under a kilobyte): not a segment list") from None
            raise ManifestError(f"{uri}: cannot read the segment list after data row {row}: "
                                f"{(text.strip().splitlines() or [''])[0]}") from None


def refusals(batch: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """(bad_id, bad_segment): per row, whether its YTID is not a YouTube id, and whether its bounds are not
    seconds with 0 <= start < end <= MAX_SECONDS (the two reasons a row is no segment; see the module docstring)."""
    bad_id = pc.invert(pc.match_substring_regex(batch["YTID"], f"^{YTID}$")).to_numpy(zero_copy_only=False)
    start, end = batch["start_s"], batch["end_s"]
    good = pc.and_(pc.and_(_countable(start), _countable(end)),
                   pc.and_(pc.greater_equal(start, 0.0), pc.less(start, end)))
    return bad_id, ~pc.fill_null(good, False).to_numpy(zero_copy_only=False)


def refusal_message(reason: str, row: dict[str, Any]) -> str:
    """What a refused row's failure (fetch) or report entry (sample) says: its data row and the value."""
    if reason == "bad_id":
        return f"data row {row['row']}: YTID {row['YTID']!r} is not a YouTube id (11 of A-Z a-z 0-9 _ -)"
    return f"data row {row['row']}: start {row['start_s']} and end {row['end_s']} are not a segment"


def _labels_text(rest: pa.Array) -> pa.Array:
    """The labels field's text, unquoted, from the rest of each line after its third comma.

    A published list's rest is exactly one quoted field: trimming its quotes is the fast
    path (a regex costs seconds over 2 million rows); any other rest, such as a rescored
    list's labels followed by its six columns, goes through ``LABELS_FIELD``.
    """
    one_quoted = pc.and_(pc.and_(pc.starts_with(rest, '"'), pc.ends_with(rest, '"')),
                         pc.equal(pc.count_substring(rest, '"'), 2))
    if pc.all(one_quoted).as_py():
        return pc.utf8_trim(rest, '"')
    return pc.replace_substring(pc.replace_substring_regex(rest, LABELS_FIELD, r"\1\2"), '""', '"')


def _seconds(text: pa.Array, uri: str, row: int, name: str) -> pa.Array:
    try:
        return pc.cast(text, pa.float64())
    except pa.ArrowInvalid:
        ok = [_is_number(v) for v in text.to_pylist()]
        k = ok.index(False)
        raise ManifestError(f"{uri}: data row {row + k + 1}: {name} is not a number: {text[k].as_py()!r}") from None


def _is_number(value: str) -> bool:
    try:
        float(value)
        return True
    except ValueError:
        return False


def _drop_empty(labels: pa.ListArray) -> tuple[pa.Array, pa.Array]:
    """Offsets and values without empty strings (``""`` is a list with no labels)."""
    flat = labels.values
    keep = pc.not_equal(flat, "").to_numpy(zero_copy_only=False)
    if keep.all():
        return labels.offsets, flat
    kept_before = np.concatenate([[0], np.cumsum(keep)])
    return pa.array(kept_before[labels.offsets.to_numpy()], pa.int32()), flat.filter(pa.array(keep))


def _countable(seconds: pa.Array) -> pa.Array:
    """Whether each value is finite and at most ``MAX_SECONDS`` from 0 (its milliseconds fit an id)."""
    return pc.and_(pc.is_finite(seconds), pc.less_equal(pc.abs(seconds), MAX_SECONDS))


def _ids_allowing_bad(ytid: pa.Array, start: pa.Array) -> pa.Array:
    """Ids where a start is not a countable number: the YTID with the start as written (such a row is refused)."""
    finite = _countable(start)
    safe = pc.if_else(finite, start, 0.0)
    return pc.if_else(finite, clip_ids(ytid, safe),
                      pc.binary_join_element_wise(ytid, pc.cast(start, pa.string()), "_"))


def segment_lines(table: pa.Table) -> str:
    """Rows back in the published format (three decimals, the labels quoted, a quote in them doubled as CSV
    writes it), built with Arrow compute; the id and the labels through the one CSV writer's rule
    (:func:`acoustic_env.csv_writer.safe_column`: a YouTube id or a MID is never changed by it)."""
    if not table.num_rows:
        return ""
    seconds = [pa.array([f"{x:.3f}" for x in table[c].to_numpy()]) for c in ("start_s", "end_s")]
    joined = pc.replace_substring(safe_column(pc.binary_join(table["labels"], ",")), '"', '""')
    labels = pc.binary_join_element_wise('"', joined, '"', "")
    lines = pc.binary_join_element_wise(safe_column(table["YTID"]), *seconds, labels, ", ")
    return "\n".join(lines.to_pylist()) + "\n"


def write_segments(table: pa.Table, uri: str, comments: Sequence[str]) -> str:
    """Write a segment list (atomically): ``comments`` as ``#`` lines, the counts line, the header line, the rows."""
    text = "".join(f"# {c}\n" for c in comments)
    text += f"# num_ytids={len(pc.unique(table['YTID']))}, num_segs={table.num_rows}\n"
    text += "# YTID, start_seconds, end_seconds, positive_labels\n" + segment_lines(table)
    write_bytes(text.encode(), uri)
    return uri
