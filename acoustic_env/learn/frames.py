"""A small 2-D CNN over AudioSet's released frame embeddings (10 × 128), beside the pooled vector, on one split.

AudioSet releases one 128-d VGGish embedding per second of a 10-s segment. Pooling the
frames (mean and max, the feature table's ``audioset_vggish``) loses their order; a
study of the four classes Speech, Animal, Music and Vehicle kept the ten frames and
classified the 10 × 128 matrix with a small CNN (91.4 % test accuracy). This module
fits both on the same train/validation/test split (whole videos on one side,
``learn.splits.assign_splits``) so the two can be compared:

* *frames*: ``FrameCNN``, two 3 × 3 convolutions over (time, dimension) with max
  pooling along the dimensions, then a global max and a linear layer, trained by the
  one training loop (``learn.fit``: AdamW, early stopping on the validation loss);
* *pooled*: the mean and max of the frames (256 values) into the zoo's ``logreg``
  (standardised, L2, its strength chosen by inner folds that keep each video on one side).

Both weigh the classes inversely to their frequency (balanced, ``class_weight``), as the
study balanced its rare classes. Only segments with all ten frames are used (``frames_table`` keeps
those); the codes are de-quantised as the release documents (``q × 4 / 255 − 2``).
"""

from __future__ import annotations

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


def pooled(frames: np.ndarray) -> np.ndarray:
    """The feature table's pooled vector: the frames' mean, then their max (n, 256)."""
    return np.concatenate([frames.mean(axis=1), frames.max(axis=1)], axis=1)


#: The CNN's training: AdamW at 1e-3, early stopping on the validation loss (epochs of 64-clip batches).
CNN_PARAMS = {"lr": 1e-3, "weight_decay": 1e-4, "batch_size": 64}
CNN_SCHEDULE = Schedule(max_rounds=40, patience=5, steps_per_round=1, monitor="loss", min_delta=1e-4)


def fit_frames(x: np.ndarray, y: np.ndarray, x_val: np.ndarray, y_val: np.ndarray, n_classes: int,
               seed: int = 0) -> FrameCNN:
    """``FrameCNN`` trained by the one loop (``learn.fit``) with balanced class weights; the best round's weights."""
    torch.manual_seed(seed)
    model = FrameCNN(n_outputs(KIND, n_classes))
    fit(model, {"x_train": x, "y_train": y, "x_val": x_val, "y_val": y_val}, KIND, n_classes, CNN_PARAMS,
        CNN_SCHEDULE, seed, class_weight="balanced", score_train=False)
    return model.eval()


@dataclass(frozen=True)
class Comparison:
    """Test accuracy (with Wilson's 95 % interval) of each model on the same held-out clips."""

    n_train: int
    n_val: int
    n_test: int
    frames: dict[str, float]
    pooled: dict[str, float]


def _accuracy(pred: np.ndarray, y: np.ndarray) -> dict[str, float]:
    k = int((pred == y).sum())
    low, high = wilson(k, len(y))
    return {"accuracy": round(k / len(y), 6), "low": round(low, 6), "high": round(high, 6), "n": len(y)}


def compare(frames: np.ndarray, y: np.ndarray, groups: np.ndarray, n_classes: int, seed: int = 0,
            test_size: float = 0.2, val_size: float = 0.15, threads: int | None = None) -> Comparison:
    """Fit the frame CNN and the pooled model on one group-aware split; their test accuracies.

    ``frames``: (n, 10, 128) float32, de-quantised; ``y``: class index per clip;
    ``threads``: torch's threads for the CNN (None: torch's choice; on a shared machine
    one thread avoids the threads contending for the cores).
    """
    split = assign_splits(strata(y), groups, None, test_size, val_size, seed)
    tr, va, te = (split == TRAIN), (split == VAL), (split == TEST)
    if not (tr.any() and va.any() and te.any()):
        raise ValueError("too few clips (or videos) to hold out a validation and a test split")
    with torch_threads(threads):
        cnn = fit_frames(frames[tr], y[tr], frames[va], y[va], n_classes, seed)
        pred_cnn = predict_proba(cnn, frames[te], KIND, n_classes).argmax(axis=1)
    fit_on = tr | va
    lin = make_estimator("logreg", KIND, n_classes, seed, class_weight="balanced")
    lin.fit(pooled(frames[fit_on]), y[fit_on], groups=groups[fit_on])
    return Comparison(int(tr.sum()), int(va.sum()), int(te.sum()), _accuracy(pred_cnn, y[te]),
                      _accuracy(lin.predict_proba(pooled(frames[te])).argmax(axis=1), y[te]))
