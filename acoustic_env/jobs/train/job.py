"""The train job: features/ → evaluation of record → report and model.

This is the Python API behind ``acoustic-env train`` and ``jobs/train.py``.
Two evaluations, chosen by the size of the data (``TrainConfig.cv_max_clips``):

- **cross-validation** (up to ``cv_max_clips`` clips, or with ``folds_column``):
  grouped K-fold CV of the zoo's models at fixed hyper-parameters (``learn.cv``),
  pooled out-of-fold figures with intervals, the model chosen by its pooled
  score and refitted on every clip. One validation split of a few dozen clips
  is too noisy to choose a model on, or to report.
- **split** (larger data, or a ``test_list``): train / validation / test split,
  per-group PCA, the MLP under a Ray Tune search, baselines scored on the test split.

Outputs, below ``cfg.output``:

- ``model/``: the artifact (``acoustic_env.load_model``);
- ``report/index.html`` with its figures and ``metrics.json``;
- ``runs/<run_id>.json``: the run record (config, versions, counts, timings);
- ``ray/``: Ray Tune and Ray Train run directories (checkpoints) unless ``work_dir`` says otherwise.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from torch import nn

from acoustic_env import runs
from acoustic_env.audioset.tasks import Task, load_task
from acoustic_env.config import ConfigError, TrainConfig, validate
from acoustic_env.distributed.session import start_ray
from acoustic_env.distributed.tune import (
    Setup,
    load_checkpoint,
    plan_trials,
    single_run,
    tune_search,
)
from acoustic_env.jobs.train.ablation import ablation_sets, run_ablations
from acoustic_env.jobs.train.explain import mlp_attributions, tree_attributions
from acoustic_env.jobs.train.grid import HAND_MADE, check_columns, compare, grid_lines
from acoustic_env.jobs.train.grid import cells as grid_cells
from acoustic_env.jobs.preflight import MIN_TRAIN_CLIPS, preflight
from acoustic_env.jobs.records import finishes_records, track
from acoustic_env.jobs.train.report import clip_predictions, write_report
from acoustic_env.learn.artifact import save_model
from acoustic_env.learn.cv import ORDER, CVResult, best_of, cross_validate, describe, given_folds
from acoustic_env.learn.cv import report as cv_report
from acoustic_env.learn.duplicates import merge_duplicate_groups, merge_lines, merge_summary
from acoustic_env.learn.eda import explore
from acoustic_env.learn.fit import DEFAULT_PARAMS, HISTORY, Schedule, val_score
from acoustic_env.learn.metrics import (
    BOOTSTRAP_REPLICATES,
    INTERVAL_NOTE,
    adjusted_accuracy,
    evaluate,
    headline,
    intervals,
    read_label_accuracy,
)
from acoustic_env.learn.mlp import MLP, architecture, predict_proba
from acoustic_env.learn.portable import FORMATS, Portable, from_network, from_zoo
from acoustic_env.learn.preprocess import fit_group, fit_streaming
from acoustic_env.learn.splits import (
    DROPPED,
    NAMES,
    TEST,
    TRAIN,
    VAL,
    assign_folds,
    assign_splits,
    leaks,
    read_test_list,
    strata,
)
from acoustic_env.learn.transform import GroupTransform, transform_all
from acoustic_env.learn.search import SearchPlan, SearchRecord
from acoustic_env.learn.params import PARAMS as ZOO_PARAMS
from acoustic_env.learn.zoo import ZooClassifier, make_estimator
from acoustic_env.runs import base_record, package_versions
from acoustic_env.storage import is_local, join
from acoustic_env.table import RANDOM_REASON, FeatureSet, read_features

GRID_REASON = "not in the grid's winning cell"
#: Threads of each fit under cross-validation (at most cv_max_clips clips): one thread per fit of xgboost or the
#: network on a few hundred clips is several times faster than two that wait on each other (benchmarks/RESULTS.md).
CV_THREADS = 1

log = logging.getLogger("acoustic_env.jobs.train")
EXTRA_PACKAGES = ("scikit-learn", "xgboost", "shap", "optuna", "matplotlib")
MIN_CLIPS = MIN_TRAIN_CLIPS


def _features(cfg: TrainConfig, features: FeatureSet, is_train: np.ndarray,
              only: list[str] | None = None) -> tuple[list[GroupTransform], np.ndarray]:
    """Fit the preprocessing on the ``is_train`` rows; return it and the model inputs of every row.

    ``only``: these feature groups (ablations). When the table was too large to hold
    (``features.X`` is None), the PCA is fitted incrementally over streamed passes.
    """
    pca = {g.name: cfg.pca_target(g.source) for g in features.feature_groups}
    if features.X is not None:
        transforms = [fit_group(features.X[g.name][is_train], pca[g.name], g.name, cfg.seed)
                      for g in features.feature_groups if only is None or g.name in only]
        return transforms, transform_all(transforms, features.X)
    log.info("raw features exceed %.1f GiB: fitting PCA incrementally while streaming", cfg.memory_gb)
    transforms, projected = fit_streaming(features.stream, features.feature_groups, pca, is_train, len(features))
    return transforms, np.hstack([projected[t.group] for t in transforms]).astype(np.float32)


def _split_counts(task: Task, features: FeatureSet, split: np.ndarray,
                  names: dict[int, str] = NAMES) -> dict[str, dict[str, int]]:
    """Clips per class in each split (or fold): ``names`` maps the codes of ``split`` to their names."""
    out = {}
    for code, name in names.items():
        rows = split == code
        y = features.y[rows]
        per = (y.sum(axis=0).astype(int).tolist() if task.kind == "multi_label" else
               np.bincount(y, minlength=task.n_classes).tolist())
        out[name] = {**dict(zip(task.class_names, per)), "clips": int(rows.sum())}
    return out


def _slim(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if k not in ("roc_curves", "calibration", "confusion")}


def _storage(cfg: TrainConfig) -> str:
    if cfg.work_dir:
        return os.path.abspath(cfg.work_dir) if is_local(cfg.work_dir) else cfg.work_dir
    if is_local(cfg.output):
        return os.path.abspath(join(cfg.output.removeprefix("file://"), "ray"))
    # Remote output and no work_dir: checkpoints stay on this machine (fine on one node;
    # a multi-node cluster needs --work-dir on shared storage).
    return tempfile.mkdtemp(prefix="acoustic-env-train-")


@dataclass(frozen=True)
class Outcome:
    """What either evaluation hands to the report, the artifact and the run record."""

    counts: dict[str, Any]
    models: dict[str, dict[str, Any]]  # name -> {"test": evaluate(...), "val_score": float}
    evaluation: dict[str, Any]  # how the figures were obtained (see README "Train")
    search: dict[str, Any]
    ablations: list[dict[str, Any]]
    shap: dict[str, Any]
    transforms: list[GroupTransform]
    estimator: Portable  # the saved model: the model of record, in its pickle-free form
    params: dict[str, Any]
    predictions: dict[str, Any] | None = None  # per clip scored: the report's misclassified clips (report.py)
    history: dict[str, Any] | None = None  # the network's rounds: {"title", "rounds": [{epoch, train_score, val_score}]}


def _shap_rows(cfg: TrainConfig, explain_from: np.ndarray, background_from: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(cfg.seed)
    explain = np.sort(rng.choice(explain_from, min(cfg.shap_samples, len(explain_from)), replace=False))
    background = np.sort(rng.choice(background_from, min(100, len(background_from)), replace=False))
    return explain, background


def _mlp_shap(cfg: TrainConfig, features: FeatureSet, net: nn.Module, transforms: list[GroupTransform],
              explain_rows: np.ndarray, background_rows: np.ndarray) -> dict[str, Any]:
    raw = features.rows(np.concatenate([background_rows, explain_rows]))
    raw_x = np.hstack([raw[g.name] for g in features.feature_groups]).astype(np.float32)
    nb = len(background_rows)
    return mlp_attributions(net, transforms, list(features.feature_groups), raw_x[:nb], raw_x[nb:], cfg.seed)


def _portable(fitted: ZooClassifier, x: np.ndarray) -> Portable:
    """The fitted model in the artifact's form, checked to give its probabilities on every row to 1e-6.

    The check is the guarantee behind "the saved model is the model of record":
    a format that drifted from its estimator fails the run here, not in predict.
    """
    estimator = from_zoo(fitted)
    worst = float(np.abs(estimator.predict_proba(x) - fitted.predict_proba(x)).max())
    if worst > 1e-6:
        raise RuntimeError(f"the saved {fitted.name} differs from the fitted one by {worst:.2g} on the training clips")
    return estimator


def _nested_searches(result: CVResult) -> dict[str, dict[str, Any]]:
    """Per searched model, what its fold models' searches tried and cost (the report's and the record's figures)."""
    return {m: {"settings": len(records[0].trials), "inner_folds": len(records[0].splits), "outer_folds": len(records),
                "fits": sum(r.fits for r in records), "seconds": round(sum(r.seconds for r in records), 2),
                "chosen": [r.best for r in records]}
            for m, records in result.searches.items() if records}


def _cv_search_note(candidates: list[str], n_folds: int, nested: dict[str, dict[str, Any]],
                    final: SearchRecord | None, saved: str) -> str:
    """What searched what under cross-validation, and what it cost, in a few sentences (console, report, record)."""
    done = [f"{m} {'C over ' + str(n['settings']) + ' values' if m == 'logreg' else str(n['settings']) + ' settings'} "
            f"x {n['inner_folds']} inner folds in each of {n['outer_folds']} outer folds ({n['fits']} inner fits, "
            f"{n['seconds']:.0f} s)" for m, n in nested.items()]
    fixed = [m for m in candidates if m not in nested and m != "logreg"]
    note = (f"Nested search, scored by grouped cross-validation on each outer fold's training clips only: "
            f"{'; '.join(done)}." if done else "No grouped search.")
    if "logreg" in candidates and "logreg" not in nested:  # multi-label, or too few groups for inner folds
        note += " logreg's C by an ungrouped inner CV on the training folds (or a fixed C with too few clips)."
    if fixed:
        note += f" {', '.join(fixed)} at fixed hyper-parameters."
    if final is not None:
        note += (f" The saved {saved} searched the same way on all clips ({len(final.trials)} settings x "
                 f"{len(final.splits)} folds, {final.seconds:.0f} s) and kept {final.best or 'the defaults'}.")
    return note + f" ({n_folds} outer folds; the Ray Tune search of the network runs with the train/val/test split, " \
                  f"--cv-folds 0.)"


def _folds(cfg: TrainConfig, task: Task, features: FeatureSet, counts: dict[str, Any]) -> tuple[np.ndarray, list[str]]:
    """The outer folds (given by ``folds_column``, else grouped and stratified) and their names."""
    if cfg.folds_column:
        return given_folds(features, cfg.folds_column)
    try:
        folds = assign_folds(features.y, features.groups, task.class_names, cfg.cv_folds, cfg.seed, field="cv_folds")
    except ConfigError as e:  # too few groups may be the guard's doing: say so, with the counts
        merged = merge_summary(counts["duplicates"])
        raise (ConfigError(f"{e}; {merged}") if merged else e) from None
    return folds, [str(f + 1) for f in range(int(folds.max()) + 1)]


def _in_memory(cfg: TrainConfig, features: FeatureSet, field: str) -> None:
    if features.X is None:
        raise ConfigError(f"{field}: cross-validation holds the features in memory, and these exceed memory_gb="
                          f"{cfg.memory_gb:g}; raise memory_gb or pass cv_folds=0 for the train/val/test split")


def _grid(cfg: TrainConfig, task: Task, features: FeatureSet, counts: dict[str, Any]) -> tuple[FeatureSet, dict]:
    """Every cell of the grid cross-validated on the same folds; the features narrowed to the winner's groups.

    The grid's ``result`` is the winning cell's cross-validation, which the train job reuses: the same folds,
    clips and groups, so running it again would give the same figures.
    """
    _in_memory(cfg, features, "grid")
    plan_cells = grid_cells(cfg.grid_embedders, cfg.grid_signals, cfg.feature_groups or HAND_MADE)
    check_columns(plan_cells, features)
    folds, _ = _folds(cfg, task, features, counts)
    candidates = [m for m in ORDER if m in ("mlp", *cfg.baselines)]
    plan = SearchPlan(cfg.search_trials, cfg.search_folds)
    kind, y = task.kind, features.y
    result = compare(
        plan_cells,
        lambda cell: cross_validate(lambda rows: _features(cfg, features, rows, list(cell.groups))[1], y, folds,
                                    kind, task.n_classes, candidates, cfg.seed, features.groups, plan, CV_THREADS),
        lambda p: headline(kind, y, p)["roc_auc"],
        lambda p: intervals(kind, y, p, features.groups, cfg.seed).get("roc_auc"))
    keep = set(result["winner"]["groups"])
    excluded = {**features.excluded, "columns": {**features.excluded["columns"],
                                                 **{c: GRID_REASON for c in features.columns if c not in keep}}}
    narrowed = replace(features, feature_groups=tuple(g for g in features.feature_groups if g.name in keep),
                       X={n: m for n, m in features.X.items() if n in keep}, excluded=excluded)
    return narrowed, result


def _cross_validated(cfg: TrainConfig, task: Task, features: FeatureSet, counts: dict[str, Any],
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
    candidates = [m for m in ORDER if m in ("mlp", *cfg.baselines)]
    plan = SearchPlan(cfg.search_trials, cfg.search_folds)
    result = done or cross_validate(lambda train_rows: _features(cfg, features, train_rows)[1], features.y, folds,
                                    kind, k, candidates, cfg.seed, features.groups, plan, CV_THREADS)
    detail = cv_report(result, kind, names, features.y, features.groups, cfg.seed)
    timings["cross_validation_s"] = time.time() - t
    models = {m: {"test": d["pooled"], "val_score": d["score"]} for m, d in detail.items()}

    saved = result.chosen if cfg.saved_model == "record" else cfg.saved_model
    transforms, x = _features(cfg, features, np.ones(len(features), dtype=bool))
    t = time.time()
    fitted = make_estimator(saved, kind, k, cfg.seed, CV_THREADS, search=plan).fit(x, features.y,
                                                                                  groups=features.groups)
    timings["final_fit_s"] = time.time() - t
    estimator = _portable(fitted, x)
    params = {"model": saved, **fitted.params_}
    history = None
    if "mlp" in candidates:  # the network's training history, from the saved one or one fitted for the figure
        network = fitted if saved == "mlp" else make_estimator("mlp", kind, k, cfg.seed, CV_THREADS, search=plan).fit(
            x, features.y, groups=features.groups)
        if network.model_ is not None:
            history = {"rounds": [{key: r[key] for key in HISTORY} for r in network.model_.history_],
                       "title": f"MLP on all {len(features)} clips; validation: "
                                f"{ZOO_PARAMS['mlp']['val_fraction']:.0%} of them, for early stopping"}

    groups = list(features.columns)
    ablations = [{"name": m, "groups": groups, "test": _slim(r["test"]), "val_score": r["val_score"]}
                 for m, r in models.items()]
    if cfg.ablations:  # logistic regression: cheap enough to cross-validate on every subset
        t = time.time()
        for name, subset in ablation_sets(groups).items():
            sub = cross_validate(lambda rows, only=subset: _features(cfg, features, rows, only)[1], features.y,
                                 folds, kind, k, ["logreg"], cfg.seed, threads=CV_THREADS)
            ablations.append({"name": f"logreg, {name}", "groups": subset,
                              "test": _slim(evaluate(kind, names, features.y, sub.proba["logreg"])),
                              "val_score": sub.scores["logreg"]})
        timings["ablations_s"] = time.time() - t
    shap: dict[str, Any] = {}
    if cfg.shap_samples:
        t = time.time()
        everything = np.arange(len(features))
        explain_rows, background_rows = _shap_rows(cfg, everything, everything)
        module = estimator.logits_module()
        shap[saved] = (tree_attributions(fitted.model_, transforms, x[explain_rows]) if module is None else
                       _mlp_shap(cfg, features, module, transforms, explain_rows, background_rows))
        timings["shap_s"] = time.time() - t

    counts = {**counts, "leaking_groups": len(leaks(features.groups, folds)),
              "splits": _split_counts(task, features, folds, {f: f"fold {fold_names[f]}" for f in range(n_folds)})}
    evaluation = {
        "method": "cross_validation", "folds": n_folds, "folds_column": cfg.folds_column, "fold_names": fold_names,
        "grouped": bool(features.has_groups), "candidates": list(result.proba), "scores": result.scores,
        "chosen": result.chosen, "best": result.best, "saved_model": saved,
        "description": describe(len(features), n_folds, cfg.folds_column, features.has_groups, result, saved),
        "models": {m: {"intervals": d["intervals"], "per_fold": d["per_fold"], "score": d["score"]}
                   for m, d in detail.items()},
    }
    nested = _nested_searches(result)
    final = fitted.search_
    search = {"method": _cv_search_note(candidates, n_folds, nested, final, saved), "nested": nested,
              "params": params, "best_val_score": result.scores[saved],
              "trials": [{"model": saved, "setting": tr["params"] or "defaults", "inner score": round(tr["score"], 4),
                          "chosen": tr["params"] == final.best} for tr in final.trials] if final else [],
              "wall_s": timings["cross_validation_s"]}
    return Outcome(counts=counts, models=models, evaluation=evaluation, search=search, ablations=ablations,
                   shap=shap, transforms=transforms, estimator=estimator, params=params, history=history,
                   predictions=clip_predictions(features, np.arange(len(features)), features.y, result.proba))


def _split(cfg: TrainConfig, task: Task, features: FeatureSet, clip_groups: np.ndarray | None,
           test_mask: np.ndarray | None, counts: dict[str, Any], timings: dict[str, float], t: float) -> Outcome:
    """Train / validation / test split; the MLP under search; baselines and ablations scored on the test split."""
    cluster = start_ray(cfg.ray_address, cfg.progress)
    split = assign_splits(strata(features.y), clip_groups, test_mask, cfg.test_size, cfg.val_size, cfg.seed)
    dropped_overlap = int((split == DROPPED).sum())
    transforms, x = _features(cfg, features, split == TRAIN)
    timings["read_and_preprocess_s"] = time.time() - t
    for code, name in NAMES.items():
        if not (split == code).any():
            field = {"train": "features", "val": "val_size", "test": "test_size"}[name]
            raise ConfigError(f"{field}: the {name} split is empty ({len(features)} clips with a target)")
    idx = {code: np.flatnonzero(split == code) for code in NAMES}
    data = {"x_train": x[idx[TRAIN]], "y_train": features.y[idx[TRAIN]],
            "x_val": x[idx[VAL]], "y_val": features.y[idx[VAL]]}
    x_test, y_test = x[idx[TEST]], features.y[idx[TEST]]
    counts = {**counts, "dropped_group_overlap": dropped_overlap,
              "leaking_groups": len(leaks(clip_groups, split)) if clip_groups is not None else 0,
              "splits": _split_counts(task, features, split)}

    t = time.time()
    concurrent, worker_cpus, use_gpu = plan_trials(cluster, cfg.workers, cfg.max_concurrent_trials, cfg.device)
    storage = _storage(cfg)
    schedule = Schedule(max_rounds=cfg.max_rounds, patience=cfg.patience, steps_per_round=cfg.steps_per_round)
    setup = Setup(kind=task.kind, n_classes=task.n_classes, schedule=schedule, seed=cfg.seed,
                  workers=cfg.workers, worker_cpus=worker_cpus, use_gpu=use_gpu, storage=storage)
    if cfg.trials:
        found = tune_search(data, setup, cfg.trials, cfg.time_budget_s, concurrent, cfg.grace_rounds)
        method = (f"Optuna TPE (Bayesian) with ASHA early termination, {concurrent} concurrent trial(s), "
                  f"{cfg.workers} Ray Train worker(s) of {worker_cpus} CPU{' + 1 GPU' if use_gpu else ''} each")
    else:
        found = single_run(data, setup, dict(DEFAULT_PARAMS))
        method = "no search: default hyper-parameters"
    timings["search_s"] = time.time() - t
    arch = architecture(x.shape[1], task.kind, task.n_classes, found.params)
    net = MLP(**arch)
    net.load_state_dict(load_checkpoint(found.checkpoint, storage))
    net.eval()
    k = task.n_classes

    t = time.time()
    proba = {"mlp": predict_proba(net, x_test, task.kind, k)}
    val_scores = {"mlp": found.best_val_score}
    # the validation split stops the trees early, as it stops the network
    plan = SearchPlan(cfg.search_trials, cfg.search_folds)
    train_groups = None if clip_groups is None else clip_groups[idx[TRAIN]]
    fitted = {name: make_estimator(name, task.kind, k, cfg.seed, search=plan).fit(
        data["x_train"], data["y_train"], eval_set=(data["x_val"], data["y_val"]), groups=train_groups)
        for name in cfg.baselines}
    for name, model in fitted.items():
        proba[name] = model.predict_proba(x_test)
        val_scores[name] = val_score(task.kind, data["y_val"], model.predict_proba(data["x_val"]))
    models = {m: {"test": evaluate(task.kind, list(task.class_names), y_test, p), "val_score": val_scores[m]}
              for m, p in proba.items()}
    test_units = features.groups[idx[TEST]]
    timings["baselines_s"] = time.time() - t

    groups = list(features.columns)
    ablations = [{"name": name, "groups": groups, "test": _slim(r["test"]), "val_score": r["val_score"]}
                 for name, r in models.items()]
    if cfg.ablations:
        t = time.time()
        sets = ablation_sets(groups)
        for name, r in run_ablations(sets, transforms, data, task.kind, k, found.params, schedule, cfg.seed).items():
            sub = MLP(**architecture(len(r["cols"]), task.kind, k, found.params))
            sub.load_state_dict(r["best_state"])
            test = evaluate(task.kind, list(task.class_names), y_test,
                            predict_proba(sub, x_test[:, r["cols"]], task.kind, k))
            ablations.append({"name": f"mlp, {name}", "groups": r["groups"], "test": _slim(test),
                              "val_score": r["best_val_score"]})
        timings["ablations_s"] = time.time() - t

    shap: dict[str, Any] = {}
    if cfg.shap_samples:
        t = time.time()
        explain_rows, background_rows = _shap_rows(cfg, idx[TEST], idx[TRAIN])
        shap["mlp"] = _mlp_shap(cfg, features, net, transforms, explain_rows, background_rows)
        if "xgboost" in fitted:
            shap["xgboost"] = tree_attributions(fitted["xgboost"].model_, transforms, x[explain_rows])
        timings["shap_s"] = time.time() - t

    n_test = len(idx[TEST])
    chosen = best_of({m: v for m, v in val_scores.items() if m in FORMATS})  # the best that can be saved
    best = best_of(val_scores)
    saved = chosen if cfg.saved_model == "record" else cfg.saved_model
    estimator = (from_network(net, arch, task.kind, k) if saved == "mlp" else _portable(fitted[saved], x))
    evaluation = {
        "method": "split", "folds": None, "folds_column": None, "grouped": clip_groups is not None,
        "candidates": list(models), "scores": val_scores, "chosen": chosen, "best": best, "saved_model": saved,
        "description": (f"One train/validation/test split ({len(idx[TRAIN])}/{len(idx[VAL])}/{n_test} clips"
                        f"{', grouped by recording' if clip_groups is not None else ''}): the network's "
                        f"hyper-parameters and early stopping used the validation split; every figure is on the "
                        f"{n_test} test clips, which no model or preprocessing saw. The model of record is "
                        f"{chosen} (the best validation score of the models that can be saved"
                        f"{'' if best == chosen else f'; {best} scored higher but cannot be saved'}); the saved model "
                        f"is {saved}, trained on the training split. {INTERVAL_NOTE.format(n=BOOTSTRAP_REPLICATES)}"),
        "models": {m: {"intervals": intervals(task.kind, y_test, p, test_units, cfg.seed), "per_fold": [],
                       "score": val_scores[m]} for m, p in proba.items()},
    }
    searched = [f"{n}: {len(m.search_.trials)} settings by grouped {len(m.search_.splits)}-fold CV on the training "
                f"split ({m.search_.fits} fits, {m.search_.seconds:.0f} s), kept {m.search_.best or 'the defaults'}"
                for n, m in fitted.items() if m.search_ is not None]
    method += "".join(f"; {line}" for line in searched)
    search = {"method": method, "params": found.params, "best_val_score": found.best_val_score,
              "trials": found.trials, "wall_s": timings["search_s"]}
    return Outcome(counts=counts, models=models, evaluation=evaluation, search=search, ablations=ablations,
                   shap=shap, transforms=transforms, estimator=estimator,
                   params=found.params if saved == "mlp" else {"model": saved, **fitted[saved].params_},
                   predictions=clip_predictions(features, idx[TEST], y_test, proba),
                   history={"rounds": found.history, "title": f"MLP chosen by the search; validation split "
                                                              f"({len(idx[VAL])} clips)"} if found.history else None)


@finishes_records
def train(cfg: TrainConfig) -> dict[str, Any]:
    """Run the job; return a summary (test metrics, where the model and the report are)."""
    validate(cfg)
    preflight(cfg)
    t_start = time.time()
    task = load_task(cfg.task, cfg.ontology)
    estimate = read_label_accuracy(cfg.label_accuracy) if cfg.label_accuracy else None
    test_ids = read_test_list(cfg.test_list) if cfg.test_list else None
    t = time.time()
    # the grid reads every column and checks each cell's itself (one line naming the cell and the column)
    features = read_features(cfg.features, task=task, feature_groups=() if cfg.grid else cfg.feature_groups,
                             signals=cfg.signals, include_random_weights=cfg.include_random_weights,
                             max_bytes=cfg.memory_gb * 2 ** 30)
    run_id = runs.new_run_id()
    record = base_record(run_id, "train", cfg.to_dict())
    record["versions"] = package_versions(EXTRA_PACKAGES)
    record_uri = join(cfg.output, runs.RUNS, f"{run_id}.json")
    runs.write_record(record, record_uri)
    track(record, record_uri)  # ends 'failed' with the reason if anything below raises
    timings: dict[str, float] = {}

    if len(features) < MIN_CLIPS:  # before Ray starts: a table too small costs a second, not 30
        raise ConfigError(f"task: only {len(features)} clips of {cfg.features} have a target for "
                          f"{task.name} and finite features (need {MIN_CLIPS} or more)")
    test_mask = None
    if test_ids is not None:
        test_mask = np.isin(features.ids, list(test_ids))
        if not test_mask.any():
            raise ConfigError(f"test_list: none of its {len(test_ids)} clips is in the feature table with a target")
    duplicates = merge_duplicate_groups(features)  # leakage guard: near-duplicates share a group
    features = duplicates.apply(features)
    clip_groups = features.groups if features.has_groups else None
    grid, winner_cv = None, None
    if cfg.grid:
        timings["read_s"] = time.time() - t
        features, grid = _grid(cfg, task, features, {"duplicates": duplicates.counts})
        winner_cv = grid.pop("result")  # the winning cell, cross-validated already on the folds below
        timings["grid_s"], t = grid["wall_s"], time.time()
    groups = list(features.columns)
    base_counts = {"rows": features.n_read, "with_target": len(features), **features.excluded["rows"],
                   "excluded_columns": features.excluded["columns"], "duplicates": duplicates.counts}
    # cross-validation unless asked for the split, or the data is too large for it (see the module docstring)
    if cfg.folds_column or (cfg.cv_folds and test_mask is None and len(features) <= cfg.cv_max_clips
                            and features.X is not None):
        out = _cross_validated(cfg, task, features, base_counts, timings, t, winner_cv)
    else:
        out = _split(cfg, task, features, clip_groups, test_mask, base_counts, timings, t)
    models, transforms, counts, k = out.models, out.transforms, out.counts, task.n_classes

    adjusted = None
    note = None
    if estimate is not None:
        if task.kind == "single_label":
            adjusted = {m: adjusted_accuracy(r["test"]["accuracy"], r["test"]["n"], estimate, k)
                        for m, r in models.items()}
            for m, r in models.items():  # the study's figure: the best threshold's accuracy, adjusted the same way
                if r["test"]["max_accuracy"] is not None:
                    adjusted[m]["max_accuracy"] = adjusted_accuracy(r["test"]["max_accuracy"], r["test"]["n"],
                                                                    estimate, k)
        else:
            note = "A label-accuracy estimate was given, but the adjustment is defined for single-label tasks only."
    model_uri = join(cfg.output, "model")
    preprocessing = [{"group": tr.group, "dim": int(tr.in_mean.shape[0]), "components": tr.n_components,
                      "variance": float(tr.explained_variance_ratio.sum())} for tr in transforms]
    results = {
        "run_id": run_id, "features": cfg.features, "groups": groups, "counts": counts, "models": models,
        "task": {"name": task.name, "kind": task.kind, "class_names": list(task.class_names)},
        "ablations": out.ablations, "shap": out.shap, "adjusted_accuracy": adjusted, "adjustment_note": note,
        "search": out.search, "evaluation": out.evaluation,
        "preprocessing": preprocessing, "model_uri": model_uri, "predictions": out.predictions,
        "history": out.history, "grid": grid,
        "eda": explore(features, transforms, task.kind, list(task.class_names), cfg.seed),
    }
    report_uri = write_report(join(cfg.output, "report"), results)
    save_model(model_uri, out.estimator, transforms, {
        "task": {"name": task.name, "kind": task.kind, "class_names": list(task.class_names),
                 "definition": task.definition},
        "hyperparameters": out.params, "preprocessing": preprocessing,
        "evaluation": {key: v for key, v in out.evaluation.items() if key != "models"},
        "metrics": {m: _slim(r["test"]) for m, r in models.items()}, "adjusted_accuracy": adjusted,
        "config": cfg.to_dict(), "versions": record["versions"], "run_id": run_id, "features": cfg.features},
        features.feature_groups)
    record.update(status="completed", counts=counts, timings=timings, wall_s=time.time() - t_start,
                  groups=groups, search=results["search"], evaluation=out.evaluation,
                  metrics={m: _slim(r["test"]) for m, r in models.items()}, adjusted_accuracy=adjusted,
                  model=model_uri, report=report_uri, grid=grid)
    runs.write_record(record, record_uri)
    return {"run_id": run_id, "metrics": record["metrics"], "adjusted_accuracy": adjusted, "model": model_uri,
            "report": report_uri, "record": record_uri, "counts": counts, "search": results["search"],
            "evaluation": out.evaluation, "grid": grid,
            "groups": groups, "timings": timings, "wall_s": record["wall_s"]}


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """What the command prints: every model's figures of record, how they were obtained, and where the outputs are."""
    s, ev = summary["counts"]["splits"], summary["evaluation"]
    n = sum(v["clips"] for v in s.values())
    if ev["method"] == "cross_validation":
        how = (f"{ev['folds']}-fold cross-validation"
               + (f" over column {ev['folds_column']}" if ev["folds_column"] else " (grouped)" if ev["grouped"] else ""))
        lines = [f"train run {summary['run_id']}: {n} clips, {how}; model of record {ev['chosen']}, saved "
                 f"{ev['saved_model']} refitted on all clips; {summary['wall_s']:.0f} s"]
    else:
        lines = [f"train run {summary['run_id']}: {n} clips "
                 f"(train {s['train']['clips']}, val {s['val']['clips']}, test {s['test']['clips']}); "
                 f"{summary['wall_s']:.0f} s"]
    left_out = {c: why for c, why in summary["counts"]["excluded_columns"].items() if why == RANDOM_REASON}
    lines.append(f"  features: {', '.join(summary['groups'])}"
                 + (f"; left out (random weights; --include-random-weights uses them): {', '.join(left_out)}"
                    if left_out else ""))
    duplicates = summary["counts"].get("duplicates") or {}
    if duplicates.get("groups_merged"):
        lines.append(f"  near-duplicates: {duplicates['groups_before']} groups merged into "
                     f"{duplicates['groups_after']} so that copies stay on one side of every fold or split")
        lines += [f"    {line}" for line in merge_lines(duplicates)]
    fmt = lambda v: "–" if v is None else f"{v:.3f}"  # noqa: E731
    for name, m in summary["metrics"].items():
        acc = fmt(m["accuracy"])
        adj = (summary.get("adjusted_accuracy") or {}).get(name)
        if adj and adj["adjusted"] is not None:
            acc += f" (adjusted for label noise {adj['adjusted']:.3f} [{adj['interval'][0]:.3f}, {adj['interval'][1]:.3f}])"
        ci = ev["models"][name]["intervals"]
        span = lambda key: "" if not ci.get(key) else f" [{ci[key][0]:.3f}, {ci[key][1]:.3f}]"  # noqa: E731
        if m.get("max_accuracy") is not None:
            acc += f", at the best threshold ({m['max_accuracy_threshold']:.2f}) {m['max_accuracy']:.3f}"
            best = (adj or {}).get("max_accuracy")
            if best and best["adjusted"] is not None:
                acc += f" (adjusted {best['adjusted']:.3f} [{best['interval'][0]:.3f}, {best['interval'][1]:.3f}])"
        lines.append(f"  {'cv' if ev['method'] == 'cross_validation' else 'test'} {name:8s} accuracy {acc}"
                     f"{span('accuracy')}, balanced {fmt(m['balanced_accuracy'])}, ROC AUC {fmt(m['roc_auc'])}"
                     f"{span('roc_auc')}, mAP {fmt(m['map'])}, macro F1 {fmt(m['macro_f1'])}{span('macro_f1')}")
    if summary.get("grid"):
        lines += grid_lines(summary["grid"])
    search = summary["search"]
    if ev["method"] == "cross_validation":
        lines.append(f"  cross-validation took {search['wall_s']:.0f} s; {search['method']}")
    else:
        lines.append(f"  search: {len(search['trials'])} trial(s) in {search['wall_s']:.0f} s, best validation "
                     f"score {search['best_val_score']:.3f} with {search['params']}")
    lines.append(f"  report: {summary['report']}")
    lines.append(f"  model:  {summary['model']}  (acoustic_env.load_model)")
    return lines
