"""Every feature of a batch of decoded clips in one pass on a device: the torch twin of ``cpu_features``.

The batch crosses to the device once (one zero-padded tensor, copied from pinned host
memory without blocking), every stage runs on each length group (``buckets``) as one
tensor (separation, then indices, spectral statistics and MPS of each signal), and every
result comes back in one copy. Same columns, same float32 conversion and same non-finite
rule as :func:`acoustic_env.features.cpu_features`.

Given embedders, the same pass embeds the signals ``embed_signals`` names (raw, and fg and
bg from the separation just computed) through their tensor entry (``embed_tensor``): the
separated signals never leave the device, and the embeddings come back in the same one
copy as the features. Their columns are named as the extract names them
(``embedding_column``: ``yamnet``, ``yamnet_fg``, ...). The one other crossing is
NBPEAKS' 512-value mean spectrum per clip (``indices``). With ``features.logmel`` the raw
signal's log-mel images come back in that copy too.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from acoustic_env import feature_groups
from acoustic_env.config import SIGNALS, FeatureParams
from acoustic_env.features import LOGMEL_STAGE, feature_stages
from acoustic_env.features.logmel import COLUMN as LOGMEL
from acoustic_env.features.logmel import image_settings
from acoustic_env.features.torch import buckets
from acoustic_env.features.torch import logmel as torch_logmel
from acoustic_env.features.torch import separation as torch_separation
from acoustic_env.table import embedding_column

#: (column, the batch's rows it holds, its [rows, width] tensor on the device)
Results = list[tuple[str, np.ndarray, torch.Tensor]]


def batch_features(clips: Sequence[np.ndarray], sr: int, params: FeatureParams, device: str,
                   embedders: Mapping[str, Any] | None = None, embed_signals: Sequence[str] = SIGNALS,
                   separated: dict[str, list[np.ndarray | None]] | None = None
                   ) -> tuple[dict[str, Any], dict[str, float]]:
    """Feature matrices ``<stage>_<signal>`` [clips, width] (float32) and ``nonfinite_features`` [clips].

    Also the wall seconds per stage (every one of ``feature_stages``, the device synchronised
    at each stage's end so the time is the stage's), for the whole batch; with
    ``params.logmel``, ``logmel``: one float32 [bands, frames] image per clip; with
    ``embedders`` (name → loaded ``Embedder``), their columns for each of ``embed_signals``
    and ``embed_<name>`` seconds. ``separated``: a dict that receives ``fg`` and ``bg``, each a
    list of one float32 array per clip (the separation then runs whatever ``params.signals``),
    for embedders that run elsewhere.
    """
    dev = torch.device(device)
    seconds = dict.fromkeys(feature_stages(params), 0.0)
    embedded = tuple(embed_signals) if embedders else ()
    separate = bool({"fg", "bg"} & {*params.signals, *embedded}) or separated is not None
    features: Results = []
    embeddings: Results = []
    handed: Results = []  # the separated signals, for ``separated``
    images: Results = []  # the raw signal's log-mel images, [rows, bands, frames]
    batch = to_device(clips, dev)
    for n, rows in buckets(clips).items():
        x = batch if rows.size == len(clips) else batch[torch.as_tensor(rows, device=dev), :n]
        if params.logmel:  # first, as on the CPU: a clip too short for the image fails before the costly stages
            with _timed(seconds, LOGMEL_STAGE, dev):
                images.append((LOGMEL, rows, torch_logmel.image(x, image_settings(params))))
        with _timed(seconds, "separate", dev):
            signals = {"raw": x}
            if separate:
                signals["fg"], signals["bg"] = torch_separation.separate(x, sr, params)
        if separated is not None:
            handed += [(name, rows, signals[name]) for name in ("fg", "bg")]
        for name in params.signals:
            features += [(f"{stage}_{name}", rows, vec)
                         for stage, vec in _signal_features(signals[name], sr, params, seconds, dev)]
        for emb_name, embedder in (embedders or {}).items():
            with _timed(seconds, f"embed_{emb_name}", dev):
                for name in embedded:
                    embeddings += [(embedding_column(col, name), rows, out)
                                   for col, out in embedder.embed_tensor(signals[name]).items()]
    host = to_host([t for _, _, t in features + embeddings + handed + images])
    out = _feature_matrices(features, host[: len(features)], len(clips))
    for (col, rows, _), values in zip(embeddings, host[len(features):]):
        out.setdefault(col, np.zeros((len(clips), values.shape[1]), dtype=np.float32))[rows] = values
    per_clip: dict[str, list[np.ndarray | None]] = {}  # fg, bg and logmel: one array per clip
    for (name, rows, _), values in zip(handed + images, host[len(features) + len(embeddings):]):
        arrays = per_clip.setdefault(name, [None] * len(clips))
        for j, i in enumerate(rows):
            arrays[i] = values[j].astype(np.float32)
    if separated is not None:
        separated.update({name: arrays for name, arrays in per_clip.items() if name != LOGMEL})
    if LOGMEL in per_clip:
        out[LOGMEL] = per_clip[LOGMEL]
    return out, seconds


def to_device(clips: Sequence[np.ndarray], dev: torch.device) -> torch.Tensor:
    """The clips as one [clips, longest] float32 tensor on ``dev``, zero-padded: one copy to the device.

    On CUDA the batch is stacked into pinned (page-locked) host memory and copied without
    blocking, so the copy runs by DMA while the host goes on; on the CPU it is the stacked array.
    """
    host = torch.zeros((len(clips), max(c.size for c in clips)), dtype=torch.float32, pin_memory=dev.type == "cuda")
    rows = host.numpy()
    for i, clip in enumerate(clips):  # a copy per clip into the one buffer (what np.stack does)
        rows[i, : clip.size] = clip
    return host.to(dev, non_blocking=True)


def to_host(tensors: Sequence[torch.Tensor]) -> list[np.ndarray]:
    """The tensors as float64 host arrays of their shapes, brought back in one copy.

    They are flattened into one float64 tensor on the device (exact for float32 and float64
    values), copied once (into pinned memory on CUDA: the copy waits for the device, once),
    and split again on the host.
    """
    if not tensors:
        return []
    flat = torch.cat([t.reshape(-1).to(torch.float64) for t in tensors])
    host = torch.empty(flat.shape, dtype=torch.float64, pin_memory=True).copy_(flat) if flat.is_cuda else flat
    parts = np.split(host.numpy(), np.cumsum([t.numel() for t in tensors])[:-1])
    return [part.reshape(tuple(t.shape)) for part, t in zip(parts, tensors)]


def _feature_matrices(features: Results, values: list[np.ndarray], n: int) -> dict[str, np.ndarray]:
    """The feature columns as float32 [clips, width] matrices and the count of non-finite values per clip.

    Values beyond float32's range become inf, and every non-finite value is counted and set to 0,
    as ``cpu_features`` does.
    """
    out: dict[str, np.ndarray] = {}
    nonfinite = np.zeros(n, dtype=np.int32)
    for (col, rows, _), vec in zip(features, values):
        with np.errstate(over="ignore"):
            vec32 = vec.astype(np.float32)
        bad = ~np.isfinite(vec32)
        nonfinite[rows] += bad.sum(axis=1, dtype=np.int32)
        out.setdefault(col, np.zeros((n, vec32.shape[1]), dtype=np.float32))[rows] = np.where(bad, np.float32(0), vec32)
    out["nonfinite_features"] = nonfinite
    return out


def _signal_features(x: torch.Tensor, sr: int, params: FeatureParams, seconds: dict[str, float], dev: torch.device):
    """(group, [clips, width] tensor) for one signal of a length group: each group the params turn on
    (``feature_groups``: its ``torch`` implementation), each timed, sharing one dict as ``cpu_features`` does."""
    shared: dict[str, Any] = {}
    for group in feature_groups.specs(params):
        with _timed(seconds, group.name, dev):
            value = group.implementation("torch")(x, sr, params, shared)
        yield group.name, value


class _timed:
    """Adds a block's wall time to ``seconds[stage]``, the device synchronised first (CUDA runs asynchronously)."""

    def __init__(self, seconds: dict[str, float], stage: str, dev: torch.device):
        self.seconds, self.stage, self.dev = seconds, stage, dev

    def __enter__(self) -> None:
        self.t0 = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        if self.dev.type == "cuda":
            torch.cuda.synchronize(self.dev)
        self.seconds[self.stage] = self.seconds.get(self.stage, 0.0) + time.perf_counter() - self.t0
