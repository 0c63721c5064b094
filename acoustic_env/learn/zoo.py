"""Baselines on the same splits and the same preprocessed inputs: logistic regression and XGBoost.

They answer "does the network earn its keep?": if a linear model on the
same PCA components does as well, the report should say so. XGBoost uses the
validation split for early stopping, as the network does.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier


def logreg(data: dict[str, np.ndarray], kind: str, seed: int) -> Any:
    model = LogisticRegression(max_iter=2000, C=1.0, random_state=seed)
    if kind == "multi_label":
        model = OneVsRestClassifier(model)
    return model.fit(data["x_train"], data["y_train"])


def xgboost(data: dict[str, np.ndarray], kind: str, n_classes: int, seed: int, n_jobs: int = 1) -> Any:
    from xgboost import XGBClassifier

    model = XGBClassifier(n_estimators=400, max_depth=4, learning_rate=0.05, subsample=0.8, colsample_bytree=0.8,
                          early_stopping_rounds=30, random_state=seed, n_jobs=n_jobs, tree_method="hist",
                          eval_metric="logloss" if kind == "multi_label" or n_classes == 2 else "mlogloss")
    return model.fit(data["x_train"], data["y_train"], eval_set=[(data["x_val"], data["y_val"])], verbose=False)


def proba(model: Any, x: np.ndarray, kind: str, n_classes: int) -> np.ndarray:
    """[n, classes] probabilities, whatever the estimator's own layout."""
    p = np.asarray(model.predict_proba(x), dtype=np.float64)
    if kind == "single_label" and p.shape[1] != n_classes:  # a class absent from the training split
        full = np.zeros((len(x), n_classes))
        full[:, model.classes_.astype(int)] = p
        return full
    return p


def fit_baselines(names: tuple[str, ...], data: dict[str, np.ndarray], kind: str, n_classes: int,
                  seed: int) -> dict[str, Any]:
    fitters = {"logreg": lambda: logreg(data, kind, seed), "xgboost": lambda: xgboost(data, kind, n_classes, seed)}
    return {name: fitters[name]() for name in names}
