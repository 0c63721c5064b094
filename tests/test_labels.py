"""The label store (acoustic_env.labels): append and read locally and on S3, two writers at once, a writer killed
mid-append, the corrected list and its conflicts, and the ``labels`` commands' one-line refusals.

Real files and real processes: the concurrent writers and the killed one are separate Python processes.
"""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from acoustic_env.cli import main
from acoustic_env.config import ConfigError
from acoustic_env.demo.tables import synthetic_features, write_features
from acoustic_env.labels.current import corrected
from acoustic_env.labels.label_list import read_label_list
from acoustic_env.labels.store import Event, append, default_store, read_events
from acoustic_env.vocabulary.tasks import load_task

REPO = Path(__file__).resolve().parents[1]
T0 = datetime(2026, 11, 26, 9, 0, tzinfo=timezone.utc)


def _verdict(clip_id: str, reviewer: str, verdict: str, labels=(), given=("urban",), minutes: int = 0) -> Event:
    return Event(clip_id=clip_id, task="urban_natural", source="review", verdict=verdict, labels=tuple(labels),
                 given=tuple(given), reviewer=reviewer, time=T0 + timedelta(minutes=minutes), origin="audit-1")


def test_events_round_trip_through_a_local_store(tmp_path):
    store = str(tmp_path / "out" / "labels")
    assert read_events(store) == []  # a store not made yet holds nothing
    first = [_verdict("a", "ann", "wrong", ["natural"]), Event("b", "urban_natural", "given", labels=("urban",))]
    uri = append(store, first)
    assert Path(uri).parent == tmp_path / "out" / "labels" and Path(uri).name.startswith("events-")
    append(store, [Event("c", "other_task", "import", labels=("x",), note="from a spreadsheet")])
    append(store, first[:1])  # the same verdict added again counts once
    assert read_events(store, "urban_natural") == sorted(first, key=lambda e: e.time)
    assert [e.note for e in read_events(store, "other_task")] == ["from a spreadsheet"]
    assert len(list((tmp_path / "out" / "labels").iterdir())) == 3  # append-only: nothing rewritten


def test_the_store_lies_beside_the_table_whichever_way_the_table_is_named():
    for features in ("/d/out", "/d/out/", "/d/out/features", "/d/out/features/part-1.parquet", "/d/out/t.parquet"):
        assert default_store(features) == "/d/out/labels", features
    assert default_store("s3://b/out/features") == "s3://b/out/labels"


def test_a_bad_event_is_one_line_naming_the_field():
    with pytest.raises(ConfigError, match="^source: must be one of given, import, review, search, got 'mail'"):
        Event("a", "t", "mail")
    with pytest.raises(ConfigError, match="^verdict: a review event needs verdict"):
        Event("a", "t", "review")
    with pytest.raises(ConfigError, match="^time: must carry a time zone"):
        Event("a", "t", "given", time=datetime(2026, 1, 1))


def test_events_round_trip_on_s3(s3_endpoint):
    import s3fs

    bucket = f"labels-{uuid.uuid4().hex[:12]}"  # a bucket of its own: the test can run again on the same server
    s3fs.S3FileSystem(client_kwargs={"endpoint_url": s3_endpoint}).mkdir(bucket)
    store = default_store(f"s3://{bucket}/out/features")
    events = [_verdict(f"clip{i}", "ann", "wrong", ["natural"], minutes=i) for i in range(3)]
    append(store, events[:2])
    append(store, events[2:])
    assert read_events(store) == events
    assert [d.labels for d in corrected(read_events(store)).decisions.values()] == [("natural",)] * 3


_WRITER = """
import sys, time
from acoustic_env.labels.store import Event, append
store, name, n, start = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
while time.time() < start:
    time.sleep(0.001)
for i in range(n):
    append(store, [Event(f"{name}-{i}", "urban_natural", "review", verdict="wrong", labels=("natural",),
                         reviewer=name)])
"""


def test_two_processes_appending_at_once_lose_no_event(tmp_path):
    """Two writers start appending at the same instant, 200 one-event appends each, into one store: all 400
    events read back."""
    store = str(tmp_path / "labels")
    start = time.time() + 3  # both processes have imported by then
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, store, name, "200", str(start)], cwd=REPO)
             for name in ("ann", "bob")]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    events = read_events(store)
    assert len(events) == 400 and {e.clip_id for e in events} == {f"{n}-{i}" for n in ("ann", "bob")
                                                                  for i in range(200)}
    assert len(os.listdir(store)) == 400


_ENDLESS = """
import os, sys
from acoustic_env.labels.store import Event, append
# ~9 MB a file (notes within the store's 4096 characters each), fast to encode: the write is most of an append
notes = [os.urandom(3 << 10).decode("latin-1") for _ in range(2000)]
while True:
    append(sys.argv[1], [Event(f"clip{i}", "urban_natural", "given", labels=("urban",), note=note)
                         for i, note in enumerate(notes)])
"""


@pytest.mark.slow
def test_a_writer_killed_mid_append_leaves_a_store_that_reads(tmp_path):
    """A writer appending without end is stopped at random instants until one finds it inside an append (its
    temporary file there, or a file of the store not readable yet), then killed with SIGKILL: the store reads,
    every file in it whole (2,000 events each), and the next append clears the dead writer's temporary."""
    store = tmp_path / "labels"
    proc = subprocess.Popen([sys.executable, "-c", _ENDLESS, str(store)], cwd=REPO)
    rng = random.Random(0)
    caught, deadline = False, time.time() + 60
    try:
        while not any(p.name.startswith("events-") for p in store.glob("*")) and time.time() < deadline:
            time.sleep(0.01)  # a first append done: the store holds something a torn write could spoil
        while not caught and time.time() < deadline:
            time.sleep(rng.uniform(0, 0.02))
            os.kill(proc.pid, signal.SIGSTOP)
            try:
                caught = any(p.name.startswith(".") for p in store.glob("*")) or not _reads(str(store))
            finally:
                if not caught:
                    os.kill(proc.pid, signal.SIGCONT)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert caught, "never stopped the writer inside an append in 60 s"
    files = [p for p in store.iterdir() if not p.name.startswith(".")]
    leftovers = [p for p in store.iterdir() if p.name.startswith(".")]
    assert files and len(read_events(str(store))) == 2000 * len(files)  # every file whole
    append(str(store), [Event("x", "urban_natural", "given", labels=("natural",))])
    assert all(not p.exists() for p in leftovers)  # its writer is dead: the temporary is removed


def _reads(store: str) -> bool:
    try:
        read_events(store)
        return True
    except Exception:  # noqa: BLE001 - a torn file, whatever the reader says about it
        return False


def test_the_corrected_list_takes_each_reviewers_latest_verdict_and_shows_conflicts():
    events = [
        Event("given1", "urban_natural", "given", labels=("urban",), time=T0),
        _verdict("fixed", "ann", "wrong", ["natural"]),
        _verdict("changed_mind", "ann", "wrong", ["natural"], minutes=1),
        _verdict("changed_mind", "ann", "correct", minutes=2),  # ann's latest stands: urban
        _verdict("disputed", "ann", "wrong", ["natural"], minutes=1),
        _verdict("disputed", "bob", "correct", minutes=2),
        _verdict("settled", "ann", "wrong", ["natural"], minutes=1),
        _verdict("settled", "bob", "correct", minutes=2),
        _verdict("settled", "bob", "wrong", ["natural"], minutes=3),  # bob comes round: no conflict
        _verdict("unsure", "ann", "unsure"),
        _verdict("withdrawn", "ann", "wrong", ["natural"], minutes=1),
        _verdict("withdrawn", "ann", "unsure", minutes=2),
        _verdict("no_class", "ann", "wrong", []),
        _verdict("reviewed_given", "bob", "wrong", ["natural"], minutes=5),
        Event("reviewed_given", "urban_natural", "given", labels=("urban",), time=T0 + timedelta(minutes=9)),
    ]
    current = corrected(sorted(events, key=lambda e: e.time))
    assert {c: d.labels for c, d in current.decisions.items()} == {
        "given1": ("urban",), "fixed": ("natural",), "changed_mind": ("urban",), "settled": ("natural",),
        "no_class": (), "reviewed_given": ("natural",)}  # a review stands over a given label, whenever given
    assert list(current.conflicts) == ["disputed"]
    assert [(e.reviewer, e.decision()) for e in current.conflicts["disputed"]] == [("ann", ("natural",)),
                                                                                   ("bob", ("urban",))]
    assert current.decisions["fixed"].reviewed and not current.decisions["given1"].reviewed


def _table(tmp_path: Path, n: int = 30, flip: float = 0.2):
    synth = synthetic_features(n, seed=1, signals=("raw",), flip=flip)
    return write_features(synth.table, str(tmp_path / "table")), synth


def _verdicts_file(path: Path, rows: list[dict]) -> str:
    path.write_text(json.dumps({"verdicts": [{"sample": "suspects", "time": "2026-11-26T10:00:00.000Z", **r}
                                             for r in rows]}))
    return str(path)


def test_the_commands_add_verdicts_apply_and_show_conflicts(tmp_path, capsys):
    table, _ = _table(tmp_path)
    ann = _verdicts_file(tmp_path / "ann.json", [
        {"clip_id": "clip0000000", "verdict": "wrong", "given_labels": ["urban"], "corrected_label": ["natural"]},
        {"clip_id": "clip0000003", "verdict": "wrong", "given_labels": ["natural"], "corrected_label": ["urban"]}])
    bob = _verdicts_file(tmp_path / "bob.json", [
        {"clip_id": "clip0000000", "verdict": "correct", "given_labels": ["urban"], "reviewer": "bob",
         "time": "2026-11-26T11:00:00.000Z"}])
    assert main(["labels", "add-verdicts", "--features", table, "--verdicts", ann, "--reviewer", "ann",
                 "--origin", "audit-7"]) == 0
    assert main(["labels", "add-verdicts", "--features", table, "--verdicts", bob]) == 0  # its own reviewer field
    out = tmp_path / "corrected.csv"
    capsys.readouterr()
    assert main(["labels", "apply", "--features", table, "--output", str(out)]) == 0
    console = capsys.readouterr().out
    assert f"1 clips in the corrected list (1 decided by a reviewer) for task urban_natural: {out}" in console
    assert (f"1 clips where reviewers disagree are left out of the list (they keep the table's labels until the "
            f"reviewers agree): {tmp_path / 'corrected.conflicts.csv'}") in console
    assert "clip0000000: ann wrong -> natural; bob correct -> urban" in console
    rows = list(csv.DictReader(out.open()))
    assert [(r["clip_id"], r["labels"], r["source"], r["reviewer"], r["origin"]) for r in rows] == [
        ("clip0000003", "urban", "review", "ann", "audit-7")]
    conflicts = list(csv.DictReader((tmp_path / "corrected.conflicts.csv").open()))
    assert [(r["clip_id"], r["reviewer"], r["labels"]) for r in conflicts] == [("clip0000000", "ann", "natural"),
                                                                               ("clip0000000", "bob", "urban")]
    assert main(["labels", "show", "--features", table]) == 0
    shown = capsys.readouterr().out
    assert "3 events (review 3) about 2 clips; reviewers: ann, bob" in shown and "conflicts: 1" in shown
    # a task the store has nothing of: the tasks it has, not an empty corrected list
    assert main(["labels", "show", "--features", table, "--task", "labels:night,day"]) == 0
    shown = capsys.readouterr().out
    assert "task labels:night,day: 0 events (none) about 0 clips" in shown and "corrected list" not in shown
    assert "  the store holds events of other tasks: urban_natural (name one with --task)" in shown
    # a job given that store for that task would change nothing: one line, not a run on the table's labels
    assert main(["audit", "--features", table, "--task", "labels:night,day", "--output", str(tmp_path / "a"),
                 "--labels", default_store(table)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"acoustic-env: error: labels: {default_store(table)} lists no clip of task labels:night,day: it would change "
        "nothing; leave --labels out to use the table's labels")
    # the store read directly gives the file's bytes: one SHA-256 for both
    task = load_task("urban_natural")
    assert read_label_list(default_store(table), task).sha256 == read_label_list(str(out), task).sha256
    assert read_label_list(default_store(table), task).conflicts == 1


def test_show_on_an_empty_store_says_how_to_fill_it(tmp_path, capsys):
    table, _ = _table(tmp_path)
    assert main(["labels", "show", "--features", table]) == 0
    shown = capsys.readouterr().out
    assert "task urban_natural: 0 events (none) about 0 clips; reviewers: none" in shown
    assert "  the store holds no events yet (acoustic-env labels add-verdicts adds a review's)" in shown


def test_a_verdict_for_a_clip_not_in_the_table_is_refused_in_one_line(tmp_path, capsys):
    table, _ = _table(tmp_path)
    bad = _verdicts_file(tmp_path / "v.json", [
        {"clip_id": "clip0000001", "verdict": "correct", "given_labels": ["natural"]},
        {"clip_id": "clip9999999", "verdict": "wrong", "given_labels": ["urban"], "corrected_label": ["natural"]}])
    assert main(["labels", "add-verdicts", "--features", table, "--verdicts", bad, "--reviewer", "ann"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"acoustic-env: error: verdicts: 1 verdict(s) name clips that are not in the feature table "
                   f"{table} (e.g. 'clip9999999'); nothing was added")
    assert not Path(default_store(table)).exists()  # nothing was added, not even the good verdict


@pytest.mark.parametrize("args,line", [
    (["--verdicts", "{v}"], "reviewer: the verdict on clip 'clip0000001' names no reviewer; give --reviewer NAME"),
    (["--verdicts", "{tmp}/none.json", "--reviewer", "a"], "verdicts: no such file or directory: {tmp}/none.json"),
    (["--verdicts", "{v}", "--reviewer", "a", "--task", "labels:x,y"],
     "verdicts: clip 'clip0000001' names class 'natural', not a class of task labels:x,y (x, y); nothing was added"),
    (["--verdicts", "{v}", "--reviewer", "a", "--source", "mail"], "source: must be one of ['review', 'search'], got 'mail'"),
])
def test_add_verdicts_bad_input_is_one_line_naming_it(tmp_path, capsys, args, line):
    table, _ = _table(tmp_path)
    v = _verdicts_file(tmp_path / "v.json", [{"clip_id": "clip0000001", "verdict": "correct",
                                              "given_labels": ["natural"]}])
    args = [a.format(v=v, tmp=tmp_path) for a in args]
    assert main(["labels", "add-verdicts", "--features", table, *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and line.format(tmp=tmp_path) in err, err


def test_apply_and_a_job_refuse_what_they_cannot_use_in_one_line(tmp_path, capsys):
    table, _ = _table(tmp_path)
    assert main(["labels", "apply", "--features", table, "--output", str(tmp_path / "c.csv")]) == 2
    assert capsys.readouterr().err.strip() == (
        f"acoustic-env: error: store: no label events of task urban_natural in {table}/labels (add an audit "
        "review's verdicts with `acoustic-env labels add-verdicts`)")
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("clip_id,labels\nclip0000001,indoor\n")
    with pytest.raises(ConfigError, match="^labels: .*wrong.csv gives clip 'clip0000001' the class 'indoor', which "
                                          r"is not a class of task urban_natural \(urban, natural\)$"):
        read_label_list(str(wrong), load_task("urban_natural"))
    (tmp_path / "cols.csv").write_text("id,label\nx,urban\n")
    with pytest.raises(ConfigError, match="needs the columns clip_id and labels"):
        read_label_list(str(tmp_path / "cols.csv"), load_task("urban_natural"))
    (tmp_path / "header.csv").write_text("id,label\n")  # a header alone is checked too
    with pytest.raises(ConfigError, match=r"needs the columns clip_id and labels .*got \['id', 'label'\]$"):
        read_label_list(str(tmp_path / "header.csv"), load_task("urban_natural"))
    # a list of no clip of the task (a list of a header alone, a store of another task's verdicts): a job would
    # change nothing, so it stops instead of running on the table's labels
    (tmp_path / "empty.csv").write_text("clip_id,labels\n")
    empty = str(tmp_path / "empty.csv")
    assert main(["audit", "--features", table, "--output", str(tmp_path / "a"), "--labels", empty]) == 2
    assert capsys.readouterr().err.strip() == (
        f"acoustic-env: error: labels: {empty} lists no clip of task urban_natural: it would change nothing; "
        "leave --labels out to use the table's labels")
    # a store whose only reviewed clip is in conflict lists nothing either, and says why
    for reviewer, verdict in (("ann", {"verdict": "wrong", "corrected_label": ["natural"]}),
                              ("bob", {"verdict": "correct"})):
        answers = _verdicts_file(tmp_path / f"{reviewer}.json", [
            {"clip_id": "clip0000000", "given_labels": ["urban"], "reviewer": reviewer, **verdict}])
        assert main(["labels", "add-verdicts", "--features", table, "--verdicts", answers]) == 0
    capsys.readouterr()
    assert main(["audit", "--features", table, "--output", str(tmp_path / "a"), "--labels", default_store(table)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"acoustic-env: error: labels: {default_store(table)} lists no clip of task urban_natural (1 clips in "
        "conflict are left out until the reviewers agree): it would change nothing; leave --labels out to use the "
        "table's labels")
    assert main(["audit", "--features", table, "--output", str(tmp_path / "a"), "--labels",
                 str(tmp_path / "none.csv")]) == 2
    assert capsys.readouterr().err.strip() == f"acoustic-env: error: labels: no such file or directory: " \
                                              f"{tmp_path / 'none.csv'}"


def test_each_decision_names_its_clip_and_the_latest_given_label_stands():
    """What a caller of ``corrected`` iterates: each decision carries its clip id; of two imports, the later one."""
    events = [Event("a", "urban_natural", "given", labels=("urban",), time=T0),
              Event("a", "urban_natural", "import", labels=("natural",), time=T0 + timedelta(minutes=1)),
              _verdict("b", "ann", "correct", minutes=2)]
    decisions = corrected(events).decisions
    assert [(d.clip_id, d.labels, d.event.source) for d in decisions.values()] == [
        ("a", ("natural",), "import"), ("b", ("urban",), "review")]
