"""The ``cnn`` candidate: a CNN over a clip's image (log-mel or MFCC), with SpecAugment, shifts and mixup.

The other candidates learn from per-group PCA components of clip-level vectors; this one
learns from the stored image itself (``table.IMAGE_TYPE``, column ``logmel``: by default 64 mel bands,
100 frames a second, in dB; or their MFCCs, ``features.image``), so it can use where in time and frequency the
energy lies.

* **Inputs.** Every image is brought to the model's window, ``frames`` frames (the training
  clips' median length), by ``learn.image_input.fit_width``: centred, cut or padded with the image's own
  minimum. The job stacks them into a [clips, bands, frames] array, the model's ``X``.
* **Network** (``SpectroCNN``): the input standardised by the training images' mean and
  standard deviation (buffers, so they travel in the ``state_dict``), average-pooled by ``input_pool``,
  then one block per entry of ``channels`` (``architecture``'s named kind: ``small``, 3 × 3 convolution, batch
  norm, ReLU, 2 × 2 max pooling; ``residual``, ResNet's basic block before the same pooling; an image with too few
  rows left is pooled over time only, ``pools``; ``blocks`` blocks of ``width``, 2 × ``width``, ... channels), the mean
  over the remaining bands, the mean and the max over time (global: any number of frames
  scores), dropout and one linear layer to the logits of ``learn.mlp``'s conventions.
* **cnn14** (``PannsBlock``): PANNs CNN14's own layers as ``embedders/panns/model.py`` writes them, so that its
  checkpoint's ``bn0`` and ``conv_block1..`` load by a rename (``learn.warm_start``): the image laid out as PANNs'
  (batch, 1, frames, 64 bands), each band standardised by ``bn0`` (a batch norm over the bands, in place of the
  global standardisation), then blocks of two 3 × 3 convolutions with batch norm and ReLU and a 2 × 2 average
  pooling, of 64, 128, ... channels, and the same head.
* **Its view: crops.** The network learns from windows of ``crop_frames`` frames (the training
  batches' random crops) and scores the same: in evaluation mode an image wider than that is cut
  into crops at a hop of half a crop, first and last at its ends, so that together they cover it,
  and the crops' probabilities are averaged (test-time averaging: ``views``, ``average``). The
  validation rounds, the in-process predictions and a saved model all score this way, since it is the
  network's own ``forward``. A max over time taken over a whole 10-s window, where training saw 2-s
  crops, is not the feature the layer after it learnt.
* **Training** (``learn.spectro_estimator.CNNClassifier``): the one loop (``learn.fit``) with a cosine
  learning rate after a short warm-up (``lr_schedule``), early stopping on the
  validation loss of an inner split of the training rows that keeps every group on one side.
  The loop's ``augment`` hook (``augmenter``) transforms training batches only: a window of
  ``crop_frames`` frames at a random offset (``shift``; off: the centred window), up to
  ``time_masks`` time masks of at most ``time_mask`` frames and ``freq_masks`` frequency
  masks of at most ``freq_mask`` bands (each set to the image's mean), and mixup
  (``mixup``: the Beta(α, α) weight; 0 is off). Every switch is an entry of
  ``acoustic_env.candidates.PARAMS["cnn"]["augment"]`` and is recorded with the model's parameters.
  Validation and test images are never augmented.

This module needs numpy, torch and PANNs' block (``embedders/panns/model.py``) only (the saved model rebuilds the
network from it); the estimator, which
trains it, is ``learn.spectro_estimator`` (scikit-learn's interface), as ``learn.mlp`` and ``learn.mlp_estimator``.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from acoustic_env.candidates.cnn import ARCHITECTURES, image_problem  # small; residual: ResidualBlock; cnn14
from acoustic_env.embedders.panns.model import ConvBlock
from acoustic_env.learn.mlp import n_outputs


def conv_bn(c_in: int, c_out: int, kernel: int = 3) -> list[nn.Module]:
    """A ``kernel`` × ``kernel`` convolution (same size out, no bias: the batch norm after it has one) and its
    batch norm."""
    return [nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False), nn.BatchNorm2d(c_out)]


class ResidualBlock(nn.Module):
    """ResNet's basic block: two 3 × 3 convolutions with batch norm, the input added back (through a 1 × 1
    convolution where the channels change), ReLU, then the max pooling ``pool`` as the small network's blocks
    pool. The residual path lets a deeper stack train on a few hundred clips as readily as a shallow one."""

    def __init__(self, c_in: int, c_out: int, pool: tuple[int, int]):
        super().__init__()
        self.body = nn.Sequential(*conv_bn(c_in, c_out), nn.ReLU(), *conv_bn(c_out, c_out))
        self.skip = nn.Identity() if c_in == c_out else nn.Sequential(*conv_bn(c_in, c_out, 1))
        self.out = nn.Sequential(nn.ReLU(), nn.MaxPool2d(pool))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(x) + self.skip(x))


class PannsBlock(ConvBlock):
    """PANNs CNN14's block (its ``ConvBlock``: conv1, bn1, conv2, bn2, the checkpoint's names) with its 2 × 2
    average pooling built in, so that it stacks in an ``nn.Sequential``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return super().forward(x, pool=2)


def pools(bands: int, input_pool: Sequence[int], blocks: int) -> list[tuple[int, int]]:
    """Each block's max pooling: 2 × 2, but 1 × 2 once fewer than two bands are left (an MFCC image's 20 rows
    reach one after three blocks; a 64-band log-mel never does, its blocks pool as they always have)."""
    rows, out = bands // int(input_pool[0]), []
    for _ in range(blocks):
        out.append((2 if rows >= 2 else 1, 2))
        rows //= out[-1][0]
    return out


class SpectroCNN(nn.Module):
    """(batch, bands, frames) images → ``n_out`` logits; ``mean``/``std`` standardise the input.

    ``architecture``: the blocks' kind (:data:`ARCHITECTURES`; ``cnn14`` takes 64 bands, unpooled, and 64, 128, ...
    channels: ``candidates.cnn.image_problem``, a ValueError otherwise). ``crop_frames``: in evaluation mode, the
    logits of the crops' averaged probabilities (``views``, ``average``; ``link``: how the logits become probabilities,
    ``learn.mlp``'s); None scores the whole window (a model saved before the crops).
    """

    def __init__(self, bands: int, n_out: int, channels: Sequence[int], dropout: float, input_pool: Sequence[int],
                 crop_frames: int | None = None, link: str = "sigmoid", architecture: str = "small"):
        super().__init__()
        if architecture not in ARCHITECTURES:
            raise ValueError(f"cnn: architecture must be one of {list(ARCHITECTURES)}, got {architecture!r}")
        self.panns = architecture == "cnn14"
        if self.panns:
            network = {"architecture": architecture, "input_pool": input_pool, "width": channels[0] if channels else 0}
            if problem := image_problem(bands, network):
                raise ValueError(f"cnn: {problem}")
            self.bn0 = nn.BatchNorm2d(bands)
        blocks: list[nn.Module] = [nn.AvgPool2d(tuple(input_pool))]
        c_in = 1
        for c, pool in zip(channels, pools(bands, input_pool, len(channels))):
            blocks += ([PannsBlock(c_in, c)] if self.panns else [ResidualBlock(c_in, c, pool)]
                       if architecture == "residual" else [*conv_bn(c_in, c), nn.ReLU(), nn.MaxPool2d(pool)])
            c_in = c
        self.bands, self.crop_frames, self.link = bands, crop_frames, link
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * c_in, n_out))
        self.register_buffer("mean", torch.zeros(()))
        self.register_buffer("std", torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training or self.crop_frames is None:
            return self.logits(x)
        crops, n = views(x, self.crop_frames)
        return average(self.logits(crops).reshape(len(x), n, -1), self.link)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The logits of each image as it is (one view)."""
        if self.panns:  # PANNs' layout, (batch, 1, frames, bands), each band standardised by bn0 (channels: bands)
            z = self.blocks(self.bn0(x[:, :, :, None]).transpose(1, 3)).mean(dim=3)
        else:
            z = self.blocks(((x - self.mean) / self.std).unsqueeze(1)).mean(dim=2)  # (batch, channels, frames')
        return self.head(torch.cat([z.mean(dim=2), z.amax(dim=2)], dim=1))


def views(x: torch.Tensor, frames: int) -> tuple[torch.Tensor, int]:
    """(batch × n, bands, ``frames``) crops of every image and n: windows at a hop of half a crop (rounded to
    frames), the first at the start and the last at the end, so that they cover the image; the image itself when
    it is no wider than a crop."""
    total = x.shape[2]
    if total <= frames:
        return x, 1
    n = math.ceil((total - frames) / (frames / 2)) + 1
    starts = np.linspace(0, total - frames, n).round().astype(int)
    return torch.stack([x[:, :, s:s + frames] for s in starts], dim=1).reshape(-1, x.shape[1], frames), n


def average(logits: torch.Tensor, link: str) -> torch.Tensor:
    """(batch, crops, outputs) logits → (batch, outputs) logits whose probabilities (``link``: ``softmax`` over the
    outputs, else a sigmoid each) are the mean of the crops' probabilities: for a softmax, the log of their sum (the
    softmax ignores the constant log n); for a sigmoid, the log of their sum over that of their complements. In
    log space, so that no probability rounds to 0 or 1."""
    if link == "softmax":
        return torch.logsumexp(torch.log_softmax(logits, dim=2), dim=1)
    logsigmoid = nn.functional.logsigmoid
    return torch.logsumexp(logsigmoid(logits), dim=1) - torch.logsumexp(logsigmoid(-logits), dim=1)


def architecture(bands: int, kind: str, n_classes: int, params: dict[str, Any]) -> dict[str, Any]:
    """The constructor arguments of ``SpectroCNN`` for ``params`` (``PARAMS["cnn"]["network"]``'s form: ``blocks``
    blocks of the named ``architecture``, the first of ``width`` channels and each next one twice as wide), as
    stored in the model artifact (``network``: which class)."""
    n_out = n_outputs(kind, n_classes)
    return {"network": "cnn", "bands": int(bands), "n_out": n_out,
            "architecture": str(params.get("architecture", ARCHITECTURES[0])),
            "channels": [int(params["width"]) * 2 ** i for i in range(int(params["blocks"]))],
            "dropout": float(params["dropout"]), "input_pool": [int(p) for p in params["input_pool"]],
            "crop_frames": int(params["crop_frames"]),
            "link": "sigmoid" if kind == "multi_label" or n_out == 1 else "softmax"}


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
    """``learn.fit``'s ``augment(x, y, generator)`` for ``settings``: ``PARAMS["cnn"]["augment"]``'s entries and the
    network's ``crop_frames``."""
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
