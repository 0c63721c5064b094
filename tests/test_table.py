"""The one feature-table reader: which columns, which rows, which groups, and what was left out and why.

Tables are synthetic (``acoustic_env.demo.tables``) with extra columns added the way
an extract run writes them: a new embedder described only by its metadata, tagger
scores, random-weight columns, broken rows. No Ray here.
"""

from __future__ import annotations

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from acoustic_env.vocabulary.tasks import load_task
from acoustic_env.config import ConfigError
from acoustic_env.demo.tables import NATURAL, URBAN, synthetic_table, write_features
from acoustic_env.table import (
    RANDOM_REASON,
    SCORES_REASON,
    SIGNAL_REASON,
    IMAGE_TYPE,
    UNREQUESTED_REASON,
    decode_images,
    encode_images,
    metadata_json,
    open_table,
    read_features,
    read_metadata,
    select_groups,
    vector_type,
)

# the CPU columns in the synthetic table's (= the extractor's) schema order
PER_SIGNAL = [f"{s}_{g}" for g in ("raw", "fg", "bg") for s in ("indices", "spectral", "mps")]


def _set_vectors(table: pa.Table, name: str, matrix: np.ndarray, meta: dict | None = None,
                 null_rows: tuple[int, ...] = ()) -> pa.Table:
    """Add (or replace) a vector column, and its metadata entry, as an extract run would write it."""
    mask = np.zeros(len(matrix), dtype=bool)
    mask[list(null_rows)] = True
    column = pa.FixedSizeListArray.from_arrays(pa.array(matrix.astype(np.float32).ravel()), matrix.shape[1],
                                               mask=pa.array(mask))
    field = pa.field(name, vector_type(matrix.shape[1]))
    metadata = read_metadata(table.schema)
    if meta is not None:
        metadata["columns"][name] = meta
    if name in table.column_names:
        table = table.set_column(table.schema.get_field_index(name), field, column)
    else:
        table = table.append_column(field, column)
    return table.replace_schema_metadata(metadata_json(metadata))


def _rich_table(n: int = 40, seed: int = 0) -> pa.Table:
    """Indices and MPS per signal; vggish with random weights (run-level metadata); yamnet with random
    weights and its pretrained-tagger scores (column-level metadata); a new embedder ``clap``."""
    rng = np.random.default_rng(seed)
    table = synthetic_table(n, seed=seed, embedders=("vggish",))
    table = _set_vectors(table, "yamnet", rng.standard_normal((n, 8)), {"shape": [8], "source": "yamnet",
                                                                         "weights": "random"})
    table = _set_vectors(table, "yamnet_scores", rng.random((n, 5)), {"shape": [5], "source": "yamnet",
                                                                      "weights": "random"})
    return _set_vectors(table, "clap", rng.standard_normal((n, 16)), {"shape": [16], "source": "clap",
                                                                      "weights": "sha256:abc"})


def _write(table: pa.Table, tmp_path, n_parts: int = 2) -> str:
    return write_features(table, str(tmp_path / "extract"), n_parts=n_parts)


def _direct(path: str, column: str) -> np.ndarray:
    """A column read with pyarrow alone, in clip_id order."""
    table = pq.read_table(path).sort_by("clip_id")
    return np.asarray(table[column].combine_chunks().flatten(), np.float32).reshape(table.num_rows, -1)


# --- columns -------------------------------------------------------------------------

def test_columns_chosen_and_left_out_with_reasons(tmp_path):
    source = _write(_rich_table(), tmp_path)
    features = read_features(source)
    assert list(features.columns) == [*PER_SIGNAL, "clap"]  # a new embedder flows through, schema order
    assert features.excluded["columns"] == {"vggish": RANDOM_REASON, "yamnet": RANDOM_REASON,
                                            "yamnet_scores": SCORES_REASON}
    for name in features.columns:
        np.testing.assert_array_equal(features.X[name], _direct(f"{source}/features", name))
    np.testing.assert_array_equal(features.matrix(), np.hstack([features.X[c] for c in features.columns]))
    info = {g.name: g for g in features.feature_groups}
    assert (info["clap"].source, info["clap"].weights, info["clap"].dim) == ("clap", "sha256:abc", 16)
    assert (info["mps_fg"].source, info["mps_fg"].signal) == ("mps", "fg") and info["mps_fg"].grid == (16, 33)
    assert info["indices_raw"].feature_names()[0].startswith("indices_raw:") and "wf=" in info["mps_fg"].feature_names()[0]
    assert len(features.feature_names()) == features.matrix().shape[1]

    with_random = read_features(source, include_random_weights=True)
    assert list(with_random.columns) == [*PER_SIGNAL, "vggish", "yamnet", "clap"]
    assert with_random.excluded["columns"] == {"yamnet_scores": SCORES_REASON}  # scores never


def test_feature_groups_name_sources_or_columns_and_signals_narrow(tmp_path):
    source = _write(_rich_table(), tmp_path)
    features = read_features(source, feature_groups=["mps", "clap"], signals=("fg", "bg"))
    assert list(features.columns) == ["mps_fg", "mps_bg", "clap"]
    excluded = features.excluded["columns"]
    assert excluded["mps_raw"] == SIGNAL_REASON and excluded["indices_fg"] == UNREQUESTED_REASON
    assert excluded["vggish"] == RANDOM_REASON
    # a column name selects that column only, even where it is also a source's name
    assert list(read_features(source, feature_groups=["indices_raw", "yamnet"],
                              include_random_weights=True).columns) == ["indices_raw", "yamnet"]


@pytest.mark.parametrize("options, message", [
    ({"feature_groups": ["nope"]}, "feature_groups: nope matches no feature group of "),
    ({"feature_groups": ["vggish"]}, "feature_groups: vggish matches no feature group of "),
    ({"feature_groups": ["yamnet_scores"]}, "feature_groups: yamnet_scores matches no feature group of "),
    ({"feature_groups": ["indices"], "signals": ()}, "signals: no feature group left"),
])
def test_bad_groups_are_one_line(tmp_path, options, message):
    source = _write(_rich_table(), tmp_path)
    with pytest.raises(ConfigError) as info:
        read_features(source, **options)
    text = str(info.value)
    assert text.startswith(message) and "\n" not in text
    if message.startswith("feature_groups"):  # what the table has, and why the rest is left out
        assert "it has indices_raw" in text and "clap" in text and f"vggish: {RANDOM_REASON}" in text


# --- rows and targets ----------------------------------------------------------------

def _direct_table(table: pa.Table, column: str) -> np.ndarray:
    return np.asarray(table[column].combine_chunks().flatten(), np.float32).reshape(table.num_rows, -1).copy()


def _broken_table(n: int = 30) -> pa.Table:
    """Row 0 ambiguous, row 1 no class, row 2 NaN and row 3 a null vector in chosen groups, row 4 inf in
    the new embedder, row 5 NaN only in a random-weight column (not chosen, so kept)."""
    table = _rich_table(n)
    labels = table["labels"].to_pylist()
    labels[0], labels[1] = [URBAN, NATURAL], ["/m/other"]
    table = table.set_column(table.schema.get_field_index("labels"), "labels", pa.array(labels, pa.list_(pa.string())))
    idx = _direct_table(table, "indices_raw")
    idx[2, 7] = np.nan
    table = _set_vectors(table, "indices_raw", idx)
    table = _set_vectors(table, "mps_raw", _direct_table(table, "mps_raw"), null_rows=(3,))
    clap = _direct_table(table, "clap")
    clap[4, 0] = np.inf
    table = _set_vectors(table, "clap", clap)
    vggish = _direct_table(table, "vggish")
    vggish[5] = np.nan
    return _set_vectors(table, "vggish", vggish)


def test_broken_rows_and_unscorable_clips_are_left_out_and_counted(tmp_path):
    source = _write(_broken_table(), tmp_path, n_parts=3)
    task = load_task("urban_natural")
    features = read_features(source, task=task)
    assert features.excluded["rows"] == {"no_class": 1, "ambiguous": 1, "missing_features": 1,
                                         "non_finite_features": 2}
    assert features.n_read == 30 and len(features) == 25
    ids = [f"clip{i:07d}" for i in range(30)]
    assert list(features.ids) == ids[5:] and len(features.y) == 25
    assert all(np.isfinite(m).all() for m in features.X.values())
    labels = pq.read_table(f"{source}/features").sort_by("clip_id")["labels"].to_pylist()[5:]
    assert features.y.tolist() == [task.assign(ls) for ls in labels]
    # the rule is per chosen group: with only the indices, the MPS and clap rows are fine
    by_name = read_features(source, task="urban_natural", feature_groups=["indices"])  # a task by name, too
    assert by_name.excluded["rows"]["non_finite_features"] == 1 and by_name.excluded["rows"]["missing_features"] == 0


def test_multi_label_keeps_clips_without_a_class(tmp_path):
    task = load_task(str(_three_classes(tmp_path)))
    source = _write(_broken_table(), tmp_path)
    features = read_features(source, task=task, feature_groups=["indices"])
    assert features.excluded["rows"] == {"missing_features": 0, "non_finite_features": 1}  # no label reasons
    assert features.y.shape == (29, 3) and features.y.dtype == np.int64
    assert features.y[0].tolist() == [1, 1, 0] and features.y[1].tolist() == [0, 0, 0]  # both classes; none


def _three_classes(tmp_path):
    path = tmp_path / "three.yaml"
    path.write_text(f"name: three\nkind: multi_label\nclasses:\n  urban: {{mids: ['{URBAN}']}}\n"
                    f"  natural: {{mids: ['{NATURAL}']}}\n  indoor: {{mids: ['/t/dd00125']}}\n")
    return path


def test_labels_are_required_for_a_task(tmp_path):
    table = synthetic_table(10).drop_columns(["labels"])
    source = _write(table, tmp_path)
    assert len(read_features(source)) == 10
    with pytest.raises(ConfigError, match="features: .* has no labels column"):
        read_features(source, task=load_task("urban_natural"))


# --- groups --------------------------------------------------------------------------

def test_a_clip_without_a_group_is_its_own_group(tmp_path):
    table = synthetic_table(9, rows_per_group=3)
    groups = table["group"].to_pylist()
    groups[4] = None
    table = table.set_column(table.schema.get_field_index("group"), "group", pa.array(groups, pa.string()))
    features = read_features(_write(table, tmp_path))
    assert features.has_groups and features.groups.tolist() == [
        "rec000000"] * 3 + ["rec000001", "clip:clip0000004", "rec000001"] + ["rec000002"] * 3
    assert features.clips["group"].null_count == 1  # the facts keep the table's value
    ungrouped = read_features(_write(table.drop_columns(["group"]), tmp_path / "b"))
    assert not ungrouped.has_groups and ungrouped.groups.tolist() == [f"clip:clip{i:07d}" for i in range(9)]


# --- sources and streaming -----------------------------------------------------------

def test_sources_and_clip_subsets(tmp_path):
    table = synthetic_table(12)
    root = _write(table, tmp_path)
    pq.write_table(table, tmp_path / "one.parquet")
    for source in (root, f"{root}/features", str(tmp_path / "one.parquet")):
        features = read_features(source, feature_groups=["indices_raw"])
        assert list(features.ids) == table["clip_id"].to_pylist()
        np.testing.assert_array_equal(features.X["indices_raw"], _direct(str(tmp_path / "one.parquet"), "indices_raw"))
    subset = read_features(root, feature_groups=["indices_raw"], clip_ids={"clip0000007", "clip0000002", "gone"})
    assert list(subset.ids) == ["clip0000002", "clip0000007"] and subset.n_read == 2
    np.testing.assert_array_equal(subset.X["indices_raw"], _direct(str(tmp_path / "one.parquet"), "indices_raw")[[2, 7]])
    for missing, message in ((str(tmp_path / "nothing"), "features: no Parquet parts in "),
                             (str(tmp_path / "none.parquet"), "features: no such Parquet file: ")):
        with pytest.raises(ConfigError) as info:
            read_features(missing)
        assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_parts_of_different_runs(tmp_path):
    """A later run added a column: earlier rows lack it (counted as missing); random in one part is random."""
    table = _rich_table(20)
    first = table.drop_columns(["clap"]).slice(0, 10)
    meta = read_metadata(table.schema)
    meta["columns"]["clap"]["weights"] = "random"
    second = table.slice(10).replace_schema_metadata(metadata_json(meta))
    out = tmp_path / "extract" / "features"
    out.mkdir(parents=True)
    pq.write_table(first, out / "part-a.parquet")
    pq.write_table(table.slice(10), out / "part-b.parquet")
    features = read_features(str(tmp_path / "extract"), feature_groups=["clap"])
    assert list(features.ids) == [f"clip{i:07d}" for i in range(10, 20)]
    assert features.excluded["rows"] == {"missing_features": 10, "non_finite_features": 0}
    pq.write_table(table.slice(10, 5), out / "part-b.parquet")  # the later run's part holds the other five
    pq.write_table(second.slice(5), out / "part-c.parquet")
    assert read_features(str(tmp_path / "extract")).excluded["columns"]["clap"] == RANDOM_REASON


def test_streamed_read_equals_in_memory(tmp_path):
    source = _write(_broken_table(50), tmp_path, n_parts=4)
    task = load_task("urban_natural")
    memory = read_features(source, task=task)
    streamed = read_features(source, task=task, max_bytes=0)
    assert streamed.X is None and memory.X is not None
    assert list(streamed.ids) == list(memory.ids) and streamed.excluded == memory.excluded
    np.testing.assert_array_equal(streamed.y, memory.y)
    np.testing.assert_array_equal(streamed.groups, memory.groups)
    seen = np.zeros(len(memory), dtype=int)
    for pos, mats in streamed.stream(batch_rows=7):
        seen[pos] += 1
        for name, m in mats.items():
            np.testing.assert_array_equal(m, memory.X[name][pos])
    assert (seen == 1).all()
    rows = np.array([30, 2, 17])
    for name, m in streamed.rows(rows).items():
        np.testing.assert_array_equal(m, memory.X[name][rows])
    with pytest.raises(ValueError, match="streamed"):
        streamed.matrix()


def test_reads_object_storage(s3_endpoint, tmp_path):
    fsspec.filesystem("s3").mkdir("table-test")
    table = synthetic_table(12, embedders=("vggish",))
    source = write_features(table, "s3://table-test/extract", n_parts=2)
    features = read_features(source, feature_groups=["mps_fg"], max_bytes=0)
    assert list(features.ids) == table["clip_id"].to_pylist()
    assert features.excluded["columns"]["vggish"] == RANDOM_REASON
    pq.write_table(table, tmp_path / "one.parquet")
    np.testing.assert_array_equal(features.rows(np.arange(12))["mps_fg"], _direct(str(tmp_path / "one.parquet"),
                                                                                   "mps_fg"))


def test_an_image_column_round_trips_within_half_a_step_and_is_no_feature_group(tmp_path):
    """The log-mel images' 8-bit column: each cell back within half its clip's step, nulls kept, and a reader of the
    feature groups never takes the image column for one (it would be a 64k-wide 'vector')."""
    rng = np.random.default_rng(0)
    images = [rng.normal(-40, 15, (64, 101)).astype(np.float32), None, np.full((64, 7), -3.0, np.float32)]
    column = encode_images(images)
    assert column.type == IMAGE_TYPE
    back = decode_images(pa.chunked_array([column]))
    assert back[1] is None and back[2].shape == (64, 7) and np.all(back[2] == -3.0)
    step = (images[0].max() - images[0].min()) / 255
    assert back[0].shape == (64, 101) and np.abs(back[0] - images[0]).max() <= step / 2 + 1e-4
    table = pa.table({"clip_id": ["a", "b", "c"], "indices_raw": pa.array([[1.0]] * 3, vector_type(1)),
                      "logmel": column})
    (tmp_path / "features").mkdir()
    pq.write_table(table, tmp_path / "features" / "part-0.parquet")
    chosen, excluded = select_groups(open_table(str(tmp_path)))
    assert [g.name for g in chosen] == ["indices_raw"] and "logmel" not in excluded


def test_a_clip_held_by_two_rows_is_refused_naming_the_files(tmp_path, capsys):
    """Issue 60, item 9: a clip in two parts (a file copied into features/) gave a job whichever row it read
    last and counted the other as missing, saying nothing; now one line names a clip and the files."""
    from acoustic_env.cli import main
    from acoustic_env.table import selection

    source = write_features(synthetic_table(12, seed=1), str(tmp_path / "t"))
    first = tmp_path / "t" / "features" / "part-synthetic-0000.parquet"
    # named as a run names its parts (any other file there is not the table's: test_labels_hostile.py)
    pq.write_table(pq.read_table(first).slice(0, 3), tmp_path / "t" / "features" / "part-found.parquet")
    said = (rf"^features: 3 clip id\(s\) of {source} are held by more than one row \(e.g. 'clip0000000', in "
            r"part-found.parquet, part-synthetic-0000.parquet\): a table holds each clip once")
    for read in (read_features, selection):  # the jobs' reader, and the dry run's
        with pytest.raises(ConfigError, match=said):
            read(source)
    assert main(["export", source, "--output", str(tmp_path / "e.parquet")]) == 2
    assert capsys.readouterr().err.startswith("acoustic-env: error: features: 3 clip id(s) of ")
    assert len(read_features(source, clip_ids=["clip0000005", "clip0000006"])) == 2  # the clips asked for: each once
