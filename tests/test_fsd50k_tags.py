"""`recipe fsd50k --from-tags / --tag-map`: FSD50K's free-text tags binned into categories by an editable mapping.

A miniature of FSD50K's layout (ground truth CSVs, the clips-info JSON with Freesound's tags), written here; no audio
is needed to make the clip list.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from acoustic_env.audio.manifest import ManifestError, read_manifest
from acoustic_env.cli import main
from acoustic_env.recipes.fsd50k import TAG_FILES, prepare_fsd50k
from acoustic_env.recipes.fsd50k_tags import categorise, load_tag_map, tag_map_path
from acoustic_env.vocabulary.tasks import load_task

#: clip id → (split, Freesound tags): music the most frequent category, as in the study; one clip of each other
#: category; 303 has tags of two categories (most tags wins), 304 a tie (the mapping's order); 305 none listed.
CLIPS = {**{100 + i: ("train", ["guitar", "loop"]) for i in range(6)},
         200: ("train", ["voice", "talking"]), 201: ("val", ["dog", "bark"]), 202: ("train", ["rain", "thunder"]),
         203: ("val", ["car", "traffic"]), 204: ("train", ["door", "kitchen"]), 205: ("train", ["drill"]),
         206: ("val", ["siren", "alarm"]),
         303: ("train", ["dog", "bark", "car"]), 304: ("val", ["car", "Dog "]), 305: ("train", ["noise", "ambience"])}
EVAL = {400: ["piano", "Music"], 401: ["bird"]}


def make_layout(root: Path, clips: dict = CLIPS, eval_: dict = EVAL) -> Path:
    gt = root / "FSD50K.ground_truth"
    gt.mkdir(parents=True)
    with (gt / "vocabulary.csv").open("w", newline="") as fh:
        csv.writer(fh).writerows([[0, "Music", "/m/04rlf"], [1, "Dog", "/m/0bt9lr"]])
    for name, header, rows in (("dev.csv", ["fname", "labels", "mids", "split"],
                                [[f, "Music", "/m/04rlf", s] for f, (s, _) in clips.items()]),
                               ("eval.csv", ["fname", "labels", "mids"], [[f, "Dog", "/m/0bt9lr"] for f in eval_])):
        with (gt / name).open("w", newline="") as fh:
            csv.writer(fh).writerows([header, *rows])
    meta = root / "FSD50K.metadata"
    meta.mkdir()
    info = lambda tags, f: {"title": f"clip {f}", "description": "", "tags": tags,  # noqa: E731
                            "license": "http://creativecommons.org/licenses/by/3.0/", "uploader": f"u{f % 7}"}
    (meta / "dev_clips_info_FSD50K.json").write_text(json.dumps({str(f): info(t, f) for f, (_, t) in clips.items()}))
    (meta / "eval_clips_info_FSD50K.json").write_text(json.dumps({str(f): info(t, f) for f, t in eval_.items()}))
    return root


def test_tags_bin_into_the_mappings_eight_categories_music_largest(tmp_path, capsys):
    root, out = make_layout(tmp_path / "FSD50K"), tmp_path / "lists"
    assert main(["recipe", "fsd50k", str(root), str(out), "--from-tags"]) == 0
    mapping = yaml.safe_load(Path(tag_map_path()).read_text())
    table = read_manifest(str(out / "fsd50k.csv")).table
    labels = {c: ls[0] for c, ls in zip(table["clip_id"].to_pylist(), table["labels"].to_pylist())}
    assert set(labels.values()) == set(mapping) and len(mapping) == 8 and "music" in mapping
    counts = json.loads((out / TAG_FILES["counts"]).read_text())
    assert max(counts["categories"], key=counts["categories"].get) == "music" and counts["categories"]["music"] == 7
    assert counts["dropped"] == 1 and "305" not in labels  # no listed tag: dropped, counted
    assert counts["per_fold"]["eval"]["categories"]["animals"] == 1
    tags = {f: t for f, (_, t) in CLIPS.items()} | EVAL
    for clip, category in labels.items():  # each clip's category is one its tags are listed under in the file
        assert {t.strip().lower() for t in tags[int(clip)]} & set(mapping[category]), clip
    assert load_task(str(out / TAG_FILES["task"])).class_names == tuple(mapping)
    assert (out / "fsd50k_tag_categories.yaml").read_text() == Path(tag_map_path()).read_text()
    frequency = list(csv.DictReader((out / TAG_FILES["frequency"]).open()))
    top = [r for r in frequency if r["scope"] == "all"][0]
    assert (top["tag"], top["clips"], top["category"]) == ("guitar", "6", "music")
    assert {"all", "dropped", *mapping} == {r["scope"] for r in frequency}
    assert [r["tag"] for r in frequency if r["scope"] == "dropped"] == ["ambience", "noise"]
    printed = capsys.readouterr().out
    assert "top tags: guitar 6, loop 6" in printed and "top tags in music: guitar 6" in printed
    assert "1 clips dropped" in printed


def test_a_clip_whose_tags_name_two_categories_takes_the_most_tags_then_the_files_order(tmp_path):
    order = tmp_path / "animals_first.yaml"
    order.write_text("animals: [dog, bark]\nvehicles: [car, traffic]\n")
    reverse = tmp_path / "vehicles_first.yaml"
    reverse.write_text("vehicles: [car, traffic]\nanimals: [dog, bark]\n")
    first, second = load_tag_map(str(order)), load_tag_map(str(reverse))
    name = lambda m, tags: m.categories[categorise(tags, m)]  # noqa: E731
    assert name(first, ["dog", "bark", "car"]) == name(second, ["dog", "bark", "car"]) == "animals"  # 2 tags to 1
    assert name(first, ["dog", "DOG ", "dog", "car", "traffic"]) == "vehicles"  # a tag counts once, case aside
    assert name(first, ["car", "dog"]) == "animals" and name(second, ["car", "dog"]) == "vehicles"  # a tie: order
    assert categorise(["ambience"], first) is None
    out = tmp_path / "lists"
    prepare_fsd50k(str(make_layout(tmp_path / "FSD50K")), str(out), tag_map=str(reverse))
    table = read_manifest(str(out / "fsd50k.csv")).table
    labels = dict(zip(table["clip_id"].to_pylist(), (ls[0] for ls in table["labels"].to_pylist())))
    assert labels["303"] == "animals" and labels["304"] == "vehicles"  # through the recipe, by the user's mapping
    counts = json.loads((out / TAG_FILES["counts"]).read_text())
    assert (counts["several_categories"], counts["ties_by_mapping_order"]) == (2, 1)
    assert counts["dropped"] == 14 and set(labels.values()) == {"animals", "vehicles"}


@pytest.mark.parametrize("text, error", [
    ("music: [guitar]\nanimals: [dog, Guitar]\n", "tag 'guitar' is listed under both music and animals"),
    ("[music, guitar]\n", "must map two or more categories"),
    ("music: [guitar]\nanimals: []\n", "category animals: must list one or more tags"),
    ("music: [guitar\n", "not YAML"),
    ("music: [guitar]\n'a;b': [dog]\n", "category 'a;b' must be a name without ';'"),
    # issue 82, 23: the second music silently replaced the first
    ("music: [guitar]\nanimals: [dog]\nmusic: [piano]\n", "the key 'music' is given twice (lines 1 and 3), and the "
                                                          "last would win silently; keep one"),
])
def test_a_bad_mapping_is_one_line_naming_the_flag(tmp_path, capsys, text, error):
    root = make_layout(tmp_path / "FSD50K")
    bad = tmp_path / "map.yaml"
    bad.write_text(text)
    assert main(["recipe", "fsd50k", str(root), str(tmp_path / "out"), "--tag-map", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"acoustic-env: error: --tag-map: {bad}: ") and error in err and "\n" not in err
    assert not (tmp_path / "out").exists()


def test_tags_need_the_clips_info_and_refuse_the_label_bins_flags(tmp_path, capsys):
    root = make_layout(tmp_path / "FSD50K")
    assert main(["recipe", "fsd50k", str(root), str(tmp_path / "o"), "--from-tags", "--bins", "8"]) == 2
    assert "--tag-map: bins the free-text tags by its own categories" in capsys.readouterr().err
    (root / "FSD50K.metadata" / "eval_clips_info_FSD50K.json").unlink()
    with pytest.raises(ManifestError, match=r"eval_clips_info_FSD50K\.json: not found \(the free-text tags"):
        prepare_fsd50k(str(root), str(tmp_path / "o"), tag_map=tag_map_path())
