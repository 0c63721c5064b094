"""The runners (a command's config in, its job run) and the summary lines of ``labels add-verdicts``, ``apply``,
``show``, ``new-class``, ``to-label-studio`` and ``from-label-studio`` (their catalogue entries: ``jobs/catalog.py``): reviewers' verdicts into the label store,
the corrected list out, a new class from one example's search hits, and an audit's queue to Label Studio and back.
The store is :mod:`acoustic_env.labels`; nothing here starts Ray."""

from __future__ import annotations

from collections import Counter
from typing import Any

from acoustic_env.config import ConfigError
from acoustic_env.config.labelling import (AddVerdictsConfig, ApplyLabelsConfig, FromLabelStudioConfig,
                                           NewClassConfig, ShowLabelsConfig, ToLabelStudioConfig)
from acoustic_env.jobs.results import Done
from acoustic_env.storage import redact
from acoustic_env.vocabulary.tasks import escaped


def _store(cfg: Any) -> str:
    from acoustic_env.labels.store import default_store

    return cfg.store or default_store(cfg.features)


def _conflict_lines(conflicts: dict[str, list[Any]], shown: int = 5) -> list[str]:
    """The first ``shown`` conflicts, each reviewer's decision on one line (names escaped: a reviewer named with a
    newline or a terminal escape never forges a line)."""
    lines = []
    for clip_id, events in list(conflicts.items())[:shown]:
        lines.append(f"    {escaped(clip_id)}: " + "; ".join(
            f"{escaped(e.reviewer) or '(no reviewer)'} {e.verdict} -> {','.join(e.decision()) or '(no class)'}"
            for e in events))
    if len(conflicts) > shown:
        lines.append(f"    ... and {len(conflicts) - shown} more")
    return lines


def check_add_verdicts(cfg: AddVerdictsConfig) -> None:
    """The paths by their roles, and the store (given, or beside the table) one that can be written and is no
    table's parts folder (``preflight.check_store``)."""
    from acoustic_env.jobs.preflight import check_store, preflight

    preflight(cfg)
    check_store(_store(cfg))


def check_apply(cfg: ApplyLabelsConfig) -> None:
    """The paths by their roles, and the list and its conflicts file kept apart from the store read
    (``preflight.keep_apart``): written into the store, they would replace or join its events."""
    from acoustic_env.jobs.preflight import keep_apart, preflight
    from acoustic_env.labels.label_list import conflicts_uri

    preflight(cfg)
    keep_apart([("label store", _store(cfg))], [("output", cfg.output), ("output (its conflicts)",
                                                                        conflicts_uri(cfg.output))])


def add_verdicts(cfg: AddVerdictsConfig) -> Done:
    """The file's verdicts checked whole, and those that say something new (``current.unstated``: a file added
    again adds nothing) appended as one event file."""
    from acoustic_env.jobs.audit.estimate import read_verdicts
    from acoustic_env.labels.current import unstated
    from acoustic_env.labels.store import append, read_events
    from acoustic_env.labels.verdicts import table_clip_ids, verdict_events
    from acoustic_env.vocabulary.tasks import load_task

    store = _store(cfg)
    task = load_task(cfg.task, cfg.ontology)
    events = verdict_events(read_verdicts(cfg.verdicts), task, table_clip_ids(cfg.features), table=cfg.features,
                            reviewer=cfg.reviewer, origin=cfg.origin, source=cfg.source)
    new = unstated(events, read_events(store, task.name))
    return Done((new, len(events) - len(new), append(store, new)), cfg, store)


def add_verdicts_lines(done: Done) -> list[str]:
    events, repeated, written = done.result
    verdicts = Counter(e.verdict for e in events)
    again = f"; {repeated} repeat what the store holds already, not added again" if repeated else ""
    return [f"{len(events)} verdicts added ({', '.join(f'{k} {v}' for k, v in sorted(verdicts.items())) or 'none'}) "
            f"to the label store {done.store}" + (f": {written}" if written else "") + again]


def _events(cfg: ApplyLabelsConfig | ShowLabelsConfig) -> tuple[Any, str, list]:
    """(task, store, the store's events of the task) of ``apply`` and ``show``."""
    from acoustic_env.labels.store import read_events
    from acoustic_env.vocabulary.tasks import load_task

    task = load_task(cfg.task, cfg.ontology)
    store = _store(cfg)
    return task, store, read_events(store, task.name)


def apply(cfg: ApplyLabelsConfig) -> Done:
    from acoustic_env.labels.current import corrected
    from acoustic_env.labels.label_list import write_list

    task, store, events = _events(cfg)
    if not events:
        raise ConfigError(f"store: no label events of task {task.name} in {store} (add an audit review's verdicts "
                          "with `acoustic-env labels add-verdicts`)")
    current = corrected(events)
    return Done((task, current, write_list(current, cfg.output)), cfg, store)


def apply_lines(done: Done) -> list[str]:
    (task, current, conflicts), cfg = done.result, done.config
    reviewed = sum(d.reviewed for d in current.decisions.values())
    lines = [f"{len(current.decisions)} clips in the corrected list ({reviewed} decided by a reviewer) for task "
             f"{task.name}: {redact(cfg.output)}"]
    if current.conflicts:
        lines += [f"  {len(current.conflicts)} clips where reviewers disagree are left out of the list (they keep the "
                  f"table's labels until the reviewers agree): {redact(conflicts)}", *_conflict_lines(current.conflicts)]
    return [*lines, f"  use it: acoustic-env train|audit --features {redact(cfg.features)} --labels {redact(cfg.output)} ..."]


def show(cfg: ShowLabelsConfig) -> Done:
    from acoustic_env.labels.current import corrected
    from acoustic_env.labels.store import read_events

    task, store, events = _events(cfg)
    others = [] if events else sorted({escaped(e.task) for e in read_events(store)})  # what --task could have named
    return Done((task, events, corrected(events), others), cfg, store)


def show_lines(done: Done) -> list[str]:
    task, events, current, others = done.result
    by_source = Counter(e.source for e in events)
    reviewers = sorted({escaped(e.reviewer) for e in events if e.reviewer})
    lines = [f"label store {done.store}, task {task.name}: {len(events)} events "
             f"({', '.join(f'{k} {v}' for k, v in sorted(by_source.items())) or 'none'}) about "
             f"{len({e.clip_id for e in events})} clips; reviewers: {', '.join(reviewers) or 'none'}"]
    if not events:
        return lines + ([f"  the store holds events of other tasks: {', '.join(others)} (name one with --task)"]
                        if others else ["  the store holds no events yet (acoustic-env labels add-verdicts adds a "
                                        "review's)"])
    return lines + [f"  corrected list: {len(current.decisions)} clips "
                    f"({sum(d.reviewed for d in current.decisions.values())} decided by a reviewer); conflicts: "
                    f"{len(current.conflicts)}",
                    *(_conflict_lines(current.conflicts) if current.conflicts else ["  no conflicts"])]


def new_class(cfg: NewClassConfig) -> Done:
    from acoustic_env.jobs.new_class import run_round

    return Done(run_round(cfg), cfg)


def new_class_lines(done: Done) -> list[str]:
    r, cfg = done.result, done.config
    counts, ev = r.round.counts(), r.train.evaluation
    auc = r.train.metrics[ev["chosen"]]["roc_auc"]
    listed = counts["yes"] + counts["no"] + counts["random_negatives"]
    return [f"{r.added} verdicts added to the label store as {cfg.name} or {cfg.other} (source search, origin "
            f"search:{cfg.example})",
            f"  label list {r.label_list}: {counts['yes']} {cfg.name} (marked yes), {counts['no']} {cfg.other} "
            f"(marked no), {counts['random_negatives']} {cfg.other} drawn at random from the clips nobody judged "
            f"(seed {cfg.seed}; never a clip marked yes)"
            + (f"; {counts['conflicts']} clips where reviewers disagree left out" if counts["conflicts"] else ""),
            f"  model {r.train.model}: {ev['chosen']}, out-of-fold ROC AUC " + ("–" if auc is None else f"{auc:.3f}")
            + f" over the {listed} clips listed with a class",
            f"  next: {len(r.picks)} clips by {cfg.strategy} in {r.review}; write yes, no or unsure in its verdict "
            f"column, then: acoustic-env labels new-class --features {cfg.features} --name {cfg.name} "
            f"--example {cfg.example} --verdicts {r.review} --output <next round>"]


def to_label_studio(cfg: ToLabelStudioConfig) -> Done:
    """The review queue as ``<output>/tasks.json`` and the labelling config of its task as ``<output>/config.xml``:
    the audit's (the page's suspects in its review order, then the clips the review server added), or the new class
    round's (its ``review.csv``, yes or no)."""
    from acoustic_env.labels.label_studio import labelling_config
    from acoustic_env.storage import join, write_bytes, write_json

    queue, task, made, unreadable, classes, multi = (_audit_queue if cfg.audit else _class_queue)(cfg)
    write_json(made, join(cfg.output, "tasks.json"))
    write_bytes(labelling_config(classes, multi).encode(), join(cfg.output, "config.xml"))
    return Done((queue, task, len(made), unreadable), cfg)


def _audit_queue(cfg: ToLabelStudioConfig) -> tuple[str, str, list[dict[str, Any]], list[str], list[str], bool]:
    """(the queue, its task, the tasks, the clips left out, the classes, multi-label) of ``--audit``."""
    from acoustic_env.bounded import read_record
    from acoustic_env.jobs.audit.job import SUMMARY
    from acoustic_env.labels.label_studio import tasks
    from acoustic_env.pages.review import REVIEW_DIR, inlined_data, queued
    from acoustic_env.storage import join

    review_dir = join(cfg.audit, REVIEW_DIR)
    summary = read_record(join(cfg.audit, SUMMARY), "audit")
    made, unreadable = tasks([*inlined_data(review_dir)["suspects"], *queued(review_dir)],
                             queue=summary["audit_id"], audio_url=cfg.audio_url)
    task = summary["task"]
    return (f"audit {summary['audit_id']}", task["name"], made, unreadable, task["classes"],
            task["kind"] != "single_label")


def _class_queue(cfg: ToLabelStudioConfig) -> tuple[str, str, list[dict[str, Any]], list[str], list[str], bool]:
    """As :func:`_audit_queue`, of ``--new-class``: its ``review.csv``, the class named by its ``prob_<class>``
    column."""
    from acoustic_env.jobs.audit.estimate import read_verdict_text
    from acoustic_env.jobs.new_class import csv_rows
    from acoustic_env.labels.label_studio import ANSWERS, class_queue, class_tasks
    from acoustic_env.storage import join

    review = join(cfg.new_class, "review.csv")
    rows = csv_rows(read_verdict_text(review))
    names = [c[len("prob_"):] for c in (rows[0] if rows else {}) if c.startswith("prob_")]
    if len(names) != 1 or not {"clip_id", "uri", "reason"} <= set(rows[0]):
        raise ConfigError(f"new_class: {review} is not a new-class round's review.csv (clip_id, reason, uri and one "
                          "prob_<class> column); give the round's --output directory")
    for row in rows:
        row.update({k: float(row[k]) if row.get(k) else None for k in ("start_s", "end_s")})
    made, unplayable = class_tasks(rows, name=names[0], audio_url=cfg.audio_url)
    return class_queue(names[0]), names[0], made, unplayable, list(ANSWERS), False


def to_label_studio_lines(done: Done) -> list[str]:
    (queue, task, n, unreadable), cfg = done.result, done.config
    lines = [f"{n} tasks of {escaped(queue)}'s review queue (task {escaped(task)}) for Label Studio: "
             f"{redact(cfg.output)}/tasks.json, its labelling config {redact(cfg.output)}/config.xml"]
    if unreadable:
        why = "the review page could not read their audio" if cfg.audit else "review.csv names no file for them"
        lines.append(f"  {len(unreadable)} clips left out: {why} (e.g. {escaped(unreadable[0])})")
    back = (f"acoustic-env labels from-label-studio --audit {cfg.audit} --export <the export>" if cfg.audit else
            f"acoustic-env labels new-class ... --name {escaped(task)} --verdicts <the export> (the next round)")
    return [*lines, f"  then: create a project with config.xml, import tasks.json, review, export it as JSON, and "
                    f"{back}"]


def _audit_sink(audit: str, store: str | None) -> tuple[dict[str, Any], Any, str]:
    """(the audit's summary, its task, the label store: ``store`` or the one beside the audited table)."""
    from acoustic_env.bounded import read_record
    from acoustic_env.jobs.audit.job import SUMMARY
    from acoustic_env.labels.store import default_store
    from acoustic_env.storage import join
    from acoustic_env.vocabulary.tasks import load_task

    summary = read_record(join(audit, SUMMARY), "audit")
    config = summary["config"]
    return summary, load_task(config["task"], config.get("ontology")), store or default_store(config["features"])


def check_from_label_studio(cfg: FromLabelStudioConfig) -> None:
    """The paths by their roles, and the store (given, or beside the audited table) one that can be written."""
    from acoustic_env.jobs.preflight import check_store, preflight

    preflight(cfg)
    check_store(_audit_sink(cfg.audit, cfg.store)[2])


def from_label_studio(cfg: FromLabelStudioConfig) -> Done:
    """The export's annotations checked whole (``labels.label_studio.verdict_records``, then as ``add-verdicts``
    checks a file), and those that say something new appended to the store as one event file."""
    from acoustic_env.bounded import MAX_VERDICT_BYTES, read_bytes
    from acoustic_env.labels.current import unstated
    from acoustic_env.labels.label_studio import origin, parse_export, verdict_records
    from acoustic_env.labels.store import append, read_events
    from acoustic_env.labels.verdicts import table_clip_ids, verdict_events

    summary, task, store = _audit_sink(cfg.audit, cfg.store)
    table = summary["config"]["features"]
    export = parse_export(read_bytes(cfg.export, "export", MAX_VERDICT_BYTES, "a Label Studio export"), cfg.export)
    project, records = verdict_records(export, queue=summary["audit_id"], classes=task.class_names)
    events = verdict_events(records, task, table_clip_ids(table), table=table, reviewer=None,
                            origin=origin(project, summary["audit_id"]))
    new = unstated(events, read_events(store, task.name))
    return Done((project, new, len(events) - len(new), append(store, new), table), cfg, store)


def from_label_studio_lines(done: Done) -> list[str]:
    project, events, repeated, written, table = done.result
    head = add_verdicts_lines(Done((events, repeated, written), done.config, done.store))
    reviewers = sorted({escaped(e.reviewer) for e in events})
    return [f"Label Studio project {project}: " + head[0],
            f"  reviewers: {', '.join(reviewers) or 'none'}; then: acoustic-env labels apply --features {table} "
            "--output corrected.csv"]
