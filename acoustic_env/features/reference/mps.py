"""Modulation power spectrum (soundsig), reduced to a fixed grid.

soundsig computes the MPS of a log-amplitude Gaussian spectrogram
(``soundsig.sound.spectrogram`` then ``soundsig.sound.mps``); its axes depend
on the clip's length, so the log10 power is interpolated (bilinearly) onto one
grid for every clip:

* spectral modulation ``wf``: ``mps_n_wf`` points from 0 to ``mps_max_wf``
  cycles/Hz (the MPS of a real spectrogram is point-symmetric, so negative
  ``wf`` repeats positive ``wf`` with ``wt`` mirrored and is dropped);
* temporal modulation ``wt``: ``mps_n_wt`` points from ``-mps_max_wt`` to
  ``+mps_max_wt`` Hz (both signs: upward vs downward sweeps differ).

The flattened vector is row-major ``[wf, wt]``; the axes are recorded in the
schema metadata. A silent signal has no modulation: its grid is all zeros.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from typing import Any

import numpy as np

from acoustic_env.config import FeatureParams


def mps_axes(params: FeatureParams) -> tuple[np.ndarray, np.ndarray]:
    """The fixed output grid (wf in cycles/Hz, wt in Hz)."""
    return (np.linspace(0.0, params.mps_max_wf, params.mps_n_wf),
            np.linspace(-params.mps_max_wt, params.mps_max_wt, params.mps_n_wt))


def log_spectrogram(audio: np.ndarray, sr: int, params: FeatureParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """soundsig's Gaussian-window spectrogram in dB: (t, f, spec_db[f, t])."""
    from soundsig.sound import spectrogram

    t, f, spec, _ = spectrogram(np.asarray(audio, dtype=np.float64), sr,
                                spec_sample_rate=params.mps_spec_sample_rate,
                                freq_spacing=params.mps_freq_spacing, min_freq=0,
                                max_freq=params.mps_max_freq, cmplx=True)
    return t, f, 20.0 * np.log10(np.abs(spec) + 1e-12)


def soundsig_mps(audio: np.ndarray, sr: int, params: FeatureParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """soundsig's own MPS: (wf, wt, power[wf, wt]) on its native axes."""
    from soundsig.sound import mps

    t, f, spec_db = log_spectrogram(audio, sr, params)
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():  # it prints on short clips
        warnings.simplefilter("ignore")
        wf, wt, power = mps(spec_db, f, t, window=params.mps_window_s, Norm=True)
    return np.asarray(wf), np.asarray(wt), np.asarray(power)


def to_grid(wf: np.ndarray, wt: np.ndarray, power: np.ndarray, params: FeatureParams) -> np.ndarray:
    """Interpolate log10 power onto the fixed grid; returns [n_wf, n_wt] float64."""
    gwf, gwt = mps_axes(params)
    logp = np.log10(np.maximum(power, 1e-12))
    from scipy.interpolate import RegularGridInterpolator  # here: 0.2 s of import a driver never needs

    interp = RegularGridInterpolator((wf, wt), logp, bounds_error=False, fill_value=None)
    mesh = np.stack(np.meshgrid(gwf, gwt, indexing="ij"), axis=-1)
    return interp(mesh)


def mps_grid(audio: np.ndarray, sr: int, params: FeatureParams) -> np.ndarray:
    """The reduced MPS of one signal, flattened row-major [wf, wt]."""
    if not np.any(audio):
        return np.zeros(params.mps_n_wf * params.mps_n_wt)
    wf, wt, power = soundsig_mps(audio, sr, params)
    return to_grid(wf, wt, power, params).ravel()


def group(audio: np.ndarray, sr: int, params: FeatureParams, shared: dict[str, Any]) -> np.ndarray:
    """The ``mps`` group's reference implementation (``feature_groups``)."""
    return mps_grid(audio, sr, params)


def metadata(params: FeatureParams) -> dict[str, Any]:
    """The ``mps_<signal>`` columns' schema metadata: the grid's shape and axes."""
    wf, wt = mps_axes(params)
    return {"shape": [len(wf), len(wt)], "layout": "row-major [wf, wt]",
            "axes": {"wf_cycles_per_hz": wf.tolist(), "wt_hz": wt.tolist()}, "values": "log10 modulation power",
            "source": "soundsig mps"}
