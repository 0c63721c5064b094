"""The split evaluation's ways to train a candidate (``jobs.train.trainers``), in this process on small tables: the
estimators fitted on the training split, and what a network run on Ray gives back (its setup, its weights read
from its checkpoint, its scores, its saved form, the record's line). The runs on Ray themselves are the train
job's tests'."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from acoustic_env import candidates
from acoustic_env.candidates.spec import NETWORK
from acoustic_env.config import TrainConfig, from_dict
from acoustic_env.distributed.tune import CHECKPOINT_FILE, TuningResult, Setup
from acoustic_env.jobs.train import trainers
from acoustic_env.jobs.train.evaluation import model_inputs, preprocessing
from acoustic_env.learn import mlp, spectro
from acoustic_env.learn.augment import Resample
from acoustic_env.learn.balance import Balance
from acoustic_env.learn.fit import Schedule, val_score
from acoustic_env.learn.image_input import IMAGE_COLUMN
from acoustic_env.learn.splits import TEST, TRAIN, VAL
from acoustic_env.learn.tuning import TuningPlan
from acoustic_env.learn.zoo import make_estimator
from test_saved import CFG, TASK, _features, _rare, _recordings


@pytest.fixture
def setup(tmp_path) -> Setup:
    """The job's setup of every network run: 7 rounds, a patience of 3 (as ``--max-rounds``, ``--patience``)."""
    return Setup(TASK.kind, TASK.n_classes, Schedule(max_rounds=7, patience=3), seed=5, workers=1, worker_cpus=1,
                 use_gpu=False, storage=str(tmp_path))


def test_a_network_runs_with_its_spec_its_balance_and_the_jobs_rounds(setup):
    own = trainers.tuning_setup("mlp", setup, Balance("balanced"))
    assert own.model is candidates.get("mlp") and NETWORK not in own.settings
    expected = make_estimator("mlp", TASK.kind, TASK.n_classes, 5, balance=Balance("balanced"), max_rounds=7,
                              patience=3, patience_epochs=None).params
    assert own.settings == {k: v for k, v in expected.items() if k != NETWORK}
    assert (own.settings["max_rounds"], own.settings["patience"], own.settings["patience_epochs"]) == (7, 3, None)
    assert own.settings["class_weight"] == "balanced"
    assert (own.storage, own.seed, own.schedule, own.kind, own.n_classes) == (setup.storage, 5, setup.schedule,
                                                                             TASK.kind, TASK.n_classes)
    # a streamed network keeps its own rounds and patience; a setting it has not is not given to it
    streamed = trainers.scheduled("cnn", setup, Balance(), patience=2, not_a_setting=1)
    cnn = candidates.get("cnn")
    assert streamed.model is cnn and streamed.settings["patience"] == 2 and "not_a_setting" not in streamed.settings
    assert streamed.settings["max_rounds"] == cnn.params["max_rounds"] and NETWORK not in streamed.settings


@pytest.fixture(scope="module")
def split():
    """48 clips of 12 recordings, a recording's clips all in one split: the features, the positions by split."""
    rng, recording, y = _recordings(2)
    features = _features({"indices_raw": y[:, None] + rng.normal(size=(len(y), 4))}, y, recording)
    code = np.select([recording < 8, recording < 10], [TRAIN, VAL], TEST)
    return features, {c: np.flatnonzero(code == c) for c in (TRAIN, VAL, TEST)}


def test_an_estimator_is_fitted_on_the_training_split_and_stopped_and_scored_on_the_others(split):
    features, idx = split
    transforms, x = model_inputs(CFG, features, np.isin(np.arange(len(features)), idx[TRAIN]))
    plan = TuningPlan(2, 2, "accuracy")
    trained = trainers.estimators(CFG, TASK, ["logreg", "xgboost"], features, x, idx, features.groups, plan,
                                  Balance(), None)
    assert list(trained) == ["logreg", "xgboost"]
    prep, raw = preprocessing(CFG, features)
    y = features.y
    for name, got in trained.items():  # xgboost stops early on the validation split, never on the test one
        same = make_estimator(name, TASK.kind, TASK.n_classes, CFG.seed, search=plan, preprocessing=prep).fit(
            raw[idx[TRAIN]], y[idx[TRAIN]], eval_set=(raw[idx[VAL]], y[idx[VAL]]),
            groups=features.groups[idx[TRAIN]])
        np.testing.assert_allclose(got.proba, same.predict_proba(raw[idx[TEST]]), atol=1e-6)
        assert got.val_score == val_score(TASK.kind, y[idx[VAL]], same.predict_proba(raw[idx[VAL]]), "accuracy")
    got = trained["logreg"]
    assert got.params == {"model": "logreg", **got.fitted.params_} and got.name == "logreg"
    search = got.fitted.tuning_
    for fit_on, scored in search.splits:  # its C search on grouped folds of the training split
        assert not set(features.groups[idx[TRAIN]][fit_on]) & set(features.groups[idx[TRAIN]][scored])
    assert got.line == (f"{len(search.trials)} settings by grouped 2-fold CV on the training split ({search.fits} "
                        f"fits, {search.seconds:.0f} s), kept {search.best or 'the defaults'}")
    # its saved form scores the evaluation's inputs as the fitted model scores the raw columns
    np.testing.assert_allclose(got.saved().predict_proba(x), got.fitted.predict_proba(raw), atol=1e-6)
    assert [t.n_components for t in transforms] == [t.n_components for t in got.fitted.transforms_]


@pytest.mark.parametrize("names, balance, resample, multi_label", [
    (["logreg"], Balance("balanced"), None, False), (["logreg", "svm"], Balance(), Resample(20, seed=5), False),
    (["logreg", "svm"], Balance(), None, True)])
def test_an_estimator_of_a_table_not_held_in_memory_is_fitted_as_the_run_asks(names, balance, resample, multi_label):
    """A table too large to hold (no raw columns): each estimator reads the evaluation's inputs, with the run's seed,
    class weights and resampling, for its task; without recordings nothing is tuned by grouped folds."""
    from dataclasses import replace

    task, features = _rare(multi_label)
    cfg = from_dict(TrainConfig, {**CFG.to_dict(), "seed": 3})
    recording = np.array([int(g.removeprefix("rec")) for g in features.groups])
    code = np.select([recording < 8, recording < 10], [TRAIN, VAL], TEST)
    idx = {c: np.flatnonzero(code == c) for c in (TRAIN, VAL, TEST)}
    _, x = model_inputs(cfg, features, code == TRAIN)
    plan, y = TuningPlan(2, 2), features.y
    trained = trainers.estimators(cfg, task, names, replace(features, X=None), x, idx, None, plan,
                                  balance, resample)
    for name, got in trained.items():
        same = make_estimator(name, task.kind, task.n_classes, cfg.seed, search=plan, balance=balance,
                              resample=resample).fit(x[idx[TRAIN]], y[idx[TRAIN]], eval_set=(x[idx[VAL]], y[idx[VAL]]))
        np.testing.assert_allclose(got.proba, same.predict_proba(x[idx[TEST]]), atol=1e-6)
        assert got.proba.shape == (len(idx[TEST]), task.n_classes)
        assert got.val_score == val_score(task.kind, y[idx[VAL]], same.predict_proba(x[idx[VAL]]))
        assert got.line is None and got.fitted.tuning_ is None
        np.testing.assert_allclose(got.saved().predict_proba(x), got.fitted.predict_proba(x), atol=1e-6)


def test_the_tuning_line_says_how_the_network_was_tuned():
    assert trainers.tuning_line(8, 2, "one worker") == ("Optuna TPE (Bayesian) with ASHA early termination, 2 "
                                                        "concurrent trial(s) of one worker")
    assert trainers.tuning_line(0, 2, "one worker") == "no search: default hyper-parameters, one worker"


@pytest.mark.parametrize("metric, multi_label", [(None, False), ("accuracy", False), ("accuracy", True)])
def test_a_tuned_network_comes_back_from_its_checkpoint_with_its_scores_and_saved_form(setup, tmp_path, metric,
                                                                                     multi_label):
    from dataclasses import replace

    task = _rare(multi_label)[0]
    own = trainers.tuning_setup("mlp", replace(setup, kind=task.kind, n_classes=task.n_classes), Balance())
    params = {"depth": 1, "width": 6}
    torch.manual_seed(0)
    architecture = mlp.architecture(5, task.kind, task.n_classes, {**own.model.params[NETWORK], **params})
    best = mlp.MLP(**architecture).eval()
    (tmp_path / "best").mkdir()
    torch.save(best.state_dict(), tmp_path / "best" / CHECKPOINT_FILE)
    found = TuningResult(params, str(tmp_path / "best"), 0.6, [], [])
    rng = np.random.default_rng(0)
    x_val, x_test = rng.normal(size=(6, 5)).astype(np.float32), rng.normal(size=(4, 5)).astype(np.float32)
    y_val = np.array([0, 1, 0, 1, 1, 1])
    y_val = np.column_stack([y_val, 1 - y_val]) if multi_label else y_val
    got = trainers.tuned(task, "mlp", own, found, "the line", x_val, y_val, x_test, TuningPlan(metric=metric))
    expected = mlp.predict_proba(best, x_test, task.kind, task.n_classes)
    np.testing.assert_allclose(got.proba, expected, atol=1e-6)
    assert got.val_score == (0.6 if metric is None else val_score(
        task.kind, y_val, mlp.predict_proba(best, x_val, task.kind, task.n_classes), metric))
    assert (got.name, got.params, got.line, got.found, got.setup) == ("mlp", params, "the line", found, own)
    saved = got.saved()
    assert saved.spec["architecture"] == architecture
    np.testing.assert_allclose(saved.predict_proba(x_test), expected, atol=1e-6)
    np.testing.assert_allclose(mlp.predict_proba(got.network, x_test, task.kind, task.n_classes), expected)


def test_a_streamed_network_is_read_as_its_run_gave_it_back(setup, split):
    features, idx = split
    rows = trainers.split_rows(features, idx)
    for code in (TRAIN, VAL, TEST):
        assert list(rows[code].ids) == list(features.ids[idx[code]])
        np.testing.assert_array_equal(rows[code].y, features.y[idx[code]])
    own = trainers.scheduled("cnn", setup, Balance())
    settings = own.model.params[NETWORK]
    torch.manual_seed(0)
    arch = spectro.architecture(32, TASK.kind, TASK.n_classes, settings)
    net = spectro.SpectroCNN(**{k: v for k, v in arch.items() if k != "network"}).eval()
    proba = np.tile([0.25, 0.75], (3, 1))
    found = TuningResult({}, "", 0.7, [{"rounds": 5}], [])
    got = trainers.from_stream(TASK, "cnn", own, net, (32, 48), found, proba, 1)
    assert got.name == "cnn" and got.proba is proba and got.val_score == 0.7 and got.resampled is False
    assert got.params == {"model": "cnn", **own.model.params}
    assert got.line == ("its images streamed by Ray Data, trained on one worker (in the trial's process), 5 round(s), "
                        "no search")
    assert "2 Ray Train workers" in trainers.from_stream(TASK, "cnn", own, net, (32, 48), found, proba, 2).line
    saved = got.saved()
    assert saved.spec["input"] == {"column": IMAGE_COLUMN, "bands": 32, "frames": 48}
    assert (saved.spec["kind"], saved.spec["classes"], saved.spec["params"]) == (TASK.kind, TASK.n_classes,
                                                                                 own.model.params)
    images = np.random.default_rng(0).normal(size=(2, 32, 48)).astype(np.float32)
    np.testing.assert_allclose(saved.predict_proba(images), mlp.predict_proba(net, images, TASK.kind, TASK.n_classes),
                               atol=1e-6)
