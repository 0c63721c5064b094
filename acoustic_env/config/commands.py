"""The configs of the commands around the jobs: ``export`` (a feature table as one file), ``audit-review`` and
``audit-estimate`` (a person's review of an audit), ``predict`` (a model on new audio) and ``demo``.

Each field is declared once, here, with its help, choices, bounds and path role; the flags (``config.flags``), the
path checks (``jobs/preflight.py``) and the Python API (``ae.run``) derive from it. A field that another job
declares already (``audio_root``, ``review_top``, the features' ``impl``) is taken from it with ``like``.
"""

from __future__ import annotations

from dataclasses import dataclass

from acoustic_env.config.common import DEVICES, IN_PROCESS_MAX, _seed
from acoustic_env.config.extraction import ExtractConfig, FeatureParams, WindowParams
from acoustic_env.config.learning import AuditConfig
from acoustic_env.config.schema import Section, like, option
from acoustic_env.config.search import SearchConfig


@dataclass(frozen=True)
class ExportConfig(Section):
    """A feature table written as one Parquet or CSV file, one named column per value (``acoustic-env export``)."""

    features: str = option(positional=True, role="table",
                           help="an extract output, its features/ directory, or a Parquet file")
    output: str = option(role="output_file", help="a .parquet or .csv file")
    wide: bool = option(False, help="one column per feature value, named (indices_raw:ACI); without it, one list "
                                    "column per group (Parquet only: a .csv is always wide)")
    task: str | None = option(None, help="keep only the clips with a target of this task (default: every clip)")
    feature_groups: tuple[str, ...] = option((), help="groups or sources to export, e.g. indices,mps_fg (empty: all)")
    include_random_weights: bool = option(False, help="also export embedder columns computed with random weights")
    embeddings: bool = option(False, help="write one embedder's embeddings to share (a .parquet file): clip_id, uri, "
                                          "start_s, end_s, labels and the vectors, the embedder's name, version and "
                                          "weights in the file's metadata, and the table's search index beside it "
                                          "(docs/search.md)")
    embedder: str | None = like(SearchConfig, "embedder")
    signals: tuple[str, ...] = like(SearchConfig, "signals")


@dataclass(frozen=True)
class AuditReviewConfig(Section):
    """An audit's review page rebuilt or served locally (``acoustic-env audit-review``)."""

    audit: str = option(role="input", help="the audit's output directory or URI")
    serve: bool = option(False, help="serve the page on 127.0.0.1 and save verdicts it posts")
    port: int = option(8765, ge=0, le=65535, help="port for --serve (0 picks a free one)")
    store: str | None = option(None, nargs="?", const="",
                               help="with --serve, append each verdict to the label store too, as it is clicked (no "
                                    "URI: the store beside the audited feature table); `labels apply` then writes "
                                    "the corrected list")
    reviewer: str | None = option(None, help="with --store, the reviewer credited when the page names nobody "
                                             "(default: the account running the server)")
    review_top: int | None = like(AuditConfig, "review_top", default=None,
                                  help="rebuild the page with this many suspects (and the audit's default random "
                                       "sample unless --random-sample says)")
    random_sample: int | None = like(AuditConfig, "random_sample", default=None,
                                     help="rebuild the page with this many randomly drawn clips (and the audit's "
                                          "default suspects unless --review-top says)")
    seed: int = _seed("seed of the random sample when the page is rebuilt (--review-top, --random-sample)")


@dataclass(frozen=True)
class AuditEstimateConfig(Section):
    """The label accuracy per class, with an interval, from review verdicts (``acoustic-env audit-estimate``)."""

    verdicts: tuple[str, ...] = option(nargs="+", nonempty=True, role="input",
                                       help="verdict file(s): JSON or CSV from the review page")
    sample: str | None = option(None, choices=("random", "suspects"),
                                help="random (unbiased accuracy; the default when present) or suspects (precision "
                                     "of the flags)")
    method: str = option("wilson", choices=("wilson", "bootstrap"), help="the interval's method")
    output: str | None = option(None, role="output_file",
                                help="write the estimate JSON here (the training report reads it)")
    audit: str | None = option(None, role="input",
                               help="the audit reviewed: verdicts for clips not on its review page are left out "
                                    "(default: the review page beside the first verdict file, when there is one)")
    labels: str | None = option(None, role="input",
                                help="a corrected label list (CSV of `labels apply`, or a label store): estimate its "
                                     "accuracy instead of the table's: the wrong labels the random sample implies, "
                                     "less those the list fixed (needs --audit)")


@dataclass(frozen=True)
class PredictConfig(Section):
    """A trained model on audio files, a directory or a clip list (``acoustic-env predict``)."""

    inputs: tuple[str, ...] = option(positional=True, role="input",
                                     help="audio files, a directory of them, or a clip list (any extract format)")
    model: str = option(role="input", help="model directory written by train (<output>/model)")
    output: str | None = option(None, role="output",
                                help=f"above {IN_PROCESS_MAX} clips the extract job runs first: its output (default: "
                                     "a temporary directory); with --windows, where each span's windows are written "
                                     "as scored, so that a stopped run resumes (default: not written)")
    audio_root: str | None = like(ExtractConfig, "audio_root", parse=None, role="input")
    weights_cache: str | None = like(ExtractConfig, "weights_cache", parse=None)
    device: str = option("cpu", choices=DEVICES, help="embedder device for in-process prediction (auto: CUDA when "
                                                      "this machine has it)")
    top_tags: int = option(3, ge=0, help="AudioSet tags shown when the model uses a tagger")
    save: str | None = option(None, role="output_file",
                              help="also write the predictions to this .csv or .parquet file (with --windows: the "
                                   "window table, and the summary per file beside it as NAME.summary.csv)")
    selections: str | None = option(None, role="output",
                                    help="with --windows: write a Raven selection table (<file>.selections.txt) and "
                                         "an Audacity label track (<file>.labels.txt) per recording into this "
                                         "directory")
    windows: WindowParams = option(factory=WindowParams, help="long recordings")


@dataclass(frozen=True)
class DemoConfig(Section):
    """Labelled synthetic soundscapes, and the jobs run on them locally (``acoustic-env demo``)."""

    output: str = option("demo-output", role="output", help="where the demo writes")
    clips: int = option(200, ge=1, help="number of clips to generate")
    seed: int = _seed("seed of the data and the jobs")
    duration: float = option(10.0, gt=0, help="clip length in seconds")
    features_impl: str | None = like(FeatureParams, "impl", default=None)
    progress: bool = option(True, help="progress bars")


@dataclass(frozen=True)
class WeightsCacheOption(Section):
    """The option the ``models`` commands share with extract: where the embedders' checkpoints are."""

    weights_cache: str | None = like(ExtractConfig, "weights_cache", parse=None)
