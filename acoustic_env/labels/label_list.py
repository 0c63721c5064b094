"""The corrected label list as a file, and what train, audit and annotate take from it.

``labels apply`` writes it as CSV, one row per clip of the list (:mod:`.current`), by clip id::

    clip_id,labels,source,reviewer,time,origin
    clip_0007,natural,review,ann,2026-11-26T14:02:11.120000Z,20261126T135800Z-ab12cd
    clip_0031,,review,bob,2026-11-26T14:05:40.001000Z,20261126T135800Z-ab12cd

``labels``: the task's class names, ``;`` between several (empty: none of the task's classes,
the clip is left out of training); ``source``: ``review`` or ``search`` for a reviewer's
decision, ``given`` or ``import`` otherwise. The conflicts go to their own CSV beside it.

A job given ``--labels`` reads such a file, or a label store (a directory), whose current list
is computed as ``labels apply`` would write it. Either way the run records the list's URI, the
SHA-256 of its CSV text (the same for a store and the file written from it), and how many clips
it changes against the table.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass

from acoustic_env.bounded import MAX_LIST_BYTES, read_bytes
from acoustic_env.config import ConfigError
from acoustic_env.csv_writer import csv_bytes, restore_cell
from acoustic_env.labels.current import Corrected, corrected
from acoustic_env.labels.store import REVIEWED_SOURCES, as_dict, read_events
from acoustic_env.storage import filesystem, write_bytes
from acoustic_env.vocabulary.tasks import Task

COLUMNS = ("clip_id", "labels", "source", "reviewer", "time", "origin")
CONFLICT_COLUMNS = ("clip_id", "reviewer", "verdict", "labels", "given", "time", "origin", "note")


def list_csv(current: Corrected) -> bytes:
    """The corrected list's CSV text (see the module docstring)."""
    return csv_bytes(COLUMNS, [{**as_dict(d.event), "labels": d.labels} for d in current.decisions.values()])


def conflicts_csv(current: Corrected) -> bytes:
    """One row per reviewer's decision on each clip the reviewers disagree about."""
    return csv_bytes(CONFLICT_COLUMNS, [{**as_dict(e), "labels": e.decision()}
                                   for events in current.conflicts.values() for e in events])


def conflicts_uri(output: str) -> str:
    """Where ``labels apply`` writes the conflicts: ``<list>.conflicts.csv`` beside the list."""
    return f"{output.removesuffix('.csv')}.conflicts.csv"


def write_list(current: Corrected, output: str) -> str:
    """Write the list to ``output`` and the conflicts beside it; the conflicts' URI."""
    write_bytes(list_csv(current), output)
    conflicts = conflicts_uri(output)
    write_bytes(conflicts_csv(current), conflicts)
    return conflicts


@dataclass(frozen=True)
class LabelList:
    """A corrected list as a job reads it: each listed clip's classes, which of them a reviewer decided, and the
    conflicts a store left out (0 for a file: ``labels apply`` counted them)."""

    uri: str
    sha256: str
    labels: dict[str, tuple[str, ...]]
    reviewed: frozenset[str]
    conflicts: int

    def describe(self, changed: int | None = None, absent: int | None = None) -> dict:
        """What a run record keeps of the list: where, which bytes, how many clips, how many changed, how many of
        its clips the table read does not hold."""
        return {"uri": self.uri, "sha256": self.sha256, "clips": len(self.labels), "reviewed": len(self.reviewed),
                "conflicts": self.conflicts, "changed": changed, "absent": absent}


def read_label_list(uri: str, task: Task, empty_ok: bool = False) -> LabelList:
    """The list at ``uri``: a CSV file (``.csv``) or a label store, its classes checked against ``task``.

    A CSV file is read by the one reader of a user's files (``bounded.read_bytes``): a regular file of at most
    ``bounded.MAX_LIST_BYTES``. A list of no clip (a header alone, a store of another task) is refused in one line,
    as it would change nothing, unless ``empty_ok`` (annotate: a store no verdict has reached yet skips nothing).
    """
    if uri.rstrip("/").endswith(".csv"):
        try:
            data = read_bytes(uri, "labels", MAX_LIST_BYTES, "a label list")
        except FileNotFoundError:
            raise ConfigError(f"labels: no such file: {uri}") from None
        except IsADirectoryError:
            raise ConfigError(f"labels: {uri} is a directory; a corrected list is a CSV file, and a label store's "
                              f"name does not end in .csv") from None
        conflicts = 0
    else:
        fs, path = filesystem(uri)
        if fs.exists(path) and not fs.isdir(path):  # /dev/zero, a FIFO, a list not named .csv: never opened
            raise ConfigError(f"labels: {uri} is neither a label store (a folder) nor a corrected list (a file "
                              "named .csv)")
        current = corrected(read_events(uri, task.name))
        data, conflicts = list_csv(current), len(current.conflicts)
    try:
        reader = csv.DictReader(io.StringIO(data.decode("utf-8-sig")))
        rows = [{k: restore_cell(v) if isinstance(v, str) else v for k, v in r.items()} for r in reader]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError(f"labels: {uri} is not a CSV text file ({exc})") from None
    if not {"clip_id", "labels"} <= set(reader.fieldnames or ()):  # the header's, so a header alone is checked too
        raise ConfigError(f"labels: {uri} needs the columns clip_id and labels (as `acoustic-env labels apply` "
                          f"writes them), got {sorted(reader.fieldnames or ())}")
    labels: dict[str, tuple[str, ...]] = {}
    for r in rows:
        # a class named twice in a row counts once: twice, a single-label job would drop the clip as ambiguous
        classes = tuple(dict.fromkeys(c.strip() for c in (r["labels"] or "").split(";") if c.strip()))
        before = labels.get(r["clip_id"], classes)
        if set(before) != set(classes):  # the same row twice is harmless
            raise ConfigError(f"labels: {uri} lists clip {r['clip_id']!r} twice, as {';'.join(before) or 'no class'} "
                              f"and as {';'.join(classes) or 'no class'}: keep one row per clip (`acoustic-env labels "
                              f"apply` leaves a clip the reviewers disagree about out of the list)")
        labels[r["clip_id"]] = classes
    if not labels and not empty_ok:  # a header alone, a typo in a store's URI, a store of another task
        held = f" ({conflicts} clips in conflict are left out until the reviewers agree)" if conflicts else ""
        raise ConfigError(f"labels: {uri} lists no clip of task {task.name}{held}: it would change nothing; leave "
                          "--labels out to use the table's labels")
    for clip_id, classes in labels.items():
        unknown = [c for c in classes if c not in task.class_names]
        if unknown:
            raise ConfigError(f"labels: {uri} gives clip {clip_id!r} the class {unknown[0]!r}, which is not a class "
                              f"of task {task.name} ({', '.join(task.class_names)})")
    reviewed = frozenset(r["clip_id"] for r in rows if (r.get("source") or "") in REVIEWED_SOURCES)
    return LabelList(uri, hashlib.sha256(data).hexdigest(), labels, reviewed, conflicts)


def label_list_line(used: dict | None) -> list[str]:
    """The console's line about the corrected list a run used (none: the table's labels)."""
    if not used:
        return []
    conflicts = f"; {used['conflicts']} clips in conflict keep the table's labels" if used["conflicts"] else ""
    absent = f", {used['absent']} of them not in the table" if used.get("absent") else ""
    return [f"  labels: {used['uri']} ({used['clips']} clips listed{absent}, {used['changed']} changed against the "
            f"table{conflicts}; sha256 {used['sha256'][:12]})"]
