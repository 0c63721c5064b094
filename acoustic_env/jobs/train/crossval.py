"""The train job's cross-validation (up to ``cv_max_clips`` clips, or ``folds_column``), and the grid before it.

Grouped (or given) K-fold CV of the zoo's models (``learn.cv``), pooled
out-of-fold figures with intervals, the model chosen by its pooled score and
refitted on every clip (see ``job``'s docstring for when it runs).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from acoustic_env.vocabulary.tasks import Task
from acoustic_env.config import ConfigError, TrainConfig
from acoustic_env.jobs.labelled import grouped_folds
from acoustic_env.jobs.train.ablation import ablation_sets
from acoustic_env.jobs.train.evaluation import (
    CV_THREADS,
    Outcome,
    class_balance,
    compared,
    image_inputs,
    network_shap,
    narrowed,
    preprocessing,
    resample_plan,
    shap_rows,
    slim,
    split_counts,
    tuning_plan,
)
from acoustic_env.jobs.train.explain import importances, zoo_attributions
from acoustic_env.jobs.train.grid import HAND_MADE, check_columns, compare, grid_embedders
from acoustic_env.jobs.train.grid import cells as grid_cells
from acoustic_env.pages.report import clip_predictions
from acoustic_env.jobs.train.saved import FEATURE_SET_REASON, refit
from acoustic_env.jobs.train.shuffled import shuffled_contrast
from acoustic_env.learn.cv import ORDER, CVResult, cross_validate, describe, given_folds
from acoustic_env.learn.cv import report as cv_report
from acoustic_env.learn.feature_sets import Sets, candidate_sets
from acoustic_env.learn.fit import HISTORY, default_metric
from acoustic_env.learn.metrics import evaluate, headline, intervals
from acoustic_env.learn.preprocess import component_rule
from acoustic_env.candidates import PARAMS as ZOO_PARAMS
from acoustic_env.candidates import get as spec
from acoustic_env.learn.tuning import TuningRecord
from acoustic_env.learn.splits import leaks
from acoustic_env.learn.zoo import make_estimator
from acoustic_env.table import FeatureSet

GRID_REASON = "not in the grid's winning cell"


def _nested_tuning(result: CVResult) -> dict[str, dict[str, Any]]:
    """Per tuned model, what its fold models' tuning tried and cost (the report's and the record's figures):
    the space, and every setting tried in each outer fold with its inner score (``trials``, one list per fold)."""
    return {m: {"settings": max(len(r.trials) for r in records), "asked": records[0].asked,
                "inner_folds": len(records[0].splits), "outer_folds": len(records),
                "fits": sum(r.fits for r in records), "seconds": round(sum(r.seconds for r in records), 2),
                "space": records[0].space, "chosen": [r.best for r in records],
                "inner_scores": [max(t["score"] for t in r.trials) for r in records],  # the chosen settings'
                "trials": [[{"params": t["params"], "score": round(t["score"], 4)} for t in r.trials]
                           for r in records],
                "metric": records[0].metric}
            for m, records in result.searches.items() if records}


def _cv_tuning_note(candidates: list[str], n_folds: int, nested: dict[str, dict[str, Any]],
                    finals: dict[str, TuningRecord], saved: str) -> str:
    """What tuned what under cross-validation, over which space, and what it cost, in a few sentences (console,
    report, record)."""
    done = [f"{m} {'C over ' + str(n['settings']) + ' values' if m == 'logreg' else str(n['settings']) + ' settings'} "
            f"x {n['inner_folds']} inner folds in each of {n['outer_folds']} outer folds ({n['fits']} inner fits, "
            f"{n['seconds']:.0f} s)" for m, n in nested.items()]
    short = [f"{m} tried {min(len(t) for t in n['trials'])} distinct settings in some outer fold, of "
             f"{n['asked']} asked: its space holds few" for m, n in nested.items()
             if n["asked"] and min(len(t) for t in n["trials"]) < n["asked"]]
    spaces = [f"{m}: " + ", ".join(f"{k} {r}" for k, r in n["space"].items()) for m, n in nested.items()
              if n["space"]]
    fixed = [m for m in candidates if m not in nested and not spec(m).tunes_itself]
    note = (f"Nested tuning, scored by grouped cross-validation on each outer fold's training clips only: "
            f"{'; '.join(done)}." if done else "No grouped tuning.")
    if spaces:
        note += (f" Each tuned model tried its defaults first, then settings drawn by Optuna's TPE (seeded by "
                 f"--seed) from its space: {'; '.join(spaces)}.")
    if short:
        note += f" {'; '.join(short)}."
    for m in (m for m in candidates if spec(m).tunes_itself and m not in nested):  # multi-label, or too few groups
        note += f" {m}'s C by an ungrouped inner CV on the training folds (or a fixed C with too few clips)."
    if fixed:
        note += f" {', '.join(fixed)} at fixed hyper-parameters."
    kept = {m: f"({len(f.trials)} settings x {len(f.splits)} folds, {f.seconds:.0f} s) and kept "
               f"{f.best or 'the defaults'}" for m, f in finals.items()}
    if saved in kept:
        note += f" The saved {saved} was tuned the same way on all clips {kept[saved]}."
    elif kept:  # the average: each member's own tuning
        note += (f" The saved {saved}'s members were tuned the same way on all clips: "
                 + "; ".join(f"{m} {k}" for m, k in kept.items()) + ".")
    return note + f" ({n_folds} outer folds; Ray Tune tunes the network with the train/val/test split, " \
                  f"--cv-folds 0.)"


def _folds(cfg: TrainConfig, task: Task, features: FeatureSet, counts: dict[str, Any]) -> tuple[np.ndarray, list[str]]:
    """The outer folds (given by ``folds_column``, else grouped and stratified) and their names."""
    if cfg.folds_column:
        return given_folds(features, cfg.folds_column)
    folds = grouped_folds(features, task, cfg.cv_folds, cfg.seed, counts["duplicates"], field="cv_folds")
    return folds, [str(f + 1) for f in range(int(folds.max()) + 1)]


def _in_memory(cfg: TrainConfig, features: FeatureSet, field: str) -> None:
    """Cross-validation refits the preprocessing per fold on the whole matrix: a streamed table cannot take it."""
    if features.X is None:
        raise ConfigError(f"{field}: cross-validation holds the features in memory, and these exceed memory_gb="
                          f"{cfg.memory_gb:g}; raise memory_gb or pass cv_folds=0 for the train/val/test split")


def _images(candidates: list[str], features: FeatureSet) -> dict[str, np.ndarray]:
    """The image candidates' own inputs (the log-mel images): ``learn.cv.cross_validate``'s ``inputs``."""
    return {m: image_inputs(features, m) for m in candidates if spec(m).inputs == "images"}


def run_grid(cfg: TrainConfig, task: Task, features: FeatureSet, counts: dict[str, Any]) -> tuple[FeatureSet, dict]:
    """Every cell of the grid cross-validated on the same folds; the features narrowed to the winner's groups.

    The grid's ``result`` is the winning cell's cross-validation, which the train job reuses: the same folds,
    clips and groups, so running it again would give the same figures.
    """
    _in_memory(cfg, features, "grid")
    plan_cells = grid_cells(grid_embedders(cfg.grid_embedders, features.columns), cfg.grid_signals,
                            cfg.feature_groups or HAND_MADE)
    check_columns(plan_cells, features)
    folds, _ = _folds(cfg, task, features, counts)
    candidates = [m for m in ORDER if m in compared(cfg)]
    plan = tuning_plan(cfg)
    kind, y, balance = task.kind, features.y, class_balance(cfg)
    images = _images(candidates, features)
    prep, raw = preprocessing(cfg, features)
    result = compare(
        plan_cells,
        lambda cell: cross_validate(raw, y, folds, kind, task.n_classes, candidates, cfg.seed, features.groups, plan,
                                    CV_THREADS, balance, images, prep.only(cell.groups), calibrate=True,
                                    resample=resample_plan(cfg)),
        lambda p: headline(kind, y, p)["roc_auc"],
        lambda p: intervals(kind, y, p, features.groups, cfg.seed).get("roc_auc"))
    return narrowed(features, set(result["winner"]["groups"]), GRID_REASON), result


def _feature_set_choice(cfg: TrainConfig, features: FeatureSet) -> Sets | None:
    """The feature sets every vector model chooses among on its inner folds (``learn.feature_sets``); None when
    ``--feature-groups`` pins the groups, the grid chose them, or the table offers one set only."""
    sets = {} if cfg.feature_groups or cfg.grid else candidate_sets(features.feature_groups)
    return sets or None


def feature_set_table(sets: dict[str, tuple[str, ...]], per_model: dict[str, list[dict[str, Any]]]
                      ) -> dict[str, dict[str, dict[str, Any]]]:
    """Model x feature set: the mean of its pooled inner scores over the outer folds, and how many folds chose it."""
    return {m: {s: {"inner_score": (round(float(np.mean(v)), 4) if (v := [f["scores"][s] for f in folds
                                                                          if s in f["scores"]]) else None),
                    "chosen_in": sum(f["set"] == s for f in folds)} for s in sets}
            for m, folds in per_model.items()}


def run_cross_validation(cfg: TrainConfig, task: Task, features: FeatureSet, counts: dict[str, Any],
                         timings: dict[str, float], t: float, done: CVResult | None = None) -> Outcome:
    """Grouped (or given) K-fold CV of the zoo's models; the chosen network refitted on every clip.

    ``done``: this very cross-validation, already run (the grid's winning cell on the same folds), reused.
    """
    _in_memory(cfg, features, "cv_folds")
    kind, k, names = task.kind, task.n_classes, list(task.class_names)
    folds, fold_names = _folds(cfg, task, features, counts)
    n_folds = int(folds.max()) + 1
    timings["read_and_preprocess_s"] = time.time() - t
    t = time.time()
    candidates = [m for m in ORDER if m in compared(cfg)]
    plan, balance, resample = tuning_plan(cfg), class_balance(cfg), resample_plan(cfg)
    images = _images(candidates, features)
    sets = None if done else _feature_set_choice(cfg, features)
    prep, raw = preprocessing(cfg, features)
    result = done or cross_validate(raw, features.y, folds, kind, k, candidates, cfg.seed, features.groups, plan,
                                    CV_THREADS, balance, images, prep, sets, calibrate=True, resample=resample)
    detail = cv_report(result, kind, names, features.y, features.groups, cfg.seed)
    timings["cross_validation_s"] = time.time() - t
    shuffled = (shuffled_contrast(cfg, task, features, result.chosen, result.proba[result.chosen], n_folds, plan,
                                  images, sets, list(result.proba)) if cfg.compare_shuffled else None)
    models = {m: {"test": d["pooled"], "val_score": d["score"]} for m, d in detail.items()}
    for m, before in result.raw_proba.items():  # the reliability before each fold model's probability map
        models[m]["test"]["calibration_before"] = evaluate(kind, names, features.y, before)["calibration"]

    saved = result.chosen if cfg.saved_model == "chosen" else cfg.saved_model
    t = time.time()
    kept = refit(cfg, task, features, saved, list(result.proba), sets, plan, images,
                 (result.raw_proba, result.folds))
    timings["final_fit_s"] = time.time() - t
    features, transforms = kept.features, kept.transforms
    feature_sets = None if sets is None else {
        "sets": {s: list(g) for s, g in sets.items()}, "per_fold": result.feature_sets,
        "table": feature_set_table(sets, result.feature_sets), "saved": kept.set_record()}
    own_prep, own_raw = preprocessing(cfg, features)  # the saved model's groups; its PCA is kept.transforms

    def on_all_clips(m: str, **options: Any) -> Any:
        """``m`` as the saved model would be, for a figure: fitted on every clip, its PCA inside every inner fit."""
        return kept.fitted[m] if m in kept.fitted else make_estimator(
            m, kind, k, cfg.seed, CV_THREADS, search=plan, preprocessing=own_prep, **options).fit(
            own_raw, features.y, groups=features.groups)

    history, drawn = None, None
    # the tuned network's training history (the split's Ray Tune tuning), from the saved one or one fitted for it
    tuned = next((m for m in candidates if spec(m).trains == "tune"), None)
    if tuned is not None:
        network = on_all_clips(tuned, balance=balance, resample=resample)
        if network.model_ is not None:
            drawn = network.model_.model_
        if network.model_ is not None and network.model_.history_:  # none where it was fitted at once (small tables)
            history = {"rounds": [{key: r[key] for key in HISTORY} for r in network.model_.history_],
                       "title": f"{tuned.upper()} on all {len(features)} clips; validation: "
                                f"{ZOO_PARAMS[tuned]['val_fraction']:.0%} of them, for early stopping"}

    groups = list(features.columns)
    ablations = [{"name": m, "groups": groups, "test": slim(r["test"]), "val_score": r["val_score"]}
                 for m, r in models.items()]
    if cfg.ablations:  # logistic regression: cheap enough to cross-validate on every subset
        t = time.time()
        for name, subset in ablation_sets(groups).items():
            sub = cross_validate(raw, features.y, folds, kind, k, ["logreg"], cfg.seed, threads=CV_THREADS,
                                 balance=balance, preprocessing=prep.only(subset), resample=resample)
            ablations.append({"name": f"logreg, {name}", "groups": subset,
                              "test": slim(evaluate(kind, names, features.y, sub.proba["logreg"])),
                              "val_score": sub.scores["logreg"]})
        timings["ablations_s"] = time.time() - t
    shap: dict[str, Any] = {}
    if cfg.shap_samples and saved not in images:  # SHAP explains the feature groups, which the CNN does not read
        t = time.time()
        everything = np.arange(len(features))
        explain_rows, background_rows = shap_rows(cfg, everything, everything)
        for m, model in kept.fitted.items():  # the saved model, or each member of the saved average
            module = kept.portables[m].logits_module()
            own_transforms, infos, own_x = kept.view(m)
            explained = (zoo_attributions(model, own_transforms, own_x[explain_rows]) if module is None else
                         network_shap(cfg, narrowed(features, set(kept.groups[m]), FEATURE_SET_REASON), module,
                                  own_transforms, explain_rows, background_rows))
            shap.update({m: explained} if explained else {})  # the SVM and kNN: no SHAP explainer of their own
        timings["shap_s"] = time.time() - t
    weighed = {}  # coefficient and impurity importances of the linear models and the forest, fitted on all clips
    for m in (m for m in candidates if spec(m).importance):
        model = on_all_clips(m)
        # one fitted here reads the saved model's groups through a PCA of its own (its count rule chosen on its own
        # inner folds): its components, not the saved model's, are what its coefficients weigh
        own_transforms, infos = kept.view(m)[:2] if m in kept.fitted else (model.transforms_, features.feature_groups)
        weighed.update({m: weights} if (weights := importances(model, own_transforms, infos=infos)) else {})

    counts = {**counts, "leaking_groups": len(leaks(features.groups, folds)),
              "splits": split_counts(task, features, folds, {f: f"fold {fold_names[f]}" for f in range(n_folds)})}
    evaluation = {
        "method": "cross_validation", "folds": n_folds, "folds_column": cfg.folds_column, "fold_names": fold_names,
        "grouped": bool(features.has_groups), "candidates": list(result.proba), "scores": result.scores,
        "chosen": result.chosen, "best": result.best, "saved_model": saved, "feature_sets": feature_sets,
        "select_by": plan.metric or default_metric(kind),
        "calibration": {"per_fold": result.calibration, "saved": kept.calibration},
        "components": {"per_fold": result.components, "saved": kept.components, "rule": component_rule(),
                       "rules": result.rules, "saved_rule": kept.rule, "saved_rule_scores": kept.rule_scores},
        "description": describe(len(features), n_folds, cfg.folds_column, features.has_groups, result, saved,
                                plan.metric)
        + (" Each vector model also chose its feature set on the inner folds of each outer fold's training clips "
           "(Feature sets, below)." if feature_sets else "")
        + (" Each vector model's probabilities are mapped by the calibration it chose on its inner folds (Platt's, "
           "isotonic or none; the ECE before it in brackets)"
           + "".join(f"; {m}'s, which chooses none on its inner folds, by the one chosen on the other outer folds"
                     for m in result.calibration if not spec(m).calibrated)
           + "." if result.calibration else ""),
        "models": {m: {"intervals": d["intervals"], "per_fold": d["per_fold"], "score": d["score"]}
                   for m, d in detail.items()},
        "shuffled": shuffled,
    }
    nested = _nested_tuning(result)
    finals = kept.searches
    search = {"method": _cv_tuning_note(candidates, n_folds, nested, finals, saved), "nested": nested,
              "params": kept.params, "best_val_score": result.scores[saved],
              "trials": [{"model": m, "setting": tr["params"] or "defaults", "inner score": round(tr["score"], 4),
                          "chosen": tr["params"] == final.best} for m, final in finals.items() for tr in final.trials],
              "wall_s": timings["cross_validation_s"]}
    return Outcome(counts=counts, models=models, evaluation=evaluation, search=search, ablations=ablations,
                   shap=shap, transforms=transforms, estimator=kept.estimator, params=kept.params, history=history,
                   network=drawn, network_model=tuned,
                   predictions=clip_predictions(features, np.arange(len(features)), features.y, result.proba),
                   importances=weighed, features=features if feature_sets and feature_sets["saved"] else None)
