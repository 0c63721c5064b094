"""The overfitting gap (``jobs/train/gap.py``) on hand-made inputs: the metric each task is chosen on, the keys the
report reads, and which cross-validated models are compared (``tests/test_report.py`` runs it on real searches)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, average_precision_score, roc_auc_score

from acoustic_env.jobs.train.gap import CROSS_VALIDATION, SPLIT, generalisation_gap

KEYS = {"metric", "selection", "held_out", "note", "models"}


def test_a_multi_label_split_is_scored_by_map_against_the_test_split():
    rng = np.random.default_rng(0)
    y = (rng.random((40, 3)) < 0.4).astype(int)
    proba = np.clip(0.6 * y + 0.5 * rng.random((40, 3)), 0, 1)
    gap = generalisation_gap("multi_label", {"method": "split", "scores": {"mlp": 0.9}}, {},
                             {"y": y.tolist(), "proba": {"mlp": proba.tolist()}})
    test = np.mean([average_precision_score(y[:, j], proba[:, j]) for j in range(3)])
    assert set(gap) == KEYS and gap["metric"] == "mAP"
    assert (gap["selection"], gap["held_out"], gap["note"]) == SPLIT
    assert gap["models"] == {"mlp": {"selection": 0.9, "held_out": pytest.approx(test),
                                     "gap": pytest.approx(0.9 - test)}}


def test_single_label_is_roc_auc_and_a_model_without_test_probabilities_has_no_gap():
    y = np.array([0, 1] * 10)
    p = np.linspace(0.1, 0.9, 20)
    gap = generalisation_gap("single_label", {"method": "split", "scores": {"mlp": 0.8, "knn": 0.7}}, {},
                             {"y": y.tolist(), "proba": {"mlp": np.c_[1 - p, p].tolist()}})
    assert gap["metric"] == "ROC AUC" and set(gap["models"]) == {"mlp"}
    assert gap["models"]["mlp"]["held_out"] == pytest.approx(roc_auc_score(y, p))


def test_the_gap_is_measured_on_the_select_by_metric():
    """A run that chose its models by accuracy (``--select-by``) scores the test split by accuracy too."""
    y = np.array([0, 1] * 10)
    p = np.linspace(0.1, 0.9, 20)
    gap = generalisation_gap("single_label", {"method": "split", "scores": {"mlp": 0.8}, "select_by": "accuracy"},
                             {}, {"y": y.tolist(), "proba": {"mlp": np.c_[1 - p, p].tolist()}})
    held_out = accuracy_score(y, (p >= 0.5).astype(int))
    assert held_out != pytest.approx(roc_auc_score(y, p))
    assert gap["metric"] == "accuracy" and gap["models"]["mlp"] == {"selection": 0.8, "held_out": pytest.approx(held_out),
                                                                   "gap": pytest.approx(0.8 - held_out)}


def test_cross_validation_compares_the_models_searched_on_the_selection_metric_only():
    """A nested search that records no metric scored on the selection metric; one on another metric is named in the
    note, not compared; one without inner scores searched nothing."""
    nested = {"xgboost": {"inner_scores": [0.9, 0.8]}, "mlp": {"inner_scores": [0.7], "metric": "selection"},
              "logreg": {"inner_scores": [-0.4, -0.5], "metric": "neg_log_loss"}, "forest": {"inner_scores": []}}
    scores = {"xgboost": 0.75, "mlp": 0.6, "logreg": 0.7, "forest": 0.65}
    gap = generalisation_gap("multi_label", {"method": "cross_validation", "scores": scores}, {"nested": nested}, None)
    chosen_on, held_out, note = CROSS_VALIDATION
    assert set(gap) == KEYS and gap["metric"] == "mAP" and (gap["selection"], gap["held_out"]) == (chosen_on, held_out)
    assert gap["note"] == note + " Not compared: logreg (its search scored neg_log_loss)."
    assert gap["models"] == {
        "xgboost": {"selection": pytest.approx(0.85), "held_out": 0.75, "per_fold_selection": [0.9, 0.8],
                    "gap": pytest.approx(0.1)},
        "mlp": {"selection": 0.7, "held_out": 0.6, "per_fold_selection": [0.7], "gap": pytest.approx(0.1)}}
    two = {**nested, "svm": {"inner_scores": [0.1], "metric": "accuracy"}}
    gap = generalisation_gap("single_label", {"method": "cross_validation", "scores": scores}, {"nested": two}, None)
    assert gap["note"].endswith(" Not compared: logreg (its search scored neg_log_loss), svm (its search scored "
                                "accuracy).")
