"""The label store: an append-only directory of event files beside the feature table.

Each append writes one new whole Parquet file, ``events-<UTC time>-<uuid>.parquet``: locally
a hidden temporary file renamed into place, on object storage a single PUT
(:func:`acoustic_env.storage.write_parquet`). So

* two writers never write the same file (the uuid), and neither overwrites the other: two
  processes appending at once lose no event;
* a writer killed mid-append leaves at most its hidden temporary, which readers never list
  (:func:`acoustic_env.storage.list_parts`): the store still reads, without that append;
* nothing is ever rewritten or deleted, so two reviewers' verdicts on one clip both stay.

An event is a clip's ``labels`` (class names of ``task``; source ``given`` or ``import``), or a
reviewer's ``verdict`` on the clip's ``given`` labels (``correct``, ``wrong`` with the right
classes in ``labels``, or ``unsure``; source ``review`` or ``search``), with who gave it
(``reviewer``), when (``time``: the writer's clock, UTC, unless the verdict carries the reviewing
server's), where it came from (``origin``: the audit or search) and a ``note``.
"""

from __future__ import annotations

import posixpath
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

import pyarrow as pa

from acoustic_env.config import ConfigError
from acoustic_env.storage import join, read_parts, remove_stale_temporaries, write_parquet

#: Sources of labels as given (a table's own, a list imported) and of a person's judgement.
GIVEN_SOURCES = ("given", "import")
REVIEWED_SOURCES = ("review", "search")
SOURCES = GIVEN_SOURCES + REVIEWED_SOURCES
VERDICTS = ("correct", "wrong", "unsure")
#: The store's directory below an extract output.
STORE_DIR = "labels"
PREFIX = "events-"

SCHEMA = pa.schema([("clip_id", pa.string()), ("task", pa.string()), ("source", pa.string()),
                    ("labels", pa.list_(pa.string())), ("verdict", pa.string()), ("given", pa.list_(pa.string())),
                    ("reviewer", pa.string()), ("time", pa.timestamp("us", tz="UTC")), ("origin", pa.string()),
                    ("note", pa.string())])


@dataclass(frozen=True)
class Event:
    """One label or verdict about one clip, as stored (see the module docstring)."""

    clip_id: str
    task: str
    source: str
    labels: tuple[str, ...] = ()
    verdict: str | None = None
    given: tuple[str, ...] = ()
    reviewer: str = ""
    time: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    origin: str = ""
    note: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.clip_id, str) or not self.clip_id:
            raise ConfigError(f"clip_id: must be a non-empty string, got {self.clip_id!r}")
        if self.source not in SOURCES:
            raise ConfigError(f"source: must be one of {', '.join(SOURCES)}, got {self.source!r} ({self.clip_id})")
        if (self.verdict is None) == (self.source in REVIEWED_SOURCES):
            raise ConfigError(f"verdict: a {self.source} event {'needs' if self.verdict is None else 'takes no'} "
                              f"verdict ({self.clip_id})")
        if self.verdict is not None and self.verdict not in VERDICTS:
            raise ConfigError(f"verdict: must be one of {', '.join(VERDICTS)}, got {self.verdict!r} ({self.clip_id})")
        if self.time.tzinfo is None:
            raise ConfigError(f"time: must carry a time zone (UTC), got {self.time.isoformat()} ({self.clip_id})")

    def decision(self) -> tuple[str, ...] | None:
        """The classes this event says the clip has (empty: none of the task's), or None when it says nothing
        (``unsure``): a label event its labels, ``correct`` the given labels, ``wrong`` the classes named instead."""
        if self.verdict == "unsure":
            return None
        if self.verdict == "correct":
            return tuple(sorted(self.given))
        return tuple(sorted(self.labels))


def default_store(features: str) -> str:
    """``<extract output>/labels``: beside ``features/`` whether ``features`` names the output, its ``features/``
    directory or a Parquet file in it (never inside ``features/``, whose Parquet files are the table's parts)."""
    base = features.rstrip("/")
    if base.endswith(".parquet"):
        base = posixpath.dirname(base)
    if posixpath.basename(base) == "features":
        base = posixpath.dirname(base)
    return join(base, STORE_DIR)


def event_name(now: datetime | None = None) -> str:
    """A new event file's name: the writer's UTC time (files list in time order) and a uuid (no two collide)."""
    now = now or datetime.now(timezone.utc)
    return f"{PREFIX}{now:%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex}.parquet"


def append(store: str, events: list[Event]) -> str | None:
    """Write ``events`` into ``store`` as one new file (see the module docstring); its URI (None: no events).

    Temporaries a dead local writer left more than ``storage.STALE_TEMPORARY_S`` ago are removed first.
    """
    if not events:
        return None
    rows = {name: [getattr(e, name) for e in events] for name in SCHEMA.names}
    remove_stale_temporaries(store, before=time.time())
    uri = join(store, event_name())
    write_parquet(pa.table(rows, schema=SCHEMA), uri)
    return uri


def read_events(store: str, task: str | None = None) -> list[Event]:
    """Every event of ``store`` (of ``task`` only, when given), in time order, an event written twice (the same
    verdicts file added again) once. A store that does not exist yet holds none."""
    table = read_parts(store)
    if table is None:
        return []
    rows = table.select(SCHEMA.names).cast(SCHEMA).to_pylist()
    seen: dict[Event, None] = {}
    for row in rows:
        if task is not None and row["task"] != task:
            continue
        event = Event(**{**row, "labels": tuple(row["labels"] or ()), "given": tuple(row["given"] or ()),
                         "reviewer": row["reviewer"] or "", "origin": row["origin"] or "", "note": row["note"] or ""})
        seen.setdefault(event)
    return sorted(seen, key=lambda e: e.time)


def as_dict(event: Event) -> dict:
    """An event as plain data (time in ISO 8601), for JSON and CSV."""
    out = asdict(event)
    out["time"] = event.time.isoformat().replace("+00:00", "Z")
    return out
