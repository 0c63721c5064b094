"""The audit's cross-fitting (``jobs/audit/crossfit.py``), fast: the log loss it ranks models and feature sets by, the
calibration of every label, which model and set it keeps and what it hands the zoo, and the folds as Ray tasks.

The zoo is stood in for by models whose probabilities are known in advance (a sigmoid of the first column, as sure
of itself as asked), so every number the audit records can be worked out here; the real models run in
tests/test_audit.py (``test_auto_keeps_the_model_with_the_lowest_out_of_fold_log_loss``).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin

from acoustic_env.jobs.audit import crossfit
from acoustic_env.jobs.audit.crossfit import calibrated, choose_by_log_loss, choose_model_and_set, out_of_fold
from acoustic_env.learn.calibrate import EPS, log_loss

#: The stand-in zoo: how sure of itself each model is (the scale of its sigmoid).
SHARPNESS = {"logreg": 1.0, "mlp": 12.0, "xgboost": 3.0}


class _Sigmoid(ClassifierMixin, BaseEstimator):
    """P(class 1) = sigmoid(``sharpness`` x the first column), whatever it was fitted on."""

    def __init__(self, sharpness: float = 1.0, n_classes: int = 2, threads: int | None = None):
        self.sharpness, self.n_classes, self.threads = sharpness, n_classes, threads

    def fit(self, X: np.ndarray, y: np.ndarray) -> _Sigmoid:
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        p = 1 / (1 + np.exp(-self.sharpness * X[:, 0]))
        return np.column_stack([1 - p, p])


class _Share(ClassifierMixin, BaseEstimator):
    """Every clip gets the share of class 1 among the clips it was fitted on: each fold's model shows in its rows."""

    def __init__(self, n_classes: int = 2, threads: int | None = None):
        self.n_classes, self.threads = n_classes, threads

    def fit(self, X: np.ndarray, y: np.ndarray) -> _Share:
        self.share_ = float(np.mean(y))
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return np.tile([1 - self.share_, self.share_], (len(X), 1))


@pytest.fixture
def zoo(monkeypatch) -> list[tuple]:
    """The stand-in zoo in place of ``learn.zoo.make_estimator``; the calls it got (name, kind, classes, seed)."""
    calls: list[tuple] = []

    def make(name: str, kind: str, n_classes: int, seed: int = 0) -> _Sigmoid:
        calls.append((name, kind, n_classes, seed))
        return _Sigmoid(SHARPNESS[name], n_classes)

    monkeypatch.setattr(crossfit, "make_estimator", make)
    return calls


def clips(n: int = 120, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A column that predicts the labels (with noise), one that does not, the labels and 4 folds."""
    rng = np.random.default_rng(seed)
    signal = rng.standard_normal(n)
    y = (signal + rng.normal(0, 0.7, n) > 0).astype(np.int64)
    return signal[:, None], rng.standard_normal((n, 1)), y, np.arange(n) % 4


def test_the_log_loss_is_of_the_given_class_and_a_certain_mistake_costs_a_bounded_amount():
    """The loss the audit ranks by is calibration's (``learn.calibrate.log_loss``, one for both). Single-label: -log
    of the given class's probability, averaged; multi-label: the binary one over every cell. A probability of 0 (or 1)
    is taken as ``EPS`` from it, so one sure mistake costs -log(EPS), not infinity."""
    single = log_loss(np.array([[0.8, 0.2], [0.4, 0.6], [1.0, 0.0]]), np.array([0, 1, 1]), "single_label")
    assert single == pytest.approx(-(math.log(0.8) + math.log(0.6) + math.log(EPS)) / 3, rel=1e-12)
    multi = log_loss(np.array([[0.9, 1.0], [0.3, 0.0]]), np.array([[1, 0], [0, 1]]), "multi_label")
    # (1 - (1 - EPS) is EPS to nine digits in floating point)
    assert multi == pytest.approx(-(math.log(0.9) + math.log(EPS) + math.log(0.7) + math.log(EPS)) / 4, rel=1e-9)
    assert log_loss(np.array([[1.0, 0.0]]), np.array([[1, 0]]), "multi_label") == pytest.approx(-math.log(1 - EPS),
                                                                                                rel=1e-9)


def test_every_label_of_a_multi_label_task_is_calibrated():
    """Three labels, each model probability far surer than it is right: the map lowers every label's log loss, the
    third's too (the labels are the columns, not the values 0 and 1 found in the targets)."""
    rng = np.random.default_rng(2)
    targets = rng.integers(0, 2, (300, 3))
    probs = 1 / (1 + np.exp(-8 * (targets + rng.normal(0, 0.8, (300, 3)) - 0.5)))
    method, mapped = calibrated(probs, targets, "multi_label", np.arange(300) % 5)
    assert method in ("platt", "isotonic")
    for j in range(3):
        label = slice(j, j + 1)
        assert (log_loss(mapped[:, label], targets[:, label], "multi_label")
                < log_loss(probs[:, label], targets[:, label], "multi_label") - 0.1)


def test_auto_keeps_the_lowest_calibrated_log_loss_and_records_every_one(zoo):
    """Each model's out-of-fold probabilities under its own map, their average as one more candidate, every loss to
    six digits; ``auto`` keeps the lowest, a named model or ``average`` is kept as named."""
    X, _, y, folds = clips()
    names = ("logreg", "mlp")
    chosen, probs, losses, maps = choose_by_log_loss(names, "single_label", 2, 7, X, y, folds)
    assert zoo == [("logreg", "single_label", 2, 7), ("mlp", "single_label", 2, 7)]
    mapped = {n: calibrated(_Sigmoid(SHARPNESS[n]).predict_proba(X), y, "single_label", folds) for n in names}
    assert maps == {n: mapped[n][0] for n in names} and maps["mlp"] != "none"
    average = (mapped["logreg"][1] + mapped["mlp"][1]) / 2
    expected = {n: log_loss(p, y, "single_label") for n, p in
                (("logreg", mapped["logreg"][1]), ("mlp", mapped["mlp"][1]), ("average", average))}
    assert losses == {n: round(v, 6) for n, v in expected.items()} and losses != {n: round(v, 7) for n, v in
                                                                                 expected.items()}
    assert len(set(losses.values())) == 3 and chosen == min(losses, key=losses.get)
    np.testing.assert_allclose(probs, {**{n: mapped[n][1] for n in names}, "average": average}[chosen])
    named, probs, _, _ = choose_by_log_loss(names, "single_label", 2, 7, X, y, folds, requested="mlp")
    assert named == "mlp" and np.allclose(probs, mapped["mlp"][1])
    named, probs, _, _ = choose_by_log_loss(names, "single_label", 2, 7, X, y, folds, requested="average")
    assert named == "average" and np.allclose(probs, average)
    alone = choose_by_log_loss(("xgboost",), "single_label", 2, 7, X, y, folds)
    assert alone[0] == "xgboost" and list(alone[2]) == ["xgboost"]  # one model: no average to compare


def test_a_multi_label_models_labels_are_calibrated_as_labels(zoo):
    """Multi-label targets (a 0/1 column per label) reach the calibration as such: each model's map is the one of its
    labels (a single-label map would read the matrix as class indices)."""
    X, _, y, folds = clips()
    targets = np.column_stack([np.random.default_rng(3).integers(0, 2, len(y)), y])
    _, probs, _, maps = choose_by_log_loss(("mlp",), "multi_label", 2, 7, X, targets, folds)
    method, mapped = calibrated(_Sigmoid(SHARPNESS["mlp"]).predict_proba(X), targets, "multi_label", folds)
    assert maps == {"mlp": method} and method != "none" and np.allclose(probs, mapped)


@pytest.mark.parametrize("requested, probe", [("auto", "logreg"), ("average", "logreg"), ("mlp", "mlp")])
def test_the_feature_set_is_the_one_the_probe_predicts_best(zoo, requested, probe):
    """The probe model (logistic regression, or the model named) scores every set; the lowest log loss wins, listed
    last and not first by name; the models are then compared on that set alone."""
    good, noise, y, folds = clips()
    names = ("logreg", "mlp")
    chosen, feature_set, probs, losses, by_set, maps = choose_model_and_set(
        names, "single_label", 2, 7, {"all": noise, "birdnet": good}, y, folds, requested=requested)
    assert zoo[:2] == [(probe, "single_label", 2, 7)] * 2
    raw = {s: _Sigmoid(SHARPNESS[probe]).predict_proba(X) for s, X in (("all", noise), ("birdnet", good))}
    assert by_set == {s: round(log_loss(raw[s], y, "single_label"), 6) for s in raw}
    assert by_set["birdnet"] < by_set["all"] - 0.1
    assert feature_set == "birdnet"
    zoo.clear()
    assert (chosen, losses, maps) == tuple(choose_by_log_loss(names, "single_label", 2, 7, good, y, folds,
                                                              requested=requested)[i] for i in (0, 2, 3))


def test_a_multi_label_tasks_feature_sets_are_scored_by_the_binary_loss_of_every_label(zoo):
    """The sets of a multi-label task are compared by the mean binary log loss over every label (a single-label loss
    would read the 0/1 matrix as class indices)."""
    good, noise, y, folds = clips()
    targets = np.column_stack([1 - y, y])
    _, feature_set, _, _, by_set, _ = choose_model_and_set(("logreg",), "multi_label", 2, 7,
                                                            {"all": noise, "birdnet": good}, targets, folds)
    raw = {s: _Sigmoid(SHARPNESS["logreg"]).predict_proba(X) for s, X in (("all", noise), ("birdnet", good))}
    assert by_set == {s: round(log_loss(raw[s], targets, "multi_label"), 6) for s in raw}
    assert feature_set == "birdnet"


def test_one_feature_set_is_not_scored(zoo):
    good, _, y, folds = clips()
    chosen, feature_set, _, losses, by_set, _ = choose_model_and_set(("logreg",), "single_label", 2, 7,
                                                                     {"all": good}, y, folds)
    assert (chosen, feature_set, by_set, list(losses)) == ("logreg", "all", {}, ["logreg"])
    assert zoo == [("logreg", "single_label", 2, 7)]  # the model itself, no probe


def test_folds_as_ray_tasks_run_a_one_cpu_copy_on_each_fold(monkeypatch, zoo):
    """parallel="ray": one task per fold (Ray stood in for: tests/test_audit.py runs the real one), each fitting a
    one-thread copy of the model (Ray gives the task one CPU), the rows of each fold from its own task; the choice
    of set and model passes it on."""
    tasks: list = []

    def map_tasks(fn, items, **shared):
        tasks.append((list(items), shared["estimator"].threads))
        return [fn(k, **shared) for k in items]

    monkeypatch.setattr(crossfit, "map_tasks", map_tasks)
    good, noise, y, folds = clips()
    share = _Share(threads=4)
    by_ray = out_of_fold(share, good, y, folds, parallel="ray")
    assert tasks == [([0, 1, 2, 3], 1)] and share.threads == 4
    np.testing.assert_array_equal(by_ray, out_of_fold(share, good, y, folds))
    for k in range(4):  # each fold's rows from the model fitted without them
        np.testing.assert_array_equal(by_ray[folds == k, 1], np.mean(y[folds != k]))
    tasks.clear()
    choose_model_and_set(("logreg", "mlp"), "single_label", 2, 7, {"all": noise, "birdnet": good}, y, folds, "ray")
    assert len(tasks) == 4  # the probe on two sets, then each model
