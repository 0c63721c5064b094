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
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import fft as sfft
from scipy import signal

from acoustic_env.config import FeatureParams
from acoustic_env.features.reference.spectral import AMIN, statistics


@lru_cache(maxsize=8)
def _mel_basis(sr: int, nperseg: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """librosa's mel filterbank [n_mels, nperseg // 2] over the PSD bins, in librosa's power units."""
    import librosa

    win = signal.get_window("hann", nperseg)
    psd_factor = 2.0 / (nperseg * np.sum(win * win))
    basis = librosa.filters.mel(sr=sr, n_fft=nperseg, n_mels=n_mels, fmin=fmin, fmax=fmax)  # float32, as melspectrogram's
    return np.ascontiguousarray(basis[:, :-1].astype(np.float64) / psd_factor)


def spectral_stats(sxx: np.ndarray, sr: int, params: FeatureParams) -> np.ndarray:
    """The spectral statistics of one signal from its Hann PSD spectrogram ``sxx`` [f, t] (``hann_psd``)."""
    basis = _mel_basis(sr, params.maad_nperseg, params.spectral_n_mels, params.spectral_fmin, params.spectral_fmax)
    log_mel = basis @ sxx
    np.maximum(log_mel, AMIN, out=log_mel)
    np.log10(log_mel, out=log_mel)
    log_mel *= 10.0
    mfcc = sfft.dct(log_mel, type=2, norm="ortho", axis=0)[: params.spectral_n_mfcc]  # librosa.feature.mfcc's DCT
    return statistics(log_mel, mfcc, params)
