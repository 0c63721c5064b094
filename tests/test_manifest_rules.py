"""The clip-list rules one by one (acoustic_env/audio/manifest.py): formats, labels, ids, rejected rows.

Fast and direct: each test pins one rule whose silent failure would drop, duplicate or mislabel clips.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from acoustic_env.audio import manifest
from acoustic_env.audio.manifest import CLIP_SCHEMA, ManifestError, detect_format, read_manifest
from acoustic_env.csv_writer import csv_bytes

#: The columns every read list has: the clip's own, then the pipeline's error columns.
OUT_SCHEMA = CLIP_SCHEMA.append(pa.field("error_stage", pa.string())).append(
    pa.field("error_type", pa.string())).append(pa.field("error_message", pa.string()))


def _csv(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("name,fmt", [
    ("l.PQ", "parquet"), ("l.parquet", "parquet"), ("l.ndjson", "jsonl"), ("l.json", "jsonl"),
    ("l.jsonl?x=1", "jsonl")])
def test_the_format_is_told_from_the_name_in_any_case_and_without_the_query(tmp_path, name, fmt):
    assert detect_format(str(tmp_path / name)) == fmt


# --- the vectorised (Arrow) rules and the per-row (Python) rules give the same clips ---

#: One value of each kind a column may hold, as text: what both rule sets must read alike.
TEXT_COLUMNS = {
    "clip_id": ["id-a", "", "c", "d", "e", "f"],
    "uri": ["/data/./a.wav", " /data/b.wav ", "s3://bucket/c.flac", "https://h/d.wav", "/e.wav", "/f.wav"],
    "start_s": ["1.5", "", "2", "0.25", "", "3"],
    "end_s": ["", "4.5", "10", "", "7", "8"],
    "labels": ["a;b", "a,b", " x , y ", "", "a;b,c", "z"],
    "group": ["g", "", "h", "", "g", "k"],
}
EXPECTED = {
    "clip_id": ["id-a", "b", "c", "d", "e", "f"],  # an empty clip_id is taken from the file name
    "uri": ["/data/./a.wav", "/data/b.wav", "s3://bucket/c.flac", "https://h/d.wav", "/e.wav", "/f.wav"],
    "start_s": [1.5, None, 2.0, 0.25, None, 3.0],
    "end_s": [None, 4.5, 10.0, None, 7.0, 8.0],
    "labels": [["a", "b"], ["a", "b"], ["x", "y"], [], ["a", "b,c"], ["z"]],
    "group": ["g", None, "h", None, "g", "k"],
}


@pytest.mark.parametrize("type_", [pa.string(), pa.large_string()])
def test_text_columns_read_alike_by_the_vectorised_and_the_per_row_rules(tmp_path, type_):
    """Plain text columns go through Arrow compute, others (large_string here) through Python row by row."""
    path = tmp_path / "m.parquet"
    pq.write_table(pa.table({k: pa.array(v, type_) for k, v in TEXT_COLUMNS.items()}), path)
    m = read_manifest(str(path))
    assert m.table.schema.equals(OUT_SCHEMA)
    assert {k: m.table[k].to_pylist() for k in EXPECTED} == EXPECTED
    assert m.duplicates == 0 and m.ids_made_unique == 0


def test_a_plain_text_list_is_read_without_python_per_row(tmp_path, monkeypatch):
    """The vectorised rules cover plain text (millions of rows): none of its columns falls back to the
    per-row rules, which run Python for each row."""
    cols = {**TEXT_COLUMNS, "clip_id": EXPECTED["clip_id"]}  # a derived id needs the file name, row by row
    text = "clip_id,uri,start_s,end_s,labels,group\n" + "".join(
        ",".join(f'"{cols[k][i]}"' for k in cols) + "\n" for i in range(6))
    path = _csv(tmp_path / "m.csv", text)

    def per_row(*args, **kwargs):
        raise AssertionError(f"per-row rule on {args[1]}")

    monkeypatch.setattr(manifest, "_map_rows", per_row)
    t = read_manifest(path).table
    assert {k: t[k].to_pylist() for k in EXPECTED} == EXPECTED


def test_a_json_list_of_labels_sends_the_labels_column_row_by_row_with_the_same_split(tmp_path):
    """One JSON list among the labels leaves the whole column to the per-row rule: the other rows split
    as the vectorised rule splits them (";" first, else ","), blank entries and nulls dropped."""
    labels = ['["a", " ", "b"]', "a;b", "a,b", " x , y ", "", "a;b,c"]
    path = tmp_path / "m.parquet"
    pq.write_table(pa.table({"uri": [f"/d/{i}.wav" for i in range(6)], "labels": labels}), path)
    assert read_manifest(str(path)).table["labels"].to_pylist() == [
        ["a", "b"], ["a", "b"], ["a", "b"], ["x", "y"], [], ["a", "b,c"]]
    lists = tmp_path / "l.parquet"
    pq.write_table(pa.table({"uri": ["/d/0.wav", "/d/1.wav"], "labels": [["a", None, " ", " b "], None]}), lists)
    assert read_manifest(str(lists)).table["labels"].to_pylist() == [["a", "b"], []]


def test_a_null_in_a_text_labels_column_is_no_label(tmp_path):
    path = tmp_path / "m.parquet"
    pq.write_table(pa.table({"uri": ["/d/0.wav", "/d/1.wav"], "labels": ["a,b", None]}), path)
    assert read_manifest(str(path)).table["labels"].to_pylist() == [["a", "b"], []]


def test_numbers_and_ids_of_other_types_are_read_as_their_text(tmp_path):
    path = tmp_path / "m.parquet"
    pq.write_table(pa.table({"clip_id": pa.array([7, None], pa.int64()), "uri": ["/d/x.wav", "/d/y.wav"],
                             "start_s": pa.array([1, None], pa.int64()), "end_s": [2.5, None],
                             "group": pa.array([3, None], pa.int64())}), path)
    t = read_manifest(str(path)).table
    assert t["clip_id"].to_pylist() == ["7", "y"] and t["group"].to_pylist() == ["3", None]
    assert t["start_s"].to_pylist() == [1.0, None] and t["end_s"].to_pylist() == [2.5, None]


def test_an_empty_list_of_any_column_types_is_an_empty_table_of_the_clip_columns(tmp_path):
    path = tmp_path / "m.parquet"
    pq.write_table(pa.table({"clip_id": pa.array([], pa.int64()), "uri": pa.array([], pa.large_string()),
                             "start_s": pa.array([], pa.float64()), "end_s": pa.array([], pa.float64()),
                             "labels": pa.array([], pa.list_(pa.string())), "site": pa.array([], pa.string())}),
               path)
    m = read_manifest(str(path))
    assert m.rows == 0 and m.table.schema.equals(OUT_SCHEMA.insert(6, pa.field("site", pa.string())))
    empty = read_manifest(_csv(tmp_path / "e.csv", ""))
    assert empty.rows == 0 and empty.table.schema.equals(OUT_SCHEMA)
    rooted = read_manifest(_csv(tmp_path / "h.csv", "uri\n"), allowed_roots=("/data",))
    assert rooted.rows == 0 and rooted.table.schema.equals(OUT_SCHEMA)
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "notes.txt").write_text("no audio")
    none = read_manifest(str(tmp_path / "dir"))
    assert none.rows == 0 and none.table.schema.equals(OUT_SCHEMA)


# --- CSV specifics ---

def test_a_csv_keeps_every_value_as_written(tmp_path):
    """Text stays text: no number or null guessed from "007", "NA", "null" or an empty cell; a quoted value
    may span lines; a byte-order mark does not hide the first column's name."""
    text = 'clip_id,uri,site,note\n007,/d/a.wav,NA,"two\nlines"\nnull,/d/b.wav,,x\n'
    path = tmp_path / "m.csv"
    path.write_bytes(text.encode("utf-8-sig"))
    t = read_manifest(str(path)).table
    assert t["clip_id"].to_pylist() == ["007", "null"]
    assert t["site"].to_pylist() == ["NA", ""] and t["note"].to_pylist() == ["two\nlines", "x"]


def test_blank_lines_before_the_header_lose_no_row(tmp_path):
    m = read_manifest(_csv(tmp_path / "m.csv", "\n\nuri,labels\n/a/x.wav,dog\n/a/y.wav,cat\n"))
    assert m.rows == 2 and m.table["labels"].to_pylist() == [["dog"], ["cat"]]


def test_a_tsv_list_is_read_with_tabs_and_a_csv_with_commas(tmp_path):
    """A .tsv list (a spreadsheet's or a corpus's tab-separated export) was read with commas: "needs a 'uri' column
    (has: uri\tlabels)". Its labels may hold commas, which a tab-separated file leaves alone."""
    tsv = read_manifest(_csv(tmp_path / "m.tsv", "uri\tlabels\n/a/x.wav\tdog,bark\n/a/y.wav\tcat\n"))
    assert tsv.rows == 2 and tsv.table["labels"].to_pylist() == [["dog", "bark"], ["cat"]]
    assert tsv.table["uri"].to_pylist() == ["/a/x.wav", "/a/y.wav"]
    comma = read_manifest(_csv(tmp_path / "m.csv", "uri,labels\n/a/x.wav,dog\n"))
    assert comma.table["labels"].to_pylist() == [["dog"]]
    # the header read with tabs too, so every column stays text ("007" is no 7); a URL's query is not its name
    queried = read_manifest(_csv(tmp_path / "m.tsv?version=2", "clip_id\turi\n007\t/a/x.wav\n"))
    assert queried.table["clip_id"].to_pylist() == ["007"]


@pytest.mark.parametrize("fmt,write", [
    ("csv", lambda p, n: p.write_text("clip_id,uri,pad\n" + "".join(f'c{i},/d/{i}.wav,"{"x" * 45}\n{"x" * 44}"\n'
                                                                     for i in range(n)))),
    ("jsonl", lambda p, n: p.write_text("".join(json.dumps({"clip_id": f"c{i}", "uri": f"/d/{i}.wav", "pad": "x" * 80})
                                                + "\n" for i in range(n))))])
def test_a_large_text_list_is_read_in_blocks_of_about_a_megabyte(tmp_path, fmt, write):
    """The driver holds a block at a time: 3 MB of list come in several chunks, each under ~1 MB of text
    (in a CSV, a quoted value may span lines where a block ends)."""
    path = tmp_path / f"m.{fmt}"
    write(path, 30_000)
    m = read_manifest(str(path))
    sizes = [c.num_rows for c in m.chunks()]
    assert sum(sizes) == m.rows == 30_000 and len(sizes) >= 3 and max(sizes) < 11_000, sizes


# --- messages: the file, the row, the field ---

def test_a_list_without_a_uri_column_names_the_columns_it_has(tmp_path):
    path = _csv(tmp_path / "m.csv", "path,labels\na.wav,x\n")
    with pytest.raises(ManifestError) as info:
        read_manifest(path)
    assert str(info.value) == f"{path}: a generic manifest needs a 'uri' column (has: path, labels)"
    header_only = _csv(tmp_path / "h.csv", "path,labels\n")
    with pytest.raises(ManifestError) as info:
        read_manifest(header_only)
    assert str(info.value) == f"{header_only}: a generic manifest needs a 'uri' column (has: path, labels)"


def test_an_empty_uri_names_its_row(tmp_path):
    path = _csv(tmp_path / "m.csv", "uri,labels\n/a/x.wav,\n  ,dog\n")
    with pytest.raises(ManifestError, match=rf"^{path}: row 2 has an empty 'uri'$"):
        read_manifest(path)
    nulls = tmp_path / "m.parquet"
    pq.write_table(pa.table({"uri": ["/a/x.wav", None]}), nulls)
    with pytest.raises(ManifestError, match=r"row 2 has an empty 'uri'$"):
        read_manifest(str(nulls))


@pytest.mark.parametrize("field", ["start_s", "end_s"])
def test_a_time_that_is_no_number_names_the_file_the_row_and_the_field(tmp_path, field):
    path = _csv(tmp_path / "m.csv", f"uri,{field}\n/a/x.wav,1\n/a/y.wav,\n/a/z.wav,soon\n")
    with pytest.raises(ManifestError, match=rf"^{path}: row 3: {field} is not a number: 'soon'$"):
        read_manifest(path)


# --- directories ---

def test_a_directory_lists_audio_by_its_last_extension_in_any_case(tmp_path):
    for name in ("a.b.wav", "sub/C.FLAC", "README", "notes.txt", "x.wav.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    t = read_manifest(str(tmp_path)).table
    assert t["clip_id"].to_pylist() == ["a.b", "sub__C"]
    assert t["uri"].to_pylist() == [f"{tmp_path}/a.b.wav", f"{tmp_path}/sub/C.FLAC"]


def test_a_directory_is_listed_once_and_comes_in_chunks(tmp_path, monkeypatch):
    """The listing made for the check is the one the second pass reads: files added since do not appear."""
    for i in range(5):
        (tmp_path / f"{i}.wav").write_bytes(b"x")
    monkeypatch.setattr(manifest, "CHUNK", 2)
    m = read_manifest(str(tmp_path))
    (tmp_path / "5.wav").write_bytes(b"x")
    assert [c["clip_id"].to_pylist() for c in m.chunks()] == [["0", "1"], ["2", "3"], ["4"]]
    assert m.rows == 5 and m.table.num_rows == 5


# --- ids made unique ---

def test_a_shared_derived_id_gets_eight_hex_digits_of_its_uris_hash(tmp_path):
    path = _csv(tmp_path / "m.csv", "uri\n/a/x.wav\n/b/x.wav\n")
    ids = read_manifest(path).table["clip_id"].to_pylist()
    assert ids == [f"x-{hashlib.sha1(u.encode()).hexdigest()[:8]}" for u in ("/a/x.wav", "/b/x.wav")]


# --- AudioSet segment lists ---

def _audioset(path: Path, rows: list[str]) -> str:
    path.write_text("# Segments csv\n# num_ytids=0\n# YTID, start_seconds, end_seconds, positive_labels\n"
                    + "".join(r + "\n" for r in rows))
    return str(path)


def test_an_audioset_row_ignores_fields_after_the_fourth_and_strips_its_labels(tmp_path):
    """A rescored list adds six fields after the labels; the clip is the same."""
    path = _audioset(tmp_path / "l.csv", ['aaaaaaaaaaa, 30.000, 40.000, " /m/1 , ,/m/2", 0.9, x, y, z, 1, 2'])
    t = read_manifest(path, audio_root="/audio", template="{audio_root}/{YTID}.wav").table.to_pylist()
    assert [(r["clip_id"], r["uri"], r["start_s"], r["end_s"], r["labels"], r["group"]) for r in t] == [
        ("aaaaaaaaaaa_30000", "/audio/aaaaaaaaaaa.wav", 30.0, 40.0, ["/m/1", "/m/2"], "aaaaaaaaaaa")]


def test_a_short_or_non_numeric_audioset_row_is_named_in_full(tmp_path):
    short = _audioset(tmp_path / "s.csv", ['aaaaaaaaaaa, 0.000, 10.000, "/m/1"', "bbbbbbbbbbb, 0.000, 10.000"])
    with pytest.raises(ManifestError) as info:
        read_manifest(short)
    assert str(info.value) == (f'{short}: data row 2 has 3 fields, expected 4 '
                               '(YTID, start_seconds, end_seconds, "labels")')
    words = _audioset(tmp_path / "w.csv", ['aaaaaaaaaaa, zero, 10.000, "/m/1"'])
    with pytest.raises(ManifestError) as info:
        read_manifest(words)
    assert str(info.value) == f"{words}: data row 1: start/end are not numbers: 'zero', '10.000'"


def test_a_time_that_is_no_finite_number_stays_text_in_the_id_and_the_file_name(tmp_path):
    """Decode reports such a segment as bad_segment; the list keeps the row, with "nan"/"inf" in its names."""
    path = _audioset(tmp_path / "l.csv", ['aaaaaaaaaaa, nan, inf, "/m/1"', 'bbbbbbbbbbb, 1.2344, -inf, "/m/1"'])
    t = read_manifest(path, audio_root="/audio", template="{audio_root}/{YTID}_{start_ms}_{end_ms}.wav").table
    assert t["clip_id"].to_pylist() == ["aaaaaaaaaaa_nan", "bbbbbbbbbbb_1234"]
    assert t["uri"].to_pylist() == ["/audio/aaaaaaaaaaa_nan_inf.wav", "/audio/bbbbbbbbbbb_1234_-inf.wav"]


@pytest.mark.parametrize("root,expected", [("/audio/X/", "/audio/X/"), ("s3://b/x/", "s3://b/x/"), (None, "")])
def test_the_audio_root_joins_the_template_with_one_slash(tmp_path, root, expected):
    """A trailing slash of the root is not doubled; without a root the files lie beside the list."""
    path = _audioset(tmp_path / "l.csv", ['aaaaaaaaaaa, 0.000, 10.000, "/m/1"'])
    t = read_manifest(path, audio_root=root, template="{audio_root}/{YTID}.wav").table
    assert t["uri"].to_pylist() == [(expected or f"{tmp_path}/") + "aaaaaaaaaaa.wav"]


def test_an_empty_audioset_list_has_the_clip_columns(tmp_path):
    m = read_manifest(_audioset(tmp_path / "l.csv", []))
    assert m.rows == 0 and m.table.schema.equals(OUT_SCHEMA)


def test_audioset_rows_come_in_chunks_and_each_directory_is_listed_once(tmp_path, monkeypatch):
    """A directory is listed once for the whole list (two passes, every chunk), on any filesystem."""
    import fsspec

    fs = fsspec.filesystem("memory")
    for name in ("aaaaaaaaaaa_0.ogg", "bbbbbbbbbbb_0.wav", "ccccccccccc_0.ogg"):
        fs.pipe(f"/h17audio/{name}", b"x")
    listed = []
    real = manifest._listing
    monkeypatch.setattr(manifest, "_listing", lambda d: listed.append(d) or real(d))
    monkeypatch.setattr(manifest, "CHUNK", 2)
    path = _audioset(tmp_path / "l.csv", [f'{y * 11}, 0.000, 10.000, "/m/1"' for y in "abc"])
    m = read_manifest(path, audio_root="memory://h17audio", extensions=("wav", "ogg"))
    assert [c.num_rows for c in m.chunks()] == [2, 1]
    assert m.table["uri"].to_pylist() == ["memory://h17audio/aaaaaaaaaaa_0.ogg", "memory://h17audio/bbbbbbbbbbb_0.wav",
                                          "memory://h17audio/ccccccccccc_0.ogg"]
    assert listed == ["memory://h17audio"]


# --- rules run on a few rows at a time ---

def test_per_row_rules_number_rows_across_their_slices(tmp_path, monkeypatch):
    """Relative paths need Python per row, ``CHUNK`` rows at a time, within a block that the CSV reader made
    larger: every row is read once and an error names its row in the file."""
    monkeypatch.setattr(manifest, "CHUNK", 2)
    rows = "".join(f"r{i}.wav,{i}\n" for i in range(5))
    t = read_manifest(_csv(tmp_path / "m.csv", "uri,group\n" + rows), audio_root="/data").table
    assert t["uri"].to_pylist() == [f"/data/r{i}.wav" for i in range(5)]
    assert t["clip_id"].to_pylist() == [f"r{i}" for i in range(5)]
    bad = _csv(tmp_path / "b.csv", "uri,group\n" + rows + ",5\n")
    with pytest.raises(ManifestError, match=r"row 6 has an empty 'uri'$"):
        read_manifest(bad, audio_root="/data")


# --- job_manifest: the extract config's own list ---

def _config(tmp_path: Path, **fields: Any) -> Any:
    from acoustic_env.config import ExtractConfig, from_dict

    return from_dict(ExtractConfig, {"output": str(tmp_path / "out"), **fields})


def test_the_job_reads_its_list_with_every_setting_of_its_config(tmp_path):
    from acoustic_env.audio.manifest import job_manifest

    path = _csv(tmp_path / "clips.list", "uri,panns,logmel,audio_fg,duration_s,site\nin/a.wav,1,2,3,4,x\n"
                                         "b.wav,1,2,3,4,y\nc.wav,1,2,3,4,z\n")
    m = job_manifest(_config(tmp_path, manifest=path, manifest_format="csv", audio_root="/data", limit=2,
                             allowed_roots=["/data/in"], embedders=["panns"], embed_signals=["raw", "fg"],
                             features={"logmel": True}))
    assert m.rows == 2 and m.table["uri"].to_pylist() == ["/data/in/a.wav", "/data/b.wav"]
    assert m.table["error_type"].to_pylist() == [None, "outside_allowed_roots"]
    assert m.renamed_columns == {c: f"manifest_{c}" for c in ("panns", "logmel", "audio_fg", "duration_s")}
    missing = str(tmp_path / "gone.csv?mysecret=hunter2")
    with pytest.raises(ManifestError) as info:
        job_manifest(_config(tmp_path, manifest=missing, redact_query_params=["mysecret"], embedders=["panns"]))
    assert "hunter2" not in str(info.value) and "manifest not found" in str(info.value)


def test_the_job_finds_audioset_files_by_its_template_extensions_and_cut_segments(tmp_path):
    from acoustic_env.audio.manifest import job_manifest

    for name in ("aaaaaaaaaaa-10000.opus", "aaaaaaaaaaa.opus"):
        (tmp_path / name).write_bytes(b"x")
    path = _audioset(tmp_path / "l.csv", ['aaaaaaaaaaa, 0.000, 10.000, "/m/1"'])
    common = {"manifest": path, "audio_root": str(tmp_path), "audio_extensions": ["wav", "opus"],
              "embedders": ["panns"]}
    templated = job_manifest(_config(tmp_path, path_template="{audio_root}/{YTID}-{end_ms}.{ext}", **common))
    whole = job_manifest(_config(tmp_path, cut_segments=True, **common))
    assert templated.table["uri"].to_pylist() == [f"{tmp_path}/aaaaaaaaaaa-10000.opus"]
    assert whole.table["uri"].to_pylist() == [f"{tmp_path}/aaaaaaaaaaa.opus"] and whole.format == "audioset"


# --- formats and the messages of a list that cannot be read ---

@pytest.mark.parametrize("name,first,fmt", [
    ("l.csv", "uri,labels", "csv"), ("l.TSV", "uri", "csv"), ("l.txt", "uri", "csv"),
    ("l.csv", "# Segments csv", "audioset"), ("l.txt", "\ufeff# Segments csv", "audioset")])
def test_a_text_list_is_audioset_when_its_first_line_is_a_comment(tmp_path, name, first, fmt):
    (tmp_path / name).write_text(first + "\n")
    assert detect_format(str(tmp_path / name)) == fmt


def test_a_folder_is_a_directory_list_whatever_its_name(tmp_path):
    (tmp_path / "clips.csv").mkdir()
    assert detect_format(str(tmp_path / "clips.csv")) == "directory"
    assert detect_format(str(tmp_path / "clips.csv") + "/") == "directory"


def test_an_unknown_name_or_format_says_what_to_pass(tmp_path):
    path = _csv(tmp_path / "clips.list", "uri\n/a.wav\n")
    with pytest.raises(ManifestError) as info:
        read_manifest(path)
    assert str(info.value) == f"{path}: cannot tell the manifest format from its name; pass --manifest-format"
    with pytest.raises(ManifestError) as info:
        read_manifest(path, fmt="xml")
    assert str(info.value) == f"{path}: unknown manifest format 'xml'"


def test_an_explicit_format_overrides_the_name(tmp_path):
    text = _csv(tmp_path / "a.list", "uri\n/d/x.wav\n")
    pq.write_table(pa.table({"uri": ["/d/p.wav"]}), tmp_path / "p.list")
    (tmp_path / "j.list").write_text('{"uri": "/d/j.wav"}\n')
    audioset = _audioset(tmp_path / "s.list", ['aaaaaaaaaaa, 0.000, 10.000, "/m/1"'])
    (tmp_path / "d.list").mkdir()
    (tmp_path / "d.list" / "z.wav").write_bytes(b"x")
    got = {fmt: read_manifest(path, fmt=fmt) for fmt, path in (
        ("csv", text), ("parquet", str(tmp_path / "p.list")), ("jsonl", str(tmp_path / "j.list")),
        ("audioset", audioset), ("directory", str(tmp_path / "d.list")))}
    assert {fmt: m.table["clip_id"].to_pylist() for fmt, m in got.items()} == {
        "csv": ["x"], "parquet": ["p"], "jsonl": ["j"], "audioset": ["aaaaaaaaaaa_0"], "directory": ["z"]}
    assert {fmt: m.format for fmt, m in got.items()} == {fmt: fmt for fmt in got}
    assert got["csv"].source == text and got["directory"].source == str(tmp_path / "d.list")


def test_a_missing_or_unreadable_list_is_one_line_naming_it(tmp_path):
    gone = str(tmp_path / "gone.csv")
    with pytest.raises(ManifestError) as info:
        read_manifest(gone)
    assert str(info.value) == f"{gone}: manifest not found"
    folder = tmp_path / "folder"
    folder.mkdir()
    with pytest.raises(ManifestError, match=rf"^{folder}: cannot read the manifest: .") as info:
        read_manifest(str(folder), fmt="csv")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("name,content,fmt", [
    ("m.csv", b"uri,labels\n/a.wav,caf\xe9\n", "csv"),  # Latin-1, not UTF-8
    ("m.csv", b'uri,labels\n/a.wav,"[""a"""\n', "csv"),  # a JSON list of labels cut short
    ("m.jsonl", b'{"uri": "/a.wav"}\n{"uri": \n', "jsonl"),
    ("l.csv", b'# a\n# b\n# c\naaaaaaaaaaa, 0.000, 10.000, "caf\xe9"\n', "audioset")])
def test_a_list_that_cannot_be_parsed_says_as_what(tmp_path, name, content, fmt):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(ManifestError, match=rf"^{tmp_path / name}: cannot parse as {fmt}: .") as info:
        read_manifest(str(tmp_path / name))
    assert "\n" not in str(info.value)


def test_a_secret_in_the_lists_url_is_hidden_in_both_passes(tmp_path):
    """A list named by a URL with a secret parameter: its errors never show the value, neither while it is
    checked nor when it changed before the second pass."""
    path = tmp_path / "m.csv?mysecret=hunter2"
    path.write_text("uri\n/a/x.wav\n")
    m = read_manifest(str(path), redact_params=("mysecret",))
    path.write_text("uri\n/a/x.wav\n  \n")
    with pytest.raises(ManifestError) as info:
        list(m.chunks())
    assert str(info.value) == f"{tmp_path}/m.csv?mysecret=***: row 2 has an empty 'uri'"
    with pytest.raises(ManifestError) as info:
        read_manifest(str(path), redact_params=("mysecret",))
    assert str(info.value) == f"{tmp_path}/m.csv?mysecret=***: row 2 has an empty 'uri'"


# --- limits, rejected rows, ids ---

def test_a_limited_read_stops_at_its_limit_without_reading_on(tmp_path, monkeypatch):
    """No chunk after the one the limit ends in is read (a bad row there is never reached): a limit of 10
    on a list of millions reads one chunk."""
    monkeypatch.setattr(manifest, "CHUNK", 2)
    rows = [f'{y * 11}, 0.000, 10.000, "/m/1"' for y in "abcd"]
    path = _audioset(tmp_path / "l.csv", [*rows, "short, row"])
    for limit in (1, 2, 3, 4):
        m = read_manifest(path, audio_root="/audio", limit=limit)
        assert m.rows == limit and [c.num_rows for c in m.chunks()] == [2] * (limit // 2) + [1] * (limit % 2)
        assert m.table["group"].to_pylist() == [y * 11 for y in "abcd"[:limit]]


def test_a_custom_template_is_kept_when_segments_are_cut(tmp_path):
    path = _audioset(tmp_path / "l.csv", ['aaaaaaaaaaa, 0.000, 10.000, "/m/1"'])
    t = read_manifest(path, audio_root="/audio", template="{audio_root}/v/{YTID}.wav", cut_segments=True).table
    assert t["uri"].to_pylist() == ["/audio/v/aaaaaaaaaaa.wav"]


def test_a_row_both_repeated_and_outside_the_roots_is_a_duplicate_and_messages_are_whole(tmp_path):
    path = _csv(tmp_path / "m.csv", "clip_id,uri\nk,/in/a.wav\nk,/out/b.wav\nj,/out/c.wav\n")
    t = read_manifest(path, allowed_roots=("/in", "/also")).table
    assert t["error_type"].to_pylist() == [None, "duplicate_id", "outside_allowed_roots"]
    assert t["error_message"].to_pylist()[1:] == [
        "row 2 (/out/b.wav) has the clip_id 'k' of row 1 (/in/a.wav); give each clip its own clip_id",
        "/out/c.wav is not under any of allowed_roots (/in, /also)"]
    assert t["error_stage"].to_pylist() == [None, "manifest", "manifest"]


def test_an_id_from_a_url_is_its_file_name_without_extension_or_query(tmp_path):
    """A URL's query and fragment are not part of its file name; a local path's "#" or "?" is."""
    path = _csv(tmp_path / "m.csv", "uri\nhttps://h/a/x.y.wav?v=1.5&p=a/b\ns3://b/dir/y.flac#v2.0\n/local/z\n"
                                    "/local/a#1.wav\n/local/b?2.wav\n")
    assert read_manifest(path).table["clip_id"].to_pylist() == ["x.y", "y", "z", "a#1", "b?2"]


def test_renamed_columns_never_collide_with_each_other(tmp_path):
    path = _csv(tmp_path / "m.csv", "uri,a,manifest_a\n/d/x.wav,1,2\n")
    m = read_manifest(path, reserved=("a", "manifest_a"))
    assert m.renamed_columns == {"a": "manifest_manifest_a", "manifest_a": "manifest_manifest_manifest_a"}
    assert m.table.to_pylist()[0]["manifest_manifest_a"] == "1"


def test_label_counts_counts_the_clips_that_carry_a_label():
    from acoustic_env.audio.manifest import label_counts

    table = pa.table({"labels": [["/m/1", "/m/2"], [], ["/m/2"], ["/m/10"]]})
    assert (label_counts(table, "/m/2"), label_counts(table, "/m/1"), label_counts(table, "/m/3")) == (2, 1, 0)


@pytest.mark.parametrize("name,fmt", [("l.csv", "auto"), ("l.csv", "csv"), ("l.csv", "audioset"),
                                      ("l.jsonl", "jsonl"), ("l.parquet", "parquet")])
def test_a_clip_list_that_is_a_fifo_is_one_line_and_never_opened(tmp_path, name, fmt):
    """``--manifest`` naming a FIFO (or /dev/stdin): opened, extract would wait for ever on a writer."""
    fifo = tmp_path / name
    os.mkfifo(fifo)
    with pytest.raises(ManifestError) as err:
        read_manifest(str(fifo), fmt=fmt).table
    assert str(err.value) == f"manifest: {fifo} is not a regular file (a FIFO, a device or a socket); give a file"


def test_a_clip_list_over_its_size_limit_is_one_line_naming_the_limit(tmp_path, monkeypatch):
    listed = _csv(tmp_path / "big.csv", f"clip_id,uri\na,{tmp_path / 'a.wav'}\n")
    monkeypatch.setattr(manifest, "MAX_MANIFEST_BYTES", 10)
    with pytest.raises(ManifestError) as err:
        read_manifest(listed).table
    size = Path(listed).stat().st_size
    assert str(err.value) == f"manifest: {listed} is {size} bytes, over the limit of a clip list (10 bytes)"


def test_cells_the_csv_writer_guarded_read_back_as_written(tmp_path):
    """A list the project wrote (a recipe's, ``audioset fetch``'s) puts a ``'`` before a cell a spreadsheet would
    run (``=1+1``, ``+x``): extract reads the clip's own id and labels back, not the guarded text."""
    (tmp_path / "a.wav").write_bytes(b"")
    listed = tmp_path / "written.csv"
    listed.write_bytes(csv_bytes(["clip_id", "uri", "labels"],
                                 [{"clip_id": "=1+1", "uri": str(tmp_path / "a.wav"), "labels": ["+x", "@y"]}]))
    assert listed.read_text().splitlines()[1].startswith("'=1+1,")
    assert read_manifest(str(listed)).table.select(["clip_id", "labels"]).to_pylist() == [
        {"clip_id": "=1+1", "labels": ["+x", "@y"]}]
