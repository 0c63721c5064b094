"""A review's verdicts as they reach the label store (acoustic_env/labels/verdicts.py): the time each was given (in
any zone, or none), its note and its audit as stored, the review page's verdicts stored as ``review`` events, and a
verdict nobody can be credited with refused in one line. Real tables, real verdict files, the real command."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from acoustic_env.cli import main
from acoustic_env.config import ConfigError
from acoustic_env.demo.tables import synthetic_features, write_features
from acoustic_env.jobs.audit.estimate import normalize_verdict
from acoustic_env.labels.review_sink import ReviewSink
from acoustic_env.labels.store import default_store, read_events
from acoustic_env.labels.verdicts import table_clip_ids, verdict_events
from acoustic_env.vocabulary.tasks import load_task


@pytest.fixture
def table(tmp_path) -> str:
    return write_features(synthetic_features(6, seed=1, signals=("raw",)).table, str(tmp_path / "table"))


def _verdict(clip_id: str, **extra) -> dict:
    return {"clip_id": clip_id, "verdict": "wrong", "sample": "suspects", "given_labels": ["urban"],
            "corrected_label": ["natural"], **extra}


def test_each_verdicts_time_note_and_audit_are_stored_as_given(table, tmp_path):
    """A time with an offset is the same instant in UTC; one without (a spreadsheet's) is UTC; a verdict without a
    time gets the time it was added. The reviewer's note and the audit it came from are kept."""
    verdicts = tmp_path / "v.json"
    verdicts.write_text(json.dumps([
        _verdict("clip0000000", time="2026-11-26T10:00:00+02:00", note="a dog over the traffic", audit_id="audit-3"),
        _verdict("clip0000001", time="2026-11-26T10:00:00", audit_id="audit-3"),
        _verdict("clip0000002", audit_id="audit-4")]))
    before = datetime.now(timezone.utc)
    assert main(["labels", "add-verdicts", "--features", table, "--verdicts", str(verdicts), "--reviewer", "ann"]) == 0
    after = datetime.now(timezone.utc)
    events = {e.clip_id: e for e in read_events(default_store(table))}
    assert events["clip0000000"].time == datetime(2026, 11, 26, 8, tzinfo=timezone.utc)
    assert events["clip0000001"].time == datetime(2026, 11, 26, 10, tzinfo=timezone.utc)
    assert before <= events["clip0000002"].time <= after
    assert [(e.note, e.origin, e.reviewer) for e in events.values()] == [
        ("a dog over the traffic", "audit-3", "ann"), ("", "audit-3", "ann"), ("", "audit-4", "ann")]


def test_the_review_pages_verdicts_are_stored_as_review_events(table, tmp_path):
    """The review server's sink (``audit-review --serve --store``) appends each verdict as a ``review`` event,
    credited to the name typed on the page, else the server's reviewer."""
    sink = ReviewSink(str(tmp_path / "labels"), load_task("urban_natural"), table, frozenset(table_clip_ids(table)),
                      "night-shift")
    sink.add([normalize_verdict(_verdict("clip0000000", reviewer="ana")),
              normalize_verdict({"clip_id": "clip0000001", "verdict": "correct", "sample": "random",
                                 "given_labels": ["natural"]})])
    assert [(e.clip_id, e.source, e.reviewer, e.decision()) for e in read_events(str(tmp_path / "labels"))] == [
        ("clip0000000", "review", "ana", ("natural",)), ("clip0000001", "review", "night-shift", ("natural",))]


def test_a_verdict_nobody_can_be_credited_with_is_refused_in_one_line(table):
    with pytest.raises(ConfigError) as err:
        verdict_events([normalize_verdict(_verdict("clip0000001"))], load_task("urban_natural"),
                       table_clip_ids(table), table=table, reviewer=None, origin=None)
    assert str(err.value) == ("reviewer: the verdict on clip 'clip0000001' names no reviewer; give --reviewer NAME "
                              "(a reviewer's verdicts are told apart from another's by it)")
