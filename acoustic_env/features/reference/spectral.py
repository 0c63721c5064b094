"""Spectral statistics: log-mel band means, standard deviations and percentiles, MFCC means and deviations.

This is the reference implementation: librosa's ``melspectrogram`` on the STFT
settings of the indices (Hann window of ``maad_nperseg``, hop ``maad_nperseg -
maad_noverlap``, no centring, power 2), in dB with ``power_to_db`` (``amin =
1e-10``, no ``top_db`` clipping: a quiet band keeps its level instead of one
relative to the clip's loudest), then ``librosa.feature.mfcc`` on those frames.
Only the frames scikit-maad keeps are used (``len // hop - 1``; the same as
librosa's at the default 50 % overlap), so the fast implementation can take the
indices' spectrogram as it is.

The vector per signal is, in order: the mean, the standard deviation and each
percentile of every mel band over the frames (dB), then the mean and the standard
deviation of every MFCC, then those of the spectral centroid, bandwidth and
roll-off (Hz; librosa's ``spectral_centroid``, ``spectral_bandwidth`` and
``spectral_rolloff`` at their defaults, on the magnitude of the same frames, as the
UrbanSound8K study used them); ``spectral_names`` names each value.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from acoustic_env.config import FeatureParams

AMIN = 1e-10  # librosa's power_to_db floor: digital silence is -100 dB, not -inf
#: The per-frame shape measures of the magnitude spectrum (Hz), each summarised by its mean and std over the frames.
SHAPE = ("centroid", "bandwidth", "rolloff")
ROLL_PERCENT = 0.85  # librosa's default: the frequency under which 85 % of a frame's magnitude lies


def spectral_names(params: FeatureParams) -> list[str]:
    """One name per value, in vector order (``logmel_p10_03``: the 10th percentile of mel band 3)."""
    bands = [f"{b:02d}" for b in range(params.spectral_n_mels)]
    stats = ["mean", "std", *(f"p{q:g}" for q in params.spectral_percentiles)]
    return ([f"logmel_{s}_{b}" for s in stats for b in bands]
            + [f"mfcc_{s}_{c:02d}" for s in ("mean", "std") for c in range(params.spectral_n_mfcc)]
            + [f"{m}_{s}" for m in SHAPE for s in ("mean", "std")])


def mel_centres_hz(params: FeatureParams) -> np.ndarray:
    """The centre frequency of each mel band (librosa's Slaney mel scale), for the schema metadata."""
    import librosa

    return librosa.mel_frequencies(params.spectral_n_mels + 2, fmin=params.spectral_fmin,
                                   fmax=params.spectral_fmax)[1:-1]


def statistics(log_mel: np.ndarray, mfcc: np.ndarray, shape: np.ndarray, params: FeatureParams) -> np.ndarray:
    """The vector from the dB mel frames [n_mels, frames], the MFCC frames [n_mfcc, frames] and the ``SHAPE``
    frames [3, frames] (both impls)."""
    parts = [log_mel.mean(axis=1), log_mel.std(axis=1)]
    if params.spectral_percentiles:
        parts.extend(np.percentile(log_mel, params.spectral_percentiles, axis=1))
    return np.concatenate([*parts, mfcc.mean(axis=1), mfcc.std(axis=1),
                           np.stack([shape.mean(axis=1), shape.std(axis=1)], axis=1).ravel()])


def spectral_stats(audio: np.ndarray, sr: int, params: FeatureParams) -> np.ndarray:
    """The spectral statistics of one signal, with librosa (float64, in ``spectral_names`` order)."""
    import librosa

    x = np.asarray(audio, dtype=np.float64)
    hop = params.maad_nperseg - params.maad_noverlap
    power = librosa.feature.melspectrogram(
        y=x, sr=sr, n_fft=params.maad_nperseg, hop_length=hop, window="hann", center=False, power=2.0,
        n_mels=params.spectral_n_mels, fmin=params.spectral_fmin, fmax=params.spectral_fmax)
    frames = len(x) // hop - 1
    log_mel = librosa.power_to_db(power[:, :frames], ref=1.0, amin=AMIN, top_db=None)
    magnitude = np.abs(librosa.stft(x, n_fft=params.maad_nperseg, hop_length=hop, window="hann", center=False))
    magnitude = magnitude[:, :frames]
    shape = np.concatenate([librosa.feature.spectral_centroid(S=magnitude, sr=sr, n_fft=params.maad_nperseg),
                            librosa.feature.spectral_bandwidth(S=magnitude, sr=sr, n_fft=params.maad_nperseg),
                            librosa.feature.spectral_rolloff(S=magnitude, sr=sr, n_fft=params.maad_nperseg,
                                                             roll_percent=ROLL_PERCENT)])
    return statistics(log_mel, librosa.feature.mfcc(S=log_mel, n_mfcc=params.spectral_n_mfcc), shape, params)


def group(audio: np.ndarray, sr: int, params: FeatureParams, shared: dict[str, Any]) -> np.ndarray:
    """The ``spectral`` group's reference implementation (``feature_groups``)."""
    return spectral_stats(audio, sr, params)


def metadata(params: FeatureParams) -> dict[str, Any]:
    """The ``spectral_<signal>`` columns' schema metadata."""
    names = spectral_names(params)
    return {"shape": [len(names)], "names": names,
            "values": "dB: log-mel band and MFCC statistics over frames; Hz: spectral centroid, bandwidth and "
                      f"roll-off ({ROLL_PERCENT:.0%}) over frames",
            "mel_hz": mel_centres_hz(params).tolist(),
            "source": "librosa log-mel, MFCC, spectral centroid, bandwidth and roll-off"}
