"""audit-estimate: verdict files → label accuracy per class with an interval, in the shape the training report reads."""

from __future__ import annotations

import codecs
import json

import numpy as np
import pytest

from acoustic_env.cli import main
from acoustic_env.errors import AuditError
from acoustic_env.jobs.audit.estimate import (
    bootstrap,
    estimate_accuracy,
    estimate_lines,
    normalize_verdict,
    on_page,
    parse_verdicts,
    read_verdicts,
)
from acoustic_env.pages.review import PAGE, render_page
from acoustic_env.learn.metrics import wilson


def verdict(clip: str, given, v: str, sample: str = "random", time: str = "2026-01-01T00:00:00Z") -> dict:
    return {"clip_id": clip, "given_labels": given, "verdict": v, "sample": sample, "reviewer": "r", "time": time}


def test_wilson_matches_the_textbook_interval():
    low, high = wilson(80, 100)
    assert low == pytest.approx(0.7112, abs=1e-4) and high == pytest.approx(0.8666, abs=1e-4)
    assert wilson(0, 10)[0] == 0.0 and 0.25 < wilson(0, 10)[1] < 0.35
    assert wilson(10, 10)[1] == pytest.approx(1.0)
    b_low, b_high = bootstrap(np.array([1] * 80 + [0] * 20, dtype=float))
    assert abs(b_low - low) < 0.03 and abs(b_high - high) < 0.03


def test_estimate_has_exactly_the_report_shape():
    records = [verdict(f"u{i}", ["urban"], "correct" if i < 8 else "wrong") for i in range(10)]
    records += [verdict(f"n{i}", ["natural"], "correct" if i < 3 else "wrong") for i in range(5)]
    records += [verdict("n9", ["natural"], "unsure"), verdict("s1", ["urban"], "wrong", sample="suspects")]
    est = estimate_accuracy(records)
    assert set(est) == {"method", "sample", "overall", "per_class"}
    assert est["method"] == "wilson" and est["sample"] == "random"
    assert est["overall"]["n"] == 15 and est["overall"]["accuracy"] == pytest.approx(11 / 15, abs=1e-6)
    assert set(est["overall"]) == {"accuracy", "low", "high", "n"}
    assert est["per_class"]["urban"]["n"] == 10 and est["per_class"]["urban"]["accuracy"] == 0.8
    assert est["per_class"]["natural"]["n"] == 5  # unsure left out
    lo, hi = est["per_class"]["urban"]["low"], est["per_class"]["urban"]["high"]
    assert lo < 0.8 < hi
    suspects = estimate_accuracy(records, sample="suspects")
    assert suspects["overall"] == {"accuracy": 0.0, "low": 0.0, "high": pytest.approx(0.7935, abs=1e-3), "n": 1}
    assert estimate_accuracy(records, method="bootstrap")["method"] == "bootstrap"


def test_latest_verdict_per_clip_counts_and_samples_are_not_pooled():
    records = [verdict("a", ["urban"], "wrong", time="2026-01-01T10:00:00Z"),
               verdict("a", ["urban"], "correct", time="2026-01-01T11:00:00Z"),
               verdict("a", ["urban"], "wrong", sample="suspects")]
    est = estimate_accuracy(records, sample="random")
    assert est["overall"]["n"] == 1 and est["overall"]["accuracy"] == 1.0


def test_multilabel_clip_counts_under_each_given_label():
    est = estimate_accuracy([verdict("a", ["urban", "natural"], "correct"), verdict("b", [], "wrong")])
    assert est["overall"]["n"] == 2
    assert est["per_class"]["urban"]["n"] == 1 and est["per_class"]["natural"]["n"] == 1
    assert est["per_class"]["(none)"]["accuracy"] == 0.0


def test_csv_and_json_verdict_files_parse_alike():
    csv_text = ("clip_id,given_labels,verdict,sample,reviewer,time\n"
                "a,urban,correct,random,r,2026-01-01T00:00:00Z\n"
                'b,"urban;natural",Wrong,random,r,2026-01-01T00:00:00Z\n')
    from_csv = parse_verdicts(csv_text)
    from_json = parse_verdicts(json.dumps({"verdicts": [verdict("a", ["urban"], "correct"),
                                                        verdict("b", ["urban", "natural"], "wrong")]}))
    strip = [{k: r[k] for k in ("clip_id", "given_labels", "verdict", "sample")} for r in from_csv]
    assert strip == [{k: r[k] for k in ("clip_id", "given_labels", "verdict", "sample")} for r in from_json]
    assert parse_verdicts("clip_id,given_label,verdict,sample\na,urban,correct,suspects\n")[0]["given_labels"] == ["urban"]


@pytest.mark.parametrize("records, message", [
    ([verdict("a", ["urban"], "maybe")], "verdict must be one of"),
    ([verdict("a", ["urban"], "correct", sample="all")], "sample must be one of"),
    ([verdict("a", ["urban"], "unsure")], "no correct/wrong verdicts"),
    ([], "holds no verdicts"),
])
def test_bad_verdicts_are_one_line_errors(tmp_path, capsys, records, message):
    path = tmp_path / "v.json"
    path.write_text(json.dumps(records))
    assert main(["audit-estimate", "--verdicts", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_a_folder_given_as_the_verdicts_is_one_line(tmp_path, capsys):
    assert main(["audit-estimate", "--verdicts", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err == (f"acoustic-env: error: verdicts: {tmp_path} is a directory; give the verdicts file (e.g. "
                   "<audit>/review/verdicts.json)\n")


def test_cli_estimate_writes_the_json_and_explains_the_sample(tmp_path, capsys):
    (tmp_path / "v.json").write_text(json.dumps([verdict("s", ["natural"], "wrong", sample="suspects")]))
    (tmp_path / "w.csv").write_text("clip_id,given_labels,verdict,sample\na,urban,correct,random\n")
    rc = main(["audit-estimate", "--verdicts", str(tmp_path / "v.json"), str(tmp_path / "w.csv"),
               "--output", str(tmp_path / "est.json")])
    out = capsys.readouterr().out
    assert rc == 0 and "accuracy of the labels (random sample)" in out
    assert json.loads((tmp_path / "est.json").read_text())["overall"]["n"] == 1
    assert main(["audit-estimate", "--verdicts", str(tmp_path / "v.json"), "--sample", "suspects"]) == 0
    assert "precision of the flags" in capsys.readouterr().out
    assert main(["audit-estimate", "--verdicts", str(tmp_path / "v.json"), "--sample", "random"]) == 2
    assert "no verdicts for sample 'random'" in capsys.readouterr().err
    assert main(["audit-estimate", "--verdicts", str(tmp_path / "nope.json")]) == 2
    assert f"verdicts: no such file or directory: {tmp_path / 'nope.json'}" in capsys.readouterr().err
    assert main(["audit-estimate", "--verdicts", str(tmp_path / "v.json"), "--method", "normal"]) == 2
    assert "method: must be one of" in capsys.readouterr().err


def test_corrected_label_and_note_are_read_and_old_files_still_parse(tmp_path):
    old = parse_verdicts("clip_id,given_labels,verdict,sample\na,urban,wrong,random\n")  # before the fields existed
    assert old[0]["corrected_label"] == [] and old[0]["note"] == ""
    csv_text = ("clip_id,given_labels,verdict,sample,reviewer,time,audit_id,corrected_label,note\n"
                'a,urban,wrong,random,r,2026-01-01T00:00:00Z,x,natural,"dog, then a car"\n'
                "b,urban,correct,random,r,2026-01-01T00:00:00Z,x,,\n")
    from_csv = parse_verdicts(csv_text)
    assert (from_csv[0]["corrected_label"], from_csv[0]["note"]) == (["natural"], "dog, then a car")
    assert (from_csv[1]["corrected_label"], from_csv[1]["note"]) == ([], "")
    from_json = parse_verdicts(json.dumps([{**verdict("a", ["urban"], "wrong"), "corrected_label": ["natural"],
                                            "note": "dog, then a car"}]))
    assert from_json[0]["corrected_label"] == ["natural"] and from_json[0]["note"] == "dog, then a car"
    assert estimate_accuracy(from_csv)["overall"]["n"] == 2


@pytest.mark.parametrize("record, message", [
    ({**verdict("a", ["urban"], "correct"), "corrected_label": ["natural"]}, "contradicts verdict 'correct'"),
    ({**verdict("a", ["urban"], "wrong"), "corrected_label": [3]}, "corrected_label must be a list of class names"),
])
def test_bad_corrected_label_is_a_one_line_error(tmp_path, capsys, record, message):
    path = tmp_path / "v.json"
    path.write_text(json.dumps([record]))
    assert main(["audit-estimate", "--verdicts", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_per_class_accuracy_is_over_the_clips_given_that_class():
    """A class's accuracy is the share of the reviewed clips *given* it whose label the reviewer found correct.

    An imbalanced random sample with unequal flips, as a reviewer who names the right class records it: 100 clips
    truly urban (5 labelled natural), 25 truly natural (8 labelled urban). Counted by the class a clip truly is
    (the reviewer's corrected_label), accuracy would read 95 % and 68 % instead of 95/103 and 17/22.
    """
    records = [verdict(f"u{i}", ["urban"], "correct") for i in range(95)]
    records += [{**verdict(f"un{i}", ["natural"], "wrong"), "corrected_label": ["urban"]} for i in range(5)]
    records += [verdict(f"n{i}", ["natural"], "correct") for i in range(17)]
    records += [{**verdict(f"nu{i}", ["urban"], "wrong"), "corrected_label": ["natural"]} for i in range(8)]
    est = estimate_accuracy(parse_verdicts(json.dumps(records)))
    for name, correct, given in (("urban", 95, 103), ("natural", 17, 22)):
        low, high = wilson(correct, given)
        assert est["per_class"][name] == {"accuracy": round(correct / given, 6), "low": pytest.approx(low, abs=1e-6),
                                          "high": pytest.approx(high, abs=1e-6), "n": given}, name
    assert est["overall"]["n"] == 125 and est["overall"]["accuracy"] == round(112 / 125, 6)


@pytest.mark.parametrize("record, message", [
    ("a", "verdicts: each verdict must be an object, got 'a'"),
    ({"clip_id": "", "verdict": "correct", "sample": "random"}, "verdicts: clip_id must be a non-empty string, got ''"),
    ({"clip_id": 7, "verdict": "correct", "sample": "random"}, "verdicts: clip_id must be a non-empty string, got 7"),
    ({"clip_id": "a", "verdict": "Maybe", "sample": "random"},
     "verdicts: verdict must be one of ['correct', 'wrong', 'unsure'], got 'Maybe' (a)"),
    ({"clip_id": "a", "verdict": "wrong", "sample": "All"},
     "verdicts: sample must be one of ['random', 'suspects'], got 'All' (a)"),
    ({"clip_id": "a", "verdict": "wrong", "sample": "random", "given_labels": 3},
     "verdicts: given_labels must be a list of class names, got 3 (a)"),
    ({"clip_id": "a", "verdict": "wrong", "sample": "random", "given_labels": [], "corrected_label": [3]},
     "verdicts: corrected_label must be a list of class names, got [3] (a)"),
])
def test_a_bad_verdict_is_named_with_its_field_its_value_and_its_clip(record, message):
    """A reviewer fixing a file by hand needs the field, the value as written and the clip, exactly."""
    with pytest.raises(AuditError) as caught:
        normalize_verdict(record)
    assert str(caught.value) == message


def test_a_verdict_keeps_who_judged_it_when_and_for_which_audit():
    """The canonical record carries reviewer, time and audit id as given, and empty strings where a file has none."""
    full = {"clip_id": "a", "given_labels": "urban", "verdict": " Wrong ", "sample": "Suspects", "reviewer": "ana",
            "time": "2026-01-02T03:04:05Z", "audit_id": "au1", "note": "n"}
    assert normalize_verdict(full) == {
        "clip_id": "a", "given_labels": ["urban"], "verdict": "wrong", "sample": "suspects", "reviewer": "ana",
        "time": "2026-01-02T03:04:05Z", "audit_id": "au1", "corrected_label": [], "note": "n"}
    bare = normalize_verdict({"clip_id": "b", "given_label": "natural", "verdict": "correct", "sample": "random"})
    assert (bare["reviewer"], bare["time"], bare["audit_id"], bare["given_labels"]) == ("", "", "", ["natural"])


@pytest.mark.parametrize("text, message", [
    ("[1, ", "verdicts: verdicts is not valid JSON ("),
    ('{"verdicts": 3}', 'verdicts: verdicts must hold a list of verdicts or {"verdicts": [...]}'),
    ("clip_id,label\na,urban\n", "verdicts: verdicts has no 'verdict' column (columns: ['clip_id', 'label'])"),
    # a truncated JSON file that no longer starts like JSON, or a header alone, was read as a CSV of 0 verdicts
    ("garbage{", "verdicts: verdicts has no 'verdict' column (columns: ['garbage{'])"),
    ("", "verdicts: verdicts has no 'verdict' column (columns: [])"),
])
def test_an_unreadable_verdict_file_says_what_is_wrong_with_it(text, message):
    with pytest.raises(AuditError) as caught:
        parse_verdicts(text)
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize("text", [
    "[" * 100_000,  # past Python's reader: a RecursionError
    json.dumps([{**verdict("a", ["urban"], "wrong"), "note": [[[[[[[[["x"]]]]]]]]]}]),
    '[{"clip_id": "a", "verdict": ' + "[" * 900 + "]" * 900 + ', "sample": "random"}]',  # past str() of a field
])
def test_json_nested_deeper_than_a_verdict_file_is_one_line(tmp_path, capsys, text):
    (tmp_path / "deep.json").write_text(text)
    assert main(["audit-estimate", "--verdicts", str(tmp_path / "deep.json")]) == 2
    err = capsys.readouterr().err
    assert err == (f"acoustic-env: error: verdicts: {tmp_path / 'deep.json'} nests deeper than 8 levels (a verdict "
                   "file has 4)\n")


@pytest.mark.parametrize("bom, encoding, separator", [
    (b"", "utf-16", "\t"), (b"", "utf-16", ","), (codecs.BOM_UTF16_BE, "utf-16-be", ","), (b"", "utf-32", ","),
    (codecs.BOM_UTF32_BE, "utf-32-be", ","), (b"", "cp1252", ","), (b"", "cp1252", ";"), (b"", "utf-8-sig", ","),
])
def test_a_verdict_file_is_read_in_the_encoding_a_spreadsheet_saved_it_in(tmp_path, bom, encoding, separator):
    """Excel's "Unicode Text" (UTF-16 with a byte-order mark, tabs), its plain "CSV" (Windows-1252; ``;`` where
    ``,`` is the decimal mark), "CSV UTF-8" (a byte-order mark): the same verdicts, accents included."""
    rows = [["clip_id", "given_labels", "verdict", "sample", "note"], ["café", "urban", "wrong", "random", "élan"],
            ["b", "natural", "correct", "random", "déjà vu"]]
    path = tmp_path / "v.csv"
    path.write_bytes(bom + "\r\n".join(separator.join(r) for r in rows).encode(encoding))
    records = read_verdicts([str(path)])
    assert [(r["clip_id"], r["verdict"], r["note"]) for r in records] == [("café", "wrong", "élan"),
                                                                          ("b", "correct", "déjà vu")]


def test_a_verdict_file_in_no_known_encoding_or_with_an_oversized_field_is_one_line(tmp_path, capsys):
    (tmp_path / "v.csv").write_bytes(b"clip_id,verdict,sample\n\x81\x8d,wrong,random\n")  # not UTF-8 nor cp1252
    (tmp_path / "w.csv").write_text("clip_id,verdict,sample,note\na,wrong,random," + "x" * 200_000 + "\n")
    for name, message in (("v.csv", "is neither UTF-8 nor UTF-16 nor Windows-1252 text; save it as CSV UTF-8"),
                          ("w.csv", "is not a CSV file (field larger than field limit (131072))")):
        assert main(["audit-estimate", "--verdicts", str(tmp_path / name)]) == 2
        assert capsys.readouterr().err == f"acoustic-env: error: verdicts: {tmp_path / name} {message}\n"


def test_json_or_a_csv_header_after_blank_lines_is_still_read_and_every_file_counts(tmp_path):
    """An editor may leave blank lines before the JSON or the CSV header; and verdicts from several files
    (reviewers) add up, a bad one named by its path."""
    (tmp_path / "a.json").write_text("\n\n  " + json.dumps([verdict("a", ["urban"], "correct")]))
    (tmp_path / "b.csv").write_text("clip_id,given_labels,verdict,sample\nb,natural,wrong,random\n")
    (tmp_path / "bad.json").write_text("{oops")
    records = read_verdicts([str(tmp_path / "a.json"), str(tmp_path / "b.csv")])
    assert [(r["clip_id"], r["verdict"]) for r in records] == [("a", "correct"), ("b", "wrong")]
    with pytest.raises(AuditError, match=f"verdicts: {tmp_path / 'bad.json'} is not valid JSON"):
        read_verdicts([str(tmp_path / "bad.json")])
    # text not named .json (an upload, a .txt) is JSON by its first non-blank character; a CSV's header is its
    # first non-blank line, past the blank lines too
    assert [r["clip_id"] for r in parse_verdicts("\n\n  " + json.dumps([verdict("a", ["urban"], "correct")]))] == ["a"]
    csv_text = "\n\nclip_id;given_labels;verdict;sample\nb;natural;wrong;random\n"
    assert [(r["clip_id"], r["verdict"]) for r in parse_verdicts(csv_text)] == [("b", "wrong")]
    # a .json file that does not even start like JSON is still judged as JSON, not as a CSV without a verdict column
    (tmp_path / "cut.json").write_text("clip_id: a\n")
    with pytest.raises(AuditError, match=f"^verdicts: {tmp_path / 'cut.json'} is not valid JSON \\(Expecting value"):
        read_verdicts([str(tmp_path / "cut.json")])


def test_of_two_verdicts_with_the_same_time_the_later_in_the_file_counts():
    """A CSV without times (or a re-judgement within the same second): the last row is the reviewer's final word."""
    records = parse_verdicts("clip_id,given_labels,verdict,sample\na,urban,wrong,random\na,urban,correct,random\n")
    assert estimate_accuracy(records)["overall"]["accuracy"] == 1.0


def test_the_sample_defaults_to_the_one_present_and_a_wrong_choice_says_what_there_is():
    only_suspects = [verdict("s", ["urban"], "wrong", sample="suspects")]
    assert estimate_accuracy(only_suspects)["sample"] == "suspects"
    for sample, records, message in (
            ("all", only_suspects, "sample: must be one of ['random', 'suspects'], got 'all'"),
            ("random", only_suspects, "sample: no verdicts for sample 'random' (the file has: ['suspects'])"),
            ("random", [], "sample: no verdicts for sample 'random' (the file has: none)"),
            (None, [], "verdicts: the file holds no verdicts")):
        with pytest.raises(AuditError) as caught:
            estimate_accuracy(records, sample=sample)
        assert str(caught.value) == message


def test_the_bootstrap_interval_is_the_bootstrap_and_reproducible():
    """``method="bootstrap"`` must give the percentile bootstrap (not Wilson's interval), the same on every run;
    an empty sample says nothing (0 to 1) and a single clip is certain of itself."""
    records = [verdict(f"c{i}", ["urban"], "correct" if i < 7 else "wrong") for i in range(10)]
    first, again = (estimate_accuracy(records, method="bootstrap")["overall"] for _ in range(2))
    assert first == again
    low, high = bootstrap(np.array([1.0] * 7 + [0.0] * 3))
    assert (first["low"], first["high"]) == (round(low, 6), round(high, 6)) != tuple(round(x, 6) for x in wilson(7, 10))
    assert bootstrap(np.array([])) == (0.0, 1.0) and bootstrap(np.array([1.0])) == (1.0, 1.0)
    many = np.array([1.0] * 150 + [0.0] * 53)  # bounds between the possible means: each redraw would move them
    assert bootstrap(many) == bootstrap(many)


def test_the_console_says_what_the_sample_measures():
    records = [verdict("a", ["urban"], "correct"), verdict("b", ["natural"], "wrong")]
    est = estimate_accuracy(records)
    overall, urban, natural = est["overall"], est["per_class"]["urban"], est["per_class"]["natural"]
    assert estimate_lines(est) == [
        "accuracy of the labels (random sample), 95 % wilson interval:",
        f"  overall  50.0% [{overall['low']:.1%}, {overall['high']:.1%}] (n=2)",
        f"  natural  0.0% [0.0%, {natural['high']:.1%}] (n=1)",
        f"  urban  100.0% [{urban['low']:.1%}, 100.0%] (n=1)"]
    suspects = estimate_accuracy([{**r, "sample": "suspects"} for r in records])
    assert estimate_lines(suspects)[0] == ("share of flagged labels that were right (suspects: 1 - precision of the "
                                           "flags; not the accuracy of the collection), 95 % wilson interval:")


def test_only_verdicts_about_clips_the_review_page_showed_count(tmp_path):
    """A verdict about a clip the page did not show in that sample (forged, or another audit's) is left out and
    counted; without a page, one line says how to build it."""
    review = tmp_path / "review"
    review.mkdir()
    (review / PAGE).write_text(render_page({"suspects": [{"clip_id": "s1"}], "random": [{"clip_id": "r1"}]}))
    records = [verdict("r1", ["urban"], "correct"), verdict("s1", ["urban"], "wrong", sample="suspects"),
               verdict("s1", ["urban"], "wrong"), verdict("x", ["urban"], "wrong")]
    kept, others = on_page(records, str(review))
    assert [(r["sample"], r["clip_id"]) for r in kept] == [("random", "r1"), ("suspects", "s1")] and others == 2
    (tmp_path / "none").mkdir()  # a review folder without its page
    with pytest.raises(AuditError) as caught:
        on_page(records, str(tmp_path / "none"))
    assert str(caught.value) == (f"verdicts: {tmp_path / 'none' / PAGE} does not exist, so no verdict can be checked "
                                 "against the clips it showed; build the page with `acoustic-env audit-review "
                                 "--review-top N`")


def test_verdicts_none_of_which_is_about_a_clip_on_the_page_say_what_was_found(tmp_path, capsys):
    """Not "holds no verdicts": the file holds some, about clips the page beside it did not show; one is named."""
    (tmp_path / "review").mkdir()
    (tmp_path / "review" / PAGE).write_text(render_page({"suspects": [{"clip_id": "s1"}], "random": []}))
    (tmp_path / "review" / "v.json").write_text(json.dumps([verdict("x", ["urban"], "wrong"),
                                                            verdict("s1", ["urban"], "wrong")]))  # s1: not in random
    assert main(["audit-estimate", "--verdicts", str(tmp_path / "review" / "v.json")]) == 2
    review = tmp_path / "review"
    assert capsys.readouterr().err == (f"acoustic-env: error: verdicts: 2 verdict(s) in {review / 'v.json'}, none "
                                       f"for a clip on {review / PAGE} (e.g. 'x' in the random sample)\n")


def test_a_corrected_lists_accuracy_is_unbiased_over_many_reviews_and_not_the_sample_re_judged():
    """``audit-estimate --labels``: the table's wrong share less what the list fixed. Over 400 simulated reviews of a
    1,000-clip table with 120 wrong labels, 70 of them fixed by the list (and 10 clips taken out), the estimate's
    mean is the list's true accuracy 1 − 40 / 990; re-judging the sample against the list (which holds its very
    verdicts) would say 1.0."""
    from acoustic_env.jobs.audit.estimate import after_corrections

    rng = np.random.default_rng(0)
    n, wrong_ids = 1000, set(range(120))
    given = {f"c{i}": ("urban",) for i in range(n)}
    listed = {f"c{i}": ("natural",) for i in range(70)} | {f"c{i}": () for i in range(70, 80)}
    listed |= {f"c{i}": ("urban",) for i in range(500, 520)}  # confirmed, unchanged: not a fix
    truth = 1 - 40 / 990
    estimates = []
    for _ in range(400):
        sample = rng.choice(n, 100, replace=False)
        records = [verdict(f"c{i}", ["urban"], "wrong" if i in wrong_ids else "correct") for i in sample]
        est = estimate_accuracy(records)
        out = after_corrections(est, given, listed, records)
        assert out["overall"]["low"] <= out["overall"]["accuracy"] <= out["overall"]["high"] <= 1.0
        assert out["label_list"] == {"clips": n, "relabelled": 70, "removed": 10, "contradicted": 0,
                                     "table": est["overall"]}
        estimates.append(out["overall"]["accuracy"])
    assert abs(np.mean(estimates) - truth) < 0.005
    lines = estimate_lines(after_corrections(est, given, listed, records))
    assert lines[0].startswith("accuracy of the corrected list") and "relabels 70 and leaves out 10" in lines[1]
    with pytest.raises(AuditError, match="random sample"):
        after_corrections(estimate_accuracy([verdict("c1", ["urban"], "wrong", "suspects")]), given, listed, [])


def test_a_comma_file_whose_clips_carry_many_semicolon_separated_classes_is_still_read_by_its_header():
    """The separator is the header's own: data rows may hold more ``;`` than the header has ``,`` (a clip given
    many classes, ``;``-separated in a comma-separated file), and the file must still read as commas."""
    classes = ["speech", "music", "vehicle", "car", "horn", "siren", "wind", "rain"]
    text = f"clip_id,given_labels,verdict,sample\na,{';'.join(classes)},wrong,random\n"
    assert [(r["clip_id"], r["given_labels"]) for r in parse_verdicts(text)] == [("a", classes)]


def test_the_separator_is_a_comma_semicolon_or_tab_whatever_letters_the_header_repeats():
    """Only ``,``, ``;`` and a tab can separate fields: a column name that repeats a letter more often than the
    header has commas does not make that letter the separator."""
    records = parse_verdicts("clip_id,given_labels,verdict,sample,XXXXXX\na,urban,correct,random,x\n")
    assert [(r["clip_id"], r["verdict"], r["sample"]) for r in records] == [("a", "correct", "random")]


def test_a_missing_verdict_file_is_named_by_the_reader_itself(tmp_path):
    """``read_verdicts`` is also called without the CLI's own check (``audioset rescore``): its message names the
    file."""
    with pytest.raises(AuditError) as caught:
        read_verdicts([str(tmp_path / "gone.json")])
    assert str(caught.value) == f"verdicts: file not found: {tmp_path / 'gone.json'}"


def test_an_unknown_method_is_named_with_the_methods_there_are():
    with pytest.raises(AuditError) as caught:
        estimate_accuracy([verdict("a", ["urban"], "correct")], method="normal")
    assert str(caught.value) == "method: must be one of ['wilson', 'bootstrap'], got 'normal'"


def test_the_bootstrap_draws_the_same_replicates_on_every_call():
    """Seeded, not merely stable on 0/1 outcomes (where most redraws land on the same mean): on outcomes whose
    means all differ, any other draw would move both bounds."""
    outcomes = np.linspace(0.0, 1.0, 41)
    assert len({bootstrap(outcomes) for _ in range(3)}) == 1


def test_a_corrected_lists_accuracy_is_the_tables_wrong_share_less_the_fixes_exactly():
    """10 audited clips, the table's estimate 70 % [50 %, 90 %]: the list relabels one clip, takes one out, confirms
    one and names one that was not audited. About 3 wrong labels less 2 leave 1 among 9 clips: 1 − 1/9; the low
    bound 1 − (5 − 2)/9; the high bound would leave fewer than none wrong, so 100 %. The table's per-class figures
    are not the list's, so none are carried over."""
    from acoustic_env.jobs.audit.estimate import after_corrections

    table = {"accuracy": 0.7, "low": 0.5, "high": 0.9, "n": 10}
    est = {"method": "wilson", "sample": "random", "overall": table, "per_class": {"urban": table}}
    given = {f"c{i}": ("urban",) for i in range(10)}
    listed = {"c0": ("natural",), "c1": (), "c2": ("urban",), "elsewhere": ("natural",)}
    assert after_corrections(est, given, listed, []) == {
        "method": "wilson", "sample": "random", "per_class": {},
        "label_list": {"clips": 10, "relabelled": 1, "removed": 1, "contradicted": 0, "table": table},
        "overall": {"accuracy": 0.888889, "low": 0.666667, "high": 1.0, "n": 10}}


def test_a_corrected_list_of_a_one_clip_table_divides_by_that_one_clip():
    """With one clip left the wrong share is over that clip; with none left (every clip taken out) nothing is
    wrong."""
    from acoustic_env.jobs.audit.estimate import after_corrections

    table = {"accuracy": 0.5, "low": 0.0, "high": 1.0, "n": 2}
    est = {"method": "wilson", "sample": "random", "overall": table, "per_class": {}}
    assert after_corrections(est, {"a": ("urban",)}, {}, [])["overall"] == table
    assert after_corrections(est, {"a": ("urban",)}, {"a": ()}, [])["overall"] == {"accuracy": 1.0, "low": 1.0,
                                                                               "high": 1.0, "n": 2}


def test_a_corrected_list_from_the_suspects_estimate_is_refused_with_the_reason():
    from acoustic_env.jobs.audit.estimate import after_corrections

    with pytest.raises(AuditError) as caught:
        after_corrections(estimate_accuracy([verdict("c1", ["urban"], "wrong", "suspects")]), {}, {}, [])
    assert str(caught.value) == ("labels: the corrected list's accuracy needs the random sample's estimate (--sample "
                                 "random); the suspects' verdicts say nothing of the collection")


def test_a_list_that_goes_against_the_verdicts_is_not_scored_perfect():
    """Issue 82, 9: a list that flips all 30 audited clips, 28 of which the random sample's reviewers found right,
    once scored 100 % [100 %, 100 %] (every change counted as a fix). A change against a "correct" verdict makes a
    wrong label, and one against a "wrong" verdict's own right class fixes nothing: 28 wrong of 30 is left."""
    from acoustic_env.jobs.audit.estimate import after_corrections

    given = {f"c{i}": ("urban",) for i in range(30)}
    records = [verdict(f"c{i}", ["urban"], "correct" if i >= 2 else "wrong") for i in range(30)]
    flipped = {c: ("natural",) for c in given}
    out = after_corrections(estimate_accuracy(records), given, flipped, records)
    assert out["overall"]["accuracy"] == pytest.approx(2 / 30, abs=1e-5) and out["overall"]["high"] < 0.5
    assert out["label_list"]["contradicted"] == 28
    assert "28 of its labels go against a reviewer's verdict, counted wrong" in estimate_lines(out)[1]
    # c0 was judged wrong with "natural" as its right class: the list giving "music" fixes nothing
    records[0] = {**records[0], "corrected_label": ["natural"]}
    out = after_corrections(estimate_accuracy(records), given, {"c0": ("music",), "c1": ("natural",)}, records)
    assert out["label_list"]["contradicted"] == 1 and out["overall"]["accuracy"] == pytest.approx(1 - 1 / 30, abs=1e-5)


def test_an_unsure_verdict_goes_against_no_list_even_with_a_class_named():
    """A reviewer unsure of a clip may still name the class it might be: the list giving it another is no change
    against a verdict (unsure decides nothing), so the estimate is the one without it."""
    from acoustic_env.jobs.audit.estimate import after_corrections

    given = {f"c{i}": ("urban",) for i in range(10)}
    records = [verdict(f"c{i}", ["urban"], "correct") for i in range(1, 10)]
    records.append({**verdict("c0", ["urban"], "unsure"), "corrected_label": ["natural"]})
    out = after_corrections(estimate_accuracy(records), given, {"c0": ("music",)}, records)
    assert out["label_list"]["contradicted"] == 0 and out["overall"]["accuracy"] == pytest.approx(1.0)
    assert estimate_lines(out)[1].endswith("leaves out 0 of 10 audited clips)")  # nothing said against a verdict


def test_a_csv_the_review_page_exported_reads_back_each_cell_as_the_reviewer_wrote_it():
    """The page's export puts a ' before a cell a spreadsheet would run as a formula (the one CSV writer's rule):
    reading it back takes that ' off, and a row cut short of the header still reads."""
    text = ("clip_id,given_labels,verdict,sample,reviewer,time,note\n"
            "'@home,urban,wrong,random,'=cmd,2026-01-01T00:00:00Z,'+1 car then a dog\n"
            "b,urban,correct,random\n")
    home, b = parse_verdicts(text)
    assert (home["clip_id"], home["reviewer"], home["note"]) == ("@home", "=cmd", "+1 car then a dog")
    assert (b["clip_id"], b["verdict"], b["note"]) == ("b", "correct", "")


def test_a_verdict_file_over_the_limit_is_one_line_naming_it(tmp_path, monkeypatch):
    from acoustic_env.config import ConfigError
    from acoustic_env.jobs.audit import estimate

    monkeypatch.setattr(estimate, "MAX_VERDICT_BYTES", 1024)
    path = tmp_path / "v.csv"
    path.write_text("clip_id,verdict,sample\n" + "a,wrong,random\n" * 200)
    with pytest.raises(ConfigError) as caught:
        estimate.read_verdict_text(str(path))
    assert str(caught.value) == f"verdicts: {path} is 3.0 KiB (3,023 bytes), over the limit of a verdict file (1 KiB)"


def test_taking_out_clips_a_reviewer_found_right_removes_no_wrong_label():
    """2 of 10 clips wrong; the list takes out two whose labels the reviewers found right: the 2 wrong ones are
    left among 8 (75 %), not counted as removed (100 %)."""
    from acoustic_env.jobs.audit.estimate import after_corrections

    given = {f"c{i}": ("urban",) for i in range(10)}
    records = [verdict(f"c{i}", ["urban"], "wrong" if i < 2 else "correct") for i in range(10)]
    out = after_corrections(estimate_accuracy(records), given, {"c2": (), "c3": ()}, records)
    assert out["label_list"]["removed"] == 2 and out["overall"]["accuracy"] == pytest.approx(0.75)
    out = after_corrections(estimate_accuracy(records), given, {"c0": (), "c3": ()}, records)
    assert out["overall"]["accuracy"] == pytest.approx(1 - 1 / 8)  # one wrong label taken out, one left
