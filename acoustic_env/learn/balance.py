"""Class balance: each model of the zoo made to weigh a rare class as much as a common one, when asked.

Unbalanced, every learner minimises its loss over clips, so a class of 2 % of the clips costs
2 % of the loss: never predicting it is cheap, and its recall falls to 0. ``class_weight
"balanced"`` gives every class the same total weight, scikit-learn's n / (K × count), in the
form each learner takes, as its candidate declares (``CandidateSpec.balance``; ``Balance.describe``
says it in the report's words):

* ``weights`` (logreg, elasticnet, svm, forest): scikit-learn's ``class_weight="balanced"`` (multi-label: per label
  column, one-vs-rest). The svm's probabilities come from Platt scaling, which scikit-learn
  fits on the clips' own class rates, undoing the weights (a 2 % class stays below every
  other: its recall near 0, weighted or not); they are put on equal class priors by Bayes' rule
  (``equal_priors``), as a balanced model's are;
* ``sample_weights`` (xgboost): the same weights per clip (``sample_weight``, scikit-learn's
  ``compute_sample_weight``); multi-label, one boosted model fits every label column, so a
  clip's weight is the mean of its columns' balanced weights (a clip of rare labels weighs
  more, no column is exactly balanced);
* ``network`` (mlp, cnn): the loss's class weights (``learn.fit.class_weights``);
* ``none`` (knn: its prediction is a vote of the nearest clips, with no loss to weigh).

``sampler`` balances the networks another way: their training batches are drawn with
replacement so that every class is equally likely (``learn.fit``, ``balanced_sampler``),
their loss unweighted; the other models keep ``class_weight``. A multi-label clip has no one class
to draw it by: it is drawn by its rarest positive label (``learn.fit.draw_weights``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.utils.class_weight import compute_sample_weight

from acoustic_env import candidates


@dataclass(frozen=True)
class Balance:
    """How the train job balances classes: ``class_weight`` None or ``"balanced"``; ``sampler`` for the networks."""

    class_weight: str | None = None
    sampler: bool = False

    def overrides(self, name: str) -> dict[str, Any]:
        """The zoo settings (entries of ``PARAMS[name]``) that give model ``name`` this balance."""
        how = candidates.get(name).balance
        if how == "network":
            return {"class_weight": None if self.sampler else self.class_weight, "balanced_sampler": self.sampler}
        return {"class_weight": self.class_weight} if how != "none" else {}

    def describe(self, name: str, kind: str) -> str:
        """What model ``name`` did about class balance, in a few words (the report's table, model.json)."""
        multi = kind == "multi_label"
        if name not in candidates.PARAMS:  # the average of the compared models' probabilities
            return "as the models it averages"
        spec = candidates.get(name)
        if spec.balance == "network" and self.sampler:
            return ("balanced sampler: training clips drawn by 1 / their rarest positive label's count; loss "
                    "unweighted" if multi else
                    "balanced sampler: training batches drawn with every class equally likely; loss unweighted")
        if self.class_weight is None:
            return "none"
        if spec.balance == "none":
            return f"none: {name} cannot weigh classes ({spec.balance_note})"
        if spec.balance == "network":
            return ("loss weights: per label, positives weighted by negatives / positives" if multi else
                    "loss weights: n / (K × class count)")
        if spec.balance == "sample_weights":
            return ("sample weights: per clip, the mean of its label columns' balanced weights" if multi else
                    "sample weights: n / (K × class count) per clip")
        note = f"; {spec.balance_note}" if spec.balance_note else ""
        return "class weights: n / (K × class count)" + (", per label column" if multi else "") + note


def equal_priors(proba: np.ndarray, prior: np.ndarray, multi_label: bool) -> np.ndarray:
    """Probabilities calibrated on classes of rates ``prior`` as they would be with every class equally likely:
    each class's divided by its rate, renormalised (a label column's odds divided by its odds' rate)."""
    if multi_label:
        positive, negative = proba / prior, (1 - proba) / (1 - prior)
        return positive / (positive + negative)
    shifted = proba / prior
    return shifted / shifted.sum(axis=1, keepdims=True)


def sample_weights(class_weight: str | None, y: np.ndarray) -> np.ndarray | None:
    """Per-row weights for a learner that takes them (xgboost): None unweighted; balanced, each row its class's
    weight, or for a label matrix the mean over its columns (see the module docstring)."""
    if class_weight is None:
        return None
    if y.ndim == 1:
        return compute_sample_weight(class_weight, y)
    return np.mean([compute_sample_weight(class_weight, y[:, j]) for j in range(y.shape[1])], axis=0)
