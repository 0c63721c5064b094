"""Clip lists: AudioSet segment CSVs, generic manifests, directories; tasks on the ontology."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import tone_clip

from acoustic_env.audio.manifest import ManifestError, label_counts, read_manifest
from acoustic_env.audioset.ontology import load_class_list, load_ontology
from acoustic_env.audioset.tasks import TaskError, load_task

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
    task = load_task(str(tmp_path / "animals.yaml"), onto)
    assert task.kind == "multi_label"
    dog = onto.to_mid("Dog")
    assert task.multi_hot([dog]) == [1, 0]
    with pytest.raises(TaskError, match="needs the AudioSet ontology"):
        load_task(str(tmp_path / "animals.yaml"))


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
def test_generic_manifests(shared_data, tmp_path, fmt):
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
    m = read_manifest(str(path), audio_root="/root", ontology_uri=str(shared_data / "audioset" / "ontology.json"))
    t = m.table.to_pylist()
    assert [r["uri"] for r in t] == ["/root/a.wav", "/abs/b.flac"]
    assert [r["clip_id"] for r in t] == ["a", "b"]
    assert t[0]["labels"] == ["/m/09x0r", URBAN] and t[1]["labels"] == [NATURAL]
    assert t[1]["group"] == "rec1" and t[0]["site"] == "x"


def test_unknown_label_name_names_the_row(shared_data, tmp_path):
    (tmp_path / "m.csv").write_text("uri,labels\na.wav,Speech\nb.wav,Not A Class\n")
    with pytest.raises(ManifestError, match=r"row 2: unknown AudioSet label 'Not A Class'"):
        read_manifest(str(tmp_path / "m.csv"), ontology_uri=str(shared_data / "audioset" / "ontology.json"))


def test_generic_manifest_needs_uri(tmp_path):
    (tmp_path / "m.csv").write_text("path,labels\na.wav,x\n")
    with pytest.raises(ManifestError, match="needs a 'uri' column"):
        read_manifest(str(tmp_path / "m.csv"))


def test_directory_manifest_and_duplicate_ids(tmp_path):
    (tmp_path / "a").mkdir()
    tone_clip(tmp_path / "a" / "x.wav")
    tone_clip(tmp_path / "y.flac")
    (tmp_path / "notes.txt").write_text("not audio")
    t = read_manifest(str(tmp_path)).table.to_pylist()
    assert sorted(r["clip_id"] for r in t) == ["a__x", "y"]
    (tmp_path / "m.csv").write_text("uri,labels\na/x.wav,\ny.flac,\nz/x.wav,\n")
    m = read_manifest(str(tmp_path / "m.csv"), audio_root=str(tmp_path))
    assert m.table.num_rows == 2 and m.duplicates == 1
