"""The bootstrap's statistic (``learn.metrics.headline``) counts AUC and F1 in numpy: held to scikit-learn here."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

from acoustic_env.learn.metrics import headline


def _sklearn(kind: str, y: np.ndarray, proba: np.ndarray) -> dict[str, float | None]:
    if kind == "multi_label":
        pred = (proba >= 0.5).astype(int)
        cols = [j for j in range(y.shape[1]) if 0 < y[:, j].sum() < len(y)]
        return {"roc_auc": float(np.mean([roc_auc_score(y[:, j], proba[:, j]) for j in cols])) if cols else None,
                "accuracy": accuracy_score(y, pred), "macro_f1": f1_score(y, pred, average="macro", zero_division=0)}
    pred, k = proba.argmax(axis=1), proba.shape[1]
    both = len(np.unique(y)) > 1
    auc = (roc_auc_score(y, proba[:, 1]) if k == 2 else
           roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=list(range(k)))) if both else None
    return {"roc_auc": auc, "accuracy": accuracy_score(y, pred),
            "macro_f1": f1_score(y, pred, average="macro", labels=list(range(k)), zero_division=0)}


@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("seed", range(6))
def test_single_label_headline_equals_scikit_learn(k, seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 60))
    proba = rng.dirichlet(np.ones(k), n).round(1 + seed % 2)  # rounded: ties in the scores
    proba /= proba.sum(axis=1, keepdims=True)
    y = rng.integers(0, k if seed else 1, n)  # seed 0: one class only, AUC undefined
    ours, theirs = headline("single_label", y, proba), _sklearn("single_label", y, proba)
    assert ours.keys() == theirs.keys()
    for name, value in theirs.items():
        assert ours[name] == (None if value is None else pytest.approx(value, abs=1e-12)), name


@pytest.mark.parametrize("seed", range(6))
def test_multi_label_headline_equals_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 60))
    proba = rng.random((n, 4)).round(1)
    y = (rng.random((n, 4)) < 0.4).astype(int)
    y[:, 3] = seed % 2  # a class that is always, or never, there
    ours, theirs = headline("multi_label", y, proba), _sklearn("multi_label", y, proba)
    for name, value in theirs.items():
        assert ours[name] == (None if value is None else pytest.approx(value, abs=1e-12)), name
