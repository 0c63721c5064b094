"""The train job: splits, preprocessing, the network per task kind, evaluation, the artifact, end to end.

Feature tables are synthetic (``acoustic_env.demo.tables``: the extract
job's schema, class-dependent signal, a group per source recording), so no
extraction runs here. Ray is used only by the end-to-end tests (one search of
two trials, one run without search against S3).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from types import SimpleNamespace

import fsspec
import numpy as np
import pytest

from acoustic_env.vocabulary.tasks import load_task
from acoustic_env.cli import main
from acoustic_env.config import ConfigError, TrainConfig, from_dict
from acoustic_env.demo.tables import NATURAL, URBAN, synthetic_features, synthetic_table, write_features
from acoustic_env.jobs.train import load_model
from acoustic_env.jobs.train.inputs import read_label_accuracy, read_test_list
from acoustic_env.jobs.train.job import train
from acoustic_env.learn.artifact import save_model
from acoustic_env.learn.metrics import (
    adjusted_accuracy,
    evaluate,
    true_accuracy,
)
from acoustic_env.learn.mlp import architecture, predict_proba
from acoustic_env.learn.portable import FORMATS, from_network
from acoustic_env.learn.preprocess import fit_group, fit_streaming
from acoustic_env.learn.splits import (
    DROPPED,
    TEST,
    TRAIN,
    VAL,
    assign_splits,
    leaks,
    strata,
)
from acoustic_env.learn.transform import transform_all
from acoustic_env.learn.zoo import make_estimator
from acoustic_env.table import SIGNAL_REASON, read_features

INDOOR = "/t/dd00125"
THREE_CLASSES = {"name": "three_env", "kind": "single_label",
                 "classes": {"urban": {"mids": [URBAN]}, "natural": {"mids": [NATURAL]}, "indoor": {"mids": [INDOOR]}}}


def _task_file(tmp: Path, kind: str) -> str:
    path = tmp / f"{kind}.yaml"
    import yaml

    path.write_text(yaml.safe_dump({**THREE_CLASSES, "kind": kind, "name": f"three_{kind}"}))
    return str(path)


def _arrays(source: str, task, groups: list[str]) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Preprocessed train/val/test arrays of a feature table, as the job builds them."""
    features = read_features(source, task=task, feature_groups=groups)
    split = assign_splits(strata(features.y), features.groups, None, 0.25, 0.25, seed=0)
    transforms = [fit_group(features.X[g][split == TRAIN], 10, g) for g in features.columns]
    x = transform_all(transforms, features.X)
    data = {"x_train": x[split == TRAIN], "y_train": features.y[split == TRAIN],
            "x_val": x[split == VAL], "y_val": features.y[split == VAL]}
    return data, x[split == TEST], features.y[split == TEST]


# --- options -------------------------------------------------------------------------

@pytest.mark.parametrize("field, value, message", [
    ("trials", -1, "trials: must be an integer >= 0, got -1"),
    ("test_size", 1.5, "test_size: must be in (0, 1), got 1.5"),
    ("pca", "mps=0", "pca.mps: must be an integer >= 1 or a variance fraction in (0, 1), got 0"),
    ("feature_groups", "indices,spectrogram", "feature_groups: must be a subset of"),
    ("baselines", "lasso", "baselines: must be a subset of ['logreg', 'elasticnet', 'knn', 'svm', 'forest', "
                           "'xgboost', 'cnn'], got 'lasso'"),
    ("saved_model", "lasso", "saved_model: must be one of ['chosen', 'logreg', 'elasticnet', 'knn', 'svm', 'forest', "
                             "'xgboost', 'mlp', 'cnn', 'average'], got 'lasso'"),
])
def test_bad_option_is_one_line(field, value, message):
    with pytest.raises(ConfigError) as info:
        from_dict(TrainConfig, {"features": "f", "output": "o", field: value})
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_cli_bad_option_one_line_exit_2(tmp_path, capsys):
    write_features(synthetic_table(30), str(tmp_path / "ex"))
    assert main(["train", "--features", str(tmp_path / "ex"), "--output", str(tmp_path / "o"),
                 "--feature-groups", "yamnet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("acoustic-env: error: feature_groups: yamnet matches no feature group")


def test_random_weight_embedders_are_left_out_unless_asked(tmp_path):
    from acoustic_env.table import read_features

    write_features(synthetic_table(12, embedders=("vggish",)), str(tmp_path))  # recorded as random weights
    assert "vggish" not in read_features(str(tmp_path)).columns
    assert "vggish" in read_features(str(tmp_path), include_random_weights=True).columns
    cfg = from_dict(TrainConfig, {"features": str(tmp_path), "output": "o", "include_random_weights": True})
    assert cfg.include_random_weights


# --- splits --------------------------------------------------------------------------

def test_grouped_split_keeps_recordings_together():
    rng = np.random.default_rng(0)
    groups = np.array([f"rec{g}" for g in rng.integers(0, 120, 600)], dtype=object)
    strata = rng.integers(0, 2, 600).astype(str)
    split = assign_splits(strata, groups, None, test_size=0.2, val_size=0.2, seed=3)
    assert not leaks(groups, split)
    assert (split == DROPPED).sum() == 0
    for code, share in ((TEST, 0.2), (VAL, 0.16), (TRAIN, 0.64)):
        assert abs((split == code).mean() - share) < 0.07
        assert set(strata[split == code]) == {"0", "1"}  # stratified: both classes everywhere


def test_explicit_test_list_is_exact_and_does_not_leak(tmp_path):
    ids = np.array([f"clip{i}" for i in range(100)])
    groups = np.array([f"rec{i // 4}" for i in range(100)], dtype=object)
    test_mask = np.isin(ids, ["clip0", "clip1", "clip9"])  # clip2/3 share rec0, clip8/10/11 share rec2
    split = assign_splits(np.array(["a", "b"] * 50), groups, test_mask, 0.2, 0.25, seed=0)
    assert list(ids[split == TEST]) == ["clip0", "clip1", "clip9"]
    assert set(ids[split == DROPPED]) == {"clip2", "clip3", "clip8", "clip10", "clip11"}
    assert not leaks(groups, split)

    (tmp_path / "eval.csv").write_text('# Segments csv\n# num_ytids=2\n# YTID, start_seconds, end_seconds, positive_labels\n'
                                       'abc, 30.000, 40.000, "/t/dd00128"\nxyz, 0.500, 10.500, "/t/dd00129,/m/0jbk"\n')
    assert read_test_list(str(tmp_path / "eval.csv")) == {"abc_30000", "xyz_500"}
    (tmp_path / "ids.txt").write_text("a\nb\n\n")
    assert read_test_list(str(tmp_path / "ids.txt")) == {"a", "b"}


# --- preprocessing -------------------------------------------------------------------

def test_streaming_pca_matches_in_memory(tmp_path):
    """The PCA fitted over the reader's streamed batches matches the one fitted on the matrices in memory."""
    source = write_features(synthetic_table(400, seed=2), str(tmp_path), n_parts=3)
    features = read_features(source, feature_groups=["indices_raw", "mps_fg"])
    mats = features.X
    is_train = np.arange(400) % 5 != 0
    transforms, projected = fit_streaming(lambda: features.stream(batch_rows=64), features.feature_groups,
                                          {"indices_raw": 5, "mps_fg": 0.5}, is_train, 400)
    for t in transforms:
        ref = fit_group(mats[t.group][is_train], 5 if t.group == "indices_raw" else 0.5, t.group)
        assert t.n_components == ref.n_components
        np.testing.assert_allclose(t.explained_variance_ratio, ref.explained_variance_ratio, rtol=0.05)
        out = t.transform(mats[t.group])
        np.testing.assert_allclose(out, projected[t.group], atol=1e-3)
        np.testing.assert_allclose(out[is_train].std(axis=0), 1, atol=1e-3)  # scaled on the training rows only


# --- the network per task kind, and the metrics --------------------------------------

@pytest.mark.parametrize("kind", ["binary", "single_label", "multi_label"])
def test_network_learns_each_task_kind(kind, tmp_path):
    task = load_task("urban_natural") if kind == "binary" else load_task(_task_file(tmp_path, kind))
    table = synthetic_table(240, class_mids=tuple(sorted(m)[0] for m in task.class_labels),
                            multi_label=task.kind == "multi_label", seed=1, separation=0.5)
    data, x_test, y_test = _arrays(write_features(table, str(tmp_path / "ex")), task, ["indices_raw", "mps_raw"])
    params = {"depth": 2, "width": 32, "lr": 3e-3, "activation": "gelu", "dropout": 0.1, "weight_decay": 1e-4,
              "batch_size": 32}
    network = make_estimator("mlp", task.kind, task.n_classes, 0, network=params, max_rounds=6, patience=3).network()
    network.train(data, task.kind, task.n_classes, steps_per_round=20)
    model = network.model_
    m = evaluate(task.kind, list(task.class_names), y_test, predict_proba(model, x_test, task.kind, task.n_classes))
    assert m["roc_auc"] > 0.85 and m["map"] > 0.8
    assert set(m["per_class"]) == set(task.class_names)
    assert {"accuracy", "balanced_accuracy", "macro_f1", "micro_f1", "confusion", "calibration"} <= set(m)


def test_adjusted_accuracy_formula(tmp_path):
    assert true_accuracy(0.82, 0.9, 2) == pytest.approx(0.9)  # (0.82 - 0.1) / (2 * 0.9 - 1)
    assert true_accuracy(0.7, 0.8, 3) == pytest.approx((0.7 - 0.1) / (0.8 - 0.1))
    assert true_accuracy(0.7, 0.5, 2) is None  # labels at chance say nothing
    est = {"method": "wilson", "sample": "random", "overall": {"accuracy": 0.9, "low": 0.85, "high": 0.94, "n": 100}}
    adj = adjusted_accuracy(0.82, 200, est, 2)
    assert adj["raw"] == 0.82 and adj["adjusted"] == pytest.approx(0.9)
    assert adj["interval"][0] < 0.9 < adj["interval"][1] <= 1.0
    (tmp_path / "suspects.json").write_text(json.dumps({**est, "sample": "suspects"}))
    with pytest.raises(ConfigError, match="label_accuracy: .* suspects"):
        read_label_accuracy(str(tmp_path / "suspects.json"))


# --- the artifact without Ray --------------------------------------------------------

def test_artifact_round_trip_without_ray(tmp_path):
    task = load_task("urban_natural")
    table = synthetic_table(120, seed=4)
    groups = ["indices_raw", "mps_bg"]
    pq_path = tmp_path / "features.parquet"
    import pyarrow.parquet as pq

    pq.write_table(table, pq_path)
    features = read_features(str(pq_path), task=task, feature_groups=groups)
    transforms = [fit_group(features.X[g], 8, g) for g in groups]
    params = {"depth": 1, "width": 16, "lr": 1e-2, "activation": "tanh", "dropout": 0.0, "weight_decay": 0.0,
              "batch_size": 16}
    x = transform_all(transforms, features.X)
    network = make_estimator("mlp", task.kind, 2, 0, network=params, max_rounds=2).network()
    network.train({"x_train": x, "y_train": features.y, "x_val": x, "y_val": features.y}, task.kind, 2, 5)
    model = network.model_
    expected = predict_proba(model, x, task.kind, 2)
    save_model(str(tmp_path / "model"), from_network(model, architecture(x.shape[1], task.kind, 2, params), task.kind, 2),
               transforms, {"task": {"name": task.name, "kind": task.kind, "class_names": list(task.class_names),
                                     "definition": task.definition}}, features.feature_groups)
    np.save(tmp_path / "expected.npy", expected)
    # the model reads exactly its columns, computed as they were when it was trained
    saved = load_model(str(tmp_path / "model"))
    assert [g["name"] for g in saved.meta["groups"]] == groups
    retrained = dataclasses.replace(saved, meta={**saved.meta, "groups": [{**g, "weights": "other-checkpoint"}
                                                                          for g in saved.meta["groups"]]})
    with pytest.raises(ConfigError, match="features: column indices_raw .* the model was trained on 60, weights other"):
        retrained.read_features(str(pq_path))
    script = textwrap.dedent(f"""
        import sys
        sys.modules["ray"] = None  # any import of Ray fails
        sys.modules["sklearn"] = None
        import numpy as np, pyarrow.parquet as pq
        from acoustic_env.jobs.train import load_model
        m = load_model({str(tmp_path / 'model')!r})
        table = pq.read_table({str(pq_path)!r})
        p = m.predict_proba(table)
        np.testing.assert_allclose(p, np.load({str(tmp_path / 'expected.npy')!r}), atol=1e-5)
        np.testing.assert_allclose(m.predict_proba(table.to_pandas()), p, atol=1e-6)
        assert list(m.predict(table)[:3]) == [m.class_names[i] for i in p[:3].argmax(1)]
        out = m.predict_table(table)
        assert out.column_names == ["clip_id", "predicted", "prob_urban", "prob_natural"] and out.num_rows == 120
        # from the file, through the feature-table reader (clip_id order, as the synthetic table is)
        np.testing.assert_allclose(m.predict_proba({str(pq_path)!r}), p, atol=1e-6)
        assert m.predict_table({str(pq_path)!r}).equals(out)
        assert m.groups == {groups!r} and "ray" not in [k for k, v in sys.modules.items() if v is not None]
        print("ok", m.class_names)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "ok ['urban', 'natural']" in out.stdout


# --- Ray Train's controller polls promptly ------------------------------------------

@pytest.mark.parametrize("given", [None, "1.5", ""])
def test_a_data_parallel_trial_has_its_reports_polled_promptly_and_the_environment_put_back(given, monkeypatch):
    """Ray Train's controller picks a round's report up when it polls (every 2 s by default); a trial of two or
    more workers (a TorchTrainer run) is fitted with a 0.2-s poll (a 4-round run took 20 s instead of 10), a
    user's own setting is kept, and the process's environment is as it was afterwards."""
    import ray.tune

    from acoustic_env.distributed import tune

    if given is None:
        monkeypatch.delenv(tune.POLL_ENV, raising=False)
    else:
        monkeypatch.setenv(tune.POLL_ENV, given)
    seen = []

    class Trainer:
        def fit(self):
            seen.append(os.environ.get(tune.POLL_ENV))
            raise RuntimeError("stop here")

    class Context:
        def get_trial_id(self):
            return "t0"

    monkeypatch.setattr(ray.tune, "get_context", lambda: Context())  # outside a Tune session here
    monkeypatch.setattr("ray.tune.integration.ray_train.TuneReportCallback", lambda: None)
    monkeypatch.setattr(tune, "_trainer", lambda *args: Trainer())
    with pytest.raises(RuntimeError, match="stop here"):
        tune.trial_driver({}, [], tune.Setup("single_label", 2, None, 0, workers=2, worker_cpus=0.5, use_gpu=False,
                                             storage=""))
    assert seen == ["0.2" if given is None else given] and os.environ.get(tune.POLL_ENV) == given


def test_trial_rows_take_each_paths_checkpoint_and_keep_a_failed_trials_error():
    """A one-worker trial's checkpoint is Tune's own (``result.checkpoint``); a data-parallel trial's is the path
    Ray Train's reports carried (``checkpoint_path``); the best is the highest score with a checkpoint, and a
    trial that failed before any checkpoint leaves its row and first error line, never the best."""
    import pandas as pd

    from acoustic_env.distributed import tune
    from acoustic_env.learn.fit import DEFAULT_PARAMS

    def result(score, checkpoint=None, checkpoint_path=None, error=None):
        rows = [] if score is None else [{"round": 1, "epoch": 5, "train_score": score, "val_score": score,
                                          tune.METRIC: score, "checkpoint_path": checkpoint_path}]
        return SimpleNamespace(metrics_dataframe=pd.DataFrame(rows) if rows else None, config=dict(DEFAULT_PARAMS),
                               checkpoint=SimpleNamespace(path=checkpoint) if checkpoint else None, error=error)

    in_trial, parallel = result(0.7, checkpoint="/ck/a"), result(0.9, checkpoint_path="/ck/b")
    failed = result(None, error=RuntimeError("out of memory\ntraceback ..."))
    rows, best = tune._trial_rows([in_trial, parallel, failed])
    assert [r["error"] for r in rows] == [None, None, "out of memory"] and rows[2][tune.METRIC] == -math.inf
    assert best[0] == 0.9 and best[2] == "/ck/b" and best[3] == [{"epoch": 5.0, "train_score": 0.9, "val_score": 0.9}]
    assert tune._trial_rows([in_trial, failed])[1][2] == "/ck/a"
    assert tune._trial_rows([failed])[1] is None


# --- sizing the search to the cluster ------------------------------------------------

@pytest.mark.parametrize("cluster, workers, max_concurrent", [
    ({"CPU": 2.0}, 1, 0), ({"CPU": 2.0}, 2, 0), ({"CPU": 16.0}, 2, 0), ({"CPU": 1.1}, 1, 2), ({"CPU": 0.5}, 1, 0),
    ({"CPU": 16.0, "GPU": 2.0}, 2, 0)])
def test_trials_in_flight_fit_the_cluster(cluster, workers, max_concurrent):
    from acoustic_env.distributed.tune import plan_trials

    plan = plan_trials(cluster, workers, max_concurrent, "auto")
    assert plan.concurrent >= 1 and plan.worker_cpus > 0
    assert plan.concurrent * (workers * plan.worker_cpus + 0.01) <= cluster["CPU"] + 1e-9  # + each trial's driver
    assert plan.use_gpu == ("GPU" in cluster)
    assert plan.concurrent * workers <= cluster.get("GPU", plan.concurrent * workers)  # a GPU per worker


# --- end to end (Ray) ----------------------------------------------------------------

@pytest.mark.slow
def test_train_end_to_end_with_search(tmp_path):
    """The command as a user runs it (its own local Ray): a two-trial Tune search under ASHA, the baselines,
    ablations and SHAP; the console holds the tool's few lines only (no Tune/Train block, no warning)."""
    from test_console import NOISE

    features = write_features(synthetic_table(180, seed=5, separation=0.4), str(tmp_path / "extract"), n_parts=3)
    estimate = tmp_path / "label_accuracy.json"
    estimate.write_text(json.dumps({"method": "wilson", "sample": "random",
                                    "overall": {"accuracy": 0.9, "low": 0.84, "high": 0.94, "n": 120}, "per_class": {}}))
    out = tmp_path / "train"
    r = subprocess.run([sys.executable, "-m", "acoustic_env.cli", "train", "--features", features, "--output", str(out),
                        "--cv-folds", "0", "--trials", "2", "--max-rounds", "4", "--grace-rounds", "1",
                        "--steps-per-round", "10", "--shap-samples", "12", "--signals", "raw,fg",
                        "--label-accuracy", str(estimate)], capture_output=True, text=True, timeout=900, cwd=tmp_path)
    text = r.stdout + r.stderr
    assert r.returncode == 0, text
    assert not NOISE.search(text), text
    assert len(text.splitlines()) <= 16 and "tuning: 2 trial(s)" in text, text
    record = json.loads(next((out / "runs").glob("*.json")).read_text())
    assert record["status"] == "completed" and record["counts"]["leaking_groups"] == 0
    assert record["counts"]["excluded_columns"] == {f"{s}_bg": SIGNAL_REASON for s in ("indices", "spectral", "mps")}
    assert len(record["search"]["trials"]) == 2 and record["search"]["method"].startswith("Optuna TPE")
    assert "of one worker (in the trial's process)" in record["search"]["method"]  # no Ray Train for one worker
    assert record["metrics"]["mlp"]["roc_auc"] > 0.9
    assert set(record["metrics"]) == {"mlp", "logreg", "xgboost"}
    ev = record["evaluation"]
    assert ev["method"] == "split" and ev["saved_model"] == ev["chosen"] and "test clips" in ev["description"]
    assert ev["scores"][ev["chosen"]] == max(ev["scores"].values())  # ties: the simpler model
    for m in ("mlp", "logreg", "xgboost"):  # intervals on the test split, over its recordings
        lo, hi = ev["models"][m]["intervals"]["roc_auc"]
        assert lo <= record["metrics"][m]["roc_auc"] <= hi
    adj = record["adjusted_accuracy"]["mlp"]
    assert adj["raw"] == record["metrics"]["mlp"]["accuracy"] and adj["adjusted"] is not None
    page = (out / "report" / "index.html").read_text()
    for png in ("roc.png", "calibration.png", f"confusion_{ev['saved_model']}.png", "shap_features.png",
                "shap_mps_raw.png", "shap_xgboost.png", "history.png"):
        assert (out / "report" / png).stat().st_size > 1000 and png in page
    assert "Adjusted accuracy" in page and "signal only" in page and "indices only" in page
    model = load_model(str(out / "model"))
    assert model.meta["estimator"]["name"] == ev["chosen"]  # the chosen model is the saved model
    assert model.meta["task"]["definition"]["classes"]["urban"]["mids"] == [URBAN]
    p = model.predict_proba(features)
    assert p.shape == (180, 2) and np.allclose(p.sum(axis=1), 1)


@pytest.mark.slow
def test_train_multi_label_streamed_from_s3_without_search(ray_session, s3_endpoint, tmp_path, monkeypatch):
    local = tmp_path / "local-tmp"  # where the run's checkpoints go with a remote output and no --work-dir
    local.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(local))
    fs = fsspec.filesystem("s3")
    fs.mkdir("train-test")
    task = _task_file(tmp_path, "multi_label")
    features = write_features(synthetic_table(150, class_mids=(URBAN, NATURAL, INDOOR), multi_label=True, seed=6),
                              "s3://train-test/extract")
    summary = train(from_dict(TrainConfig, {
        "features": features, "output": "s3://train-test/train", "task": task, "trials": 0, "max_rounds": 3,
        "steps_per_round": 10, "feature_groups": ("indices",), "baselines": ("logreg",), "ablations": False, "shap_samples": 5,
        "memory_gb": 1e-6, "progress": False}))  # a tiny memory budget: the streamed, incremental-PCA path
    assert summary.evaluation["method"] == "split"  # too large to hold: no cross-validation
    # one worker, in the trial's process (two data-parallel Ray Train workers: test_cnn_train's split, MLP and CNN)
    assert "one worker (in the trial's process)" in summary.search["method"] and summary.search["best_val_score"] > 0.8
    assert summary.metrics["mlp"]["map"] > 0.8
    assert fs.exists("train-test/train/report/index.html") and fs.exists("train-test/train/report/confusion_mlp.png")
    model = load_model("s3://train-test/train/model")
    assert model.kind == "multi_label" and model.predict(features).shape == (150, 3)
    assert not list(local.iterdir())  # the local checkpoints are removed once the network is loaded


@pytest.mark.slow
def test_every_baseline_is_scored_on_the_same_folds_and_listed(tmp_path, capsys):
    """``train --baselines logreg,xgboost,forest,svm,knn`` under grouped 3-fold CV, as a user runs it: all six
    models (with the MLP) scored out of fold on one set of folds, each clip once; the console and the report list
    every one; the saved model is one with a portable form."""
    source = write_features(synthetic_features(36, seed=5, signals=("raw",), flip=0.1).table, str(tmp_path / "t"))
    out = tmp_path / "out"
    assert main(["train", "--features", source, "--output", str(out), "--feature-groups", "indices_raw",
                 "--cv-folds", "3", "--baselines", "logreg,xgboost,forest,svm,knn", "--tuning-trials", "1",
                 "--no-ablations", "--shap-samples", "0", "--no-progress"]) == 0
    console = capsys.readouterr().out
    metrics = json.loads((out / "report" / "metrics.json").read_text())
    ev, models = metrics["evaluation"], ["logreg", "xgboost", "forest", "svm", "knn", "mlp"]
    assert set(models) <= set(ev["candidates"]) and set(models) <= set(metrics["models"])
    # the job's folds (their sizes in the run's counts), the same for every model, every clip in one of them
    folds = [(int(name.split()[-1]) - 1, c["clips"]) for name, c in metrics["counts"]["splits"].items()]
    assert len(folds) == 3 and sum(n for _, n in folds) == 36
    for m in models:
        assert [(f["fold"], f["n"]) for f in ev["models"][m]["per_fold"]] == folds, m
        assert metrics["models"][m]["test"]["n"] == 36 and m in ev["scores"]
    page = (out / "report" / "index.html").read_text()
    table = page.split("<h2>Metrics (out-of-fold, all clips)</h2>", 1)[1].split("</table>", 1)[0]
    for m in models:
        assert f"\n  cv {m:8s} accuracy " in console, (m, console)
        assert f"<td class='t'>{m}</td>" in table or f"<td class='t'>{m} (chosen model)</td>" in table, m
    assert ev["saved_model"] in FORMATS and f"saved {ev['saved_model']} refitted on all clips" in console


def test_the_preprocessing_of_a_small_table_runs_on_one_blas_thread(tmp_path, monkeypatch):
    """The job's PCA fit and transform (``model_inputs``) on a table of a few hundred clips: one BLAS thread,
    the threads as they were after (learn.threads). Two are set first: the suite itself runs on one."""
    from threadpoolctl import threadpool_info, threadpool_limits

    import acoustic_env.jobs.train.evaluation as evaluation

    def blas() -> set[int]:
        return {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}

    seen = []
    monkeypatch.setattr(evaluation, "fit_group", lambda *a: (seen.append(blas()), fit_group(*a))[1])
    source = write_features(synthetic_table(60, seed=2), str(tmp_path / "t"))
    cfg = from_dict(TrainConfig, {"features": source, "output": str(tmp_path / "o")})
    features = read_features(source, task=load_task(cfg.task))
    with threadpool_limits(limits=2, user_api="blas"):
        transforms, x = evaluation.model_inputs(cfg, features, np.ones(len(features), dtype=bool))
        assert seen and all(s == {1} for s in seen) and blas() == {2}
    assert len(seen) == len(transforms) and x.shape[0] == 60
