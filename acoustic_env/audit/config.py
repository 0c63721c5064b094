"""Options of the audit job, validated before any data is read.

Like the extract job, a bad option stops the audit with one line naming the
field (``ConfigError: folds: must be an integer >= 2, got 1``), not with a
traceback from scikit-learn after the feature table has been loaded.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from acoustic_env.config import ConfigError, _build

MODELS = ("logreg", "xgboost", "mlp")
FILTERS = ("prune_by_noise_rate", "prune_by_class", "both", "confident_learning", "predicted_neq_given")
PARALLEL = ("sequential", "ray")


class AuditError(ValueError):
    """The audit's input data cannot be audited (no feature columns, too few labelled clips, bad verdicts)."""


@dataclass(frozen=True)
class AuditConfig:
    """Everything the audit job needs; summary.json stores it whole.

    ``feature_groups`` empty means every vector column except class-score
    columns (``*_scores``): scores from a pretrained AudioSet tagger were
    trained on the very labels being audited, so they would echo the label
    noise back instead of judging it. ``filter_by`` is cleanlab's rule for
    flagging; its default (``prune_by_noise_rate``) flags as many clips per
    (given, true) class pair as the estimated noise matrix says are wrong.
    """

    features: str
    output: str
    task: str = "urban_natural"
    ontology: str | None = None
    model: str = "logreg"
    folds: int = 5
    seed: int = 0
    feature_groups: tuple[str, ...] = ()
    filter_by: str = "prune_by_noise_rate"
    review_top: int = 50
    random_sample: int = 100
    parallel: str = "sequential"
    ray_address: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _require(cond: bool, name: str, msg: str, value: Any) -> None:
    if not cond:
        raise ConfigError(f"{name}: {msg}, got {value!r}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate_audit(cfg: AuditConfig) -> AuditConfig:
    """Check every field a user can set; raise ConfigError naming the first bad one."""
    _require(bool(cfg.features), "features", "is required", cfg.features)
    _require(bool(cfg.output), "output", "is required", cfg.output)
    _require(bool(cfg.task), "task", "is required", cfg.task)
    _require(cfg.model in MODELS, "model", f"must be one of {list(MODELS)}", cfg.model)
    _require(_is_int(cfg.folds) and 2 <= cfg.folds <= 50, "folds", "must be an integer in [2, 50]", cfg.folds)
    _require(_is_int(cfg.seed) and cfg.seed >= 0, "seed", "must be an integer >= 0", cfg.seed)
    _require(cfg.filter_by in FILTERS, "filter_by", f"must be one of {list(FILTERS)}", cfg.filter_by)
    _require(_is_int(cfg.review_top) and cfg.review_top >= 0, "review_top", "must be an integer >= 0", cfg.review_top)
    _require(_is_int(cfg.random_sample) and cfg.random_sample >= 0, "random_sample", "must be an integer >= 0",
             cfg.random_sample)
    _require(cfg.parallel in PARALLEL, "parallel", f"must be one of {list(PARALLEL)}", cfg.parallel)
    _require(all(isinstance(g, str) and g for g in cfg.feature_groups), "feature_groups",
             "must be non-empty column names or prefixes", cfg.feature_groups)
    return cfg


def audit_config_from_dict(data: dict[str, Any]) -> AuditConfig:
    """Build and validate an AuditConfig from plain data (a parsed YAML/JSON file or CLI args)."""
    data = dict(data)
    if isinstance(data.get("feature_groups"), str):
        data["feature_groups"] = tuple(g.strip() for g in data["feature_groups"].split(",") if g.strip())
    return validate_audit(_build(AuditConfig, data, ""))
