"""Every event the label store refuses is one line naming the field, what it got and the clip
(``labels/store.py: Event``): a reviewer with a 10,000-row verdict file learns which row to fix (issue 84: ``make
mutate`` on store.py left the clip and the value out of these lines unnoticed). So is every event file a reader
cannot take (a folder, a FIFO, a link to nothing, one cut short, one too large, an event dated past its file's time):
the line names the file and gives its reader's own reason.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pytest

from acoustic_env.config import ConfigError
from acoustic_env.labels.store import FUTURE_SKEW, SCHEMA, Event, append, event_name, read_events
from acoustic_env.storage import write_parquet

T0 = datetime(2026, 11, 28, 10, tzinfo=timezone.utc)


@pytest.mark.parametrize("fields,line", [
    ({"source": "guess", "verdict": None}, "source: must be one of given, import, review, search, got 'guess' (clip-7)"),
    ({"verdict": None}, "verdict: a review event needs verdict (clip-7)"),
    ({"verdict": "maybe"}, "verdict: must be one of correct, wrong, unsure, got 'maybe' (clip-7)"),
    ({"time": "yesterday"}, "time: must be a date and time, got 'yesterday' (clip-7)"),
    ({"time": datetime(2026, 11, 28, 10)}, "time: must carry a time zone (UTC), got 2026-11-28T10:00:00 (clip-7)"),
    ({"reviewer": 7}, "reviewer: must be text, got int (clip-7)"),
    ({"note": "n" * 4097}, "note: at most 4096 characters, got 4097 (clip-7)"),
    ({"labels": ("x" * 257,)}, "labels (a class): at most 256 characters, got 257 (clip-7)"),
    ({"given": ("x",) * 257}, "given: at most 256 classes in an event, got 257 (clip-7)"),
])
def test_a_refused_event_names_its_field_its_value_and_its_clip(fields, line):
    with pytest.raises(ConfigError) as err:
        Event(**{"clip_id": "clip-7", "task": "t", "source": "review", "verdict": "correct", "time": T0, **fields})
    assert str(err.value) == line


def _store_with(tmp_path, name_time: datetime, event_time: datetime) -> tuple[str, str]:
    """A store of one event file written by hand: its name says ``name_time``, its one event ``event_time``."""
    store = tmp_path / "labels"
    uri = str(store / event_name(name_time))
    write_parquet(pa.table({**{k: [None] for k in SCHEMA.names}, "clip_id": ["c1"], "task": ["t"],
                            "source": ["given"], "labels": [["a"]], "time": [event_time]}, schema=SCHEMA), uri)
    return str(store), uri


def test_an_event_dated_past_its_files_time_by_more_than_the_skew_is_refused_and_no_sooner(tmp_path):
    """A file written by hand (or before the rule) whose event is dated ahead of the file: up to FUTURE_SKEW (two
    machines' clocks) it reads; a microsecond more, and the reader names the file, the clip, both times and why."""
    t = datetime(2026, 11, 28, 10, tzinfo=timezone.utc)
    store, _ = _store_with(tmp_path / "at", t, t + FUTURE_SKEW)
    assert [e.time for e in read_events(store)] == [t + FUTURE_SKEW]
    late = t + FUTURE_SKEW + timedelta(microseconds=1)
    store, uri = _store_with(tmp_path / "past", t, late)
    with pytest.raises(ConfigError) as err:
        read_events(store)
    assert str(err.value) == (
        f"store: {uri} is not a readable event file (time: the event on clip 'c1' is dated {late.isoformat()}, after "
        "the time its file was written (2026-11-28T10:00:00+00:00) by more than 0:05:00: a verdict from the future "
        f"would outlast every later one; fix the clock or the time given); move it out of {store} (the store then "
        "reads without its events)")


def _folder(path: Path) -> None:
    path.mkdir()


def _fifo(path: Path) -> None:
    os.mkfifo(path)  # opened, it would block the reader: never opened


def _dangling_link(path: Path) -> None:
    path.symlink_to(path.parent / "gone.parquet")


def _cut_short(path: Path) -> None:
    whole = Path(append(str(path.parent), [Event("c1", "t", "given", labels=("a",), time=T0)]))
    path.write_bytes(whole.read_bytes()[:-40])
    whole.unlink()


@pytest.mark.parametrize("damage, reason", [
    (_folder, "Is a directory"),
    (_fifo, "is not a regular file (a FIFO, a device or a socket); give a file"),
    (_dangling_link, "No such file or directory"),
    (_cut_short, "not a readable Parquet file (Parquet magic bytes not found in footer. Either the file is corrupted "
                 "or this is not a parquet file.)"),
])
def test_an_event_file_that_cannot_be_read_is_one_line_in_the_readers_own_words(tmp_path, damage, reason):
    """The line names the file and says what its reader found, without the file's name twice, an errno or a
    traceback: the reviewer moves that one file out and the store reads again."""
    store = tmp_path / "labels"
    store.mkdir()
    bad = store / event_name(T0)
    damage(bad)
    with pytest.raises(ConfigError) as err:
        read_events(str(store))
    assert str(err.value) == (f"store: {bad} is not a readable event file ({reason}); move it out of {store} (the "
                              "store then reads without its events)")


def test_an_event_file_over_the_size_limit_is_never_opened(tmp_path, monkeypatch):
    store = tmp_path / "labels"
    uri = append(str(store), [Event("c1", "t", "given", labels=("a",), time=T0)])
    size = Path(uri).stat().st_size
    monkeypatch.setattr("acoustic_env.labels.store.MAX_FILE_BYTES", 100)
    with pytest.raises(ConfigError) as err:
        read_events(str(store))
    assert str(err.value) == (
        f"store: {uri} is not a readable event file (is {size / 1024:.1f} KiB ({size:,} bytes), over the limit of a "
        f"label store's event file (100 bytes)); move it out of {store} (the store then reads without its events)")
