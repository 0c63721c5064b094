"""The train job's split evaluation (larger data, or a ``test_list``): train / validation / test split.

Per-group PCA fitted on the training split, the MLP under a Ray Tune search
(``distributed.tune``), baselines, ablations and SHAP scored on the test split,
which no model or preprocessing saw (see ``job``'s docstring for when it runs).
The CNN (``--baselines cnn``) trains here on its images streamed by Ray Data
(``distributed.images``), which no process holds whole: the split is for tables
too large for cross-validation, whose folds hold every image in this process.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import numpy as np

from acoustic_env.vocabulary.tasks import Task
from acoustic_env.config import ConfigError, TrainConfig
from acoustic_env.distributed.images import Rows
from acoustic_env.distributed.session import start_ray
from acoustic_env.distributed.tune import (
    Setup,
    fit_cnn,
    load_checkpoint,
    plan_trials,
    runner_words,
    single_run,
    tune_search,
)
from acoustic_env.jobs.train.ablation import ablation_sets, run_ablations
from acoustic_env.jobs.train.evaluation import (
    Outcome,
    checked_portable,
    class_balance,
    resample_plan,
    mlp_shap,
    model_inputs,
    preprocessing,
    search_plan,
    shap_rows,
    slim,
    split_counts,
)
from acoustic_env.jobs.train.explain import importances, zoo_attributions
from acoustic_env.pages.report import clip_predictions
from acoustic_env.learn.augment import resample_split
from acoustic_env.learn.cv import best_of
from acoustic_env.learn.fit import DEFAULT_PARAMS, Schedule, default_metric, val_score
from acoustic_env.learn.metrics import BOOTSTRAP_REPLICATES, INTERVAL_NOTE, evaluate, intervals
from acoustic_env.learn.mlp import architecture, predict_proba
from acoustic_env.candidates import FORMATS, PARAMS
from acoustic_env.learn.portable import from_cnn, from_network, rebuild_network
from acoustic_env.learn.splits import DROPPED, NAMES, TEST, TRAIN, VAL, assign_splits, leaks, strata
from acoustic_env.learn.zoo import make_estimator
from acoustic_env.storage import is_local, join
from acoustic_env.table import FeatureSet


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


def run_split(cfg: TrainConfig, task: Task, features: FeatureSet, clip_groups: np.ndarray | None,
              test_mask: np.ndarray | None, counts: dict[str, Any], timings: dict[str, float],
              t: float) -> Outcome:
    """Train / validation / test split; the MLP under search; baselines and ablations scored on the test split."""
    _check_groups(features, clip_groups, test_mask)
    plan, balance, resample = search_plan(cfg), class_balance(cfg), resample_plan(cfg)
    if cfg.balanced_sampler and "cnn" in cfg.baselines:  # a sampler draws rows from arrays held in memory
        raise ConfigError("balanced_sampler: the split evaluation streams the CNN's images, which a balanced sampler "
                          "cannot draw from; use --class-weight balanced, cross-validation, or leave cnn out")
    if plan.metric is not None and "cnn" in cfg.baselines:  # its validation rows are streamed, scored by loss only
        raise ConfigError(f"select_by: the split evaluation's streamed CNN has no validation {plan.metric} to be "
                          "chosen by; use --select-by auto, cross-validation, or leave cnn out of --baselines")
    split = assign_splits(strata(features.y), clip_groups, test_mask, cfg.test_size, cfg.val_size, cfg.seed)
    per_split = split_counts(task, features, split)
    _check_split(task, features, per_split)  # before anything is fitted
    transforms, x = model_inputs(cfg, features, split == TRAIN)
    timings["read_and_preprocess_s"] = time.time() - t
    idx = {code: np.flatnonzero(split == code) for code in NAMES}
    data = {"x_train": x[idx[TRAIN]], "y_train": features.y[idx[TRAIN]],
            "x_val": x[idx[VAL]], "y_val": features.y[idx[VAL]]}
    x_test, y_test = x[idx[TEST]], features.y[idx[TEST]]
    counts = {**counts, "dropped_group_overlap": int((split == DROPPED).sum()),
              "leaking_groups": len(leaks(clip_groups, split)) if clip_groups is not None else 0,
              "splits": per_split}

    t = time.time()
    # the network trains on the training split resampled; its validation split, which stops it, as it is
    network_data = data if resample is None else resample_split(data, resample)
    with _storage(cfg) as storage:
        cluster = start_ray(cfg.ray_address, cfg.progress)  # Ray from here on: the search, the CNN's stream
        concurrent, worker_cpus, use_gpu = plan_trials(cluster, cfg.workers, cfg.max_concurrent_trials, cfg.device)
        schedule = Schedule(max_rounds=cfg.max_rounds, patience=cfg.patience, steps_per_round=cfg.steps_per_round)
        setup = Setup(kind=task.kind, n_classes=task.n_classes, schedule=schedule, seed=cfg.seed,
                      workers=cfg.workers, worker_cpus=worker_cpus, use_gpu=use_gpu, storage=storage,
                      balance=balance)
        runs = f"{runner_words(cfg.workers)}, {worker_cpus} CPU{' + 1 GPU' if use_gpu else ''} per worker"
        if cfg.trials:
            found = tune_search(network_data, setup, cfg.trials, cfg.time_budget_s, concurrent, cfg.grace_rounds)
            method = f"Optuna TPE (Bayesian) with ASHA early termination, {concurrent} concurrent trial(s) of {runs}"
        else:
            found = single_run(network_data, setup, dict(DEFAULT_PARAMS))
            method = f"no search: default hyper-parameters, {runs}"
        timings["search_s"] = time.time() - t
        state = load_checkpoint(found.checkpoint, storage)  # read before a temporary storage goes
        t_cnn = time.time()
        cnn = _streamed_cnn(cfg, features, idx, setup)
        timings["cnn_s"] = time.time() - t_cnn
    k = task.n_classes
    arch = architecture(x.shape[1], task.kind, k, found.params)
    net = rebuild_network(arch, state)

    t = time.time()
    proba = {"mlp": predict_proba(net, x_test, task.kind, k)}
    # the Tune search's figure is the default metric's; another (--select-by) scores the chosen network's state
    val_scores = {"mlp": found.best_val_score if plan.metric is None else
                  val_score(task.kind, data["y_val"], predict_proba(net, data["x_val"], task.kind, k), plan.metric)}
    # the validation split stops the trees early, as it stops the network; held in memory, each model fits its own
    # preprocessing (the one above, on the training split), refitted on each inner split of its search
    train_groups = None if clip_groups is None else clip_groups[idx[TRAIN]]
    prep, raw = preprocessing(cfg, features) if features.X is not None else (None, None)
    given = x if prep is None else raw
    fitted = {name: make_estimator(name, task.kind, k, cfg.seed, search=plan, balance=balance, resample=resample,
                                   preprocessing=prep).fit(
        given[idx[TRAIN]], data["y_train"], eval_set=(given[idx[VAL]], data["y_val"]), groups=train_groups)
        for name in cfg.baselines if name != "cnn"}
    for name, model in fitted.items():
        proba[name] = model.predict_proba(given[idx[TEST]])
        val_scores[name] = val_score(task.kind, data["y_val"], model.predict_proba(given[idx[VAL]]), plan.metric)
    if cnn:
        proba["cnn"], val_scores["cnn"] = cnn["proba"], cnn["val_score"]
    models = {m: {"test": evaluate(task.kind, list(task.class_names), y_test, p), "val_score": val_scores[m]}
              for m, p in proba.items()}
    test_units = features.groups[idx[TEST]]
    timings["baselines_s"] = time.time() - t

    groups = list(features.columns)
    ablations = [{"name": name, "groups": groups, "test": slim(r["test"]), "val_score": r["val_score"]}
                 for name, r in models.items()]
    if cfg.ablations:
        t = time.time()
        sets = ablation_sets(groups)
        for name, r in run_ablations(sets, transforms, network_data, task.kind, k, found.params, schedule, cfg.seed,
                                     balance).items():
            sub = rebuild_network(architecture(len(r["cols"]), task.kind, k, found.params), r["best_state"])
            test = evaluate(task.kind, list(task.class_names), y_test,
                            predict_proba(sub, x_test[:, r["cols"]], task.kind, k))
            ablations.append({"name": f"mlp, {name}", "groups": r["groups"], "test": slim(test),
                              "val_score": r["best_val_score"]})
        timings["ablations_s"] = time.time() - t

    shap: dict[str, Any] = {}
    if cfg.shap_samples:
        t = time.time()
        explain_rows, background_rows = shap_rows(cfg, idx[TEST], idx[TRAIN])
        shap["mlp"] = mlp_shap(cfg, features, net, transforms, explain_rows, background_rows)
        for name, model in fitted.items():  # the trees: TreeSHAP on the components
            shap.update({name: tree} if (tree := zoo_attributions(model, transforms, x[explain_rows])) else {})
        timings["shap_s"] = time.time() - t

    n_test = len(idx[TEST])
    chosen = best_of({m: v for m, v in val_scores.items() if m in FORMATS})  # the best that can be saved
    best = best_of(val_scores)
    saved = chosen if cfg.saved_model == "record" else cfg.saved_model
    estimator = (from_network(net, arch, task.kind, k) if saved == "mlp" else
                 from_cnn(cnn["net"], cnn["frames"], task.kind, k, cnn["params"]) if saved == "cnn" else
                 checked_portable(fitted[saved], x, raw))
    evaluation = {
        "method": "split", "folds": None, "folds_column": None, "grouped": clip_groups is not None,
        # the CNN's images are streamed from the table: --resample-per-class cannot add rows to the stream
        "not_resampled": ["cnn"] if cnn and resample is not None else [],
        "candidates": list(models), "scores": val_scores, "chosen": chosen, "best": best, "saved_model": saved,
        "select_by": plan.metric or default_metric(task.kind),
        "description": (f"One train/validation/test split ({len(idx[TRAIN])}/{len(idx[VAL])}/{n_test} clips"
                        f"{', grouped by recording' if clip_groups is not None else ''}): the network's "
                        f"hyper-parameters and early stopping used the validation split; every figure is on the "
                        f"{n_test} test clips, which no model or preprocessing saw. The model of record is "
                        f"{chosen} (the best validation {plan.metric or default_metric(task.kind)} of the models "
                        f"that can be saved"
                        f"{'' if best == chosen else f'; {best} scored higher but cannot be saved'}); the saved model "
                        f"is {saved}, trained on the training split. {INTERVAL_NOTE.format(n=BOOTSTRAP_REPLICATES)}"),
        "models": {m: {"intervals": intervals(task.kind, y_test, p, test_units, cfg.seed), "per_fold": [],
                       "score": val_scores[m]} for m, p in proba.items()},
    }
    searched = [f"{n}: {len(m.search_.trials)} settings by grouped {len(m.search_.splits)}-fold CV on the training "
                f"split ({m.search_.fits} fits, {m.search_.seconds:.0f} s), kept {m.search_.best or 'the defaults'}"
                for n, m in fitted.items() if m.search_ is not None]
    if cnn:
        searched.append(f"cnn: its images streamed by Ray Data, trained on {runner_words(cfg.workers)}, "
                        f"{cnn['rounds']} round(s), no search")
    method += "".join(f"; {line}" for line in searched)
    search = {"method": method, "params": found.params, "best_val_score": found.best_val_score,
              "trials": found.trials, "wall_s": timings["search_s"]}
    return Outcome(counts=counts, models=models, evaluation=evaluation, search=search, ablations=ablations,
                   shap=shap, transforms=transforms, estimator=estimator,
                   params=(found.params if saved == "mlp" else {"model": "cnn", **cnn["params"]} if saved == "cnn"
                           else {"model": saved, **fitted[saved].params_}),
                   predictions=clip_predictions(features, idx[TEST], y_test, proba),
                   importances={n: weighed for n, m in fitted.items()
                                if (weighed := importances(m, transforms, infos=features.feature_groups))},
                   history={"rounds": found.history, "title": f"MLP chosen by the search; validation split "
                                                              f"({len(idx[VAL])} clips)"} if found.history else None,
                   network=net)


def _streamed_cnn(cfg: TrainConfig, features: FeatureSet, idx: dict[int, np.ndarray], setup: Setup) -> dict[str, Any]:
    """The CNN (when a baseline) trained on the training split's images streamed by Ray Data, early stopping on
    the validation split's, as one run of ``--workers`` workers (``distributed.tune.fit_cnn``); its network, window,
    settings, validation score (at its best round) and test probabilities. Empty without the CNN."""
    if "cnn" not in cfg.baselines:
        return {}
    params = PARAMS["cnn"]
    rows = {code: Rows(features.ids[idx[code]], features.y[idx[code]]) for code in (TRAIN, VAL, TEST)}
    schedule = Schedule(params["max_rounds"], params["patience"], steps_per_round=1, monitor="loss")
    net, shape, found, proba = fit_cnn(features.table, rows[TRAIN], rows[VAL], rows[TEST],
                                       replace(setup, network="cnn", schedule=schedule), params["network"])
    return {"net": net, "frames": shape.frames, "params": params, "val_score": found.best_val_score,
            "proba": proba, "rounds": found.trials[0]["rounds"]}  # the history skips rounds without a training score
