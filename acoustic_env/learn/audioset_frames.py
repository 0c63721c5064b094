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
* ``frames_fc``: ``FrameMLP``, the study's fully connected net, given as "1280/10-100-1000".
  Read here as: the input is the 1,280 values ("1280/10": 1,280 made of the ten frames of
  128, flattened), then hidden layers of 100 and of 1,000 units in that order, then the
  output layer. "1280/10" is one term because the study's FC net is described as taking the
  flattened 1,280 values; the other reading, hidden layers of 10, 100 and 1,000, would squeeze
  the frames through 10 units first and leave "1280/" unexplained. ReLU after each hidden
  layer; no dropout, as the write-up gives none (``hidden`` takes another reading);
* ``study_cnn``: ``StudyCNN``, the study's CNN layer for layer as the write-up gives it
  (16 filters 1 × 6, stride 2 × 2, ReLU; max pool 2 × 2 stride 1; 32 filters 1 × 6 "same";
  max pool 2 × 2 stride 1; 32 filters 1 × 6 "same"; an optional max pool), flattened into
  the output layer. Where the write-up is silent this reads Keras' defaults, the study's
  library: the first convolution and the pools unpadded ("valid"), ReLU after every
  convolution, the optional pool like the other two;
* ``pooled_logreg``: the mean and max of the frames (256 values) into the zoo's ``logreg``
  (standardised, L2, its strength chosen by inner folds that keep each video on one side).

**The study's comparisons** are a grid of ``Cell`` s: each network under each loss
(``LOSSES``: softmax with categorical cross-entropy, or a sigmoid per class with binary
cross-entropy on the one-hot targets, the pair a Keras model of its day chose between),
each batch size, and for ``study_cnn`` with and without its optional last pool. The inputs'
scaling (the study's /255 against the raw codes) is the job's axis: it owns the codes.

**Multi-label** (``y`` a 0/1 matrix, one column per class): the study also put a
multi-output head on the networks, a sigmoid per class, and kept the clips that carry two
or more of the four classes. A multi-label ``compare`` trains every network with binary
cross-entropy per class and the pooled model one-vs-rest, and scores exact-match accuracy
(every class right at 0.5) and macro F1 (``learn.metrics.headline``).

The networks train in the one loop (``learn.fit``: AdamW, early stopping on the
validation loss). All weigh the classes inversely to their frequency (balanced,
``class_weight``); with ``oversample`` (single-label) the networks instead see balanced
training rows: each rarer class gets new rows, each a clip of the class with its ten
seconds in a random order (``oversample_by_shuffling``, the study's method), made from the
training split's rows only, so no copy of a validation or test clip is ever trained on.
The pooled model keeps its class weights: a shuffled copy's mean and max are its source's,
a duplicate. Only segments with all ten frames are used (``frames_table`` keeps those).
"""

from __future__ import annotations

import itertools
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from acoustic_env.learn.fit import Schedule, fit
from acoustic_env.learn.metrics import headline, wilson
from acoustic_env.learn.mlp import n_outputs, predict_proba
from acoustic_env.learn.splits import TEST, TRAIN, VAL, assign_splits, strata
from acoustic_env.learn.threads import torch_threads
from acoustic_env.learn.zoo import make_estimator

N_FRAMES, DIM = 10, 128
# "same" padding of the study's even (1 × 6) kernels pads 2 left, 3 right, as Keras does; torch does it with a padded
# copy of the input and says so at every first call. A performance note for large inputs, not one for the user.
warnings.filterwarnings("ignore", message="Using padding='same' with even kernel lengths", category=UserWarning)
SINGLE, MULTI = "single_label", "multi_label"


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
    """The study's "1280/10-100-1000" as read here (module docstring): (batch, 10, 128) flattened → 100 → 1,000 →
    ``n_out`` logits."""

    def __init__(self, n_out: int, hidden: Sequence[int] = (100, 1000)):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = N_FRAMES * DIM
        for units in hidden:
            layers += [nn.Linear(width, units), nn.ReLU()]
            width = units
        self.net = nn.Sequential(*layers, nn.Linear(width, n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class StudyCNN(nn.Module):
    """The study's CNN layer for layer (module docstring): (batch, 10, 128) → ``n_out`` logits.

    conv 16 × (1 × 6) stride 2 → ReLU → max pool 2 × 2 stride 1 → conv 32 × (1 × 6) "same" → ReLU → max pool 2 × 2
    stride 1 → conv 32 × (1 × 6) "same" → ReLU → [max pool 2 × 2 stride 1 with ``final_pool``] → flatten → dense
    ``n_out``. The dense layer's width is read off the layers above (a dry run), not worked out by hand.
    """

    def __init__(self, n_out: int, final_pool: bool = True):
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(1, 16, (1, 6), stride=2), nn.ReLU(), nn.MaxPool2d(2, stride=1),
            nn.Conv2d(16, 32, (1, 6), padding="same"), nn.ReLU(), nn.MaxPool2d(2, stride=1),
            nn.Conv2d(32, 32, (1, 6), padding="same"), nn.ReLU()]
        if final_pool:
            layers.append(nn.MaxPool2d(2, stride=1))
        self.features = nn.Sequential(*layers, nn.Flatten())
        with torch.no_grad():
            width = self.features(torch.zeros(1, 1, N_FRAMES, DIM)).shape[1]
        self.head = nn.Linear(width, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x.unsqueeze(1)))


#: The networks by their name in the comparison (``FramesConfig.models``: these and ``pooled_logreg``).
NETWORKS: dict[str, type[nn.Module]] = {"frames_cnn": FrameCNN, "frames_fc": FrameMLP, "study_cnn": StudyCNN}
POOLED = "pooled_logreg"
#: The losses of the grid (``FramesConfig.losses``), each as the ``learn.fit`` task kind whose loss it is:
#: softmax + categorical cross-entropy, or a sigmoid per class + binary cross-entropy on one-hot targets.
LOSSES = {"categorical_crossentropy": SINGLE, "binary_crossentropy": MULTI}


@dataclass(frozen=True)
class Cell:
    """One fit of the grid: a model and, for a network, its loss, batch size and (``study_cnn`` only) last pool."""

    model: str
    loss: str | None = None
    batch_size: int | None = None
    final_pool: bool | None = None


def grid(models: Sequence[str], losses: Sequence[str], batch_sizes: Sequence[int],
         final_pools: Sequence[bool]) -> list[Cell]:
    """Every cell of the comparison, in the order given: the pooled model once, each network per loss and batch size,
    ``study_cnn`` also with and without its last pool."""
    cells = []
    for model in models:
        if model == POOLED:
            cells.append(Cell(model))
            continue
        pools = final_pools if model == "study_cnn" else (None,)
        cells += [Cell(model, loss, b, p) for loss, b, p in itertools.product(losses, batch_sizes, pools)]
    return cells


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


#: The networks' training: AdamW at 1e-3, early stopping on the validation loss (epochs of ``batch_size`` clips).
CNN_PARAMS = {"lr": 1e-3, "weight_decay": 1e-4, "batch_size": 64}
CNN_SCHEDULE = Schedule(max_rounds=40, patience=5, steps_per_round=1, monitor="loss", min_delta=1e-4)


def _as_targets(y: np.ndarray, kind: str, n_classes: int) -> np.ndarray:
    """Class indices one-hot for a sigmoid-per-class loss; a multi-label matrix cannot feed a softmax."""
    if kind == MULTI and y.ndim == 1:
        return np.eye(n_classes, dtype=np.int64)[y]
    if kind == SINGLE and y.ndim == 2:
        raise ValueError("loss: categorical cross-entropy needs one class per clip; multi-label targets take "
                         "binary_crossentropy")
    return y


def fit_frames(x: np.ndarray, y: np.ndarray, x_val: np.ndarray, y_val: np.ndarray, n_classes: int,
               seed: int = 0, cell: Cell = Cell("frames_cnn", "categorical_crossentropy", 64),
               class_weight: str | None = "balanced") -> tuple[nn.Module, int]:
    """One network of the grid trained by the one loop (``learn.fit``): the best round's weights, in eval mode,
    and the rounds it trained."""
    kind = LOSSES[cell.loss]
    torch.manual_seed(seed)
    options = {} if cell.final_pool is None else {"final_pool": cell.final_pool}
    model = NETWORKS[cell.model](n_outputs(kind, n_classes), **options)
    data = {"x_train": x, "y_train": _as_targets(y, kind, n_classes), "x_val": x_val,
            "y_val": _as_targets(y_val, kind, n_classes)}
    trained = fit(model, data, kind, n_classes, {**CNN_PARAMS, "batch_size": cell.batch_size}, CNN_SCHEDULE, seed,
                  class_weight=class_weight, score_train=False)
    return model.eval(), len(trained["history"])


@dataclass(frozen=True)
class Comparison:
    """Each cell's test figures on the same held-out clips (``rows``: the cell's fields, then ``accuracy``
    with Wilson's 95 % ``low`` and ``high``, ``macro_f1``, ``n``, the ``rounds`` trained and the ``wall_s``).

    ``n_train``: the training split's clips; ``oversampled``: shuffled rows added per class index (empty without).
    """

    n_train: int
    n_val: int
    n_test: int
    rows: list[dict]
    oversampled: dict[int, int]


def _scores(y: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """Accuracy (exact match for a multi-label ``y``) with its Wilson interval, and macro F1."""
    head = headline(SINGLE if y.ndim == 1 else MULTI, y, proba)
    k = int(round(head["accuracy"] * len(y)))
    low, high = wilson(k, len(y))
    return {"accuracy": round(k / len(y), 6), "low": round(low, 6), "high": round(high, 6),
            "macro_f1": round(float(head["macro_f1"] or 0.0), 6), "n": len(y)}


def compare(frames: np.ndarray, y: np.ndarray, groups: np.ndarray, n_classes: int, seed: int = 0,
            test_size: float = 0.2, val_size: float = 0.15, threads: int | None = None,
            models: Sequence[str] = (*NETWORKS, POOLED), oversample: bool = False,
            losses: Sequence[str] = ("categorical_crossentropy",), batch_sizes: Sequence[int] = (64,),
            final_pools: Sequence[bool] = (True,)) -> Comparison:
    """Fit every cell of ``grid(models, losses, batch_sizes, final_pools)`` on one group-aware split; their test figures.

    ``frames``: (n, 10, 128) float32, scaled as the caller chose; ``y``: class index per clip,
    or a 0/1 matrix (n, classes) for the multi-label comparison; ``threads``: torch's threads
    for the networks (None: torch's choice; on a shared machine one thread avoids the threads
    contending for the cores); ``oversample``: the networks train on the training split
    balanced by ``oversample_by_shuffling`` (single-label; no class weights then).
    """
    multi = y.ndim == 2
    if multi and oversample:
        raise ValueError("oversample: balances one class per clip; not for multi-label targets")
    split = assign_splits(strata(y), groups, None, test_size, val_size, seed)
    tr, va, te = (split == TRAIN), (split == VAL), (split == TEST)
    if not (tr.any() and va.any() and te.any()):
        raise ValueError("too few clips (or videos) to hold out a validation and a test split")
    x_fit, y_fit, added = (oversample_by_shuffling(frames[tr], y[tr], seed) if oversample
                           else (frames[tr], y[tr], {}))
    rows = []
    with torch_threads(threads):
        for cell in grid(models, losses, batch_sizes, final_pools):
            t0 = time.time()
            if cell.model == POOLED:
                fit_on = tr | va
                lin = make_estimator("logreg", MULTI if multi else SINGLE, n_classes, seed, class_weight="balanced")
                lin.fit(pooled(frames[fit_on]), y[fit_on], groups=groups[fit_on])
                proba, rounds = lin.predict_proba(pooled(frames[te])), None
            else:
                net, rounds = fit_frames(x_fit, y_fit, frames[va], y[va], n_classes, seed, cell,
                                         class_weight=None if oversample else "balanced")
                proba = predict_proba(net, frames[te], LOSSES[cell.loss], n_classes)
            rows.append({**asdict(cell), **_scores(y[te], proba), "rounds": rounds,
                         "wall_s": round(time.time() - t0, 3)})
    return Comparison(int(tr.sum()), int(va.sum()), int(te.sum()), rows, added)
