"""The train job's split evaluation (larger data, or a ``test_list``): train / validation / test split.

Per-group PCA fitted on the training split; each compared candidate trained as its spec says
(``candidates.spec.TRAININGS``, ``trainers``): the MLP tuned by Ray Tune (``distributed.tune``), the others
of vectors in this process, and a network of images (the CNN, ``--baselines cnn``) on its images streamed by Ray
Data (``distributed.images``), which no process holds whole: the split is for tables too large for
cross-validation, whose folds hold every image in this process. Models, ablations and SHAP are scored on the test
split, which no model or preprocessing saw (see ``job``'s docstring for when it runs).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from acoustic_env.candidates import FORMATS
from acoustic_env.candidates import get as spec
from acoustic_env.candidates.spec import NETWORK, TRAININGS
from acoustic_env.config import ConfigError, TrainConfig
from acoustic_env.distributed.session import start_ray
from acoustic_env.distributed.tune import Setup, plan_trials, runner_words
from acoustic_env.jobs.train.ablation import ablation_sets, run_ablations
from acoustic_env.jobs.train.evaluation import (
    Outcome,
    class_balance,
    compared,
    model_inputs,
    network_shap,
    resample_plan,
    shap_rows,
    slim,
    split_counts,
    tuning_plan,
)
from acoustic_env.jobs.train.explain import importances, zoo_attributions
from acoustic_env.jobs.train.trainers import Trained, estimators, searched, streamed
from acoustic_env.learn.augment import resample_split
from acoustic_env.learn.cv import best_of
from acoustic_env.learn.fit import Schedule, default_metric
from acoustic_env.learn.metrics import BOOTSTRAP_REPLICATES, INTERVAL_NOTE, evaluate, intervals
from acoustic_env.learn.splits import DROPPED, NAMES, TEST, TRAIN, VAL, assign_splits, leaks, strata
from acoustic_env.learn.transform import GroupTransform
from acoustic_env.learn.tuning import TuningPlan
from acoustic_env.pages.report import clip_predictions
from acoustic_env.storage import is_local, join
from acoustic_env.table import FeatureSet
from acoustic_env.vocabulary.tasks import Task


@contextmanager
def _storage(cfg: TrainConfig) -> Iterator[str]:
    """Where Ray Tune and Ray Train keep their run directories and checkpoints (``work_dir``, else by the output).

    With a remote output and no ``work_dir`` they go to a temporary directory on this machine (fine on one node;
    a multi-node cluster needs ``--work-dir`` on shared storage), removed once the chosen network is loaded, so
    that a nightly job to object storage does not fill the local disk with checkpoints.
    """
    if cfg.work_dir:
        yield os.path.abspath(cfg.work_dir) if is_local(cfg.work_dir) else cfg.work_dir
    elif is_local(cfg.output):
        yield os.path.abspath(join(cfg.output.removeprefix("file://"), "ray"))
    else:
        with tempfile.TemporaryDirectory(prefix="acoustic-env-train-") as local:
            yield local


#: The config field that sizes each split, named when a split cannot be made.
_SIZED_BY = {"train": "features", "val": "val_size", "test": "test_size"}


def _check_groups(features: FeatureSet, groups: np.ndarray | None, test_mask: np.ndarray | None) -> None:
    """Enough recordings (groups) for splits that keep each recording in one: three, or two beside a test list."""
    if groups is None:
        return
    need, rest = (3, groups) if test_mask is None else (2, groups[~test_mask])
    found = len(set(rest.tolist()))
    if found < need:
        beside = "" if test_mask is None else " outside the test_list"
        raise ConfigError(f"features: the {len(rest)} clips{beside} come from {found} recording(s) (their group); a "
                          f"split that keeps each recording in one split needs {need} or more")


def _check_split(task: Task, features: FeatureSet, counts: dict[str, dict[str, int]]) -> None:
    """Every split holds a clip of every class (``counts``: ``split_counts``'): a test split without one reports
    figures that leave it out (an accuracy of 1.000 with a class never tested), a validation split without one
    chooses a model blind to it."""
    totals = split_counts(task, features, np.zeros(len(features), dtype=np.int8), {0: "all"})["all"]
    for name, per in counts.items():
        if not per["clips"]:
            raise ConfigError(f"{_SIZED_BY[name]}: the {name} split is empty ({len(features)} clips with a target)")
        for c in task.class_names:
            if not per[c]:
                raise ConfigError(f"{_SIZED_BY[name]}: the {name} split has no clip of class {c} ({totals[c]} of the "
                                  f"{len(features)} clips are {c}); more clips of {c}, other split sizes, or "
                                  "cross-validation (--cv-folds 2 or more)")


def _check_streamed(cfg: TrainConfig, plan: TuningPlan, streamed: list[str]) -> None:
    """What a network trained on streamed images cannot do, refused before anything starts."""
    if not streamed:
        return
    shown, named = ", ".join(m.upper() for m in streamed), ", ".join(streamed)
    if cfg.balanced_sampler:  # a sampler draws rows from arrays held in memory
        raise ConfigError(f"balanced_sampler: the split evaluation streams the {shown}'s images, which a balanced "
                          f"sampler cannot draw from; use --class-weight balanced, cross-validation, or leave {named} "
                          "out")
    if plan.metric is not None:  # its validation rows are streamed, scored by loss only
        raise ConfigError(f"select_by: the split evaluation's streamed {shown} has no validation {plan.metric} to be "
                          f"chosen by; use --select-by auto, cross-validation, or leave {named} out of --baselines")


def run_split(cfg: TrainConfig, task: Task, features: FeatureSet, clip_groups: np.ndarray | None,
              test_mask: np.ndarray | None, counts: dict[str, Any], timings: dict[str, float],
              t: float) -> Outcome:
    """Train / validation / test split; each compared candidate trained as its spec says (``trains``: in this
    process, tuned by Ray Tune, or on streamed images); every one, its ablations and SHAP scored on the test
    split."""
    _check_groups(features, clip_groups, test_mask)
    plan, balance, resample = tuning_plan(cfg), class_balance(cfg), resample_plan(cfg)
    by_kind = {kind: [m for m in compared(cfg) if spec(m).trains == kind] for kind in TRAININGS}
    _check_streamed(cfg, plan, by_kind["stream"])
    split = assign_splits(strata(features.y), clip_groups, test_mask, cfg.test_size, cfg.val_size, cfg.seed)
    per_split = split_counts(task, features, split)
    _check_split(task, features, per_split)  # before anything is fitted
    transforms, x = model_inputs(cfg, features, split == TRAIN)
    timings["read_and_preprocess_s"] = time.time() - t
    idx = {code: np.flatnonzero(split == code) for code in NAMES}
    data = {"x_train": x[idx[TRAIN]], "y_train": features.y[idx[TRAIN]],
            "x_val": x[idx[VAL]], "y_val": features.y[idx[VAL]]}
    counts = {**counts, "dropped_group_overlap": int((split == DROPPED).sum()),
              "leaking_groups": len(leaks(clip_groups, split)) if clip_groups is not None else 0,
              "splits": per_split}

    t = time.time()
    # the networks train on the training split resampled; on the validation split, which stops them, as it is
    network_data = data if resample is None else resample_split(data, resample)
    with _storage(cfg) as storage:
        cluster = start_ray(cfg.ray_address, cfg.progress)  # Ray from here on: the tuning, the streams
        concurrent, worker_cpus, use_gpu = plan_trials(cluster, cfg.workers, cfg.max_concurrent_trials, cfg.device)
        schedule = Schedule(max_rounds=cfg.max_rounds, patience=cfg.patience, steps_per_round=cfg.steps_per_round)
        setup = Setup(kind=task.kind, n_classes=task.n_classes, schedule=schedule, seed=cfg.seed,
                      workers=cfg.workers, worker_cpus=worker_cpus, use_gpu=use_gpu, storage=storage)
        runs = f"{runner_words(cfg.workers)}, {worker_cpus} CPU{' + 1 GPU' if use_gpu else ''} per worker"
        trained = {m: searched(cfg, task, m, network_data, data["x_val"], x[idx[TEST]], setup, plan, balance,
                               concurrent, runs) for m in by_kind["tune"]}
        timings["search_s"] = time.time() - t
        for m in by_kind["stream"]:
            t = time.time()
            trained[m] = streamed(cfg, task, m, features, idx, setup, balance)
            timings[f"{m}_s"] = time.time() - t
    t = time.time()
    trained.update(estimators(cfg, task, by_kind["estimator"], features, x, idx, clip_groups, plan, balance, resample))
    trained = {m: trained[m] for kind in ("tune", "estimator", "stream") for m in by_kind[kind]}  # the report's order
    y_test, test_units = features.y[idx[TEST]], features.groups[idx[TEST]]
    models = {m: {"test": evaluate(task.kind, list(task.class_names), y_test, r.proba), "val_score": r.val_score}
              for m, r in trained.items()}
    timings["baselines_s"] = time.time() - t
    ablations = _ablations(cfg, task, features, transforms, models, trained, network_data, x[idx[TEST]], y_test,
                           timings)
    shap = _shap(cfg, features, transforms, x, idx, trained, timings)
    val_scores = {m: r.val_score for m, r in trained.items()}
    chosen = best_of({m: v for m, v in val_scores.items() if m in FORMATS and trained[m].saved})  # can be saved
    saved = chosen if cfg.saved_model == "chosen" else cfg.saved_model
    if trained[saved].saved is None:
        raise ConfigError(f"saved_model: {saved} has no saved form after the split evaluation")
    record = next((r for r in trained.values() if r.found is not None), None)  # the tuned network's
    evaluation = {
        **_evaluation(cfg, task, idx, clip_groups, plan, chosen, best_of(val_scores), saved),
        "not_resampled": [m for m, r in trained.items() if not r.resampled] if resample is not None else [],
        "candidates": list(models), "scores": val_scores,
        "models": {m: {"intervals": intervals(task.kind, y_test, r.proba, test_units, cfg.seed), "per_fold": [],
                       "score": r.val_score} for m, r in trained.items()}}
    return Outcome(counts=counts, models=models, evaluation=evaluation, search=_tuning(trained, record, timings),
                   ablations=ablations, shap=shap, transforms=transforms, estimator=trained[saved].saved(),
                   params=trained[saved].params,
                   predictions=clip_predictions(features, idx[TEST], y_test, {m: r.proba for m, r in trained.items()}),
                   importances={m: weighed for m, r in trained.items() if r.fitted is not None
                                if (weighed := importances(r.fitted, transforms, infos=features.feature_groups))},
                   history=None if record is None or not record.found.history else {
                       "rounds": record.found.history,
                       "title": f"{record.name.upper()} chosen by Ray Tune; validation split ({len(idx[VAL])} clips)"},
                   network=None if record is None else record.network,
                   network_model=None if record is None else record.name)


def _evaluation(cfg: TrainConfig, task: Task, idx: dict[int, np.ndarray], clip_groups: np.ndarray | None,
                plan: TuningPlan, chosen: str, best: str, saved: str) -> dict[str, Any]:
    """How the split's figures were obtained: the method, the choice and its description."""
    n_test, metric = len(idx[TEST]), plan.metric or default_metric(task.kind)
    return {
        "method": "split", "folds": None, "folds_column": None, "grouped": clip_groups is not None,
        "chosen": chosen, "best": best, "saved_model": saved, "select_by": metric,
        "description": (f"One train/validation/test split ({len(idx[TRAIN])}/{len(idx[VAL])}/{n_test} clips"
                        f"{', grouped by recording' if clip_groups is not None else ''}): the network's "
                        f"hyper-parameters and early stopping used the validation split; every figure is on the "
                        f"{n_test} test clips, which no model or preprocessing saw. The chosen model is "
                        f"{chosen} (the best validation {metric} of the models "
                        f"that can be saved"
                        f"{'' if best == chosen else f'; {best} scored higher but cannot be saved'}); the saved model "
                        f"is {saved}, trained on the training split. {INTERVAL_NOTE.format(n=BOOTSTRAP_REPLICATES)}")}


def _tuning(trained: dict[str, Trained], record: Trained | None, timings: dict[str, float]) -> dict[str, Any]:
    """The run's tuning (the record's ``search`` key): the tuned network's (its trials, its choice), and how each
    other candidate was tuned or trained, in its method."""
    lines = [f"{m}: {r.line}" for m, r in trained.items() if r.line and r is not record]
    found = None if record is None else record.found
    return {"method": "; ".join([record.line] + lines if record else lines) or "no tuning",
            "params": {} if found is None else found.params,
            "best_val_score": None if found is None else found.best_val_score,
            "trials": [] if found is None else found.trials, "wall_s": timings["search_s"]}


def _ablations(cfg: TrainConfig, task: Task, features: FeatureSet, transforms: list[GroupTransform],
               models: dict[str, dict[str, Any]], trained: dict[str, Trained], data: dict[str, np.ndarray],
               x_test: np.ndarray, y_test: np.ndarray, timings: dict[str, float]) -> list[dict[str, Any]]:
    """Every model on all groups, then (``--ablations``) each tuned network retrained on subsets of the groups
    at its tuning's choice, scored on the test split."""
    groups, kind, k = list(features.columns), task.kind, task.n_classes
    rows = [{"name": m, "groups": groups, "test": slim(r["test"]), "val_score": r["val_score"]}
            for m, r in models.items()]
    if not cfg.ablations:
        return rows
    t = time.time()
    sets = ablation_sets(groups)
    for m, net in ((m, r) for m, r in trained.items() if r.found is not None):
        spec, network = net.setup.model, {**net.setup.model.params[NETWORK], **net.found.params}
        for name, r in run_ablations(sets, transforms, data, net.setup, network).items():
            sub = spec.restore((len(r["cols"]),), kind, k, network, r["best_state"])
            test = evaluate(kind, list(task.class_names), y_test, spec.predict(sub, x_test[:, r["cols"]], kind, k))
            rows.append({"name": f"{m}, {name}", "groups": r["groups"], "test": slim(test),
                         "val_score": r["best_val_score"]})
    timings["ablations_s"] = time.time() - t
    return rows


def _shap(cfg: TrainConfig, features: FeatureSet, transforms: list[GroupTransform], x: np.ndarray,
          idx: dict[int, np.ndarray], trained: dict[str, Trained], timings: dict[str, float]) -> dict[str, Any]:
    """SHAP on the test split (``--shap-samples``): a tuned network's gradients through the PCA, the trees'
    TreeSHAP on the components."""
    if not cfg.shap_samples:
        return {}
    t = time.time()
    explain_rows, background_rows = shap_rows(cfg, idx[TEST], idx[TRAIN])
    shap = {}
    for m, r in trained.items():
        explained = (network_shap(cfg, features, r.network, transforms, explain_rows, background_rows)
                     if r.network is not None else
                     zoo_attributions(r.fitted, transforms, x[explain_rows]) if r.fitted is not None else None)
        shap.update({m: explained} if explained else {})
    timings["shap_s"] = time.time() - t
    return shap
