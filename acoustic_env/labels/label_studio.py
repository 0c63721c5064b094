"""A review queue as Label Studio tasks, and Label Studio's JSON export back as label store verdicts.

Label Studio is a review tool many annotation teams already run. The round trip
(``labels to-label-studio``, then ``labels from-label-studio``):

1. :func:`labelling_config` writes the project's labelling config (XML): the clip's audio, one choice per class of
   the task (one or several: a multi-label task), an ``unsure`` box and a note. Class names are XML attribute values
   written by ElementTree, so a class named ``a"b`` or ``<x>`` stays a name.
2. :func:`tasks` turns the queue's clips into tasks: ``data`` holds the clip's audio URL, its segment
   (``start_s``, ``end_s``), the given and suggested labels, why the queue picked it and the queue's id (the
   audit's id: what ties the task to this queue); ``predictions`` hold the given labels (model version
   :data:`GIVEN_VERSION`) and the audit's suggestion (``audit <id>``, scored by the given labels' quality) as
   pre-annotations, so a reviewer who agrees with one submits it as is.
3. :func:`verdict_records` reads the JSON export back: each submitted annotation (a skipped one is left out) is one
   verdict, by the annotator (their e-mail: an export that names them by number alone is refused), at the time they
   last saved it, ``correct`` when the classes chosen are the given ones, ``wrong`` with the chosen classes
   otherwise, ``unsure`` when the box is ticked or no class is chosen. The origin of each is the Label Studio
   project and the queue (:func:`origin`).

A new class's review queue (``labels new-class``'s ``review.csv``) makes the same trip with yes and no for choices
(:data:`ANSWERS`): :func:`class_tasks` (each clip's own audio file, the round's model's guess as the
pre-annotation), and :func:`answer_rows` reads the export back as the answers a round reads from ``review.csv``
(``labels new-class --verdicts <the export>``).

An export is refused whole, in one line, before anything is written: a task of another queue (another audit's, or
not made by :func:`tasks`), tasks of two Label Studio projects, a class the task does not have, an answer in a
control the config does not hold, an annotator known by number alone; the clips are checked against the table by
:func:`acoustic_env.labels.verdicts.verdict_events`. Plain data in, plain data out: no HTTP, no files.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any, Sequence

from acoustic_env.bounded import shown
from acoustic_env.config import ConfigError

#: The names of the labelling config's controls (``from_name`` in an annotation's result) and of its audio object.
AUDIO, LABEL, UNSURE, NOTE = "audio", "label", "unsure", "note"
#: The model version of the pre-annotation that holds the given labels.
GIVEN_VERSION = "given labels"
#: The choices of a new class's queue: the answers ``review.csv`` takes (unsure is the box, as for an audit's).
ANSWERS = ("yes", "no")


def labelling_config(classes: Sequence[str], multi_label: bool) -> str:
    """The labelling config (Label Studio's XML) of a task with ``classes``: audio, the classes, unsure, a note."""
    view = ET.Element("View")
    ET.SubElement(view, "Header", value="$summary")
    ET.SubElement(view, "Text", name="segment", value="$segment")
    ET.SubElement(view, "Audio", name=AUDIO, value=f"${AUDIO}")
    choices = ET.SubElement(view, "Choices", name=LABEL, toName=AUDIO, showInline="true",
                            choice="multiple" if multi_label else "single-radio")
    for name in classes:
        ET.SubElement(choices, "Choice", value=name)
    unsure = ET.SubElement(view, "Choices", name=UNSURE, toName=AUDIO, choice="multiple")
    ET.SubElement(unsure, "Choice", value=UNSURE)
    ET.SubElement(view, "TextArea", name=NOTE, toName=AUDIO, maxSubmissions="1", editable="true",
                  placeholder="note (optional)")
    return ET.tostring(view, encoding="unicode")


def _choices(classes: Sequence[str]) -> list[dict[str, Any]]:
    """An annotation result choosing ``classes`` in the :data:`LABEL` control."""
    return [{"from_name": LABEL, "to_name": AUDIO, "type": "choices", "value": {"choices": list(classes)}}]


def _segment(start: float | None, end: float | None) -> str:
    """The clip's segment of its file, as the task shows it."""
    if start is None and end is None:
        return "the whole file"
    return f"{start or 0:g} s to " + ("the end" if end is None else f"{end:g} s")


def tasks(items: Sequence[dict[str, Any]], *, queue: str, audio_url: str) -> tuple[list[dict[str, Any]], list[str]]:
    """Label Studio tasks of the review queue's ``items`` (the review page's clips, in the queue's order) and the
    clips left out because the page could not read their audio (no URL to give).

    Args:
        items: the page's clip items: ``clip_id``, ``audio`` (its Ogg, relative to the review folder), ``start_s``,
            ``end_s``, ``given``, ``suggested``, ``quality``, ``reason``.
        queue: the queue's id (the audit's id), kept in every task's data: the import checks it.
        audio_url: the URL of the review folder as the reviewer's browser reaches it (each clip's URL is it followed
            by the clip's ``audio`` path).
    """
    out, unreadable = [], []
    for item in items:
        if not item.get("audio"):
            unreadable.append(item["clip_id"])
            continue
        start, end = item.get("start_s"), item.get("end_s")
        given, suggested = "; ".join(item["given"]) or "(none)", "; ".join(item["suggested"]) or "(none)"
        data = {AUDIO: audio_url + item["audio"], "clip_id": item["clip_id"], "start_s": start, "end_s": end,
                "segment": f"{item['clip_id']}: " + _segment(start, end),
                "given_labels": list(item["given"]), "suggested_labels": list(item["suggested"]),
                "summary": f"Given: {given}; the audit suggests: {suggested} ({item.get('reason', 'random sample')})",
                "queue": queue}
        out.append({"data": data, "predictions": [
            {"model_version": GIVEN_VERSION, "result": _choices(item["given"])},
            {"model_version": f"audit {queue}", "score": item["quality"], "result": _choices(item["suggested"])}]})
    return out, unreadable


def class_queue(name: str) -> str:
    """The queue id of the new class ``name``'s review queue: what ties its tasks to the class."""
    return f"new class {name}"


def _file_url(uri: str, audio_url: str) -> str:
    """A clip's audio file as the reviewer's browser reaches it: an http(s) file as it is, else ``audio_url``
    followed by its path without scheme and leading ``/`` (Label Studio's local files:
    ``/data/local-files/?d=`` with ``LOCAL_FILES_DOCUMENT_ROOT=/``)."""
    if uri.startswith(("http://", "https://")):
        return uri
    return audio_url + uri.split("://", 1)[-1].lstrip("/")


def class_tasks(rows: Sequence[dict[str, Any]], *, name: str, audio_url: str
                ) -> tuple[list[dict[str, Any]], list[str]]:
    """Label Studio tasks of the new class ``name``'s review queue (``review.csv``'s rows, in its order: ``clip_id``,
    ``uri``, ``start_s``, ``end_s``, ``reason``, ``prob_<name>``) and the clips left out, whose row names no file.
    Each task asks yes or no (:data:`ANSWERS`) of the clip's own file (:func:`_file_url`), the round's model's
    guess (yes from a probability of 0.5) its pre-annotation, scored by the probability."""
    out, unplayable = [], []
    for row in rows:
        if not row.get("uri"):
            unplayable.append(row["clip_id"])
            continue
        start, end, prob = row.get("start_s"), row.get("end_s"), float(row[f"prob_{name}"])
        data = {AUDIO: _file_url(row["uri"], audio_url), "clip_id": row["clip_id"], "start_s": start, "end_s": end,
                "segment": f"{row['clip_id']}: " + _segment(start, end),
                "summary": f"Is it {name}? The round's model says {prob:.2f} ({row.get('reason') or 'picked'})",
                "queue": class_queue(name)}
        out.append({"data": data, "predictions": [{"model_version": class_queue(name), "score": prob,
                                                   "result": _choices([ANSWERS[0] if prob >= 0.5 else ANSWERS[1]])}]})
    return out, unplayable


def origin(project: Any, queue: str) -> str:
    """The origin of a verdict imported from Label Studio: its project and the queue its task came from."""
    return f"label-studio project {project}: {queue}"


def _annotator(task: str, annotation: dict[str, Any]) -> str:
    """Who submitted ``annotation``: their e-mail, as an export with the annotators' details gives it, or ConfigError.

    The quick export (``GET /api/projects/<id>/export``) names the annotator by a number that means nothing outside
    that server, so it is refused: a verdict is told apart from another reviewer's by who gave it.
    """
    who = annotation.get("completed_by")
    email = who.get("email") if isinstance(who, dict) else None
    if not isinstance(email, str) or not email:
        raise ConfigError(f"label-studio: {task}'s annotation names its annotator by {shown(who)}, not an "
                          "e-mail: export with the annotators' details (POST /api/projects/<id>/exports with "
                          '{"serialization_options": {"annotations__completed_by": {"only_id": false}}}); nothing '
                          "was added")
    return email


def _object(value: Any, what: str) -> dict[str, Any]:
    """``value`` when it is a JSON object, else ConfigError naming ``what``."""
    if not isinstance(value, dict):
        raise ConfigError(f"label-studio: {what}: an object expected, got {shown(value)}; nothing was added")
    return value


def _strings(value: Any, what: str) -> list[str]:
    """``value`` when it is a list of strings (JSON's null: none), else ConfigError naming ``what``."""
    value = [] if value is None else value
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"label-studio: {what}: a list of names expected, got {shown(value)}; nothing was added")
    return value


def _answer(task: str, annotation: dict[str, Any], classes: Sequence[str]) -> tuple[list[str], bool, str]:
    """(the classes chosen, unsure ticked, the note) of one annotation of ``task`` (its name in an error line), or
    ConfigError naming what is foreign."""
    chosen: list[str] = []
    unsure, note = False, ""
    results = annotation.get("result")
    for result in results if isinstance(results, list) else [results] if results else []:
        result = _object(result, f"a result of {task}")
        name, value = result.get("from_name"), _object(result.get("value") or {}, f"a result's value of {task}")
        if name == LABEL:
            chosen += _strings(value.get("choices"), f"the classes chosen in {task}")
        elif name == UNSURE:
            unsure = UNSURE in _strings(value.get("choices"), f"the unsure box of {task}")
        elif name == NOTE:
            note = " ".join(_strings(value.get("text"), f"the note of {task}"))
        else:
            raise ConfigError(f"label-studio: {task} answers in a control {shown(name)} that the labelling "
                              f"config does not hold (another project's export?); nothing was added")
    for name in chosen:
        if name not in classes:
            raise ConfigError(f"label-studio: {task} chooses class {shown(name)}, not a class of the task "
                              f"({', '.join(classes)}); nothing was added")
    return chosen, unsure, note


def parse_export(data: bytes, name: str) -> Any:
    """The JSON of an export file, or ConfigError naming ``name``: not JSON, or nested past Python's reader (an
    export nests ten levels deep: tasks, annotations, results, values, choices)."""
    try:
        return json.loads(data)
    except RecursionError:
        raise ConfigError(f"export: {name} nests too deep to be a Label Studio export") from None
    except ValueError as exc:
        raise ConfigError(f"export: {name} is not JSON ({shown(str(exc), bare=True)})") from None


def verdict_records(export: Any, *, queue: str, classes: Sequence[str]) -> tuple[Any, list[dict[str, Any]]]:
    """(the Label Studio project, the verdict records) of a JSON export of tasks made by :func:`tasks` for ``queue``.

    The records are those ``estimate.normalize_verdict`` makes (``clip_id``, ``given_labels``, ``verdict``,
    ``corrected_label``, ``reviewer``, ``time``, ``note``, ``audit_id``), for
    :func:`acoustic_env.labels.verdicts.verdict_events`.

    Raises:
        ConfigError: one line naming the task and what is wrong (see the module docstring); nothing is returned.
    """
    records = []
    for data, given, answers in _submitted(export, queue, classes, given=True):
        for chosen, unsure, note, reviewer, time in answers:
            verdict = ("unsure" if unsure or not chosen else "correct" if sorted(chosen) == sorted(given)
                       else "wrong")
            records.append({"clip_id": data["clip_id"], "given_labels": given, "verdict": verdict,
                            "corrected_label": chosen if verdict == "wrong" else [], "reviewer": reviewer,
                            "time": time, "note": note, "audit_id": queue})
    return (export[0].get("project") if export else None), records


def answer_rows(export: Any, *, name: str) -> list[dict[str, str]]:
    """The answers of a JSON export of :func:`class_tasks`'s tasks for the new class ``name``, as a round reads
    ``review.csv``'s rows: ``clip_id``, ``verdict`` (yes, no, or unsure: the box ticked or no choice), ``reviewer``
    (the annotator's e-mail), ``time``, ``note``; refused in one line as :func:`verdict_records` refuses."""
    return [{"clip_id": data["clip_id"], "verdict": "unsure" if unsure or not chosen else chosen[0],
             "reviewer": reviewer, "time": time, "note": note}
            for data, _, answers in _submitted(export, class_queue(name), ANSWERS, given=False)
            for chosen, unsure, note, reviewer, time in answers]


Answer = tuple[list[str], bool, str, str, str]


def _submitted(export: Any, queue: str, classes: Sequence[str], given: bool
               ) -> Iterator[tuple[dict[str, Any], list[str], list[Answer]]]:
    """Each task of an export of ``queue``'s tasks: its data, its given labels (``given``: read, else none) and its
    submitted annotations, each (classes chosen, unsure, note, annotator, time); or ConfigError, one line naming the
    task and what is foreign (the module docstring)."""
    if not isinstance(export, list) or not all(isinstance(t, dict) for t in export):
        raise ConfigError("label-studio: the export is not Label Studio's JSON export (a list of tasks); export the "
                          "project as JSON")
    projects = sorted({shown(t.get("project")) for t in export})
    if len(projects) > 1:
        raise ConfigError(f"label-studio: the export holds tasks of {len(projects)} projects ({', '.join(projects)}); "
                          "export one project; nothing was added")
    for task in export:
        name = f"task {shown(task.get('id'))}"
        data = _object(task.get("data"), f"the data of {name}")
        if data.get("queue") != queue:
            raise ConfigError(f"label-studio: {name} ({shown(data.get('clip_id'), bare=True)}) is of queue "
                              f"{shown(data.get('queue'))}, not {shown(queue)}: another project's tasks; nothing was "
                              "added")
        labels = _strings(data.get("given_labels"), f"the given labels of {name}") if given else []
        if not isinstance(data.get("clip_id"), str):
            raise ConfigError(f"label-studio: {name} names no clip but {shown(data.get('clip_id'))}; nothing was added")
        answers = []
        for annotation in task.get("annotations") or []:
            annotation = _object(annotation, f"an annotation of {name}")
            if annotation.get("was_cancelled"):
                continue  # skipped: the reviewer said nothing
            chosen, unsure, note = _answer(name, annotation, classes)
            answers.append((chosen, unsure, note, _annotator(name, annotation),
                            str(annotation.get("updated_at") or annotation.get("created_at") or "")))
        yield data, labels, answers
