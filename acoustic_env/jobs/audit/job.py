"""The audit job: features + task → out-of-fold probabilities → confident learning → audit table, summary, review page.

This is the Python API behind ``acoustic-env audit``, which a cluster runs as the job of ``jobs/audit/``.

Outputs under ``<output>/``::

    audit.parquet        one row per audited clip, most suspect first
    summary.json         config, counts, estimated noise (joint, noise matrix, share wrong per class), versions
    review/index.html    the review page (+ review/assets/), see review.py

The out-of-fold model is chosen by out-of-fold log loss (``classifier="auto"``,
see ``crossfit.choose_by_log_loss``). The review list (``suspect_rank``) puts
the flagged clips first, each block by ``label_quality`` (cleanlab's
self-confidence: the out-of-fold probability of the given label), lowest first.
With ``truth`` (known errors: the demo, tests, a benchmark with flipped labels)
the summary scores the flags and the top of the list against it (``against_truth``).
"""

from __future__ import annotations

import csv
import io
import logging
import time
from functools import partial
from typing import Any

import numpy as np
import pyarrow as pa
from sklearn.metrics import roc_auc_score

from acoustic_env.bounded import MAX_LIST_BYTES, read_bytes
from acoustic_env.vocabulary.tasks import Task
from acoustic_env.config import CLASSIFIERS, AuditConfig, ConfigError, validate
from acoustic_env.distributed.session import start_ray
from acoustic_env.errors import AuditError
from acoustic_env.learn.confident import (
    LabelIssues,
    multi_label_issues,
    single_label_issues,
)
from acoustic_env.candidates import AVERAGE
from acoustic_env.jobs.audit.crossfit import AUTO, choose_model_and_set
from acoustic_env.pages.review import build_review
from acoustic_env.jobs.labelled import grouped_folds, read_labelled
from acoustic_env.jobs.preflight import on_every_clip, one_class, preflight
from acoustic_env.jobs.record import Run, lifecycle, package_versions, write_record
from acoustic_env.jobs.results import AuditResult
from acoustic_env.labels.label_list import label_list_line
from acoustic_env.learn.feature_sets import ALL, candidate_sets
from acoustic_env.learn.review_order import embed
from acoustic_env.storage import join, write_parquet
from acoustic_env.table import FeatureSet, metadata_json

log = logging.getLogger("acoustic_env.jobs.audit")

TABLE = "audit.parquet"
SUMMARY = "summary.json"
AUDIT_PACKAGES = ("cleanlab", "scikit-learn", "xgboost", "matplotlib")


def _given_matrix(data: FeatureSet, task: Task) -> np.ndarray:
    return np.eye(task.n_classes, dtype=np.int64)[data.y] if task.kind == "single_label" else data.y


def _names(rows: np.ndarray, task: Task) -> list[list[str]]:
    return [[task.class_names[k] for k in np.flatnonzero(r)] for r in rows]


def suspect_ranks(flagged: np.ndarray, quality: np.ndarray) -> np.ndarray:
    """1 = most suspect: flagged clips first, each block by label quality, lowest first."""
    order = np.lexsort((quality, ~flagged))
    ranks = np.empty(len(order), dtype=np.int32)
    ranks[order] = np.arange(1, len(order) + 1)
    return ranks


def audit_table(data: FeatureSet, task: Task, folds: np.ndarray, probs: np.ndarray, issues: LabelIssues,
                meta: dict[str, Any], embedding: np.ndarray | None = None) -> pa.Table:
    """The audit table, sorted by ``suspect_rank``; ``embedding`` (the features' PCA, ``learn/review_order.py``)
    is kept so that the review server can re-rank the queue without reading the features again."""
    ranks = suspect_ranks(issues.flagged, issues.quality)
    cols: dict[str, Any] = {c: data.clips[c] for c in data.clips.column_names}
    cols["fold"] = pa.array(folds.astype(np.int16))
    cols["given_labels"] = pa.array(_names(_given_matrix(data, task), task), pa.list_(pa.string()))
    cols["suggested_labels"] = pa.array(_names(issues.suggested, task), pa.list_(pa.string()))
    for k, name in enumerate(task.class_names):
        cols[f"prob_{name}"] = pa.array(probs[:, k].astype(np.float32))
    cols["label_quality"] = pa.array(issues.quality.astype(np.float64))
    cols["flagged"] = pa.array(issues.flagged)
    cols["suspect_rank"] = pa.array(ranks)
    if embedding is not None:
        cols["embedding"] = pa.FixedSizeListArray.from_arrays(pa.array(embedding.ravel()), embedding.shape[1])
    table = pa.table(cols).replace_schema_metadata(metadata_json(meta))
    return table.take(pa.array(np.argsort(ranks, kind="stable")))


def fit_quality(targets: np.ndarray, probs: np.ndarray, kind: str) -> dict[str, float | None]:
    """How well the out-of-fold model predicts the *given* labels (a sanity check, not the true accuracy)."""
    if kind == "single_label":
        acc = float((probs.argmax(axis=1) == targets).mean())
        onehot = np.eye(probs.shape[1])[targets]
    else:
        acc = float(((probs >= 0.5) == targets.astype(bool)).mean())
        onehot = targets
    aucs = [roc_auc_score(onehot[:, k], probs[:, k]) for k in range(probs.shape[1]) if 0 < onehot[:, k].sum() < len(onehot)]
    return {"accuracy_vs_given": round(acc, 6), "macro_auc_vs_given": round(float(np.mean(aucs)), 6) if aucs else None}


def read_truth(uri: str) -> set[str]:
    """The clip ids a truth CSV marks as wrongly labelled (columns ``clip_id`` and ``flipped``, 1 = wrong)."""
    try:
        text = read_bytes(uri, "truth", MAX_LIST_BYTES, "a truth list").decode("utf-8-sig")
        rows = list(csv.DictReader(io.StringIO(text)))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"truth: cannot read {uri}: {str(exc).splitlines()[0] if str(exc) else exc!r}") from None
    if not rows or not {"clip_id", "flipped"} <= set(rows[0]):
        raise ConfigError(f"truth: {uri} needs the columns clip_id and flipped, got {sorted(rows[0]) if rows else []}")
    return {r["clip_id"] for r in rows if str(r["flipped"]).strip().lower() in ("1", "true", "yes")}


def against_truth(table: pa.Table, wrong: set[str], top: int = 0) -> dict[str, Any]:
    """Precision and recall of the flagged set and of the top-k of the review list (``table`` in rank order).

    k is the number of known errors among the audited clips (so precision = recall
    there: the list's R-precision) and ``top`` (the review page's length) when given.
    """
    ids = table["clip_id"].to_pylist()
    wrong = wrong & set(ids)
    flagged = {c for c, f in zip(ids, table["flagged"].to_pylist()) if f}

    def score(picked: set[str]) -> dict[str, Any]:
        hits = len(picked & wrong)
        return {"n": len(picked), "hits": hits, "precision": round(hits / len(picked), 6) if picked else None,
                "recall": round(hits / len(wrong), 6) if wrong else None}

    ks = sorted({k for k in (len(wrong), top) if k})
    return {"known_wrong": len(wrong), "true_wrong_share": round(len(wrong) / len(ids), 6) if ids else 0.0,
            "flagged": score(flagged), "top_k": {str(k): score(set(ids[:k])) for k in ks}}


def _any_clips(cfg: AuditConfig, data: FeatureSet, task: Task) -> None:
    """The audit's minimum: a clip, and for a single-label task two classes, as train's; for a multi-label task no
    label on every clip (the folds then say when there are too few clips for them, or a label is on none)."""
    if not len(data):
        raise AuditError(f"features: no clip of {cfg.features} has finite features and a target of task {task.name!r}")
    if task.kind == "single_label":
        problem = one_class(len(data), cfg.features, task.name, [task.class_names[c] for c in np.unique(data.y)])
    else:
        problem = on_every_clip(len(data), cfg.features, task.name, dict(zip(task.class_names, data.y.sum(axis=0))))
    if problem:
        raise ConfigError(problem)


def run_audit(cfg: AuditConfig) -> AuditResult:
    """Audit the labels of a feature table; the counts, the estimate, the outputs, and the summary as ``record``
    (written to ``<output>/summary.json`` when done; the run record ``<output>/runs/audit-<id>.json`` from the
    start, ending completed or failed)."""
    validate(cfg)
    preflight(cfg)
    with lifecycle("audit", cfg.to_dict(), cfg.output, prefix="audit-",
                   versions=package_versions(AUDIT_PACKAGES)) as run:
        return AuditResult.from_record(_audit(cfg, run))


def _audit(cfg: AuditConfig, run: Run) -> dict[str, Any]:
    """The job's work once its record is written; the summary."""
    audit_id, summary = run.run_id, run.record
    labelled = read_labelled(cfg.features, cfg.task, cfg.ontology, partial(_any_clips, cfg),
                             feature_groups=cfg.feature_groups, include_random_weights=cfg.include_random_weights,
                             labels=cfg.labels)
    task, data, duplicates = labelled.task, labelled.features, labelled.duplicates
    X = data.matrix()
    log.info("audit %s: %d clips, %d features from %s", audit_id, *X.shape, list(data.columns))  # pragma: no mutate
    folds = grouped_folds(data, task, cfg.folds, cfg.seed, duplicates.counts)
    wrong = read_truth(cfg.truth) if cfg.truth else None
    if cfg.parallel == "ray":
        start_ray(cfg.ray_address)
    t_fit = time.time()
    candidates = CLASSIFIERS if cfg.classifier in (AUTO, AVERAGE) else (cfg.classifier,)
    # the feature set is a choice like the model (learn.feature_sets), unless --feature-groups names the groups
    sets = {} if cfg.feature_groups else candidate_sets(data.feature_groups)
    inputs = {name: data.matrix(groups) for name, groups in sets.items()} or {ALL: X}
    chosen, feature_set, probs, losses, set_losses, maps = choose_model_and_set(
        candidates, task.kind, task.n_classes, cfg.seed, inputs, data.y, folds, cfg.parallel, cfg.classifier)
    fit_s = time.time() - t_fit
    find = single_label_issues if task.kind == "single_label" else multi_label_issues
    issues = find(data.y, probs, task.class_names, cfg.filter_by, units=data.groups, seed=cfg.seed)
    summary.update(
        audit_id=audit_id,
        task={"name": task.name, "kind": task.kind, "classes": list(task.class_names),
              "definition": task.definition},
        features={"columns": data.columns, "dim": int(X.shape[1]), "excluded": data.excluded["columns"]},
        folds={"k": cfg.folds, "grouped": data.has_groups, "sizes": np.bincount(folds).tolist()},
        counts={"audited": len(data), "flagged": int(issues.flagged.sum()), **data.excluded["rows"]},
        duplicates=duplicates.counts,
        label_list=labelled.label_list,
        model={"requested": cfg.classifier, "chosen": chosen, "log_loss": losses, "calibration": maps,
               "rule": "lowest out-of-fold log loss against the given labels" if cfg.classifier == AUTO
               else "as requested",
               "feature_set": feature_set, "groups": list(sets.get(feature_set, data.columns)),
               "feature_sets": set_losses or None,
               "feature_set_probe": "logreg" if cfg.classifier in (AUTO, AVERAGE) else cfg.classifier},
        fit=fit_quality(data.y, probs, task.kind),
        noise=issues.noise,
        outputs={"table": join(cfg.output, TABLE), "summary": join(cfg.output, SUMMARY)},
    )
    meta = {"audit_id": audit_id, "task": summary["task"]["name"], "kind": task.kind,
            "classes": list(task.class_names), "model": chosen, "folds": cfg.folds, "seed": cfg.seed}
    embedding = embed(inputs.get(feature_set, X), seed=cfg.seed)
    table = duplicates.label_disagreements(audit_table(data, task, folds, probs, issues, meta, embedding))
    write_parquet(table, join(cfg.output, TABLE))
    if wrong is not None:
        summary["truth"] = against_truth(table, wrong, cfg.review_top)
    if cfg.review_top or cfg.random_sample:
        summary["outputs"]["review"] = build_review(table, summary, cfg.output, cfg.review_top,
                                                    cfg.random_sample, cfg.seed)
    done = run.complete(fit_s=round(fit_s, 3))
    write_record(summary, join(cfg.output, SUMMARY))
    return done


def rebuild_review(output: str, top: int, random_sample: int, seed: int = 0) -> str:
    """Write the review page again from an existing audit (another top-N or sample size); returns its URI."""
    from acoustic_env.storage import read_json, read_part

    summary = read_json(join(output, SUMMARY))
    return build_review(read_part(join(output, TABLE)), summary, output, top, random_sample, seed)


def summary_lines(result: AuditResult) -> list[str]:
    """What the console prints after an audit."""
    summary = result.record
    c, noise = summary["counts"], summary["noise"]
    excluded = ", ".join(f"{k}={v}" for k, v in c.items() if k not in ("audited", "flagged") and v)
    model = summary["model"]
    lines = [f"audit {result.audit_id}: {result.audited} clips, task {summary['task']['name']}, "
             f"{model['chosen']} x {summary['config']['folds']} folds"
             f"{' (grouped)' if summary['folds']['grouped'] else ''}"
             f"{f'; left out: {excluded}' if excluded else ''} ({result.wall_s:.1f} s)",
             f"  flagged {result.flagged} ({noise['flagged_share']:.1%}); estimated share of wrong labels "
             f"{result.estimated_wrong_share:.1%}: "
             + ", ".join(f"{k} {v['estimated_wrong_share']:.1%}"
                         + (f" [{v['interval'][0]:.1%}, {v['interval'][1]:.1%}]" if v.get("interval") else "")
                         + f" of {v['given']}" for k, v in noise["per_class"].items()),
             *label_list_line(summary.get("label_list")),
             f"  table: {result.table}  summary: {summary['outputs']['summary']}"]
    if len(model["log_loss"]) > 1:
        maps = model.get("calibration") or {}
        lines.insert(1, f"  model: {model['chosen']} ({model['rule']}, each model's probabilities calibrated on "
                        "the other folds where that lowers it: "
                        + ", ".join(f"{k} {v:.3f}" + (f" ({maps[k]})" if maps.get(k, "none") != "none" else "")
                                    for k, v in model["log_loss"].items()) + ")")
    if model.get("feature_sets"):
        lines.insert(2, f"  feature set: {model['feature_set']} (lowest out-of-fold log loss of "
                        f"{model['feature_set_probe']} on each: "
                        + ", ".join(f"{s} {v:.3f}" for s, v in model["feature_sets"].items()) + ")")
    truth = summary.get("truth")
    if truth:
        fmt = lambda v: "–" if v is None else f"{v:.2f}"  # noqa: E731
        lines.insert(-1, f"  against {truth['known_wrong']} known wrong labels: flagged precision "
                         f"{fmt(truth['flagged']['precision'])} recall {fmt(truth['flagged']['recall'])}; "
                         + "; ".join(f"top {k}: precision {fmt(v['precision'])} recall {fmt(v['recall'])}"
                                     for k, v in truth["top_k"].items()))
    if result.review is not None:
        lines.append(f"  review page: {result.review}")
    return lines
