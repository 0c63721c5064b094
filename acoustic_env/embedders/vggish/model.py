"""VGGish (Hershey et al. 2017) in PyTorch, faithful to Google's published network.

Architecture as ``vggish_slim.py`` (tensorflow/models, research/audioset/vggish): 3×3
convolutions (stride 1, 'SAME') with ReLU, 2×2 max-pools, conv64-pool-conv128-pool-
conv256×2-pool-conv512×2-pool, two 4096-wide ReLU layers, then the 128-d embedding layer.
The published model and its README define the embedding as *pre-activation*
(``activation_fn=None`` on ``fc2``): no ReLU follows it here either. (Some ports, e.g.
torchvggish, add one; the official TF-Hub outputs are what ``models convert`` checks
against.) Layer names follow the TF variable scopes (``conv3_1``, ``fc1_2`` …) so the
conversion is a rename and a transpose.

Input: the VGGish front end (25 ms / 10 ms STFT, 64 mel bands 125–7500 Hz,
``log(mel + 0.01)``, non-overlapping 0.96 s patches of 96×64). As in the reference, a
trailing partial patch is dropped; a clip shorter than one patch (0.975 s = 15 600
samples) is zero-padded at the end to one patch.

Optional post-processing reproduces ``vggish_postprocess.py``: PCA with whitening, clipping
to [-2, 2] and 8-bit quantisation (values 0–255, returned as float32), the format of
AudioSet's released embeddings. It is applied per patch, before mean pooling.

Conversion (:func:`from_tf`, what ``models convert vggish`` runs): each TF variable of the
release is copied into the layer of the same scope (convolution kernels HWIO → OIHW, dense
kernels transposed).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from acoustic_env.embedders.base import PatchEmbedder, pad_batch, pad_to
from acoustic_env.embedders.convert import conv_weight, dense_weight, tf_variable, with_state
from acoustic_env.embedders.frontend import (
    PATCH_FRAMES,
    PATCH_SAMPLES,
    STFT_HOP,
    STFT_WINDOW,
    GoogleLogMel,
)
from acoustic_env.embedders.vggish import SPEC
from acoustic_env.embedders.weights import WeightsError, WeightsSource, load_npz

EMBEDDING_DIM = SPEC.dim
LOG_OFFSET = 0.01
PATCH_HOP = 96  # frames: non-overlapping 0.96 s patches

# (name, in, out) of the convolutions; a 2×2 max-pool follows the last of each group.
_CONVS = (("conv1", 1, 64), ("conv2", 64, 128), ("conv3_1", 128, 256),
          ("conv3_2", 256, 256), ("conv4_1", 256, 512), ("conv4_2", 512, 512))
_POOL_AFTER = frozenset({"conv1", "conv2", "conv3_2", "conv4_2"})

# Google's quantisation range of the PCA-whitened embedding.
_QUANTIZE_MIN, _QUANTIZE_MAX = -2.0, 2.0

# Layer → TF variable scope of the release.
_TF_SCOPES = {"conv1": "vggish/conv1", "conv2": "vggish/conv2",
              "conv3_1": "vggish/conv3/conv3_1", "conv3_2": "vggish/conv3/conv3_2",
              "conv4_1": "vggish/conv4/conv4_1", "conv4_2": "vggish/conv4/conv4_2",
              "fc1_1": "vggish/fc1/fc1_1", "fc1_2": "vggish/fc1/fc1_2", "fc2": "vggish/fc2"}


def frame_count(n_samples: int) -> int:
    """Patches VGGish embeds for a clip of ``n_samples`` (after padding short clips)."""
    frames = 1 + (max(n_samples, PATCH_SAMPLES) - STFT_WINDOW) // STFT_HOP
    return 1 + (frames - PATCH_FRAMES) // PATCH_HOP


class VGGish(nn.Module):
    """The VGGish network: log-mel patches [N, 1, 96, 64] → embeddings [N, 128]."""

    def __init__(self) -> None:
        super().__init__()
        for name, c_in, c_out in _CONVS:
            self.add_module(name, nn.Conv2d(c_in, c_out, kernel_size=3, padding=1))
        self.fc1_1 = nn.Linear(512 * 6 * 4, 4096)
        self.fc1_2 = nn.Linear(4096, 4096)
        self.fc2 = nn.Linear(4096, EMBEDDING_DIM)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        """[N, 1, 96, 64] → [N, 128] (pre-activation, as published)."""
        x = patches
        for name, _, _ in _CONVS:
            x = F.relu(getattr(self, name)(x))
            if name in _POOL_AFTER:
                x = F.max_pool2d(x, kernel_size=2, stride=2)
        # TF flattens channels-last: [N, 6, 4, 512] in that order.
        x = x.permute(0, 2, 3, 1).flatten(1)
        x = F.relu(self.fc1_1(x))
        x = F.relu(self.fc1_2(x))
        return self.fc2(x)


class Postprocessor:
    """Google's PCA/whitening + 8-bit quantisation of raw VGGish embeddings."""

    def __init__(self, pca_eigen_vectors: np.ndarray, pca_means: np.ndarray,
                 weights_id: str = "") -> None:
        if pca_eigen_vectors.shape != (EMBEDDING_DIM, EMBEDDING_DIM) or pca_means.size != EMBEDDING_DIM:
            raise ValueError("VGGish PCA parameters must be a 128×128 matrix and 128 means")
        self.matrix = torch.from_numpy(pca_eigen_vectors.astype(np.float64))
        self.means = torch.from_numpy(pca_means.astype(np.float64).reshape(-1))
        self.weights_id = weights_id

    def __call__(self, embeddings: torch.Tensor) -> torch.Tensor:
        """[N, 128] raw → [N, 128] quantised values 0…255 (float32)."""
        means, matrix = self.means.to(embeddings.device), self.matrix.to(embeddings.device)
        pca = (embeddings.double() - means) @ matrix.T
        clipped = pca.clamp(_QUANTIZE_MIN, _QUANTIZE_MAX)
        scaled = (clipped - _QUANTIZE_MIN) * (255.0 / (_QUANTIZE_MAX - _QUANTIZE_MIN))
        return scaled.to(torch.uint8).float()  # truncation, as numpy's astype(uint8)


class VGGishEmbedder(PatchEmbedder):
    """VGGish behind the :class:`~acoustic_env.embedders.base.Embedder` interface."""

    spec = SPEC

    def __init__(self, model: VGGish, weights_id: str, device: str = "cpu",
                 precision: str = "fp32", max_batch: int | None = None,
                 postprocessor: Postprocessor | None = None) -> None:
        super().__init__(model, weights_id, device, precision, max_batch)
        self.frontend = GoogleLogMel(LOG_OFFSET, PATCH_HOP).to(self.device)
        self.postprocessor = postprocessor

    def metadata(self) -> dict[str, object]:
        """Adds whether PCA/quantisation was applied, and the PCA file's SHA-256."""
        pca = self.postprocessor
        return {**super().metadata(),
                "postprocess": {"pca_weights_id": pca.weights_id} if pca else False}

    def _patches(self, clip: np.ndarray) -> torch.Tensor:
        return self.frontend(self._tensor(pad_to(clip, PATCH_SAMPLES)))

    def _embed_batch(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        return self._pooled(self.frontend(pad_batch(batch, PATCH_SAMPLES)))

    def _network(self, patches: torch.Tensor) -> dict[str, torch.Tensor]:
        return {self.name: self.model(patches)}

    def _device_frame_outputs(self, patches: torch.Tensor) -> dict[str, torch.Tensor]:
        out = super()._device_frame_outputs(patches)
        if self.postprocessor is not None:
            out[self.name] = self.postprocessor(out[self.name])
        return out


def load(weights: WeightsSource, device: str, precision: str, max_batch: int,
         postprocess: bool = False, pca_weights: str | None = None) -> VGGishEmbedder:
    """VGGish from checked weights, with Google's PCA + quantisation when ``postprocess``.

    ``pca_weights``: the PCA ``.npz`` (path or URL); default the cache's
    ``vggish_pca_params.npz``.
    """
    network, weights_id = weights.network(SPEC.weights, VGGish)
    postprocessor = None
    if postprocess:
        [pca_spec] = SPEC.extra_weights
        arrays, pca_sha = load_npz(pca_spec, pca_weights or weights.uri(pca_spec))
        try:
            postprocessor = Postprocessor(np.asarray(arrays["pca_eigen_vectors"]),
                                          np.asarray(arrays["pca_means"]), pca_sha)
        except (KeyError, ValueError) as exc:
            raise WeightsError(f"VGGish PCA parameters are malformed: {exc}") from exc
    return VGGishEmbedder(network, weights_id, device, precision, max_batch, postprocessor)


def state_dict_from_tf(variables: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """TF VGGish variables (``vggish/conv1/weights`` …) → :class:`VGGish` state dict."""
    state = {}
    for name, scope in _TF_SCOPES.items():
        kernel = tf_variable(variables, f"{scope}/weights")
        state[f"{name}.weight"] = conv_weight(kernel) if kernel.ndim == 4 else dense_weight(kernel)
        state[f"{name}.bias"] = torch.from_numpy(tf_variable(variables, f"{scope}/biases"))
    return state


def from_tf(variables: dict[str, np.ndarray], outputs: Any) -> tuple[VGGishEmbedder, dict[str, np.ndarray]]:
    """VGGish with the TF release's weights, and the release's ``outputs`` (patch embeddings) by column."""
    embedder = VGGishEmbedder(with_state(VGGish(), state_dict_from_tf(variables)), "converting")
    return embedder, {"vggish": outputs.numpy()}
