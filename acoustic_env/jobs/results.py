"""What each job returns: a small frozen result, the run record beside it.

Every job writes its run record (``runs/<run_id>.json``, secrets masked, see
:mod:`acoustic_env.jobs.record`) and returns one of these, built from what it wrote
(``from_record``), so that a caller (the Python API, the command's console lines, the
demo, a script) reads the figures it needs as attributes instead of digging through the
record by key. ``record`` keeps the whole run record, as written, for everything else.

Light on purpose: ``acoustic_env.api`` hands these out and ``import acoustic_env`` must not
load Ray or torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ExtractResult:
    """What an extract run did; ``record`` is the whole run record (``runs/<run_id>.json``)."""

    run_id: str
    output: str
    counts: dict[str, int]
    error_types: dict[str, int]
    record: dict[str, Any]
    weights: dict[str, str]  # embedder -> its checkpoint's SHA-256, or "random"
    wall_s: float

    @property
    def features(self) -> str:
        return f"{self.output.rstrip('/')}/features"

    @property
    def errors(self) -> str:
        return f"{self.output.rstrip('/')}/errors"

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> ExtractResult:
        return cls(run_id=record["run_id"], output=record["config"]["output"], counts=record["counts"],
                   error_types=record["error_types"], record=record, weights=record["weights"],
                   wall_s=record["wall_s"])


@dataclass(frozen=True)
class TrainResult:
    """Test metrics per model (``mlp`` and the baselines), where the model and the report are.

    ``evaluation``: how the reported figures were obtained (cross-validation or the split,
    the model chosen and saved); ``search``: the hyper-parameter tuning or the CV's timing;
    ``grid``: the embedder x signal grid, when one ran.
    """

    run_id: str
    metrics: dict[str, dict[str, Any]]
    model: str
    report: str
    record: dict[str, Any]
    adjusted_accuracy: dict[str, Any] | None
    counts: dict[str, Any]
    groups: list[str]
    evaluation: dict[str, Any]
    search: dict[str, Any]
    grid: dict[str, Any] | None
    timings: dict[str, float]
    wall_s: float

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> TrainResult:
        return cls(run_id=record["run_id"], metrics=record["metrics"], model=record["model"], report=record["report"],
                   record=record, adjusted_accuracy=record["adjusted_accuracy"], counts=record["counts"],
                   groups=record["groups"], evaluation=record["evaluation"], search=record["search"],
                   grid=record["grid"], timings=record["timings"], wall_s=record["wall_s"])


@dataclass(frozen=True)
class AuditResult:
    """How many clips were audited and flagged, the estimated share of wrong labels, where the outputs are.

    ``record`` is the audit's summary (``summary.json``): the noise estimate per class, the
    out-of-fold model, the folds, the score against a truth list.
    """

    audit_id: str
    audited: int
    flagged: int
    estimated_wrong_share: float
    table: str
    review: str | None
    record: dict[str, Any]
    wall_s: float

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> AuditResult:
        return cls(audit_id=record["audit_id"], audited=record["counts"]["audited"],
                   flagged=record["counts"]["flagged"], estimated_wrong_share=record["noise"]["estimated_wrong_share"],
                   table=record["outputs"]["table"], review=record["outputs"].get("review"), record=record,
                   wall_s=record["wall_s"])


@dataclass(frozen=True)
class AnnotateResult:
    """How many clips were annotated and flagged against their given labels, by which model.

    With ``lists`` (a directory of clip lists): ``lists`` holds each list annotated by this
    run (its extract run and counts, by name), ``lists_already_done`` the names recorded earlier.
    """

    run_id: str
    model_id: str
    counts: dict[str, int]
    record: dict[str, Any]
    lists: dict[str, dict[str, Any]]
    lists_already_done: list[str]
    wall_s: float

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> AnnotateResult:
        return cls(run_id=record["run_id"], model_id=record["model_id"], counts=record["counts"], record=record,
                   lists=record.get("lists", {}), lists_already_done=record.get("lists_already_done", []),
                   wall_s=record["wall_s"])


@dataclass(frozen=True)
class FetchResult:
    """What an AudioSet fetch run did: counts per outcome (and failures per reason), the manifest it wrote."""

    run_id: str
    output: str
    counts: dict[str, Any]
    manifest: str
    record: dict[str, Any]
    wall_s: float

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> FetchResult:
        return cls(run_id=record["run_id"], output=record["config"]["output"], counts=record["counts"],
                   manifest=record["manifest"], record=record, wall_s=record["wall_s"])


@dataclass(frozen=True)
class EmbeddingsResult:
    """What a conversion of AudioSet's released embeddings did: files and segments converted (and how fast),
    parts written into the feature table below ``output``."""

    run_id: str
    counts: dict[str, int]
    segments_per_s: float | None
    output: str
    record: dict[str, Any]
    wall_s: float

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> EmbeddingsResult:
        return cls(run_id=record["run_id"], counts=record["counts"], segments_per_s=record["segments_per_s"],
                   output=record["config"]["output"], record=record, wall_s=record["wall_s"])


@dataclass(frozen=True)
class Exported:
    """What ``export`` wrote: ``rows`` clips x ``columns`` columns into ``output``; ``left_out``: the clips of the
    table whose value of an exported group is missing or not finite (the table reader's rule)."""

    rows: int
    columns: int
    output: str
    left_out: int = 0
    index: str | None = None  # --embeddings: the search index copied beside the file, or why none was


@dataclass(frozen=True)
class Searched:
    """What ``search`` found (``found``: a ``jobs.search.Found``), for ``example``, and where it was written."""

    found: Any
    example: str
    save: str | None
    page: str | None  # the page's index.html, when one was written


@dataclass(frozen=True)
class Estimated:
    """The label accuracy ``audit-estimate`` gave (``estimate``), and what it said on the way."""

    estimate: dict[str, Any]
    notes: list[str]
    output: str | None


@dataclass(frozen=True)
class Predicted:
    """What ``predict`` scored: ``table`` (a row per clip, or per window with ``summary`` per file), how long it
    took, and what it wrote."""

    table: Any
    seconds: float
    save: str | None
    summary: Any = None  # with --windows: the ``WindowResult`` (its table, summary per file, window and hop)
    selections: str | None = None  # the directory of the Raven and Audacity files
    selection_files: int = 0
    peak_mib: float = 0.0


@dataclass(frozen=True)
class Done:
    """What a command without a run record did (the audioset and labels commands): ``result``, its own values; the
    config it ran with, which its lines quote; the label store it used, where it used one."""

    result: Any
    config: Any
    store: str | None = None
