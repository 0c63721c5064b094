"""The feature table as a design matrix and the task's targets, for the audit.

Reads the extract job's ``features/`` Parquet parts (local or object storage),
keeps the clip facts the review needs (``uri``, segment times, labels, group),
concatenates the chosen feature-vector columns into one float32 matrix and
turns each clip's AudioSet labels into the task's target.

Clips a single-label task cannot score (no class, or both classes: ambiguous)
are left out and counted, never guessed; the same rule as training.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from acoustic_env.audioset.tasks import Task
from acoustic_env.audit.config import AuditError
from acoustic_env.config import ConfigError
from acoustic_env.storage import filesystem, join, list_parts, read_part, read_parts

CLIP_COLUMNS = {"clip_id": pa.string(), "uri": pa.string(), "start_s": pa.float64(), "end_s": pa.float64(),
                "labels": pa.list_(pa.string()), "group": pa.string()}


@dataclass(frozen=True)
class AuditData:
    """The clips to audit, in table order.

    ``targets`` is a class index per clip (single-label) or an ``(n, K)``
    0/1 matrix (multi-label). ``groups`` always has a value: a clip without a
    ``group`` is its own group, so grouped folds never merge unrelated clips.
    """

    clips: pa.Table  # CLIP_COLUMNS, one row per audited clip
    X: np.ndarray  # (n, d) float32
    feature_columns: dict[str, int]  # column -> width, in matrix order
    targets: np.ndarray
    groups: np.ndarray  # (n,) object (str)
    has_groups: bool  # the table carried at least one non-null group
    excluded: dict[str, int] = field(default_factory=dict)


def read_feature_table(uri: str) -> pa.Table:
    """A feature table from a Parquet file, a ``features/`` directory, or an extract output directory."""
    if uri.endswith(".parquet"):
        fs, path = filesystem(uri)
        if not fs.isfile(path):
            raise AuditError(f"features: no such Parquet file: {uri}")
        return read_part(uri)
    directory = join(uri, "features") if list_parts(join(uri, "features")) else uri
    table = read_parts(directory)
    if table is None:
        raise AuditError(f"features: no Parquet parts in {uri} (nor in {join(uri, 'features')})")
    return table


def vector_columns(schema: pa.Schema) -> dict[str, int]:
    """Every fixed-size float vector column of the table and its width."""
    return {f.name: f.type.list_size for f in schema
            if pa.types.is_fixed_size_list(f.type) and pa.types.is_floating(f.type.value_type)}


def select_columns(available: dict[str, int], groups: tuple[str, ...]) -> dict[str, int]:
    """The feature columns to use: ``groups`` entries are column names or prefixes (``mps`` → ``mps_*``).

    With no groups, every vector except ``*_scores`` (AudioSet tagger outputs,
    trained on the labels under audit).
    """
    if not groups:
        chosen = {n: d for n, d in available.items() if not n.endswith("_scores")}
    else:
        chosen = {}
        for g in groups:
            hits = {n: d for n, d in available.items() if n == g or n.startswith(g + "_")}
            if not hits:
                raise ConfigError(f"feature_groups: no feature column matches {g!r} "
                                  f"(available: {', '.join(sorted(available)) or 'none'}), got {list(groups)!r}")
            chosen.update(hits)
    if not chosen:
        raise AuditError(f"features: the table has no feature-vector columns to audit with (columns: {sorted(available)})")
    return chosen


def _matrix(table: pa.Table, columns: dict[str, int]) -> np.ndarray:
    blocks = []
    for name, width in columns.items():
        values = table[name].combine_chunks().flatten().to_numpy(zero_copy_only=False)
        blocks.append(values.reshape(table.num_rows, width))
    X = np.concatenate(blocks, axis=1).astype(np.float32, copy=False)
    return np.nan_to_num(X, nan=0.0, posinf=0.0, neginf=0.0)


def load_audit_data(uri: str, task: Task, feature_groups: tuple[str, ...] = ()) -> AuditData:
    """Read the table, select features and targets; rows without features or (single-label) target are counted out."""
    table = read_feature_table(uri)
    missing = [c for c in ("clip_id", "uri", "labels") if c not in table.column_names]
    if missing:
        raise AuditError(f"features: the table lacks column(s) {missing}; is {uri} an extract output?")
    columns = select_columns(vector_columns(table.schema), feature_groups)
    keep = np.ones(table.num_rows, dtype=bool)
    for name in columns:
        keep &= table[name].is_valid().to_numpy(zero_copy_only=False)
    excluded = {"missing_features": int((~keep).sum())}
    labels = [lab or [] for lab in table["labels"].to_pylist()]
    if task.kind == "single_label":
        assigned = np.array([-1 if (a := task.assign(lab)) is None else a for lab in labels])
        hits = np.array([len(task.memberships(lab)) for lab in labels])
        excluded["no_class"] = int(((hits == 0) & keep).sum())
        excluded["ambiguous"] = int(((hits > 1) & keep).sum())
        keep &= assigned >= 0
    table = table.filter(pa.array(keep))
    if table.num_rows == 0:
        raise AuditError(f"features: no clip of {uri} has both feature vectors and a target of task {task.name!r}")
    clips = pa.table({c: table[c].cast(t) if c in table.column_names else pa.nulls(table.num_rows, t)
                      for c, t in CLIP_COLUMNS.items()})
    kept_labels = [lab or [] for lab in clips["labels"].to_pylist()]
    if task.kind == "single_label":
        targets = np.array([task.assign(lab) for lab in kept_labels], dtype=np.int64)
    else:
        targets = np.array([task.multi_hot(lab) for lab in kept_labels], dtype=np.int64).reshape(-1, task.n_classes)
    group_col = clips["group"]
    has_groups = bool(pc.any(group_col.is_valid()).as_py())
    groups = np.array([g if g is not None else f"clip:{c}" for g, c in
                       zip(group_col.to_pylist(), clips["clip_id"].to_pylist())], dtype=object)
    return AuditData(clips=clips, X=_matrix(table, columns), feature_columns=columns, targets=targets,
                     groups=groups, has_groups=has_groups, excluded=excluded)
