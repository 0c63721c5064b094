"""Issue 82's label-store cases, each as a user or an attacker would try it: an output aimed into the store it
reads or into a table's parts, a damaged or forged event file, a verdict from the future, fields too long to read
back, names that would forge console lines, a file added twice, an example that is not there. Each ends in one line
naming what is wrong, with the store and the table left readable. Real files and the real command line; a small
synthetic table (no Ray)."""

from __future__ import annotations

import json
import os
import re
import threading
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from acoustic_env.cli import main
from acoustic_env.config import ConfigError
from acoustic_env.demo.tables import synthetic_features, write_features
from acoustic_env.labels.label_list import read_label_list
from acoustic_env.labels.store import (FIELD_LIMITS, FUTURE_SKEW, MAX_CLASSES, SCHEMA, Event, append,
                                       default_store, event_name, read_events)
from acoustic_env.storage import write_parquet
from acoustic_env.table import open_table, read_features
from acoustic_env.vocabulary.tasks import Task


@pytest.fixture
def table(tmp_path) -> str:
    return write_features(synthetic_features(12, seed=1, signals=("raw",)).table, str(tmp_path / "table"))


def _verdicts(path: Path, *rows: dict, time: str | None = "2026-11-26T10:00:00.000Z") -> str:
    stamp = {"time": time} if time else {}
    path.write_text(json.dumps({"verdicts": [{"sample": "suspects", "given_labels": ["urban"], **stamp, **r}
                                             for r in rows]}))
    return str(path)


def _error(capsys) -> str:
    """The one line a refused command printed (and that it is one line)."""
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def _add(table: str, verdicts: str, *extra: str) -> int:
    return main(["labels", "add-verdicts", "--features", table, "--verdicts", verdicts, *extra])


def test_apply_never_writes_into_the_store_it_reads(table, tmp_path, capsys):
    """Item 4: ``labels apply --store S --output S/<an events file>`` replaced that reviewer's events with a CSV."""
    store = tmp_path / "store"
    assert _add(table, _verdicts(tmp_path / "v.json", {"clip_id": "clip0000001", "verdict": "correct"}),
                "--reviewer", "ann", "--store", str(store)) == 0
    [events] = list(store.iterdir())
    before = events.read_bytes()
    for output in (events, store / "list.csv"):
        capsys.readouterr()
        assert main(["labels", "apply", "--features", table, "--store", str(store), "--output", str(output)]) == 2
        assert f"output: {output} " in _error(capsys)
    assert events.read_bytes() == before and len(read_events(str(store))) == 1


def _event_file(store: Path, table: pa.Table) -> Path:
    store.mkdir(parents=True, exist_ok=True)
    path = store / event_name(datetime.now(timezone.utc))
    write_parquet(table, str(path))
    return path


def _good_rows(**change) -> dict:
    row = {"clip_id": "clip0000001", "task": "urban_natural", "source": "review", "labels": [], "verdict": "correct",
           "given": ["urban"], "reviewer": "ann", "time": datetime(2026, 11, 26, tzinfo=timezone.utc), "origin": "a",
           "note": ""}
    return {k: [v] for k, v in {**row, **change}.items()}


@pytest.mark.parametrize("damage,reason", [
    ("truncated", "not a readable Parquet file"),
    ("text time", "time"),
    ("hacker source", "source: must be one of given, import, review, search, got 'hacker'"),
    ("from 2099", "after the time its file was written"),
    ("no time", "time: must be a date and time, got None"),
    ("a FIFO", "is not a regular file (a FIFO, a device or a socket)"),
    ("a folder", "Is a directory"),
])
def test_a_bad_event_file_is_one_line_naming_it_and_how_to_set_it_aside(table, tmp_path, capsys, damage, reason):
    """Items 5, 16 and 6: a truncated part, a ``time`` of text, a source nobody writes, an event dated 2099 in a
    file written today, no time, a FIFO or a folder by an event file's name: ``labels show`` and ``apply`` (and a
    job's ``--labels``) say which file, in one line, and never open a FIFO."""
    store = Path(default_store(table))
    append(str(store), [Event("clip0000002", "urban_natural", "given", labels=("urban",))])
    if damage == "truncated":
        bad = _event_file(store, pa.table(_good_rows(), schema=SCHEMA))
        bad.write_bytes(bad.read_bytes()[:-40])
    elif damage == "text time":
        bad = _event_file(store, pa.table({**_good_rows(), "time": ["yesterday"]}))
    elif damage == "hacker source":
        bad = _event_file(store, pa.table(_good_rows(source="hacker"), schema=SCHEMA))
    elif damage == "from 2099":
        bad = _event_file(store, pa.table(_good_rows(time=datetime(2099, 1, 1, tzinfo=timezone.utc)), schema=SCHEMA))
    elif damage == "no time":
        bad = _event_file(store, pa.table(_good_rows(time=None), schema=SCHEMA))
    elif damage == "a FIFO":  # opened, it would block every reader for ever
        bad = store / event_name(datetime.now(timezone.utc))
        os.mkfifo(bad)
        # its writer: should a reader open it after all, the test fails on EOF instead of hanging
        threading.Thread(target=lambda: open(bad, "wb").close(), daemon=True).start()
    else:
        bad = store / event_name(datetime.now(timezone.utc))
        bad.mkdir()
    for command in (["show"], ["apply", "--output", str(tmp_path / "list.csv")]):
        capsys.readouterr()
        assert main(["labels", *command, "--features", table]) == 2
        err = _error(capsys)
        assert err.startswith(f"acoustic-env: error: store: {bad} is not a readable event file (") and reason in err
        assert err.endswith(f"move it out of {store} (the store then reads without its events)")
    bad.rename(tmp_path / bad.name)  # set aside, as the line says: the store reads again
    if damage == "a FIFO":
        os.close(os.open(tmp_path / bad.name, os.O_RDONLY | os.O_NONBLOCK))  # lets its writer go
    assert len(read_events(str(store))) == 1


def test_a_verdict_from_the_future_is_refused_at_the_door(table, tmp_path, capsys):
    """Item 6: an event dated 2099 won over every later click of its reviewer. Times are the reviewer's, refused
    beyond FUTURE_SKEW past the appending clock; within it (two machines' clocks) they are taken."""
    future = _verdicts(tmp_path / "f.json", {"clip_id": "clip0000001", "verdict": "wrong",
                                             "corrected_label": ["natural"]}, time="2099-01-01T00:00:00Z")
    assert _add(table, future, "--reviewer", "ann") == 2
    assert "time: the event on clip 'clip0000001' is dated 2099-01-01T00:00:00+00:00, after this machine's clock" \
        in _error(capsys)
    assert read_events(default_store(table)) == []
    soon = (datetime.now(timezone.utc) + FUTURE_SKEW / 2).isoformat()
    assert _add(table, _verdicts(tmp_path / "s.json", {"clip_id": "clip0000001", "verdict": "correct"}, time=soon),
                "--reviewer", "ann") == 0
    with pytest.raises(ConfigError, match="^time: the event on clip 'x' is dated 2099"):
        append(str(tmp_path / "s"), [Event("x", "t", "given", time=datetime(2099, 1, 1, tzinfo=timezone.utc))])


def test_every_text_field_is_bounded_at_the_door(table, tmp_path, capsys):
    """Item 7: a 128-KiB reviewer name made every reader of the store, and the list ``apply`` writes, fail."""
    long_name = "a" * (128 << 10)
    assert _add(table, _verdicts(tmp_path / "v.json", {"clip_id": "clip0000001", "verdict": "correct",
                                                       "reviewer": long_name})) == 2
    assert _error(capsys) == "acoustic-env: error: reviewer: at most 256 characters, got 131072 (clip0000001)"
    assert read_events(default_store(table)) == []
    assert _add(table, _verdicts(tmp_path / "v.json", {"clip_id": "c" * (1 << 20), "verdict": "correct"}),
                "--reviewer", "ann") == 2  # not a clip of the table: quoted by its first characters
    assert len(_error(capsys)) < 300
    for field, limit in FIELD_LIMITS.items():
        name = {"class": "labels (a class)"}.get(field, field)
        value = "x" * (limit + 1)
        kwargs = {"labels": (value,)} if field == "class" else {field: value}
        with pytest.raises(ConfigError, match=rf"^{re.escape(name)}: at most {limit} characters, got {limit + 1} "):
            Event(**{"clip_id": "a", "task": "t", "source": "given", **kwargs})
        Event(**{"clip_id": "a", "task": "t", "source": "given",
                 **({"labels": ("x" * limit,)} if field == "class" else {field: "x" * limit})})  # at the limit: taken
    with pytest.raises(ConfigError, match=rf"^labels: at most {MAX_CLASSES} classes in an event, got {MAX_CLASSES + 1} "):
        Event("a", "t", "given", labels=tuple(map(str, range(MAX_CLASSES + 1))))
    at_most = Event("a", "t", "given", labels=tuple(f"{i:0{FIELD_LIMITS['class']}d}" for i in range(MAX_CLASSES)))
    store = str(tmp_path / "widest")  # the widest event there can be: its list still reads back
    append(store, [at_most])
    task = Task("t", "multi_label", at_most.labels, tuple(frozenset([c]) for c in at_most.labels), {})
    assert read_label_list(store, task).labels["a"] == at_most.labels


def test_stores_and_outputs_never_land_inside_a_table_or_another_store(table, tmp_path, capsys):
    """Item 8 and the write rule: ``--store TABLE/features`` wrote events among the table's parts, and ``predict
    --save TABLE/features/x.parquet`` a file the table then read as rows; an output into a store no command was
    asked to write is refused the same way."""
    parts = Path(table) / "features"
    v = _verdicts(tmp_path / "v.json", {"clip_id": "clip0000001", "verdict": "correct"})
    assert _add(table, v, "--reviewer", "ann", "--store", str(parts)) == 2
    assert _error(capsys) == (f"acoustic-env: error: store: {parts} is a feature table's parts folder: a file "
                              "written there would be read as one of its own; give a path outside it")
    other = write_features(synthetic_features(6, seed=2, signals=("raw",)).table, str(tmp_path / "other"))
    assert main(["predict", str(tmp_path / "a.wav"), "--model", str(tmp_path / "m"), "--save",
                 f"{other}/features/x.parquet"]) == 2
    assert f"save: {other}/features/x.parquet lies inside a feature table's parts folder ({other}/features)" \
        in _error(capsys)
    assert _add(table, v, "--reviewer", "ann") == 0
    assert main(["export", other, "--output", f"{default_store(table)}/x.parquet"]) == 2
    assert f"lies inside a label store ({default_store(table)})" in _error(capsys)
    (tmp_path / "esc50").mkdir()  # a root that exists: the recipe checks it before its output
    assert main(["recipe", "esc50", str(tmp_path / "esc50"), str(parts)]) == 2  # its lists written there
    assert _error(capsys) == (f"acoustic-env: error: out: {parts} is a feature table's parts folder: a file "
                              "written there would be read as one of its own; give a path outside it")
    errors = Path(other) / "errors"  # a run's compacted errors/ holds errors-<run>.parquet alone
    errors.mkdir()
    (errors / "errors-20261126T000000Z-abc123.parquet").write_bytes(b"")
    assert main(["export", table, "--output", f"{errors}/x.csv"]) == 2
    assert f"output: {errors}/x.csv lies inside a feature table's parts folder ({errors})" in _error(capsys)
    assert sorted(p.name for p in parts.iterdir()) == ["part-synthetic-0000.parquet", "part-synthetic-0001.parquet"]


def test_the_tables_readers_leave_out_a_foreign_file_in_features(table, tmp_path):
    """Item 8: the extract resume left a foreign Parquet file in features/ alone, but the readers took it as rows
    (an events part there, a ``--save`` aimed at it: clips twice, train and export failed). Now both take a
    table's own parts (``part-*``) only."""
    from acoustic_env.learn.artifact import table_clip_s

    parts = Path(table) / "features"
    clip_s = table_clip_s(table)  # the median clip length a model records of its table
    pq.write_table(pq.read_table(parts / "part-synthetic-0000.parquet").slice(0, 3), parts / "found.parquet")
    pq.write_table(pa.table({"duration_s": [999.0] * 50}), parts / "durations.parquet")
    for source in (table, str(parts)):
        assert len(open_table(source).parts) == 2 and len(read_features(source)) == 12
    assert table_clip_s(table) == clip_s
    (parts / "durations.parquet").unlink()
    empty = tmp_path / "only" / "features"
    empty.mkdir(parents=True)
    (parts / "found.parquet").rename(empty / "found.parquet")
    with pytest.raises(ConfigError, match=r"^features: .*/only/features holds no part of a table \(part-\*\.parquet"):
        open_table(str(tmp_path / "only"))


def test_reviewer_names_are_printed_escaped(table, tmp_path, capsys):
    """Item 13: a reviewer named with a terminal escape and a newline forged a line of ``labels show`` and of
    ``apply``'s conflicts; each is printed as its escape."""
    forged = "\x1b[2K\rbob\nlabel store OK: 0 events"
    assert _add(table, _verdicts(tmp_path / "a.json", {"clip_id": "clip0000001", "verdict": "correct"}),
                "--reviewer", "ann") == 0
    assert _add(table, _verdicts(tmp_path / "b.json", {"clip_id": "clip0000001", "verdict": "wrong",
                                                       "corrected_label": ["natural"]}), "--reviewer", forged) == 0
    capsys.readouterr()
    assert main(["labels", "show", "--features", table]) == 0
    assert main(["labels", "apply", "--features", table, "--output", str(tmp_path / "list.csv")]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\r" not in out and "\nlabel store OK" not in out
    assert "reviewers: \\x1b[2K\\rbob\\nlabel store OK: 0 events, ann" in out
    assert "clip0000001: \\x1b[2K\\rbob\\nlabel store OK: 0 events wrong -> natural; ann correct -> urban" in out
    append(default_store(table), [Event("clip0000002", "\x1b]0;owned\x07", "given")])  # a task's name forged too
    assert main(["labels", "show", "--features", table, "--task", "labels:night,day"]) == 0
    assert "the store holds events of other tasks: \\x1b]0;owned\\x07, urban_natural (name one with --task)" \
        in capsys.readouterr().out


def test_a_file_without_times_added_twice_is_stored_once(table, tmp_path, capsys):
    """Item 17: each time-less verdict is stamped when added, so a second add doubled the count in ``show``."""
    v = _verdicts(tmp_path / "v.json", {"clip_id": "clip0000001", "verdict": "correct"},
                  {"clip_id": "clip0000002", "verdict": "wrong", "corrected_label": ["natural"]}, time=None)
    assert _add(table, v, "--reviewer", "ann") == 0
    assert _add(table, v, "--reviewer", "ann") == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"0 verdicts added (none) to the label store {default_store(table)}; 2 repeat what the store holds already, "
        "not added again")
    assert main(["labels", "show", "--features", table]) == 0
    assert "2 events (review 2) about 2 clips" in capsys.readouterr().out
    assert _add(table, _verdicts(tmp_path / "w.json", {"clip_id": "clip0000001", "verdict": "wrong",
                                                       "corrected_label": ["natural"]}, time=None),
                "--reviewer", "ann") == 0  # a change of mind is new
    assert _add(table, v, "--reviewer", "ann") == 0  # ... and going back to the first verdict too
    assert [e.verdict for e in read_events(default_store(table)) if e.clip_id == "clip0000001"] == [
        "correct", "wrong", "correct"]


def test_new_class_refuses_an_example_that_is_neither_a_clip_nor_a_file(table, tmp_path, capsys):
    """Item 21: ``--example nope`` ran, and recorded origin ``search:nope`` in the store."""
    answers = tmp_path / "answers.csv"
    answers.write_text("clip_id,verdict\nclip0000001,yes\n")
    assert main(["labels", "new-class", "--features", table, "--name", "siren", "--example", "nope", "--verdicts",
                 str(answers), "--reviewer", "ann", "--output", str(tmp_path / "round")]) == 2
    assert _error(capsys) == (f"acoustic-env: error: example: 'nope' is neither a clip of the feature table {table} "
                              "nor an audio file; give the clip id or the file the search started from")
    assert not Path(default_store(table)).exists()

