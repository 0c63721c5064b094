"""BirdNET's 3-s windows (``embedders/birdnet/model.py: windows``): a clip of a whole number of windows is cut into
exactly that many, and only the last window of any other clip is padded.

The embedding is the mean over the windows: one all-zero window too many would average silence into every clip
of 3, 6 or 9 s. ``windows`` needs soxr only (the decode's own resampler), so these run without BirdNET's extra.
"""

from __future__ import annotations

import numpy as np
import pytest
import soxr

from acoustic_env.embedders.birdnet.model import MODEL_RATE, WINDOW, windows

SR = 16000


def _noise(seconds: float) -> np.ndarray:
    """Noise at 16 kHz: no sample of it, nor of its 48 kHz resampling, is a run of zeros."""
    return np.random.default_rng(7).uniform(-0.5, 0.5, round(seconds * SR)).astype(np.float32)


@pytest.mark.parametrize("seconds, count", [(3.0, 1), (6.0, 2), (9.0, 3)])
def test_a_clip_of_whole_windows_is_cut_into_exactly_that_many(seconds, count):
    clip = _noise(seconds)
    cut = windows(clip)
    assert cut.shape == (count, WINDOW) and cut.dtype == np.float32
    assert (np.abs(cut).max(axis=1) > 0).all(), "a window of silence would be averaged into the embedding"
    np.testing.assert_array_equal(cut.ravel(), soxr.resample(clip, SR, MODEL_RATE, quality="HQ"))


@pytest.mark.parametrize("seconds, count", [(1.0, 1), (3.0 + 1 / SR, 2), (7.0, 3)])
def test_only_the_last_window_is_padded_and_only_after_the_audio(seconds, count):
    """Windows run end to end from the start: 7 s is two full windows and one of 1 s of audio then zeros; a clip
    shorter than a window is one padded window; one sample over a window starts a second."""
    clip = _noise(seconds)
    up = soxr.resample(clip, SR, MODEL_RATE, quality="HQ")
    cut = windows(clip)
    assert cut.shape == (count, WINDOW)
    np.testing.assert_array_equal(cut.ravel()[: up.size], up)
    assert not cut.ravel()[up.size:].any()
