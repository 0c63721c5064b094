"""The bootstrap's statistic (``learn.metrics.headline``) counts AUC and F1 in numpy: held to scikit-learn here.
The two adjusted accuracies (the noise model's and the study's ratio) on the study's own case."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

from acoustic_env.cli import main
from acoustic_env.config import ConfigError, TrainConfig, from_dict
from acoustic_env.demo.tables import synthetic_table, write_features
from acoustic_env.pages.report import metrics_section
from acoustic_env.learn.metrics import adjusted_accuracy, assumed_label_accuracy, headline, wilson


def _sklearn(kind: str, y: np.ndarray, proba: np.ndarray) -> dict[str, float | None]:
    if kind == "multi_label":
        pred = (proba >= 0.5).astype(int)
        cols = [j for j in range(y.shape[1]) if 0 < y[:, j].sum() < len(y)]
        return {"roc_auc": float(np.mean([roc_auc_score(y[:, j], proba[:, j]) for j in cols])) if cols else None,
                "accuracy": accuracy_score(y, pred), "macro_f1": f1_score(y, pred, average="macro", zero_division=0)}
    pred, k = proba.argmax(axis=1), proba.shape[1]
    both = len(np.unique(y)) > 1
    auc = (roc_auc_score(y, proba[:, 1]) if k == 2 else
           roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=list(range(k)))) if both else None
    return {"roc_auc": auc, "accuracy": accuracy_score(y, pred),
            "macro_f1": f1_score(y, pred, average="macro", labels=list(range(k)), zero_division=0)}


@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("seed", range(6))
def test_single_label_headline_equals_scikit_learn(k, seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 60))
    proba = rng.dirichlet(np.ones(k), n).round(1 + seed % 2)  # rounded: ties in the scores
    proba /= proba.sum(axis=1, keepdims=True)
    y = rng.integers(0, k if seed else 1, n)  # seed 0: one class only, AUC undefined
    ours, theirs = headline("single_label", y, proba), _sklearn("single_label", y, proba)
    assert ours.keys() == theirs.keys()
    for name, value in theirs.items():
        assert ours[name] == (None if value is None else pytest.approx(value, abs=1e-12)), name


@pytest.mark.parametrize("seed", range(6))
def test_multi_label_headline_equals_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 60))
    proba = rng.random((n, 4)).round(1)
    y = (rng.random((n, 4)) < 0.4).astype(int)
    y[:, 3] = seed % 2  # a class that is always, or never, there
    ours, theirs = headline("multi_label", y, proba), _sklearn("multi_label", y, proba)
    for name, value in theirs.items():
        assert ours[name] == (None if value is None else pytest.approx(value, abs=1e-12)), name


def test_the_two_adjusted_accuracies_on_the_studys_case():
    """The study: max. accuracy 0.721, labels assumed right 80 % of the time; 0.721 / 0.8 = 0.901 is its figure, the
    noise model's (0.721 - 0.2) / 0.6 = 0.868 is this project's; both are kept, each under its own name."""
    n = 1000
    adj = adjusted_accuracy(0.721, n, assumed_label_accuracy(0.8), 2)
    assert round(adj["study_ratio"], 3) == 0.901 and round(adj["adjusted"], 3) == 0.868
    lo, hi = wilson(0.721 * n, n)
    assert adj["study_ratio_interval"] == pytest.approx([lo / 0.8, hi / 0.8])  # an assumption has no interval
    assert adj["label_accuracy"]["method"] == "assumed" and "0.721 / 0.8 = 0.901" in adj["study_ratio_formula"]
    review = {"method": "wilson", "sample": "random", "overall": {"accuracy": 0.8, "low": 0.71, "high": 0.87, "n": 100}}
    reviewed = adjusted_accuracy(0.721, n, review, 2)
    assert reviewed["study_ratio"] == adj["study_ratio"] and reviewed["adjusted"] == adj["adjusted"]
    assert reviewed["study_ratio_interval"] == pytest.approx([lo / 0.87, hi / 0.71])  # the review's interval widens it
    assert adjusted_accuracy(0.85, n, assumed_label_accuracy(0.8), 2)["study_ratio"] > 1  # not clipped: says so


def test_the_report_names_both_adjusted_accuracies():
    adj = adjusted_accuracy(0.7, 500, assumed_label_accuracy(0.8), 2)
    adj["max_accuracy"] = adjusted_accuracy(0.721, 500, assumed_label_accuracy(0.8), 2)
    test = {"n": 500, "accuracy": 0.7, "max_accuracy": 0.721, "max_accuracy_threshold": 0.4, "calibration": {}}
    page = metrics_section({"task": {"kind": "single_label", "class_names": ["urban", "natural"]},
                            "models": {"mlp": {"test": test, "val_score": 0.8}}, "adjusted_accuracy": {"mlp": adj}})
    lo, hi = adj["max_accuracy"]["study_ratio_interval"]
    assert f"acc/a 0.901 <span class='ci'>[{lo:.3f}, {hi:.3f}]</span>" in page
    assert "noise model 0.868" in page and "--assumed-label-accuracy" in page
    assert "<b>Noise model</b>: The noise-model estimate" in page and "<b>acc/a</b>: The study&#39;s figure" in page


def test_an_assumed_label_accuracy_is_one_number_and_not_beside_a_review():
    base = {"features": "f", "output": "o"}
    assert from_dict(TrainConfig, {**base, "assumed_label_accuracy": 0.8}).assumed_label_accuracy == 0.8
    with pytest.raises(ConfigError, match="assumed_label_accuracy: cannot be combined with label_accuracy"):
        from_dict(TrainConfig, {**base, "assumed_label_accuracy": 0.8, "label_accuracy": "est.json"})
    with pytest.raises(ConfigError, match="assumed_label_accuracy"):
        from_dict(TrainConfig, {**base, "assumed_label_accuracy": 1.2})


@pytest.mark.parametrize("dry_run", [False, True])
def test_an_assumed_label_accuracy_at_chance_stops_train_in_one_line(dry_run, tmp_path, capsys):
    """With K classes, labels right 1/K of the time or less say nothing of the accuracy (the noise model has no
    figure there): train and its dry run refuse such an assumption before starting, instead of leaving it out."""
    table = write_features(synthetic_table(8, seed=0, signals=("raw",)), str(tmp_path / "table"))
    out = tmp_path / "out"
    argv = ["train", "--features", table, "--output", str(out), "--assumed-label-accuracy", "0.5"]
    assert main([*argv, *(["--dry-run"] if dry_run else [])]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1:] == ["acoustic-env: error: assumed_label_accuracy: must be above 1/K = 0.5 for the 2 classes of "
                        "task urban_natural (labels right no more often than chance say nothing of the accuracy), "
                        "got 0.5"]
    assert len(err) == 1 and not (out / "runs").exists()
    cfg = from_dict(TrainConfig, {"features": table, "output": str(out), "assumed_label_accuracy": 0.34})
    cfg.check_task("t3", "single_label", 3)  # above chance: accepted
    with pytest.raises(ConfigError, match=r"must be above 1/K = 0.5 for the 2 classes of task t2.*got 0.34$"):
        cfg.check_task("t2", "single_label", 2)
    cfg.check_task("m", "multi_label", 2)  # the adjustment is single-label only: the report says so, not an error


def test_a_three_class_interval_defined_by_under_half_the_replicates_is_none_and_quiet():
    """Class 0 is one recording, class 1 another, class 2 two more: a replicate of four draws holds all three (the
    multi-class AUC is defined) 36 % of the time here. Fewer than half: no AUC interval, and the replicates missing a
    class are counted out without a warning; accuracy, defined on every replicate, has its interval."""
    import warnings

    from acoustic_env.learn.metrics import intervals

    rng = np.random.default_rng(0)
    units = np.repeat(np.arange(4), 5)
    y = np.array([0, 1, 2, 2])[units]
    proba = rng.dirichlet(np.ones(3), len(y))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = intervals("single_label", y, proba, units, seed=0, replicates=400)
    assert out["roc_auc"] is None and out["accuracy"] is not None and out["macro_f1"] is not None
    assert caught == [], [str(w.message) for w in caught]
