"""Networks over AudioSet's released frame embeddings (10 × 128), beside the pooled vector, on one split.

AudioSet releases one 128-d VGGish embedding per second of a 10-s segment. Pooling the
frames (mean and max, the feature table's ``audioset_vggish``) loses their order; a
study of the four classes Speech, Animal, Music and Vehicle kept the ten frames and
classified them with a fully connected net on the 1,280 flattened values (90.6 % test
accuracy) and with a CNN on the 10 × 128 matrix (91.4 %), oversampling its rare classes
by shuffling the seconds of their clips. This module fits, on the same train/validation/
test split (whole videos on one side, ``learn.splits.assign_splits``), any of:

* ``frames_cnn``: ``FrameCNN``, this project's small CNN: two 3 × 3 convolutions over
  (time, dimension) with max pooling along the dimensions, then a global max and a
  linear layer;
* ``frames_fc``: ``FrameMLP``, the study's fully connected net on the flattened 1,280 values;
* ``study_cnn``: ``StudyCNN``, the study's CNN shape *as this project reads it* (the study
  names a CNN on the 10 × 128 frames and its accuracy, not its layers here): two blocks of
  a 3 × 3 convolution (32, then 64 channels) and 2 × 2 max pooling, flattened (64 × 2 × 32)
  into a dense layer of 128 with dropout 0.5, the usual Keras-tutorial CNN of its day;
* ``pooled_logreg``: the mean and max of the frames (256 values) into the zoo's ``logreg``
  (standardised, L2, its strength chosen by inner folds that keep each video on one side).

The three networks train in the one loop (``learn.fit``: AdamW, early stopping on the
validation loss). All weigh the classes inversely to their frequency (balanced,
``class_weight``); with ``oversample`` the networks instead see balanced training rows:
each rarer class gets new rows, each a clip of the class with its ten seconds in a random
order (``oversample_by_shuffling``, the study's method), made from the training split's
rows only, so no copy of a validation or test clip is ever trained on. The pooled model
keeps its class weights: a shuffled copy's mean and max are its source's, a duplicate.
Only segments with all ten frames are used (``frames_table`` keeps those); the codes are
de-quantised as the release documents (``q × 4 / 255 − 2``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from acoustic_env.learn.fit import Schedule, fit
from acoustic_env.learn.metrics import wilson
from acoustic_env.learn.mlp import n_outputs, predict_proba
from acoustic_env.learn.splits import TEST, TRAIN, VAL, assign_splits, strata
from acoustic_env.learn.threads import torch_threads
from acoustic_env.learn.zoo import make_estimator

N_FRAMES, DIM = 10, 128
KIND = "single_label"  # the comparison's task: one class per clip


class FrameCNN(nn.Module):
    """(batch, 10, 128) → ``n_out`` logits (``learn.mlp.n_outputs``: one for two classes, else one per class)."""

    def __init__(self, n_out: int, channels: int = 16):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1), nn.ReLU(), nn.MaxPool2d((1, 4)),
            nn.Conv2d(channels, 2 * channels, 3, padding=1), nn.ReLU(), nn.AdaptiveMaxPool2d(1), nn.Flatten(),
            nn.Dropout(0.2), nn.Linear(2 * channels, n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.unsqueeze(1))


class FrameMLP(nn.Module):
    """The study's fully connected net: (batch, 10, 128) flattened to 1,280 values → 256 → 128 → ``n_out`` logits."""

    def __init__(self, n_out: int, hidden: tuple[int, int] = (256, 128), dropout: float = 0.3):
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(), nn.Linear(N_FRAMES * DIM, hidden[0]), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden[0], hidden[1]), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden[1], n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class StudyCNN(nn.Module):
    """The study's CNN as this project reads it (module docstring): (batch, 10, 128) → ``n_out`` logits.

    conv 3 × 3 (32) → ReLU → max pool 2 × 2 → conv 3 × 3 (64) → ReLU → max pool 2 × 2 → flatten (64 × 2 × 32)
    → dense 128 → ReLU → dropout 0.5 → dense ``n_out``.
    """

    def __init__(self, n_out: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(64 * (N_FRAMES // 4) * (DIM // 4), 128), nn.ReLU(), nn.Dropout(0.5), nn.Linear(128, n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.unsqueeze(1))


#: The networks by their name in the comparison (``FramesConfig.models``: these and ``pooled_logreg``).
NETWORKS: dict[str, type[nn.Module]] = {"frames_cnn": FrameCNN, "frames_fc": FrameMLP, "study_cnn": StudyCNN}
POOLED = "pooled_logreg"


def oversample_by_shuffling(frames: np.ndarray, y: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray, dict[int, int]]:
    """Balanced rows: every class up to the largest one's count, by new rows that are its clips with the seconds shuffled.

    Each new row is a clip of the class (drawn with replacement) with its ten frames in a
    random order; the original rows come first, unchanged. Call it on training rows only.
    Returns the rows, their classes and the rows added per class.
    """
    rng = np.random.default_rng(seed)
    counts = np.bincount(y)
    xs, ys, added = [frames], [y], {}
    for c, n in enumerate(counts):
        if 0 < n < counts.max():
            source = rng.choice(np.flatnonzero(y == c), counts.max() - n)
            order = rng.permuted(np.tile(np.arange(frames.shape[1]), (len(source), 1)), axis=1)
            xs.append(frames[source[:, None], order])
            ys.append(np.full(len(source), c, dtype=y.dtype))
            added[c] = len(source)
    return np.concatenate(xs), np.concatenate(ys), added


def pooled(frames: np.ndarray) -> np.ndarray:
    """The feature table's pooled vector: the frames' mean, then their max (n, 256)."""
    return np.concatenate([frames.mean(axis=1), frames.max(axis=1)], axis=1)


#: The networks' training: AdamW at 1e-3, early stopping on the validation loss (epochs of 64-clip batches).
CNN_PARAMS = {"lr": 1e-3, "weight_decay": 1e-4, "batch_size": 64}
CNN_SCHEDULE = Schedule(max_rounds=40, patience=5, steps_per_round=1, monitor="loss", min_delta=1e-4)


def fit_frames(x: np.ndarray, y: np.ndarray, x_val: np.ndarray, y_val: np.ndarray, n_classes: int,
               seed: int = 0, network: str = "frames_cnn", class_weight: str | None = "balanced") -> nn.Module:
    """One of ``NETWORKS`` trained by the one loop (``learn.fit``); the best round's weights, in eval mode."""
    torch.manual_seed(seed)
    model = NETWORKS[network](n_outputs(KIND, n_classes))
    fit(model, {"x_train": x, "y_train": y, "x_val": x_val, "y_val": y_val}, KIND, n_classes, CNN_PARAMS,
        CNN_SCHEDULE, seed, class_weight=class_weight, score_train=False)
    return model.eval()


@dataclass(frozen=True)
class Comparison:
    """Test accuracy (with Wilson's 95 % interval) of each model on the same held-out clips.

    ``n_train``: the training split's clips; ``oversampled``: shuffled rows added per class index (empty without).
    """

    n_train: int
    n_val: int
    n_test: int
    accuracy: dict[str, dict[str, float]]
    oversampled: dict[int, int]


def _accuracy(pred: np.ndarray, y: np.ndarray) -> dict[str, float]:
    k = int((pred == y).sum())
    low, high = wilson(k, len(y))
    return {"accuracy": round(k / len(y), 6), "low": round(low, 6), "high": round(high, 6), "n": len(y)}


def compare(frames: np.ndarray, y: np.ndarray, groups: np.ndarray, n_classes: int, seed: int = 0,
            test_size: float = 0.2, val_size: float = 0.15, threads: int | None = None,
            models: Sequence[str] = (*NETWORKS, POOLED), oversample: bool = False) -> Comparison:
    """Fit ``models`` (``NETWORKS``' names and ``pooled_logreg``) on one group-aware split; their test accuracies.

    ``frames``: (n, 10, 128) float32, de-quantised; ``y``: class index per clip;
    ``threads``: torch's threads for the networks (None: torch's choice; on a shared machine
    one thread avoids the threads contending for the cores); ``oversample``: the networks
    train on the training split balanced by ``oversample_by_shuffling`` (no class weights then).
    """
    split = assign_splits(strata(y), groups, None, test_size, val_size, seed)
    tr, va, te = (split == TRAIN), (split == VAL), (split == TEST)
    if not (tr.any() and va.any() and te.any()):
        raise ValueError("too few clips (or videos) to hold out a validation and a test split")
    x_fit, y_fit, added = (oversample_by_shuffling(frames[tr], y[tr], seed) if oversample
                           else (frames[tr], y[tr], {}))
    accuracy = {}
    with torch_threads(threads):
        for name in (m for m in models if m in NETWORKS):
            net = fit_frames(x_fit, y_fit, frames[va], y[va], n_classes, seed, name,
                             class_weight=None if oversample else "balanced")
            accuracy[name] = _accuracy(predict_proba(net, frames[te], KIND, n_classes).argmax(axis=1), y[te])
    if POOLED in models:
        fit_on = tr | va
        lin = make_estimator("logreg", KIND, n_classes, seed, class_weight="balanced")
        lin.fit(pooled(frames[fit_on]), y[fit_on], groups=groups[fit_on])
        accuracy[POOLED] = _accuracy(lin.predict_proba(pooled(frames[te])).argmax(axis=1), y[te])
    return Comparison(int(tr.sum()), int(va.sum()), int(te.sum()), accuracy, added)
