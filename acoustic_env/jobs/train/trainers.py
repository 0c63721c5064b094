"""The split evaluation's three ways to train a candidate, one for each ``trains`` of its spec.

``estimator``: the zoo's estimator fitted here on the training split (its preprocessing inside when the table is held
in memory), stopped on the validation split where it can. ``tune``: a network under a Ray Tune search of its
``tune_space`` on the training split's arrays (``distributed.tune``), its best trial's weights read back.
``stream``: a network of images trained on Ray Data's stream of them (``distributed.tune.fit_streamed``). Each
returns a :class:`Trained`, so that ``split.run_split`` reads every candidate alike, whatever its name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from torch import nn

from acoustic_env import candidates
from acoustic_env.candidates.spec import NETWORK
from acoustic_env.config import TrainConfig
from acoustic_env.distributed.images import Rows
from acoustic_env.distributed.tune import (
    TuningResult,
    Setup,
    fit_streamed,
    load_checkpoint,
    runner_words,
    single_run,
    tune_trials,
)
from acoustic_env.jobs.train.evaluation import checked_portable, preprocessing
from acoustic_env.learn.augment import Resample
from acoustic_env.learn.balance import Balance
from acoustic_env.learn.fit import val_score
from acoustic_env.learn.portable import Portable
from acoustic_env.learn.splits import TEST, TRAIN, VAL
from acoustic_env.learn.tuning import TuningPlan
from acoustic_env.learn.zoo import ZooClassifier, make_estimator
from acoustic_env.table import FeatureSet
from acoustic_env.vocabulary.tasks import Task


@dataclass
class Trained:
    """One candidate trained on the split: what the evaluation reads of it.

    ``proba``: its probabilities on the test split; ``saved()``: its saved form (built for the saved model only);
    ``params``: the hyper-parameters model.json records when it is saved; ``line``: how it was searched or trained
    (the search's method), None when it was not searched; ``fitted``: an estimator's fitted zoo model (TreeSHAP,
    importances); ``network``, ``found``, ``setup``: a searched network's module (SHAP, the layer table), its search
    and how its trials trained (the ablations train so); ``resampled``: whether ``--resample-per-class`` reached its
    training rows.
    """

    name: str
    proba: np.ndarray
    val_score: float
    saved: Callable[[], Portable] | None
    params: dict[str, Any]
    line: str | None = None
    fitted: ZooClassifier | None = None
    network: nn.Module | None = None
    found: TuningResult | None = None
    setup: Setup | None = None
    resampled: bool = True


def scheduled(name: str, setup: Setup, balance: Balance, **schedule: Any) -> Setup:
    """``setup`` for candidate ``name``: its spec (carried to the trials by value) and its settings as the zoo gives
    them, balanced, with the entries of ``schedule`` it has replaced (the job's rounds and patience)."""
    spec = candidates.get(name)
    settings = make_estimator(name, setup.kind, setup.n_classes, setup.seed, balance=balance,
                              **{k: v for k, v in schedule.items() if k in spec.params}).params
    return replace(setup, model=spec, settings={k: v for k, v in settings.items() if k != NETWORK})


def estimators(cfg: TrainConfig, task: Task, names: list[str], features: FeatureSet, x: np.ndarray,
               idx: dict[int, np.ndarray], clip_groups: np.ndarray | None, plan: TuningPlan, balance: Balance,
               resample: Resample | None) -> dict[str, Trained]:
    """The ``estimator`` candidates fitted in this process on the training split, stopped on the validation split
    as the network is; held in memory, each model fits its own preprocessing (the evaluation's ``x`` is that
    preprocessing fitted on the training split), refitted on each inner split of its search."""
    y, k = features.y, task.n_classes
    train_groups = None if clip_groups is None else clip_groups[idx[TRAIN]]
    prep, raw = preprocessing(cfg, features) if features.X is not None else (None, None)
    given = x if prep is None else raw
    out = {}
    for name in names:
        model = make_estimator(name, task.kind, k, cfg.seed, search=plan, balance=balance, resample=resample,
                               preprocessing=prep).fit(given[idx[TRAIN]], y[idx[TRAIN]],
                                                       eval_set=(given[idx[VAL]], y[idx[VAL]]), groups=train_groups)
        s = model.tuning_
        out[name] = Trained(
            name, model.predict_proba(given[idx[TEST]]),
            val_score(task.kind, y[idx[VAL]], model.predict_proba(given[idx[VAL]]), plan.metric),
            saved=lambda m=model: checked_portable(m, x, raw), params={"model": name, **model.params_},
            line=None if s is None else (f"{len(s.trials)} settings by grouped {len(s.splits)}-fold CV on the training "
                                         f"split ({s.fits} fits, {s.seconds:.0f} s), kept {s.best or 'the defaults'}"),
            fitted=model)
    return out


def searched(cfg: TrainConfig, task: Task, name: str, data: dict[str, np.ndarray], x_val: np.ndarray,
             x_test: np.ndarray, setup: Setup, plan: TuningPlan, balance: Balance, concurrent: int,
             runs: str) -> Trained:
    """A ``tune`` network under the Ray Tune search of its ``tune_space`` (``--trials``; 0: one run at its defaults)
    on ``data`` (the training split, resampled, and the validation split, which stops it); the best trial's weights
    read back (call it inside the run's storage: a temporary one goes after) and scored on ``x_test``
    (:func:`tuned`)."""
    # pragma: no mutate block (the runs on Ray, a train run's tests; what they run and give back: tuning_setup's,
    # tuning_line's and tuned's)
    own = tuning_setup(name, setup, balance)
    found = (tune_trials(data, own, cfg.trials, cfg.time_budget_s, concurrent, cfg.grace_rounds) if cfg.trials
             else single_run(data, own, dict(own.model.params[NETWORK])))
    return tuned(task, name, own, found, tuning_line(cfg.trials, concurrent, runs), x_val, data["y_val"], x_test,
                 plan)


def tuning_setup(name: str, setup: Setup, balance: Balance) -> Setup:
    """``setup`` for the ``tune`` network ``name``: its rounds and its patience in rounds as the job gives them
    (``--max-rounds``, ``--patience``), the patience not shortened by epochs on a small table."""
    return scheduled(name, setup, balance, max_rounds=setup.schedule.max_rounds, patience=setup.schedule.patience,
                     patience_epochs=None)


def tuning_line(trials: int, concurrent: int, runs: str) -> str:
    """How a ``tune`` network was tuned (``trials``: ``--trials``), in the run record's words."""
    if trials:
        return f"Optuna TPE (Bayesian) with ASHA early termination, {concurrent} concurrent trial(s) of {runs}"
    return f"no search: default hyper-parameters, {runs}"


def tuned(task: Task, name: str, setup: Setup, found: TuningResult, line: str, x_val: np.ndarray, y_val: np.ndarray,
          x_test: np.ndarray, plan: TuningPlan) -> Trained:
    """The network ``found`` (its trials' best, of ``setup``'s candidate) back in this process from its checkpoint:
    its test probabilities, its validation score and its saved form.

    The score is the search's own for the default metric; another (``--select-by``) scores the network's state on
    ``x_val``."""
    spec, kind, k = setup.model, task.kind, task.n_classes
    network = {**spec.params[NETWORK], **found.params}
    shape = (x_test.shape[1],)
    net = spec.restore(shape, kind, k, network, load_checkpoint(found.checkpoint, setup.storage))
    score = found.best_val_score if plan.metric is None else val_score(
        kind, y_val, spec.predict(net, x_val, kind, k), plan.metric)
    return Trained(name, spec.predict(net, x_test, kind, k), score,
                   saved=spec.save and (lambda: spec.save(net, shape, kind, k, {**spec.params, NETWORK: network})),
                   params=found.params, line=line, network=net, found=found, setup=setup)


def streamed(cfg: TrainConfig, task: Task, name: str, features: FeatureSet, idx: dict[int, np.ndarray],
             setup: Setup, balance: Balance) -> Trained:
    """A ``stream`` network trained on the training split's images streamed by Ray Data, early stopping on the
    validation split's, as one run of ``--workers`` workers at its settings (no search); its validation score at
    its best round and its test probabilities (:func:`from_stream`). ``--resample-per-class`` cannot add rows to the
    stream."""
    # pragma: no mutate block (the run on Ray, a train run's tests; what it reads and gives back: split_rows's and
    # from_stream's)
    own = scheduled(name, setup, balance)  # its rounds and patience its own (a round: one pass of the stream)
    rows = split_rows(features, idx)
    net, shape, found, proba = fit_streamed(features.table, rows[TRAIN], rows[VAL], rows[TEST], own)
    return from_stream(task, name, own, net, (shape.bands, shape.frames), found, proba, cfg.workers)


def split_rows(features: FeatureSet, idx: dict[int, np.ndarray]) -> dict[int, Rows]:
    """Each split's clips (``idx``: positions by split code) as Ray Data's stream reads them: ids and targets."""
    return {code: Rows(features.ids[idx[code]], features.y[idx[code]]) for code in (TRAIN, VAL, TEST)}


def from_stream(task: Task, name: str, setup: Setup, net: nn.Module, shape: tuple[int, int], found: TuningResult,
                proba: np.ndarray, workers: int) -> Trained:
    """The ``stream`` network ``net`` (``setup``'s candidate over images of ``shape``, bands by frames) its run
    gave back: its best round's validation score, ``proba`` on the test split, its saved form at its settings."""
    spec, params = setup.model, dict(setup.model.params)
    rounds = found.trials[0]["rounds"]  # the history skips rounds without a training score
    return Trained(name, proba, found.best_val_score,
                   saved=spec.save and (lambda: spec.save(net, shape, task.kind, task.n_classes, params)),
                   params={"model": name, **params}, resampled=False,
                   line=f"its images streamed by Ray Data, trained on {runner_words(workers)}, {rounds} round(s), "
                        "no search")
