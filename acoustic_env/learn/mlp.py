"""The classifier network and the output conventions of every network the training loop fits (PyTorch only).

Binary tasks use one logit (sigmoid), multi-class tasks one logit per class
(softmax), multi-label tasks one logit per class (independent sigmoids, BCE).
Probabilities always come back as [n, classes] so callers need not care which.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "tanh": nn.Tanh}


class MLP(nn.Module):
    """``depth`` hidden layers of ``width`` units, each followed by the activation and dropout (``net``); with
    ``skip``, a linear path from the inputs to the logits beside them, so that the network holds the logistic
    regression on the same inputs and its hidden layers add what that misses. ``architecture`` always asks for it:
    without it (and stopped on clips drawn at random, ``learn.mlp_estimator``) the network trailed the logistic
    regression by 0.02-0.04 ROC AUC on the forest recordings and the demo, with it within 0.01 (benchmarks/RESULTS.md,
    "The MLP against logistic regression"); ``skip=False`` is the network of a model saved before, which loads as it
    was."""

    def __init__(self, in_dim: int, n_out: int, depth: int, width: int, activation: str, dropout: float,
                 skip: bool = False):
        super().__init__()
        layers: list[nn.Module] = []
        d = in_dim
        for _ in range(depth):
            layers += [nn.Linear(d, width), ACTIVATIONS[activation](), nn.Dropout(dropout)]
            d = width
        layers.append(nn.Linear(d, n_out))
        self.net = nn.Sequential(*layers)
        self.skip = nn.Linear(in_dim, n_out) if skip else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x) if self.skip is None else self.net(x) + self.skip(x)


def layer_table(module: nn.Module) -> list[dict[str, Any]]:
    """The network's layers in order, read from the module itself (what was trained, not the settings asked for):
    ``{"layer": "linear", "in", "out"}``, ``{"layer": "activation", "name"}``, ``{"layer": "dropout", "p"}``. An
    ``MLP``'s hidden path only: its linear skip path (``MLP.skip``) is no layer of that chain."""
    names = {cls: name for name, cls in ACTIVATIONS.items()}
    rows: list[dict[str, Any]] = []
    for m in getattr(module, "net", module).modules():
        if isinstance(m, nn.Linear):
            rows.append({"layer": "linear", "in": m.in_features, "out": m.out_features})
        elif type(m) in names:
            rows.append({"layer": "activation", "name": names[type(m)]})
        elif isinstance(m, nn.Dropout):
            rows.append({"layer": "dropout", "p": float(m.p)})
    return rows


def architecture(in_dim: int, kind: str, n_classes: int, params: dict[str, Any]) -> dict[str, Any]:
    """The constructor arguments of the network, as stored in the model artifact: the settings ``params``, and
    always the linear skip path (``MLP``)."""
    return {"in_dim": int(in_dim), "n_out": n_outputs(kind, n_classes), "depth": int(params["depth"]),
            "width": int(params["width"]), "activation": str(params["activation"]), "dropout": float(params["dropout"]),
            "skip": True}


def n_outputs(kind: str, n_classes: int) -> int:
    return 1 if kind == "single_label" and n_classes == 2 else n_classes


def loss_function(kind: str, n_classes: int, weights: np.ndarray | None = None,
                  device: str | torch.device = "cpu") -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The loss of the task's logits; ``weights`` (one per class, ``learn.fit.class_weights``) weigh it.

    A weighted single-label loss is the weighted mean over the batch (as ``CrossEntropyLoss``'s
    ``weight``, also for the one logit of two classes); a multi-label weight is the weight of
    a positive of that label (``BCEWithLogitsLoss``'s ``pos_weight``).
    """
    if weights is None:
        return nn.CrossEntropyLoss() if kind == "single_label" and n_classes > 2 else nn.BCEWithLogitsLoss()
    w = torch.as_tensor(weights, dtype=torch.float32, device=device)
    if kind == "multi_label":
        return nn.BCEWithLogitsLoss(pos_weight=w)
    if n_classes > 2:
        return nn.CrossEntropyLoss(weight=w)
    per_row = nn.BCEWithLogitsLoss(reduction="none")

    def binary(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        row_weights = w[target.reshape(-1).long()]
        return (per_row(logits, target).reshape(-1) * row_weights).sum() / row_weights.sum()

    return binary


def loss_target(y: torch.Tensor, kind: str, n_classes: int) -> torch.Tensor:
    """Targets in the form the loss expects (float column for one logit, class indices for softmax)."""
    if kind == "single_label" and n_classes == 2:
        return y.float().reshape(-1, 1)
    return y.long() if kind == "single_label" else y.float()


def probabilities(logits: torch.Tensor, kind: str, n_classes: int) -> np.ndarray:
    """[n, classes] probabilities from the network's logits."""
    with torch.no_grad():
        if kind == "single_label" and n_classes == 2:
            p = torch.sigmoid(logits.reshape(-1))
            out = torch.stack([1 - p, p], dim=1)
        elif kind == "single_label":
            out = torch.softmax(logits, dim=1)
        else:
            out = torch.sigmoid(logits)
    return out.detach().cpu().numpy().astype(np.float64)


def logits_of(model: nn.Module, x: np.ndarray, batch_size: int = 8192,
              device: str | torch.device = "cpu") -> torch.Tensor:
    """Evaluation-mode logits for an array of inputs (rows first), in batches."""
    model.eval()
    with torch.no_grad():
        parts = [model(torch.as_tensor(x[i:i + batch_size], dtype=torch.float32, device=device))
                 for i in range(0, len(x), batch_size)]
    return torch.cat(parts) if parts else torch.empty(0)


def predict_proba(model: nn.Module, x: np.ndarray, kind: str, n_classes: int, batch_size: int = 8192,
                  device: str | torch.device = "cpu") -> np.ndarray:
    """Evaluation-mode probabilities for an array of inputs, in batches."""
    if not len(x):
        return np.empty((0, n_classes))
    return probabilities(logits_of(model, x, batch_size, device), kind, n_classes)
