"""What every recipe shares: reading a collection's CSV metadata, writing the clip list, summarising it.

Roots and outputs go through ``acoustic_env.storage`` (fsspec), so a collection
mirrored in a bucket works as a local one. A layout that is not the published
one (a missing metadata file, a missing column) stops with one line naming the
file: a ``ManifestError``, which the command prints without a traceback.
"""

from __future__ import annotations

import csv
import io
import posixpath
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from acoustic_env.audio.manifest import ManifestError, read_manifest
from acoustic_env.learn.splits import fold_order
from acoustic_env.storage import filesystem, is_local, join

#: The clip-list columns every recipe writes first (``labels`` separated by ``;``).
BASE_COLUMNS = ("clip_id", "uri", "labels", "group", "fold")
LABEL_SEPARATOR = ";"


def read_csv(uri: str, required: Sequence[str], header: bool = True, what: str = "") -> list[dict[str, str]]:
    """A metadata CSV as rows; a missing file or column is one ManifestError naming it."""
    fs, path = filesystem(uri)
    if not fs.isfile(path):
        raise ManifestError(f"{uri}: not found{f' ({what})' if what else ''}")
    with fs.open(path, "rt", encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh) if header else csv.DictReader(fh, fieldnames=list(required))
        rows = list(reader)
        missing = [c for c in required if c not in (reader.fieldnames or [])]
    if missing:
        raise ManifestError(f"{uri}: missing column(s) {', '.join(missing)} (has: {', '.join(reader.fieldnames or [])})")
    return rows


def write_manifest(rows: Iterable[dict[str, Any]], out: str, name: str, extra: Sequence[str] = ()) -> str:
    """Write ``<out>/<name>.csv`` (``BASE_COLUMNS`` then ``extra``); returns its path."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=[*BASE_COLUMNS, *extra], extrasaction="raise")
    writer.writeheader()
    for row in rows:
        labels = row["labels"]
        writer.writerow({**row, "labels": LABEL_SEPARATOR.join(labels) if not isinstance(labels, str) else labels})
    uri = join(out, f"{name}.csv")
    fs, path = filesystem(uri)
    if is_local(uri):
        fs.makedirs(posixpath.dirname(path), exist_ok=True)
    fs.pipe_file(path, buf.getvalue().encode())
    return uri


def summarize(manifest: str) -> dict[str, Any]:
    """Clips, clips per label and per fold, groups, and audio files missing, read back through the manifest reader."""
    table = read_manifest(manifest).table
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
            "missing_audio": missing}


def _by_directory(uris: Sequence[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for u in uris:
        out.setdefault(posixpath.dirname(u), []).append(posixpath.basename(u))
    return out


def stem(filename: str) -> str:
    return posixpath.splitext(posixpath.basename(filename))[0]
