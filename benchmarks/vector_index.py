"""Approximate nearest-neighbour libraries compared for `search`'s index: recall, query time, build, memory.

    python benchmarks/vector_index.py [--rows 100000] [--dim 1024] [--libraries usearch,faiss,hnswlib,voyager]
                                      [--seeds TABLE] [--queries 200] [--work /tmp/acoustic-env-index-bench]

    python benchmarks/vector_index.py --real TABLE[,TABLE...]

``--real``: each real table (an extract output with a ``birdnet`` column: the forest recordings, the demo's clips)
copied under ``--work``, indexed by ``learn/vector_index.py`` itself (f16, i8, and f16 in 3 shards), and every clip
searched as the example through the index and exactly (``learn.duplicates.nearest``): recall@10 and the examples
whose 10 nearest differ. ``labels new-class``'s round 0 is such a search; nothing else in its loop reads the index.

    python benchmarks/vector_index.py --startup --rows 1000000 --seeds TABLE   (after a run with --keep)

``--startup``: ``acoustic-env search`` in a fresh process on a table of ``--rows`` clips, answering from its
index. The table (20 Parquet parts under ``--work``) holds the generated rows in a ``yamnet`` column, recorded as
random weights as the synthetic tables are; the index is usearch's graphs of those rows kept by ``--keep``,
written beside it by ``learn/vector_index.py`` with a manifest whose space is the identity (means 0, standard
deviations 1: the rows are already in the search space), so no second build of a million rows is needed. Times,
median of 5 examples: the command (wall and CPU), and in a warm process ``vector_index.load`` (the manifest, the
graph's checksum, the map, the ids) and ``ae.search``; then the held-out queries through ``VectorIndex.nearest``
(k = 10, the module's 256 candidates), each one's wall and CPU time (its thread's) and recall@10 against exact.

The three libraries not kept are measured only here, installed by hand into the environment for the run
(``pip install faiss-cpu==1.15.1 hnswlib==0.8.0 voyager==2.2.3``; in no extra of the project).

The vectors are what the index holds: rows of ``learn.duplicates.DistanceSpace`` (standardised,
L2-normalised), compared by inner product. They are generated (:func:`generate`) from seed
vectors: the BirdNET embeddings of a real table when ``--seeds`` names one (its ``birdnet``
column), else 512 random centres. Each generated row is a seed, moved towards a second seed by
a fraction drawn from U(0, 0.5), plus Gaussian noise of 0.5 the seeds' per-dimension standard
deviation, then placed in the search space fitted on the first 20,000 rows. Written once as
float16 to ``--work`` (2 GB at 1,000,000 x 1,024) in chunks, and memory-mapped.

Each library runs in its own process (its memory is its own): the build on 2 threads, then
``--queries`` held-out rows (generated the same way, not in the index) one at a time on one
thread, k = 10; recall@10 against exact search (a float32 matrix product, in chunks). Memory:
the process's peak RSS above what the mapped data and numpy took before the build; size: the
saved index file. Settings (M = 16 links, 128 candidates while building) are
the same for the four HNSW libraries; usearch's rows are cut into graphs as ``learn/vector_index.py`` cuts them
(the fewest of at most its ``GRAPH_ROWS`` rows, searched together: ``vector_index.Graphs``) (each query at 64, 128 and 256 candidates); faiss's is HNSW over float32 (its scalar-quantised HNSW
is slower to build), usearch and voyager also at lower precision. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from machine import describe

K = 10
M = 16
EF_BUILD = 128
EF_SEARCH = (64, 128, 256)
FIT_ROWS = 20_000
CHUNK = 50_000


def seed_vectors(table: str | None, dim: int, rng: np.random.Generator) -> np.ndarray:
    """The generator's seeds: the ``birdnet`` vectors of ``table``, else 512 random centres."""
    if table is None:
        return rng.normal(size=(512, dim)).astype(np.float32)
    import acoustic_env as ae

    data = ae.read_features(table, feature_groups=["birdnet"])
    seeds = np.asarray(data.X["birdnet"], np.float32)
    if seeds.shape[1] != dim:
        raise SystemExit(f"--seeds: {table}'s birdnet column has {seeds.shape[1]} values, not --dim {dim}")
    return seeds


def raw(seeds: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` generated rows (the module docstring's method) and the seed each was drawn from (before the move)."""
    a, b = rng.integers(len(seeds), size=n), rng.integers(len(seeds), size=n)
    t = rng.uniform(0, 0.5, size=(n, 1)).astype(np.float32)
    noise = rng.normal(size=(n, seeds.shape[1])).astype(np.float32) * (0.5 * seeds.std(axis=0) + 1e-6)
    return (1 - t) * seeds[a] + t * seeds[b] + noise, a


def generate(path: Path, rows: int, dim: int, queries: int, seeds_table: str | None) -> tuple[np.ndarray, np.ndarray]:
    """(the rows, the held-out queries), float16, in the search space; written once to ``path``."""
    from acoustic_env.learn.duplicates import DistanceSpace

    data, held = path / f"rows-{rows}x{dim}.f16", path / f"queries-{rows}x{dim}.npy"
    if not held.exists():
        path.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(0)
        seeds = seed_vectors(seeds_table, dim, rng)
        space = DistanceSpace.fit([raw(seeds, FIT_ROWS, rng)[0]])
        out = np.memmap(data, np.float16, "w+", shape=(rows, dim))
        for start in range(0, rows, CHUNK):
            out[start:start + CHUNK] = space.transform([raw(seeds, min(CHUNK, rows - start), rng)[0]])
        out.flush()
        np.save(held, space.transform([raw(seeds, queries, rng)[0]]).astype(np.float16))
    return np.memmap(data, np.float16, "r", shape=(rows, dim)), np.load(held)


def exact(rows: np.ndarray, queries: np.ndarray, path: Path) -> np.ndarray:
    """The true 10 nearest rows of each query (inner product), cached beside the data."""
    cached = path / f"truth-{len(rows)}x{rows.shape[1]}.npy"
    if cached.exists():
        return np.load(cached)
    q = queries.astype(np.float32)
    best = np.full((len(q), K), -np.inf, np.float32)
    idx = np.zeros((len(q), K), np.int64)
    for start in range(0, len(rows), CHUNK):
        sims = q @ np.asarray(rows[start:start + CHUNK], np.float32).T
        both_s = np.concatenate([best, sims], axis=1)
        both_i = np.concatenate([idx, np.arange(start, start + sims.shape[1])[None].repeat(len(q), 0)], axis=1)
        top = np.argsort(-both_s, axis=1)[:, :K]
        best, idx = np.take_along_axis(both_s, top, 1), np.take_along_axis(both_i, top, 1)
    np.save(cached, idx)
    return idx


def _build(library: str, precision: str, dim: int, n: int):
    """(add(vectors, ids), query(vector, ef) -> ids, save(path)) of one library's index."""
    if library == "usearch":  # as learn/vector_index.py builds it: graphs of at most its GRAPH_ROWS rows
        from acoustic_env.learn.vector_index import Graphs, add_rows, graph_sizes

        graphs: list = []

        def query(q, ef):
            for graph in graphs:
                graph.expansion_search = ef
            return Graphs(tuple(graphs), tuple(np.cumsum([0, *map(len, graphs[:-1])]).tolist())).search(q, K)[0]

        def save(path):
            blobs = [bytes(g.save()) for g in graphs]
            Path(path).write_bytes(b"".join(blobs))
            Path(path + ".json").write_text(json.dumps([len(b) for b in blobs]))
        return lambda x, ids: add_rows(graphs, graph_sizes(n), int(ids[0]), x, precision), query, save
    if library == "faiss":
        import faiss

        index = faiss.IndexHNSWFlat(dim, M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction, index.hnsw.efSearch = EF_BUILD, EF_SEARCH[0]

        def query(q, ef):
            faiss.omp_set_num_threads(1)
            index.hnsw.efSearch = ef
            return index.search(q[None], K)[1][0]

        def add(x, ids):
            faiss.omp_set_num_threads(2)
            index.add(x)
        return add, query, lambda p: faiss.write_index(index, p)
    if library == "hnswlib":
        import hnswlib

        index = hnswlib.Index(space="ip", dim=dim)
        index.init_index(max_elements=n, ef_construction=EF_BUILD, M=M)
        index.set_ef(EF_SEARCH[0])
        index.set_num_threads(2)

        def query(q, ef):
            index.set_ef(ef)
            return index.knn_query(q, k=K, num_threads=1)[0][0]
        return lambda x, ids: index.add_items(x, ids, num_threads=2), query, index.save_index
    if library == "voyager":
        from voyager import Index, Space, StorageDataType

        kind = {"f32": StorageDataType.Float32, "e4m3": StorageDataType.E4M3, "i8": StorageDataType.Float8}[precision]
        index = Index(Space.InnerProduct, num_dimensions=dim, M=M, ef_construction=EF_BUILD, max_elements=n,
                      storage_data_type=kind)
        return (lambda x, ids: index.add_items(x, ids, num_threads=2),
                lambda q, ef: index.query(q, k=K, query_ef=ef)[0], index.save)
    raise SystemExit(f"--libraries: unknown {library}")


def kept(path: str):
    """The graphs of ``--keep``'s usearch file (its graphs one after the other, their sizes in ``<file>.json``),
    mapped, at the module's candidates: what ``agile_loop.py --index`` and ``--startup`` read."""
    import mmap

    from usearch.index import Index

    from acoustic_env.learn.vector_index import EXPANSION_SEARCH, Graphs

    with open(path, "rb") as file:
        data = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
    sizes, buffer = json.loads(Path(path + ".json").read_text()), memoryview(data)
    graphs = [Index.restore(buffer[end - size:end], view=True) for size, end in zip(sizes, np.cumsum(sizes).tolist())]
    for graph in graphs:
        graph.expansion_search = EXPANSION_SEARCH
    return Graphs(tuple(graphs), tuple(np.cumsum([0, *map(len, graphs[:-1])]).tolist()), data)


def one(args: argparse.Namespace) -> None:
    """One library at one precision, in this process: prints its figures as JSON."""
    rows, queries = generate(Path(args.work), args.rows, args.dim, args.queries, args.seeds)
    truth = exact(rows, queries, Path(args.work))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    add, query, save = _build(args.one, args.precision, args.dim, args.rows)
    t, cpu, load = time.perf_counter(), time.process_time(), os.getloadavg()[0]
    for start in range(0, args.rows, CHUNK):
        add(np.asarray(rows[start:start + CHUNK], np.float32), np.arange(start, min(start + CHUNK, args.rows)))
    build, build_cpu = time.perf_counter() - t, time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    saved = Path(args.work) / f"index-{args.one}-{args.precision}"
    save(str(saved))
    size = saved.stat().st_size / 2**20
    if not args.keep:
        saved.unlink()
        Path(str(saved) + ".json").unlink(missing_ok=True)
    q32 = queries.astype(np.float32)
    for ef in EF_SEARCH:
        times, hits = [], 0
        for q, true in zip(q32, truth):
            t = time.perf_counter()
            found = np.asarray(query(q, ef)).ravel()
            times.append(time.perf_counter() - t)
            hits += len(set(found.tolist()) & set(true.tolist()))
        print(json.dumps({"library": args.one, "precision": args.precision, "ef": ef, "recall": hits / truth.size,
                          "median_ms": 1e3 * float(np.median(times)), "p95_ms": 1e3 * float(np.percentile(times, 95)),
                          "build_s": build, "build_cpu_s": build_cpu, "load": [load, os.getloadavg()[0]],
                          "memory_mb": (peak - before) / 1024, "size_mb": size}))


RUNS = {"usearch": ("f32", "f16", "i8"), "faiss": ("f32",), "hnswlib": ("f32",), "voyager": ("f32", "e4m3")}


def real(tables: list[str], work: Path) -> None:
    """``--real`` (the module docstring): prints one Markdown row per table and build."""
    import shutil

    import pyarrow.parquet as pq

    from acoustic_env.learn import vector_index
    from acoustic_env.learn.duplicates import nearest
    from acoustic_env.table import RANDOM, open_table, vectors_to_numpy

    print("| table | clips | index | recall@10, every clip the example | examples whose 10 nearest differ |")
    print("|---|---:|---|---:|---:|")
    for source in tables:
        copy = work / "real" / Path(source).name
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(Path(source) / "features", copy / "features")
        table = open_table(str(copy))
        weights = table.weights.get("birdnet") or RANDOM
        for precision, shards in (("f16", 1), ("i8", 1), ("f16", 3)):
            vector_index.build(table, "birdnet", ["birdnet"], weights, precision, rebuild=True, shards=shards)
            index = vector_index.load(table, ["birdnet"], weights)
            got = pq.read_table(copy / "features", columns=["clip_id", "birdnet"])
            at = {c: i for i, c in enumerate(got["clip_id"].to_pylist())}
            raw_rows = vectors_to_numpy(got["birdnet"], 1024)[[at[c] for c in index.ids["clip_id"].to_pylist()]]
            rows = index.space.transform([raw_rows])
            k = min(K, len(rows))
            truth = nearest(rows, rows, k)[0]
            found = [index.nearest(row, k)[0] for row in rows]
            hits = sum(len(set(f.tolist()) & set(t.tolist())) for f, t in zip(found, truth))
            differ = sum(set(f.tolist()) != set(t.tolist()) for f, t in zip(found, truth))
            print(f"| {source} | {len(rows)} | {precision}, {shards} shard{'s' if shards > 1 else ''} | "
                  f"{hits / truth.size:.3f} | {differ} |")


def startup(args: argparse.Namespace) -> None:
    """``--startup`` (the module docstring): prints a Markdown table."""
    import statistics

    import pyarrow as pa

    import acoustic_env as ae
    from acoustic_env.demo.tables import synthetic_features
    from acoustic_env.learn import vector_index
    from acoustic_env.storage import write_parquet
    from acoustic_env.table import open_table

    work = Path(args.work)
    rows, queries = generate(work, args.rows, args.dim, args.queries, args.seeds)
    out = work / f"table-{args.rows}"
    like = synthetic_features(2, embedders=("yamnet",), signals=("raw",)).table.schema
    schema = pa.schema([like.field(n) for n in ("clip_id", "uri", "start_s", "end_s", "labels", "group",
                                                "duration_s", "yamnet")], metadata=like.metadata)
    ids = [f"clip{i:07d}" for i in range(args.rows)]
    uris = [f"/data/{i}.wav" for i in ids]
    t = time.perf_counter()
    if not (out / "features").is_dir():
        for part, start in enumerate(range(0, args.rows, args.rows // 20)):
            n = min(args.rows // 20, args.rows - start)
            flat = pa.array(np.asarray(rows[start:start + n], np.float32).ravel())
            cols = [pa.array(ids[start:start + n]), pa.array(uris[start:start + n]), pa.nulls(n, pa.float64()),
                    pa.nulls(n, pa.float64()), pa.array([["a"]] * n, schema.field("labels").type),
                    pa.array([f"g{i % 1000}" for i in range(start, start + n)]), pa.array(np.full(n, 10.0)),
                    pa.FixedSizeListArray.from_arrays(flat, args.dim).cast(schema.field("yamnet").type)]
            write_parquet(pa.Table.from_arrays(cols, schema=schema), str(out / "features" / f"part-{part:03d}.parquet"))
    table = open_table(str(out))
    if not (out / "index" / "yamnet.json").exists():
        data = (work / "index-usearch-f16").read_bytes()
        sizes = json.loads((work / "index-usearch-f16.json").read_text())
        blobs = [memoryview(data)[end - size:end] for size, end in zip(sizes, np.cumsum(sizes).tolist())]
        manifest = {"format": vector_index.FORMAT, "library": f"usearch {vector_index._usearch_version()}",
                    "embedder": "yamnet", "columns": ["yamnet"], "weights": "random", "precision": "f16",
                    "metric": "cosine", "rows": args.rows, "parts": vector_index.part_sizes(table),
                    "means": [[0.0] * args.dim], "stds": [[1.0] * args.dim], "built": "", "updated": ""}
        facts = pa.table({"clip_id": ids, "uri": uris})
        vector_index._write(table, ["yamnet"], blobs, facts, manifest, None)
    made = time.perf_counter() - t
    cli = [sys.executable, "-m", "acoustic_env.cli", "search", "--features", str(out), "--embedder", "yamnet",
           "--include-random-weights", "-k", "10", "--example"]
    walls, cpus = [], []
    for i in range(5):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        subprocess.run(cli + [ids[(i + 1) * 7919 * 31 % args.rows]], check=True, capture_output=True)
        walls.append(time.perf_counter() - t)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    loads, searches = [], []
    for i in range(5):
        t = time.perf_counter()
        vector_index.load(table, ["yamnet"], "random")
        loads.append(time.perf_counter() - t)
        t = time.perf_counter()
        ae.search(str(out), ids[(i + 1) * 104729 % args.rows], embedder="yamnet", include_random_weights=True, k=10)
        searches.append(time.perf_counter() - t)
    index, truth = vector_index.load(table, ["yamnet"], "random"), exact(rows, queries, work)
    query_walls, query_cpus, hits = [], [], 0
    for q, true in zip(queries.astype(np.float32), truth):
        t, cpu = time.perf_counter(), time.thread_time()
        keys, _ = index.nearest(q, K)
        query_cpus.append(time.thread_time() - cpu)
        query_walls.append(time.perf_counter() - t)
        hits += len(set(keys.tolist()) & set(true.tolist()))
    med = statistics.median
    print(f"{time.strftime('%Y-%m-%d')}, {describe()}, Python {platform.python_version()}; {args.rows} x {args.dim}, "
          f"the index file {(work / 'index-usearch-f16').stat().st_size / 2**20:.0f} MiB; load average "
          f"{os.getloadavg()[0]:.1f}; table and index files written in {made:.0f} s\n")
    print("| what | median s | max s |\n|---|---:|---:|")
    for name, times in (("`acoustic-env search ... -k 10`, fresh process (wall)", walls),
                        ("the same, CPU (user + system)", cpus), ("`vector_index.load`, warm process", loads),
                        ("`ae.search` from the index, warm process", searches)):
        print(f"| {name} | {med(times):.2f} | {max(times):.2f} |")
    ms = {name: (1e3 * med(t), 1e3 * float(np.percentile(t, 95))) for name, t in (("wall", query_walls),
                                                                                  ("CPU", query_cpus))}
    print(f"\n{len(truth)} held-out queries through `VectorIndex.nearest`, k = {K}: recall@10 against exact search "
          f"{hits / truth.size:.3f}; wall median {ms['wall'][0]:.2f} ms, p95 {ms['wall'][1]:.2f} ms; CPU median "
          f"{ms['CPU'][0]:.2f} ms, p95 {ms['CPU'][1]:.2f} ms")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--libraries", default=",".join(RUNS))
    ap.add_argument("--precisions", default="", help="only these precisions (comma-separated; default: each's)")
    ap.add_argument("--seeds", default=None, help="a feature table with a birdnet column: the generator's seeds")
    ap.add_argument("--work", default="/tmp/acoustic-env-index-bench")
    ap.add_argument("--keep", action="store_true", help="keep each index file in --work (agile_loop.py --index reads "
                                                        "usearch's)")
    ap.add_argument("--real", help="real tables, comma-separated: the index against exact search on each")
    ap.add_argument("--startup", action="store_true", help="time the search command from the kept index")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--precision", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        one(args)
        return
    if args.startup:
        startup(args)
        return
    if args.real:
        real(args.real.split(","), Path(args.work))
        return
    t = time.perf_counter()
    rows, queries = generate(Path(args.work), args.rows, args.dim, args.queries, args.seeds)
    exact(rows, queries, Path(args.work))
    print(f"(data and exact answers: {time.perf_counter() - t:.0f} s)", file=sys.stderr)
    wanted = set(filter(None, args.precisions.split(",")))
    results = []
    for library in args.libraries.split(","):
        for precision in RUNS[library]:
            if wanted and precision not in wanted:
                continue
            cmd = [sys.executable, __file__, "--one", library, "--precision", precision, "--rows", str(args.rows),
                   "--dim", str(args.dim), "--queries", str(args.queries), "--work", args.work,
                   *(["--keep"] if args.keep else [])]
            out = subprocess.run(cmd + (["--seeds", args.seeds] if args.seeds else []),
                                 capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "2"})
            if out.returncode:
                raise SystemExit(f"{library} {precision} failed:\n{out.stderr}")
            for line in out.stdout.strip().splitlines():
                results.append(json.loads(line))
                print(line, file=sys.stderr)
    print(f"{time.strftime('%Y-%m-%d')}, {describe()}, Python {platform.python_version()}; {args.rows} x {args.dim}, "
          f"{args.queries} held-out queries, k = {K}; M = {M}, ef build {EF_BUILD}\n")
    print("| library | stored as | ef search | recall@10 | query median ms | p95 ms | build s | build CPU s | load "
          "| memory MB | file MB |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|")
    for r in results:
        print(f"| {r['library']} | {r['precision']} | {r['ef']} | {r['recall']:.3f} | {r['median_ms']:.2f} | "
              f"{r['p95_ms']:.2f} | "
              f"{r['build_s']:.0f} | {r['build_cpu_s']:.0f} | {r['load'][0]:.0f}–{r['load'][1]:.0f} | "
              f"{r['memory_mb']:.0f} | {r['size_mb']:.0f} |")


if __name__ == "__main__":
    main()
