"""A small 2-D CNN over AudioSet's released frame embeddings (10 × 128), beside the pooled vector, on one split.

AudioSet releases one 128-d VGGish embedding per second of a 10-s segment. Pooling the
frames (mean and max, the feature table's ``audioset_vggish``) loses their order; a
study of the four classes Speech, Animal, Music and Vehicle kept the ten frames and
classified the 10 × 128 matrix with a small CNN (91.4 % test accuracy). This module
fits both on the same train/validation/test split (whole videos on one side,
``learn.splits.assign_splits``) so the two can be compared:

* *frames*: ``FrameCNN``, two 3 × 3 convolutions over (time, dimension) with max
  pooling along the dimensions, then a global max and a linear layer; Adam, early
  stopping on the validation loss;
* *pooled*: the mean and max of the frames (256 values), standardised, L2 logistic
  regression.

Both weigh the classes inversely to their frequency (balanced), as the study balanced
its rare classes. Only segments with all ten frames are used (``frames_table`` keeps
those); the codes are de-quantised as the release documents (``q × 4 / 255 − 2``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from acoustic_env.learn.metrics import wilson
from acoustic_env.learn.splits import TEST, TRAIN, VAL, assign_splits, strata

N_FRAMES, DIM = 10, 128


class FrameCNN(nn.Module):
    """(batch, 10, 128) → class logits."""

    def __init__(self, n_classes: int, channels: int = 16):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1), nn.ReLU(), nn.MaxPool2d((1, 4)),
            nn.Conv2d(channels, 2 * channels, 3, padding=1), nn.ReLU(), nn.AdaptiveMaxPool2d(1), nn.Flatten(),
            nn.Dropout(0.2), nn.Linear(2 * channels, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.unsqueeze(1))


def pooled(frames: np.ndarray) -> np.ndarray:
    """The feature table's pooled vector: the frames' mean, then their max (n, 256)."""
    return np.concatenate([frames.mean(axis=1), frames.max(axis=1)], axis=1)


def _class_weights(y: np.ndarray, n_classes: int) -> np.ndarray:
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    return np.where(counts > 0, len(y) / (n_classes * np.maximum(counts, 1)), 0.0)


def fit_cnn(x: np.ndarray, y: np.ndarray, x_val: np.ndarray, y_val: np.ndarray, n_classes: int, seed: int = 0,
            max_epochs: int = 40, patience: int = 5, batch_size: int = 64) -> FrameCNN:
    """Train ``FrameCNN`` with class-balanced cross-entropy; keep the epoch of lowest validation loss."""
    torch.manual_seed(seed)
    model = FrameCNN(n_classes)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    loss_fn = nn.CrossEntropyLoss(weight=torch.tensor(_class_weights(y, n_classes), dtype=torch.float32))
    xt, yt = torch.tensor(x, dtype=torch.float32), torch.tensor(y)
    xv, yv = torch.tensor(x_val, dtype=torch.float32), torch.tensor(y_val)
    rng = np.random.default_rng(seed)
    best, best_state, waited = float("inf"), None, 0
    for _ in range(max_epochs):
        model.train()
        for idx in np.array_split(rng.permutation(len(xt)), max(1, len(xt) // batch_size)):
            opt.zero_grad()
            loss_fn(model(xt[idx]), yt[idx]).backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            val = float(loss_fn(model(xv), yv)) if len(xv) else 0.0
        if val < best - 1e-4:
            best, best_state, waited = val, {k: v.clone() for k, v in model.state_dict().items()}, 0
        else:
            waited += 1
            if waited >= patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    return model.eval()


def fit_pooled(x: np.ndarray, y: np.ndarray, seed: int = 0) -> Any:
    """Standardised L2 logistic regression on the pooled vector, classes balanced."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, class_weight="balanced",
                                                              random_state=seed)).fit(x, y)


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
    if not (tr.any() and te.any()):
        raise ValueError("too few clips (or videos) to hold out a test split")
    before = torch.get_num_threads()
    torch.set_num_threads(threads or before)
    try:
        cnn = fit_cnn(frames[tr], y[tr], frames[va], y[va], n_classes, seed)
        with torch.no_grad():
            pred_cnn = cnn(torch.tensor(frames[te], dtype=torch.float32)).argmax(1).numpy()
    finally:
        torch.set_num_threads(before)
    lin = fit_pooled(pooled(frames[tr | va]), y[tr | va], seed)
    return Comparison(int(tr.sum()), int(va.sum()), int(te.sum()), _accuracy(pred_cnn, y[te]),
                      _accuracy(lin.predict(pooled(frames[te])), y[te]))
