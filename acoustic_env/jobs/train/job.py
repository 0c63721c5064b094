"""The train job: features/ → evaluation → report and model.

This is the Python API behind ``acoustic-env train`` (on a cluster: the job of ``jobs/train/``): it
reads the labelled set (``jobs.labelled``), runs one of two evaluations, chosen by
the size of the data (``TrainConfig.cv_max_clips``), each in its own module, and
writes what it returns (``evaluation.Outcome``):

- **cross-validation** (``crossval.py``; up to ``cv_max_clips`` clips, or with ``folds_column``):
  grouped K-fold CV of the zoo's models at fixed hyper-parameters (``learn.cv``),
  pooled out-of-fold figures with intervals, the model chosen by its pooled
  score and refitted on every clip. One validation split of a few dozen clips
  is too noisy to choose a model on, or to report.
- **split** (``split.py``; larger data, or a ``test_list``): train / validation / test split,
  per-group PCA, each candidate trained as its spec says (``trains``: the MLP tuned by Ray Tune, the CNN on
  its streamed images, the others in this process), all scored on the test split.

Outputs, below ``cfg.output``:

- ``model/``: the artifact (``acoustic_env.load_model``);
- ``report/index.html`` with its figures and ``metrics.json``, and ``report/predictions.parquet``: the chosen
  model's clip-level predictions, which the next run into this output compares itself with (``compare.py``: read
  before this run's report replaces them, the comparison kept in metrics.json and the run record);
- ``runs/<run_id>.json``: the run record (config, versions, counts, timings);
- ``ray/``: Ray Tune and Ray Train run directories (checkpoints) unless ``work_dir`` says otherwise.
"""

from __future__ import annotations

import logging
from collections import Counter
import time
from functools import partial
from typing import Any

import numpy as np

from acoustic_env.vocabulary.tasks import Task, load_task
from acoustic_env import candidates
from acoustic_env.candidates import cnn
from acoustic_env.config import ConfigError, TrainConfig, validate
from acoustic_env.jobs.labelled import read_labelled
from acoustic_env.jobs.preflight import MIN_TRAIN_CLIPS, one_class, preflight
from acoustic_env.jobs.record import Run, lifecycle, package_versions
from acoustic_env.jobs.results import TrainResult
from acoustic_env.jobs.train.compare import compare, comparison_line, read_previous, scored, write_predictions
from acoustic_env.jobs.train.crossval import run_cross_validation, run_grid
from acoustic_env.jobs.train.evaluation import balance_line, class_balance, resampling_used, slim
from acoustic_env.jobs.train.gap import generalisation_gap
from acoustic_env.jobs.train.grid import grid_lines
from acoustic_env.jobs.train.inputs import read_label_accuracy, read_test_list
from acoustic_env.pages.report import write_report
from acoustic_env.jobs.train.shuffled import shuffled_lines
from acoustic_env.jobs.train.split import run_split
from acoustic_env.labels.label_list import label_list_line
from acoustic_env.learn.artifact import save_model, table_description
from acoustic_env.learn.duplicates import merge_lines
from acoustic_env.learn.eda import explore
from acoustic_env.learn.fit import METRIC_NAMES
from acoustic_env.learn.image_input import recorded_image
from acoustic_env.learn.warm_start import described, panns_init
from acoustic_env.learn.metrics import adjusted_accuracy, assumed_label_accuracy
from acoustic_env.learn.mlp import layer_table
from acoustic_env.storage import join
from acoustic_env.table import RANDOM_REASON, FeatureSet

log = logging.getLogger("acoustic_env.jobs.train")
EXTRA_PACKAGES = ("scikit-learn", "xgboost", "skops", "shap", "optuna", "matplotlib")
MIN_CLIPS = MIN_TRAIN_CLIPS


def _enough_clips(cfg: TrainConfig, features: FeatureSet, task: Task) -> None:
    """Train's minimum, checked before Ray starts: a table too small costs a second, not 30."""
    if len(features) < MIN_CLIPS:
        raise ConfigError(f"task: only {len(features)} clips of {cfg.features} have a target for "
                          f"{task.name} and finite features (need {MIN_CLIPS} or more)")
    present = [task.class_names[c] for c in np.unique(features.y)] if task.kind == "single_label" else []
    # nothing to tell apart: every model would fail its own way (SHAP after 30 s)
    if problem := one_class(len(features), cfg.features, task.name, present):
        raise ConfigError(problem)


def train(cfg: TrainConfig) -> TrainResult:
    """Run the job; the reported figures, how they were obtained, where the model and the report are."""
    validate(cfg)
    preflight(cfg)
    # the job's own files, read once here: the learners get plain values
    test_ids = read_test_list(cfg.test_list) if cfg.test_list else None
    estimate = (assumed_label_accuracy(cfg.assumed_label_accuracy) if cfg.assumed_label_accuracy else
                read_label_accuracy(cfg.label_accuracy) if cfg.label_accuracy else None)
    task = load_task(cfg.task, cfg.ontology)
    cfg.check_task(task.name, task.kind, task.n_classes)
    init = panns_init(cfg.weights_cache) if cfg.cnn_init == "panns" else None  # the checkpoint checked up front
    # the --cnn-* flags are the CNN's own settings, fixed for the run (candidates/cnn.py: chosen)
    with (lifecycle("train", cfg.to_dict(), cfg.output, versions=package_versions(EXTRA_PACKAGES)) as run,
          candidates.pinned(cnn.SPEC.name, cnn.chosen(cfg.cnn_architecture, cfg.cnn_crop_s, init))):
        return TrainResult.from_record(_train(cfg, run, estimate, test_ids, init))


def _train(cfg: TrainConfig, run: Run, estimate: dict[str, Any] | None, test_ids: set[str] | None,
           init: dict[str, str] | None) -> dict[str, Any]:
    """The job's work once its record is written (a table too small, or any failure, ends it ``failed``); the
    record. ``init``: the checked checkpoint the CNN starts from, said in the tuning's method."""
    run_id = run.run_id
    timings: dict[str, float] = {}
    report = join(cfg.output, "report")
    previous = read_previous(report)  # the chosen model this run replaces, read before its report is rewritten

    t = time.time()
    labelled = read_labelled(cfg.features, cfg.task, cfg.ontology, partial(_enough_clips, cfg),
                             feature_groups=cfg.read_groups(), signals=cfg.signals,
                             include_random_weights=cfg.include_random_weights, max_bytes=cfg.memory_gb * 2 ** 30,
                             labels=cfg.labels, duplicate_chunks=cfg.duplicate_chunks)
    task, features, duplicates = labelled.task, labelled.features, labelled.duplicates
    test_mask = None
    if test_ids is not None:
        test_mask = np.isin(features.ids, list(test_ids))
        if not test_mask.any():
            raise ConfigError(f"test_list: none of its {len(test_ids)} clips is in the feature table with a target")
    clip_groups = features.groups if features.has_groups else None
    grid, winner_cv = None, None
    if cfg.grid:
        timings["read_s"] = time.time() - t
        features, grid = run_grid(cfg, task, features, {"duplicates": duplicates.counts})
        winner_cv = grid.pop("result")  # the winning cell, cross-validated already on the folds below
        timings["grid_s"], t = grid["wall_s"], time.time()
    groups = list(features.columns)
    base_counts = {"rows": features.n_read, "with_target": len(features), **features.excluded["rows"],
                   "excluded_columns": features.excluded["columns"], "duplicates": duplicates.counts}
    # cross-validation unless asked for the split, or the data is too large for it (see the module docstring)
    if cfg.folds_column or (cfg.cv_folds and test_mask is None and len(features) <= cfg.cv_max_clips
                            and features.X is not None):
        out = run_cross_validation(cfg, task, features, base_counts, timings, t, winner_cv)
    elif cfg.compare_shuffled or cfg.saved_model == candidates.AVERAGE:
        field, needs = (("compare_shuffled", "compares two cross-validations") if cfg.compare_shuffled else
                        ("saved_model", "average is the average of the cross-validated models"))
        raise ConfigError(f"{field}: {needs}, and {len(features)} clips take the train/val/test split (above "
                          f"cv_max_clips={cfg.cv_max_clips}, or above memory_gb); raise those or leave {field} out")
    else:
        out = run_split(cfg, task, features, clip_groups, test_mask, base_counts, timings, t)
    models, transforms, counts, k = out.models, out.transforms, out.counts, task.n_classes
    if init:
        out.search["method"] = f"{out.search['method']} {described(init)}"
    metrics = {m: slim(r["test"]) for m, r in models.items()}  # what model.json and the run record keep
    if out.features is not None:  # the saved model's own feature set (learn.feature_sets): what it reads
        features, groups = out.features, list(out.features.columns)

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
    this = None if out.predictions is None else scored(
        run_id, out.evaluation["chosen"], task.kind, task.class_names, labelled.label_list, features.ids, features.y,
        out.predictions)
    changed = None if this is None else compare(this, previous, dict(zip(features.ids, features.groups)), cfg.seed)
    balance, resampled = class_balance(cfg), resampling_used(cfg, list(models), out.evaluation["method"])
    balance_used = {"class_weight": cfg.class_weight, "balanced_sampler": cfg.balanced_sampler, "resample": resampled,
                    "models": {m: balance_line(balance.describe(m, task.kind), resampled, m) for m in models}}
    preprocessing = [{"group": tr.group, "dim": int(tr.in_mean.shape[0]), "components": tr.n_components,
                      "variance": float(tr.explained_variance_ratio.sum())} for tr in transforms]
    results = {
        "run_id": run_id, "features": cfg.features, "groups": groups, "counts": counts, "models": models,
        "task": {"name": task.name, "kind": task.kind, "class_names": list(task.class_names),
                 "audioset": task.audioset},
        "ablations": out.ablations, "shap": out.shap, "importances": out.importances, "adjusted_accuracy": adjusted,
        "adjustment_note": note,
        "search": out.search, "evaluation": out.evaluation,
        "preprocessing": preprocessing, "model_uri": model_uri, "predictions": out.predictions,
        "history": out.history, "grid": grid, "balance": balance_used,
        "gap": generalisation_gap(task.kind, out.evaluation, out.search, out.predictions),
        "network": None if out.network is None else {"layers": layer_table(out.network),
                                                     "saved": out.evaluation["saved_model"] == out.network_model},
        "eda": explore(features, transforms, task.kind, list(task.class_names), cfg.seed),
        "labels_changed": changed,
    }
    report_uri = write_report(report, results)
    if this is not None:
        write_predictions(report, this)
    # model.json keeps what scoring audio needs from the table (save_model masks the URIs' credentials)
    save_model(model_uri, recorded_image(out.estimator, features.table.columns), transforms, {
        "task": {"name": task.name, "kind": task.kind, "class_names": list(task.class_names),
                 "definition": task.definition},
        "hyperparameters": out.params, "preprocessing": preprocessing,
        "evaluation": {key: v for key, v in out.evaluation.items() if key != "models"},
        "metrics": metrics, "adjusted_accuracy": adjusted,
        "class_balance": {"class_weight": cfg.class_weight, "balanced_sampler": cfg.balanced_sampler,
                          "saved_model": _saved_balance(balance_used["models"], out.evaluation["saved_model"],
                                                        balance.describe(out.evaluation["saved_model"], task.kind)),
                          **({"resample": resampled} if resampled else {})},
        "config": cfg.to_dict(), "versions": run.record["versions"], "run_id": run_id,
        "label_list": labelled.label_list, **table_description(cfg.features)},
        features.feature_groups)
    return run.complete(counts=counts, timings=timings, groups=groups, search=results["search"],
                        label_list=labelled.label_list, labels_changed=changed,
                        evaluation=out.evaluation, metrics=metrics,
                        adjusted_accuracy=adjusted, model=model_uri, report=report_uri, grid=grid)


def _saved_balance(lines: dict[str, str], saved: str, otherwise: str) -> str:
    """The saved model's class-balance line (model.json's ``class_balance.saved_model``): its own, or each member's
    of a saved average, by name."""
    if saved == candidates.AVERAGE:
        return "; ".join(f"{m}: {line}" for m, line in lines.items() if m != saved)
    return lines.get(saved, otherwise)


def _adjusted(adj: dict[str, Any]) -> str:
    """Both adjusted figures of one accuracy, named: the noise model's, then the study's ratio."""
    text = f"noise model {adj['adjusted']:.3f} [{adj['interval'][0]:.3f}, {adj['interval'][1]:.3f}]"
    if adj.get("study_ratio") is not None:
        lo, hi = adj["study_ratio_interval"]
        text += f"; the study's acc/a {adj['study_ratio']:.3f} [{lo:.3f}, {hi:.3f}]"
    return text


def feature_set_lines(fs: dict[str, Any] | None) -> list[str]:
    """The console's model x feature-set table (mean inner score; * and the folds that chose it), and the saved
    model's set."""
    if not fs:
        return []
    names = list(fs["sets"])
    width = max(11, *(len(n) for n in names)) + 2
    lines = ["  feature sets, chosen per outer fold on its training clips' inner folds (mean inner score, "
             "*folds that chose it):", "    " + " " * 9 + "".join(f"{n:>{width}s}" for n in names)]
    for m, per in fs["table"].items():
        cells = [("–" if c["inner_score"] is None else f"{c['inner_score']:.3f}")
                 + (f" *{c['chosen_in']}" if c["chosen_in"] else "   ") for c in (per[n] for n in names)]
        lines.append(f"    {m:9s}" + "".join(f"{c:>{width}s}" for c in cells))
    if fs.get("saved"):
        lines.append(f"    saved {fs['saved']['model']} reads {fs['saved']['set']} "
                     f"({', '.join(fs['saved']['groups'])}), chosen on the inner folds of all clips")
    return lines


def calibration_lines(calibration: dict[str, Any] | None, metrics: dict[str, dict[str, Any]]) -> list[str]:
    """The console's calibration: per model the out-of-fold ECE after and before each fold model's probability map,
    the ECE a calibrated model as sharp would score on these clips (``learn.metrics.ece_floor``), and the maps the
    folds chose; the saved model's map."""
    if not calibration or not calibration.get("per_fold"):
        return []
    parts = []
    for m, folds in calibration["per_fold"].items():
        after, floor, before = (metrics[m].get(k) for k in ("ece", "ece_floor", "ece_before"))
        chosen = Counter(f["method"] for f in folds)
        notes = ([] if floor is None else [f"floor {floor:.3f}"]) + ([] if before is None else [f"before {before:.3f}"])
        parts.append(f"{m} " + ("–" if after is None else f"{after:.3f}")
                     + (f" ({', '.join(notes)})" if notes else "")
                     + " [" + ", ".join(f"{k} x{v}" for k, v in chosen.items()) + "]")
    saved = calibration.get("saved") or {}
    return [f"  calibration, ECE out of fold with each fold model's map chosen on its inner folds (floor: a "
            f"calibrated model's as sharp, on these clips): {'; '.join(parts)}"
            + (f"; the saved model's map: {saved['method']}" if saved.get("method") else "")]


def summary_lines(result: TrainResult) -> list[str]:
    """What the command prints: every model's reported figures, how they were obtained, and where the outputs are."""
    s, ev = result.counts["splits"], result.evaluation
    n = sum(v["clips"] for v in s.values())
    chosen_by = f" (by {METRIC_NAMES[ev['select_by']]})" if ev.get("select_by") else ""
    if ev["method"] == "cross_validation":
        how = (f"{ev['folds']}-fold cross-validation"
               + (f" over column {ev['folds_column']}" if ev["folds_column"] else " (grouped)" if ev["grouped"] else ""))
        passed_over = (f" ({ev['best']} scored higher, {ev['scores'][ev['best']]:.3f} against "
                       f"{ev['scores'][ev['chosen']]:.3f}, but has no saved form)" if ev["best"] != ev["chosen"] else "")
        lines = [f"train run {result.run_id}: {n} clips, {how}; chosen model {ev['chosen']}{chosen_by}{passed_over}, "
                 f"saved {ev['saved_model']} refitted on all clips; {result.wall_s:.0f} s"]
    else:
        lines = [f"train run {result.run_id}: {n} clips "
                 f"(train {s['train']['clips']}, val {s['val']['clips']}, test {s['test']['clips']}); "
                 f"chosen model {ev['chosen']}{chosen_by}; {result.wall_s:.0f} s"]
    left_out = {c: why for c, why in result.counts["excluded_columns"].items() if why == RANDOM_REASON}
    lines.append(f"  features: {', '.join(result.groups)}"
                 + (f"; left out (random weights; --include-random-weights uses them): {', '.join(left_out)}"
                    if left_out else ""))
    duplicates = result.counts.get("duplicates") or {}
    if duplicates.get("groups_merged"):
        lines.append(f"  near-duplicates: {duplicates['groups_before']} groups merged into "
                     f"{duplicates['groups_after']} so that copies stay on one side of every fold or split")
        lines += [f"    {line}" for line in merge_lines(duplicates)]
    if (duplicates.get("frames") or {}).get("unread"):  # chunk mode: clips whose audio could not be decoded again
        lines.append(f"  near-duplicate guard: {duplicates['frames']['unread']} clip(s) whose audio could not be "
                     "read were not compared chunk by chunk")
    if ev.get("not_resampled"):
        lines.append(f"  not resampled: {', '.join(ev['not_resampled'])} (the split evaluation streams its images; "
                     "cross-validation resamples them)")
    lines += label_list_line(result.record.get("label_list"))
    lines += comparison_line(result.record.get("labels_changed"))
    fmt = lambda v: "–" if v is None else f"{v:.3f}"  # noqa: E731
    for name, m in result.metrics.items():
        ci = ev["models"][name]["intervals"]
        span = lambda key: "" if not ci.get(key) else f" [{ci[key][0]:.3f}, {ci[key][1]:.3f}]"  # noqa: E731
        acc = fmt(m["accuracy"]) + span("accuracy")  # each interval right after the figure it belongs to
        adj = (result.adjusted_accuracy or {}).get(name)
        if adj and adj["adjusted"] is not None:
            acc += f" (adjusted for label noise: {_adjusted(adj)})"
        if m.get("max_accuracy") is not None:
            # the threshold is chosen on the very predictions it is scored on: an optimistic figure, no interval
            acc += (f", at the best threshold ({m['max_accuracy_threshold']:.2f}, chosen on these predictions: "
                    f"optimistic) {m['max_accuracy']:.3f}")
            best = (adj or {}).get("max_accuracy")
            if best and best["adjusted"] is not None:
                acc += f" (adjusted: {_adjusted(best)})"
        lines.append(f"  {'cv' if ev['method'] == 'cross_validation' else 'test'} {name:8s} accuracy {acc}"
                     f", balanced {fmt(m['balanced_accuracy'])}, ROC AUC {fmt(m['roc_auc'])}"
                     f"{span('roc_auc')}, mAP {fmt(m['map'])}, macro F1 {fmt(m['macro_f1'])}{span('macro_f1')}")
    lines += feature_set_lines(ev.get("feature_sets"))
    lines += calibration_lines(ev.get("calibration"), result.metrics)
    lines += shuffled_lines(ev.get("shuffled"))
    if result.grid:
        lines += grid_lines(result.grid)
    search = result.search
    if ev["method"] == "cross_validation":
        lines.append(f"  cross-validation took {search['wall_s']:.0f} s; {search['method']}")
    else:
        lines.append(f"  tuning: {len(search['trials'])} trial(s) in {search['wall_s']:.0f} s, best validation "
                     f"score {search['best_val_score']:.3f} with {search['params']}")
    lines.append(f"  report: {result.report}")
    lines.append(f"  model:  {result.model}  (acoustic_env.load_model)")
    return lines
