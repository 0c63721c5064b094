"""The train job's configuration, validated before Ray starts.

Like ``acoustic_env.config`` for extraction: every field a user can set is
checked up front and a bad value stops the job with one line naming it
(``ConfigError: trials: must be an integer >= 0, got -1``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from acoustic_env.config import ConfigError, _build, _require

EMBEDDER_SOURCES = ("vggish", "yamnet", "panns")
SOURCES = ("indices", "mps", *EMBEDDER_SOURCES)
SIGNALS = ("raw", "fg", "bg")
# Components kept per source: enough to hold most of the variance of the
# hand-made features, and a strong reduction of the large embeddings (the
# PANNs and YAMNet vectors are wider than a few hundred training clips).
DEFAULT_PCA: dict[str, float] = {"indices": 20, "mps": 10, "vggish": 128, "yamnet": 400, "panns": 400}
BASELINES = ("logreg", "xgboost")
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class TrainConfig:
    """Everything the train job needs; the run record stores it whole.

    ``groups``: feature columns or whole sources to use (empty: every group the
    table has); ``signals`` narrows the per-signal sources (indices, MPS).
    ``pca``: per source, an integer component count or a variance fraction in (0, 1).
    ``val_size`` is a fraction of the clips left after the test split.
    ``trials = 0`` trains once with ``DEFAULT_PARAMS`` (no search).
    ``memory_gb``: above this many GiB of raw feature values the PCA is fitted
    incrementally while streaming the table, instead of in memory.
    """

    features: str
    output: str
    task: str = "urban_natural"
    ontology: str | None = None
    groups: tuple[str, ...] = ()
    signals: tuple[str, ...] = SIGNALS
    pca: dict[str, float] = field(default_factory=dict)
    test_size: float = 0.2
    val_size: float = 0.2
    test_list: str | None = None
    seed: int = 0
    trials: int = 8
    time_budget_s: float = 900.0
    max_concurrent_trials: int = 0
    max_rounds: int = 30
    grace_rounds: int = 3
    patience: int = 6
    steps_per_round: int = 50
    workers: int = 1
    device: str = "auto"
    baselines: tuple[str, ...] = BASELINES
    ablations: bool = True
    shap_samples: int = 100
    label_accuracy: str | None = None
    memory_gb: float = 4.0
    work_dir: str | None = None
    ray_address: str | None = None
    progress: bool = True

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def pca_target(self, source: str) -> float:
        return self.pca.get(source, DEFAULT_PCA[source])


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def validate(cfg: TrainConfig) -> TrainConfig:
    """Check every field; raise ConfigError naming the first bad one."""
    _require(bool(cfg.features), "features", "is required", cfg.features)
    _require(bool(cfg.output), "output", "is required", cfg.output)
    known = set(SOURCES) | {f"{s}_{g}" for s in ("indices", "mps") for g in SIGNALS}
    bad = [g for g in cfg.groups if g not in known]
    _require(not bad, "groups", f"must name sources or columns among {sorted(known)}", ",".join(bad))
    _require(bool(cfg.signals) and set(cfg.signals) <= set(SIGNALS), "signals",
             f"must be a non-empty subset of {list(SIGNALS)}", ",".join(cfg.signals))
    for source, target in cfg.pca.items():
        _require(source in SOURCES, f"pca.{source}", f"unknown source (known: {', '.join(SOURCES)})", target)
        ok = (_is_int(target) and target >= 1) or (isinstance(target, float) and 0 < target < 1)
        _require(ok, f"pca.{source}", "must be an integer >= 1 or a variance fraction in (0, 1)", target)
    _require(isinstance(cfg.test_size, (int, float)) and 0 < cfg.test_size < 1, "test_size", "must be in (0, 1)", cfg.test_size)
    _require(isinstance(cfg.val_size, (int, float)) and 0 < cfg.val_size < 1, "val_size", "must be in (0, 1)", cfg.val_size)
    _require(_is_int(cfg.seed), "seed", "must be an integer", cfg.seed)
    _require(_is_int(cfg.trials) and cfg.trials >= 0, "trials", "must be an integer >= 0", cfg.trials)
    _require(cfg.time_budget_s > 0, "time_budget_s", "must be > 0", cfg.time_budget_s)
    _require(_is_int(cfg.max_concurrent_trials) and cfg.max_concurrent_trials >= 0, "max_concurrent_trials",
             "must be an integer >= 0 (0: one per CPU pair)", cfg.max_concurrent_trials)
    _require(_is_int(cfg.max_rounds) and cfg.max_rounds >= 1, "max_rounds", "must be an integer >= 1", cfg.max_rounds)
    _require(_is_int(cfg.grace_rounds) and 1 <= cfg.grace_rounds <= cfg.max_rounds, "grace_rounds",
             "must be an integer in [1, max_rounds]", cfg.grace_rounds)
    _require(_is_int(cfg.patience) and cfg.patience >= 1, "patience", "must be an integer >= 1", cfg.patience)
    _require(_is_int(cfg.steps_per_round) and cfg.steps_per_round >= 1, "steps_per_round", "must be an integer >= 1",
             cfg.steps_per_round)
    _require(_is_int(cfg.workers) and cfg.workers >= 1, "workers", "must be an integer >= 1", cfg.workers)
    _require(cfg.device in DEVICES, "device", f"must be one of {list(DEVICES)}", cfg.device)
    _require(set(cfg.baselines) <= set(BASELINES), "baselines", f"must be a subset of {list(BASELINES)}",
             ",".join(cfg.baselines))
    _require(_is_int(cfg.shap_samples) and cfg.shap_samples >= 0, "shap_samples", "must be an integer >= 0 (0: no SHAP)",
             cfg.shap_samples)
    _require(cfg.memory_gb > 0, "memory_gb", "must be > 0", cfg.memory_gb)
    return cfg


def _parse_pca(value: Any) -> dict[str, float]:
    """``{"mps": 0.95}`` or ``"indices=20,mps=0.95"`` → a dict of int counts / float fractions."""
    if isinstance(value, dict):
        items = value.items()
    else:
        items = []
        for part in str(value).split(","):
            if not part.strip():
                continue
            if "=" not in part:
                raise ConfigError(f"pca: expected source=value pairs such as indices=20,mps=0.95, got {part.strip()!r}")
            k, v = part.split("=", 1)
            items.append((k.strip(), v.strip()))
    out: dict[str, float] = {}
    for k, v in items:
        try:
            num = float(v)
        except (TypeError, ValueError):
            raise ConfigError(f"pca.{k}: must be an integer >= 1 or a variance fraction in (0, 1), got {v!r}") from None
        out[k] = int(num) if num >= 1 and num == int(num) else num
    return out


def train_config_from_dict(data: dict[str, Any]) -> TrainConfig:
    """Build and validate a TrainConfig from plain data (a parsed YAML/JSON file or CLI args)."""
    data = dict(data)
    if "pca" in data:
        data["pca"] = _parse_pca(data["pca"] or {})
    for key in ("groups", "signals", "baselines"):
        if isinstance(data.get(key), str):
            data[key] = tuple(s.strip() for s in data[key].split(",") if s.strip())
    return validate(_build(TrainConfig, data, ""))
