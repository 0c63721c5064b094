"""The logistic regressions' C search scores with ``candidates.linear.neg_log_loss``: scikit-learn's ``neg_log_loss``
scorer to the bit, so the search chooses the same C and train's figures are the ones the library's scorer gave."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.metrics import get_scorer
from sklearn.model_selection import StratifiedGroupKFold

from acoustic_env.candidates.linear import neg_log_loss


def _problem(seed: int, n_classes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A small noisy table (a few dozen rows, more columns than a linear model can use), as train's inner folds see."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 90))
    X = rng.standard_normal((n, int(rng.integers(3, 70)))) * rng.uniform(0.1, 5.0)
    y = (X[:, :n_classes] + rng.standard_normal((n, n_classes)) * rng.uniform(0.2, 3.0)).argmax(axis=1)
    y[:n_classes] = np.arange(n_classes)  # every class present
    return X, y, rng.integers(0, max(4, n // 3), n)


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("class_weight", [None, "balanced"])
def test_the_c_search_scores_every_c_as_the_library_scorer_does(n_classes, class_weight):
    """Over 15 tables each, grouped folds given as train gives them (some test folds lack a class), both scorers'
    whole score grids and the chosen C are equal, to the last bit."""
    for seed in range(15):
        X, y, groups = _problem(seed, n_classes)
        folds = list(StratifiedGroupKFold(n_splits=2, shuffle=True, random_state=seed).split(X, y, groups))
        fitted = []
        for scoring in ("neg_log_loss", neg_log_loss):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                fitted.append(LogisticRegressionCV(Cs=7, l1_ratios=(0.0,), cv=folds, scoring=scoring, max_iter=300, random_state=0,
                                                   class_weight=class_weight, use_legacy_attributes=False).fit(X, y))
        library, ours = fitted
        np.testing.assert_array_equal(ours.scores_, library.scores_)
        assert ours.C_ == library.C_


def test_sure_and_wrong_probabilities_are_clipped_as_the_library_clips_them():
    """A model sure of every row (probabilities of 0 and 1, some of them wrong): the loss of the clipped
    probabilities, the same number as the library's scorer, binary and of three classes."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 4))
    for n_classes in (2, 3):
        y = rng.integers(0, n_classes, 40)
        model = LogisticRegression().fit(X, y)
        model.coef_, model.intercept_ = model.coef_ * 1e4, model.intercept_ * 1e4  # saturated: 0 and 1
        proba = model.predict_proba(X)
        assert (proba.min() == 0.0 or proba.max() == 1.0) and np.isfinite(neg_log_loss(model, X, y))
        assert neg_log_loss(model, X, y) == get_scorer("neg_log_loss")(model, X, y)
        # sure and right on every row (classes any model separates): 1 clipped to 1 - eps, a loss of about 1e-16, not 0
        separable = X[:, :n_classes].argmax(axis=1) if n_classes > 2 else (X[:, 0] > 0).astype(int)
        sure = LogisticRegression(C=1e6, max_iter=5000).fit(X, separable)
        sure.coef_, sure.intercept_ = sure.coef_ * 1e4, sure.intercept_ * 1e4
        assert (sure.predict(X) == separable).all() and sure.predict_proba(X).max() == 1.0
        assert neg_log_loss(sure, X, separable) == get_scorer("neg_log_loss")(sure, X, separable) < 0
