"""Build PyTorch checkpoints from TensorFlow releases (VGGish and YAMNet, from Google's TF-Hub).

Google publishes these two models only for TensorFlow, so ``acoustic-env models convert``
loads the official release with tensorflow-hub (the optional ``convert`` extra), hands its
variables and its outputs on test audio to the model's own ``convert`` (each copies the
variables into its PyTorch network by name, with the helpers below: TF kernels are HWIO,
PyTorch's OIHW; dense kernels are transposed), and refuses to write anything unless the
PyTorch model's frame outputs reproduce the TF model's on that audio. The written file's
SHA-256 and the comparison go into its sidecar, which later loads check against.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from torch import nn

from acoustic_env.embedders.spec import SAMPLE_RATE, EmbedderSpec
from acoustic_env.embedders.weights import (
    CONVERT_EXTRA,
    WeightsError,
    join_uri,
    resolve_cache_dir,
    save_checkpoint,
)

log = logging.getLogger(__name__)

# Largest |torch - TF| allowed, relative to max(1, max |TF output|). The two sides differ
# only in float rounding (TF computes its front end in float32, this package in float64).
TOLERANCE = 1e-3


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


def tf_variable(variables: dict[str, np.ndarray], suffix: str) -> np.ndarray:
    """The one TF variable whose name ends with the path ``suffix``."""
    hits = [name for name in variables if name == suffix or name.endswith("/" + suffix)]
    if len(hits) != 1:
        raise WeightsError(f"expected one TF variable named */{suffix}, found {hits}; "
                           f"variables: {sorted(variables)}")
    return variables[hits[0]]


def conv_weight(kernel: np.ndarray) -> torch.Tensor:
    """A TF convolution kernel (HWIO) as PyTorch's weight (OIHW)."""
    return torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))


def dense_weight(kernel: np.ndarray) -> torch.Tensor:
    """A TF dense kernel ([in, out]) as PyTorch's weight ([out, in])."""
    return torch.from_numpy(np.ascontiguousarray(kernel.T))


def with_state(network: nn.Module, state: dict[str, torch.Tensor]) -> nn.Module:
    """``network`` with ``state`` loaded strictly: every parameter set, none left over."""
    network.load_state_dict(state, strict=True)
    return network


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


def convert(spec: EmbedderSpec, cache_dir: str | None = None, handle: str | None = None) -> dict[str, Any]:
    """Convert one model (VGGish, YAMNet) into the cache; returns its sidecar.

    ``handle`` is a TF-Hub handle or a local SavedModel directory; default the official
    release its spec names. The model's own module maps the variables (its ``convert``).
    """
    name = spec.name
    if spec.convert is None:
        raise ValueError(f"{name!r} is downloaded as is: it has nothing to convert")
    tf, hub = _import_tensorflow()
    handle = handle or spec.weights.source
    log.info("loading %s from %s", name, handle)
    tf_model = hub.load(handle)
    variables = {v.name.split(":")[0]: v.numpy() for v in tf_model.variables}
    wave = probe_waveform()
    embedder, theirs = spec.convert(variables, tf_model(tf.constant(wave)))
    ours = embedder.embed_frames(wave)
    diffs = {column: _compare(name, ours[column], theirs[column]) for column in ours}
    uri = join_uri(resolve_cache_dir(cache_dir), spec.weights.filename)
    record = save_checkpoint(spec.weights, embedder.model.state_dict(), uri, converted_from=handle,
                             tensorflow=tf.__version__, tensorflow_hub=hub.__version__,
                             torch=torch.__version__, max_abs_diff_vs_tf=diffs)
    log.info("wrote %s (sha256 %s)", uri, record["sha256"])
    return {"name": name, "path": uri, **record}
