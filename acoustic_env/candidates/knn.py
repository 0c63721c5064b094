"""``knn``: k-nearest neighbours on standardised inputs, distance-weighted by default: one of the studies' models.

``brute``: distances to every training row (no search tree), exact and saved as the rows themselves (skops). It
cannot weigh classes: its prediction is a vote of the nearest clips, with no loss to weigh.
"""

from __future__ import annotations

from typing import Any

from acoustic_env.candidates.space import Space, ints, one_of
from acoustic_env.candidates.spec import Build, CandidateSpec, standardised


def build(p: dict[str, Any], b: Build) -> Any:
    """kNN of settings ``p``, never asking for more neighbours than there are training rows."""
    from sklearn.neighbors import KNeighborsClassifier

    return standardised(KNeighborsClassifier(**{**p, "n_neighbors": min(p["n_neighbors"], b.n_rows)}), b)


SPEC = CandidateSpec("knn", "k-nearest neighbours", build=build, format="skops", balance="none",
                     balance_note="a vote of the nearest clips, no loss to weigh",
                     params={"n_neighbors": 15, "weights": "distance", "algorithm": "brute"},
                     space=Space({"n_neighbors": ints(3, 60, log=True), "weights": one_of("distance", "uniform")}))
