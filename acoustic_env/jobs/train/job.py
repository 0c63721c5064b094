"""The train job: features/ → splits → per-group PCA → MLP under search → evaluation → report and model.

This is the Python API behind ``acoustic-env train`` and ``jobs/train.py``.
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
from typing import Any

import numpy as np

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
from acoustic_env.jobs.train.report import write_report
from acoustic_env.learn.artifact import save_model
from acoustic_env.learn.fit import DEFAULT_PARAMS, Schedule, val_score
from acoustic_env.learn.metrics import adjusted_accuracy, evaluate, read_label_accuracy
from acoustic_env.learn.mlp import MLP, architecture, predict_proba
from acoustic_env.learn.preprocess import fit_group, fit_streaming
from acoustic_env.learn.splits import (
    DROPPED,
    NAMES,
    TEST,
    TRAIN,
    VAL,
    assign_splits,
    leaks,
    read_test_list,
    strata,
)
from acoustic_env.learn.transform import GroupTransform, transform_all
from acoustic_env.learn.zoo import make_estimator
from acoustic_env.runs import base_record, package_versions
from acoustic_env.storage import is_local, join, write_json
from acoustic_env.table import RANDOM_REASON, FeatureSet, read_features

log = logging.getLogger("acoustic_env.jobs.train")
EXTRA_PACKAGES = ("scikit-learn", "xgboost", "shap", "optuna", "matplotlib")
MIN_CLIPS = 10


def _features(cfg: TrainConfig, features: FeatureSet, split: np.ndarray) -> tuple[list[GroupTransform], np.ndarray]:
    """Fit the preprocessing on the training rows; return it and the network inputs.

    When the table was too large to hold (``features.X`` is None), the PCA is fitted
    incrementally over streamed passes.
    """
    is_train = split == TRAIN
    pca = {g.name: cfg.pca_target(g.source) for g in features.feature_groups}
    if features.X is not None:
        transforms = [fit_group(features.X[g.name][is_train], pca[g.name], g.name, cfg.seed)
                      for g in features.feature_groups]
        return transforms, transform_all(transforms, features.X)
    log.info("raw features exceed %.1f GiB: fitting PCA incrementally while streaming", cfg.memory_gb)
    transforms, projected = fit_streaming(features.stream, features.feature_groups, pca, is_train, len(features))
    return transforms, np.hstack([projected[t.group] for t in transforms]).astype(np.float32)


def _split_counts(task: Task, features: FeatureSet, split: np.ndarray) -> dict[str, dict[str, int]]:
    out = {}
    for code, name in NAMES.items():
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


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Run the job; return a summary (test metrics, where the model and the report are)."""
    validate(cfg)
    t_start = time.time()
    task = load_task(cfg.task, cfg.ontology)
    estimate = read_label_accuracy(cfg.label_accuracy) if cfg.label_accuracy else None
    test_ids = read_test_list(cfg.test_list) if cfg.test_list else None
    t = time.time()
    features = read_features(cfg.features, task=task, feature_groups=cfg.feature_groups, signals=cfg.signals,
                             include_random_weights=cfg.include_random_weights, max_bytes=cfg.memory_gb * 2 ** 30)
    groups = list(features.columns)
    run_id = runs.new_run_id()
    record = base_record(run_id, "train", cfg.to_dict())
    record["versions"] = package_versions(EXTRA_PACKAGES)
    record_uri = join(cfg.output, runs.RUNS, f"{run_id}.json")
    write_json(record, record_uri)
    cluster = start_ray(cfg.ray_address, cfg.progress)
    timings: dict[str, float] = {}

    if len(features) < MIN_CLIPS:
        raise ConfigError(f"task: only {len(features)} clips of {cfg.features} have a target for "
                          f"{task.name} and finite features (need {MIN_CLIPS} or more)")
    test_mask = None
    if test_ids is not None:
        test_mask = np.isin(features.ids, list(test_ids))
        if not test_mask.any():
            raise ConfigError(f"test_list: none of its {len(test_ids)} clips is in the feature table with a target")
    clip_groups = features.groups if features.has_groups else None
    split = assign_splits(strata(features.y), clip_groups, test_mask, cfg.test_size, cfg.val_size, cfg.seed)
    dropped_overlap = int((split == DROPPED).sum())
    transforms, x = _features(cfg, features, split)
    timings["read_and_preprocess_s"] = time.time() - t
    for code, name in NAMES.items():
        if not (split == code).any():
            field = {"train": "features", "val": "val_size", "test": "test_size"}[name]
            raise ConfigError(f"{field}: the {name} split is empty ({len(features)} clips with a target)")
    idx = {code: np.flatnonzero(split == code) for code in NAMES}
    data = {"x_train": x[idx[TRAIN]], "y_train": features.y[idx[TRAIN]],
            "x_val": x[idx[VAL]], "y_val": features.y[idx[VAL]]}
    x_test, y_test = x[idx[TEST]], features.y[idx[TEST]]
    counts = {"rows": features.n_read, "with_target": len(features), **features.excluded["rows"],
              "excluded_columns": features.excluded["columns"], "dropped_group_overlap": dropped_overlap,
              "leaking_groups": len(leaks(clip_groups, split)) if clip_groups is not None else 0,
              "splits": _split_counts(task, features, split)}

    t = time.time()
    concurrent, worker_cpus, use_gpu = plan_trials(cluster, cfg.workers, cfg.max_concurrent_trials, cfg.device)
    storage = _storage(cfg)
    schedule = Schedule(max_rounds=cfg.max_rounds, patience=cfg.patience, steps_per_round=cfg.steps_per_round)
    setup = Setup(kind=task.kind, n_classes=task.n_classes, in_dim=x.shape[1], schedule=schedule, seed=cfg.seed,
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

    t = time.time()
    k = task.n_classes
    models: dict[str, dict[str, Any]] = {
        "mlp": {"test": evaluate(task.kind, list(task.class_names), y_test, predict_proba(net, x_test, task.kind, k)),
                "val_score": found.best_val_score}}
    # the validation split stops the trees early, as it stops the network
    fitted = {name: make_estimator(name, task.kind, k, cfg.seed).fit(data["x_train"], data["y_train"],
                                                                     eval_set=(data["x_val"], data["y_val"]))
              for name in cfg.baselines}
    for name, model in fitted.items():
        models[name] = {"test": evaluate(task.kind, list(task.class_names), y_test, model.predict_proba(x_test)),
                        "val_score": val_score(task.kind, data["y_val"], model.predict_proba(data["x_val"]))}
    timings["baselines_s"] = time.time() - t

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
        rng = np.random.default_rng(cfg.seed)
        explain_rows = np.sort(rng.choice(idx[TEST], min(cfg.shap_samples, len(idx[TEST])), replace=False))
        background_rows = np.sort(rng.choice(idx[TRAIN], min(100, len(idx[TRAIN])), replace=False))
        raw = features.rows(np.concatenate([background_rows, explain_rows]))
        raw_x = np.hstack([raw[g.name] for g in features.feature_groups]).astype(np.float32)
        nb = len(background_rows)
        shap["mlp"] = mlp_attributions(net, transforms, list(features.feature_groups), raw_x[:nb], raw_x[nb:], cfg.seed)
        if "xgboost" in fitted:
            shap["xgboost"] = tree_attributions(fitted["xgboost"].model_, transforms, x[explain_rows])
        timings["shap_s"] = time.time() - t

    adjusted = None
    note = None
    if estimate is not None:
        if task.kind == "single_label":
            adjusted = {m: adjusted_accuracy(r["test"]["accuracy"], r["test"]["n"], estimate, k)
                        for m, r in models.items()}
        else:
            note = "A label-accuracy estimate was given, but the adjustment is defined for single-label tasks only."
    model_uri = join(cfg.output, "model")
    preprocessing = [{"group": tr.group, "dim": int(tr.in_mean.shape[0]), "components": tr.n_components,
                      "variance": float(tr.explained_variance_ratio.sum())} for tr in transforms]
    results = {
        "run_id": run_id, "features": cfg.features, "groups": groups, "counts": counts, "models": models,
        "task": {"name": task.name, "kind": task.kind, "class_names": list(task.class_names)},
        "ablations": ablations, "shap": shap, "adjusted_accuracy": adjusted, "adjustment_note": note,
        "search": {"method": method, "params": found.params, "best_val_score": found.best_val_score,
                   "trials": found.trials, "wall_s": timings["search_s"]},
        "preprocessing": preprocessing, "model_uri": model_uri,
    }
    report_uri = write_report(join(cfg.output, "report"), results)
    save_model(model_uri, net.state_dict(), transforms, {
        "task": {"name": task.name, "kind": task.kind, "class_names": list(task.class_names),
                 "definition": task.definition},
        "architecture": arch, "hyperparameters": found.params, "preprocessing": preprocessing,
        "metrics": {m: _slim(r["test"]) for m, r in models.items()}, "adjusted_accuracy": adjusted,
        "config": cfg.to_dict(), "versions": record["versions"], "run_id": run_id, "features": cfg.features},
        features.feature_groups)
    record.update(status="completed", counts=counts, timings=timings, wall_s=time.time() - t_start,
                  groups=groups, search=results["search"],
                  metrics={m: _slim(r["test"]) for m, r in models.items()}, adjusted_accuracy=adjusted,
                  model=model_uri, report=report_uri)
    write_json(record, record_uri)
    return {"run_id": run_id, "metrics": record["metrics"], "adjusted_accuracy": adjusted, "model": model_uri,
            "report": report_uri, "record": record_uri, "counts": counts, "search": results["search"],
            "groups": groups, "timings": timings, "wall_s": record["wall_s"]}


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """What the command prints: the test metrics of every model, the search, and where the outputs are."""
    s = summary["counts"]["splits"]
    lines = [f"train run {summary['run_id']}: {sum(v['clips'] for v in s.values())} clips "
             f"(train {s['train']['clips']}, val {s['val']['clips']}, test {s['test']['clips']}); "
             f"{summary['wall_s']:.0f} s"]
    left_out = {c: why for c, why in summary["counts"]["excluded_columns"].items() if why == RANDOM_REASON}
    lines.append(f"  features: {', '.join(summary['groups'])}"
                 + (f"; left out (random weights; --include-random-weights uses them): {', '.join(left_out)}"
                    if left_out else ""))
    fmt = lambda v: "–" if v is None else f"{v:.3f}"  # noqa: E731
    for name, m in summary["metrics"].items():
        acc = fmt(m["accuracy"])
        adj = (summary.get("adjusted_accuracy") or {}).get(name)
        if adj and adj["adjusted"] is not None:
            acc += f" (adjusted for label noise {adj['adjusted']:.3f} [{adj['interval'][0]:.3f}, {adj['interval'][1]:.3f}])"
        lines.append(f"  test {name:8s} accuracy {acc}, balanced {fmt(m['balanced_accuracy'])}, "
                     f"ROC AUC {fmt(m['roc_auc'])}, mAP {fmt(m['map'])}, macro F1 {fmt(m['macro_f1'])}")
    search = summary["search"]
    lines.append(f"  search: {len(search['trials'])} trial(s) in {search['wall_s']:.0f} s, best validation score "
                 f"{search['best_val_score']:.3f} with {search['params']}")
    lines.append(f"  report: {summary['report']}")
    lines.append(f"  model:  {summary['model']}  (acoustic_env.load_model)")
    return lines
