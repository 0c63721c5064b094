"""An audit review's verdicts as label store events: checked whole, then appended as one file.

The verdict files are read as ``audit-estimate`` reads them
(:func:`acoustic_env.jobs.audit.estimate.read_verdicts`: JSON or CSV, as a spreadsheet saves
them). Nothing is appended unless every verdict passes: a verdict about a clip the feature
table does not hold (another table's, or forged), a class the task does not have, or no
reviewer to credit it to, refuses the batch with one line naming it.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Collection

import pyarrow.compute as pc

from acoustic_env.bounded import shown
from acoustic_env.config import ConfigError
from acoustic_env.labels.store import Event
from acoustic_env.table import open_table
from acoustic_env.vocabulary.tasks import Task


def table_clip_ids(features: str) -> set[str]:
    """Every clip id of the feature table (its ``clip_id`` column alone is read)."""
    ids = open_table(features).dataset().to_table(columns=["clip_id"])["clip_id"]
    return set(pc.unique(ids).to_pylist())


def _time(text: str) -> datetime:
    """A verdict's time (the review server stamps each with its clock, ISO 8601, UTC), else now."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return datetime.now(timezone.utc)
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def verdict_events(records: list[dict[str, Any]], task: Task, clip_ids: Collection[str], *, table: str,
                   reviewer: str | None, origin: str | None, source: str = "review") -> list[Event]:
    """The events of normalized verdict ``records`` (``estimate.normalize_verdict``), or one ConfigError.

    ``reviewer`` (given: every verdict's) and ``origin`` (given: every verdict's; else the verdict's
    ``audit_id``) say who judged and where; ``clip_ids``: the clips of ``table``.
    """
    unknown = [r["clip_id"] for r in records if r["clip_id"] not in clip_ids]
    if unknown:
        raise ConfigError(f"verdicts: {len(unknown)} verdict(s) name clips that are not in the feature table {table} "
                          f"(e.g. {shown(unknown[0])}); nothing was added")
    events = []
    for r in records:
        for name in (*r["given_labels"], *r["corrected_label"]):
            if name not in task.class_names:
                raise ConfigError(f"verdicts: clip {shown(r['clip_id'])} names class {shown(name)}, not a class of "
                                  f"task {task.name} ({', '.join(task.class_names)}); nothing was added")
        who = reviewer or r["reviewer"]
        if not who:
            raise ConfigError(f"reviewer: the verdict on clip {shown(r['clip_id'])} names no reviewer; give --reviewer "
                              "NAME (a reviewer's verdicts are told apart from another's by it)")
        events.append(Event(clip_id=r["clip_id"], task=task.name, source=source, verdict=r["verdict"],
                            labels=tuple(r["corrected_label"]), given=tuple(r["given_labels"]), reviewer=who,
                            time=_time(r["time"]), origin=origin or r["audit_id"], note=r["note"]))
    return events
