"""Spectral statistics from the spectrogram the indices already computed: no second STFT.

Same output as :func:`acoustic_env.features.reference.spectral.spectral_stats`.
The indices' spectrogram (``fast.indices.hann_psd``) is librosa's ``|STFT|**2``
times scikit-maad's PSD factor ``2 / (nperseg * sum(window**2))``, with the
Nyquist bin dropped and each frame's mean removed first. So librosa's mel
filterbank, divided by that factor and without its Nyquist column (whose weight
is 0 for any ``spectral_fmax`` up to the Nyquist frequency), gives librosa's mel
power in one matrix product. The mean removal only changes the DC
and first bins (a periodic Hann window leaks a constant into no other bin), which
no mel band reaches because ``spectral_fmin`` may not be below the second bin's
frequency (a config rule). The dB conversion, the DCT and the statistics are the
reference's own code, so fast and reference agree to rounding (the tests: 1e-6 dB).

The spectral centroid, bandwidth and roll-off are librosa's on ``|STFT|``, which is
``sqrt(sxx / factor)`` except in the three bins the PSD changed: DC and the first
bin (the mean removal) and Nyquist (dropped). Those three are one small matrix
product over the frames (``_edge_bins``), so the STFT is still not taken twice.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
from scipy import fft as sfft
from scipy import signal

from acoustic_env.config import FeatureParams
from acoustic_env.features.reference.spectral import AMIN, ROLL_PERCENT, statistics


@lru_cache(maxsize=8)
def _mel_basis(sr: int, nperseg: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """librosa's mel filterbank [n_mels, nperseg // 2] over the PSD bins, in librosa's power units."""
    import librosa

    basis = librosa.filters.mel(sr=sr, n_fft=nperseg, n_mels=n_mels, fmin=fmin, fmax=fmax)  # float32, as melspectrogram's
    return np.ascontiguousarray(basis[:, :-1].astype(np.float64) / _psd_factor(nperseg))


def _psd_factor(nperseg: int) -> float:
    win = signal.get_window("hann", nperseg)
    return 2.0 / (nperseg * np.sum(win * win))


@lru_cache(maxsize=8)
def _edge_bins(nperseg: int) -> np.ndarray:
    """[nperseg, 6]: the real and imaginary parts of the Hann-windowed DFT of bins 0, 1 and nperseg/2, the ones
    the PSD spectrogram changed (real, so the frames are not copied to complex)."""
    n = np.arange(nperseg)[:, None]
    dft = signal.get_window("hann", nperseg)[:, None] * np.exp(-2j * np.pi * n * np.array([0, 1, nperseg // 2])
                                                                / nperseg)
    return np.ascontiguousarray(np.hstack([dft.real, dft.imag]))


def magnitude(audio: np.ndarray, sxx: np.ndarray, nperseg: int, noverlap: int) -> np.ndarray:
    """librosa's ``|stft(center=False)|`` [nperseg // 2 + 1, frames] of the frames of ``sxx`` (``hann_psd``)."""
    hop = nperseg - noverlap
    frames = np.lib.stride_tricks.sliding_window_view(np.asarray(audio, dtype=np.float64), nperseg)[::hop]
    mag = np.empty((nperseg // 2 + 1, sxx.shape[1]))
    np.sqrt(sxx / _psd_factor(nperseg), out=mag[:-1])
    parts = frames[: sxx.shape[1]] @ _edge_bins(nperseg)
    mag[[0, 1, -1]] = np.hypot(parts[:, :3], parts[:, 3:]).T
    return mag


def shape(mag: np.ndarray, sr: int) -> np.ndarray:
    """[3, frames]: librosa's spectral centroid, bandwidth (p = 2) and roll-off of a magnitude spectrogram."""
    freq = np.linspace(0.0, sr / 2.0, mag.shape[0])
    total = mag.sum(axis=0)
    norm = mag / np.where(total < np.finfo(mag.dtype).tiny, 1.0, total)  # librosa's normalize: silence stays 0
    centroid = freq @ norm
    bandwidth = np.sqrt(np.sum(norm * (freq[:, None] - centroid) ** 2, axis=0))
    cumulative = np.cumsum(mag, axis=0)
    rolloff = freq[np.argmax(cumulative >= ROLL_PERCENT * cumulative[-1], axis=0)]
    return np.stack([centroid, bandwidth, rolloff])


def spectral_stats(audio: np.ndarray, sxx: np.ndarray, sr: int, params: FeatureParams) -> np.ndarray:
    """The spectral statistics of one signal from its Hann PSD spectrogram ``sxx`` [f, t] (``hann_psd``)."""
    basis = _mel_basis(sr, params.maad_nperseg, params.spectral_n_mels, params.spectral_fmin, params.spectral_fmax)
    log_mel = basis @ sxx
    np.maximum(log_mel, AMIN, out=log_mel)
    np.log10(log_mel, out=log_mel)
    log_mel *= 10.0
    mfcc = sfft.dct(log_mel, type=2, norm="ortho", axis=0)[: params.spectral_n_mfcc]  # librosa.feature.mfcc's DCT
    return statistics(log_mel, mfcc, shape(magnitude(audio, sxx, params.maad_nperseg, params.maad_noverlap), sr),
                      params)


def group(audio: np.ndarray, sr: int, params: FeatureParams, shared: dict[str, Any]) -> np.ndarray:
    """The ``spectral`` group, vectorised (``feature_groups``), on the power spectrogram the indices left in
    ``shared["psd"]``."""
    return spectral_stats(audio, shared["psd"], sr, params)
