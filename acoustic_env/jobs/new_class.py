"""``acoustic-env labels new-class``: one round of the new-class loop (``labels/new_class.py`` says what a round
is): the answers read and appended to the label store, the round's label list, the train job on it, and the next
clips to judge. The job around ``labels/new_class.py``'s plain functions.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np
import pyarrow as pa

from acoustic_env.config import ConfigError
from acoustic_env.csv_writer import restore_cell
from acoustic_env.labels.new_class import (ANSWERS, Round, answer_events, next_review, round_list, task_of,
                                           train_fields)
from acoustic_env.labels.store import Event
from acoustic_env.storage import filesystem, join
from acoustic_env.vocabulary.tasks import Task


def csv_rows(text: str) -> list[dict[str, Any]]:
    """The rows of a CSV text (``,``, ``;`` or tab, whichever its header holds most of), each cell as the CSV writer
    had it (``review.csv``, ``search --save``)."""
    return [{k: restore_cell(v) if isinstance(v, str) else v for k, v in r.items()}
            for r in csv.DictReader(io.StringIO(text), delimiter=max(",;\t", key=text.split("\n", 1)[0].count))]


def read_answers(uris: Iterable[str], name: str) -> list[dict[str, str]]:
    """The judged rows of answer files about the class ``name`` (CSV, as ``search --save`` and ``review.csv`` write
    them with a filled ``verdict`` column; a JSON list of objects; or Label Studio's JSON export of
    ``labels to-label-studio --new-class``'s tasks: ``label_studio.answer_rows``): clip_id, answer (yes, no,
    unsure), reviewer, time, note.

    A row whose verdict is empty is skipped (not judged yet); any other word stops with one line.
    """
    from acoustic_env.jobs.audit.estimate import load_json, read_verdict_text
    from acoustic_env.labels.label_studio import answer_rows

    out = []
    for uri in uris:
        text = read_verdict_text(uri)
        if text.lstrip().startswith("["):
            try:
                tasks = json.loads(text)  # Label Studio's tasks nest deeper than an answer file may (load_json)
            except (ValueError, RecursionError):
                tasks = None
            if isinstance(tasks, list) and tasks and isinstance(tasks[0], dict) and "annotations" in tasks[0]:
                rows = answer_rows(tasks, name=name)
            else:
                rows = load_json(text, uri)
        else:
            rows = csv_rows(text)
            if rows and "verdict" not in rows[0]:
                raise ConfigError(f"verdicts: {uri} has no 'verdict' column (columns: {', '.join(rows[0])}); add "
                                  "one and write yes, no or unsure in it")
        for row in rows:
            if not isinstance(row, dict) or not str(row.get("clip_id") or "").strip():
                raise ConfigError(f"verdicts: every row of {uri} needs a clip_id, got {row!r}")
            word = str(row.get("verdict") or "").strip().lower()
            if not word:
                continue
            if word not in ANSWERS:
                raise ConfigError(f"verdicts: {uri} answers {row.get('verdict')!r} for clip {row['clip_id']}; "
                                  "write yes, no or unsure")
            out.append({"clip_id": str(row["clip_id"]).strip(), "answer": ANSWERS[word],
                        "reviewer": str(row.get("reviewer") or ""), "time": str(row.get("time") or ""),
                        "note": str(row.get("note") or "")})
    return out


def check_example(example: str, clip_ids: set[str], table: str) -> None:
    """The example a round names (the origin of every verdict it stores) is a clip of the table or an audio file
    that is there: a word that is neither would be recorded as ``search:<word>``, an origin nobody can trace."""
    if example in clip_ids:
        return
    fs, path = filesystem(example)
    if not fs.isfile(path):
        raise ConfigError(f"example: {example[:80]!r} is neither a clip of the feature table {table} nor an audio "
                          "file; give the clip id or the file the search started from")


@dataclass(frozen=True)
class RoundResult:
    """What one round wrote: the events added, the label list, the train run, the next clips to judge."""

    added: int
    round: Round
    label_list: str
    train: Any  # jobs.results.TrainResult
    review: str
    picks: list[tuple[str, str]]


@dataclass(frozen=True)
class Ready:
    """A round up to its train run (:func:`prepare_round`): what :func:`pick_next` needs afterwards, and the train
    job's config."""

    task: Task
    facts: pa.Table  # the table's clip facts, for review.csv's rows
    history: list[Event]  # every event of the task in the store, this round's answers with them
    round: Round
    added: int  # the events this round added to the store
    label_list: str
    train: Any  # config.TrainConfig: the train job on ``label_list``


def prepare_round(cfg: Any) -> Ready:
    """A round's steps before its train run, for a ``NewClassConfig``: the checks, the answers appended to the
    label store (once: answers without times that the store holds already are not added again when a round is
    rerun), the round's label list written to ``labels.csv`` under ``cfg.output``, and the train job's config.

    Apart from :func:`run_round` so that what a round reads, stores and lists is tested without a train run.
    """
    from acoustic_env.config import TrainConfig, from_dict, load_config_file
    from acoustic_env.jobs.preflight import check_store, keep_apart, preflight
    from acoustic_env.labels.current import unstated
    from acoustic_env.labels.label_list import write_list
    from acoustic_env.labels.store import append, default_store, read_events
    from acoustic_env.table import selection
    from acoustic_env.vocabulary.tasks import load_task

    preflight(cfg)
    task = load_task(task_of(cfg.name, cfg.other))
    store = cfg.store or default_store(cfg.features)
    check_store(store)
    keep_apart([("label store", store)], [("output", cfg.output)])
    facts = selection(cfg.features).facts
    ids = facts["clip_id"].to_pylist()
    check_example(cfg.example, set(ids), cfg.features)
    events = answer_events(read_answers(cfg.verdicts, cfg.name), task, set(ids), table=cfg.features, reviewer=cfg.reviewer,
                           example=cfg.example)
    events = unstated(events, read_events(store, task.name))  # answers without times, added again: once
    append(store, events)
    history = read_events(store, task.name)
    rnd = round_list(history, ids, task, cfg.negatives, cfg.seed)
    fields = train_fields(len(rnd.positives), load_config_file(cfg.train_config) if cfg.train_config else None)
    listed = join(cfg.output, "labels.csv")
    write_list(rnd.listed, listed)
    train = from_dict(TrainConfig, {"features": cfg.features, "output": join(cfg.output, "train"), "seed": cfg.seed,
                                    **fields, "task": task.name, "labels": listed})
    return Ready(task, facts, history, rnd, len(events), listed, train)


def pick_next(cfg: Any, ready: Ready, model: Any) -> tuple[str, list[tuple[str, str]]]:
    """A round's last step: the round's ``model`` (an ``artifact.Model``) scores the table, and ``next_review``
    picks the next ``cfg.batch`` clips to judge by ``cfg.strategy``; their rows go to ``review.csv`` under
    ``cfg.output``. Returns its URI and the picks, (clip id, why)."""
    from acoustic_env.jobs.export import write_table

    data = model.read_features(cfg.features)
    picks, rows = next_review(ready.history, ready.round, ready.task, model.predict_proba(data),
                              np.hstack(list(model.matrices(data).values())), data.ids.tolist(), ready.facts,
                              cfg.strategy, cfg.batch, cfg.seed)
    review = join(cfg.output, "review.csv")
    write_table(rows, review)
    return review, picks


def run_round(cfg: Any) -> RoundResult:
    """One round of the loop (the module docstring) for a ``NewClassConfig``: answers into the store, the list,
    the train job, the next clips to judge under ``cfg.output``.

    Only the whole train run reaches these lines (tests/test_new_class.py, slow): their parts are tested on their
    own (:func:`prepare_round`, :func:`pick_next`), and ``make mutate`` leaves the glue alone.
    """
    from acoustic_env.jobs.train.job import train
    from acoustic_env.learn.artifact import load_model

    ready = prepare_round(cfg)  # pragma: no mutate
    result = train(ready.train)  # pragma: no mutate
    review, picks = pick_next(cfg, ready, load_model(result.model))  # pragma: no mutate
    return RoundResult(ready.added, ready.round, ready.label_list, result, review, picks)  # pragma: no mutate
