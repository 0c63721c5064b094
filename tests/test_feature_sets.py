"""The feature set as a searched choice (``learn.feature_sets``): which sets are tried, that each outer fold chooses
on its own training clips only, and that train's saved model reads only the set it chose."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from acoustic_env.config import TrainConfig, from_dict
from acoustic_env.demo.tables import synthetic_features, write_features
from acoustic_env.jobs.train.job import summary_lines, train
from acoustic_env.learn.cv import out_of_fold
from acoustic_env.learn.feature_sets import ALL, Sets, candidate_sets
from acoustic_env.learn.preprocess import Preprocessing, Slot
from acoustic_env.learn.tuning import TuningPlan
from acoustic_env.table import GroupInfo

PRETRAINED = "ab" * 32  # a checksum standing in for pretrained weights


def _group(name: str, source: str, weights: str | None = None) -> GroupInfo:
    return GroupInfo(name=name, dim=4, source=source, weights=weights)


def test_the_sets_a_user_would_try():
    groups = [_group("indices_raw", "indices"), _group("spectral_raw", "spectral"), _group("mps_raw", "mps"),
              _group("indices_fg", "indices"), _group("birdnet", "birdnet", PRETRAINED),
              _group("birdnet_fg", "birdnet", PRETRAINED), _group("vggish", "vggish", "random")]
    sets = candidate_sets(groups)
    assert list(sets) == [ALL, "birdnet", "hand-made", "birdnet+indices"]
    assert sets[ALL] == tuple(g.name for g in groups)  # random weights only inside every group, never alone
    assert sets["birdnet"] == ("birdnet", "birdnet_fg")
    assert sets["hand-made"] == ("indices_raw", "spectral_raw", "mps_raw", "indices_fg")
    assert sets["birdnet+indices"] == ("birdnet", "birdnet_fg", "indices_raw", "indices_fg")
    # one set only (no embedder, or nothing else beside it): no search
    assert candidate_sets(groups[:4]) == {}
    assert candidate_sets([groups[4]]) == {}
    # an embedder with nothing hand-made beside it: every group is that embedder's set, named once
    assert list(candidate_sets([groups[4], _group("yamnet", "yamnet", PRETRAINED)])) == [ALL, "birdnet", "yamnet"]


def _leaky_data(seed: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray]:
    """Two groups: ``good`` weakly informative everywhere, ``leak`` noise; 5 folds of 6 groups of 4 clips."""
    rng = np.random.default_rng(seed)
    n = 120
    y = np.arange(n) % 2
    groups = np.repeat(np.arange(30), 4).astype(str)
    folds = np.repeat(np.arange(30) % 5, 4)
    x = {"good": rng.standard_normal((n, 3)) + 0.6 * y[:, None], "leak": rng.standard_normal((n, 3))}
    return x, y, groups, folds


SETS: Sets = {ALL: ("good", "leak"), "good": ("good",), "leak": ("leak",)}


def _search(x: dict[str, np.ndarray]) -> dict:
    """``out_of_fold``'s inputs for the groups of ``x``: their raw columns side by side and each one's PCA (every
    component), and the three sets."""
    slots = tuple(Slot(g, 3 * i, 3 * i + 3, 3) for i, g in enumerate(x))
    return {"x": np.hstack(list(x.values())), "preprocessing": Preprocessing(slots), "feature_sets": SETS}


def test_each_outer_fold_chooses_its_set_without_its_held_out_clips():
    """A group that is pure noise on the training folds but the label itself on the held-out fold is never credited:
    that fold's choice, and its inner scores, are the same as with noise there (a selection that saw the held-out
    fold would pick it), and a group informative on one training fold only does not carry its held-out figure."""
    x, y, groups, folds = _leaky_data()
    x["leak"][folds == 1] += 3.0 * y[folds == 1][:, None]  # informative on one training fold of fold 0's models
    plan = TuningPlan(1, 2)
    first = out_of_fold(y=y, folds=folds, kind="single_label", n_classes=2, models=["logreg"], seed=0, groups=groups,
                        search=plan, threads=1, **_search(x))
    noise_proba, noise = first.proba, first.feature_sets
    leaked = {k: v.copy() for k, v in x.items()}
    leaked["leak"][folds == 0] = np.repeat(y[folds == 0][:, None], 3, axis=1) * 10.0  # the answer, on fold 0 only
    second = out_of_fold(y=y, folds=folds, kind="single_label", n_classes=2, models=["logreg"], seed=0,
                         groups=groups, search=plan, threads=1, **_search(leaked))
    proba, seen = second.proba, second.feature_sets
    assert seen["logreg"][0] == noise["logreg"][0]  # fold 0: same set, same inner scores
    assert [f["fold"] for f in seen["logreg"]] == [0, 1, 2, 3, 4]
    assert set(seen["logreg"][0]["scores"]) == {ALL, "good", "leak"}
    if "leak" not in SETS[seen["logreg"][0]["set"]]:  # the usual case: the choice left it out
        assert np.allclose(proba["logreg"][folds == 0], noise_proba["logreg"][folds == 0])


@pytest.mark.parametrize("model", ["xgboost", "mlp"])
def test_the_settings_search_takes_the_defaults_score_from_the_set_choice_instead_of_fitting_them_again(
        model, monkeypatch):
    """The set choice fits each model's defaults on the same inner folds as the settings search that follows on the
    chosen set: the search takes that score (its defaults' pooled score, to the bit) and fits only its other settings,
    and every score, choice and probability is the one it would have had fitting the defaults again."""
    from acoustic_env.learn import tuning, zoo

    from acoustic_env.candidates import PARAMS

    x, y, groups, folds = _leaky_data()
    folds = folds % 2  # two outer folds
    monkeypatch.setitem(PARAMS["mlp"], "max_rounds", 3)  # the networks' rounds are test_fit.py's
    scored: list[dict] = []

    def counted(build, setting, *args):
        scored.append(setting)
        return real(build, setting, *args)

    real = tuning.pooled_score
    monkeypatch.setattr(tuning, "pooled_score", counted)
    runs = []
    for reuse in (True, False):
        if not reuse:  # the search told nothing: it fits its defaults again
            search = zoo.grouped_tuning
            monkeypatch.setattr(zoo, "grouped_tuning", lambda *args, **kw: search(*args[:-1], None, **kw))
        scored.clear()
        result = out_of_fold(y=y, folds=folds, kind="single_label", n_classes=2, models=[model], seed=0,
                             groups=groups, search=TuningPlan(2, 2), threads=1, **_search(x))
        runs.append((result.proba[model], [r.trials for r in result.searches[model]], result.feature_sets,
                     len(scored)))
    (reused, tried, chosen, fits), (again, tried_again, chosen_again, fits_again) = runs
    assert fits == fits_again - 2 == 2  # one search setting a fold, not two
    assert tried == tried_again and len(tried) == 2 and all(len(t) == 2 for t in tried)
    assert chosen == chosen_again
    np.testing.assert_array_equal(reused, again)


@pytest.mark.parametrize("limit, ways", [(80, ["at once"] * 14), (40, ["in rounds"] * 14),
                                         (60, ["at once"] * 7 + ["in rounds"] * 7)],
                         ids=["at most the limit", "above it", "one fold each way"])
def test_the_set_choice_fits_each_inner_mlp_the_way_its_fold_model_is_fitted(monkeypatch, mlp_ways, limit, ways):
    """2 outer folds of 48 and 72 training clips, each on 2 inner folds of 24-36. At ``full_batch_rows`` 80 the fold
    models and the set choice's inner fits are all fitted at once. At 40 the fold models are fitted in rounds, and so
    is each inner fit of the choice though its clips are under the limit: fitted at once, they scored the sets (and
    the defaults the search then reuses) with a network the fold model is not. At 60, each fold its own way."""
    from acoustic_env.candidates import PARAMS

    monkeypatch.setitem(PARAMS["mlp"], "full_batch_rows", limit)
    x, y, groups, folds = _leaky_data()
    out_of_fold(y=y, folds=folds % 2, kind="single_label", n_classes=2, models=["mlp"], seed=0, groups=groups,
                search=TuningPlan(1, 2), threads=1, **_search(x))
    assert mlp_ways == ways  # each outer fold: 3 sets on 2 inner folds, then the fold model


@pytest.mark.slow
def test_train_saves_the_model_on_the_set_it_chose(tmp_path: Path, tuned_pca_rules):
    """On a table with a (stand-in) pretrained embedder, train compares the sets under its cross-validation, prints
    the model x feature-set table, and saves a model that reads only the chosen set's groups. The models' own
    settings are not searched (one setting each): the sets are the search here."""
    table = synthetic_features(60, seed=3, embedders=("vggish",), weights=PRETRAINED, signals=("raw",)).table
    source = write_features(table, str(tmp_path / "t"))
    cfg = from_dict(TrainConfig, {"features": source, "output": str(tmp_path / "o"), "cv_folds": 3, "tuning_folds": 2,
                                  "tuning_trials": 1, "baselines": ["logreg"], "ablations": False, "shap_samples": 0,
                                  "progress": False, "max_rounds": 3, "grace_rounds": 1, "patience": 2})
    result = train(cfg)
    fs = result.evaluation["feature_sets"]
    assert list(fs["sets"]) == [ALL, "vggish", "hand-made", "vggish+indices"]
    assert set(fs["table"]) == {"mlp", "logreg"}
    assert all(sum(c["chosen_in"] for c in per.values()) == 3 for per in fs["table"].values())
    saved = fs["saved"]
    assert saved["model"] == result.evaluation["saved_model"] and saved["groups"] == fs["sets"][saved["set"]]
    model = json.loads((Path(result.model) / "model.json").read_text())
    assert sorted(g["name"] for g in model["groups"]) == sorted(saved["groups"])
    lines = summary_lines(result)
    assert any(line.startswith("  feature sets, chosen per outer fold") for line in lines)
    # the first line names a better-scoring candidate that has no saved form (the average), never silently
    ev = result.evaluation
    assert ("scored higher" in lines[0]) == (ev["best"] != ev["chosen"])
    over = dataclasses.replace(result, evaluation={**ev, "best": "average", "scores": {**ev["scores"], "average": 1.0}})
    assert (f"chosen model {ev['chosen']} (by ROC AUC) (average scored higher, 1.000 against "
            f"{ev['scores'][ev['chosen']]:.3f}, but has no saved form), saved {ev['saved_model']}") in summary_lines(over)[0]
    assert any(line.startswith(f"    saved {saved['model']} reads {saved['set']} (") for line in lines)
    assert "<h2>Feature sets</h2>" in Path(result.report).read_text()
    # the PCA each fitted model kept: its own, in each outer fold (3) and in the saved model, by the count rule
    comps = result.evaluation["components"]
    assert [f["fold"] for f in comps["per_fold"]["logreg"]] == [0, 1, 2]
    assert set(comps["saved"]["logreg"]) == set(saved["groups"]) and "one component per R rows" in comps["rule"]
    # the count rule each fold's models shared, chosen with the sets, and the saved model's, chosen on all clips
    assert [f["rule"] for f in comps["per_fold"]["logreg"]] == [r["rule"] for r in comps["rules"]]
    assert set(comps["saved_rule_scores"]) == {1, 4} and comps["saved_rule"] in (1, 4)
    assert all(n <= (60 - 1) // comps["saved_rule"] for n in comps["saved"]["logreg"].values())
    report = Path(result.report).read_text()
    assert "the components each outer fold's model kept per group" in report and "rows per component" in report
    # --feature-groups pins the set: no search (two folds: only the set is looked at)
    pinned = train(from_dict(TrainConfig, {**cfg.to_dict(), "output": str(tmp_path / "p"), "cv_folds": 2,
                                           "feature_groups": ["vggish"]}))
    assert pinned.evaluation["feature_sets"] is None and pinned.groups == ["vggish"]


def test_a_pretrained_embedder_beside_random_weights_is_tried_alone_too():
    """Two sets (every group; the pretrained embedder alone) are a search: the random columns may only add noise."""
    groups = [_group("birdnet", "birdnet", PRETRAINED), _group("vggish", "vggish", "random")]
    assert candidate_sets(groups) == {ALL: ("birdnet", "vggish"), "birdnet": ("birdnet",)}


def test_each_sets_preprocessing_is_fitted_on_the_rows_its_model_is_fitted_on_only():
    """A held-out row's values never move a model's preprocessing or its probabilities: the per-group PCA is the
    model's first step, fitted on the rows given to ``fit`` (as ``fit_group`` fits them), held-out rows only
    projected."""
    from acoustic_env.learn.preprocess import fit_group
    from acoustic_env.learn.zoo import make_estimator

    x, y, *_ = _leaky_data()
    train_mask = np.arange(len(y)) < 90
    moved = {k: v.copy() for k, v in x.items()}
    moved["good"][~train_mask] += 100.0
    fitted = []
    for data in (x, moved):
        inputs = _search(data)
        prep = inputs["preprocessing"].only(("good",))
        est = make_estimator("logreg", "single_label", 2, preprocessing=prep).fit(inputs["x"][train_mask],
                                                                                    y[train_mask])
        fitted.append((est, inputs["x"]))
    (a, raw_a), (b, raw_b) = fitted
    want = fit_group(x["good"][train_mask], 3, "good")
    for est in (a, b):
        (t,) = est.transforms_
        np.testing.assert_array_equal(t.components, want.components)
        np.testing.assert_array_equal(t.out_scale, want.out_scale)
    np.testing.assert_allclose(a.predict_proba(raw_a[train_mask]), b.predict_proba(raw_b[train_mask]))


class _Reads:
    """A stand-in model whose probabilities are the logistic of its inputs (single-label: class 1's, of the first;
    multi-label: each class's, of one input each): the score a set gets is then known without fitting; it keeps the
    groups each fit was given."""

    fits: list[np.ndarray] = []
    multi_label = False

    def __init__(self, columns: slice = slice(None)) -> None:
        self.columns = columns  # the raw columns of the set it was built for

    def fit(self, x: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None) -> "_Reads":
        self.fits.append(groups)
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        p = 1.0 / (1.0 + np.exp(-x[:, self.columns][:, :2]))
        return p if self.multi_label else np.column_stack([1.0 - p[:, 0], p[:, 0]])


def _choose(inputs: dict[str, np.ndarray], y: np.ndarray, groups: np.ndarray, *args):
    """``choose_set`` over sets of one group each, the group's raw columns ``inputs[set]``, read by ``_Reads``."""
    from acoustic_env.learn.feature_sets import choose_set

    ends = np.cumsum([v.shape[1] for v in inputs.values()])
    at = {name: slice(end - v.shape[1], end) for (name, v), end in zip(inputs.items(), ends)}
    return choose_set(lambda only: _Reads(at[only[0]]), {name: (name,) for name in inputs},
                      np.hstack(list(inputs.values())), y, groups, *args)


def test_each_set_is_scored_on_every_row_once_out_of_fold_and_the_best_wins_ties_going_to_the_earlier():
    """The pooled inner out-of-fold score of each set (here: the AUC of its first input, known without a fit), to
    the record's 6 decimals; the best set wins, not the last by name; each fit gets its own rows' groups."""
    from acoustic_env.learn.fit import val_score

    x, y, groups, _ = _leaky_data()
    inputs = {ALL: x["leak"], "good": x["good"], "leak": x["leak"][::-1].copy()}
    _Reads.fits = []
    chosen, scores, _ = _choose(inputs, y, groups, 3, 0, "single_label")
    expected = {n: round(val_score("single_label", y, _Reads().predict_proba(v)), 6) for n, v in inputs.items()}
    assert (chosen, scores) == ("good", expected)
    assert len(_Reads.fits) == 9 and all(g is not None and len(g) == 80 and set(g) <= set(groups)
                                         for g in _Reads.fits)
    assert _choose({ALL: x["good"], "copy": x["good"]}, y, groups, 3, 0, "single_label")[0] == ALL
    # one recording only: nothing to fold by, the first set unscored
    assert _choose(inputs, y, np.zeros(len(y), str), 3, 0, "single_label") == (ALL, {}, None)


def test_the_sets_are_scored_by_the_metric_asked_and_the_chosen_ones_score_comes_back_unrounded():
    """``--select-by`` reaches the set choice (here accuracy, by which the sets rank otherwise than by ROC AUC); the
    chosen set's unrounded score is the one its settings search would compute for the defaults."""
    from acoustic_env.learn.fit import val_score

    x, y, groups, _ = _leaky_data()
    inputs = {ALL: x["leak"], "good": x["good"]}
    chosen, scores, pooled = _choose(inputs, y, groups, 3, 0, "single_label", "accuracy")
    by = {n: val_score("single_label", y, _Reads().predict_proba(v), "accuracy") for n, v in inputs.items()}
    assert by != {n: val_score("single_label", y, _Reads().predict_proba(v)) for n, v in inputs.items()}
    assert scores == {n: round(v, 6) for n, v in by.items()} and pooled == by[chosen]


def test_a_multi_label_set_is_scored_by_its_mean_average_precision(monkeypatch):
    from acoustic_env.learn.fit import val_score

    monkeypatch.setattr(_Reads, "multi_label", True)
    x, y, groups, _ = _leaky_data()
    labels = np.column_stack([y, 1 - y])
    informative = np.column_stack([x["good"][:, 0], -x["good"][:, 0]])
    inputs = {ALL: np.column_stack([x["leak"][:, :2], x["leak"][:, :2]]), "good": informative}
    chosen, scores, _ = _choose(inputs, labels, groups, 3, 0, "multi_label")
    assert chosen == "good"
    assert scores["good"] == round(val_score("multi_label", labels, _Reads().predict_proba(informative)), 6)


def _faint_direction(seed: int = 0, n_groups: int = 30) -> tuple[np.ndarray, np.ndarray, np.ndarray, Preprocessing]:
    """One group of 120 columns: 40 noise factors each shared by 3 columns (after the group's standardisation, each a
    direction of variance about 3), and the class in one column of its own (variance 1): a PCA that keeps one
    component per 4 rows (19 on an inner fit of 80 rows) holds factors only, one per row reaches the class."""
    rng = np.random.default_rng(seed)
    n = 4 * n_groups
    y = np.tile([0, 1, 0, 1], n_groups)
    groups = np.repeat([f"rec{i}" for i in range(n_groups)], 4).astype(object)
    x = np.repeat(rng.standard_normal((n, 40)), 3, axis=1) + 0.1 * rng.standard_normal((n, 120))
    x[:, 119] = 2.0 * (2 * y - 1) + 0.8 * rng.standard_normal(n)
    return x.astype(np.float32), y, groups, Preprocessing((Slot("wide", 0, 120, 120),))


def test_the_count_rule_is_chosen_on_the_inner_folds_where_it_cuts_a_target_and_shared_by_the_models(
        tuned_pca_rules):
    """Where the default rule (4 rows a component) cuts the group's target, ``choose_sets`` tries one component per
    row too, every model choosing its set under each, and keeps the rule whose choices score best on average; where
    no rule cuts a target (a table of many rows), nothing is scored beyond the sets."""
    from acoustic_env.learn.feature_sets import choose_sets
    from acoustic_env.learn.zoo import make_estimator

    x, y, groups, prep = _faint_direction()
    assert prep.rules(80) == (4, 1) and prep.with_rule(1).rules(80) == (1, 4)
    assert prep.rules(10_000) == (4,)  # 120 columns kept either way: one rule, no search
    built: list[int] = []

    def build(model, own):
        built.append(own.rule)
        return make_estimator(model, "single_label", 2, 0, 1, TuningPlan(1, 3), preprocessing=own)

    choice = choose_sets(build, ["logreg", "knn"], {ALL: ("wide",)}, prep, x, y, groups, 3, 0, "single_label")
    assert choice.rule == 1, choice.rule_scores
    assert set(choice.rule_scores) == {1, 4} and choice.rule_scores[1] > choice.rule_scores[4] + 0.2
    assert set(choice.sets) == {"logreg", "knn"} and all(s[0] == ALL for s in choice.sets.values())
    assert sorted(set(built)) == [1, 4]
    # the same rows with a target every rule keeps: no rule to choose, and nothing fitted when there is one set only
    built.clear()
    narrow = Preprocessing((Slot("wide", 0, 120, 5),))
    choice = choose_sets(build, ["logreg"], {ALL: ("wide",)}, narrow, x, y, groups, 3, 0, "single_label")
    assert (choice.rule, choice.rule_scores, choice.sets, built) == (4, {}, {"logreg": (ALL, {}, None)}, [])


def test_cross_validation_fits_every_fold_model_at_the_rule_its_training_folds_chose(tuned_pca_rules):
    """The outer folds: each fold's rule is chosen on its training clips' inner folds and recorded, and every fold
    model's PCA keeps the components that rule allows on its training rows."""
    x, y, groups, prep = _faint_direction()
    folds = np.repeat(np.arange(30) % 3, 4)
    result = out_of_fold(x, y, folds, "single_label", 2, ["logreg"], groups=groups, search=TuningPlan(1, 3),
                         threads=1, preprocessing=prep)
    assert [r["rule"] for r in result.rules] == [1, 1, 1]
    assert [c["rule"] for c in result.components["logreg"]] == [1, 1, 1]
    assert [c["components"]["wide"] for c in result.components["logreg"]] == [79, 79, 79]  # 80 training rows
    from acoustic_env.learn.metrics import headline
    assert headline("single_label", y, result.proba["logreg"])["roc_auc"] > 0.8  # the class column held


def _reads_its_set(model: str, own: Preprocessing) -> _Reads:
    """``choose_sets``' model of a set of one group: ``_Reads`` of that group's raw columns (the rule unread)."""
    return _Reads(slice(own.slots[0].start, own.slots[0].stop))


@pytest.mark.parametrize("kind, metric", [("single_label", None), ("single_label", "accuracy"), ("multi_label", None)])
def test_the_models_fitted_together_each_choose_their_set_by_the_task_and_metric_asked(kind, metric, monkeypatch):
    """``choose_sets`` gives each model the set ``choose_set`` gives it alone, scored for the task and by
    ``--select-by`` (accuracy ranks these sets otherwise than ROC AUC)."""
    from acoustic_env.learn.feature_sets import choose_sets

    x, y, groups, _ = _leaky_data()
    inputs = {"leak": x["leak"], "good": x["good"]}
    if kind == "multi_label":
        monkeypatch.setattr(_Reads, "multi_label", True)
        y = np.column_stack([y, 1 - y])
        inputs["good"] = np.column_stack([x["good"][:, :2], -x["good"][:, 0]])
    prep = Preprocessing((Slot("leak", 0, 3, 3), Slot("good", 3, 6, 3)))
    choice = choose_sets(_reads_its_set, ["a", "b"], {"leak": ("leak",), "good": ("good",)}, prep,
                         np.hstack(list(inputs.values())), y, groups, 3, 0, kind, metric)
    alone = _choose(inputs, y, groups, 3, 0, kind, metric)
    assert choice.sets == {"a": alone, "b": alone}
    assert choice.rule_scores == {4: round(alone[2], 6)}


def test_clips_of_one_recording_leave_the_first_set_and_the_default_rule_unscored(tuned_pca_rules):
    from acoustic_env.learn.feature_sets import SetChoice, choose_sets

    x, y, _, prep = _faint_direction()
    one = np.zeros(len(y), dtype=object)  # nothing to fold by
    assert prep.rules(len(y)) == (4, 1)  # two rules worth trying on every row
    choice = choose_sets(_reads_its_set, ["a"], {ALL: ("wide",), "again": ("wide",)}, prep, x, y, one, 3, 0,
                         "single_label")
    assert choice == SetChoice(4, {}, {"a": (ALL, {}, None)})


def test_a_rule_that_changes_no_score_leaves_the_default_one(tuned_pca_rules):
    """Two rules that score alike: the preprocessing's own rule stays (the default's, or the one it was given)."""
    from acoustic_env.learn.feature_sets import choose_sets

    x, y, groups, prep = _faint_direction()
    for own in (prep, prep.with_rule(1)):
        choice = choose_sets(lambda m, p: _Reads(slice(119, 120)), ["a"], {ALL: ("wide",)}, own, x, y, groups, 3, 0,
                             "single_label")
        assert len(set(choice.rule_scores.values())) == 1 and choice.rule == own.rule
        assert list(choice.rule_scores) == list(own.rules(80))


def test_the_rules_tried_are_those_that_cut_a_target_on_the_smallest_grouped_inner_fit(tuned_pca_rules):
    """One recording of 24 clips beside 12 of one clip each: an inner fit without the long recording has 8 rows,
    where the default rule keeps fewer components than the group's target of 5, so the other rule is tried too
    (on all 36 rows it would not be)."""
    from acoustic_env.learn.feature_sets import choose_sets

    rng = np.random.default_rng(0)
    groups = np.array(["long"] * 24 + [f"clip{i}" for i in range(12)], dtype=object)
    y = np.arange(36) % 2
    x = (rng.standard_normal((36, 8)) + y[:, None]).astype(np.float32)
    prep = Preprocessing((Slot("g", 0, 8, 5),))
    assert prep.rules(36) == (4,) and prep.rules(8) == (4, 1)
    choice = choose_sets(lambda m, p: _Reads(slice(0, 1)), ["a"], {ALL: ("g",), "again": ("g",)}, prep, x, y,
                         groups, 3, 0, "single_label")
    assert set(choice.rule_scores) == {4, 1}


@pytest.mark.slow
def test_a_saved_mlp_beside_a_logistic_regression_weighs_each_ones_own_components(tmp_path: Path, tuned_pca_rules):
    """``--saved-model mlp`` (or the MLP as the chosen model): the logistic regression refitted on all clips for its
    importances reads the saved MLP's groups through a PCA of its own, its count rule chosen on its own inner folds;
    its coefficients are weighed on its own components (the MLP's stopped train with a broadcast error once)."""
    table = synthetic_features(60, seed=3, embedders=("vggish",), weights=PRETRAINED, signals=("raw",)).table
    cfg = from_dict(TrainConfig, {"features": write_features(table, str(tmp_path / "t")), "output": str(tmp_path / "o"),
                                  "cv_folds": 3, "tuning_folds": 2, "tuning_trials": 1, "baselines": ["logreg"],
                                  "saved_model": "mlp", "ablations": False, "shap_samples": 0, "progress": False})
    result = train(cfg)
    assert result.evaluation["saved_model"] == "mlp"
    weights = json.loads((Path(result.report).with_name("metrics.json")).read_text())["importances"]["logreg"]
    assert weights["features"] and all(np.isfinite(value) for _, value in weights["features"] + weights["components"])
