"""The logistic regressions as candidates (``candidates/linear.py``): what ``build`` makes of their settings, what
``record_tuning`` reads back from a fitted C search, and the one-value grids ``fixed`` turns a choice into.

The scorer the search uses is held to scikit-learn's in ``tests/test_linear_scorer.py``."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.multiclass import OneVsRestClassifier
from sklearn.preprocessing import StandardScaler

from acoustic_env.candidates.linear import ELASTICNET, LOGREG, build, fixed, neg_log_loss, record_tuning
from acoustic_env.candidates.spec import Build


def _build(**kw) -> Build:
    args = {"multi_label": False, "smallest_class": 10, "n_rows": 40, "n_features": 5, "seed": 3, "threads": 1,
            "inner_folds": 4, "splits": None}
    return Build(**{**args, **kw})


def _table(seed: int = 0, n: int = 48) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    x = rng.standard_normal((n, 5)) * [1.0, 3.0, 0.5, 2.0, 1.0] + np.outer(y, [1.5, 0.0, 0.4, 0.0, 0.0])
    return x, y, np.arange(n) // 4


def test_build_searches_c_on_the_given_folds_or_a_bounded_count_and_falls_back_below_two():
    """Given grouped inner folds the search uses exactly those; without, ``inner_folds`` bounded by the rarest
    class; below two folds a plain regression at ``fallback_C`` and the middle L1 share. lbfgs for L2 alone,
    saga with an L1 share; the settings, the seed and the scorer reach the estimator, behind a scaler (one
    regression per label for a multi-label task)."""
    splits = [(np.arange(0, 20), np.arange(20, 40)), (np.arange(20, 40), np.arange(0, 20)),
              (np.arange(10, 40), np.arange(0, 10))]
    p = {**LOGREG.params, "max_iter": 77, "class_weight": "balanced"}
    scaler, clf = build(p, _build(splits=splits)).steps[0][1], build(p, _build(splits=splits)).steps[1][1]
    assert isinstance(scaler, StandardScaler) and type(clf) is LogisticRegressionCV
    assert clf.cv is splits and clf.Cs == LOGREG.params["Cs"] and clf.l1_ratios == (0.0,)
    assert clf.solver == "lbfgs" and clf.scoring is neg_log_loss and clf.max_iter == 77
    assert clf.class_weight == "balanced" and clf.random_state == 3 and clf.use_legacy_attributes is False
    # one given split is searched as it is: a per-split search scores each inner split on its own preprocessing
    assert build(p, _build(splits=splits[:1])).steps[1][1].cv == splits[:1]
    assert build(p, _build(inner_folds=4, smallest_class=3)).steps[1][1].cv == 3  # the rarest class bounds it
    assert build(p, _build(inner_folds=2, smallest_class=9)).steps[1][1].cv == 2
    net = build(ELASTICNET.params, _build(inner_folds=2, smallest_class=2)).steps[1][1]
    assert type(net) is LogisticRegressionCV and net.solver == "saga" and net.l1_ratios == (0.0, 0.5, 1.0)
    assert net.Cs == ELASTICNET.params["Cs"] and net.random_state == 3
    quarters = {**ELASTICNET.params, "l1_ratios": [0.0, 0.25, 0.75, 1.0]}
    for params, solver, ratio in ((LOGREG.params, "lbfgs", 0.0), (ELASTICNET.params, "saga", 0.5),
                                  (quarters, "saga", 0.75)):
        for b in (_build(smallest_class=1), _build(splits=[])):  # one inner fold, or no split: nothing to choose on
            fallback = build({**params, "max_iter": 55, "class_weight": "balanced"}, b).steps[1][1]
            assert type(fallback) is LogisticRegression and fallback.C == params["fallback_C"]
            assert fallback.l1_ratio == ratio and fallback.solver == solver and fallback.max_iter == 55
            assert fallback.random_state == 3 and fallback.class_weight == "balanced"
    multi = build(LOGREG.params, _build(multi_label=True)).steps[1][1]
    assert isinstance(multi, OneVsRestClassifier) and type(multi.estimator) is LogisticRegressionCV


def _inner_score(x, y, train, test, **settings) -> float:
    """One C's score on one inner fold as the search computes it: the scaled rows, a fresh fit, the scorer."""
    scaled = StandardScaler().fit(x).transform(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = LogisticRegression(max_iter=5000, tol=1e-10, **settings).fit(scaled[train], y[train])
    return neg_log_loss(clf, scaled[test], y[test])


@pytest.mark.parametrize("params", [LOGREG.params, ELASTICNET.params, {**ELASTICNET.params, "l1_ratios": [0.0, 1.0]}],
                         ids=["logreg", "elasticnet", "two-shares"])
def test_the_search_record_is_each_settings_mean_inner_score_and_the_setting_chosen(params):
    """Every (C, L1 share) tried, each with its inner log-loss score averaged over the folds, checked against fresh
    fits of that setting on each fold; the chosen setting is the best of them; the L1 share is named only where
    several are searched. ``fixed`` turns the choice into one-value grids that search nothing."""
    x, y, groups = _table()
    splits = list(StratifiedGroupKFold(n_splits=3, shuffle=True, random_state=0).split(x, y, groups))
    p = {**params, "max_iter": 5000}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fitted = build({**p, "Cs": p["Cs"]}, _build(splits=splits)).fit(x, y)
    trials, best = record_tuning(fitted, p, len(splits))
    ratios = p["l1_ratios"]
    assert [t["params"] for t in trials] == [{"C": c, **({"l1_ratio": r} if len(ratios) > 1 else {})}
                                             for r in ratios for c in p["Cs"]]
    solver = "lbfgs" if max(ratios) == 0 else "saga"
    # each setting that learned something (above chance's log 2), against a fresh fit per fold: the path's warm
    # starts and saga's tolerance move an all-but-empty model's intercept by up to 0.02, a fitted one's by 1e-4
    learned = [t for t in trials if t["score"] > -0.69]
    assert len(learned) > len(trials) // 2
    for t in learned:
        settings = {"C": t["params"]["C"], "l1_ratio": t["params"].get("l1_ratio", 0.0), "solver": solver}
        want = np.mean([_inner_score(x, y, tr, te, **settings) for tr, te in splits])
        assert t["score"] == pytest.approx(want, abs=1e-3), t
    top = max(trials, key=lambda t: t["score"])
    assert best == top["params"] and all(isinstance(v, float) for v in best.values())
    assert best["C"] == fitted[-1].C_
    grids = fixed({**best, "other": 1})
    assert grids == {"Cs": [best["C"]], "fallback_C": best["C"], "other": 1,
                     **({"l1_ratios": [best["l1_ratio"]]} if "l1_ratio" in best else {})}
    assert fixed({"other": 1}) == {"other": 1}  # no C chosen (the fallback): nothing to fix
    assert fixed({"C": 0.5, "l1_ratio": 1.0}) == {"Cs": [0.5], "fallback_C": 0.5, "l1_ratios": [1.0]}
    # built with fewer than two inner folds (a per-split search's final fit), the fixed setting is the plain model
    plain = build(fixed({**LOGREG.params, "C": 0.5}), Build(False, 10, 40, 3, 0, 1, 1))[-1]
    assert type(plain).__name__ == "LogisticRegression" and plain.C == 0.5


def test_the_default_grids_are_half_decades_and_the_fallbacks_sit_inside_them():
    """logreg's C from 1e-4 to 0.1, the elastic net's from 1e-3 to 1, in half-decade steps as ``numpy.logspace``
    gives them; each fallback C is one of its grid's values, and the elastic net's middle L1 share is 0.5."""
    assert LOGREG.params["Cs"] == pytest.approx(np.logspace(-4, -1, 7).tolist(), rel=1e-12)
    assert ELASTICNET.params["Cs"] == pytest.approx(np.logspace(-3, 0, 7).tolist(), rel=1e-12)
    for spec in (LOGREG, ELASTICNET):
        assert np.isclose(spec.params["Cs"], spec.params["fallback_C"], rtol=1e-12).sum() == 1
    assert LOGREG.params["l1_ratios"] == [0.0] and ELASTICNET.params["l1_ratios"] == [0.0, 0.5, 1.0]
    assert LOGREG.default and not ELASTICNET.default and LOGREG.format == ELASTICNET.format == "linear"
