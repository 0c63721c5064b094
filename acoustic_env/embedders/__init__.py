"""Pretrained audio embedders (VGGish, YAMNet, PANNs CNN14) behind one HEAR-style interface.

Usage::

    from acoustic_env.embedders.factory import load_embedder

    emb = load_embedder("panns", device="cuda")   # weights from the checked model cache
    out = emb.embed(batch, lengths)               # {"panns": [n, 2048], "panns_scores": [n, 527]}

An embedder is one model module plus one registered spec (:mod:`.registry`); this package
imports only the registry, so reading specs never loads torch. All three built-in models
are PyTorch modules so that GPU actors share one runtime. Weights are verified by SHA-256
before use; see :mod:`.weights` and ``acoustic-env models``.
"""

from acoustic_env.embedders.registry import (
    EmbedderSpec,
    WeightsSpec,
    get,
    names,
    register,
)

__all__ = ["EmbedderSpec", "WeightsSpec", "get", "names", "register"]
