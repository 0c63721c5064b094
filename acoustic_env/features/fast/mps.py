"""soundsig's modulation power spectrum, vectorised, and only where the fixed grid looks.

Same signature and output as :func:`acoustic_env.features.reference.mps.mps_grid`. soundsig
spends its time in two Python loops: one FFT per spectrogram frame (10,000
for a 10-s clip at the default 1 kHz frame rate) and one 2-D FFT per
overlap-add chunk of the MPS. Here:

* the Gaussian spectrogram is one batched rFFT over strided frames
  (soundsig's frames, window, FFT length and frequency bins);
* the 2-D FFT of a chunk is separable, and the frequency-axis FFT commutes
  with the time window, so it is taken once over the whole (padded)
  spectrogram; the time-axis FFTs of all chunks are then one batched FFT,
  but only for the spectral-modulation rows that the bilinear interpolation
  onto the fixed grid touches (about 30 of 160 at the defaults). A real
  spectrogram's MPS is point-symmetric, so a negative ``wf`` row is the
  mirror of its positive twin;
* the interpolation is :func:`acoustic_env.features.reference.mps.to_grid` itself, on the
  sub-grid of those rows and columns: for every grid point the bracketing
  native points are the same, so the result is the same.

The two FFT stages run in single precision (``_DTYPE``): the spectrogram is in
dB, clipped 50 dB under its maximum and standardised before the MPS, so
float32 rounding (1e-7 relative) stays far below any difference the grid can
show; the tests hold the grid to 1e-4 (log10 units) of soundsig's.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import fft as sfft
from scipy.fftpack import next_fast_len  # soundsig's choice: 5-smooth lengths

from acoustic_env.config import FeatureParams
from acoustic_env.features.reference.mps import mps_axes, to_grid

_NSTD = 6  # soundsig's spectrogram window is 6 standard deviations long
_DB_RANGE = 50.0  # soundsig's mps(Norm=True) clips this far below the maximum
_DTYPE = np.float32


def gaussian_log_spectrogram(audio: np.ndarray, sr: int, params: FeatureParams
                             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """soundsig's ``spectrogram(cmplx=True)`` in dB as the reference takes it: (t, f, spec_db[f, t]).

    The frames are laid out as columns, so the FFTs run across contiguous
    memory and the frequency rows come out contiguous for the MPS.
    """
    window_length = _NSTD / (2.0 * np.pi * params.mps_freq_spacing)
    nwin = int(sr * window_length)
    nwin += 1 - nwin % 2
    half = nwin // 2
    if len(audio) <= nwin:
        raise ValueError(f"len(s)={len(audio)} must exceed the {nwin}-sample spectrogram window")
    fft_len = next_fast_len(nwin)
    freq = np.fft.fftfreq(fft_len, d=1.0 / sr)[: (fft_len + 1) // 2]  # the non-negative bins
    keep = np.flatnonzero((freq >= 0) & (freq <= params.mps_max_freq))
    hop = int(np.round(sr / params.mps_spec_sample_rate))
    padded = np.zeros(len(audio) + 2 * half, dtype=_DTYPE)
    padded[half:-half] = audio
    frames = np.lib.stride_tricks.sliding_window_view(padded, nwin)[::hop]
    std = nwin / _NSTD
    gt = np.arange(-half, half + 1, dtype=np.float64)
    window = (np.exp(-(gt**2) / (2.0 * std**2)) / (std * np.sqrt(2 * np.pi))).astype(_DTYPE)
    buf = np.zeros((fft_len, len(frames)), dtype=_DTYPE)
    np.multiply(frames.T, window[:, None], out=buf[:nwin])
    spec = sfft.rfft(buf, axis=0, overwrite_x=True)[keep[0] : keep[-1] + 1]
    mag = np.abs(spec)
    mag += _DTYPE(1e-12)
    spec_db = np.log10(mag, out=mag)
    spec_db *= 20.0
    t = np.arange(len(frames), dtype=np.float64) * float(hop) / sr
    return t, freq[keep], spec_db


def native_axes(f: np.ndarray, t: np.ndarray, window_s: float) -> tuple[np.ndarray, np.ndarray]:
    """soundsig's MPS axes (wf in cycles/Hz, wt in Hz) for a spectrogram with axes f and t.

    The chunk length is the first frame at or after ``window_s`` (the whole
    spectrogram but one frame if it is shorter), made odd.
    """
    n_win = t.size - 1 if t[-1] < window_s else int(np.nonzero(t >= window_s)[0][0])
    n_win += 1 - n_win % 2
    return (np.fft.fftshift(np.fft.fftfreq(f.size, d=f[1] - f[0])),
            np.fft.fftshift(np.fft.fftfreq(n_win, d=t[1] - t[0])))


def mps_power(spec_db: np.ndarray, f: np.ndarray, t: np.ndarray, window_s: float,
              rows: np.ndarray | None = None, cols: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """soundsig's ``mps(spec_db, f, t, window, Norm=True)``: (wf, wt, power[rows][:, cols]).

    ``rows`` and ``cols`` index soundsig's (fftshifted) ``wf`` and ``wt`` axes;
    None means all. soundsig standardises the clipped spectrogram and pads it
    with its minimum; the FFT being linear, the mean only touches the ``wf = 0``
    row and the scale is applied to the power at the end.
    """
    nf, nt = spec_db.shape
    c = np.maximum(spec_db, spec_db.max() - _DTYPE(_DB_RANGE))
    c -= _DTYPE(c.mean(dtype=np.float64))
    wf, wt = native_axes(f, t, window_s)
    n_win = wt.size
    half = (n_win - 1) // 2
    gt = np.arange(-half, half + 1, dtype=np.float64)
    std = n_win / 6.0
    wg = (np.exp(-(gt**2) / (2.0 * std**2)) / (std * np.sqrt(2 * np.pi))).astype(_DTYPE)
    shift = int(gt[-1] / 3)
    starts = np.arange(shift, nt, shift) - 1  # soundsig's chunks start one frame before their middle
    rows = np.arange(nf) if rows is None else np.asarray(rows)
    cols = np.arange(n_win) if cols is None else np.asarray(cols)
    k = rows - nf // 2  # signed modulation indices of the requested rows and columns
    lag = cols - n_win // 2
    need_k = np.unique(np.abs(k))
    need_l = np.unique(np.concatenate([lag, -lag]) % n_win)  # a negative k row reads -l
    along_f = sfft.rfft(c, axis=0)  # [k, t]: the frequency half of every chunk's 2-D FFT
    padded = np.zeros((need_k.size, nt + 2 * half), dtype=along_f.dtype)
    np.take(along_f, need_k, axis=0, out=padded[:, half : half + nt])
    if need_k[0] == 0:  # the padding is soundsig's minimum, constant along frequency: only wf = 0 sees it
        padded[0, :half] = padded[0, half + nt :] = nf * c.min()
    var = float(np.sum(np.square(c, out=c))) / c.size  # soundsig divides by the std: the power by var
    windows = np.lib.stride_tricks.sliding_window_view(padded, n_win, axis=1)
    chunks = np.empty((need_k.size, starts.size, n_win), dtype=padded.dtype)
    np.multiply(windows[:, starts[0] :: shift][:, : starts.size], wg, out=chunks)  # starts are evenly spaced
    spectra = np.abs(sfft.fft(chunks, axis=2, overwrite_x=True)[:, :, need_l])
    power = np.mean(np.square(spectra, out=spectra), axis=1, dtype=np.float64) / var
    src_row = np.searchsorted(need_k, np.abs(k))
    src_col = np.searchsorted(need_l, (np.where(k[:, None] < 0, -lag[None, :], lag[None, :])) % n_win)
    return wf, wt, power[src_row[:, None], src_col]  # P(-k, -l) = P(k, l) for a real spectrogram


def _bracketing(native: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Indices of the native points between which linear interpolation at ``targets`` falls.

    RegularGridInterpolator's interval: ``native[i] <= x < native[i + 1]``,
    clipped to the grid. (A point exactly on a native point gets all its weight
    from that point whichever neighbour completes its interval.)
    """
    i = np.clip(np.searchsorted(native, targets, side="right") - 1, 0, native.size - 2)
    return np.unique(np.concatenate([i, i + 1]))


def mps_grid(audio: np.ndarray, sr: int, params: FeatureParams) -> np.ndarray:
    """The reduced MPS of one signal, flattened row-major [wf, wt] (same as the reference)."""
    if not np.any(audio):
        return np.zeros(params.mps_n_wf * params.mps_n_wt)
    t, f, spec_db = gaussian_log_spectrogram(audio, sr, params)
    wf, wt = native_axes(f, t, params.mps_window_s)
    gwf, gwt = mps_axes(params)
    rows, cols = _bracketing(wf, gwf), _bracketing(wt, gwt)
    _, _, power = mps_power(spec_db, f, t, params.mps_window_s, rows, cols)
    return to_grid(wf[rows], wt[cols], power, params).ravel()


def group(audio: np.ndarray, sr: int, params: FeatureParams, shared: dict[str, Any]) -> np.ndarray:
    """The ``mps`` group, vectorised (``feature_groups``)."""
    return mps_grid(audio, sr, params)
