"""The feature table: its schemas, its metadata, and the one reader every job uses.

``features/`` holds one row per clip that succeeded: the manifest's columns, decode
facts, and feature vectors as Arrow fixed-size lists of float32 whose names, shapes,
axes and provenance live in the schema metadata under ``acoustic_env``.
``errors/`` holds one row per clip that failed (``ERRORS_SCHEMA``).

``read_features`` is how train, audit, annotate and a saved model read it, so that
they agree on three rules:

- **Columns.** A feature group is a fixed-size float vector column, except
  class scores (``*_scores``, and ``*_scores_fg`` of a separated signal: tagger
  outputs trained on the AudioSet labels a task is built from: they would echo
  the labels back) and columns whose metadata says
  ``weights: random`` (they carry no pretrained knowledge) unless
  ``include_random_weights``. Nothing here names an embedder: a new vector column
  is a feature group as soon as it is written.
- **Rows.** A row with a null vector or a non-finite value in a chosen group is left
  out and counted: the extractor stores undefined values as 0.0, so either means a
  broken row, and no job should guess a value for it. A single-label task also
  leaves out (and counts) clips with no class or with several (ambiguous).
- **Groups.** A clip without a ``group`` is its own group (``clip:<clip_id>``), so
  grouped splits and folds never put it with unrelated clips.
- **Each clip once.** A table where two rows share a ``clip_id`` is refused, naming a clip and its files:
  which row a job used would depend on the order the parts are read in.
- **Its own parts only.** In ``features/`` a table is the Parquet files runs wrote (``part-*``:
  :func:`table_parts`), as the extract resume takes them (``layout.own_parts``); any other
  Parquet file there (a ``--save`` aimed at it, a file copied in) is left out, not read as rows.

Rows come sorted by ``clip_id``, whatever the parts' order, so a job is reproducible.
``selection`` is the first half of the read (columns, and rows with a target), which the
dry run reports without reading a vector.
"""

from __future__ import annotations

import json
import os
import posixpath
from collections.abc import Collection, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from acoustic_env.vocabulary.tasks import Task, load_task
from acoustic_env.config import EMBEDDERS, SIGNALS, ConfigError
from acoustic_env.storage import filesystem, is_local, join, list_parts

METADATA_KEY = b"acoustic_env"

ERRORS_SCHEMA = pa.schema([
    ("clip_id", pa.string()),
    ("uri", pa.string()),
    ("stage", pa.string()),
    ("error_type", pa.string()),
    ("message", pa.string()),
    ("run_id", pa.string()),
    ("time", pa.timestamp("us", tz="UTC")),
])

#: The clip facts a FeatureSet keeps (null where the table lacks the column).
CLIP_COLUMNS = pa.schema([("clip_id", pa.string()), ("uri", pa.string()), ("start_s", pa.float64()),
                          ("end_s", pa.float64()), ("labels", pa.list_(pa.string())), ("group", pa.string())])
RANDOM = "random"
#: The table's folder in an extract output, and how the name of every part a run writes there begins
#: (``layout.part_name``): any other Parquet file in it is not the table's.
FEATURES_DIR = "features"
PART_PREFIX = "part-"
#: Suffix of a tagger's class-score column (``panns_scores``; ``panns_scores_fg`` of the foreground): an output,
#: never a feature.
SCORES_SUFFIX = "_scores"
# Why a vector column is not a feature group (FeatureSet.excluded["columns"]).
SCORES_REASON = "tagger scores (the pretrained network's own classes: AudioSet's, BirdNET's species)"
RANDOM_REASON = "random weights"
UNREQUESTED_REASON = "not in feature_groups"
SIGNAL_REASON = "signal not selected"


def vector_type(length: int) -> pa.DataType:
    return pa.list_(pa.float32(), length)


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


def metadata_json(meta: dict[str, Any]) -> dict[bytes, bytes]:
    return {METADATA_KEY: json.dumps(meta, sort_keys=True).encode()}


def read_metadata(schema: pa.Schema) -> dict[str, Any]:
    """The acoustic-env metadata stored in a features/ part's schema."""
    raw = (schema.metadata or {}).get(METADATA_KEY)
    return json.loads(raw) if raw else {}


def signal_of(column: str) -> str | None:
    """``mps_fg`` → ``fg``; None for a column that is not per signal (``<source>_<signal>``)."""
    head, _, tail = column.rpartition("_")
    return tail if head and tail in SIGNALS else None


def source_of(column: str) -> str:
    """``mps_fg`` → ``mps``, ``panns_fg`` → ``panns``; any other column (``panns``: an embedder's vector of the
    raw signal) is its own source."""
    return column.rpartition("_")[0] if signal_of(column) else column


def embedding_column(column: str, signal: str) -> str:
    """The table column of an embedder's output ``column`` (``panns``, ``panns_scores``) for ``signal``.

    The raw signal's keeps the output's name (``panns``: the tables, models and tests written before
    per-signal embeddings read on); a separated signal's is ``<column>_<signal>`` (``panns_fg``,
    ``panns_scores_bg``), so that :func:`source_of` and :func:`signal_of` read embedder and signal back.
    """
    return column if signal == "raw" else f"{column}_{signal}"


def embeddings_needed(columns: Collection[str]) -> dict[str, tuple[str, ...]]:
    """Embedder → the signals whose embeddings ``columns`` hold (in ``SIGNALS`` order), for the embedders they name.

    ``["indices_raw", "yamnet", "yamnet_fg"]`` → ``{"yamnet": ("raw", "fg")}``: what a model trained on
    those columns needs extract (``embedders``, ``embed_signals``) or the in-process path to compute.
    """
    found: dict[str, set[str]] = {}
    for column in columns:
        source = source_of(column).removesuffix(SCORES_SUFFIX)  # panns_scores_fg: panns's too
        if source in EMBEDDERS:
            found.setdefault(source, set()).add(signal_of(column) or "raw")
    return {name: tuple(s for s in SIGNALS if s in signals) for name, signals in found.items()}


def extract_settings(columns: Collection[str]) -> dict[str, Any]:
    """The extract settings that write ``columns``' embeddings: ``embedders`` (in the columns' order) and
    ``embed_signals`` (every signal any of them needs; ``raw`` alone when none does)."""
    needed = embeddings_needed(columns)
    signals = tuple(s for s in SIGNALS if any(s in v for v in needed.values())) or ("raw",)
    return {"embedders": list(needed), "embed_signals": signals}


def is_scores(column: str) -> bool:
    """A tagger's class scores (``panns_scores``, ``panns_scores_fg``): an output, never a feature."""
    return source_of(column).endswith(SCORES_SUFFIX)


def vectors_to_numpy(column: pa.ChunkedArray | pa.Array, dim: int) -> np.ndarray:
    """A fixed-size-list column as a float32 [n, dim] matrix, a null vector as a row of NaN."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    valid = ~np.asarray(arr.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    out = np.full((len(arr), dim), np.nan, dtype=np.float32)
    if valid.any():  # flatten() skips null vectors and honours slice offsets
        out[valid] = np.asarray(arr.flatten().to_numpy(zero_copy_only=False), dtype=np.float32).reshape(-1, dim)
    return out


# --- time-frequency images (the log-mel front end) ----------------------------------

#: One image per row: ``codes`` (uint8, row-major bands × frames), ``frames``, and the dB scale
#: ``low + step × code``. 8 bits per cell is half of float16: a 64-band, 100-frames-a-second image of a
#: 10-s clip is 64 kB a row, and the quantisation step (a clip's dB range / 255, 0.3 dB over an 80-dB range)
#: is far below what the masks and shifts of augmentation change. Not a fixed-size float vector, so no
#: reader takes it for a feature group.
IMAGE_TYPE = pa.struct([("codes", pa.binary()), ("frames", pa.int32()), ("low", pa.float32()),
                        ("step", pa.float32())])


def encode_images(images: Sequence[np.ndarray | None]) -> pa.StructArray:
    """[bands, frames] float images (dB) as an ``IMAGE_TYPE`` column, each quantised to 8 bits on its own range."""
    rows: list[dict[str, Any] | None] = []
    for image in images:
        if image is None:
            rows.append(None)
            continue
        image = np.asarray(image, dtype=np.float32)
        low, high = float(image.min()), float(image.max())
        step = (high - low) / 255.0 or 1.0  # a constant image: every code 0
        codes = np.rint((image - low) / step).clip(0, 255).astype(np.uint8)
        rows.append({"codes": codes.tobytes(), "frames": image.shape[1], "low": low, "step": step})
    return pa.array(rows, type=IMAGE_TYPE)


def decode_images(column: pa.Array | pa.ChunkedArray) -> list[np.ndarray | None]:
    """An ``IMAGE_TYPE`` column back as float32 [bands, frames] images (None for a null row)."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    out: list[np.ndarray | None] = []
    for row in arr.to_pylist():
        if row is None:
            out.append(None)
            continue
        codes = np.frombuffer(row["codes"], dtype=np.uint8).reshape(-1, row["frames"])
        out.append(np.float32(row["low"]) + np.float32(row["step"]) * codes.astype(np.float32))
    return out


def image_rows(features: FeatureSet, column: str) -> list[np.ndarray | None]:
    """The images of ``column`` for the clips of ``features``, in their order (None where a clip has none).

    Read whole into this process: the caller holds a few thousand clips (8 bits a cell, 64 kB a 10-s image).
    """
    read = features.table.dataset().to_table(columns=["clip_id", column])
    lookup = dict(zip(read["clip_id"].to_pylist(), decode_images(read[column])))
    return [lookup.get(c) for c in features.ids]


# --- the table: its parts, unified schema and metadata -------------------------------

@dataclass(frozen=True)
class TableInfo:
    """Where a feature table's parts are, their unified schema and their merged column metadata.

    Parts written by different runs may carry different columns (a missing one reads
    as null) and different provenance: a column is ``random`` if any part says so.
    """

    source: str
    parts: tuple[str, ...]
    schema: pa.Schema
    columns: dict[str, dict[str, Any]]  # metadata per column (names, shape, axes, source, ...)
    weights: dict[str, str]  # column -> weights id (a checksum or "random"), where known

    def vector_columns(self) -> dict[str, int]:
        """Every fixed-size float vector column and its width, in schema order."""
        return {f.name: f.type.list_size for f in self.schema
                if pa.types.is_fixed_size_list(f.type) and pa.types.is_floating(f.type.value_type)}

    def files(self) -> tuple[list[str], pafs.FileSystem]:
        """The parts' paths and the Arrow filesystem that reads them (the writer's fsspec layer): what an Arrow
        dataset here, or Ray Data's Parquet reader in a worker (``distributed.images``), opens."""
        fs, _ = filesystem(self.parts[0])
        arrow_fs = pafs.LocalFileSystem() if is_local(self.parts[0]) else pafs.PyFileSystem(pafs.FSSpecHandler(fs))
        return [filesystem(p)[1] for p in self.parts], arrow_fs

    def dataset(self) -> ds.Dataset:
        """The parts as one Arrow dataset, read through the same fsspec layer as the writer."""
        paths, arrow_fs = self.files()
        return ds.dataset(paths, schema=self.schema, format="parquet", filesystem=arrow_fs)


def _part_schema(part: str) -> pa.Schema:
    fs, path = filesystem(part)
    with fs.open(path, "rb") as fh:
        return pq.read_schema(fh)


def _column_weights(meta: dict[str, Any]) -> dict[str, str]:
    """Weights per column: the column's own entry, else the run's weights for the embedder of that name."""
    out = {k: v for k, v in meta.get("weights", {}).items() if v}
    out.update({c: m["weights"] for c, m in meta.get("columns", {}).items() if m.get("weights")})
    return out


def check_table_source(source: str, field: str = "features") -> None:
    """A local ``source`` that is a file must be a Parquet file: a clip list or a CSV given for a table is one
    line naming ``field``, before a job makes its output, not an error from listing a folder below a file."""
    if is_local(source) and os.path.isfile(source.removeprefix("file://")) and not source.endswith(".parquet"):
        raise ConfigError(f"{field}: {source} is a file, not a feature table: give an extract output, its "
                          "features/ directory or a .parquet file")


def own_files(parts: list[str]) -> list[str]:
    """Of the Parquet files listed in a table's ``features/``, the parts runs wrote (``part-*``)."""
    return [p for p in parts if posixpath.basename(p).startswith(PART_PREFIX)]


def table_parts(source: str) -> list[str]:
    """The parts of the table in ``source``: in its ``features/`` (or in ``source`` named ``features``), the
    Parquet files runs wrote (``part-*``), as the extract resume counts them; elsewhere every Parquet file of
    ``source`` (a folder of one's own). One line when ``features/`` holds Parquet files but no part."""
    folder = join(source, FEATURES_DIR)
    found = list_parts(folder)
    if not found:
        folder, found = source, list_parts(source)
        if posixpath.basename(source.rstrip("/")) != FEATURES_DIR:
            return found
    own = own_files(found)
    if found and not own:
        raise ConfigError(f"features: {folder} holds no part of a table ({PART_PREFIX}*.parquet, as extract writes "
                          f"them), only {len(found)} other Parquet file(s) (e.g. {posixpath.basename(found[0])}), "
                          "which a table's readers leave out")
    return own


def open_table(source: str) -> TableInfo:
    """An extract output directory, its ``features/`` directory, or one Parquet file (local or remote)."""
    check_table_source(source)
    if source.endswith(".parquet"):
        fs, path = filesystem(source)
        if not fs.isfile(path):
            raise ConfigError(f"features: no such Parquet file: {source}")
        parts = [source]
    else:
        parts = table_parts(source)
    if not parts:
        raise ConfigError(f"features: no Parquet parts in {source} (nor in {join(source, 'features')})")
    with ThreadPoolExecutor(8) as pool:  # one footer per part: worth overlapping on object storage
        schemas = list(pool.map(_part_schema, parts))
    columns: dict[str, dict[str, Any]] = {}
    weights: dict[str, str] = {}
    for schema in schemas:
        meta = read_metadata(schema)
        for name, m in meta.get("columns", {}).items():
            columns.setdefault(name, m)
        for name, w in _column_weights(meta).items():
            if w == RANDOM or name not in weights:
                weights[name] = w
    unified = pa.unify_schemas([s.remove_metadata() for s in schemas], promote_options="permissive")
    return TableInfo(source=source, parts=tuple(parts), schema=unified, columns=columns, weights=weights)


# --- feature groups ------------------------------------------------------------------

@dataclass(frozen=True)
class GroupInfo:
    """One feature group: its column, width, provenance, and names or grid axes if the metadata has them."""

    name: str
    dim: int
    source: str
    signal: str | None = None
    weights: str | None = None
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


def _group_info(table: TableInfo, name: str, dim: int) -> GroupInfo:
    m = table.columns.get(name, {})
    shape = m.get("shape") or []
    return GroupInfo(name=name, dim=dim, source=source_of(name), signal=signal_of(name),
                     weights=table.weights.get(name), names=tuple(m["names"]) if m.get("names") else None,
                     grid=(int(shape[0]), int(shape[1])) if len(shape) == 2 else None, axes=m.get("axes"))


def select_groups(table: TableInfo, feature_groups: Sequence[str] = (), signals: Sequence[str] | None = None,
                  include_random_weights: bool = False) -> tuple[list[GroupInfo], dict[str, str]]:
    """The feature groups to read (schema order) and every other vector column with the reason it is left out.

    A ``feature_groups`` entry that names a column selects that column; any other
    entry names a source (``indices`` → ``indices_raw``, ``indices_fg``, ...).
    ``signals`` narrows the per-signal columns. Empty ``feature_groups``: all.
    """
    vectors = table.vector_columns()
    excluded: dict[str, str] = {}
    for name in vectors:
        if is_scores(name):
            excluded[name] = SCORES_REASON
        elif table.weights.get(name) == RANDOM and not include_random_weights:
            excluded[name] = RANDOM_REASON
    candidates = [c for c in vectors if c not in excluded]

    def matches(column: str, entry: str) -> bool:
        return column == entry if entry in vectors else source_of(column) == entry

    unknown = [e for e in feature_groups if not any(matches(c, e) for c in candidates)]
    if unknown:
        left_out = "".join(f"; {c}: {why}" for c, why in excluded.items())
        raise ConfigError(f"feature_groups: {', '.join(unknown)} matches no feature group of {table.source} "
                          f"(it has {', '.join(candidates) or 'none'}{left_out})")
    chosen = []
    for c in candidates:
        if feature_groups and not any(matches(c, e) for e in feature_groups):
            excluded[c] = UNREQUESTED_REASON
        elif signals is not None and signal_of(c) is not None and signal_of(c) not in signals:
            excluded[c] = SIGNAL_REASON
        else:
            chosen.append(c)
    if not chosen:
        raise ConfigError(f"signals: no feature group left after selecting signals {','.join(signals or ())} "
                          f"from {', '.join(feature_groups) or 'all groups'}")
    return [_group_info(table, c, vectors[c]) for c in chosen], excluded


# --- reading -------------------------------------------------------------------------

def _vector_batches(table: TableInfo, groups: Sequence[GroupInfo], ids: pa.Array,
                    batch_rows: int) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]]:
    """(positions into ``ids``, {group: float32 matrix, NaN where null}, null-vector mask) per batch of those clips."""
    scanner = table.dataset().to_batches(columns=["clip_id", *[g.name for g in groups]], batch_size=batch_rows,
                                         filter=pc.field("clip_id").isin(ids))
    for batch in scanner:
        if not batch.num_rows:
            continue
        pos = pc.index_in(batch["clip_id"], value_set=ids).to_numpy(zero_copy_only=False).astype(np.int64)
        null = np.zeros(batch.num_rows, dtype=bool)
        mats = {}
        for g in groups:
            mats[g.name] = vectors_to_numpy(batch[g.name], g.dim)
            null |= np.asarray(batch[g.name].is_null().to_numpy(zero_copy_only=False), dtype=bool)
        yield pos, mats, null


@dataclass(frozen=True)
class FeatureSet:
    """The clips a job uses, their feature groups, targets and groups, and what was left out and why.

    ``X`` maps each group to a float32 [n, dim] matrix, or is None when the table
    was too large to hold (``read_features(max_bytes=...)``): then ``stream`` and
    ``rows`` read the same rows batch by batch. ``y`` (with a task): the class index
    per clip (single-label) or an [n, classes] 0/1 matrix (multi-label).
    ``excluded``: ``{"rows": {reason: count}, "columns": {column: reason}}``,
    ready for a run record.
    """

    table: TableInfo
    clips: pa.Table  # CLIP_COLUMNS, sorted by clip_id
    feature_groups: tuple[GroupInfo, ...]
    X: dict[str, np.ndarray] | None
    y: np.ndarray | None
    groups: np.ndarray  # object: the clip's group, or "clip:<clip_id>"
    has_groups: bool  # at least one clip carried a group
    excluded: dict[str, dict[str, Any]]
    n_read: int  # rows read (after the clip_ids filter), before any was left out

    def __len__(self) -> int:
        return self.clips.num_rows

    @property
    def ids(self) -> np.ndarray:
        return np.asarray(self.clips["clip_id"].to_numpy(zero_copy_only=False), dtype=object)

    @property
    def columns(self) -> dict[str, int]:
        """Group name → width, in input order."""
        return {g.name: g.dim for g in self.feature_groups}

    def feature_names(self) -> list[str]:
        return [n for g in self.feature_groups for n in g.feature_names()]

    def to_arrow(self, named: bool = False) -> pa.Table:
        """The clip facts and the features as one Arrow table, rows as in ``clips``.

        ``named=False``: one fixed-size list column per feature group, as stored.
        ``named=True``: one float32 column per value, named by :meth:`feature_names`
        (``indices_raw:ACI``, ``mps_fg[wf=0.31/kHz,wt=+4Hz]``), so that pandas, polars,
        DuckDB or a spreadsheet can pick a feature by name without the schema metadata.
        """
        mats = self.X if self.X is not None else self.rows(np.arange(len(self)))
        cols: dict[str, Any] = {c: self.clips[c] for c in self.clips.column_names}
        for g in self.feature_groups:
            m = mats[g.name]
            if named:
                cols.update({n: pa.array(m[:, j]) for j, n in enumerate(g.feature_names())})
            else:
                cols[g.name] = pa.FixedSizeListArray.from_arrays(pa.array(m.reshape(-1)), g.dim)
        return pa.table(cols)

    def to_pandas(self, named: bool = True) -> Any:
        """:meth:`to_arrow` as a pandas DataFrame (named columns by default: the form pandas is good at)."""
        return self.to_arrow(named=named).to_pandas()

    def matrix(self, groups: Collection[str] | None = None) -> np.ndarray:
        """Every group (or those of ``groups``, in the table's order) side by side, [n, sum of widths] (in memory
        only)."""
        if self.X is None:
            raise ValueError("this FeatureSet is streamed (max_bytes): use stream() or rows()")
        return np.hstack([self.X[g.name] for g in self.feature_groups
                          if groups is None or g.name in groups]).astype(np.float32, copy=False)

    def stream(self, batch_rows: int = 4096) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
        """(positions, {group: matrix}) batches covering every row once, read from the table."""
        ids = self.clips["clip_id"].combine_chunks()
        for pos, mats, _ in _vector_batches(self.table, self.feature_groups, ids, batch_rows):
            yield pos, mats

    def rows(self, positions: np.ndarray) -> dict[str, np.ndarray]:
        """Every group's values for some rows (in the order given)."""
        positions = np.asarray(positions, dtype=np.int64)
        if self.X is not None:
            return {k: m[positions] for k, m in self.X.items()}
        ids = self.clips["clip_id"].combine_chunks().take(pa.array(positions))
        out = {g.name: np.empty((len(positions), g.dim), dtype=np.float32) for g in self.feature_groups}
        for pos, mats, _ in _vector_batches(self.table, self.feature_groups, ids, 4096):
            for name, m in mats.items():
                out[name][pos] = m
        return out


def _facts(table: TableInfo, clip_ids: Collection[str] | None) -> pa.Table:
    """The clip facts of every row (or of ``clip_ids``), typed as CLIP_COLUMNS, sorted by clip_id."""
    present = [f.name for f in CLIP_COLUMNS if f.name in table.schema.names]
    filt = None if clip_ids is None else pc.field("clip_id").isin(pa.array(list(clip_ids), pa.string()))
    read = table.dataset().to_table(columns=present, filter=filt)
    facts = pa.table({f.name: read[f.name].cast(f.type) if f.name in present else pa.nulls(read.num_rows, f.type)
                      for f in CLIP_COLUMNS})
    return facts.sort_by("clip_id")


def _check_unique(table: TableInfo, ids: pa.ChunkedArray) -> None:
    """Each clip once: a clip held by two rows (a file copied into features/, two runs at once on object storage
    before a resume repaired them) would give a job whichever row it read last, and count the other as missing.
    Refused, naming one such clip and the files that hold it; no rule here can tell which row is right."""
    counts = pc.value_counts(ids)
    repeated = counts.filter(pc.greater(counts.field("counts"), 1)).field("values")
    if not len(repeated):
        return
    example = repeated[0].as_py()
    holders = table.dataset().to_table(columns=["__filename"], filter=pc.field("clip_id") == example)
    files = ", ".join(sorted({f.rsplit("/", 1)[-1] for f in holders["__filename"].to_pylist()}))
    raise ConfigError(f"features: {len(repeated)} clip id(s) of {table.source} are held by more than one row "
                      f"(e.g. {example!r}, in {files}): a table holds each clip once; remove the file that does "
                      "not belong to it, or run extract on the output again (its resume keeps each clip's first copy)")


@dataclass(frozen=True)
class Selection:
    """What ``read_features`` reads, decided from the schema and the clip facts alone (no vector read).

    The dry run reports it as the plan of train and audit: the columns chosen and left
    out (with why), and the rows with a target of the task (``facts``, ``y``) and left
    out per reason. Rows with a broken vector are found only by reading the vectors.
    """

    table: TableInfo
    groups: list[GroupInfo]
    excluded_columns: dict[str, str]
    facts: pa.Table  # CLIP_COLUMNS of the rows kept, sorted by clip_id
    y: np.ndarray | None  # with a task: the targets of those rows
    excluded_rows: dict[str, int]
    n_read: int  # rows read (after the clip_ids filter), before any was left out


def selection(source: str, *, task: Task | str | None = None, feature_groups: Sequence[str] = (),
              signals: Sequence[str] | None = None, include_random_weights: bool = False,
              clip_ids: Collection[str] | None = None) -> Selection:
    """The columns and the rows with a target that ``read_features`` reads (same arguments; see it)."""
    if isinstance(task, str):
        task = load_task(task)
    table = open_table(source)
    if "clip_id" not in table.schema.names:
        raise ConfigError(f"features: {source} has no clip_id column (is it an extract output?)")
    if task is not None and "labels" not in table.schema.names:
        raise ConfigError(f"features: {source} has no labels column (was the clip list unlabelled?)")
    groups, excluded_columns = select_groups(table, feature_groups, signals, include_random_weights)
    facts = _facts(table, clip_ids)
    _check_unique(table, facts["clip_id"])
    n_read = facts.num_rows
    excluded_rows: dict[str, int] = {}
    y = None
    if task is not None:
        keep, y, excluded_rows = task.targets([ls or [] for ls in facts["labels"].to_pylist()])
        facts = facts.filter(pa.array(keep))
    return Selection(table, groups, excluded_columns, facts, y, excluded_rows, n_read)


def read_features(source: str, *, task: Task | str | None = None, feature_groups: Sequence[str] = (),
                  signals: Sequence[str] | None = None, include_random_weights: bool = False,
                  clip_ids: Collection[str] | None = None, max_bytes: float | None = None,
                  batch_rows: int = 4096) -> FeatureSet:
    """Read a feature table under the module's three rules (columns, rows, groups).

    Args:
        source: An extract output directory, its ``features/`` directory or one Parquet file
            (local or any fsspec URL).
        task: A ``Task``, or a built-in task's name or a task file: the clips get their targets
            (``y``), and a single-label task leaves out the clips with no class or several.
            None: every clip, no targets.
        feature_groups: Columns or sources to read (``indices`` is ``indices_raw``,
            ``indices_fg``, ...); empty: every feature group.
        signals: Keep only these signals' per-signal columns (``raw``, ``fg``, ``bg``).
        include_random_weights: Also read columns computed with random embedder weights.
        clip_ids: Read only these clips.
        max_bytes: When the chosen groups of the rows to read would take more float32 bytes
            than this, the matrices are not held (``X`` is None, see ``FeatureSet.stream``);
            finding the broken rows then costs one streamed pass.
        batch_rows: Rows per Arrow batch while reading.

    Returns:
        A ``FeatureSet``: the clips sorted by ``clip_id``, a matrix per feature group, the
        targets and groups, and every row and column left out with the reason.

    Raises:
        ConfigError: The source has no Parquet parts, no ``clip_id`` column, or (with a task)
            no ``labels`` column.
    """
    chosen = selection(source, task=task, feature_groups=feature_groups, signals=signals,
                       include_random_weights=include_random_weights, clip_ids=clip_ids)
    table, groups, facts, y = chosen.table, chosen.groups, chosen.facts, chosen.y
    excluded_rows = dict(chosen.excluded_rows)
    ids = facts["clip_id"].combine_chunks()
    in_memory = max_bytes is None or 4 * len(ids) * sum(g.dim for g in groups) <= max_bytes
    X = {g.name: np.empty((len(ids), g.dim), dtype=np.float32) for g in groups} if in_memory else None
    missing = np.ones(len(ids), dtype=bool)  # a row the scan never returns counts as missing
    non_finite = np.zeros(len(ids), dtype=bool)
    for pos, mats, null in _vector_batches(table, groups, ids, batch_rows):
        missing[pos] = null
        non_finite[pos] = ~null & ~np.all([np.isfinite(m).all(axis=1) for m in mats.values()], axis=0)
        if X is not None:
            for name, m in mats.items():
                X[name][pos] = m
    excluded_rows.update(missing_features=int(missing.sum()), non_finite_features=int(non_finite.sum()))
    ok = ~(missing | non_finite)
    clips = facts.filter(pa.array(ok))
    group_col = clips["group"]
    labelled = [g if g is not None else f"clip:{c}" for g, c in
                zip(group_col.to_pylist(), clips["clip_id"].to_pylist())]
    return FeatureSet(table=table, clips=clips, feature_groups=tuple(groups),  # no copy when every row is kept
                      X=X if X is None or ok.all() else {k: m[ok] for k, m in X.items()},
                      y=None if y is None else y[ok], groups=np.array(labelled, dtype=object),
                      has_groups=group_col.null_count < len(group_col),
                      excluded={"rows": excluded_rows, "columns": chosen.excluded_columns}, n_read=chosen.n_read)
