"""The training job's MLP with given hyper-parameters, as a scikit-learn estimator (the zoo's ``mlp``).

It reuses the training job's network, loss and early-stopping loop
(``learn.fit``) with standardised inputs and a held-out ``val_fraction`` of the
training rows for early stopping. Its settings (``network``: depth, width,
learning rate, ...) are declared in ``learn.params.PARAMS``, which builds it; the
zoo's grouped search chooses among ``learn.params.CANDIDATES`` (cross-fitting in
the audit keeps the defaults).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler


class MLPClassifier(ClassifierMixin, BaseEstimator):
    """Single-label targets as class indices 0..K-1, or multi-label targets as an [n, K] 0/1 matrix."""

    def __init__(self, seed: int, val_fraction: float, max_rounds: int, patience: int, network: dict[str, Any],
                 threads: int | None = None):
        self.seed = seed
        self.threads = threads
        self.val_fraction = val_fraction
        self.max_rounds = max_rounds
        self.patience = patience
        self.network = network

    def fit(self, X: np.ndarray, y: np.ndarray) -> MLPClassifier:
        """Fit with ``threads`` torch threads, one when None (restored after). A network this small spends most of a
        second thread's time synchronising it, and on busy cores far more: 34 clips, 1.2 s with one thread against
        11-40 s with two; 5,000 clips of 2,000 features, 17 s against 123 s (2 cores under load, 2026-11-23)."""
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(self.threads or 1)
        try:
            return self._fit(X, y)
        finally:
            torch.set_num_threads(before)

    def _fit(self, X: np.ndarray, y: np.ndarray) -> MLPClassifier:
        from acoustic_env.learn.fit import Schedule, build_model, fit

        y = np.asarray(y)
        self.scaler_ = StandardScaler().fit(X)
        x = self.scaler_.transform(X).astype(np.float32)
        if y.ndim == 2:
            self.kind_, self.n_classes_ = "multi_label", y.shape[1]
            stratify = None
        else:
            self.kind_, self.n_classes_ = "single_label", int(y.max()) + 1
            stratify = y if np.bincount(y).min() >= 2 else None
        # a stratified validation split needs a clip of every class (tiny folds of a small table)
        n_val = max(int(np.ceil(self.val_fraction * len(y))), self.n_classes_ if stratify is not None else 1)
        if stratify is not None and len(y) - n_val < self.n_classes_:
            stratify = None
        x_tr, x_val, y_tr, y_val = train_test_split(x, y, test_size=n_val, random_state=self.seed, stratify=stratify)
        self.model_ = build_model(x.shape[1], self.kind_, self.n_classes_, self.network, self.seed)
        result = fit(self.model_, {"x_train": x_tr, "y_train": y_tr, "x_val": x_val, "y_val": y_val}, self.kind_,
                     self.n_classes_, self.network, Schedule(self.max_rounds, self.patience), self.seed)
        if result["best_state"] is not None:
            self.model_.load_state_dict(result["best_state"])
        self.history_ = result["history"]  # per round: epoch, train_score, val_score (the report's figure)
        self.classes_ = np.arange(self.n_classes_)
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        from acoustic_env.learn.mlp import predict_proba

        return predict_proba(self.model_, self.scaler_.transform(X).astype(np.float32), self.kind_, self.n_classes_)
