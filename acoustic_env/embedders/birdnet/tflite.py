"""BirdNET's TF Lite graph as it ships (``ai-edge-litert``): the reference its converted copy is held to.

:func:`with_embedding_output` makes the 1024-d embedding an output of the graph; :class:`Runtime` runs it. The
conversion (:mod:`.convert`) starts from the edited graph and checks its result against this runtime on a probe;
the suite holds the two to each other on real clips, and the benchmark measures both.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from collections.abc import Iterator

import numpy as np

from acoustic_env.embedders.birdnet import SPEC, WINDOW
from acoustic_env.embedders.weights import WeightsError

log = logging.getLogger(__name__)


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
