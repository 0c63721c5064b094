"""The spectral-statistics group: fast (the indices' STFT) against librosa, its layout, its switch and its rules.

Tolerance: fast and reference agree to 1e-6 dB on identical input (in practice
1e-12), on real 10-s recordings (skipped without ../shared) and on synthetic
clips (tones, noise, a chirp, near and digital silence, a gap of zeros, 0.5 s),
for raw, fg and bg; end to end through ``cpu_features`` (fast separation in
place of noisereduce) to 1e-4 dB. The spectral centroid, bandwidth and roll-off
are held to librosa's own functions on the real AudioSet clip, frame by frame.
"""

from __future__ import annotations

import librosa
import numpy as np
import pytest
from test_fast_features import RECORDINGS, synthetic_clips

from acoustic_env.audio.decode import decode_clip
from acoustic_env.audio.stages import vector_columns
from acoustic_env.config import (
    ConfigError,
    DecodeParams,
    ExtractConfig,
    FeatureParams,
    from_dict,
)
from acoustic_env.features import STAGES, cpu_features, feature_metadata, implementation
from acoustic_env.features.fast.indices import indices_and_psd
from acoustic_env.features.fast.spectral import magnitude, shape
from acoustic_env.features.fast.spectral import spectral_stats as fast_stats
from acoustic_env.features.reference.separation import separate
from acoustic_env.features.reference.spectral import spectral_names
from acoustic_env.features.reference.spectral import spectral_stats as reference_stats

SR = 16000
P = FeatureParams()


@pytest.fixture(scope="module", params=["recordings", "synthetic"])
def clips(request) -> dict[str, np.ndarray]:
    if request.param == "synthetic":
        return synthetic_clips()
    shared = request.getfixturevalue("shared_data")
    return {name[-10:-4]: decode_clip(str(shared / "maad_soundscapes" / name), DecodeParams()).audio
            for name in RECORDINGS}


def _fast(x: np.ndarray, params: FeatureParams) -> np.ndarray:
    return fast_stats(x, indices_and_psd(x, SR, params)[1], SR, params)


def test_fast_matches_librosa_on_raw_fg_bg(clips):
    for name, x in clips.items():
        fg, bg = separate(x, SR, P)
        for sig, y in (("raw", x), ("fg", fg), ("bg", bg)):
            ref = reference_stats(y, SR, P)
            assert ref.shape == (len(spectral_names(P)),) == (40 * 5 + 2 * 13 + 3 * 2,) and np.isfinite(ref).all()
            np.testing.assert_allclose(_fast(y, P), ref, rtol=0, atol=1e-6, err_msg=f"{name}/{sig}")


@pytest.mark.parametrize("params", [
    FeatureParams(maad_noverlap=0, spectral_n_mels=64, spectral_n_mfcc=20, spectral_percentiles=(5.0, 95.0)),
    FeatureParams(maad_nperseg=512, maad_noverlap=384, spectral_fmin=100.0, spectral_fmax=6000.0,
                  spectral_percentiles=()),
], ids=["no-overlap", "75%-overlap"])
def test_fast_matches_librosa_at_other_settings(params):
    """Other hops keep scikit-maad's frame count, a lower fmax and no percentiles change the layout."""
    x = synthetic_clips()["chirp"]
    ref = reference_stats(x, SR, params)
    assert ref.shape == (len(spectral_names(params)),)
    np.testing.assert_allclose(_fast(x, params), ref, rtol=0, atol=1e-6)


def test_values_are_where_their_names_say():
    """Each name's value is that statistic of librosa's log-mel (or MFCC) frames."""
    x = synthetic_clips()["tones"]
    hop = P.maad_nperseg - P.maad_noverlap
    mel = librosa.feature.melspectrogram(y=x.astype(np.float64), sr=SR, n_fft=P.maad_nperseg, hop_length=hop,
                                         center=False, n_mels=P.spectral_n_mels, fmin=P.spectral_fmin,
                                         fmax=P.spectral_fmax)
    log_mel = 10 * np.log10(np.maximum(mel, 1e-10))
    mfcc = librosa.feature.mfcc(S=log_mel, n_mfcc=P.spectral_n_mfcc)
    values = dict(zip(spectral_names(P), _fast(x, P)))
    assert values["logmel_mean_07"] == pytest.approx(log_mel[7].mean())
    assert values["logmel_std_39"] == pytest.approx(log_mel[39].std())
    assert values["logmel_p90_12"] == pytest.approx(np.percentile(log_mel[12], 90))
    assert values["mfcc_mean_00"] == pytest.approx(mfcc[0].mean())
    assert values["mfcc_std_12"] == pytest.approx(mfcc[12].std())
    hz = feature_metadata(P)["spectral_raw"]["mel_hz"]
    loudest = int(np.argmax([values[f"logmel_mean_{b:02d}"] for b in range(P.spectral_n_mels)]))
    assert abs(hz[loudest] - 440) < 100  # the 440-Hz tone is the loudest band


def test_centroid_bandwidth_and_rolloff_are_librosas_on_a_real_clip(shared_data):
    """Frame by frame against librosa.feature.spectral_* on the raw signal (no detrending, Nyquist kept), then the
    mean and spread over the frames where the names say."""
    x = decode_clip(str(shared_data / "audioset" / "R9_ZSCveAHg_7s.wav"), DecodeParams()).audio
    hop = P.maad_nperseg - P.maad_noverlap
    kw = {"y": x.astype(np.float64), "sr": SR, "n_fft": P.maad_nperseg, "hop_length": hop, "center": False}
    frames = len(x) // hop - 1
    theirs = np.concatenate([librosa.feature.spectral_centroid(**kw), librosa.feature.spectral_bandwidth(**kw),
                             librosa.feature.spectral_rolloff(**kw)])[:, :frames]
    ours = shape(magnitude(x, indices_and_psd(x, SR, P)[1], P.maad_nperseg, P.maad_noverlap), SR)
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-6)
    assert 200 < theirs[0].mean() < 6000 and theirs[2].std() > 10  # a real clip: the measures move between frames
    values = dict(zip(spectral_names(P), _fast(x, P)))
    for i, measure in enumerate(("centroid", "bandwidth", "rolloff")):
        assert values[f"{measure}_mean"] == pytest.approx(theirs[i].mean(), rel=1e-9)
        assert values[f"{measure}_std"] == pytest.approx(theirs[i].std(), rel=1e-9)


def test_silence_is_the_floor_not_minus_infinity():
    v = _fast(np.zeros(SR, dtype=np.float32), P)
    names = spectral_names(P)
    assert np.isfinite(v).all()
    assert v[names.index("logmel_mean_00")] == v[names.index("logmel_p50_39")] == -100.0
    assert v[names.index("logmel_std_20")] == 0.0
    assert v[names.index("centroid_mean")] == v[names.index("rolloff_std")] == 0.0  # as librosa: no energy, 0 Hz


def test_cpu_features_columns_stage_and_switch(clips):
    name, x = next(iter(clips.items()))
    fast, cpu = cpu_features(x, SR, P)
    ref, _ = cpu_features(x, SR, FeatureParams(impl="reference"))
    assert set(cpu) == set(STAGES) and cpu["spectral"] > 0
    for sig in P.signals:
        assert fast[f"spectral_{sig}"].dtype == np.float32 and fast[f"spectral_{sig}"].shape == (232,)
        np.testing.assert_allclose(fast[f"spectral_{sig}"], ref[f"spectral_{sig}"], rtol=0, atol=1e-4,
                                   err_msg=f"{name}/{sig}")
    off = FeatureParams(spectral=False, signals=("raw",))
    feats, cpu = cpu_features(x, SR, off)
    assert sorted(feats) == ["indices_raw", "mps_raw", "nonfinite_features"] and cpu["spectral"] == 0.0
    assert [stage for stage, _ in implementation("fast")(x, SR, off)] == ["indices", "mps"]
    assert "spectral_raw" not in feature_metadata(off)


def test_metadata_and_vector_columns_by_default():
    meta = feature_metadata(P)
    assert meta["spectral_fg"]["names"] == spectral_names(P) and meta["spectral_fg"]["shape"] == [232]
    assert len(meta["spectral_fg"]["mel_hz"]) == 40
    cfg = from_dict(ExtractConfig, {"manifest": "m.csv", "output": "out", "embedders": []})
    cols = vector_columns(cfg)
    assert cols["spectral_raw"] == cols["spectral_bg"] == 232 and cols["indices_raw"] == 60
    off = from_dict(ExtractConfig, {"manifest": "m.csv", "output": "out", "embedders": [],
                                    "features": {"spectral": False}})
    assert not any(c.startswith("spectral_") for c in vector_columns(off))


@pytest.mark.parametrize("features, message", [
    ({"spectral_fmin": 0.0}, r"features.spectral_fmin: must be >= sample_rate / maad_nperseg = 15.625 Hz"),
    ({"spectral_fmax": 9000.0}, r"features.spectral_fmax: must be in \(spectral_fmin, 8000\]"),
    ({"spectral_fmin": 500.0, "spectral_fmax": 400.0}, "features.spectral_fmax"),
    ({"spectral_n_mfcc": 50}, "features.spectral_n_mfcc: must be <= spectral_n_mels"),
    ({"spectral_n_mels": 0}, "features.spectral_n_mels: must be an integer >= 1"),
    ({"spectral_percentiles": [10, 120]}, "features.spectral_percentiles: must be distinct percentiles"),
    ({"spectral_percentiles": "50,50"}, "features.spectral_percentiles: must be distinct percentiles"),
])
def test_bad_spectral_parameters_name_the_field(features, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(ExtractConfig, {"manifest": "m.csv", "output": "out", "features": features})
