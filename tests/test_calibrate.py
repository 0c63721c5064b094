"""Calibrated probabilities (``learn.calibrate``): the maps equal scikit-learn's, the choice is cross-fitted on inner
folds, and a calibrated zoo model saves and loads with its map."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from acoustic_env.learn import calibrate
from acoustic_env.learn.portable import from_zoo
from acoustic_env.learn.tuning import TuningPlan, inner_splits
from acoustic_env.learn.zoo import make_estimator


def _overconfident(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two-class probabilities far more extreme than the truth: the true logit tripled."""
    rng = np.random.default_rng(seed)
    logit = rng.normal(0, 1.5, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    p1 = 1 / (1 + np.exp(-3 * logit))
    return np.stack([1 - p1, p1], axis=1), y


def test_the_maps_are_scikit_learns_platts_within_what_its_prior_moves_on_400_rows():
    proba, y = _overconfident()
    platt = calibrate.fit("platt", proba, y, "single_label", np.array([0, 1]))
    lr = LogisticRegression(C=1e4).fit(calibrate._logit(proba[:, 1])[:, None], y)
    gap = np.abs(platt(proba)[:, 1] - lr.predict_proba(calibrate._logit(proba[:, 1])[:, None])[:, 1])
    assert 1e-5 < gap.max() < 5e-3  # the prior is worth about one clip against 400
    assert np.allclose(platt(proba)[:, 1], _reference_map("platt", proba[:, 1], y)(proba[:, 1]), atol=1e-6)
    iso = calibrate.fit("isotonic", proba, y, "single_label", np.array([0, 1]))
    ref = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(proba[:, 1], y)
    probe = np.stack([1 - np.linspace(-0.1, 1.1, 57), np.linspace(-0.1, 1.1, 57)], axis=1)
    assert np.allclose(iso(probe)[:, 1], ref.predict(probe[:, 1]), atol=1e-12)
    assert np.allclose(iso(proba).sum(axis=1), 1) and np.allclose(platt(proba).sum(axis=1), 1)


def test_a_few_rows_the_inner_models_happen_to_separate_give_a_moderate_slope_not_a_certainty():
    """40 inner rows whose probabilities separate the classes: the most likely slope has no bound (scikit-learn's C
    of 1e4 stops it at 17), a map that makes every clip of another split sure; the prior holds it near the data's own
    scale, and a clip of the other class just past the boundary then costs a log loss of about 1, not 7."""
    rng = np.random.default_rng(4)
    y = np.repeat([0, 1], 20)
    p1 = np.where(y == 1, rng.uniform(0.55, 0.95, 40), rng.uniform(0.05, 0.45, 40))
    proba = np.stack([1 - p1, p1], axis=1)
    wrong = np.array([[0.4, 0.6]])  # a clip of class 0 at 0.6
    lr = LogisticRegression(C=1e4).fit(calibrate._logit(p1)[:, None], y)
    platt = calibrate.fit("platt", proba, y, "single_label", np.array([0, 1]))
    assert lr.coef_[0, 0] > 10 and 1 < platt.arrays["a"][0] < 4, (lr.coef_, platt.arrays)
    assert -np.log(lr.predict_proba(calibrate._logit(wrong[:, 1:]))[0, 0]) > 5
    assert -np.log(platt(wrong)[0, 0]) < 1.5


def test_the_priors_weight_is_the_one_the_map_is_fitted_under(monkeypatch):
    """On 40 rows the prior matters: whatever its weight, the map is the most likely under it (another solver's)."""
    proba, y = _overconfident(40, seed=6)
    for weight in (0.25, 4.0):
        monkeypatch.setattr(calibrate, "PRIOR", weight)
        platt = calibrate.fit("platt", proba, y, "single_label", np.array([0, 1]))
        assert np.allclose(platt(proba)[:, 1], _reference_map("platt", proba[:, 1], y)(proba[:, 1]), atol=1e-6)


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
    # the recorded loss is that of the cross-fitted probabilities returned, to the 6 decimals of the model's own
    best, mapped, _ = calibrate.cross_fitted(proba, y, "single_label", np.array([0, 1]), splits)
    assert best == chosen.method and losses[best] == round(calibrate.log_loss(mapped, y, "single_label"), 6)
    # already calibrated: the truth's own probabilities gain nothing from a map fitted on other rows
    rng = np.random.default_rng(3)
    p1 = rng.random(400)
    truth = (rng.random(400) < p1).astype(int)
    kept, losses = calibrate.choose(np.stack([1 - p1, p1], 1), truth, "single_label", np.array([0, 1]), splits)
    assert kept is None, losses


@pytest.mark.parametrize("model", ["logreg", "xgboost", "mlp"])
def test_a_calibrated_zoo_model_saves_and_loads_with_its_map(model):
    rng = np.random.default_rng(2)
    n = 160
    y = np.arange(n) % 2
    x = rng.standard_normal((n, 6)) + 0.8 * y[:, None] * (np.arange(6) < 2)
    flip = rng.random(n) < 0.2  # noisy labels: the trees grow overconfident
    y = np.where(flip, 1 - y, y)
    fitted = make_estimator(model, "single_label", 2, 0, 1, TuningPlan(1, 3), calibrate=True).fit(
        x, y, groups=np.arange(n) // 4)
    assert set(fitted.calibration_losses_) == {"none", "platt", "isotonic"}
    if model == "xgboost":
        assert fitted.calibration_ is not None  # overconfident trees are mapped
    saved = from_zoo(fitted)
    assert np.allclose(saved.predict_proba(x), fitted.predict_proba(x), atol=1e-9)
    assert (fitted.calibration_ is None) == ("calibration" not in saved.spec)
    uncalibrated = make_estimator(model, "single_label", 2, 0, 1, TuningPlan(1, 3)).fit(x, y, groups=np.arange(n) // 4)
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


def _reference_map(method: str, p: np.ndarray, t: np.ndarray):
    """The map of one class column as stated, by other code: Platt's logistic regression on the logit (of p clipped
    1e-6 from 0 and 1, computed here) at the most likely slope and intercept under the prior toward (1, 0), found by
    a solver of another kind (Nelder-Mead, no gradient); or scikit-learn's isotonic regression."""
    def logit(q: np.ndarray) -> np.ndarray:
        q = np.clip(q, 1e-6, 1 - 1e-6)
        return np.log(q) - np.log1p(-q)

    if method == "platt":
        s = logit(p)

        def loss(w: np.ndarray) -> float:
            z = w[0] * s + w[1]
            return float(np.sum(np.logaddexp(0, z) - t * z) + calibrate.PRIOR * ((w[0] - 1) ** 2 + w[1] ** 2))

        a, b = minimize(loss, np.array([1.0, 0.0]), method="Nelder-Mead",
                        options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 20000}).x
        return lambda q: 1 / (1 + np.exp(-(a * logit(q) + b)))
    return IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(p, t).predict


def test_the_log_loss_is_scikit_learns_and_a_saturated_probability_costs_minus_log_eps():
    from sklearn.metrics import log_loss

    rng = np.random.default_rng(4)
    y = rng.integers(0, 3, 50)
    proba = rng.dirichlet(np.ones(3), 50)
    assert np.isclose(calibrate.log_loss(proba, y, "single_label"), log_loss(y, proba, labels=[0, 1, 2]))
    labels = (rng.random((50, 2)) < 0.5).astype(int)
    p = rng.random((50, 2))
    assert np.isclose(calibrate.log_loss(p, labels, "multi_label"), log_loss(labels.ravel(), p.ravel()))
    # a network's float32 softmax saturates to exactly 0 and 1: sure and wrong costs -log(1e-6) a value, not inf
    sure = np.array([[1.0, 0.0], [0.0, 1.0]])
    for kind, wrong in (("single_label", np.array([1, 0])), ("multi_label", np.array([[0, 1], [1, 0]]))):
        assert np.isclose(calibrate.log_loss(sure, wrong, kind), -np.log(1e-6)), kind
    assert calibrate.log_loss(sure, np.array([[1, 0], [0, 1]]), "multi_label") < 1e-5


def test_platt_reads_saturated_probabilities_as_a_millionth_from_0_and_1():
    proba, y = _overconfident()
    proba[:40] = np.round(proba[:40])  # saturated: exactly 0 and 1
    platt = calibrate.fit("platt", proba, y, "single_label", np.array([0, 1]))
    assert np.allclose(platt(proba)[:, 1], _reference_map("platt", proba[:, 1], y)(proba[:, 1]), atol=1e-6)
    assert platt.describe() == {"method": "platt", "columns": [1], "points": 1}  # what model.json records


def test_each_class_the_model_knows_is_mapped_as_scikit_learn_maps_it_then_each_row_sums_to_one():
    """A three-class model whose training rows held classes 0 and 1 only: both are mapped (class 0 too), class 2
    keeps its probability, and each row is divided by its sum, whatever that sum."""
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 300)
    raw = np.eye(3)[y] * 1.5 + rng.random((300, 3))
    proba = raw / raw.sum(axis=1, keepdims=True)
    for method in ("platt", "isotonic"):
        mapped = calibrate.fit(method, proba, y, "single_label", np.array([0, 1]))(proba)
        by_class = np.column_stack([*(_reference_map(method, proba[:, c], y == c)(proba[:, c]) for c in (0, 1)),
                                    proba[:, 2]])
        assert np.allclose(mapped, by_class / by_class.sum(axis=1, keepdims=True), atol=1e-6), method


def test_a_clip_every_class_map_sends_to_zero_gets_even_odds():
    """A clip unlike the training clips of every class (each map gives 0): 1/3 each, never NaN or one class."""
    rng = np.random.default_rng(7)
    y = np.arange(300) % 3
    given = rng.uniform(0.55, 0.7, 300)  # each clip's class, then the class after it taken for it up to 0.45
    confused = rng.uniform(0.3, 1 - given)
    proba = np.zeros((300, 3))
    proba[np.arange(300), y], proba[np.arange(300), (y + 1) % 3] = given, confused
    proba[np.arange(300), (y + 2) % 3] = 1 - given - confused
    iso = calibrate.fit("isotonic", proba, y, "single_label", np.arange(3))
    assert iso.describe() == {"method": "isotonic", "columns": [0, 1, 2], "points": iso.arrays["x"].size}
    assert np.allclose(iso(np.array([[0.34, 0.33, 0.33]])), 1 / 3)
    # clips between two classes: each class's map divided by their sum, here below 1
    between = np.linspace(0.4, 0.6, 21)
    probe = np.column_stack([between, 0.98 - between, np.full(21, 0.02)])
    by_class = np.column_stack([_reference_map("isotonic", proba[:, c], y == c)(probe[:, c]) for c in range(3)])
    total = by_class.sum(axis=1, keepdims=True)
    assert ((total > 0) & (total < 1)).sum() > 5
    assert np.allclose(iso(probe)[total[:, 0] > 0], (by_class / total)[total[:, 0] > 0])


def test_each_label_is_mapped_on_its_own_and_a_clips_labels_do_not_sum_to_one():
    """Multi-label: every label's column mapped as scikit-learn maps it (the first label too), rows not normalised;
    label 0 is positive on every clip but the one it scores lowest, a step just above that clip."""
    rng = np.random.default_rng(6)
    p = np.linspace(0.05, 0.95, 200)
    proba = np.column_stack([p, rng.permutation(p)])
    labels = np.column_stack([p > 0.051, rng.random(200) < proba[:, 1] ** 2]).astype(int)
    probe = np.column_stack([np.r_[0.052, np.linspace(0, 1, 41)]] * 2)
    for method in ("platt", "isotonic"):
        mapped = calibrate.fit(method, proba, labels, "multi_label", np.arange(2))(probe)
        expected = np.column_stack([_reference_map(method, proba[:, j], labels[:, j])(probe[:, j]) for j in (0, 1)])
        assert np.allclose(mapped, expected, atol=1e-6), method


def _folds(n: int, k: int = 3) -> list[tuple[np.ndarray, np.ndarray]]:
    rows = np.arange(n)
    return [(rows[rows % k != f], rows[rows % k == f]) for f in range(k)]


def test_a_multi_label_model_is_calibrated_per_label_by_the_mean_binary_log_loss():
    """Two overconfident labels and one on every clip (no ranking to check there): a map is chosen, the losses are
    multi-label ones, and the map refitted on every row keeps the labels apart."""
    (a, ya), (b, yb) = _overconfident(seed=0), _overconfident(seed=1)
    proba = np.column_stack([a[:, 1], b[:, 1], np.full(len(ya), 0.9)])
    labels = np.column_stack([ya, yb, np.ones_like(ya)])
    chosen, losses = calibrate.choose(proba, labels, "multi_label", np.arange(3), _folds(len(ya)))
    assert losses["none"] == round(calibrate.log_loss(proba, labels, "multi_label"), 6)
    assert chosen is not None and losses[chosen.method] < losses["none"]
    refit = calibrate.fit(chosen.method, proba, labels, "multi_label", np.arange(3))
    assert np.allclose(chosen(proba), refit(proba)) and not np.allclose(chosen(proba).sum(axis=1), 1)


def test_probabilities_that_rank_nothing_or_rows_of_one_class_get_no_map():
    """Every clip given the same probability (ranks at exactly chance), or inner rows all of one class: nothing to
    learn a map from, though an isotonic map of the class rate would lower the log loss of the flat ones."""
    y = (np.arange(120) % 10 < 3).astype(int)
    flat = np.full((120, 2), 0.5)
    assert calibrate.choose(flat, y, "single_label", np.array([0, 1]), _folds(120)) == (
        None, {"none": round(np.log(2), 6), "platt": None, "isotonic": None})
    proba, _ = _overconfident(120)
    chosen, losses = calibrate.choose(proba, np.zeros(120, int), "single_label", np.array([0, 1]), _folds(120))
    assert chosen is None and losses["platt"] is None and losses["isotonic"] is None


def test_a_rare_class_counts_in_the_ranking_check_and_a_class_ranked_backwards_rules_platt_out():
    """Two common classes ranked a little backwards and a class of one clip ranked first: their mean AUC is above
    chance, so maps are tried; Platt would reverse the common classes (no loss), isotonic is tried."""
    rng = np.random.default_rng(8)
    y = np.r_[np.arange(119) % 2, 2]
    scores = rng.normal(0, 1, (120, 3)) - 0.6 * np.eye(3)[y]
    scores[:, 2] = np.where(y == 2, 3.0, -3.0)
    proba = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
    aucs = [roc_auc_score(y == c, proba[:, c]) for c in range(3)]
    assert max(aucs[:2]) < 0.45 and aucs[2] == 1.0 and np.mean(aucs) > 0.5  # the case described
    chosen, losses = calibrate.choose(proba, y, "single_label", np.arange(3), _folds(120))
    assert losses["platt"] is None and losses["isotonic"] is not None


def test_across_the_outer_folds_each_folds_map_is_chosen_on_the_other_folds_only():
    """A model with no map of its own (the CNN): each fold's rows mapped by the map chosen on the other folds'
    out-of-fold probabilities, so a fold's labels never reach its own map; an overconfident model's log loss falls.
    Below three folds, one fold is left to choose on: nothing is mapped."""
    proba, y = _overconfident()
    folds = np.arange(len(y)) % 5
    mapped, records = calibrate.across_folds(proba, y, "single_label", folds)
    assert [r["fold"] for r in records] == [0, 1, 2, 3, 4] and {r["method"] for r in records} <= {"platt", "isotonic"}
    assert calibrate.log_loss(mapped, y, "single_label") < 0.9 * calibrate.log_loss(proba, y, "single_label")
    for r in records:  # every method's loss on the other folds, as choose gives it
        rest = folds != r["fold"]
        assert r["log_loss"] == calibrate.outer_map(proba[rest], y[rest], "single_label", folds[rest])[1]
    relabelled = np.where(folds == 2, 1 - y, y)  # fold 2's labels changed: its own rows map as before
    again, _ = calibrate.across_folds(proba, relabelled, "single_label", folds)
    np.testing.assert_array_equal(again[folds == 2], mapped[folds == 2])
    assert not np.allclose(again[folds != 2], mapped[folds != 2])
    two, kept = calibrate.across_folds(proba, y, "single_label", folds % 2)
    np.testing.assert_array_equal(two, proba)
    assert kept == [{"fold": 0, "method": "none", "log_loss": None}, {"fold": 1, "method": "none", "log_loss": None}]


def test_the_saved_models_outer_map_is_chosen_on_every_fold_over_the_classes_present():
    """All folds' rows, cross-fitted over the folds; a class absent from the rows is not mapped (three classes, the
    middle one absent: the columns 0 and 2); one fold: no map."""
    proba, y = _overconfident()
    folds = np.arange(len(y)) % 5
    calibrator, losses = calibrate.outer_map(proba, y, "single_label", folds)
    want, want_losses = calibrate.choose(proba, y, "single_label", np.array([0, 1]),
                                         [(np.flatnonzero(folds != k), np.flatnonzero(folds == k)) for k in range(5)])
    assert calibrator.method == want.method and losses == want_losses
    np.testing.assert_array_equal(calibrator(proba), want(proba))
    assert calibrate.outer_map(proba, y, "single_label", np.zeros(len(y), int)) == (None, None)
    assert calibrate.fitted_classes(np.array([0, 2, 2, 0]), "single_label").tolist() == [0, 2]
    assert calibrate.fitted_classes(np.array([[1, 0, 1, 0], [1, 1, 0, 0]]), "multi_label").tolist() == [1, 2]
    three = np.stack([proba[:, 0] * 0.9, np.full(len(y), 0.1), proba[:, 1] * 0.9], axis=1)
    mapped = calibrate.outer_map(three, y * 2, "single_label", folds)[0]
    assert mapped.columns.tolist() == [0, 2]
    three_folds, kept = calibrate.across_folds(proba, y, "single_label", np.arange(len(y)) % 3)
    assert [r["method"] for r in kept] == ["platt"] * 3  # two folds left to choose on: enough for a map
    assert calibrate.outer_map(proba, y, "single_label", np.arange(len(y)) % 2)[0].method == "platt"


def test_a_multi_label_models_outer_map_is_per_label_over_the_labels_that_vary():
    """Three labels, the middle one never on: labels 0 and 2 are mapped (each its own map, the rows not summing to
    one), label 1 keeps its probabilities, in every fold and in the saved map."""
    first, y0 = _overconfident(seed=1)
    last, y2 = _overconfident(seed=2)
    proba = np.stack([first[:, 1], np.full(len(y0), 0.02), last[:, 1]], axis=1)
    y = np.stack([y0, np.zeros_like(y0), y2], axis=1)
    folds = np.arange(len(y0)) % 3
    mapped, records = calibrate.across_folds(proba, y, "multi_label", folds)
    assert {r["method"] for r in records} <= {"platt", "isotonic"}
    np.testing.assert_array_equal(mapped[:, 1], proba[:, 1])
    assert not np.allclose(mapped[:, [0, 2]], proba[:, [0, 2]]) and not np.allclose(mapped.sum(axis=1), 1)
    saved = calibrate.outer_map(proba, y, "multi_label", folds)[0]
    assert saved.columns.tolist() == [0, 2] and saved.kind == "multi_label"

