"""A persistent approximate nearest-neighbour index of a table's embeddings, kept beside the table.

``search`` compares an example with every clip (``duplicates.nearest``), and reads and
standardises the whole table first: 8.3 s for a command on 100,000 clips x 1,024, a minute at a
million. This index keeps the search space's rows (:class:`~acoustic_env.learn.duplicates.DistanceSpace`:
each column standardised, each row L2-normalised, columns side by side) in a USearch HNSW graph,
chosen over faiss, hnswlib and voyager by ``benchmarks/vector_index.py`` (recall, query time,
build time and memory; ``benchmarks/RESULTS.md``), so that a query is a walk of the graph, not a scan,
and a fresh process starts by mapping one file.

**Where.** ``index/`` beside the table's ``features/`` (an extract output, local or on object
storage), or ``<file>.index/`` beside a single Parquet file. Per embedder and columns compared, a
name (``birdnet``, ``yamnet_fg+yamnet_bg``) with three files: ``<name>.json``, the manifest, written
last; ``<name>-<digest>.usearch``, the graph; ``<name>-<digest>.ids.parquet``, the clip id and URI of
each key (a key is a row number). The digest is the graph's SHA-256, so a new build never overwrites
the files the manifest names: an interrupted update leaves the old index whole.

**What it records.** The embedder, its columns and their weights id, the space's means and
standard deviations, the precision, and every table part it covers with its size in bytes
(``layout`` names the parts; a part rewritten in place, as duplicate repair does, changes size).
:func:`status` compares that with the table: ``current``, ``extended`` (parts were added, a resume
or a scheduled re-annotation: :func:`build` adds only their rows, in the space fitted before),
``replaced`` (a part covered is gone or changed: :func:`build` fits and builds again) or
``other_embedder`` (the columns' weights changed, or it is another embedder's index under this one's name: a
build then leaves its files). :func:`load` refuses each of the last three in one line, as it does a graph whose
bytes do not match the manifest's digest (damaged), so a search never answers from an index that no longer
describes the table.

**Precision.** ``f16`` by default: recall@10 against exact search as f32's (0.97 at 100,000 x 1,024), half
the memory; ``i8`` a quarter, at 0.75 (its fixed scale is coarse for L2-normalised 1,024-wide rows).

**Graphs of at most** ``GRAPH_ROWS`` **rows.** One graph over a million rows finds too few of the true neighbours
(recall@10 0.89 at 1,000,000 x 1,024, 0.93 with eight times the candidates: among a million near-alike rows the
walk stops short), one over 100,000 finds 0.97. So the rows are cut into the fewest graphs of at most
``GRAPH_ROWS``, as even in size as rows allow; a query walks each and keeps the nearest of their answers, so it
costs one walk a graph, and finds at least what one graph over every row finds (each graph is searched with the
same candidates over fewer rows). The graphs are written as one file, one after the other, under one digest, and
mapped from it. Parts added later fill the last graph, then new ones.

**Shards.** A table of millions is built in ``shards``: runs of its parts, each run's moments and then its graphs
computed by its own task (``mapper``: ``distributed.index_build`` runs them as Ray tasks; the in-process build is
one shard, mapped in this process), so a cluster builds in parallel what one process would build in turn (USearch
has no merge of two graphs). Keys stay the table's row numbers, so the clip ids, the space and the answers are the
in-process build's.
"""

from __future__ import annotations

import bisect
import hashlib
import mmap
import posixpath
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from acoustic_env.config import ConfigError
from acoustic_env.config.search import INDEX_PRECISIONS
from acoustic_env.learn.duplicates import DistanceSpace
from acoustic_env.errors import DamagedFileError
from acoustic_env.storage import (
    delete,
    filesystem,
    is_local,
    join,
    read_json,
    read_part,
    redact,
    write_bytes,
    write_json,
    write_parquet,
)
from acoustic_env.table import RANDOM, TableInfo, open_table, vectors_to_numpy

INDEX = "index"
FORMAT = 1
#: Graph links per node, candidates kept while adding and while searching: recall@10 0.94 at 64 candidates, 0.97
#: at 256, on 100,000 x 1,024 (benchmarks/vector_index.py), for under a millisecond a query.
CONNECTIVITY, EXPANSION_ADD, EXPANSION_SEARCH = 16, 128, 256
#: Rows of one graph at most (see the module docstring): 1,000,000 x 1,024 in 8 graphs finds recall@10 0.968 at 256
#: candidates, one graph 0.891; 300,000 in 2 graphs of 150,000: 0.974 (benchmarks/RESULTS.md, "Vector index").
GRAPH_ROWS = 125_000
#: Table rows read at a time while building: a 1,024-wide float32 batch is 200 MiB.
BATCH_ROWS = 50_000
_IDS = pa.schema([("clip_id", pa.string()), ("uri", pa.string())])


def index_dir(table: TableInfo) -> str:
    """Where a table's indexes live: ``index/`` beside its ``features/`` folder, else ``<file>.index``."""
    first = table.parts[0]
    folder = first.rsplit("/", 1)[0]
    if table.source.endswith(".parquet"):
        return table.source + ".index"
    if folder.rsplit("/", 1)[-1] == "features":
        return join(folder.rsplit("/", 1)[0], INDEX)
    return join(folder, INDEX)


def index_name(columns: Sequence[str]) -> str:
    """The file name of the index over ``columns`` (``birdnet``, ``yamnet_fg+yamnet_bg``)."""
    return "+".join(columns)


def part_sizes(table: TableInfo) -> dict[str, int]:
    """Each part's file name and size in bytes: what an index records of the table it covers (one listing per
    folder, so that thousands of parts on object storage cost one request, not thousands)."""
    fs, _ = filesystem(table.parts[0])
    folders = {filesystem(p)[1].rsplit("/", 1)[0] for p in table.parts}
    listed = {e["name"].rstrip("/").rsplit("/", 1)[-1]: int(e["size"])
              for folder in folders for e in fs.ls(folder, detail=True)}
    return {p.rsplit("/", 1)[-1]: listed[p.rsplit("/", 1)[-1]] for p in table.parts}


@dataclass(frozen=True)
class Status:
    """How an index stands against its table: ``state`` (``missing``, ``current``, ``extended``, ``replaced``,
    ``other_embedder``), why in words, its manifest (None when missing) and the table's parts not yet covered."""

    state: str
    why: str
    manifest: dict[str, Any] | None
    where: str  # the manifest's URI
    new_parts: tuple[str, ...] = ()


def status(table: TableInfo, columns: Sequence[str], weights: str) -> Status:
    """The index over ``columns`` of ``table`` against the table as it is now (see the module docstring)."""
    where = join(index_dir(table), index_name(columns) + ".json")
    fs, path = filesystem(where)
    if not fs.exists(path):
        return Status("missing", f"no index at {redact(where)}", None, where)
    try:
        manifest = read_json(where)
        covered = dict(manifest["parts"])
        built_weights, built_columns = manifest["weights"], manifest["columns"]
    except (ValueError, KeyError, TypeError, OSError) as exc:
        raise ConfigError(f"index: {redact(where)} is damaged ({type(exc).__name__}: {exc}); build it again: "
                          f"acoustic-env index --features {redact(table.source)}") from None
    if built_columns != list(columns):  # another embedder's index, under this one's name
        return Status("other_embedder", f"it was built over {', '.join(built_columns)} ({manifest['embedder']}), "
                                        f"not {', '.join(columns)}", manifest, where)
    if built_weights != weights:
        return Status("other_embedder", f"it was built from {manifest['embedder']} weights {built_weights[:12]}, "
                                        f"and the table's {', '.join(columns)} now hold weights {weights[:12]}",
                      manifest, where)
    now = part_sizes(table)
    changed = sorted(p for p, size in covered.items() if now.get(p) != size)
    if changed:
        gone = [p for p in changed if p not in now]
        what = f"{len(gone)} part(s) it covers are gone ({gone[0]})" if gone else \
            f"{len(changed)} part(s) it covers were rewritten ({changed[0]})"
        return Status("replaced", what, manifest, where)
    new = tuple(p for p in table.parts if p.rsplit("/", 1)[-1] not in covered)
    if new:
        return Status("extended", f"the table has {len(new)} part(s) it does not cover", manifest, where, new)
    return Status("current", f"it covers the table's {len(covered)} parts", manifest, where)


def _batches(table: TableInfo, parts: Sequence[str], columns: Sequence[str], widths: dict[str, int]
             ) -> Iterator[tuple[pa.Table, list[np.ndarray]]]:
    """(clip ids and URIs, one float32 matrix per column) of the rows of ``parts`` with finite vectors in every
    column, about ``BATCH_ROWS`` rows at a time (the feature reader's row rule: a missing or non-finite value
    leaves the row out). One Arrow scan over the parts, however many they are."""
    import pyarrow.dataset as ds

    paths, arrow_fs = table.files()
    wanted = set(parts)
    dataset = ds.dataset([p for p, full in zip(paths, table.parts) if full in wanted], schema=table.schema,
                         format="parquet", filesystem=arrow_fs)
    names = ["clip_id", *(["uri"] if "uri" in table.schema.names else []), *columns]
    held: list[pa.RecordBatch] = []

    def done() -> tuple[pa.Table, list[np.ndarray]]:
        got = pa.Table.from_batches(held)
        mats = [vectors_to_numpy(got[c], widths[c]) for c in columns]
        keep = np.all([np.isfinite(m).all(axis=1) for m in mats], axis=0)
        uri = got["uri"] if "uri" in got.column_names else pa.nulls(got.num_rows, pa.string())
        facts = pa.table({"clip_id": got["clip_id"], "uri": uri}).cast(_IDS).filter(pa.array(keep))
        held.clear()
        return facts, [m[keep] for m in mats]

    try:
        for batch in dataset.to_batches(columns=names, batch_size=BATCH_ROWS):
            held.append(batch)
            if sum(b.num_rows for b in held) >= BATCH_ROWS:
                yield done()
    except (OSError, pa.ArrowInvalid) as exc:
        why = redact(" ".join(str(exc).split()))  # one line: Arrow's message spans several
        raise ConfigError(f"features: a part of {redact(table.source)} cannot be read ({why}); run extract on the "
                          "output again (it quarantines damaged parts) before indexing") from None
    if held:
        yield done()


Moments = tuple[int, list[np.ndarray], list[np.ndarray]]


def moments(parts: Sequence[str], table: TableInfo, columns: Sequence[str], widths: dict[str, int]) -> Moments:
    """(rows, each column's sums, each column's sums of squares) over every finite row of ``parts``, batch by
    batch in float64: one shard's share of the space, added up by :func:`space_from` (the first argument is what
    a ``mapper`` maps over)."""
    n = 0
    sums = [np.zeros(widths[c]) for c in columns]
    squares = [np.zeros(widths[c]) for c in columns]
    for _, mats in _batches(table, parts, columns, widths):
        n += len(mats[0])
        for s, q, m in zip(sums, squares, mats):
            s += m.sum(axis=0, dtype=np.float64)
            q += np.einsum("ij,ij->j", m, m, dtype=np.float64)
    return n, sums, squares


def space_from(shares: Sequence[Moments], columns: Sequence[str]) -> DistanceSpace:
    """The search space over the rows whose moments ``shares`` hold: the same means and standard deviations as
    ``DistanceSpace.fit`` on the whole table in memory."""
    n = sum(share[0] for share in shares)
    sums = [np.sum([share[1][i] for share in shares], axis=0) for i in range(len(columns))]
    squares = [np.sum([share[2][i] for share in shares], axis=0) for i in range(len(columns))]
    if not n:
        raise ConfigError(f"features: no clip has finite {', '.join(columns)} vectors: nothing to index")
    means = tuple(s / n for s in sums)
    stds = tuple(np.sqrt(np.maximum(q / n - m * m, 0)) for q, m in zip(squares, means))
    # a dimension constant over the clips leaves a rounding residue of about 1e-8 of its mean here, where
    # DistanceSpace.fit finds 0 and drops it: so does this (a real spread, even of values near 1e-11, is far above)
    stds = tuple(np.where(s > 1e-6 * np.abs(m), s, 0.0) for s, m in zip(stds, means))
    return DistanceSpace(means, stds)


def _new_graph(ndim: int, precision: str) -> Any:
    from usearch.index import Index

    return Index(ndim=ndim, metric="ip", dtype=precision, connectivity=CONNECTIVITY, expansion_add=EXPANSION_ADD,
                 expansion_search=EXPANSION_SEARCH)


#: A build's ``mapper``: ``mapper(fn, items, **shared)`` is ``[fn(item, **shared) for item in items]``, run where
#: the mapper runs it (``distributed.fanout.map_tasks``: each call a Ray task).
Mapper = Callable[..., list[Any]]


def in_process(fn: Callable[..., Any], items: Sequence[Any], **shared: Any) -> list[Any]:
    """The mapper of a build without Ray: each item in this process, in turn."""
    return [fn(item, **shared) for item in items]


def runs(parts: Sequence[str], shards: int) -> list[list[str]]:
    """``parts`` cut into ``shards`` runs in their order (fewer when there are fewer parts), as even in count as
    whole parts allow: the table's rows in table order, shard after shard."""
    n = max(1, min(shards, len(parts)))
    return [list(parts[i * len(parts) // n:(i + 1) * len(parts) // n]) for i in range(n)]


def graph_sizes(rows: int) -> list[int]:
    """``rows`` cut into the fewest graphs of at most ``GRAPH_ROWS`` rows, as even in size as rows allow."""
    n = max(1, -(-rows // GRAPH_ROWS))
    return [rows * (i + 1) // n - rows * i // n for i in range(n)]


def add_rows(graphs: list[Any], sizes: Sequence[int], key: int, rows: np.ndarray, precision: str) -> None:
    """``rows`` (of the space) added to ``graphs`` in place, keyed on from ``key``: the last graph filled to its size
    in ``sizes`` (``GRAPH_ROWS`` past their end), then new graphs, each to its size (``benchmarks/vector_index.py``
    builds its graphs with it too)."""
    done = 0
    while done < len(rows):
        size = sizes[len(graphs) - 1] if 0 < len(graphs) <= len(sizes) else GRAPH_ROWS
        if not graphs or len(graphs[-1]) >= size:
            graphs.append(_new_graph(rows.shape[1], precision))
            continue
        take = min(size - len(graphs[-1]), len(rows) - done)
        graphs[-1].add(np.arange(key + done, key + done + take, dtype=np.uint64), rows[done:done + take])
        done += take


def _add(graphs: list[Any], sizes: Sequence[int], ids: pa.Table, first: int, table: TableInfo, parts: Sequence[str],
         columns: Sequence[str], widths: dict[str, int], space: DistanceSpace, precision: str) -> pa.Table:
    """The rows of ``parts`` added in the space to ``graphs`` (:func:`add_rows`), keyed on from ``first`` plus the
    rows ``ids`` already holds. Returns ``ids`` with their clip ids and URIs."""
    for facts, mats in _batches(table, parts, columns, widths):
        add_rows(graphs, sizes, first + ids.num_rows, space.transform(mats), precision)
        ids = pa.concat_tables([ids, facts])
    return ids


def shard(job: tuple[Sequence[str], int, int], table: TableInfo, columns: Sequence[str], widths: dict[str, int],
          space: DistanceSpace, precision: str) -> tuple[list[bytes], pa.Table]:
    """One shard: the graphs over a run of parts (``job``: the run, its first key, the rows before it in the table,
    and its rows), saved, and the clip id and URI of each of their keys (no rows: no graphs and no ids)."""
    parts, first, rows = job
    graphs: list[Any] = []
    ids = _add(graphs, graph_sizes(rows), _IDS.empty_table(), first, table, parts, columns, widths, space, precision)
    return [bytes(g.save()) for g in graphs], ids


@dataclass(frozen=True)
class Built:
    """What :func:`build` did: ``action`` (``built``, ``extended``, ``rebuilt``, ``current``), why, the rows
    added, the rows indexed, its manifest's URI, its precision, its seconds and its graphs."""

    action: str
    why: str
    added: int
    rows: int
    where: str
    precision: str
    seconds: float
    shards: int = 1


def build(table: TableInfo, embedder: str, columns: Sequence[str], weights: str, precision: str = "f16",
          rebuild: bool = False, shards: int = 1, mapper: Mapper = in_process) -> Built:
    """Build the index over ``columns``, extend it with the table's new parts, or build it again when parts it
    covers were replaced, the weights changed, its precision is another or ``rebuild`` asks; nothing when it is
    current. A build is ``shards`` runs of parts, each run's moments and graphs mapped by ``mapper`` (see the module
    docstring); an extension fills the last graph here, then new ones. The graphs and ids are written before the
    manifest."""
    if precision not in INDEX_PRECISIONS:
        raise ConfigError(f"precision: must be one of {', '.join(INDEX_PRECISIONS)}, got {precision!r}")
    start = time.perf_counter()
    widths = {c: table.vector_columns()[c] for c in columns}
    found = status(table, columns, weights)
    old = found.manifest
    if found.state == "current" and not rebuild and old["precision"] == precision:
        return Built("current", found.why, 0, old["rows"], found.where, precision, time.perf_counter() - start,
                     len(old.get("shards", [0])))
    extend = found.state == "extended" and not rebuild and old["precision"] == precision
    if extend:
        space = DistanceSpace(tuple(map(np.asarray, old["means"])), tuple(map(np.asarray, old["stds"])))
        graphs, ids = _open_graphs(table, old, columns, view=False), _read_ids(table, old)
        grown = list(graphs.shards)
        ids = _add(grown, (), ids, 0, table, found.new_parts, columns, widths, space, precision)
        blobs = [bytes(g.save()) for g in grown]
        added = ids.num_rows - old["rows"]
    else:
        jobs = runs(table.parts, shards)
        shares = mapper(moments, jobs, table=table, columns=list(columns), widths=widths)
        space = space_from(shares, columns)
        counts = [share[0] for share in shares]
        firsts = np.cumsum([0, *counts[:-1]]).tolist()
        made = mapper(shard, list(zip(jobs, firsts, counts)), table=table, columns=list(columns), widths=widths,
                      space=space, precision=precision)
        blobs, ids = [b for m in made for b in m[0]], pa.concat_tables([m[1] for m in made])
        added = ids.num_rows
        dup = pc.count_distinct(ids["clip_id"]).as_py() != ids.num_rows
        if dup:
            raise ConfigError(f"features: {redact(table.source)} holds a clip id twice; run extract again on it "
                              "(its resume repairs the copies) before indexing")
    manifest = {"format": FORMAT, "library": f"usearch {_usearch_version()}", "embedder": embedder,
                "columns": list(columns), "weights": weights, "precision": precision, "metric": "cosine",
                "rows": ids.num_rows, "parts": part_sizes(table),
                "means": [m.tolist() for m in space.means], "stds": [s.tolist() for s in space.stds],
                "built": old["built"] if extend else _now(), "updated": _now()}
    _write(table, columns, blobs, ids, manifest, old if old is not None and old["columns"] == list(columns) else None)
    action = "extended" if extend else ("rebuilt" if old is not None else "built")
    why = found.why if old is not None else f"{ids.num_rows} clips"
    return Built(action, why, added, ids.num_rows, found.where, precision, time.perf_counter() - start, len(blobs))


def update_beside(output: str) -> list[str]:
    """Every index an extract output holds (``index/*.json``), brought up to date with its table: the parts a run
    added, or built again when a part it covered was replaced (duplicate repair, a quarantine) or the weights
    changed. What ``extract`` runs after writing its parts, so that a resume or a scheduled re-annotation keeps
    the index that ``search`` answers from. An output without an index costs one listing. Returns one line per
    index; one that cannot be updated (damaged) says why and stops nothing: the run's parts are written."""
    fs, path = filesystem(join(output, INDEX))
    if not fs.isdir(path):
        return []
    manifests = sorted(p for p in fs.ls(path, detail=False) if p.endswith(".json"))
    if not manifests:
        return []
    table = open_table(output)
    lines = []
    for m in manifests:
        where = join(output, INDEX, m.rsplit("/", 1)[-1])
        try:
            manifest = read_json(where)
            columns = manifest["columns"]
            built = build(table, manifest["embedder"], columns, table.weights.get(columns[0]) or RANDOM,
                          manifest["precision"])
        except (ConfigError, ValueError, KeyError, TypeError) as exc:
            lines.append(f"index {redact(where)} not updated: {exc}")
        else:
            lines.append(f"index {redact(where)} {built.action}: {built.rows} clips ({built.added} added)")
    return lines


def _usearch_version() -> str:
    import usearch

    return usearch.__version__


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _write(table: TableInfo, columns: Sequence[str], blobs: Sequence[bytes], ids: pa.Table, manifest: dict[str, Any],
           old: dict[str, Any] | None) -> None:
    """The shards' graphs as one file, one after the other (the manifest records each one's bytes), the ids, then
    the manifest that names them; the old files once nothing names them."""
    data = b"".join(blobs)
    digest = hashlib.sha256(data).hexdigest()
    base = join(index_dir(table), index_name(columns))
    stem = f"{index_name(columns)}-{digest[:16]}"
    if is_local(base):
        fs, path = filesystem(base)
        fs.makedirs(posixpath.dirname(path), exist_ok=True)
    write_bytes(data, join(index_dir(table), stem + ".usearch"))
    write_parquet(ids, join(index_dir(table), stem + ".ids.parquet"))
    write_json({**manifest, "graph": stem + ".usearch", "ids": stem + ".ids.parquet", "sha256": digest,
                "bytes": len(data), "shards": [len(b) for b in blobs]}, base + ".json")
    if old is not None and old.get("graph") != stem + ".usearch":
        for name in (old.get("graph"), old.get("ids")):
            if name:
                delete(join(index_dir(table), name))


@dataclass(frozen=True)
class Graphs:
    """An index's graphs, each holding a run of keys from its first on; searched together. ``buffer``: the file's
    bytes (or its map) that the graphs are views of, held as long as they are."""

    shards: tuple[Any, ...]
    firsts: tuple[int, ...]
    buffer: Any = None

    def get(self, key: int) -> np.ndarray:
        """The row stored for ``key``, from the graph whose run holds it."""
        return self.shards[bisect.bisect_right(self.firsts, key) - 1].get(np.uint64(key))

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest keys of every graph's ``k`` nearest, nearest first, and their distances."""
        keys, distances = [], []
        for graph in self.shards:
            found = graph.search(query, min(k, len(graph)))
            keys.append(np.asarray(found.keys, np.int64))
            distances.append(np.asarray(found.distances, np.float32))
        order = np.argsort(np.concatenate(distances), kind="stable")[:k]
        return np.concatenate(keys)[order], np.concatenate(distances)[order]


def _open_graphs(table: TableInfo, manifest: dict[str, Any], columns: Sequence[str], view: bool) -> Graphs:
    """The graphs the manifest names, their bytes checked against the manifest's digest (one line when damaged);
    views of the file's bytes (``view``: a local file is mapped, not read, so a fresh process starts without a copy
    of the graphs), else loaded (to be added to)."""
    from usearch.index import Index

    where = join(index_dir(table), manifest["graph"])
    fs, path = filesystem(where)
    rebuild = f"build it again: acoustic-env index --features {redact(table.source)} --rebuild"
    try:
        if view and is_local(where) and fs.size(path):
            with open(path, "rb") as file:
                data: Any = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
        else:
            data = fs.cat_file(path)
    except FileNotFoundError:
        raise ConfigError(f"index: {redact(where)}, named by {index_name(columns)}.json, is missing; {rebuild}") \
            from None
    if len(data) != manifest["bytes"] or hashlib.sha256(data).hexdigest() != manifest["sha256"]:
        raise ConfigError(f"index: {redact(where)} is damaged ({len(data)} bytes, its manifest says "
                          f"{manifest['bytes']}, or its checksum differs); {rebuild}")
    sizes = manifest.get("shards", [len(data)])  # an index written before shards: one graph
    buffer = memoryview(data)
    shards = [Index.restore(buffer[end - size:end], view=view) for size, end in zip(sizes, np.cumsum(sizes).tolist())]
    if any(g is None for g in shards) or sum(len(g) for g in shards) != manifest["rows"]:
        # the bytes are what was written: a guard, not a check
        raise ConfigError(f"index: {redact(where)} does not hold the {manifest['rows']} rows it should; {rebuild}")
    for graph in shards:
        graph.expansion_search = EXPANSION_SEARCH  # a search setting: the file does not keep it
    return Graphs(tuple(shards), tuple(np.cumsum([0, *(len(g) for g in shards[:-1])]).tolist()),
                  data if view else None)


def _read_ids(table: TableInfo, manifest: dict[str, Any]) -> pa.Table:
    where = join(index_dir(table), manifest["ids"])
    try:
        ids = read_part(where)
    except (DamagedFileError, FileNotFoundError) as exc:
        raise ConfigError(f"index: {redact(where)} cannot be read ({exc}); build it again: acoustic-env index "
                          f"--features {redact(table.source)} --rebuild") from None
    if ids.num_rows != manifest["rows"]:
        raise ConfigError(f"index: {redact(where)} holds {ids.num_rows} clips, its manifest {manifest['rows']}; "
                          f"build it again: acoustic-env index --features {redact(table.source)} --rebuild")
    return ids


@dataclass(frozen=True)
class VectorIndex:
    """A loaded index: the graph, the clip id and URI of each key, the space it holds, its manifest."""

    graph: Graphs
    ids: pa.Table
    space: DistanceSpace
    manifest: dict[str, Any]

    def __len__(self) -> int:
        return self.ids.num_rows

    def vector(self, key: int) -> np.ndarray:
        """The row stored for ``key`` (at the index's precision), as float32."""
        return np.asarray(self.graph.get(key), np.float32)

    def nearest(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """As ``duplicates.nearest``: the ``k`` keys nearest to ``query`` (a row of the space), nearest first, and
        their mean cosine distances."""
        return self.graph.search(np.asarray(query, np.float32).reshape(-1), min(k, len(self)))


def load(table: TableInfo, columns: Sequence[str], weights: str) -> VectorIndex | None:
    """The index over ``columns`` (None when there is none), refused in one line when it no longer matches the
    table (see :func:`status`) or its files are damaged."""
    found = status(table, columns, weights)
    if found.state == "missing":
        return None
    if found.state != "current":
        fix = f"acoustic-env index --features {redact(table.source)}"
        raise ConfigError(f"index: {redact(found.where)} no longer matches the "
                          f"table: {found.why}; update it ({fix}) or search every clip with --exact")
    manifest = found.manifest
    graph = _open_graphs(table, manifest, columns, view=True)
    space = DistanceSpace(tuple(map(np.asarray, manifest["means"])), tuple(map(np.asarray, manifest["stds"])))
    return VectorIndex(graph, _read_ids(table, manifest), space, manifest)


def copy_beside(table: TableInfo, columns: Sequence[str], weights: str, target: TableInfo) -> str:
    """The table's current index over ``columns`` copied beside ``target`` (an export of the same clips: ``export
    --embeddings``), its manifest naming ``target``'s parts, so that ``search --features <target>`` answers from it.
    Returns where, or why no index was copied."""
    found = status(table, columns, weights)
    if found.state != "current":
        return f"no index copied: {found.why}" + ("" if found.state == "missing" else " (acoustic-env index updates it)")
    manifest = found.manifest
    for name in (manifest["graph"], manifest["ids"]):
        fs, path = filesystem(join(index_dir(table), name))
        write_bytes(fs.cat_file(path), join(index_dir(target), name))
    where = join(index_dir(target), index_name(columns) + ".json")
    write_json({**manifest, "parts": part_sizes(target)}, where)
    return where


def describe(manifest: dict[str, Any]) -> str:
    """One phrase for the console: ``100000 clips in its index (usearch 2.26.6, f16, updated ...)``."""
    return (f"{manifest['rows']} clips in its index ({manifest['library']}, {manifest['precision']}, updated "
            f"{manifest['updated']})")
