"""Reading the feature table for training: groups, targets, and matrices (Ray Data).

A *feature group* is one vector column of ``features/``: ``indices_<signal>``,
``mps_<signal>`` or an embedder's clip vector (``vggish``, ``yamnet``,
``panns``). Score columns (``*_scores``) are model outputs, not features.

The table is read in two passes of Ray Data: first the small columns
(``clip_id``, ``labels``, ``group``) that decide targets and splits, then the
vectors, streamed in batches so that the driver never holds the raw table as
Arrow, only the float32 matrices it asked for (or, when those would not fit,
PCA statistics; see ``preprocess``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from acoustic_env.audio.manifest import read_audioset_csv
from acoustic_env.audioset.tasks import Task
from acoustic_env.config import ConfigError
from acoustic_env.storage import filesystem, is_local, join, list_parts
from acoustic_env.table import read_metadata
from acoustic_env.train.config import SIGNALS, SOURCES

META_COLUMNS = ("clip_id", "labels", "group")


def source_of(column: str) -> str | None:
    """The source of a feature column (``mps_fg`` → ``mps``), None for anything else."""
    if column in SOURCES:
        return column
    head, _, signal = column.rpartition("_")
    return head if head in ("indices", "mps") and signal in SIGNALS else None


def signal_of(column: str) -> str | None:
    return column.rpartition("_")[2] if source_of(column) in ("indices", "mps") else None


def features_dir(uri: str) -> str:
    """Accept the extract output root or its ``features/`` directory."""
    for candidate in (join(uri, "features"), uri):
        if list_parts(candidate):
            return candidate
    raise ConfigError(f"features: no Parquet parts under {uri} or {join(uri, 'features')}")


def read_schema(directory: str) -> pa.Schema:
    """The schema (with the acoustic-env metadata) of the first part."""
    part = list_parts(directory)[0]
    fs, path = filesystem(part)
    with fs.open(path, "rb") as fh:
        return pq.read_schema(fh)


def available_groups(schema: pa.Schema) -> list[str]:
    """Feature columns of the table, in a fixed order (sources, then signals)."""
    present = {f.name for f in schema if pa.types.is_fixed_size_list(f.type) and source_of(f.name)}
    order = [f"{s}_{g}" for s in ("indices", "mps") for g in SIGNALS] + ["vggish", "yamnet", "panns"]
    return [c for c in order if c in present]


def select_groups(available: list[str], requested: tuple[str, ...], signals: tuple[str, ...]) -> list[str]:
    """Expand sources to their columns, keep the requested signals; ConfigError if nothing is left."""
    wanted = set(available) if not requested else {
        c for c in available for r in requested if c == r or source_of(c) == r}
    chosen = [c for c in available if c in wanted and (signal_of(c) is None or signal_of(c) in signals)]
    missing = [r for r in requested if not any(c == r or source_of(c) == r for c in available)]
    if missing:
        raise ConfigError(f"groups: not in the feature table (it has {', '.join(available) or 'none'}), "
                          f"got {','.join(missing)}")
    if not chosen:
        raise ConfigError(f"groups: no feature group left after selecting signals {','.join(signals)}, "
                          f"got {','.join(requested) or 'all'}")
    return chosen


@dataclass(frozen=True)
class GroupInfo:
    """What the metadata says about a group: its width, and names or grid axes if any."""

    name: str
    dim: int
    names: tuple[str, ...] | None = None
    grid: tuple[int, int] | None = None
    axes: dict[str, list[float]] | None = None

    def feature_names(self) -> list[str]:
        """One readable name per input value (index names, MPS grid cells, or positions)."""
        if self.names and len(self.names) == self.dim:
            return [f"{self.name}:{n}" for n in self.names]
        if self.grid and self.axes:
            wf, wt = self.axes["wf_cycles_per_hz"], self.axes["wt_hz"]
            return [f"{self.name}[wf={1000 * f:.2f}/kHz,wt={t:+.0f}Hz]" for f in wf for t in wt]
        return [f"{self.name}:{i}" for i in range(self.dim)]


def group_infos(schema: pa.Schema, groups: list[str]) -> list[GroupInfo]:
    meta = read_metadata(schema).get("columns", {})
    out = []
    for g in groups:
        m = meta.get(g, {})
        shape = m.get("shape") or []
        grid = (int(shape[0]), int(shape[1])) if len(shape) == 2 else None
        out.append(GroupInfo(name=g, dim=schema.field(g).type.list_size,
                             names=tuple(m["names"]) if m.get("names") else None, grid=grid, axes=m.get("axes")))
    return out


def ray_dataset(directory: str, columns: list[str]) -> Any:
    """A Ray Dataset over the parts, reading only ``columns``, through the same fsspec layer as the writer."""
    import pyarrow.fs as pafs
    import ray.data

    parts = [filesystem(p)[1] for p in list_parts(directory)]
    fs = pafs.LocalFileSystem() if is_local(directory) else pafs.PyFileSystem(pafs.FSSpecHandler(filesystem(directory)[0]))
    return ray.data.read_parquet(parts, filesystem=fs).select_columns(columns)


def _with_group(table: pa.Table) -> pa.Table:
    if "group" not in table.column_names:
        table = table.append_column("group", pa.nulls(table.num_rows, pa.string()))
    return table


def read_meta(directory: str, schema: pa.Schema) -> pa.Table:
    """clip_id, labels and group (null when the table has none) of every row, sorted by clip_id."""
    cols = [c for c in META_COLUMNS if c in schema.names]
    table = pa.concat_tables(list(ray_dataset(directory, cols).iter_batches(batch_format="pyarrow", batch_size=None)))
    return _with_group(table).sort_by("clip_id")


def read_all(directory: str, schema: pa.Schema, groups: list[GroupInfo]) -> tuple[pa.Table, dict[str, np.ndarray]]:
    """One pass for tables that fit in memory: the meta columns and every group's matrix, sorted by clip_id.

    Each batch's vectors become numpy as they arrive, so the Arrow copy of the
    table is never held whole.
    """
    cols = [c for c in META_COLUMNS if c in schema.names]
    metas, mats = [], {g.name: [] for g in groups}
    for batch in ray_dataset(directory, cols + [g.name for g in groups]).iter_batches(batch_format="pyarrow",
                                                                                        batch_size=4096):
        metas.append(batch.select(cols))
        for g in groups:
            mats[g.name].append(fixed_size_to_numpy(batch[g.name], g.dim))
    meta = _with_group(pa.concat_tables(metas))
    order = np.argsort(meta["clip_id"].to_numpy(zero_copy_only=False), kind="stable")
    return meta.take(pa.array(order)), {k: np.concatenate(v)[order] for k, v in mats.items()}


def n_rows(directory: str) -> int:
    """Rows in the table, from the parts' footers."""
    total = 0
    for part in list_parts(directory):
        fs, path = filesystem(part)
        with fs.open(path, "rb") as fh:
            total += pq.read_metadata(fh).num_rows
    return total


@dataclass(frozen=True)
class Targets:
    """Rows with a target (positions into the sorted meta table) and the target itself.

    ``y``: class index per row (single-label) or an [n, classes] 0/1 matrix (multi-label).
    ``strata``: one string per row for stratified splitting.
    """

    rows: np.ndarray
    clip_ids: np.ndarray
    groups: np.ndarray | None
    y: np.ndarray
    strata: np.ndarray
    counts: dict[str, int]


def make_targets(meta: pa.Table, task: Task) -> Targets:
    """Single-label: clips with exactly one class; multi-label: every clip (no class = all zeros)."""
    labels = meta["labels"].to_pylist()
    if task.kind == "single_label":
        assigned = [task.assign(ls or []) for ls in labels]
        rows = np.array([i for i, a in enumerate(assigned) if a is not None], dtype=np.int64)
        y = np.array([assigned[i] for i in rows], dtype=np.int64)
        strata = y.astype(str)
    else:
        rows = np.arange(meta.num_rows, dtype=np.int64)
        y = np.array([task.multi_hot(ls or []) for ls in labels], dtype=np.float32).reshape(len(rows), task.n_classes)
        strata = np.array(["".join(map(str, r)) for r in y.astype(int)])
    groups_col = meta["group"].to_numpy(zero_copy_only=False)
    has_groups = meta["group"].null_count < meta.num_rows
    groups = None
    if has_groups:
        # A clip without a group is its own group: it cannot leak into another split.
        groups = np.array([g if g is not None else f"\0{cid}" for g, cid in
                           zip(groups_col[rows], meta["clip_id"].to_numpy(zero_copy_only=False)[rows])], dtype=object)
    counts = {**task.summarize([ls or [] for ls in labels]), "rows": meta.num_rows, "with_target": int(len(rows))}
    return Targets(rows=rows, clip_ids=meta["clip_id"].to_numpy(zero_copy_only=False)[rows], groups=groups, y=y,
                   strata=strata, counts=counts)


def read_test_list(uri: str) -> set[str]:
    """Clip ids from an AudioSet segment CSV (``<YTID>_<start ms>``), a CSV with ``clip_id``, or one id per line."""
    import fsspec

    try:
        with fsspec.open(uri, "rt", encoding="utf-8") as fh:
            head = fh.readline()
            text = head + fh.read()
    except (OSError, FileNotFoundError) as exc:
        raise ConfigError(f"test_list: cannot read {uri}: {exc}") from None
    if head.startswith("#"):
        return {f"{r['YTID']}_{int(round(r['start_s'] * 1000))}" for r in read_audioset_csv(uri)}
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if lines and "," in lines[0]:
        header = [h.strip() for h in lines[0].split(",")]
        if "clip_id" not in header:
            raise ConfigError(f"test_list: a CSV needs a clip_id column, got columns {header}")
        k = header.index("clip_id")
        return {ln.split(",")[k].strip() for ln in lines[1:]}
    return set(lines)


def fixed_size_to_numpy(column: pa.ChunkedArray | pa.Array, dim: int) -> np.ndarray:
    """A fixed-size-list column as a float32 [n, dim] matrix, a null vector as a row of NaN."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    valid = ~np.asarray(arr.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    out = np.full((len(arr), dim), np.nan, dtype=np.float32)
    if valid.any():
        out[valid] = np.asarray(arr.flatten().to_numpy(zero_copy_only=False), dtype=np.float32).reshape(-1, dim)
    return out


def stream_features(directory: str, groups: list[GroupInfo], position: dict[str, int],
                    batch_rows: int = 4096) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
    """Yield (positions, {group: matrix}) batches for the clips in ``position``; other rows are skipped."""
    ds = ray_dataset(directory, ["clip_id", *[g.name for g in groups]])
    for batch in ds.iter_batches(batch_format="pyarrow", batch_size=batch_rows):
        ids = batch["clip_id"].to_pylist()
        keep = np.array([i for i, cid in enumerate(ids) if cid in position], dtype=np.int64)
        if not len(keep):
            continue
        batch = batch.take(pa.array(keep))
        pos = np.array([position[cid] for cid in batch["clip_id"].to_pylist()], dtype=np.int64)
        yield pos, {g.name: fixed_size_to_numpy(batch[g.name], g.dim) for g in groups}


def read_matrices(directory: str, groups: list[GroupInfo], clip_ids: np.ndarray) -> dict[str, np.ndarray]:
    """All selected groups for ``clip_ids`` (in that order), in memory."""
    position = {cid: i for i, cid in enumerate(clip_ids)}
    out = {g.name: np.full((len(clip_ids), g.dim), np.nan, dtype=np.float32) for g in groups}
    for pos, mats in stream_features(directory, groups, position):
        for name, m in mats.items():
            out[name][pos] = m
    return out


def raw_bytes(n_rows: int, groups: list[GroupInfo]) -> int:
    return 4 * n_rows * sum(g.dim for g in groups)
