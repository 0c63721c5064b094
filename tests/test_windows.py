"""Long recordings scored in windows: the window times, the equality with predict on a clip, the outputs.

The model is trained in this process (``demo.quick_model``, no Ray) on a table whose
indices and spectral statistics are computed for real from generated clips of two
kinds (a low hum in broadband noise for "urban", bird-like high chirps for "natural"),
so that windows of the two kinds get different answers. A long recording is those
clips' 16-bit samples put end to end: its window k holds exactly clip k's samples.
"""

from __future__ import annotations

import csv
import json
import tracemalloc

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf

import acoustic_env as ae
from acoustic_env.audio.featurize import featurize
from acoustic_env.audio.windows import span_count, spans
from acoustic_env.cli import main
from acoustic_env.config import DecodeParams, FeatureParams, WindowParams
from acoustic_env.demo.quick_model import quick_model
from acoustic_env.demo.tables import synthetic_features, write_features
from acoustic_env.jobs.predict import predict
from acoustic_env.audio.selections import RAVEN_COLUMNS
from acoustic_env.jobs.windows import predict_windows
from acoustic_env.storage import write_json

SR = 16000
CLIP_S = 2.0  # the training clips' length: the default window
GROUPS = ["indices_raw", "spectral_raw"]
RAW = FeatureParams(signals=("raw",))


def _sound(natural: bool, seed: int, seconds: float = CLIP_S, sr: int = SR) -> np.ndarray:
    """int16 samples: chirps between 3 and 6 kHz over faint noise, or a 100 Hz hum in loud broadband noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    if natural:
        f = 3000 + 3000 * ((t * rng.uniform(3, 5)) % 1)
        chirps = np.sin(2 * np.pi * np.cumsum(f) / sr) * (np.sin(2 * np.pi * 4 * t) > 0)
        x = 0.3 * chirps + 0.01 * rng.standard_normal(t.size)
    else:
        x = 0.2 * np.sin(2 * np.pi * 100 * t) + 0.3 * rng.standard_normal(t.size)
    return np.round(np.clip(x, -1, 1) * 32767).astype(np.int16)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    """The model, six clip files (alternating kinds) and the long recording made of them end to end."""
    root = tmp_path_factory.mktemp("windows")
    syn = synthetic_features(20, seed=5, signals=("raw",), rows_per_group=None)  # 20 rows carry 4 components a group
    natural = [bool(k) for k in syn.true]  # the task's classes: urban, natural
    rows = []
    for i, nat in enumerate(natural):
        path = root / f"train{i}.wav"
        sf.write(path, _sound(nat, seed=i), SR, subtype="PCM_16")
        rows.append({"clip_id": f"train{i}", "uri": str(path)})
    dims = {g: syn.table.schema.field(g).type.list_size for g in GROUPS}
    found = featurize(rows, dims, features=RAW)
    table = syn.table
    for g in GROUPS:
        i = table.schema.get_field_index(g)
        vectors = pa.FixedSizeListArray.from_arrays(pa.array(found.vectors[g].ravel()), dims[g])
        table = table.set_column(i, table.schema.field(i), vectors)
    i = table.schema.get_field_index("duration_s")
    table = table.set_column(i, "duration_s", pa.array(np.full(table.num_rows, CLIP_S)))
    features = write_features(table, str(root / "table"))
    write_json({"job": "extract", "status": "completed",
                "config": {"decode": DecodeParams().to_dict(), "features": RAW.to_dict()}},
               str(root / "table" / "runs" / "r1.json"))
    model = quick_model(features, str(root / "model"), feature_groups=GROUPS, rounds=10)
    clips = []
    for k in range(6):
        path = root / f"clip{k}.wav"
        sf.write(path, _sound(k % 2 == 1, seed=100 + k), SR, subtype="PCM_16")
        clips.append(path)
    long = root / "long.wav"
    sf.write(long, np.concatenate([sf.read(c, dtype="int16")[0] for c in clips]), SR, subtype="PCM_16")
    return {"model": model, "clips": clips, "long": long, "root": root}


# ----------------------------------------------------------------------------- where windows start and end

def _spans(*args) -> list[tuple[int, int]]:
    return list(spans(*args))


def test_spans_cover_the_recording_and_stop_at_its_end():
    hour = _spans(3600 * SR, SR, 10.0, 10.0, 0.5)
    assert len(hour) == 360 and hour[0] == (0, 10 * SR) and hour[-1] == (3590 * SR, 3600 * SR)
    assert all(b[0] - a[0] == 10 * SR for a, b in zip(hour, hour[1:]))
    # overlapping: the last window reaches the end (shorter), and none starts after it
    assert _spans(23 * SR, SR, 10.0, 5.0, 0.5) == [(0, 10 * SR), (5 * SR, 15 * SR), (10 * SR, 20 * SR),
                                                   (15 * SR, 23 * SR)]
    # a tail under decode.min_duration_s is left out; gaps when the hop is longer than the window
    assert _spans(int(20.3 * SR), SR, 10.0, 10.0, 0.5) == [(0, 10 * SR), (10 * SR, 20 * SR)]
    assert _spans(12 * SR, SR, 2.0, 5.0, 0.5) == [(0, 2 * SR), (5 * SR, 7 * SR), (10 * SR, 12 * SR)]
    assert _spans(3 * SR, SR, 10.0, 10.0, 0.5) == [(0, 3 * SR)]  # shorter than one window: one window
    assert _spans(44100 * 7, 44100, 2.5, 2.5, 0.5)[-1] == (44100 * 5, 44100 * 7)  # in the file's own frames


@pytest.mark.parametrize("frames,window_s,hop_s", [(3600 * SR, 10.0, 10.0), (23 * SR, 10.0, 5.0), (12 * SR, 2.0, 5.0),
                                                   (3 * SR, 10.0, 10.0), (int(20.3 * SR), 10.0, 10.0),
                                                   (SR, 0.5, 0.01), (1, 1.0, 1.0), (10 * SR + 1, 1.0, 0.3),
                                                   (3 * SR, 10.0, 1.0), (0, 1.0, 1.0)])
def test_the_window_count_is_known_without_making_the_windows(frames, window_s, hop_s):
    """span_count, which max_windows checks, is what spans makes (counting a short tail spans leaves out)."""
    made = _spans(frames, SR, window_s, hop_s, 0.0)
    assert span_count(frames, SR, window_s, hop_s) == len(made)


# ----------------------------------------------------------------------------- windows are clips

def test_a_window_equal_to_a_clip_gets_the_clips_probabilities(world):
    clips = predict([str(c) for c in world["clips"]], world["model"]).to_pylist()
    result = predict_windows([str(world["long"])], world["model"])  # default window: the training clips' 2 s
    rows = result.table.to_pylist()
    assert (result.window_s, result.hop_s) == (CLIP_S, CLIP_S)
    assert [(r["start_s"], r["end_s"]) for r in rows] == [(2.0 * k, 2.0 * k + 2.0) for k in range(6)]
    for clip, window in zip(clips, rows):
        assert window["predicted"] == clip["predicted"] and window["error"] is None
        for c in ("urban", "natural"):
            assert abs(window[f"prob_{c}"] - clip[f"prob_{c}"]) <= 1e-6
    assert [r["predicted"] for r in rows] == ["urban", "natural"] * 3  # the model hears the two kinds apart


def test_a_failed_window_leaves_the_windows_after_it_their_own_answers(world, tmp_path):
    """A float recording whose third window holds NaN samples, in one batch with the windows around it: that window
    is an error row without probabilities, and every window after it gets the answer of its own clip cut out alone
    (so a failed window shifts no later window's answer onto its neighbour's)."""
    parts = [sf.read(c, dtype="float32")[0] for c in world["clips"]]  # int16 / 32768: exact in float32
    bad = parts[0].copy()
    bad[SR // 2:SR] = np.nan
    sf.write(tmp_path / "gap.wav", np.concatenate([*parts[:2], bad, *parts[2:]]), SR, subtype="FLOAT")
    clips = predict([str(c) for c in world["clips"]], world["model"]).to_pylist()
    rows = predict_windows([str(tmp_path / "gap.wav")], world["model"]).table.to_pylist()
    assert len(rows) == 7 and [r["error"] is None for r in rows] == [True, True, False] + [True] * 4
    assert "nan_samples" in rows[2]["error"] and rows[2]["predicted"] is None and rows[2]["prob_urban"] is None
    for clip, window in zip(clips, rows[:2] + rows[3:]):
        assert window["predicted"] == clip["predicted"] and abs(window["prob_urban"] - clip["prob_urban"]) <= 1e-6
    assert [r["predicted"] for r in rows[3:]] == ["urban", "natural"] * 2  # neighbours differ: a shift shows


def test_windows_of_a_44k_stereo_file_are_made_as_its_clips_are(world, tmp_path):
    """Each window is resampled and mixed down on its own, exactly as a file holding only it."""
    mono = [_sound(k % 2 == 1, seed=200 + k, sr=44100) for k in range(3)]
    parts = [np.stack([x, x // 2], axis=1) for x in mono]
    for k, audio in enumerate(parts):
        sf.write(tmp_path / f"c{k}.flac", audio, 44100, subtype="PCM_16")
    sf.write(tmp_path / "long.flac", np.concatenate(parts), 44100, subtype="PCM_16")
    clips = predict([str(tmp_path / f"c{k}.flac") for k in range(3)], world["model"]).to_pylist()
    rows = predict_windows([str(tmp_path / "long.flac")], world["model"]).table.to_pylist()
    assert [(r["start_s"], r["end_s"]) for r in rows] == [(0, 2), (2, 4), (4, 6)]
    for clip, window in zip(clips, rows):
        assert abs(window["prob_urban"] - clip["prob_urban"]) <= 1e-6 and window["predicted"] == clip["predicted"]


def test_the_batch_size_changes_memory_not_answers(world):
    one = predict_windows([str(world["long"])], world["model"], window=WindowParams(windows=True, window_batch=1))
    many = predict_windows([str(world["long"])], world["model"], window=WindowParams(windows=True, window_batch=4))
    assert one.table.column("predicted").to_pylist() == many.table.column("predicted").to_pylist()
    np.testing.assert_allclose(one.table["prob_urban"].to_numpy(), many.table["prob_urban"].to_numpy(), atol=1e-6)


def test_summary_per_file(world):
    result = predict_windows([str(world["long"])], world["model"], window=WindowParams(windows=True, hop_s=1.0))
    [s] = result.summary.to_pylist()
    rows = result.table.to_pylist()
    assert s["duration_s"] == 12.0 and s["windows"] == len(rows) == 11 and s["scored"] == 11
    assert (s["silent"], s["failed"], s["error"]) == (0, 0, None)
    for c in ("urban", "natural"):
        p = [r[f"prob_{c}"] for r in rows]
        assert s[f"mean_{c}"] == pytest.approx(np.mean(p)) and s[f"max_{c}"] == max(p)
        assert s[f"share_{c}"] == pytest.approx(sum(r["predicted"] == c for r in rows) / 11)
    assert s["share_urban"] + s["share_natural"] == pytest.approx(1.0)


def test_silent_stretch_and_unreadable_file(world, tmp_path):
    audio = np.concatenate([sf.read(world["clips"][0], dtype="int16")[0], np.zeros(2 * SR, np.int16)])
    sf.write(tmp_path / "quiet.wav", audio, SR, subtype="PCM_16")
    (tmp_path / "notes.wav").write_text("not audio")
    result = predict_windows([str(tmp_path / "quiet.wav"), str(tmp_path / "notes.wav")], world["model"])
    first, quiet = result.table.to_pylist()
    assert first["predicted"] == "urban" and quiet["predicted"] is None and quiet["prob_urban"] is None
    assert quiet["note"].startswith("silent") and (quiet["start_s"], quiet["end_s"]) == (2.0, 4.0)
    s_quiet, s_notes = result.summary.to_pylist()
    assert (s_quiet["windows"], s_quiet["scored"], s_quiet["silent"]) == (2, 1, 1) and s_quiet["share_urban"] == 1
    assert s_notes["windows"] == 0 and "not_audio" in s_notes["error"] and s_notes["duration_s"] is None


# ----------------------------------------------------------------------------- the command and the API

def test_cli_writes_the_window_table_summary_and_selection_tables(world, tmp_path, capsys):
    saved, sel = tmp_path / "w.csv", tmp_path / "sel"
    code = main(["predict", str(world["long"]), "--model", str(world["model"]), "--windows", "--window-s", "4",
                 "--hop-s", "2", "--save", str(saved), "--selections", str(sel)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "long: 12.0 s, 5 windows of 4 s every 2 s (5 scored, 0 silent, 0 failed)" in out
    assert "peak memory" in out
    assert "\n  in this process: 5 window(s) to score, at most --windows-in-process-max (200)\n" in out
    rows = list(csv.DictReader(saved.open()))
    assert [(float(r["start_s"]), float(r["end_s"])) for r in rows] == [(0, 4), (2, 6), (4, 8), (6, 10), (8, 12)]
    [summary] = list(csv.DictReader((tmp_path / "w.summary.csv").open()))
    assert summary["windows"] == "5" and summary["clip_id"] == "long"
    raven = (sel / "long.selections.txt").read_text().splitlines()
    assert raven[0].split("\t") == list(RAVEN_COLUMNS)
    assert raven[0].startswith("Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)")
    cells = [line.split("\t") for line in raven[1:]]
    assert [c[0] for c in cells] == ["1", "2", "3", "4", "5"] and {c[1] for c in cells} == {"Spectrogram 1"}
    assert [(float(c[3]), float(c[4])) for c in cells] == [(0, 4), (2, 6), (4, 8), (6, 10), (8, 12)]
    assert [c[7] for c in cells] == [r["predicted"] for r in rows]
    assert [float(c[8]) for c in cells] == pytest.approx([float(r[f"prob_{r['predicted']}"]) for r in rows], abs=1e-4)
    labels = (sel / "long.labels.txt").read_text().splitlines()
    begin, end, label = labels[0].split("\t")
    assert (begin, end) == ("0.0000", "4.0000") and label.startswith(rows[0]["predicted"])


@pytest.mark.parametrize("argv, words", [
    (["--windows", "--window-s", "0"], "window_s: must be > 0"),
    (["--windows", "--hop-s", "-1"], "hop_s: must be >= 0.01"),
    (["--windows", "--window-s", "600"], "windows.window_s: must be in [decode.min_duration_s, decode.max_duration_s]"),
    (["--windows", "--window-s", "0.1"], "windows.window_s: must be in [decode.min_duration_s"),
    (["--window-s", "5"], "window_s: applies to windows only: add --windows"),
    (["--selections", "out"], "selections: applies to windows only"),
    (["--windows", "--window-s", "ten"], "window_s: must be a number"),
])
def test_bad_window_options_are_one_line(world, argv, words, capsys):
    code = main(["predict", str(world["long"]), "--model", str(world["model"]), *argv])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and words in err and "Traceback" not in err, err


def test_python_api(world):
    result = ae.predict_windows(str(world["long"]), world["model"], window_s=4.0, hop_s=4.0)
    assert result.table.column_names[:4] == ["clip_id", "uri", "start_s", "end_s"]
    assert [(r["start_s"], r["end_s"]) for r in result.table.to_pylist()] == [(0, 4), (4, 8), (8, 12)]
    assert result.summary.num_rows == 1
    with pytest.raises(ae.ConfigError, match="hop_s: must be >= 0.01"):
        ae.predict_windows(str(world["long"]), world["model"], hop_s=0)


# ----------------------------------------------------------------------------- an hour, in bounded memory

@pytest.mark.slow
def test_an_hour_in_bounded_memory(world, tmp_path):
    """An hour at 16 kHz (230 MB as float32) gives windows at the right times while far less is ever allocated.

    Through the public Python API (``ae.predict_windows``, what a user calls), which the CLI
    and the service share the window reading with.
    """
    hour = tmp_path / "hour.wav"
    minute = np.tile(np.concatenate([_sound(False, seed=1), _sound(True, seed=2)]), 15)  # hum at 0, 4, ... s
    with sf.SoundFile(hour, "w", SR, 1, "PCM_16") as f:
        for _ in range(60):
            f.write(minute[: 30 * SR])  # chirps at 30 s: the half-minutes alternate
            f.write(minute[2 * SR: 32 * SR])
    tracemalloc.start()
    try:
        result = ae.predict_windows(str(hour), world["model"], hop_s=30.0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    rows = result.table.to_pylist()
    assert [(r["start_s"], r["end_s"]) for r in rows] == [(30.0 * k, 30.0 * k + 2) for k in range(120)]
    assert [r["predicted"] for r in rows] == ["urban", "natural"] * 60
    assert result.summary["duration_s"][0].as_py() == 3600.0
    assert peak < 40 * 2**20, f"peak {peak / 2**20:.0f} MiB"


# ----------------------------------------------------------------------------- the service, without Ray

def test_service_scores_an_upload_in_windows_as_predict_does(world):
    from acoustic_env.web.serve_handler import Limits, Recognizer, ServiceError, parse_upload

    def limits(windows_max_duration_s: float = 12.0) -> Limits:
        return Limits(2**22, 6.0, 30.0, 2**22, windows_max_duration_s, 30.0)

    def upload(query: dict, data: bytes):
        return parse_upload(data, "audio/wav", query, limits(), fetch=None)

    data = world["long"].read_bytes()
    rec = Recognizer(world["model"], limits())
    assert rec.info()["windows"] == {"window_s": CLIP_S, "hop_s": CLIP_S}
    answer = rec.windows(upload({"windows": "1", "hop_s": "4"}, data))
    expected = predict_windows([str(world["long"])], world["model"], window=WindowParams(windows=True, hop_s=4.0))
    assert (answer["window_s"], answer["hop_s"], answer["duration_s"]) == (CLIP_S, 4.0, 12.0)
    assert [(w["start_s"], w["end_s"]) for w in answer["windows"]] == [(0, 2), (4, 6), (8, 10)]
    for w, row in zip(answer["windows"], expected.table.to_pylist()):
        assert w["predicted"] == row["predicted"] and w["probabilities"]["urban"] == pytest.approx(row["prob_urban"],
                                                                                                  abs=1e-6)
    assert answer["summary"]["windows"] == 3 and answer["summary"]["share_urban"] == 1.0
    assert answer["selection_table"].splitlines()[0].split("\t") == list(RAVEN_COLUMNS)
    assert len(answer["selection_table"].splitlines()) == 4
    short = Recognizer(world["model"], limits(windows_max_duration_s=10.0))
    with pytest.raises(ServiceError, match="lasts 12.0 s; this service takes at most windows_max_duration_s = 10 s"):
        short.windows(upload({"windows": "1"}, data))
    for query, words in (({"windows": "1", "window_s": "0"}, "window_s: must be > 0"),
                         ({"windows": "yes"}, "windows: must be 1 or 0"),
                         ({"hop_s": "2"}, "hop_s: applies to windows only")):
        with pytest.raises(ServiceError, match=words.replace("(", r"\(")) as exc:
            upload(query, data)
        assert exc.value.error_type == "bad_request"


def test_service_reads_a_spooled_upload_as_the_bytes_and_stops_when_told(world):
    """?windows=1 from the file ``spool_body`` wrote (the raw body, or a form's file part), both past the in-memory
    size and so on disk: the answer of the same bytes in memory. A stopped request reads no further window."""
    import asyncio
    import io
    import threading

    from acoustic_env.web.serve_handler import Limits, Recognizer, ServiceError, parse_upload, spool_body

    data = world["long"].read_bytes()
    form = (b'--b0und\r\nContent-Disposition: form-data; name="file"; filename="long walk.wav"\r\n'
            b"Content-Type: audio/wav\r\n\r\n" + data + b"\r\n--b0und--\r\n")
    limits = Limits(2**10, 6.0, 30.0, 2**22, 60.0, 30.0)  # a clip's 1 KiB: any windowed upload goes to disk
    rec = Recognizer(world["model"], limits)
    query = {"windows": "1", "hop_s": "4"}
    expected = rec.windows(parse_upload(data, "audio/wav", query, limits, fetch=None))
    assert [(w["start_s"], w["end_s"]) for w in expected["windows"]] == [(0, 2), (4, 6), (8, 10)]

    async def chunks(body: bytes):
        for i in range(0, len(body), 1000):
            yield body[i: i + 1000]

    for body, ctype, name in ((data, "audio/wav", "upload"), (form, "multipart/form-data; boundary=b0und",
                                                              "long walk.wav")):
        spooled = asyncio.run(spool_body(chunks(body), limits.windows_max_upload_bytes, 0, limits.max_upload_bytes))
        assert spooled._rolled and spooled.read() == body  # on disk, all of it
        upload = parse_upload(spooled, ctype, query, limits, fetch=None)
        assert upload.name == name and not isinstance(upload.data, (bytes, io.BytesIO))
        try:
            assert rec.windows(upload) == expected
        finally:
            upload.data.close()
            spooled.close()
    stop = threading.Event()
    stop.set()
    with pytest.raises(ServiceError, match="given up .* at 0.0 s of the recording") as exc:
        rec.windows(parse_upload(data, "audio/wav", query, limits, fetch=None), stop)
    assert exc.value.error_type == "timeout"


# ----------------------------------------------------------------------------- annotate

def test_annotate_scores_listed_recordings_in_windows_once(world, tmp_path, capsys):
    listing = tmp_path / "recordings.csv"
    listing.write_text(f"clip_id,uri\nlong,{world['long']}\ngone,{tmp_path / 'gone.wav'}\n")
    out = tmp_path / "ann"
    argv = ["annotate", "--manifest", str(listing), "--model", str(world["model"]), "--features",
            str(tmp_path / "table"), "--output", str(out), "--windows", "--hop-s", "4"]
    assert main([*argv, "--dry-run"]) == 0
    assert "2 files listed, 0 already annotated in windows by this model, 2 to score" in capsys.readouterr().out
    assert main(argv) == 0
    assert "1 recordings scored in 3 windows" in capsys.readouterr().out
    (record,) = [json.loads(f.read_text()) for f in (out / "runs").glob("annotate-*.json")]
    assert record["where"] == "in this process: 3 window(s) to score, at most --windows-in-process-max (200)"
    windows = pq.read_table(out / "window-annotations").to_pylist()
    assert [(w["clip_id"], w["start_s"], w["end_s"]) for w in windows] == [("long", 0, 2), ("long", 4, 6),
                                                                           ("long", 8, 10)]
    assert {w["model_id"] for w in windows} == {"quick-0"}
    summaries = {s["clip_id"]: s for s in pq.read_table(out / "window-summaries").to_pylist()}
    assert summaries["long"]["windows"] == 3 and "missing_file" in summaries["gone"]["error"]
    again = ae.annotate(str(listing), str(world["model"]), str(tmp_path / "table"), str(out),
                        windows={"windows": True, "hop_s": 4.0})
    assert again.counts == {"listed": 2, "already_annotated": 2, "annotated": 0, "windows": 0,
                            "not_annotated_unreadable": 0}
    assert again.record["where"] is None  # nothing left to score: no route taken
    assert len(list((out / "window-annotations").glob("*.parquet"))) == 1
    capsys.readouterr()
    assert main([*argv, "--dry-run"]) == 0  # the dry run counts what the run skips
    assert "2 files listed, 2 already annotated in windows by this model, 0 to score" in capsys.readouterr().out


def test_a_tab_or_a_line_break_in_a_class_name_never_shifts_a_selection_tables_columns():
    """Issue 82, 10: a class named with a tab (from a model folder written before the task refused it, or forged)
    gave Raven rows 10 fields under 9 headers and split Audacity's labels. The writers escape it."""
    from acoustic_env.audio.selections import audacity_labels, raven_table

    rows = [{"predicted": ["a\tb", "c\nd"], "start_s": 0.0, "end_s": 3.0, "prob_a\tb": 0.9, "prob_c\nd": 0.8}]
    raven = raven_table(rows).split("\n")[:-1]
    assert [len(line.split("\t")) for line in raven] == [len(RAVEN_COLUMNS)] * 3 and raven[1].endswith("\ta\\tb\t0.9000")
    audacity = audacity_labels(rows).split("\n")[:-1]
    assert [line.split("\t")[2] for line in audacity] == ["a\\tb 0.900", "c\\nd 0.800"]
