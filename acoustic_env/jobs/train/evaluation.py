"""What the train job's two evaluations (``split``, ``crossval``) share: the model inputs, the outcome they hand over.

Both fit the per-group preprocessing on their training rows (``model_inputs``),
count clips per class in each split or fold, pick SHAP rows, and check the saved
form of a zoo model against the fitted one before it becomes the artifact; the
job (``job.train``) turns their ``Outcome`` into the report, the artifact and the
run record.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from torch import nn

from acoustic_env import candidates

from acoustic_env.vocabulary.tasks import Task
from acoustic_env.config import BASELINE_CHOICES, ConfigError, TrainConfig
from acoustic_env.jobs.train.explain import mlp_attributions
from acoustic_env.learn.augment import Resample
from acoustic_env.learn.balance import Balance
from acoustic_env.learn.portable import SAVED_TOLERANCE, Average, Portable, from_zoo
from acoustic_env.learn.preprocess import Preprocessing, fit_group, fit_streaming, raw_matrix
from acoustic_env.learn.image_input import IMAGE_COLUMN, stack_images, window_frames
from acoustic_env.learn.splits import NAMES
from acoustic_env.learn.tuning import TuningPlan
from acoustic_env.learn.threads import blas_threads
from acoustic_env.learn.transform import GroupTransform, transform_all
from acoustic_env.learn.zoo import ZooClassifier
from acoustic_env.table import FeatureSet, image_rows

#: Threads of each fit under cross-validation (at most cv_max_clips clips): one thread per fit of xgboost or the
#: network on a few hundred clips is several times faster than two that wait on each other (benchmarks/RESULTS.md).
CV_THREADS = 1

log = logging.getLogger("acoustic_env.jobs.train")


def compared(cfg: TrainConfig) -> list[str]:
    """The candidates train compares: those the config never offers as baselines, which it always compares (the
    network; ``config.BASELINE_CHOICES``), then ``--baselines`` in their order."""
    return [*(m for m in candidates.names() if m not in BASELINE_CHOICES), *cfg.baselines]


def model_inputs(cfg: TrainConfig, features: FeatureSet, is_train: np.ndarray,
                 only: list[str] | None = None) -> tuple[list[GroupTransform], np.ndarray]:
    """Fit the preprocessing on the ``is_train`` rows; return it and the model inputs of every row.

    ``only``: these feature groups (ablations). When the table was too large to hold
    (``features.X`` is None), the PCA is fitted incrementally over streamed passes.
    """
    pca = {g.name: cfg.pca_target(g.source) for g in features.feature_groups}
    if features.X is not None:
        groups = [g for g in features.feature_groups if only is None or g.name in only]
        with blas_threads(max((features.X[g.name].size for g in groups), default=0)):  # small table: one thread
            transforms = [fit_group(features.X[g.name][is_train], pca[g.name], g.name, cfg.seed) for g in groups]
            return transforms, transform_all(transforms, features.X)
    log.info("raw features exceed %.1f GiB: fitting PCA incrementally while streaming", cfg.memory_gb)
    transforms, projected = fit_streaming(features.stream, features.feature_groups, pca, is_train, len(features))
    return transforms, np.hstack([projected[t.group] for t in transforms]).astype(np.float32)


def preprocessing(cfg: TrainConfig, features: FeatureSet) -> tuple[Preprocessing, np.ndarray]:
    """The vector models' first step (every group's standardise → PCA, ``pca`` targets) and what it reads: every
    group's raw columns of every clip, side by side (the features held in memory)."""
    targets = {g.name: cfg.pca_target(g.source) for g in features.feature_groups}
    return Preprocessing.of(features, targets, cfg.seed), raw_matrix(features)


def narrowed(features: FeatureSet, keep: set[str], reason: str) -> FeatureSet:
    """``features`` with only the groups in ``keep``; each other one recorded as left out, with ``reason``."""
    excluded = {**features.excluded, "columns": {**features.excluded["columns"],
                                                 **{c: reason for c in features.columns if c not in keep}}}
    return replace(features, feature_groups=tuple(g for g in features.feature_groups if g.name in keep),
                   X={n: m for n, m in features.X.items() if n in keep}, excluded=excluded)


def class_balance(cfg: TrainConfig) -> Balance:
    """How every model of the run weighs rare classes (``class_weight``, ``balanced_sampler``), as the zoo takes it."""
    return Balance(None if cfg.class_weight == "none" else cfg.class_weight, cfg.balanced_sampler)


def resample_plan(cfg: TrainConfig) -> Resample | None:
    """How every model's training rows are resampled (``resample_per_class``, ``augment_*``); None: not at all."""
    if not cfg.resample_per_class:
        return None
    return Resample(cfg.resample_per_class, cfg.augment_noise, cfg.augment_pitch_shift, cfg.seed)


def resampling_used(cfg: TrainConfig, models: list[str], method: str) -> dict[str, Any] | None:
    """What resampling each model's training rows got (metrics.json's ``balance.resample``, the report's class-balance
    lines); None without resampling. The split evaluation streams the CNN's images, which it does not resample."""
    plan = resample_plan(cfg)
    if plan is None:
        return None

    def what(model: str) -> str:
        if model not in candidates.PARAMS:  # the average of the compared models' probabilities
            return "as the models it averages"
        if candidates.get(model).inputs == "images" and method == "split":
            return "not resampled: the split evaluation streams its images (cross-validation resamples them)"
        return plan.describe(images=candidates.get(model).inputs == "images")

    return {"per_class": plan.per_class, "noise": plan.noise, "pitch_shift": plan.pitch_shift,
            "models": {m: what(m) for m in models}}


def balance_line(weighing: str, resampled: dict[str, Any] | None, model: str) -> str:
    """A model's class-balance line: how it weighs classes (``Balance.describe``), then how its rows were resampled."""
    if not resampled:
        return weighing
    how = resampled["models"][model]
    return how if weighing in ("none", how) else f"{weighing}; {how}"


def tuning_plan(cfg: TrainConfig) -> TuningPlan:
    """Every model's tuning as the config asks: its trials, its inner folds, and the ``--select-by`` metric that
    scores the settings and picks the chosen model (``auto``: None, the task's default)."""
    return TuningPlan(cfg.tuning_trials, cfg.tuning_folds, None if cfg.select_by == "auto" else cfg.select_by)


def image_inputs(features: FeatureSet, model: str) -> np.ndarray:
    """An image candidate's inputs (``model``'s): each clip's log-mel image (the table's ``logmel``, in the clips'
    order) at the model's window, the clips' median length (``learn.image_input.stack_images``), as
    [clips, bands, frames] float32.

    The column is read whole into this process (8 bits a cell, 64 kB a 10-s clip), as cross-validation holds
    the feature matrix; a clip without an image, or images the network cannot take (its spec's ``input_problem``:
    the CNN's ``cnn14`` takes 64 bands), stops the job with one line naming it.
    """
    table, spec = features.table, candidates.get(model)
    if IMAGE_COLUMN not in table.schema.names:
        raise ConfigError(f"baselines: {model} learns from the {IMAGE_COLUMN!r} image column, which {table.source} "
                          f"lacks; extract the table with the log-mel images, or leave {model} out")
    images = image_rows(features, IMAGE_COLUMN)
    missing = [c for c, im in zip(features.ids, images) if im is None]
    if missing:
        raise ConfigError(f"baselines: {model} needs every clip's {IMAGE_COLUMN!r} image; {len(missing)} clip(s) of "
                          f"{table.source} have none, e.g. {missing[0]}")
    x = stack_images(images, window_frames(images))
    if spec.input_problem and (problem := spec.input_problem(x.shape[1], spec.params)):
        raise ConfigError(f"{model}_architecture: {problem}")
    return x


def split_counts(task: Task, features: FeatureSet, split: np.ndarray,
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


def slim(metrics: dict[str, Any]) -> dict[str, Any]:
    """The metrics without the per-point curves and matrices, which only the report's figures need (the expected
    calibration errors kept as ``ece``, ``ece_floor`` (``learn.metrics.ece_floor``) and, for a model with a
    probability map, ``ece_before``)."""
    eces = {key: curve.get(field) for key, name, field in (
        ("ece", "calibration", "ece"), ("ece_floor", "calibration", "ece_floor"),
        ("ece_before", "calibration_before", "ece")) if isinstance(curve := metrics.get(name), dict)}
    return {**{k: v for k, v in metrics.items()
               if k not in ("roc_curves", "calibration", "calibration_before", "confusion")}, **eces}


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
    estimator: Portable | Average  # the saved model: the chosen model, in its pickle-free form
    params: dict[str, Any]
    predictions: dict[str, Any] | None = None  # per clip scored: the report's misclassified clips (report.py)
    history: dict[str, Any] | None = None  # the network's rounds: {"title", "rounds": [{epoch, train_score, val_score}]}
    importances: dict[str, Any] | None = None  # per model: coefficient or impurity importances (explain.importances)
    network: nn.Module | None = None  # the tuned network trained (the tuning's choice; under CV: on all clips)
    network_model: str | None = None  # the candidate ``network`` is
    features: FeatureSet | None = None  # the groups the saved model reads, when a feature-set choice narrowed them


def shap_rows(cfg: TrainConfig, explain_from: np.ndarray, background_from: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows SHAP explains (``shap_samples`` of them) and its background (100), drawn with the job's seed."""
    rng = np.random.default_rng(cfg.seed)
    explain = np.sort(rng.choice(explain_from, min(cfg.shap_samples, len(explain_from)), replace=False))
    background = np.sort(rng.choice(background_from, min(100, len(background_from)), replace=False))
    return explain, background


def network_shap(cfg: TrainConfig, features: FeatureSet, net: nn.Module, transforms: list[GroupTransform],
             explain_rows: np.ndarray, background_rows: np.ndarray) -> dict[str, Any]:
    """The network's attributions to the raw feature groups (through their PCA), on the raw rows read back."""
    raw = features.rows(np.concatenate([background_rows, explain_rows]))
    raw_x = np.hstack([raw[g.name] for g in features.feature_groups]).astype(np.float32)
    nb = len(background_rows)
    return mlp_attributions(net, transforms, list(features.feature_groups), raw_x[:nb], raw_x[nb:], cfg.seed)


def checked_portable(fitted: ZooClassifier, x: np.ndarray, raw: np.ndarray | None = None) -> Portable:
    """The fitted model in the artifact's form, checked to give its probabilities on every row to
    ``learn.portable.SAVED_TOLERANCE``.

    ``x``: the saved form's inputs of every row (the projections); ``raw``: the fitted model's, when its
    preprocessing is inside it (the raw columns it projects itself), else ``x``.
    The check is the guarantee behind "the saved model is the chosen model":
    a format that drifted from its estimator fails the run here, not in predict.
    """
    estimator = from_zoo(fitted)
    worst = float(np.abs(estimator.predict_proba(x) - fitted.predict_proba(x if raw is None else raw)).max())
    if worst > SAVED_TOLERANCE:
        raise RuntimeError(f"the saved {fitted.name} differs from the fitted one by {worst:.2g} on the training clips")
    return estimator
