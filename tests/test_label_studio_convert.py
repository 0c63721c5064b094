"""The Label Studio round trip's conversions on their own (acoustic_env/labels/label_studio.py), in process, no
server and no audit: the labelling config a user pastes into a project, the tasks a queue becomes, and an export's
annotations read back as verdicts, or refused in one line naming the task and what is foreign. (The commands around
them, on a real audit and a real Label Studio, are tests/test_label_studio.py's.)"""

from __future__ import annotations

import copy
import json

import pyarrow as pa
import pytest

from acoustic_env.config import ConfigError
from acoustic_env.labels.label_studio import (answer_rows, class_tasks, labelling_config, origin, parse_export,
                                             tasks, verdict_records)

QUEUE = "20261128T100000Z-ab12cd"
CLASSES = ("urban", "natural", "indoor")
ANN = {"id": 2, "email": "ann@example.org"}


def test_the_labelling_config_is_the_audio_the_classes_an_unsure_box_and_a_note():
    """The XML a user pastes into the project's Labeling Interface, whole: a control renamed or a task's field
    misspelt leaves the reviewer a page without the clip, its classes or its summary."""
    assert labelling_config(["urban", "natural"], multi_label=False) == (
        '<View><Header value="$summary" /><Text name="segment" value="$segment" />'
        '<Audio name="audio" value="$audio" />'
        '<Choices name="label" toName="audio" showInline="true" choice="single-radio">'
        '<Choice value="urban" /><Choice value="natural" /></Choices>'
        '<Choices name="unsure" toName="audio" choice="multiple"><Choice value="unsure" /></Choices>'
        '<TextArea name="note" toName="audio" maxSubmissions="1" editable="true" placeholder="note (optional)" />'
        '</View>')
    assert 'showInline="true" choice="multiple"><Choice value="urban" />' in labelling_config(["urban"], True)


ITEMS = [
    {"clip_id": "c1", "audio": "audio/c1.ogg", "start_s": None, "end_s": None, "given": ["urban"],
     "suggested": ["natural"], "quality": 0.125, "reason": "least likely given label"},
    {"clip_id": "c2", "audio": "", "start_s": 0.0, "end_s": 10.0, "given": ["urban"], "suggested": ["urban"],
     "quality": 0.5},
    {"clip_id": "c3", "audio": "audio/c3.ogg", "start_s": 2.5, "end_s": None, "given": [],
     "suggested": ["urban", "indoor"], "quality": 0.75},
    {"clip_id": "c4", "audio": "audio/c4.ogg", "start_s": None, "end_s": 4.0, "given": ["urban", "indoor"],
     "suggested": [], "quality": 0.9, "reason": "random sample"},
    {"clip_id": "c5", "audio": "audio/c5.ogg", "start_s": 30.0, "end_s": 40.0, "given": ["natural"],
     "suggested": ["natural"], "quality": 1.0},
]


def test_a_queues_clips_become_tasks_with_their_audio_segment_labels_and_predictions():
    """Each clip's task, in the queue's order: the URL the reviewer's browser fetches, the segment and summary it
    reads, the queue the import checks, and both labels as pre-annotations; a clip without audio is named apart."""
    made, unreadable = tasks(ITEMS, queue=QUEUE, audio_url="http://h/review/")
    assert unreadable == ["c2"]
    assert [t["data"]["clip_id"] for t in made] == ["c1", "c3", "c4", "c5"]
    assert made[0] == {
        "data": {"audio": "http://h/review/audio/c1.ogg", "clip_id": "c1", "start_s": None, "end_s": None,
                 "segment": "c1: the whole file", "given_labels": ["urban"], "suggested_labels": ["natural"],
                 "summary": "Given: urban; the audit suggests: natural (least likely given label)", "queue": QUEUE},
        "predictions": [
            {"model_version": "given labels", "result": [
                {"from_name": "label", "to_name": "audio", "type": "choices", "value": {"choices": ["urban"]}}]},
            {"model_version": f"audit {QUEUE}", "score": 0.125, "result": [
                {"from_name": "label", "to_name": "audio", "type": "choices", "value": {"choices": ["natural"]}}]}]}
    assert [(t["data"]["segment"], t["data"]["summary"]) for t in made[1:]] == [
        ("c3: 2.5 s to the end", "Given: (none); the audit suggests: urban; indoor (random sample)"),
        ("c4: 0 s to 4 s", "Given: urban; indoor; the audit suggests: (none) (random sample)"),
        ("c5: 30 s to 40 s", "Given: natural; the audit suggests: natural (random sample)")]
    assert [(t["data"]["start_s"], t["data"]["end_s"], t["predictions"][1]["score"]) for t in made[1:]] == [
        (2.5, None, 0.75), (None, 4.0, 0.9), (30.0, 40.0, 1.0)]


def test_a_verdicts_origin_names_the_project_and_the_queue():
    assert origin(7, QUEUE) == f"label-studio project 7: {QUEUE}"


def _annotation(choices=None, *, unsure=False, note=None, who=ANN, **extra) -> dict:
    result = [] if choices is None else [{"from_name": "label", "to_name": "audio", "type": "choices",
                                          "value": {"choices": choices}}]
    if unsure:
        result.append({"from_name": "unsure", "to_name": "audio", "type": "choices", "value": {"choices": ["unsure"]}})
    if note is not None:
        result.append({"from_name": "note", "to_name": "audio", "type": "textarea", "value": {"text": note}})
    return {"completed_by": who, "result": result, "was_cancelled": False,
            "created_at": "2026-11-28T10:00:00Z", "updated_at": "2026-11-28T10:05:00Z", **extra}


def _task(i: int, clip: str, given: list[str], *annotations: dict, project=7) -> dict:
    return {"id": i, "project": project, "data": {"clip_id": clip, "given_labels": given, "queue": QUEUE},
            "annotations": list(annotations)}


def _record(clip, given, verdict, corrected=(), time="2026-11-28T10:05:00Z", note="", reviewer="ann@example.org"):
    return {"clip_id": clip, "given_labels": given, "verdict": verdict, "corrected_label": list(corrected),
            "reviewer": reviewer, "time": time, "note": note, "audit_id": QUEUE}


def test_each_submitted_annotation_is_one_verdict_as_the_reviewer_gave_it():
    """The given classes chosen (in any order) are ``correct``; others ``wrong`` with what was chosen; the box
    ticked or nothing chosen ``unsure``; a skipped annotation says nothing; the time is when it was last saved."""
    bob = {"id": 3, "email": "bob@example.org"}
    export = [
        _task(1, "c1", ["urban", "indoor"], _annotation(["indoor", "urban"], note=["loud", "bus"]),
              _annotation(["natural"], who=bob, updated_at=None)),
        _task(2, "c2", ["urban"], _annotation(["urban"], unsure=True), _annotation([], created_at=None, updated_at=""),
              _annotation(["natural"], was_cancelled=True)),
        _task(3, "c3", [], _annotation(["urban"], note=None)),
        _task(4, "c4", None, {"completed_by": ANN, "result": {"from_name": "label", "value": {"choices": ["natural"]}},
                              "updated_at": "2026-11-28T11:00:00Z"},
              {"completed_by": ANN, "result": None, "updated_at": "2026-11-28T12:00:00Z"}),
        _task(5, "c5", ["natural"]),
    ]
    assert verdict_records(export, queue=QUEUE, classes=CLASSES) == (7, [
        _record("c1", ["urban", "indoor"], "correct", note="loud bus"),
        _record("c1", ["urban", "indoor"], "wrong", ["natural"], time="2026-11-28T10:00:00Z",
                reviewer="bob@example.org"),
        _record("c2", ["urban"], "unsure"),
        _record("c2", ["urban"], "unsure", time=""),
        _record("c3", [], "wrong", ["urban"]),
        _record("c4", [], "wrong", ["natural"], time="2026-11-28T11:00:00Z"),
        _record("c4", [], "unsure", time="2026-11-28T12:00:00Z")])
    assert verdict_records([], queue=QUEUE, classes=CLASSES) == (None, [])


def test_a_note_or_a_result_value_left_empty_reads_as_nothing_said():
    plain = _annotation(["urban"])
    plain["result"] += [{"from_name": "note", "value": None}, {"from_name": "unsure", "value": {"choices": None}}]
    assert verdict_records([_task(1, "c1", ["urban"], plain)], queue=QUEUE, classes=CLASSES)[1] == [
        _record("c1", ["urban"], "correct")]


def _good() -> list[dict]:
    return [_task(1, "c1", ["urban"], _annotation(["urban"])), _task(2, "c2", ["natural"], _annotation(["urban"]))]


def _set(path: str, value):
    """A spoiler: ``value`` put at ``path`` (keys and indices by ``/``) of the good export."""
    def spoil(export):
        *head, last = [int(p) if p.isdigit() else p for p in path.split("/")]
        node = export
        for part in head:
            node = node[part]
        node[last] = value
    return spoil


@pytest.mark.parametrize("spoil, said", [
    (lambda e: e.__setitem__(slice(None), {"id": 1}), "label-studio: the export is not Label Studio's JSON export "
                                                      "(a list of tasks); export the project as JSON"),
    (lambda e: e.append(7), "label-studio: the export is not Label Studio's JSON export (a list of tasks); export "
                            "the project as JSON"),
    (_set("1/project", "8"), "label-studio: the export holds tasks of 2 projects ('8', 7); export one project; "
                             "nothing was added"),
    (_set("1/data/queue", "other"), "label-studio: task 2 (c2) is of queue 'other', not "
                                    f"'{QUEUE}': another project's tasks; nothing was added"),
    (_set("1/data", ["c2"]), "label-studio: the data of task 2: an object expected, got ['c2']; nothing was added"),
    (_set("0/data/given_labels", "urban"), "label-studio: the given labels of task 1: a list of names expected, "
                                           "got 'urban'; nothing was added"),
    (_set("0/data/clip_id", 12), "label-studio: task 1 names no clip but 12; nothing was added"),
    (_set("1/annotations/0", "urban"), "label-studio: an annotation of task 2: an object expected, got 'urban'; "
                                       "nothing was added"),
    (_set("0/annotations/0/result/0", 3), "label-studio: a result of task 1: an object expected, got 3; nothing "
                                          "was added"),
    (_set("0/annotations/0/result/0/value", "urban"), "label-studio: a result's value of task 1: an object "
                                                      "expected, got 'urban'; nothing was added"),
    (_set("0/annotations/0/result/0/value/choices", [1]), "label-studio: the classes chosen in task 1: a list of "
                                                          "names expected, got [1]; nothing was added"),
    (_set("0/annotations/0/result/0/value/choices", "urban"), "label-studio: the classes chosen in task 1: a list "
                                                              "of names expected, got 'urban'; nothing was added"),
    (_set("0/annotations/0/result/0/from_name", "sentiment"), "label-studio: task 1 answers in a control "
                                                              "'sentiment' that the labelling config does not hold "
                                                              "(another project's export?); nothing was added"),
    (_set("1/annotations/0/result/0/value/choices", ["chainsaw"]), "label-studio: task 2 chooses class 'chainsaw', "
                                                                   "not a class of the task (urban, natural, "
                                                                   "indoor); nothing was added"),
    (_set("0/annotations/0/completed_by", 2), "label-studio: task 1's annotation names its annotator by 2, not an "
                                              "e-mail: export with the annotators' details (POST /api/projects/<id>/"
                                              'exports with {"serialization_options": {"annotations__completed_by": '
                                              '{"only_id": false}}}); nothing was added'),
    (_set("0/annotations/0/completed_by", {"id": 2, "email": ""}), "task 1's annotation names its annotator by "
                                                                   "{'email': '', 'id': 2}, not an e-mail: export"),
    (_set("0/annotations/0/completed_by", {"id": 2}), "task 1's annotation names its annotator by {'id': 2}, not "
                                                      "an e-mail: export"),
])
def test_a_foreign_export_is_refused_whole_in_one_line_naming_the_task(spoil, said):
    """What another project, another queue, a hand edit or Label Studio's quick export puts in: no verdict of the
    export is returned, and the line names the task and what is wrong."""
    assert len(verdict_records(_good(), queue=QUEUE, classes=CLASSES)[1]) == 2
    bad = copy.deepcopy(_good())
    spoil(bad)
    with pytest.raises(ConfigError) as err:
        verdict_records(bad, queue=QUEUE, classes=CLASSES)
    assert said in str(err.value) and str(err.value).startswith("label-studio: "), str(err.value)
    assert len(str(err.value).splitlines()) == 1


def test_an_export_file_that_is_not_json_or_nests_too_deep_is_one_line():
    assert parse_export(json.dumps(_good()).encode(), "export.json") == _good()
    with pytest.raises(ConfigError) as err:
        parse_export(b'[{"id": 1,', "export.json")
    assert str(err.value) == "export: export.json is not JSON (Expecting property name enclosed in double quotes: " \
                             "line 1 column 11 (char 10))"
    with pytest.raises(ConfigError) as err:
        parse_export(b"[" * 100_000, "deep.json")
    assert str(err.value) == "export: deep.json nests too deep to be a Label Studio export"


def test_a_new_class_rounds_queue_goes_to_label_studio_and_its_answers_come_back_for_the_next_round(tmp_path, capsys):
    """``labels to-label-studio --new-class``: the round's review.csv (as the round writes it) becomes yes/no tasks
    of each clip's own file, the model's guess as the pre-annotation; the export read back is the answers
    ``labels new-class --verdicts`` takes, and an export of another class, or an answer that is no yes or no, is
    one line."""
    from acoustic_env.cli import main
    from acoustic_env.jobs.export import write_table
    from acoustic_env.jobs.new_class import read_answers
    from acoustic_env.labels.new_class import review_table

    facts = pa.table({"clip_id": ["c1", "c2", "c3"], "labels": [["a"], [], ["b"]],
                      "uri": ["/data/rec/c1.wav", None, "https://h.example/c3.flac"],
                      "start_s": [None, 0.0, 5.0], "end_s": [None, 10.0, 15.0]})
    picks = [("c3", "most likely"), ("c2", "random"), ("c1", "least sure")]
    write_table(review_table(picks, {"c1": 0.4999, "c2": 0.1, "c3": 0.91234}, facts, "chainsaw"),
                str(tmp_path / "round-1" / "review.csv"))
    args = ["labels", "to-label-studio", "--output", str(tmp_path / "ls"), "--audio-url", "/data/local-files/?d="]
    assert main([*args, "--new-class", str(tmp_path / "round-1")]) == 0
    printed = capsys.readouterr().out
    assert "2 tasks of new class chainsaw's review queue (task chainsaw)" in printed
    assert "1 clips left out: review.csv names no file for them (e.g. c2)" in printed
    assert "labels new-class ... --name chainsaw --verdicts <the export>" in printed
    made = json.loads((tmp_path / "ls" / "tasks.json").read_text())
    assert [(t["data"]["audio"], t["data"]["segment"], t["data"]["summary"], t["predictions"][0]["score"],
             t["predictions"][0]["result"][0]["value"]["choices"]) for t in made] == [
        ("https://h.example/c3.flac", "c3: 5 s to 15 s", "Is it chainsaw? The round's model says 0.91 (most likely)",
         0.9123, ["yes"]),
        ("/data/local-files/?d=data/rec/c1.wav", "c1: the whole file",
         "Is it chainsaw? The round's model says 0.50 (least sure)", 0.4999, ["no"])]
    assert (tmp_path / "ls" / "config.xml").read_text() == labelling_config(["yes", "no"], multi_label=False)
    export = [{"id": i, "project": 7, **t} for i, t in enumerate(made)]
    export[0]["annotations"] = [_annotation(["no"], note=["a saw, not a chainsaw"]),
                                _annotation(["yes"], was_cancelled=True)]
    export[1]["annotations"] = [_annotation(unsure=True, who={"email": "bob@example.org"})]
    (tmp_path / "export.json").write_text(json.dumps(export))
    assert read_answers([str(tmp_path / "export.json")], "chainsaw") == [
        {"clip_id": "c3", "answer": "no", "reviewer": "ann@example.org", "time": "2026-11-28T10:05:00Z",
         "note": "a saw, not a chainsaw"},
        {"clip_id": "c1", "answer": "unsure", "reviewer": "bob@example.org", "time": "2026-11-28T10:05:00Z",
         "note": ""}]
    with pytest.raises(ConfigError, match="is of queue 'new class chainsaw', not 'new class dog'"):
        read_answers([str(tmp_path / "export.json")], "dog")
    export[1]["annotations"] = [_annotation(["maybe"])]
    (tmp_path / "export.json").write_text(json.dumps(export))
    with pytest.raises(ConfigError, match="chooses class 'maybe', not a class of the task \\(yes, no\\)"):
        read_answers([str(tmp_path / "export.json")], "chainsaw")
    for both in ([], ["--new-class", str(tmp_path / "round-1"), "--audit", str(tmp_path)]):
        assert main([*args, *both]) == 2
        assert "give one review queue: an audit's (--audit) or a new class round's (--new-class)" in \
            capsys.readouterr().err
    (tmp_path / "hits").mkdir()
    (tmp_path / "hits" / "review.csv").write_text("clip_id,verdict\nc1,yes\n")  # search --save's, not a round's
    assert main([*args, "--new-class", str(tmp_path / "hits")]) != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not a new-class round's review.csv" in err, err


def test_a_new_class_task_plays_each_clips_own_file_wherever_it_lies():
    """A clip at an http(s) URL plays from there; any other file (a local path, object storage's, a ``file://``
    URL) through Label Studio's local files, by its path without the scheme and the leading ``/``; the task keeps
    the clip's segment for the import."""
    rows = [{"clip_id": f"c{i}", "uri": uri, "start_s": 1.5 * i, "end_s": None, "prob_saw": 0.25}
            for i, uri in enumerate(["http://h/a.wav", "https://h/b.wav", "/XC/xeno/c.wav", "file:///data/d.wav",
                                     "s3://bucket/e.wav?from=http://h/e.wav"])]
    made, unplayable = class_tasks(rows, name="saw", audio_url="/data/local-files/?d=")
    assert unplayable == []
    assert [t["data"]["audio"] for t in made] == [
        "http://h/a.wav", "https://h/b.wav", "/data/local-files/?d=XC/xeno/c.wav", "/data/local-files/?d=data/d.wav",
        "/data/local-files/?d=bucket/e.wav?from=http://h/e.wav"]
    assert [(t["data"]["start_s"], t["data"]["end_s"]) for t in made] == [(1.5 * i, None) for i in range(5)]


def test_a_new_class_task_pre_answers_yes_from_a_probability_of_one_half():
    """The round's model's guess is the pre-annotation a reviewer who agrees submits as is: yes from 0.5 up, no
    below, scored by the probability, under the queue's own model version; a row without a reason says picked."""
    rows = [{"clip_id": c, "uri": f"/d/{c}.wav", "prob_saw": p, "reason": r}
            for c, p, r in (("c1", 0.5, None), ("c2", 0.4999, "random"))]
    made, _ = class_tasks(rows, name="saw", audio_url="/files/")
    assert [t["data"]["summary"] for t in made] == ["Is it saw? The round's model says 0.50 (picked)",
                                                   "Is it saw? The round's model says 0.50 (random)"]
    assert [t["predictions"] for t in made] == [
        [{"model_version": "new class saw", "score": p, "result": [
            {"from_name": "label", "to_name": "audio", "type": "choices", "value": {"choices": [answer]}}]}]
        for p, answer in ((0.5, "yes"), (0.4999, "no"))]


def test_a_new_class_answer_is_unsure_when_the_box_is_ticked_whatever_is_chosen():
    export = [{"id": 1, "project": 7, "data": {"clip_id": "c1", "queue": "new class saw"},
               "annotations": [_annotation(["yes"], unsure=True), _annotation([]), _annotation(["no"])]}]
    assert [(a["verdict"], a["reviewer"]) for a in answer_rows(export, name="saw")] == [
        ("unsure", "ann@example.org"), ("unsure", "ann@example.org"), ("no", "ann@example.org")]


def test_choices_in_two_results_both_count_and_a_malformed_box_or_note_is_one_line():
    """An annotation whose classes come in two results of the label control counts both; an unsure box or a note
    that holds no list of text names the task and the control, as the classes' refusal does."""
    split = _annotation(["urban"])
    split["result"].append({"from_name": "label", "to_name": "audio", "type": "choices",
                            "value": {"choices": ["indoor"]}})
    assert verdict_records([_task(1, "c1", ["urban"], split)], queue=QUEUE, classes=CLASSES)[1] == [
        _record("c1", ["urban"], "wrong", ["urban", "indoor"])]
    for control, key, what in (("unsure", "choices", "the unsure box"), ("note", "text", "the note")):
        bad = _annotation(["urban"])
        bad["result"].append({"from_name": control, "to_name": "audio", "value": {key: "x"}})
        with pytest.raises(ConfigError) as err:
            verdict_records([_task(1, "c1", ["urban"], bad)], queue=QUEUE, classes=CLASSES)
        assert str(err.value) == f"label-studio: {what} of task 1: a list of names expected, got 'x'; nothing was added"


def test_an_annotation_after_a_skipped_one_still_counts():
    """A reviewer skips a task, another answers it later: the skip says nothing, the answer stands."""
    skipped = _annotation(["natural"], was_cancelled=True)
    assert verdict_records([_task(1, "c1", ["urban"], skipped, _annotation(["urban"]))], queue=QUEUE,
                           classes=CLASSES)[1] == [_record("c1", ["urban"], "correct")]
