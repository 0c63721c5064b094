"""Every event the label store refuses is one line naming the field, what it got and the clip
(``labels/store.py: Event``): a reviewer with a 10,000-row verdict file learns which row to fix (issue 84: ``make
mutate`` on store.py left the clip and the value out of these lines unnoticed).
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from acoustic_env.config import ConfigError
from acoustic_env.labels.store import Event

T0 = datetime(2026, 11, 28, 10, tzinfo=timezone.utc)


@pytest.mark.parametrize("fields,line", [
    ({"source": "guess", "verdict": None}, "source: must be one of given, import, review, search, got 'guess' (clip-7)"),
    ({"verdict": None}, "verdict: a review event needs verdict (clip-7)"),
    ({"verdict": "maybe"}, "verdict: must be one of correct, wrong, unsure, got 'maybe' (clip-7)"),
    ({"time": "yesterday"}, "time: must be a date and time, got 'yesterday' (clip-7)"),
    ({"time": datetime(2026, 11, 28, 10)}, "time: must carry a time zone (UTC), got 2026-11-28T10:00:00 (clip-7)"),
    ({"reviewer": 7}, "reviewer: must be text, got int (clip-7)"),
    ({"note": "n" * 4097}, "note: at most 4096 characters, got 4097 (clip-7)"),
    ({"labels": ("x" * 257,)}, "labels (a class): at most 256 characters, got 257 (clip-7)"),
])
def test_a_refused_event_names_its_field_its_value_and_its_clip(fields, line):
    with pytest.raises(ConfigError) as err:
        Event(**{"clip_id": "clip-7", "task": "t", "source": "review", "verdict": "correct", "time": T0, **fields})
    assert str(err.value) == line
