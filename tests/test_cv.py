"""Cross-validation as the train job's evaluation (``learn.cv``, ``train`` with ``cv_folds``).

Leakage (no group on both sides of any fold, preprocessing refitted per fold),
given folds honoured, metrics pooled out of fold, intervals that respect
groups, the model chosen by its cross-validated score, and the chosen model
saved exactly in the artifact's network.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from acoustic_env.config import ConfigError, TrainConfig, from_dict
from acoustic_env.demo.tables import synthetic_table, write_features
from acoustic_env.jobs.train.job import summary_lines, train
from acoustic_env.learn.calibrate import across_folds
from acoustic_env.learn.cv import AVERAGE, CVResult, choose, cross_validate, describe, given_folds
from acoustic_env.learn.fit import val_score
from acoustic_env.learn.metrics import evaluate, intervals
from acoustic_env.learn.splits import assign_folds, leaks
from acoustic_env.learn.zoo import make_estimator
from acoustic_env.table import read_features


def _blobs(n: int, d: int = 6, seed: int = 0, rows_per_group: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n) % 2)
    x = rng.standard_normal((n, d)) + 1.2 * y[:, None] * (np.arange(d) < 2)
    groups = np.array([f"rec{i // rows_per_group}" for i in range(n)], dtype=object)
    return x.astype(np.float32), y, groups


def _fitted_rows(monkeypatch: pytest.MonkeyPatch, x: np.ndarray) -> list[np.ndarray]:
    """Each outer fold model's training rows, as a mask over ``x``'s rows (found by value: every row differs)."""
    from acoustic_env.learn import cv as cv_module

    seen: list[np.ndarray] = []
    real = cv_module.make_estimator

    def recorded(*a, **kw):
        est = real(*a, **kw)
        fit = est.fit

        def fit_and_record(X, *args, **kwargs):
            seen.append((x[:, None, :] == X[None, :, :]).all(axis=2).any(axis=1))
            return fit(X, *args, **kwargs)

        est.fit = fit_and_record
        return est

    monkeypatch.setattr(cv_module, "make_estimator", recorded)
    return seen


def test_folds_never_split_a_group_and_every_fit_excludes_the_held_out_groups(monkeypatch):
    x, y, groups = _blobs(120)
    folds = assign_folds(y, groups, ("a", "b"), 5, seed=3, field="cv_folds")
    assert leaks(groups, folds) == set() and sorted(np.unique(folds)) == [0, 1, 2, 3, 4]
    seen = _fitted_rows(monkeypatch, x)
    cross_validate(x, y, folds, "single_label", 2, ["logreg"])
    assert len(seen) == 5
    for train_rows in seen:
        assert not set(groups[train_rows]) & set(groups[~train_rows])  # no group on both sides
        held = np.unique(folds[~train_rows])
        assert len(held) == 1  # exactly one fold held out, fitted on all the others


def test_no_search_scores_a_trial_on_a_clip_of_the_fold_that_evaluates_it(monkeypatch):
    """Nested: logistic regression's C search runs grouped CV inside each outer training set, never beyond it."""
    from acoustic_env.learn import cv as cv_module

    x, y, groups = _blobs(120)
    folds = assign_folds(y, groups, ("a", "b"), 5, seed=3, field="cv_folds")
    fitted = []
    masks = _fitted_rows(monkeypatch, x)
    real = cv_module.make_estimator
    monkeypatch.setattr(cv_module, "make_estimator", lambda *a, **kw: fitted.append(real(*a, **kw)) or fitted[-1])
    cross_validate(x, y, folds, "single_label", 2, ["logreg"], groups=groups)
    train_sets = [np.flatnonzero(m) for m in masks]
    assert len(fitted) == len(train_sets) == 5
    for est, rows in zip(fitted, train_sets):
        evaluating = set(np.unique(folds)) - set(folds[rows])
        assert len(evaluating) == 1 and est.model_[-1].cv is est.tuning_.splits  # the search used these folds
        assert len(est.tuning_.splits) == 3
        for fit_on, scored in est.tuning_.splits:
            fit_on, scored = rows[fit_on], rows[scored]  # back to the table's rows
            assert not set(folds[scored]) & evaluating and not set(folds[fit_on]) & evaluating
            assert not set(groups[scored]) & set(groups[fit_on])  # grouped inside too
            assert sorted([*fit_on, *scored]) == sorted(rows)


def test_metrics_are_pooled_out_of_fold_not_in_sample():
    """Labels independent of 40 noise features: in-sample fits look good, out-of-fold must not."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((150, 40)).astype(np.float32)
    y = rng.integers(0, 2, 150)
    groups = np.array([f"c{i}" for i in range(150)], dtype=object)
    folds = assign_folds(y, groups, ("a", "b"), 5, seed=0)
    result = cross_validate(x, y, folds, "single_label", 2, ["logreg", "xgboost"])
    in_sample = make_estimator("xgboost", "single_label", 2).fit(x, y).predict_proba(x)
    assert evaluate("single_label", ["a", "b"], y, in_sample)["roc_auc"] > 0.95
    for name in ("logreg", "xgboost", AVERAGE):
        assert abs(evaluate("single_label", ["a", "b"], y, result.proba[name])["roc_auc"] - 0.5) < 0.15
    # each fold's rows come from a model fitted without them
    k = 2
    manual = make_estimator("logreg", "single_label", 2).fit(x[folds != k], y[folds != k]).predict_proba(x[folds == k])
    np.testing.assert_allclose(result.proba["logreg"][folds == k], manual, rtol=1e-6, atol=1e-9)


def test_model_choice_follows_the_cross_validated_score():
    """An XOR target: trees can learn it, a linear model cannot; CV must see that and choose trees."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((200, 4)).astype(np.float32)
    y = ((x[:, 0] > 0) ^ (x[:, 1] > 0)).astype(int)
    groups = np.array([f"c{i}" for i in range(200)], dtype=object)
    folds = assign_folds(y, groups, ("a", "b"), 4, seed=0)
    result = cross_validate(x, y, folds, "single_label", 2, ["logreg", "xgboost"])
    assert result.scores["xgboost"] > result.scores["logreg"] + 0.2
    assert result.chosen == result.best == "xgboost"  # trees are saved in XGBoost's own format
    tie = {"logreg": np.tile([0.4, 0.6], (4, 1)), "mlp": np.tile([0.4, 0.6], (4, 1))}
    assert choose("single_label", np.array([0, 1, 0, 1]), tie)[0] == "logreg"  # ties: the simpler model
    # the average cannot be saved: it is reported as the best, never silently made the chosen model
    y4 = np.array([0, 1, 0, 1])
    better = {"logreg": np.tile([0.5, 0.5], (4, 1)), AVERAGE: np.stack([1 - y4 * 0.9, y4 * 0.9], axis=1)}
    chosen, best, scores = choose("single_label", y4, better)
    assert (chosen, best) == ("logreg", AVERAGE)
    text = describe(4, 2, None, False, CVResult(np.array([0, 1, 0, 1]), better, scores, chosen, best), chosen)
    assert "average scored higher (1.000 against 0.500) but has no pickle-free saved form" in text
    for name in ("forest", "svm", "knn", "elasticnet"):  # every baseline that wins is the chosen model
        assert choose("single_label", y4, {"logreg": better["logreg"], name: better[AVERAGE]})[:2] == (name, name)
    with pytest.raises(ConfigError, match="baselines: none of the models compared"):
        choose("single_label", y4, {AVERAGE: better[AVERAGE]})
    # of two vector models the average has a saved form (its members): the chosen model when it is the best
    members = {"logreg": better["logreg"], "xgboost": better["logreg"], AVERAGE: better[AVERAGE]}
    assert choose("single_label", y4, members)[:2] == (AVERAGE, AVERAGE)
    # --select-by: every model is scored by that metric and the choice follows it (ranked perfectly but all above
    # 0.5, logreg has the ROC AUC; xgboost the accuracy)
    ranked, thresholded = np.array([0.6, 0.9, 0.55, 0.95]), np.array([0.4, 0.6, 0.7, 0.8])
    split = {"logreg": np.stack([1 - ranked, ranked], 1), "xgboost": np.stack([1 - thresholded, thresholded], 1)}
    assert choose("single_label", y4, split) == ("logreg", "logreg", {"logreg": 1.0, "xgboost": 0.75})
    assert choose("single_label", y4, split, "accuracy") == ("xgboost", "xgboost", {"logreg": 0.5, "xgboost": 0.75})
    by_accuracy = CVResult(y4, split, {"logreg": 0.5, "xgboost": 0.75}, "xgboost", "xgboost")
    assert "has the best pooled score (accuracy, --select-by) of" in describe(4, 2, None, False, by_accuracy,
                                                                               "xgboost", "accuracy")


def test_group_bootstrap_is_wider_than_a_clip_bootstrap_when_groups_repeat_clips():
    rng = np.random.default_rng(3)
    base_y = rng.integers(0, 2, 30)
    base_p = np.clip(0.5 + (base_y - 0.5) * 0.3 + rng.normal(0, 0.3, 30), 0.01, 0.99)
    y, p = np.repeat(base_y, 5), np.repeat(base_p, 5)  # each recording gives five near-identical clips
    proba = np.stack([1 - p, p], axis=1)
    by_group = intervals("single_label", y, proba, np.repeat(np.arange(30), 5), replicates=300)
    by_clip = intervals("single_label", y, proba, np.arange(150), replicates=300)
    width = lambda iv: iv[1] - iv[0]  # noqa: E731
    assert width(by_group["roc_auc"]) > 1.5 * width(by_clip["roc_auc"])
    assert by_group["accuracy"][0] <= float(((p > 0.5) == y).mean()) <= by_group["accuracy"][1]
    assert set(by_group) == {"roc_auc", "accuracy", "macro_f1", "accuracy_wilson"}


def _table_with_folds(tmp_path, n: int = 60, folds: int = 3) -> tuple[str, list[int]]:
    table = synthetic_table(n, seed=5, rows_per_group=2, signals=("raw",))
    published = [i % folds + 1 for i in range(n)]
    table = table.append_column("fold", pa.array(published, pa.int64()))
    return write_features(table, str(tmp_path / "features")), published


def test_given_folds_are_read_exactly_and_bad_columns_end_in_one_line(tmp_path):
    source, published = _table_with_folds(tmp_path, folds=10)
    features = read_features(source, task="urban_natural", feature_groups=["indices_raw"])
    folds, names = given_folds(features, "fold")
    assert names == [str(k) for k in range(1, 11)]  # numeric order: fold 10 after fold 9, not after fold 1
    want = {f"clip{i:07d}": f - 1 for i, f in enumerate(published)}
    assert folds.tolist() == [want[c] for c in features.ids]
    with pytest.raises(ConfigError, match=r"^folds_column: 'split' is not a column of .*\(columns: clip_id, uri"):
        given_folds(features, "split")
    with pytest.raises(ConfigError, match="folds_column: cannot be combined with test_list"):
        from_dict(TrainConfig, {"features": source, "output": str(tmp_path / "o"), "folds_column": "fold",
                                "test_list": str(tmp_path / "t.txt")})
    with pytest.raises(ConfigError, match=r"cv_folds: must be 0 \(no cross-validation\) or >= 2, got 1"):
        from_dict(TrainConfig, {"features": source, "output": str(tmp_path / "o"), "cv_folds": 1})


def test_the_ablations_cross_validate_logistic_regression_on_each_subset_of_the_groups(tmp_path):
    """Under cross-validation with its probability maps, the ablations run logistic regression on every subset of
    the groups, each with its own preprocessing of that subset (the raw columns of every group, not the maps'
    probabilities that share a name with them in the job)."""
    import json

    source, _ = _table_with_folds(tmp_path)
    cfg = from_dict(TrainConfig, {"features": source, "output": str(tmp_path / "out"), "folds_column": "fold",
                                  "feature_groups": ["indices_raw", "spectral_raw"], "baselines": ["logreg"],
                                  "shap_samples": 0, "tuning_trials": 1, "max_rounds": 3})
    summary = train(cfg)
    ablations = json.loads((tmp_path / "out" / "report" / "metrics.json").read_text())["ablations"]
    subsets = {a["name"]: a["groups"] for a in ablations if a["name"].startswith("logreg, ")}
    assert sorted(map(tuple, subsets.values())) == [("indices_raw",), ("spectral_raw",)]
    assert all(0 <= a["test"]["roc_auc"] <= 1 for a in ablations) and summary.evaluation["calibration"]


def test_train_cross_validates_over_given_folds_and_saves_the_chosen_model(tmp_path):
    """End to end: published folds, pooled figures with intervals, per-fold figures, the artifact loads."""
    import acoustic_env as ae

    source, published = _table_with_folds(tmp_path)
    cfg = from_dict(TrainConfig, {"features": source, "output": str(tmp_path / "out"), "folds_column": "fold",
                                  "feature_groups": ["indices_raw"], "baselines": ["logreg"], "ablations": False,
                                  "shap_samples": 0, "trials": 4, "tuning_trials": 1})
    summary = train(cfg)
    ev = summary.evaluation
    assert ev["method"] == "cross_validation" and ev["folds"] == 3 and ev["folds_column"] == "fold"
    assert set(ev["candidates"]) == {"logreg", "mlp", AVERAGE}
    assert ev["chosen"] == max(ev["scores"], key=ev["scores"].get)
    assert ev["saved_model"] == ev["chosen"]
    assert {s: c["clips"] for s, c in summary.counts["splits"].items()} == {"fold 1": 20, "fold 2": 20, "fold 3": 20}
    for name, m in ev["models"].items():
        assert [f["n"] for f in m["per_fold"]] == [20, 20, 20]
        assert summary.metrics[name]["n"] == 60  # pooled: every clip once
        lo, hi = m["intervals"]["roc_auc"]
        assert lo <= summary.metrics[name]["roc_auc"] <= hi
    assert "3-fold cross-validation over all 60 clips (the 3 folds of column 'fold')" in ev["description"]
    search = summary.search  # the saved model's own C search on all clips, its cost in the note
    if ev["saved_model"] == "logreg":
        assert len(search["trials"]) == 7 and sum(t["chosen"] for t in search["trials"]) == 1
    assert "logreg C over 7 values x 2 inner folds in each of 3 outer folds (42 inner fits" in search["method"]
    assert "mlp at fixed hyper-parameters" in search["method"]  # tuning_trials=1: the defaults
    model = ae.load_model(summary.model)
    assert model.meta["evaluation"]["saved_model"] == model.meta["estimator"]["name"] == ev["chosen"]
    p = model.predict_proba(source)
    assert p.shape == (60, 2) and np.allclose(p.sum(axis=1), 1)
    text = "\n".join(summary_lines(summary))
    assert "3-fold cross-validation over column fold" in text and "cv logreg" in text and "[" in text
    # each mapped model's ECE beside its floor (a calibrated model's as sharp, on these clips) and before its map
    for name in ("logreg", "mlp"):
        m = summary.metrics[name]
        assert 0 < m["ece_floor"] < 0.2
        assert f"{name} {m['ece']:.3f} (floor {m['ece_floor']:.3f}, before {m['ece_before']:.3f}) [" in text


class _Recorded:
    """A stand-in fold model: remembers what it was fitted on and asked about; its probability is the input's first
    column, and logistic regression's stand-in reports a search per fit (the others none)."""

    def __init__(self, name: str, log: list[dict], column: int = 0) -> None:
        self.entry = {"model": name}
        log.append(self.entry)
        self.tuning_ = f"{name} search {len(log)}" if name == "logreg" else None
        self.transforms_ = None  # no preprocessing fitted: the stand-in reads its column as it is
        self.column = column

    def fit(self, x, y, groups=None, defaults_score=None):
        assert defaults_score is None  # no feature-set choice here, so no score of the defaults to pass on
        self.entry.update(fit_x=x[:, 0].tolist(), fit_y=y.tolist(), fit_groups=None if groups is None else list(groups))
        return self

    def predict_proba(self, x):
        self.entry["scored_x"] = x[:, 0].tolist()
        return np.stack([1 - x[:, 0], x[:, 0]], axis=1)


def test_every_fold_model_gets_the_runs_options_and_only_the_other_folds(monkeypatch):
    """The seed, threads, search plan and balance a user set reach each fold's model; each model (the CNN on its own
    inputs) is fitted on the other folds' rows, labels and groups and scores the held-out rows; the average is the
    row-wise mean of the candidates; every fold's search is kept."""
    from acoustic_env.learn import cv as cv_module
    from acoustic_env.learn.balance import Balance
    from acoustic_env.learn.tuning import TuningPlan

    log, calls = [], []

    def fake(name, kind, n_classes, seed, threads, search, balance, calibrate=False, resample=None,
             preprocessing=None):
        calls.append((name, kind, n_classes, seed, threads, search, balance, calibrate, resample, preprocessing))
        return _Recorded(name, log)

    monkeypatch.setattr(cv_module, "make_estimator", fake)
    y = np.array([0, 1] * 6)
    folds = np.repeat([0, 1, 2], 4)
    groups = np.array([f"g{i // 2}" for i in range(12)], dtype=object)
    x = ((np.arange(12) + 0.5) / 12)[:, None].repeat(2, axis=1)
    images = x ** 2
    plan, balance = TuningPlan(trials=3, inner_folds=2), Balance(class_weight="balanced")
    result = cross_validate(x, y, folds, "single_label", 2, ["logreg", "cnn"], seed=7, groups=groups,
                            search=plan, threads=3, balance=balance, inputs={"cnn": images})
    assert calls == [(m, "single_label", 2, 7, 3, plan, balance, False, None, None) for _ in range(3)
                     for m in ("logreg", "cnn")]
    for k, entry in zip(np.repeat([0, 1, 2], 2), log):
        inputs = images if entry["model"] == "cnn" else x
        assert entry["fit_x"] == inputs[folds != k, 0].tolist() and entry["fit_y"] == y[folds != k].tolist()
        assert entry["fit_groups"] == list(groups[folds != k]) and entry["scored_x"] == inputs[folds == k, 0].tolist()
    np.testing.assert_array_equal(result.proba["logreg"][:, 1], x[:, 0])
    np.testing.assert_array_equal(result.proba["cnn"][:, 1], images[:, 0])
    np.testing.assert_allclose(result.proba[AVERAGE][:, 1], (x[:, 0] + images[:, 0]) / 2)
    assert result.proba[AVERAGE].shape == (12, 2) and result.folds is folds
    assert result.searches == {"logreg": ["logreg search 1", "logreg search 3", "logreg search 5"], "cnn": []}
    one = cross_validate(x, y, folds, "single_label", 2, ["logreg"])
    assert set(one.proba) == {"logreg"} and one.chosen == one.best == "logreg"  # no average of a single model
    assert log[-1]["fit_groups"] is None and calls[-1][3:5] == (0, None)  # ungrouped search; seed 0, every core
    labels = np.stack([y, 1 - y], axis=1)  # multi-label: models are chosen by mAP, not ROC AUC
    multi = cross_validate(x, labels, folds, "multi_label", 2, ["logreg"])
    assert multi.scores == {"logreg": val_score("multi_label", labels, multi.proba["logreg"])}


def test_report_gives_pooled_and_per_fold_figures_with_seeded_intervals():
    """Per model: the pooled figures of every clip, the group-bootstrap intervals at the run's seed, one headline per
    fold (numbered as the folds are, with its clip count) and the model's score."""
    from acoustic_env.learn.cv import report
    from acoustic_env.learn.metrics import headline

    rng = np.random.default_rng(4)
    y = np.array([0, 1] * 12)
    folds = np.repeat([0, 1, 2], 8)
    units = np.arange(24) // 2
    p1 = np.clip(0.5 + (y - 0.5) * 0.4 + rng.normal(0, 0.3, 24), 0.01, 0.99)
    proba = {"logreg": np.stack([1 - p1, p1], axis=1), "knn": np.tile([0.3, 0.7], (24, 1))}
    result = CVResult(folds, proba, {"logreg": 0.8, "knn": 0.5}, "logreg", "logreg")
    out = report(result, "single_label", ["a", "b"], y, units, seed=5)
    assert list(out) == ["logreg", "knn"]
    for m, p in proba.items():
        assert set(out[m]) == {"pooled", "intervals", "per_fold", "score"} and out[m]["score"] == result.scores[m]
        assert out[m]["pooled"] == evaluate("single_label", ["a", "b"], y, p)
        assert out[m]["intervals"] == intervals("single_label", y, p, units, 5)
        assert out[m]["per_fold"] == [{"fold": k, "n": 8, **headline("single_label", y[folds == k], p[folds == k])}
                                      for k in range(3)]
    labels = np.stack([y, 1 - y], axis=1)
    multi = report(CVResult(folds, {"mlp": proba["logreg"]}, {"mlp": 0.8}, "mlp", "mlp"), "multi_label", ["a", "b"],
                   labels, units, seed=5)["mlp"]
    assert multi["intervals"] == intervals("multi_label", labels, proba["logreg"], units, 5)
    assert multi["per_fold"][1] == {"fold": 1, "n": 8, **headline("multi_label", labels[8:16], proba["logreg"][8:16])}


def test_describe_says_exactly_how_the_figures_were_obtained():
    """The paragraph the report and the run record show: the folds (given, grouped or plain stratified), the
    candidates, the CNN's own inputs, the model passed over for having no saved form, a saved model asked for."""
    from acoustic_env.learn.metrics import BOOTSTRAP_REPLICATES, INTERVAL_NOTE

    p = np.zeros((8, 2))
    note = INTERVAL_NOTE.format(n=BOOTSTRAP_REPLICATES)
    passed = CVResult(np.arange(8) % 4, {"logreg": p, "cnn": p, AVERAGE: p},
                      {"logreg": 0.8766, "cnn": 0.85, AVERAGE: 0.9134}, "logreg", AVERAGE)
    assert describe(8, 4, None, True, passed, "cnn") == (
        "4-fold cross-validation over all 8 clips (4 stratified folds that keep every group (source recording) in one "
        "fold). For each fold the preprocessing (standardise, PCA per feature group) and each model (logreg, cnn) "
        "were fitted on the other folds only and scored the held-out fold, the preprocessing refitted inside every "
        "inner fit of each choice made on those folds (cnn: on each clip's log-mel image, "
        "augmented in training only, its input scaling fitted and its early stopping judged on the training folds "
        f"only); the figures pool these out-of-fold predictions (every clip scored once). {note} The chosen "
        "model, logreg, has the best pooled score (ROC AUC; mAP for multi-label tasks) of the models that can be "
        "saved. average scored higher (0.913 against 0.877) but has no pickle-free saved form, so it is not the "
        "chosen model. The saved model is cnn (asked for with saved_model, not the chosen model), refitted on "
        "all 8 clips: it has no held-out figure of its own; the cross-validated figures estimate how it does on new "
        "recordings.")
    plain = CVResult(np.arange(8) % 4, {"logreg": p}, {"logreg": 0.8766}, "logreg", "logreg")
    tail = (f"and each model (logreg) were fitted on the other folds only and scored the held-out fold, the "
            f"preprocessing refitted inside every inner fit of each choice made on those folds; the figures "
            f"pool these out-of-fold predictions (every clip scored once). {note} The chosen model, logreg, has "
            f"the best pooled score (ROC AUC; mAP for multi-label tasks) of the models that can be saved. The saved "
            f"model is logreg, refitted on all 8 clips: it has no held-out figure of its own;")
    given = describe(8, 4, "fold", True, plain, "logreg")
    assert given.startswith("4-fold cross-validation over all 8 clips (the 4 folds of column 'fold'). ")
    assert tail in given
    assert describe(8, 4, None, False, plain, "logreg").startswith(
        "4-fold cross-validation over all 8 clips (4 stratified folds). For each fold the preprocessing")


def test_given_folds_name_missing_values_and_too_few_folds_and_ignore_stray_spaces(tmp_path):
    """A blank or absent fold value is named with the count and a first clip; one fold is refused, two suffice; word
    folds are stripped and sorted, so " train" and "train" are one fold."""
    table = synthetic_table(8, seed=5, rows_per_group=2, signals=("raw",))
    values = {"blank": [None, "a", "  ", "b", "a", "b", "a", "b"], "one": ["a"] * 8,
              "words": [" train", "val", "train ", "test", "val", "test", "train", "val"], "two": ["x", "y"] * 4}
    for name, column in values.items():
        table = table.append_column(name, pa.array(column, pa.string()))
    features = read_features(write_features(table, str(tmp_path / "f")), task="urban_natural",
                             feature_groups=["indices_raw"])
    ids = list(features.ids)
    with pytest.raises(ConfigError, match=rf"^folds_column: 2 clip\(s\) have no 'blank' value, e.g. {ids[0]}$"):
        given_folds(features, "blank")
    with pytest.raises(ConfigError, match=r"^folds_column: 'one' must hold at least 2 distinct folds, got \['a'\]$"):
        given_folds(features, "one")
    folds, names = given_folds(features, "words")
    assert names == ["test", "train", "val"] and folds.dtype == np.int64
    want = {f"clip{i:07d}": names.index(v.strip()) for i, v in enumerate(values["words"])}
    assert folds.tolist() == [want[c] for c in ids]
    two, names2 = given_folds(features, "two")
    assert names2 == ["x", "y"] and sorted(set(two.tolist())) == [0, 1]


def test_best_of_breaks_ties_by_simplicity_whatever_the_order_and_never_rounds_real_differences():
    """A tie (to 12 digits) goes to the simpler model however the scores are listed, a model outside ``ORDER``
    after every listed one; a small real difference (0.70 against 0.90, 0.5 against 0.5004) decides."""
    from acoustic_env.learn.cv import best_of

    assert best_of({"mlp": 0.8, "forest": 0.8, "logreg": 0.8 + 1e-14}) == "logreg"
    assert best_of({"unlisted": 0.8, "cnn": 0.8}) == best_of({"cnn": 0.8, "unlisted": 0.8}) == "cnn"
    assert best_of({"logreg": 0.7, "xgboost": 0.9}) == "xgboost"
    assert best_of({"logreg": 0.5, "knn": 0.5004}) == "knn"
    with pytest.raises(ConfigError, match=r"^baselines: none of the models compared \(average, ensemble\) can be "
                                          r"saved; include one of logreg, elasticnet, knn, svm, forest, xgboost, "
                                          r"mlp, cnn$"):
        choose("single_label", np.array([0, 1]), {AVERAGE: np.eye(2), "ensemble": np.eye(2)})


class _Mapped(_Recorded):
    """A calibrated stand-in: its mapped probability is the input's first column, its own (raw) the square of it; it
    names its map (Platt's when fold 0 is held out; none on the other folds, as when no map lowered the inner log
    loss) and the maps' losses."""

    def __init__(self, name: str, log: list[dict], calibrate: bool, column: int = 0) -> None:
        super().__init__(name, log, column)
        self.calibrate = calibrate

    def fit(self, x, y, groups=None, defaults_score=None):
        self.entry.update(fit_x=x[:, self.column].tolist(), fit_y=y.tolist(),
                          fit_groups=None if groups is None else list(groups), defaults_score=defaults_score)
        fold_0_held_out = x[0, 0] > 0.2  # fold 0 holds the lowest rows: without them the first training row is higher
        self.calibration_ = _Map("platt") if fold_0_held_out else None
        self.calibration_losses_ = {"none": 0.6, "platt": 0.5, "isotonic": 0.55}
        return self

    def predict_proba(self, x, calibrated=True):
        assert calibrated is True or calibrated is False
        if calibrated:
            self.entry["scored_x"] = x[:, self.column].tolist()
        p = x[:, self.column] if calibrated else x[:, self.column] ** 2
        return np.stack([1 - p, p], axis=1)


class _Map:
    def __init__(self, method: str) -> None:
        self.method = method


def test_each_fold_model_chooses_its_set_and_its_map_on_the_training_folds_and_keeps_the_raw_probabilities(
        monkeypatch):
    """With feature sets, each vector model chooses its set from the training folds' raw rows, each set's model built
    with that set's preprocessing inside, with the run's seed, inner folds, metric, balance and resampling; its fold
    model is fitted with the chosen set's preprocessing (told the defaults' score the choice found) on the training
    rows as they are and scores the held-out rows; the model with its own inputs (the CNN) chooses none. With
    calibration, each calibrated model's probabilities are its map's, its own are kept beside them, and each fold's
    map (none when none helped) is recorded."""
    from acoustic_env.learn import cv as cv_module
    from acoustic_env.learn import feature_sets as feature_sets_module
    from acoustic_env.learn.augment import Resample
    from acoustic_env.learn.balance import Balance
    from acoustic_env.learn.preprocess import Preprocessing, Slot
    from acoustic_env.learn.tuning import TuningPlan

    log, calls, choices = [], [], []

    def fake(name, kind, n_classes, seed, threads, search, balance=Balance(), calibrate=False, resample=None,
             preprocessing=None, rows=None):
        assert (kind, n_classes) == ("single_label", 2)
        groups = None if preprocessing is None else preprocessing.groups
        calls.append((name, seed, threads, search, balance, calibrate, resample, groups, rows))
        return _Mapped(name, log, calibrate, 0 if preprocessing is None else preprocessing.slots[-1].start)

    def choose(build, sets, x, y, groups, n_folds, seed, kind, metric):
        built = build(sets["loud"])  # the defaults of this model on one set, as choose_set scores them
        fold = len(choices)
        choices.append({"sets": sets, "x": x.tolist(), "y": y.tolist(), "groups": list(groups), "n_folds": n_folds,
                        "seed": seed, "kind": kind, "metric": metric, "built": built.entry["model"]})
        name = ("loud", "quiet")[fold % 2]
        return name, {"loud": 0.7, "quiet": 0.8}, 0.25 + fold

    monkeypatch.setattr(cv_module, "make_estimator", fake)
    monkeypatch.setattr(feature_sets_module, "choose_set", choose)  # what cv's choose_sets calls per model
    y = np.array([0, 1] * 6)
    folds = np.repeat([0, 1, 2], 4)
    groups = np.array([f"g{i // 2}" for i in range(12)], dtype=object)
    base = (np.arange(12) + 0.5) / 12
    x = np.stack([base, base + 0.01], axis=1)  # group a's raw column, then group b's
    images = x / 2
    prep = Preprocessing((Slot("a", 0, 1, 1), Slot("b", 1, 2, 1)))
    sets = {"loud": ("a",), "quiet": ("a", "b")}
    plan, balance, resample = TuningPlan(trials=3, inner_folds=2, metric="map"), Balance("balanced"), Resample(4)
    result = cross_validate(x, y, folds, "single_label", 2, ["logreg", "mlp", "cnn"], seed=7, groups=groups,
                            search=plan, threads=3, balance=balance, inputs={"cnn": images}, preprocessing=prep,
                            feature_sets=sets, calibrate=True, resample=resample)
    # logreg and the MLP choose a set per fold from the training rows (raw: each set's model fits its own PCA), the
    # CNN never
    inputs = {"loud": x[:, 0], "quiet": x[:, 1]}  # the column each set's stand-in reads
    want = [{"sets": sets, "x": x[folds != k].tolist(), "y": y[folds != k].tolist(),
             "groups": list(groups[folds != k]), "n_folds": 2, "seed": 7, "kind": "single_label", "metric": "map",
             "built": m} for k in range(3) for m in ("logreg", "mlp")]
    assert choices == want
    one = TuningPlan(1, 2)
    # both models choose (and the count rule), each inner fit fitted as a model of the 8 training rows, then each
    # fold model is fitted
    assert calls == [c for k in range(3) for c in (
        ("logreg", 7, 3, one, balance, False, resample, ("a",), 8),
        ("mlp", 7, 3, one, balance, False, resample, ("a",), 8),
        ("logreg", 7, 3, plan, balance, True, resample, sets[("loud", "quiet")[(2 * k) % 2]], None),
        ("mlp", 7, 3, plan, balance, True, resample, sets[("loud", "quiet")[(2 * k + 1) % 2]], None),
        ("cnn", 7, 3, plan, balance, False, resample, None, None))]
    fitted = [e for e in log if "fit_x" in e]
    for k in range(3):
        for i, m in enumerate(("logreg", "mlp")):
            chosen = ("loud", "quiet")[(2 * k + i) % 2]
            entry = fitted[3 * k + i]
            assert entry["model"] == m and entry["defaults_score"] == 0.25 + 2 * k + i
            assert entry["fit_x"] == inputs[chosen][folds != k].tolist() and entry["fit_y"] == y[folds != k].tolist()
            assert entry["fit_groups"] == list(groups[folds != k])
            assert entry["scored_x"] == inputs[chosen][folds == k].tolist()
            np.testing.assert_array_equal(result.proba[m][folds == k, 1], inputs[chosen][folds == k])
        cnn = fitted[3 * k + 2]
        assert cnn["model"] == "cnn" and cnn["defaults_score"] is None
        assert cnn["fit_x"] == images[folds != k, 0].tolist() and cnn["scored_x"] == images[folds == k, 0].tolist()
    assert result.feature_sets == {m: [{"fold": k, "set": ("loud", "quiet")[(2 * k + i) % 2],
                                        "scores": {"loud": 0.7, "quiet": 0.8}, "rule": 4} for k in range(3)]
                                   for i, m in enumerate(("logreg", "mlp"))}
    # calibration: each vector model's map chosen on its inner folds; the CNN's, which chooses none there, on the other
    # outer folds (learn.calibrate.across_folds, below); raw probabilities kept per held-out row
    assert set(result.raw_proba) == set(result.calibration) == {"logreg", "mlp", "cnn"}
    np.testing.assert_array_equal(result.raw_proba["cnn"][:, 1], images[:, 0])
    mapped, records = across_folds(result.raw_proba["cnn"], y, "single_label", folds)
    np.testing.assert_array_equal(result.proba["cnn"], mapped)
    assert result.calibration["cnn"] == records and [r["fold"] for r in records] == [0, 1, 2]
    losses = {"none": 0.6, "platt": 0.5, "isotonic": 0.55}
    for i, m in enumerate(("logreg", "mlp")):
        own_x = np.concatenate([inputs[("loud", "quiet")[(2 * k + i) % 2]][folds == k] for k in range(3)])
        np.testing.assert_allclose(result.raw_proba[m][:, 1], own_x ** 2)
        np.testing.assert_allclose(result.raw_proba[m][:, 0], 1 - own_x ** 2)
        assert result.calibration[m] == [{"fold": 0, "method": "platt", "log_loss": losses},
                                         {"fold": 1, "method": "none", "log_loss": losses},
                                         {"fold": 2, "method": "none", "log_loss": losses}]
    np.testing.assert_allclose(result.proba[AVERAGE], np.mean([result.proba[m] for m in ("logreg", "mlp", "cnn")], 0))
    # the models are scored, and chosen, by the search's metric (mAP here, not the task's ROC AUC)
    assert result.scores == {m: val_score("single_label", y, p, "map") for m, p in result.proba.items()}
    assert result.scores != {m: val_score("single_label", y, p) for m, p in result.proba.items()}
    # without groups there is nothing to fold by: no set chosen, no map, every group's preprocessing
    plain = cross_validate(x, y, folds, "single_label", 2, ["logreg"], preprocessing=prep, feature_sets=sets,
                           calibrate=True)
    assert plain.feature_sets == {} and plain.raw_proba == {} and plain.calibration == {}
    assert calls[-1][5] is False and calls[-1][7] == ("a", "b") and log[-1]["fit_groups"] is None


def test_each_fold_shares_the_count_rule_its_inner_folds_chose_and_records_its_components(tuned_pca_rules):
    """A group whose class lies past its 8 loudest directions of noise: on each fold's 32 training clips the inner
    folds (16 clips a fit) choose one component per row over one per four, with no feature set to choose too; each
    fold model keeps the components that rule gives its own 32 clips, and the run records both per fold (what
    train's report and run record read)."""
    from acoustic_env.learn.preprocess import Preprocessing, Slot, n_components_for
    from acoustic_env.learn.tuning import TuningPlan

    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(12), 4)
    y = groups % 2
    noise = rng.normal(size=(48, 8)) @ rng.normal(size=(8, 24)) * 3
    signal = y + 0.3 * rng.normal(size=48)
    x = (noise + np.outer(signal, rng.normal(size=24)) * 1.5 + rng.normal(size=(48, 24))).astype(np.float32)
    folds = groups % 3
    prep = Preprocessing((Slot("wide", 0, 24, 24),))
    result = cross_validate(x, y, folds, "single_label", 2, ["logreg"], seed=0, groups=groups.astype(str),
                            search=TuningPlan(1, 2), threads=1, preprocessing=prep)
    assert [r["fold"] for r in result.rules] == [0, 1, 2] and all(set(r["scores"]) == {1, 4} for r in result.rules)
    assert [r["rule"] for r in result.rules] == [1, 1, 1]
    assert all(r["scores"][1] > r["scores"][4] for r in result.rules)
    assert n_components_for(24, 32, 24, 1) == 24 > n_components_for(24, 32, 24)
    assert result.components == {"logreg": [{"fold": k, "rule": 1, "components": {"wide": 24}} for k in range(3)]}
    assert result.feature_sets == {}  # no set searched: the rule only


def test_a_multi_label_model_without_an_inner_map_is_mapped_label_by_label_across_the_outer_folds(unmapped):
    """A model that chooses no map on its inner folds (the CNN; a stand-in here) takes, per fold, the map chosen on
    the other outer folds for its task: per label for a multi-label one."""
    rng = np.random.default_rng(0)
    y = (rng.random((60, 2)) < 0.5).astype(int)
    x = y * 2.0 + rng.normal(size=(60, 2)) * 1.5
    folds = np.arange(60) % 3
    result = cross_validate(x, y, folds, "multi_label", 2, [unmapped], groups=np.arange(60).astype(str), threads=1,
                            calibrate=True)
    mapped, records = across_folds(result.raw_proba[unmapped], y, "multi_label", folds)
    assert result.calibration[unmapped] == records and len(records) == 3
    np.testing.assert_array_equal(result.proba[unmapped], mapped)
    assert not np.allclose(mapped.sum(axis=1), 1)  # labels, not classes: a row's probabilities do not sum to one
