"""The corrected list as files and as a job reads it (acoustic_env/labels/label_list.py): the CSV text ``labels
apply`` writes, byte for byte; the list read back from that file or straight from a store; what a run's record and
console say about it; a list that cannot be read refused in one line. Real files."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

import pytest

from acoustic_env.config import ConfigError
from acoustic_env.labels.current import corrected
from acoustic_env.labels.label_list import label_list_line, read_label_list, write_list
from acoustic_env.labels.store import Event, append
from acoustic_env.vocabulary.tasks import load_task

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=timezone.utc)
TASK = load_task("urban_natural")


def _review(clip_id: str, reviewer: str, verdict: str, labels=(), given=("urban",), minutes: int = 0) -> Event:
    return Event(clip_id, "urban_natural", "review", verdict=verdict, labels=tuple(labels), given=tuple(given),
                 reviewer=reviewer, time=T0 + timedelta(minutes=minutes), origin="audit-1")


EVENTS = [
    _review("a", "ann", "correct"),  # listed with the given class, not the (empty) classes of the verdict
    _review("b", "ann", "wrong", ["urban", "natural"], minutes=1),
    Event("c", "urban_natural", "import", labels=("natural",), time=T0 + timedelta(minutes=2), note="sheet"),
    _review("d", "ann", "wrong", ["natural"], minutes=3),
    _review("d", "bob", "correct", given=("urban", "natural"), minutes=4),
]


def test_apply_writes_the_documented_csv_text(tmp_path):
    """What a user opens, diffs or hands to another tool: one line per clip, ``\\n`` line ends, classes joined
    by ``;``, a ``correct`` verdict listed with the given classes; the conflicts beside it."""
    out = tmp_path / "corrected.csv"
    conflicts = write_list(corrected(EVENTS), str(out))
    assert out.read_bytes().decode() == (
        "clip_id,labels,source,reviewer,time,origin\n"
        "a,urban,review,ann,2026-11-26T09:00:00Z,audit-1\n"
        "b,natural;urban,review,ann,2026-11-26T09:01:00Z,audit-1\n"
        "c,natural,import,,2026-11-26T09:02:00Z,\n")
    assert conflicts == str(tmp_path / "corrected.conflicts.csv")
    assert (tmp_path / "corrected.conflicts.csv").read_bytes().decode() == (
        "clip_id,reviewer,verdict,labels,given,time,origin,note\n"
        "d,ann,wrong,natural,urban,2026-11-26T09:03:00Z,audit-1,\n"
        "d,bob,correct,natural;urban,urban;natural,2026-11-26T09:04:00Z,audit-1,\n")


def test_a_job_reads_the_file_and_the_store_alike(tmp_path):
    """The file (named with or without a trailing slash) and the store it was written from give the same list;
    only the store knows the conflicts it left out, and only the task's own events count."""
    store = str(tmp_path / "labels")
    append(store, [*EVENTS, Event("e", "indoor_outdoor", "given", labels=("indoor",))])
    out = tmp_path / "corrected.csv"
    write_list(corrected(EVENTS), str(out))
    listed = {"a": ("urban",), "b": ("natural", "urban"), "c": ("natural",)}
    for uri in (str(out), f"{out}/"):
        from_file = read_label_list(uri, TASK)
        assert (from_file.labels, from_file.reviewed, from_file.conflicts) == (listed, {"a", "b"}, 0), uri
    from_store = read_label_list(store, TASK)
    assert (from_store.labels, from_store.reviewed, from_store.conflicts) == (listed, {"a", "b"}, 1)
    sha = hashlib.sha256(out.read_bytes()).hexdigest()
    assert from_store.sha256 == sha
    assert read_label_list(str(out), TASK).describe(changed=2, absent=1) == {
        "uri": str(out), "sha256": sha, "clips": 3, "reviewed": 2, "conflicts": 0, "changed": 2, "absent": 1}


def test_a_spreadsheets_csv_with_a_byte_order_mark_reads(tmp_path):
    listed = tmp_path / "sheet.csv"
    listed.write_bytes("clip_id,labels,source\r\nx, natural ; urban ,search\r\n".encode("utf-8-sig"))
    got = read_label_list(str(listed), TASK)
    assert (got.labels, got.reviewed) == ({"x": ("natural", "urban")}, {"x"})


def test_a_class_named_twice_in_a_row_counts_once(tmp_path):
    """A hand-edited ``urban;urban``: one class, not two, or a single-label job would leave the clip out as
    ambiguous and count it as changed against a table that says urban."""
    listed = tmp_path / "edited.csv"
    listed.write_text("clip_id,labels\nx,urban; urban\ny,natural;urban;natural\n")
    assert read_label_list(str(listed), TASK).labels == {"x": ("urban",), "y": ("natural", "urban")}


def test_a_clip_listed_twice_with_different_classes_is_refused_in_one_line(tmp_path):
    """A hand-edited list that gives one clip two answers: which one a job used would depend on the row order, so it
    stops and names the clip; the same answer twice (in any order of its classes) is read once."""
    twice = tmp_path / "twice.csv"
    twice.write_text("clip_id,labels\nx,urban;natural\ny,urban\nx,natural;urban\n")
    assert read_label_list(str(twice), TASK).labels == {"x": ("natural", "urban"), "y": ("urban",)}
    twice.write_text("clip_id,labels\nx,urban\ny,urban\nx,natural\n")
    with pytest.raises(ConfigError, match=r"^labels: .*twice.csv lists clip 'x' twice, as urban and as natural: keep "
                                          r"one row per clip \(`acoustic-env labels apply` leaves a clip the "
                                          r"reviewers disagree about out of the list\)$"):
        read_label_list(str(twice), TASK)
    for rows, answers in (("x,natural;urban\nx,\n", "as natural;urban and as no class"),
                          ("x,\nx,natural;urban\n", "as no class and as natural;urban")):
        twice.write_text(f"clip_id,labels\n{rows}")
        with pytest.raises(ConfigError, match=f"lists clip 'x' twice, {answers}: keep"):
            read_label_list(str(twice), TASK)


def test_the_console_line_names_the_list_its_changes_and_conflicts():
    used = {"uri": "s3://b/labels", "sha256": "0123456789abcdef" * 4, "clips": 40, "reviewed": 12, "conflicts": 3,
            "changed": 9}
    assert label_list_line(used) == ["  labels: s3://b/labels (40 clips listed, 9 changed against the table; 3 clips "
                                     "in conflict keep the table's labels; sha256 0123456789ab)"]
    assert label_list_line({**used, "conflicts": 0}) == [
        "  labels: s3://b/labels (40 clips listed, 9 changed against the table; sha256 0123456789ab)"]
    assert label_list_line({**used, "conflicts": 0, "absent": 2}) == [
        "  labels: s3://b/labels (40 clips listed, 2 of them not in the table, 9 changed against the table; sha256 "
        "0123456789ab)"]
    assert label_list_line(None) == []


def test_a_list_that_cannot_be_read_is_one_line(tmp_path):
    with pytest.raises(ConfigError) as err:
        read_label_list(str(tmp_path / "gone.csv"), TASK)
    assert str(err.value) == f"labels: no such file: {tmp_path / 'gone.csv'}"
    (tmp_path / "bin.csv").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    with pytest.raises(ConfigError) as err:
        read_label_list(str(tmp_path / "bin.csv"), TASK)
    assert str(err.value).startswith(f"labels: {tmp_path / 'bin.csv'} is not a CSV text file (") and \
        len(str(err.value).splitlines()) == 1


def test_a_directory_named_like_a_list_is_one_line(tmp_path):
    """``--labels x.csv`` where x.csv is a directory: one line naming the field, not the filesystem's exception."""
    (tmp_path / "store.csv").mkdir()
    with pytest.raises(ConfigError) as err:
        read_label_list(str(tmp_path / "store.csv"), TASK)
    assert str(err.value).startswith(f"labels: {tmp_path / 'store.csv'} is a directory;")


def test_a_list_over_its_size_limit_is_one_line_naming_the_flag_and_the_limit(tmp_path, monkeypatch):
    """A multi-GB file given as ``--labels`` by mistake: refused before it is read, in the flag's own words."""
    monkeypatch.setattr("acoustic_env.labels.label_list.MAX_LIST_BYTES", 1024)
    big = tmp_path / "big.csv"
    big.write_text("clip_id,labels\n" + "x,urban\n" * 400)
    with pytest.raises(ConfigError) as err:
        read_label_list(str(big), TASK)
    assert str(err.value) == (f"labels: {big} is 3.1 KiB (3,215 bytes), over the limit of a label list (1 KiB)")


def test_a_file_not_named_csv_is_neither_a_list_nor_a_store(tmp_path):
    """``--labels corrected.txt`` (or /dev/zero): never opened as a store's folder or read as a list."""
    (tmp_path / "corrected.txt").write_text("clip_id,labels\nx,urban\n")
    for uri in (str(tmp_path / "corrected.txt"), "/dev/zero"):
        with pytest.raises(ConfigError) as err:
            read_label_list(uri, TASK)
        assert str(err.value) == (f"labels: {uri} is neither a label store (a folder) nor a corrected list (a file "
                                  "named .csv)")


def test_a_clip_id_the_writer_guarded_reads_back_as_itself(tmp_path):
    """A clip named ``=HYPERLINK(..)`` or ``@x`` is written with a leading ``'`` (no spreadsheet runs it); a job
    reading the list gets the clip's own id back, or it would find no such clip in the table."""
    events = [Event(c, "urban_natural", "import", labels=("natural",), time=T0) for c in ("=1+1", "@sum", "+x")]
    out = tmp_path / "corrected.csv"
    write_list(corrected(events), str(out))
    assert "'=1+1" in out.read_text()
    assert read_label_list(str(out), TASK).labels == {c: ("natural",) for c in ("=1+1", "@sum", "+x")}


def test_a_row_short_of_the_header_or_past_it_reads(tmp_path):
    """A hand-edited list: a row without its last cells (no source: not reviewed) or with one cell too many reads
    as the cells it has, not a traceback."""
    edited = tmp_path / "edited.csv"
    edited.write_text("clip_id,labels,source\nx,urban\ny,natural,review,extra\n")
    got = read_label_list(str(edited), TASK)
    assert (got.labels, got.reviewed) == ({"x": ("urban",), "y": ("natural",)}, {"y"})
