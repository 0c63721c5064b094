"""``svm``: an RBF support-vector machine on standardised inputs with Platt-scaled probabilities.

``gamma_factor`` is the RBF kernel's gamma times the number of inputs (1: scikit-learn's "scale" on standardised
inputs), so one setting means the same on 20 components and on 200. Platt scaling is fitted on the clips' own class
rates, which undoes balanced class weights: balanced, its probabilities are put on equal class priors
(``equal_priors``). Saved with skops.
"""

from __future__ import annotations

from typing import Any

from acoustic_env.candidates.space import Space, numbers
from acoustic_env.candidates.spec import Build, CandidateSpec, standardised


def build(p: dict[str, Any], b: Build) -> Any:
    """The SVM of settings ``p`` for ``b.n_features`` inputs."""
    from sklearn.svm import SVC

    return standardised(SVC(C=p["C"], gamma=p["gamma_factor"] / b.n_features, class_weight=p["class_weight"],
                            probability=True, random_state=b.seed), b)


SPEC = CandidateSpec("svm", "RBF support-vector machine", build=build, format="skops", equal_priors=True,
                     balance_note="Platt-scaled probabilities put on equal class priors",
                     params={"C": 1.0, "gamma_factor": 1.0, "class_weight": None},
                     space=Space({"C": numbers(0.01, 100.0, log=True), "gamma_factor": numbers(0.01, 10.0, log=True)}))
