"""The fast CPU feature core against the libraries it replaces (scikit-maad, soundsig, noisereduce).

Every test runs on two sets of clips: real 10-s field recordings (decoded to
16 kHz and RMS-normalised as the pipeline does; skipped when ../shared is
absent) and synthetic clips that reach the edge cases (tones, noise, a chirp,
near silence, digital silence, a gap of exact zeros, a 0.5-s clip). Each fast
stage is compared with its reference on identical input, for raw, fg and bg.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import require

from acoustic_env.audio.decode import decode_clip
from acoustic_env.config import DecodeParams, FeatureParams
from acoustic_env.features import STAGES, cpu_features, implementation, separation
from acoustic_env.features.fast import indices as fast_indices
from acoustic_env.features.fast import mps as fast_mps
from acoustic_env.features.fast import separation as fast_separation
from acoustic_env.features.reference.indices import INDEX_NAMES, maad_indices
from acoustic_env.features.reference.mps import mps_grid, soundsig_mps
from acoustic_env.features.reference.separation import separate

SR = 16000
REF = FeatureParams(impl="reference")
FAST = FeatureParams(impl="fast")
RECORDINGS_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "maad_soundscapes"
RECORDINGS = ("S4A03895_20190522_030000.wav", "S4A03895_20190522_060000.wav", "S4A03895_20190522_213000.wav")
# synthetic clips whose fg and bg are also compared (the others' add nothing new and cost test time)
WITH_FG_BG = ("tones", "chirp", "gap", "short_0.5s")
# ...and those compared end to end: the gate closes almost everywhere on "tones", so its fg is mostly
# noisereduce's rounding residue, which no reimplementation reproduces (see fast_indices)
END_TO_END = ("chirp", "gap", "short_0.5s")


def _rms(x: np.ndarray, level: float = 0.1) -> np.ndarray:
    return (x * level / np.sqrt(np.mean(x**2))).astype(np.float32)


def synthetic_clips() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    t = np.arange(10 * SR) / SR
    gap = rng.standard_normal(t.size)
    gap[3 * SR : 6 * SR] = 0.0
    short = np.arange(SR // 2) / SR
    return {
        "tones": _rms(np.sin(2 * np.pi * 440 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
                      + 0.3 * np.sin(2 * np.pi * 3000 * t)),
        "noise": _rms(rng.standard_normal(t.size)),
        "chirp": _rms(np.sin(2 * np.pi * (200 * t + 350 * t**2)) + 0.01 * rng.standard_normal(t.size)),
        "near_silence": (1e-7 * rng.standard_normal(t.size)).astype(np.float32),
        "silence": np.zeros(t.size, dtype=np.float32),
        "gap": _rms(gap),
        "short_0.5s": _rms(np.sin(2 * np.pi * 1000 * short) + 0.1 * rng.standard_normal(short.size)),
    }


@pytest.fixture(scope="module", params=["recordings", "synthetic"])
def clips(request) -> dict[str, np.ndarray]:
    if request.param == "synthetic":
        return synthetic_clips()
    require(RECORDINGS_DIR.is_dir(), f"real recordings not found at {RECORDINGS_DIR} (../shared is absent in a user's clone)")
    return {name[-10:-4]: decode_clip(str(RECORDINGS_DIR / name), DecodeParams()).audio for name in RECORDINGS}


@pytest.fixture(scope="module")
def reference(clips) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """{clip/signal: (signal, reference indices, reference MPS grid)}, computed once per set.

    fg and bg come from noisereduce itself, so that each fast stage sees exactly
    the reference's input.
    """
    out = {}
    for name, x in clips.items():
        fg, bg = separate(x, SR, REF)
        signals = {"raw": x, "fg": fg, "bg": bg} if name.isdigit() or name in WITH_FG_BG else {"raw": x}
        for sig, y in signals.items():
            out[f"{name}/{sig}"] = (y, maad_indices(y, SR, REF), mps_grid(y, SR, REF))
    return out


@pytest.mark.slow
def test_fast_is_the_default_and_dispatches():
    assert FeatureParams().impl == "fast"
    x = synthetic_clips()["short_0.5s"]
    fast = dict(implementation("fast")(x, SR, FAST))
    assert list(fast) == ["indices", "spectral", "mps"]
    np.testing.assert_array_equal(fast["indices"], fast_indices.maad_indices(x, SR, FAST))
    np.testing.assert_array_equal(fast["mps"], fast_mps.mps_grid(x, SR, FAST))
    np.testing.assert_array_equal(dict(implementation("reference")(x, SR, REF))["indices"], maad_indices(x, SR, REF))
    assert separation("fast") is fast_separation.separate and separation("reference") is separate


def test_indices_match_scikit_maad(reference):
    """All 60 indices, one by one: float64 with scikit-maad's formulas, so to rounding (asked: 1e-3)."""
    for name, (x, ref, _) in reference.items():
        fast = fast_indices.maad_indices(x, SR, REF)
        assert fast.shape == (len(INDEX_NAMES),) and fast.dtype == np.float64
        for i, index in enumerate(INDEX_NAMES):
            np.testing.assert_allclose(fast[i], ref[i], rtol=1e-6, atol=1e-9, equal_nan=True,
                                       err_msg=f"{index} of {name}")


def test_mps_grid_matches_soundsig(reference):
    """The fixed grid: within 1e-4 in log10 power, correlation >= 0.99999 (asked: 0.999)."""
    for name, (x, _, ref) in reference.items():
        fast = fast_mps.mps_grid(x, SR, REF)
        assert fast.shape == ref.shape == (REF.mps_n_wf * REF.mps_n_wt,)
        if not np.any(ref):  # silence: all zeros in both
            assert not np.any(fast), name
            continue
        np.testing.assert_allclose(fast, ref, atol=1e-4, rtol=0, err_msg=name)
        assert np.corrcoef(fast, ref)[0, 1] >= 0.99999, name


def test_mps_native_axes_and_power_match_soundsig(clips):
    """soundsig's own axes, exactly, and its whole un-gridded MPS, from the fast spectrogram."""
    for name in list(clips)[:1] + [n for n in clips if n == "short_0.5s"]:
        wf, wt, power = soundsig_mps(clips[name], SR, REF)
        t, f, spec_db = fast_mps.gaussian_log_spectrogram(clips[name], SR, REF)
        fwf, fwt, fpower = fast_mps.mps_power(spec_db, f, t, REF.mps_window_s)
        np.testing.assert_array_equal(fwf, wf)
        np.testing.assert_array_equal(fwt, wt)
        assert fpower.shape == power.shape
        np.testing.assert_allclose(fpower, power, rtol=0, atol=1e-5 * power.max(), err_msg=name)
        np.testing.assert_allclose(np.log10(fpower), np.log10(power), atol=1e-3, err_msg=name)


def _assert_same_separation(x: np.ndarray, name: str) -> None:
    fg, _ = separate(x, SR, REF)
    ffg, fbg = fast_separation.separate(x, SR, REF)
    assert ffg.dtype == fbg.dtype == np.float32 and ffg.shape == fbg.shape == x.shape, name
    np.testing.assert_array_equal(fbg, (x - ffg).astype(np.float32), err_msg=name)
    rms = float(np.sqrt(np.mean(fg.astype(np.float64) ** 2)))
    np.testing.assert_allclose(ffg, fg, rtol=0, atol=1e-6 * rms, err_msg=name)
    if rms > 0:
        assert np.corrcoef(ffg, fg)[0, 1] >= 1 - 1e-9, name


def test_separation_matches_noisereduce(clips):
    for name, x in clips.items():
        _assert_same_separation(x, name)


def test_separation_of_a_clip_noisereduce_cuts_in_chunks():
    n = 45 * SR  # more than noisereduce's 600,000-sample chunk
    rng = np.random.default_rng(1)
    _assert_same_separation(_rms(rng.standard_normal(n) * (1 + np.sin(np.arange(n) / 3000))), "45 s")


def test_stationary_gating_is_delegated():
    params = FeatureParams(nr_stationary=True)
    x = synthetic_clips()["tones"][: 2 * SR]
    for a, b in zip(fast_separation.separate(x, SR, params), separate(x, SR, params)):
        np.testing.assert_array_equal(a, b)


def test_cpu_features_fast_vs_reference_end_to_end(clips, reference):
    """The whole stage, fast separation included: raw to 1e-6, fg and bg to the issue's 1e-3."""
    for name in (n for n in clips if n.isdigit() or n in END_TO_END):
        fast, cpu = cpu_features(clips[name], SR, FAST)
        assert set(cpu) == set(STAGES)
        nonfinite = 0
        for sig in ("raw", "fg", "bg"):
            _, indices, grid = reference[f"{name}/{sig}"]
            nonfinite += int(np.sum(~np.isfinite(indices)))
            stored = np.nan_to_num(indices, nan=0.0, posinf=0.0, neginf=0.0)  # what cpu_features stores
            np.testing.assert_allclose(fast[f"indices_{sig}"], stored, rtol=1e-6 if sig == "raw" else 1e-3, atol=1e-6,
                                       err_msg=f"indices_{sig} of {name}")
            np.testing.assert_allclose(fast[f"mps_{sig}"], grid, atol=1e-4, err_msg=f"mps_{sig} of {name}")
        assert fast["nonfinite_features"] == nonfinite, name


def test_silence_is_finite_and_counted_like_the_reference():
    x = np.zeros(2 * SR, dtype=np.float32)
    ref, _ = cpu_features(x, SR, REF)
    fast, _ = cpu_features(x, SR, FAST)
    assert fast["nonfinite_features"] == ref["nonfinite_features"] > 0
    for key in ref:
        np.testing.assert_array_equal(fast[key], ref[key], err_msg=key)
