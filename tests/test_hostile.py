"""Hostile inputs, run against the jobs themselves: one catalogue, the same checks for each job.

The catalogue (the ``catalogue`` fixture, built once per module) is one clip list with a UTF-8 BOM
and no clip ids: one good clip, credentials as user:pass@, a presigned URL and ?token= (two of
them on missing files), a server on 127.0.0.1 that accepts and never answers, a FIFO, two files of
one stem in two folders and hours of digital silence in a small FLAC. extract and predict (CLI
subprocesses), annotate (``main()`` in this process, extracting on the session's Ray) and serve's
recognizer (in this process, without Ray Serve: each row asked for by URL, each regular file sent
as bytes) each run it and must give: exit status 0, every row back once (in features/ or errors/,
as a prediction or an annotation) with a one-line error where it fails, no secret in the console or
any file written, within a time limit and with no process above ``MAX_RSS``.

The other cases run a job on the input they concern: damaged model files, silence and cut files,
run records, forged verdicts on the review server, malformed recipe rows, TFRecords claiming a
gigabyte (memory bounded by tracemalloc), the ontology offline. The model is trained in this process
on a synthetic feature table (``demo.quick_model``, as tests/test_predict.py and tests/test_serve.py
train theirs), on CPU feature groups only, so predict and serve need no Ray and no embedder.
"""

from __future__ import annotations

import csv
import io
import json
import socket
import struct
import threading
import time
import tracemalloc
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from itertools import islice
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet  # noqa: F401 - pa.parquet
import pytest
import soundfile as sf
from conftest import tone_clip

from acoustic_env.cli import main
from acoustic_env.config import ConfigError, DecodeParams, FeatureParams
from acoustic_env.demo.quick_model import quick_model
from acoustic_env.demo.tables import NATURAL, URBAN, synthetic_table, write_features
from acoustic_env.storage import write_json

SECRETS = ("KEYSECRET", "PWSECRET", "SIGSECRET", "CREDSECRET", "TOKSECRET")
#: The model's training table was extracted with these: clips are cut at 2 s, only the raw signal is featurised,
#: a network wait is given up after 5 s: a server that never answers costs seconds, not minutes, and a healthy
#: loopback server on a loaded machine (a Ray worker starting beside the read) is never that slow, where it was
#: once over 1 s and its clip was reported as a read timeout.
MAX_S, READ_TIMEOUT_S = 2.0, 5.0


class _Files(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """A model on indices_raw + spectral_raw, whose table's run record says: cut at MAX_S, raw signal only,
    READ_TIMEOUT_S."""
    root = tmp_path_factory.mktemp("hostile-model")
    features = write_features(synthetic_table(24, seed=3, signals=("raw",)), str(root / "t"))
    decode = DecodeParams(max_duration_s=MAX_S, read_timeout_s=READ_TIMEOUT_S).to_dict()
    write_json({"job": "extract", "status": "completed",
                "config": {"decode": decode, "features": FeatureParams(signals=("raw",)).to_dict()}},
               str(root / "t" / "runs" / "r1.json"))
    return Path(quick_model(features, str(root / "model"), feature_groups=["indices_raw", "spectral_raw"]))


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hostile-clips")
    silent = root / "silent.wav"
    sf.write(silent, np.zeros(16000 * 2, dtype=np.float32), 16000, subtype="PCM_16")
    return {"tone": tone_clip(root / "tone.wav", seconds=1.0), "long": tone_clip(root / "long.wav", seconds=MAX_S + 1.5),
            "silent": silent, "root": root}


@pytest.fixture(scope="module")
def files(clips):
    """An HTTP server on 127.0.0.1 serving the clips (it ignores credentials, as a CDN ignores the signature)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Files, directory=str(clips["root"])))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def silent_server() -> Iterator[str]:
    """host:port of a server on 127.0.0.1 that accepts every connection and never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(listener.accept()[0])
            except OSError:  # the listener was shut down
                return

    threading.Thread(target=accept, daemon=True).start()
    yield f"127.0.0.1:{listener.getsockname()[1]}"
    listener.shutdown(socket.SHUT_RDWR)
    listener.close()
    for conn in held:
        conn.close()


def _run(argv: list[str], capsys) -> tuple[int, str, str, float]:
    t0 = time.monotonic()
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err, time.monotonic() - t0


def _one_line_error(code: int, err: str, words: str, rc: int = 2) -> None:
    assert code == rc, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and words in lines[0] and "Traceback" not in err, err


def _no_secret(*texts: str) -> None:
    for text in texts:
        for s in SECRETS:
            assert s not in text, f"{s} in: {text}"


def _tree_text(root: Path) -> str:
    return "\n".join(p.read_bytes().decode("utf-8", "replace") for p in sorted(root.rglob("*")) if p.is_file())


# ----------------------------------------------------------------------------- credentials

def test_a_one_line_error_never_quotes_a_secret(model, capsys):
    code, out, err, _ = _run(["predict", "http://KEYSECRET:PWSECRET@127.0.0.1:1/x.wav?token=TOKSECRET",
                              "--model", "/no/such/model?token=TOKSECRET"], capsys)
    _one_line_error(code, err, "model:")
    _no_secret(out, err)


def test_serve_names_a_clip_without_its_credentials():
    """The answer's ``clip`` is the URL's file name, or the masked URL when its path has none."""
    from acoustic_env.web.serve_handler import Limits, answer, parse_upload

    limits = Limits(2**20, 10.0, 10.0, 2**20, 10.0, 10.0, ("http://",))
    for url, name in (("http://KEYSECRET:PWSECRET@host/x.wav?token=TOKSECRET", "x.wav"),
                      ("http://KEYSECRET:PWSECRET@host/", "http://***@host/"),
                      ("http://KEYSECRET:PWSECRET@host?sig=SIGSECRET", "http://***@host?sig=***")):
        upload = parse_upload(json.dumps({"url": url}).encode(), "application/json", {}, limits, lambda u: b"")
        assert answer(upload, {}, time.perf_counter())["clip"] == name


def _served(clips: dict[str, Path], files: str, name: str, text: str) -> str:
    """``text`` served as ``name`` by the clip server, at a URL holding a password and a token."""
    (clips["root"] / name).write_text(text)
    return f"http://KEYSECRET:PWSECRET@{files}/{name}?token=TOKSECRET"


def test_run_records_never_hold_a_secret(model, clips, files, tmp_path, capsys):
    """annotate, train and audit, given URIs with credentials, each stop after writing their run record:
    the record (its config and its failure reason) and the console are masked."""
    small = write_features(synthetic_table(4, seed=5, signals=("raw",)), str(tmp_path / "small"))
    estimate = json.dumps({"sample": "random", "overall": {"accuracy": 0.9, "low": 0.8, "high": 0.95, "n": 50}})
    jobs = {  # each fails after its record is written: an empty uri, too few clips, a task file not there
        "annotate": ["annotate", "--model", str(model), "--features", str(tmp_path / "f"),
                     "--manifest", _served(clips, files, "no-uri.csv", "clip_id,uri\nx,\n")],
        "train": ["train", "--features", small, "--task", "urban_natural",
                  "--label-accuracy", _served(clips, files, "estimate.json", estimate)],
        "audit": ["audit", "--features", small, "--task", f"http://KEYSECRET:PWSECRET@{files}/none.yaml?sig=SIGSECRET"],
    }
    for job, argv in jobs.items():
        output = tmp_path / job
        code, out, err, took = _run([*argv, "--output", str(output)], capsys)
        assert code == 2 and took < 30, (job, err)
        [record] = [json.loads(p.read_text()) for p in (output / "runs").glob("*.json")]
        assert record["status"] == "failed" and "***" in json.dumps(record["config"]), record
        _no_secret(out, err, _tree_text(output))


@pytest.mark.slow
def test_train_writes_no_secret_and_its_model_keeps_what_scoring_needs(tmp_path, capsys):
    """A feature table whose URI holds a token: the model, report and record show it masked, and the model
    still knows the table's extraction parameters and clip length once the table is gone (model.json keeps them)."""
    import shutil

    from acoustic_env.learn.artifact import load_model

    table = tmp_path / "t?token=TOKSECRET"
    features = write_features(synthetic_table(40, seed=3, signals=("raw",)), str(table))
    decode = DecodeParams(max_duration_s=MAX_S, read_timeout_s=READ_TIMEOUT_S).to_dict()
    write_json({"job": "extract", "status": "completed",
                "config": {"decode": decode, "features": FeatureParams(signals=("raw",)).to_dict()}},
               str(table / "runs" / "r1.json"))
    output = tmp_path / "trained"
    code, out, err, _ = _run(["train", "--features", features, "--task", "urban_natural", "--output", str(output),
                              "--trials", "0", "--baselines", "", "--no-ablations", "--shap-samples", "0",
                              "--cv-folds", "2", "--tuning-trials", "1", "--no-progress"], capsys)
    assert code == 0, err
    _no_secret(out, err, _tree_text(output))
    shutil.rmtree(table)
    model = load_model(str(output / "model"))
    decode_params, feature_params, source = model.extraction_params()
    assert (decode_params.max_duration_s, decode_params.read_timeout_s) == (MAX_S, READ_TIMEOUT_S)
    assert feature_params.signals == ("raw",) and source.endswith("?token=***"), source
    clip_s, where = model.training_clip_s()
    assert clip_s == pytest.approx(float(np.median(synthetic_table(40, seed=3, signals=("raw",))["duration_s"])))
    assert "***" in where and "***" in model.meta["features"]


# ----------------------------------------------------------------------------- damaged model files

@pytest.mark.parametrize("field", ["groups", "estimator", "task", "task.class_names"])
def test_a_model_json_without_a_field_is_one_line_naming_it(model, clips, tmp_path, capsys, field):
    """Valid JSON that lacks what loading reads: one line naming the file and the field, not a KeyError."""
    import shutil

    broken = Path(shutil.copytree(model, tmp_path / "broken"))
    meta = json.loads((broken / "model.json").read_text())
    *outer, last = field.split(".")
    del (meta[outer[0]] if outer else meta)[last]
    (broken / "model.json").write_text(json.dumps(meta))
    code, out, err, took = _run(["predict", str(clips["tone"]), "--model", str(broken)], capsys)
    _one_line_error(code, err, f"{broken / 'model.json'} has no '{field}'")
    assert took < 10


# ----------------------------------------------------------------------------- silence and long files

def test_predict_says_silent_and_gives_no_probability(model, clips, tmp_path, capsys):
    saved = tmp_path / "p.csv"
    code, out, err, _ = _run(["predict", str(clips["silent"]), str(clips["tone"]), "--model", str(model),
                              "--save", str(saved)], capsys)
    assert code == 0, err
    silent, tone = list(csv.DictReader(saved.open()))
    assert silent["predicted"] == "" and silent["prob_urban"] == "" and silent["prob_natural"] == ""
    assert silent["note"].startswith("silent") and silent["error"] == ""
    assert tone["predicted"] in ("urban", "natural") and tone["note"] == ""
    [line] = [ln for ln in out.splitlines() if ln.startswith("silent ")]
    assert "silent" in line.split(None, 1)[1] and "urban" not in line


def test_predict_says_when_a_file_was_cut(model, clips, capsys):
    from acoustic_env.jobs.predict import predict

    [row] = predict([str(clips["long"])], str(model)).to_pylist()
    assert row["predicted"] in ("urban", "natural")
    assert row["note"] == f"cut: scored the first {MAX_S:g} s of {MAX_S + 1.5:.1f} s"
    code, out, err, _ = _run(["predict", str(clips["long"]), "--model", str(model)], capsys)
    assert code == 0 and f"cut: scored the first {MAX_S:g} s" in out, out


def test_serve_says_silent_and_cut(model, clips):
    from acoustic_env.web.serve_handler import Limits, Recognizer, Upload

    rec = Recognizer(str(model), Limits(2**20, 10.0, 10.0, 2**20, 10.0, 10.0))
    silent, long, tone = (rec.decode_upload(Upload(clips[k].read_bytes(), k)) for k in ("silent", "long", "tone"))
    a, b, c = rec.score([silent, long, tone], [3, 3, 3])
    assert a["silent"] is True and a["probabilities"] is None and a["predicted"] is None
    assert a["note"].startswith("silent")
    assert b["silent"] is False and b["note"] == f"cut: scored the first {MAX_S:g} s of {MAX_S + 1.5:.1f} s"
    assert max(b["probabilities"].values()) > 0 and c["note"] is None


# ----------------------------------------------------------------------------- predict: many files, odd names

#: Names that collide under a counter suffix (a, a, a-2), share a name in two folders, hold an extension in the
#: stem, or hold URL syntax (#, ?) that is part of a local file's name.
ODD_NAMES = ("d/a.wav", "d/a.flac", "d/a-2.wav", "e/a.wav", "d/a.wav.flac", "d/b#1.wav", "d/what?.wav", "d/c d.wav")


@pytest.fixture(scope="module")
def odd_files(tmp_path_factory) -> list[Path]:
    """One file per ODD_NAMES entry, each a tone of its own pitch and length (so each has its own answer)."""
    root = tmp_path_factory.mktemp("odd-names")
    out = []
    for k, name in enumerate(ODD_NAMES):
        (root / name).parent.mkdir(exist_ok=True)
        out.append(tone_clip(root / name, seconds=0.6 + 0.1 * k, freq=150.0 * (k + 1), seed=k))
    return out


@pytest.mark.parametrize("path", ["in_process", "extract"])
def test_every_file_gets_its_own_row_and_its_own_answer(model, odd_files, path):
    """predict on files whose derived ids could collide: each file has a row of its own, with a distinct id and the
    probabilities it gets alone, in this process and over the extract job (its threshold lowered to 0 here, the
    path above 32 files; the extract itself still runs in this process: no Ray)."""
    from acoustic_env.jobs.predict import predict

    alone = {str(f): predict([str(f)], str(model)).to_pylist()[0] for f in odd_files}
    rows = predict([str(f) for f in odd_files], str(model), max_in_process=0 if path == "extract" else 32).to_pylist()
    assert [r["uri"] for r in rows] == [str(f) for f in odd_files]
    assert len({r["clip_id"] for r in rows}) == len(rows), [r["clip_id"] for r in rows]
    for r in rows:
        assert r["error"] is None and r["prob_urban"] == pytest.approx(alone[r["uri"]]["prob_urban"], abs=1e-6), r
    ids = [r["clip_id"] for r in rows]
    assert ids[ODD_NAMES.index("d/b#1.wav")] == "b#1" and ids[ODD_NAMES.index("d/what?.wav")] == "what?"
    assert ids[ODD_NAMES.index("d/c d.wav")] == "c d"


def test_predict_in_windows_keeps_each_file_apart(model, odd_files):
    """--windows: a summary row per file, each holding only its own windows (ids are the files' own)."""
    from acoustic_env.jobs.windows import predict_windows

    result = predict_windows([str(f) for f in odd_files], str(model))
    summary = result.summary.to_pylist()
    assert [s["uri"] for s in summary] == [str(f) for f in odd_files]
    assert [s["windows"] for s in summary] == [1] * len(odd_files), summary
    assert sorted(result.table["clip_id"].to_pylist()) == sorted(s["clip_id"] for s in summary)


def test_the_same_file_twice_is_one_line(model, odd_files, capsys):
    code, _, err, _ = _run(["predict", str(odd_files[0]), str(odd_files[0]), "--model", str(model)], capsys)
    _one_line_error(code, err, f"inputs: {odd_files[0]} is given twice")


def test_a_file_with_a_question_mark_is_a_file_not_a_clip_list(model, odd_files, capsys):
    what = odd_files[ODD_NAMES.index("d/what?.wav")]
    code, out, err, _ = _run(["predict", str(what), "--model", str(model)], capsys)
    assert code == 0 and out.splitlines()[1].split()[0] == "what?", out + err


@pytest.mark.parametrize("command", ["predict", "serve", "annotate"])
def test_model_json_given_for_the_model_is_one_line_naming_its_folder(model, clips, tmp_path, command, capsys):
    given = str(model / "model.json")
    argv = {"predict": ["predict", str(clips["tone"]), "--model", given],
            "serve": ["serve", "--model", given],
            "annotate": ["annotate", "--model", given, "--manifest", str(clips["tone"]), "--features",
                         str(tmp_path / "f"), "--output", str(tmp_path / "o")]}[command]
    code, _, err, _ = _run(argv, capsys)
    _one_line_error(code, err, f"model: {given} is a file; give the model directory")
    assert f"({model})" in err


def test_predict_names_a_device_it_does_not_know(model, clips, capsys):
    """A model without embedders uses no device: the name was never looked at, and the run went on on the CPU."""
    from acoustic_env.jobs.predict import predict
    from acoustic_env.jobs.windows import predict_windows

    code = main(["predict", str(clips["tone"]), "--model", str(model), "--device", "bogus"])
    _one_line_error(code, capsys.readouterr().err, "device: must be one of ['auto', 'cpu', 'cuda'], got 'bogus'")
    for call in (predict, predict_windows):
        with pytest.raises(ConfigError, match="device: must be one of auto, cpu, cuda, got 'bogus'"):
            call([str(clips["tone"])], str(model), device="bogus")


def test_many_files_that_all_fail_each_get_their_error_row(model, tmp_path, monkeypatch):
    """Over the extract path (the threshold lowered to 0; the extract still runs in this process): not one clip
    succeeds, so there is no feature table, and still every file has its row and reason; and the temporary
    output the job wrote is gone afterwards."""
    import tempfile

    from acoustic_env.jobs.predict import predict

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    bad = []
    for k in range(3):
        (tmp_path / f"n{k}.wav").write_bytes(b"not audio\n" * (k + 1))
        bad.append(str(tmp_path / f"n{k}.wav"))
    rows = predict(bad, str(model), max_in_process=0).to_pylist()
    assert [r["uri"] for r in rows] == bad and all("not_audio" in r["error"] for r in rows), rows
    assert list((tmp_path / "tmp").iterdir()) == []


def test_predict_leaves_no_temporary_feature_table_behind(model, clips, tmp_path, monkeypatch):
    import tempfile

    from acoustic_env.jobs.predict import predict

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    [row] = predict([str(clips["tone"])], str(model), max_in_process=0).to_pylist()
    assert row["predicted"] in ("urban", "natural") and list((tmp_path / "tmp").iterdir()) == []


@pytest.mark.parametrize("save,words", [("p.txt", "save: {d}/p.txt must end in .parquet or .csv"),
                                        ("folder.csv", "save: {d}/folder.csv is a folder"),
                                        ("a-file/p.csv", "save: {d}/a-file is a file")])
@pytest.mark.parametrize("windows", [False, True])
def test_a_save_path_that_cannot_take_the_table_is_refused_before_scoring(model, clips, tmp_path, save, words,
                                                                          windows, capsys):
    (tmp_path / "folder.csv").mkdir()
    (tmp_path / "a-file").write_text("x")
    code, out, err, _ = _run(["predict", str(clips["tone"]), "--model", str(model), "--save", str(tmp_path / save),
                              *(["--windows"] if windows else [])], capsys)
    _one_line_error(code, err, words.format(d=tmp_path))
    assert out == ""  # nothing was scored


# ----------------------------------------------------------------------------- windows: bounded, never all at once

@pytest.mark.parametrize("argv,words", [
    (["--hop-s", "inf"], "hop_s: must be a finite number, got inf"),
    (["--hop-s", "nan"], "hop_s: must be a finite number, got nan"),
    (["--window-s", "inf"], "window_s: must be a finite number, got inf"),
    (["--hop-s", "0.000001"], "hop_s: must be >= 0.01, got 1e-06"),
    (["--hop-s", "1e-300"], "hop_s: must be >= 0.01"),
    (["--max-windows", "0"], "max_windows: must be an integer >= 1"),
])
def test_a_window_option_that_would_run_away_is_one_line(model, clips, argv, words, capsys):
    code, _, err, _ = _run(["predict", str(clips["long"]), "--model", str(model), "--windows", *argv], capsys)
    _one_line_error(code, err, words)


def test_a_file_over_max_windows_is_refused_before_any_window_is_read(model, clips, tmp_path):
    """The count is known from the header: the file gets its error row, its neighbours are scored."""
    from acoustic_env.config import WindowParams
    from acoustic_env.jobs.windows import predict_windows

    window = WindowParams(windows=True, window_s=0.5, hop_s=0.01, max_windows=100)
    result = predict_windows([str(clips["long"]), str(clips["tone"])], str(model), window=window)
    long, tone = result.summary.to_pylist()
    assert long["windows"] == 0 and "too_many_windows" in long["error"] and "max_windows = 100" in long["error"]
    assert tone["error"] is None and tone["windows"] == 51 and tone["scored"] == 51


def test_a_file_of_no_samples_gets_its_error_row_in_windows(model, clips, tmp_path):
    from acoustic_env.jobs.windows import predict_windows

    empty = tmp_path / "none.wav"
    sf.write(empty, np.zeros(0, dtype=np.float32), 16000, subtype="PCM_16")
    [row] = predict_windows([str(empty)], str(model)).summary.to_pylist()
    assert row["windows"] == 0 and row["error"] is not None and "too_short" in row["error"], row


def test_windows_are_made_as_they_are_wanted(tmp_path):
    """A hop of one sample over 10^6 frames: the first windows come at once, with nothing listed ahead."""
    from acoustic_env.audio.windows import span_count, spans

    tracemalloc.start()
    try:
        first = list(islice(spans(10**6, 16000, 1.0, 1 / 16000, 0.5), 3))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert first == [(0, 16000), (1, 16001), (2, 16002)] and peak < 2**20, peak
    assert span_count(10**6, 16000, 1.0, 1 / 16000) == 10**6 - 16000 + 1


@pytest.mark.parametrize("query,words", [
    ({"hop_s": "1e-300"}, "hop_s: must be >= 0.01"),
    ({"hop_s": "inf"}, "hop_s: must be a finite number"),
    ({"window_s": "0.5", "hop_s": "0.01"}, "too_many_windows"),
])
def test_serve_refuses_a_runaway_window_request_with_400(model, clips, query, words):
    """?windows=1 with a hop that asks for too many windows: 400 before any window is decoded."""
    from acoustic_env.web.serve_handler import Limits, Recognizer, ServiceError, parse_upload

    limits = Limits(2**20, 10.0, 10.0, 2**22, 3600.0, 10.0)
    rec = Recognizer(str(model), limits)
    silence = io.BytesIO()
    sf.write(silence, np.zeros(16000 * 1200, dtype=np.int16), 16000, format="FLAC")  # 20 min: ~120k windows
    with pytest.raises(ServiceError) as caught:
        rec.windows(parse_upload(silence.getvalue(), "audio/flac", {"windows": "1", **query}, limits, fetch=None))
    assert caught.value.status == 400 and words in caught.value.message, caught.value.body()


# ----------------------------------------------------------------------------- two runs into one output

def test_a_second_extract_into_an_output_being_written_is_refused(tmp_path, monkeypatch, capsys):
    """Run A plans against features/ and is held before it writes; run B starts on the same output meanwhile.
    Before the lock B planned the same clips and both wrote them (every clip twice); now B is one line, and
    when A ends every clip is in features/ once."""
    from acoustic_env.config import ExtractConfig, from_dict
    from acoustic_env.jobs import extract as job

    clips_dir = tmp_path / "clips"
    clips_dir.mkdir()
    for k in range(3):
        tone_clip(clips_dir / f"c{k}.wav", seconds=0.6, freq=300.0 + 100 * k)
    out = tmp_path / "out"
    planned, go, a_result = threading.Event(), threading.Event(), {}
    real = job.run_in_process

    def held(*args, **kwargs):
        if threading.current_thread().name == "run-a":
            planned.set()
            assert go.wait(60)
        return real(*args, **kwargs)

    monkeypatch.setattr(job, "run_in_process", held)
    cfg = from_dict(ExtractConfig, {"manifest": str(clips_dir), "output": str(out), "progress": False,
                                    "features": {"signals": ["raw"]}})
    a = threading.Thread(target=lambda: a_result.update(done=job.extract(cfg)), name="run-a")
    a.start()
    try:
        assert planned.wait(60)
        code, _, err, _ = _run(["extract", "--manifest", str(clips_dir), "--output", str(out), "--signals", "raw",
                                "--no-progress"], capsys)
    finally:
        go.set()
        a.join(60)
    _one_line_error(code, err, f"output: another run is writing to {out}")
    ids = pa.parquet.read_table(out / "features", columns=["clip_id"])["clip_id"].to_pylist()
    assert sorted(ids) == ["c0", "c1", "c2"] and a_result["done"].counts["ok"] == 3


# ----------------------------------------------------------------------------- train on degenerate label sets

def _labelled_table(tmp_path: Path, labels: list[str], groups: list[str] | None = None) -> str:
    """A synthetic feature table (30 clips) with the given label per clip (and group per clip)."""
    table = synthetic_table(len(labels), seed=5)
    table = table.set_column(table.schema.get_field_index("labels"), "labels",
                             pa.array([[m] for m in labels], pa.list_(pa.string())))
    if groups is not None:
        table = table.set_column(table.schema.get_field_index("group"), "group", pa.array(groups, pa.string()))
    return write_features(table, str(tmp_path / "t"))


@pytest.mark.parametrize("cv_folds", ["0", "3"])
def test_train_on_one_class_is_one_line_before_any_fit(tmp_path, cv_folds, capsys):
    features = _labelled_table(tmp_path, [URBAN] * 30)
    code, _, err, took = _run(["train", "--features", features, "--output", str(tmp_path / "o"), "--cv-folds",
                               cv_folds], capsys)
    _one_line_error(code, err, f"task: all 30 clips of {features} with a target for urban_natural are urban; "
                               "a classifier needs clips of two classes or more")
    assert took < 10


@pytest.mark.parametrize("natural", [[0], [0, 1], [0, 29]])
def test_a_split_that_would_hide_a_class_is_refused(tmp_path, natural, capsys):
    """One or two natural clips among 30: some split has none, and its figures would leave natural out (the report
    said accuracy 1.000, balanced 1.000, never having tested a natural clip). Refused before Ray starts."""
    labels = [NATURAL if i in natural else URBAN for i in range(30)]
    code, _, err, took = _run(["train", "--features", _labelled_table(tmp_path, labels), "--output",
                               str(tmp_path / "o"), "--cv-folds", "0"], capsys)
    _one_line_error(code, err, "split has no clip of class natural")
    assert f"({len(natural)} of the 30 clips are natural)" in err and took < 10


@pytest.mark.parametrize("recordings", [1, 2])
def test_a_split_by_recording_with_too_few_recordings_is_one_line(tmp_path, recordings, capsys):
    labels = [URBAN, NATURAL] * 15
    code, _, err, _ = _run(["train", "--features", _labelled_table(tmp_path, labels, [f"r{i % recordings}"
                                                                                      for i in range(30)]),
                            "--output", str(tmp_path / "o"), "--cv-folds", "0"], capsys)
    _one_line_error(code, err, f"features: the 30 clips come from {recordings} recording(s) (their group)")


@pytest.mark.parametrize("flag,value", [("--grid-embedders", "none,yamnet"), ("--grid-signals", "fg")])
def test_a_grid_axis_without_the_grid_is_one_line(tmp_path, flag, value, capsys):
    code, _, err, _ = _run(["train", "--features", str(tmp_path), "--output", str(tmp_path / "o"), flag, value],
                           capsys)
    _one_line_error(code, err, f"{flag[2:].replace('-', '_')}: applies to the grid only: add --grid")


# ----------------------------------------------------------------------------- one catalogue, every job

#: Hours of digital silence in the catalogue's FLAC (8 kHz: a few hundred kB on disk, 115 M samples decoded whole).
SILENT_HOURS = 4
#: No process of a job (its CLI process, a Ray worker decoding for it) may reach this resident size (1.5 GB): the
#: silent FLAC decoded whole is 115 M samples, 0.5-2 GB as floats resampled; a job reads its first MAX_S s only.
MAX_RSS = 1536 << 20
#: Seconds a job run on the catalogue may take: each network wait is READ_TIMEOUT_S, the rest is one batch.
JOB_TIMEOUT_S = 240


@pytest.fixture(scope="module")
def catalogue(clips, files, silent_server, tmp_path_factory) -> tuple[Path, list[tuple[str, str, str | None]]]:
    """(a clip list with a UTF-8 BOM, its rows): the bad inputs of both rounds and one good clip, as
    (case, uri, words of its error or None when the clip is read). The list names no clip_id, so the two
    files of one stem must get two ids."""
    import os

    root = tmp_path_factory.mktemp("hostile-catalogue")
    fifo = root / "pipe.wav"
    os.mkfifo(fifo)
    for d in ("a", "b"):
        (root / d).mkdir()
        tone_clip(root / d / "x.wav", seconds=1.0, seed=len(d))
    flac = root / "hours.flac"
    with sf.SoundFile(flac, "w", samplerate=8000, channels=1, format="FLAC") as fh:
        for _ in range(SILENT_HOURS * 6):
            fh.write(np.zeros(8000 * 600, dtype=np.int16))
    rows = [("good", str(clips["tone"]), None),
            ("user:pass@", f"http://KEYSECRET:PWSECRET@{files}/tone.wav", None),
            ("presigned", f"http://{files}/tone.wav?X-Amz-Credential=CREDSECRET&X-Amz-Signature=SIGSECRET", None),
            ("?token= missing", f"http://{files}/missing.wav?token=TOKSECRET", "404"),
            ("user:pass@ missing", f"http://KEYSECRET:PWSECRET@{files}/missing.wav", "404"),
            ("silent server", f"http://{silent_server}/x.wav?token=TOKSECRET", "read_timeout"),
            ("fifo", str(fifo), "not a regular file"),
            ("same stem a", str(root / "a" / "x.wav"), None),
            ("same stem b", str(root / "b" / "x.wav"), None),
            ("hours of silence", str(flac), None)]
    listing = root / "clips.csv"
    listing.write_text("uri\n" + "".join(f"{uri}\n" for _, uri, _ in rows), encoding="utf-8-sig")
    return listing, rows


@contextmanager
def _peak_rss() -> Iterator[dict[str, int]]:
    """{"rss": the largest resident size seen} of any process below this one (a job's subprocess, the
    session's Ray workers), polled every 50 ms while the block runs."""
    import psutil

    peak, done = {"rss": 0}, threading.Event()

    def poll() -> None:
        me = psutil.Process()
        while not done.wait(0.05):
            for p in me.children(recursive=True):
                try:
                    peak["rss"] = max(peak["rss"], p.memory_info().rss)
                except psutil.Error:  # it ended between the listing and the reading
                    pass

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield peak
    finally:
        done.set()
        thread.join()


def _job(argv: list[str]) -> tuple[str, str]:
    """(stdout, stderr) of ``acoustic-env ARGV`` run as a user runs it, in its own process: exit status 0 within
    JOB_TIMEOUT_S, no traceback, no process above MAX_RSS, no secret on the console."""
    import subprocess
    import sys

    from worlds import shell_env

    with _peak_rss() as peak:
        r = subprocess.run([sys.executable, "-m", "acoustic_env.cli", *argv], capture_output=True, text=True,
                           env=shell_env(), timeout=JOB_TIMEOUT_S)
    assert r.returncode == 0 and "Traceback" not in r.stdout + r.stderr, r.stdout + r.stderr
    assert 0 < peak["rss"] < MAX_RSS, peak  # 0: the poll saw no process, and checked nothing
    print(f"{argv[0]}: peak RSS {peak['rss'] >> 20} MB")
    _no_secret(r.stdout, r.stderr)
    return r.stdout, r.stderr


def _each_row_once(rows: list[tuple[str, str, str | None]], got: list[dict], error: str) -> dict[str, dict]:
    """{case: its row} when ``got`` (one dict per row a job wrote, with its uri) holds every catalogue row once,
    masked, under its own id, and a row that must fail has ``error`` naming why in one line, the others none."""
    from acoustic_env.storage import redact

    by_uri = {r["uri"]: r for r in got}
    assert sorted(by_uri) == sorted(redact(uri) for _, uri, _ in rows) and len(got) == len(rows), got
    assert len({r["clip_id"] for r in got}) == len(rows), got
    for case, uri, words in rows:
        message = by_uri[redact(uri)][error] or ""
        assert (words in message if words else message == "") and "\n" not in message, (case, message)
    return {case: by_uri[redact(uri)] for case, uri, _ in rows}


@pytest.mark.slow
def test_extract_on_the_catalogue(ray_session, catalogue, tmp_path):
    """The extract CLI on the catalogue (on the session's Ray): every row once in features/ or errors/."""
    listing, rows = catalogue
    config = tmp_path / "extract.json"
    write_json({"manifest": str(listing), "output": str(tmp_path / "out"), "progress": False,
                "ray_address": ray_session.get_runtime_context().gcs_address,
                "decode": DecodeParams(max_duration_s=MAX_S, read_timeout_s=READ_TIMEOUT_S).to_dict(),
                "features": {"signals": ["raw"]}}, str(config))
    _job(["extract", "--config", str(config)])
    features = pa.parquet.read_table(tmp_path / "out" / "features").select(["clip_id", "uri"]).to_pylist()
    errors = pa.parquet.read_table(tmp_path / "out" / "errors").to_pylist()
    _each_row_once(rows, [{**r, "error": None} for r in features]
                   + [{**r, "error": f"{r['stage']}/{r['error_type']}: {r['message']}"} for r in errors], "error")
    _no_secret(_tree_text(tmp_path / "out"))


def test_predict_on_the_catalogue(model, catalogue, tmp_path):
    """The predict CLI on the catalogue: a row per clip; the silent FLAC scored as silent and cut, not as a class."""
    listing, rows = catalogue
    saved = tmp_path / "out" / "pred.csv"
    out, err = _job(["predict", str(listing), "--model", str(model), "--save", str(saved)])
    assert err == "", err
    got = list(csv.DictReader(saved.open()))
    by_case = _each_row_once(rows, got, "error")
    assert {case for case, r in by_case.items() if r["predicted"]} == {
        case for case, _, words in rows if words is None and case != "hours of silence"}, by_case
    silence = by_case["hours of silence"]["note"]
    assert silence.startswith("silent: digital silence") and silence.endswith(
        f"cut: scored the first {MAX_S:g} s of {SILENT_HOURS * 3600:.1f} s"), silence
    _no_secret(_tree_text(tmp_path / "out"))


def _extracted(features: pa.Table, errors: pa.Table) -> list[dict]:
    """The rows of an extract output (features and error rows), each with its uri and its error in one string."""
    return ([{**r, "error": None} for r in features.select(["clip_id", "uri"]).to_pylist()]
            + [{**r, "error": f"{r['stage']}/{r['error_type']}: {r['message']}"} for r in errors.to_pylist()])


@pytest.mark.slow
def test_annotate_on_the_catalogue(ray_session, model, catalogue, tmp_path, capsys):
    """annotate (in this process; its extract on the session's Ray) on the catalogue: every row once, as an
    annotation or an error row, each annotation of a clip that was read. annotate extracts with the decode
    options of the model's training table (model.json's ``extraction``), not the defaults: the silent server
    costs READ_TIMEOUT_S, where the default would cost 2 x 60 s, past JOB_TIMEOUT_S."""
    listing, rows = catalogue
    features, output = tmp_path / "features", tmp_path / "annotated"
    t0 = time.monotonic()
    with _peak_rss() as peak:
        code = main(["annotate", "--model", str(model), "--features", str(features), "--output", str(output),
                     "--manifest", str(listing), "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 0 and "Traceback" not in out + err, err
    assert time.monotonic() - t0 < JOB_TIMEOUT_S and 0 < peak["rss"] < MAX_RSS, peak  # the Ray workers
    print(f"annotate: peak RSS of a Ray worker {peak['rss'] >> 20} MB")
    [decode] = [json.loads(p.read_text())["config"]["decode"] for p in (features / "runs").glob("*.json")]
    assert (decode["max_duration_s"], decode["read_timeout_s"]) == (MAX_S, READ_TIMEOUT_S)  # the model's table's
    extracted = _extracted(pa.parquet.read_table(features / "features"), pa.parquet.read_table(features / "errors"))
    annotated = {r["clip_id"] for r in pa.parquet.read_table(output / "annotations").select(["clip_id"]).to_pylist()}
    _each_row_once(rows, extracted, "error")
    assert annotated == {r["clip_id"] for r in extracted if r["error"] is None}, annotated
    _no_secret(out, err, _tree_text(output), _tree_text(features))


def test_serve_on_the_catalogue(model, catalogue):
    """serve's recognizer (in this process, without Ray Serve) asked for each catalogue row by URL, and sent the
    bytes of each regular file: an answer or a one-line refusal each, no secret in either, in bounded time and
    memory. serve never opens a local path (the FIFO, the files): a URL outside its prefixes is refused."""
    from urllib.parse import urlsplit

    from acoustic_env.web.serve_handler import Limits, Recognizer, ServiceError, Upload, answer, parse_upload

    listing, rows = catalogue
    prefixes = tuple(sorted({f"http://{urlsplit(uri).hostname}:{urlsplit(uri).port}/" for _, uri, _ in rows
                             if uri.startswith("http")}))
    rec = Recognizer(str(model), Limits(2**20, 10.0, READ_TIMEOUT_S, 2**20, 10.0, 10.0, prefixes))

    def ask(make_upload) -> dict:
        t0 = time.perf_counter()
        try:
            upload = make_upload()
            [scored] = rec.score([rec.decode_upload(upload)], [3])
            return answer(upload, scored, t0)
        except ServiceError as exc:
            return exc.body()
        finally:
            assert time.perf_counter() - t0 < 2 * READ_TIMEOUT_S + 5  # a read has twice its timeout (one retry)

    tracemalloc.start()
    try:
        by_url = {case: ask(partial(parse_upload, json.dumps({"url": uri}).encode(), "application/json", {},
                                    rec.limits, rec.fetch)) for case, uri, _ in rows}
        by_bytes = {case: ask(lambda: Upload(Path(uri).read_bytes(), Path(uri).name)) for case, uri, _ in rows
                    if Path(uri).is_file()}
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 256 << 20, peak  # the hours of silence are refused from their header, not decoded
    refused = {case: got["error"]["type"] for case, got in {**by_url, **{f"{c} (bytes)": g for c, g in by_bytes.items()}
                                                            }.items() if "error" in got}
    assert refused == {**{case: "url_not_allowed" for case, uri, _ in rows if "@" in uri or not uri.startswith("http")},
                       "?token= missing": "bad_request", "silent server": "timeout",
                       "hours of silence (bytes)": "too_long"}, refused
    for got in [*by_url.values(), *by_bytes.values()]:
        assert "\n" not in got.get("error", {}).get("message", ""), got
        _no_secret(json.dumps(got))


# ----------------------------------------------------------------------------- the review server

def _review(tmp_path: Path) -> Path:
    """A review page for two suspects and one random clip (no audit run needed: build_review on a small table)."""
    from acoustic_env.pages.review import build_review

    uris = [str(tone_clip(tmp_path / f"r{i}.wav", seconds=1.0, seed=i)) for i in range(3)]
    table = pa.table({"clip_id": ["a", "b", "c"], "uri": uris, "start_s": [None] * 3, "end_s": [None] * 3,
                      "group": [None] * 3, "given_labels": [["urban"], ["natural"], ["urban"]],
                      "suggested_labels": [["natural"], ["urban"], ["urban"]], "label_quality": [0.1, 0.2, 0.9],
                      "flagged": [True, True, False], "suspect_rank": [1, 2, 3],
                      "prob_urban": [0.1, 0.8, 0.9], "prob_natural": [0.9, 0.2, 0.1]})
    summary = {"audit_id": "h1", "task": {"name": "urban_natural", "kind": "single_label",
                                          "classes": ["urban", "natural"]},
               "config": {"classifier": "logreg", "folds": 2}, "counts": {"audited": 3, "flagged": 2},
               "noise": {"estimated_wrong_share": 0.5, "per_class": {}}}
    build_review(table, summary, str(tmp_path / "audit"), top=2, random_sample=0)
    return tmp_path / "audit"


@pytest.fixture(scope="module")
def review_page(tmp_path_factory) -> Path:
    return _review(tmp_path_factory.mktemp("hostile-review"))


@contextmanager
def _serving(audit: Path) -> Iterator[tuple[Path, int, Path]]:
    """A review server on the audit's page: (audit, port, verdicts.json); the verdicts are removed after."""
    from acoustic_env.web.review_server import make_server, verdicts_uri

    srv = make_server(str(audit), port=0)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    saved = Path(verdicts_uri(str(audit)))
    try:
        yield audit, srv.server_address[1], saved
    finally:
        srv.shutdown()
        srv.server_close()
        saved.unlink(missing_ok=True)


@pytest.fixture
def review(review_page):
    """A review server on the page, with no verdicts yet."""
    with _serving(review_page) as served:
        yield served


def _post(port: int, body: bytes, headers: dict[str, str]) -> tuple[int, dict]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/verdicts", data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


VERDICT = {"clip_id": "a", "given_labels": ["urban"], "verdict": "wrong", "sample": "suspects"}
FORGED = [  # (name, body changes, headers, status, words in the error)
    ("text/plain from a page", {}, {"Content-Type": "text/plain"}, 415, "application/json"),
    ("form from a page", {}, {"Content-Type": "application/x-www-form-urlencoded"}, 415, "application/json"),
    ("cross-origin", {}, {"Content-Type": "application/json", "Origin": "https://evil.example"}, 403, "Origin"),
    ("foreign host", {}, {"Content-Type": "application/json", "Host": "evil.example"}, 403, "Host"),
    ("unknown clip", {"clip_id": "zzz"}, {"Content-Type": "application/json"}, 400, "zzz"),
    ("clip of the other sample", {"sample": "random"}, {"Content-Type": "application/json"}, 400, "random"),
]


@pytest.mark.parametrize("name,change,headers,status,words", FORGED, ids=[f[0] for f in FORGED])
def test_the_review_server_refuses_forged_verdicts(review, name, change, headers, status, words):
    audit, port, saved = review
    got, body = _post(port, json.dumps({**VERDICT, **change}).encode(), headers)
    assert got == status and words in body["error"], body
    assert not saved.exists() or json.loads(saved.read_text()) == []


def test_the_review_server_dates_verdicts_itself(review, capsys):
    audit, port, saved = review
    origin = {"Content-Type": "application/json", "Origin": f"http://127.0.0.1:{port}"}
    t0 = time.time()
    assert _post(port, json.dumps({**VERDICT, "time": "2099-01-01T00:00:00Z"}).encode(), origin)[0] == 200
    assert _post(port, json.dumps({**VERDICT, "verdict": "correct", "time": "2000-01-01T00:00:00Z"}).encode(),
                 origin)[0] == 200
    [rec] = json.loads(saved.read_text())
    assert rec["verdict"] == "correct"  # the later click wins, whatever the client claimed
    from datetime import datetime

    assert abs(datetime.fromisoformat(rec["time"].replace("Z", "+00:00")).timestamp() - t0) < 30
    code, out, err, _ = _run(["audit-estimate", "--verdicts", str(saved), "--sample", "suspects"], capsys)
    assert code == 0 and "(n=1)" in out, out + err


def test_a_verdict_stored_with_a_future_time_does_not_outlast_a_new_one(review_page):
    """verdicts.json already holds a verdict dated 2099 (written by hand, or by an older version): the reviewer's
    next click on that clip replaces it, as any later click does."""
    from acoustic_env.web.review_server import verdicts_uri

    Path(verdicts_uri(str(review_page))).write_text(json.dumps([{**VERDICT, "time": "2099-01-01T00:00:00Z"}]))
    with _serving(review_page) as (audit, port, saved):
        origin = {"Content-Type": "application/json", "Origin": f"http://127.0.0.1:{port}"}
        assert _post(port, json.dumps({**VERDICT, "verdict": "correct"}).encode(), origin)[0] == 200
        [rec] = json.loads(saved.read_text())
        assert rec["verdict"] == "correct" and not rec["time"].startswith("2099"), rec


def test_audit_estimate_says_when_it_cannot_check_the_clips(tmp_path, capsys):
    """No --audit and no review page beside the verdicts: the clip ids cannot be checked, and a line says so."""
    loose = tmp_path / "verdicts.json"
    loose.write_text(json.dumps([{**VERDICT, "clip_id": f"x{i}", "time": "2026-01-01T00:00:00Z"} for i in range(3)]))
    code, out, err, _ = _run(["audit-estimate", "--verdicts", str(loose), "--sample", "suspects"], capsys)
    assert code == 0 and "(n=3)" in out and err == "", out + err
    [note] = [ln for ln in out.splitlines() if ln.startswith("note:")]
    assert str(loose) in note and "pass --audit" in note


def test_a_second_review_server_on_the_same_audit_is_refused(review):
    from acoustic_env.errors import AuditError
    from acoustic_env.web.review_server import make_server

    audit, port, saved = review
    with pytest.raises(AuditError, match="another review server"):
        make_server(str(audit), port=0)


def test_audit_estimate_ignores_verdicts_for_clips_not_in_the_audit(review, tmp_path, capsys):
    audit, port, saved = review
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps([{**VERDICT, "time": "2026-01-01T00:00:00Z"}]
                                 + [{**VERDICT, "clip_id": f"x{i}", "time": "2026-01-01T00:00:00Z"} for i in range(46)]))
    code, out, err, _ = _run(["audit-estimate", "--verdicts", str(forged), "--audit", str(audit)], capsys)
    assert code == 0 and "(n=1)" in out and "46 verdicts for clips not in audit" in out, out + err


# ----------------------------------------------------------------------------- released embeddings (TFRecord)

def _tfrecord_header(length: int) -> bytes:
    from tfrecord.writer import TFRecordWriter

    head = struct.pack("<Q", length)
    return head + TFRecordWriter.masked_crc(head)


@pytest.mark.parametrize("name,data,words", [
    ("claims a gigabyte", _tfrecord_header(1 << 30) + b"\0" * 100, "claims 1073741824 bytes"),
    ("claims 200 MB", _tfrecord_header(200 << 20) + b"\0" * 100, "claims 209715200 bytes"),
    ("text", b"this is not a tfrecord file, just text\n" * 5, "not a TFRecord file"),
    ("empty header", b"\x01\x02\x03", "not a TFRecord file"),
])
def test_a_damaged_tfrecord_is_one_line_in_bounded_memory(tmp_path, capsys, name, data, words):
    path = tmp_path / "bad.tfrecord"
    path.write_bytes(data)
    tracemalloc.start()
    try:
        code, out, err, took = _run(["recipe", "audioset-embeddings", str(path), str(tmp_path / "out")], capsys)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    _one_line_error(code, err, words)  # a damaged input is the user's to fix: exit status 2, as any bad input
    assert "bad.tfrecord" in err and peak < 64 << 20 and took < 30, (peak, err)


# ----------------------------------------------------------------------------- recipes

US8K = "slice_file_name,fsID,start,end,salience,fold,classID,class\n"


@pytest.mark.parametrize("name,rows,words", [
    ("fold -3", "1-0-0-0.wav,1,0,1,1,-3,0,air_conditioner\n", "row 2: fold -3"),
    ("fold 0", "1-0-0-0.wav,1,0,1,1,0,0,air_conditioner\n", "row 2: fold 0"),
    ("fold 99", "1-0-0-0.wav,1,0,1,1,5,0,dog_bark\n2-0-0-0.wav,2,0,1,1,99,0,dog_bark\n", "row 3: fold 99"),
    ("fold one", "1-0-0-0.wav,1,0,1,1,one,0,air_conditioner\n", "row 2: fold 'one'"),
    ("short row", "1-0-0-0.wav,1,0\n", "row 2: 3 fields"),
    ("long row", "1-0-0-0.wav,1,0,1,1,1,0,dog_bark,extra\n", "row 2: 9 fields"),
    ("leaves the root", "../../../../etc/passwd,1,0,1,1,1,0,dog_bark\n", "row 2: slice_file_name"),
    ("absolute", "/etc/passwd,1,0,1,1,1,0,dog_bark\n", "row 2: slice_file_name"),
])
def test_urbansound8k_rows_are_checked(tmp_path, capsys, name, rows, words):
    (tmp_path / "us8k" / "metadata").mkdir(parents=True)
    (tmp_path / "us8k" / "metadata" / "UrbanSound8K.csv").write_text(US8K + rows)
    code, out, err, _ = _run(["recipe", "urbansound8k", str(tmp_path / "us8k"), str(tmp_path / "out")], capsys)
    _one_line_error(code, err, words)
    assert "UrbanSound8K.csv" in err and "valid: 1-10" in err or "fold" not in words
    assert not (tmp_path / "out").exists()


def test_esc50_folds_are_1_to_5(tmp_path, capsys):
    (tmp_path / "esc" / "meta").mkdir(parents=True)
    (tmp_path / "esc" / "meta" / "esc50.csv").write_text(
        "filename,fold,target,category,esc10,src_file,take\n1-100-A-0.wav,6,0,dog,True,100,A\n")
    code, out, err, _ = _run(["recipe", "esc50", str(tmp_path / "esc"), str(tmp_path / "out")], capsys)
    _one_line_error(code, err, "row 2: fold 6")
    assert "valid: 1-5" in err


AUDIOSET_HEAD = "# Segments csv\n# num_ytids=2\n# YTID, start_seconds, end_seconds, positive_labels\n"


@pytest.mark.parametrize("ytid", ["../../../../etc/passwd", "/etc/passwd", "short", "--PJHxphWEs/x", "--PJHxph.Es"])
def test_audioset_ytids_are_checked(tmp_path, capsys, ytid):
    """A YTID that is not a YouTube id would name a file outside the dataset root: one line naming the row."""
    (tmp_path / "as").mkdir()
    (tmp_path / "as" / "eval_segments.csv").write_text(
        f'{AUDIOSET_HEAD}--4gqARaEJE, 0.000, 10.000, "/t/dd00128"\n{ytid}, 0.000, 10.000, "/t/dd00128"\n')
    code, out, err, _ = _run(["recipe", "audioset", str(tmp_path / "as"), str(tmp_path / "out")], capsys)
    _one_line_error(code, err, f"eval_segments.csv: data row 2: YTID {ytid!r} is not a YouTube id")
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------- the ontology, offline

@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No network: every connection outside 127.0.0.1 fails at once, and the download cache is empty."""
    real = socket.socket.connect

    def connect(self, address):
        if isinstance(address, tuple) and address[0] not in ("127.0.0.1", "::1", "localhost"):
            raise OSError(f"network disabled by the test: {address}")
        return real(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setenv("ACOUSTIC_ENV_CACHE", str(tmp_path / "empty-cache"))
    from acoustic_env.vocabulary.ontology import load_ontology

    load_ontology.cache_clear()
    yield
    load_ontology.cache_clear()


def test_a_task_by_audioset_names_needs_no_network(offline, tmp_path):
    from acoustic_env.vocabulary.tasks import load_task

    task_file = tmp_path / "t.yaml"
    task_file.write_text("name: names\nkind: single_label\nclasses:\n  traffic: {mids: ['Traffic noise, roadway noise'], "
                         "descendants: true}\n  birds: {mids: ['Bird'], descendants: true}\n")
    task = load_task(str(task_file))
    assert task.assign(["Traffic noise, roadway noise"]) == 0 and task.assign(["Bird vocalization, bird call, "
                                                                               "bird song"]) == 1


def test_a_remote_ontology_is_checked_before_any_work(offline, model, clips, tmp_path, capsys):
    listing = tmp_path / "clips.csv"
    listing.write_text(f"clip_id,uri,labels\nt,{clips['tone']},Bird\n")
    code, out, err, took = _run(["annotate", "--manifest", str(listing), "--model", str(model),
                                 "--features", str(tmp_path / "f"), "--output", str(tmp_path / "o"),
                                 "--ontology", "http://127.0.0.1:1/ontology.json"], capsys)
    _one_line_error(code, err, "ontology")
    assert not (tmp_path / "f").exists() and not (tmp_path / "o").exists() and took < 20


def test_the_log_file_masks_secrets_too(tmp_path):
    """Tracebacks and library warnings go to the job's log file through one formatter that redacts."""
    import logging

    from acoustic_env.distributed.session import LOG_FORMAT, RedactingFormatter

    handler = logging.FileHandler(tmp_path / "job.log")
    handler.setFormatter(RedactingFormatter(LOG_FORMAT))
    log = logging.getLogger("hostile-test")
    log.addHandler(handler)
    try:
        try:
            raise OSError("cannot open https://KEYSECRET:PWSECRET@host/a.wav?X-Amz-Signature=SIGSECRET")
        except OSError:
            log.exception("read failed for %s", "https://host/b.wav?token=TOKSECRET")
    finally:
        log.removeHandler(handler)
        handler.close()
    text = (tmp_path / "job.log").read_text()
    assert "host/a.wav" in text and "Traceback" in text
    _no_secret(text)
