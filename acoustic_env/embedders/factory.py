"""Build an embedder from its spec and checked weights (HEAR's ``load_model``).

Weights come from ``weights`` (a path or fsspec URL) or else from the model cache, and are
verified before use (see :mod:`.weights`). Without them the call stops with a
:class:`~.weights.WeightsError` that says how to get them, unless
``allow_random_weights`` is set: then the network is initialised from a fixed seed (so
every worker computes the same vectors) and ``weights_id`` is ``"random"``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import fsspec
import torch
from torch import nn

from acoustic_env.embedders.base import Embedder
from acoustic_env.embedders.registry import EmbedderSpec, WeightsSpec, get
from acoustic_env.embedders.weights import (
    WeightsError,
    join_uri,
    load_checkpoint,
    resolve_cache_dir,
)

log = logging.getLogger(__name__)

RANDOM_SEED = 0


def _exists(uri: str) -> bool:
    fs, path = fsspec.core.url_to_fs(uri)
    return fs.exists(path)


@dataclass(frozen=True)
class WeightsSource:
    """Where an embedder's files come from: what a module's ``load`` is handed.

    ``weights``: the network's checkpoint (path or fsspec URL), default
    ``<cache>/<its file name>``; ``sha256`` overrides the hash it must have.
    """

    weights: str | None = None
    cache_dir: str | None = None
    allow_random_weights: bool = False
    sha256: str | None = None

    def uri(self, spec: WeightsSpec) -> str:
        """Where ``spec``'s file is read from: the model cache unless given."""
        return join_uri(resolve_cache_dir(self.cache_dir), spec.filename)

    def network(self, spec: WeightsSpec, build: Callable[[], nn.Module]) -> tuple[nn.Module, str]:
        """``build()`` with the checked checkpoint loaded; returns it and its ``weights_id``."""
        uri = self.weights or self.uri(spec)
        if self.allow_random_weights and not _exists(uri):
            log.warning("No weights for '%s' at %s: using RANDOM weights (--allow-random-weights); "
                        "outputs carry no pretrained meaning.", spec.name, uri)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(RANDOM_SEED)
                return build(), "random"
        state, sha = load_checkpoint(spec, uri, self.sha256)
        network = build()
        try:
            network.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise WeightsError(f"{uri} (sha256 {sha}) does not fit the {spec.name} network: {exc}") from exc
        return network, sha


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
        precision: ``"fp32"``, or ``"bf16"`` autocast of the network on CUDA only.
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
