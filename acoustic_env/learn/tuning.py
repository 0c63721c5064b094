"""Each model's own hyper-parameter tuning: grouped cross-validation on the rows the model is fitted on, and no others.

Why grouped CV and not one validation split: a validation split of a few dozen
clips moves by several AUC points from one seed to the next, so the setting it
picks is partly noise; pooling every training row's inner out-of-fold
prediction scores each setting on all of them. Why on the fitted rows only:
the train job fits each model once per outer fold on that fold's training
rows, so a search run inside ``fit`` can never score a setting on a clip of the
fold that will evaluate the model (nested cross-validation), and the same code
searches once more on every clip for the saved model.

The inner folds keep every group (source recording, or near-duplicates merged
by the leakage guard) on one side of each split, as the outer folds do.

What is searched is each model's space of ranges (``acoustic_env.candidates.SPACES``):
the defaults first, then Optuna's TPE sampler, told each setting's score, for
``trials`` distinct settings. A setting the sampler proposes again is told its
score again and not counted twice.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, NamedTuple

import numpy as np

from acoustic_env.candidates.space import Range, Space
from acoustic_env.learn.splits import multilabel_folds

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution

#: An inner fold: (row positions fitted on, row positions scored on), both into the rows the search was given.
Split = tuple[np.ndarray, np.ndarray]


class TuningPlan(NamedTuple):
    """How large each model's tuning is: ``trials`` settings sampled from ``acoustic_env.candidates.SPACES`` (1: the defaults,
    no tuning; logistic regression's C search runs regardless), each scored on ``inner_folds`` grouped folds by
    ``metric`` (``--select-by``, which also picks the chosen model; None: the task's default,
    ``learn.fit.default_metric``)."""

    trials: int = 1
    inner_folds: int = 3
    metric: str | None = None


@dataclass
class TuningRecord:
    """What one tuning tried, on which folds, what it chose and what it cost."""

    splits: list[Split]
    trials: list[dict[str, Any]]  # per setting tried, in order: {"params": the setting, "score": pooled inner score}
    best: dict[str, Any]  # the chosen setting
    seconds: float = 0.0
    fits: int = field(default=0)  # inner fits run (settings x inner folds)
    metric: str = "selection"  # the trials' score: the selection metric (learn.fit.val_score), or an estimator's own
    space: dict[str, str] = field(default_factory=dict)  # each searched setting's range, in words (Space.describe)
    asked: int = 0  # the settings asked for (--tuning-trials); fewer were tried only when the space holds fewer


def inner_splits(target: np.ndarray, groups: np.ndarray, n_folds: int, seed: int) -> list[Split]:
    """Stratified folds over the rows given that keep every group on one side of each split.

    Single-label: ``StratifiedGroupKFold`` on the class. Multi-label: by label *presence*, not label pattern
    (``learn.splits.multilabel_folds``, iterative stratification over groups): with patterns, a rare label
    spread over many patterns of one or two clips each is not stratified at all, and may miss a fold.
    Fewer folds when there are fewer groups; an empty list (no search possible) below two.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    groups = np.asarray(groups).astype(str)
    n = min(n_folds, len(np.unique(groups)))
    if n < 2:
        return []
    target = np.asarray(target)
    if target.ndim == 2:
        fold = multilabel_folds(target, groups, n, seed)
        return [(np.flatnonzero(fold != k), np.flatnonzero(fold == k)) for k in range(n) if (fold == k).any()]
    splitter = StratifiedGroupKFold(n_splits=n, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # a rare class with fewer rows than folds is expected
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        return list(splitter.split(np.zeros(len(target)), target, groups))


#: Proposals in a row that repeat a tried setting before a search stops short of its trials (a small space, nearly
#: exhausted, or a sampler sure of its best); the record then shows fewer settings than asked.
MAX_REPEATS = 100


def grouped_tuning(build: Callable[[dict[str, Any]], Any], space: Space, defaults: dict[str, Any], trials: int,
                   x: np.ndarray, y: np.ndarray, groups: np.ndarray, n_folds: int, seed: int,
                   kind: str, metric: str | None = None, known: float | None = None) -> TuningRecord | None:
    """Sample ``trials`` distinct settings of ``space`` (``defaults`` first, then Optuna's TPE seeded with ``seed``),
    each built by ``build`` (an estimator whose ``fit`` takes the rows' ``groups``) and scored by its pooled inner
    out-of-fold score; None when no search (one trial, or fewer than two inner folds).

    The score is the train job's selection metric (``learn.fit.val_score`` of ``metric``, ``--select-by``:
    by default ROC AUC, or mAP for multi-label tasks); ties go to the earlier setting,
    so the defaults win unless another setting does better. ``known``: the defaults' pooled score on these rows'
    inner folds when the caller has it (``learn.feature_sets.choose_set`` fitted them on the same folds): not
    fitted again.
    """
    start = time.time()
    splits = inner_splits(y, groups, n_folds, seed)
    if trials < 2 or len(splits) < 2:
        return None
    study, distributions = _study(space, defaults, seed)
    scores: dict[tuple[Any, ...], float] = {}  # each setting tried (its values in the space's order) -> its score
    repeats = 0
    while len(scores) < min(trials, space.size()) and repeats < MAX_REPEATS:
        proposed = study.ask(distributions)
        setting = {name: r.rounded(proposed.params[name]) for name, r in space.ranges.items()}
        key = tuple(setting.values())
        repeats = repeats + 1 if key in scores else 0
        if key not in scores:
            scores[key] = (known if known is not None and setting == defaults else
                           pooled_score(build, setting, x, y, groups, splits, kind, metric))
        study.tell(proposed, scores[key])
    tried = [{"params": dict(zip(space.ranges, key)), "score": score} for key, score in scores.items()]
    best = max(range(len(tried)), key=lambda i: (round(tried[i]["score"], 12), -i))
    return TuningRecord(splits, tried, tried[best]["params"], time.time() - start, len(tried) * len(splits),
                        space=space.describe(), asked=trials)


def pooled_score(build: Callable[[dict[str, Any]], Any], setting: dict[str, Any], x: np.ndarray, y: np.ndarray,
                 groups: np.ndarray, splits: list[Split], kind: str, metric: str | None) -> float:
    """One setting's score: each inner fold's model predicts the rows it did not see, pooled over the folds. Each is
    given its rows' groups, as the fit it stands for is: a network stops early on whole groups of them
    (``takes_groups``), not on clips with a copy of their recording among the rows it learns from."""
    from acoustic_env.learn.fit import val_score  # imports torch: only when a search runs

    proba = None
    for fit_on, scored in splits:
        p = build(setting).fit(x[fit_on], y[fit_on], groups=groups[fit_on]).predict_proba(x[scored])
        proba = np.zeros((len(y), p.shape[1])) if proba is None else proba
        proba[scored] = p
    return float(val_score(kind, y, proba, metric))


def _study(space: Space, defaults: dict[str, Any], seed: int) -> tuple[Any, dict[str, BaseDistribution]]:
    """An Optuna study maximising the score, its TPE sampler seeded (the same seed, the same settings), with the
    defaults queued as its first trial; and the space as Optuna's distributions. Optuna's own log is silenced, as
    the Ray Tune search silences it (``distributed.tune``): the console says what the search did."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.enqueue_trial(defaults)
    return study, {name: _distribution(r) for name, r in space.ranges.items()}


def _distribution(r: Range) -> BaseDistribution:
    """One range as Optuna's distribution."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if r.choices:
        return CategoricalDistribution(r.choices)
    return (IntDistribution if r.integer else FloatDistribution)(r.low, r.high, log=r.log)
