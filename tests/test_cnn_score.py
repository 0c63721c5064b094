"""A CNN over log-mel images as the chosen model scores audio: predict (in process and through the extract
job), predict --windows, the service and annotate compute each clip's image as the extract job does and give the
probabilities the model gives on the table.

The clips are real WAVs of two kinds a CNN tells apart (tests/test_windows.py's: a hum in loud noise, chirps over
faint noise), extracted with ``features.logmel`` by the real extract job (in process: a handful of clips), and the
CNN is the train job's, saved as the chosen model.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf
from test_cnn_train import TINY
from test_windows import SR, _sound

import acoustic_env as ae
from acoustic_env.audio import featurize
from acoustic_env.cli import main
from acoustic_env.config import TrainConfig, from_dict
from acoustic_env.jobs.predict import predict
from acoustic_env.web.serve_handler import Limits, Recognizer, Upload, parse_upload
from acoustic_env.jobs.train.job import train
from acoustic_env.jobs.windows import predict_windows
from acoustic_env.candidates import PARAMS

CLIPS, CLIP_S = 24, 1.0
PROBS = ["prob_urban", "prob_natural"]


def two_kinds(root: Path, clips: int, seconds: float) -> list[str]:
    """``clips`` WAVs of ``seconds`` under ``root/audio``, urban and natural in turn, and the lines of their clip list
    (``root/clips.csv``, written), its header first."""
    (root / "audio").mkdir()
    lines = ["clip_id,uri,labels"]
    for i in range(clips):
        path = root / "audio" / f"c{i:02d}.wav"
        sf.write(path, _sound(i % 2 == 1, seed=i, seconds=seconds), SR, subtype="PCM_16")
        lines.append(f"c{i:02d},{path},{'natural' if i % 2 else 'urban'}")
    (root / "clips.csv").write_text("\n".join(lines) + "\n")
    return lines


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    """The clips (alternating kinds) and their list, the extract output, the chosen CNN and its probabilities on
    that table by clip id."""
    root = tmp_path_factory.mktemp("cnn_score")
    two_kinds(root, CLIPS, CLIP_S)
    table = root / "extract"
    ae.extract(str(root / "clips.csv"), str(table), features={"signals": ["raw"], "logmel": True}, progress=False)
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(PARAMS, "cnn", TINY)
        summary = train(from_dict(TrainConfig, {
            "features": str(table), "output": str(root / "train"), "task": "labels:urban,natural", "cv_folds": 3,
            "tuning_trials": 1, "max_rounds": 3, "baselines": ["cnn"], "saved_model": "cnn", "ablations": False,
            "shap_samples": 0, "feature_groups": ["indices_raw"], "progress": False}))
    model = ae.load_model(summary.model)
    assert model.image_input["column"] == "logmel" and model.groups == []
    on_table = {r["clip_id"]: r for r in model.predict_table(str(table)).to_pylist()}
    assert [on_table[f"c{i:02d}"]["predicted"] for i in range(4)] == ["urban", "natural"] * 2
    return {"root": root, "clips": sorted((root / "audio").glob("*.wav")), "list": root / "clips.csv",
            "table": str(table), "model": summary.model, "on_table": on_table}


def _assert_as_on_table(rows: list[dict], on_table: dict[str, dict]) -> None:
    for r in rows:
        assert r["error"] is None and r["predicted"] == on_table[r["clip_id"]]["predicted"]
        np.testing.assert_allclose([r[p] for p in PROBS], [on_table[r["clip_id"]][p] for p in PROBS], rtol=0,
                                   atol=1e-5)


def test_predict_on_the_training_clips_gives_the_probabilities_of_the_model_on_its_table(world, monkeypatch):
    """The issue's done-when, in process (the image alone: no vector feature is computed) and through the extract
    job (the larger-input path, which turns the log-mel images on)."""
    files = [str(c) for c in world["clips"]]
    through_extract = predict(files, world["model"], max_in_process=0).to_pylist()
    _assert_as_on_table(through_extract, world["on_table"])

    def no_vectors(*args, **kwargs):
        raise AssertionError("an image model's clips need no vector features")

    monkeypatch.setattr(featurize, "cpu_features", no_vectors)
    in_process = predict(files, world["model"]).to_pylist()
    assert len(in_process) == CLIPS
    _assert_as_on_table(in_process, world["on_table"])


def test_windows_of_a_recording_are_scored_by_the_cnn_as_its_clips(world, tmp_path, capsys):
    """A recording of four training clips end to end: a window of the training clip length each, scored as the
    clip cut out alone."""
    long = tmp_path / "long.wav"
    sf.write(long, np.concatenate([sf.read(c, dtype="int16")[0] for c in world["clips"][:4]]), SR, subtype="PCM_16")
    result = predict_windows([str(long)], world["model"])
    rows = result.table.to_pylist()
    assert (result.window_s, result.hop_s) == (CLIP_S, CLIP_S)
    assert [(r["start_s"], r["end_s"]) for r in rows] == [(k * CLIP_S, (k + 1) * CLIP_S) for k in range(4)]
    _assert_as_on_table([{**r, "clip_id": f"c{k:02d}"} for k, r in enumerate(rows)], world["on_table"])
    assert main(["predict", str(long), "--windows", "--model", world["model"]]) == 0
    assert "Traceback" not in capsys.readouterr().err


def test_the_service_scores_an_upload_and_its_windows_with_the_cnn(world):
    """The service's recognizer (no Ray): an upload of a training clip, and the same clip in windows."""
    limits = Limits(2**22, 6.0, 30.0, 2**22, 60.0, 30.0)
    rec = Recognizer(world["model"], limits)
    assert rec.info()["windows"] == {"window_s": CLIP_S, "hop_s": CLIP_S}
    clip = world["clips"][1]
    [answer] = rec.score([rec.decode_upload(Upload(clip.read_bytes(), clip.name))], [3])
    [windowed] = rec.windows(parse_upload(clip.read_bytes(), "audio/wav", {"windows": "1"}, limits, fetch=None))[
        "windows"]
    for got in (answer, windowed):
        _assert_as_on_table([{"clip_id": clip.stem, "error": None, "predicted": got["predicted"],
                              **{f"prob_{c}": p for c, p in got["probabilities"].items()}}], world["on_table"])


def test_annotate_extracts_the_images_for_the_cnn_whatever_its_record_says(world, tmp_path, capsys):
    """annotate into a new shared table: its extract computes the log-mel images the CNN reads even for a model
    whose recorded table parameters say they were off, and the annotations are the model's on the table."""
    model = tmp_path / "model"
    shutil.copytree(world["model"], model)
    meta = json.loads((model / "model.json").read_text())
    meta["extraction"]["features"]["logmel"] = False
    (model / "model.json").write_text(json.dumps(meta))
    argv = ["annotate", "--manifest", str(world["list"]), "--model", str(model), "--features",
            str(tmp_path / "shared"), "--output", str(tmp_path / "ann")]
    assert main([*argv, "--dry-run"]) == 0
    plan = capsys.readouterr().out
    assert "features logmel)" in plan and "log-mel images (logmel)" in plan
    assert main(argv) == 0
    rows = pq.read_table(tmp_path / "ann" / "annotations").to_pylist()
    assert len(rows) == CLIPS
    _assert_as_on_table([{**r, "error": None} for r in rows], world["on_table"])
