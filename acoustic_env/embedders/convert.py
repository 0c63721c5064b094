"""Build the VGGish and YAMNet PyTorch checkpoints from Google's TF-Hub releases.

Google publishes these two models only for TensorFlow, so ``acoustic-env models convert``
loads the official release with tensorflow-hub (the optional ``convert`` extra), copies
each variable into the PyTorch module by name (TF kernels are HWIO, PyTorch's OIHW; dense
kernels are transposed), and refuses to write anything unless the PyTorch module
reproduces the TF model's outputs on test audio. The written file's SHA-256 and the
comparison go into its sidecar, which later loads check against.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from acoustic_env.embedders import vggish, yamnet
from acoustic_env.embedders.registry import get
from acoustic_env.embedders.spec import SAMPLE_RATE
from acoustic_env.embedders.weights import (
    CONVERT_EXTRA,
    WeightsError,
    join_uri,
    resolve_cache_dir,
    save_checkpoint,
)

log = logging.getLogger(__name__)

CONVERTIBLE = ("vggish", "yamnet")

# Largest |torch - TF| allowed, relative to max(1, max |TF output|). The two sides differ
# only in float rounding (TF computes its front end in float32, this package in float64).
TOLERANCE = 1e-3

_VGGISH_SCOPES = {"conv1": "vggish/conv1", "conv2": "vggish/conv2",
                  "conv3_1": "vggish/conv3/conv3_1", "conv3_2": "vggish/conv3/conv3_2",
                  "conv4_1": "vggish/conv4/conv4_1", "conv4_2": "vggish/conv4/conv4_2",
                  "fc1_1": "vggish/fc1/fc1_1", "fc1_2": "vggish/fc1/fc1_2", "fc2": "vggish/fc2"}


def _import_tensorflow() -> tuple[Any, Any]:
    try:
        import tensorflow as tf
        import tensorflow_hub as hub
    except ImportError as exc:
        raise WeightsError(
            f"`acoustic-env models convert` needs TensorFlow and tensorflow-hub, which are "
            f"not installed ({exc}). Install them with: {CONVERT_EXTRA}"
        ) from exc
    return tf, hub


def _pick(variables: dict[str, np.ndarray], suffix: str) -> np.ndarray:
    """The one TF variable whose name ends with the path ``suffix``."""
    hits = [name for name in variables if name == suffix or name.endswith("/" + suffix)]
    if len(hits) != 1:
        raise WeightsError(f"expected one TF variable named */{suffix}, found {hits}; "
                           f"variables: {sorted(variables)}")
    return variables[hits[0]]


def _conv(kernel: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))


def vggish_state_dict(variables: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """TF VGGish variables (``vggish/conv1/weights`` …) → :class:`vggish.VGGish` state dict."""
    state = {}
    for name, scope in _VGGISH_SCOPES.items():
        kernel = _pick(variables, f"{scope}/weights")
        state[f"{name}.weight"] = (_conv(kernel) if kernel.ndim == 4
                                   else torch.from_numpy(np.ascontiguousarray(kernel.T)))
        state[f"{name}.bias"] = torch.from_numpy(_pick(variables, f"{scope}/biases"))
    return state


def _batch_norm(variables: dict[str, np.ndarray], scope: str, prefix: str) -> dict[str, torch.Tensor]:
    return {f"{prefix}.bias": torch.from_numpy(_pick(variables, f"{scope}/beta")),
            f"{prefix}.running_mean": torch.from_numpy(_pick(variables, f"{scope}/moving_mean")),
            f"{prefix}.running_var": torch.from_numpy(_pick(variables, f"{scope}/moving_variance"))}


def yamnet_state_dict(variables: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """TF YAMNet variables (``layer1/conv/kernel`` …) → :class:`yamnet.YAMNet` state dict."""
    state = {"layers.0.conv.weight": _conv(_pick(variables, "layer1/conv/kernel")),
             **_batch_norm(variables, "layer1/conv/bn", "layers.0.bn")}
    for i in range(1, 14):
        tf_layer, layer = f"layer{i + 1}", f"layers.{i}"
        depthwise = _pick(variables, f"{tf_layer}/depthwise_conv/depthwise_kernel")  # [h, w, c, 1]
        state[f"{layer}.depthwise.weight"] = torch.from_numpy(
            np.ascontiguousarray(depthwise.transpose(2, 3, 0, 1)))
        state.update(_batch_norm(variables, f"{tf_layer}/depthwise_conv/bn", f"{layer}.depthwise_bn"))
        state[f"{layer}.pointwise.weight"] = _conv(_pick(variables, f"{tf_layer}/pointwise_conv/kernel"))
        state.update(_batch_norm(variables, f"{tf_layer}/pointwise_conv/bn", f"{layer}.pointwise_bn"))
    # The classifier is an unnamed Dense layer: find it by shape.
    dense = {name: v for name, v in variables.items() if v.shape in
             ((yamnet.EMBEDDING_DIM, yamnet.NUM_CLASSES), (yamnet.NUM_CLASSES,))}
    if len(dense) != 2:
        raise WeightsError(f"expected one {yamnet.NUM_CLASSES}-way dense layer, found {sorted(dense)}")
    for v in dense.values():
        key = "logits.weight" if v.ndim == 2 else "logits.bias"
        state[key] = torch.from_numpy(np.ascontiguousarray(v.T if v.ndim == 2 else v))
    return state


def probe_waveform(seconds: float = 3.0) -> np.ndarray:
    """Deterministic test audio: a tone, a sweep and noise, so every mel band is excited."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    rng = np.random.default_rng(51773)
    wave = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * (100 + 1200 * t) * t)
            + 0.05 * rng.standard_normal(t.size))
    return wave.astype(np.float32)


def _compare(name: str, ours: np.ndarray, theirs: np.ndarray) -> float:
    if ours.shape != theirs.shape:
        raise WeightsError(f"{name}: PyTorch output shape {ours.shape} != TF {theirs.shape}")
    diff = float(np.abs(ours - theirs).max())
    if diff > TOLERANCE * max(1.0, float(np.abs(theirs).max())):
        raise WeightsError(f"{name}: PyTorch output differs from TF by up to {diff:.3g}; "
                           "conversion refused")
    return diff


def convert(name: str, cache_dir: str | None = None, handle: str | None = None) -> dict[str, Any]:
    """Convert one model (``"vggish"`` or ``"yamnet"``) into the cache; returns its sidecar.

    ``handle`` is a TF-Hub handle or a local SavedModel directory; default the official
    release in the registry.
    """
    if name not in CONVERTIBLE:
        raise ValueError(f"only {CONVERTIBLE} are converted; {name!r} is downloaded as is")
    tf, hub = _import_tensorflow()
    spec = get(name).weights
    handle = handle or spec.source
    log.info("loading %s from %s", name, handle)
    tf_model = hub.load(handle)
    variables = {v.name.split(":")[0]: v.numpy() for v in tf_model.variables}
    wave = probe_waveform()
    diffs: dict[str, float] = {}
    if name == "vggish":
        network: torch.nn.Module = vggish.VGGish()
        network.load_state_dict(vggish_state_dict(variables), strict=True)
        ours = vggish.VGGishEmbedder(network, "converting").embed_frames(wave)
        diffs["vggish"] = _compare(name, ours["vggish"], tf_model(tf.constant(wave)).numpy())
    else:
        network = yamnet.YAMNet()
        network.load_state_dict(yamnet_state_dict(variables), strict=True)
        ours = yamnet.YAMNetEmbedder(network, "converting").embed_frames(wave)
        scores, embeddings, _ = tf_model(tf.constant(wave))
        diffs["yamnet"] = _compare(name, ours["yamnet"], embeddings.numpy())
        diffs["yamnet_scores"] = _compare(name, ours["yamnet_scores"], scores.numpy())
    uri = join_uri(resolve_cache_dir(cache_dir), spec.filename)
    record = save_checkpoint(spec, network.state_dict(), uri, converted_from=handle,
                             tensorflow=tf.__version__, tensorflow_hub=hub.__version__,
                             torch=torch.__version__, max_abs_diff_vs_tf=diffs)
    log.info("wrote %s (sha256 %s)", uri, record["sha256"])
    return {"name": name, "path": uri, **record}
