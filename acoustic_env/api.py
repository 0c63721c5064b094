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
ae.search("out", "clip_0042", embedder="yamnet", k=10)           # -> Found: .table, example first
```

Each function takes the job's config fields as keyword arguments (the same names as the
command's flags, with ``_`` for ``-``), or a whole ``config=`` (a config object, a mapping,
or the path of a YAML/JSON file; keyword arguments override it). A bad value raises
``ConfigError`` naming the field, before any work starts. The full run record stays
available as ``result.record``.

The named functions (``extract``, ``train``, ``audit``, ...) are boilerplate on purpose: each is one line,
``run("<job>", ...)``, under a docstring of the same shape, so that an editor shows the job's positional
arguments, its result type and its help; ``run`` reaches every other catalogued command.
"""

from __future__ import annotations

from typing import Any, Mapping, TypeVar

from acoustic_env.config import (
    AnnotateConfig,
    AuditConfig,
    ConfigError,
    ExtractConfig,
    SearchConfig,
    Section,
    TrainConfig,
    WindowParams,
    from_dict,
    load_config_file,
)
from acoustic_env.demo.command import register as register_demo
from acoustic_env.jobs import catalog
from acoustic_env.jobs.results import AnnotateResult, AuditResult, ExtractResult, TrainResult
from acoustic_env.web.commands import register as register_web_commands

register_web_commands()  # serve and audit-review, which live on the web floor
register_demo()  # demo, on the floor of the demo it runs

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


def run(command: str, *, config: Section | Mapping[str, Any] | str | None = None, **fields: Any) -> Any:
    """Run any catalogued command by its name: extract, train, audit, annotate, export, search, predict,
    audit-estimate, audit-review, serve, demo, ``"audioset sample"``, ..., or one registered in ``acoustic_env.jobs.catalog``
    (``docs/development.md``, "Adding a command").

    Args:
        command: The command's name (``acoustic-env <command>``).
        config: A base config: the job's config object, a mapping of its fields, or the path of a YAML/JSON file;
            the keyword arguments override it.
        **fields: The job's config fields by name (the command's flags, ``_`` for ``-``).

    Returns:
        The job's result (``ExtractResult``, ``TrainResult``, ...).

    Raises:
        ConfigError: An unknown command, or a bad value or path naming the field, before any work starts.
    """
    try:
        spec = catalog.get(command)
    except ValueError as exc:
        raise ConfigError(f"command: {exc}") from None
    return spec.run(_config(spec.config, config, fields))


def extract(manifest: str | None = None, output: str | None = None, *,
            config: ExtractConfig | Mapping[str, Any] | str | None = None, **fields: Any) -> ExtractResult:
    """Extract features of every clip of ``manifest`` into ``output`` (resumable; see ``ExtractConfig``).

    Args:
        manifest: The clip list: an AudioSet segment CSV, a CSV, Parquet or JSONL file with ``uri`` and
            ``labels``, or a directory of audio files (a local path or any fsspec URL).
        output: Where ``features/``, ``errors/`` and ``runs/`` go; a second run skips the clips already
            there and retries the errors.
        config: A base config: a ``ExtractConfig``, a mapping of its fields, or the path of a
            YAML/JSON file; the keyword arguments override it.
        **fields: Any other ``ExtractConfig`` field by name (the command's flags, ``_`` for ``-``).

    Returns:
        The run's id, counts, error types, weights and wall time; the run record as ``.record``.

    Raises:
        ConfigError: A bad value or path, naming the field, before any work starts.
    """
    return run("extract", config=config, manifest=manifest, output=output, **fields)


def train(features: str | None = None, output: str | None = None, *,
          config: TrainConfig | Mapping[str, Any] | str | None = None, **fields: Any) -> TrainResult:
    """Train the environment classifier on a feature table (see ``TrainConfig``).

    Args:
        features: The feature table: an extract output or its ``features/`` directory (local or remote).
        output: Where ``model/``, ``report/`` and ``runs/`` go.
        config: A base config: a ``TrainConfig``, a mapping of its fields, or the path of a
            YAML/JSON file; the keyword arguments override it.
        **fields: Any other ``TrainConfig`` field by name (the command's flags, ``_`` for ``-``).

    Returns:
        The metrics, the evaluation, where the model and the report are, and the run record as ``.record``.

    Raises:
        ConfigError: A bad value or path, naming the field, before any work starts.
    """
    return run("train", config=config, features=features, output=output, **fields)


def audit(features: str | None = None, output: str | None = None, *,
          config: AuditConfig | Mapping[str, Any] | str | None = None, **fields: Any) -> AuditResult:
    """Rescore the labels out of fold and rank the likely wrong ones (see ``AuditConfig``).

    Args:
        features: The feature table: an extract output, its ``features/`` directory, or a Parquet file.
        output: Where ``audit.parquet``, ``summary.json`` and ``review/`` go.
        config: A base config: a ``AuditConfig``, a mapping of its fields, or the path of a
            YAML/JSON file; the keyword arguments override it.
        **fields: Any other ``AuditConfig`` field by name (the command's flags, ``_`` for ``-``).

    Returns:
        How many clips were audited and flagged, the estimated share of wrong labels, where the table and
        the review page are, and the run record as ``.record``.

    Raises:
        ConfigError: A bad value or path, naming the field, before any work starts.
    """
    return run("audit", config=config, features=features, output=output, **fields)


def annotate(manifest: str | None = None, model: str | None = None, features: str | None = None,
             output: str | None = None, *, config: AnnotateConfig | Mapping[str, Any] | str | None = None,
             **fields: Any) -> AnnotateResult:
    """Label a new clip list with a trained model, extracting only clips not yet in ``features``.

    Args:
        manifest: The new clip list (any format ``extract`` reads); or ``lists=`` (a directory or prefix of
            clip lists) instead, and each list not yet recorded in ``<output>/lists/`` is annotated once.
        model: The model artifact a train job wrote (a directory or URI).
        features: The shared extract output the new clips are added to.
        output: Where ``annotations/`` and ``runs/`` go.
        config: A base config: a ``AnnotateConfig``, a mapping of its fields, or the path of a
            YAML/JSON file; the keyword arguments override it.
        **fields: Any other ``AnnotateConfig`` field by name (the command's flags, ``_`` for ``-``).

    Returns:
        The run's id, the model's id, the counts per list, and the run record as ``.record``.

    Raises:
        ConfigError: A bad value or path, naming the field, before any work starts.
    """
    return run("annotate", config=config, manifest=manifest, model=model, features=features, output=output,
               **fields)


def predict(inputs: str | list[str], model: str, *, output: str | None = None, audio_root: str | None = None,
            weights_cache: str | None = None, device: str = "cpu", top_tags: int = 3) -> Any:
    """Label audio files, a directory or a clip list with a trained model; an Arrow table, one row per clip.

    A handful of clips (up to ``acoustic_env.config.IN_PROCESS_MAX``) are decoded and featurised in
    this process, without Ray, with the extract job's own functions; more go through the extract job.

    Args:
        inputs: Audio files, one directory of them, or one clip list (local paths or fsspec URLs).
        model: The model artifact a train job wrote (a directory or URI).
        output: Where the extract job writes when there are more clips than run in this process
            (default: a temporary directory).
        audio_root: Where a clip list's relative ``uri`` values are found.
        weights_cache: The embedder checkpoint cache, when the model uses embedders.
        device: ``cpu`` or ``cuda``, for the embedders' networks in this process.
        top_tags: How many AudioSet tags to list per clip, when the model has a tagging embedder.

    Returns:
        A ``pyarrow.Table``: ``clip_id``, ``uri``, ``predicted``, ``prob_<class>``, ``error``, ``note``
        and, with a tagging embedder, ``tags``.

    Raises:
        ConfigError: A missing model or input, in one line, before any clip is read.
    """
    return run("predict", inputs=[inputs] if isinstance(inputs, str) else list(inputs), model=model, output=output,
               audio_root=audio_root, weights_cache=weights_cache, device=device, top_tags=top_tags).table



def predict_windows(inputs: str | list[str], model: str, *, audio_root: str | None = None,
                    weights_cache: str | None = None, device: str = "cpu", output: str | None = None,
                    **fields: Any) -> Any:
    """Score long recordings in windows: a ``WindowResult``.

    A recording is read window by window and scored in batches, so its length does not set the memory. A few short
    files are scored in this process; beyond ``in_process_max`` windows, the first span is scored here and timed,
    and spans of every file go to Ray's workers only when they are expected to finish the rest sooner (a named
    cluster: always Ray). ``.route`` of the result says where they ran and why.

    Args:
        inputs: Recordings, one directory of them, or one clip list (local paths or fsspec URLs).
        model: The model artifact a train job wrote (a directory or URI).
        audio_root: Where a clip list's relative ``uri`` values are found.
        weights_cache: The embedder checkpoint cache, when the model uses embedders.
        device: ``cpu`` or ``cuda``, for the embedders' networks.
        output: Where each span's windows are written as they are scored, so that a stopped run resumes
            (default: not written).
        **fields: The ``WindowParams`` options: ``window_s`` (default: the model's training clip length),
            ``hop_s`` (default: ``window_s``), ``window_batch``, ``in_process_max`` and ``span_windows``.

    Returns:
        A ``WindowResult``: ``.table`` has one row per window (``clip_id``, ``uri``, ``start_s``, ``end_s``,
        ``predicted``, ``prob_<class>``, ``error``, ``note``), ``.summary`` one per file (per class: mean and
        max probability, share of windows), with the ``window_s`` and ``hop_s`` used and ``.route`` (``in_process``,
        ``why``).

    Raises:
        ConfigError: A bad window option or input, naming it, before any audio is read.
    """
    from acoustic_env.jobs.windows import predict_windows as run

    window = _config(WindowParams, None, {**fields, "windows": True})
    return run([inputs] if isinstance(inputs, str) else list(inputs), model, window=window, audio_root=audio_root,
               weights_cache=weights_cache, device=device, output=output)


def search(features: str | None = None, example: str | None = None, *,
           config: SearchConfig | Mapping[str, Any] | str | None = None, **fields: Any) -> Any:
    """The clips of ``features`` nearest to ``example`` (a clip id, or an audio file embedded first): a ``Found``.

    ``result.table`` holds the example (rank 0, similarity 1), then the ``k`` nearest clips: ``rank``,
    ``clip_id``, ``similarity`` (cosine), ``labels``, ``group``, ``uri``, ``start_s``, ``end_s``
    (see ``SearchConfig``: ``embedder``, ``k``, ``signals``, ``include_random_weights``; ``save`` and ``page``
    write the table and a page too, as the command does).
    """
    return run("search", config=config, features=features, example=example, **fields).found
