"""``xgboost``: gradient-boosted trees (hist), explained by TreeSHAP, saved in XGBoost's JSON model format.

Balanced classes reach it as per-row weights (``learn.balance.sample_weights``). Given validation rows (the train
job's train/val/test split) it stops adding trees once the log loss there stops improving (``fit_early``).
"""

from __future__ import annotations

from typing import Any

from acoustic_env.candidates.space import Space, ints, numbers
from acoustic_env.candidates.spec import Build, CandidateSpec


def build(p: dict[str, Any], b: Build) -> Any:
    """The boosted trees of settings ``p`` on ``b.threads`` threads (None: every core)."""
    from xgboost import XGBClassifier

    trees = {k: v for k, v in p.items() if k not in ("early_stopping_rounds", "class_weight")}
    return XGBClassifier(**trees, random_state=b.seed, n_jobs=b.threads)


def fit_early(model: Any, x: Any, target: Any, val: tuple[Any, Any], kwargs: dict[str, Any],
              p: dict[str, Any]) -> None:
    """Fit, stopping ``early_stopping_rounds`` trees after the validation log loss last improved."""
    model.set_params(early_stopping_rounds=p["early_stopping_rounds"])
    model.fit(x, target, eval_set=[val], verbose=False, **kwargs)


# min_child_weight 1: XGBoost's own default, named so that the tuning's range holds it
SPEC = CandidateSpec("xgboost", "gradient-boosted trees", build=build, format="xgboost", balance="sample_weights",
                     default=True, fit_early=fit_early, explainer="trees",
                     params={"n_estimators": 200, "max_depth": 4, "learning_rate": 0.1, "subsample": 0.8,
                             "colsample_bytree": 0.5, "min_child_weight": 1.0, "tree_method": "hist",
                             "verbosity": 0, "early_stopping_rounds": 30, "class_weight": None},
                     space=Space({"max_depth": ints(2, 8), "learning_rate": numbers(0.01, 0.3, log=True),
                                  "n_estimators": ints(100, 600), "subsample": numbers(0.5, 1.0),
                                  "colsample_bytree": numbers(0.3, 1.0),
                                  "min_child_weight": numbers(0.5, 10.0, log=True)}))
