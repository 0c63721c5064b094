"""The configs of the jobs that label audio: annotate (a clip list) and serve (HTTP) with a saved model, and the
``labels`` commands that keep reviewers' corrections (``labels add-verdicts``, ``apply``, ``show``), start a new
class from one example (``labels new-class``) and take a review queue to Label Studio and back
(``labels to-label-studio``, ``from-label-studio``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from acoustic_env.config.schema import ConfigError, Section, from_dict, option
from acoustic_env.config.extraction import ExtractConfig, WindowParams
from acoustic_env.config.audioset import _paths
from acoustic_env.config.common import _absolute, _location, _ontology, _ray_address, _seed, _task


#: The extract fields annotate sets itself, from the list and the model: never one of its extract options.
_ANNOTATE_SETS = frozenset({"manifest", "output", "embedders", "embed_signals"})


@dataclass(frozen=True)
class AnnotateConfig(Section):
    """The new list, the model, the shared feature table and where annotations go."""

    model: str = _location(help="model artifact written by `acoustic-env train` (directory or URI)")
    features: str = _location(role="output", help="the shared extract output the clips are added to (features/, "
                                                  "errors/, runs/)")
    output: str = _location(role="output", help="where annotations/ and runs/ go")
    manifest: str | None = _location(None, help="the new clip list (any format extract reads); or --lists")
    lists: str | None = _location(None, help="a directory or prefix of clip lists: each list not yet recorded in "
                                             "<output>/lists/ is annotated once, in name order (a list that arrives "
                                             "during a run waits for the next run)")
    flag_threshold: float = option(0.5, gt=0, lt=1, help="flag a given label whose probability is below this")
    labels: str | None = _location(None, help="the corrected label list (`acoustic-env labels apply`'s CSV) or a "
                                              "label store (one not made yet holds no label), outside --features, "
                                              "which annotate writes to: clips a reviewer labelled there are not "
                                              "annotated")
    windows: WindowParams = option(factory=WindowParams, help="long recordings: each listed file scored in windows "
                                                              "(in this process, or on Ray beyond "
                                                              "--windows-in-process-max), into window-annotations/")
    # The extract options; annotate sets the list, the table and the model's embedders (and their signals) itself.
    extract: dict[str, Any] = option(factory=dict, flags_from=(ExtractConfig, tuple(_ANNOTATE_SETS)),
                                     help="any ExtractConfig field but manifest, output, embedders and embed_signals")

    def cross_check(self) -> None:
        if (self.manifest is None) == (self.lists is None):
            raise ConfigError("manifest: give one clip list (--manifest) or a directory of them (--lists), not both")
        for name in _ANNOTATE_SETS & set(self.extract):
            raise ConfigError(f"extract.{name}: annotate sets it itself (the list, the table, and the embedders and "
                              f"signals the model's columns need), so it is not one of its extract options")
        try:
            from_dict(ExtractConfig, {**self.extract, "manifest": self.manifest or self.lists, "output": self.features})
        except ConfigError as exc:
            raise ConfigError(f"extract.{exc}") from None


def _url_prefix(v: str) -> bool:
    return v.startswith(("https://", "http://")) and len(v.split("/", 3)) == 4 and bool(v.split("/", 3)[2])


@dataclass(frozen=True)
class ServeConfig(Section):
    """The live recognition service (``acoustic-env serve``): the model, the replicas, the limits of a request."""

    model: str = _location(help="model artifact written by `acoustic-env train` (directory or URI)")
    host: str = option("127.0.0.1", nonempty=True, help="address the HTTP server listens on (0.0.0.0: every "
                                                        "interface; the service has no authentication)")
    port: int = option(8000, ge=0, le=65535, help="HTTP port (0: a free one)")
    replicas: int = option(1, ge=1, help="model replicas (each loads the model and its embedders once)")
    # 2-CPU machines: Serve's controller and HTTP proxy need room beside the replica.
    replica_cpus: float = option(0.5, gt=0, help="CPUs reserved per replica")
    replica_gpus: float = option(0.0, ge=0, help="GPUs per replica (> 0: the embedders run on CUDA)")
    max_upload_mb: float = option(20.0, gt=0, help="larger uploads (and fetched URLs) get too_large (413)")
    max_duration_s: float = option(60.0, gt=0, help="longer recordings get too_long (422)")
    request_timeout_s: float = option(30.0, gt=0, help="a request not answered within this gets timeout (504)")
    # ?windows=1 scores a long recording from a temporary file, window by window, in memory that does not grow with
    # its length; these limits are about disk, time and the body in flight (Serve's HTTP proxy and the replica each
    # read a body as fast as it comes: docs/serve.md). An hour of 48 kHz stereo 16-bit WAV is 660 MiB.
    windows_max_upload_mb: float = option(1024.0, gt=0, help="larger ?windows=1 uploads (and fetched URLs) get "
                                                             "too_large (413); past --max-upload-mb they are "
                                                             "spooled to a temporary file")
    windows_max_duration_s: float = option(4 * 3600.0, gt=0, help="longer ?windows=1 recordings get too_long (422)")
    windows_timeout_s: float = option(3600.0, gt=0, help="a ?windows=1 request not answered within this gets "
                                                         "timeout (504); its scoring stops at the next window")
    allowed_url_prefixes: tuple[str, ...] = option((), check=(lambda v: all(map(_url_prefix, v)),
                                                              "must be http(s)://host/... prefixes"),
                                                   help="POST {\"url\": ...} is fetched only when it starts with "
                                                        "one of these (empty: no URL is fetched)")
    batch_max_size: int = option(1, ge=1, help="requests scored together by Serve's dynamic batching "
                                               "(1: no batching; worth it on a GPU)")
    batch_wait_s: float = option(0.01, ge=0, help="longest wait for a batch to fill")
    weights_cache: str | None = _location(None, help="embedder checkpoint cache (default: "
                                                  "$ACOUSTIC_ENV_MODEL_CACHE, else ~/.cache/acoustic-env/models)",
                                          role="cache")
    ray_address: str | None = _ray_address()


def _store() -> Any:
    """The label store: no path role, since it lies beside the table (inside its extract output) by default."""
    return option(None, parse=_absolute, help="the label store, a directory or prefix (local or s3://; default: "
                                              "labels/ in the feature table's extract output)")


@dataclass(frozen=True)
class AddVerdictsConfig(Section):
    """An audit review's verdicts, the table they are about, and who reviewed them."""

    features: str = _location(role="table", help="the feature table the verdicts are about: an extract output, its "
                                                 "features/ directory or a Parquet file")
    verdicts: tuple[str, ...] = option(parse=_paths, role="input", nonempty=True,
                                       help="verdict files of a review (JSON or CSV; e.g. <audit>/review/verdicts.json)")
    task: str = _task()
    ontology: str | None = _ontology()
    store: str | None = _store()
    reviewer: str | None = option(None, help="who gave the verdicts (default: each verdict's reviewer; one that "
                                             "names none is refused)")
    origin: str | None = option(None, help="where the verdicts come from (default: each verdict's audit_id)")
    source: str = option("review", choices=("review", "search"), help="review: an audit's review page; search: "
                                                                      "a search's hits judged")


@dataclass(frozen=True)
class ApplyLabelsConfig(Section):
    """The store, the task, and where the corrected list goes."""

    features: str = _location(role="table", help="the feature table the labels are about (its label store lies "
                                                 "beside it by default)")
    output: str = _location(role="output_file", help="the corrected list (CSV: clip_id, labels, source, reviewer, "
                                                     "time, origin; the conflicts go to <name>.conflicts.csv)")
    task: str = _task()
    ontology: str | None = _ontology()
    store: str | None = _store()


@dataclass(frozen=True)
class ShowLabelsConfig(Section):
    """The store to describe, for one task."""

    features: str = _location(role="table", help="the feature table whose label store is shown")
    task: str = _task()
    ontology: str | None = _ontology()
    store: str | None = _store()


@dataclass(frozen=True)
class NewClassConfig(Section):
    """One round of a new class from one example (``labels new-class``): the answers, the table, the round's
    output (:mod:`acoustic_env.labels.new_class`)."""

    features: str = _location(role="table", help="the feature table searched: an extract output, its features/ "
                                                 "directory or a Parquet file")
    name: str = option(nonempty=True, help="the new class (the task is labels:<name>,<other>)")
    example: str = option(nonempty=True, help="the clip id or audio file the class started from (the search's "
                                              "example): the origin of every verdict in the store")
    verdicts: tuple[str, ...] = option(parse=_paths, role="input", nonempty=True,
                                       help="this round's answers: search --save's CSV or the last round's "
                                            "review.csv with yes, no or unsure in its verdict column (empty: not "
                                            "judged), or a JSON list")
    output: str = _location(role="output", help="the round's directory: labels.csv (the list trained on), train/ "
                                                "(model/, report/), review.csv (the next clips to judge)")
    reviewer: str | None = option(None, help="who answered (default: each row's reviewer column; one that names "
                                             "none is refused)")
    store: str | None = _store()
    other: str = option("other", nonempty=True, help="the negative class of the binary task")
    negatives: int = option(30, ge=0, help="clips nobody judged drawn at random as other (seeded by --seed; a "
                                           "clip ever marked yes is never drawn)")
    strategy: str = option("mixed", choices=("mixed", "uncertain"),
                           help="how the next clips are picked (acoustic_env.learn.review_order): mixed, the most "
                                "likely of the class under a refit on the verdicts; uncertain, the smallest margin")
    batch: int = option(10, ge=1, help="clips in the next round's review.csv")
    seed: int = _seed("seed of the random negatives, the train job and the next round's order")
    train_config: str | None = _location(None, help="a train config file (YAML or JSON of train's fields) over "
                                                    "the round's light defaults (logreg beside the MLP, one tuning "
                                                    "trial, no ablations, no SHAP)")


@dataclass(frozen=True)
class ToLabelStudioConfig(Section):
    """An audit's review queue, or a new class's, as Label Studio tasks (``labels to-label-studio``,
    :mod:`acoustic_env.labels.label_studio`)."""

    output: str = _location(role="output", help="where tasks.json (the tasks to import into a Label Studio project) "
                                                "and config.xml (the project's labelling config) go")
    audio_url: str = option(nonempty=True, help="the URL of the audit's review/ folder as Label Studio's page "
                                                "reaches it; each clip's audio is it followed by assets/<clip>.ogg "
                                                "(Label Studio's own local files: /data/local-files/?d=<the folder, "
                                                "relative to LOCAL_FILES_DOCUMENT_ROOT>/). With --new-class, each "
                                                "clip's audio is it followed by its file's path without the leading "
                                                "/ (/data/local-files/?d= with LOCAL_FILES_DOCUMENT_ROOT=/; a clip "
                                                "at an http(s) URL is played from there)")
    audit: str | None = _location(None, help="the audit's output directory: its review page's queue, in the review "
                                             "order the audit was run with, with the clips the review server added "
                                             "(or --new-class)")
    new_class: str | None = _location(None, help="a `labels new-class` round's output directory: the clips its "
                                                 "review.csv asks about, yes or no (or --audit)")

    def cross_check(self) -> None:
        if (self.audit is None) == (self.new_class is None):
            raise ConfigError("audit: give one review queue: an audit's (--audit) or a new class round's "
                              "(--new-class), not both")


@dataclass(frozen=True)
class FromLabelStudioConfig(Section):
    """A Label Studio project's JSON export of ``labels to-label-studio``'s tasks, back into the label store as
    verdicts (``labels from-label-studio``)."""

    audit: str = _location(help="the audit whose queue the tasks hold: its table and task check every answer")
    export: str = _location(help="the project's JSON export (Label Studio: Export, JSON; or GET "
                                 "/api/projects/<id>/export?exportType=JSON)")
    store: str | None = _store()
