"""A new class from one example (``labels new-class``, acoustic_env/labels/new_class.py).

The fast tests build the round's label list from store events written by hand: the negatives drawn at random
never include a clip marked yes (the Done-when bullet of issue 58), whatever came after the yes, and they are
seeded. The slow test runs docs/curating.md's "A new class from one example" as written (its ``shell`` blocks,
which the README-style guide test of the page leaves to this one) on a synthetic table with embeddings: search
from one clip, a scripted reviewer who answers from the truth, two rounds; the model is an ordinary saved model
that ``load_model`` scores the table with, and its training list holds no clip marked yes among its negatives.
"""

from __future__ import annotations

import csv
import re
import shlex
from datetime import datetime, timedelta, timezone

import documentation
import pytest

from acoustic_env import load_model
from acoustic_env.cli import main
from acoustic_env.config import ConfigError
from acoustic_env.demo.tables import synthetic_features, write_features
from acoustic_env.jobs.new_class import read_answers
from acoustic_env.labels.current import corrected
from acoustic_env.labels.new_class import answer_events, round_list, task_of, train_fields
from acoustic_env.labels.store import Event, read_events
from acoustic_env.table import open_table
from acoustic_env.vocabulary.tasks import load_task

TASK = load_task(task_of("chainsaw"))
T0 = datetime(2026, 11, 26, 10, tzinfo=timezone.utc)


def _said(clip: str, yes: bool | None, reviewer: str = "ann", minutes: int = 0) -> Event:
    """A reviewer's answer about ``clip`` as the store keeps it (None: unsure)."""
    verdict = "unsure" if yes is None else "correct" if yes else "wrong"
    return Event(clip, TASK.name, "search", verdict=verdict, given=("chainsaw",),
                 labels=("other",) if yes is False else (), reviewer=reviewer, time=T0 + timedelta(minutes=minutes))


def test_random_negatives_never_include_a_clip_marked_yes():
    """Every clip anyone marked yes stays out of the random negatives, even when a later verdict withdrew or
    contradicted the yes, and even when the draw asks for every clip nobody judged."""
    ids = [f"c{i:03d}" for i in range(60)]
    events = [_said("c001", True), _said("c002", True), _said("c003", False),
              _said("c004", True), _said("c004", None, minutes=5),        # yes, then unsure: no decision
              _said("c005", True), _said("c005", False, "bob", minutes=1),  # yes and no: a conflict
              _said("c006", True), _said("c006", False, minutes=2)]        # yes, then changed to no
    rnd = round_list(events, ids, TASK, negatives=100, seed=3)
    assert rnd.marked_yes == {"c001", "c002", "c004", "c005", "c006"}
    assert not rnd.marked_yes & set(rnd.drawn)
    assert set(rnd.drawn) == set(ids) - {f"c00{i}" for i in range(1, 7)}
    assert rnd.positives == ["c001", "c002"] and rnd.negatives == ["c003", "c006"]
    listed = {c: d.labels for c, d in rnd.listed.decisions.items()}
    assert set(listed) == set(ids) and "c005" in rnd.listed.conflicts
    assert listed["c004"] == listed["c005"] == () and listed["c001"] == ("chainsaw",)  # no class: not trained on


def test_random_negatives_are_seeded_and_every_other_clip_is_listed_with_no_class():
    ids = [f"c{i:03d}" for i in range(60)]
    events = [_said("c001", True), _said("c002", False)]
    one, again, other = (round_list(events, ids, TASK, negatives=10, seed=s) for s in (1, 1, 2))
    assert one.drawn == again.drawn != other.drawn and len(one.drawn) == 10
    listed = one.listed.decisions
    assert len(listed) == 60  # the table's own labels never enter the task
    assert sum(d.labels == ("other",) for d in listed.values()) == 11
    assert sum(d.labels == () for d in listed.values()) == 48
    assert {listed[c].event.origin for c in one.drawn} == {"random negatives (seed 1)"}


def test_answers_are_checked_whole(tmp_path):
    """A word other than yes/no/unsure, or a clip the table does not hold, refuses the file in one line."""
    bad = tmp_path / "bad.csv"
    bad.write_text("clip_id,verdict\nc001,yes\nc002,maybe\n")
    with pytest.raises(ConfigError, match="answers 'maybe' for clip c002; write yes, no or unsure"):
        read_answers([str(bad)], "chainsaw")
    good = tmp_path / "good.csv"
    good.write_text("rank,clip_id,verdict\n0,c001,Yes\n1,c002,\n2,c009,no\n")
    answers = read_answers([str(good)], "chainsaw")
    assert [(a["clip_id"], a["answer"]) for a in answers] == [("c001", "yes"), ("c009", "no")]
    with pytest.raises(ConfigError, match="1 verdict\\(s\\) name clips that are not in the feature table"):
        answer_events(answers, TASK, {"c001"}, table="t", reviewer="ann", example="c001")
    events = answer_events(answers, TASK, {"c001", "c009"}, table="t", reviewer="ann", example="c001")
    assert [e.decision() for e in events] == [("chainsaw",), ("other",)]
    assert {(e.source, e.origin) for e in events} == {("search", "search:c001")}


def test_answers_become_verdicts_of_the_proposed_class_each_by_its_reviewer():
    """yes says the clip is of the class the search proposed, no that it is ``other`` (and only no names it), unsure
    decides nothing; without --reviewer each answer's own reviewer is credited, and the origin is the example's
    search whatever the file says."""
    answers = [{"clip_id": "c1", "answer": "yes", "reviewer": "ann", "time": "2026-11-26T10:00:00Z", "note": "saw"},
               {"clip_id": "c2", "answer": "no", "reviewer": "bob", "time": "", "note": ""},
               {"clip_id": "c3", "answer": "unsure", "reviewer": "ann", "time": "", "note": ""}]
    events = answer_events(answers, TASK, {"c1", "c2", "c3"}, table="t", reviewer=None, example="c9")
    assert [(e.clip_id, e.verdict, e.labels, e.given, e.reviewer, e.origin, e.source) for e in events] == [
        ("c1", "correct", (), ("chainsaw",), "ann", "search:c9", "search"),
        ("c2", "wrong", ("other",), ("chainsaw",), "bob", "search:c9", "search"),
        ("c3", "unsure", (), ("chainsaw",), "ann", "search:c9", "search")]
    assert events[0].time == T0 and events[0].note == "saw"
    with pytest.raises(ConfigError) as err:
        answer_events(answers, TASK, {"c1"}, table="out/features", reviewer=None, example="c9")
    assert str(err.value) == ("verdicts: 2 verdict(s) name clips that are not in the feature table out/features "
                              "(e.g. 'c2'); nothing was added")


def test_a_new_class_is_a_binary_task_named_once_and_a_bad_name_is_one_line():
    assert task_of(" chainsaw ") == "labels:chainsaw,other"
    assert task_of("chainsaw", "no chainsaw") == "labels:chainsaw,no chainsaw"
    assert task_of("X-ray", "XX") == "labels:X-ray,XX"  # any letter is fine
    for name, other, line in [
            ("", "other", "name: a class name without ',', ';' or ':', got ''"),
            ("  ", "other", "name: a class name without ',', ';' or ':', got '  '"),
            ("saw,chain", "other", "name: a class name without ',', ';' or ':', got 'saw,chain'"),
            ("saw;chain", "other", "name: a class name without ',', ';' or ':', got 'saw;chain'"),
            ("saw:chain", "other", "name: a class name without ',', ';' or ':', got 'saw:chain'"),
            ("chainsaw", "a:b", "other: a class name without ',', ';' or ':', got 'a:b'"),
            ("chainsaw", " chainsaw", "other: the negative class must differ from the new class, both are "
                                      "'chainsaw'")]:
        with pytest.raises(ConfigError) as err:
            task_of(name, other)
        assert str(err.value) == line


def test_a_rounds_train_fields_are_a_light_search_with_a_fold_per_clip_marked_yes_at_most():
    light = {"baselines": ("logreg",), "tuning_trials": 1, "ablations": False, "shap_samples": 0, "progress": False}
    assert train_fields(2) == {**light, "cv_folds": 2}
    assert train_fields(5) == train_fields(9) == {**light, "cv_folds": 5}
    assert train_fields(3, {"cv_folds": 2, "baselines": ["mlp"]}) == {**light, "cv_folds": 2, "baselines": ["mlp"]}
    with pytest.raises(ConfigError) as err:
        train_fields(1)
    assert str(err.value) == (
        "verdicts: 1 clip(s) marked yes so far; a first model needs 2 or more (the answers are kept in the label "
        "store: answer more search hits, e.g. search with a larger --k, and run it again)")


def test_a_rounds_list_names_each_clip_and_where_its_class_came_from():
    """Each listed clip's decision is its own, its event says the same class; a clip nobody judged and not drawn
    is listed without a class as ``not judged``, one the reviewers disagree about (or are unsure of) as that, a
    drawn one as the seed's random negative; the counts the console prints are the list's."""
    ids = [f"c{i:03d}" for i in range(12)]
    events = [_said("c001", True), _said("c002", True), _said("c003", False),
              _said("c004", True), _said("c004", False, "bob", minutes=1), _said("c005", None)]
    rnd = round_list(events, ids, TASK, negatives=3, seed=1)
    for clip_id, d in rnd.listed.decisions.items():
        assert d.clip_id == clip_id and (d.event.decision() or ()) == d.labels, clip_id
    origins = {c: d.event.origin for c, d in rnd.listed.decisions.items() if d.event.source == "given"}
    assert {origins[c] for c in rnd.drawn} == {"random negatives (seed 1)"}
    assert {c for c, o in origins.items() if o == "not judged"} == set(ids) - set(rnd.drawn) - {
        "c001", "c002", "c003", "c004", "c005"}
    assert origins["c004"] == origins["c005"] == "unsure or in conflict"
    assert rnd.counts() == {"yes": 2, "no": 1, "random_negatives": 3, "conflicts": 1}


def _shell_commands() -> list[str]:
    """The page section's ``shell`` blocks, line by line (continuations joined), as written."""
    text = documentation.section("A new class from one example")
    blocks = re.findall(r"^```shell\n(.*?)^```", text, re.M | re.S)
    return [c.strip() for b in blocks for c in b.replace("\\\n", " ").splitlines() if c.strip()]


def _answer(path: str, truth: dict[str, bool]) -> None:
    """The scripted reviewer fills the verdict column of ``path`` (search's hits or a review.csv)."""
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=[*[k for k in rows[0] if k != "verdict"], "verdict"])
        w.writeheader()
        w.writerows({**r, "verdict": "yes" if truth[r["clip_id"]] else "no"} for r in rows)


@pytest.mark.slow
def test_the_new_class_section_runs_as_written(tmp_path, monkeypatch, capsys):
    synth = synthetic_features(80, seed=4, embedders=("birdnet",), weights="0" * 64)
    write_features(synth.table, str(tmp_path / "out"))
    truth = {c: bool(t) for c, t in zip(synth.ids, synth.true)}  # "chainsaw": the synthetic natural clips
    monkeypatch.chdir(tmp_path)
    commands = _shell_commands()
    assert [shlex.split(c)[1:3] for c in commands] == [
        ["search", "--features"], ["labels", "new-class"], ["labels", "new-class"]]
    for command in commands:
        argv = shlex.split(command)
        verdicts = argv[argv.index("--verdicts") + 1] if "--verdicts" in argv else None
        if verdicts:
            _answer(verdicts, truth)
        assert main(argv[1:]) == 0, command
    console = capsys.readouterr().out
    assert "drawn at random from the clips nobody judged" in console and "review.csv" in console

    events = read_events(str(tmp_path / "out" / "labels"), TASK.name)
    assert {(e.source, e.origin) for e in events} == {("search", "search:clip0000007")}
    answered = [tmp_path / "chainsaw" / f for f in ("hits.csv", "round-1/review.csv", "round-2/review.csv")]
    marked_yes: set[str] = set()
    for round_, answers in zip(("round-1", "round-2"), answered):  # the yes answers up to each round
        marked_yes |= {r["clip_id"] for r in csv.DictReader(open(answers)) if r["verdict"] == "yes"}
        with open(tmp_path / "chainsaw" / round_ / "labels.csv", newline="") as fh:
            listed = {r["clip_id"]: r["labels"] for r in csv.DictReader(fh)}
        negatives = {c for c, label in listed.items() if label == "other"}
        assert len(listed) == 80 and negatives and not negatives & marked_yes, round_
        assert {c for c, label in listed.items() if label == "chainsaw"} == marked_yes, round_
    with open(answered[2], newline="") as fh:
        picks = [r["clip_id"] for r in csv.DictReader(fh)]
    judged = {e.clip_id for e in events}
    hits = {r["clip_id"] for r in csv.DictReader(open(answered[0]))}
    assert marked_yes <= judged and hits < judged and len(picks) == 10 and not set(picks) & judged

    model = load_model(str(tmp_path / "chainsaw" / "round-2" / "train" / "model"))
    assert list(model.class_names) == ["chainsaw", "other"]
    scored = model.predict_table(str(tmp_path / "out")).to_pylist()
    assert len(scored) == 80
    # round 2's picks, by mixed: refitted on every settled answer in the store (both rounds'), each with the
    # probability of the class the round's model gives it, and none of them answered before
    settled = sum(d.reviewed and bool(d.labels) for d in corrected(events).decisions.values())
    with open(answered[2], newline="") as fh:
        review = list(csv.DictReader(fh))
    prob = {r["clip_id"]: r["prob_chainsaw"] for r in scored}
    for row in review:
        assert row["reason"].endswith(f" after a refit on {settled} verdicts"), row
        assert float(row["prob_chainsaw"]) == pytest.approx(prob[row["clip_id"]], abs=1e-4)
    yes = [r["prob_chainsaw"] for r in scored if truth[r["clip_id"]]]
    no = [r["prob_chainsaw"] for r in scored if not truth[r["clip_id"]]]
    assert sum(yes) / len(yes) > sum(no) / len(no) + 0.2  # the model learned the class from the answers


@pytest.mark.slow
def test_a_new_class_model_scores_audio_files_as_it_scores_the_table(clips_model, tmp_path, capsys):
    """From real audio to a new class and back: search's hits on an extracted demo table answered by the truth, one
    round of `labels new-class`, then `predict` on the audio files with the round's model. predict computes the
    features from the files; its probabilities are the model's on the table's rows of the same clips."""
    data, out, _, cache = clips_model
    with open(data.truth_csv, newline="") as fh:
        truth = {r["clip_id"]: r["true_class"] == "natural" for r in csv.DictReader(fh) if r["broken"] == "0"}
    example = next(c for c, yes in truth.items() if yes)
    hits = tmp_path / "hits.csv"
    assert main(["search", "--features", str(out), "--example", example, "--k", str(len(truth) - 1), "--save",
                 str(hits), "--include-random-weights"]) == 0
    _answer(str(hits), truth)
    assert main(["labels", "new-class", "--features", str(out), "--name", "birdsong", "--example", example,
                 "--verdicts", str(hits), "--reviewer", "ann", "--store", str(tmp_path / "labels"),
                 "--output", str(tmp_path / "round-1")]) == 0
    model_dir = tmp_path / "round-1" / "train" / "model"
    on_table = {r["clip_id"]: r for r in load_model(str(model_dir)).predict_table(str(out)).to_pylist()}
    chosen = [c for c in truth if truth[c]][:2] + [c for c in truth if not truth[c]][:2]
    uris = dict(zip(*open_table(str(out)).dataset().to_table(columns=["clip_id", "uri"]).to_pydict().values()))
    files = [uris[c] for c in chosen]
    saved = tmp_path / "predicted.csv"
    assert main(["predict", *files, "--model", str(model_dir), "--weights-cache", str(cache), "--save",
                 str(saved)]) == 0
    with open(saved, newline="") as fh:
        predicted = {r["clip_id"]: r for r in csv.DictReader(fh)}
    assert sorted(predicted) == sorted(chosen)
    for clip in chosen:
        assert float(predicted[clip]["prob_birdsong"]) == pytest.approx(on_table[clip]["prob_birdsong"], abs=1e-5)
        assert predicted[clip]["predicted"] == ("birdsong" if truth[clip] else "other")
