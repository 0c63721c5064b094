"""``acoustic-env labels add-verdicts|apply|show|new-class``: reviewers' verdicts into the label store, the corrected
list out, and a new class from one example's search hits.

The flags come from the configs' declarations (:mod:`acoustic_env.config.labelling`); a bad
path, flag or verdict ends in one line naming it (the command's error policy in
:mod:`acoustic_env.cli`). The store is :mod:`acoustic_env.labels`; nothing here starts Ray.
"""

from __future__ import annotations

import argparse
from collections import Counter
from typing import Any

from acoustic_env.config import ConfigError, from_args
from acoustic_env.config.flags import add_config_commands
from acoustic_env.config.labelling import AddVerdictsConfig, ApplyLabelsConfig, NewClassConfig, ShowLabelsConfig



def _say(text: str) -> None:
    """Print a line that may quote a URI (the table, the store): never its credentials (``storage.redact``)."""
    from acoustic_env.storage import redact

    print(redact(text))

def _store(cfg: Any) -> str:
    from acoustic_env.labels.store import default_store

    return cfg.store or default_store(cfg.features)


def _conflict_lines(conflicts: dict[str, list[Any]], shown: int = 5) -> list[str]:
    """The first ``shown`` conflicts, each reviewer's decision on one line."""
    lines = []
    for clip_id, events in list(conflicts.items())[:shown]:
        lines.append(f"    {clip_id}: " + "; ".join(f"{e.reviewer or '(no reviewer)'} {e.verdict} -> "
                                               f"{','.join(e.decision()) or '(no class)'}" for e in events))
    if len(conflicts) > shown:
        lines.append(f"    ... and {len(conflicts) - shown} more")
    return lines


def cmd_add_verdicts(args: argparse.Namespace) -> int:
    from acoustic_env.jobs.audit.estimate import read_verdicts
    from acoustic_env.jobs.preflight import check_output, preflight
    from acoustic_env.labels.store import append
    from acoustic_env.labels.verdicts import table_clip_ids, verdict_events
    from acoustic_env.vocabulary.tasks import load_task

    cfg = from_args(AddVerdictsConfig, args)
    preflight(cfg)
    store = _store(cfg)
    check_output(store, "store")
    task = load_task(cfg.task, cfg.ontology)
    events = verdict_events(read_verdicts(cfg.verdicts), task, table_clip_ids(cfg.features), table=cfg.features,
                            reviewer=cfg.reviewer, origin=cfg.origin, source=cfg.source)
    written = append(store, events)
    verdicts = Counter(e.verdict for e in events)
    _say(f"{len(events)} verdicts added ({', '.join(f'{k} {v}' for k, v in sorted(verdicts.items())) or 'none'}) "
          f"to the label store {store}" + (f": {written}" if written else ""))
    return 0


def _events(cls: type[ApplyLabelsConfig | ShowLabelsConfig], args: argparse.Namespace) -> tuple[Any, Any, str, list]:
    """(config, task, store, the store's events of the task) of ``apply`` and ``show``, paths checked first."""
    from acoustic_env.jobs.preflight import preflight
    from acoustic_env.labels.store import read_events
    from acoustic_env.vocabulary.tasks import load_task

    cfg = from_args(cls, args)
    preflight(cfg)
    task = load_task(cfg.task, cfg.ontology)
    store = _store(cfg)
    return cfg, task, store, read_events(store, task.name)


def cmd_apply(args: argparse.Namespace) -> int:
    from acoustic_env.labels.current import corrected
    from acoustic_env.labels.label_list import write_list

    cfg, task, store, events = _events(ApplyLabelsConfig, args)
    if not events:
        raise ConfigError(f"store: no label events of task {task.name} in {store} (add an audit review's verdicts "
                          "with `acoustic-env labels add-verdicts`)")
    current = corrected(events)
    conflicts = write_list(current, cfg.output)
    reviewed = sum(d.reviewed for d in current.decisions.values())
    _say(f"{len(current.decisions)} clips in the corrected list ({reviewed} decided by a reviewer) for task "
          f"{task.name}: {cfg.output}")
    if current.conflicts:
        _say(f"  {len(current.conflicts)} clips where reviewers disagree are left out of the list (they keep the "
              f"table's labels until the reviewers agree): {conflicts}")
        _say("\n".join(_conflict_lines(current.conflicts)))
    _say(f"  use it: acoustic-env train|audit --features {cfg.features} --labels {cfg.output} ...")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from acoustic_env.labels.current import corrected

    _, task, store, events = _events(ShowLabelsConfig, args)
    current = corrected(events)
    by_source = Counter(e.source for e in events)
    reviewers = sorted({e.reviewer for e in events if e.reviewer})
    _say(f"label store {store}, task {task.name}: {len(events)} events "
          f"({', '.join(f'{k} {v}' for k, v in sorted(by_source.items())) or 'none'}) about "
          f"{len({e.clip_id for e in events})} clips; reviewers: {', '.join(reviewers) or 'none'}")
    _say(f"  corrected list: {len(current.decisions)} clips ({sum(d.reviewed for d in current.decisions.values())} "
          f"decided by a reviewer); conflicts: {len(current.conflicts)}")
    _say("\n".join(_conflict_lines(current.conflicts)) if current.conflicts else "  no conflicts")
    return 0


def cmd_new_class(args: argparse.Namespace) -> int:
    from acoustic_env.jobs.new_class import run_round

    cfg = from_args(NewClassConfig, args)
    done = run_round(cfg)
    counts, ev = done.round.counts(), done.train.evaluation
    auc = done.train.metrics[ev["chosen"]]["roc_auc"]
    _say(f"{done.added} verdicts added to the label store as {cfg.name} or {cfg.other} (source search, origin "
          f"search:{cfg.example})")
    _say(f"  label list {done.label_list}: {counts['yes']} {cfg.name} (marked yes), {counts['no']} {cfg.other} "
          f"(marked no), {counts['random_negatives']} {cfg.other} drawn at random from the clips nobody judged "
          f"(seed {cfg.seed}; never a clip marked yes)"
          + (f"; {counts['conflicts']} clips where reviewers disagree left out" if counts["conflicts"] else ""))
    _say(f"  model {done.train.model}: {ev['chosen']}, out-of-fold ROC AUC "
          + ("–" if auc is None else f"{auc:.3f}")
          + f" over the {counts['yes'] + counts['no'] + counts['random_negatives']} clips listed with a class")
    _say(f"  next: {len(done.picks)} clips by {cfg.strategy} in {done.review}; write yes, no or unsure in its "
          f"verdict column, then: acoustic-env labels new-class --features {cfg.features} --name {cfg.name} "
          f"--example {cfg.example} --verdicts {done.review} --output <next round>")
    return 0


def add_labels_parser(sub: Any) -> None:
    """Add ``labels`` with its ``add-verdicts``, ``apply``, ``show`` and ``new-class`` sub-commands to the command's sub-parsers."""
    p = sub.add_parser("labels", help="keep reviewers' verdicts in a label store beside the feature table, and write "
                                      "the corrected label list that train, audit and annotate take (--labels)")
    commands = p.add_subparsers(dest="labels_command", required=True)
    add_config_commands(commands, (
        ("add-verdicts", AddVerdictsConfig, cmd_add_verdicts,
         "append an audit review's verdicts (verdicts.json or CSV) to the label store, with their reviewer and "
         "origin; a verdict about a clip the table does not hold refuses the whole file"),
        ("apply", ApplyLabelsConfig, cmd_apply,
         "write the corrected label list (CSV): per clip the latest reviewed labels, else the given ones; clips "
         "where reviewers disagree are listed in <name>.conflicts.csv, not in the list"),
        ("show", ShowLabelsConfig, cmd_show, "count the store's events by source, and show the conflicts"),
        ("new-class", NewClassConfig, cmd_new_class,
         "one round of a new class from one example: the yes/no answers to search hits go to the label store, a "
         "model trains on them with random negatives, and the next clips to judge are written"),
    ))
