"""What every recipe shares: reading a collection's CSV metadata, writing the clip list, summarising it.

Roots and outputs go through ``acoustic_env.storage`` (fsspec), so a collection
mirrored in a bucket works as a local one. A layout that is not the published
one (a missing metadata file, a missing column) stops with one line naming the
file: a ``ManifestError``, which the command prints without a traceback. So does a
row that is not what the collection publishes: too few or too many fields, a fold
outside the published range or not a number (:func:`fold`), a number that is not
one (:func:`integer`), a file name that would leave the collection's folder
(:func:`file_name`); the line names the file and the row (the header is row 1).
"""

from __future__ import annotations

import csv
import io
import posixpath
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from acoustic_env.audio.manifest import ManifestError, read_manifest
from acoustic_env.bounded import MAX_LIST_BYTES, open_stream
from acoustic_env.config import ConfigError
from acoustic_env.csv_writer import csv_bytes
from acoustic_env.learn.splits import fold_order
from acoustic_env.storage import filesystem, is_local, join

@dataclass(frozen=True)
class Prepared:
    """What a recipe wrote (``ae.run("recipe esc50", ...)`` returns it).

    Attributes:
        manifest: the clip list's path.
        notes: lines the recipe adds to the summary (FSD50K's tag binning).
    """

    manifest: str
    notes: tuple[str, ...] = ()


#: The clip-list columns every recipe writes first (``labels`` separated by ``;``).
BASE_COLUMNS = ("clip_id", "uri", "labels", "group", "fold")
LABEL_SEPARATOR = ";"


class Row(dict[str, str]):
    """One metadata row, and where it is (``<file>: row <n>``) for the messages about it."""

    def __init__(self, values: dict[str, str], where: str) -> None:
        super().__init__(values)
        self.where = where


def read_csv(uri: str, required: Sequence[str], header: bool = True, what: str = "") -> list[Row]:
    """A metadata CSV as rows; a missing file or column, or a row of the wrong width, is one ManifestError."""
    try:  # by the one reader of a user's files: a regular file (never a FIFO or a device) within MAX_LIST_BYTES
        stream = open_stream(uri, "recipe", MAX_LIST_BYTES, "a collection's metadata file")
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise ManifestError(f"{uri}: not found{f' ({what})' if what else ''}") from None
    except ConfigError as exc:
        raise ManifestError(str(exc)) from None
    rows = []
    with io.TextIOWrapper(stream, encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh) if header else csv.DictReader(fh, fieldnames=list(required))
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise ManifestError(f"{uri}: missing column(s) {', '.join(missing)} "
                                f"(has: {', '.join(reader.fieldnames or [])})")
        width = len(reader.fieldnames or [])
        for row in reader:
            extra = row.pop(None, None) or []  # type: ignore[call-overload]  # DictReader's key for surplus fields
            n = sum(v is not None for v in row.values()) + len(extra)
            if n != width:
                raise ManifestError(f"{uri}: row {reader.line_num}: {n} fields, the header has {width}")
            rows.append(Row(row, f"{uri}: row {reader.line_num}"))
    return rows


def integer(row: Row, column: str) -> int:
    """``row[column]`` as an integer, or one ManifestError naming the row."""
    try:
        return int(row[column])
    except ValueError:
        raise ManifestError(f"{row.where}: {column} {row[column]!r} is not an integer") from None


def fold(row: Row, column: str, valid: range) -> int:
    """The row's fold, one of the collection's published ``valid`` folds, or one ManifestError naming the row."""
    span = f"valid: {valid.start}-{valid.stop - 1}"
    try:
        value = int(row[column])
    except ValueError:
        raise ManifestError(f"{row.where}: {column} {row[column]!r} is not a fold number ({span})") from None
    if value not in valid:
        raise ManifestError(f"{row.where}: {column} {value} is not one of the collection's folds ({span})")
    return value


def file_name(row: Row, column: str) -> str:
    """``row[column]`` if it is a plain file name; a path (``../../etc/passwd``, ``/x``) would leave ROOT."""
    name = row[column]
    if not name or name in (".", "..") or "/" in name or "\\" in name:
        raise ManifestError(f"{row.where}: {column} {name!r} is not a file name inside the collection's folder")
    return name


def write_manifest(rows: Iterable[dict[str, Any]], out: str, name: str, extra: Sequence[str] = ()) -> str:
    """Write ``<out>/<name>.csv`` (``BASE_COLUMNS`` then ``extra``); returns its path.

    No rows is a ManifestError, nothing written: a clip list of a header alone (a metadata file with no data rows,
    or every clip dropped) would pass for the collection's until extract finds nothing to do.
    """
    listed = [{**row, "labels": LABEL_SEPARATOR.join(row["labels"]) if not isinstance(row["labels"], str)
               else row["labels"]} for row in rows]
    n = len(listed)
    uri = join(out, f"{name}.csv")
    if not n:
        raise ManifestError(f"{name}: no clips to list (the metadata has no data rows, or every clip was left "
                            f"out); nothing written to {uri}")
    fs, path = filesystem(uri)
    if is_local(uri):
        fs.makedirs(posixpath.dirname(path), exist_ok=True)
    fs.pipe_file(path, csv_bytes([*BASE_COLUMNS, *extra], listed))
    return uri


def summarize(manifest: str) -> dict[str, Any]:
    """Clips, clips per label and per fold, groups, audio files missing, and rows whose clip id an earlier row has
    (a metadata file that lists a file twice), read back through the manifest reader."""
    listed = read_manifest(manifest)
    table = listed.table
    labels = Counter(label for ls in table["labels"].to_pylist() for label in ls)
    folds = Counter(str(f) for f in table["fold"].to_pylist()) if "fold" in table.column_names else Counter()
    missing = 0
    for directory, names in _by_directory(table["uri"].to_pylist()).items():
        fs, path = filesystem(directory)
        try:
            present = {posixpath.basename(p) for p in fs.ls(path, detail=False)}
        except FileNotFoundError:
            present = set()
        missing += sum(n not in present for n in names)
    return {"manifest": manifest, "clips": table.num_rows, "labels": dict(sorted(labels.items())),
            "folds": dict(sorted(folds.items(), key=lambda kv: fold_order(kv[0]))), "groups": len(set(table["group"].to_pylist())),
            "missing_audio": missing, "repeated_ids": listed.duplicates}


def _by_directory(uris: Sequence[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for u in uris:
        out.setdefault(posixpath.dirname(u), []).append(posixpath.basename(u))
    return out


def stem(filename: str) -> str:
    return posixpath.splitext(posixpath.basename(filename))[0]


def summary_lines(result: Prepared) -> list[str]:
    """What ``acoustic-env recipe`` prints: the clips, labels, groups and folds of the list written, the audio files
    not where the layout puts them, the clip ids a metadata file repeats, and the recipe's own notes."""
    s = summarize(result.manifest)
    lines = [f"{s['clips']} clips, {len(s['labels'])} labels, {s['groups']} groups, folds "
             + ", ".join(f"{k}: {v}" for k, v in s["folds"].items())]
    if s["missing_audio"]:
        lines.append(f"  {s['missing_audio']} audio files are not where the layout puts them "
                     "(extract will list them as missing_file)")
    if s["repeated_ids"]:
        lines.append(f"  {s['repeated_ids']} rows repeat the clip id of an earlier row: the metadata lists a file "
                     "twice (extract keeps the first row of each and lists the others as duplicate_id)")
    return [*lines, f"  manifest: {result.manifest}", *result.notes]


def plan_lines(name: str, reads: Sequence[str], writes: Sequence[str]) -> dict[str, list[str]]:
    """What ``acoustic-env recipe <name> --dry-run`` prints: the files the recipe would read and write."""
    return {"lines": [f"recipe {name}: would read {', '.join(reads)}", f"  and write {', '.join(writes)}",
                      "  (dry run: nothing read or written)"]}
