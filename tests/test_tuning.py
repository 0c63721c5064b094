"""Every model's own search (``learn.tuning``): grouped CV on the rows being fitted, nested inside the outer folds.

The done-when of issue 24: no search ever scores a trial on a clip of the fold
that evaluates it, for logistic regression's C, xgboost and the MLP. The clip
index rides along as feature 0, so every trial fit records exactly which clips
it was fitted on and which it was scored on.
"""

from __future__ import annotations

import numpy as np
import pytest

from acoustic_env.learn import cv as cv_module
from acoustic_env.learn.cv import cross_validate
from acoustic_env.learn.portable import from_zoo
from acoustic_env.learn.tuning import TuningPlan, grouped_tuning, inner_splits
from acoustic_env.learn.splits import assign_folds
from acoustic_env.candidates import SPACES
from acoustic_env.candidates.space import Space, one_of
from acoustic_env.learn.zoo import PARAMS, ZooClassifier, make_estimator


def _clips(n: int = 96, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Column 0 is the clip's index (a feature like any other, but it names the clip); groups of 4 clips."""
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n) % 2)
    signal = rng.standard_normal((n, 4)) + 1.5 * y[:, None] * (np.arange(4) < 2)
    return np.column_stack([np.arange(n), signal]).astype(np.float32), y, np.array([f"rec{i // 4}" for i in range(n)])


@pytest.fixture
def spied(monkeypatch):
    """Every trial fit of every search: the searching model, the clips fitted on, the clips scored on."""
    trials: list[dict] = []
    real = ZooClassifier._candidate

    def candidate(self, overrides):
        model = real(self, overrides)
        fit, proba = model.fit, model.predict_proba
        entry = {"owner": self, "overrides": overrides}

        def spy_fit(x, y, **kw):
            entry["fitted"] = x[:, 0].astype(int)
            return fit(x, y, **kw)

        def spy_proba(x):
            entry["scored"] = x[:, 0].astype(int)
            trials.append(dict(entry))
            return proba(x)

        model.fit, model.predict_proba = spy_fit, spy_proba
        return model

    monkeypatch.setattr(ZooClassifier, "_candidate", candidate)
    return trials


@pytest.mark.slow
@pytest.mark.parametrize("name", ["logreg", "xgboost", "mlp"])
def test_no_search_scores_a_trial_on_a_clip_of_the_fold_that_evaluates_it(name, spied, monkeypatch):
    # the MLP's trials for two rounds, not twenty: which clips each fit and score saw is the point, not what it learns
    monkeypatch.setitem(PARAMS, "mlp", {**PARAMS["mlp"], "max_rounds": 2})
    x, y, groups = _clips()
    folds = assign_folds(y, groups, ("a", "b"), 4, seed=1, field="cv_folds")
    outer: list[tuple[ZooClassifier, set[int]]] = []
    real = cv_module.make_estimator

    def recorded(*a, **kw):
        outer.append((real(*a, **kw), set()))
        return outer[-1][0]

    monkeypatch.setattr(cv_module, "make_estimator", recorded)
    train_sets = [np.flatnonzero(folds != k) for k in np.unique(folds)]  # the outer folds' rows, in their order
    result = cross_validate(x, y, folds, "single_label", 2, [name], groups=groups,
                            search=TuningPlan(trials=2, inner_folds=2), threads=1)
    assert len(outer) == len(train_sets) == 4 and len(result.searches[name]) == 4
    for (est, _), rows in zip(outer, train_sets):
        evaluating = set(np.flatnonzero(folds == np.setdiff1d(np.unique(folds), folds[rows])[0]))
        record = est.tuning_
        assert record is not None and len(record.splits) == 2 and record.fits == 2 * len(record.trials)
        for fit_on, scored in record.splits:  # the recorded folds: positions into this fit's rows
            assert not set(rows[fit_on]) & evaluating and not set(rows[scored]) & evaluating
            assert not set(groups[rows[fit_on]]) & set(groups[rows[scored]])
        if name == "logreg":  # the C search runs inside LogisticRegressionCV on exactly those folds
            assert est.model_[-1].cv is record.splits and len(record.trials) == len(PARAMS["logreg"]["Cs"])
            continue
        mine = [t for t in spied if t["owner"] is est]
        assert len(mine) == 2 * 2  # 2 settings x 2 inner folds, each fitted and scored
        space, params = SPACES[name], est.params  # the defaults first, then a setting drawn from the space, each as
        if est.spec.regime is not None:  # the model's overrides; the MLP's space is what its way of fitting reads
            params, space = est.spec.regime(dict(params), space, len(rows))
        assert [t["overrides"] for t in mine[::2]] == [space.overrides(t["params"], params) for t in record.trials]
        assert record.trials[0]["params"] == space.defaults(params) != record.trials[1]["params"]
        for t in mine:  # the clips themselves, as the trial saw them
            assert set(t["fitted"]) <= set(rows) and set(t["scored"]) <= set(rows)
            assert not set(t["scored"]) & evaluating and not set(t["fitted"]) & evaluating
            assert not set(t["fitted"]) & set(t["scored"])
            assert not set(groups[t["fitted"]]) & set(groups[t["scored"]])


def test_the_search_keeps_the_best_setting_and_refits_it_on_all_rows():
    """xgboost on an XOR target over a space of 4 settings: one stump cannot learn it, trees of depth 4 can."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((160, 3)).astype(np.float32)
    y = ((x[:, 0] > 0) ^ (x[:, 1] > 0)).astype(int)
    groups = np.arange(160) // 2
    stumps = {"max_depth": 1, "n_estimators": 1}
    space = Space({"max_depth": one_of(1, 4), "n_estimators": one_of(1, 50)})
    record = grouped_tuning(lambda s: make_estimator("xgboost", "single_label", 2, threads=1, colsample_bytree=1.0,
                                                     **s), space, stumps, 6, x, y, groups, 3, seed=0,
                            kind="single_label")
    settings = [t["params"] for t in record.trials]  # 6 asked of a space of 4: each tried once, the defaults first
    assert settings[0] == stumps and len(settings) == 4 and record.asked == 6 and record.fits == 12
    assert sorted(map(str, settings)) == sorted(map(str, [{"max_depth": d, "n_estimators": n} for d in (1, 4)
                                                          for n in (1, 50)]))
    assert record.best == {"max_depth": 4, "n_estimators": 50} and record.trials[0]["score"] < 0.8
    assert max(t["score"] for t in record.trials) > 0.8
    assert grouped_tuning(lambda o: None, space, stumps, 1, x, y, groups, 3, 0, "single_label") is None  # one trial
    assert inner_splits(y, np.zeros(160), 3, 0) == []  # one group: no folds


@pytest.mark.slow
def test_a_searched_mlp_saves_the_network_it_chose(monkeypatch):
    """The portable form is built from the chosen network's own settings, not the defaults: a default network that
    cannot learn in 3 rounds (learning rate 1e-6) against the same space's others."""
    x, y, groups = _clips(80)
    still = {**PARAMS["mlp"]["network"], "depth": 2, "width": 8, "lr": 1e-6}
    monkeypatch.setitem(SPACES, "mlp", Space({"depth": one_of(2, 1), "width": one_of(8, 16), "lr": one_of(1e-6, 1e-2)},
                                             within="network"))
    # in rounds, as above full_batch_rows clips: a fit at once (L-BFGS) has no learning rate to get wrong
    fitted = make_estimator("mlp", "single_label", 2, threads=1, max_rounds=3, network=still, full_batch_rows=0,
                            search=TuningPlan(8, 2)).fit(x, y, groups=groups)
    best = fitted.tuning_.best
    assert best["lr"] == 1e-2 and fitted.params_["network"] == {**still, **best}
    saved = from_zoo(fitted)
    assert saved.spec["architecture"]["depth"] == best["depth"] and saved.spec["architecture"]["width"] == best["width"]
    np.testing.assert_allclose(saved.predict_proba(x), fitted.predict_proba(x), rtol=0, atol=1e-6)


def test_multi_label_inner_folds_follow_the_seed():
    """The same seed gives the same multi-label inner folds (a rerun repeats its search), another seed other ones;
    each fold is fitted on every other row and scored on its own, whole groups on one side."""
    rng = np.random.default_rng(3)
    target = (rng.random((60, 3)) < 0.4).astype(int)
    groups = np.repeat(np.arange(30), 2).astype(str)

    def folds(seed):
        return [scored.tolist() for _, scored in inner_splits(target, groups, 3, seed)]

    assert folds(0) == folds(0) and folds(0) != folds(1)
    for fit_on, scored in inner_splits(target, groups, 3, 0):
        assert sorted([*fit_on, *scored]) == list(range(60)) and not set(groups[fit_on]) & set(groups[scored])


def test_without_groups_nothing_is_searched():
    """The audit passes no groups: its models keep the defaults (cross-fitting needs no tuning)."""
    x, y, _ = _clips(64)
    fitted = make_estimator("xgboost", "single_label", 2, threads=1, search=TuningPlan(3, 2)).fit(x, y)
    assert fitted.tuning_ is None and fitted.params_ == PARAMS["xgboost"]
