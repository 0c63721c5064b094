"""``forest``: a random forest on standardised inputs (a monotone map per input, so its trees are the components'),
explained by TreeSHAP and its impurity importances, saved with skops."""

from __future__ import annotations

from typing import Any

from acoustic_env.candidates.space import Space, ints, one_of
from acoustic_env.candidates.spec import Build, CandidateSpec, standardised


def build(p: dict[str, Any], b: Build) -> Any:
    """The forest of settings ``p`` on ``b.threads`` threads."""
    from sklearn.ensemble import RandomForestClassifier

    return standardised(RandomForestClassifier(**p, random_state=b.seed, n_jobs=b.threads), b)


# max_features: per split, a rule of the inputs' count or a share of them; max_depth None: grown until pure
SPEC = CandidateSpec("forest", "random forest", build=build, format="skops", explainer="trees",
                     importance="impurity",
                     params={"n_estimators": 300, "min_samples_leaf": 2, "max_features": "sqrt", "max_depth": None,
                             "class_weight": None},
                     space=Space({"min_samples_leaf": ints(1, 16, log=True),
                                  "max_features": one_of("sqrt", "log2", 0.2, 0.33, 0.5, 0.75, 1.0),
                                  "max_depth": one_of(None, 4, 8, 16, 32)}))
