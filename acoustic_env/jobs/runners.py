"""The runners (each ``run_*``: a command's config in, its job run) and the summary lines of the commands whose job
is a function of plain arguments: ``export``, ``search``, ``audit-estimate`` and ``predict`` (their catalogue
entries, the commands: ``jobs/catalog.py``).

Each ``run_*`` takes the command's config and returns what it did, so that the command line and ``ae.run`` do the
same work; each ``*_lines`` says it, as the command prints it. The heavy modules are imported when a run starts.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable
from typing import Any

from acoustic_env.config import ConfigError, IN_PROCESS_MAX, IndexConfig, SearchConfig
from acoustic_env.config.export import ExportConfig
from acoustic_env.config.predict import PredictConfig
from acoustic_env.config.review import AuditEstimateConfig
from acoustic_env.storage import redact
from acoustic_env.jobs.results import Estimated, Exported, Predicted, Searched


def run_export(cfg: ExportConfig) -> Exported:
    from acoustic_env.jobs.export import export_embeddings, export_features

    if cfg.embeddings:
        n, cols, left_out, index = export_embeddings(cfg)
        return Exported(n, cols, cfg.output, left_out, index)
    n, cols, left_out = export_features(cfg.features, cfg.output, wide=cfg.wide, task=cfg.task,
                                        feature_groups=cfg.feature_groups,
                                        include_random_weights=cfg.include_random_weights)
    return Exported(n, cols, cfg.output, left_out)


def export_lines(done: Exported) -> list[str]:
    return [f"export: {done.rows} clips x {done.columns} columns -> {done.output}"
            + (f" ({done.left_out} clips left out: a value of an exported group is missing or not finite; "
               f"--feature-groups exports fewer)" if done.left_out else "")] + \
        ([f"  index: {redact(done.index)}"] if done.index else [])


def run_search(cfg: SearchConfig) -> Searched:
    """The search, and its table and page written where the config says."""
    from acoustic_env.jobs.export import write_table
    from acoustic_env.jobs.search import search, write_page

    found = search(cfg)
    if cfg.save:
        write_table(found.table, cfg.save)
    return Searched(found, cfg.example, cfg.save, write_page(found, cfg.page, cfg.example) if cfg.page else None)


def run_index(cfg: IndexConfig) -> Any:
    """Build, extend or rebuild the table's index over the columns ``search`` would compare
    (``learn.vector_index.build``); returns its ``Built``."""
    from acoustic_env.config import validate
    from acoustic_env.jobs.preflight import preflight
    from acoustic_env.jobs.search import choose_columns
    from acoustic_env.learn.vector_index import build
    from acoustic_env.table import RANDOM, open_table

    validate(cfg)
    preflight(cfg)
    table = open_table(cfg.features)
    embedder, columns = choose_columns(table, cfg)
    weights = table.weights.get(columns[0]) or RANDOM
    if cfg.shards > 1:
        from acoustic_env.distributed.index_build import build_on_ray

        return build_on_ray(table, embedder, columns, weights, cfg.precision, cfg.rebuild, cfg.shards)
    return build(table, embedder, columns, weights, cfg.precision, cfg.rebuild)


def index_lines(done: Any) -> list[str]:
    """``index: built /out/index/birdnet.json: 96 clips, f16 (1.2 s)``, and why it was (re)built or left."""
    said = {"built": "built", "extended": f"extended by {done.added} clips", "rebuilt": "built again",
            "current": "left as it is"}[done.action]
    graphs = f", {done.shards} graphs" if done.shards > 1 else ""
    return [f"index: {said} {redact(done.where)}: {done.rows} clips, {done.precision}{graphs} ({done.seconds:.1f} s)",
            f"  {done.why}"]


def search_lines(done: Searched) -> list[str]:
    from acoustic_env.jobs.search import result_lines

    return [*result_lines(done.found, done.example), *([f"  written to {done.save}"] if done.save else []),
            *([f"  page: {done.page}"] if done.page else [])]


def run_audit_estimate(cfg: AuditEstimateConfig) -> Estimated:
    """The verdicts read, those of clips not on the audit's review page left out, the accuracy estimated (of the
    corrected list when ``labels`` names one), and written to ``output``."""
    from acoustic_env.errors import AuditError
    from acoustic_env.jobs.audit.estimate import estimate_accuracy, on_page, read_verdicts
    from acoustic_env.pages.review import PAGE, REVIEW_DIR
    from acoustic_env.storage import filesystem, join, write_json

    verdicts = list(cfg.verdicts)
    records = read_verdicts(verdicts)
    beside = verdicts[0].rsplit("/", 1)[0] if "/" in verdicts[0] else "."
    review_dir = join(cfg.audit, REVIEW_DIR) if cfg.audit else beside
    fs, page = filesystem(join(review_dir, PAGE))
    notes = []
    if cfg.audit or fs.exists(page):
        kept, others = on_page(records, review_dir)
        if records and not kept:  # what was found, not "no verdicts": the files hold some, about other clips
            raise AuditError(f"verdicts: {len(records)} verdict(s) in {', '.join(verdicts)}, none for a clip "
                             f"on {join(review_dir, PAGE)} (e.g. {records[0]['clip_id']!r} in the "
                             f"{records[0]['sample']} sample)")
        records = kept
        if others:
            notes.append(f"left out {others} verdicts for clips not in audit {cfg.audit or review_dir} "
                         "(not on its review page)")
    else:  # nothing to check the clip ids against: a forged or foreign verdict would count unseen
        notes.append(f"note: no review page beside {verdicts[0]}: every verdict is counted, whatever its clip; "
                     "pass --audit to count only the audit's clips")
    est = estimate_accuracy(records, cfg.sample, cfg.method)
    if cfg.labels:
        est = _after_corrections(est, cfg.audit, cfg.labels, records)
    if cfg.output:
        write_json(est, cfg.output)
    return Estimated(est, notes, cfg.output)


def _after_corrections(est: dict, audit: str | None, labels: str, records: list[dict]) -> dict:
    """``est`` carried over to the corrected list ``labels`` (``estimate.after_corrections``), the audited clips'
    given classes read from the audit's table, the list's labels checked against the verdicts ``records``."""
    import pyarrow.parquet as pq

    from acoustic_env.jobs.audit.estimate import after_corrections
    from acoustic_env.jobs.audit.job import SUMMARY, TABLE
    from acoustic_env.labels.label_list import read_label_list
    from acoustic_env.bounded import read_record
    from acoustic_env.storage import filesystem, join
    from acoustic_env.vocabulary.tasks import load_task

    if not audit:
        raise ConfigError("labels: needs --audit, the audit whose clips the list corrects")
    config = read_record(join(audit, SUMMARY), "audit")["config"]
    listed = read_label_list(labels, load_task(config["task"], config.get("ontology")))
    fs, path = filesystem(join(audit, TABLE))
    with fs.open(path, "rb") as f:
        rows = pq.read_table(f, columns=["clip_id", "given_labels"]).to_pylist()
    return after_corrections(est, {r["clip_id"]: tuple(r["given_labels"] or ()) for r in rows}, listed.labels,
                             records)


def estimate_lines(done: Estimated) -> list[str]:
    from acoustic_env.jobs.audit.estimate import estimate_lines as lines

    return [*done.notes, *lines(done.estimate), *([f"  written to {done.output}"] if done.output else [])]


def check_predict(cfg: PredictConfig) -> None:
    """``save`` a table file, and no output on or inside an input (the paths by their roles), before any clip is
    read; each input is checked as it is read (``predict.input_rows``)."""
    from acoustic_env.jobs.export import check_table_file
    from acoustic_env.jobs.preflight import READ, WRITTEN, keep_apart, path_fields

    if cfg.save:  # before the scoring, whose result it is to hold
        check_table_file(cfg.save, "save")
    paths = path_fields(cfg)
    keep_apart([(name, uri) for role, name, uri in paths if role in READ],
               [(name, uri) for role, name, uri in paths if role in WRITTEN])
    if cfg.selections and not cfg.windows.windows:
        raise ConfigError("selections: applies to windows only: add --windows")


def run_predict(cfg: PredictConfig, on_ray: Callable[[], None] = lambda: None) -> Predicted:
    """Every input scored, per clip or (``--windows``) per window; ``on_ray`` is called before Ray starts."""
    from acoustic_env.jobs.export import write_table
    from acoustic_env.jobs.predict import input_rows, predict

    t0, inputs = time.time(), list(cfg.inputs)
    if cfg.windows.windows:
        return _predict_windows(cfg, on_ray, t0)
    if cfg.output or len(input_rows(inputs, cfg.audio_root)[0]) > IN_PROCESS_MAX:
        on_ray()  # the extract job runs
    table = predict(inputs, cfg.model, output=cfg.output, audio_root=cfg.audio_root,
                    weights_cache=cfg.weights_cache, device=cfg.device, top_tags=cfg.top_tags)
    seconds = time.time() - t0
    if cfg.save:
        write_table(table, cfg.save)
    return Predicted(table, seconds, cfg.save)


def _predict_windows(cfg: PredictConfig, on_ray: Callable[[], None], t0: float) -> Predicted:
    """``predict --windows``: every file scored in windows (in this process, or on Ray beyond
    ``--windows-in-process-max`` windows)."""
    from acoustic_env.jobs.export import write_table
    from acoustic_env.audio.selections import write_selections
    from acoustic_env.jobs.windows import predict_windows

    result = predict_windows(list(cfg.inputs), cfg.model, window=cfg.windows, audio_root=cfg.audio_root,
                             weights_cache=cfg.weights_cache, device=cfg.device, output=cfg.output, on_ray=on_ray)
    seconds = time.time() - t0
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    if cfg.save:
        write_table(result.table, cfg.save)
        stem, ext = os.path.splitext(cfg.save)
        write_table(result.summary, f"{stem}.summary{ext}")
    written = write_selections(result.table, cfg.selections) if cfg.selections else []
    return Predicted(result.table, seconds, cfg.save, result, cfg.selections, len(written), peak_mib)


def predict_lines(done: Predicted) -> list[str]:
    from acoustic_env.jobs.predict import format_predictions
    from acoustic_env.audio.selections import window_lines

    classes = [c.removeprefix("prob_") for c in done.table.column_names if c.startswith("prob_")]
    if done.summary is None:
        failed = sum(e is not None for e in done.table["error"].to_pylist())
        return [*format_predictions(done.table, classes),
                f"{done.table.num_rows} clip(s) in {done.seconds:.1f} s" + (f", {failed} not scored" if failed else ""),
                *([f"  written to {done.save}"] if done.save else [])]
    r = done.summary
    lines = [*window_lines(r.table, r.summary, classes, r.window_s, r.hop_s),
             f"{r.table.num_rows} window(s) of {r.summary.num_rows} file(s) in {done.seconds:.1f} s, "
             f"peak memory {done.peak_mib:.0f} MiB", f"  {r.route.why}"]
    if done.save:
        stem, ext = os.path.splitext(done.save)
        lines.append(f"  windows written to {done.save}, the summary per file to {stem}.summary{ext}")
    if done.selections:
        lines.append(f"  {done.selection_files // 2} Raven selection table(s) and Audacity label file(s) in "
                     f"{done.selections}")
    return lines
