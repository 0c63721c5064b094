"""The train job's own inputs, read once by the job: the test list and the audit's label-accuracy estimate.

Bad files end in one line naming their option (a ``ConfigError``), never a traceback.
"""

from __future__ import annotations

import json

import pytest

from acoustic_env.config import ConfigError
from acoustic_env.jobs.train.inputs import read_label_accuracy, read_test_list


def test_read_test_list_reads_each_format_and_says_what_is_wrong(tmp_path):
    """An id per line, a CSV with a clip_id column anywhere, an empty file or CSV; a CSV without clip_id and a
    missing file end in one line naming the problem."""
    (tmp_path / "ids.txt").write_text("  a \nb\n\n")
    assert read_test_list(str(tmp_path / "ids.txt")) == {"a", "b"}
    (tmp_path / "list.csv").write_text("uri, clip_id ,label\nx.wav,clip1,dog\ny.wav,clip2 ,cat\n")
    assert read_test_list(str(tmp_path / "list.csv")) == {"clip1", "clip2"}
    (tmp_path / "empty.txt").write_text("")
    assert read_test_list(str(tmp_path / "empty.txt")) == set()
    (tmp_path / "header.csv").write_text("uri,clip_id\n")
    assert read_test_list(str(tmp_path / "header.csv")) == set()
    (tmp_path / "bad.csv").write_text("uri,label\nx.wav,dog\n")
    with pytest.raises(ConfigError, match=r"^test_list: a CSV needs a clip_id column, got columns \['uri', 'label'\]$"):
        read_test_list(str(tmp_path / "bad.csv"))
    missing = str(tmp_path / "none.txt")
    with pytest.raises(ConfigError, match=rf"^test_list: cannot read {missing}: .*No such file"):
        read_test_list(missing)


@pytest.mark.parametrize("content, message", [
    ("not json", "cannot read"),
    ({"overall": {"accuracy": 0.9, "low": 0.8}}, "needs overall.accuracy, overall.low and overall.high"),
    ([1, 2], "needs overall.accuracy"),
    ({"overall": {"accuracy": 0.9, "low": 0.95, "high": 0.97}}, "needs 0 <= low <= accuracy <= high <= 1"),
    ({"overall": {"accuracy": 0.9, "low": 0.8, "high": 1.2}}, "needs 0 <= low <= accuracy <= high <= 1"),
    ({"overall": {"accuracy": 0.9, "low": -0.1, "high": 0.95}}, "needs 0 <= low <= accuracy <= high <= 1"),
    ({"sample": "suspects", "overall": {"accuracy": 0.9, "low": 0.8, "high": 0.95}}, "on the audit's suspects"),
])
def test_a_label_accuracy_file_that_cannot_be_used_is_one_line_naming_it(tmp_path, content, message):
    path = tmp_path / "estimate.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(ConfigError, match=f"^label_accuracy: .*{message}") as err:
        read_label_accuracy(str(path))
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="label_accuracy: cannot read .*missing.json"):
        read_label_accuracy(str(tmp_path / "missing.json"))
    good = {"sample": "random", "overall": {"accuracy": 0.9, "low": 0.8, "high": 0.95}}
    path.write_text(json.dumps(good))
    assert read_label_accuracy(str(path)) == good


def test_bounds_of_a_label_accuracy_file_are_inclusive(tmp_path):
    path = tmp_path / "estimate.json"
    for overall in ({"accuracy": 0.0, "low": 0.0, "high": 0.0}, {"accuracy": 1.0, "low": 1.0, "high": 1.0}):
        path.write_text(json.dumps({"sample": "random", "overall": overall}))
        assert read_label_accuracy(str(path))["overall"] == overall
    with pytest.raises(ConfigError, match=r"label_accuracy: cannot read .*estimate.json: Expecting property name"):
        path.write_text("{")
        read_label_accuracy(str(path))
    with pytest.raises(ConfigError, match=r"on the audit's suspects .*; pass the random-sample estimate$"):
        path.write_text(json.dumps({"sample": "suspects", "overall": {"accuracy": 0.9, "low": 0.8, "high": 0.95}}))
        read_label_accuracy(str(path))
