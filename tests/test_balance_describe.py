"""What the report says each model did about class balance (``learn/balance.py: Balance.describe``) and the zoo
settings behind it (``overrides``), for every model of the zoo, both task kinds and the three choices."""

from __future__ import annotations

import numpy as np
import pytest

from acoustic_env.learn.balance import Balance, equal_priors
from acoustic_env.candidates import PARAMS

WEIGHTS = "class weights: n / (K × class count)"
SAMPLER = "balanced sampler: training batches drawn with every class equally likely; loss unweighted"
#: Multi-label: a clip has no one class to draw it by, so the report says what it is drawn by instead.
SAMPLER_MULTI = "balanced sampler: training clips drawn by 1 / their rarest positive label's count; loss unweighted"


@pytest.mark.parametrize("name, kind, said", [
    ("logreg", "single_label", WEIGHTS),
    ("logreg", "multi_label", WEIGHTS + ", per label column"),
    ("forest", "single_label", WEIGHTS),
    ("elasticnet", "multi_label", WEIGHTS + ", per label column"),
    ("svm", "single_label", WEIGHTS + "; Platt-scaled probabilities put on equal class priors"),
    ("svm", "multi_label", WEIGHTS + ", per label column; Platt-scaled probabilities put on equal class priors"),
    ("xgboost", "single_label", "sample weights: n / (K × class count) per clip"),
    ("xgboost", "multi_label", "sample weights: per clip, the mean of its label columns' balanced weights"),
    ("mlp", "single_label", "loss weights: n / (K × class count)"),
    ("mlp", "multi_label", "loss weights: per label, positives weighted by negatives / positives"),
    ("knn", "single_label", "none: knn cannot weigh classes (a vote of the nearest clips, no loss to weigh)"),
    ("average", "single_label", "as the models it averages"),
])
def test_each_model_says_how_it_weighed_the_classes(name, kind, said):
    assert Balance("balanced").describe(name, kind) == said
    assert Balance().describe(name, kind) == ("as the models it averages" if name == "average" else "none")


def test_the_sampler_is_the_networks_and_the_others_keep_their_class_weights():
    both = Balance("balanced", sampler=True)
    assert both.describe("mlp", "single_label") == SAMPLER
    assert Balance(sampler=True).describe("mlp", "single_label") == SAMPLER
    assert both.describe("mlp", "multi_label") == Balance(sampler=True).describe("mlp", "multi_label") == SAMPLER_MULTI
    assert both.describe("logreg", "single_label") == WEIGHTS and Balance(sampler=True).describe("svm", "x") == "none"
    assert both.overrides("mlp") == {"class_weight": None, "balanced_sampler": True}
    assert Balance("balanced").overrides("mlp") == {"class_weight": "balanced", "balanced_sampler": False}
    assert both.overrides("xgboost") == {"class_weight": "balanced"}
    assert both.overrides("cnn") == {"class_weight": None, "balanced_sampler": True}  # the CNN is a network too
    assert Balance("balanced").overrides("cnn") == {"class_weight": "balanced", "balanced_sampler": False}
    assert Balance().overrides("forest") == {"class_weight": None}
    assert set(PARAMS) >= {"logreg", "elasticnet", "xgboost", "mlp", "cnn", "forest", "svm", "knn"}


def test_equal_priors_divide_each_class_by_its_rate():
    """Single-label: each probability over its class's rate, the row renormalised; a row at the rates becomes
    uniform."""
    prior = np.array([0.7, 0.2, 0.1])
    np.testing.assert_allclose(equal_priors(prior[None], prior, False), [[1 / 3] * 3])
    proba = np.array([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8], [0.7, 0.2, 0.1]])  # each row on its own
    shifted = proba / prior
    np.testing.assert_allclose(equal_priors(proba, prior, False), shifted / shifted.sum(axis=1)[:, None])
