"""The shuffled-split contrast (``train --compare-shuffled``): the chosen model cross-validated again on folds
drawn clip by clip, its figures beside the grouped ones.

The sourcing-sound study scored 0.936 on a shuffled split and 0.62 under folds that keep each source in one:
clips of one recording share its microphone, place and background, so a model scored on a sibling of a training
clip is scored on a near copy. The grouped folds (or a published ``--folds-column``) are this project's reported
figures; the shuffled ones say how much a careless split would have flattered the same pipeline. Only the grouping
changes: the same number of folds, stratified by class, and inside each fold the same preprocessing fitted on the
training folds, the same tuning, feature-set choice and calibration, on inner folds drawn clip by clip too (every
clip its own group), as a study without groups would have run them. One model, the chosen model: one more
cross-validation of one model is the whole cost.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np

from acoustic_env.candidates import AVERAGE
from acoustic_env.config import TrainConfig
from acoustic_env.jobs.train.evaluation import CV_THREADS, class_balance, preprocessing
from acoustic_env.learn.cv import cross_validate
from acoustic_env.learn.feature_sets import Sets
from acoustic_env.learn.metrics import headline
from acoustic_env.learn.splits import assign_folds
from acoustic_env.learn.tuning import TuningPlan
from acoustic_env.pages.report import SHUFFLED_FIGURES as FIGURES
from acoustic_env.pages.report import grouped_words
from acoustic_env.table import FeatureSet
from acoustic_env.vocabulary.tasks import Task



def shuffled_contrast(cfg: TrainConfig, task: Task, features: FeatureSet, model: str, grouped: np.ndarray,
                      n_folds: int, plan: TuningPlan, images: dict[str, np.ndarray],
                      sets: Sets | None, compared: Sequence[str]) -> dict[str, Any]:
    """``model`` cross-validated on ``n_folds`` stratified folds that ignore the groups, with the grouped run's
    tuning ``plan``, images and feature sets, beside its out-of-fold probabilities on the grouped folds
    (``grouped``): both sets of figures, and what the shuffled run cost. The average is that of the ``compared``
    models, each cross-validated again."""
    start = time.time()
    clips = np.asarray(features.ids).astype(str)  # every clip its own group: outer and inner folds clip by clip
    folds = assign_folds(features.y, clips, task.class_names, n_folds, cfg.seed, field="compare_shuffled")
    models = [m for m in compared if m != AVERAGE] if model == AVERAGE else [model]
    prep, raw = preprocessing(cfg, features)
    result = cross_validate(raw, features.y, folds, task.kind, task.n_classes, models, cfg.seed, clips, plan,
                            CV_THREADS, class_balance(cfg), {m: v for m, v in images.items() if m in models}, prep,
                            sets, calibrate=True)
    return {"model": model, "folds": n_folds, "grouped_by": cfg.folds_column or "group",
            "grouped": headline(task.kind, features.y, grouped),
            "shuffled": headline(task.kind, features.y, result.proba[model]),
            "seconds": round(time.time() - start, 1)}


def _figures(side: dict[str, Any]) -> str:
    """One side's figures in words, for the console."""
    return ", ".join(f"{words} " + ("–" if side[key] is None else f"{side[key]:.3f}") for key, words in FIGURES)


def shuffled_lines(contrast: dict[str, Any] | None) -> list[str]:
    """The console's contrast: the chosen model's figures on shuffled folds, then on the grouped ones."""
    if not contrast:
        return []
    return [f"  shuffled against grouped folds ({contrast['model']}, {contrast['folds']} folds each, "
            f"{contrast['seconds']:.0f} s): shuffled {_figures(contrast['shuffled'])}; "
            f"{grouped_words(contrast)} {_figures(contrast['grouped'])}"]
