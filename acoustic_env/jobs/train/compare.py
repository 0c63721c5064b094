"""What the labels changed: this run's chosen model against the previous one in the same output.

A corrected label list (``--labels``) changes the targets a model learns, so the figure of the
new model cannot be read against the old one's: each was scored against its own labels. What can
be compared is the clips whose label did not change. Each train run therefore leaves its chosen
model's clip-level predictions beside its report (``report/predictions.parquet``,
:func:`write_predictions`): every clip it learnt from, its target, and the out-of-fold (or held-out
test) probabilities where it was scored. The next run into the same output reads that file before
its own report replaces it (:func:`read_previous`) and :func:`compare` counts:

- the clips whose target differs from the table's (the list's count) and from the previous run's;
- both models' figure (the model-selection metric, ``learn.fit.val_score``: ROC AUC, or mAP for
  multi-label tasks) on the clips both scored whose target is the same in both runs, each with a
  95 % interval and the difference with its own, from one paired bootstrap that draws whole groups
  (``learn.metrics.resample_groups``), so both models are scored on the same draw.

The comparison goes into the new run's metrics.json and run record, so the previous model's
figures stay readable once its file is replaced.
"""

from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from acoustic_env.learn.fit import val_score
from acoustic_env.learn.metrics import BOOTSTRAP_REPLICATES, headline, resample_groups
from acoustic_env.storage import filesystem, join, write_parquet

log = logging.getLogger("acoustic_env.jobs.train")
PREDICTIONS = "predictions.parquet"
#: The bootstrap is skipped (figures without intervals) above this many clips x classes: AudioSet's
#: 527 classes' mAP, 500 times, would cost minutes.
MAX_BOOTSTRAP_CELLS = 1_000_000
_META = b"acoustic_env"


@dataclass(frozen=True)
class Scored:
    """One run's chosen model at clip level: targets of every clip it learnt from, probabilities where scored."""

    run_id: str
    model: str
    kind: str
    class_names: list[str]
    label_list: dict[str, Any] | None
    targets: dict[str, tuple[int, ...]]  # clip id -> class indices
    proba: dict[str, np.ndarray]  # clip id -> probabilities (only the clips it was scored on)


def _targets(kind: str, y: np.ndarray) -> list[tuple[int, ...]]:
    """Each clip's classes as indices (one for single-label tasks), comparable across runs."""
    if kind == "multi_label":
        return [tuple(int(j) for j in np.flatnonzero(row)) for row in np.asarray(y)]
    return [(int(v),) for v in np.asarray(y)]


def scored(run_id: str, model: str, kind: str, class_names: list[str], label_list: dict[str, Any] | None,
           ids: np.ndarray, y: np.ndarray, predictions: dict[str, Any]) -> Scored:
    """This run's chosen model: ``ids``/``y`` every clip learnt from; ``predictions`` the report's
    (``report.clip_predictions``), scored clips only."""
    proba = np.asarray(predictions["proba"][model], dtype=float)
    return Scored(run_id, model, kind, list(class_names), label_list,
                  dict(zip(map(str, ids), _targets(kind, y))), dict(zip(predictions["clip_id"], proba)))


def write_predictions(report_uri: str, run: Scored) -> str:
    """``report/predictions.parquet``: clip_id, target (class indices), proba (null where not scored)."""
    ids = list(run.targets)
    table = pa.table({"clip_id": pa.array(ids, pa.string()),
                      "target": pa.array([list(run.targets[c]) for c in ids], pa.list_(pa.int32())),
                      "proba": pa.array([None if c not in run.proba else run.proba[c].tolist() for c in ids],
                                        pa.list_(pa.float32()))})
    meta = {"run_id": run.run_id, "model": run.model, "kind": run.kind, "class_names": run.class_names,
            "label_list": run.label_list}
    uri = join(report_uri, PREDICTIONS)
    write_parquet(table.replace_schema_metadata({_META: json.dumps(meta).encode()}), uri)
    return uri


def read_previous(report_uri: str) -> Scored | None:
    """The previous run's chosen model from its ``predictions.parquet``; None when there is none (a first run,
    or one made before the file existed) or it cannot be read (logged: the new run does not depend on it)."""
    fs, path = filesystem(join(report_uri, PREDICTIONS))
    try:
        table = pq.read_table(io.BytesIO(fs.cat_file(path)))
        meta = json.loads(table.schema.metadata[_META])
    except FileNotFoundError:
        return None
    except (OSError, pa.ArrowException, KeyError, TypeError, ValueError) as exc:
        log.warning("the previous model's predictions %s cannot be read (%s): no comparison", path, exc)
        return None
    ids, proba = table["clip_id"].to_pylist(), table["proba"].to_pylist()
    return Scored(meta["run_id"], meta["model"], meta["kind"], meta["class_names"], meta.get("label_list"),
                  {c: tuple(t) for c, t in zip(ids, table["target"].to_pylist())},
                  {c: np.asarray(p, dtype=float) for c, p in zip(ids, proba) if p is not None})


def figure(kind: str, y: np.ndarray, proba: np.ndarray) -> float | None:
    """The model-selection metric (ROC AUC; mAP for multi-label), None where a class is missing (undefined)."""
    if kind == "multi_label":
        return val_score(kind, y, proba) if ((y.sum(axis=0) > 0) & (y.sum(axis=0) < len(y))).any() else None
    return headline(kind, y, proba)["roc_auc"]


def metric_name(kind: str) -> str:
    return "mAP" if kind == "multi_label" else "ROC AUC"


def _span(draws: list[float], replicates: int) -> list[float] | None:
    """A 95 % percentile interval, None when fewer than half the replicates defined the figure."""
    return [float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5))] if len(draws) >= replicates / 2 \
        else None


def paired(kind: str, y: np.ndarray, before: np.ndarray, after: np.ndarray, units: np.ndarray, seed: int,
           replicates: int = BOOTSTRAP_REPLICATES) -> dict[str, Any]:
    """Both models' figure on the same clips and their difference (after - before), with intervals from one
    bootstrap over ``units`` (whole groups) that scores both models on each draw."""
    out: dict[str, Any] = {"previous": figure(kind, y, before), "new": figure(kind, y, after)}
    out["difference"] = None if None in (out["previous"], out["new"]) else out["new"] - out["previous"]
    if y.size * before.shape[1] > MAX_BOOTSTRAP_CELLS or out["difference"] is None:
        return {**out, "previous_interval": None, "new_interval": None, "difference_interval": None, "replicates": 0}
    draws: dict[str, list[float]] = {"previous": [], "new": [], "difference": []}
    for rows in resample_groups(units, replicates, seed):
        a, b = figure(kind, y[rows], before[rows]), figure(kind, y[rows], after[rows])
        if a is not None and b is not None:
            draws["previous"].append(a)
            draws["new"].append(b)
            draws["difference"].append(b - a)
    return {**out, **{f"{k}_interval": _span(v, replicates) for k, v in draws.items()}, "replicates": replicates}


def _truth(kind: str, k: int, targets: list[tuple[int, ...]]) -> np.ndarray:
    if kind == "multi_label":
        return np.array([[int(j in t) for j in range(k)] for t in targets], dtype=np.int64).reshape(-1, k)
    return np.array([t[0] for t in targets], dtype=np.int64)


def compare(new: Scored, previous: Scored | None, units: dict[str, str], seed: int) -> dict[str, Any] | None:
    """The report's "What the labels changed" (see the module docstring); None when the run used the table's
    labels and the output held no earlier chosen model. ``units``: clip id -> its group, for the bootstrap."""
    if previous is None and new.label_list is None:
        return None
    out: dict[str, Any] = {"table": new.label_list, "model": new.model, "metric": metric_name(new.kind),
                           "previous": None, "unchanged": None, "note": None}
    if previous is None:
        out["note"] = "no earlier chosen model in this output to compare with"
        return out
    out["previous"] = {"run_id": previous.run_id, "model": previous.model, "label_list": previous.label_list,
                       "clips": len(previous.targets)}
    if (previous.kind, previous.class_names) != (new.kind, new.class_names):
        out["note"] = (f"the previous model ({previous.run_id}) is of another task "
                       f"({previous.kind}: {', '.join(previous.class_names)}): no comparison")
        return out
    both = [c for c in new.targets if c in previous.targets]
    same = [c for c in both if new.targets[c] == previous.targets[c]]
    out["previous"].update(both=len(both), changed=len(both) - len(same),
                           only_new=len(new.targets) - len(both), only_previous=len(previous.targets) - len(both))
    rows = [c for c in same if c in new.proba and c in previous.proba]
    if not rows:
        out["note"] = "no clip was scored by both models with the same label"
        return out
    y = _truth(new.kind, len(new.class_names), [new.targets[c] for c in rows])
    result = paired(new.kind, y, np.stack([previous.proba[c] for c in rows]), np.stack([new.proba[c] for c in rows]),
                    np.array([units.get(c, c) for c in rows], dtype=object), seed)
    out["unchanged"] = {"clips": len(rows), **result}
    if result["difference"] is None:
        out["note"] = f"{out['metric']} is undefined on the unchanged clips (a class is missing among them)"
    return out


def comparison_line(cmp: dict[str, Any] | None) -> list[str]:
    """The console's one line: labels changed against the table and the previous run, and both figures."""
    if not cmp:
        return []
    parts = []
    if cmp["table"]:
        parts.append(f"{cmp['table']['changed']} clips against the table")
    prev = cmp["previous"]
    if prev and "changed" in prev:
        parts.append(f"{prev['changed']} against the previous model's (run {prev['run_id']})")
    text = "  what the labels changed: " + (", ".join(parts) or "nothing counted")
    u = cmp["unchanged"]
    if u and u["difference"] is not None:
        text += (f"; {cmp['metric']} on the {u['clips']} unchanged clips "
                 f"{u['previous']:.3f}{_ci(u['previous_interval'])} ({prev['model']}, run {prev['run_id']}) -> "
                 f"{u['new']:.3f}{_ci(u['new_interval'])} "
                 f"({cmp['model']}), difference {u['difference']:+.3f}{_ci(u['difference_interval'], '+.3f')}")
    if cmp["note"]:
        text += f"; {cmp['note']}"
    return [text]


def _ci(interval: list[float] | None, fmt: str = ".3f") -> str:
    return "" if not interval else f" [{interval[0]:{fmt}}, {interval[1]:{fmt}}]"
