"""Tasks on any label set: plain label strings, AudioSet MIDs/names, inline tasks, and their counts."""

from __future__ import annotations

import os
import socket

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import tone_clip

import acoustic_env.vocabulary.ontology as ontology_module
import acoustic_env.vocabulary.tasks as tasks_module
from acoustic_env.audio.manifest import read_manifest
from acoustic_env.vocabulary.ontology import OntologyError
from acoustic_env.vocabulary.tasks import (
    TaskError,
    class_counts,
    load_task,
    task_from_definition,
)
from acoustic_env.config import ExtractConfig, from_dict
from acoustic_env.jobs.extract import extract

URBAN, NATURAL = "/t/dd00128", "/t/dd00129"
SOUNDS = """name: sounds
classes:
  urban: {labels: [car_horn, siren, street_music]}
  natural: {labels: [birds, rain]}
"""


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No network, no ontology cache, and any attempt to read the ontology fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError("a plain-label task must not touch the network or the ontology")

    monkeypatch.setenv("ACOUSTIC_ENV_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(ontology_module, "_read_text", refuse)
    monkeypatch.setattr(tasks_module, "load_ontology", refuse)


def _task_file(tmp_path, text: str) -> str:
    path = tmp_path / "task.yaml"
    path.write_text(text)
    return str(path)


def test_plain_label_manifest_to_targets_offline(offline, tmp_path):
    """The issue's case: a `uri,labels` CSV of urban/natural, read and turned into targets with no network."""
    (tmp_path / "m.csv").write_text("uri,labels\na.wav,urban\nb.wav,natural\nc.wav,\nd.wav,urban;natural\n")
    labels = read_manifest(str(tmp_path / "m.csv"), audio_root=str(tmp_path)).table["labels"]
    assert labels.to_pylist() == [["urban"], ["natural"], [], ["urban", "natural"]]
    task = load_task("labels:urban,natural")
    assert task.class_names == ("urban", "natural") and task.kind == "single_label" and not task.audioset
    assert [task.assign(ls) for ls in labels.to_pylist()] == [0, 1, None, None]
    assert class_counts(task, labels) == {"clips": 4, "classes": {"urban": 2, "natural": 2}, "unlabelled": 1,
                                          "unknown": 0, "ambiguous": 1, "unknown_labels": {}}
    # a task file of several raw labels per class, offline too
    sounds = load_task(_task_file(tmp_path, SOUNDS))
    assert sounds.assign(["siren"]) == 0 and sounds.assign(["rain", "birds"]) == 1


@pytest.mark.slow
def test_plain_label_manifest_is_extracted_without_the_ontology(ray_session, monkeypatch, tmp_path):
    """Extraction keeps the labels as given; the ontology is never read (the old "cannot read ontology.json")."""
    def refuse(*args, **kwargs):
        raise AssertionError("extracting a plain-label manifest must not read the ontology")

    monkeypatch.setattr(ontology_module, "_read_text", refuse)
    for name, freq in (("a", 300.0), ("b", 3000.0)):
        tone_clip(tmp_path / f"{name}.wav", freq=freq)
    (tmp_path / "m.csv").write_text("uri,labels\na.wav,urban\nb.wav,natural\n")
    cfg = from_dict(ExtractConfig, {"manifest": str(tmp_path / "m.csv"), "audio_root": str(tmp_path),
                                    "output": f"{tmp_path}-out", "progress": False, "features": {"signals": ["raw"]}})
    assert extract(cfg).counts["ok"] == 2
    table = pq.read_table(f"{tmp_path}-out/features").sort_by("clip_id")
    task = load_task("labels:urban,natural")
    assert [task.assign(ls) for ls in table["labels"].to_pylist()] == [0, 1]


def test_several_labels_per_class_and_unknown_labels_skipped(tmp_path):
    task = load_task(_task_file(tmp_path, SOUNDS))
    assert task.name == "sounds" and task.unknown_labels == "skip"
    clips = [["car_horn"], ["street_music", "dog_bark"], ["dog_bark"], ["siren", "rain"], None, ["birds"]]
    assert [task.assign(ls or []) for ls in clips] == [0, 0, None, None, None, 1]
    assert task.multi_hot(["siren", "rain"]) == [1, 1]
    counts = class_counts(task, pa.array(clips, pa.list_(pa.string())))
    assert counts == {"clips": 6, "classes": {"urban": 3, "natural": 2}, "unlabelled": 1, "unknown": 1,
                      "ambiguous": 1, "unknown_labels": {"dog_bark": 2}}
    assert task.summarize(clips) == {"urban": 3, "natural": 2, "unlabelled": 1, "unknown": 1, "ambiguous": 1}


def test_unknown_labels_error_is_one_line_naming_the_label(tmp_path):
    task = load_task(_task_file(tmp_path, SOUNDS + "unknown_labels: error\n"))
    assert task.assign(["siren"]) == 0
    with pytest.raises(TaskError, match=r"^task.unknown_labels: label 'dog_bark' is claimed by no class") as exc:
        task.assign(["siren", "dog_bark"])
    assert "\n" not in str(exc.value)
    assert class_counts(task, [["dog_bark"]])["unknown_labels"] == {"dog_bark": 1}  # counting never stops


def test_multi_label_counts_no_ambiguity(tmp_path):
    task = load_task(_task_file(tmp_path, "kind: multi_label\nclasses: [frogs, birds, wind]\n"))
    assert task.multi_hot(["birds", "frogs"]) == [1, 1, 0]
    assert class_counts(task, [["birds", "frogs"], ["rain"]])["ambiguous"] == 0


def test_inline_task_round_trips_through_its_definition():
    task = load_task("labels: urban , natural,traffic")
    assert task.class_names == ("urban", "natural", "traffic")
    again = task_from_definition(task.definition)
    assert again.class_names == task.class_names and again.class_labels == task.class_labels
    assert again.name == "labels: urban , natural,traffic"


@pytest.mark.parametrize("text, message", [
    ("classes: {a: {labels: [x]}, b: {mids: ['/m/1']}}", "not both"),
    ("classes: {a: {labels: [x], mids: ['/m/1']}, b: {labels: [y]}}", "exactly one of labels"),
    ("classes: {a: {label: [x]}, b: {labels: [y]}}", r"task.classes.a: unknown key\(s\) \['label'\]"),
    ("classes: {a: {labels: [x], descendants: true}, b: {labels: [y]}}", "only AudioSet classes"),
    ("classes: {a: {labels: []}, b: {labels: [y]}}", "task.classes.a.labels: must be a non-empty list"),
    ("classes: {a: {labels: x}, b: {labels: [y]}}", "task.classes.a.labels: must be a non-empty list"),
    ("classes: [a, a]", "listed twice"),
    ("classes: [a]", "at least two classes"),
    ("classes: [unknown, b]", "task.classes.unknown: the name is kept for the counts"),
    ("classes: [a, b]\nunknown_labels: guess", "task.unknown_labels: must be one of"),
    ("classes: [a, b]\nunknown_label: error", r"task: unknown key\(s\) \['unknown_label'\]"),
    ("classes: [a, b]\nkind: binary", "task.kind: must be one of"),
])
def test_malformed_task_files_name_the_field(tmp_path, text, message):
    with pytest.raises(TaskError, match=message):
        load_task(_task_file(tmp_path, text))


def test_unknown_task_name_lists_the_forms():
    with pytest.raises(TaskError, match="neither a built-in task .*urban_natural.*labels:a,b"):
        load_task("no_such_task")


def test_audioset_task_maps_display_name_labels_itself(shared_data):
    """Manifests keep display names as given; the AudioSet task maps them to MIDs (case-insensitive)."""
    task = load_task("urban_natural", str(shared_data / "audioset" / "ontology.json"))
    assert task.audioset
    clips = [["Outside, urban or manmade"], ["outside, rural or natural", "Speech"], [URBAN], ["Not A Class"]]
    assert [task.assign(ls) for ls in clips] == [0, 1, 0, None]
    counts = class_counts(task, clips)
    assert counts["unknown"] == 1 and counts["unknown_labels"] == {"Speech": 1, "Not A Class": 1}


def test_audioset_task_reads_the_ontology_only_for_display_names(tmp_path):
    """MID labels need no ontology; a display name does, and an unreadable one says so in one line."""
    task = load_task("urban_natural", str(tmp_path / "missing.json"))
    assert task.assign([URBAN, "/m/09x0r"]) == 0  # MIDs only: nothing read
    with pytest.raises(TaskError, match=r"label 'Speech' is not a MID.*cannot read.*labels:a,b"):
        task.assign(["Speech"])
    with pytest.raises(OntologyError, match="cannot read"):
        load_task(_task_file(tmp_path, "classes: {a: {mids: [Dog]}, b: {mids: ['/m/1']}}"), str(tmp_path / "x.json"))


@pytest.mark.slow
def test_plain_label_table_trains_and_audits_offline(offline, ray_session, tmp_path):
    """The issue's bar: a plain-label table (urban/natural) trains and audits with no network and no ontology."""
    import acoustic_env as ae
    from acoustic_env.demo.tables import synthetic_features, write_features

    synth = synthetic_features(60, ("urban", "natural"), seed=3, flip=0.1, signals=("raw",))
    features = write_features(synth.table, str(tmp_path / "plain"))
    # logreg alone beside the MLP, unsearched, on three folds: the bar is that it trains, not what a search finds
    trained = ae.train(features, str(tmp_path / "model"), task="labels:urban,natural", trials=0, ablations=False,
                       shap_samples=0, max_rounds=3, progress=False, baselines=["logreg"], tuning_trials=1,
                       cv_folds=3)
    assert trained.metrics["logreg"]["roc_auc"] > 0.8
    audit = ae.audit(features, str(tmp_path / "audit"), task="labels:urban,natural", classifier="logreg",
                     review_top=0, random_sample=0)
    assert audit.audited == 60 and audit.flagged >= 1


@pytest.mark.parametrize("name, shown", [
    ("a\tb", r"'a\tb'"), ("red\x1b[31m", r"'red\x1b[31m'"), ("two\nlines", r"'two\nlines'"),
    ("rl\u202eo", r"'rl\u202eo'"), ("bell\x07", r"'bell\x07'"), ("a;b", "'a;b'"),
])
def test_a_class_name_with_a_control_character_or_a_semicolon_is_refused_at_the_door(tmp_path, name, shown):
    """Issue 82, 10 and 14: a tab in a class name shifted the selection tables' columns, an escape or a line break
    forges console lines, and ``a;b`` was accepted by add-verdicts but refused in the list it led to. The task
    refuses them, in one printable line that names the class escaped."""
    import yaml

    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump({"classes": {name: {"labels": ["x"]}, "b": {"labels": ["y"]}}}))
    with pytest.raises(TaskError) as caught:
        load_task(str(path))
    message = str(caught.value)
    assert message.startswith(f"task.classes: class {shown} holds ") and message.isprintable()


def test_an_inline_task_and_a_long_name_are_refused_the_same_way():
    with pytest.raises(TaskError, match="class 'a;b' holds ';', which separates classes in a label list"):
        load_task("labels:a;b,c")
    with pytest.raises(TaskError) as caught:
        task_from_definition({"classes": {"x" * 10_000 + "\t": {"labels": ["x"]}, "b": {"labels": ["y"]}}})
    assert len(str(caught.value)) < 200 and "..." in str(caught.value)


def test_add_verdicts_refuses_a_class_with_a_semicolon_before_adding_anything(tmp_path, capsys):
    """The class ``a;b`` at add-verdicts' door (its --task): one line, and no store is made."""
    import json

    from acoustic_env.cli import main
    from acoustic_env.demo.tables import synthetic_features, write_features
    from acoustic_env.labels.store import default_store

    table = write_features(synthetic_features(8, seed=1, signals=("raw",)).table, str(tmp_path / "table"))
    verdicts = tmp_path / "v.json"
    verdicts.write_text(json.dumps([{"clip_id": "clip0000001", "verdict": "wrong", "sample": "suspects",
                                     "given_labels": ["c"], "corrected_label": ["a;b"]}]))
    assert main(["labels", "add-verdicts", "--features", table, "--verdicts", str(verdicts), "--reviewer", "r",
                 "--task", "labels:a;b,c"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("task.classes: class 'a;b' holds ';', which separates classes in a label list; rename the "
                        "class") and len(err.splitlines()) == 1
    assert not os.path.exists(default_store(table))
