"""Every feature of a batch of decoded clips in one pass on a device: the torch twin of ``cpu_features``.

The clips cross to the device once per length group (``buckets``), every stage runs on
the group as one tensor (separation, then indices, spectral statistics and MPS of each
signal), and the vectors come back once. Same columns, same float32 conversion and
same non-finite rule as :func:`acoustic_env.features.cpu_features`.

Given embedders, the same pass also embeds each signal (raw, and fg and bg from the
separation just computed): columns ``<column>`` for raw as the extract names them, and
``<column>_fg``, ``<column>_bg``. The embedders' own API takes numpy arrays, so the
separated signals come back to the host once and the embedder moves them to its device:
one round trip per signal group, not the single crossing a fused front end would allow.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from acoustic_env.config import FeatureParams
from acoustic_env.features import STAGES
from acoustic_env.features.torch import buckets
from acoustic_env.features.torch import indices as torch_indices
from acoustic_env.features.torch import mps as torch_mps
from acoustic_env.features.torch import separation as torch_separation
from acoustic_env.features.torch import spectral as torch_spectral


def batch_features(clips: Sequence[np.ndarray], sr: int, params: FeatureParams, device: str,
                   embedders: Mapping[str, Any] | None = None,
                   separated: dict[str, list[np.ndarray | None]] | None = None
                   ) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Feature matrices ``<stage>_<signal>`` [clips, width] (float32) and ``nonfinite_features`` [clips].

    Also the wall seconds per stage (every one of ``STAGES``, the device synchronised
    at each stage's end so the time is the stage's), for the whole batch; with
    ``embedders`` (name → loaded ``Embedder``), their columns per signal and
    ``embed_<name>`` seconds. ``separated``: a dict that receives ``fg`` and ``bg``, each a
    list of one float32 array per clip (the separation then runs whatever ``params.signals``),
    for embedders that run elsewhere (the extract's embedder actors).
    """
    dev = torch.device(device)
    seconds = dict.fromkeys(STAGES, 0.0)
    out: dict[str, np.ndarray] = {}
    nonfinite = np.zeros(len(clips), dtype=np.int32)
    for n, rows in buckets(clips).items():
        x = torch.from_numpy(np.stack([np.asarray(clips[i], dtype=np.float32) for i in rows])).to(dev)
        with _timed(seconds, "separate", dev):
            signals = {"raw": x}
            if {"fg", "bg"} & set(params.signals) or separated is not None:
                signals["fg"], signals["bg"] = torch_separation.separate(x, sr, params)
        for name in () if separated is None else ("fg", "bg"):
            host = signals[name].cpu().numpy().astype(np.float32, copy=False)
            per_clip = separated.setdefault(name, [None] * len(clips))
            for j, i in enumerate(rows):
                per_clip[i] = host[j]
        for name in params.signals:
            for stage, vec in _signal_features(signals[name], sr, params, seconds, dev):
                with np.errstate(over="ignore"):
                    vec32 = vec.cpu().numpy().astype(np.float32)  # beyond float32's range: inf, as cpu_features
                bad = ~np.isfinite(vec32)
                nonfinite[rows] += bad.sum(axis=1, dtype=np.int32)
                col = out.setdefault(f"{stage}_{name}", np.zeros((len(clips), vec32.shape[1]), dtype=np.float32))
                col[rows] = np.where(bad, np.float32(0.0), vec32)
        for emb_name, embedder in (embedders or {}).items():
            with _timed(seconds, f"embed_{emb_name}", dev):
                for name in ("raw", "fg", "bg"):
                    if name not in signals:
                        continue
                    for col, m in embedder.embed(signals[name].cpu().numpy()).items():
                        key = col if name == "raw" else f"{col}_{name}"
                        out.setdefault(key, np.zeros((len(clips), m.shape[1]), dtype=np.float32))[rows] = m
    out["nonfinite_features"] = nonfinite
    return out, seconds


def _signal_features(x: torch.Tensor, sr: int, params: FeatureParams, seconds: dict[str, float], dev: torch.device):
    """(stage, [clips, width] tensor) for one signal of a length group, each stage timed."""
    with _timed(seconds, "indices", dev):
        indices, sxx = torch_indices.indices_and_psd(x, sr, params)
    yield "indices", indices
    if params.spectral:
        with _timed(seconds, "spectral", dev):
            spectral = torch_spectral.spectral_stats(sxx, sr, params)
        yield "spectral", spectral
    with _timed(seconds, "mps", dev):
        grid = torch_mps.mps_grid(x, sr, params)
    yield "mps", grid


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
