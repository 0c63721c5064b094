"""Which verdict decides a clip, and what the corrected list then says about it (acoustic_env/labels/store.py,
current.py, verdicts.py, label_list.py): behaviours a reviewer would feel, each through the files and commands a
user touches (issue 84, 1-3).

- The store answers in time order, not in the order its files were added: a newer review's verdicts added before
  an older review's still win.
- A row of the corrected list is the deciding verdict's own: when reviewers agree, the latest verdict's reviewer,
  time and origin, not the first's.
- ``labels add-verdicts --origin`` is what the events record, over the ``audit_id`` each verdict of a review page
  carries; without it, each verdict's ``audit_id``.

Real verdict files, a real feature table and the ``labels`` commands run in this process.
"""

from __future__ import annotations

import csv
import getpass
import json
import re
from datetime import datetime, timezone
from pathlib import Path

import pytest

from acoustic_env.cli import main
from acoustic_env.config import ConfigError
from acoustic_env.demo.tables import synthetic_features, write_features
from acoustic_env.jobs.audit.estimate import normalize_verdict
from acoustic_env.labels.current import corrected
from acoustic_env.labels.review_sink import ReviewSink
from acoustic_env.labels.store import default_store, read_events
from acoustic_env.vocabulary.ontology import OntologyError


def _table(tmp_path: Path) -> str:
    return write_features(synthetic_features(12, seed=1, signals=("raw",)).table, str(tmp_path / "table"))


def _verdicts(path: Path, rows: list[dict]) -> str:
    """A review page's verdicts file: each verdict with its reviewing server's time and the audit it came from."""
    path.write_text(json.dumps({"verdicts": [{"sample": "suspects", "given_labels": ["urban"], "audit_id": "audit-1",
                                              **r} for r in rows]}))
    return str(path)


def _add(table: str, verdicts: str, *extra: str) -> None:
    assert main(["labels", "add-verdicts", "--features", table, "--verdicts", verdicts, *extra]) == 0


def _applied(table: str, out: Path) -> dict[str, dict[str, str]]:
    """``labels apply``'s list, by clip id."""
    assert main(["labels", "apply", "--features", table, "--output", str(out)]) == 0
    with out.open(newline="") as fh:
        return {r["clip_id"]: r for r in csv.DictReader(fh)}


def test_a_newer_review_added_before_an_older_one_still_decides(tmp_path):
    """Bob's afternoon review is added first, his morning review (of the same clips, the other way) after it: the
    afternoon verdicts stand, in the store's answer and in the list, whichever file came last."""
    table = _table(tmp_path)
    afternoon = _verdicts(tmp_path / "afternoon.json", [
        {"clip_id": "clip0000000", "verdict": "wrong", "corrected_label": ["natural"],
         "time": "2026-11-26T15:00:00.000Z", "audit_id": "audit-2"},
        {"clip_id": "clip0000001", "verdict": "correct", "time": "2026-11-26T15:01:00.000Z", "audit_id": "audit-2"}])
    morning = _verdicts(tmp_path / "morning.json", [
        {"clip_id": "clip0000000", "verdict": "correct", "time": "2026-11-26T09:00:00.000Z"},
        {"clip_id": "clip0000001", "verdict": "wrong", "corrected_label": ["natural"],
         "time": "2026-11-26T09:01:00.000Z"}])
    _add(table, afternoon, "--reviewer", "bob")
    _add(table, morning, "--reviewer", "bob")
    events = read_events(default_store(table), "urban_natural")
    assert [e.time for e in events] == sorted(e.time for e in events)
    assert [(e.clip_id, e.verdict) for e in events][-2:] == [("clip0000000", "wrong"), ("clip0000001", "correct")]
    listed = _applied(table, tmp_path / "corrected.csv")
    assert {c: (r["labels"], r["origin"]) for c, r in listed.items()} == {
        "clip0000000": ("natural", "audit-2"), "clip0000001": ("urban", "audit-2")}


def test_when_reviewers_agree_the_row_is_the_latest_verdicts_own(tmp_path):
    """Ann, then Bob, then Carol (unsure) on one clip; Ann and Bob agree it is natural. The row carries Bob's name,
    time and origin (the latest decision), not Ann's, and not Carol's, who decided nothing. Bob's verdict is added
    first, so the file order would name Ann."""
    table = _table(tmp_path)
    clip = {"clip_id": "clip0000002", "verdict": "wrong", "corrected_label": ["natural"]}
    _add(table, _verdicts(tmp_path / "bob.json", [{**clip, "time": "2026-11-26T11:30:00.000Z"}]),
         "--reviewer", "bob", "--origin", "second-look")
    _add(table, _verdicts(tmp_path / "ann.json", [{**clip, "time": "2026-11-26T10:00:00.000Z"}]),
         "--reviewer", "ann")
    _add(table, _verdicts(tmp_path / "carol.json", [{"clip_id": "clip0000002", "verdict": "unsure",
                                                     "time": "2026-11-26T12:00:00.000Z"}]), "--reviewer", "carol")
    row = _applied(table, tmp_path / "corrected.csv")["clip0000002"]
    assert row == {"clip_id": "clip0000002", "labels": "natural", "source": "review", "reviewer": "bob",
                   "time": "2026-11-26T11:30:00Z", "origin": "second-look"}
    decision = corrected(read_events(default_store(table))).decisions["clip0000002"]
    assert (decision.event.reviewer, decision.event.time) == ("bob", datetime(2026, 11, 26, 11, 30,
                                                                              tzinfo=timezone.utc))


def test_add_verdicts_origin_is_what_every_event_records_over_the_verdicts_audit_id(tmp_path):
    """A review page's verdicts each carry their audit's id; ``--origin`` names where they come from instead, for
    every one of them. Without it, each keeps its own audit's id."""
    table = _table(tmp_path)
    rows = [{"clip_id": "clip0000003", "verdict": "correct", "time": "2026-11-26T10:00:00.000Z",
             "audit_id": "20261126T095800Z-ab12cd"},
            {"clip_id": "clip0000004", "verdict": "wrong", "corrected_label": ["natural"],
             "time": "2026-11-26T10:01:00.000Z", "audit_id": "20261126T095800Z-ef34gh"}]
    _add(table, _verdicts(tmp_path / "named.json", rows), "--reviewer", "ann", "--origin", "field-check")
    _add(table, _verdicts(tmp_path / "own.json", rows), "--reviewer", "bob")
    origins = {(e.reviewer, e.clip_id): e.origin for e in read_events(default_store(table))}
    assert origins == {("ann", "clip0000003"): "field-check", ("ann", "clip0000004"): "field-check",
                       ("bob", "clip0000003"): "20261126T095800Z-ab12cd",
                       ("bob", "clip0000004"): "20261126T095800Z-ef34gh"}


def test_the_review_servers_sink_is_the_audits_table_task_and_ontology(tmp_path):
    """``audit-review --serve --store``'s sink (labels/review_sink.py) checks each clicked verdict against the
    audited table, naming it when a clip is not there, and reads the audit's task with the audit's ontology (a task
    of display names cannot be read without it: the audit's file is the one named)."""
    table = _table(tmp_path)
    sink = ReviewSink.for_audit({"features": table, "task": "urban_natural"}, reviewer="ann")
    assert (sink.table, sink.store, sink.reviewer, sink.task.name) == (table, default_store(table), "ann",
                                                                        "urban_natural")
    mine = ReviewSink.for_audit({"features": table, "task": "urban_natural"}, str(tmp_path / "mine"))
    assert (mine.store, mine.reviewer) == (str(tmp_path / "mine"), getpass.getuser())  # who runs the server
    with pytest.raises(ConfigError) as err:
        sink.add([normalize_verdict({"clip_id": "elsewhere", "verdict": "correct", "sample": "random",
                                     "given_labels": ["urban"]})])
    assert str(err.value) == (f"verdicts: 1 verdict(s) name clips that are not in the feature table {table} (e.g. "
                              "'elsewhere'); nothing was added")
    task = tmp_path / "dogs.yaml"
    task.write_text("classes: {dog: {mids: [Dog]}, other: {mids: ['/m/1']}}\n")
    with pytest.raises(OntologyError, match=re.escape(str(tmp_path / "audit-ontology.json"))):
        ReviewSink.for_audit({"features": table, "task": str(task), "ontology": str(tmp_path / "audit-ontology.json")})
