"""Pretrained audio embedders (VGGish, YAMNet, PANNs CNN14) behind one HEAR-style interface.

Usage::

    emb = load_embedder("panns", device="cuda")   # weights from the checked model cache
    out = emb.embed(batch, lengths)               # {"panns": [n, 2048], "panns_scores": [n, 527]}

All three are PyTorch modules so that GPU actors share one runtime. Weights are verified
by SHA-256 before use; see :mod:`.weights` and ``acoustic-env models`` (:mod:`.cli`).
"""

from acoustic_env.embedders.base import Embedder
from acoustic_env.embedders.factory import EMBEDDERS, frame_count, load_embedder
from acoustic_env.embedders.weights import REGISTRY, WeightsError, WeightsSpec

__all__ = ["EMBEDDERS", "REGISTRY", "Embedder", "WeightsError", "WeightsSpec", "frame_count",
           "load_embedder"]
