"""Calibrated probabilities (``learn.calibrate``): the maps equal scikit-learn's, the choice is cross-fitted on inner
folds, and a calibrated zoo model saves and loads with its map."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from acoustic_env.learn import calibrate
from acoustic_env.learn.portable import from_zoo
from acoustic_env.learn.search import SearchPlan, inner_splits
from acoustic_env.learn.zoo import make_estimator


def _overconfident(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two-class probabilities far more extreme than the truth: the true logit tripled."""
    rng = np.random.default_rng(seed)
    logit = rng.normal(0, 1.5, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    p1 = 1 / (1 + np.exp(-3 * logit))
    return np.stack([1 - p1, p1], axis=1), y


def test_the_maps_are_scikit_learns():
    proba, y = _overconfident()
    platt = calibrate.fit("platt", proba, y, "single_label", np.array([0, 1]))
    lr = LogisticRegression(C=1e4).fit(calibrate._logit(proba[:, 1])[:, None], y)
    assert np.allclose(platt(proba)[:, 1], lr.predict_proba(calibrate._logit(proba[:, 1])[:, None])[:, 1], atol=1e-12)
    iso = calibrate.fit("isotonic", proba, y, "single_label", np.array([0, 1]))
    ref = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(proba[:, 1], y)
    probe = np.stack([1 - np.linspace(-0.1, 1.1, 57), np.linspace(-0.1, 1.1, 57)], axis=1)
    assert np.allclose(iso(probe)[:, 1], ref.predict(probe[:, 1]), atol=1e-12)
    assert np.allclose(iso(proba).sum(axis=1), 1) and np.allclose(platt(proba).sum(axis=1), 1)


def test_three_classes_are_mapped_one_by_one_then_normalised():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 300)
    raw = np.eye(3)[y] * 2 + rng.random((300, 3))
    proba = raw / raw.sum(axis=1, keepdims=True)
    mapped = calibrate.fit("platt", proba, y, "single_label", np.arange(3))(proba)
    assert mapped.shape == (300, 3) and np.allclose(mapped.sum(axis=1), 1)
    labels = (rng.random((300, 2)) < 0.5).astype(int)
    multi = calibrate.fit("isotonic", rng.random((300, 2)), labels, "multi_label", np.arange(2))(rng.random((5, 2)))
    assert multi.shape == (5, 2) and not np.allclose(multi.sum(axis=1), 1)  # labels are not normalised


def test_the_choice_is_cross_fitted_and_keeps_good_probabilities():
    proba, y = _overconfident()
    groups = np.arange(len(y)) // 4
    splits = inner_splits(y, groups, 3, 0)
    chosen, losses = calibrate.choose(proba, y, "single_label", np.array([0, 1]), splits)
    assert chosen is not None and losses[chosen.method] < losses["none"]
    # already calibrated: the truth's own probabilities gain nothing from a map fitted on other rows
    rng = np.random.default_rng(3)
    p1 = rng.random(400)
    truth = (rng.random(400) < p1).astype(int)
    kept, losses = calibrate.choose(np.stack([1 - p1, p1], 1), truth, "single_label", np.array([0, 1]), splits)
    assert kept is None, losses


@pytest.mark.parametrize("model", ["logreg", "xgboost"])
def test_a_calibrated_zoo_model_saves_and_loads_with_its_map(model):
    rng = np.random.default_rng(2)
    n = 160
    y = np.arange(n) % 2
    x = rng.standard_normal((n, 6)) + 0.8 * y[:, None] * (np.arange(6) < 2)
    flip = rng.random(n) < 0.2  # noisy labels: the trees grow overconfident
    y = np.where(flip, 1 - y, y)
    fitted = make_estimator(model, "single_label", 2, 0, 1, SearchPlan(1, 3), calibrate=True).fit(
        x, y, groups=np.arange(n) // 4)
    assert set(fitted.calibration_losses_) == {"none", "platt", "isotonic"}
    if model == "xgboost":
        assert fitted.calibration_ is not None  # overconfident trees are mapped
    saved = from_zoo(fitted)
    assert np.allclose(saved.predict_proba(x), fitted.predict_proba(x), atol=1e-9)
    assert (fitted.calibration_ is None) == ("calibration" not in saved.spec)
    uncalibrated = make_estimator(model, "single_label", 2, 0, 1, SearchPlan(1, 3)).fit(x, y, groups=np.arange(n) // 4)
    assert uncalibrated.calibration_ is None  # only when asked: the inner fits of a search never calibrate


def test_a_map_that_would_reverse_the_ranking_is_never_chosen():
    """Inner probabilities that disagree with their targets (an early-stopped network on a few dozen clips) would
    give Platt a negative slope: applied to the model fitted on every row, it would turn a good ranking upside
    down. Such a map is no candidate."""
    proba, y = _overconfident()
    reversed_ = proba[:, ::-1].copy()
    with pytest.raises(calibrate.NotIncreasing):
        calibrate.fit("platt", reversed_, y, "single_label", np.array([0, 1]))
    splits = inner_splits(y, np.arange(len(y)) // 4, 3, 0)
    chosen, losses = calibrate.choose(reversed_, y, "single_label", np.array([0, 1]), splits)
    assert losses["platt"] is None and (chosen is None or chosen.method == "isotonic")
    if chosen is not None:  # isotonic is increasing by construction: it can flatten, never reverse
        grid = np.linspace(0, 1, 21)
        assert np.all(np.diff(chosen(np.stack([1 - grid, grid], 1))[:, 1]) >= 0)


def test_inner_probabilities_that_rank_no_better_than_chance_get_no_map():
    """A map learnt from inner models that rank the rows at chance (or worse) would flatten the final model's good
    ranking into the class rates: none is tried."""
    proba, y = _overconfident()
    splits = inner_splits(y, np.arange(len(y)) // 4, 3, 0)
    chosen, losses = calibrate.choose(proba[:, ::-1].copy(), y, "single_label", np.array([0, 1]), splits)
    assert chosen is None and losses["platt"] is None and losses["isotonic"] is None
