"""The current corrected label list, computed from a store's events; conflicts between reviewers shown, not resolved.

Per clip:

1. each reviewer's latest verdict counts (a reviewer who changes their mind replaces their
   own verdict; ``unsure`` withdraws it). If the reviewers who decided something disagree,
   the clip is a **conflict**: it is left out of the list (so it keeps its table's label
   wherever the list is applied), and each reviewer's decision is listed in the conflicts.
   It stops being one when they agree (a new verdict by one of them).
2. else, the latest of the given or imported labels, if the store holds any;
3. else the clip is not in the list.

A ``wrong`` verdict without the right class decides "none of the task's classes": the clip is
listed with no label, so that train and audit leave it out instead of learning a label known
to be wrong.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import datetime, timezone

from acoustic_env.labels.store import REVIEWED_SOURCES, Event

#: The one time events are compared at by :func:`unstated`.
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Decision:
    """A clip's labels in the corrected list, and the event they come from."""

    clip_id: str
    labels: tuple[str, ...]
    event: Event

    @property
    def reviewed(self) -> bool:
        return self.event.source in REVIEWED_SOURCES


@dataclass(frozen=True)
class Corrected:
    """The corrected list (one decision per clip, by clip id) and the conflicts (each reviewer's latest event on
    every clip they disagree about)."""

    decisions: dict[str, Decision]
    conflicts: dict[str, list[Event]]


def corrected(events: list[Event]) -> Corrected:
    """The list and the conflicts of ``events`` (in time order, as ``store.read_events`` returns them)."""
    by_clip: dict[str, list[Event]] = defaultdict(list)
    for e in events:
        by_clip[e.clip_id].append(e)
    decisions: dict[str, Decision] = {}
    conflicts: dict[str, list[Event]] = {}
    for clip_id, clip_events in by_clip.items():
        latest: dict[str, Event] = {}
        for e in clip_events:
            if e.source in REVIEWED_SOURCES:
                latest[e.reviewer] = e  # time order: the last one stands
        deciding = [e for e in latest.values() if e.decision() is not None]
        if len({e.decision() for e in deciding}) > 1:
            conflicts[clip_id] = sorted(deciding, key=lambda e: e.reviewer)
            continue
        given = [e for e in clip_events if e.source not in REVIEWED_SOURCES]
        chosen = max(deciding, key=lambda e: e.time) if deciding else given[-1] if given else None
        if chosen is not None:
            decisions[clip_id] = Decision(clip_id, chosen.decision() or (), chosen)
    return Corrected(dict(sorted(decisions.items())), dict(sorted(conflicts.items())))


def unstated(events: list[Event], history: list[Event]) -> list[Event]:
    """The events of ``events`` that say something new: not, all but their time, the latest event of their
    reviewer on their clip (of given labels, the latest given) in ``history`` (time order) or earlier in ``events``.

    A verdict file without times is stamped when it is added: added twice, each of its verdicts would be stored
    twice, and counted twice, though it changes nothing in the list (the latest verdict of each reviewer counts).
    """
    def key(e: Event) -> tuple:
        return e.clip_id, e.task, e.source in REVIEWED_SOURCES, e.reviewer

    latest = {key(e): replace(e, time=_EPOCH) for e in history}
    new = []
    for e in events:
        timeless = replace(e, time=_EPOCH)
        if latest.get(key(e)) != timeless:
            new.append(e)
            latest[key(e)] = timeless
    return new
