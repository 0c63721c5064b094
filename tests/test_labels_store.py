"""The label store's files as a user meets them (acoustic_env/labels/store.py): each append's file, named by the
UTC time and typed as the store's schema for any Parquet reader; a dead writer's temporary cleared by the next
append; an event refused in one line naming the field. Real files; a real dead process."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from acoustic_env.config import ConfigError
from acoustic_env.labels.store import SCHEMA, Event, append, as_dict, default_store, read_events

T0 = datetime(2026, 11, 26, 9, 0, 5, 120000, tzinfo=timezone.utc)


def test_an_event_file_has_the_stores_schema_for_any_parquet_reader(tmp_path):
    """A file of label events only (no verdict, no classes given) still types verdict as text and labels as a list
    of text: pandas, DuckDB or a later append's file read it as the same columns."""
    uri = append(str(tmp_path), [Event("a", "urban_natural", "given", labels=(), time=T0)])
    assert pq.read_schema(uri).remove_metadata() == SCHEMA
    assert pq.read_table(uri).to_pylist()[0]["labels"] == []


def test_nothing_to_append_writes_no_file(tmp_path):
    assert append(str(tmp_path / "labels"), []) is None
    assert not (tmp_path / "labels").exists()


def test_an_event_files_name_carries_the_utc_time_whatever_the_machines_zone(tmp_path, monkeypatch):
    """Files list in time order across writers in different zones: the name's time is UTC."""
    monkeypatch.setenv("TZ", "America/Sao_Paulo")  # UTC-3, no summer time
    time.tzset()
    try:
        before = datetime.now(timezone.utc).replace(tzinfo=None)
        name = Path(append(str(tmp_path), [Event("a", "urban_natural", "given", labels=("urban",))])).name
        after = datetime.now(timezone.utc).replace(tzinfo=None)
    finally:
        monkeypatch.undo()
        time.tzset()
    found = re.fullmatch(r"events-(\d{8}T\d{12})Z-[0-9a-f]{32}\.parquet", name)
    assert found, name
    assert before <= datetime.strptime(found[1], "%Y%m%dT%H%M%S%f") <= after, name


def test_an_append_clears_a_dead_writers_temporary_and_leaves_a_live_ones(tmp_path):
    """A writer killed mid-append leaves a hidden temporary; the next append removes it (its writer is gone), but
    not the temporary of a writer still writing (this process)."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    host = socket.gethostname()
    dead_tmp, live_tmp = tmp_path / f".tmp-{dead.stdout.strip()}@{host}-ab", tmp_path / f".tmp-{os.getpid()}@{host}-cd"
    for path in (dead_tmp, live_tmp):
        path.write_bytes(b"PAR1 half a file")
        os.utime(path, (time.time() - 5, time.time() - 5))
    append(str(tmp_path), [Event("a", "urban_natural", "given", labels=("urban",))])
    assert not dead_tmp.exists() and live_tmp.exists()
    assert [e.clip_id for e in read_events(str(tmp_path))] == ["a"]


def test_a_store_named_with_a_trailing_slash_lies_beside_the_table():
    assert default_store("/d/out/features/") == "/d/out/labels"
    assert default_store("/d/run-X/") == "/d/run-X/labels"


@pytest.mark.parametrize("kwargs,line", [
    ({"clip_id": ""}, "clip_id: must be a non-empty string, got ''"),
    ({"verdict": "correct"}, "verdict: a given event takes no verdict (a)"),
    ({"source": "review", "verdict": "maybe"}, "verdict: must be one of correct, wrong, unsure, got 'maybe' (a)"),
])
def test_a_bad_event_is_refused_in_one_line_naming_the_field(kwargs, line):
    with pytest.raises(ConfigError) as err:
        Event(**{"clip_id": "a", "task": "urban_natural", "source": "given", **kwargs})
    assert str(err.value) == line


def test_an_events_time_is_written_as_utc_with_a_z():
    """The time in the CSVs and JSON a user reads: ISO 8601, UTC marked ``Z``."""
    event = Event("a", "urban_natural", "review", verdict="correct", given=("urban",), reviewer="ann", time=T0)
    assert as_dict(event) == {"clip_id": "a", "task": "urban_natural", "source": "review", "labels": (),
                              "verdict": "correct", "given": ("urban",), "reviewer": "ann",
                              "time": "2026-11-26T09:00:05.120000Z", "origin": "", "note": ""}
