"""Build an embedder from its spec and checked weights (the counterpart of HEAR's ``load_model``).

Weights come from ``weights`` (a path or fsspec URL) or else from the model cache, and are
verified before use (see :class:`~.weights.WeightsSource`). Without them the call stops
with a :class:`~.weights.WeightsError` that says how to get them, unless
``allow_random_weights`` is set: then the network is initialised from a fixed seed (so
every worker computes the same vectors) and ``weights_id`` is ``"random"``.
"""

from __future__ import annotations

from typing import Any

import torch

from acoustic_env.embedders.base import Embedder
from acoustic_env.embedders.registry import get
from acoustic_env.embedders.spec import EmbedderSpec
from acoustic_env.embedders.weights import WeightsSource


def load_embedder(embedder: str | EmbedderSpec, weights: str | None = None, device: str = "cpu",
                  allow_random_weights: bool = False, cache_dir: str | None = None,
                  precision: str = "fp32", *, sha256: str | None = None,
                  max_batch: int | None = None, **options: Any) -> Embedder:
    """Load one embedder.

    Args:
        embedder: a registered name (``"vggish"``, ``"yamnet"``, ``"panns"`` …) or a spec.
        weights: checkpoint path or fsspec URL; default ``<cache>/<its file name>``.
        device: torch device (``"cpu"``, ``"cuda"``, ``"cuda:1"`` …), or ``"auto"``: CUDA
            when this process sees a GPU, else CPU.
        allow_random_weights: use seeded random weights when the checkpoint is absent
            (offline demos); ``weights_id`` is then ``"random"``. A present but bad
            checkpoint still raises.
        cache_dir: model cache (directory or fsspec URL); default
            ``$ACOUSTIC_ENV_MODEL_CACHE`` or ``~/.cache/acoustic-env/models``.
        precision: ``"fp32"``, or ``"bf16"`` autocast of the network (CUDA or CPU).
        sha256: expected checkpoint hash, overriding the registry and the sidecar.
        max_batch: most frames or clips per forward pass; default the spec's for the device.
        options: the model's own options (VGGish: ``postprocess=True`` applies Google's
            PCA + 8-bit quantisation, ``pca_weights`` names its ``.npz``).

    Raises:
        WeightsError: weights missing (and random not allowed), truncated, corrupt or
            not matching their expected SHA-256.
    """
    spec = get(embedder) if isinstance(embedder, str) else embedder
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    batch = max_batch or (spec.max_batch_cuda if torch.device(device).type == "cuda" else spec.max_batch_cpu)
    source = WeightsSource(weights, cache_dir, allow_random_weights, sha256)
    return spec.load(source, device, precision, batch, **options)
