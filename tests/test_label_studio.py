"""An audit's review queue to Label Studio and back (``labels to-label-studio``, ``labels from-label-studio``).

The cheap tests read the tasks and the labelling config the export writes, bring an export's annotations back as
verdicts with their annotator, time and project, and refuse bad exports (another queue's
tasks, two projects, a class the task lacks, a clip the table does not hold, a control the config lacks, an
annotator known by number alone) in one line with nothing added to the store. The slow one runs docs/curating.md's
"Review in Label Studio" as written against a real Label Studio (``label-studio==1.23.2`` in
``.venv-label-studio``, ``make label-studio``), started once per session (4-5 CPU-s from the migrated copy) on a free
loopback port with a temporary data folder: the project, its local files storage, the tasks imported, each task's
audio fetched through Label Studio, two reviewers' annotations posted through the API, the export with the
annotators' e-mails, the import back, and the corrected list.
Without that environment, or when Label Studio does not start, it skips with the reason (in CI it fails:
``conftest.require``).
"""

from __future__ import annotations

import copy
import json
import os
import re
import secrets
import shlex
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import documentation
import pytest
from conftest import require, tone_clip

from acoustic_env.cli import main
from acoustic_env.config import AuditConfig, from_dict
from acoustic_env.demo.tables import synthetic_features, write_features
from acoustic_env.jobs.audit.job import run_audit
from acoustic_env.labels.label_studio import labelling_config
from acoustic_env.labels.store import event_files, read_events
from acoustic_env.pages.review import REVIEW_DIR, inlined_data

ROOT = Path(__file__).resolve().parents[1]
#: ``make label-studio``'s environment, and the database it migrated once (copied: migrating costs 40 CPU-s)
VENV = ROOT / ".venv-label-studio"
TEMPLATE = VENV / "template"
CLASSES = ("urban", "natural")
N_CLIPS, QUEUE = 24, 8
#: how long Label Studio may take to answer /health (a fresh database migrates first: minutes on a busy machine)
START_S = 600


def _shell_commands() -> list[str]:
    """The section's ``shell`` block, line by line, as written."""
    text = documentation.section("Review in Label Studio")
    blocks = re.findall(r"^```shell\n(.*?)^```", text, re.M | re.S)
    return [c.strip() for b in blocks for c in b.splitlines() if c.strip()]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """``out`` (an extract output of real audio files, 20 % of the labels flipped) and its audit ``audit-v1`` with a
    queue of 8 on its page; and each clip's true class."""
    root = tmp_path_factory.mktemp("label-studio-world")
    uris = [str(tone_clip(root / f"c{i}.wav", seconds=1.0, freq=300 + 150 * (i % 2), seed=i)) for i in range(N_CLIPS)]
    synth = synthetic_features(N_CLIPS, seed=5, flip=0.2, uris=uris)
    write_features(synth.table, str(root / "out"))
    run_audit(from_dict(AuditConfig, {"features": str(root / "out"), "output": str(root / "audit-v1"), "folds": 3,
                                      "review_top": QUEUE, "random_sample": 2}))
    return root, {c: CLASSES[t] for c, t in zip(synth.ids, synth.true)}


def _to_label_studio(root: Path, capsys) -> list[dict]:
    assert main(["labels", "to-label-studio", "--audit", str(root / "audit-v1"), "--output", str(root / "ls"),
                 "--audio-url", "http://audio.example/review/"]) == 0
    capsys.readouterr()
    return json.loads((root / "ls" / "tasks.json").read_text())


def test_the_tasks_hold_the_queue_its_audio_segment_and_both_labels_as_predictions(world, capsys):
    root, _ = world
    tasks = _to_label_studio(root, capsys)
    page = inlined_data(str(root / "audit-v1" / REVIEW_DIR))
    summary = json.loads((root / "audit-v1" / "summary.json").read_text())
    assert [t["data"]["clip_id"] for t in tasks] == [i["clip_id"] for i in page["suspects"]]  # the queue, in order
    for task, item in zip(tasks, page["suspects"]):
        data = task["data"]
        assert data["audio"] == "http://audio.example/review/" + item["audio"]
        assert (root / "audit-v1" / REVIEW_DIR / item["audio"]).is_file()
        assert (data["start_s"], data["end_s"], data["given_labels"], data["suggested_labels"]) == (
            item["start_s"], item["end_s"], item["given"], item["suggested"])
        assert data["queue"] == summary["audit_id"]
        given, suggested = task["predictions"]
        assert given["model_version"] == "given labels" and suggested["model_version"] == f"audit {data['queue']}"
        assert given["result"][0]["value"]["choices"] == item["given"]
        assert suggested["result"][0]["value"]["choices"] == item["suggested"]
        assert suggested["score"] == item["quality"]
    config = ET.fromstring((root / "ls" / "config.xml").read_text())
    labels = config.find("Choices[@name='label']")
    assert [c.get("value") for c in labels] == list(CLASSES) and labels.get("choice") == "single-radio"


def test_the_labelling_config_keeps_any_class_name_a_name():
    view = ET.fromstring(labelling_config(['a "b"', "<c>&d"], multi_label=True))
    labels = view.find("Choices[@name='label']")
    assert [c.get("value") for c in labels] == ['a "b"', "<c>&d"] and labels.get("choice") == "multiple"


def _export(tasks: list[dict], answers: dict[str, list[str]], project: int = 7) -> list[dict]:
    """Label Studio's JSON export (its shape, with the annotators' details) of ``tasks`` answered by ann."""
    out = []
    for i, task in enumerate(tasks, 1):
        chosen = answers.get(task["data"]["clip_id"])
        annotations = [] if chosen is None else [{
            "id": i, "completed_by": {"id": 2, "email": "ann@example.org", "first_name": "", "last_name": ""},
            "result": [{"from_name": "label", "to_name": "audio", "type": "choices", "value": {"choices": chosen}}],
            "was_cancelled": False, "created_at": "2026-11-28T10:00:00.000000Z",
            "updated_at": f"2026-11-28T10:{i:02d}:00.000000Z", "task": i, "project": project}]
        out.append({"id": i, "project": project, "data": task["data"], "annotations": annotations,
                    "predictions": [1, 2]})
    return out


def _import(root: Path, export: list[dict], capsys) -> tuple[int, str]:
    path = root / "export.json"
    path.write_text(json.dumps(export))
    code = main(["labels", "from-label-studio", "--audit", str(root / "audit-v1"), "--export", str(path),
                 "--store", str(root / "store")])
    return code, capsys.readouterr().err


def test_each_submitted_annotation_is_a_verdict_with_its_annotator_time_and_project(world, capsys):
    root, _ = world
    tasks = _to_label_studio(root, capsys)
    clips = [t["data"]["clip_id"] for t in tasks]
    given = {t["data"]["clip_id"]: t["data"]["given_labels"] for t in tasks}
    other = {c: [next(k for k in CLASSES if [k] != given[c])] for c in clips}
    export = _export(tasks, {clips[0]: given[clips[0]], clips[1]: other[clips[1]], clips[2]: [], clips[3]: ["x"]})
    export[2]["annotations"][0]["result"].append({"from_name": "unsure", "to_name": "audio", "type": "choices",
                                                   "value": {"choices": ["unsure"]}})
    export[3]["annotations"][0].update(was_cancelled=True, result=[])  # skipped: says nothing
    assert _import(root, export, capsys) == (0, "")
    summary = json.loads((root / "audit-v1" / "summary.json").read_text())
    events = {e.clip_id: e for e in read_events(str(root / "store"))}
    assert set(events) == set(clips[:3])
    assert [(events[c].verdict, events[c].labels) for c in clips[:3]] == [
        ("correct", ()), ("wrong", tuple(other[clips[1]])), ("unsure", ())]
    assert [events[c].time.isoformat() for c in clips[:3]] == [
        f"2026-11-28T10:0{i}:00+00:00" for i in (1, 2, 3)]  # when each was last saved
    assert {(e.reviewer, e.origin, e.source, tuple(e.given) == tuple(given[e.clip_id])) for e in events.values()} == {
        ("ann@example.org", f"label-studio project 7: {summary['audit_id']}", "review", True)}
    shutil.rmtree(root / "store")


def _another_queue(export):
    export[1]["data"]["queue"] = "20261101T000000Z-other"


def _two_projects(export):
    export[2]["project"] = 8


def _unknown_class(export):
    export[0]["annotations"][0]["result"][0]["value"]["choices"] = ["chainsaw"]


def _clip_not_in_the_table(export):
    export[0]["data"]["clip_id"] = "forged-clip"


def _foreign_control(export):
    export[0]["annotations"][0]["result"][0]["from_name"] = "sentiment"


def _annotator_by_number(export):  # Label Studio's quick export, GET /api/projects/<id>/export
    export[1]["annotations"][0]["completed_by"] = 2


def _result_not_an_object(export):
    export[0]["annotations"][0]["result"][0] = "natural"


def _choices_not_names(export):
    export[1]["annotations"][0]["result"][0]["value"]["choices"] = [{"urban": 1}]


def _clip_not_named(export):
    export[2]["data"]["clip_id"] = ["c1"]


@pytest.mark.parametrize("spoil, said", [
    (_another_queue, "is of queue '20261101T000000Z-other', not"),
    (_two_projects, "tasks of 2 projects (7, 8)"),
    (_unknown_class, "chooses class 'chainsaw', not a class of the task (urban, natural)"),
    (_clip_not_in_the_table, "1 verdict(s) name clips that are not in the feature table"),
    (_foreign_control, "answers in a control 'sentiment' that the labelling config does not hold"),
    (_annotator_by_number, "names its annotator by 2, not an e-mail"),
    (_result_not_an_object, "a result of task 1: an object expected, got 'natural'"),
    (_choices_not_names, "the classes chosen in task 2: a list of names expected, got [{'urban': 1}]"),
    (_clip_not_named, "task 3 names no clip but ['c1']"),
])
def test_a_bad_export_is_refused_in_one_line_and_adds_nothing(world, capsys, spoil, said):
    root, truth = world
    tasks = _to_label_studio(root, capsys)
    good = _export(tasks, {t["data"]["clip_id"]: [truth[t["data"]["clip_id"]]] for t in tasks[:3]})
    assert _import(root, good, capsys) == (0, "")  # the export as Label Studio writes it goes in
    before = event_files(str(root / "store"))
    bad = copy.deepcopy(good)
    spoil(bad)
    code, err = _import(root, bad, capsys)
    assert code == 2 and said in err and "nothing was added" in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert event_files(str(root / "store")) == before
    shutil.rmtree(root / "store")


# ------------------------------------------------------------------ the real Label Studio


class LabelStudio:
    """A Label Studio server of this session: its URL, its admin's token, and the folder its local files lie in."""

    def __init__(self, url: str, token: str, files: Path) -> None:
        self.url, self.token, self.files = url, token, files

    def call(self, method: str, path: str, body: object = None, raw: bool = False) -> object:
        """One API request as the admin; the answer's JSON (``raw``: its bytes)."""
        req = urllib.request.Request(self.url + path, method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Authorization": f"Token {self.token}",
                                              "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                answer = r.read()
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"{method} {path}: {exc.code} {exc.read()[:500]!r}") from None
        return answer if raw else json.loads(answer or b"null")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def label_studio(tmp_path_factory) -> Iterator[LabelStudio]:
    """Label Studio from its PyPI package (``.venv-label-studio``), on a free loopback port, with a temporary data
    folder (a copy of the database ``make label-studio`` migrated, when there is one), an admin with an API token,
    and local files served from the session's temporary folder. One server a session: only this module starts it,
    and it ends after the module's last test (an idle server would wait for the session's end)."""
    binary = VENV / "bin" / "label-studio"
    require(binary.is_file(), f"Label Studio is not installed: {binary} is missing (make label-studio)")
    data = tmp_path_factory.mktemp("label-studio-data")
    if (TEMPLATE / "label_studio.sqlite3").is_file():
        shutil.copytree(TEMPLATE, data, dirs_exist_ok=True)
    port, token = _free_port(), secrets.token_hex(20)
    files = tmp_path_factory.getbasetemp()
    env = {**os.environ, "LATEST_VERSION_CHECK": "false", "COLLECT_ANALYTICS": "false",
           "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true", "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(files)}
    env.pop("HOST", None)
    log = open(data / "server.log", "w")
    proc = subprocess.Popen([str(binary), "start", "--no-browser", "--internal-host", "127.0.0.1", "--port", str(port),
                             "--data-dir", str(data), "--username", "reviewer@example.org",
                             "--password", secrets.token_hex(8), "--user-token", token, "--enable-legacy-api-token"],
                            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=data)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_S
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url + "/health", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(1)
        up = proc.poll() is None and time.monotonic() < deadline
        tail = (data / "server.log").read_text()[-1500:]
        require(up, f"Label Studio did not start within {START_S} s (exit {proc.poll()}): {tail}")
        yield LabelStudio(url, token, files)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _answer(ls: LabelStudio, task: dict, user: int, chosen: list[str] | None, *, unsure: bool = False,
            note: str = "", skip: bool = False) -> dict:
    """A reviewer's annotation of ``task`` as Label Studio's page posts it (the admin posts for ``user``)."""
    result = [] if chosen is None else [{"from_name": "label", "to_name": "audio", "type": "choices",
                                         "value": {"choices": chosen}}]
    if unsure:
        result.append({"from_name": "unsure", "to_name": "audio", "type": "choices", "value": {"choices": ["unsure"]}})
    if note:
        result.append({"from_name": "note", "to_name": "audio", "type": "textarea", "value": {"text": [note]}})
    return ls.call("POST", f"/api/tasks/{task['id']}/annotations/",  # type: ignore[return-value]
                   {"result": result, "was_cancelled": skip, "completed_by": user})


@pytest.mark.slow
@pytest.mark.integration
def test_the_label_studio_section_runs_as_written_against_a_real_label_studio(label_studio, world, monkeypatch,
                                                                              capsys):
    ls, (root, truth) = label_studio, world
    monkeypatch.chdir(root)
    commands = _shell_commands()
    assert [shlex.split(c)[1:3] for c in commands] == [
        ["labels", "to-label-studio"], ["labels", "from-label-studio"], ["labels", "apply"]]
    argv = shlex.split(commands[0])
    # the page's --audio-url is relative to the folder Label Studio was started from; this one's is the session's
    review = (root / "audit-v1" / "review").relative_to(ls.files)
    argv[argv.index("--audio-url") + 1] = f"/data/local-files/?d={review}/"
    assert main(argv[1:]) == 0, commands[0]

    project = ls.call("POST", "/api/projects", {"title": "audit-v1",
                                                "label_config": (root / "label-studio" / "config.xml").read_text()})
    ls.call("POST", "/api/storages/localfiles", {"project": project["id"], "title": "the audit's review page",
                                                 "path": str(root / "audit-v1" / "review"), "use_blob_urls": True})
    exported = json.loads((root / "label-studio" / "tasks.json").read_text())
    imported = ls.call("POST", f"/api/projects/{project['id']}/import", exported)
    assert imported["task_count"] == QUEUE and imported["prediction_count"] == 2 * QUEUE, imported
    tasks = ls.call("GET", f"/api/tasks?project={project['id']}&page_size=100")["tasks"]
    assert [t["data"]["clip_id"] for t in tasks] == [t["data"]["clip_id"] for t in exported]
    for task in tasks:  # the audio URL plays through Label Studio: the page's own Ogg of the clip
        audio = ls.call("GET", task["data"]["audio"], raw=True)
        assert audio == (root / "audit-v1" / "review" / task["data"]["audio"].split("review/", 1)[1]).read_bytes()

    ann = ls.call("POST", "/api/users/", {"email": "ann@example.org", "username": "ann",
                                          "password": secrets.token_hex(8)})
    admin = ls.call("GET", "/api/current-user/whoami")
    clip = {t["id"]: t["data"]["clip_id"] for t in tasks}
    given = {t["id"]: t["data"]["given_labels"] for t in tasks}
    first, unsure, skipped, conflict = tasks[0], tasks[1], tasks[2], tasks[3]
    for task in tasks[4:] + [first]:  # the reviewer answers from the truth
        _answer(ls, task, admin["id"], [truth[clip[task["id"]]]])
    _answer(ls, unsure, admin["id"], None, unsure=True, note="a chainsaw far off?")
    _answer(ls, skipped, admin["id"], None, skip=True)
    _answer(ls, conflict, admin["id"], [truth[clip[conflict["id"]]]])
    other = next(c for c in CLASSES if c != truth[clip[conflict["id"]]])
    _answer(ls, conflict, ann["id"], [other])  # ann hears it otherwise: a conflict
    _answer(ls, first, ann["id"], [truth[clip[first["id"]]]])  # and agrees on the first

    # Label Studio's quick export names annotators by number: refused, nothing added
    (root / "label-studio" / "quick.json").write_bytes(
        ls.call("GET", f"/api/projects/{project['id']}/export?exportType=JSON", raw=True))
    assert main(["labels", "from-label-studio", "--audit", "audit-v1", "--export", "label-studio/quick.json"]) == 2
    assert "not an e-mail" in capsys.readouterr().err and not event_files(str(root / "out" / "labels"))
    snapshot = ls.call("POST", f"/api/projects/{project['id']}/exports", {
        "title": "with annotators", "serialization_options": {"annotations__completed_by": {"only_id": False}}})
    for _ in range(120):
        if ls.call("GET", f"/api/projects/{project['id']}/exports/{snapshot['id']}")["status"] == "completed":
            break
        time.sleep(0.5)
    (root / "label-studio" / "export.json").write_bytes(ls.call(
        "GET", f"/api/projects/{project['id']}/exports/{snapshot['id']}/download?exportType=JSON", raw=True))
    export = json.loads((root / "label-studio" / "export.json").read_text())

    for command in commands[1:]:
        assert main(shlex.split(command)[1:]) == 0, command
    console = capsys.readouterr().out
    assert f"Label Studio project {project['id']}: {QUEUE + 1} verdicts added" in console, console
    assert "reviewers: ann@example.org, reviewer@example.org" in console

    audit_id = json.loads((root / "audit-v1" / "summary.json").read_text())["audit_id"]
    events = read_events(str(root / "out" / "labels"), "urban_natural")
    saved = {(a["completed_by"]["email"], t["data"]["clip_id"]): a["updated_at"]
             for t in export for a in t["annotations"] if not a["was_cancelled"]}
    assert {(e.reviewer, e.clip_id) for e in events} == set(saved)  # the skipped task said nothing
    for e in events:  # provenance: the annotator, the time they saved it, the project and the queue
        assert e.time.isoformat().replace("+00:00", "Z") == saved[e.reviewer, e.clip_id]
        assert e.origin == f"label-studio project {project['id']}: {audit_id}" and e.source == "review"
        expected = truth[e.clip_id] if e.reviewer == "reviewer@example.org" or e.clip_id != clip[conflict["id"]] \
            else other
        if e.clip_id == clip[unsure["id"]]:
            assert (e.verdict, e.note) == ("unsure", "a chainsaw far off?")
        elif [expected] == given[next(i for i, c in clip.items() if c == e.clip_id)]:
            assert e.verdict == "correct" and e.decision() == (expected,)
        else:
            assert e.verdict == "wrong" and e.labels == (expected,)

    with open(root / "corrected.csv") as fh:
        listed = {r.split(",")[0]: r.split(",")[1] for r in fh.read().splitlines()[1:]}
    answered = {c for _, c in saved} - {clip[unsure["id"]], clip[conflict["id"]]}
    assert {c: listed[c] for c in answered} == {c: truth[c] for c in answered}  # the flipped ones corrected
    assert clip[conflict["id"]] not in listed
    assert clip[conflict["id"]] in (root / "corrected.conflicts.csv").read_text()

    assert main(shlex.split(commands[1])[1:]) == 0  # the same export again adds nothing
    assert "0 verdicts added" in capsys.readouterr().out
