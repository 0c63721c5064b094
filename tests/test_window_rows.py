"""Long recordings in windows, fast: the reader of :mod:`acoustic_env.audio.windows` on small WAV files and the
scoring of :mod:`acoustic_env.jobs.windows` with a tiny model (a logistic regression on the acoustic indices of
eight 1-s clips, trained in well under a second), so that ``make mutate`` can run them for every mutant.

tests/test_windows.py checks the same paths end to end with a model trained by the train job (seconds), which
mutation testing cannot afford per mutant.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import soundfile as sf

from acoustic_env.audio.decode import decode_bytes
from acoustic_env.audio.featurize import featurize
from acoustic_env.audio.windows import Recording, Window, _window, open_recording
from acoustic_env.config import ConfigError, DecodeParams, FeatureParams, WindowParams
from acoustic_env.errors import ClipError
from acoustic_env.jobs.windows import batches, predict_windows, recording_rows, score_windows, summarize, \
    window_lengths
from acoustic_env.learn.artifact import load_model, save_model
from acoustic_env.learn.portable import from_zoo
from acoustic_env.learn.preprocess import fit_group
from acoustic_env.learn.transform import transform_all
from acoustic_env.learn.zoo import make_estimator
from acoustic_env.table import GroupInfo

SR = 16000
#: Not the default bands: a window must be scored with the features of the model's training table.
RAW = FeatureParams(signals=("raw",), maad_flim_mid=(1000.0, 4000.0), maad_flim_hi=(4000.0, 8000.0))
COLUMNS = {"indices_raw": 60}


def _sound(natural: bool, seed: int, seconds: float = 1.0, sr: int = SR) -> np.ndarray:
    """int16 samples: chirps between 3 and 6 kHz over faint noise, or a 100 Hz hum in loud broadband noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    if natural:
        f = 3000 + 3000 * ((t * rng.uniform(3, 5)) % 1)
        x = 0.3 * np.sin(2 * np.pi * np.cumsum(f) / sr) * (np.sin(2 * np.pi * 4 * t) > 0)
        x = x + 0.01 * rng.standard_normal(t.size)
    else:
        x = 0.2 * np.sin(2 * np.pi * 100 * t) + 0.3 * rng.standard_normal(t.size)
    return np.round(np.clip(x, -1, 1) * 32767).astype(np.int16)


def _wav(path: Path, audio: np.ndarray, sr: int = SR, subtype: str = "PCM_16") -> Path:
    sf.write(path, audio, sr, subtype=subtype)
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict:
    """A tiny saved model telling hum ("urban") from chirps ("natural"), recorded as trained on 1-s clips, four
    1-s clips of alternating kinds and the long recording made of them end to end (window k is clip k)."""
    root = tmp_path_factory.mktemp("window_rows")
    train = [{"clip_id": f"t{i}", "uri": str(_wav(root / f"t{i}.wav", _sound(i % 2 == 1, seed=i)))} for i in range(8)]
    x = {"indices_raw": featurize(train, COLUMNS, features=RAW).vectors["indices_raw"]}
    transforms = [fit_group(x["indices_raw"], 3, "indices_raw")]
    fitted = make_estimator("logreg", "single_label", 2, seed=0).fit(transform_all(transforms, x), np.arange(8) % 2)
    task = {"name": "t2", "kind": "single_label", "class_names": ["urban", "natural"], "definition": {}}
    description = {"task": task, "extraction": {"decode": DecodeParams().to_dict(), "features": RAW.to_dict(),
                                                "source": "test"},
                   "training_clip_s": {"value": 1.0, "source": "test"}}
    save_model(str(root / "model"), from_zoo(fitted), transforms, description,
               [GroupInfo("indices_raw", 60, "indices", signal="raw")])
    clips = [_wav(root / f"clip{k}.wav", _sound(k % 2 == 1, seed=100 + k)) for k in range(4)]
    long = _wav(root / "long.wav", np.concatenate([sf.read(c, dtype="int16")[0] for c in clips]))
    return {"uri": str(root / "model"), "model": load_model(str(root / "model")), "clips": clips, "long": long,
            "root": root}


# ----------------------------------------------------------------------------- the reader: audio/windows.py

def test_a_window_is_the_clip_of_its_stretch_to_the_bit(tiny):
    """Window k of the long file is clip k decoded alone: same samples, rate, channels, length and silence."""
    with Recording(str(tiny["long"]), DecodeParams()) as rec:
        assert (rec.duration_s, rec.sample_rate) == (4.0, SR) and isinstance(rec.sample_rate, int)
        windows = list(rec.windows(1.0, 1.0))
    assert [(w.start_s, w.end_s, w.error) for w in windows] == [(float(k), k + 1.0, None) for k in range(4)]
    for w, clip in zip(windows, tiny["clips"]):
        alone = decode_bytes(clip.read_bytes(), DecodeParams())
        assert np.array_equal(w.clip.audio, alone.audio) and _meta(w.clip) == _meta(alone)


def test_bytes_and_an_open_file_are_read_from_their_start(tiny):
    """A spooled upload's file object may stand at its end (it was just written): the windows still start at 0."""
    data = tiny["long"].read_bytes()
    spooled = io.BytesIO(data)
    spooled.seek(0, io.SEEK_END)
    for source in (data, spooled):
        with Recording(source, DecodeParams()) as rec:
            assert [(w.start_s, w.error) for w in rec.windows(2.0, 2.0)] == [(0.0, None), (2.0, None)]
    assert spooled.closed  # the recording closes what it read
    fh = open_recording(data, DecodeParams())
    assert fh.tell() == 0 and fh.read() == data


@pytest.mark.parametrize("source", [b"", io.BytesIO()])
def test_an_empty_upload_is_an_empty_file_error(source):
    with pytest.raises(ClipError) as exc:
        Recording(source, DecodeParams()).__enter__()
    assert str(exc.value) == "decode/empty_file: file is empty (0 bytes)"


def test_a_missing_file_names_it(tmp_path):
    with pytest.raises(ClipError, match=r"^decode/missing_file: .*gone\.wav$"):
        Recording(str(tmp_path / "gone.wav"), DecodeParams()).__enter__()


def test_a_file_that_is_not_audio_says_which_formats_windows_take():
    """Not audio (or MP4, which libsndfile lacks): one line saying to convert with ffmpeg; the file is closed."""
    fh = io.BytesIO(b"not audio at all, only some text")
    with pytest.raises(ClipError) as exc:
        Recording(fh, DecodeParams()).__enter__()
    assert fh.closed and str(exc.value) == ("decode/not_audio: libsndfile cannot read it (Format not recognised.); "
                                            "windows need WAV, FLAC, OGG or MP3 (convert other formats with ffmpeg "
                                            "first)")  # libsndfile's own reason, not its repr of the file object


def test_an_object_libsndfile_cannot_read_from_is_one_line_and_closed():
    """Not a readable file at all (a TypeError inside soundfile, which has no libsndfile reason): its message."""

    class SeekOnly:
        closed = False

        def seek(self, *_: object) -> int:
            return 10

        def close(self) -> None:
            self.closed = True

    fh = SeekOnly()
    with pytest.raises(ClipError, match=r"^decode/not_audio: libsndfile cannot read it \(Invalid file: <.*SeekOnly "
                                        r"object at .*>\); windows need WAV"):
        Recording(fh, DecodeParams()).__enter__()
    assert fh.closed


def test_a_uri_is_opened_within_the_decode_read_limits(tiny, monkeypatch):
    """A remote recording's reads are bounded by the decode section's read_timeout_s, as a clip's are."""
    import acoustic_env.audio.windows as reader

    seen = []
    monkeypatch.setattr(reader, "open_clip", lambda uri, params: seen.append((uri, params)) or open(uri, "rb"))
    params = DecodeParams(read_timeout_s=3.0)
    with Recording(str(tiny["long"]), params) as rec:
        assert rec.duration_s == 4.0
    assert seen == [(str(tiny["long"]), params)]


def test_an_unsupported_rate_is_refused_on_entry_and_closes_the_file(tmp_path):
    path = _wav(tmp_path / "low.wav", np.zeros(4000, np.int16), sr=4000)
    fh = open(path, "rb")  # noqa: SIM115 - the recording must close it
    with pytest.raises(ClipError, match=r"^decode/unsupported: sample rate 4000 Hz \(8 to 96 kHz"):
        Recording(fh, DecodeParams()).__enter__()
    assert fh.closed


def test_a_file_without_samples_is_too_short_before_any_window(tmp_path):
    path = _wav(tmp_path / "none.wav", np.zeros(0, np.int16))
    with Recording(str(path), DecodeParams()) as rec, pytest.raises(ClipError) as exc:
        rec.windows(1.0, 1.0)
    assert str(exc.value) == "decode/too_short: no audio samples in the file"


def test_a_file_of_one_sample_is_one_window_too_short_to_score(tmp_path):
    """A sample is audio: the file gives its window, whose error says how short it is (not a file without any)."""
    with Recording(str(_wav(tmp_path / "one.wav", np.ones(1, np.int16))), DecodeParams()) as rec:
        [w] = rec.windows(1.0, 1.0)
    assert (w.start_s, w.end_s, w.clip) == (0.0, 1 / SR, None)
    assert w.error == "decode/too_short: 0.000 s < minimum 0.5 s"


def test_more_windows_than_max_windows_is_refused_before_reading_saying_what_to_do(tiny):
    with Recording(str(tiny["long"]), DecodeParams()) as rec:
        assert len(list(rec.windows(1.0, 0.5, most=7))) == 7  # exactly the limit: allowed
        assert len(list(rec.windows(1.0, 0.5))) == 7  # no limit
        with pytest.raises(ClipError) as exc:
            rec.windows(1.0, 0.5, most=6)
    assert str(exc.value) == ("decode/too_many_windows: 4.0 s in windows of 1 s every 0.5 s is 7 windows, more "
                              "than max_windows = 6: take a longer hop or raise max_windows")


def test_a_short_tail_is_left_out_and_a_file_shorter_than_a_window_is_one(tiny, tmp_path):
    """decode.min_duration_s (0.5 s) bounds the tail; the windows of a 0.3-s file: one, which is too short."""
    audio = sf.read(tiny["long"], dtype="int16")[0]
    with Recording(_wav(tmp_path / "tail.wav", audio[: int(2.4 * SR)]).read_bytes(), DecodeParams()) as rec:
        assert [(w.start_s, w.end_s) for w in rec.windows(1.0, 1.0)] == [(0.0, 1.0), (1.0, 2.0)]
    with Recording(_wav(tmp_path / "tail.wav", audio[: int(2.5 * SR)]).read_bytes(), DecodeParams()) as rec:
        assert [(w.start_s, w.end_s) for w in rec.windows(1.0, 1.0)][-1] == (2.0, 2.5)
    with Recording(_wav(tmp_path / "short.wav", audio[: int(0.3 * SR)]).read_bytes(), DecodeParams()) as rec:
        [w] = rec.windows(1.0, 1.0)
    assert (w.start_s, w.end_s, w.clip) == (0.0, 0.3, None) and w.error.startswith("decode/too_short: 0.300 s")


def test_a_file_of_doubles_beyond_float32_is_read_as_doubles(tmp_path):
    """Finite samples past float32's range (1e39) are scaled, as a clip file's are, not read as inf."""
    x = np.sin(2 * np.pi * 440 * np.arange(SR) / SR) * 1e39
    path = _wav(tmp_path / "big.wav", x, subtype="DOUBLE")
    with Recording(str(path), DecodeParams()) as rec:
        [w] = rec.windows(1.0, 1.0)
    alone = decode_bytes(path.read_bytes(), DecodeParams())
    assert w.error is None and np.array_equal(w.clip.audio, alone.audio) and _meta(w.clip) == _meta(alone)


def test_a_damaged_flac_gives_error_windows_with_their_times_and_the_windows_before_it(tiny):
    """A FLAC cut short: the windows past the cut are corrupt errors (libsndfile's reason), each with its times."""
    audio = sf.read(tiny["long"], dtype="int16")[0]
    buf = io.BytesIO()
    sf.write(buf, audio, SR, format="FLAC")
    data = buf.getvalue()
    with Recording(data[: int(len(data) * 0.6)], DecodeParams()) as rec:
        windows = list(rec.windows(1.0, 1.0))
    assert [(w.start_s, w.end_s) for w in windows] == [(float(k), k + 1.0) for k in range(4)]
    assert [w.error for w in windows[:2]] == [None, None] and windows[2].clip is None and windows[3].clip is None
    assert windows[2].error == "decode/corrupt: Error : flac decoder lost sync."
    assert windows[3].error.startswith("decode/corrupt: ")
    with Recording(data[: int(len(data) * 0.6)], DecodeParams()) as rec:  # a span that starts past the cut seeks there
        late = list(rec.windows(1.0, 1.0, first=3))
    assert [(w.start_s, w.end_s, w.clip) for w in late] == [(3.0, 4.0, None)]
    assert late[0].error.startswith("decode/corrupt: cannot seek to 3.0 s, the file is cut short or damaged before it (")


def test_a_file_holding_fewer_frames_than_it_declares_gives_a_truncated_window(tiny):
    """libsndfile may return fewer frames than the header promised: that window says how many it holds."""

    class Short:
        samplerate = SR

        def seek(self, frame: int) -> None:
            self.frame = frame

        def read(self, frames: int, dtype: str, always_2d: bool) -> np.ndarray:
            return np.zeros((frames // 2, 1), dtype=dtype)

    w = _window(Short(), 2 * SR, 3 * SR, "float32", DecodeParams())
    assert (w.start_s, w.end_s, w.clip) == (2.0, 3.0, None)
    assert w.error == f"decode/truncated: file declares {SR} frames here but holds {SR // 2}"


def _meta(clip) -> tuple:
    return clip.orig_sample_rate, clip.channels, clip.orig_duration_s, clip.is_silent


# ----------------------------------------------------------------------------- scoring: jobs/windows.py

def test_the_window_is_the_training_clip_length_within_the_decode_limits(tiny):
    """Default window: the training clips' 1 s (capped at decode.max_duration_s); default hop: the window."""
    m, decode = tiny["model"], DecodeParams()
    assert window_lengths(WindowParams(windows=True), m, decode) == (1.0, 1.0)
    assert window_lengths(WindowParams(windows=True), m, DecodeParams(max_duration_s=0.75)) == (0.75, 0.75)
    assert window_lengths(WindowParams(windows=True, window_s=3.0, hop_s=0.5), m, decode) == (3.0, 0.5)
    for edge in (0.5, 60.0):  # decode.min_duration_s and decode.max_duration_s themselves are windows
        assert window_lengths(WindowParams(windows=True, window_s=edge), m, decode) == (edge, edge)
    for bad, shown in ((0.25, "0.25"), (60.5, "60.5")):
        with pytest.raises(ConfigError) as exc:
            window_lengths(WindowParams(windows=True, window_s=bad), m, decode)
        assert str(exc.value) == ("windows.window_s: must be in [decode.min_duration_s, decode.max_duration_s] = "
                                  f"[0.5, 60] s, got {shown}")


def test_batches_are_consecutive_and_drawn_as_wanted():
    """The last batch is shorter; an endless stream still gives its first batch (nothing is read ahead)."""
    assert list(batches(range(7), 3)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(batches([], 3)) == [] and list(batches(range(2), 1)) == [[0], [1]]
    endless = batches(iter(int, 1), 2)
    assert next(endless) == [0, 0] and next(endless) == [0, 0]


def _clip_rows(tiny) -> list[dict]:
    """predict's answer for each of the four clips scored alone."""
    from acoustic_env.jobs.predict import predict

    return predict([str(c) for c in tiny["clips"]], tiny["uri"]).to_pylist()


def test_rows_of_a_stream_with_failed_and_silent_windows_keep_each_windows_own_answer(tiny):
    """Batches of 2 over: clip 0, a failed window, clip 1, a silent window, clips 2 and 3: each scored window gets
    the probabilities of its own clip, the failed one its error and no probabilities, the silent one its note."""
    decode = DecodeParams()
    clips = [decode_bytes(c.read_bytes(), decode) for c in tiny["clips"]]
    silent = decode_bytes(tiny["clips"][0].read_bytes(), decode).__class__(
        audio=np.zeros(SR, np.float32), orig_sample_rate=SR, channels=1, orig_duration_s=1.0, is_silent=True)
    windows = [Window(0.0, 1.0, clips[0]), Window(1.0, 2.0, None, "decode/nan_samples: 3 NaN/inf samples"),
               Window(2.0, 3.0, clips[1]), Window(3.0, 4.0, silent), Window(4.0, 5.0, clips[2]),
               Window(5.0, 6.0, clips[3])]
    m = tiny["model"]
    _, _, columns = m.feature_plan()
    rows = list(recording_rows(m, iter(windows), {"clip_id": "r", "uri": "u"}, columns=columns, nets={},
                               decode=decode, features=RAW, batch=2))
    assert [(r["clip_id"], r["uri"], r["start_s"], r["end_s"]) for r in rows] == [
        ("r", "u", float(k), k + 1.0) for k in range(6)]
    assert [r["error"] for r in rows] == [None, "decode/nan_samples: 3 NaN/inf samples", None, None, None, None]
    assert [r["silent"] for r in rows] == [False, False, False, True, False, False]
    assert "predicted" not in rows[1] and "prob_urban" not in rows[1] and rows[1]["note"] is None
    assert rows[3]["note"].startswith("silent: digital silence")
    failed = list(recording_rows(m, windows[1:2], {}, columns=columns, nets={}, decode=decode, features=RAW, batch=1))
    assert failed == [{"start_s": 1.0, "end_s": 2.0, "error": windows[1].error, "note": None, "silent": False}]
    expected = _clip_rows(tiny)
    for row, clip in zip([rows[0], rows[2], rows[4], rows[5]], expected):
        assert row["note"] is None and row["predicted"] == clip["predicted"]
        assert row["prob_urban"] == pytest.approx(clip["prob_urban"], abs=1e-6)
        assert row["prob_natural"] == pytest.approx(clip["prob_natural"], abs=1e-6)
    assert [r["predicted"] for r in expected] == ["urban", "natural"] * 2  # neighbours differ: a shift shows


def test_a_window_cut_to_decode_max_duration_says_so():
    """A window longer than decode.max_duration_s would be scored on its first part: its note says so."""
    from acoustic_env.audio.decode import DecodedClip

    decode = DecodeParams(max_duration_s=1.0)
    clip = DecodedClip(audio=np.zeros(SR, np.float32), orig_sample_rate=SR, channels=1, orig_duration_s=1.5,
                       is_silent=True)

    class Fixed:  # a model whose scoring is not needed: every window here is silent
        class_names, inputs = ["urban"], []

        def predict_table(self, data):
            return pa.table({"predicted": ["urban"], "prob_urban": [1.0]})

    [row] = recording_rows(Fixed(), [Window(2.0, 3.5, clip)], {}, columns={}, nets={}, decode=decode, features=RAW,
                           batch=1)
    assert row["note"].endswith("; cut: scored the first 1.5 s of 1.5 s") and row["silent"] is True


def test_score_windows_gives_a_table_and_a_summary_per_file_with_the_files_error(tiny, tmp_path):
    """The long file in 1-s windows (the training clips' length) and a missing file, which has a summary row
    with its error and no windows."""
    rows = [{"clip_id": "long", "uri": str(tiny["long"])}, {"clip_id": 7, "uri": str(tmp_path / "gone.wav")}]
    result = score_windows(tiny["model"], rows, WindowParams(windows=True, window_batch=3))
    assert (result.window_s, result.hop_s) == (1.0, 1.0)
    table = result.table.to_pylist()
    assert [(r["clip_id"], r["uri"], r["start_s"], r["end_s"]) for r in table] == [
        ("long", str(tiny["long"]), float(k), k + 1.0) for k in range(4)]
    expected = _clip_rows(tiny)
    assert [r["predicted"] for r in table] == [c["predicted"] for c in expected]
    assert [r["prob_natural"] for r in table] == pytest.approx([c["prob_natural"] for c in expected], abs=1e-6)
    long, gone = result.summary.to_pylist()
    assert (long["clip_id"], long["duration_s"], long["error"], long["windows"], long["scored"]) == (
        "long", 4.0, None, 4, 4)
    assert (gone["clip_id"], gone["duration_s"], gone["windows"]) == ("7", None, 0)
    assert gone["error"].startswith("decode/missing_file: ") and gone["error"].endswith("gone.wav")
    capped = score_windows(tiny["model"], rows[:1], WindowParams(windows=True, hop_s=0.5, max_windows=6))
    assert capped.table.num_rows == 0 and "too_many_windows" in capped.summary["error"][0].as_py()


def test_predict_windows_reads_the_model_and_checks_its_inputs(tiny, tmp_path):
    result = predict_windows([str(tiny["long"])], tiny["uri"], window=WindowParams(windows=True, window_s=2.0))
    assert [(r["start_s"], r["end_s"]) for r in result.table.to_pylist()] == [(0.0, 2.0), (2.0, 4.0)]
    with pytest.raises(ConfigError, match=r"^model: no such file or directory: .*nowhere$"):
        predict_windows([str(tiny["long"])], str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match=r"^device: must be one of"):
        predict_windows([str(tiny["long"])], tiny["uri"], device="abacus")


def _windows_table(rows: list[tuple[str, object, float, float, str | None]], classes=("a", "b"),
                   multi: bool = False) -> pa.Table:
    """A window table of (clip_id, predicted, prob_a, prob_b, error) rows; None probabilities for silent/failed."""
    predicted = pa.list_(pa.string()) if multi else pa.string()
    schema = pa.schema([("clip_id", pa.string()), ("predicted", predicted),
                        *[(f"prob_{c}", pa.float64()) for c in classes], ("error", pa.string())])
    return pa.Table.from_pylist([dict(zip(schema.names, r)) for r in rows], schema=schema)


def _file(clip_id: str, duration_s: float | None = 3.0, error: str | None = None) -> dict:
    return {"clip_id": clip_id, "uri": f"{clip_id}.wav", "duration_s": duration_s, "error": error}


def test_the_summary_counts_scored_silent_and_failed_windows_and_averages_the_scored_ones():
    table = _windows_table([("x", "a", 0.8, 0.2, None), ("y", "b", 0.1, 0.9, None), ("x", None, None, None, None),
                            ("x", "b", 0.4, 0.6, None), ("x", None, None, None, "decode/corrupt: bad"),
                            ("x", "a", 0.6, 0.4, None), ("x", None, None, None, None)])
    files = [_file("x"), _file("y", 1.0), _file("z", None, "decode/not_audio: no")]
    x, y, z = summarize(table, files, ["a", "b"], "single_label").to_pylist()
    assert x == {**_file("x"), "windows": 6, "scored": 3, "silent": 2, "failed": 1,
                 "mean_a": pytest.approx(0.6), "max_a": 0.8, "share_a": pytest.approx(2 / 3),
                 "mean_b": pytest.approx(0.4), "max_b": 0.6, "share_b": pytest.approx(1 / 3)}
    assert (y["windows"], y["scored"], y["mean_b"], y["max_b"], y["share_b"], y["share_a"]) == (1, 1, 0.9, 0.9, 1, 0)
    assert z == {**_file("z", None, "decode/not_audio: no"), "windows": 0, "scored": 0, "silent": 0, "failed": 0,
                 **{f"{s}_{c}": None for c in "ab" for s in ("mean", "max", "share")}}



def test_the_summary_has_its_columns_and_types_whatever_the_files():
    """The same schema for no file at all and for files without errors (a table written per run must append)."""
    schema = pa.schema([("clip_id", pa.string()), ("uri", pa.string()), ("duration_s", pa.float64()),
                        ("error", pa.string()), ("windows", pa.int64()), ("scored", pa.int64()),
                        ("silent", pa.int64()), ("failed", pa.int64()),
                        *[(f"{s}_{c}", pa.float64()) for c in "ab" for s in ("mean", "max", "share")]])
    assert summarize(_windows_table([]), [], ["a", "b"], "single_label").schema == schema
    assert summarize(_windows_table([]), [_file("x", None)], ["a", "b"], "single_label").schema == schema


def test_a_class_whose_name_holds_another_is_not_counted_for_it():
    """Single-label: a window predicted "ab" is a share of "ab", not of "a" (a name inside another)."""
    table = _windows_table([("x", "ab", 0.3, 0.7, None), ("x", "a", 0.6, 0.4, None)], classes=("a", "ab"))
    [x] = summarize(table, [_file("x")], ["a", "ab"], "single_label").to_pylist()
    assert (x["share_a"], x["share_ab"]) == (0.5, 0.5)


def test_a_multi_label_summary_shares_count_each_class_a_window_predicts():
    table = _windows_table([("x", ["a", "b"], 0.7, 0.9, None), ("x", ["b"], 0.2, 0.8, None),
                            ("x", [], 0.1, 0.1, None)], multi=True)
    [x] = summarize(table, [_file("x")], ["a", "b"], "multi_label").to_pylist()
    assert (x["share_a"], x["share_b"]) == (pytest.approx(1 / 3), pytest.approx(2 / 3))


def test_a_summary_of_no_windows_at_all_has_a_row_per_file():
    empty = _windows_table([])
    [z] = summarize(empty, [_file("z", None, "decode/missing_file: z")], ["a", "b"], "single_label").to_pylist()
    assert (z["windows"], z["scored"], z["mean_a"], z["error"]) == (0, 0, None, "decode/missing_file: z")


def test_a_clip_list_of_relative_paths_is_read_under_audio_root(tiny, tmp_path):
    listing = tmp_path / "recordings.csv"
    listing.write_text("clip_id,uri\nlong,long.wav\n")
    result = predict_windows([str(listing)], tiny["uri"], audio_root=str(tiny["root"]))
    assert result.table.num_rows == 4 and result.summary.to_pylist()[0]["error"] is None


def test_the_weights_cache_and_device_reach_the_networks_and_a_batch_bounds_what_is_scored_at_once(tiny, monkeypatch):
    """What ``--weights-cache`` and ``--device`` say is where the embedders load from and run (cpu by default);
    ``window_batch`` windows at most are decoded and scored together (the memory a recording costs)."""
    import acoustic_env.jobs.windows as jobs

    loads, sizes = [], []

    def load_nets(embedders, cache, device):
        loads.append((embedders, cache, device))
        return {}

    def score_clips(model, clips, *args):
        sizes.append(len(clips))
        return real(model, clips, *args)

    real = jobs.score_clips
    monkeypatch.setattr(jobs, "load_nets", load_nets)
    monkeypatch.setattr(jobs, "score_clips", score_clips)
    monkeypatch.setattr("acoustic_env.jobs.preflight.check_device", lambda device: None)  # as on a GPU machine
    predict_windows([str(tiny["long"])], tiny["uri"], window=WindowParams(windows=True, window_batch=3),
                    weights_cache="/cache/weights", device="cuda")
    score_windows(tiny["model"], [{"clip_id": "long", "uri": str(tiny["long"])}], WindowParams(windows=True))
    assert loads == [({}, "/cache/weights", "cuda"), ({}, None, "cpu")] and sizes == [3, 1, 4]


def test_the_summary_counts_the_classes_as_the_models_task_does(tiny, monkeypatch):
    """A multi-label model's windows predict lists of classes: the summary is told the model's kind."""
    import acoustic_env.jobs.windows as jobs

    kinds = []
    monkeypatch.setattr(jobs, "summarize", lambda table, files, names, kind: kinds.append((names, kind)) or table)
    monkeypatch.setattr(type(tiny["model"]), "kind", property(lambda m: "multi_label"))
    score_windows(tiny["model"], [], WindowParams(windows=True))
    assert kinds == [(["urban", "natural"], "multi_label")]


def test_an_image_column_keeps_each_windows_own_image_beside_the_stacked_vectors(tiny):
    """An image model's log-mel images are kept as a list (a short last window has fewer frames, so they cannot be
    stacked); vector columns are stacked into [windows, width]."""
    from acoustic_env.jobs.windows import score_clips

    decode = DecodeParams()
    full = decode_bytes(tiny["clips"][0].read_bytes(), decode)
    short = decode_bytes(tiny["clips"][1].read_bytes(), decode, 0.0, 0.7, cut=True)

    class Reads:  # records what a model is given: here, nothing (no model input), so every column is a by-product
        inputs: list[str] = []

        def predict_table(self, data):
            return pa.table({"predicted": ["x", "x"]})

    table, vectors = score_clips(Reads(), [full, short], {"logmel": 64, "indices_raw": 60}, {}, decode, RAW)
    assert table == {"predicted": ["x", "x"]}
    assert isinstance(vectors["logmel"], list) and len(vectors["logmel"]) == 2
    assert vectors["logmel"][0].shape[1] > vectors["logmel"][1].shape[1]
    assert isinstance(vectors["indices_raw"], np.ndarray) and vectors["indices_raw"].shape == (2, 60)


# ----------------------------------------------------------------------------- headers and transfers: audio/windows.py

def _wav_bytes(frames: int, subtype: str = "PCM_16") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, np.sin(np.arange(frames) / 7.0).astype(np.float32) * 0.5, SR, format="WAV", subtype=subtype)
    return buf.getvalue()


def _data_size(wav: bytes, size: int) -> bytes:
    """``wav`` with its data chunk's length field set to ``size``."""
    at = wav.index(b"data") + 4
    return wav[:at] + size.to_bytes(4, "little") + wav[at + 4:]


def test_a_wav_cut_short_declares_the_frames_its_header_promised_and_an_unwritten_length_declares_none():
    """A WAV cut short holds fewer frames than its header declares: the declared count (a whole number of frames, for
    8-bit samples too, one byte a frame), so the windows it lost are error rows. A header whose length a recorder
    never wrote (0xFFFFFFFF) declares nothing: the frames the file holds."""
    from acoustic_env.audio.windows import declared_frames

    for subtype, width in (("PCM_16", 2), ("PCM_U8", 1)):
        whole = _wav_bytes(3 * SR, subtype)
        with sf.SoundFile(io.BytesIO(whole[:len(whole) - SR * width])) as f:  # the last second lost
            assert f.frames == 2 * SR
            declared = declared_frames(f)
            assert declared == 3 * SR and type(declared) is int
    with sf.SoundFile(io.BytesIO(_data_size(_wav_bytes(2 * SR), 0xFFFFFFFF))) as f:
        assert declared_frames(f) == f.frames == 2 * SR
    broken = bytearray(_wav_bytes(2 * SR))  # a block align of 0 (libsndfile opens it): no frame size to count by
    at = broken.index(b"fmt ") + 20
    broken[at:at + 2] = (0).to_bytes(2, "little")
    with sf.SoundFile(io.BytesIO(bytes(broken[:-SR]))) as f:
        assert declared_frames(f) == f.frames == int(1.5 * SR)


def test_the_windows_a_wav_cut_short_lost_say_where_it_ends():
    """Cut at a window's start: that window and the ones after it say where the file ends and what the header
    declares, unread. Cut inside a window: that window says how many frames it holds, the ones after where it ends."""
    whole = _wav_bytes(4 * SR)
    cut = "decode/truncated: the file ends at 2.0 s, its header declares 4.0 s"
    with Recording(whole[:44 + 2 * SR * 2], DecodeParams()) as rec:
        windows = list(rec.windows(1.0, 1.0))
    assert [w.error for w in windows] == [None, None, cut, cut]
    with Recording(whole[:44 + int(2.5 * SR) * 2], DecodeParams()) as rec:
        windows = list(rec.windows(1.0, 1.0))
    assert [w.error for w in windows] == [
        None, None, f"decode/truncated: file declares {SR} frames here but holds {SR // 2}",
        "decode/truncated: the file ends at 2.5 s, its header declares 4.0 s"]


class _Reset(io.BytesIO):
    """A transfer whose connection resets once ``ok`` bytes have been read: every read after that raises."""

    def __init__(self, data: bytes, ok: int) -> None:
        super().__init__(data)
        self.ok = ok

    def readinto(self, buffer) -> int:
        if self.tell() + len(buffer) > self.ok:
            raise ConnectionResetError("connection reset by peer")
        return super().readinto(buffer)


class _ResetWithoutReadinto:
    """The same transfer as a file object with ``read`` only, which soundfile then reads through."""

    def __init__(self, data: bytes, ok: int) -> None:
        self._fh = _Reset(data, ok)

    def read(self, size: int = -1) -> bytes:
        if self._fh.tell() + (size if size >= 0 else len(self._fh.getvalue())) > self._fh.ok:
            raise ConnectionResetError("connection reset by peer")
        return self._fh.read(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._fh.seek(offset, whence)

    def tell(self) -> int:
        return self._fh.tell()

    def close(self) -> None:
        self._fh.close()


@pytest.mark.parametrize("transfer", [_Reset, _ResetWithoutReadinto], ids=["readinto", "read"])
def test_a_transfer_that_fails_names_its_failure_in_the_header_or_in_each_window_after_it(transfer):
    """A reset before the header is read: the file's one error names the transport (``read_failed``), not a file
    libsndfile cannot read. A reset part-way: the windows before it are audio, the window it hits and every one after
    name the transport, not a truncated file, whichever way soundfile reads (``readinto``, or ``read`` alone)."""
    wav = _wav_bytes(4 * SR)
    with pytest.raises(ClipError, match=r"^decode/read_failed: ConnectionResetError: connection reset by peer$"):
        Recording(transfer(wav, 8), DecodeParams()).__enter__()
    with Recording(transfer(wav, 44 + 2 * SR * 2 + 100), DecodeParams()) as rec:  # the header and 2 s pass
        windows = list(rec.windows(1.0, 1.0))
    assert [(w.start_s, w.end_s) for w in windows] == [(0.0, 1.0), (1.0, 2.0), (2.0, 3.0), (3.0, 4.0)]
    assert all(w.clip is not None and w.error is None for w in windows[:2])
    assert all(w.clip is None and w.error == "decode/read_failed: ConnectionResetError: connection reset by peer"
               for w in windows[2:])
