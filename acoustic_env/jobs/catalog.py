"""The commands, a :class:`JobSpec` each, in one registry.

The command line (``acoustic-env <name>``: its flags from the config's fields, ``--config FILE``, ``--dry-run``
where the job has a plan), the Python API (``ae.run(name, ...)`` and the named wrappers of ``api.py``) and
submitted jobs (``python -m acoustic_env.cli``) all read this table, so a command is declared once: its config, the
function that runs it, the lines that say what it did, its checks and its dry run. ``register(spec)`` adds a
command before the parser is built (``docs/development.md``, "Adding a command"). The functions are named lazily (``registry.lazy``): building
the parser imports none of them. The commands that serve a page until stopped (``serve``, ``audit-review``) are
registered by ``web/commands.py``, on the floor of their servers, and ``demo`` by ``demo/command.py``. Each
collection's recipe (``recipe esc50``) is its module's ``run`` and ``plan``, its config one class of
``config/recipes.py``, as each corpus is one module of Lhotse's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from acoustic_env.config import AnnotateConfig, AuditConfig, ExtractConfig, IndexConfig, SearchConfig, Section, TrainConfig
from acoustic_env.config.cluster import SubmitConfig
from acoustic_env.config.audioset import FetchConfig, FramesConfig, RescoreConfig, SampleConfig
from acoustic_env.config.duplicates import DuplicatesConfig
from acoustic_env.config.export import ExportConfig
from acoustic_env.config.models import ModelsConvertConfig, ModelsFetchConfig, ModelsListConfig
from acoustic_env.config.predict import PredictConfig
from acoustic_env.config.recipes import (
    AudioSetEmbeddingsConfig,
    AudioSetListsConfig,
    ESC50Config,
    FSD50KConfig,
    UrbanSound8KConfig,
)
from acoustic_env.config.review import AuditEstimateConfig
from acoustic_env.config.labelling import (AddVerdictsConfig, ApplyLabelsConfig, FromLabelStudioConfig,
                                           NewClassConfig, ShowLabelsConfig, ToLabelStudioConfig)
from acoustic_env.config.soundscape import SoundscapeConfig
from acoustic_env.registry import Registry, lazy

#: When a command sends Ray's output, warnings and INFO logs to its log file (``cli/console.py``): after its checks
#: (``before``), when the run is about to start Ray (``on_ray``: ``run(config, on_ray=...)`` calls it), or never
#: (the command's output is all it prints).
CONSOLE = ("before", "on_ray", "never")

#: The help of each group of commands (``acoustic-env audioset ...``).
GROUPS = {"audioset": "sample AudioSet's segment lists for a task, fetch the clips, write the rescored label list "
                      "after an audit",
          "labels": "keep reviewers' verdicts in a label store beside the feature table, and write the corrected "
                    "label list that train, audit and annotate take (--labels)",
          "recipe": "turn a public collection's layout into a clip list (or AudioSet's released embeddings into a "
                    "feature table)",
          "models": "list, fetch or convert pretrained weights"}

@dataclass(frozen=True)
class JobSpec:
    """One command that runs a job.

    Attributes:
        name: the sub-command (``acoustic-env <name>``; ``"audioset sample"``: ``sample`` in the group ``audioset``,
            see :data:`GROUPS`) and the API's name for it.
        summary: one line for ``--help``.
        config: the job's config class; every field is a flag or, declared ``positional``, a word (``config.flags``).
        run: ``run(config) -> result``: the job.
        lines: ``lines(result) -> list[str]``: what the command prints when the job is done.
        plan: ``plan(config) -> {"lines": [...]}``: what ``--dry-run`` prints, starting nothing; None: no dry run.
        usage: the usage line of ``--help``.
        check: ``check(config)``: the checks before anything runs (default: the paths by their roles, ``preflight``).
        console: when Ray's output goes to the log file, one of :data:`CONSOLE`.
        status: ``status(result) -> int``: the command's exit status when the job finished but found something
            wrong (``models list``: a bad file, 1); None: 0.
    """

    name: str
    summary: str
    config: type[Section]
    run: Callable[..., Any]
    lines: Callable[[Any], list[str]]
    plan: Callable[[Any], dict[str, Any]] | None = None
    usage: str = "%(prog)s [--config FILE] [options]"
    check: Callable[[Any], None] = lazy("acoustic_env.jobs.preflight", "preflight")
    console: str = "before"
    status: Callable[[Any], int] | None = None

    def __post_init__(self) -> None:
        if self.console not in CONSOLE:
            raise ValueError(f"command {self.name!r}: console must be one of {CONSOLE}, got {self.console!r}")


_REGISTRY: Registry[JobSpec] = Registry("command")
register, unregister, get, specs = _REGISTRY.register, _REGISTRY.unregister, _REGISTRY.get, _REGISTRY.specs


def _builtin(name: str, summary: str, config: type[Section], module: str, run: str) -> JobSpec:
    """A built-in job: ``acoustic_env.jobs.<module>``'s ``run`` and ``summary_lines``, ``jobs/plan.py``'s plan."""
    module = f"acoustic_env.jobs.{module}"
    return JobSpec(name, summary, config, lazy(module, run), lazy(module, "summary_lines"),
                   lazy("acoustic_env.jobs.plan", f"plan_{name}"))


_RUNNERS = "acoustic_env.jobs.runners"
_AUDIOSET = "acoustic_env.jobs.audioset.runners"
_LABELS = "acoustic_env.jobs.label_runners"

for _spec in (
        _builtin("extract", "extract features from a clip list into Parquet", ExtractConfig, "extract", "extract"),
        _builtin("train", "compare classifiers on a labelled feature table by grouped cross-validation, save the best and write a report",
                 TrainConfig, "train.job", "train"),
        _builtin("audit", "rescore the labels out of fold, flag likely wrong ones, write a review page", AuditConfig,
                 "audit.job", "run_audit"),
        _builtin("annotate", "label a new clip list with a trained model (extracts only new clips)", AnnotateConfig,
                 "annotate", "annotate"),
        JobSpec("submit", "submit a job of the repository's jobs/ folder (extract, train, audit, reannotate) to a Ray "
                          "cluster by name", SubmitConfig, lazy("acoustic_env.jobs.submit", "submit"),
                lazy("acoustic_env.jobs.submit", "summary_lines"), lazy("acoustic_env.jobs.submit", "plan_submit"),
                usage="%(prog)s JOB [--address URL] [--options '--flag value ...'] [options]"),
        JobSpec("export", "write a feature table as one Parquet or CSV file, one named column per value",
                ExportConfig, lazy(_RUNNERS, "run_export"), lazy(_RUNNERS, "export_lines"),
                usage="%(prog)s FEATURES --output FILE [--wide] [options]", console="never"),
        JobSpec("search", "the clips of a feature table nearest to an example clip or audio file, by an embedder's "
                          "embeddings", SearchConfig, lazy(_RUNNERS, "run_search"), lazy(_RUNNERS, "search_lines"),
                lazy("acoustic_env.jobs.plan", "plan_search"), console="never",
                usage="%(prog)s --features TABLE --example CLIP_OR_FILE [--embedder NAME] [-k 20] [options]"),
        JobSpec("index", "build or update the nearest-neighbour index of a feature table's embeddings, kept beside "
                         "it, that search answers from", IndexConfig, lazy(_RUNNERS, "run_index"),
                lazy(_RUNNERS, "index_lines"), console="never",
                usage="%(prog)s --features TABLE [--embedder NAME] [--precision f16] [options]"),
        JobSpec("audit-estimate", "label accuracy per class, with an interval, from review verdicts",
                AuditEstimateConfig, lazy(_RUNNERS, "run_audit_estimate"), lazy(_RUNNERS, "estimate_lines"),
                usage="%(prog)s --verdicts FILE [FILE ...] [options]", console="never"),
        JobSpec("predict", "label audio files, a directory or a clip list with a trained model", PredictConfig,
                lazy(_RUNNERS, "run_predict"), lazy(_RUNNERS, "predict_lines"),
                usage="%(prog)s FILES|DIR|MANIFEST --model MODEL [options]", check=lazy(_RUNNERS, "check_predict"),
                console="on_ray"),
        JobSpec("soundscape", "a deployment's recordings placed on each site's clock: indices, per-bin spectral "
                              "indices and class shares per segment, events, detection histories and a page with "
                              "false-colour spectrograms and diel plots (resumable)", SoundscapeConfig,
                lazy("acoustic_env.jobs.soundscape.job", "soundscape"),
                lazy("acoustic_env.jobs.soundscape.job", "summary_lines"),
                usage="%(prog)s FILES|DIR|MANIFEST --output DIR [--model MODEL] [options]", console="on_ray"),
        JobSpec("audioset sample", "draw a task's clips from a segment list (per-class targets, balanced, seeded; "
                                   "one streaming pass)", SampleConfig, lazy(_AUDIOSET, "run_sample"),
                lazy(_AUDIOSET, "sample_lines"), check=lazy("acoustic_env.jobs.preflight", "check_sample_paths"),
                console="never"),
        JobSpec("audioset fetch", "download a segment list's 10-s clips with a downloader command (yt-dlp + ffmpeg "
                                  "by default), resumable; writes a manifest extract takes", FetchConfig,
                lazy(_AUDIOSET, "run_fetch"), lazy("acoustic_env.jobs.audioset.fetch", "summary_lines"),
                check=lazy("acoustic_env.jobs.audioset.fetch", "check_paths")),
        JobSpec("audioset rescore", "write the rescored label list of an audit: given labels, score, suspected, the "
                                    "label the review settled, and the label accuracy per class with its interval",
                RescoreConfig, lazy(_AUDIOSET, "run_rescore"), lazy(_AUDIOSET, "rescore_lines"), console="never"),
        JobSpec("audioset frames", "compare networks over the released embeddings' ten frames (a small CNN, the "
                                   "study's fully connected net and CNN) with the pooled vector, on one split",
                FramesConfig, lazy(_AUDIOSET, "run_frames"), lazy(_AUDIOSET, "frames_lines"), console="never"),
        JobSpec("labels add-verdicts", "append an audit review's verdicts (verdicts.json or CSV) to the label store, "
                                       "with their reviewer and origin; a verdict about a clip the table does not "
                                       "hold refuses the whole file", AddVerdictsConfig,
                lazy(_LABELS, "add_verdicts"), lazy(_LABELS, "add_verdicts_lines"),
                check=lazy(_LABELS, "check_add_verdicts"), console="never"),
        JobSpec("labels apply", "write the corrected label list (CSV): per clip the latest reviewed labels, else the "
                                "given ones; clips where reviewers disagree are listed in <name>.conflicts.csv, not "
                                "in the list", ApplyLabelsConfig, lazy(_LABELS, "apply"), lazy(_LABELS, "apply_lines"),
                check=lazy(_LABELS, "check_apply"), console="never"),
        JobSpec("labels show", "count the store's events by source, and show the conflicts", ShowLabelsConfig,
                lazy(_LABELS, "show"), lazy(_LABELS, "show_lines"), console="never"),
        JobSpec("labels new-class", "one round of a new class from one example: the yes/no answers to search hits go "
                                    "to the label store, a model trains on them with random negatives, and the next "
                                    "clips to judge are written", NewClassConfig, lazy(_LABELS, "new_class"),
                lazy(_LABELS, "new_class_lines"), console="never"),
        JobSpec("labels to-label-studio", "write an audit's review queue as Label Studio tasks (audio URL, segment, "
                                          "the given and suggested labels as pre-annotations) and the labelling "
                                          "config of its task; or a new class round's (yes or no, its model's "
                                          "guess as the pre-annotation: new-class --verdicts reads the export)",
                ToLabelStudioConfig, lazy(_LABELS, "to_label_studio"),
                lazy(_LABELS, "to_label_studio_lines"), console="never"),
        JobSpec("labels from-label-studio", "append a Label Studio project's JSON export of those tasks to the label "
                                            "store as verdicts, with annotator, time and project; a task of "
                                            "another queue, a class the task lacks or a clip the table does not "
                                            "hold refuses the whole export", FromLabelStudioConfig,
                lazy(_LABELS, "from_label_studio"), lazy(_LABELS, "from_label_studio_lines"),
                check=lazy(_LABELS, "check_from_label_studio"), console="never")):
    register(_spec)


def _recipe(name: str, summary: str, config: type[Section], module: str,
            lines: str = "acoustic_env.recipes.common") -> JobSpec:
    """A recipe (``acoustic-env recipe <name> ROOT OUT``): ``module``'s ``run`` and ``plan``, the lines of
    ``lines``' ``summary_lines``."""
    return JobSpec(f"recipe {name}", summary, config, lazy(module, "run"), lazy(lines, "summary_lines"),
                   lazy(module, "plan"), usage="%(prog)s ROOT OUT [options]", console="never")


_MODELS = "acoustic_env.jobs.models"
_DUPLICATES = "acoustic_env.jobs.duplicates"

for _spec in (
        JobSpec("duplicates", "find near-duplicate clips in a feature table by nearest neighbours",
                DuplicatesConfig, lazy(_DUPLICATES, "find_duplicates"), lazy(_DUPLICATES, "summary_lines"),
                lazy(_DUPLICATES, "plan"), check=lazy(_DUPLICATES, "check"), console="never",
                usage="%(prog)s FEATURES (--column NAMES | --chunks) --output FILE [options]"),
        _recipe("urbansound8k", "UrbanSound8K: metadata/UrbanSound8K.csv, audio/fold1..10 (fold, group = fsID)",
                UrbanSound8KConfig, "acoustic_env.recipes.urbansound8k"),
        _recipe("esc50", "ESC-50 / ESC-10: meta/esc50.csv, audio/ (fold 1-5, group = src_file)", ESC50Config,
                "acoustic_env.recipes.esc50"),
        _recipe("fsd50k", "FSD50K: FSD50K.ground_truth/{dev,eval,vocabulary}.csv, *_audio/ (fold = split), tag bins",
                FSD50KConfig, "acoustic_env.recipes.fsd50k"),
        _recipe("audioset", "AudioSet segment lists in ROOT, audio in ROOT/audio/<list>/<YTID>_<start ms>.<ext>",
                AudioSetListsConfig, "acoustic_env.recipes.audioset"),
        _recipe("audioset-embeddings", "AudioSet's released VGGish embeddings (TFRecord files) → a feature table",
                AudioSetEmbeddingsConfig, "acoustic_env.jobs.audioset.embeddings",
                lines="acoustic_env.jobs.audioset.embeddings"),
        JobSpec("models list", "show which weights are in the cache and whether they check out", ModelsListConfig,
                lazy(_MODELS, "run_list"), lazy(_MODELS, "list_lines"), lazy(_MODELS, "plan_list"),
                console="never", status=lazy(_MODELS, "list_status")),
        JobSpec("models fetch", "download weights into the cache, checking their SHA-256", ModelsFetchConfig,
                lazy(_MODELS, "run_fetch"), lazy(_MODELS, "fetch_lines"), lazy(_MODELS, "plan_fetch"),
                usage="%(prog)s [NAMES ...] [--source URL] [options]", console="never"),
        JobSpec("models convert", "build PyTorch weights of the models published for TensorFlow only, from TF-Hub "
                                  "(needs the convert extra)", ModelsConvertConfig,
                lazy(_MODELS, "run_convert"), lazy(_MODELS, "convert_lines"), lazy(_MODELS, "plan_convert"),
                usage="%(prog)s [NAMES ...] [options]", console="never")):
    register(_spec)
