"""The classifier network and its output conventions (PyTorch only).

Binary tasks use one logit (sigmoid), multi-class tasks one logit per class
(softmax), multi-label tasks one logit per class (independent sigmoids, BCE).
Probabilities always come back as [n, classes] so callers need not care which.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "tanh": nn.Tanh}


class MLP(nn.Module):
    """``depth`` hidden layers of ``width`` units, each followed by the activation and dropout."""

    def __init__(self, in_dim: int, n_out: int, depth: int, width: int, activation: str, dropout: float):
        super().__init__()
        layers: list[nn.Module] = []
        d = in_dim
        for _ in range(depth):
            layers += [nn.Linear(d, width), ACTIVATIONS[activation](), nn.Dropout(dropout)]
            d = width
        layers.append(nn.Linear(d, n_out))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def architecture(in_dim: int, kind: str, n_classes: int, params: dict[str, Any]) -> dict[str, Any]:
    """The constructor arguments of the network, as stored in the model artifact."""
    return {"in_dim": int(in_dim), "n_out": n_outputs(kind, n_classes), "depth": int(params["depth"]),
            "width": int(params["width"]), "activation": str(params["activation"]), "dropout": float(params["dropout"])}


def n_outputs(kind: str, n_classes: int) -> int:
    return 1 if kind == "single_label" and n_classes == 2 else n_classes


def loss_function(kind: str, n_classes: int) -> nn.Module:
    return nn.CrossEntropyLoss() if kind == "single_label" and n_classes > 2 else nn.BCEWithLogitsLoss()


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


def predict_proba(model: nn.Module, x: np.ndarray, kind: str, n_classes: int, batch_size: int = 8192,
                  device: str | torch.device = "cpu") -> np.ndarray:
    """Evaluation-mode probabilities for a float32 matrix, in batches."""
    model.eval()
    parts = []
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            xb = torch.as_tensor(x[i:i + batch_size], dtype=torch.float32, device=device)
            parts.append(probabilities(model(xb), kind, n_classes))
    return np.vstack(parts) if parts else np.empty((0, n_classes))
