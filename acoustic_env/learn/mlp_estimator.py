"""The training job's MLP with given hyper-parameters, as a scikit-learn estimator (the zoo's ``mlp``).

This is the one way the network is built and trained. ``train`` runs the
early-stopping loop (``learn.fit``) on a train/validation split the caller made:
the Ray Tune trials (one call per Ray Train worker, on its device, reporting each
round), the feature-group ablations and the quick model train there. ``fit``, the
scikit-learn entry the zoo calls (cross-validation, the audit, the final fit),
standardises the inputs, holds out ``val_fraction`` of the groups (the rows' ``groups``,
which the zoo passes) for early stopping and calls ``train``; at most ``full_batch_rows`` rows, it holds out none
and ``train`` fits them at once (``learn.fit.full_batch``). Its settings (``network``:
depth, width, learning rate, ...) are declared in ``acoustic_env.candidates.PARAMS`` and it is built by the zoo
(``learn.zoo.make_estimator``), whose grouped tuning chooses among
``acoustic_env.candidates.SPACES`` (cross-fitting in the audit keeps the defaults).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.preprocessing import StandardScaler

from acoustic_env.learn.fit import Schedule, fit, full_batch
from acoustic_env.learn.mlp import MLP, architecture, predict_proba
from acoustic_env.learn.spectro_estimator import inner_split
from acoustic_env.learn.threads import torch_threads


class MLPClassifier(ClassifierMixin, BaseEstimator):
    """Single-label targets as class indices 0..K-1, or multi-label targets as an [n, K] 0/1 matrix."""

    def __init__(self, seed: int, val_fraction: float, max_rounds: int, patience: int, network: dict[str, Any],
                 threads: int | None = None, class_weight: str | None = None, balanced_sampler: bool = False,
                 patience_epochs: int | None = None, full_batch_rows: int = 0):
        self.seed = seed
        self.threads = threads
        self.val_fraction = val_fraction
        self.max_rounds = max_rounds
        self.patience = patience
        self.patience_epochs = patience_epochs
        self.full_batch_rows = full_batch_rows
        self.network = network
        self.class_weight = class_weight
        self.balanced_sampler = balanced_sampler

    def fit(self, X: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None) -> MLPClassifier:
        """Fit with ``threads`` torch threads, one when None (restored after). A network this small spends most of a
        second thread's time synchronising it, and on busy cores far more: 34 clips, 1.2 s with one thread against
        11-40 s with two; 5,000 clips of 2,000 features, 17 s against 123 s (2 cores under load, 2026-11-23)."""
        with torch_threads(self.threads or 1):
            return self._fit(X, np.asarray(y), groups)

    def _fit(self, X: np.ndarray, y: np.ndarray, groups: np.ndarray | None) -> MLPClassifier:
        """Standardise, hold out ``val_fraction`` of the groups for early stopping (``inner_split``: whole groups,
        stratified where the classes allow; every clip its own group without ``groups``) and ``train``. At most
        ``full_batch_rows`` rows: nothing held out, ``train`` fits them all at once (``learn.fit.full_batch``).

        Whole groups, because a validation clip with a near-copy in the training rows (a clip of the same recording
        or hour) flatters the rounds that learnt that recording: on the forest recordings (every group pinned) the
        network's out-of-fold ROC AUC was 0.917 stopped on clips drawn at random, 0.926 on whole groups.

        A round is ``Schedule``'s 50 steps however few the rows (25 epochs of 80 clips): rounds of one epoch,
        stopped on those few groups, cost the forest 0.013-0.028 of ROC AUC (``candidates.network``).
        """
        self.scaler_ = StandardScaler().fit(X)
        x = self.scaler_.transform(X).astype(np.float32)
        kind, n_classes = ("multi_label", y.shape[1]) if y.ndim == 2 else ("single_label", int(y.max()) + 1)
        if len(y) <= self.full_batch_rows:
            self.train({"x_train": x, "y_train": y, "x_val": x[:0], "y_val": y[:0]}, kind, n_classes)
            return self
        fit_on, val = inner_split(y if y.ndim == 1 else None, np.arange(len(y)) if groups is None else groups,
                                  self.val_fraction, self.seed)
        self.train({"x_train": x[fit_on], "y_train": y[fit_on], "x_val": x[val], "y_val": y[val]}, kind, n_classes)
        return self

    def train(self, data: dict[str, np.ndarray], kind: str, n_classes: int,
              steps_per_round: int = Schedule.steps_per_round, prepare: Callable[[Any], Any] | None = None,
              on_round: Callable[..., None] | None = None, device: Any = "cpu", rank: int = 0,
              world: int = 1) -> dict[str, Any] | None:
        """Train on a split the caller made (x_train, y_train, x_val, y_val: inputs as given, no scaling); with no
        validation rows, on all the training rows at once (``learn.fit.full_batch`` with the network's ``l2``: no
        rounds, an empty ``history_``, and None back).

        The network of ``network`` is built here, ``prepare`` wraps it (Ray Train's data-parallel wrapper) and
        ``learn.fit.fit`` trains it with this estimator's ``max_rounds``, ``patience`` (and ``patience_epochs``),
        ``class_weight`` and ``balanced_sampler``, calling ``on_round`` after every round; ``rank`` of ``world``
        workers trains on its share of the rows. The network moves to ``device`` (a one-worker Tune trial passes no
        ``prepare`` that would move it). Uses ``threads`` torch threads (None: as set). The best round's weights end
        in ``model_``; returns ``fit``'s result (best_val_score, best_state, history, epochs_per_round).
        """
        with torch_threads(self.threads):
            torch.manual_seed(self.seed)
            self.model_ = MLP(**architecture(data["x_train"].shape[1], kind, n_classes, self.network)).to(device)
            self.kind_, self.n_classes_, self.classes_ = kind, n_classes, np.arange(n_classes)
            if not len(data["x_val"]):
                full_batch(self.model_, data["x_train"], data["y_train"], kind, n_classes, float(self.network["l2"]),
                           self.seed, class_weight=self.class_weight, balanced_sampler=self.balanced_sampler)
                self.history_ = []
                return None
            result = fit(prepare(self.model_) if prepare else self.model_, data, kind, n_classes, self.network,
                         Schedule(self.max_rounds, self.patience, steps_per_round,
                                  patience_epochs=self.patience_epochs), self.seed + rank,
                         class_weight=self.class_weight, balanced_sampler=self.balanced_sampler, on_round=on_round,
                         device=device, rank=rank, world=world)
        self.history_ = result["history"]  # per round: epoch, train_score, val_score (the report's figure)
        return result

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return predict_proba(self.model_, self.scaler_.transform(X).astype(np.float32), self.kind_, self.n_classes_)
