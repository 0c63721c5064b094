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

What the store takes is bounded at its door (:class:`Event`, built for every event written and read):

* each text field to :data:`FIELD_LIMITS` characters, and an event to :data:`MAX_CLASSES` class names: a
  128-KiB reviewer name once made every reader of the store, and the list ``labels apply`` writes, fail;
* its ``time`` to at most :data:`FUTURE_SKEW` after the clock of the process that appends it (an event dated
  2099 would outlast every later verdict of its reviewer) and, read back, after the time its file's name
  records (a file written before this rule, or by hand). Events are ordered by the time the reviewer judged,
  not by when the store received them: a review's verdicts added a day later still come before a click made
  in between.

A reader takes the store's own files, ``events-<UTC time>-<uuid>.parquet`` (:func:`event_files`), and no other
file there. A file it cannot read (cut short, a column of the wrong type, an event that breaks a rule above)
stops the read with one line naming it, to be moved out of the store.
"""

from __future__ import annotations

import posixpath
import re
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone

import pyarrow as pa

from acoustic_env.config import ConfigError
from acoustic_env.bounded import file_size, shown
from acoustic_env.errors import DamagedFileError
from acoustic_env.storage import join, list_parts, read_part, remove_stale_temporaries, write_parquet

#: Sources of labels as given (a table's own, a list imported) and of a person's judgement.
GIVEN_SOURCES = ("given", "import")
REVIEWED_SOURCES = ("review", "search")
SOURCES = GIVEN_SOURCES + REVIEWED_SOURCES
VERDICTS = ("correct", "wrong", "unsure")
#: The store's directory below an extract output.
STORE_DIR = "labels"
PREFIX = "events-"

#: The longest each text field of an event may be, in characters (a class name: each of ``labels`` and ``given``).
FIELD_LIMITS = {"clip_id": 4096, "task": 4096, "reviewer": 256, "origin": 4096, "note": 4096, "class": 256}
#: The most class names an event's ``labels`` or ``given`` may hold: so many at the longest still make a cell of
#: the list ``labels apply`` writes that a CSV reader takes (Python's csv: 128 KiB a field).
MAX_CLASSES = 256
#: How far past the appending process's clock an event's time may be (two machines' clocks differ a little).
FUTURE_SKEW = timedelta(minutes=5)
#: The largest event file a reader opens (an append of a whole review is a few MB).
MAX_FILE_BYTES = 256 << 20
#: The most characters of a reader's own message quoted in the line that names a bad event file.
_REASON_CHARS = 300
_NAME = re.compile(rf"{PREFIX}(\d{{8}}T\d{{12}})Z-[0-9a-f]{{32}}\.parquet$")

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
            raise ConfigError(f"clip_id: must be a non-empty string, got {shown(self.clip_id)}")
        for name in ("clip_id", "task", "reviewer", "origin", "note"):
            _bounded(name, getattr(self, name), FIELD_LIMITS[name], self.clip_id)
        for name in ("labels", "given"):
            classes = getattr(self, name)
            if len(classes) > MAX_CLASSES:
                raise ConfigError(f"{name}: at most {MAX_CLASSES} classes in an event, got {len(classes)} "
                                  f"({shown(self.clip_id, bare=True)})")
            for c in classes:
                _bounded(f"{name} (a class)", c, FIELD_LIMITS["class"], self.clip_id)
        if self.source not in SOURCES:
            raise ConfigError(f"source: must be one of {', '.join(SOURCES)}, got {shown(self.source)} "
                              f"({shown(self.clip_id, bare=True)})")
        if (self.verdict is None) == (self.source in REVIEWED_SOURCES):
            raise ConfigError(f"verdict: a {self.source} event {'needs' if self.verdict is None else 'takes no'} "
                              f"verdict ({shown(self.clip_id, bare=True)})")
        if self.verdict is not None and self.verdict not in VERDICTS:
            raise ConfigError(f"verdict: must be one of {', '.join(VERDICTS)}, got {shown(self.verdict)} "
                              f"({shown(self.clip_id, bare=True)})")
        if not isinstance(self.time, datetime):
            raise ConfigError(f"time: must be a date and time, got {shown(self.time)} "
                              f"({shown(self.clip_id, bare=True)})")
        if self.time.tzinfo is None:
            raise ConfigError(f"time: must carry a time zone (UTC), got {self.time.isoformat()} "
                              f"({shown(self.clip_id, bare=True)})")

    def decision(self) -> tuple[str, ...] | None:
        """The classes this event says the clip has (empty: none of the task's), or None when it says nothing
        (``unsure``): a label event its labels, ``correct`` the given labels, ``wrong`` the classes named instead."""
        if self.verdict == "unsure":
            return None
        if self.verdict == "correct":
            return tuple(sorted(self.given))
        return tuple(sorted(self.labels))


def _bounded(field_name: str, value: object, limit: int, clip_id: str) -> None:
    """A text field of an event: a string of at most ``limit`` characters, or one line naming it."""
    if not isinstance(value, str):
        raise ConfigError(f"{field_name}: must be text, got {type(value).__name__} ({shown(clip_id, bare=True)})")
    if len(value) > limit:
        raise ConfigError(f"{field_name}: at most {limit} characters, got {len(value)} ({shown(clip_id, bare=True)})")


def check_not_future(events: list[Event], now: datetime, what: str) -> None:
    """Refuse an event dated more than :data:`FUTURE_SKEW` after ``now`` (the clock of ``what``)."""
    late = next((e for e in events if e.time > now + FUTURE_SKEW), None)
    if late is not None:
        raise ConfigError(f"time: the event on clip {shown(late.clip_id)} is dated {late.time.isoformat()}, after "
                          f"{what} ({now.isoformat(timespec='seconds')}) by more than {FUTURE_SKEW}: a verdict "
                          "from the future would outlast every later one; fix the clock or the time given")


def default_store(features: str) -> str:
    """``<extract output>/labels``: beside ``features/`` whether ``features`` names the output, its ``features/``
    directory or a Parquet file in it (never inside ``features/``, whose Parquet files are the table's parts)."""
    base = features.rstrip("/")
    if base.endswith(".parquet"):
        base = posixpath.dirname(base)
    if posixpath.basename(base) == "features":
        base = posixpath.dirname(base)
    return join(base, STORE_DIR)


def event_name(now: datetime) -> str:
    """A new event file's name: the writer's UTC time ``now`` (files list in time order) and a uuid (no two
    collide)."""
    return f"{PREFIX}{now:%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex}.parquet"


def append(store: str, events: list[Event]) -> str | None:
    """Write ``events`` into ``store`` as one new file (see the module docstring); its URI (None: no events).

    Temporaries a dead local writer left more than ``storage.STALE_TEMPORARY_S`` ago are removed first.
    Raises ConfigError, writing nothing, when an event is dated in the future (:func:`check_not_future`).
    """
    if not events:
        return None
    now = datetime.now(timezone.utc)
    check_not_future(events, now, "this machine's clock")
    rows = {name: [getattr(e, name) for e in events] for name in SCHEMA.names}
    remove_stale_temporaries(store, before=time.time())
    uri = join(store, event_name(now))
    write_parquet(pa.table(rows, schema=SCHEMA), uri)
    return uri


def event_files(store: str) -> list[str]:
    """The store's own files (:func:`event_name`), in name order; any other file there is not read."""
    return [uri for uri in list_parts(store) if _NAME.match(posixpath.basename(uri))]


def read_events(store: str, task: str | None = None) -> list[Event]:
    """Every event of ``store`` (of ``task`` only, when given), in time order, an event written twice (the same
    verdicts file added again) once. A store that does not exist yet holds none.

    Raises ConfigError, one line naming the file and how to set it aside, when one cannot be read.
    """
    seen: dict[Event, None] = {}
    for uri in event_files(store):
        for event in _file_events(uri):
            if task is None or event.task == task:
                seen.setdefault(event)
    return sorted(seen, key=lambda e: e.time)


def _file_events(uri: str) -> list[Event]:
    """The events of one event file, checked as an append checks them (its name's time is its writer's clock)."""
    written = datetime.strptime(_NAME.match(posixpath.basename(uri)).group(1),  # type: ignore[union-attr]
                                "%Y%m%dT%H%M%S%f").replace(tzinfo=timezone.utc)
    try:
        file_size(uri, "store", MAX_FILE_BYTES, "a label store's event file")  # a FIFO or /dev/zero: never opened
        rows = read_part(uri).select(SCHEMA.names).cast(SCHEMA).to_pylist()
        events = [Event(**{**row, "labels": tuple(row["labels"] or ()), "given": tuple(row["given"] or ()),
                           "reviewer": row["reviewer"] or "", "origin": row["origin"] or "",
                           "note": row["note"] or ""}) for row in rows]
        check_not_future(events, written, "the time its file was written")
    except (DamagedFileError, ConfigError, KeyError, TypeError, OSError, pa.ArrowException) as exc:
        said = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        reason = (said.removeprefix(f"store: {uri} ").removeprefix(f"{uri}: ").splitlines()
                  or [type(exc).__name__])[0][:_REASON_CHARS]
        raise ConfigError(f"store: {uri} is not a readable event file ({reason}); move it out of "
                          f"{posixpath.dirname(uri)} (the store then reads without its events)") from None
    return events


def as_dict(event: Event) -> dict:
    """An event as plain data (time in ISO 8601), for JSON and CSV."""
    out = asdict(event)
    out["time"] = event.time.isoformat().replace("+00:00", "Z")
    return out
