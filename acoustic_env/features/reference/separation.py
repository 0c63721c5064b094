"""Foreground/background separation with noisereduce's spectral gating.

* ``fg`` is noisereduce's output: the signal with its estimated noise floor
  gated out (non-stationary gating by default, so a changing background such
  as wind or passing traffic is tracked with ``time_constant_s``).
* ``bg`` is the residual ``raw - fg``: exactly what the gate removed. By
  construction ``fg + bg == raw`` sample for sample, so the two halves are a
  partition of the recording and the three signals' features are comparable.
"""

from __future__ import annotations

import numpy as np

from acoustic_env.config import FeatureParams


def separate(audio: np.ndarray, sr: int, params: FeatureParams) -> tuple[np.ndarray, np.ndarray]:
    """Return (fg, bg) float32 arrays of the input's length."""
    import noisereduce  # imported lazily: it pulls in torch, which only the actors need

    x = np.asarray(audio, dtype=np.float32)
    if not np.any(x):
        return np.zeros_like(x), np.zeros_like(x)
    fg = noisereduce.reduce_noise(
        y=x, sr=sr, stationary=params.nr_stationary, prop_decrease=params.nr_prop_decrease,
        time_constant_s=params.nr_time_constant_s, n_fft=params.nr_n_fft, n_jobs=1, use_tqdm=False,
    ).astype(np.float32)[: x.size]
    if fg.size < x.size:
        fg = np.pad(fg, (0, x.size - fg.size))
    return fg, (x - fg).astype(np.float32)
