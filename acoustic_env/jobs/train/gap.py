"""How much the score a model was chosen on overstates its score on clips that chose nothing: the overfitting gap.

A score used to choose (hyper-parameters, early stopping, the chosen model) is
optimistic: the choice fitted it, noise included. The study reported its validation
and test scores side by side for this reason. Each evaluation has its own pair:

- **split**: the validation split's score (the search and early stopping used it) against
  the same metric on the test split, which nothing saw;
- **cross-validation**: the validation score of the split does not exist; its equivalent is
  the nested search's inner score (the chosen setting's pooled inner out-of-fold score on an
  outer fold's training clips, averaged over the outer folds) against the pooled
  out-of-fold score of the clips those folds held out. A model that searched nothing
  (one setting) chose nothing on an inner score, and has no gap to report; logistic
  regression's C search scores by log loss (``LogisticRegressionCV``), another metric, so
  its inner score is named but not compared.

The metric is the selection metric (``learn.fit.val_score`` of ``--select-by``: by default ROC AUC; mAP for
multi-label tasks). A positive gap is the optimism of the choice plus the noise of two small samples:
read it with the intervals of the held-out figure.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from acoustic_env.learn.fit import METRIC_NAMES, default_metric, val_score

SPLIT = ("validation split", "test split",
         "The validation split's score chose the network's hyper-parameters and stopped its training (and the "
         "trees'); the test split chose nothing. The gap is validation minus test.")
CROSS_VALIDATION = ("inner search", "out-of-fold",
                    "Under cross-validation there is no validation split: each outer fold's models chose their "
                    "setting by an inner cross-validation on that fold's training clips. The selection score is "
                    "the chosen setting's inner out-of-fold score, averaged over the outer folds; the held-out "
                    "score is the pooled out-of-fold score of the clips the outer folds held out. The gap is inner "
                    "minus out-of-fold; a model that tried one setting chose nothing and has none.")


def generalisation_gap(kind: str, evaluation: dict[str, Any], search: dict[str, Any],
                       predictions: dict[str, Any] | None) -> dict[str, Any]:
    """Per model: the score it was chosen on, its held-out score on the same metric, and their difference."""
    select_by = evaluation.get("select_by") or default_metric(kind)
    metric = METRIC_NAMES[select_by]
    if evaluation["method"] == "cross_validation":
        chosen_on, held_out, note = CROSS_VALIDATION
        nested = {m: n for m, n in (search.get("nested") or {}).items() if n.get("inner_scores")}
        other = {m: n["metric"] for m, n in nested.items() if n.get("metric", "selection") != "selection"}
        models = {m: {"selection": float(np.mean(n["inner_scores"])), "held_out": evaluation["scores"][m],
                      "per_fold_selection": n["inner_scores"]} for m, n in nested.items() if m not in other}
        if other:
            note += (" Not compared: " + ", ".join(f"{m} (its search scored {metric})" for m, metric in other.items())
                     + ".")
    else:
        chosen_on, held_out, note = SPLIT
        y = np.asarray(predictions["y"])
        models = {m: {"selection": score,
                      "held_out": val_score(kind, y, np.asarray(predictions["proba"][m]), select_by)}
                  for m, score in evaluation["scores"].items() if m in predictions["proba"]}
    for v in models.values():
        v["gap"] = v["selection"] - v["held_out"]
    return {"metric": metric, "selection": chosen_on, "held_out": held_out, "note": note, "models": models}
