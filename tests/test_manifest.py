"""Clip lists: AudioSet segment CSVs, generic manifests, directories; tasks on the ontology."""

from __future__ import annotations

import json
import socket

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import tone_clip

from acoustic_env.audio.manifest import ManifestError, label_counts, read_manifest
from acoustic_env.vocabulary.ontology import load_class_list, load_ontology
from acoustic_env.vocabulary.tasks import load_task

URBAN, NATURAL = "/t/dd00128", "/t/dd00129"


def test_eval_segments_published_counts(shared_data):
    m = read_manifest(str(shared_data / "audioset" / "eval_segments.csv"), audio_root="/data/audio")
    assert m.format == "audioset" and m.duplicates == 0
    t = m.table
    assert t.num_rows == 20061
    assert label_counts(t, URBAN) == 222 and label_counts(t, NATURAL) == 181
    first = t.slice(0, 1).to_pylist()[0]
    assert first["clip_id"] == "--4gqARaEJE_0" and first["group"] == "--4gqARaEJE"
    assert first["uri"] == "/data/audio/--4gqARaEJE_0.flac"
    assert (first["start_s"], first["end_s"]) == (0.0, 10.0)
    assert first["labels"] == ["/m/068hy", "/m/07q6cd_", "/m/0bt9lr", "/m/0jbk"]


def test_urban_natural_task_on_eval_segments(shared_data):
    """Single-label task: a clip carrying both classes is ambiguous and excluded, never guessed."""
    task = load_task("urban_natural")
    t = read_manifest(str(shared_data / "audioset" / "eval_segments.csv")).table
    labels = t["labels"].to_pylist()
    summary = task.summarize(labels)
    assert summary["urban"] == 222 and summary["natural"] == 181 and summary["ambiguous"] == 1
    targets = [task.assign(ls) for ls in labels]
    assert targets.count(0) == 221 and targets.count(1) == 180
    both = [ls for ls in labels if URBAN in ls and NATURAL in ls]
    assert len(both) == 1 and task.assign(both[0]) is None
    assert task.multi_hot(both[0]) == [1, 1]


def test_task_with_names_and_descendants(shared_data, tmp_path):
    onto = load_ontology(str(shared_data / "audioset" / "ontology.json"))
    (tmp_path / "animals.yaml").write_text(
        "name: animals\nkind: multi_label\nclasses:\n"
        "  domestic: {mids: ['Domestic animals, pets'], descendants: true}\n"
        "  wild: {mids: ['/m/01280g'], descendants: true}\n")
    task = load_task(str(tmp_path / "animals.yaml"), str(shared_data / "audioset" / "ontology.json"))
    assert task.kind == "multi_label"
    dog = onto.to_mid("Dog")
    assert task.multi_hot([dog]) == [1, 0]


def test_class_list_in_model_order(shared_data):
    classes = load_class_list(str(shared_data / "audioset" / "class_labels_indices.csv"))
    assert len(classes) == 527 and classes[0] == ("/m/09x0r", "Speech")


def _audioset_csv(path, rows):
    lines = ["# Segments csv", "# num_ytids=0", "# YTID, start_seconds, end_seconds, positive_labels"]
    lines += [f'{y}, {s:.3f}, {e:.3f}, "{",".join(ls)}"' for y, s, e, ls in rows]
    path.write_text("\n".join(lines) + "\n")


def test_template_finds_other_extensions(tmp_path):
    audio = tmp_path / "audio"
    audio.mkdir()
    tone_clip(audio / "aaaaaaaaaaa_30000.wav")
    tone_clip(audio / "bbbbbbbbbbb_0.flac")
    _audioset_csv(tmp_path / "l.csv", [("aaaaaaaaaaa", 30, 40, [URBAN]), ("bbbbbbbbbbb", 0, 10, [NATURAL]),
                                       ("ccccccccccc", 0, 10, [URBAN])])
    t = read_manifest(str(tmp_path / "l.csv"), audio_root=str(audio)).table
    uris = t["uri"].to_pylist()
    assert uris == [f"{audio}/aaaaaaaaaaa_30000.wav", f"{audio}/bbbbbbbbbbb_0.flac", f"{audio}/ccccccccccc_0.flac"]
    whole = read_manifest(str(tmp_path / "l.csv"), audio_root=str(audio), cut_segments=True).table
    assert whole["uri"].to_pylist()[0] == f"{audio}/aaaaaaaaaaa.flac"
    custom = read_manifest(str(tmp_path / "l.csv"), audio_root="s3://b/x",
                           template="{audio_root}/{YTID}/{start_seconds}-{end_seconds}.wav").table
    assert custom["uri"].to_pylist()[0] == "s3://b/x/aaaaaaaaaaa/30.000-40.000.wav"


def test_malformed_audioset_row_names_the_row(tmp_path):
    (tmp_path / "bad.csv").write_text("# a\n# b\n# c\nabc, 0.000, 10.000, \"/m/1\"\nxyz, 0.000\n")
    with pytest.raises(ManifestError, match=r"data row 2 has 2 fields"):
        read_manifest(str(tmp_path / "bad.csv"))


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_generic_manifests(tmp_path, fmt):
    rows = [{"uri": "a.wav", "labels": "Speech;Outside, urban or manmade", "site": "x"},
            {"uri": "/abs/b.flac", "labels": "/t/dd00129", "site": "y", "group": "rec1"}]
    path = tmp_path / f"m.{fmt}"
    if fmt == "csv":
        import csv
        with open(path, "w", newline="") as fh:
            w = csv.DictWriter(fh, ["uri", "labels", "site", "group"])
            w.writeheader()
            w.writerows(rows)
    elif fmt == "jsonl":
        path.write_text("\n".join(json.dumps({**r, "labels": r["labels"].split(";")}) for r in rows))
    else:
        pq.write_table(pa.Table.from_pylist([{**r, "labels": r["labels"].split(";"), "group": r.get("group")}
                                             for r in rows]), path)
    m = read_manifest(str(path), audio_root="/root")
    t = m.table.to_pylist()
    assert [r["uri"] for r in t] == ["/root/a.wav", "/abs/b.flac"]
    assert [r["clip_id"] for r in t] == ["a", "b"]
    assert t[0]["labels"] == ["Speech", "Outside, urban or manmade"] and t[1]["labels"] == [NATURAL]  # as given
    assert t[1]["group"] == "rec1" and t[0]["site"] == "x"


def test_generic_manifest_needs_uri(tmp_path):
    (tmp_path / "m.csv").write_text("path,labels\na.wav,x\n")
    with pytest.raises(ManifestError, match="needs a 'uri' column"):
        read_manifest(str(tmp_path / "m.csv"))


def test_directory_manifest(tmp_path):
    (tmp_path / "a").mkdir()
    tone_clip(tmp_path / "a" / "x.wav")
    tone_clip(tmp_path / "y.flac")
    (tmp_path / "notes.txt").write_text("not audio")
    t = read_manifest(str(tmp_path)).table.to_pylist()
    assert sorted(r["clip_id"] for r in t) == ["a__x", "y"]


@pytest.mark.parametrize("files,suffixed", [
    (("sub1/x.wav", "sub2/x.wav"), {"list": 2, "directory": 0}),  # the directory's ids keep the folder
    (("x.wav", "x.flac"), {"list": 2, "directory": 2}),
    (("a/b.wav", "a__b.wav"), {"list": 0, "directory": 2}),  # "/" → "__" makes them one id in a directory
])
def test_two_files_never_share_a_derived_id(tmp_path, files, suffixed):
    """Without a clip_id, ids come from file names; two files whose names map to one id both stay."""
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        tone_clip(tmp_path / name)
    (tmp_path / "m.csv").write_text("uri,labels\n" + "".join(f"{name},\n" for name in files) + "y.wav,\n")
    for kind, m in (("directory", read_manifest(str(tmp_path))),
                    ("list", read_manifest(str(tmp_path / "m.csv"), audio_root=str(tmp_path)))):
        ids = m.table["clip_id"].to_pylist()
        assert len(ids) == len(set(ids)) == m.table.num_rows and m.duplicates == 0, ids
        assert m.ids_made_unique == suffixed[kind] and all(m.table["error_type"].is_null().to_pylist())
    again = read_manifest(str(tmp_path / "m.csv"), audio_root=str(tmp_path)).table["clip_id"].to_pylist()
    (tmp_path / "r.csv").write_text("uri,labels\n" + "".join(f"{name},\n" for name in reversed(files)) + "y.wav,\n")
    reordered = read_manifest(str(tmp_path / "r.csv"), audio_root=str(tmp_path)).table["clip_id"].to_pylist()
    assert again[:2] == reordered[1::-1]  # the same id for the same file, in any run and any order
    assert again[2] == "y"  # a name nobody shares keeps its plain id


def test_repeated_clip_id_is_an_error_row_naming_both_files(tmp_path):
    (tmp_path / "m.csv").write_text("clip_id,uri,labels\nk,a/x.wav,\nj,y.flac,\nk,z/x.wav,\n")
    m = read_manifest(str(tmp_path / "m.csv"), audio_root="/data")
    rows = m.table.to_pylist()
    assert m.table.num_rows == 3 and m.duplicates == 1
    assert [r["clip_id"] for r in rows] == ["k", "j", "k#row3"]
    assert [r["error_type"] for r in rows] == [None, None, "duplicate_id"] and rows[2]["error_stage"] == "manifest"
    assert "/data/a/x.wav" in rows[2]["error_message"] and "/data/z/x.wav" in rows[2]["error_message"]


def test_csv_with_a_byte_order_mark_keeps_its_first_column(tmp_path):
    (tmp_path / "m.csv").write_bytes("clip_id,uri,labels\nmy_id,a.wav,/m/0\n".encode("utf-8-sig"))
    (tmp_path / "l.csv").write_bytes('# a\n# b\n# c\nabc, 0.000, 10.000, "/m/1"\n'.encode("utf-8-sig"))
    assert read_manifest(str(tmp_path / "m.csv")).table["clip_id"].to_pylist() == ["my_id"]
    assert read_manifest(str(tmp_path / "l.csv")).format == "audioset"


def test_columns_named_like_pipeline_columns_are_renamed(tmp_path):
    from acoustic_env.audio.rows import conform, row_schema

    (tmp_path / "m.csv").write_text("uri,labels,duration_s,channels,error_type,_cpu_x,manifest_channels\n"
                                    "a.wav,,12.5,2,none,1,7\n")
    m = read_manifest(str(tmp_path / "m.csv"), reserved=("duration_s", "channels", "indices_raw"))
    assert m.renamed_columns == {"duration_s": "manifest_duration_s", "channels": "manifest_manifest_channels",
                                 "error_type": "manifest_error_type", "_cpu_x": "manifest__cpu_x"}
    row = m.table.to_pylist()[0]
    assert row["manifest_duration_s"] == "12.5" and row["manifest_error_type"] == "none" and row["error_type"] is None
    assert row["manifest_channels"] == "7"  # a column already called so keeps its name and value
    schema = row_schema(m.table.schema, {"indices_raw": 60}, ("decode",))
    assert len(schema.names) == len(set(schema.names))
    assert conform(m.table, schema).num_rows == 1


def test_allowed_roots(tmp_path):
    root = tmp_path / "audio"
    root.mkdir()
    (tmp_path / "secret.wav").write_bytes(b"x")
    (root / "link.wav").symlink_to(tmp_path / "secret.wav")
    uris = ["in.wav", "sub/in.wav", "../secret.wav", str(tmp_path / "secret.wav"), f"file://{tmp_path}/secret.wav",
            "link.wav", f"file://{root}/in2.wav", "s3://bucket/audio/in.wav", "s3://bucket/audio2/x.wav",
            "s3://bucket/audio/../other/x.wav", "https://u:p@host/audio/in.wav", "https://other/audio/x.wav"]
    (tmp_path / "m.csv").write_text("clip_id,uri,labels\n" + "".join(f"c{i},{u},\n" for i, u in enumerate(uris)))
    m = read_manifest(str(tmp_path / "m.csv"), audio_root=str(root),
                      allowed_roots=(str(root), "s3://bucket/audio", "https://host/audio/"))
    rows = m.table.to_pylist()
    assert [r["error_type"] is None for r in rows] == [
        True, True, False, False, False, False, True, True, False, False, True, False]
    assert {(r["error_stage"], r["error_type"]) for r in rows if r["error_type"]} == {
        ("manifest", "outside_allowed_roots")}


def test_unreachable_manifest_is_one_line(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ManifestError) as info:
        read_manifest(f"http://user:pw@127.0.0.1:{port}/lists/clips.csv?token=t0k")
    message = str(info.value)
    assert "cannot read the manifest" in message and "\n" not in message
    assert "pw@" not in message and "t0k" not in message


def test_a_list_read_in_chunks_is_the_list_read_whole(tmp_path, monkeypatch):
    """The driver streams a list chunk by chunk (``Manifest.chunks``): repeated and shared ids are found
    across chunks, row numbers in messages count from the file's start, and ``limit`` cuts mid-chunk."""
    from acoustic_env.audio import manifest

    rows = [{"clip_id": None, "uri": "/a/x.wav", "labels": "/m/1;/m/2", "start_s": "0", "end_s": "1.5"},
            {"clip_id": "k", "uri": "/a/k.wav", "labels": "", "start_s": "", "end_s": ""},
            {"clip_id": "j", "uri": "/a/j.wav", "labels": "/m/3", "start_s": "", "end_s": ""},
            {"clip_id": None, "uri": "/b/x.flac", "labels": "", "start_s": "", "end_s": ""},  # x again: suffixed
            {"clip_id": "k", "uri": "/c/k.wav", "labels": "", "start_s": "", "end_s": ""},  # k again: duplicate
            {"clip_id": "m", "uri": "/a/m.wav", "labels": '["/m/4"]', "start_s": "", "end_s": ""},
            {"clip_id": "j", "uri": "/d/j.wav", "labels": "", "start_s": "", "end_s": ""}]  # j again: duplicate
    path = tmp_path / "m.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    whole = read_manifest(str(path))
    monkeypatch.setattr(manifest, "CHUNK", 2)  # Parquet batches of 2 rows: 4 chunks
    m = read_manifest(str(path))
    chunks = list(m.chunks())
    assert [c.num_rows for c in chunks] == [2, 2, 2, 1] and m.rows == 7
    assert pa.concat_tables(chunks).equals(m.table) and m.table.equals(whole.table)
    ids = m.table["clip_id"].to_pylist()
    assert ids[0].startswith("x-") and ids[3].startswith("x-") and ids[0] != ids[3] and m.ids_made_unique == 2
    assert ids[4] == "k#row5" and ids[6] == "j#row7" and m.duplicates == 2
    assert [t for t in m.table["error_type"].to_pylist()] == [None] * 4 + ["duplicate_id", None, "duplicate_id"]
    assert "row 7 (/d/j.wav) has the clip_id 'j' of row 3 (/a/j.wav)" in m.table["error_message"][6].as_py()
    assert m.table["labels"].to_pylist() == [["/m/1", "/m/2"], [], ["/m/3"], [], [], ["/m/4"], []]
    assert m.table["end_s"].to_pylist()[:2] == [1.5, None]
    limited = read_manifest(str(path), limit=5)
    assert limited.rows == 5 and limited.table["clip_id"].to_pylist()[4] == "k#row5"
    pq.write_table(pa.Table.from_pylist(rows + [{**rows[1], "clip_id": "z", "start_s": "soon"}]), path)
    with pytest.raises(ManifestError, match=r"row 8: start_s is not a number: 'soon'"):
        read_manifest(str(path))
