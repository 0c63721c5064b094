"""A new-class round without its train run (``jobs/new_class.py``, issue 84): what a round reads, stores and lists
(``prepare_round``), and what it asks next from its model's scores (``pick_next``), each on a real table, a real
label store and, for the picks, a real saved model (a logistic regression saved as train saves one, in a second).

The whole round, with its train run, is ``tests/test_new_class.py``'s slow test; these are the fast ones ``make
mutate`` runs against the module.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from acoustic_env.config import ConfigError, from_dict
from acoustic_env.config.labelling import NewClassConfig
from acoustic_env.demo.tables import synthetic_features, write_features
from acoustic_env.errors import AuditError
from acoustic_env.jobs.new_class import check_example, pick_next, prepare_round, read_answers
from acoustic_env.labels.store import read_events
from acoustic_env.learn.artifact import load_model, save_model
from acoustic_env.learn.portable import from_zoo
from acoustic_env.learn.preprocess import fit_group
from acoustic_env.learn.transform import transform_all
from acoustic_env.learn.zoo import make_estimator
from acoustic_env.table import read_features
from acoustic_env.vocabulary.tasks import load_task

TASK = "labels:chainsaw,other"
N = 40
#: the answers of the round: clip index -> what the reviewer wrote (empty: not judged yet)
ANSWERED = {0: "yes", 1: "Yes", 2: "correct", 3: "no", 4: "wrong", 5: "unsure", 6: ""}


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> tuple[str, list[str]]:
    """A 40-clip feature table (one ``raw`` group) and its clip ids."""
    synth = synthetic_features(N, seed=5, signals=("raw",))
    return write_features(synth.table, str(tmp_path_factory.mktemp("round") / "table")), list(synth.ids)


def _config(tmp_path: Path, table: str, ids: list[str], **fields) -> NewClassConfig:
    """A round's config with ``ANSWERED`` in a CSV, as search --save writes it, under ``tmp_path``."""
    answers = tmp_path / "hits.csv"
    if not answers.exists():
        with answers.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["rank", "clip_id", "distance", "verdict"])
            w.writerows([i, ids[i], 0.1 * i, word] for i, word in ANSWERED.items())
    return from_dict(NewClassConfig, {"features": table, "name": "chainsaw", "example": ids[0],
                                      "verdicts": [str(answers)], "output": str(tmp_path / "round-1"),
                                      "store": str(tmp_path / "labels"), "reviewer": "ann", "negatives": 5,
                                      "batch": 4, "seed": 7, **fields})


def test_a_round_stores_its_answers_once_and_lists_every_clip_for_the_train_job(table, tmp_path):
    """The answers become the store's verdicts (origin the example's search, the reviewer credited); the list
    names every clip of the table: yes as the class, no as other, 5 random negatives as other, the rest (unsure,
    unjudged) with no class; the train job learns that list, on the table, under the round's output. Run again on
    the same answers, the round adds nothing: a reviewer who reruns a round does not vote twice."""
    features, ids = table
    cfg = _config(tmp_path, features, ids)
    ready = prepare_round(cfg)
    assert ready.added == 6 and ready.task.name == TASK
    events = read_events(cfg.store, TASK)
    assert sorted((e.clip_id, e.verdict, e.reviewer, e.origin) for e in events) == sorted(
        [(ids[i], "correct", "ann", f"search:{ids[0]}") for i in (0, 1, 2)]
        + [(ids[i], "wrong", "ann", f"search:{ids[0]}") for i in (3, 4)] + [(ids[5], "unsure", "ann", f"search:{ids[0]}")])
    assert [e.clip_id for e in ready.history] == [e.clip_id for e in events]

    assert ready.label_list == str(tmp_path / "round-1" / "labels.csv")
    with open(ready.label_list, newline="") as fh:
        listed = {r["clip_id"]: r["labels"] for r in csv.DictReader(fh)}
    assert set(listed) == set(ids)
    assert {c for c, label in listed.items() if label == "chainsaw"} == {ids[0], ids[1], ids[2]}
    negatives = {c for c, label in listed.items() if label == "other"}
    assert {ids[3], ids[4]} < negatives and len(negatives) == 2 + 5
    assert not negatives & {ids[i] for i in (0, 1, 2, 5)}  # neither a yes nor an unsure clip is drawn
    assert sum(label == "" for label in listed.values()) == N - 3 - 7
    assert ready.round.drawn == prepare_round(cfg).round.drawn  # the negatives are the seed's

    train = ready.train
    assert (train.features, train.task, train.labels, train.seed) == (features, TASK, ready.label_list, 7)
    assert train.output == str(tmp_path / "round-1" / "train")
    assert train.cv_folds == 3 and train.tuning_trials == 1  # a fold per clip marked yes, a light search

    again = prepare_round(cfg)
    assert again.added == 0 and len(read_events(cfg.store, TASK)) == 6


def test_a_rounds_train_config_file_overrides_the_light_search(table, tmp_path):
    features, ids = table
    base = tmp_path / "train.yaml"
    base.write_text("cv_folds: 2\ntuning_trials: 4\n")
    train = prepare_round(_config(tmp_path, features, ids, train_config=str(base))).train
    assert (train.cv_folds, train.tuning_trials, train.task) == (2, 4, TASK)


def test_the_store_is_the_tables_own_unless_one_is_named(table, tmp_path):
    """Without --store the answers go to the store beside the table (where review and audit find them)."""
    features, ids = table
    cfg = _config(tmp_path, features, ids, store=None)
    assert prepare_round(cfg).added == 6
    assert len(read_events(str(Path(features) / "labels"), TASK)) == 6
    assert not (tmp_path / "labels").exists()


def test_a_round_that_cannot_run_stops_in_one_line_and_stores_nothing(table, tmp_path):
    """An example that is neither a clip nor a file, an output inside the label store, too few yes answers, Label
    Studio's answers of another class's queue: one line naming the field, and the store holds no answer of the
    round."""
    features, ids = table
    inside = tmp_path / "labels" / "round-1"
    stray = tmp_path / "stray.csv"
    stray.write_text(f"clip_id,verdict\n{ids[0]},yes\nclip-nobody-has,no\n")
    dogs = tmp_path / "dog-export.json"  # labels to-label-studio --new-class of the class dog, answered and exported
    dogs.write_text(json.dumps([{"id": 3, "project": 7, "data": {"clip_id": ids[1], "queue": "new class dog"},
                                 "annotations": [{"completed_by": {"email": "ann@example.org"}, "was_cancelled": False,
                                                  "result": [{"from_name": "label", "to_name": "audio",
                                                              "type": "choices", "value": {"choices": ["yes"]}}],
                                                  "updated_at": "2026-11-28T10:05:00Z"}]}]))
    for fields, message in (
            ({"example": "clip-nobody-has"}, f"example: 'clip-nobody-has' is neither a clip of the feature table "
                                             f"{features} nor an audio file"),
            ({"example": "x" * 200}, f"example: '{'x' * 80}' is neither a clip"),  # a long word cut short
            ({"output": str(inside)}, f"output: {inside} lies inside the label store this job reads "
                                      f"({tmp_path / 'labels'}): give a path outside it"),
            ({"verdicts": [str(stray)]}, f"verdicts: 1 verdict(s) name clips that are not in the feature table "
                                         f"{features} (e.g. 'clip-nobody-has'); nothing was added"),
            ({"name": "chain,saw"}, "name: a class name without"),
            ({"verdicts": [str(dogs)]}, f"label-studio: task 3 ({ids[1]}) is of queue 'new class dog', not 'new class "
                                        "chainsaw': another project's tasks; nothing was added")):
        with pytest.raises(ConfigError) as err:
            prepare_round(_config(tmp_path, features, ids, **fields))
        assert str(err.value).startswith(message), (str(err.value), message)
        assert read_events(str(tmp_path / "labels"), TASK) == [], fields
    one_yes = tmp_path / "one.csv"
    one_yes.write_text(f"clip_id,verdict\n{ids[0]},yes\n{ids[3]},no\n")
    with pytest.raises(ConfigError, match="verdicts: 1 clip\\(s\\) marked yes so far"):
        prepare_round(_config(tmp_path, features, ids, verdicts=[str(one_yes)]))


def test_two_new_classes_share_a_store_and_each_round_reads_its_own(table, tmp_path):
    """A store beside a table holds every class its users taught: a chainsaw round neither counts nor lists the
    verdicts of a siren round on the same clips, and a round's other class is the one it names."""
    features, ids = table
    siren = tmp_path / "siren"
    siren.mkdir()
    prepare_round(_config(siren, features, ids, name="siren", output=str(tmp_path / "siren-1"),
                          store=str(tmp_path / "labels")))
    ready = prepare_round(_config(tmp_path, features, ids, other="noise"))
    assert ready.task.name == "labels:chainsaw,noise" and ready.added == 6
    assert {e.task for e in ready.history} == {"labels:chainsaw,noise"} and len(ready.history) == 6
    with open(ready.label_list, newline="") as fh:
        listed = [r["labels"] for r in csv.DictReader(fh)]
    assert listed.count("chainsaw") == 3 and listed.count("noise") == 2 + 5
    assert len(read_events(str(tmp_path / "labels"), "labels:siren,other")) == 6
    again = prepare_round(_config(tmp_path, features, ids, other="noise"))
    assert again.added == 0 and len(again.history) == 6


def test_the_example_is_a_clip_of_the_table_or_an_audio_file_that_is_there(tmp_path, monkeypatch):
    check_example("c1", {"c1", "c2"}, "t")
    audio = tmp_path / "example.wav"
    audio.write_bytes(b"RIFF")
    check_example(str(audio), {"c1"}, "t")
    monkeypatch.chdir(tmp_path)  # a short path: the message cuts a long one at 80 characters (tested above)
    with pytest.raises(ConfigError) as err:
        check_example("gone.wav", {"c1"}, "out/features")
    assert str(err.value).startswith("example: 'gone.wav' is neither a clip of the feature table out/features nor an "
                                     "audio file")


@pytest.fixture(scope="module")
def model(table, tmp_path_factory):
    """A real saved model of the task on the table: a logistic regression of the synthetic truth (class 0, the
    new class: the natural clips) on the ``raw`` group, saved as train saves one (no train run: a second)."""
    features, ids = table
    truth = dict(zip(ids, synthetic_features(N, seed=5, signals=("raw",)).true))
    data = read_features(features)
    transforms = [fit_group(data.X[g.name], 4, g.name) for g in data.feature_groups]
    y = np.array([0 if truth[c] else 1 for c in data.ids])
    fitted = make_estimator("logreg", "single_label", 2, seed=0).fit(transform_all(transforms, data.X), y)
    task = load_task(TASK)
    path = tmp_path_factory.mktemp("model") / "model"
    save_model(str(path), from_zoo(fitted), transforms,
               {"task": {"name": task.name, "kind": task.kind, "class_names": list(task.class_names),
                         "definition": task.definition}, "features": features}, data.feature_groups)
    return load_model(str(path))


def _review(path: str) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_the_next_clips_are_the_models_least_decided_among_those_nobody_answered(table, model, tmp_path):
    """``uncertain``: the round's model scores the whole table, and review.csv under the round's output asks about
    the ``batch`` clips of smallest margin that no answer (this round's or an earlier one's) is about, each with the
    model's probability of the new class and an empty verdict to fill in."""
    features, ids = table
    cfg = _config(tmp_path, features, ids, strategy="uncertain")
    ready = prepare_round(cfg)
    review, picks = pick_next(cfg, ready, model)
    assert review == str(tmp_path / "round-1" / "review.csv")
    scored = model.predict_proba(model.read_features(features))
    prob = dict(zip(model.read_features(features).ids.tolist(), scored[:, 0]))
    answered = {ids[i] for i, word in ANSWERED.items() if word}
    open_ = sorted((c for c in ids if c not in answered), key=lambda c: abs(2 * prob[c] - 1))
    assert [c for c, _ in picks] == open_[:4]
    rows = _review(review)
    assert [(r["clip_id"], r["reason"], r["verdict"]) for r in rows] == [(c, why, "") for c, why in picks]
    for r in rows:
        assert float(r["prob_chainsaw"]) == pytest.approx(prob[r["clip_id"]], abs=1e-4)


def test_mixed_asks_next_for_the_clips_the_model_finds_most_likely_of_the_class(table, model, tmp_path):
    """``mixed`` after settled answers: refitted on them, every clip nobody judged counting as other, it asks first
    for the unjudged clips most likely of the class: the picks' probabilities are the highest of the open clips'
    (on this table the classes are well apart), and the seed repeats them."""
    features, ids = table
    cfg = _config(tmp_path, features, ids, strategy="mixed", batch=3)
    ready = prepare_round(cfg)
    _, picks = pick_next(cfg, ready, model)
    prob = dict(zip(model.read_features(features).ids.tolist(), model.predict_proba(model.read_features(features))[:, 0]))
    answered = {ids[i] for i, word in ANSWERED.items() if word}
    open_ = sorted((c for c in ids if c not in answered), key=lambda c: -prob[c])
    assert len(picks) == 3 and {c for c, _ in picks} <= set(open_[:6])
    assert all(why.endswith("after a refit on 5 verdicts") for _, why in picks), picks
    assert pick_next(cfg, ready, model)[1] == picks


def test_the_next_queue_is_ordered_by_the_rounds_seed(table, model, tmp_path, monkeypatch):
    """The order is given the round's ``--seed`` (``mixed``'s refit draws its folds by it), so that a round run
    again asks for the same clips on a close call too."""
    import acoustic_env.jobs.new_class as job

    features, ids = table
    seeds, real = [], job.next_review
    monkeypatch.setattr(job, "next_review", lambda *args: seeds.append(args[-1]) or real(*args))
    cfg = _config(tmp_path, features, ids, strategy="mixed", seed=11)
    pick_next(cfg, prepare_round(cfg), model)
    assert seeds == [11]


#: a reviewer's note with more commas than a ';' file's header has semicolons
NOTE = ("saw it, then again, and again, near the road, at dusk, in rain, twice, with a saw, a chain, a motor, a man, "
        "a dog, a car, a bird, wind, rain and a river" + ", and more" * 10)


def test_answers_are_read_from_the_files_people_write(tmp_path):
    """A spreadsheet saved with ';' or tabs, a JSON list, and search --save's own CSV read back as written (a cell
    its writer protected with a quote loses it): each judged row's clip (trimmed), answer, reviewer, time and
    note; a row left empty is not judged yet."""
    semicolon = tmp_path / "hits.csv"
    semicolon.write_text("rank;clip_id;verdict;reviewer;time;note\n0; c1 ;YES;ann;2026-11-26T10:00:00Z;"
                         f"{NOTE}\n"
                         "1;c2;;ann;;\n2;c3;wrong;bob;;'=maybe\n")
    tabs = tmp_path / "hits.tsv"
    tabs.write_text("clip_id\tverdict\tnote\nc4\tunsure\n")  # a row short of its header's last cell
    listed = tmp_path / "hits.json"
    listed.write_text('\n [{"clip_id": "c5", "verdict": "correct", "reviewer": "cy"}, {"clip_id": "c6", "verdict": ""}]')
    assert read_answers([str(semicolon), str(tabs), str(listed)], "chainsaw") == [
        {"clip_id": "c1", "answer": "yes", "reviewer": "ann", "time": "2026-11-26T10:00:00Z", "note": NOTE},
        {"clip_id": "c3", "answer": "no", "reviewer": "bob", "time": "", "note": "=maybe"},
        {"clip_id": "c4", "answer": "unsure", "reviewer": "", "time": "", "note": ""},
        {"clip_id": "c5", "answer": "yes", "reviewer": "cy", "time": "", "note": ""}]


def test_an_answer_file_that_cannot_be_read_is_one_line_naming_it(tmp_path):
    no_column = tmp_path / "hits.csv"
    no_column.write_text("rank,clip_id,answer\n0,c1,yes\n")
    no_clip = tmp_path / "no_clip.json"
    no_clip.write_text('[{"clip_id": " ", "verdict": "yes"}]')
    no_key = tmp_path / "no_key.json"
    no_key.write_text('[{"verdict": "yes"}]')
    broken = tmp_path / "broken.json"
    broken.write_text('[{"clip_id": "c1",')
    for path, line in ((no_column, f"verdicts: {no_column} has no 'verdict' column (columns: rank, clip_id, answer); "
                                   "add one and write yes, no or unsure in it"),
                       (no_clip, f"verdicts: every row of {no_clip} needs a clip_id, got {{'clip_id': ' ', "
                                 "'verdict': 'yes'}"),
                       (no_key, f"verdicts: every row of {no_key} needs a clip_id, got {{'verdict': 'yes'}}"),
                       (broken, f"verdicts: {broken} is not valid JSON (")):
        with pytest.raises((ConfigError, AuditError)) as err:  # each the CLI's one line
            read_answers([str(path)], "chainsaw")
        assert str(err.value).startswith(line), (str(err.value), line)
