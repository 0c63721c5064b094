"""Build an embedder by name from checked weights (HEAR's ``load_model``).

Weights come from ``weights`` (a path or fsspec URL) or else from the model cache, and are
verified before use (see :mod:`.weights`). Without them the call stops with a
:class:`~.weights.WeightsError` that says how to get them, unless
``allow_random_weights`` is set: then the network is initialised from a fixed seed (so
every worker computes the same vectors) and ``weights_id`` is ``"random"``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import fsspec
import numpy as np
import torch
from torch import nn

from acoustic_env.config import (
    EMBEDDERS,  # names accepted by load_embedder, in the order the pipeline runs them
)
from acoustic_env.embedders import panns, vggish, yamnet
from acoustic_env.embedders.base import Embedder
from acoustic_env.embedders.weights import (
    REGISTRY,
    WeightsError,
    join_uri,
    load_checkpoint,
    load_npz,
    resolve_cache_dir,
)

log = logging.getLogger(__name__)


_NETWORKS: dict[str, Callable[[], nn.Module]] = {
    "vggish": vggish.VGGish, "yamnet": yamnet.YAMNet, "panns": panns.Cnn14}
_FRAME_COUNTS: dict[str, Callable[[int], int]] = {
    "vggish": vggish.frame_count, "yamnet": yamnet.frame_count, "panns": panns.frame_count}
# Patches (VGGish, YAMNet) or 10-s clips (PANNs) per forward pass: small on CPU, where
# bigger batches gain nothing; larger on a GPU, where they keep it busy.
_DEFAULT_MAX_BATCH = {"cpu": {"vggish": 64, "yamnet": 64, "panns": 8},
                      "cuda": {"vggish": 512, "yamnet": 1024, "panns": 32}}
RANDOM_SEED = 0


def frame_count(name: str, n_samples: int) -> int:
    """Frames a model computes for a clip of ``n_samples`` at 16 kHz.

    VGGish: 0.96 s patches (trailing partial patch dropped); YAMNet: 0.96 s patches every
    0.48 s over its padded waveform; PANNs: time steps of CNN14's last feature map
    (~0.32 s each), the frames its internal pooling summarises.
    """
    if name not in _FRAME_COUNTS:
        raise ValueError(f"unknown embedder {name!r}; choose from {EMBEDDERS}")
    if n_samples < 1:
        raise ValueError("n_samples must be positive")
    return _FRAME_COUNTS[name](n_samples)


def _exists(uri: str) -> bool:
    fs, path = fsspec.core.url_to_fs(uri)
    return fs.exists(path)


def _random_network(name: str) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_SEED)
        return _NETWORKS[name]()


def _network(name: str, weights: str | None, cache_dir: str | None, allow_random_weights: bool,
             sha256: str | None) -> tuple[nn.Module, str]:
    spec = REGISTRY[name]
    uri = weights or join_uri(resolve_cache_dir(cache_dir), spec.filename)
    if allow_random_weights and not _exists(uri):
        log.warning("No weights for '%s' at %s: using RANDOM weights (--allow-random-weights); "
                    "outputs carry no pretrained meaning.", name, uri)
        return _random_network(name), "random"
    state, sha = load_checkpoint(spec, uri, sha256)
    network = _NETWORKS[name]()
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise WeightsError(f"{uri} (sha256 {sha}) does not fit the {name} network: {exc}") from exc
    return network, sha


def load_embedder(name: str, weights: str | None = None, device: str = "cpu",
                  allow_random_weights: bool = False, cache_dir: str | None = None,
                  precision: str = "fp32", *, sha256: str | None = None,
                  max_batch: int | None = None, postprocess: bool = False,
                  pca_weights: str | None = None) -> Embedder:
    """Load one embedder.

    Args:
        name: ``"vggish"``, ``"yamnet"`` or ``"panns"``.
        weights: checkpoint path or fsspec URL; default ``<cache>/<registry file name>``.
        device: torch device (``"cpu"``, ``"cuda"``, ``"cuda:1"`` …), or ``"auto"``: CUDA
            when this process sees a GPU, else CPU.
        allow_random_weights: use seeded random weights when the checkpoint is absent
            (offline demos); ``weights_id`` is then ``"random"``. A present but bad
            checkpoint still raises.
        cache_dir: model cache (directory or fsspec URL); default
            ``$ACOUSTIC_ENV_MODEL_CACHE`` or ``~/.cache/acoustic-env/models``.
        precision: ``"fp32"``, or ``"bf16"`` autocast of the network on CUDA only.
        sha256: expected checkpoint hash, overriding the registry and the sidecar.
        max_batch: most patches (VGGish, YAMNet) or clips (PANNs) per forward pass.
        postprocess: VGGish only: apply Google's PCA + 8-bit quantisation.
        pca_weights: VGGish only: the PCA ``.npz``; default ``<cache>/vggish_pca_params.npz``.

    Raises:
        WeightsError: weights missing (and random not allowed), truncated, corrupt or
            not matching their expected SHA-256.
    """
    if name not in _NETWORKS:
        raise ValueError(f"unknown embedder {name!r}; choose from {EMBEDDERS}")
    if (postprocess or pca_weights) and name != "vggish":
        raise ValueError("postprocess/pca_weights apply to vggish only")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    network, weights_id = _network(name, weights, cache_dir, allow_random_weights, sha256)
    defaults = _DEFAULT_MAX_BATCH["cuda" if torch.device(device).type == "cuda" else "cpu"]
    batch = max_batch or defaults[name]
    if name == "panns":
        return panns.PannsEmbedder(network, weights_id, device, precision, batch)
    if name == "yamnet":
        return yamnet.YAMNetEmbedder(network, weights_id, device, precision, batch)
    postprocessor = None
    if postprocess:
        spec = REGISTRY["vggish_pca"]
        pca_uri = pca_weights or join_uri(resolve_cache_dir(cache_dir), spec.filename)
        arrays, pca_sha = load_npz(spec, pca_uri)
        try:
            postprocessor = vggish.Postprocessor(np.asarray(arrays["pca_eigen_vectors"]),
                                                 np.asarray(arrays["pca_means"]), pca_sha)
        except (KeyError, ValueError) as exc:
            raise WeightsError(f"VGGish PCA parameters are malformed: {exc}") from exc
    return vggish.VGGishEmbedder(network, weights_id, device, precision, batch, postprocessor)
