"""YAMNet in PyTorch, faithful to the published MobileNet-v1 network (``yamnet.py``).

Network (tensorflow/models, research/audioset/yamnet): a 3×3/2 convolution with 32
filters, then 13 depthwise-separable blocks (3×3 depthwise + 1×1 pointwise, each followed
by batch norm and ReLU), global average pooling to the 1024-d embedding, and a 521-way
sigmoid classifier. Convolutions use TensorFlow's 'SAME' padding, which for stride 2 on an
even size pads one extra row/column at the bottom/right only; batch norm has no scale,
only a shift (``center=True, scale=False``), with epsilon 1e-4.

Front end (``features.py``/``params.py``): the Google log-mel front end with
``log(mel + 0.001)``, 96-frame (0.96 s) patches every 48 frames (0.48 s). The waveform is
padded the way YAMNet pads it: zero-padded at the end to at least one patch (0.975 s) and
then up to a whole number of 0.48 s hops, so a 10 s clip gives 20 frames and no sample is
left out. Score names are the 521 YAMNet classes
(:func:`acoustic_env.vocabulary.classes.yamnet_class_names`).

Conversion (:func:`from_tf`, what ``models convert yamnet`` runs): each TF variable of the
release is copied into the layer it belongs to (convolution kernels HWIO → OIHW, depthwise
kernels [h, w, c, 1] → [c, 1, h, w], batch norm's beta and moving statistics as they are);
the classifier, an unnamed Dense layer, is found by its shape.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from acoustic_env.embedders.base import PatchEmbedder, pad_batch
from acoustic_env.embedders.convert import conv_weight, dense_weight, tf_variable, with_state
from acoustic_env.embedders.frontend import PATCH_SAMPLES, STFT_HOP, GoogleLogMel
from acoustic_env.embedders.weights import WeightsError, WeightsSource
from acoustic_env.embedders.yamnet import SPEC

EMBEDDING_DIM = SPEC.dim
NUM_CLASSES = len(SPEC.score_names)
LOG_OFFSET = 0.001
PATCH_HOP = 48  # frames
HOP_SAMPLES = PATCH_HOP * STFT_HOP  # 0.48 s
BATCHNORM_EPS = 1e-4

# (kernel, stride, filters) of layer1 (a plain conv) and layers 2–14 (separable).
_LAYERS = ((3, 2, 32), (3, 1, 64), (3, 2, 128), (3, 1, 128), (3, 2, 256), (3, 1, 256),
           (3, 2, 512), (3, 1, 512), (3, 1, 512), (3, 1, 512), (3, 1, 512), (3, 1, 512),
           (3, 2, 1024), (3, 1, 1024))


def padded_length(n_samples: int) -> int:
    """Length YAMNet pads a waveform to: one patch, then whole 0.48 s hops."""
    hops = math.ceil(max(n_samples - PATCH_SAMPLES, 0) / HOP_SAMPLES)
    return PATCH_SAMPLES + hops * HOP_SAMPLES


def frame_count(n_samples: int) -> int:
    """Frames (patches) YAMNet outputs for a clip of ``n_samples``."""
    return 1 + (padded_length(n_samples) - PATCH_SAMPLES) // HOP_SAMPLES


def same_pad(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """TensorFlow 'SAME' padding of the last two dims (any extra row/column at the end)."""
    pads: list[int] = []
    for size in (x.shape[-1], x.shape[-2]):  # F.pad lists the last dim first
        total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


class SameConv2d(nn.Conv2d):
    """Bias-free convolution with TF 'SAME' padding.

    With stride 1 'SAME' is symmetric, so the convolution pads by itself (no copy); with
    stride 2 the input is padded explicitly, the extra row/column at the end.
    """

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1) -> None:
        super().__init__(c_in, c_out, kernel, stride, padding=(kernel - 1) // 2 if stride == 1 else 0,
                         groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride[0] != 1:
            x = same_pad(x, self.kernel_size[0], self.stride[0])
        return super().forward(x)


class BatchNormShift(nn.Module):
    """Inference batch norm without scale (TF ``scale=False``): (x - mean) / sqrt(var + eps) + beta."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(x, self.running_mean, self.running_var, None, self.bias,
                            training=False, eps=BATCHNORM_EPS)


class ConvLayer(nn.Module):
    """Conv → batch norm → ReLU."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.conv = SameConv2d(c_in, c_out, kernel, stride)
        self.bn = BatchNormShift(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)


class SeparableLayer(nn.Module):
    """Depthwise conv → BN → ReLU → pointwise 1×1 conv → BN → ReLU."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.depthwise = SameConv2d(c_in, c_in, kernel, stride, groups=c_in)
        self.depthwise_bn = BatchNormShift(c_in)
        self.pointwise = SameConv2d(c_in, c_out, 1)
        self.pointwise_bn = BatchNormShift(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.depthwise_bn(self.depthwise(x)), inplace=True)
        return F.relu(self.pointwise_bn(self.pointwise(x)), inplace=True)


class YAMNet(nn.Module):
    """The YAMNet network: patches [N, 1, 96, 64] → (embeddings [N, 1024], scores [N, 521])."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 1
        for i, (kernel, stride, c_out) in enumerate(_LAYERS):
            layer = ConvLayer if i == 0 else SeparableLayer
            layers.append(layer(c_in, c_out, kernel, stride))
            c_in = c_out
        self.layers = nn.Sequential(*layers)
        self.logits = nn.Linear(EMBEDDING_DIM, NUM_CLASSES)

    def forward(self, patches: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        embeddings = self.layers(patches).mean(dim=(2, 3))
        return embeddings, torch.sigmoid(self.logits(embeddings))


class YAMNetEmbedder(PatchEmbedder):
    """YAMNet behind the :class:`~acoustic_env.embedders.base.Embedder` interface."""

    spec = SPEC

    def __init__(self, model: YAMNet, weights_id: str, device: str = "cpu",
                 precision: str = "fp32", max_batch: int | None = None) -> None:
        super().__init__(model, weights_id, device, precision, max_batch)
        # Depthwise convolutions run markedly faster on channels-last tensors.
        self.model.to(memory_format=torch.channels_last)
        self.frontend = GoogleLogMel(LOG_OFFSET, PATCH_HOP).to(self.device)

    def _patches(self, clip: np.ndarray) -> torch.Tensor:
        padded = np.pad(clip, (0, padded_length(clip.shape[-1]) - clip.shape[-1]))
        return self.frontend(self._tensor(padded))

    def _embed_batch(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        return self._pooled(self.frontend(pad_batch(batch, padded_length(batch.shape[-1]))))

    def _network(self, patches: torch.Tensor) -> dict[str, torch.Tensor]:
        embeddings, scores = self.model(patches.contiguous(memory_format=torch.channels_last))
        return {self.name: embeddings, self.spec.scores_column: scores}


def load(weights: WeightsSource, device: str, precision: str, max_batch: int) -> YAMNetEmbedder:
    """YAMNet from checked weights."""
    network, weights_id = weights.network(SPEC.weights, YAMNet)
    return YAMNetEmbedder(network, weights_id, device, precision, max_batch)


def _batch_norm(variables: dict[str, np.ndarray], scope: str, prefix: str) -> dict[str, torch.Tensor]:
    return {f"{prefix}.bias": torch.from_numpy(tf_variable(variables, f"{scope}/beta")),
            f"{prefix}.running_mean": torch.from_numpy(tf_variable(variables, f"{scope}/moving_mean")),
            f"{prefix}.running_var": torch.from_numpy(tf_variable(variables, f"{scope}/moving_variance"))}


def state_dict_from_tf(variables: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """TF YAMNet variables (``layer1/conv/kernel`` …) → :class:`YAMNet` state dict."""
    state = {"layers.0.conv.weight": conv_weight(tf_variable(variables, "layer1/conv/kernel")),
             **_batch_norm(variables, "layer1/conv/bn", "layers.0.bn")}
    for i in range(1, len(_LAYERS)):
        tf_layer, layer = f"layer{i + 1}", f"layers.{i}"
        depthwise = tf_variable(variables, f"{tf_layer}/depthwise_conv/depthwise_kernel")  # [h, w, c, 1]
        state[f"{layer}.depthwise.weight"] = torch.from_numpy(
            np.ascontiguousarray(depthwise.transpose(2, 3, 0, 1)))
        state.update(_batch_norm(variables, f"{tf_layer}/depthwise_conv/bn", f"{layer}.depthwise_bn"))
        state[f"{layer}.pointwise.weight"] = conv_weight(
            tf_variable(variables, f"{tf_layer}/pointwise_conv/kernel"))
        state.update(_batch_norm(variables, f"{tf_layer}/pointwise_conv/bn", f"{layer}.pointwise_bn"))
    # The classifier is an unnamed Dense layer: find it by shape.
    dense = {name: v for name, v in variables.items() if v.shape in
             ((EMBEDDING_DIM, NUM_CLASSES), (NUM_CLASSES,))}
    if len(dense) != 2:
        raise WeightsError(f"expected one {NUM_CLASSES}-way dense layer, found {sorted(dense)}")
    for v in dense.values():
        if v.ndim == 2:
            state["logits.weight"] = dense_weight(v)
        else:
            state["logits.bias"] = torch.from_numpy(np.ascontiguousarray(v))
    return state


def from_tf(variables: dict[str, np.ndarray], outputs: Any) -> tuple[YAMNetEmbedder, dict[str, np.ndarray]]:
    """YAMNet with the TF release's weights, and the release's ``outputs`` (frame scores, embeddings
    and log-mel spectrogram) by column."""
    embedder = YAMNetEmbedder(with_state(YAMNet(), state_dict_from_tf(variables)), "converting")
    scores, embeddings, _ = outputs
    return embedder, {"yamnet": embeddings.numpy(), "yamnet_scores": scores.numpy()}
