"""audit-estimate: verdict files → label accuracy per class with an interval, in the shape the training report reads."""

from __future__ import annotations

import json

import numpy as np
import pytest

from acoustic_env.cli import main
from acoustic_env.jobs.audit.estimate import (
    bootstrap,
    estimate_accuracy,
    parse_verdicts,
)
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
    assert "file not found" in capsys.readouterr().err
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
