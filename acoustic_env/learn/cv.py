"""Grouped K-fold cross-validation: the train job's evaluation for datasets up to a few thousand clips.

With a few hundred clips, one validation split of 20 % holds a few dozen clips:
its ROC AUC moves by several points from one seed to the next, so picking a
model on it picks noise (the demo once chose a network at validation 0.958
that scored 0.821 on its test split), and a test split of the same size gives
one noisy figure. Cross-validation scores every clip once, by a model that
never saw it or any clip of its group, and pools those out-of-fold
predictions into one set of figures with intervals.

Per fold, everything that learns from data is refitted on the training folds
only: every candidate model of the zoo (``learn.zoo``) with the per-group standardise → PCA preprocessing inside it
(``learn.preprocess.Preprocessing``), which each inner fit of its choices (feature set, settings, probability map)
refits on its own training part too. ``average`` is the mean of the
candidates' out-of-fold probabilities. The chosen model is the candidate
with the best pooled score (``learn.fit.val_score``: ROC AUC, or mAP for
multi-label tasks) among those the artifact can hold without a pickle
(each candidate's saved form, ``acoustic_env.candidates.FORMATS``: every built-in one has one; the average
saved as its members, ``candidates.averageable``); ties go to the simpler model (``ORDER``, the average last). A
candidate that scores higher but cannot be saved (the average when the CNN is one of its members: its
probabilities come from the images) is named as such in the description, never silently passed over.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Sequence

import numpy as np

from acoustic_env import candidates
from acoustic_env.candidates import AVERAGE, FORMATS
from acoustic_env.config import ConfigError
from acoustic_env.learn.augment import Resample
from acoustic_env.learn.balance import Balance
from acoustic_env.learn.calibrate import across_folds
from acoustic_env.learn.feature_sets import ALL, Sets, choose_sets
from acoustic_env.learn.fit import val_score
from acoustic_env.learn.metrics import BOOTSTRAP_REPLICATES, INTERVAL_NOTE, evaluate, headline, intervals
from acoustic_env.learn.preprocess import Preprocessing
from acoustic_env.learn.tuning import TuningPlan, TuningRecord
from acoustic_env.learn.splits import fold_order
from acoustic_env.learn.zoo import make_estimator
from acoustic_env.table import FeatureSet

#: What ``describe`` adds when the CNN is a candidate: it reads the images, not the preprocessed vectors.
CNN_NOTE = (" (cnn: on each clip's log-mel image, augmented in training only, its input scaling fitted and its early "
            "stopping judged on the training folds only)")
#: Simplest first (the registry's order): a tie in the cross-validated score goes to the earlier model.
ORDER = candidates.names(after=(AVERAGE,))


@dataclass(frozen=True)
class CVResult:
    """Out-of-fold probabilities per model, their pooled scores, the model they choose and the best overall."""

    folds: np.ndarray
    proba: dict[str, np.ndarray]
    scores: dict[str, float]
    chosen: str
    best: str
    searches: dict[str, list[TuningRecord]] = field(default_factory=dict)  # per model, each fold model's search
    #: per model, each fold's feature set: {"set": chosen, "scores": every set's pooled inner score} (a search only)
    feature_sets: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: per model, each fold model's probability map: {"method", "log_loss": every map's inner log loss} (calibrated;
    #: the CNN's, chosen on the other outer folds: ``learn.calibrate.across_folds``)
    calibration: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: per model, the out-of-fold probabilities before each fold model's map (calibrated models only)
    raw_proba: dict[str, np.ndarray] = field(default_factory=dict)
    #: per vector model with a preprocessing, each fold model's components per group: {"fold", "rule", "components"}
    components: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: per fold, the count rule the vector models share: {"fold", "rule", "scores": each rule's mean inner score}
    rules: list[dict[str, Any]] = field(default_factory=list)


def given_folds(features: FeatureSet, column: str) -> tuple[np.ndarray, list[str]]:
    """Fold index (0..F-1) per clip from a column the manifest carried, and the fold names in index order.

    Published folds are honoured exactly, so results compare with published
    ones; a clip without a value is an error, not a guess. The names keep the
    published order (numbers numerically: UrbanSound8K's fold 10 after fold 9,
    not after fold 1), so the record's "fold 2" is the collection's fold 2.
    """
    table = features.table
    if column not in table.schema.names:
        raise ConfigError(f"folds_column: {column!r} is not a column of {table.source} "
                          f"(columns: {', '.join(n for n in table.schema.names if n not in table.vector_columns())})")
    read = table.dataset().to_table(columns=["clip_id", column])
    lookup = dict(zip(read["clip_id"].to_pylist(), read[column].to_pylist()))
    values = [lookup.get(c) for c in features.ids]
    missing = [c for c, v in zip(features.ids, values) if v is None or str(v).strip() == ""]
    if missing:
        raise ConfigError(f"folds_column: {len(missing)} clip(s) have no {column!r} value, e.g. {missing[0]}")
    texts = [str(v).strip() for v in values]
    names = sorted(set(texts), key=fold_order)
    if len(names) < 2:
        raise ConfigError(f"folds_column: {column!r} must hold at least 2 distinct folds, got {names}")
    position = {n: i for i, n in enumerate(names)}
    return np.array([position[t] for t in texts], dtype=np.int64), names


def out_of_fold(x: np.ndarray, y: np.ndarray, folds: np.ndarray, kind: str, n_classes: int,
                models: Sequence[str], seed: int = 0, groups: np.ndarray | None = None,
                search: TuningPlan = TuningPlan(), threads: int | None = None, balance: Balance = Balance(),
                inputs: dict[str, np.ndarray] | None = None, preprocessing: Preprocessing | None = None,
                feature_sets: Sets | None = None, calibrate: bool = False, resample: Resample | None = None
                ) -> CVResult:
    """Every model's out-of-fold probabilities, each row from the fold model that held it out (plus ``average``),
    and what each fold model chose (``CVResult``; ``chosen``, ``best`` and ``scores`` left for ``choose``).

    ``x``: every row's inputs, the raw columns of every group when ``preprocessing`` is given (each model then
    fits it on the rows of each of its fits, ``learn.zoo.make_estimator``), else the model inputs as they are.
    ``groups``: each fold model's own search (logistic regression's C; ``search`` settings of xgboost and the
    MLP) runs grouped CV on the training folds only, so no trial is scored on a clip of the fold that evaluates
    it (nested cross-validation). ``threads``: each fit's threads (xgboost, torch; None: every core).
    ``balance``: how every fold model weighs rare classes (``learn.balance``).
    ``inputs``: a model's own inputs of every row, which learn nothing from the data before it (the CNN's
    images, ``learn.spectro``), in place of ``x``; held out by the same folds.
    ``feature_sets``: each vector model (with ``groups`` and ``preprocessing``) also chooses its feature set on the
    training folds' inner folds (``learn.feature_sets.choose_sets``, at its default settings), and the vector
    models together the PCA count rule, where it cuts a target; each then searches its own settings on that set.
    ``calibrate``: each fold model (with ``groups``) also chooses a probability map on its inner folds
    (``learn.calibrate``); the probabilities are the mapped ones, and the models' own are kept beside them. A model
    that chooses none on its inner folds (the CNN) takes one chosen on the other outer folds
    (``learn.calibrate.across_folds``).
    ``resample``: every fold model resamples its training folds' rows (``learn.augment``); the held-out fold is
    scored as it is.
    """
    proba = {m: np.zeros((len(y), n_classes)) for m in models}
    raw = ({m: np.zeros((len(y), n_classes)) for m in models if candidates.get(m).calibrated}
           if calibrate and groups is not None else {})
    searches: dict[str, list[TuningRecord]] = {m: [] for m in models}
    chosen: dict[str, list[dict[str, Any]]] = {}
    maps: dict[str, list[dict[str, Any]]] = {}
    components: dict[str, list[dict[str, Any]]] = {}
    by_set = feature_sets if feature_sets and groups is not None and preprocessing is not None else None
    # where no set is searched, the count rule still is (where it cuts a target), on the one set of every group
    sets = by_set or ({ALL: preprocessing.groups} if groups is not None and preprocessing is not None else None)
    vector = [m for m in models if m not in (inputs or {})]
    rules: list[dict[str, Any]] = []
    for k in np.unique(folds):
        test = folds == k
        choice = choose_sets(
            lambda m, prep: make_estimator(m, kind, n_classes, seed, threads, TuningPlan(1, search.inner_folds),
                                           balance=balance, resample=resample, preprocessing=prep,
                                           rows=int((~test).sum())),
            vector, sets, preprocessing, x[~test], y[~test], groups[~test], search.inner_folds, seed, kind,
            search.metric) if sets and vector else None
        if choice is not None and choice.rule_scores:
            rules.append({"fold": int(k), "rule": choice.rule, "scores": choice.rule_scores})
        for m in models:
            own = m in (inputs or {})
            xm, prep = (inputs[m], None) if own else (x, preprocessing)
            defaults_score = None
            if choice is not None and not own:
                name, scores, defaults_score = choice.sets[m]
                prep = preprocessing.with_rule(choice.rule).only(sets[name])
                if by_set:
                    chosen.setdefault(m, []).append({"fold": int(k), "set": name, "scores": scores,
                                                     "rule": choice.rule})
            est = make_estimator(m, kind, n_classes, seed, threads, search=search, balance=balance,
                                 calibrate=m in raw, resample=resample, preprocessing=prep).fit(
                xm[~test], y[~test], groups=None if groups is None else groups[~test], defaults_score=defaults_score)
            proba[m][test] = est.predict_proba(xm[test])
            searches[m] += [est.tuning_] if est.tuning_ is not None else []
            if est.transforms_ is not None:
                components.setdefault(m, []).append({"fold": int(k), "rule": prep.rule, "components": {
                    t.group: t.n_components for t in est.transforms_}})
            if m in raw:
                raw[m][test] = est.predict_proba(xm[test], calibrated=False)
                maps.setdefault(m, []).append({"fold": int(k), "method": est.calibration_.method
                                               if est.calibration_ is not None else "none",
                                               "log_loss": est.calibration_losses_})
    for m in models:  # a network that chose no map on its inner folds takes one across the outer folds
        if calibrate and groups is not None and not candidates.get(m).calibrated:
            raw[m] = proba[m]
            proba[m], maps[m] = across_folds(proba[m], y, kind, folds)
    if len(models) > 1:
        proba[AVERAGE] = np.mean([proba[m] for m in models], axis=0)
    return CVResult(folds=folds, proba=proba, scores={}, chosen="", best="", searches=searches, feature_sets=chosen,
                    calibration=maps, raw_proba=raw, components=components, rules=rules)


def best_of(scores: dict[str, float]) -> str:
    """The model with the best score; ties go to the simplest (``ORDER``)."""
    rank = {m: (ORDER.index(m) if m in ORDER else len(ORDER)) for m in scores}
    return max(scores, key=lambda m: (round(scores[m], 12), -rank[m]))


def choose(kind: str, y: np.ndarray, proba: dict[str, np.ndarray],
           metric: str | None = None) -> tuple[str, str, dict[str, float]]:
    """(chosen model, best model, every model's score): the best pooled score (``metric``, ``--select-by``; None:
    the task's default) among the models the artifact can save, and among all; ties go to the simplest."""
    scores = {m: val_score(kind, y, p, metric) for m, p in proba.items()}
    saveable = {m: s for m, s in scores.items() if m in FORMATS or (m == AVERAGE and candidates.averageable(list(scores)))}
    if not saveable:
        raise ConfigError(f"baselines: none of the models compared ({', '.join(scores)}) can be saved; "
                          f"include one of {', '.join(FORMATS)}")
    return best_of(saveable), best_of(scores), scores


def cross_validate(x: np.ndarray, y: np.ndarray, folds: np.ndarray, kind: str, n_classes: int,
                   models: Sequence[str], seed: int = 0, groups: np.ndarray | None = None,
                   search: TuningPlan = TuningPlan(), threads: int | None = None,
                   balance: Balance = Balance(), inputs: dict[str, np.ndarray] | None = None,
                   preprocessing: Preprocessing | None = None, feature_sets: Sets | None = None,
                   calibrate: bool = False, resample: Resample | None = None) -> CVResult:
    """Out-of-fold probabilities of every candidate and the choice among them (``x``, ``groups``, ``search``,
    ``threads``, ``balance``, ``inputs``, ``preprocessing``, ``feature_sets``, ``calibrate``, ``resample``: see
    ``out_of_fold``)."""
    result = out_of_fold(x, y, folds, kind, n_classes, models, seed, groups, search, threads, balance, inputs,
                         preprocessing, feature_sets, calibrate, resample)
    chosen, best, scores = choose(kind, y, result.proba, search.metric)
    return replace(result, scores=scores, chosen=chosen, best=best)


def report(result: CVResult, kind: str, class_names: list[str], y: np.ndarray, units: np.ndarray,
           seed: int = 0) -> dict[str, dict[str, Any]]:
    """Per model: ``pooled`` (``evaluate`` on all out-of-fold predictions), ``intervals``, ``per_fold``, ``score``."""
    out = {}
    for m, p in result.proba.items():
        per_fold = []
        for k in np.unique(result.folds):
            rows = result.folds == k
            per_fold.append({"fold": int(k), "n": int(rows.sum()), **headline(kind, y[rows], p[rows])})
        out[m] = {"pooled": evaluate(kind, class_names, y, p), "intervals": intervals(kind, y, p, units, seed),
                  "per_fold": per_fold, "score": result.scores[m]}
    return out


def describe(n_clips: int, n_folds: int, given: str | None, grouped: bool, result: CVResult, saved: str,
             metric: str | None = None) -> str:
    """How the reported figures were obtained, in one paragraph for the report and the run record (``metric``: the
    ``--select-by`` metric named, None: the task's default)."""
    selection = "ROC AUC; mAP for multi-label tasks" if metric is None else f"{metric}, --select-by"
    how = (f"the {n_folds} folds of column {given!r}" if given else
           f"{n_folds} stratified folds{' that keep every group (source recording) in one fold' if grouped else ''}")
    models = [m for m in result.proba if m != AVERAGE]
    passed_over = (f" {result.best} scored higher ({result.scores[result.best]:.3f} against "
                   f"{result.scores[result.chosen]:.3f}) but has no pickle-free saved form, so it is not the chosen "
                   f"model." if result.best != result.chosen else "")
    return (f"{n_folds}-fold cross-validation over all {n_clips} clips ({how}). For each fold the preprocessing "
            f"(standardise, PCA per feature group) and each model ({', '.join(models)}) were fitted on the other "
            f"folds only and scored the held-out fold, the preprocessing refitted inside every inner fit of each "
            f"choice made on those folds{CNN_NOTE if 'cnn' in models else ''}; the figures pool these "
            f"out-of-fold predictions (every clip scored once). {INTERVAL_NOTE.format(n=BOOTSTRAP_REPLICATES)} "
            f"The chosen model, "
            f"{result.chosen}, has the best pooled score ({selection}) of the models that "
            f"can be saved.{passed_over} The saved model is {saved}"
            f"{'' if saved == result.chosen else ' (asked for with saved_model, not the chosen model)'}, "
            f"refitted on all {n_clips} clips: it has "
            f"no held-out figure of its own; the cross-validated figures estimate how it does on new recordings.")
