"""``acoustic-env search --features TABLE --example CLIP_OR_FILE``: the clips of a table nearest to an example.

Users of BirdNET-Analyzer, Perch or OpenSoundscape look through a collection by
example: one clip in, the clips that sound like it out. The distance is the
near-duplicate finder's (:mod:`acoustic_env.learn.duplicates`): each embedding column
standardised over the table's clips, each row L2-normalised, the cosine similarity
averaged over the columns compared, and the neighbours found by the same exact search
(``duplicates.nearest``). Standardising first matters for embeddings as for the
hand-made features: ReLU outputs share a large positive offset that makes every pair of
clips look alike by plain cosine.

Which columns (:func:`choose_columns`): one embedder's embedding of each signal the table
holds (``vggish``, ``vggish_fg``, ...; never its class scores), the raw signal's by
default. Columns computed with random weights follow the feature reader's rule
(``table.read_features``): left out unless ``--include-random-weights``.

The example is a clip id of the table, or the URI of one of its clips; any other audio
file is decoded and embedded in this process (``audio.featurize``, as ``predict`` does a
few files) with the decode and feature parameters the table was extracted with (its
newest extract record, ``learn.artifact.table_extraction``) and the weights its columns
record, then placed in the space fitted on the table. The example comes first (rank 0,
similarity 1), then the ``k`` nearest other clips. Such an example gets ``predict``'s note
(``audio.featurize.clip_note``) when it is digital silence or longer than the table's clips.

What leaves this module (the table that ``--save`` writes, the console, the page) holds no
secret: an example given as a URL is redacted (``audio.rows.redact_columns``) as every
stored URI is. A table whose compared vectors are all the same (one clip, copies, zeros)
has no dimension to standardise: one line says so.
"""

from __future__ import annotations

import dataclasses
import os
import posixpath
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from acoustic_env.audio.rows import redact_columns
from acoustic_env.config import (
    EMBEDDERS,
    SIGNALS,
    ConfigError,
    DecodeParams,
    FeatureParams,
    SearchConfig,
    from_dict,
    validate,
)
from acoustic_env.jobs.preflight import preflight
from acoustic_env.storage import redact
from acoustic_env.learn.duplicates import DistanceSpace, nearest
from acoustic_env.learn import vector_index
from acoustic_env.learn.vector_index import VectorIndex
from acoustic_env.table import RANDOM, TableInfo, embedding_column, open_table, read_features, selection

RANDOM_FLAG = "--include-random-weights"
SCHEMA = pa.schema([("rank", pa.int32()), ("clip_id", pa.string()), ("similarity", pa.float32()),
                    ("labels", pa.list_(pa.string())), ("group", pa.string()), ("uri", pa.string()),
                    ("start_s", pa.float64()), ("end_s", pa.float64())])


@dataclass(frozen=True)
class Found:
    """What a search found: ``table`` (``SCHEMA``: the example at rank 0, then its neighbours) and how."""

    table: pa.Table
    embedder: str
    columns: tuple[str, ...]
    weights: str  # the columns' weights id: a checksum, or "random"
    clips: int  # clips searched (those with a finite embedding)
    embedded_from: str | None  # an example given as audio: where its extract settings came from; None: a clip
    note: str | None = None  # an example given as audio: silent or cut (``clip_note``), None when nothing to say
    searched_by: str | None = None  # the index answered (what it is); None: every clip was compared
    compared: str | None = None  # --exact: the index's answer against this one (or why the index was not used)


def embedder_columns(table: TableInfo) -> dict[str, list[str]]:
    """Embedder -> its embedding columns in ``table`` (one per signal, raw first), for each embedder it holds."""
    vectors = table.vector_columns()
    held = {name: [embedding_column(name, s) for s in SIGNALS if embedding_column(name, s) in vectors]
            for name in EMBEDDERS}
    return {name: cols for name, cols in held.items() if cols}


def choose_columns(table: TableInfo, cfg: SearchConfig) -> tuple[str, list[str]]:
    """(the embedder, the columns compared) under the module docstring's rules; a ConfigError naming the flag."""
    held = embedder_columns(table)
    source = table.source

    def pretrained(cols: list[str]) -> list[str]:
        return [c for c in cols if cfg.include_random_weights or table.weights.get(c) != RANDOM]

    if cfg.embedder is None:
        if not held:
            raise ConfigError(f"features: {source} has no embedder columns (extract it with --embedders, e.g. "
                              f"--embedders {EMBEDDERS[0]})")
        usable = sorted((n for n in held if pretrained(held[n])),
                        key=lambda n: any(table.weights.get(c) == RANDOM for c in held[n]))
        if not usable:
            raise ConfigError(f"features: every embedder column of {source} ({', '.join(held)}) was computed with "
                              f"random weights, left out as train and audit leave them out; {RANDOM_FLAG} "
                              "searches them")
        name = usable[0]
    else:
        name = cfg.embedder
        if name not in held:
            raise ConfigError(f"embedder: {source} has no {name} columns (its embedders: "
                              f"{', '.join(held) or 'none'})")
        if not pretrained(held[name]):
            raise ConfigError(f"embedder: the {name} columns of {source} were computed with random weights, left "
                              f"out as train and audit leave them out; {RANDOM_FLAG} searches them")
    cols = pretrained(held[name])
    if cfg.signals:
        wanted = [embedding_column(name, s) for s in cfg.signals]
        missing = [c for c in wanted if c not in cols]
        if missing:
            raise ConfigError(f"signals: {source} has no {', '.join(missing)} column (it has {', '.join(cols)}; "
                              "extract with --embed-signals)")
        return name, wanted
    return name, [name] if name in cols else cols


def example_position(cfg: SearchConfig, clips: pa.Table, table: TableInfo) -> int | None:
    """The example's row in ``clips`` (a clip id, or the one clip with that URI), or None for an audio file.

    ``clips``: the clip facts searched (``FeatureSet.clips``: those with finite values; the dry run's
    ``Selection.facts``: every row). A clip of the table that is not among them stops here.
    """
    ids = np.asarray(clips["clip_id"].to_numpy(zero_copy_only=False), dtype=object)
    hit = np.flatnonzero(ids == cfg.example)
    uri = cfg.example if "://" in cfg.example else os.path.abspath(os.path.expanduser(cfg.example))
    if not hit.size:
        hit = np.flatnonzero(np.asarray(clips["uri"].to_numpy(zero_copy_only=False), dtype=object) == uri)
        hit = hit if hit.size == 1 else hit[:0]  # a file cut into several segments names none of them
    if hit.size:
        return int(hit[0])
    if table.dataset().count_rows(filter=pc.field("clip_id") == cfg.example):
        raise ConfigError(f"example: clip {cfg.example} of {table.source} has no finite embedding in the columns "
                          "searched (a failed or partial row); choose another clip")
    if "://" not in cfg.example and not os.path.isfile(uri):
        raise ConfigError(f"example: {cfg.example!r} is neither a clip id of {table.source} nor an audio file")
    return None


def _embed_example(cfg: SearchConfig, embedder: str, columns: list[str], widths: dict[str, int],
                   weights: str) -> tuple[dict[str, Any], list[np.ndarray], str, str | None]:
    """An example given as audio: (its row, its vectors of ``columns``, where the extract settings came from,
    its note)."""
    from acoustic_env.audio.featurize import clip_rows, featurize
    from acoustic_env.learn.artifact import table_extraction

    settings = table_extraction(cfg.features)
    [row] = clip_rows([cfg.example])
    found = featurize([row], widths, decode=from_dict(DecodeParams, settings["decode"]),
                      features=from_dict(FeatureParams, settings["features"]), embedders={embedder: weights},
                      weights_cache=cfg.weights_cache, device=cfg.device)
    if found.errors[0]:
        raise ConfigError(f"example: cannot embed {cfg.example}: {found.errors[0]}")
    return row, [found.vectors[c] for c in columns], settings["source"], found.notes[0]


def search(cfg: SearchConfig) -> Found:
    """The example and its ``cfg.k`` nearest clips (see the module docstring): from the table's index when it has
    one, else by comparing every clip; ``cfg.exact`` does both and says how far the index's answer is from the
    exact one."""
    validate(cfg)
    preflight(cfg)
    table = open_table(cfg.features)
    embedder, columns = choose_columns(table, cfg)
    weights = table.weights.get(columns[0]) or RANDOM
    try:
        index = vector_index.load(table, columns, weights)
    except ConfigError as exc:
        if not cfg.exact:
            raise
        index, unused = None, f"index not used: {exc}"
    else:
        unused = None
    if index is not None and not cfg.exact:
        return _indexed(cfg, table, embedder, columns, weights, index)
    start = time.perf_counter()
    found = _exact(cfg, table, embedder, columns, weights)
    if index is None:
        return dataclasses.replace(found, compared=unused)
    took = time.perf_counter() - start
    start = time.perf_counter()
    fast = _indexed(cfg, table, embedder, columns, weights, index)
    return dataclasses.replace(found, compared=_comparison(found, fast, took, time.perf_counter() - start))


def _comparison(exact: Found, fast: Found, exact_s: float, index_s: float) -> str:
    """One line: how many of the exact neighbours the index found, and each search's seconds."""
    truth, got = (set(f.table["clip_id"].to_pylist()[1:]) for f in (exact, fast))
    return (f"the index found {len(truth & got)} of these {len(truth)} (recall {len(truth & got) / max(len(truth), 1):.2f}"
            f"); exact {exact_s:.2f} s, the index {index_s:.2f} s ({fast.searched_by})")


def _exact(cfg: SearchConfig, table: TableInfo, embedder: str, columns: list[str], weights: str) -> Found:
    """Every clip compared with the example, in the space fitted on the table now."""
    data = read_features(cfg.features, feature_groups=columns, include_random_weights=cfg.include_random_weights)
    mats = [data.X[c] for c in columns]
    space = DistanceSpace.fit(mats)
    rows = space.transform(mats)
    if not rows.shape[1]:
        raise ConfigError(_alike(table.source, columns, len(data)))
    pos = example_position(cfg, data.clips, table)
    embedded_from = note = None
    if pos is None:
        example, vectors, embedded_from, note = _embed_example(cfg, embedder, columns, data.columns, weights)
        idx, dist = nearest(rows, space.transform(vectors), cfg.k + 1)
    else:
        [example] = data.clips.slice(pos, 1).to_pylist()
        idx, dist = nearest(rows, rows[pos], cfg.k + 1)
    keep = idx[0] != (-1 if pos is None else pos)  # the example itself (distance 0, or tied with a copy) is rank 0
    chosen, dist = idx[0][keep][:cfg.k], dist[0][keep][:cfg.k]
    return _found(example, data.clips.take(pa.array(chosen)).to_pylist(), dist,
                  Found(None, embedder, tuple(columns), weights, len(data), embedded_from, note))


def _indexed(cfg: SearchConfig, table: TableInfo, embedder: str, columns: list[str], weights: str,
             index: VectorIndex) -> Found:
    """The example's neighbours from the table's index (``learn.vector_index``): only their facts are read."""
    pos = example_position(cfg, index.ids, table)
    embedded_from = note = None
    if pos is None:
        widths = {c: table.vector_columns()[c] for c in columns}
        example, vectors, embedded_from, note = _embed_example(cfg, embedder, columns, widths, weights)
        keys, dist = index.nearest(index.space.transform(vectors)[0], cfg.k + 1)
    else:
        keys, dist = index.nearest(index.vector(pos), cfg.k + 1)
    keep = keys != (-1 if pos is None else pos)
    keys, dist = keys[keep][:cfg.k], dist[keep][:cfg.k]
    wanted = index.ids["clip_id"].take(pa.array(keys)).to_pylist()
    own = [] if pos is None else [index.ids["clip_id"][pos].as_py()]
    facts = selection(cfg.features, feature_groups=columns, include_random_weights=True,
                      clip_ids=wanted + own).facts
    by_id = {r["clip_id"]: r for r in facts.to_pylist()}
    if pos is not None:
        example = by_id[own[0]]
    return _found(example, [by_id[c] for c in wanted], dist,
                  Found(None, embedder, tuple(columns), weights, len(index), embedded_from, note,
                        searched_by=vector_index.describe(index.manifest)))


def _found(example: dict[str, Any], hits: list[dict[str, Any]], dist: np.ndarray, how: Found) -> Found:
    """``how`` with its table: the example at rank 0 (similarity 1), then the hits, redacted."""
    out = [{**example, "rank": 0, "similarity": 1.0}]
    out += [{**facts, "rank": r, "similarity": 1.0 - float(d)} for r, (facts, d) in enumerate(zip(hits, dist), start=1)]
    found = pa.Table.from_pylist([{f.name: r.get(f.name) for f in SCHEMA} for r in out], schema=SCHEMA)
    return dataclasses.replace(how, table=redact_columns(found))


def _alike(source: str, columns: list[str], clips: int) -> str:
    """Why a table whose every compared dimension is constant cannot be searched (nothing to standardise)."""
    held = f"{clips} clips with finite {', '.join(columns)} vectors, all alike" if clips > 1 else \
        f"one clip with finite {', '.join(columns)} vectors"
    return (f"features: {source} holds {held}: every dimension is constant, so no clip is nearer the example than "
            "another (search needs clips whose vectors differ)")


def result_lines(found: Found, example: str) -> list[str]:
    """The console: what was searched and how, then one line per clip."""
    rows = found.table.to_pylist()
    what = "random weights" if found.weights == RANDOM else f"weights {found.weights[:12]}"
    source = f", embedded with the settings of {found.embedded_from}" if found.embedded_from else ""
    how = f"from {found.searched_by}" if found.searched_by else "every clip compared"
    lines = [f"search: the {len(rows) - 1} clips nearest to {redact(example)} among {found.clips} clips, by "
             f"{found.embedder} ({', '.join(found.columns)}; {what}){source}; similarity: cosine after "
             f"standardising each dimension over the table; {how}"]
    if found.compared:
        lines.append(f"  --exact: {found.compared}")
    if found.note:
        lines.append(f"  the example: {found.note}")
    width = max(len("clip"), *(len(r["clip_id"]) for r in rows))
    lines.append(f"{'rank':>4}  {'similarity':>10}  {'clip':<{width}}  labels")
    for r in rows:
        note = "  (the example)" if r["rank"] == 0 else ""
        lines.append(f"{r['rank']:>4}  {r['similarity']:>10.4f}  {r['clip_id']:<{width}}  "
                     f"{', '.join(r['labels'] or []) or '-'}{note}")
    return lines


def write_page(found: Found, page_dir: str, example: str) -> str:
    """``<page_dir>/index.html`` with a player and a spectrogram per clip (the review page's assets: decoded
    and drawn by ``pages.review.write_assets``); a static page that opens from disk. Returns its URI."""
    from acoustic_env.pages.review import source_url, write_assets
    from acoustic_env.pages.templating import render
    from acoustic_env.storage import filesystem, join

    cards = []
    for r in found.table.to_pylist():
        # the example as given: its redacted uri would not read (an example of the table has a stored uri)
        assets = write_assets({**r, "uri": example} if r["rank"] == 0 and found.embedded_from else r, page_dir)
        cards.append({**r, "assets": assets, "source": source_url(r["clip_id"], r["group"])})
    page = render("search.html", cards=cards, clips=found.clips, embedder=found.embedder, columns=found.columns,
                  random_weights=found.weights == RANDOM, note=found.note,
                  title=f"Clips like {redact(example)}")  # an example given as a URL may hold credentials
    uri = join(page_dir, "index.html")
    fs, path = filesystem(uri)
    fs.makedirs(posixpath.dirname(path), exist_ok=True)
    fs.pipe_file(path, page.encode())
    return uri
