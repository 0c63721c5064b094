"""The Python API: one function per job, plain arguments in, a small typed result out.

```python
import acoustic_env as ae

run = ae.extract("clips.csv", "out", audio_root="audio/")       # -> ExtractResult
table = ae.read_features("out", task="urban_natural")            # -> FeatureSet
model = ae.train("out", "model-out", trials=0)                   # -> TrainResult
audit = ae.audit("out", "audit-out")                             # -> AuditResult
ae.load_model(model.model).predict_proba(table)                  # any machine, no Ray
ae.predict(["a.wav", "b.wav"], model.model)                      # files in, a table of classes out
ae.predict_windows("hour.flac", model.model, hop_s=5)            # -> WindowResult: .table, .summary
```

Each function takes the job's config fields as keyword arguments (the same names as the
command's flags, with ``_`` for ``-``), or a whole ``config=`` (a config object, a mapping,
or the path of a YAML/JSON file; keyword arguments override it). A bad value raises
``ConfigError`` naming the field, before any work starts. The full run record stays
available as ``result.record``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, TypeVar

from acoustic_env.config import (
    AnnotateConfig,
    AuditConfig,
    ConfigError,
    ExtractConfig,
    Section,
    TrainConfig,
    WindowParams,
    from_dict,
    load_config_file,
)

C = TypeVar("C", bound=Section)


def _config(cls: type[C], config: C | Mapping[str, Any] | str | None, fields: Mapping[str, Any]) -> C:
    """A validated config from a base (object, mapping or file path) and keyword overrides."""
    if isinstance(config, cls):
        base = config.to_dict()
    elif isinstance(config, str):
        base = load_config_file(config)
    elif config is None or isinstance(config, Mapping):
        base = dict(config or {})
    else:
        raise ConfigError(f"config: expected a {cls.__name__}, a mapping or a file path, got {type(config).__name__}")
    return from_dict(cls, {**base, **{k: v for k, v in fields.items() if v is not None}})


@dataclass(frozen=True)
class ExtractResult:
    """What an extract run did; ``record`` is the whole run record (``runs/<run_id>.json``)."""

    run_id: str
    output: str
    counts: dict[str, int]
    error_types: dict[str, int]
    record: dict[str, Any]

    @property
    def features(self) -> str:
        return f"{self.output.rstrip('/')}/features"

    @property
    def errors(self) -> str:
        return f"{self.output.rstrip('/')}/errors"


@dataclass(frozen=True)
class TrainResult:
    """Test metrics per model (``mlp`` and the baselines), where the model and the report are."""

    run_id: str
    metrics: dict[str, dict[str, Any]]
    model: str
    report: str
    record: dict[str, Any]


@dataclass(frozen=True)
class AuditResult:
    """How many clips were audited and flagged, the estimated share of wrong labels, where the outputs are."""

    audit_id: str
    audited: int
    flagged: int
    estimated_wrong_share: float
    table: str
    review: str | None
    record: dict[str, Any]


@dataclass(frozen=True)
class AnnotateResult:
    """How many clips were annotated and flagged against their given labels, by which model."""

    run_id: str
    model_id: str
    counts: dict[str, int]
    record: dict[str, Any]


def extract(manifest: str | None = None, output: str | None = None, *,
            config: ExtractConfig | Mapping[str, Any] | str | None = None, **fields: Any) -> ExtractResult:
    """Extract features of every clip of ``manifest`` into ``output`` (resumable; see ``ExtractConfig``)."""
    from acoustic_env.jobs.extract import extract as run

    record = run(_config(ExtractConfig, config, {"manifest": manifest, "output": output, **fields}))
    return ExtractResult(run_id=record["run_id"], output=record["config"]["output"], counts=record["counts"],
                         error_types=record["error_types"], record=record)


def train(features: str | None = None, output: str | None = None, *,
          config: TrainConfig | Mapping[str, Any] | str | None = None, **fields: Any) -> TrainResult:
    """Train the environment classifier on a feature table (see ``TrainConfig``)."""
    from acoustic_env.jobs.train.job import train as run

    summary = run(_config(TrainConfig, config, {"features": features, "output": output, **fields}))
    return TrainResult(run_id=summary["run_id"], metrics=summary["metrics"], model=summary["model"],
                       report=summary["report"], record=summary)


def audit(features: str | None = None, output: str | None = None, *,
          config: AuditConfig | Mapping[str, Any] | str | None = None, **fields: Any) -> AuditResult:
    """Rescore the labels out of fold and rank the likely wrong ones (see ``AuditConfig``)."""
    from acoustic_env.jobs.audit.job import run_audit

    summary = run_audit(_config(AuditConfig, config, {"features": features, "output": output, **fields}))
    return AuditResult(audit_id=summary["audit_id"], audited=summary["counts"]["audited"],
                       flagged=summary["counts"]["flagged"],
                       estimated_wrong_share=summary["noise"]["estimated_wrong_share"],
                       table=summary["outputs"]["table"], review=summary["outputs"].get("review"), record=summary)


def annotate(manifest: str | None = None, model: str | None = None, features: str | None = None,
             output: str | None = None, *, config: AnnotateConfig | Mapping[str, Any] | str | None = None,
             **fields: Any) -> AnnotateResult:
    """Label a new clip list with a trained model, extracting only clips not yet in ``features``.

    ``lists=`` (a directory or prefix of clip lists) instead of ``manifest``: each list not yet
    recorded in ``<output>/lists/`` is annotated once.
    """
    from acoustic_env.jobs.annotate import annotate as run

    record = run(_config(AnnotateConfig, config, {"manifest": manifest, "model": model, "features": features,
                                                  "output": output, **fields}))
    return AnnotateResult(run_id=record["run_id"], model_id=record["model_id"], counts=record["counts"],
                          record=record)


def predict(inputs: str | list[str], model: str, *, output: str | None = None, audio_root: str | None = None,
            weights_cache: str | None = None, device: str = "cpu", top_tags: int = 3) -> Any:
    """Label audio files, a directory or a clip list with a trained model; an Arrow table, one row per clip.

    A handful of clips (up to ``acoustic_env.jobs.preflight.IN_PROCESS_MAX``) are
    decoded and featurised in this process, without Ray; more go through the extract
    job into ``output`` (default: a temporary directory). Columns: ``clip_id``, ``uri``,
    ``predicted``, ``prob_<class>``, ``error`` and, with a tagging embedder, ``tags``.
    """
    from acoustic_env.jobs.predict import predict as run

    return run([inputs] if isinstance(inputs, str) else list(inputs), model, output=output, audio_root=audio_root,
               weights_cache=weights_cache, device=device, top_tags=top_tags)



def predict_windows(inputs: str | list[str], model: str, *, audio_root: str | None = None,
                    weights_cache: str | None = None, device: str = "cpu", **fields: Any) -> Any:
    """Score long recordings in windows, in this process: a ``WindowResult``.

    ``fields``: the ``WindowParams`` options (``window_s``, default the model's training clip
    length; ``hop_s``, default ``window_s``; ``window_batch``). ``result.table`` has one row per
    window (``clip_id``, ``uri``, ``start_s``, ``end_s``, ``predicted``, ``prob_<class>``, ``error``,
    ``note``), ``result.summary`` one per file (per class: mean and max probability, share of windows).
    """
    from acoustic_env.jobs.windows import predict_windows as run

    window = _config(WindowParams, None, {**fields, "windows": True})
    return run([inputs] if isinstance(inputs, str) else list(inputs), model, window=window, audio_root=audio_root,
               weights_cache=weights_cache, device=device)
