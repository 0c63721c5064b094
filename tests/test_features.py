"""CPU feature stages against the libraries they wrap, on real recordings."""

from __future__ import annotations

import numpy as np
import pytest

from acoustic_env.audio.decode import decode_clip
from acoustic_env.config import DecodeParams, FeatureParams
from acoustic_env.features import STAGES, cpu_features, feature_metadata
from acoustic_env.features.reference.indices import INDEX_NAMES, maad_indices
from acoustic_env.features.reference.mps import (
    mps_axes,
    mps_grid,
    soundsig_mps,
    to_grid,
)
from acoustic_env.features.reference.separation import separate

P = FeatureParams(impl="reference")
SR = 16000
RECORDINGS = ("S4A03895_20190522_000000.wav", "S4A03895_20190522_060000.wav", "S4A03895_20190522_120000.wav")


@pytest.fixture(scope="module")
def recordings(shared_data):
    return [decode_clip(str(shared_data / "maad_soundscapes" / name), DecodeParams()).audio for name in RECORDINGS]


def test_indices_equal_scikit_maad_own_output(recordings):
    """Call scikit-maad directly, as its example does, and compare index by index, by name."""
    from maad import features, sound

    for audio in recordings:
        x = audio.astype(np.float64)
        ours = dict(zip(INDEX_NAMES, maad_indices(x, SR, P)))
        temporal = features.all_temporal_alpha_indices(x, SR, gain=42, sensitivity=-35, dB_threshold=3,
                                                       rejectDuration=0.01)
        sxx, tn, fn, _ = sound.spectrogram(x, SR, window="hann", nperseg=1024, noverlap=512, mode="psd")
        spectral, _ = features.all_spectral_alpha_indices(
            sxx, tn, fn, flim_low=[0, 1000], flim_mid=[1000, 5000], flim_hi=[5000, 8000], gain=42,
            sensitivity=-35, R_compatible="soundecology", mask_param1=6, mask_param2=0.5)
        theirs = {**temporal.iloc[0].to_dict(), **spectral.iloc[0].to_dict()}
        assert set(theirs) == set(INDEX_NAMES) and len(INDEX_NAMES) == 60
        for name in INDEX_NAMES:
            np.testing.assert_allclose(ours[name], theirs[name], rtol=1e-12, err_msg=name)


def test_mps_grid_matches_soundsig_on_its_own_axes(recordings):
    wf, wt, power = soundsig_mps(recordings[1], SR, P)
    assert power.shape == (wf.size, wt.size)
    # choose a grid whose points fall exactly on soundsig's native axes: interpolation is then exact
    i0, j0 = np.searchsorted(wf, 0.0), np.searchsorted(wt, 0.0)
    params = FeatureParams(mps_n_wf=5, mps_max_wf=float(wf[i0 + 4]), mps_n_wt=5,
                           mps_max_wt=float(wt[j0 + 2]), impl="reference")
    grid = to_grid(wf, wt, power, params)
    expected = np.log10(power[i0:i0 + 5, j0 - 2:j0 + 3])
    np.testing.assert_allclose(grid, expected, rtol=1e-9)
    gwf, gwt = mps_axes(params)
    np.testing.assert_allclose(gwf, wf[i0:i0 + 5])
    np.testing.assert_allclose(gwt, wt[j0 - 2:j0 + 3])


def test_separation_partitions_the_signal(recordings):
    fg, bg = separate(recordings[0], SR, P)
    np.testing.assert_allclose(fg + bg, recordings[0], atol=1e-6)
    assert 0 < np.sum(fg.astype(np.float64) ** 2) < np.sum(recordings[0].astype(np.float64) ** 2)


def test_silence_gives_finite_features_and_counts_them():
    feats, cpu = cpu_features(np.zeros(2 * SR, dtype=np.float32), SR, P)
    for name, vec in feats.items():
        assert np.isfinite(vec).all(), name
    assert feats["nonfinite_features"] > 0  # undefined indices of silence were replaced and counted
    assert not np.any(feats["mps_raw"])
    assert set(cpu) == set(STAGES)


def test_feature_metadata_shapes():
    meta = feature_metadata(P)
    assert meta["indices_fg"]["names"] == list(INDEX_NAMES)
    assert meta["mps_bg"]["shape"] == [P.mps_n_wf, P.mps_n_wt]
    assert len(meta["mps_bg"]["axes"]["wt_hz"]) == P.mps_n_wt
    assert meta["spectral_raw"]["shape"] == [len(meta["spectral_raw"]["names"])] == [P.spectral_n_mels * 5 + 2 * 13 + 3 * 2]
    assert list(meta) == [f"{stage}_{s}" for s in P.signals for stage in ("indices", "spectral", "mps")]
    assert mps_grid(np.zeros(SR, dtype=np.float32), SR, P).shape == (P.mps_n_wf * P.mps_n_wt,)


def test_values_beyond_float32_are_counted_not_stored_as_inf(monkeypatch):
    """A finite float64 index above 3.4e38 (AGI on an impulse) must not become inf in the table."""
    import acoustic_env.features as features

    def huge(x, sr, params):
        v = np.ones(len(INDEX_NAMES))
        v[0] = 1e300
        yield "indices", v

    monkeypatch.setattr(features, "implementation", lambda name: huge)
    feats, _ = cpu_features(np.random.default_rng(0).standard_normal(SR).astype(np.float32), SR,
                            FeatureParams(impl="reference", signals=("raw",)))
    assert np.isfinite(feats["indices_raw"]).all() and feats["indices_raw"][0] == 0.0
    assert feats["nonfinite_features"] == 1
