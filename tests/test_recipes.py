"""Recipes on miniature copies of each collection's published layout (real audio files, named and placed as published)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import tone_clip

from acoustic_env.audio.manifest import ManifestError, read_manifest
from acoustic_env.audioset.tasks import load_task
from acoustic_env.recipes.audioset import prepare_audioset
from acoustic_env.recipes.common import summarize
from acoustic_env.recipes.esc50 import prepare_esc50
from acoustic_env.recipes.fsd50k import bins_task_path, prepare_fsd50k, tag_bins
from acoustic_env.recipes.urbansound8k import prepare_urbansound8k


def write_csv(path: Path, header: list[str] | None, rows: list[list]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        if header:
            w.writerow(header)
        w.writerows(rows)


# --- UrbanSound8K: 12 slices of 6 recordings, 2 classes, 3 folds --------------------

US8K = [  # slice_file_name, fsID, start, end, salience, fold, classID, class
    (f"{fs}-{cid}-0-{k}.wav", fs, 0.5 * k, 0.5 * k + 1.5, 1 + k % 2, fold, cid, name)
    for fs, cid, name, fold in ((100032, 1, "car_horn", 1), (100263, 3, "dog_bark", 1), (101415, 1, "car_horn", 2),
                                (102305, 3, "dog_bark", 2), (103074, 1, "car_horn", 3), (104327, 3, "dog_bark", 3))
    for k in range(2)]


def make_us8k(root: Path) -> Path:
    write_csv(root / "metadata" / "UrbanSound8K.csv",
              ["slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class"], US8K)
    for i, (name, *_, fold, cid, _cls) in enumerate(US8K):
        (root / "audio" / f"fold{fold}").mkdir(parents=True, exist_ok=True)
        tone_clip(root / "audio" / f"fold{fold}" / name, seconds=1.5, sr=22050 if i % 2 else 44100,
                  freq=300.0 if cid == 1 else 1500.0, seed=i)
    return root


def test_urbansound8k_keeps_folds_and_source_recordings(tmp_path):
    manifest = prepare_urbansound8k(str(make_us8k(tmp_path / "UrbanSound8K")), str(tmp_path / "out"))
    table = read_manifest(manifest).table
    assert table.num_rows == 12 and table["clip_id"][0].as_py() == "100032-1-0-0"
    assert table["group"].to_pylist() == [str(r[1]) for r in US8K]
    assert table["fold"].to_pylist() == [str(r[5]) for r in US8K]  # a CSV manifest's extra columns are text
    assert table["uri"][0].as_py().endswith("UrbanSound8K/audio/fold1/100032-1-0-0.wav")
    assert table["start_s"].null_count == 12  # the source positions are not cut points
    assert table["source_end_s"].to_pylist()[1] == "2.0"
    s = summarize(manifest)
    assert s == {"manifest": manifest, "clips": 12, "labels": {"car_horn": 6, "dog_bark": 6},
                 "folds": {"1": 4, "2": 4, "3": 4}, "groups": 6, "missing_audio": 0}


def test_esc50_and_esc10(tmp_path):
    root = tmp_path / "ESC-50-master"
    rows = []
    for i in range(10):
        fold, src, take = i % 5 + 1, 100000 + i // 2, "AB"[i % 2]
        cat, target, esc10 = (("dog", 0, True), ("rain", 10, True), ("clapping", 22, False))[i % 3]
        name = f"{fold}-{src}-{take}-{target}.wav"
        rows.append([name, fold, target, cat, esc10, src, take])
        (root / "audio").mkdir(parents=True, exist_ok=True)
        tone_clip(root / "audio" / name, seconds=1.0, sr=44100, seed=i)
    write_csv(root / "meta" / "esc50.csv", ["filename", "fold", "target", "category", "esc10", "src_file", "take"], rows)
    esc50 = read_manifest(prepare_esc50(str(root), str(tmp_path / "out"))).table
    assert esc50.num_rows == 10 and sorted(set(esc50["fold"].to_pylist())) == list("12345")
    assert esc50["group"].to_pylist() == [str(r[5]) for r in rows] and len(set(esc50["group"].to_pylist())) == 5
    esc10_path = prepare_esc50(str(root), str(tmp_path / "out"), esc10=True)
    assert esc10_path.endswith("esc10.csv")
    esc10 = read_manifest(esc10_path).table
    assert esc10.num_rows == 7 and {label for ls in esc10["labels"].to_pylist() for label in ls} == {"dog", "rain"}
    assert summarize(esc10_path)["missing_audio"] == 0


# --- FSD50K: dev (train/val) and eval, vocabulary, uploaders, tag bins ---------------

def make_fsd50k(root: Path, vocabulary_extra: tuple[str, ...] = ()) -> Path:
    gt = root / "FSD50K.ground_truth"
    task = load_task(bins_task_path())
    tags = sorted(set().union(*task.class_labels)) + ["Music", "Guitar", *vocabulary_extra]
    write_csv(gt / "vocabulary.csv", None, [[i, t, f"/m/x{i}"] for i, t in enumerate(tags)])
    dev = [(64760, "Car,Vehicle,Motor_vehicle_(road)", "train"), (16399, "Bird,Wild_animals", "train"),
           (16400, "Rain", "val"), (16401, "Speech,Car", "train"), (16402, "Music,Guitar", "val")]
    write_csv(gt / "dev.csv", ["fname", "labels", "mids", "split"],
              [[f, t, ",".join(f"/m/{i}" for i in range(len(t.split(",")))), s] for f, t, s in dev])
    write_csv(gt / "eval.csv", ["fname", "labels", "mids"], [[37199, "Dog,Bark", "/m/a,/m/b"], [37200, "Wind", "/m/c"]])
    meta = root / "FSD50K.metadata"
    meta.mkdir(parents=True)
    (meta / "dev_clips_info_FSD50K.json").write_text(json.dumps(
        {str(f): {"uploader": "alice" if f in (16399, 16400) else f"u{f}", "license": "CC0"} for f, _, _ in dev}))
    for part, ids in (("dev", [d[0] for d in dev]), ("eval", [37199, 37200])):
        (root / f"FSD50K.{part}_audio").mkdir(parents=True)
        for f in ids:
            tone_clip(root / f"FSD50K.{part}_audio" / f"{f}.wav", seconds=1.0, sr=44100, seed=f)
    return root


def test_fsd50k_bins_tags_counts_classes_and_overlaps(tmp_path):
    root = make_fsd50k(tmp_path / "FSD50K")
    manifest = prepare_fsd50k(str(root), str(tmp_path / "out"))
    table = read_manifest(manifest).table
    assert table["clip_id"].to_pylist() == ["64760", "16399", "16400", "16401", "16402", "37199", "37200"]
    assert table["fold"].to_pylist() == ["train", "train", "val", "train", "val", "eval", "eval"]
    assert table["group"].to_pylist()[:3] == ["uploader:u64760", "uploader:alice", "uploader:alice"]
    assert table["group"].to_pylist()[5] == "clip:37199"  # no eval metadata: each clip its own group
    assert table["labels"][0].as_py() == ["Car", "Vehicle", "Motor_vehicle_(road)"]
    bins = json.loads((tmp_path / "out" / "fsd50k_bins.json").read_text())
    assert bins["classes"] == {"urban": 2, "natural": 3, "domestic": 1, "human": 1}
    assert bins["overlaps"] == {"urban+human": 1} and bins["ambiguous"] == 1 and bins["unknown"] == 1
    assert bins["per_fold"]["eval"]["classes"] == {"urban": 0, "natural": 1, "domestic": 1, "human": 0}
    assert (tmp_path / "out" / "fsd50k_environment.yaml").read_text() == Path(bins_task_path()).read_text()
    assert summarize(manifest)["missing_audio"] == 0
    # the counting function on its own, for any task and label lists
    direct = tag_bins(load_task(bins_task_path()), [["Car", "Rain"], ["Speech"], []])
    assert direct["overlaps"] == {"urban+natural": 1} and direct["unlabelled"] == 1


def test_fsd50k_refuses_bins_outside_the_vocabulary(tmp_path):
    root = make_fsd50k(tmp_path / "FSD50K")
    (root / "FSD50K.ground_truth" / "vocabulary.csv").write_text("0,Car,/m/0k4j\n1,Rain,/m/06mb1\n")
    with pytest.raises(ManifestError, match=r"fsd50k_environment\.yaml: tag\(s\) not in .*vocabulary\.csv: Accel"):
        prepare_fsd50k(str(root), str(tmp_path / "out"))


# --- AudioSet: published segment lists + a local mirror -------------------------------

def test_audioset_lists_and_mirror(tmp_path):
    root = tmp_path / "audioset"
    head = ["# Segments csv created Sun Mar  5 10:54:31 2017", "# num_ytids=3, num_segs=3, num_unique_labels=2",
            "# YTID, start_seconds, end_seconds, positive_labels"]
    (root / "audio" / "balanced_train").mkdir(parents=True)
    (root / "audio" / "eval").mkdir(parents=True)
    (root / "balanced_train_segments.csv").write_text("\n".join(head + [
        '--PJHxphWEs, 30.000, 40.000, "/m/09x0r,/t/dd00128"', '--ZhevVpy1s, 50.000, 60.000, "/t/dd00129"',
        '-0SdAVK79lg, 0.000, 10.000, "/t/dd00129"']) + "\n")
    (root / "eval_segments.csv").write_text("\n".join(head + ['--4gqARaEJE, 0.000, 10.000, "/t/dd00128"']) + "\n")
    tone_clip(root / "audio" / "balanced_train" / "--PJHxphWEs_30000.flac", seconds=1.0, subtype="PCM_16")
    tone_clip(root / "audio" / "balanced_train" / "--ZhevVpy1s_50000.wav", seconds=1.0)
    tone_clip(root / "audio" / "eval" / "--4gqARaEJE_0.wav", seconds=1.0)
    manifest = prepare_audioset(str(root), str(tmp_path / "out"))  # unbalanced list absent: skipped
    table = read_manifest(manifest).table
    assert table["clip_id"].to_pylist() == ["--PJHxphWEs_30000", "--ZhevVpy1s_50000", "-0SdAVK79lg_0", "--4gqARaEJE_0"]
    assert table["fold"].to_pylist() == ["balanced_train"] * 3 + ["eval"]
    assert table["group"].to_pylist()[0] == "--PJHxphWEs" and table["start_s"].to_pylist()[1] == 50.0
    assert table["uri"][1].as_py().endswith("audio/balanced_train/--ZhevVpy1s_50000.wav")
    assert table["labels"][0].as_py() == ["/m/09x0r", "/t/dd00128"]
    assert summarize(manifest)["missing_audio"] == 1  # -0SdAVK79lg was never mirrored
    with pytest.raises(ManifestError, match="none of unbalanced_train_segments.csv found"):
        prepare_audioset(str(root), str(tmp_path / "o2"), lists=["unbalanced_train"])


def test_command_prints_a_summary_and_bad_layouts_end_in_one_line(tmp_path):
    root = make_us8k(tmp_path / "UrbanSound8K")
    ok = subprocess.run([sys.executable, "-m", "acoustic_env.cli", "recipe", "urbansound8k", str(root),
                         str(tmp_path / "out")], capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stderr
    assert "12 clips, 2 labels, 6 groups, folds 1: 4, 2: 4, 3: 4" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "acoustic_env.cli", "recipe", "esc50", str(root), str(tmp_path / "o")],
                         capture_output=True, text=True, check=False)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    assert "meta/esc50.csv: not found (is ROOT the ESC-50 folder?)" in bad.stderr


@pytest.mark.slow
def test_extract_train_and_audit_accept_a_recipe_manifest(tmp_path, ray_session):
    """The UrbanSound8K manifest through extract, train on its published folds, and audit."""
    import acoustic_env as ae

    manifest = prepare_urbansound8k(str(make_us8k(tmp_path / "UrbanSound8K")), str(tmp_path / "lists"))
    run = ae.extract(manifest, str(tmp_path / "features"), progress=False)
    assert run.counts["ok"] == 12 and run.counts["failed"] == 0
    table = ae.read_features(str(tmp_path / "features"), task="labels:car_horn,dog_bark")
    assert len(table) == 12 and table.has_groups and sorted(set(table.groups)) == sorted({str(r[1]) for r in US8K})
    schema = table.table.schema.names
    assert {"fold", "class_id", "salience", "source_start_s"} <= set(schema)
    trained = ae.train(str(tmp_path / "features"), str(tmp_path / "model"), task="labels:car_horn,dog_bark",
                       folds_column="fold", trials=0, ablations=False, shap_samples=0, baselines=("logreg",),
                       max_rounds=3, feature_groups=("indices",))
    assert trained.record["counts"]["duplicates"]["pairs"] >= 0
    audit = ae.audit(str(tmp_path / "features"), str(tmp_path / "audit"), task="labels:car_horn,dog_bark", folds=2,
                     classifier="logreg", review_top=0, random_sample=0, feature_groups=("indices",))
    assert audit.audited == 12


@pytest.mark.slow
def test_extract_accepts_every_recipe_manifest(tmp_path, ray_session):
    """ESC-50, FSD50K and the AudioSet mirror: every listed clip ends in features/ or (never mirrored) errors/."""
    import acoustic_env as ae

    esc = tmp_path / "ESC-50-master"
    rows = [[f"{i % 5 + 1}-{100 + i}-A-0.wav", i % 5 + 1, 0, "dog", True, 100 + i, "A"] for i in range(3)]
    write_csv(esc / "meta" / "esc50.csv", ["filename", "fold", "target", "category", "esc10", "src_file", "take"], rows)
    for i, r in enumerate(rows):
        (esc / "audio").mkdir(parents=True, exist_ok=True)
        tone_clip(esc / "audio" / r[0], seconds=1.0, sr=44100, seed=i)
    audioset = tmp_path / "audioset"
    (audioset / "audio" / "eval").mkdir(parents=True)
    (audioset / "eval_segments.csv").write_text("# a\n# b\n# YTID, start_seconds, end_seconds, positive_labels\n"
                                                '--4gqARaEJE, 0.000, 10.000, "/t/dd00128"\n'
                                                '-0SdAVK79lg, 0.000, 10.000, "/t/dd00129"\n')
    tone_clip(audioset / "audio" / "eval" / "--4gqARaEJE_0.wav", seconds=1.0)
    manifests = {"esc50": (prepare_esc50(str(esc), str(tmp_path / "esc")), 3, 0),
                 "fsd50k": (prepare_fsd50k(str(make_fsd50k(tmp_path / "FSD50K")), str(tmp_path / "fsd")), 7, 0),
                 "audioset": (prepare_audioset(str(audioset), str(tmp_path / "as")), 1, 1)}
    for name, (manifest, ok, missing) in manifests.items():
        run = ae.extract(manifest, str(tmp_path / f"features-{name}"), progress=False)
        assert (run.counts["ok"], run.counts["failed"]) == (ok, missing), name
        assert run.error_types == ({"missing_file": missing} if missing else {}), name
