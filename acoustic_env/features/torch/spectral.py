"""The spectral statistics (``fast/spectral.py``) of a batch, from the indices' PSD spectrogram.

The fast path's mel matrix (librosa's filterbank in the PSD's units) as one batched
matrix product, scipy's orthonormal DCT-II as a constant matrix, and the reference's
statistics (mean, std, numpy's linear-interpolation percentiles) along the frames.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import fft as sfft

from acoustic_env.config import FeatureParams
from acoustic_env.features.fast.spectral import _mel_basis
from acoustic_env.features.reference.spectral import AMIN


def spectral_stats(sxx: torch.Tensor, sr: int, params: FeatureParams) -> torch.Tensor:
    """[clip, features] from the Hann PSD spectrograms ``sxx`` [clip, f, t] (``indices.hann_psd``)."""
    basis = _mel_basis(sr, params.maad_nperseg, params.spectral_n_mels, params.spectral_fmin, params.spectral_fmax)
    log_mel = 10.0 * torch.log10(torch.clamp(torch.as_tensor(basis, device=sxx.device) @ sxx, min=AMIN))
    dct = sfft.dct(np.eye(params.spectral_n_mels), type=2, norm="ortho", axis=0)[: params.spectral_n_mfcc]
    mfcc = torch.as_tensor(dct, device=sxx.device) @ log_mel
    parts = [log_mel.mean(dim=-1), log_mel.std(dim=-1, correction=0)]
    if params.spectral_percentiles:
        q = torch.as_tensor(np.asarray(params.spectral_percentiles) / 100.0, dtype=log_mel.dtype, device=sxx.device)
        parts.extend(torch.quantile(log_mel, q, dim=-1).unbind(0))
    return torch.cat([*parts, mfcc.mean(dim=-1), mfcc.std(dim=-1, correction=0)], dim=1)
