"""soundsig's modulation power spectrum (``fast/mps.py``) on a batch of equal-length clips.

The fast path's computation with a clip axis in front: the Gaussian spectrogram as one
rFFT of strided frames, the frequency-axis FFT once over the whole spectrogram, the
time-axis FFTs of every chunk of every clip as one batched FFT over the rows the grid
reads, and the bilinear interpolation onto the fixed grid as two constant matrices
(``RegularGridInterpolator`` with extrapolation is linear in the log power along each
axis). Single precision, like the fast path's FFTs.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from scipy.fftpack import next_fast_len

from acoustic_env.config import FeatureParams
from acoustic_env.features.fast.mps import _DB_RANGE, _NSTD, _bracketing, native_axes
from acoustic_env.features.reference.mps import mps_axes

_DTYPE = torch.float32


def mps_grid(x: torch.Tensor, sr: int, params: FeatureParams) -> torch.Tensor:
    """The reduced MPS of each clip, flattened row-major [wf, wt]: [clip, n_wf * n_wt] float32 (0 for silence)."""
    t, f, spec_db = gaussian_log_spectrogram(x, sr, params)
    wf, wt = native_axes(f, t, params.mps_window_s)
    gwf, gwt = mps_axes(params)
    rows, cols = _bracketing(wf, gwf), _bracketing(wt, gwt)
    power = mps_power(spec_db, f, t, params.mps_window_s, rows, cols)
    logp = torch.log10(torch.clamp(power.double(), min=1e-12))
    grid = _weights(wf[rows], gwf, logp.device) @ logp @ _weights(wt[cols], gwt, logp.device).T
    silent = ~(x != 0).any(dim=1)
    return torch.where(silent[:, None], 0.0, grid.flatten(1))


def gaussian_log_spectrogram(x: torch.Tensor, sr: int, params: FeatureParams
                             ) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
    """``fast.gaussian_log_spectrogram`` of each clip: (t, f, spec_db [clip, f, t])."""
    window_length = _NSTD / (2.0 * np.pi * params.mps_freq_spacing)
    nwin = int(sr * window_length)
    nwin += 1 - nwin % 2
    half = nwin // 2
    n = x.shape[-1]
    if n <= nwin:
        raise ValueError(f"len(s)={n} must exceed the {nwin}-sample spectrogram window")
    fft_len = next_fast_len(nwin)
    freq = np.fft.fftfreq(fft_len, d=1.0 / sr)[: (fft_len + 1) // 2]
    keep = np.flatnonzero((freq >= 0) & (freq <= params.mps_max_freq))
    hop = int(np.round(sr / params.mps_spec_sample_rate))
    padded = torch.nn.functional.pad(x.to(_DTYPE), (half, half))
    frames = padded.unfold(-1, nwin, hop)  # [clip, frame, nwin]
    std = nwin / _NSTD
    gt = np.arange(-half, half + 1, dtype=np.float64)
    window = torch.as_tensor((np.exp(-(gt**2) / (2.0 * std**2)) / (std * np.sqrt(2 * np.pi))).astype(np.float32),
                             device=x.device)
    spec = torch.fft.rfft(frames * window, n=fft_len, dim=-1)[..., keep[0] : keep[-1] + 1]
    spec_db = 20.0 * torch.log10(spec.abs() + 1e-12)
    t = np.arange(frames.shape[1], dtype=np.float64) * float(hop) / sr
    return t, freq[keep], spec_db.transpose(1, 2)


def mps_power(spec_db: torch.Tensor, f: np.ndarray, t: np.ndarray, window_s: float,
              rows: np.ndarray, cols: np.ndarray) -> torch.Tensor:
    """``fast.mps_power`` of each clip's spectrogram: power[clip, rows][:, :, cols] (float32)."""
    b, nf, nt = spec_db.shape
    c = torch.maximum(spec_db, spec_db.amax(dim=(1, 2), keepdim=True) - _DB_RANGE)
    c = c - c.double().mean(dim=(1, 2), keepdim=True).to(_DTYPE)
    wf, wt = native_axes(f, t, window_s)
    n_win = wt.size
    half = (n_win - 1) // 2
    gt = np.arange(-half, half + 1, dtype=np.float64)
    std = n_win / 6.0
    wg = torch.as_tensor((np.exp(-(gt**2) / (2.0 * std**2)) / (std * np.sqrt(2 * np.pi))).astype(np.float32),
                         device=c.device)
    shift = int(gt[-1] / 3)
    starts = np.arange(shift, nt, shift) - 1
    k = np.asarray(rows) - nf // 2
    lag = np.asarray(cols) - n_win // 2
    need_k = np.unique(np.abs(k))
    need_l = np.unique(np.concatenate([lag, -lag]) % n_win)
    along_f = torch.fft.rfft(c, dim=1)[:, torch.as_tensor(need_k, device=c.device)]  # [clip, k, t]
    edge = torch.zeros(b, need_k.size, half, dtype=along_f.dtype, device=c.device)
    if need_k[0] == 0:  # soundsig pads with its minimum, constant along frequency: only wf = 0 sees it
        edge[:, 0] = (nf * c.amin(dim=(1, 2))).to(along_f.dtype)[:, None]
    padded = torch.cat([edge, along_f, edge], dim=2)
    var = (c.double() ** 2).sum(dim=(1, 2)) / (nf * nt)
    windows = padded.unfold(2, n_win, 1)[:, :, starts[0] :: shift][:, :, : starts.size]  # [clip, k, chunk, n_win]
    spectra = torch.fft.fft(windows * wg, dim=-1)[..., torch.as_tensor(need_l, device=c.device)].abs()
    power = (spectra.double() ** 2).mean(dim=2) / var[:, None, None]
    src_row = torch.as_tensor(np.searchsorted(need_k, np.abs(k)), device=c.device)
    src_col = torch.as_tensor(np.searchsorted(need_l, np.where(k[:, None] < 0, -lag[None, :], lag[None, :]) % n_win),
                              device=c.device)
    return power[:, src_row[:, None], src_col]


def _weights(native: np.ndarray, targets: np.ndarray, device: torch.device) -> torch.Tensor:
    """[targets, native] linear interpolation (extrapolating beyond the ends) as RegularGridInterpolator's."""
    i = np.clip(np.searchsorted(native, targets, side="right") - 1, 0, native.size - 2)
    w = (targets - native[i]) / (native[i + 1] - native[i])
    m = np.zeros((targets.size, native.size))
    m[np.arange(targets.size), i] = 1.0 - w
    m[np.arange(targets.size), i + 1] += w
    return torch.as_tensor(m, device=device)


def group(x: torch.Tensor, sr: int, params: FeatureParams, shared: dict[str, Any]) -> torch.Tensor:
    """The ``mps`` group of a batch (``feature_groups``)."""
    return mps_grid(x, sr, params)
