"""The estimator zoo: every model, single- and multi-label, always [n, n_classes] probabilities."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from acoustic_env.config import IMAGE_MODELS, ConfigError
from acoustic_env.candidates import PARAMS
from acoustic_env.learn.zoo import make_estimator

K = 3


def separable(n: int, multi_label: bool, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Clips around one centre per class (multi-label: the sum of their labels' centres), plus noise features."""
    rng = np.random.default_rng(seed)
    centres = 3.0 * np.eye(K, 8)
    if multi_label:
        y = (rng.random((n, K)) < 0.4).astype(np.int64)
        return y @ centres + 0.4 * rng.standard_normal((n, 8)), y
    y = rng.integers(0, K, n)
    return centres[y] + 0.4 * rng.standard_normal((n, 8)), y


@pytest.mark.parametrize("name", [n for n in PARAMS if n not in IMAGE_MODELS])  # the CNN's: test_cnn_train.py
@pytest.mark.parametrize("kind", ["single_label", "multi_label"])
def test_each_estimator_learns_each_kind(name, kind):
    x, y = separable(240, kind == "multi_label")
    model = make_estimator(name, kind, K, seed=0).fit(x[:160], y[:160])
    p = model.predict_proba(x[160:])
    assert p.shape == (80, K) and ((p >= 0) & (p <= 1)).all()
    if kind == "single_label":
        np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-6)
        assert (p.argmax(axis=1) == y[160:]).mean() >= 0.9
    else:
        assert ((p >= 0.5) == y[160:].astype(bool)).mean() >= 0.9


@pytest.mark.parametrize("name", ["logreg", "xgboost"])
def test_a_class_missing_from_the_training_rows_gets_probability_zero(name):
    x, y = separable(150, multi_label=False)
    keep = y != 1
    p = make_estimator(name, "single_label", K).fit(x[keep], y[keep]).predict_proba(x)
    assert p.shape == (150, K) and (p[:, 1] == 0).all()
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-6)
    one_class = make_estimator(name, "single_label", K).fit(x[y == 2], y[y == 2]).predict_proba(x[:4])
    assert (one_class == [0.0, 0.0, 1.0]).all()


@pytest.mark.parametrize("varying", [1, 2])
def test_a_constant_label_column_gets_its_training_rate(varying):
    x, y = separable(150, multi_label=True)
    y[:, varying:] = [1, 0, 0][varying:]  # columns from `varying` on never change in the training rows
    p = make_estimator("logreg", "multi_label", K).fit(x, y).predict_proba(x)
    assert p.shape == (150, K)
    np.testing.assert_allclose(p[:, varying:], np.tile(y[0, varying:], (150, 1)))
    assert ((p[:, :varying] >= 0.5) == y[:, :varying].astype(bool)).mean() >= 0.9


def test_xgboost_stops_early_on_the_eval_set_only_when_given_one():
    x, y = separable(300, multi_label=False, seed=1)
    y = np.where(np.random.default_rng(1).random(300) < 0.3, (y + 1) % K, y)  # noisy labels: the val loss turns up
    kwargs = {"n_estimators": 150, "learning_rate": 0.3, "early_stopping_rounds": 5}
    stopped = make_estimator("xgboost", "single_label", K, threads=1, **kwargs).fit(x[:200], y[:200],
                                                                                 eval_set=(x[200:], y[200:]))
    assert stopped.model_.best_iteration < 50
    full = make_estimator("xgboost", "single_label", K, threads=1, **kwargs).fit(x[:200], y[:200])
    assert full.model_.get_booster().num_boosted_rounds() == 150


@pytest.mark.parametrize("class_weight, minority", [(None, 0.2), ("balanced", 0.5)])
def test_logreg_weighs_the_classes_alike_when_balanced(class_weight, minority):
    """On inputs that say nothing of the class, logistic regression predicts the (weighted) class frequencies:
    the rare class's 0.2 as given, 0.5 balanced (the frame comparison's pooled model)."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((200, 5)), (np.arange(200) % 5 == 0).astype(int)
    model = make_estimator("logreg", "single_label", 2, seed=0, class_weight=class_weight).fit(x, y)
    assert abs(model.predict_proba(x)[:, 1].mean() - minority) < 0.05


def test_unknown_model_or_parameter_is_one_line():
    with pytest.raises(ConfigError, match=r"^model: must be one of \['logreg', 'elasticnet', 'knn', 'svm', 'forest', "
                                          r"'xgboost', 'mlp', 'cnn'\], got 'lasso'"):
        make_estimator("lasso", "single_label", 2)
    with pytest.raises(ConfigError, match="model: logreg has no parameter 'n_estimators'"):
        make_estimator("logreg", "single_label", 2, n_estimators=5)
    assert make_estimator("mlp", "single_label", 2, max_rounds=3).params == {**PARAMS["mlp"], "max_rounds": 3}


def test_the_zoo_builds_the_network_that_the_search_and_the_ablations_train():
    """``network().train`` is the one training path (Tune's workers, the ablations, the estimator's own fit):
    it reports every round, and leaves the best round's weights in ``model_``."""
    from acoustic_env.learn.fit import val_score
    from acoustic_env.learn.mlp import predict_proba

    x, y = separable(200, False)
    x = x.astype(np.float32)
    data = {"x_train": x[:150], "y_train": y[:150], "x_val": x[150:], "y_val": y[150:]}
    network = make_estimator("mlp", "single_label", K, seed=0, max_rounds=4).network()
    reported = []
    out = network.train(data, "single_label", K, steps_per_round=5, on_round=lambda m, *_: reported.append(m))
    assert reported == out["history"] and [m["round"] for m in reported] == list(range(1, len(reported) + 1))
    best = val_score("single_label", data["y_val"], predict_proba(network.model_, data["x_val"], "single_label", K))
    assert best == pytest.approx(out["best_val_score"])
    with pytest.raises(ValueError, match="logreg is not the network"):
        make_estimator("logreg", "single_label", K).network()


def _blas_threads() -> set[int]:
    from threadpoolctl import threadpool_info

    return {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}


def test_small_matrices_are_fitted_on_one_blas_thread_and_large_ones_as_set(monkeypatch):
    """A few hundred clips: numpy's and scipy's BLAS on one thread while a zoo model fits and predicts; from
    ``SMALL`` entries on, the threads as they were (learn.threads). Two threads are set first: the suite itself
    runs on one (tests/conftest.py), which would hide a fit that ignored the rule."""
    from sklearn.pipeline import Pipeline
    from threadpoolctl import threadpool_limits

    from acoustic_env.learn import threads
    from acoustic_env.learn.zoo import ZooClassifier

    # the rule at a threshold of 50,000 entries, not 1,000,000: the same branches, on a "large" matrix 20x cheaper
    monkeypatch.setattr(threads, "SMALL", 50_000)

    seen = []
    fit, predict = ZooClassifier._fit, Pipeline.predict_proba
    monkeypatch.setattr(ZooClassifier, "_fit", lambda self, *a: (seen.append(("fit", _blas_threads())),
                                                                 fit(self, *a))[1])
    monkeypatch.setattr(Pipeline, "predict_proba", lambda self, X: (seen.append(("predict", _blas_threads())),
                                                                    predict(self, X))[1])
    x, y = separable(240, False)
    wide = np.repeat(x, -(-threads.SMALL // x.size), axis=1)[:, : -(-threads.SMALL // len(x))]
    assert x.size < threads.SMALL <= wide.size
    with threadpool_limits(limits=2, user_api="blas"):
        assert _blas_threads() == {2}
        make_estimator("logreg", "single_label", K).fit(x, y).predict_proba(x)
        assert seen == [("fit", {1}), ("predict", {1})] and _blas_threads() == {2}  # put back after
        make_estimator("logreg", "single_label", K).fit(wide, y).predict_proba(wide)
        assert seen[2:] == [("fit", {2}), ("predict", {2})]


@pytest.mark.parametrize("kind", ["single_label", "multi_label"])
def test_importances_rank_the_component_the_labels_follow_and_sum_per_group(kind):
    """Coefficient and impurity importances (jobs/train/explain.py): on inputs where only the first two of eight
    components carry the classes, the linear models and the forest rank one of them first, and each group's share
    is the sum of its components'."""
    from acoustic_env.jobs.train.explain import importances

    x, y = separable(240, kind == "multi_label")
    # two groups of four components (the explainer reads a transform's group and component names); the classes'
    # centres lie along a:pc1 .. a:pc3
    transforms = [SimpleNamespace(group=g, output_names=lambda g=g: [f"{g}:pc{i + 1}" for i in range(4)])
                  for g in ("a", "b")]
    for name, overrides in (("logreg", {}), ("elasticnet", {}), ("forest", {"n_estimators": 30})):
        found = importances(make_estimator(name, kind, K, **overrides).fit(x, y), transforms)
        ranked = dict(found["components"])
        assert found["components"][0][0] in ("a:pc1", "a:pc2", "a:pc3"), (name, found)
        assert found["by_group"]["a"] == pytest.approx(sum(v for c, v in ranked.items() if c.startswith("a:")))
        assert found["by_group"]["a"] > 3 * found["by_group"]["b"], (name, found)
    assert importances(make_estimator("knn", kind, K).fit(x, y), transforms) is None
