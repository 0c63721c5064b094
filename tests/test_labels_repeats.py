"""An answer repeated in one verdict file is stored once (``labels/current.py: unstated``): a reviewer's file that
lists a clip twice, the same way and without times, adds one verdict, not two that ``labels show`` and the store's
counts would both carry; a change of mind in the same file is kept (issue 84: ``make mutate`` on current.py).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from acoustic_env.labels.current import unstated
from acoustic_env.labels.store import Event

T0 = datetime(2026, 11, 28, 10, tzinfo=timezone.utc)


def _said(verdict: str, seconds: int, reviewer: str = "ann") -> Event:
    """A time-less answer as a file's reader stamps it: each with the clock at its reading."""
    return Event("c1", "t", "review", verdict=verdict, given=("a",), labels=("b",) if verdict == "wrong" else (),
                 reviewer=reviewer, time=T0 + timedelta(microseconds=seconds))


def test_an_answer_repeated_in_one_file_is_stored_once_and_a_change_of_mind_is_kept():
    events = [_said("correct", 1), _said("correct", 2), _said("correct", 3, "bob"), _said("wrong", 4),
              _said("wrong", 5), _said("correct", 6)]
    assert unstated(events, []) == [events[0], events[2], events[3], events[5]]
    assert unstated(events, [_said("correct", 0)]) == [events[2], events[3], events[5]]
