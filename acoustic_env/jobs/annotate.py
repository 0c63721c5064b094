"""The annotate job: label a new clip list with a trained model, extracting only what is new.

Meant to run on a schedule against lists that grow or overlap:

1. extract the list into the shared ``features`` table (the extract job's plan skips
   every clip already there, so an overlapping list is never extracted twice), with
   the embedders the model needs, on the signals its columns are of (``yamnet_fg``: the
   foreground's, ``--embed-signals``), and the decode and feature parameters its
   training table was extracted with (as its artifact records them; an option given to
   annotate overrides them);
2. score the list's clips that are not yet annotated by this model;
3. append ``annotations/part-<run_id>-<digest>.parquet``: ``clip_id``, ``predicted``,
   ``prob_<class>``, ``model_id``, ``time``, and where the list carries labels the given
   labels, the probability of the given label (``label_quality``) and ``flagged``
   (the model disagrees with the given label at ``flag_threshold``).

Running it twice on the same list writes nothing the second time. With ``labels`` (a corrected
label list, ``acoustic-env labels apply``'s CSV or a label store: :mod:`acoustic_env.labels`) the
clips a reviewer labelled there are not scored: a person's label stands over the model's guess.
The run record names the list (URI, SHA-256) and counts the clips it skipped.

With ``windows`` (``--windows``: long recordings) each listed file not yet annotated in
windows by this model is scored window by window, in this process or on Ray (a named cluster; or, beyond
``windows.in_process_max`` windows, when the first span timed here says Ray would finish the rest sooner: the
record's ``where`` says which and why), each span written to ``window-parts/`` as it is
scored so that a stopped run resumes (:func:`acoustic_env.jobs.windows.score_windows`, no
extract: the windows are not clips of the shared table), and ``window-annotations/`` gets one row per window,
``window-summaries/`` one per file, each with ``model_id`` and ``time``.

The list is read once per run: it is copied to a local snapshot first, and the extract
and the scoring both read the snapshot, so a row appended to the list while the job runs
waits for the next run instead of being reported as failed. With ``lists`` (a directory
or prefix of clip lists, the nightly case) each list not yet recorded in
``<output>/lists/<name>.json`` is annotated in turn and then recorded; the directory is
listed once, at the start, so a list that arrives during a run is the next run's.
"""

from __future__ import annotations

import logging
import os
import posixpath
import tempfile
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from acoustic_env import layout
from acoustic_env.audio.manifest import detect_format, job_manifest
from acoustic_env.vocabulary.tasks import Task, task_from_definition
from acoustic_env.config import (
    AnnotateConfig,
    ConfigError,
    ExtractConfig,
    from_dict,
)
from acoustic_env.jobs.extract import extract
from acoustic_env.jobs.preflight import preflight
from acoustic_env.jobs.record import Run, lifecycle, write_record
from acoustic_env.jobs.results import AnnotateResult
from acoustic_env.labels.label_list import LabelList, read_label_list
from acoustic_env.learn.artifact import Description
from acoustic_env.storage import (
    filesystem,
    join,
    list_parts,
    read_parts,
    write_parquet,
)
from acoustic_env.table import now_utc

log = logging.getLogger("acoustic_env.jobs.annotate")
ANNOTATIONS = "annotations"
WINDOW_ANNOTATIONS, WINDOW_SUMMARIES = "window-annotations", "window-summaries"
LISTS = "lists"
#: Manifest columns that a snapshot of a directory of audio keeps (the rest is derived again).
_SNAPSHOT_COLUMNS = ("clip_id", "uri", "labels", "start_s", "end_s", "group")
#: The counts of a run (summed over its lists with ``lists``).
_COUNTS = ("listed", "already_annotated", "reviewed", "extracted", "extract_skipped", "annotated", "flagged",
           "not_annotated_failed_extract", "not_annotated_broken_features")
_WINDOW_COUNTS = ("listed", "already_annotated", "annotated", "windows", "not_annotated_unreadable")


@dataclass(frozen=True)
class ModelFacts:
    """What annotate takes from a model: the id its annotations carry, its task, and the extract fields
    that compute its columns as its training table did (``settings``: ``embedders`` and ``embed_signals``
    from its columns; ``decode`` and ``features``, the table's parameters, where its artifact records them)."""

    model_id: str
    task: Task
    settings: dict[str, Any]


def model_facts(cfg: AnnotateConfig, model: Description) -> ModelFacts:
    """The facts of ``model`` from its description alone (``learn.artifact.describe``), so that the dry run
    (which reads nothing else of the model) and the job derive them alike."""
    task = task_from_definition(model.task_definition, cfg.extract.get("ontology"))
    if sorted(task.class_names) != sorted(model.class_names):
        raise ConfigError(f"model: its task definition names {task.class_names}, its outputs {model.class_names}")
    return ModelFacts(model.model_id, task, {**model.recorded_extraction(), **model.extract_settings()})


def list_config(cfg: AnnotateConfig, uri: str, settings: dict[str, Any], fmt: str | None = None) -> ExtractConfig:
    """The extract config of the list at ``uri`` (``fmt``: its format, when known), written into the shared
    feature table: the model's ``settings`` (``ModelFacts.settings``), with the options the user gave
    (``cfg.extract``) over its decode and feature parameters, so that the model scores features computed
    as its own were unless asked otherwise. No embedder unless the model's ``settings`` name some: a list read
    for its clips alone computes nothing."""
    fields = {key: {**settings.get(key, {}), **value} if key in ("decode", "features") and isinstance(value, dict)
              else value for key, value in cfg.extract.items()}
    return from_dict(ExtractConfig, {"embedders": [], **settings, **fields, "manifest": uri,
                                     **({"manifest_format": fmt} if fmt else {}), "output": cfg.features,
                                     **{k: v for k, v in settings.items() if k not in ("decode", "features")}})


def unannotated(output: str, model_id: str, listed: list[str], where: str = ANNOTATIONS) -> list[str]:
    """The listed clips (or files, ``where`` = window summaries) that this model has not annotated in
    ``output`` yet, in list order: what a run scores, and what the dry run counts."""
    table = read_parts(join(output, where), columns=["clip_id", "model_id"])
    if table is None:
        return list(listed)
    done = set(table.filter(pc.equal(table["model_id"], model_id))["clip_id"].to_pylist())
    return [c for c in listed if c not in done]


def _given_label_columns(task: Task, labels: list[list[str]], probs: np.ndarray, threshold: float) -> dict[str, Any]:
    """The given labels in the task's terms, the model's probability for them, and the flag."""
    if task.kind == "multi_label":
        given = np.array([task.multi_hot(ls) for ls in labels], dtype=float)
        has = np.array([bool(ls) for ls in labels])
        agree = np.where(given == 1, probs, 1 - probs)
        quality = np.where(has, agree.min(axis=1), np.nan)
        flagged = has & (quality < threshold)
        given_names = [[c for c, on in zip(task.class_names, row) if on] if h else None
                       for row, h in zip(given.astype(int), has)]
        return {"given": pa.array(given_names, pa.list_(pa.string())), "label_quality": pa.array(quality),
                "flagged": pa.array(flagged)}
    idx = [task.assign(ls) for ls in labels]
    quality = np.array([probs[i, j] if j is not None else np.nan for i, j in enumerate(idx)])
    flagged = np.array([j is not None and bool(q < threshold) for j, q in zip(idx, quality)])
    return {"given": pa.array([task.class_names[j] if j is not None else None for j in idx], pa.string()),
            "label_quality": pa.array(quality), "flagged": pa.array(flagged)}


def pending_lists(lists: str, output: str) -> tuple[list[str], list[str]]:
    """(lists to annotate, names already recorded in ``<output>/lists/``): one listing of each, in name order."""
    fs, path = filesystem(lists)
    fs.invalidate_cache(path)
    try:
        entries = fs.ls(path, detail=True)
    except FileNotFoundError:
        raise ConfigError(f"lists: no such directory or prefix: {lists}") from None
    names = sorted(posixpath.basename(e["name"]) for e in entries if e.get("type") == "file")
    names = [n for n in names if not n.startswith(".")]
    out_fs, out_path = filesystem(join(output, LISTS))
    out_fs.invalidate_cache(out_path)
    try:
        recorded = {posixpath.basename(p).removesuffix(".json") for p in out_fs.ls(out_path, detail=False)}
    except FileNotFoundError:
        recorded = set()
    new = [join(lists, n) for n in names if n not in recorded]
    return new, [n for n in names if n in recorded]


@contextmanager
def _snapshot(cfg: AnnotateConfig, uri: str) -> Iterator[tuple[str, str]]:
    """(local copy of the list, its format): the one read of the list in this run.

    A directory of audio files is listed once (as the extract job would list it) into a
    Parquet list of its clips; any other list is copied byte for byte under its own name
    (its format and its relative paths read the same).
    """
    listing = list_config(cfg, uri, {})
    fmt = detect_format(uri) if listing.manifest_format == "auto" else listing.manifest_format
    with tempfile.TemporaryDirectory(prefix="acoustic-env-list-") as tmp:
        if fmt == "directory":
            table = job_manifest(listing).table
            local = os.path.join(tmp, "list.parquet")
            pq.write_table(table.select([c for c in _SNAPSHOT_COLUMNS if c in table.column_names]), local)
            fmt = "parquet"
        else:
            local = os.path.join(tmp, posixpath.basename(uri.split("?")[0].rstrip("/")) or "list")
            fs, path = filesystem(uri)
            fs.get_file(path, local)
        yield local, fmt


def _annotate_windows(cfg: AnnotateConfig, uri: str, model: Any, model_id: str, run_id: str) -> dict[str, Any]:
    """Score the files of one list in windows (see the module docstring); the counts."""
    from acoustic_env.jobs.windows import score_windows

    with _snapshot(cfg, uri) as (local, fmt):
        manifest = job_manifest(list_config(cfg, local, {}, fmt)).table
    listed = manifest.select(["clip_id", "uri"]).to_pylist()  # a listed file that is missing: an unreadable row
    todo = set(unannotated(cfg.output, model_id, [r["clip_id"] for r in listed], WINDOW_SUMMARIES))
    wanted = [r for r in listed if r["clip_id"] in todo]
    windows = unreadable = 0
    where = None  # nothing to score: no route taken
    if wanted:
        result = score_windows(model, wanted, cfg.windows, weights_cache=cfg.extract.get("weights_cache"),
                               output=cfg.output, ray_address=cfg.extract.get("ray_address"))
        ids = [r["clip_id"] for r in wanted]
        for table, where in ((result.table, WINDOW_ANNOTATIONS), (result.summary, WINDOW_SUMMARIES)):
            table = table.append_column("model_id", pa.array([model_id] * table.num_rows, pa.string()))
            table = table.append_column("time", pa.array([now_utc()] * table.num_rows, pa.timestamp("us", tz="UTC")))
            write_parquet(table, join(cfg.output, where, layout.part_name(run_id, ids)))
        windows, unreadable = result.table.num_rows, sum(e is not None for e in result.summary["error"].to_pylist())
        where = result.route.why
    return {"counts": {"listed": len(listed), "already_annotated": len(listed) - len(wanted),
                       "annotated": len(wanted) - unreadable, "windows": windows,
                       "not_annotated_unreadable": unreadable}, "where": where}


def _annotate_list(cfg: AnnotateConfig, uri: str, model: Any, facts: ModelFacts, run_id: str,
                   listed_labels: LabelList | None = None) -> dict[str, Any]:
    """Extract and score one list (through its snapshot), but the clips a reviewer labelled in ``listed_labels``;
    the counts and the extract run's id."""
    if cfg.windows.windows:
        return _annotate_windows(cfg, uri, model, facts.model_id, run_id)
    task, model_id = facts.task, facts.model_id
    with _snapshot(cfg, uri) as (local, fmt):
        ext = list_config(cfg, local, facts.settings, fmt)
        manifest = job_manifest(ext).table
        extracted = extract(ext)
    listed = manifest["clip_id"].to_pylist()
    todo = unannotated(cfg.output, model_id, listed)
    reviewed = listed_labels.reviewed if listed_labels is not None else frozenset()
    wanted = [c for c in todo if c not in reviewed]
    # every clip extracted may have failed, in which case there is no table yet
    has_table = bool(list_parts(join(cfg.features, layout.FEATURES)))
    data = model.read_features(cfg.features, clip_ids=wanted) if wanted and has_table else None
    written = flagged = 0
    if data is not None and len(data):
        scored = model.predict_table(data)
        # by name: the artifact's JSON keeps the task definition with its keys sorted
        probs = np.stack([scored[f"prob_{c}"].to_numpy(zero_copy_only=False) for c in task.class_names], axis=1)
        labels_by_id = dict(zip(listed, manifest["labels"].to_pylist()))
        labels = [labels_by_id[c] for c in scored["clip_id"].to_pylist()]
        for name, column in _given_label_columns(task, labels, probs, cfg.flag_threshold).items():
            scored = scored.append_column(name, column)
        scored = scored.append_column("model_id", pa.array([model_id] * scored.num_rows, pa.string()))
        scored = scored.append_column("time", pa.array([now_utc()] * scored.num_rows, pa.timestamp("us", tz="UTC")))
        ids = scored["clip_id"].to_pylist()
        write_parquet(scored, join(cfg.output, ANNOTATIONS, layout.part_name(run_id, ids)))
        written, flagged = scored.num_rows, int(sum(scored["flagged"].to_pylist()))
    found = data.n_read if data is not None else 0
    counts = {"listed": len(listed), "already_annotated": len(listed) - len(todo), "reviewed": len(todo) - len(wanted),
              "extracted": extracted.counts["ok"], "extract_skipped": extracted.counts["skipped"],
              "annotated": written, "flagged": flagged, "not_annotated_failed_extract": len(wanted) - found,
              "not_annotated_broken_features": found - written}
    return {"extract_run": extracted.run_id, "counts": counts}


def annotate(cfg: AnnotateConfig) -> AnnotateResult:
    """Run the job; its counts and the run record (``<output>/runs/annotate-<run_id>.json``, written when the
    job starts and again when it ends, completed or failed with the reason)."""
    preflight(cfg)
    from acoustic_env.learn.artifact import load_model

    model = load_model(cfg.model)
    facts = model_facts(cfg, model)
    listed_labels = read_label_list(cfg.labels, facts.task, empty_ok=True) if cfg.labels else None
    # the run's records (its own, each list's) hold the lists' and the model's URIs: all written masked
    redact_params = tuple(cfg.extract.get("redact_query_params", ()))
    with lifecycle("annotate", cfg.to_dict(), cfg.output, prefix="annotate-", redact_params=redact_params,
                   model_id=facts.model_id,
                   label_list=listed_labels.describe() if listed_labels is not None else None) as run:
        return AnnotateResult.from_record(_annotate(cfg, run, model, facts, listed_labels))


def _annotate(cfg: AnnotateConfig, run: Run, model: Any, facts: ModelFacts,
              listed_labels: LabelList | None) -> dict[str, Any]:
    """The job's work once its record is written: each list (or the one clip list) in turn; the record."""
    run_id, record = run.run_id, run.record
    if cfg.lists is None:
        record.update(_annotate_list(cfg, cfg.manifest, model, facts, run_id, listed_labels))
    else:
        new, already = pending_lists(cfg.lists, cfg.output)
        per_list: dict[str, dict[str, Any]] = {}
        for uri in new:
            name = posixpath.basename(uri)
            per_list[name] = _annotate_list(cfg, uri, model, facts, run_id, listed_labels)
            # recorded only once its annotations are written: a run stopped before this redoes
            # the list, and finds its clips already extracted and annotated
            write_record({"list": uri, "run_id": run_id, "model_id": facts.model_id, "time": now_utc(),
                               **per_list[name]}, join(cfg.output, LISTS, f"{name}.json"), run.redact_params)
        total: Counter[str] = Counter()
        for result in per_list.values():
            total.update(result["counts"])
        keys = _WINDOW_COUNTS if cfg.windows.windows else _COUNTS
        record.update(counts={k: total[k] for k in keys}, lists=per_list, lists_already_done=already)
    return run.complete()


def summary_lines(result: AnnotateResult) -> list[str]:
    """What ``acoustic-env annotate`` prints when the run is done: the counts, by windows or by clips, and the lists."""
    c, cfg = result.counts, result.record["config"]
    out = cfg["output"].rstrip("/")
    if cfg["windows"]["windows"]:
        return [f"annotate {result.run_id}: {c['annotated']} recordings scored in {c['windows']} windows by model "
                f"{result.model_id}, {c['already_annotated']} annotated earlier, {c['not_annotated_unreadable']} "
                f"unreadable; windows: {out}/window-annotations/, summaries: {out}/window-summaries/"]
    lines = [f"annotate {result.run_id}: {c['annotated']} clips annotated ({c['flagged']} flagged against their "
             f"given labels), {c['already_annotated']} already annotated by model {result.model_id}; "
             f"{c['extracted']} newly extracted, {c['extract_skipped']} already in the feature table, "
             f"{c['not_annotated_failed_extract']} failed extraction (see the feature table's errors/)"
             + (f"; {c['reviewed']} left out as a reviewer labelled them (--labels)" if c.get("reviewed") else "")
             + (f"; {c['not_annotated_broken_features']} not annotated: the feature table lacks a value the model "
                f"reads, or holds a non-finite one (clips extracted earlier with other settings keep theirs)"
                if c.get("not_annotated_broken_features") else "")]
    if cfg["lists"] is not None:
        lines.append(f"  lists: {len(result.lists)} new ({', '.join(result.lists) or 'none'}), "
                     f"{len(result.lists_already_done)} recorded earlier in {out}/lists/")
    return lines
