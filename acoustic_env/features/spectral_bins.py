"""The per-frequency-bin spectral indices of a long-duration false-colour spectrogram (Towsey et al. 2014).

A false-colour spectrogram of a day draws one column per segment (a minute) and one row per frequency bin, each
pixel three indices of that bin over that minute in red, green and blue. The indices are scikit-maad's per-bin
ones (``all_spectral_alpha_indices``' second frame), on the same Hann power spectrogram
(:func:`~acoustic_env.features.fast.indices.hann_psd`), vectorised over the bins:

* ``ACI``: acoustic complexity, sum over time of |Δ amplitude| over the bin's summed amplitude (``ACI_per_bin``);
* ``ENT``: temporal entropy of the bin's power, normalised to [0, 1] (``Ht_per_bin``);
* ``EVN``: acoustic events per second in the bin, on the median-equalised spectrogram above the dB threshold,
  events shorter than three frames removed (``EVNspCount_per_bin``);
* ``BGN``: background, the bin's median power smoothed across bins, in dB (``BGNf_per_bin``);
* ``ACT``: the share of frames above the dB threshold (``ACTspFract_per_bin``).

``tests/test_soundscape_indices.py`` holds them to scikit-maad's on the real recordings of
``../shared/data/maad_soundscapes`` (1e-9 relative; ENT and ACI to 1e-12 absolute where a bin is silent).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from acoustic_env.features.fast.indices import _db, _events, _median_equalized, _row_median
from acoustic_env.features.fast.indices import _MIN as TINY

#: The per-bin indices, in the order the table's ``bins_<name>`` columns hold them.
BIN_INDICES = ("ACI", "ENT", "EVN", "BGN", "ACT")
#: The frames an event must last (scikit-maad's default ``rejectDuration`` is three frames).
REJECT_FRAMES = 3


def per_bin_indices(sxx: np.ndarray, dt: float, db_threshold: float) -> dict[str, np.ndarray]:
    """{name: one value per frequency bin} of :data:`BIN_INDICES` for a power spectrogram ``sxx[f, t]`` whose frames
    are ``dt`` seconds apart."""
    n_t = sxx.shape[1]
    with np.errstate(all="ignore"):
        amp = np.sqrt(sxx)
        aci = np.sum(np.abs(np.diff(amp, axis=1)), axis=1) / np.sum(amp, axis=1)
        total = np.sum(sxx, axis=1, keepdims=True)
        pmf = sxx / total
        pmf[pmf == 0] = TINY
        ent = -np.sum(pmf * np.log(pmf), axis=1) / np.log(n_t) if n_t > 1 else np.zeros(len(sxx))
        ent[total[:, 0] == 0] = 1.0 if not sxx.any() else np.nan  # scikit-maad: an all-zero spectrogram is 1
        med = _row_median(sxx)
        profile = ndimage.uniform_filter1d(ndimage.uniform_filter1d(med, 25, mode="nearest"), 5, mode="nearest")
        active = _median_equalized(sxx, med) >= 10 ** (db_threshold / 10)
        _, runs = _events(active, REJECT_FRAMES)
    return {"ACI": aci, "ENT": ent, "EVN": runs / ((n_t - 1) * dt), "BGN": _db(profile.copy()),
            "ACT": active.sum(axis=1) / n_t}
