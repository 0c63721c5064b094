"""``--dry-run``: what a job would do, in a second or two, without starting Ray or changing anything.

Each ``plan_*`` function validates the config and runs the same path checks as the job
(:mod:`.preflight`), then calls the job's own planning steps on what is cheap to read:
the clip list (``job_manifest``), the ``clip_id`` columns of an output's parts
(``layout.index_output``, read only), the clip facts and schema of a feature table
(``table.selection``, the first half of ``read_features``), the model's description
(``learn.artifact.describe``: its model.json alone; ``annotate.model_facts``), and whether each embedder's
checkpoint, and the CNN's warm start's, is in the cache (``extract.checkpoints``, ``learn.warm_start.checkpoint``;
hashing a 300 MB file is the real run's job). Nothing is written, nothing is repaired or quarantined, and neither
Ray nor torch is imported, so a plan is cheap enough to run before every job.

Each returns a dict: the figures (for scripts and tests) and ``lines``, what the
command prints.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

import numpy as np
import pyarrow as pa

from acoustic_env import layout
from acoustic_env.audio.manifest import job_manifest
from acoustic_env.vocabulary.tasks import Task, load_task
from acoustic_env.config import (AnnotateConfig, AuditConfig, ConfigError, ExtractConfig, SearchConfig, TrainConfig,
                                 validate)
from acoustic_env.distributed.tune import runner_words
from acoustic_env.jobs.annotate import WINDOW_SUMMARIES, list_config, model_facts, pending_lists, unannotated
from acoustic_env.jobs.extract import Checkpoint, choose_embedders
from acoustic_env.jobs.train.grid import grid_embedders
from acoustic_env.jobs.in_process import runs_in_process
from acoustic_env.jobs.labelled import relabelled
from acoustic_env.jobs.preflight import MIN_TRAIN_CLIPS, on_every_clip, one_class, preflight
from acoustic_env.jobs.search import choose_columns, example_position
from acoustic_env.jobs.windows import route_by_options
from acoustic_env.audio.sizing import size
from acoustic_env.labels.label_list import label_list_line, read_label_list
from acoustic_env.learn import vector_index
from acoustic_env.learn.artifact import describe, table_extraction
from acoustic_env.learn.splits import check_counts
from acoustic_env.learn.warm_start import checkpoint
from acoustic_env.table import RANDOM, open_table, selection


def _resources(address: str | None) -> str:
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        return f"the Ray cluster at {address} (its resources are read when the job joins it)"
    return f"a local Ray instance on this machine ({os.cpu_count()} CPUs)"


def _weights(found: dict[str, Checkpoint]) -> dict[str, str]:
    """Per embedder: where its checkpoint is and whether the run would use it, random weights, or stop."""
    said = {"random": "RANDOM weights (no checkpoint at {path})",
            "stop": "MISSING: {path} (the run would stop; `acoustic-env models fetch {name}`)",
            "checkpoint": "{path} ({size} bytes; its hash is checked when the job starts)"}
    return {name: said[c.use].format(path=c.path, size=c.size, name=name) for name, c in found.items()}


def _given_lengths(chunk: pa.Table, max_s: float) -> np.ndarray:
    """(clips, seconds) of a chunk's clips whose start and end the list gives, each trimmed as decode trims it."""
    start, end = (chunk[c].to_numpy(zero_copy_only=False).astype(np.float64) for c in ("start_s", "end_s"))
    given = np.isfinite(start) & np.isfinite(end)
    return np.array([given.sum(), np.clip(end[given] - start[given], 0, max_s).sum()])


def plan_extract(cfg: ExtractConfig) -> dict[str, Any]:
    """Clips in the list, already done, to retry, to do; weights; resources; where the output goes."""
    validate(cfg)
    preflight(cfg)
    cfg, found, choice = choose_embedders(cfg, verify=False)  # the job's own choice; hashing is the run's
    manifest = job_manifest(cfg)
    index = layout.index_output(cfg.output, read_only=True)  # the job's pass over the output, changing nothing
    unreadable = len(index.unreadable)
    tally = layout.Tally()
    rejected: Counter[str] = Counter()
    lengths = np.zeros(2)  # the clips to do whose length the list gives (start and end), and their seconds
    for chunk in layout.pending(manifest.chunks(), index.done, index.failed, tally):  # the job's resume filter
        tally.todo_hashes.clear()  # only the counts are wanted here
        rejected.update(t for t in chunk["error_type"].drop_null().to_pylist())
        lengths += _given_lengths(chunk, cfg.decode.max_duration_s)
    n_ids, todo, retry = manifest.rows, tally.todo, tally.retried
    weights = _weights(found)
    out = cfg.output.rstrip("/")
    lines = [f"extract (dry run): {n_ids} clips in {manifest.source} ({manifest.format}); "
             f"{tally.skipped} already in features/, {todo} to do ({retry} of them retried "
             f"after an earlier failure)",
             f"  stages: decode, CPU features ({cfg.features.impl}, signals {','.join(cfg.features.signals)})"
             + (", log-mel images (logmel)" if cfg.features.logmel else "")
             + (f", embedders {','.join(cfg.embedders)} on signals {','.join(cfg.embed_signals)}" if cfg.embedders
                else ", no embedders")]
    if rejected:
        lines.append("  rejected by the list itself (they go to errors/): "
                     + ", ".join(f"{k}={v}" for k, v in sorted(rejected.items())))
    if unreadable:
        lines.append(f"  {unreadable} unreadable part(s) in the output: the run moves them to quarantine/ and "
                     "recomputes their clips")
    lines += [f"  {choice.line()}", *(f"  weights: {name}: {w}" for name, w in weights.items())]
    sizing = size(todo, cfg.embedders, cfg.plan_node_cpus, cfg.plan_node_gpus, cfg.plan_hours,
                  len(cfg.embed_signals), known=int(lengths[0]), known_s=float(lengths[1]))
    here = runs_in_process(cfg, max(n_ids - len(index.done), 0))  # the job's own rule, on the job's own count
    where = (f"this process, no Ray start-up (at most {cfg.in_process_max} clips to do: --in-process-max)" if here
             else _resources(cfg.ray_address))
    lines += [f"  resources: {where}", *sizing["lines"],
              f"  output: {out}/features/  {out}/errors/  {out}/runs/<run_id>.json"]
    return {"job": "extract", "clips": n_ids, "done": tally.skipped, "todo": todo, "retry": retry, "in_process": here,
            "rejected": dict(rejected), "unreadable_parts": unreadable, "weights": weights, "sizing": sizing,
            "output": out, "lines": lines}


def _table_plan(features: str, task: Task, feature_groups: tuple[str, ...], signals: tuple[str, ...] | None,
                include_random_weights: bool, labels: str | None = None) -> dict[str, Any]:
    """Columns used and left out (with why), and the clips with a target per class: ``read_features``' own
    selection, from the clip facts and the schema only. With a corrected list (``labels``), the targets are the
    job's own (``labelled.relabelled``), the list read and checked as the job reads it: a list the job would refuse
    stops the dry run in the same line."""
    chosen = selection(features, task=None if labels else task, feature_groups=feature_groups, signals=signals,
                       include_random_weights=include_random_weights)
    columns = {"columns": {g.name: g.dim for g in chosen.groups}, "excluded": chosen.excluded_columns}
    if labels:
        found = relabelled(chosen.facts, task, read_label_list(labels, task))
        counts = Counter(k for hits in found.target.values() for k in hits)
        return {"rows": chosen.n_read, "with_target": len(found.target), "left_out": found.excluded,
                "per_class": {c: counts[k] for k, c in enumerate(task.class_names)}, "label_list": found.used,
                **columns}
    y = chosen.y if chosen.y is not None else np.zeros(0, np.int64)
    per_class = y.sum(axis=0) if task.kind == "multi_label" else np.bincount(y, minlength=task.n_classes)
    return {"rows": chosen.n_read, "with_target": chosen.facts.num_rows,
            "per_class": {c: int(n) for c, n in zip(task.class_names, per_class)}, "left_out": chosen.excluded_rows,
            "label_list": None, **columns}


def _table_lines(t: dict[str, Any], task: Task) -> list[str]:
    left = ", ".join(f"{k}={v}" for k, v in t["left_out"].items() if v)
    return [f"  clips: {t['rows']} rows, {t['with_target']} with a target of task {task.name} ("
            + ", ".join(f"{c} {n}" for c, n in t["per_class"].items()) + ")" + (f"; left out: {left}" if left else ""),
            *label_list_line(t["label_list"]),
            f"  features: {', '.join(f'{c} ({d})' for c, d in t['columns'].items())}",
            *([f"  columns left out: {', '.join(f'{c} ({why})' for c, why in t['excluded'].items())}"]
              if t["excluded"] else [])]


def _unfilled_folds(t: dict[str, Any], task: Task, folds: int, field: str) -> list[str]:
    """The folds' own check (``learn.splits.check_counts``) on the table's clips per class: a class with fewer clips
    than folds stops the job, as the line it would print."""
    try:
        check_counts(np.array(list(t["per_class"].values())), task.class_names, folds, field)
    except ConfigError as exc:
        return [f"  would stop: {exc}"]
    return []


def plan_train(cfg: TrainConfig) -> dict[str, Any]:
    """The clips and columns train would use, the tuning, whether the table is big enough, the outputs."""
    validate(cfg)
    preflight(cfg)
    task = load_task(cfg.task, cfg.ontology)
    cfg.check_task(task.name, task.kind, task.n_classes)
    t = _table_plan(cfg.features, task, cfg.read_groups(), cfg.signals, cfg.include_random_weights, cfg.labels)
    out = cfg.output.rstrip("/")
    tuning = (f"{cfg.trials} trials of Optuna TPE with ASHA, at most {cfg.time_budget_s:g} s, "
              f"{cfg.max_concurrent_trials or 'one per two CPUs'} at once, {runner_words(cfg.workers)} each"
              if cfg.trials else "no tuning: one run with the default hyper-parameters")
    lines = [f"train (dry run): task {task.name} ({task.kind}, classes {', '.join(task.class_names)})",
             *_table_lines(t, task),
             *([f"  grid: one model per cell of embedders {', '.join(grid_embedders(cfg.grid_embedders, t['columns']))} x signals "
                f"{', '.join(cfg.grid_signals)}, each cross-validated; the best cell is the chosen model"]
               if cfg.grid else []),
             f"  tuning: {tuning}; baselines: {', '.join(cfg.baselines) or 'none'}; ablations "
             f"{'on' if cfg.ablations else 'off'}; SHAP on {cfg.shap_samples} test clips",
             f"  resources: {_resources(cfg.ray_address)}, device {cfg.device}",
             f"  output: {out}/model/  {out}/report/index.html  {out}/runs/<run_id>.json  "
             f"Ray checkpoints: {cfg.work_dir or out + '/ray'}"]
    warm = checkpoint(cfg.weights_cache) if cfg.cnn_init == "panns" else None
    if warm:
        lines.insert(-2, f"  warm start: the CNN (cnn14) from the PANNs CNN14 checkpoint at {warm[0]} (its hash is "
                         "checked when the job starts)")
    ok = t["with_target"] >= MIN_TRAIN_CLIPS
    if not ok:
        lines.append(f"  would stop: only {t['with_target']} clips have a target (need {MIN_TRAIN_CLIPS} or more)")
    present = [c for c, n in t["per_class"].items() if n] if task.kind == "single_label" else []
    if ok and (problem := one_class(t["with_target"], cfg.features, task.name, present)):
        lines.append(f"  would stop: {problem}")
    elif ok and cfg.cv_folds and (cfg.folds_column or t["with_target"] <= cfg.cv_max_clips):
        lines += _unfilled_folds(t, task, cfg.cv_folds, "cv_folds")
    if warm and warm[1]:
        lines.append(f"  would stop: {warm[1]}")
    return {"job": "train", **t, "enough_clips": ok, "warm_start_missing": bool(warm and warm[1]), "output": out,
            "lines": lines}


def plan_audit(cfg: AuditConfig) -> dict[str, Any]:
    """The clips and columns the audit would use, its folds and classifier, the outputs."""
    validate(cfg)
    preflight(cfg)
    task = load_task(cfg.task, cfg.ontology)
    t = _table_plan(cfg.features, task, cfg.feature_groups, None, cfg.include_random_weights, cfg.labels)
    out = cfg.output.rstrip("/")
    lines = [f"audit (dry run): task {task.name} ({task.kind}); {cfg.classifier} x {cfg.folds} folds, "
             f"flagging by {cfg.filter_by}",
             *_table_lines(t, task),
             f"  resources: {'Ray tasks on ' + _resources(cfg.ray_address) if cfg.parallel == 'ray' else 'this process'}",
             f"  output: {out}/audit.parquet  {out}/summary.json"
             + (f"  {out}/review/index.html ({cfg.review_top} suspects + {cfg.random_sample} random clips)"
                if cfg.review_top or cfg.random_sample else "")]
    present = [c for c, n in t["per_class"].items() if n] if task.kind == "single_label" else []
    multi = task.kind != "single_label"
    on_all = on_every_clip(t["with_target"], cfg.features, task.name, t["per_class"]) if multi else None
    if t["with_target"] and (problem := one_class(t["with_target"], cfg.features, task.name, present) or on_all):
        lines.append(f"  would stop: {problem}")
    elif t["with_target"] < cfg.folds:
        lines.append(f"  would stop: {t['with_target']} clips with a target cannot fill {cfg.folds} folds")
    else:
        lines += _unfilled_folds(t, task, cfg.folds, "folds")
    return {"job": "audit", **t, "output": out, "lines": lines}


def plan_annotate(cfg: AnnotateConfig) -> dict[str, Any]:
    """The model's classes and embedders, the extract plan for the list, clips already annotated by this model."""
    preflight(cfg)
    model = describe(cfg.model)
    facts = model_facts(cfg, model)
    task = facts.task
    head = (f"annotate (dry run): model {facts.model_id} ({task.kind}, classes {', '.join(task.class_names)}; "
            f"features {', '.join(model.inputs)})")
    out = cfg.output.rstrip("/")
    if cfg.lists is not None:
        new, already = pending_lists(cfg.lists, cfg.output)
        lines = [head, f"  lists in {cfg.lists}: {len(new)} to annotate ("
                 + ", ".join(n.rsplit("/", 1)[-1] for n in new) + f"), {len(already)} recorded earlier",
                 f"  output: {out}/annotations/  {out}/lists/<list>.json  {out}/runs/annotate-<run_id>.json"]
        return {"job": "annotate", "lists": new, "lists_already_done": already, "output": out, "lines": lines}
    if cfg.windows.windows:
        files = job_manifest(list_config(cfg, cfg.manifest, {})).table["clip_id"].to_pylist()
        todo = unannotated(cfg.output, facts.model_id, files, WINDOW_SUMMARIES)
        # the job's own rule, for more windows than the limit (counting them would open every file)
        route = route_by_options(cfg.windows, cfg.windows.in_process_max + 1, cfg.extract.get("ray_address"))
        where = route.why if route else (f"in this process up to {cfg.windows.in_process_max} windows "
                                         "(--windows-in-process-max); beyond, the first span is scored here and "
                                         "timed, and the rest go to Ray only if it is expected to finish them sooner")
        lines = [head, f"  {len(files)} files listed, {len(files) - len(todo)} already annotated in windows by this "
                       f"model, {len(todo)} to score in windows (no extract; windows "
                       f"{cfg.windows.window_s or 'of the training clip length'} s, hop "
                       f"{cfg.windows.hop_s or 'the window'} s)",
                 f"  where: {where}",
                 f"  output: {out}/window-annotations/  {out}/window-summaries/  {out}/runs/annotate-<run_id>.json"]
        return {"job": "annotate", "windows": cfg.windows.to_dict(), "listed": len(files),
                "already_annotated": len(files) - len(todo), "where": where, "output": out, "lines": lines}
    ecfg = list_config(cfg, cfg.manifest, facts.settings)
    ext = plan_extract(ecfg)
    listed = job_manifest(ecfg).table["clip_id"].to_pylist()
    already = len(listed) - len(unannotated(cfg.output, facts.model_id, listed))
    lines = [head,
             f"  {len(listed)} clips listed, {already} already annotated by this model, "
             f"{len(listed) - already} to annotate",
             *("  " + line for line in ext["lines"]),
             f"  output: {out}/annotations/  {out}/runs/annotate-<run_id>.json"]
    return {"job": "annotate", "listed": len(listed), "already_annotated": already, "extract": ext,
            "output": out, "lines": lines}


def plan_search(cfg: SearchConfig) -> dict[str, Any]:
    """The embedder and columns compared, the clips searched, what the example is, the outputs."""
    validate(cfg)
    preflight(cfg)
    table = open_table(cfg.features)
    embedder, columns = choose_columns(table, cfg)
    chosen = selection(cfg.features, feature_groups=columns, include_random_weights=cfg.include_random_weights)
    pos = example_position(cfg, chosen.facts, table)
    weights = table.weights.get(columns[0]) or RANDOM
    example = (f"clip {chosen.facts['clip_id'][pos]} of the table" if pos is not None else
               f"an audio file, embedded first with the settings of {table_extraction(cfg.features)['source']}")
    outputs = [f"the console ({cfg.k} clips after the example)", *([cfg.save] if cfg.save else []),
               *([f"{cfg.page.rstrip('/')}/index.html"] if cfg.page else [])]
    index = vector_index.status(table, columns, weights)
    answer = {"missing": "none: every clip is compared", "current": f"answers ({index.why})"}.get(
        index.state, f"refused, it no longer matches the table ({index.why}); --exact compares every clip")
    lines = [f"search (dry run): {embedder} ({', '.join(columns)}; "
             f"{'random weights' if weights == RANDOM else 'weights ' + weights[:12]}), cosine similarity",
             f"  clips: {chosen.facts.num_rows} rows in {cfg.features} (rows without a finite value are left out "
             "when the vectors are read)",
             f"  example: {example}",
             f"  index: {answer}",
             f"  output: {', '.join(outputs)}"]
    return {"job": "search", "embedder": embedder, "columns": columns, "clips": chosen.facts.num_rows,
            "example_in_table": pos is not None, "index": index.state, "lines": lines}

