"""Which feature groups a model reads: a setting searched like any other, on inner folds only.

Why a search: on real recordings one pretrained embedder can carry nearly all the signal, and the hand-made groups
beside it (indices, spectral statistics and MPS of three signals: hundreds of PCA components) mostly add noise for
a linear model, while trees shrug them off. Which set is best depends on the data and the model, so each model
chooses its own, by grouped cross-validation on the rows it is fitted on (``choose_set``): inside the train job's
cross-validation those are an outer fold's training clips, so the set that scores a held-out clip was chosen
without it (nested), and the outer figure stays honest; for the saved model, all clips.

The candidate sets (``candidate_sets``) are few, as a user would try them: every group; each pretrained embedder
alone; the hand-made groups alone; each pretrained embedder with the acoustic indices.

With the sets, the models fitted together choose how many PCA components the rows carry (``choose_sets``: the count
rule of ``learn.preprocess``), where the rule cuts a group's target: on a few hundred clips BirdNET's 1,024 values
keep 48 components at the default rule, or nearly as many as the rows; which serves better depends on the data.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from acoustic_env import feature_groups
from acoustic_env.learn.preprocess import Preprocessing
from acoustic_env.learn.tuning import inner_splits, pooled_score
from acoustic_env.table import RANDOM, GroupInfo

#: Every group: listed first, so it wins a tie (the set a user gets without a search).
ALL = "all"
HAND_MADE = "hand-made"
#: The sources computed by the CPU stages, not learnt by a network (``acoustic_env.feature_groups``).
HAND_MADE_SOURCES = feature_groups.names()
INDICES = "indices"


def candidate_sets(groups: Sequence[GroupInfo]) -> dict[str, tuple[str, ...]]:
    """Name → the group names of each set worth trying on a table with ``groups``; empty when there is one set only.

    An embedder's columns of every signal (``birdnet``, ``birdnet_fg``) form one set; columns computed with random
    weights are never a set of their own (they carry no pretrained meaning), though ``all`` holds them when the
    table's reader kept them (``--include-random-weights``).
    """
    every = tuple(g.name for g in groups)
    hand = tuple(g.name for g in groups if g.source in HAND_MADE_SOURCES)
    indices = tuple(g.name for g in groups if g.source == INDICES)
    embedders: dict[str, list[str]] = {}
    for g in groups:
        if g.source not in HAND_MADE_SOURCES and g.weights != RANDOM:
            embedders.setdefault(g.source, []).append(g.name)
    sets = {ALL: every}
    sets.update({source: tuple(names) for source, names in embedders.items()})
    sets[HAND_MADE] = hand
    sets.update({f"{source}+{INDICES}": (*names, *indices) for source, names in embedders.items()})
    unique: dict[str, tuple[str, ...]] = {}
    for name, members in sets.items():  # the first name of a set wins (all before hand-made on a table of both)
        if members and set(members) not in [set(m) for m in unique.values()]:
            unique[name] = members
    return unique if len(unique) > 1 else {}


#: Name → the groups of each feature set a model chooses among (``candidate_sets``).
Sets = dict[str, tuple[str, ...]]


def choose_set(build: Callable[[tuple[str, ...]], Any], sets: Sets, x: np.ndarray, y: np.ndarray,
               groups: np.ndarray, n_folds: int, seed: int, kind: str,
               metric: str | None = None) -> tuple[str, dict[str, float], float | None]:
    """(the set with the best pooled inner out-of-fold score, every set's score to 6 digits, the chosen set's score
    unrounded) among ``sets``, each scored (``metric``, ``--select-by``; None: the task's default) by a fresh
    ``build(the set's groups)`` fitted on grouped inner folds of the rows ``x`` (every group's raw columns); ties go
    to the earlier set. Fewer than two groups to fold by: the first set, unscored (None).

    ``build`` makes the model with its preprocessing of those groups inside (``learn.preprocess.Preprocessing``), so
    each inner fit fits the PCA on its own training part and no held-out inner row is scored through a PCA that
    was fitted on it.

    The unrounded score is what the model's own settings search would get for its defaults on that set: the same
    fits on the same inner folds (``learn.tuning.inner_splits`` of these rows, this seed), which it then skips."""
    splits = inner_splits(y, groups, n_folds, seed)
    first = next(iter(sets))
    if len(splits) < 2:
        return first, {}, None
    pooled = {name: pooled_score(lambda _, members=members: build(members), {}, x, y, groups, splits, kind, metric)
              for name, members in sets.items()}
    scores = {name: round(score, 6) for name, score in pooled.items()}
    order = list(scores)
    chosen = max(order, key=lambda n: (scores[n], -order.index(n)))
    return chosen, scores, pooled[chosen]


@dataclass(frozen=True)
class SetChoice:
    """What the inner folds chose for the vector models fitted together: the count rule they share (a saved average
    holds one PCA per group), each rule's score, and each model's set under the chosen rule."""

    rule: int
    #: each rule tried (``Preprocessing.rules``): the models' mean inner score of the set each chose under it
    rule_scores: dict[int, float]
    #: model → (its set, every set's inner score to 6 digits, the chosen set's unrounded: ``choose_set``)
    sets: dict[str, tuple[str, dict[str, float], float | None]]


def choose_sets(build: Callable[[str, Preprocessing], Any], models: Sequence[str], sets: Sets,
                preprocessing: Preprocessing, x: np.ndarray, y: np.ndarray, groups: np.ndarray, n_folds: int,
                seed: int, kind: str, metric: str | None = None) -> SetChoice:
    """Each of ``models``' feature set (``choose_set``) and the count rule they share, all chosen on the same grouped
    inner folds of the rows ``x``: under each rule worth trying at the size of an inner fit
    (``Preprocessing.rules``), every model chooses its set; the rule whose chosen sets score best on average wins,
    ties to the default. ``build(model, preprocessing)`` makes ``model`` with that preprocessing inside, so every
    inner fit fits its PCA, at that rule, on its own training part, and fitted the way a model of all the rows ``x``
    is (``learn.zoo.make_estimator``'s ``rows``): the MLP fitted in rounds above its ``full_batch_rows`` is scored
    fitted in rounds on each inner part, though that part be under the limit.

    Why one rule for all: the saved average's members read one fitted PCA per group (``learn.portable.Average``).
    A single rule (large tables, where no rule cuts a target) costs nothing more than the sets' choice."""
    splits = inner_splits(y, groups, n_folds, seed)
    rules = preprocessing.rules(min((len(train) for train, _ in splits), default=len(y)))
    if len(sets) == 1 and len(rules) == 1:  # nothing to choose: nothing scored
        return SetChoice(rules[0], {}, {m: (next(iter(sets)), {}, None) for m in models})
    by_rule = {rule: {m: choose_set(lambda only, m=m, rule=rule: build(m, preprocessing.with_rule(rule).only(only)),
                                    sets, x, y, groups, n_folds, seed, kind, metric) for m in models}
               for rule in rules}
    means = {rule: round(float(np.mean([c[2] for c in chosen.values()])), 6)
             for rule, chosen in by_rule.items() if chosen and all(c[2] is not None for c in chosen.values())}
    order = list(by_rule)
    rule = max(means, key=lambda r: (means[r], -order.index(r))) if means else order[0]
    return SetChoice(rule, means, {m: (name, scores, best) for m, (name, scores, best) in by_rule[rule].items()})
