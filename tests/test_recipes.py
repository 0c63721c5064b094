"""Recipes on miniature copies of each collection's published layout (real audio files, named and placed as published).

The audio comes from the demo synthesizer's sources (a horn, voices, rain, an engine, ...),
one source per label and a different scene per seed, so that clips of one class are
distinct recordings (the near-duplicate guard must find nothing) and the classes differ.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from acoustic_env.audio.manifest import ManifestError, read_manifest
from acoustic_env.vocabulary.tasks import load_task
from acoustic_env.cli import main
from acoustic_env.demo import synth
from acoustic_env.recipes.audioset import prepare_audioset
from acoustic_env.recipes.common import summarize
from acoustic_env.recipes.esc50 import prepare_esc50
from acoustic_env.recipes.fsd50k import BINS, bins_task_path, prepare_fsd50k, tag_bins
from acoustic_env.recipes.urbansound8k import prepare_urbansound8k
from acoustic_env.storage import read_parts
from acoustic_env.table import read_features

#: label (or MID) → the sound a clip with that label gets; labels not here add nothing.
SOUNDS: dict[str, Callable[[np.random.Generator, int, int], np.ndarray]] = {
    "car_horn": synth.horn, "children_playing": synth.voices, "rain": synth.rain, "helicopter": synth.passing_engine,
    "siren": synth.siren, "Car": synth.traffic_rumble, "Bird": synth.birdsong, "Water_tap_and_faucet": synth.stream,
    "Speech": synth.voices, "Guitar": synth.horn, "/t/dd00128": synth.traffic_rumble, "/t/dd00129": synth.birdsong,
    "/m/09x0r": synth.voices}


def sound(path: Path, labels: Sequence[str], seed: int, sr: int = 22050, seconds: float = 1.5) -> Path:
    """A real audio file (format from the suffix) mixing the sources of ``labels`` over a little noise."""
    rng = np.random.default_rng([15, seed])
    n = int(seconds * sr)
    x = sum((SOUNDS[label](rng, n, sr) for label in labels if label in SOUNDS), 0.05 * rng.standard_normal(n))
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, (0.5 * x / np.max(np.abs(x))).astype(np.float32), sr, subtype="PCM_16")
    return path


def write_csv(path: Path, header: list[str] | None, rows: list[list]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        if header:
            w.writerow(header)
        w.writerows(rows)


# --- UrbanSound8K: per fold a car_horn recording (2 slices in even folds) and a children_playing one --

def us8k_rows(n_folds: int) -> list[tuple]:
    """slice_file_name, fsID, start, end, salience, fold, classID, class: named as UrbanSound8K names them."""
    rows = []
    for fold in range(1, n_folds + 1):
        for fs, cid, name, slices in ((100000 + 10 * fold, 1, "car_horn", 2 - fold % 2),
                                      (100001 + 10 * fold, 2, "children_playing", 1)):
            rows += [(f"{fs}-{cid}-0-{k}.wav", fs, 0.5 * k, 0.5 * k + 1.5, 1 + k % 2, fold, cid, name)
                     for k in range(slices)]
    return rows


US8K = us8k_rows(3)


def make_us8k(root: Path, rows: Sequence[tuple] = US8K) -> Path:
    write_csv(root / "metadata" / "UrbanSound8K.csv",
              ["slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class"], [list(r) for r in rows])
    for i, (name, *_, fold, _cid, cls) in enumerate(rows):
        sound(root / "audio" / f"fold{fold}" / name, [cls], seed=i, sr=22050 if i % 2 else 44100)
    return root


def test_urbansound8k_keeps_folds_and_source_recordings(tmp_path):
    manifest = prepare_urbansound8k(str(make_us8k(tmp_path / "UrbanSound8K")), str(tmp_path / "out"))
    table = read_manifest(manifest).table
    assert table.num_rows == len(US8K) == 7 and table["clip_id"][0].as_py() == "100010-1-0-0"
    assert table["group"].to_pylist() == [str(r[1]) for r in US8K]
    assert table["fold"].to_pylist() == [str(r[5]) for r in US8K]  # a CSV manifest's extra columns are text
    assert table["uri"][0].as_py().endswith("UrbanSound8K/audio/fold1/100010-1-0-0.wav")
    assert table["start_s"].null_count == len(US8K)  # the source positions are not cut points
    assert table["source_end_s"].to_pylist()[3] == "2.0"  # the second slice of fold 2's horn recording
    s = summarize(manifest)
    assert s == {"manifest": manifest, "clips": 7, "labels": {"car_horn": 4, "children_playing": 3},
                 "folds": {"1": 2, "2": 3, "3": 2}, "groups": 6, "missing_audio": 0, "repeated_ids": 0}


# --- ESC-50: per fold a rain recording in takes A and B and a helicopter (ESC-10); sirens in folds 1-2 --

ESC50_HEADER = ["filename", "fold", "target", "category", "esc10", "src_file", "take"]


def esc50_rows() -> list[list]:
    """Rows of meta/esc50.csv: ``<fold>-<src_file>-<take>-<target>.wav`` as ESC-50 names its clips."""
    rows = []
    for fold in range(1, 6):
        clips = [("rain", 10, True, "A"), ("rain", 10, True, "B"), ("helicopter", 40, True, "A")]
        clips += [("siren", 42, False, "A")] if fold <= 2 else []
        for category, target, esc10, take in clips:
            src = 100000 + 100 * fold + target
            rows.append([f"{fold}-{src}-{take}-{target}.wav", fold, target, category, esc10, src, take])
    return rows


def make_esc50(root: Path) -> Path:
    rows = esc50_rows()
    write_csv(root / "meta" / "esc50.csv", ESC50_HEADER, rows)
    for i, r in enumerate(rows):
        sound(root / "audio" / r[0], [r[3]], seed=100 + i, sr=44100)
    return root


def test_esc50_and_esc10(tmp_path):
    root, rows = make_esc50(tmp_path / "ESC-50-master"), esc50_rows()
    esc50 = read_manifest(prepare_esc50(str(root), str(tmp_path / "out"))).table
    assert esc50.num_rows == 17 and sorted(set(esc50["fold"].to_pylist())) == list("12345")
    assert esc50["group"].to_pylist() == [str(r[5]) for r in rows] and len(set(esc50["group"].to_pylist())) == 12
    assert esc50["clip_id"][0].as_py() == "1-100110-A-10" and esc50["take"].to_pylist()[:2] == ["A", "B"]
    esc10_path = prepare_esc50(str(root), str(tmp_path / "out"), esc10=True)
    assert esc10_path.endswith("esc10.csv")
    esc10 = read_manifest(esc10_path).table
    assert esc10.num_rows == 15 and {label for ls in esc10["labels"].to_pylist() for label in ls} == {"rain", "helicopter"}
    assert summarize(esc10_path)["missing_audio"] == 0


def test_a_file_listed_twice_in_the_metadata_is_counted_on_the_console(tmp_path, capsys):
    """ESC-50's metadata with its first row again (in another fold): the clip list keeps both rows, as the
    metadata has them, and the summary says what extract will make of the second."""
    root, rows = make_esc50(tmp_path / "ESC-50-master"), esc50_rows()
    write_csv(root / "meta" / "esc50.csv", ESC50_HEADER, [*rows, [rows[0][0], 3, *rows[0][2:]]])
    assert main(["recipe", "esc50", str(root), str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("18 clips, 3 labels, 12 groups") and (
        "  1 rows repeat the clip id of an earlier row: the metadata lists a file twice (extract keeps the first row "
        "of each and lists the others as duplicate_id)") in out, out
    assert summarize(str(tmp_path / "out" / "esc50.csv"))["repeated_ids"] == 1


# --- FSD50K: dev (train/val) and eval, vocabulary, uploaders, tag bins ---------------

#: dev.csv rows (fname, tags, split, uploader) and eval.csv rows (fname, tags)
FSD_DEV = [(64760, "Car,Vehicle,Motor_vehicle_(road)", "train", "u64760"), (16399, "Bird,Wild_animals", "train", "alice"),
           (16400, "Rain", "val", "alice"), (16401, "Speech,Car", "train", "u16401"),
           (16402, "Music,Guitar", "val", "u16402")]
FSD_EVAL = [(37199, "Dog,Bark"), (37200, "Wind")]


def make_fsd50k(root: Path, dev: Sequence[tuple] = FSD_DEV, eval_: Sequence[tuple] = FSD_EVAL,
                vocabulary_extra: tuple[str, ...] = ()) -> Path:
    gt = root / "FSD50K.ground_truth"
    task = load_task(bins_task_path())
    tags = sorted(set().union(*task.class_labels)) + ["Music", "Guitar", *vocabulary_extra]
    write_csv(gt / "vocabulary.csv", None, [[i, t, f"/m/x{i}"] for i, t in enumerate(tags)])
    mids = lambda t: ",".join(f"/m/{i}" for i in range(len(t.split(","))))  # noqa: E731
    write_csv(gt / "dev.csv", ["fname", "labels", "mids", "split"], [[f, t, mids(t), s] for f, t, s, _ in dev])
    write_csv(gt / "eval.csv", ["fname", "labels", "mids"], [[f, t, mids(t)] for f, t in eval_])
    meta = root / "FSD50K.metadata"
    meta.mkdir(parents=True)
    (meta / "dev_clips_info_FSD50K.json").write_text(json.dumps(
        {str(f): {"uploader": u, "license": "http://creativecommons.org/publicdomain/zero/1.0/"} for f, _, _, u in dev}))
    for part, rows in (("dev", dev), ("eval", eval_)):
        for f, tags_, *_ in rows:
            sound(root / f"FSD50K.{part}_audio" / f"{f}.wav", tags_.split(","), seed=f, sr=44100)
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


def test_fsd50k_refuses_a_tag_holding_the_label_separator(tmp_path):
    """A tag with ``;`` (someone else's vocabulary) would come back from the clip list as two labels."""
    dev = [*FSD_DEV, (16403, "Rain;Thunder,Rain", "train", "u16403")]
    root = make_fsd50k(tmp_path / "FSD50K", dev, vocabulary_extra=("Rain;Thunder",))
    with pytest.raises(ManifestError) as caught:
        prepare_fsd50k(str(root), str(tmp_path / "out"))
    assert str(caught.value) == (f"{root / 'FSD50K.ground_truth' / 'dev.csv'}: row 7: tag 'Rain;Thunder' holds ';', "
                                 "which separates the labels of a clip in the clip list; rename the tag in "
                                 "vocabulary.csv and dev.csv")
    assert not (tmp_path / "out" / "fsd50k.csv").exists()


def test_fsd50k_eight_bins_each_refine_one_of_the_four_and_name_ontology_classes():
    """Every tag of the four bins sits in an eight-bin class named after its four-bin class (``urban_*`` ...);
    every tag of both files is an AudioSet ontology class as FSD50K writes it (", " and ", and " as "_and_")."""
    from acoustic_env.vocabulary.ontology import load_ontology

    four, eight = load_task(bins_task_path(4)), load_task(bins_task_path(8))
    assert eight.n_classes == 8 and BINS[8] == "fsd50k_eight_bins.yaml"
    home = {tag: name for name, tags in zip(eight.class_names, eight.class_labels) for tag in tags}
    assert sum(map(len, eight.class_labels)) == len(home)  # no tag in two bins
    for name, tags in zip(four.class_names, four.class_labels):
        for tag in tags:
            assert home[tag].split("_")[0] == name, (tag, home[tag], name)
    assert {n.split("_")[0] for n in eight.class_names} == set(four.class_names)
    written = {n.replace(", and ", "_and_").replace(", ", "_and_").replace(" ", "_")
               for n in load_ontology().names.values()}
    for task in (four, eight):
        assert set().union(*task.class_labels) <= written, sorted(set().union(*task.class_labels) - written)


def test_fsd50k_recipe_bins_into_eight_on_request(tmp_path, capsys):
    eight = load_task(bins_task_path(8))
    extra = tuple(sorted(set().union(*eight.class_labels) - set().union(*load_task(bins_task_path()).class_labels)))
    dev = [(1, "Car,Vehicle", "train", "a"), (2, "Siren,Alarm", "train", "b"), (3, "Drill,Power_tool,Tools", "val", "c"),
           (4, "Bird,Wild_animals", "train", "d"), (5, "Rain", "train", "e"), (6, "Door", "val", "f"),
           (7, "Dog,Bark,Domestic_animals_and_pets", "train", "g"), (8, "Speech,Car", "train", "h")]
    root = make_fsd50k(tmp_path / "FSD50K", dev, [(9, "Speech")], vocabulary_extra=extra)
    assert main(["recipe", "fsd50k", str(root), str(tmp_path / "out"), "--bins", "8"]) == 0
    bins = json.loads((tmp_path / "out" / "fsd50k_bins.json").read_text())
    assert bins["classes"] == {name: 1 for name in eight.class_names} | {"urban_traffic": 2, "human": 2}  # 8 claims both
    assert bins["overlaps"] == {"urban_traffic+human": 1} and bins["ambiguous"] == 1
    assert (tmp_path / "out" / "fsd50k_eight_bins.yaml").read_text() == Path(bins_task_path(8)).read_text()
    capsys.readouterr()
    assert main(["recipe", "fsd50k", str(root), str(tmp_path / "o2"), "--bins", "8",
                 "--task-file", bins_task_path(4)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bins" in err[0] and "--task-file" in err[0]


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
    sound(root / "audio" / "balanced_train" / "--PJHxphWEs_30000.flac", ["/t/dd00128"], seed=1)
    sound(root / "audio" / "balanced_train" / "--ZhevVpy1s_50000.wav", ["/t/dd00129"], seed=2)
    sound(root / "audio" / "eval" / "--4gqARaEJE_0.wav", ["/t/dd00128"], seed=3)
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
    assert "7 clips, 2 labels, 6 groups, folds 1: 2, 2: 3, 3: 2" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "acoustic_env.cli", "recipe", "esc50", str(root), str(tmp_path / "o")],
                         capture_output=True, text=True, check=False)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    assert "meta/esc50.csv: not found (is ROOT the ESC-50 folder?)" in bad.stderr
    import acoustic_env as ae  # the same job from Python, by its catalogue name

    prepared = ae.run("recipe urbansound8k", root=str(root), out=str(tmp_path / "api"))
    assert prepared.manifest == str(tmp_path / "api" / "urbansound8k.csv") and Path(prepared.manifest).is_file()


# --- Each recipe's manifest through extract, train on the published folds, and audit ----------

def fsd50k_for_training(root: Path) -> Path:
    """Per class of the binning task: 2 train clips of one uploader, 1 val, 1 eval; plus an ambiguous and an unknown clip."""
    tags = {"urban": "Car,Vehicle,Motor_vehicle_(road)", "natural": "Bird,Wild_animals",
            "domestic": "Water_tap_and_faucet,Domestic_sounds_and_home_sounds", "human": "Speech"}
    dev, eval_ = [], []
    for n, (cls, t) in enumerate(tags.items()):
        f = 1000 + 10 * n
        dev += [(f, t, "train", f"up-{cls}"), (f + 1, t, "train", f"up-{cls}"), (f + 2, t, "val", f"val-{cls}")]
        eval_.append((f + 3, t))
    dev += [(2000, "Speech,Car", "train", "up-mix"), (2001, "Music,Guitar", "val", "up-music")]
    return make_fsd50k(root, dev, eval_)


def make_audioset(root: Path) -> Path:
    """Every published list with 2 urban and 2 natural segments mirrored (FLAC and WAV, as a mirror holds them);
    balanced_train adds an ambiguous segment (both classes), eval one of speech alone (no class) and
    unbalanced_train one that was never mirrored."""
    rng = np.random.default_rng(5)
    urban, natural, speech = "/t/dd00128", "/t/dd00129", "/m/09x0r"
    extra = {"balanced_train": [urban, natural], "unbalanced_train": [natural], "eval": [speech]}
    for n, (name, last) in enumerate(extra.items()):
        segments = [[urban], [urban, speech], [natural], [natural], last]
        lines = ["# Segments csv created Sun Mar  5 10:54:31 2017",
                 f"# num_ytids={len(segments)}, num_segs={len(segments)}, num_unique_labels=3",
                 "# YTID, start_seconds, end_seconds, positive_labels"]
        for i, mids in enumerate(segments):
            ytid, start = synth.make_ytid(rng), 10 * i + n
            lines.append(f'{ytid}, {start:.3f}, {start + 10:.3f}, "{",".join(mids)}"')
            if not (name == "unbalanced_train" and mids is last):
                sound(root / "audio" / name / f"{ytid}_{start * 1000}.{('wav', 'flac')[i % 2]}", mids, seed=300 + 10 * n + i,
                      sr=(16000, 32000)[i % 2])
        (root / f"{name}_segments.csv").write_text("\n".join(lines) + "\n")
    return root


@dataclass(frozen=True)
class Miniature:
    """A collection's miniature layout and the options its README commands take."""

    build: Callable[[Path], Path]  # writes the layout below the given folder; returns ROOT
    manifest: str  # what the recipe writes in OUT
    task: str  # train's and audit's --task; {out}: the recipe's OUT
    flags: tuple[str, ...] = ()  # the recipe command's options


MINIATURES = {
    "urbansound8k": Miniature(lambda d: make_us8k(d / "UrbanSound8K", us8k_rows(5)), "urbansound8k.csv",
                              "labels:car_horn,children_playing"),
    "esc50": Miniature(lambda d: make_esc50(d / "ESC-50-master"), "esc10.csv", "labels:rain,helicopter", ("--esc10",)),
    "fsd50k": Miniature(lambda d: fsd50k_for_training(d / "FSD50K"), "fsd50k.csv", "{out}/fsd50k_environment.yaml"),
    "audioset": Miniature(lambda d: make_audioset(d / "audioset"), "audioset.csv", "urban_natural"),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(MINIATURES))
def test_recipe_manifest_through_extract_train_on_published_folds_and_audit(name, tmp_path, ray_session, capsys):
    """The README's commands: ``recipe NAME ROOT OUT``, then extract, train --folds-column fold, audit.

    What must hold: every mirrored clip is extracted (a listed clip without audio is one
    ``missing_file`` error); the feature table carries the recipe's groups and folds; train
    cross-validates over exactly the published folds (per fold the clips and classes the
    manifest puts there, no group in two folds); the audit scores every clip with a target,
    in the recipe's classes, with each group in one of its folds; and the near-duplicate
    guard finds nothing among these distinct recordings.
    """
    mini = MINIATURES[name]
    out = tmp_path / "lists"
    assert main(["recipe", name, str(mini.build(tmp_path)), str(out), *mini.flags]) == 0
    manifest = str(out / mini.manifest)
    listed = read_manifest(manifest).table.to_pylist()
    assert f"{len(listed)} clips" in capsys.readouterr().out
    task_arg = mini.task.format(out=out)
    task = load_task(task_arg)
    present = [r for r in listed if Path(r["uri"]).is_file()]
    targets = {r["clip_id"]: r for r in present if task.assign(r["labels"]) is not None}

    features = str(tmp_path / "features")
    # --signals raw: the recording as it is (no noise-reduced foreground and background), enough here. Train and
    # audit use every feature group: on the indices alone two distinct synthetic traffic scenes lie within the
    # near-duplicate threshold (0.03), which was set on all groups; on all of them every distinct pair is >= 0.07.
    assert main(["extract", "--manifest", manifest, "--output", features, "--signals", "raw", "--no-progress"]) == 0
    missing = len(listed) - len(present)
    assert f"{len(present)} clips extracted, {missing} failed" in capsys.readouterr().out
    table = read_features(features, task=task_arg)
    assert sorted(table.ids) == sorted(targets)
    assert dict(zip(table.ids, table.groups)) == {c: str(r["group"]) for c, r in targets.items()}
    stored = read_parts(f"{features}/features", columns=["clip_id", "fold"]).to_pylist()
    assert {r["clip_id"]: r["fold"] for r in stored} == {r["clip_id"]: str(r["fold"]) for r in present}

    model = tmp_path / "model"  # the MLP unsearched: the folds are what is looked at
    assert main(["train", "--features", features, "--output", str(model), "--task", task_arg, "--folds-column", "fold",
                 "--trials", "0", "--no-ablations", "--shap-samples", "0", "--baselines", "logreg", "--max-rounds", "3",
                 "--tuning-trials", "1", "--no-progress"]) == 0
    record = json.loads(next((model / "runs").glob("*.json")).read_text())
    ev, counts = record["evaluation"], record["counts"]
    published: dict[str, Counter] = {}
    for r in targets.values():
        published.setdefault(str(r["fold"]), Counter())[task.class_names[task.assign(r["labels"])]] += 1
    assert (ev["method"], ev["folds_column"], ev["folds"]) == ("cross_validation", "fold", len(published))
    # in the published order: numbers numerically (fold 10 after fold 9: tests/test_cv.py), names alphabetically
    assert ev["fold_names"] == sorted(published, key=lambda f: (not f.isdigit(), int(f) if f.isdigit() else 0, f))
    assert counts["splits"] == {f"fold {f}": {**{c: published[f][c] for c in task.class_names},
                                              "clips": sum(published[f].values())} for f in ev["fold_names"]}
    assert [f["n"] for f in ev["models"]["logreg"]["per_fold"]] == [sum(published[f].values()) for f in ev["fold_names"]]
    assert counts["duplicates"]["pairs"] == 0, counts["duplicates"]  # distinct recordings: the guard merges nothing
    assert counts["leaking_groups"] == 0  # so the published folds keep each group whole
    assert f"{len(published)}-fold cross-validation over column fold" in capsys.readouterr().out
    page = (model / "report" / "index.html").read_text()  # the per-fold table names the published folds
    assert all(f"<td class='t'>{f}</td>" in page and f"<td class='t'>fold {f}</td>" in page for f in published)

    audit = tmp_path / "audit"
    assert main(["audit", "--features", features, "--output", str(audit), "--task", task_arg, "--folds", "2",
                 "--classifier", "logreg", "--review-top", "0", "--random-sample", "0"]) == 0
    rows = pq.read_table(audit / "audit.parquet").to_pylist()
    assert sorted(r["clip_id"] for r in rows) == sorted(targets)
    assert all(r["given_labels"] == [task.class_names[task.assign(targets[r["clip_id"]]["labels"])]] for r in rows)
    folds_of_group: dict[str, set[int]] = {}
    for r in rows:
        folds_of_group.setdefault(r["group"], set()).add(r["fold"])
    assert all(len(f) == 1 for f in folds_of_group.values())
    summary = json.loads((audit / "summary.json").read_text())
    assert summary["task"]["classes"] == list(task.class_names) and summary["duplicates"]["groups_merged"] == 0


def test_a_metadata_file_of_a_header_alone_writes_no_clip_list_and_says_so(tmp_path, capsys):
    """A header and no rows was an empty clip list and "0 clips" with exit 0, which extract then found nothing in."""
    (tmp_path / "us8k" / "metadata").mkdir(parents=True)
    (tmp_path / "us8k" / "metadata" / "UrbanSound8K.csv").write_text(
        "slice_file_name,fsID,start,end,salience,fold,classID,class\n")
    out = tmp_path / "out"
    assert main(["recipe", "urbansound8k", str(tmp_path / "us8k"), str(out)]) == 2
    assert capsys.readouterr().err.strip() == (
        "acoustic-env: error: urbansound8k: no clips to list (the metadata has no data rows, or every clip was left "
        f"out); nothing written to {out}/urbansound8k.csv")
    assert not out.exists()
