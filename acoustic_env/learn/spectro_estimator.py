"""The zoo's ``cnn`` (``learn.spectro``'s network) as a scikit-learn estimator: its inner split, its training.

The one way the CNN is built and trained. ``train`` builds the network and runs the one loop (``learn.fit``)
with ``learn.spectro.augmenter`` as its ``augment`` hook, early stopping on the validation loss and autocast on a
GPU, on a split the caller made: arrays, or a ``learn.fit.Stream`` of the images of a table too large to hold
(``distributed.images``: in a Ray Tune trial, or data-parallel Ray Train workers). ``fit``, the scikit-learn entry
of the train job's cross-validation and final fit, holds out whole groups of the rows it is given
(``inner_split``) for the validation rows and calls ``train``.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin

from acoustic_env.learn.fit import Schedule, Stream, fit
from acoustic_env.learn.mlp import predict_proba
from acoustic_env.learn.spectro import SpectroCNN, architecture, augmenter
from acoustic_env.learn.threads import torch_threads
from acoustic_env.learn.warm_start import warm_start


class CNNClassifier(ClassifierMixin, BaseEstimator):
    """The zoo's ``cnn``: ``X`` is [clips, bands, frames] images (``learn.image_input.stack_images``); targets as the zoo's.

    ``fit`` holds out ``val_fraction`` of the rows (whole groups when ``groups`` are given) for
    early stopping on the validation loss; ``class_weight`` (``"balanced"``) weighs its loss, ``balanced_sampler``
    draws its training batches with every class equally likely (images in memory only), as the MLP's
    (``learn.balance``); ``network`` holds the architecture, the crop it sees and the optimiser's
    settings (its learning-rate schedule too; ``init``, where one is, the checkpoint it starts from:
    ``learn.warm_start``), ``augment`` the augmentations (``learn.spectro``'s docstring).
    ``predict_proba`` averages each clip's crops (the network's evaluation mode).
    """

    def __init__(self, seed: int, val_fraction: float, max_rounds: int, patience: int, network: dict[str, Any],
                 augment: dict[str, Any], threads: int | None = None, device: str = "cpu",
                 class_weight: str | None = None, balanced_sampler: bool = False):
        self.seed = seed
        self.class_weight = class_weight
        self.balanced_sampler = balanced_sampler
        self.val_fraction = val_fraction
        self.max_rounds = max_rounds
        self.patience = patience
        self.network = network
        self.augment = augment
        self.threads = threads
        self.device = device

    def fit(self, X: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None) -> CNNClassifier:
        """Train on the images ``X`` with one torch thread unless ``threads`` says (see ``MLPClassifier.fit``), on
        ``device``; the trained network comes back to the CPU, where the saved model scores (a GPU's convolutions
        differ from the CPU's in the last bits, and the train job holds the two to 1e-6)."""
        y = np.asarray(y)
        kind, n_classes = ("multi_label", y.shape[1]) if y.ndim == 2 else ("single_label", int(y.max()) + 1)
        train, val = inner_split(y if y.ndim == 1 else None, groups, self.val_fraction, self.seed)
        x_train = np.asarray(X[train], np.float32)
        data = {"x_train": x_train, "y_train": y[train], "x_val": np.asarray(X[val], np.float32), "y_val": y[val]}
        with torch_threads(self.threads or 1):
            self.train(data, kind, n_classes, X.shape[1], X.shape[2], (float(x_train.mean()), float(x_train.std())),
                       device=self.device)
        self.model_.cpu()
        return self

    def train(self, data: dict[str, np.ndarray] | Stream, kind: str, n_classes: int, bands: int, frames: int,
              scale: tuple[float, float], prepare: Callable[[Any], Any] | None = None,
              on_round: Callable[..., None] | None = None, device: Any = "cpu", rank: int = 0,
              world: int = 1) -> dict[str, Any]:
        """Train on a split the caller made: arrays (x_train, y_train, x_val, y_val) or a stream of batches of
        [bands, ``frames``] images, standardised by ``scale`` (the training images' mean and standard deviation).

        ``prepare`` wraps the network (Ray Train's data-parallel wrapper), ``on_round`` follows every round, and
        ``rank`` of ``world`` workers trains on its share (see ``MLPClassifier.train``). The network moves to
        ``device`` (a one-worker trial passes no ``prepare`` to move it); mixed precision on CUDA.
        Uses ``threads`` torch threads (None: as set). Returns ``learn.fit.fit``'s result.
        """
        with torch_threads(self.threads):
            torch.manual_seed(self.seed)
            self.model_ = SpectroCNN(**{k: v for k, v in architecture(bands, kind, n_classes, self.network).items()
                                        if k != "network"})
            if init := self.network.get("init"):
                warm_start(self.model_, init)
            self.model_.mean.fill_(scale[0])
            self.model_.std.fill_(scale[1] or 1.0)
            self.model_.to(device)
            crops = {**self.augment, "crop_frames": self.network["crop_frames"]}  # the network's view
            result = fit(prepare(self.model_) if prepare else self.model_, data, kind, n_classes, self.network,
                         Schedule(self.max_rounds, self.patience, steps_per_round=1, monitor="loss"), self.seed + rank,
                         augment=augmenter(crops, kind, n_classes), mixed_precision=True, score_train=False,
                         class_weight=self.class_weight, balanced_sampler=self.balanced_sampler,
                         lr_schedule=self.network["lr_schedule"], on_round=on_round, device=device, rank=rank,
                         world=world)
        self.kind_, self.n_classes_, self.classes_ = kind, n_classes, np.arange(n_classes)
        self.frames_, self.history_ = int(frames), result["history"]
        self.model_.eval()
        return result

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return predict_proba(self.model_, np.asarray(X, np.float32), self.kind_, self.n_classes_, batch_size=64)


def inner_split(y: np.ndarray | None, groups: np.ndarray | None, fraction: float,
                seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(training rows, validation rows): about ``fraction`` of the groups held out, stratified by class when ``y``
    (single-label) has two clips of every class and one class has a clip a fold (scikit-learn's stratified folds
    refuse fewer: 8 clips of two classes in 5 folds); every row its own group without ``groups``."""
    from sklearn.model_selection import GroupShuffleSplit, StratifiedGroupKFold

    n = len(groups) if groups is not None else len(y)
    groups = np.arange(n) if groups is None else np.asarray(groups)
    folds = max(2, int(round(1 / fraction)))
    if (y is not None and (counts := np.bincount(y)).min() >= 2 and counts.max() >= folds
            and len(np.unique(groups)) >= folds):
        splitter = StratifiedGroupKFold(folds, shuffle=True, random_state=seed)
        train, val = next(splitter.split(np.zeros(n), y, groups))
    else:
        train, val = next(GroupShuffleSplit(1, test_size=fraction, random_state=seed).split(np.zeros(n), groups=groups))
    return np.sort(train), np.sort(val)
