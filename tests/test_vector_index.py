"""``acoustic-env index`` and ``search`` answering from it (``learn/vector_index.py``).

Tables of 1,200 synthetic clips (``demo.tables``: YAMNet-wide vectors, in 4 parts as an extract
writes them), indexed for real with USearch. Each way an index stops describing its table (parts
added, a part rewritten, other weights, a damaged graph) is made as a user would meet it, and
``search`` must refuse it in one line, never answer from it. Below them, tables of 2 to 40 clips
test each step of a build in this process (fast: ``make mutate`` runs them for each of the module's mutants).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pytest
import usearch

import acoustic_env as ae
from acoustic_env.cli import main
from acoustic_env.config import ConfigError
from acoustic_env.demo.tables import synthetic_features
from acoustic_env.learn.duplicates import DistanceSpace
from acoustic_env.learn import vector_index
from acoustic_env.storage import write_parquet
from acoustic_env.table import open_table, vectors_to_numpy

ROWS = 1200
SEARCH = ("--embedder", "yamnet", "--include-random-weights", "-k", "10")


def _table(root: Path, seed: int = 0, weights: str = "random", prefix: str = "clip", rows: int = ROWS,
           embedders: tuple[str, ...] = ("yamnet",)) -> pa.Table:
    table = synthetic_features(rows, embedders=embedders, signals=("raw",), seed=seed, weights=weights,
                               separation=3.0).table
    ids = [f"{prefix}{i:05d}" for i in range(table.num_rows)]
    return table.set_column(table.schema.get_field_index("clip_id"), "clip_id", pa.array(ids))


def _write(table: pa.Table, out: Path, first: int = 0, parts: int = 4) -> None:
    step = -(-table.num_rows // parts)
    for i, start in enumerate(range(0, table.num_rows, step)):
        write_parquet(table.slice(start, step), str(out / "features" / f"part-run{first + i:02d}-x.parquet"))


def _run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def indexed(tmp_path_factory) -> Path:
    """A table of ROWS clips with its f16 index; tests that change it copy it first."""
    out = tmp_path_factory.mktemp("indexed") / "out"
    _write(_table(out), out)
    assert main(["index", "--features", str(out), "--embedder", "yamnet", "--include-random-weights"]) == 0
    return out


def _copy(indexed: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(indexed, tmp_path / "out"))


def _refused(capsys, out: Path, *words: str) -> str:
    code, printed, err = _run(capsys, "search", "--features", str(out), "--example", "clip00007", *SEARCH)
    assert code != 0 and not printed, printed
    line = err.strip()
    assert "\n" not in line and "Traceback" not in line, err
    for word in words:
        assert word in line, line
    return line


def test_search_answers_from_the_index_as_exact_search_does(indexed, capsys):
    code, printed, _ = _run(capsys, "index", "--features", str(indexed), "--embedder", "yamnet",
                            "--include-random-weights")
    assert code == 0 and "left as it is" in printed and f"{ROWS} clips, f16" in printed
    manifest = json.loads((indexed / "index" / "yamnet.json").read_text())
    assert manifest["embedder"] == "yamnet" and manifest["rows"] == ROWS and len(manifest["parts"]) == 4
    # what the manifest records: the parts' sizes, the graph file it names by its digest, its library and when
    assert manifest["parts"] == {p.name: p.stat().st_size for p in (indexed / "features").iterdir()}
    assert {k: manifest[k] for k in ("format", "metric", "precision", "columns", "weights", "library")} == {
        "format": 1, "metric": "cosine", "precision": "f16", "columns": ["yamnet"], "weights": "random",
        "library": f"usearch {usearch.__version__}"}
    graph = (indexed / "index" / manifest["graph"]).read_bytes()
    assert manifest["sha256"] == hashlib.sha256(graph).hexdigest() and manifest["bytes"] == len(graph) == sum(
        manifest["shards"])
    stem = f"yamnet-{manifest['sha256'][:16]}"
    assert (manifest["graph"], manifest["ids"]) == (f"{stem}.usearch", f"{stem}.ids.parquet")
    built, updated = (datetime.fromisoformat(manifest[k]) for k in ("built", "updated"))
    assert built.tzinfo and built == updated and built.microsecond == 0
    found = ae.search(str(indexed), "clip00007", embedder="yamnet", include_random_weights=True, k=10)
    assert found.searched_by and f"{ROWS} clips in its index (usearch {usearch.__version__}, f16, updated " \
        f"{manifest['updated']})" in found.searched_by
    exact = ae.search(str(indexed), "clip00007", embedder="yamnet", include_random_weights=True, k=10, exact=True)
    assert exact.searched_by is None and "the index found" in exact.compared
    got, truth = (t.table["clip_id"].to_pylist() for t in (found, exact))
    assert got[0] == truth[0] == "clip00007"
    assert len(set(got[1:]) & set(truth[1:])) >= 9  # recall@10 at least 0.9
    sims = np.array(found.table["similarity"].to_pylist()[1:])
    assert np.all(np.diff(sims) <= 1e-6) and np.allclose(sims, exact.table["similarity"].to_pylist()[1:], atol=0.02)
    code, printed, _ = _run(capsys, "search", "--features", str(indexed), "--example", "clip00007", *SEARCH,
                            "--exact")
    assert code == 0 and "  --exact: the index found" in printed and "every clip compared" in printed
    code, printed, _ = _run(capsys, "search", "--features", str(indexed), "--example", "clip00007", *SEARCH,
                            "--dry-run")
    assert code == 0 and "  index: answers (it covers the table's 4 parts)" in printed


def test_parts_added_are_refused_then_added_to_the_index(indexed, tmp_path, capsys):
    out = _copy(indexed, tmp_path)
    _write(_table(out, seed=1, prefix="new"), out, first=10, parts=1)
    line = _refused(capsys, out, "no longer matches", "1 part(s) it does not cover", "acoustic-env index")
    assert str(out) in line
    code, printed, _ = _run(capsys, "search", "--features", str(out), "--example", "clip00007", *SEARCH, "--dry-run")
    assert code == 0 and "  index: refused, it no longer matches the table (the table has 1 part(s)" in printed
    code, printed, _ = _run(capsys, "index", "--features", str(out), "--embedder", "yamnet",
                            "--include-random-weights")
    assert code == 0 and f"extended by {ROWS} clips" in printed and f"{2 * ROWS} clips" in printed
    found = ae.search(str(out), "new00003", embedder="yamnet", include_random_weights=True, k=5)
    assert found.table["clip_id"][0].as_py() == "new00003" and found.clips == 2 * ROWS
    # the space is the one fitted before: a new clip's stored row is its own row in that space
    index = vector_index.load(open_table(str(out)), ["yamnet"], "random")
    assert index.nearest(index.vector(ROWS + 3), 1)[0][0] == ROWS + 3
    assert len(list((out / "index").iterdir())) == 3  # the old graph and ids are gone


def test_a_rewritten_part_is_refused_then_rebuilt(indexed, tmp_path, capsys):
    out = _copy(indexed, tmp_path)
    part = sorted((out / "features").iterdir())[1]
    table = pa.parquet.read_table(part)
    write_parquet(table.slice(0, table.num_rows - 5), str(part))  # as duplicate repair rewrites a part
    _refused(capsys, out, "no longer matches", "1 part(s) it covers were rewritten", part.name)
    code, printed, _ = _run(capsys, "index", "--features", str(out), "--embedder", "yamnet",
                            "--include-random-weights")
    assert code == 0 and "built again" in printed and f"{ROWS - 5} clips" in printed
    code, printed, _ = _run(capsys, "search", "--features", str(out), "--example", "clip00007", *SEARCH)
    assert code == 0 and f"among {ROWS - 5} clips" in printed


def test_a_part_gone_a_graph_missing_and_clip_ids_damaged_or_short_are_each_refused_naming_the_file(
        indexed, tmp_path, capsys):
    out = _copy(indexed, tmp_path)
    manifest = json.loads((out / "index" / "yamnet.json").read_text())
    ids = out / "index" / manifest["ids"]
    whole = pa.parquet.read_table(ids)
    write_parquet(whole.slice(1), str(ids))
    _refused(capsys, out, f"index: {ids} holds {ROWS - 1} clips, its manifest {ROWS}; build it again: "
                          f"acoustic-env index --features {out} --rebuild")
    ids.write_bytes(b"PAR1 not parquet")
    _refused(capsys, out, f"index: {ids} cannot be read (", "--rebuild")
    graph = out / "index" / manifest["graph"]
    graph.unlink()
    _refused(capsys, out, f"index: {graph}, named by yamnet.json, is missing; build it again: acoustic-env index "
                          f"--features {out} --rebuild")
    part = sorted((out / "features").iterdir())[2]
    part.unlink()
    _refused(capsys, out, f"the table: 1 part(s) it covers are gone ({part.name}); update it")

def test_the_space_is_fitted_on_every_finite_row_batch_by_batch_as_on_the_whole_table(tmp_path, monkeypatch):
    """The index's space is ``DistanceSpace.fit`` on the table's finite rows (a row with a NaN left out, a constant
    dimension dropped), read in batches (64 rows here, 50,000 in use), and each stored row is that row in it."""
    monkeypatch.setattr(vector_index, "BATCH_ROWS", 64)
    table = _table(tmp_path, rows=300)
    x = vectors_to_numpy(table["yamnet"], 1024).copy()
    x[:, 0] = 0.3  # a constant dimension
    x[5, 3] = np.nan  # a row the feature reader leaves out
    column = table.schema.get_field_index("yamnet")
    table = table.set_column(column, table.schema.field(column),
                             pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), 1024))
    out = tmp_path / "out"
    _write(table, out)
    done = vector_index.build(open_table(str(out)), "yamnet", ["yamnet"], "random")
    assert (done.action, done.rows, done.added) == ("built", 299, 299)
    index = vector_index.load(open_table(str(out)), ["yamnet"], "random")
    kept = np.delete(x, 5, axis=0)
    assert index.ids["clip_id"].to_pylist() == [f"clip{i:05d}" for i in range(300) if i != 5]
    fitted = DistanceSpace.fit([kept])
    np.testing.assert_allclose(index.space.means[0], fitted.means[0], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(index.space.stds[0], fitted.stds[0], rtol=1e-6, atol=1e-12)
    assert index.space.stds[0][0] == 0 and (index.space.stds[0][1:] > 0).all()
    rows = fitted.transform([kept])
    np.testing.assert_allclose(np.stack([index.vector(k) for k in (0, 5, 298)]), rows[[0, 5, 298]], atol=2e-3)
    # one part of 300 rows is still read a batch at a time, never more than two batches' rows held (memory)
    one = tmp_path / "one"
    _write(table, one, parts=1)
    whole = open_table(str(one))
    sizes = [len(facts) for facts, _ in vector_index._batches(whole, whole.parts, ["yamnet"], {"yamnet": 1024})]
    assert sum(sizes) == 299 and max(sizes) <= 2 * 64

def test_a_clip_id_twice_an_unreadable_part_or_no_finite_vector_is_one_line_and_no_index(tmp_path):
    table = _table(tmp_path, rows=40)
    twice, damaged, empty = (tmp_path / name for name in ("twice", "damaged", "empty"))
    _write(pa.concat_tables([table, table.slice(0, 1)]), twice)
    _write(table, damaged)
    part = sorted((damaged / "features").iterdir())[1]
    data = bytearray(part.read_bytes())
    data[8:4008] = bytes(4000)  # its vectors' pages zeroed: its footer, the schema the table opens with, intact
    part.write_bytes(bytes(data))
    x = np.full((40, 1024), np.nan, np.float32)
    column = table.schema.get_field_index("yamnet")
    _write(table.set_column(column, table.schema.field(column),
                            pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), 1024)), empty)
    for out, line in ((twice, f"features: {twice} holds a clip id twice; run extract again on it (its resume repairs "
                                "the copies) before indexing"),
                      (damaged, f"features: a part of {damaged} cannot be read ("),
                      (empty, "features: no clip has finite yamnet vectors: nothing to index")):
        with pytest.raises(ConfigError) as caught:
            vector_index.build(open_table(str(out)), "yamnet", ["yamnet"], "random")
        assert str(caught.value).startswith(line) and "\n" not in str(caught.value)
        assert not (out / "index").exists()
    # Arrow's own words, on one line, and what to do
    with pytest.raises((OSError, pa.ArrowInvalid)) as arrow:
        ds.dataset([str(part)], format="parquet").to_table(columns=["clip_id", "uri", "yamnet"])
    with pytest.raises(ConfigError) as caught:
        vector_index.build(open_table(str(damaged)), "yamnet", ["yamnet"], "random")
    assert str(caught.value) == (f"features: a part of {damaged} cannot be read ({' '.join(str(arrow.value).split())}); "
                                 "run extract on the output again (it quarantines damaged parts) before indexing")

def test_an_index_of_other_weights_is_refused(indexed, tmp_path, capsys):
    out = tmp_path / "other"
    _write(_table(out, weights="0123456789abcdef" * 4), out)  # the same clips, embedded with other weights
    shutil.copytree(indexed / "index", out / "index")  # the first table's index copied beside it
    _refused(capsys, out, "no longer matches", "built from yamnet weights random", "0123456789ab")


def test_a_damaged_index_is_refused(indexed, tmp_path, capsys):
    out = _copy(indexed, tmp_path)
    [graph] = (out / "index").glob("*.usearch")
    data = bytearray(graph.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in the vectors: the graph still opens, its answers would differ
    graph.write_bytes(bytes(data))
    _refused(capsys, out, f"index: {graph} is damaged ({len(data)} bytes, its manifest says {len(data)}, or its "
                          f"checksum differs); build it again: acoustic-env index --features {out} --rebuild")
    graph.write_bytes(bytes(data[:1000]))
    _refused(capsys, out, "is damaged")
    (out / "index" / "yamnet.json").write_text("{not json")
    _refused(capsys, out, "yamnet.json is damaged")
    code, printed, _ = _run(capsys, "search", "--features", str(out), "--example", "clip00007", *SEARCH, "--exact")
    assert code == 0 and "index not used: index:" in printed  # --exact still answers, and says why


def test_i8_index_and_an_index_on_object_storage(indexed, s3_endpoint, capsys):
    import s3fs

    fs = s3fs.S3FileSystem()
    fs.mkdir("index-bucket")
    fs.put(str(indexed / "features"), "index-bucket/out/features", recursive=True)
    code, printed, _ = _run(capsys, "index", "--features", "s3://index-bucket/out", "--embedder", "yamnet",
                            "--include-random-weights", "--precision", "i8")
    assert code == 0 and "s3://index-bucket/out/index/yamnet.json" in printed and "i8" in printed
    found = ae.search("s3://index-bucket/out", "clip00007", embedder="yamnet", include_random_weights=True, k=10)
    exact = ae.search(str(indexed), "clip00007", embedder="yamnet", include_random_weights=True, k=10, exact=True)
    assert "i8" in found.searched_by
    assert len(set(found.table["clip_id"].to_pylist()) & set(exact.table["clip_id"].to_pylist())) >= 9


def test_extract_extends_the_index_and_an_outside_file_is_searched_through_it(tmp_path, capsys):
    import csv

    import soundfile as sf

    from acoustic_env.demo.synth import make_clip

    audio = tmp_path / "audio"
    audio.mkdir()
    with (tmp_path / "clips.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["clip_id", "uri", "labels"])
        w.writeheader()
        for i in range(7):
            x, _ = make_clip(np.random.default_rng([5, i]), ("urban", "natural")[i % 2], 1.0, 16000, 1)
            sf.write(audio / f"c{i}.wav", x, 16000, subtype="PCM_16")
            w.writerow({"clip_id": f"c{i}", "uri": str(audio / f"c{i}.wav"), "labels": "urban"})
    options = dict(embedders=["yamnet"], allow_random_weights=True, weights_cache=str(tmp_path / "no-weights"),
                   progress=False, features={"signals": ["raw"], "spectral": False})
    out = str(tmp_path / "out")
    ae.extract(str(tmp_path / "clips.csv"), out, limit=4, **options)
    assert main(["index", "--features", out, "--include-random-weights"]) == 0
    capsys.readouterr()
    done = ae.extract(str(tmp_path / "clips.csv"), out, **options)  # the resume: 3 clips in a new part
    assert done.record["indexes"] == [f"index {out}/index/yamnet.json extended: 7 clips (3 added)"]
    code, printed, _ = _run(capsys, "search", "--features", out, "--example", str(audio / "c5.wav"),
                            "--include-random-weights", "-k", "3")
    assert code == 0 and "7 clips in its index" in printed  # a clip of the table given by its file
    shutil.copy(audio / "c6.wav", tmp_path / "outside.wav")  # the same audio, not a clip of the table
    found = ae.search(out, str(tmp_path / "outside.wav"), include_random_weights=True, k=2,
                      weights_cache=str(tmp_path / "no-weights"))
    assert found.searched_by and found.embedded_from
    assert found.table["clip_id"][1].as_py() == "c6" and found.table["similarity"][1].as_py() > 0.99


def test_each_index_beside_an_output_is_brought_up_to_date_and_one_it_cannot_update_is_named(indexed, tmp_path):
    """What extract runs after writing its parts (``update_beside``), in this process: an output without an index
    costs nothing, each index of one is extended by the parts a run added, and a damaged manifest among them is one
    line naming it, the other indexes still updated."""
    assert vector_index.update_beside(str(tmp_path / "no-index")) == []
    out = _copy(indexed, tmp_path)
    vector_index.build(open_table(str(out)), "yamnet", ["yamnet"], "random", precision="i8", rebuild=True)
    _write(_table(out, seed=1, prefix="new"), out, first=10, parts=1)
    assert vector_index.update_beside(str(out)) == [
        f"index {out}/index/yamnet.json extended: {2 * ROWS} clips ({ROWS} added)"]  # at its own precision, i8
    manifest = json.loads((out / "index" / "yamnet.json").read_text())
    assert (manifest["embedder"], manifest["precision"], manifest["rows"]) == ("yamnet", "i8", 2 * ROWS)
    (out / "index" / "other.json").write_text("{not json")
    other, yamnet = vector_index.update_beside(str(out))
    assert other.startswith(f"index {out}/index/other.json not updated: ") and "\n" not in other
    assert yamnet == f"index {out}/index/yamnet.json current: {2 * ROWS} clips (0 added)"
    for name in ("other.json", "yamnet.json"):
        (out / "index" / name).unlink()
    assert vector_index.update_beside(str(out)) == []  # graphs and ids left, no manifest: no index

def test_export_embeddings_refuses_csv_and_copies_only_a_current_index(indexed, tmp_path, capsys):
    code, printed, err = _run(capsys, "export", str(indexed), "--output", str(tmp_path / "e.csv"), "--embeddings",
                              "--include-random-weights")
    assert code == 2 and not printed and err.count("\n") == 1 and "--embeddings writes Parquet" in err
    assert not (tmp_path / "e.csv").exists()
    out = _copy(indexed, tmp_path)
    _write(_table(out, seed=1, prefix="new"), out, first=10, parts=1)  # the index no longer covers the table
    code, printed, _ = _run(capsys, "export", str(out), "--output", str(tmp_path / "e.parquet"), "--embeddings",
                            "--include-random-weights")
    assert code == 0 and f"export: {2 * ROWS} clips" in printed
    assert "index: no index copied: the table has 1 part(s) it does not cover (acoustic-env index updates it)" in printed
    assert not (tmp_path / "e.parquet.index").exists()
    meta = json.loads(pa.parquet.read_schema(tmp_path / "e.parquet").metadata[b"acoustic-env.embeddings"])
    assert meta["clips"] == 2 * ROWS and meta["columns"] == {"yamnet": {"dim": 1024, "signal": "raw"}}


def test_export_embeddings_copies_a_current_index_that_search_then_answers_from(indexed, tmp_path, capsys):
    """``export --embeddings`` of a table whose index is current copies its graph and ids beside the export, its
    manifest naming the export's one file: ``search`` on the export answers from that index, as on the table."""
    export = tmp_path / "e.parquet"
    code, printed, _ = _run(capsys, "export", str(indexed), "--output", str(export), "--embeddings",
                            "--include-random-weights")
    where = tmp_path / "e.parquet.index" / "yamnet.json"
    assert code == 0 and f"index: {where}" in printed
    old, new = (json.loads(p.read_text()) for p in (indexed / "index" / "yamnet.json", where))
    assert new == {**old, "parts": {"e.parquet": export.stat().st_size}}
    for name in (old["graph"], old["ids"]):
        assert (where.parent / name).read_bytes() == (indexed / "index" / name).read_bytes()
    found = ae.search(str(export), "clip00007", embedder="yamnet", include_random_weights=True, k=10)
    assert f"{ROWS} clips in its index" in found.searched_by and found.table["clip_id"][0].as_py() == "clip00007"

def _recall(index: vector_index.VectorIndex, rows: np.ndarray, queries: range) -> float:
    """recall@10 of ``index`` against the exact 10 nearest of ``rows`` (its own stored rows), queries by key."""
    hits = 0
    for q in queries:
        truth = np.argsort(-(rows @ rows[q]), kind="stable")[:10]
        hits += len(set(index.nearest(rows[q], 10)[0].tolist()) & set(truth.tolist()))
    return hits / (10 * len(queries))


def test_an_index_built_in_shards_answers_as_one_graph_and_takes_new_parts_in_its_last(indexed, tmp_path):
    out = _copy(indexed, tmp_path)
    table = open_table(str(out))
    done = vector_index.build(table, "yamnet", ["yamnet"], "random", shards=3, rebuild=True)  # mapped in turn here
    assert (done.action, done.shards, done.rows) == ("rebuilt", 3, ROWS)
    one, three = (vector_index.load(open_table(str(d)), ["yamnet"], "random") for d in (indexed, out))
    assert three.manifest["shards"] and len(three.graph.shards) == 3 and three.graph.firsts == (0, 300, 600)
    assert three.ids.equals(one.ids)  # keys are table rows, shard after shard
    for a, b in zip(one.space.means + one.space.stds, three.space.means + three.space.stds):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    rows = np.stack([one.vector(i) for i in range(ROWS)])
    np.testing.assert_array_equal(three.vector(1000), rows[1000])  # from the third shard
    assert _recall(three, rows, range(0, ROWS, 40)) >= max(0.95, _recall(one, rows, range(0, ROWS, 40)) - 0.02)
    _write(_table(out, seed=1, prefix="new"), out, first=10, parts=1)
    done = vector_index.build(open_table(str(out)), "yamnet", ["yamnet"], "random")
    assert (done.action, done.added, done.shards) == ("extended", ROWS, 3)
    grown = vector_index.load(open_table(str(out)), ["yamnet"], "random")
    assert grown.graph.firsts == (0, 300, 600) and len(grown.graph.shards[-1]) == 600 + ROWS
    assert grown.nearest(grown.vector(ROWS + 3), 1)[0][0] == ROWS + 3
    assert vector_index.runs(["a", "b", "c", "d", "e"], 3) == [["a"], ["b", "c"], ["d", "e"]]
    assert vector_index.runs(["a"], 4) == [["a"]]


def test_rows_past_graph_rows_are_cut_into_even_graphs_and_new_parts_fill_the_last_then_new_ones(
        indexed, tmp_path, monkeypatch):
    monkeypatch.setattr(vector_index, "GRAPH_ROWS", 500)  # a million rows' cut (125,000 a graph) on 1,200
    assert [vector_index.graph_sizes(n) for n in (0, 500, 501, 1200)] == [[0], [500], [250, 251], [400, 400, 400]]
    out = _copy(indexed, tmp_path)
    done = vector_index.build(open_table(str(out)), "yamnet", ["yamnet"], "random", rebuild=True)
    assert (done.shards, done.rows) == (3, ROWS)
    one, cut = (vector_index.load(open_table(str(d)), ["yamnet"], "random") for d in (indexed, out))
    assert [len(g) for g in cut.graph.shards] == [400, 400, 400] and cut.graph.firsts == (0, 400, 800)
    assert cut.ids.equals(one.ids)
    rows = np.stack([one.vector(i) for i in range(ROWS)])
    assert _recall(cut, rows, range(0, ROWS, 40)) >= max(0.95, _recall(one, rows, range(0, ROWS, 40)) - 0.02)
    vector_index.build(open_table(str(out)), "yamnet", ["yamnet"], "random", shards=2, rebuild=True)
    halves = vector_index.load(open_table(str(out)), ["yamnet"], "random")  # 2 runs of 600 rows, 2 graphs each
    assert [len(g) for g in halves.graph.shards] == [300] * 4 and halves.ids.equals(one.ids)
    _write(_table(out, seed=1, prefix="new"), out, first=10, parts=1)
    done = vector_index.build(open_table(str(out)), "yamnet", ["yamnet"], "random")
    assert (done.action, done.added, done.shards) == ("extended", ROWS, 6)
    grown = vector_index.load(open_table(str(out)), ["yamnet"], "random")
    assert [len(g) for g in grown.graph.shards] == [300, 300, 300, 500, 500, 500] and _precisions(grown) == {"f16"}
    for key in (ROWS + 150, ROWS + 1000):  # in the last graph filled, in a new one
        assert grown.nearest(grown.vector(key), 1)[0][0] == key


@pytest.mark.slow  # a Ray instance's tasks: over 10 s on the 2-core machine
def test_a_build_on_ray_is_the_in_process_build_recall_for_recall(indexed, tmp_path, capsys, ray_session):
    out = _copy(indexed, tmp_path)
    code, printed, _ = _run(capsys, "index", "--features", str(out), "--embedder", "yamnet",
                            "--include-random-weights", "--shards", "2", "--rebuild")
    assert code == 0 and f"built again {out}/index/yamnet.json: {ROWS} clips, f16, 2 graphs" in printed
    one, two = (vector_index.load(open_table(str(d)), ["yamnet"], "random") for d in (indexed, out))
    assert len(two.graph.shards) == 2 and two.ids.equals(one.ids)
    for a, b in zip(one.space.means + one.space.stds, two.space.means + two.space.stds):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    rows = np.stack([one.vector(i) for i in range(ROWS)])
    assert _recall(two, rows, range(0, ROWS, 40)) >= max(0.95, _recall(one, rows, range(0, ROWS, 40)) - 0.02)
    code, printed, _ = _run(capsys, "search", "--features", str(out), "--example", "clip00007", *SEARCH)
    assert code == 0 and f"{ROWS} clips in its index" in printed


def test_another_embedders_index_under_this_ones_name_is_refused_then_built_beside_it(tmp_path, capsys):
    out = tmp_path / "two"
    _write(_table(out, seed=2, rows=300, embedders=("yamnet", "birdnet")), out, parts=2)  # both 1,024 wide, both random weights: only the columns tell them apart
    assert main(["index", "--features", str(out), "--embedder", "birdnet", "--include-random-weights"]) == 0
    (out / "index" / "birdnet.json").rename(out / "index" / "yamnet.json")  # as a hand copy or rename leaves it
    capsys.readouterr()
    _refused(capsys, out, "no longer matches", "built over birdnet (birdnet), not yamnet")
    kept = sorted(p.name for p in (out / "index").iterdir() if p.suffix != ".json")
    code, printed, _ = _run(capsys, "index", "--features", str(out), "--embedder", "yamnet",
                            "--include-random-weights")
    assert code == 0 and "built again" in printed and "300 clips" in printed
    assert set(kept) <= {p.name for p in (out / "index").iterdir()}  # birdnet's graph and ids are not yamnet's to delete
    assert json.loads((out / "index" / "yamnet.json").read_text())["columns"] == ["yamnet"]


# --- small tables, in this process: what each step of a build keeps (fast; make mutate runs them per mutant) ---

def _small(root: Path, rows: int = 40, parts: int = 2, **table: Any) -> Path:
    out = root / "small table"  # a space in the path, as a user's folder may hold
    _write(_table(out, rows=rows, **table), out, parts=parts)
    return out


def _precisions(index: vector_index.VectorIndex) -> set[str]:
    return {g.dtype.name.lower() for g in index.graph.shards}


def test_a_current_index_says_so_a_rebuild_of_the_same_rows_keeps_its_files_and_a_bad_precision_is_refused(
        tmp_path):
    out = _small(tmp_path)
    table = open_table(str(out))
    with pytest.raises(ConfigError) as caught:
        vector_index.build(table, "yamnet", ["yamnet"], "random", precision="f64")
    assert str(caught.value) == "precision: must be one of f32, f16, i8, got 'f64'" and not (out / "index").exists()
    done = vector_index.build(table, "yamnet", ["yamnet"], "random", shards=2)
    assert (done.action, done.why, done.shards) == ("built", "40 clips", 2) and 0 <= done.seconds < 60
    done = vector_index.build(table, "yamnet", ["yamnet"], "random")
    assert (done.action, done.why, done.added, done.rows, done.shards) == (
        "current", "it covers the table's 2 parts", 0, 40, 2) and 0 <= done.seconds < 60
    # a rebuild that writes the same bytes (one row a graph: no thread's order to change them) names the same files
    tiny = _small(tmp_path / "tiny", rows=2)
    vector_index.build(open_table(str(tiny)), "yamnet", ["yamnet"], "random", shards=2)
    files = sorted(p.name for p in (tiny / "index").iterdir())
    again = vector_index.build(open_table(str(tiny)), "yamnet", ["yamnet"], "random", shards=2, rebuild=True)
    assert again.action == "rebuilt" and sorted(p.name for p in (tiny / "index").iterdir()) == files
    assert len(vector_index.load(open_table(str(tiny)), ["yamnet"], "random")) == 2
    index = vector_index.load(table, ["yamnet"], "random")
    assert len(index) == 40 and _precisions(index) == {"f16"}
    # a row as float32, and a query given as one row of a matrix answered as the same query given flat
    assert index.vector(7).dtype == np.float32
    flat, row = index.nearest(index.vector(7), 5), index.nearest(index.vector(7)[None, :], 5)
    assert np.array_equal(index.vector(int(flat[0][0])), index.vector(7))  # its own row first (or an equal one)
    assert np.array_equal(flat[0], row[0]) and np.allclose(flat[1], row[1])
    # the file does not keep the search's candidates: a load sets them (recall 0.97 at 100,000 rows, 0.94 at 64)
    assert {g.expansion_search for g in index.graph.shards} == {vector_index.EXPANSION_SEARCH}
    # mapped from the file, not read into memory: a fresh process holds next to nothing of the graphs
    assert sum(g.memory_usage for g in index.graph.shards) < index.manifest["bytes"] / 4
    # another precision asked of a current index builds it again at that precision
    redone = vector_index.build(table, "yamnet", ["yamnet"], "random", precision="i8")
    assert (redone.action, redone.why, redone.precision) == ("rebuilt", "it covers the table's 2 parts", "i8")
    assert _precisions(vector_index.load(table, ["yamnet"], "random")) == {"i8"}
    # an index written before shards (no "shards" in its manifest) is one graph (this one is: one shard)
    where = out / "index" / "yamnet.json"
    where.write_text(json.dumps({k: v for k, v in json.loads(where.read_text()).items() if k != "shards"}))
    old = vector_index.load(table, ["yamnet"], "random")
    assert len(old.graph.shards) == 1 and np.array_equal(old.vector(int(old.nearest(old.vector(7), 1)[0][0])),
                                                         old.vector(7))


def test_an_extension_keeps_when_the_index_was_built_and_a_missing_graph_or_another_precision_is_not_extended(
        tmp_path):
    out = _small(tmp_path)
    vector_index.build(open_table(str(out)), "yamnet", ["yamnet"], "random")
    where = out / "index" / "yamnet.json"
    manifest = json.loads(where.read_text())
    where.write_text(json.dumps({**manifest, "built": "2020-01-02T03:04:05+00:00"}))  # built long ago
    added = _table(out, seed=1, prefix="new", rows=10)
    _write(added, out, first=10, parts=1)
    graph = out / "index" / manifest["graph"]
    kept = graph.read_bytes()
    graph.unlink()
    with pytest.raises(ConfigError) as caught:
        vector_index.build(open_table(str(out)), "yamnet", ["yamnet"], "random")
    assert str(caught.value) == (f"index: {graph}, named by yamnet.json, is missing; build it again: acoustic-env "
                                 f"index --features {out} --rebuild")
    graph.write_bytes(kept)
    done = vector_index.build(open_table(str(out)), "yamnet", ["yamnet"], "random")
    assert (done.action, done.added, done.rows) == ("extended", 10, 50)
    grown = json.loads(where.read_text())
    assert grown["built"] == "2020-01-02T03:04:05+00:00" and grown["updated"] > "2026"
    index = vector_index.load(open_table(str(out)), ["yamnet"], "random")
    assert _precisions(index) == {"f16"} and index.ids["clip_id"].to_pylist()[40:] == [f"new{i:05d}" for i in range(10)]
    # each new clip's key holds its own row, in the space fitted before, beside its own clip id
    rows = index.space.transform([vectors_to_numpy(added["yamnet"], 1024)])
    np.testing.assert_allclose(np.stack([index.vector(40 + i) for i in range(10)]), rows, atol=2e-3)
    _write(_table(out, seed=2, prefix="more", rows=10), out, first=20, parts=1)
    done = vector_index.build(open_table(str(out)), "yamnet", ["yamnet"], "random", precision="i8")
    assert (done.action, done.added, done.rows) == ("rebuilt", 60, 60)  # another precision: not an extension
    assert _precisions(vector_index.load(open_table(str(out)), ["yamnet"], "random")) == {"i8"}


def test_status_says_in_words_how_an_index_stands_against_its_table(tmp_path):
    out = _small(tmp_path)
    table = open_table(str(out))
    where = out / "index" / "yamnet.json"
    # where: beside features/, given as the output or as features/; in a plain folder of parts; beside one file
    assert vector_index.index_dir(table) == str(out / "index") == vector_index.index_dir(open_table(str(out / "features")))
    plain = Path(shutil.copytree(out / "features", tmp_path / "plain"))
    assert vector_index.index_dir(open_table(str(plain))) == str(plain / "index")
    one = str(plain / "part-run00-x.parquet")
    assert vector_index.index_dir(open_table(one)) == one + ".index"
    found = vector_index.status(table, ["yamnet"], "random")
    assert (found.state, found.why, found.manifest, found.where) == ("missing", f"no index at {where}", None, str(where))
    assert vector_index.copy_beside(table, ["yamnet"], "random", table) == f"no index copied: no index at {where}"
    assert vector_index.load(table, ["yamnet"], "random") is None  # search then compares every clip
    assert vector_index.index_name(["yamnet_fg", "yamnet_bg"]) == "yamnet_fg+yamnet_bg"
    vector_index.build(table, "yamnet", ["yamnet"], "random")
    found = vector_index.status(table, ["yamnet"], "random")
    assert (found.state, found.why, found.new_parts) == ("current", "it covers the table's 2 parts", ())
    other = "0123456789abcdef" * 4
    manifest = json.loads(where.read_text())
    found = vector_index.status(table, ["yamnet"], other)
    assert (found.state, found.why, found.manifest) == ("other_embedder", "it was built from yamnet weights random, "
                                                        f"and the table's yamnet now hold weights {other[:12]}", manifest)
    where.write_text(json.dumps({**manifest, "weights": other}))
    assert vector_index.status(table, ["yamnet"], "f" * 64).why == (
        f"it was built from yamnet weights {other[:12]}, and the table's yamnet now hold weights {'f' * 12}")
    where.write_text(json.dumps({**manifest, "columns": ["birdnet", "yamnet"], "embedder": "birdnet"}))
    found = vector_index.status(table, ["yamnet"], "random")
    assert (found.state, found.why) == ("other_embedder", "it was built over birdnet, yamnet (birdnet), not yamnet")
    # an index over two columns (yamnet's two signals, say) is named and described by both
    both = out / "index" / "yamnet+birdnet.json"
    both.write_text(json.dumps(manifest))
    assert vector_index.status(table, ["yamnet", "birdnet"], "random").why == (
        "it was built over yamnet (yamnet), not yamnet, birdnet")
    both.write_text(json.dumps({**manifest, "columns": ["yamnet", "birdnet"]}))
    assert vector_index.status(table, ["yamnet", "birdnet"], other).why == (
        f"it was built from yamnet weights random, and the table's yamnet, birdnet now hold weights {other[:12]}")
    both.unlink()
    where.write_text(json.dumps({**manifest, "rows": 41}))  # a manifest whose graph holds fewer rows than it says
    with pytest.raises(ConfigError) as caught:
        vector_index.load(table, ["yamnet"], "random")
    assert str(caught.value) == (f"index: {out / 'index' / manifest['graph']} does not hold the 41 rows it should; "
                                 f"build it again: acoustic-env index --features {out} --rebuild")
    where.write_text(json.dumps({k: v for k, v in manifest.items() if k != "weights"}))
    with pytest.raises(ConfigError) as caught:
        vector_index.status(table, ["yamnet"], "random")
    assert str(caught.value) == (f"index: {where} is damaged (KeyError: 'weights'); build it again: acoustic-env "
                                 f"index --features {out}")
    where.write_text(json.dumps(manifest))
    _write(_table(out, seed=1, prefix="new", rows=10), out, first=10, parts=1)
    table = open_table(str(out))
    found = vector_index.status(table, ["yamnet"], "random")
    assert (found.state, found.why, found.new_parts) == (
        "extended", "the table has 1 part(s) it does not cover", (str(out / "features" / "part-run10-x.parquet"),))
    with pytest.raises(ConfigError) as caught:
        vector_index.load(table, ["yamnet"], "random")
    assert str(caught.value) == (f"index: {where} no longer matches the table: the table has 1 part(s) it does not "
                                 f"cover; update it (acoustic-env index --features {out}) or search every clip with "
                                 "--exact")
    first, second = sorted((out / "features").iterdir())[:2]
    write_parquet(pa.parquet.read_table(second).slice(1), str(second))  # rewritten, as duplicate repair does
    assert vector_index.status(table, ["yamnet"], "random").why == f"1 part(s) it covers were rewritten ({second.name})"
    first.unlink()
    found = vector_index.status(open_table(str(out)), ["yamnet"], "random")
    assert (found.state, found.why) == ("replaced", f"1 part(s) it covers are gone ({first.name})")


def test_every_clips_id_and_uri_are_kept_whether_its_part_holds_uris_or_not(tmp_path):
    """The ids beside the graph are the table's clip ids and URIs in table order: a part written without a URI
    column (an older or hand-made part beside extract's) gives its clips none, the others keep theirs."""
    table = _table(tmp_path, rows=40)
    uris = table["uri"].to_pylist()
    mixed, bare = tmp_path / "mixed", tmp_path / "bare"
    write_parquet(table.slice(0, 20).drop_columns(["uri"]), str(mixed / "features" / "part-run00-x.parquet"))
    write_parquet(table.slice(20), str(mixed / "features" / "part-run01-x.parquet"))
    _write(table.drop_columns(["uri"]), bare)
    for out, want in ((mixed, [None] * 20 + uris[20:]), (bare, [None] * 40)):
        assert vector_index.build(open_table(str(out)), "yamnet", ["yamnet"], "random").rows == 40
        ids = vector_index.load(open_table(str(out)), ["yamnet"], "random").ids
        assert ids["clip_id"].to_pylist() == table["clip_id"].to_pylist() and ids["uri"].to_pylist() == want
    assert len(set(uris)) == 40 and None not in uris


def test_rows_fill_the_last_graph_to_its_size_then_new_ones_keyed_in_order_at_the_indexs_precision(monkeypatch):
    monkeypatch.setattr(vector_index, "GRAPH_ROWS", 4)
    rows = DistanceSpace.fit([np.random.default_rng(0).standard_normal((9, 6))]).transform(
        [np.random.default_rng(0).standard_normal((9, 6))])
    graphs: list = []
    vector_index.add_rows(graphs, [2, 3], 10, rows[:7], "i8")  # two rows past the sizes' end: a graph of up to 4
    assert [sorted(g.keys) for g in graphs] == [[10, 11], [12, 13, 14], [15, 16]]
    vector_index.add_rows(graphs, (), 17, rows[7:], "i8")  # the last graph filled to GRAPH_ROWS, then a new one
    assert [len(g) for g in graphs] == [2, 3, 4]
    assert {g.dtype.name.lower() for g in graphs} == {"i8"}
    for graph, keys in zip(graphs, ([10, 11], [12, 13, 14], [15, 16, 17, 18])):
        for key in keys:
            assert graph.search(rows[key - 10], 1).keys[0] == key  # each key holds its own row


def test_the_space_keeps_a_dimension_centred_on_zero_and_names_every_column_without_a_finite_vector():
    x = np.array([[1.0, 5.0, 0.3], [-1.0, 5.001, 0.3], [1.0, 4.999, 0.3], [-1.0, 5.0, 0.3]])
    y = np.array([[0.0, 2.0], [1.0, 2.0], [0.0, 2.0], [3.0, 2.0]])
    shares = [(2, [x[:2].sum(0), y[:2].sum(0)], [(x[:2] ** 2).sum(0), (y[:2] ** 2).sum(0)]),
              (2, [x[2:].sum(0), y[2:].sum(0)], [(x[2:] ** 2).sum(0), (y[2:] ** 2).sum(0)])]
    space, fitted = vector_index.space_from(shares, ["a", "b"]), DistanceSpace.fit([x, y])
    for got, want in zip(space.means + space.stds, fitted.means + fitted.stds):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    assert [list(s > 0) for s in space.stds] == [[True, True, False], [True, False]]
    with pytest.raises(ConfigError, match=r"^features: no clip has finite a, b vectors: nothing to index$"):
        vector_index.space_from([(0, [np.zeros(3), np.zeros(2)], [np.zeros(3), np.zeros(2)])], ["a", "b"])


def test_an_index_on_object_storage_of_pretrained_weights_is_built_then_extended_by_update_beside(tmp_path, request):
    """On object storage (fsspec's memory filesystem: the URI, its listing and Arrow's reads as S3's) a table of
    pretrained weights: the run that adds a part extends its index, in the space and weights it was built with."""
    import fsspec

    weights = "0123456789abcdef" * 4
    table = _table(tmp_path, rows=30, weights=weights)
    root = f"/{uuid.uuid4().hex}"  # the memory filesystem outlives the test: a name no other run has used
    request.addfinalizer(lambda: fsspec.filesystem("memory").rm(root, recursive=True))
    out = f"memory://{root}/out"
    for i in range(2):
        write_parquet(table.slice(15 * i, 15), f"{out}/features/part-run{i:02d}-x.parquet")
    done = vector_index.build(open_table(out), "yamnet", ["yamnet"], weights)
    assert (done.action, done.rows, done.where) == ("built", 30, f"{out}/index/yamnet.json")
    added = _table(tmp_path, seed=1, prefix="new", rows=10, weights=weights)
    write_parquet(added, f"{out}/features/part-run05-x.parquet")
    assert vector_index.update_beside(out) == [f"index {out}/index/yamnet.json extended: 40 clips (10 added)"]
    index = vector_index.load(open_table(out), ["yamnet"], weights)
    assert index.ids["clip_id"].to_pylist()[30:] == [f"new{i:05d}" for i in range(10)]
    rows = index.space.transform([vectors_to_numpy(pa.concat_tables([table, added])["yamnet"], 1024)])
    np.testing.assert_allclose(np.stack([index.vector(i) for i in range(40)]), rows, atol=2e-3)  # the first 30's space
