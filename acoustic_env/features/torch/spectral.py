"""The spectral statistics (``fast/spectral.py``) of a batch, from the indices' PSD spectrogram.

The fast path's mel matrix (librosa's filterbank in the PSD's units) as one batched
matrix product, scipy's orthonormal DCT-II as a constant matrix, and the reference's
statistics (mean, std, numpy's linear-interpolation percentiles) along the frames; the
spectral centroid, bandwidth and roll-off from the fast path's magnitude (the PSD's
square root, its three changed bins recomputed from the frames).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from scipy import fft as sfft

from acoustic_env.config import FeatureParams
from acoustic_env.features.fast.spectral import _edge_bins, _mel_basis, _psd_factor
from acoustic_env.features.reference.spectral import AMIN, ROLL_PERCENT


def shape(x: torch.Tensor, sxx: torch.Tensor, sr: int, params: FeatureParams) -> torch.Tensor:
    """[clip, 3, frames]: ``fast.spectral.shape`` of ``fast.spectral.magnitude``, batched."""
    nperseg, hop = params.maad_nperseg, params.maad_nperseg - params.maad_noverlap
    frames = x.to(sxx.dtype).unfold(-1, nperseg, hop)[:, : sxx.shape[-1]]
    edges = frames @ torch.as_tensor(_edge_bins(nperseg), dtype=sxx.dtype, device=sxx.device)  # [clip, t, 6]
    mag = torch.sqrt(sxx / _psd_factor(nperseg))
    mag = torch.cat([torch.hypot(edges[..., :2], edges[..., 3:5]).transpose(1, 2), mag[:, 2:],
                     torch.hypot(edges[..., 2:3], edges[..., 5:]).transpose(1, 2)], dim=1)
    freq = torch.linspace(0.0, sr / 2.0, mag.shape[1], dtype=mag.dtype, device=mag.device)[:, None]
    total = mag.sum(dim=1, keepdim=True)
    norm = mag / torch.where(total < torch.finfo(mag.dtype).tiny, 1.0, total)
    centroid = (freq * norm).sum(dim=1)
    bandwidth = torch.sqrt((norm * (freq - centroid[:, None]) ** 2).sum(dim=1))
    cumulative = torch.cumsum(mag, dim=1)
    first = (cumulative >= ROLL_PERCENT * cumulative[:, -1:]).to(torch.int8).argmax(dim=1)
    return torch.stack([centroid, bandwidth, freq[first, 0]], dim=1)


def spectral_stats(x: torch.Tensor, sxx: torch.Tensor, sr: int, params: FeatureParams) -> torch.Tensor:
    """[clip, features] from the clips ``x`` [clip, samples] and their Hann PSD spectrograms ``sxx`` [clip, f, t]
    (``indices.hann_psd``)."""
    basis = _mel_basis(sr, params.maad_nperseg, params.spectral_n_mels, params.spectral_fmin, params.spectral_fmax)
    log_mel = 10.0 * torch.log10(torch.clamp(torch.as_tensor(basis, device=sxx.device) @ sxx, min=AMIN))
    dct = sfft.dct(np.eye(params.spectral_n_mels), type=2, norm="ortho", axis=0)[: params.spectral_n_mfcc]
    mfcc = torch.as_tensor(dct, device=sxx.device) @ log_mel
    parts = [log_mel.mean(dim=-1), log_mel.std(dim=-1, correction=0)]
    if params.spectral_percentiles:
        q = torch.as_tensor(np.asarray(params.spectral_percentiles) / 100.0, dtype=log_mel.dtype, device=sxx.device)
        parts.extend(torch.quantile(log_mel, q, dim=-1).unbind(0))
    measures = shape(x, sxx, sr, params)
    spread = torch.stack([measures.mean(dim=-1), measures.std(dim=-1, correction=0)], dim=2).flatten(1)
    return torch.cat([*parts, mfcc.mean(dim=-1), mfcc.std(dim=-1, correction=0), spread], dim=1)


def group(x: torch.Tensor, sr: int, params: FeatureParams, shared: dict[str, Any]) -> torch.Tensor:
    """The ``spectral`` group of a batch (``feature_groups``), on the spectrograms the indices left in
    ``shared["psd"]``."""
    return spectral_stats(x, shared["psd"], sr, params)
