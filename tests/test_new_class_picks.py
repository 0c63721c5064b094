"""Which clips a new-class round asks about next, and why (``labels/new_class.py: next_review``, the last step of
``labels new-class``'s round, ``jobs/new_class.py: run_round``), issue 84, 4.

A table of 40 clips whose model scores rise with the clip's number, a store of answers written by hand, and the
round's list: the picks are checked against what the strategy says it does, computed here from the scores, and the
review file's rows against the table. ``mixed`` counts every clip nobody judged as the negative class, so after
the first answers it asks first for the unjudged clips most likely of the class; ``uncertain`` for the unjudged
clips the model can least decide. A clip anyone answered about (unsure included) is never asked again, and a clip
the model could not score is never picked. Fast: no train run (the whole round's slow test is in
``tests/test_new_class.py``).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from acoustic_env.config import ConfigError
from acoustic_env.demo.tables import synthetic_features, write_features
from acoustic_env.labels.new_class import next_review, round_list, task_of
from acoustic_env.labels.store import Event
from acoustic_env.table import selection
from acoustic_env.vocabulary.tasks import load_task

TASK = load_task(task_of("chainsaw"))
T0 = datetime(2026, 11, 26, 10, tzinfo=timezone.utc)
YES, NO, UNSURE = range(36, 40), range(0, 4), 35
#: the unjudged clips the model finds most likely of the class, well apart from the rest
LIKELY = range(30, 35)
#: a clip the model could not score (its probabilities not finite), more "likely" than any by its features
UNSCORED = 29


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """(clip ids, the table's clip facts, the model's probabilities, its feature rows)."""
    table = write_features(synthetic_features(40, seed=2, signals=("raw",)).table,
                           str(tmp_path_factory.mktemp("picks") / "table"))
    facts = selection(table).facts
    ids = facts["clip_id"].to_pylist()
    x = np.linspace(-3.0, 0.0, 40)  # the clips the model doubts: spread below 0
    x[list(LIKELY)] = np.linspace(2.0, 2.4, 5)
    x[list(YES)], x[UNSCORED] = np.linspace(2.6, 3.0, 4), 3.5
    x[UNSURE] = 0.0  # the model's least decided clip, but answered (unsure)
    X = np.column_stack([x, np.random.default_rng(0).normal(0, 0.05, 40)])
    p = 1 / (1 + np.exp(-2 * x))
    probs = np.column_stack([p, 1 - p])
    probs[UNSCORED] = np.nan
    return ids, facts, probs, X


def _said(clip: str, yes: bool | None, minutes: int = 0) -> Event:
    verdict = "unsure" if yes is None else "correct" if yes else "wrong"
    return Event(clip, TASK.name, "search", verdict=verdict, given=("chainsaw",), labels=("other",) if yes is False
                 else (), reviewer="ann", time=T0 + timedelta(minutes=minutes))


def _history(ids: list[str], settled: bool = True) -> list[Event]:
    """Ann's answers: yes to 4 clips, no to 4, unsure about one (``settled`` False: unsure about all 9)."""
    answer = (lambda yes: yes) if settled else (lambda yes: None)
    return ([_said(ids[i], answer(True), i) for i in YES] + [_said(ids[i], answer(False), i) for i in NO]
            + [_said(ids[UNSURE], None, 50)])


def _picks(world, history, strategy: str, n: int, seed: int = 0):
    ids, facts, probs, X = world
    rnd = round_list(history, ids, TASK, negatives=5, seed=seed)
    return next_review(history, rnd, TASK, probs, X, ids, facts, strategy, n, seed)


def test_mixed_asks_first_for_the_unjudged_clips_most_likely_of_the_class(world):
    """After the first answers ``mixed`` re-ranks on a refit: every clip nobody judged counts as ``other``, so the
    lowest label quality is the highest probability of the class. The five likely clips come first, the one the
    model could not score never, each with its quality under the refit on the 8 settled answers (unsure is none)."""
    ids = world[0]
    picks, _ = _picks(world, _history(ids), "mixed", 5)
    assert {c for c, _ in picks} == {ids[i] for i in LIKELY}
    qualities = []
    for _, why in picks:
        found = re.fullmatch(r"label quality (\d\.\d\d) after a refit on 8 verdicts", why)
        assert found, why
        qualities.append(float(found[1]))
    assert qualities == sorted(qualities) and qualities[-1] < 0.5  # most likely of the class first


def test_mixed_at_a_cold_start_spreads_over_the_unjudged_clips_most_likely_of_the_class(world):
    """Only unsure answers so far (nothing settled, no refit): ``mixed`` picks diversely among the twice-the-batch
    unjudged clips of lowest label quality, which, the unjudged counting as ``other``, are the likeliest of the
    class."""
    ids, _, probs, _ = world
    history = _history(ids, settled=False)
    answered = {e.clip_id for e in history}
    open_ = [i for i in np.argsort(-probs[:, 0]) if ids[i] not in answered and i != UNSCORED]
    picks, _ = _picks(world, history, "mixed", 3)
    assert len(picks) == 3 and {c for c, _ in picks} <= {ids[i] for i in open_[:6]}
    assert all(re.fullmatch(r"(nearest the centre of the collection|farthest from reviewed clips \(\d+\.\d\d\)), "
                            r"label quality \d\.\d\d", why) for _, why in picks), picks


def test_uncertain_asks_for_the_unjudged_clips_the_model_can_least_decide(world):
    """The smallest margins between the two classes first, among the clips nobody answered: the unsure clip, the
    least decided of all, was answered and is not asked again."""
    ids, _, probs, _ = world
    answered = {ids[i] for i in (*YES, *NO, UNSURE)}
    margin = np.abs(probs[:, 0] - probs[:, 1])
    expected = [ids[i] for i in np.argsort(margin, kind="stable") if ids[i] not in answered and i != UNSCORED][:4]
    picks, _ = _picks(world, _history(ids), "uncertain", 4)
    assert picks == [(c, f"margin {margin[ids.index(c)]:.2f}") for c in expected]


def test_the_review_file_lists_each_pick_with_its_probability_and_where_the_clip_lives(world):
    """review.csv's rows: each pick in order, an empty verdict to fill in, why, the model's probability of the class
    (not of ``other``), and the table's facts of that clip."""
    ids, facts, probs, _ = world
    picks, rows = _picks(world, _history(ids), "mixed", 5)
    where = {r["clip_id"]: r for r in facts.to_pylist()}
    assert rows.column_names == ["clip_id", "verdict", "reason", "prob_chainsaw", "labels", "uri", "start_s", "end_s"]
    assert [(r["clip_id"], r["reason"]) for r in rows.to_pylist()] == picks
    for row in rows.to_pylist():
        clip = row["clip_id"]
        assert row["verdict"] == "" and row["prob_chainsaw"] == round(float(probs[ids.index(clip), 0]), 4)
        assert {k: row[k] for k in ("labels", "uri", "start_s", "end_s")} == {
            k: where[clip][k] for k in ("labels", "uri", "start_s", "end_s")}


def test_the_refits_folds_are_the_rounds_seeds(world):
    """``--seed`` repeats a round's picks and reasons; another seed refits on other folds (other qualities)."""
    ids = world[0]
    again = [_picks(world, _history(ids), "mixed", 5, seed)[0] for seed in (5, 5, 0)]
    assert again[0] == again[1] != again[2]


def test_a_round_with_nothing_left_to_judge_writes_the_review_files_columns_and_no_row(world):
    """Every clip the model scored is answered: no pick, and review.csv still has its header (a spreadsheet the
    user opens, and the next round reads, says what it would hold)."""
    ids = world[0]
    history = [_said(c, i % 2 == 0, i) for i, c in enumerate(ids)]
    picks, rows = _picks(world, history, "uncertain", 5)
    assert picks == [] and rows.num_rows == 0
    assert rows.column_names == ["clip_id", "verdict", "reason", "prob_chainsaw", "labels", "uri", "start_s", "end_s"]


def test_a_strategy_a_round_does_not_have_is_one_line_naming_the_field(world):
    with pytest.raises(ConfigError) as err:
        _picks(world, _history(world[0]), "suspect", 5)
    assert str(err.value) == "strategy: must be one of mixed, uncertain, got 'suspect'"
