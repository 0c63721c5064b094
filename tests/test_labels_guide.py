"""docs/curating.md ("Curating labels") runs as written: a chosen model, audit, a scripted reviewer's verdicts,
labels add-verdicts, show, apply, then train (into the same output, so it compares) and audit on the corrected list.

``out/`` is a synthetic feature table (acoustic_env.demo.tables) with 15 % of its labels flipped, so the
reviewer answers from the truth: the review page's suspects, each judged correct or wrong with its true class,
written where the review server writes them (``audit-v1/review/verdicts.json``). Each ``acoustic-env`` line of
the page's ``sh`` blocks runs in this process (``cli.main``), exactly as written, in the page's order.
"""

from __future__ import annotations

import json
import shlex

import documentation
import pyarrow.parquet as pq
import pytest

from acoustic_env.cli import main
from acoustic_env.demo.tables import synthetic_features, write_features

pytestmark = pytest.mark.slow
CLASSES = ("urban", "natural")


def _review(synth, audit: str, top: int = 50) -> None:
    """The scripted reviewer: the audit's top suspects (its review page's), judged from the truth."""
    truth = {c: CLASSES[t] for c, t in zip(synth.ids, synth.true)}
    rows = pq.read_table(f"{audit}/audit.parquet", columns=["clip_id", "given_labels", "suspect_rank"]).to_pylist()
    verdicts = [{"clip_id": r["clip_id"], "sample": "suspects", "given_labels": r["given_labels"],
                 "verdict": "correct" if r["given_labels"] == [truth[r["clip_id"]]] else "wrong",
                 "corrected_label": [] if r["given_labels"] == [truth[r["clip_id"]]] else [truth[r["clip_id"]]],
                 "time": "2026-11-26T10:00:00.000Z", "audit_id": "audit-v1"}
                for r in rows if r["suspect_rank"] <= top]
    with open(f"{audit}/review/verdicts.json", "w") as fh:
        json.dump(verdicts, fh)


def test_the_curating_page_runs_as_written(tmp_path, monkeypatch, capsys):
    synth = synthetic_features(80, seed=4, flip=0.15)
    write_features(synth.table, str(tmp_path / "out"))
    monkeypatch.chdir(tmp_path)
    commands = [c for s, c in documentation.commands() if s == "Curating labels"]
    assert [shlex.split(c)[1:3] for c in commands] == [
        ["train", "--features"], ["audit", "--features"], ["labels", "add-verdicts"], ["labels", "show"], ["labels", "apply"],
        ["train", "--features"], ["audit", "--features"]]
    for command in commands:
        argv = shlex.split(command)
        if argv[1:3] == ["labels", "add-verdicts"]:
            _review(synth, "audit-v1")
        assert main(argv[1:]) == 0, command
    console = capsys.readouterr().out
    flipped = len(synth.flipped)
    before, after = (json.loads((tmp_path / a / "summary.json").read_text()) for a in ("audit-v1", "audit-v2"))
    used = after["label_list"]
    assert used["uri"] == str(tmp_path / "corrected.csv") and used["changed"] >= flipped - 2, (used, flipped)
    assert json.loads((tmp_path / "model" / "model" / "model.json").read_text())["label_list"] == used
    changed = json.loads((tmp_path / "model" / "report" / "metrics.json").read_text())["labels_changed"]
    # what the labels changed: against the table and the step-1 model, whose figure on the untouched clips is kept
    assert changed["table"] == used and changed["previous"]["changed"] == used["changed"], changed
    assert changed["previous"]["label_list"] is None and changed["unchanged"]["clips"] == 80 - used["changed"]
    assert changed["unchanged"]["previous"] is not None and changed["unchanged"]["new"] is not None
    share = [s["noise"]["estimated_wrong_share"] for s in (before, after)]
    assert share[1] < share[0], share  # the second audit finds fewer wrong labels: the review fixed them
    assert "verdicts added" in console and "clips in the corrected list" in console and "labels: " in console
    assert "what the labels changed: " in console and "unchanged clips" in console
