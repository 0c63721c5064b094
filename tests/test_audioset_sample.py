"""`acoustic-env audioset sample`: per-class targets, balanced and uniform draws, exclusions, determinism.

The expected counts are computed the slow, independent way: the clip-list reader extract
uses (``read_manifest``) and the task's own per-row rule (``Task.assign`` /
``Task.claims``), against the sampler's vectorised pass.
"""

from __future__ import annotations

import functools
import json
from collections import Counter

import numpy as np
import pyarrow as pa
import pytest

from acoustic_env.audio.manifest import ManifestError, read_manifest
from acoustic_env.audioset.sample import draw_sample, report_uri, sample_segments, summary_lines
from acoustic_env.audioset.segments import read_segments, write_segments
from acoustic_env.audioset.synthetic import synthetic_segments
from acoustic_env.vocabulary.tasks import load_task
from acoustic_env.cli import main
from acoustic_env.config import ConfigError, from_dict
from acoustic_env.config.audioset import SampleConfig

URBAN, NATURAL = "/t/dd00128", "/t/dd00129"
ROWS = 5_000


@pytest.fixture(scope="module")
def segment_list(tmp_path_factory):
    """5,000 synthetic rows; urban and natural made frequent enough to have hundreds each, some on one clip."""
    table = synthetic_segments(ROWS, seed=3, boost={URBAN: 12.0, NATURAL: 9.0})
    path = tmp_path_factory.mktemp("segments") / "unbalanced_train_segments.csv"
    write_segments(table, str(path), ["synthetic"])
    return path


@functools.cache
def expected(path, task_name="urban_natural"):
    """Eligible clips per class and the reasons, by the task's per-row rule over the manifest reader's rows."""
    task = load_task(task_name)
    labels = read_manifest(str(path)).table["labels"].to_pylist()
    per_class, reasons = Counter(), Counter()
    for ls in labels:
        hits, _ = task.claims(ls)
        if not ls:
            reasons["unlabelled"] += 1
        elif not hits:
            reasons["unknown"] += 1
        elif task.kind == "single_label" and len(hits) > 1:
            reasons["ambiguous"] += 1
        else:
            per_class.update(task.class_names[h] for h in hits)
    return per_class, reasons


def sample(path, tmp_path, **fields):
    return draw_sample(from_dict(SampleConfig, {"segments": str(path), "output": str(tmp_path / "s.csv"), **fields}))


def sampled_classes(result, task_name="urban_natural"):
    task = load_task(task_name)
    return Counter(task.class_names[task.assign(ls)] for ls in result.sample["labels"].to_pylist())


def test_per_class_targets_are_met_and_a_short_class_is_reported(segment_list, tmp_path):
    eligible, reasons = expected(segment_list)
    assert min(eligible.values()) > 100 and reasons["ambiguous"] > 0  # the fixture exercises both
    targets = {"urban": 80, "natural": eligible["natural"] + 5}
    result = sample(segment_list, tmp_path, targets=targets)
    classes = result.report["classes"]
    for name in ("urban", "natural"):
        assert classes[name]["eligible"] == eligible[name]
        assert classes[name]["drawn"] == min(targets[name], eligible[name]) == sampled_classes(result)[name]
    assert classes["natural"]["short"] == 5 and classes["urban"]["short"] == 0
    left = result.report["left_out"]
    assert (left["ambiguous"], left["unknown"], left["unlabelled"]) == (reasons["ambiguous"], reasons["unknown"], 0)
    assert result.report["ambiguous_pairs"] == {"urban+natural": reasons["ambiguous"]}
    assert result.report["rows_read"] == ROWS
    assert result.sample.num_rows + result.report["not_drawn"] + sum(left.values()) == ROWS
    rows = result.sample["row"].to_numpy()
    assert (np.diff(rows) > 0).all()  # the list's order, each row once


def test_balanced_total_gives_every_class_the_same_count(segment_list, tmp_path):
    eligible, _ = expected(segment_list)
    big = sample(segment_list, tmp_path, total=100_000, balanced=True)
    assert dict(sampled_classes(big)) == dict.fromkeys(("urban", "natural"), min(eligible.values()))
    small = sample(segment_list, tmp_path, total=101, balanced=True)
    assert small.report["mode"] == "total balanced" and small.report["task_kind"] == "single_label"
    assert dict(sampled_classes(sample(segment_list, tmp_path, total=2, balanced=True))) == {"urban": 1, "natural": 1}
    with pytest.raises(ConfigError) as exc:
        sample(segment_list, tmp_path, total=1, balanced=True)
    assert str(exc.value) == "total: 1 clips cannot be shared equally among 2 classes"
    assert dict(sampled_classes(small)) == {"urban": 50, "natural": 50}
    assert set(small.sample["clip_id"].to_pylist()) <= set(big.sample["clip_id"].to_pylist())  # nested draws


def test_uniform_total_draws_from_every_eligible_clip(segment_list, tmp_path):
    eligible, _ = expected(segment_list)
    result = sample(segment_list, tmp_path, total=300)
    assert result.sample.num_rows == 300
    counts = sampled_classes(result)
    share = eligible["urban"] / sum(eligible.values())
    assert abs(counts["urban"] / 300 - share) < 0.1  # the classes in their own proportions


def test_the_draw_depends_on_the_seed_and_clip_ids_only(segment_list, tmp_path):
    table = pa.concat_tables(list(read_segments(str(segment_list))))
    shuffled = tmp_path / "shuffled.csv"
    write_segments(table.take(np.random.default_rng(0).permutation(table.num_rows)), str(shuffled), ["shuffled"])
    a = sample(segment_list, tmp_path, per_class=40, seed=7)
    b = sample(shuffled, tmp_path, per_class=40, seed=7)
    c = sample(segment_list, tmp_path, per_class=40, seed=8)
    ids = [set(r.sample["clip_id"].to_pylist()) for r in (a, b, c)]
    assert ids[0] == ids[1] and len(ids[0]) == 80
    assert len(ids[0] & ids[2]) < 40  # another seed, another sample


def test_each_eligible_clip_is_about_equally_likely(tmp_path):
    table = synthetic_segments(300, seed=1, boost={URBAN: 300.0})  # most rows urban
    path = tmp_path / "small.csv"
    write_segments(table, str(path), ["small"])
    task = load_task("urban_natural")
    rows = read_manifest(str(path)).table
    urban = {i for i, ls in zip(rows["clip_id"].to_pylist(), rows["labels"].to_pylist()) if task.assign(ls) == 0}
    chosen = Counter()
    seeds = 100
    for seed in range(seeds):
        chosen.update(sample(path, tmp_path, targets={"urban": len(urban) // 2}, seed=seed).sample["clip_id"].to_pylist())
    assert set(chosen) == urban
    rates = np.array([chosen[i] / seeds for i in urban])
    assert abs(rates.mean() - 0.5) < 0.02 and rates.min() > 0.3 and rates.max() < 0.7


def test_exclusions_are_counted_by_reason(tmp_path):
    lines = [
        f'vid_aaaaaaa, 0.000, 10.000, "{URBAN}"',
        f'vid_aaaaaaa, 0.000, 10.000, "{URBAN}"',  # the same segment twice
        f'vid_bbbbbbb, 10.000, 10.000, "{URBAN}"',  # empty segment
        'vid_ccccccc, 0.000, 10.000, ""',  # no labels
        f'vid_ddddddd, 0.000, 10.000, "{NATURAL}"',  # its video is in the excluded list
        f'vid_eeeeeee, 0.000, 10.000, "{URBAN},{NATURAL}"',
        'vid_fffffff, 0.000, 10.000, "/m/09x0r"',
        f'vid_ggggggg, 30.000, 40.000, "{NATURAL}"',
    ]
    path = tmp_path / "list.csv"
    path.write_text("# a\n# b\n# YTID, start_seconds, end_seconds, positive_labels\n" + "\n".join(lines) + "\n")
    evaluation = tmp_path / "eval.csv"
    evaluation.write_text(f'# eval\nvid_ddddddd, 50.000, 60.000, "{NATURAL}"\n')
    result = sample(path, tmp_path, per_class=5, exclude=str(evaluation))
    assert result.report["left_out"] == {"bad_id": 0, "bad_segment": 1, "excluded_video": 1, "unlabelled": 1, "unknown": 1,
                                         "ambiguous": 1, "duplicate": 1}
    assert result.sample["clip_id"].to_pylist() == ["vid_aaaaaaa_0", "vid_ggggggg_30000"]
    assert result.report["classes"]["urban"]["eligible"] == 1
    assert result.report["refused_rows"] == [{"row": 3, "reason": "bad_segment",
                                              "message": "data row 3: start 10.0 and end 10.0 are not a segment"}]


def test_repeated_rows_never_put_a_clip_twice_in_a_sample_and_are_counted(tmp_path):
    """30 urban clips, 8 of them listed again (one three times: 9 repeated rows), a target of 12: more eligible
    clips than the target, so a draw that kept the repeats would fill the target with them, not fall short."""
    lines = [f'vid{i:08d}, 0.000, 10.000, "{URBAN}"' for i in range(30)]
    lines += [f'vid{i:08d}, 0.000, 10.000, "{URBAN}"' for i in (0, 3, 5, 9, 14, 20, 22, 29, 14)]
    lines += [f'nat{i:08d}, 0.000, 10.000, "{NATURAL}"' for i in range(4)]
    path = tmp_path / "list.csv"
    path.write_text("# YTID, start_seconds, end_seconds, positive_labels\n" + "\n".join(lines) + "\n")
    for seed in range(5):  # the repeated clips among the lowest priorities in some draws
        result = sample(path, tmp_path, targets={"urban": 12, "natural": 4}, seed=seed)
        ids = result.sample["clip_id"].to_pylist()
        assert len(ids) == len(set(ids)) == 16, ids
        assert result.report["left_out"]["duplicate"] == 9
        assert result.report["classes"]["urban"] == {"eligible": 30, "target": 12, "drawn": 12, "short": 0,
                                                     "in_sample": 12}
        assert result.report["not_drawn"] == 30 - 12


def test_repeats_are_counted_exactly_whichever_read_batches_they_fall_in(tmp_path, monkeypatch):
    """The list of the test above read in 256-byte blocks (a few rows a batch, as a 2-million-row list is read in
    ~1 MB ones): a repeat whose clip's first row already left a pool's kept rows is still a duplicate, so the report
    is the one-batch report; and a multi-label clip listed twice is one duplicate row, not one per class."""
    import acoustic_env.audioset.sample as sampler
    import acoustic_env.audioset.segments as segments

    lines = [f'vid{i:08d}, 0.000, 10.000, "{URBAN}"' for i in range(30)]
    lines += [f'vid{i:08d}, 0.000, 10.000, "{URBAN}"' for i in (0, 3, 5, 9, 14, 20, 22, 29, 14)]
    lines += [f'nat{i:08d}, 0.000, 10.000, "{NATURAL}"' for i in range(4)]
    lines += [f'both0000000, 0.000, 10.000, "{URBAN},{NATURAL}"'] * 2
    path = tmp_path / "list.csv"
    path.write_text("# YTID, start_seconds, end_seconds, positive_labels\n" + "\n".join(lines) + "\n")
    task_file = tmp_path / "both.yaml"
    task_file.write_text(f"kind: multi_label\nclasses:\n  urban: {{mids: ['{URBAN}']}}\n"
                         f"  natural: {{mids: ['{NATURAL}']}}\n")
    monkeypatch.setattr(segments, "BLOCK_BYTES", 256)
    assert len(list(read_segments(str(path)))) > 5  # many batches
    kept = []  # what each pool holds after each batch: its k best rows at most, never the list
    offer = sampler._Pool.offer

    def offer_and_count(pool, rows, prio):
        offer(pool, rows, prio)
        kept.append((pool.k, 0 if pool.rows is None else pool.rows.num_rows))

    monkeypatch.setattr(sampler._Pool, "offer", offer_and_count)
    for seed in range(3):
        result = sample(path, tmp_path, targets={"urban": 2, "natural": 1}, seed=seed)
        left = result.report["left_out"]
        assert (left["duplicate"], left["ambiguous"]) == (9, 2)  # the urban+natural clip: ambiguous, twice
        assert {n: c["eligible"] for n, c in result.report["classes"].items()} == {"urban": 30, "natural": 4}
        assert result.report["not_drawn"] == 30 + 4 - 3
        multi = sample(path, tmp_path, task=str(task_file), per_class=3, seed=seed)
        assert multi.report["left_out"]["duplicate"] == 10
        assert {n: c["eligible"] for n, c in multi.report["classes"].items()} == {"urban": 31, "natural": 5}
        assert multi.report["not_drawn"] == 31 + 5 - 1 - multi.sample.num_rows  # the clip of both classes: once
        ids = multi.sample["clip_id"].to_pylist()
        assert len(ids) == len(set(ids))
    assert len(kept) > 20 and all(n <= k for k, n in kept) and max(n for _, n in kept) == 3


def test_the_printed_summary_names_each_class_what_was_left_out_and_the_refused_rows(tmp_path):
    """What ``audioset sample`` prints, line by line: a class short of its target, the reasons, the first five
    refused rows and how many more there are (103 refused, the first 100 listed in the report, per reason in the
    order they are checked); an exclusion list with no rows excludes nothing."""
    lines = [f'bad{i:08d}, 5.000, 1.000, "{URBAN}"' for i in range(6)]  # bad_segment: data rows 1 to 6
    lines += [f'../{i:08d}, 0.000, 10.000, "{URBAN}"' for i in range(97)]  # bad_id: data rows 7 to 103
    lines += [f'vid{i:08d}, 0.000, 10.000, "{URBAN}"' for i in range(6)]
    lines += [f'nat{i:08d}, 0.000, 10.000, "{NATURAL}"' for i in range(2)]
    path, empty = tmp_path / "list.csv", tmp_path / "nothing.csv"
    path.write_text("\n".join(lines) + "\n")
    empty.write_text("# an exclusion list without rows\n")
    result = sample(path, tmp_path, targets={"urban": 4, "natural": 3}, exclude=str(empty))
    printed = summary_lines(result.report)
    assert printed[0].startswith(f"6 clips from 111 rows of {path} (task urban_natural, targets, seed 0, ")
    assert printed[1:] == [
        "  urban: 4 drawn of 6 eligible (target 4)",
        "  natural: 2 drawn of 2 eligible (target 3, 1 short of the target)",
        "  in the sample: urban 4, natural 2",
        "  left out: bad_id 97, bad_segment 6; eligible but not drawn: 2",
        *[f"  refused data row {r}: start 5.0 and end 1.0 are not a segment" for r in (1, 2, 3)],
        *[f"  refused data row {r}: YTID '../{r - 7:08d}' is not a YouTube id (11 of A-Z a-z 0-9 _ -)" for r in (7, 8)],
        "  ... 98 more refused rows (100 listed in the report)"]
    refused = result.report["refused_rows"]
    assert [r["row"] for r in refused] == [1, 2, 3, *range(7, 104)]
    assert refused[0] == {"row": 1, "reason": "bad_segment", "message": "data row 1: start 5.0 and end 1.0 are not a "
                                                                       "segment"}
    assert {r["reason"] for r in refused[3:]} == {"bad_id"}
    assert result.report["config"]["segments"] == str(path) and 0 < result.report["wall_s"] < 3


def test_a_class_or_a_list_without_eligible_clips(tmp_path):
    """A class no row claims is drawn 0 times (short of its target) beside one that has clips; a list of which no
    row is eligible gives an empty sample and its counts, not a crash."""
    path = tmp_path / "list.csv"
    path.write_text("\n".join(f'vid{i:08d}, 0.000, 10.000, "{URBAN}"' for i in range(3)) + "\n")
    result = sample(path, tmp_path, per_class=2)
    assert result.report["classes"]["natural"] == {"eligible": 0, "target": 2, "drawn": 0, "short": 2, "in_sample": 0}
    assert result.sample.num_rows == 2 and result.report["mode"] == "per_class"
    path.write_text('vid00000001, 0.000, 10.000, "/m/09x0r"\n')  # Speech: no class of the task
    empty = sample(path, tmp_path, total=3)
    assert empty.sample.num_rows == 0 and empty.report["left_out"]["unknown"] == 1
    assert empty.report["left_out"]["duplicate"] == 0 and empty.report["not_drawn"] == 0
    assert empty.report["classes"]["all"] == {"eligible": 0, "target": 3, "drawn": 0, "short": 3}


def test_a_task_naming_classes_reads_the_ontology_given(tmp_path):
    """``ontology``: the task's display names and descendants are looked up in the ontology the user gives (here a
    made-up one), not the packaged one."""
    onto = tmp_path / "ontology.json"
    onto.write_text(json.dumps([{"id": "/m/hum", "name": "Hum", "child_ids": ["/m/deep"]},
                                {"id": "/m/deep", "name": "Deep hum", "child_ids": []}]))
    task_file = tmp_path / "hum.yaml"
    task_file.write_text(f"kind: single_label\nclasses:\n  hum: {{mids: ['Hum'], descendants: true}}\n"
                         f"  natural: {{mids: ['{NATURAL}']}}\n")
    path = tmp_path / "list.csv"
    path.write_text('vid00000001, 0.000, 10.000, "/m/deep"\nvid00000002, 0.000, 10.000, "/m/hum"\n')
    result = sample(path, tmp_path, task=str(task_file), ontology=str(onto), per_class=5)
    assert result.report["classes"]["hum"]["eligible"] == 2


def test_five_refused_rows_are_all_printed_and_a_sixth_is_counted(tmp_path):
    """The summary prints up to five refused rows; only past five does it say how many more."""
    path = tmp_path / "list.csv"
    for bad, more in ((5, []), (6, ["  ... 1 more refused rows (6 listed in the report)"])):
        path.write_text("\n".join(f'../{i:08d}, 0.000, 10.000, "{URBAN}"' for i in range(bad)) + "\n")
        printed = summary_lines(sample(path, tmp_path, total=1).report)
        assert sum(line.startswith("  refused data row") for line in printed) == 5
        assert [line for line in printed if line.startswith("  ...")] == more


def test_a_uniform_draw_prints_the_classes_it_holds_and_nothing_left_out(tmp_path):
    """``total`` without ``balanced`` is one pool, but the summary still says what each class got; and a one-class
    multi-label task's summary too."""
    lines = [f'vid{i:08d}, 0.000, 10.000, "{URBAN}"' for i in range(6)]
    lines += [f'nat{i:08d}, 0.000, 10.000, "{NATURAL}"' for i in range(6)]
    path = tmp_path / "list.csv"
    path.write_text("\n".join(lines) + "\n")
    result = sample(path, tmp_path, total=12)
    assert summary_lines(result.report)[1:] == ["  all: 12 drawn of 12 eligible (target 12)",
                                                "  in the sample: urban 6, natural 6",
                                                "  left out: none; eligible but not drawn: 0"]
    task_file = tmp_path / "one.yaml"
    task_file.write_text(f"kind: multi_label\nclasses:\n  natural: {{mids: ['{NATURAL}']}}\n")
    for fields in ({"per_class": 4}, {"total": 4}):
        printed = summary_lines(sample(path, tmp_path, task=str(task_file), **fields).report)
        assert "  in the sample: natural 4" in printed and "  left out: unknown 6; eligible but not drawn: 2" in printed


def test_ambiguous_pairs_are_named_for_a_task_of_more_classes_than_one_62_bit_word(tmp_path):
    """The report's ``ambiguous_pairs`` for a task of 130 classes (AudioSet has 527): classes counted in words of
    62 bits, so combinations that differ only in class 0, 62 or 128 stay apart, each counted."""
    names = [f"c{c:03d}" for c in range(130)]
    task_file = tmp_path / "many.yaml"
    task_file.write_text("kind: single_label\nclasses:\n" + "".join(f"  {n}: {{mids: ['/m/{n}']}}\n" for n in names))
    combos = [("c000", "c129"), ("c000", "c129"), ("c000", "c128"), ("c061", "c062"), ("c001", "c070"),
              ("c001", "c062", "c070"), ("c000", "c005", "c006"), ("c005", "c006")]
    lines = [f'vid{i:08d}, 0.000, 10.000, "{",".join("/m/" + c for c in combo)}"' for i, combo in enumerate(combos)]
    path = tmp_path / "list.csv"
    path.write_text("\n".join(lines) + "\n")
    result = sample(path, tmp_path, task=str(task_file), per_class=1)
    assert result.report["ambiguous_pairs"] == {"c000+c129": 2, "c000+c128": 1, "c061+c062": 1, "c001+c070": 1,
                                                "c001+c062+c070": 1, "c000+c005+c006": 1, "c005+c006": 1}
    assert result.report["left_out"]["ambiguous"] == len(combos)


def test_task_and_output_errors_are_one_line_naming_the_setting(tmp_path):
    """``sample_segments``'s errors as the command prints them (a task it cannot load, an output it cannot write),
    and where the report goes beside an output that is not a .csv."""
    path = tmp_path / "list.csv"
    path.write_text(f'vid00000001, 0.000, 10.000, "{URBAN}"\n')
    task_file = tmp_path / "one.yaml"
    task_file.write_text(f"kind: single_label\nclasses:\n  urban: {{mids: ['{URBAN}']}}\n")

    def run(**fields):
        return sample_segments(from_dict(SampleConfig, {"segments": str(path), "total": 1, **fields}))

    with pytest.raises(ConfigError) as exc:
        run(output=str(tmp_path / "o.csv"), task=str(task_file))
    assert str(exc.value) == ("task.classes: a single-label task needs at least two classes, a multi-label task at "
                              "least one")
    (tmp_path / "taken.csv").mkdir()
    with pytest.raises(ConfigError) as exc:
        run(output=str(tmp_path / "taken.csv"))
    assert str(exc.value) == f"output: cannot write {tmp_path / 'taken.csv'}: Is a directory"
    assert run(output=str(tmp_path / "s.txt")).sample.num_rows == 1
    assert (tmp_path / "s.txt.report.json").is_file() and report_uri("a/s.csv") == "a/s.report.json"


def test_peak_memory_is_reported_in_megabytes_on_linux_and_macos(monkeypatch):
    """The report's ``peak_rss_mb`` (printed by the command): /proc's VmHWM, in kB, on Linux; where /proc cannot be
    read, ``ru_maxrss``, which Linux gives in kB and macOS in bytes. Fed made-up peaks: 1,000.6 MB by /proc, 2,001.2 MB
    by ``ru_maxrss``."""
    import io
    import resource
    import sys
    import types

    import acoustic_env.audioset.sample as sampler

    def proc(path, *args, **kwargs):
        if path != "/proc/self/status":
            raise FileNotFoundError(path)
        return io.StringIO("Name:\tpython\nVmPeak:\t  9999999 kB\nVmHWM:\t  1024600 kB\nVmRSS:\t  1000 kB\n")

    def usage(who):
        assert who == resource.RUSAGE_SELF
        return types.SimpleNamespace(ru_maxrss=2 * 1024600 * (1024 if sys.platform == "darwin" else 1))

    monkeypatch.setattr(sampler.resource, "getrusage", usage)
    monkeypatch.setattr(sampler, "open", proc, raising=False)
    assert sampler.peak_rss_mb() == 1000.6
    monkeypatch.setattr(sampler, "open", lambda *a, **k: proc("/proc absent"), raising=False)
    for platform in ("linux", "darwin"):
        monkeypatch.setattr(sys, "platform", platform)
        assert sampler.peak_rss_mb() == 2001.2, platform


def test_multi_label_task_draws_per_class_and_keeps_a_clip_once(segment_list, tmp_path):
    task_file = tmp_path / "both.yaml"
    task_file.write_text(f"kind: multi_label\nclasses:\n  urban: {{mids: ['{URBAN}']}}\n"
                         f"  natural: {{mids: ['{NATURAL}']}}\n")
    eligible, reasons = expected(segment_list, str(task_file))
    result = sample(segment_list, tmp_path, task=str(task_file), per_class=150)
    classes = result.report["classes"]
    assert result.report["left_out"]["ambiguous"] == 0 and reasons["ambiguous"] == 0
    assert {n: c["eligible"] for n, c in classes.items()} == dict(eligible)
    assert all(c["drawn"] == 150 and c["in_sample"] >= 150 for c in classes.values())
    ids = result.sample["clip_id"].to_pylist()
    assert len(ids) == len(set(ids)) < 300  # clips carrying both classes are drawn for both, kept once


def test_cli_samples_the_real_evaluation_list(shared_data, tmp_path, capsys):
    segments = shared_data / "audioset" / "eval_segments.csv"
    out = tmp_path / "sample" / "eval_sample.csv"
    assert main(["audioset", "sample", "--segments", str(segments), "--output", str(out),
                 "--task", "speech_animal_music_vehicle", "--per-class", "60", "--balanced", "--seed", "1"]) == 0
    printed = capsys.readouterr().out
    eligible, reasons = expected(segments, "speech_animal_music_vehicle")
    report = json.loads((tmp_path / "sample" / "eval_sample.report.json").read_text())
    assert {n: c["eligible"] for n, c in report["classes"].items()} == dict(eligible)
    assert report["left_out"]["ambiguous"] == reasons["ambiguous"] > 0
    assert "speech: 60 drawn of" in printed and f"ambiguous {reasons['ambiguous']}" in printed
    manifest = read_manifest(str(out))  # the sample is a segment list that extract reads as such
    assert manifest.format == "audioset" and manifest.rows == 240
    assert report_uri(str(out)).endswith("eval_sample.report.json")


def test_bad_input_is_one_line(tmp_path, capsys):
    path = tmp_path / "bad.csv"
    path.write_text('# x\nvid_a, 0.000, 10.000, "/m/09x0r"\nvid_b, 0.000\n')
    with pytest.raises(ManifestError, match="data row 2 has fewer than 4 fields"):
        list(read_segments(str(path)))
    path.write_text('\ufeffvid_a, 0.000, 10.000, "/m/09x0r"\n')  # a byte-order mark before the first row
    assert [t["YTID"].to_pylist() for t in read_segments(str(path))] == [["vid_a"]]
    path.write_text('vid_a, zero, 10.000, "/m/09x0r"\n')
    with pytest.raises(ManifestError, match="data row 1: start_seconds is not a number: 'zero'"):
        list(read_segments(str(path)))
    with pytest.raises(ConfigError, match="give exactly one of per_class, targets or total"):
        from_dict(SampleConfig, {"segments": str(path), "output": str(tmp_path / "o.csv")})
    for args, message in ((["--targets", "urban=ten"], "targets: urban: must be an integer >= 0"),
                          (["--targets", "rural=3"], "targets: 'rural' is not a class of task 'urban_natural' "
                                                             "(classes: urban, natural)"),
                          (["--total", "5", "--segments", str(tmp_path / "none.csv")], "segments: no such file or directory")):
        argv = ["audioset", "sample", "--segments", str(path), "--output", str(tmp_path / "o.csv"), *args]
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err


def test_readme_sample_commands_run_as_written(shared_data, tmp_path, monkeypatch, capsys):
    """The README's `audioset sample` commands, in a folder holding the lists they name (a synthetic unbalanced list)."""
    import shlex
    import shutil

    from documentation import commands

    commands = [c for s, c in commands() if s == "AudioSet from its segment lists"]
    assert [c.split()[:3] for c in commands] == [["acoustic-env", "audioset", "sample"]] * 2
    table = synthetic_segments(20_000, seed=5, boost={URBAN: 30.0, NATURAL: 30.0, "/m/09x0r": 60.0,
                                                      "/m/0jbk": 60.0, "/m/04rlf": 60.0, "/m/07yv9": 60.0})
    write_segments(table, str(tmp_path / "unbalanced_train_segments.csv"), ["synthetic"])
    shutil.copy(shared_data / "audioset" / "eval_segments.csv", tmp_path / "eval_segments.csv")
    monkeypatch.chdir(tmp_path)
    for command in commands:
        assert main(shlex.split(command)[1:]) == 0, command
    report = json.loads((tmp_path / "lists" / "urban_natural.report.json").read_text())
    assert {n: c["target"] for n, c in report["classes"].items()} == {"urban": 6500, "natural": 6800}
    assert all(c["drawn"] == min(c["target"], c["eligible"]) for c in report["classes"].values())
    four = json.loads((tmp_path / "lists" / "four_classes.report.json").read_text())
    assert len({c["drawn"] for c in four["classes"].values()}) == 1 and four["clips"] > 0
