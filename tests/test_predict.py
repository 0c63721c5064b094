"""predict: a few files labelled in-process with the extract job's code, equal to what annotate gives.

The clips are real audio files (the demo generator's), decoded and featurised for real;
the feature table comes from the real extract job on Ray, with YAMNet (seeded random
weights: no download) so that the tagger path runs too. The model is trained without
Ray (``demo.quick_model``) on that table; an xgboost, a logistic-regression and a forest
artifact are fitted on it the way tests/test_model_artifact.py fits every portable model.
"""

from __future__ import annotations

import csv
import subprocess
import sys
import textwrap

import numpy as np
import pyarrow.parquet as pq
import pytest
from test_model_artifact import save_zoo_model
from worlds import MODEL_GROUPS

import acoustic_env as ae
from acoustic_env.audio.featurize import clip_rows
from acoustic_env.vocabulary.tasks import load_task
from acoustic_env.jobs.predict import predict, predict_files


@pytest.fixture
def world(clips_model):
    """(demo clips with one broken file, their extract output, a model trained on it): tests/worlds.py's."""
    return clips_model


def _annotated(world, tmp_path) -> dict[str, dict]:
    data, out, model, cache = world
    ae.annotate(str(data.clips_csv), str(model), str(out), str(tmp_path / "ann"),
                extract={"audio_root": str(data.audio_dir), "weights_cache": str(cache),
                         "allow_random_weights": True, "progress": False})
    return {r["clip_id"]: r for r in pq.read_table(tmp_path / "ann" / "annotations").to_pylist()}


def test_cli_predict_prints_the_class_and_matches_annotate(world, tmp_path):
    data, out, model, cache = world
    clip = sorted(data.audio_dir.glob("*.flac"))[0]
    saved = tmp_path / "pred.csv"
    r = subprocess.run([sys.executable, "-m", "acoustic_env.cli", "predict", str(clip), "--model", str(model),
                        "--weights-cache", str(cache), "--save", str(saved)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split()[:3] == ["clip", "class", "prob"]
    clip_id, cls, prob = lines[1].split()[:3]
    assert clip_id == clip.stem and cls in ("urban", "natural") and 0.5 <= float(prob) <= 1
    assert "tags: " in lines[1]  # YAMNet is a tagger: its top AudioSet classes are shown
    assert lines[-2].startswith("  written to") or lines[-1].startswith("  written to")
    assert "Traceback" not in r.stderr and "Warning" not in r.stderr
    [row] = list(csv.DictReader(saved.open()))
    expected = _annotated(world, tmp_path)[clip.stem]
    assert row["predicted"] == expected["predicted"] == cls
    for c in ("urban", "natural"):
        assert abs(float(row[f"prob_{c}"]) - expected[f"prob_{c}"]) <= 1e-6
    assert abs(float(prob) - expected[f"prob_{cls}"]) <= 5e-4  # printed to 3 decimals


@pytest.mark.parametrize("name", ["xgboost", "logreg", "forest"])
def test_cli_predict_reproduces_a_saved_tree_or_linear_model(name, world, tmp_path, capfd):
    """``acoustic-env predict`` on audio files, with an xgboost, a logistic-regression or a random-forest artifact
    (skops' format, as the SVM's and kNN's) fitted on the clips' extract: the probabilities the fitted estimator
    gives in this process on the same clips, to 1e-6. The command runs through ``cli.main`` here (its own process,
    and its console, are the test above's): a process per model added an interpreter and the imports only."""
    from acoustic_env.cli import main

    data, out, _, cache = world
    fitted, x, table = save_zoo_model(str(out), load_task("urban_natural"), name, MODEL_GROUPS, str(tmp_path / "m"),
                                      include_random_weights=True)
    expected = dict(zip(table.ids, fitted.predict_proba(x)))
    clips = [c for c in sorted(data.audio_dir.glob("*.flac")) if c.stem in expected][:3]
    saved = tmp_path / "pred.csv"
    code = main(["predict", *map(str, clips), "--model", str(tmp_path / "m"), "--weights-cache", str(cache), "--save",
                 str(saved)])
    err = capfd.readouterr().err
    assert code == 0 and "Traceback" not in err, err
    rows = list(csv.DictReader(saved.open()))
    assert [row["clip_id"] for row in rows] == [c.stem for c in clips] and not any(row["error"] for row in rows)
    for row in rows:
        got = [float(row["prob_urban"]), float(row["prob_natural"])]
        np.testing.assert_allclose(got, expected[row["clip_id"]], rtol=0, atol=1e-6)
        assert row["predicted"] == ("urban", "natural")[int(np.argmax(got))]


def test_predict_files_equals_annotate_and_keeps_the_broken_file(world, tmp_path):
    data, out, model, cache = world
    files = sorted(str(p) for p in data.audio_dir.iterdir())
    m = ae.load_model(str(model))
    table = predict_files(m, clip_rows(files), weights_cache=str(cache))
    assert table.column_names == ["clip_id", "uri", "predicted", "prob_urban", "prob_natural", "error", "note",
                                  "tags"]
    rows = table.to_pylist()
    assert len(rows) == len(files) and [r["uri"] for r in rows] == files
    broken = [r for r in rows if r["error"]]
    assert len(broken) == data.n_broken and all(r["predicted"] is None for r in broken)
    # a clip not scored has null probabilities, as a silent clip has (NaN was "nan" in a CSV, beside empty cells)
    assert all(r["prob_urban"] is None and r["prob_natural"] is None for r in broken)
    annotated = _annotated(world, tmp_path)
    scored = [r for r in rows if not r["error"]]
    assert len(scored) == data.n_good == len(annotated)
    for r in scored:
        a = annotated[r["clip_id"]]
        assert r["predicted"] == a["predicted"]
        np.testing.assert_allclose([r["prob_urban"], r["prob_natural"]], [a["prob_urban"], a["prob_natural"]],
                                   atol=1e-6, rtol=0)
        assert len(r["tags"]) == 3 and all(t.rsplit(" ", 1)[1].replace(".", "").isdigit() for t in r["tags"])


@pytest.mark.slow
def test_many_clips_go_through_extract_with_the_same_result(world, tmp_path):
    data, out, model, cache = world
    in_process = predict([str(data.audio_dir)], str(model), weights_cache=str(cache))
    via = predict([str(data.audio_dir)], str(model), weights_cache=str(cache), max_in_process=2,
                  output=str(tmp_path / "work"))
    assert (tmp_path / "work" / "features").is_dir()  # the extract job ran
    a, b = in_process.to_pylist(), via.to_pylist()
    assert [r["clip_id"] for r in a] == [r["clip_id"] for r in b]
    for x, y in zip(a, b):
        assert (x["error"] is None) == (y["error"] is None) and x["predicted"] == y["predicted"]
        if x["error"] is None:
            assert abs(x["prob_urban"] - y["prob_urban"]) <= 1e-6 and x["tags"] == y["tags"]


def test_the_training_tables_parameters_are_used(world):
    _, out, model, _ = world
    decode, features, source = ae.load_model(str(model)).extraction_params()
    assert source.startswith(str(out / "runs")) and source.endswith(".json")
    assert features.impl == "fast" and decode.sample_rate == 16000


def test_in_process_prediction_needs_no_ray(world):
    data, _, model, cache = world
    clip = sorted(data.audio_dir.glob("*.flac"))[1]
    script = textwrap.dedent(f"""
        import sys
        sys.modules["ray"] = None  # any import of Ray fails
        import acoustic_env as ae
        t = ae.predict({str(clip)!r}, {str(model)!r}, weights_cache={str(cache)!r})
        assert t.num_rows == 1 and t["error"][0].as_py() is None, t.to_pylist()
        print(t["predicted"][0].as_py())
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() in ("urban", "natural")


def test_predict_mistakes_are_one_line(world, tmp_path, capsys):
    from acoustic_env.cli import main

    data, _, model, _ = world
    assert main(["predict", str(tmp_path / "missing.wav"), "--model", str(model)]) == 2
    assert capsys.readouterr().err.strip() == f"acoustic-env: error: inputs: no such file or directory: " \
                                              f"{tmp_path / 'missing.wav'}"
    assert main(["predict", str(next(data.audio_dir.iterdir())), "--model", str(tmp_path)]) == 2
    assert "model: no model artifact at" in capsys.readouterr().err
