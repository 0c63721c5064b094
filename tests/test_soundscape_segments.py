"""A recording's segments as the soundscape job scores them (jobs/soundscape/segments.py), on small files made here:
where segments start and end, what a segment's row holds and the row of a segment that cannot be read, and with a
model the windows of a span of segments part way through a file (fast: tiny models trained here, no Ray; the job's
run with a model is test_soundscape_job's)."""

from __future__ import annotations

import warnings

import numpy as np
import pyarrow as pa
import pytest
import soundfile as sf

from test_window_rows import COLUMNS, RAW, _sound, _wav

from acoustic_env.audio.featurize import featurize
from acoustic_env.config import DecodeParams, FeatureParams
from acoustic_env.errors import ClipError
from acoustic_env.features.fast.indices import hann_psd
from acoustic_env.features.reference.indices import INDEX_NAMES
from acoustic_env.features.spectral_bins import BIN_INDICES, per_bin_indices
from acoustic_env.jobs.soundscape.segments import SegmentScorer, SegmentSpan, open_audio, schema, segment_bounds, \
    segment_values, settings_key
from acoustic_env.jobs.windows import predict_windows
from acoustic_env.learn.artifact import load_model, save_model
from acoustic_env.learn.portable import from_zoo
from acoustic_env.learn.preprocess import fit_group
from acoustic_env.learn.transform import transform_all
from acoustic_env.learn.zoo import make_estimator
from acoustic_env.table import GroupInfo

SR = 8000
#: 2019-05-22 00:00:00 UTC
START = 1558483200.0


def _noise(seconds: float, seed: int = 0, channels: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = 0.1 * rng.standard_normal((int(seconds * SR), channels))
    x[:, 0] += 0.3 * np.sin(2 * np.pi * 1500 * np.arange(len(x)) / SR) * (np.arange(len(x)) % 2000 < 600)
    return x


def _span(path, first=0, end=None, segment_s=1.0, frames=None, site="ridge") -> SegmentSpan:
    info = sf.info(path)
    frames = info.frames if frames is None else frames
    count = len(segment_bounds(frames, info.samplerate, segment_s))
    return SegmentSpan(3, path.stem, str(path), first, count if end is None else end, frames, info.samplerate, site,
                       START)


@pytest.mark.parametrize("frames, bounds", [
    (3 * SR + SR // 2, [(0, SR), (SR, 2 * SR), (2 * SR, 3 * SR)]),  # a 0.5-s tail is no segment
    (3 * SR, [(0, SR), (SR, 2 * SR), (2 * SR, 3 * SR)]),
    (2 * SR + SR, [(0, SR), (SR, 2 * SR), (2 * SR, 3 * SR)]),
    (SR // 4, [(0, SR // 4)]),  # a file under a second is its own one segment
])
def test_segments_are_the_files_own_seconds_from_its_start_and_a_short_tail_is_left_out(frames, bounds):
    assert segment_bounds(frames, SR, 1.0) == bounds


def test_a_tail_of_exactly_the_minimum_is_a_segment_and_a_segment_is_never_empty():
    assert segment_bounds(2 * SR + SR, SR, 2.0) == [(0, 2 * SR), (2 * SR, 3 * SR)]
    assert segment_bounds(2 * SR + SR - 1, SR, 2.0) == [(0, 2 * SR)]
    assert segment_bounds(3, 1, 0.1) == [(0, 1), (1, 2), (2, 3)]  # a length under a sample is one sample


def test_each_setting_writes_its_parts_to_a_folder_of_its_own():
    base = settings_key(10.0, FeatureParams(), None, None)
    others = [settings_key(20.0, FeatureParams(), None, None),
              settings_key(10.0, FeatureParams(maad_nperseg=512), None, None),
              settings_key(10.0, FeatureParams(maad_noverlap=256), None, None),
              settings_key(10.0, FeatureParams(maad_db_threshold=6.0), None, None),
              settings_key(10.0, FeatureParams(), "model-a", None),
              settings_key(10.0, FeatureParams(), "model-a", 2.0)]
    assert len({base, *others}) == 7 and settings_key(10.0, FeatureParams(), None, None) == base
    assert len(base) == 16 and int(base, 16) >= 0


def test_the_tables_columns_with_and_without_a_model():
    plain = schema()
    assert plain.names[:9] == ["site", "clip_id", "uri", "start_time", "offset_s", "duration_s", "sample_rate",
                               "bin_hz", "error"]
    assert plain.names[9:9 + len(INDEX_NAMES)] == list(INDEX_NAMES)
    assert plain.names[9 + len(INDEX_NAMES):] == [f"bins_{n}" for n in BIN_INDICES]
    assert plain.field("start_time").type == pa.timestamp("ms", tz="UTC")
    assert plain.field("sample_rate").type == pa.int32() and plain.field("bins_ACI").type == pa.list_(pa.float32())
    model = schema(("urban", "natural"))
    assert model.names[len(plain.names):] == ["windows", "mean_urban", "share_urban", "mean_natural", "share_natural",
                                              "win_start_s", "win_end_s", "win_prob_urban", "win_prob_natural"]
    assert model.field("windows").type == pa.int32() and model.field("win_prob_natural").type == pa.list_(pa.float64())


def test_a_segments_row_is_the_indices_of_its_channels_mean_at_the_files_rate_on_the_sites_clock(tmp_path):
    x = _noise(3.5, channels=2)
    x[:, 1] *= 0.25
    path = tmp_path / "ridge_a.wav"
    sf.write(path, x, SR, subtype="FLOAT")
    params = FeatureParams()
    rows = SegmentScorer(1.0, params)(_span(path)).to_pylist()
    assert [r["offset_s"] for r in rows] == [0.0, 1.0, 2.0] and [r["duration_s"] for r in rows] == [1.0] * 3
    assert [r["start_time"].timestamp() for r in rows] == [START, START + 1, START + 2]
    assert {(r["site"], r["clip_id"], r["uri"], r["sample_rate"], r["error"]) for r in rows} == {
        ("ridge", "ridge_a", str(path), SR, None)}
    mono = sf.read(path, dtype="float64")[0].mean(axis=1)
    for k, r in enumerate(rows):
        want = segment_values(mono[k * SR:(k + 1) * SR], SR, params)
        assert r["bin_hz"] == SR / params.maad_nperseg == want["bin_hz"]
        assert [r[n] for n in INDEX_NAMES] == pytest.approx([want[n] for n in INDEX_NAMES], nan_ok=True)
        sxx, tn, _ = hann_psd(mono[k * SR:(k + 1) * SR], SR, params.maad_nperseg, params.maad_noverlap)
        with np.errstate(all="ignore"):
            bins = per_bin_indices(sxx, tn[1] - tn[0], params.maad_db_threshold)  # the frame step: not segment_values'
        for n in BIN_INDICES:
            np.testing.assert_allclose(np.asarray(r[f"bins_{n}"], dtype=np.float64), bins[n], rtol=1e-6, equal_nan=True)
    assert rows[0]["ACI"] != rows[1]["ACI"]  # each its own second


def test_a_span_scores_its_own_segments_only_and_a_start_time_in_ms(tmp_path):
    path = tmp_path / "ridge_b.wav"
    sf.write(path, _noise(4.0, seed=1), SR, subtype="PCM_16")
    score = SegmentScorer(1.0, FeatureParams())
    whole = score(_span(path)).to_pylist()
    part = score(_span(path, first=1, end=3)).to_pylist()
    assert [r["offset_s"] for r in part] == [1.0, 2.0] and part == whole[1:3]
    span = SegmentSpan(0, "b", str(path), 0, 1, 4 * SR, SR, "ridge", START + 0.2506)
    assert score(span)["start_time"].cast(pa.int64()).to_pylist() == [round((START + 0.2506) * 1000)]


def test_a_short_file_is_one_shorter_segment(tmp_path):
    path = tmp_path / "ridge_c.wav"
    sf.write(path, _noise(0.6), SR, subtype="PCM_16")
    (row,) = SegmentScorer(1.0, FeatureParams())(_span(path)).to_pylist()
    assert row["duration_s"] == 0.6 and row["error"] is None and row["ACI"] is not None


def test_a_silent_segments_undefined_indices_are_null_and_its_bins_nan(tmp_path):
    x = _noise(2.0)
    x[SR:] = 0.0
    path = tmp_path / "ridge_d.wav"
    sf.write(path, x, SR, subtype="PCM_16")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's warnings of a silent segment's divisions are not the user's
        loud, silent = SegmentScorer(1.0, FeatureParams())(_span(path)).to_pylist()
    values = segment_values(np.zeros(SR), SR, FeatureParams())
    undefined = [n for n in INDEX_NAMES if values[n] is None]
    assert undefined and all(silent[n] is None for n in undefined) and all(loud[n] is not None for n in undefined)
    assert all(isinstance(values[n], float) for n in INDEX_NAMES if n not in undefined)
    ent = values["bins_ENT"]
    assert ent.dtype == np.float32 and np.isnan(segment_values(np.zeros(SR), SR, FeatureParams())["bins_ACI"]).all()


def test_a_segment_with_nan_samples_is_its_own_error_and_its_neighbours_are_scored(tmp_path):
    x = _noise(3.0)
    x[SR + 10] = np.nan
    path = tmp_path / "ridge_e.wav"
    sf.write(path, x, SR, subtype="FLOAT")
    rows = SegmentScorer(1.0, FeatureParams())(_span(path)).to_pylist()
    assert [r["error"] for r in rows] == [None, "decode/nan_samples: NaN/inf samples in the segment", None]
    assert rows[1]["ACI"] is None and rows[1]["offset_s"] == 1.0 and rows[2]["ACI"] is not None


def test_a_file_cut_short_since_its_header_was_read_names_where_it_ends(tmp_path):
    path = tmp_path / "ridge_f.wav"
    sf.write(path, _noise(2.5), SR, subtype="PCM_16")
    rows = SegmentScorer(1.0, FeatureParams())(_span(path, frames=4 * SR)).to_pylist()
    assert [r["error"] for r in rows[:3]] == [
        None, None, "decode/truncated: the file ends at 2.5 s, its header declares 4.0 s"]
    # a segment wholly past the end: libsndfile cannot seek there
    assert rows[3]["error"].startswith("decode/corrupt: ") and "psf_fseek" in rows[3]["error"]
    assert [r["offset_s"] for r in rows] == [0.0, 1.0, 2.0, 3.0] and rows[3]["ACI"] is None


def test_a_file_gone_or_not_audio_since_the_plan_gives_each_segment_the_reason(tmp_path):
    path = tmp_path / "ridge_g.wav"
    sf.write(path, _noise(2.0), SR, subtype="PCM_16")
    span = _span(path)
    path.write_bytes(b"RIFF not really a wave file")
    rows = SegmentScorer(1.0, FeatureParams())(span).to_pylist()
    assert len(rows) == 2 and {r["error"] for r in rows} == {
        "decode/not_audio: libsndfile cannot read it (Format not recognised.)"}
    assert [r["offset_s"] for r in rows] == [0.0, 1.0] and [r["duration_s"] for r in rows] == [1.0, 1.0]
    assert {(r["site"], r["clip_id"], r["sample_rate"]) for r in rows} == {("ridge", "ridge_g", SR)}
    path.unlink()
    rows = SegmentScorer(1.0, FeatureParams())(span).to_pylist()
    assert len(rows) == 2 and all(r["error"].startswith("decode/") and str(path) in r["error"] for r in rows)


def test_open_audio_names_why_a_file_is_not_audio(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_bytes(b"RIFF not really a wave file")
    with pytest.raises(ClipError, match=r"^decode/not_audio: libsndfile cannot read it \(Format not recognised"):
        open_audio(str(path))
    good = tmp_path / "good.wav"
    sf.write(good, _noise(0.2), SR)
    raw = tmp_path / "good.raw"  # libsndfile takes a .raw name for headerless samples, and says so in its own words
    raw.write_bytes(good.read_bytes())
    with pytest.raises(ClipError, match=r"^decode/not_audio: libsndfile cannot read it \(samplerate must be "
                                        r"specified\)$"):
        open_audio(str(raw))
    fh, f = open_audio(str(good))
    assert f.frames == int(0.2 * SR) and f.samplerate == SR
    f.close()
    fh.close()


# ----------------------------------------------------------------------------- with a model: the segments' windows

#: 1-s stretches of a recording: chirps ("hummingbird") or hum ("hum"); 2-s segments at 0, 2, 4 s and a 1-s tail at 6 s.
KINDS = [False, True, True, False, True, True, False]


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict:
    """Tiny saved models telling hum ("hum") from chirps ("hummingbird"), recorded as trained on 1-s clips (a single-
    and a multi-label logistic regression on eight clips' indices, in about a second), and a recording of
    :data:`KINDS`."""
    root = tmp_path_factory.mktemp("segment_windows")
    train = [{"clip_id": f"t{i}", "uri": str(_wav(root / f"t{i}.wav", _sound(i % 2 == 1, seed=i)))} for i in range(8)]
    vectors = featurize(train, COLUMNS, features=RAW).vectors
    transforms = [fit_group(vectors["indices_raw"], 3, "indices_raw")]
    x = transform_all(transforms, vectors)
    out = {"recording": _wav(root / "ridge_w.wav", np.concatenate([_sound(k, seed=200 + i) for i, k in
                                                                   enumerate(KINDS)]))}
    for kind, y in (("single_label", np.arange(8) % 2), ("multi_label", np.eye(2, dtype=int)[np.arange(8) % 2])):
        task = {"name": "t2", "kind": kind, "class_names": ["hum", "hummingbird"], "definition": {}}
        description = {"task": task, "training_clip_s": {"value": 1.0, "source": "test"},
                       "extraction": {"decode": DecodeParams().to_dict(), "features": RAW.to_dict(), "source": "test"}}
        save_model(str(root / kind), from_zoo(make_estimator("logreg", kind, 2, seed=0).fit(x, y)), transforms,
                   description, [GroupInfo("indices_raw", 60, "indices", signal="raw")])
        out[kind] = str(root / kind)
    return out


def _recording_span(path, first, end) -> SegmentSpan:
    return SegmentSpan(3, "ridge_w", str(path), first, end, len(KINDS) * 16000, 16000, "ridge", START)


@pytest.mark.parametrize("kind", ["single_label", "multi_label"])
def test_a_span_part_way_through_a_file_holds_the_windows_starting_in_each_segment_at_their_times(models, kind):
    """A worker scores segments 1 .. 3 of a file: each row holds the windows of the file that start in its
    segment, at their times in the file, scored as ``predict --windows`` scores that file, and the class means and
    shares of those windows (the events are drawn from them: a window out of place is an event at the wrong time)."""
    model = load_model(models[kind])
    rows = SegmentScorer(2.0, FeatureParams(), model)(_recording_span(models["recording"], 1, 4)).to_pylist()
    assert [r["offset_s"] for r in rows] == [2.0, 4.0, 6.0] and [r["windows"] for r in rows] == [2, 2, 1]
    assert [r["win_start_s"] for r in rows] == [[2.0, 3.0], [4.0, 5.0], [6.0]]  # the model's 1-s clips
    assert [r["win_end_s"] for r in rows] == [[3.0, 4.0], [5.0, 6.0], [7.0]]
    file = predict_windows([str(models["recording"])], models[kind]).table.to_pylist()
    for c in ("hum", "hummingbird"):
        assert [r[f"win_prob_{c}"] for r in rows] == [[w[f"prob_{c}"] for w in file[2:4]],
                                                     [w[f"prob_{c}"] for w in file[4:6]], [file[6][f"prob_{c}"]]]
        assert [r[f"mean_{c}"] for r in rows] == pytest.approx([np.mean(r[f"win_prob_{c}"]) for r in rows])
    assert [r["share_hummingbird"] for r in rows] == [0.5, 1.0, 0.0]  # the chirps of 2-3 s and 4-6 s
    assert [r["share_hum"] for r in rows] == [0.5, 0.0, 1.0]


def test_windows_longer_than_a_segment_belong_to_the_segment_they_start_in_and_a_segment_may_hold_none(models):
    """2-s windows over 1-s segments: the window starting at 2 s is segment 2's alone; segment 3 starts none, so
    it holds no window and no class mean or share (not a zero)."""
    model = load_model(models["single_label"])
    score = SegmentScorer(1.0, FeatureParams(), model, 2.0)
    rows = score(_recording_span(models["recording"], 2, 4)).to_pylist()
    assert [r["windows"] for r in rows] == [1, 0] and [r["win_start_s"] for r in rows] == [[2.0], []]
    assert [r["win_end_s"] for r in rows] == [[4.0], []] and rows[0]["share_hummingbird"] == 1.0
    empty = rows[1]
    assert (empty["mean_hummingbird"], empty["share_hummingbird"], empty["win_prob_hummingbird"]) == (None, None, [])
    (alone,) = score(_recording_span(models["recording"], 3, 4)).to_pylist()
    assert (alone["windows"], alone["mean_hum"], alone["share_hum"]) == (0, None, None)


def test_a_file_gone_since_the_plan_gives_each_segment_and_window_the_error_and_no_class_values(models, tmp_path):
    """The file's windows come from the length planned, each with the error; no window scored: no mean, no share."""
    gone = tmp_path / "gone.wav"
    rows = SegmentScorer(2.0, FeatureParams(), load_model(models["single_label"]))(
        _recording_span(gone, 1, 3)).to_pylist()
    assert [r["windows"] for r in rows] == [2, 2] and [r["win_start_s"] for r in rows] == [[2.0, 3.0], [4.0, 5.0]]
    assert all(r["error"].startswith("decode/") and str(gone) in r["error"] for r in rows)
    assert {(r["mean_hummingbird"], r["share_hummingbird"], r["mean_hum"], r["share_hum"]) for r in rows} == {
        (None, None, None, None)}
    assert [r["win_prob_hummingbird"] for r in rows] == [[None, None], [None, None]]


def test_the_weights_cache_and_device_reach_the_models_embedders(models, monkeypatch):
    """``--weights-cache`` and ``--device`` are where a model's embedders load from and run (cpu by default), as
    ``predict --windows``'s are."""
    import acoustic_env.jobs.windows as jobs

    loads = []
    monkeypatch.setattr(jobs, "load_nets", lambda embedders, cache, device: loads.append((cache, device)) or {})
    model = load_model(models["single_label"])
    SegmentScorer(2.0, FeatureParams(), model, weights_cache="/cache/weights", device="cuda:1")
    SegmentScorer(2.0, FeatureParams(), model)
    assert loads == [("/cache/weights", "cuda:1"), (None, "cpu")]
