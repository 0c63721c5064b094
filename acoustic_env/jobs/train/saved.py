"""The saved model under cross-validation: the chosen model (or ``saved_model``) refitted on every clip.

One candidate, or the compared models' average (``learn.portable.Average``) when it scored best: each member
is refitted as every outer fold fitted it, on the feature set it chooses on the inner folds of all clips and
with the probability map it chooses there, so the saved average is the model the out-of-fold figure measured.
Each fitted model is checked against its saved form on every clip (``evaluation.checked_portable``), and the
average against the mean of its members.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from acoustic_env import candidates
from acoustic_env.candidates import AVERAGE
from acoustic_env.config import TrainConfig
from acoustic_env.jobs.train.evaluation import (
    CV_THREADS,
    checked_portable,
    class_balance,
    narrowed,
    preprocessing,
    resample_plan,
)
from acoustic_env.learn.calibrate import outer_map
from acoustic_env.learn.feature_sets import ALL, Sets, SetChoice, choose_sets
from acoustic_env.learn.portable import SAVED_TOLERANCE, Average, Portable
from acoustic_env.learn.preprocess import ROWS_PER_COMPONENT
from acoustic_env.learn.transform import GroupTransform, columns_of
from acoustic_env.learn.tuning import TuningPlan, TuningRecord
from acoustic_env.learn.zoo import ZooClassifier, make_estimator
from acoustic_env.table import FeatureSet, GroupInfo
from acoustic_env.vocabulary.tasks import Task

FEATURE_SET_REASON = "not in the feature set the saved model chose on its inner folds"


@dataclass(frozen=True)
class Saved:
    """The saved model refitted on every clip, and what the report explains of it."""

    name: str  # a candidate's, or AVERAGE
    estimator: Portable | Average  # what the artifact holds
    fitted: dict[str, ZooClassifier]  # the saved model, or the average's members, by name
    portables: dict[str, Portable]  # their saved forms
    groups: dict[str, list[str]]  # the feature groups each reads
    sets: dict[str, dict[str, Any]]  # each one's feature set, chosen on the inner folds of all clips (a search only)
    features: FeatureSet  # narrowed to the groups the saved model reads, when a search chose them
    transforms: list[GroupTransform]  # of every group of ``features``
    x: np.ndarray  # the model inputs of every clip: every group of ``features``
    rule: int  # the rows per PCA component its groups keep (``learn.preprocess``), chosen on all clips' inner folds
    rule_scores: dict[int, float]  # each count rule tried there: the models' mean inner score (none: not searched)

    def view(self, model: str) -> tuple[list[GroupTransform], list[GroupInfo], np.ndarray]:
        """The preprocessing, groups and inputs of every clip that ``model`` (one of ``fitted``) reads."""
        keep = set(self.groups[model])
        columns = columns_of(self.transforms, list(keep))
        return ([t for t in self.transforms if t.group in keep],
                [g for g in self.features.feature_groups if g.name in keep], self.x[:, columns])

    @property
    def params(self) -> dict[str, Any]:
        """The run record's hyper-parameters: the model's settings, or each member's under its name (a row each in
        the report's table)."""
        if self.name != AVERAGE:
            return {"model": self.name, **self.fitted[self.name].params_}
        return {"model": AVERAGE, **{m: f.params_ for m, f in self.fitted.items()}}

    @property
    def searches(self) -> dict[str, TuningRecord]:
        """Each refitted model's own search on all clips (the models that searched)."""
        return {m: f.tuning_ for m, f in self.fitted.items() if f.tuning_ is not None}

    @property
    def calibration(self) -> dict[str, Any]:
        """The probability map the saved model chose on all clips' inner folds (each member's, for the average)."""
        maps = {m: f.calibration_.method if f.calibration_ is not None else "none" for m, f in self.fitted.items()}
        if self.name != AVERAGE:
            return {"method": maps[self.name], "log_loss": self.fitted[self.name].calibration_losses_}
        return {"method": "; ".join(f"{m} {method}" for m, method in maps.items()),
                "log_loss": {m: f.calibration_losses_ for m, f in self.fitted.items()}}

    @property
    def components(self) -> dict[str, dict[str, int]]:
        """Each refitted vector model's PCA components per group (``Preprocessing``'s count rule on all clips)."""
        return {m: {t.group: t.n_components for t in f.transforms_} for m, f in self.fitted.items()
                if f.transforms_ is not None}

    def set_record(self) -> dict[str, Any] | None:
        """The report's and record's saved feature set (``feature_sets["saved"]``): the model's choice, or each
        member's in one line; None without a search, or for an image model."""
        if not self.sets:
            return None
        if self.name != AVERAGE:
            return self.sets[self.name]
        return {"model": AVERAGE, "set": "; ".join(f"{m} {s['set']}" for m, s in self.sets.items()),
                "groups": [g.name for g in self.features.feature_groups], "members": list(self.sets.values())}


def _choice(cfg: TrainConfig, task: Task, sets: Sets | None, features: FeatureSet, models: list[str],
            plan: TuningPlan) -> SetChoice:
    """The vector ``models``' feature sets (each, when ``sets``) and the count rule they share, chosen as each outer
    fold chose them, on the inner folds of all clips (each inner fit with its preprocessing fitted on its own training
    part, and fitted the way the saved model, of all clips, is)."""
    prep, raw = preprocessing(cfg, features)
    return choose_sets(
        lambda model, own: make_estimator(model, task.kind, task.n_classes, cfg.seed, CV_THREADS,
                                          TuningPlan(1, plan.inner_folds), balance=class_balance(cfg),
                                          resample=resample_plan(cfg), preprocessing=own, rows=len(features.y)),
        models, sets or {ALL: prep.groups}, prep, raw, features.y, features.groups, plan.inner_folds, cfg.seed,
        task.kind, plan.metric)


@dataclass(frozen=True)
class Taken:
    """What the saved model takes, chosen on the inner folds of all clips before it is fitted on them."""

    models: list[str]  # the saved model, or the average's members in the compared order
    groups: dict[str, list[str]]  # the feature groups each reads (an image model: every group, read by none)
    sets: dict[str, dict[str, Any]]  # each vector model's feature set and its inner scores (a set search only)
    features: FeatureSet  # narrowed to the groups the models read, when a search chose them
    rule: int  # the rows per PCA component the groups keep (the default's without a vector model)
    rule_scores: dict[int, float]  # each count rule tried: the models' mean inner score (none: not searched)


def take(cfg: TrainConfig, task: Task, features: FeatureSet, saved: str, compared: list[str], sets: Sets | None,
         plan: TuningPlan, images: dict[str, np.ndarray]) -> Taken:
    """Which models the saved model ``saved`` fits (itself, or each compared model for ``AVERAGE``), on which
    feature set each and which PCA count rule they share, chosen as each outer fold chose them, on grouped inner
    folds of all clips (``learn.feature_sets.choose_sets``); arguments as :func:`refit`'s.

    Why apart from the fits: the choice is the saved model's logic, which its tests check on small tables, and
    the fits on every clip take what it chose."""
    models = [m for m in compared if m != AVERAGE] if saved == AVERAGE else [saved]
    vector = [m for m in models if m not in images]
    choice = _choice(cfg, task, sets, features, vector, plan) if vector else None
    chosen = ({m: {"model": m, "set": name, "groups": list(sets[name]), "scores": scores, "rule": choice.rule}
               for m, (name, scores, _) in choice.sets.items()} if sets is not None and choice else {})
    if chosen:  # the saved model reads its own set(s): predict, serve and annotate compute only those
        features = narrowed(features, {g for s in chosen.values() for g in s["groups"]}, FEATURE_SET_REASON)
    every = [g.name for g in features.feature_groups]
    return Taken(models, {m: chosen[m]["groups"] if m in chosen else every for m in models}, chosen, features,
                 ROWS_PER_COMPONENT if choice is None else choice.rule, {} if choice is None else choice.rule_scores)


def refit(cfg: TrainConfig, task: Task, features: FeatureSet, saved: str, compared: list[str],
          sets: Sets | None, plan: TuningPlan, images: dict[str, np.ndarray],
          outer: tuple[dict[str, np.ndarray], np.ndarray] | None = None) -> Saved:
    """``saved`` (a compared model, or ``AVERAGE`` of the ``compared`` ones) fitted on every clip, in its saved form,
    as :func:`take` chose it.

    ``sets``: the feature sets the vector models chose among in the outer folds (None: every model reads every
    group); ``images``: the image models' inputs, which read no group. ``outer``: the cross-validation's
    out-of-fold probabilities before any map, per model, and its folds: a model that chooses no map on its inner
    folds (the CNN) takes the one chosen on them (``learn.calibrate.outer_map``), as its fold models did. Each vector model is fitted with its
    preprocessing inside (``learn.preprocess.Preprocessing``): its searches and probability map refit the PCA on
    each inner split, and the PCA it keeps, fitted on every clip, is the artifact's (``transforms``).
    """
    taken = take(cfg, task, features, saved, compared, sets, plan, images)
    features, groups = taken.features, taken.groups
    prep, raw = preprocessing(cfg, features)
    prep = prep.with_rule(taken.rule)
    transforms = list(prep.fit(raw))  # every model's own fit of a group on all clips is this one (the same rows)
    x = prep.transform(transforms, raw)
    fitted, portables = {}, {}
    for m in taken.models:
        own = m in images
        fitted[m] = make_estimator(m, task.kind, task.n_classes, cfg.seed, CV_THREADS, search=plan,
                                   balance=class_balance(cfg), calibrate=True, resample=resample_plan(cfg),
                                   preprocessing=None if own else prep.only(groups[m])).fit(
            images[m] if own else raw, features.y, groups=features.groups)
        if outer is not None and m in outer[0] and not candidates.get(m).calibrated:
            fitted[m].calibration_, fitted[m].calibration_losses_ = outer_map(outer[0][m], features.y, task.kind,
                                                                              outer[1])
        portables[m] = (checked_portable(fitted[m], images[m]) if own else
                        checked_portable(fitted[m], x[:, columns_of(transforms, groups[m])], raw))
    estimator: Portable | Average = portables[saved] if saved != AVERAGE else _average(
        portables, groups, transforms, x, {m: f.predict_proba(images[m] if m in images else raw)
                                           for m, f in fitted.items()})
    return Saved(saved, estimator, fitted, portables, groups, taken.sets, features, transforms, x, taken.rule,
                 taken.rule_scores)


def _average(portables: dict[str, Portable], groups: dict[str, list[str]], transforms: list[GroupTransform],
             x: np.ndarray, fitted_proba: dict[str, np.ndarray]) -> Average:
    """The members' average in its saved form, checked to give the mean of the fitted members' probabilities on
    every clip to ``learn.portable.SAVED_TOLERANCE`` (as each member's saved form is checked against it)."""
    average = Average(tuple(portables.values()), tuple(tuple(groups[m]) for m in portables),
                      tuple(columns_of(transforms, groups[m]) for m in portables))
    worst = float(np.abs(average.predict_proba(x) - np.mean(list(fitted_proba.values()), axis=0)).max())
    if worst > SAVED_TOLERANCE:
        raise RuntimeError(f"the saved average differs from its fitted members' by {worst:.2g} on the training clips")
    return average
