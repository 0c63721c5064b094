"""The training loop: rounds of mini-batch steps, a validation score after each, early stopping.

Plain PyTorch on numpy arrays, so the same loop runs inside a Ray Train
worker (``distributed.tune.worker_loop``), in a Ray task (feature-group
ablations) or in a test. Its one caller is the MLP estimator's ``train``
(``learn.mlp_estimator``), which builds the network. A *round* is at least ``steps_per_round`` optimizer steps (one epoch
of a large table, several epochs of a small one): validating and reporting
after every epoch of a 150-clip table would spend more time reporting than
learning, and the search scheduler counts rounds, not epochs.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from sklearn.metrics import (
    average_precision_score,
    balanced_accuracy_score,
    roc_auc_score,
)
from torch import nn

from acoustic_env.learn.mlp import loss_function, loss_target, predict_proba
from acoustic_env.learn.params import PARAMS

# Used when the search is off (``trials = 0``) and as the search's first guess: the zoo's MLP defaults.
DEFAULT_PARAMS: dict[str, Any] = PARAMS["mlp"]["network"]


#: The per-round metrics of a run that make its training history (the report's figure).
HISTORY = ("epoch", "train_score", "val_score")


@dataclass(frozen=True)
class Schedule:
    max_rounds: int = 30
    patience: int = 6
    steps_per_round: int = 50


def val_score(kind: str, y: np.ndarray, proba: np.ndarray) -> float:
    """The model-selection metric: ROC AUC (single-label; macro one-vs-rest) or mAP (multi-label).

    Falls back to balanced accuracy when the validation split lacks a class
    (AUC is undefined there), so tiny data sets still rank models.
    """
    if kind == "multi_label":
        cols = [j for j in range(y.shape[1]) if 0 < y[:, j].sum() < len(y)]
        return float(np.mean([average_precision_score(y[:, j], proba[:, j]) for j in cols])) if cols else 0.0
    if len(np.unique(y)) == proba.shape[1]:
        return float(roc_auc_score(y, proba[:, 1]) if proba.shape[1] == 2 else
                     roc_auc_score(y, proba, multi_class="ovr", average="macro"))
    return float(balanced_accuracy_score(y, proba.argmax(axis=1)))


RoundFn = Callable[[dict[str, float], bool, nn.Module], None]


def fit(model: nn.Module, data: dict[str, np.ndarray], kind: str, n_classes: int, params: dict[str, Any],
        schedule: Schedule, seed: int, on_round: RoundFn | None = None, device: torch.device | str = "cpu",
        rank: int = 0, world: int = 1) -> dict[str, Any]:
    """Train ``model`` on ``data`` (x_train, y_train, x_val, y_val); keep the best state by validation score.

    With ``world > 1`` (data-parallel workers) each rank trains on an equal
    share of the training rows, so every rank takes the same number of steps
    (a rank with one step more would wait forever for the others' gradients).
    Every rank scores the whole validation split, so all stop together.
    """
    x, y = data["x_train"], data["y_train"]
    share = len(x) // world
    x, y = x[rank * share:(rank + 1) * share], y[rank * share:(rank + 1) * share]
    # copies: the arrays may be read-only views of Ray's object store
    xt = torch.tensor(x, dtype=torch.float32, device=device)
    yt = loss_target(torch.tensor(y, device=device), kind, n_classes)
    batch = max(1, int(params["batch_size"]) // world)
    steps_per_epoch = max(1, math.ceil(len(xt) / batch))
    epochs_per_round = max(1, math.ceil(schedule.steps_per_round / steps_per_epoch))
    # fused: one kernel for all of a step's parameters; on a CPU a small network's step takes a third less time
    optimizer = torch.optim.AdamW(model.parameters(), lr=float(params["lr"]), weight_decay=float(params["weight_decay"]),
                                  fused=torch.device(device).type in ("cpu", "cuda"))
    criterion = loss_function(kind, n_classes)
    gen = torch.Generator().manual_seed(seed)
    best, best_state, since_best, history = -math.inf, None, 0, []
    for rnd in range(1, schedule.max_rounds + 1):
        model.train()
        total, count = 0.0, 0
        for _ in range(epochs_per_round):
            order = torch.randperm(len(xt), generator=gen).to(device)
            for i in range(0, len(xt), batch):
                idx = order[i:i + batch]
                optimizer.zero_grad()
                loss = criterion(model(xt[idx]), yt[idx])
                loss.backward()
                optimizer.step()
                total += float(loss.detach()) * len(idx)
                count += len(idx)
        proba = predict_proba(model, data["x_val"], kind, n_classes, device=device)
        score = val_score(kind, data["y_val"], proba)
        # the same score on this rank's training rows: the report's training-history figure
        train_score = val_score(kind, y, predict_proba(model, x, kind, n_classes, device=device))
        improved = score > best
        if improved:
            best, since_best = score, 0
            best_state = copy.deepcopy(getattr(model, "module", model).state_dict())
        else:
            since_best += 1
        metrics = {"round": rnd, "epoch": rnd * epochs_per_round, "train_loss": total / max(count, 1),
                   "train_score": train_score, "val_score": score, "best_val_score": best}
        history.append(metrics)
        if on_round:
            on_round(metrics, improved, model)
        if since_best >= schedule.patience:
            break
    return {"best_val_score": best, "best_state": best_state, "history": history,
            "epochs_per_round": epochs_per_round}
