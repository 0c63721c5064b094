"""Class balance (``learn.balance``, ``--class-weight``, ``--balanced-sampler``): a rare class is learnt, not
dropped, by every learner that can weigh classes, and the report says what each did.

The data: a class of 2 % among two common ones, Gaussian blobs that overlap, so an unweighted
model never predicts the rare class (out-of-fold recall 0) and a balanced one finds some of it.
"""

from __future__ import annotations

import functools
import json

import numpy as np
import pyarrow as pa
import pytest
import torch
from torch import nn

from acoustic_env.cli import main
from acoustic_env.config import ConfigError, TrainConfig, from_dict
from acoustic_env.demo.tables import NATURAL, URBAN, synthetic_features, write_features
from acoustic_env.learn import cv
from acoustic_env.learn.balance import Balance, equal_priors, sample_weights
from acoustic_env.learn.fit import Schedule, fit
from acoustic_env.candidates import PARAMS
from acoustic_env.learn.zoo import make_estimator


def _rare_class(n: int = 600, share: float = 0.02, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Three overlapping blobs in 4 dimensions; class 2 holds ``share`` of the clips, the others half the rest."""
    rng = np.random.default_rng(seed)
    y = np.zeros(n, dtype=np.int64)
    y[:round(share * n)] = 2
    y[round(share * n):round(share * n) + (n - round(share * n)) // 2] = 1
    y = rng.permutation(y)
    centres = 0.7 * rng.standard_normal((3, 4))
    return (centres[y] + rng.standard_normal((n, 4))).astype(np.float32), y


@functools.cache  # the unweighted models' figures serve several cases
def _rare_recall(model: str, balance: Balance) -> float:
    """The rare class's out-of-fold recall of ``model`` under 3-fold cross-validation (``learn.cv``), the network
    trained for 4 rounds at most and the forest of 60 trees (``quick_models``)."""
    x, y = _rare_class()
    folds = np.random.default_rng(1).permutation(np.arange(len(y)) % 3)
    proba = cv.out_of_fold(x, y, folds, "single_label", 3, [model], 0, threads=1,
                           balance=balance).proba[model]
    return float(((proba.argmax(axis=1) == 2) & (y == 2)).sum() / (y == 2).sum())


@pytest.fixture
def quick_models(monkeypatch):
    """The zoo's network with 4 rounds at most, its forest of 60 trees: the rare class is learnt (or not) by
    then, in a second."""
    monkeypatch.setitem(PARAMS["mlp"], "max_rounds", 4)
    monkeypatch.setitem(PARAMS["mlp"], "patience", 2)
    monkeypatch.setitem(PARAMS["forest"], "n_estimators", 60)


@pytest.mark.parametrize("model, balance", [("logreg", Balance("balanced")), ("mlp", Balance("balanced")),
                                            ("mlp", Balance(None, sampler=True))])
def test_balancing_raises_the_rare_class_recall_out_of_fold(model, balance, quick_models):
    """Issue 46's done-when: unweighted, the 2 % class is learnt as 'never' (recall 0); balanced class weights
    (logreg, the network) or the network's balanced sampler find a good share of it, out of fold."""
    unweighted, balanced = _rare_recall(model, Balance()), _rare_recall(model, balance)
    assert unweighted == 0.0 and balanced >= 0.4, (unweighted, balanced)


@pytest.mark.parametrize("model", ["xgboost", "svm", "forest", "knn"])
def test_every_other_learner_that_can_weigh_classes_does(model, quick_models):
    """Balanced, the trees (sample weights), the svm (class weights, its Platt-scaled probabilities put on equal
    priors) and the forest predict more of the 2 % class out of fold; knn cannot weigh classes and does as before."""
    unweighted, balanced = _rare_recall(model, Balance()), _rare_recall(model, Balance("balanced"))
    if model == "knn":
        assert balanced == unweighted
    else:
        assert balanced >= unweighted + 0.15, (unweighted, balanced)


def test_the_sampler_draws_rare_rows_as_often_as_common_ones_and_never_a_validation_row():
    """9 clips of class 0 to each of class 1: balanced, the training batches hold both classes alike (each rare
    row drawn about 9 times as often as a common one), from the training rows only; the validation rows
    (marked in their second input) are never drawn. Unbalanced, every training row once per epoch."""
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(180), np.ones(20)].astype(np.int64)
    x = np.c_[np.arange(200), np.zeros(200)].astype(np.float32)  # the first input names the row
    x_val = np.c_[1000 + np.arange(40), np.ones(40)].astype(np.float32)
    y_val = rng.integers(0, 2, 40)
    drawn: dict[bool, list[torch.Tensor]] = {False: [], True: []}
    for sampler in (False, True):
        def spy(xb, yb, generator, sampler=sampler):
            drawn[sampler].append(xb.clone())
            return xb, yb

        torch.manual_seed(0)
        out = fit(nn.Linear(2, 1), {"x_train": x, "y_train": y, "x_val": x_val, "y_val": y_val}, "single_label", 2,
                  {"lr": 0.01, "weight_decay": 0.0, "batch_size": 50}, Schedule(max_rounds=3, patience=3,
                                                                               steps_per_round=40),
                  seed=0, balanced_sampler=sampler, augment=spy, score_train=False)
    epochs = 3 * out["epochs_per_round"]
    for sampler in (False, True):
        rows = torch.cat(drawn[sampler])
        assert len(rows) == epochs * 200 and (rows[:, 1] == 0).all()  # training rows only, as many as unbalanced
        counts = np.bincount(rows[:, 0].long().numpy(), minlength=200)
        if not sampler:
            assert (counts == epochs).all()
        else:
            rare_share = counts[180:].sum() / counts.sum()
            assert 0.45 < rare_share < 0.55, rare_share
            assert counts[180:].mean() > 6 * counts[:180].mean()


def test_the_tuning_trials_and_the_ablations_train_the_network_balanced(monkeypatch, tmp_path):
    """The split evaluation's network paths, run here without a Ray instance (``ray.get`` of the shared data is
    the data): a Ray Tune trial (``distributed.tune``, given the job's ``Setup``) and a feature-group ablation
    hand the balance to the training loop."""
    import ray

    from acoustic_env.distributed import tune
    from acoustic_env.jobs.train.ablation import fit_subset
    from acoustic_env.jobs.train.trainers import scheduled
    from acoustic_env.learn import mlp_estimator
    from acoustic_env.learn.fit import DEFAULT_PARAMS

    seen, loop = [], mlp_estimator.fit

    def spy(*args, **kwargs):
        seen.append((kwargs["class_weight"], kwargs["balanced_sampler"]))
        return loop(*args, **kwargs)

    monkeypatch.setattr(mlp_estimator, "fit", spy)
    monkeypatch.setattr(ray, "get", lambda ref: ref)
    x, y = _rare_class(90, share=0.1)
    data = {"x_train": x[:60], "y_train": y[:60], "x_val": x[60:], "y_val": y[60:]}
    schedule = Schedule(max_rounds=1, patience=1, steps_per_round=1)
    setup = tune.Setup("single_label", 3, schedule, 0, workers=1, worker_cpus=1, use_gpu=False,
                       storage=str(tmp_path))
    sampled = scheduled("mlp", setup, Balance("balanced", sampler=True), max_rounds=1, patience=1,
                        patience_epochs=None)
    tune._fit({"params": DEFAULT_PARAMS, "data": [data]}, sampled, lambda metrics, checkpoint: None, "cpu")
    fit_subset(data, scheduled("mlp", setup, Balance("balanced"), max_rounds=1, patience=1), DEFAULT_PARAMS)
    assert seen == [(None, True), ("balanced", False)]


def test_multi_label_columns_are_balanced_each_on_its_own():
    """A label on 4 % of the clips: balanced, logistic regression and the svm (its Platt-scaled probabilities put
    on equal priors column by column) give it about even odds on average instead of its rate."""
    rng = np.random.default_rng(0)
    y = np.c_[rng.random(400) < 0.5, rng.random(400) < 0.04, rng.random(400) < 0.3].astype(np.int64)
    x = y @ rng.standard_normal((3, 5)) + rng.standard_normal((400, 5))
    for name in ("logreg", "svm"):
        rare = [make_estimator(name, "multi_label", 3, balance=b).fit(x[:300], y[:300]).predict_proba(x[300:])[:, 1]
                for b in (Balance(), Balance("balanced"))]
        assert rare[0].mean() < 0.05 and 0.3 < rare[1].mean() < 0.6, (name, rare[0].mean(), rare[1].mean())
    np.testing.assert_allclose(equal_priors(np.array([[0.1, 0.5]]), np.array([0.1, 0.2]), True), [[0.5, 0.8]])


def test_xgboost_takes_balanced_weights_per_clip_and_knn_none():
    """Single-label: each clip its class's n / (K x count); a label matrix: the mean over its columns. knn has no
    class_weight to set, and says so rather than passing silently."""
    np.testing.assert_allclose(sample_weights("balanced", np.array([0, 0, 0, 1])), [2 / 3] * 3 + [2.0])
    matrix = np.array([[1, 0], [0, 0], [0, 0], [0, 1]])
    np.testing.assert_allclose(sample_weights("balanced", matrix), [4 / 3, 2 / 3, 2 / 3, 4 / 3])
    assert sample_weights(None, matrix) is None
    balanced = Balance("balanced")
    assert balanced.overrides("knn") == {} and balanced.describe("knn", "single_label").startswith("none: knn cannot")
    assert balanced.overrides("svm") == {"class_weight": "balanced"}
    assert Balance("balanced", sampler=True).overrides("mlp") == {"class_weight": None, "balanced_sampler": True}


def _rare_table(tmp_path) -> str:
    """A feature table of the urban_natural task where natural clips are 6 of 66."""
    synth = synthetic_features(120, (URBAN, NATURAL), seed=2, signals=("raw",), separation=0.6)
    natural = np.flatnonzero(synth.true == 1)
    keep = np.ones(120, dtype=bool)
    keep[natural[6:]] = False
    return write_features(synth.table.filter(pa.array(keep)), str(tmp_path / "features"))


def test_train_balances_every_model_and_reports_recall_per_class(tmp_path, monkeypatch):
    """``train --class-weight balanced`` under cross-validation: every fold model of every candidate is fitted
    balanced (knn cannot be, and the report says so), so is the saved one; metrics.json and the page say what
    each model did and show each model's out-of-fold recall per class; model.json records it."""
    fitted = []
    made = cv.make_estimator

    def spy(name, *args, **kwargs):
        est = made(name, *args, **kwargs)
        fitted.append((name, est.params.get("class_weight"), "search" in kwargs))  # a fold model, or an inner choice's
        return est

    monkeypatch.setattr(cv, "make_estimator", spy)
    source = _rare_table(tmp_path)
    out = tmp_path / "out"
    assert main(["train", "--features", source, "--output", str(out), "--feature-groups", "indices_raw",
                 "--cv-folds", "3", "--baselines", "logreg,knn", "--tuning-trials", "1", "--class-weight", "balanced",
                 "--saved-model", "logreg", "--no-ablations", "--shap-samples", "0", "--no-progress"]) == 0
    # every model, the inner choices' (the PCA count rule) too
    assert sorted({f[:2] for f in fitted}) == [("knn", None), ("logreg", "balanced"), ("mlp", "balanced")]
    assert sum(f[2] for f in fitted) == 9  # 3 models x 3 folds
    metrics = json.loads((out / "report" / "metrics.json").read_text())
    said = metrics["balance"]["models"]
    assert metrics["balance"]["class_weight"] == "balanced" and not metrics["balance"]["balanced_sampler"]
    assert said["logreg"].startswith("class weights") and said["mlp"].startswith("loss weights")
    assert said["knn"].startswith("none: knn cannot")
    assert metrics["models"]["logreg"]["test"]["per_class"]["natural"]["support"] == 6
    page = (out / "report" / "index.html").read_text()
    section = page.split("<h2>Class balance</h2>", 1)[1].split("<h2>", 1)[0]
    assert "--class-weight balanced" in section and "Recall per class (out-of-fold, all clips)" in section
    for m in ("logreg", "knn", "mlp", "average"):
        assert f"<th>{m}</th>" in section
    recall = metrics["models"]["logreg"]["test"]["per_class"]["natural"]["recall"]
    assert f"<td class='t'>natural</td><td>6</td><td>{recall:.3f}</td>" in section
    model = json.loads((out / "model" / "model.json").read_text())
    assert model["class_balance"] == {"class_weight": "balanced", "balanced_sampler": False,
                                      "saved_model": said["logreg"]}
    assert model["estimator"]["params"]["class_weight"] == "balanced"  # the final fit on every clip too


def test_bad_class_balance_options_are_one_line(tmp_path, capsys):
    """A misspelt value names class_weight (a multi-label task takes the sampler: tests/test_multilabel_parity.py)."""
    with pytest.raises(ConfigError) as info:
        from_dict(TrainConfig, {"features": "f", "output": "o", "class_weight": "balance"})
    assert str(info.value) == "class_weight: must be one of ['none', 'balanced'], got 'balance'"
    source = _rare_table(tmp_path)
    assert main(["train", "--features", source, "--output", str(tmp_path / "o"), "--class-weight", "yes"]) == 2
    assert capsys.readouterr().err.strip() == ("acoustic-env: error: class_weight: must be one of "
                                               "['none', 'balanced'], got 'yes'")
