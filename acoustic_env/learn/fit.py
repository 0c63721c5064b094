"""The one training loop of every torch classifier: mini-batch rounds, early stopping, the best state kept.

Any ``nn.Module`` that maps a batch of inputs to logits trains here, under the
output conventions of ``learn.mlp`` (one logit for two classes, one per class
otherwise): the training job's MLP (``learn.mlp_estimator``, whose ``train`` is
the one caller for the Ray Tune trials, the ablations and the final fit) and the
frame networks (``learn.audioset_frames``). What differs between networks is an option here,
not a loop of their own:

* early stopping (``Schedule``): on the validation score (ROC AUC or mAP,
  ``val_score``) or the validation loss, with a patience in rounds;
* class weights (``class_weight``: None, ``"balanced"`` or one weight per class,
  resolved by ``class_weights``), in the training and the validation loss alike;
* a balanced sampler (``balanced_sampler``): each epoch's training rows are
  drawn with replacement, a row with probability inversely proportional to its class's
  count (multi-label: its rarest positive label's count, ``draw_weights``; torch's
  ``multinomial``, drawn from the loop's seeded generator), so every
  class fills the batches alike; the validation rows are never drawn or reweighted;
* device and precision: the data and the network on ``device``; with
  ``mixed_precision`` the steps run under autocast on CUDA (bfloat16 where the card
  has it, else float16 with a gradient scaler), a no-op on a CPU;
* checkpoints: ``on_round(metrics, improved, model)`` after every round (the Tune
  trials save and report there); the network ends with the best round's weights,
  and their ``state_dict`` comes back;
* ``augment(x, y, generator)``: a per-batch transform of the training inputs
  (SpecAugment, mixup), never applied to the validation rows;
* the learning rate of each step (``lr_schedule``, ``lr_factor``): constant, or a cosine
  after a short warm-up (the CNN's);
* where the rows come from: arrays (``x_train``, ``y_train``, ``x_val``, ``y_val``) held on the
  device and reshuffled every epoch, or a ``Stream`` of batches, for a table larger than one
  process may hold (the CNN's images read by Ray Data, ``distributed.images``): the loop only
  ever iterates batches, so both take the same steps.

Beside the loop, ``full_batch`` fits a small table's rows all at once with L-BFGS to the minimum
of a penalised loss: the MLP's fit of at most ``candidates.network.FULL_BATCH_ROWS`` rows.

Plain PyTorch on numpy arrays or batches, so the same loop runs inside a Ray Train worker
(``distributed.tune.worker_loop``), in a Ray task (feature-group ablations) or in
a test. A *round* is at least ``steps_per_round`` optimizer steps (one epoch of a
large table, several epochs of a small one): validating and reporting after every
epoch of a 150-clip table would spend more time reporting than learning, and the
tuning's scheduler (ASHA) counts rounds, not epochs.
"""

from __future__ import annotations

import copy
import math
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Callable, ContextManager, Iterable, Sequence

import numpy as np
import torch
from sklearn.metrics import (
    average_precision_score,
    balanced_accuracy_score,
    roc_auc_score,
)
from torch import nn

from acoustic_env.config.learning import SELECTION_METRICS
from acoustic_env.learn.metrics import headline
from acoustic_env.learn.mlp import loss_function, loss_target, probabilities
from acoustic_env.candidates import PARAMS

# Used when the tuning is off (``trials = 0``) and as the tuning's first guess: the zoo's MLP defaults.
DEFAULT_PARAMS: dict[str, Any] = PARAMS["mlp"]["network"]


#: The per-round metrics of a run that make its training history (the report's figure).
HISTORY = ("epoch", "train_score", "val_score")


@dataclass(frozen=True)
class Schedule:
    """How long to train: rounds of at least ``steps_per_round`` steps, stopped ``patience`` rounds after the best
    (fewer on a small table with ``patience_epochs``: ``rounds_of_patience``).

    ``monitor``: the best round is the one of highest validation score (``"score"``) or of
    lowest validation loss (``"loss"``), by more than ``min_delta``.
    """

    max_rounds: int = 30
    patience: int = 6
    steps_per_round: int = 50
    monitor: str = "score"
    min_delta: float = 0.0
    patience_epochs: int | None = None

    def rounds_of_patience(self, epochs_per_round: int) -> int:
        """The rounds without improvement that stop a run of ``epochs_per_round`` epochs a round: ``patience``, or
        fewer where a round is many epochs, so that about ``patience_epochs`` epochs (when set) pass without
        improvement, never fewer than 2 rounds.

        Why: a round is at least ``steps_per_round`` steps, so a small table's round is dozens of epochs, and 4 rounds
        without improvement are a hundred or more; a large table's round is about one epoch, and there the patience in
        rounds is what it says."""
        if self.patience_epochs is None:
            return self.patience
        return min(self.patience, max(2, math.ceil(self.patience_epochs / epochs_per_round)))


#: ``augment(x, y, generator) -> (x, y)``: a training batch transformed (inputs on the device, targets in the
#: loss's form); ``generator`` is the loop's own, seeded, so an augmented run is reproducible.
Augment = Callable[[torch.Tensor, torch.Tensor, torch.Generator], tuple[torch.Tensor, torch.Tensor]]
RoundFn = Callable[[dict[str, float], bool, nn.Module], None]
#: (inputs, targets) of some rows: numpy arrays or tensors, which the loop moves to its device.
Batch = tuple[Any, Any]
#: Rows per forward pass when scoring (no gradients are kept, so batches can be large).
SCORE_BATCH = 8192


@dataclass(frozen=True)
class Stream:
    """Rows that arrive in batches instead of arrays: a table too large to hold, read as the loop goes.

    ``train(batch_size)``: one epoch of this worker's training rows, shuffled, in batches of
    ``batch_size`` (under data parallelism every worker yields the same number of batches, or
    the one with a batch more waits forever for the others' gradients). ``val()``: every
    validation row once, in batches; every worker scores them all and follows rank 0's figure (``agreed``).
    ``labels``: the targets of all the training rows, in any order: the class weights' counts
    and an epoch's steps. ``rows()``: this worker's training rows once for the training score,
    None where that pass is not worth its cost (a streamed table: a second read per round).
    """

    train: Callable[[int], Iterable[Batch]]
    val: Callable[[], Iterable[Batch]]
    labels: np.ndarray
    rows: Callable[[], Iterable[Batch]] | None = None


#: Each selection metric (``--select-by``) in the report's words.
METRIC_NAMES = {"roc_auc": "ROC AUC", "map": "mAP", "macro_f1": "macro F1", "accuracy": "accuracy"}


def default_metric(kind: str) -> str:
    """The selection metric when ``--select-by`` is ``auto``: ROC AUC (single-label) or mAP (multi-label)."""
    return "map" if kind == "multi_label" else "roc_auc"


def val_score(kind: str, y: np.ndarray, proba: np.ndarray, metric: str | None = None) -> float:
    """The model-selection metric (``metric``, one of ``SELECTION_METRICS``; None: ``default_metric(kind)``).

    ROC AUC is macro one-vs-rest (multi-label: over the labels with both values present); mAP is the macro
    average precision over the classes (labels) present. ``macro_f1`` and ``accuracy`` are ``learn.metrics``'
    headline figures: the argmax class, or every label thresholded at 0.5 (the project keeps no per-label
    thresholds), accuracy then being exact-match. A single-label ROC AUC falls back to balanced accuracy when
    the validation split lacks a class (AUC is undefined there), so tiny data sets still rank models.
    """
    metric = metric or default_metric(kind)
    if metric not in SELECTION_METRICS:
        raise ValueError(f"select_by: must be one of {', '.join(SELECTION_METRICS)}, got {metric!r}")
    if metric in ("macro_f1", "accuracy") or (metric == "roc_auc" and kind == "multi_label"):
        return float(headline(kind, y, proba)[metric] or 0.0)
    if metric == "map":
        truth = y if kind == "multi_label" else y[:, None] == np.arange(proba.shape[1])
        cols = [j for j in range(truth.shape[1]) if 0 < truth[:, j].sum() < len(truth)]
        return float(np.mean([average_precision_score(truth[:, j], proba[:, j]) for j in cols])) if cols else 0.0
    if len(np.unique(y)) == proba.shape[1]:
        return float(roc_auc_score(y, proba[:, 1]) if proba.shape[1] == 2 else
                     roc_auc_score(y, proba, multi_class="ovr", average="macro"))
    return float(balanced_accuracy_score(y, proba.argmax(axis=1)))


def class_weights(class_weight: str | Sequence[float] | None, y: np.ndarray, kind: str,
                  n_classes: int) -> np.ndarray | None:
    """The loss's per-class weights: None, ``"balanced"`` (computed from ``y``) or the given ones, checked.

    Balanced single-label weights are scikit-learn's, ``n / (K × count)`` (0 for a class
    absent from ``y``), so a rare class weighs as much in the loss as a common one; a
    multi-label column's is its negatives over its positives (the weight of a positive).
    """
    if class_weight is None:
        return None
    if isinstance(class_weight, str):
        if class_weight != "balanced":
            raise ValueError(f"class_weight: must be None, 'balanced' or {n_classes} weights, got {class_weight!r}")
        if kind == "multi_label":
            positives = np.asarray(y, dtype=np.float64).sum(axis=0)
            return np.where(positives > 0, (len(y) - positives) / np.maximum(positives, 1), 1.0)
        counts = np.bincount(np.asarray(y), minlength=n_classes).astype(np.float64)
        return np.where(counts > 0, len(y) / (n_classes * np.maximum(counts, 1)), 0.0)
    weights = np.asarray(class_weight, dtype=np.float64)
    if weights.shape != (n_classes,) or not (np.isfinite(weights) & (weights >= 0)).all():
        raise ValueError(f"class_weight: must be {n_classes} finite weights >= 0, got {list(class_weight)}")
    return weights


def draw_weights(y: np.ndarray, kind: str) -> torch.Tensor:
    """Each training row's chance of being drawn by the balanced sampler.

    Single-label: 1 / its class's count, so every class fills the batches alike. Multi-label: 1 / the count of
    its rarest positive label (a clip of a rare and a common label is drawn for the rare one), so the rarest
    label's clips are drawn about as often as any label's; a clip with no positive label weighs as one of the
    commonest label's. Labels that co-occur keep co-occurring: the draw reweighs clips, not labels.
    """
    y = np.asarray(y)
    if kind != "multi_label":
        return torch.tensor(1.0 / np.bincount(y)[y], dtype=torch.float64)
    counts = y.sum(axis=0).astype(np.float64)
    rarest = np.where(y > 0, counts, np.inf).min(axis=1)
    return torch.tensor(1.0 / np.where(np.isfinite(rarest), rarest, max(counts.max(), 1.0)), dtype=torch.float64)


def precision(device: torch.device | str, mixed: bool) -> tuple[Callable[[], ContextManager[Any]], Any]:
    """(the context a forward pass runs in, the gradient scaler or None) for ``device``.

    Mixed precision is autocast on CUDA only (a CPU's autocast is slower than float32 for
    these networks): bfloat16 where the card supports it, which needs no loss scaling,
    else float16 with a ``GradScaler`` against underflowing gradients.
    """
    dev = torch.device(device)
    if not (mixed and dev.type == "cuda"):
        return nullcontext, None
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    return (lambda: torch.autocast("cuda", dtype=dtype)), scaler


def equal_share(n: int, rank: int, world: int) -> slice:
    """The rows of ``rank``'s share of ``n`` among ``world`` data-parallel workers: every ``world``-th row from
    ``rank`` on, ``n // world`` of them (the last ``n % world`` rows left out), so that every rank takes the same
    number of steps (a rank with a batch more would wait for ever for the others' gradients). Interleaved, not
    consecutive: rows stored in class or recording order still give every rank a mix, whose batch statistics
    (the CNN's batch norm) are each rank's own."""
    return slice(rank, n // world * world, world)


def in_memory(data: dict[str, np.ndarray], kind: str, seed: int, *, balanced_sampler: bool = False,
              device: torch.device | str = "cpu", rank: int = 0, world: int = 1) -> Stream:
    """Arrays (x_train, y_train, x_val, y_val) as the loop's ``Stream``: this rank's share of the training rows
    (``equal_share``) on the device, in a new order (or a new balanced draw) every epoch from a generator seeded with
    ``seed``."""
    mine = equal_share(len(data["x_train"]), rank, world)
    x, y = data["x_train"][mine], data["y_train"][mine]
    draws = draw_weights(y, kind) if balanced_sampler else None
    # copies: the arrays may be read-only views of Ray's object store
    xt, yt = torch.tensor(x, dtype=torch.float32, device=device), torch.tensor(y, device=device)
    gen = torch.Generator().manual_seed(seed)

    def train(batch: int) -> Iterable[Batch]:
        order = (torch.randperm(len(xt), generator=gen) if draws is None else
                 torch.multinomial(draws, len(xt), replacement=True, generator=gen)).to(device)
        for i in range(0, len(xt), batch):
            yield xt[order[i:i + batch]], yt[order[i:i + batch]]

    def chunks(xs: np.ndarray, ys: np.ndarray) -> Callable[[], Iterable[Batch]]:
        return lambda: ((xs[i:i + SCORE_BATCH], ys[i:i + SCORE_BATCH]) for i in range(0, len(xs), SCORE_BATCH))

    return Stream(train, chunks(data["x_val"], data["y_val"]), data["y_train"], chunks(x, y))


def scored(model: nn.Module, batches: Iterable[Batch], device: torch.device | str) -> tuple[torch.Tensor, np.ndarray]:
    """Evaluation-mode logits of every row of ``batches``, and their targets, in the order the batches came."""
    model.eval()
    logits, targets = [], []
    with torch.no_grad():
        for xb, yb in batches:
            logits.append(model(torch.as_tensor(xb, dtype=torch.float32, device=device)))
            targets.append(torch.as_tensor(yb).cpu().numpy())
    if not logits:
        raise ValueError("no rows to score: the validation (or training) rows are empty")
    return torch.cat(logits), np.concatenate(targets)


def agreed(value: float, device: torch.device | str, world: int) -> float:
    """Rank 0's ``value`` on every rank: the round's early-stopping figure.

    Every rank scores all the validation rows, but a streamed set comes to each in its own order, so the sums can
    differ in the last bits; a rank that stopped while another trained on would leave that one waiting in its next
    gradient exchange for ever. One broadcast a round makes the decision the same everywhere.
    """
    if world == 1:
        return value
    shared = torch.tensor([value], dtype=torch.float64, device=device)
    torch.distributed.broadcast(shared, src=0)
    return float(shared.item())


#: Of a ``cosine`` schedule's steps, the share spent warming up from a tenth of the rate.
WARMUP = 0.1


def lr_factor(schedule: str, step: int, total: int) -> float:
    """The learning rate of step ``step`` of at most ``total`` (``Schedule.max_rounds``' steps) over the set one.

    ``constant``: 1. ``cosine``: from 0.1 up to 1 over the first ``WARMUP`` of the steps, then down a half cosine to 0
    at the last; a run stopped early stops on the way down, with the best round's weights kept. A stream's epoch can
    take a step more than counted: past ``total`` the rate stays at the end of the curve.
    """
    if schedule == "constant":
        return 1.0
    if schedule != "cosine":
        raise ValueError(f"lr_schedule: must be 'constant' or 'cosine', got {schedule!r}")
    warm = max(1, round(WARMUP * total))
    if step < warm:
        return 0.1 + 0.9 * step / warm
    return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))


#: The L-BFGS iterations of a full-batch fit at most (scikit-learn's ``MLPClassifier``'s ``max_iter``).
FULL_BATCH_ITERATIONS = 200


def full_batch(model: nn.Module, x: np.ndarray, y: np.ndarray, kind: str, n_classes: int, l2: float, seed: int, *,
               class_weight: str | Sequence[float] | None = None, balanced_sampler: bool = False) -> None:
    """Fit ``model`` on all the rows at once with L-BFGS to the minimum of the task's loss (a row's summed over its
    labels) plus an L2 penalty on its weights (not its biases): ``l2`` / 2 times their squared sum over the rows'
    count, scikit-learn's ``MLPClassifier``'s ``alpha`` (on a logistic regression, 1/C).

    Why: on a small table the mini-batch loop (``fit``) holds out a few groups to stop on, and its stop follows the
    few clips held out; scikit-learn advises L-BFGS for small data, and a penalised full-batch fit learns from every
    row and ends where the penalty puts it, not where a noisy round did. On the forest recordings and the demo it
    lifted the MLP's out-of-fold ROC AUC from 0.883 to 0.945 and 0.866 to 0.891 (benchmarks/RESULTS.md, "Leak-free
    inner folds"). Dropout is off (the module in evaluation mode): L-BFGS needs a deterministic objective.
    ``balanced_sampler``: the rows are the sampler's one balanced draw (``draw_weights``, seeded with ``seed``); the
    class weights weigh the loss as in ``fit``.
    """
    if balanced_sampler:
        draw = torch.multinomial(draw_weights(y, kind), len(y), replacement=True,
                                 generator=torch.Generator().manual_seed(seed))
        x, y = x[draw.numpy()], y[draw.numpy()]
    xt = torch.as_tensor(x, dtype=torch.float32)
    target = loss_target(torch.as_tensor(y), kind, n_classes)
    criterion = loss_function(kind, n_classes, class_weights(class_weight, y, kind, n_classes))
    weights = [p for name, p in model.named_parameters() if name.endswith("weight")]
    labels = n_classes if kind == "multi_label" else 1  # the loss's mean over a row's labels, as their sum
    optimizer = torch.optim.LBFGS(model.parameters(), max_iter=FULL_BATCH_ITERATIONS, tolerance_grad=1e-5,
                                  line_search_fn="strong_wolfe")
    model.eval()

    def objective() -> torch.Tensor:
        optimizer.zero_grad()
        loss = labels * criterion(model(xt), target) + 0.5 * l2 / len(xt) * sum((w * w).sum() for w in weights)
        loss.backward()
        return loss

    optimizer.step(objective)


def fit(model: nn.Module, data: dict[str, np.ndarray] | Stream, kind: str, n_classes: int, params: dict[str, Any],
        schedule: Schedule, seed: int, *, class_weight: str | Sequence[float] | None = None,
        balanced_sampler: bool = False, augment: Augment | None = None, mixed_precision: bool = False,
        lr_schedule: str = "constant", on_round: RoundFn | None = None, score_train: bool = True,
        device: torch.device | str = "cpu", rank: int = 0, world: int = 1) -> dict[str, Any]:
    """Train ``model`` on ``data``; it ends holding the best round's state.

    ``data``: arrays (x_train, y_train, x_val, y_val; ``in_memory``) or a ``Stream`` of
    batches, already this rank's share. ``params``: ``lr``, ``weight_decay`` (AdamW's) and
    ``batch_size``, shared out among ``world`` data-parallel workers. ``seed`` orders the
    batches of arrays (the caller seeds the network's initial weights). The options are the
    module docstring's; the balanced sampler draws from arrays only. ``score_train``: also
    score the training rows after each round (the history's ``train_score``, NaN without; a
    pass over the training rows, 40 % of a small CNN's time). ``lr_schedule``: the learning rate of each step
    (``lr_factor``). Returns ``best_val_score`` and
    ``best_val_loss`` (the best round's), ``best_state`` (None if no round improved),
    ``history`` (each round's metrics) and ``epochs_per_round``.
    """
    if schedule.monitor not in ("score", "loss"):
        raise ValueError(f"monitor: must be 'score' or 'loss', got {schedule.monitor!r}")
    if isinstance(data, Stream):
        if balanced_sampler:
            raise ValueError("balanced_sampler: draws rows from arrays in memory; a stream of batches cannot")
        if score_train and data.rows is None:
            raise ValueError("score_train: this stream has no pass over the training rows; pass score_train=False")
        stream = data
    else:
        stream = in_memory(data, kind, seed, balanced_sampler=balanced_sampler, device=device, rank=rank, world=world)
    weights = class_weights(class_weight, stream.labels, kind, n_classes)
    batch = max(1, int(params["batch_size"]) // world)
    steps_per_epoch = max(1, math.ceil(len(stream.labels) // world / batch))
    epochs_per_round = max(1, math.ceil(schedule.steps_per_round / steps_per_epoch))
    # fused: one kernel for all of a step's parameters; on a CPU a small network's step takes a third less time
    optimizer = torch.optim.AdamW(model.parameters(), lr=float(params["lr"]), weight_decay=float(params["weight_decay"]),
                                  fused=torch.device(device).type in ("cpu", "cuda"))
    criterion = loss_function(kind, n_classes, weights, device)
    cast, scaler = precision(device, mixed_precision)
    augment_gen = torch.Generator(device=device).manual_seed(seed + 1)
    total_steps, step = schedule.max_rounds * epochs_per_round * steps_per_epoch, 0
    patience = schedule.rounds_of_patience(epochs_per_round)
    best, best_score, best_loss, best_state, since_best, history = -math.inf, -math.inf, math.inf, None, 0, []
    for rnd in range(1, schedule.max_rounds + 1):
        model.train()
        total, count = 0.0, 0
        for _ in range(epochs_per_round):
            for xb, yb in stream.train(batch):
                xb = torch.as_tensor(xb, dtype=torch.float32, device=device)
                yb = loss_target(torch.as_tensor(yb, device=device), kind, n_classes)
                if augment is not None:
                    xb, yb = augment(xb, yb, augment_gen)
                for group in optimizer.param_groups:
                    group["lr"] = float(params["lr"]) * lr_factor(lr_schedule, step, total_steps)
                step += 1
                optimizer.zero_grad()
                with cast():
                    loss = criterion(model(xb), yb)
                if scaler is None:
                    loss.backward()
                    optimizer.step()
                else:
                    scaler.scale(loss).backward()
                    scaler.step(optimizer)
                    scaler.update()
                total += float(loss.detach()) * len(xb)
                count += len(xb)
        with cast():
            val_logits, y_val = scored(model, stream.val(), device)
            val_logits = val_logits.float()
            if score_train:  # the same score on this rank's training rows: the report's training-history figure
                train_logits, y_train = scored(model, stream.rows(), device)
        train_score = (val_score(kind, y_train, probabilities(train_logits.float(), kind, n_classes))
                       if score_train else math.nan)
        score = val_score(kind, y_val, probabilities(val_logits, kind, n_classes))
        with torch.no_grad():
            val_loss = float(criterion(val_logits, loss_target(torch.as_tensor(y_val, device=device), kind,
                                                               n_classes)))
        value = agreed(score if schedule.monitor == "score" else -val_loss, device, world)
        improved = value > best + schedule.min_delta
        if improved:
            best, best_score, best_loss, since_best = value, score, val_loss, 0
            best_state = copy.deepcopy(getattr(model, "module", model).state_dict())
        else:
            since_best += 1
        metrics = {"round": rnd, "epoch": rnd * epochs_per_round, "train_loss": total / max(count, 1),
                   "train_score": train_score, "val_score": score, "val_loss": val_loss,
                   "best_val_score": best_score}
        history.append(metrics)
        if on_round:
            on_round(metrics, improved, model)
        if since_best >= patience:
            break
    if best_state is not None:
        getattr(model, "module", model).load_state_dict(best_state)
    return {"best_val_score": best_score, "best_val_loss": best_loss, "best_state": best_state, "history": history,
            "epochs_per_round": epochs_per_round}
