"""scikit-maad's full alpha-index set: 16 temporal + 44 spectral = 60 values per signal.

This is the reference implementation: it calls scikit-maad exactly as its own
example does (Hann power spectrogram, ``all_temporal_alpha_indices`` and
``all_spectral_alpha_indices``), with the frequency bands moved under the
8 kHz Nyquist limit of 16 kHz audio. Names come from scikit-maad's own output
and are recorded in the table's schema metadata.

Non-finite values (a silent fg or bg has an undefined skewness, an entropy of
0/0, a level of -inf dB) are stored as 0.0 and counted in the clip's
``nonfinite_features`` column, so downstream models never see NaN.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from acoustic_env.config import FeatureParams

TEMPORAL_NAMES = ("ZCR", "MEANt", "VARt", "SKEWt", "KURTt", "LEQt", "BGNt", "SNRt", "MED", "Ht",
                  "ACTtFraction", "ACTtCount", "ACTtMean", "EVNtFraction", "EVNtMean", "EVNtCount")
SPECTRAL_NAMES = ("MEANf", "VARf", "SKEWf", "KURTf", "NBPEAKS", "LEQf", "ENRf", "BGNf", "SNRf", "Hf", "EAS",
                  "ECU", "ECV", "EPS", "EPS_KURT", "EPS_SKEW", "ACI", "NDSI", "rBA", "AnthroEnergy",
                  "BioEnergy", "BI", "ROU", "ADI", "AEI", "LFC", "MFC", "HFC", "ACTspFract", "ACTspCount",
                  "ACTspMean", "EVNspFract", "EVNspMean", "EVNspCount", "TFSD", "H_Havrda", "H_Renyi",
                  "H_pairedShannon", "H_gamma", "H_GiniSimpson", "RAOQ", "AGI", "nROI", "aROI")
INDEX_NAMES = TEMPORAL_NAMES + SPECTRAL_NAMES


def power_spectrogram(audio: np.ndarray, sr: int, params: FeatureParams):
    """scikit-maad's Hann PSD spectrogram (Sxx, tn, fn), as its example computes it."""
    from maad import sound

    sxx, tn, fn, _ = sound.spectrogram(audio, sr, window="hann", nperseg=params.maad_nperseg,
                                       noverlap=params.maad_noverlap, mode="psd")
    return sxx, tn, fn


def maad_indices(audio: np.ndarray, sr: int, params: FeatureParams) -> np.ndarray:
    """The 60 indices in INDEX_NAMES order (float64, may hold non-finite values)."""
    from maad import features

    x = np.asarray(audio, dtype=np.float64)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        temporal = features.all_temporal_alpha_indices(
            x, sr, gain=params.maad_gain_db, sensitivity=params.maad_sensitivity_dbv,
            dB_threshold=params.maad_db_threshold, rejectDuration=params.maad_reject_duration_s)
        sxx, tn, fn = power_spectrogram(x, sr, params)
        spectral, _ = features.all_spectral_alpha_indices(
            sxx, tn, fn, flim_low=list(params.maad_flim_low), flim_mid=list(params.maad_flim_mid),
            flim_hi=list(params.maad_flim_hi), gain=params.maad_gain_db, sensitivity=params.maad_sensitivity_dbv,
            R_compatible="soundecology", mask_param1=6, mask_param2=0.5, verbose=False, display=False)
    values = np.concatenate([temporal[list(TEMPORAL_NAMES)].to_numpy(dtype=np.float64).ravel(),
                             spectral[list(SPECTRAL_NAMES)].to_numpy(dtype=np.float64).ravel()])
    return values


def group(audio: np.ndarray, sr: int, params: FeatureParams, shared: dict[str, Any]) -> np.ndarray:
    """The ``indices`` group's reference implementation (``feature_groups``)."""
    return maad_indices(audio, sr, params)


def metadata(params: FeatureParams) -> dict[str, Any]:
    """The ``indices_<signal>`` columns' schema metadata."""
    return {"shape": [len(INDEX_NAMES)], "names": list(INDEX_NAMES), "source": "scikit-maad alpha indices"}
