"""The ``cnn`` candidate: a small CNN over a clip's log-mel image, with SpecAugment, shifts and mixup.

The other candidates learn from per-group PCA components of clip-level vectors; this one
learns from the stored image itself (``table.IMAGE_TYPE``, column ``logmel``: 64 mel bands,
100 frames a second, in dB), so it can use where in time and frequency the energy lies.

* **Inputs.** Every image is brought to the model's window, ``frames`` frames (the training
  clips' median length), by ``learn.window.fit_width``: centred, cut or padded with the image's own
  minimum. The job stacks them into a [clips, bands, frames] array, the model's ``X``.
* **Network** (``SpectroCNN``): the input standardised by the training images' mean and
  standard deviation (buffers, so they travel in the ``state_dict``), then one block per
  entry of ``channels`` (3 × 3 convolution, batch norm, ReLU, 2 × 2 max pooling), the mean
  over the remaining bands, the mean and the max over time (global: any number of frames
  scores), dropout and one linear layer to the logits of ``learn.mlp``'s conventions.
* **Training** (``learn.spectro_estimator.CNNClassifier``): the one loop (``learn.fit``), early stopping on the
  validation loss of an inner split of the training rows that keeps every group on one side.
  The loop's ``augment`` hook (``augmenter``) transforms training batches only: a window of
  ``crop_frames`` frames at a random offset (``shift``; off: the centred window), up to
  ``time_masks`` time masks of at most ``time_mask`` frames and ``freq_masks`` frequency
  masks of at most ``freq_mask`` bands (each set to the image's mean), and mixup
  (``mixup``: the Beta(α, α) weight; 0 is off). Every switch is an entry of
  ``learn.params.PARAMS["cnn"]["augment"]`` and is recorded with the model's parameters.
  Validation and test images are never augmented: they are scored whole, as predict scores them.

This module needs numpy and torch only (the saved model rebuilds the network from it); the estimator, which
trains it, is ``learn.spectro_estimator`` (scikit-learn's interface), as ``learn.mlp`` and ``learn.mlp_estimator``.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from acoustic_env.learn.mlp import n_outputs

class SpectroCNN(nn.Module):
    """(batch, bands, frames) dB images → ``n_out`` logits; ``mean``/``std`` standardise the input."""

    def __init__(self, bands: int, n_out: int, channels: Sequence[int], dropout: float, input_pool: Sequence[int]):
        super().__init__()
        blocks: list[nn.Module] = [nn.AvgPool2d(tuple(input_pool))]
        c_in = 1
        for c in channels:
            blocks += [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(), nn.MaxPool2d(2)]
            c_in = c
        self.bands = bands
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * c_in, n_out))
        self.register_buffer("mean", torch.zeros(()))
        self.register_buffer("std", torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.blocks(((x - self.mean) / self.std).unsqueeze(1)).mean(dim=2)  # (batch, channels, frames')
        return self.head(torch.cat([z.mean(dim=2), z.amax(dim=2)], dim=1))


def architecture(bands: int, kind: str, n_classes: int, params: dict[str, Any]) -> dict[str, Any]:
    """The constructor arguments of ``SpectroCNN``, as stored in the model artifact (``network``: which class)."""
    return {"network": "cnn", "bands": int(bands), "n_out": n_outputs(kind, n_classes),
            "channels": [int(c) for c in params["channels"]], "dropout": float(params["dropout"]),
            "input_pool": [int(p) for p in params["input_pool"]]}


# --- augmentation: transforms of a training batch, each switchable ----------------------------------------------

def crop(x: torch.Tensor, frames: int, shift: bool, gen: torch.Generator) -> torch.Tensor:
    """A window of ``frames`` frames of every image: at a random offset per image (``shift``), else centred."""
    total = x.shape[2]
    if frames >= total:
        return x
    if not shift:
        start = (total - frames) // 2
        return x[:, :, start:start + frames]
    starts = torch.randint(0, total - frames + 1, (len(x),), generator=gen, device=gen.device).to(x.device)
    index = starts[:, None] + torch.arange(frames, device=x.device)[None, :]
    return torch.gather(x, 2, index[:, None, :].expand(-1, x.shape[1], -1))


def mask(x: torch.Tensor, axis: int, count: int, widest: int, gen: torch.Generator) -> torch.Tensor:
    """``count`` masks per image along ``axis`` (1: bands, 2: frames), each of 0..``widest`` cells, set to the
    image's mean (SpecAugment's frequency and time masks); a new tensor, ``x`` untouched."""
    if count <= 0 or widest <= 0:
        return x
    n, size = len(x), x.shape[axis]
    cells = torch.arange(size, device=x.device)[None, :]
    hidden = torch.zeros((n, size), dtype=torch.bool, device=x.device)
    for _ in range(count):
        width = torch.randint(0, min(widest, size) + 1, (n, 1), generator=gen, device=gen.device).to(x.device)
        start = (torch.rand((n, 1), generator=gen, device=gen.device).to(x.device) * (size - width + 1)).long()
        hidden |= (cells >= start) & (cells < start + width)
    hidden = hidden[:, :, None] if axis == 1 else hidden[:, None, :]
    return torch.where(hidden, x.mean(dim=(1, 2), keepdim=True), x)


def mixup(x: torch.Tensor, y: torch.Tensor, alpha: float, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Each image blended with another of the batch, λ ~ Beta(α, α) per image, and its targets likewise.

    ``y`` must be float targets (probabilities): ``augmenter`` turns class indices into one-hot rows first.
    """
    draw = int(torch.randint(0, 2 ** 31 - 1, (1,), generator=gen, device=gen.device))  # seeded, as the masks
    lam = torch.tensor(np.random.default_rng(draw).beta(alpha, alpha, len(x)), dtype=x.dtype, device=x.device)
    partner = torch.randperm(len(x), generator=gen, device=gen.device).to(x.device)
    lam_x = lam.view(-1, *([1] * (x.dim() - 1)))
    lam_y = lam.view(-1, *([1] * (y.dim() - 1)))
    return lam_x * x + (1 - lam_x) * x[partner], lam_y * y + (1 - lam_y) * y[partner]


def augmenter(settings: dict[str, Any], kind: str, n_classes: int) -> Callable[..., tuple[torch.Tensor, torch.Tensor]]:
    """``learn.fit``'s ``augment(x, y, generator)`` for ``settings`` (``PARAMS["cnn"]["augment"]``'s entries)."""
    def augment(x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        x = crop(x, int(settings["crop_frames"]), bool(settings["shift"]), gen)
        x = mask(x, 1, int(settings["freq_masks"]), int(settings["freq_mask"]), gen)
        x = mask(x, 2, int(settings["time_masks"]), int(settings["time_mask"]), gen)
        if float(settings["mixup"]) > 0:
            if kind == "single_label" and n_classes > 2:  # cross-entropy takes class probabilities as targets
                y = nn.functional.one_hot(y, n_classes).float()
            x, y = mixup(x, y, float(settings["mixup"]), gen)
        return x, y
    return augment
