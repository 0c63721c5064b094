"""What the train job reads beside the feature table: the test list and the audit's label-accuracy estimate.

The job reads both once, up front, before its run record is written (a bad file
costs one line naming its option, not a failed run), and hands the learners plain
values: a set of clip ids (``learn.splits.assign_splits``' test mask) and an
estimate dict (``learn.metrics.adjusted_accuracy``), so that ``learn/`` opens no file.
"""

from __future__ import annotations

import json
from typing import Any

from acoustic_env.audio.manifest import read_audioset_csv
from acoustic_env.bounded import MAX_LIST_BYTES, MAX_RECORD_BYTES, read_bytes
from acoustic_env.config import ConfigError


def read_label_accuracy(uri: str) -> dict[str, Any]:
    """The audit's label-accuracy estimate, checked for the fields the adjustment needs."""
    try:
        data = json.loads(read_bytes(uri, "label_accuracy", MAX_RECORD_BYTES, "a label-accuracy estimate"))
    except ConfigError:
        raise
    except (OSError, ValueError) as exc:
        raise ConfigError(f"label_accuracy: cannot read {uri}: {str(exc).splitlines()[0]}") from None
    overall = data.get("overall") if isinstance(data, dict) else None
    if not isinstance(overall, dict) or not all(isinstance(overall.get(k), (int, float)) for k in ("accuracy", "low", "high")):
        raise ConfigError(f"label_accuracy: {uri} needs overall.accuracy, overall.low and overall.high, got {data!r:.120}")
    if data.get("sample") == "suspects":
        raise ConfigError(f"label_accuracy: {uri} was estimated on the audit's suspects (how often its flags are "
                          "right), not on a random sample of labels; pass the random-sample estimate")
    if not 0 <= overall["low"] <= overall["accuracy"] <= overall["high"] <= 1:
        raise ConfigError(f"label_accuracy: overall needs 0 <= low <= accuracy <= high <= 1, got {overall}")
    return data


def read_test_list(uri: str) -> set[str]:
    """Clip ids from an AudioSet segment CSV (``<YTID>_<start ms>``), a CSV with ``clip_id``, or one id per line."""
    try:
        text = read_bytes(uri, "test_list", MAX_LIST_BYTES, "a test list").decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"test_list: cannot read {uri}: {exc}") from None
    head = text.split("\n", 1)[0]
    if head.startswith("#"):
        return {f"{r['YTID']}_{int(round(r['start_s'] * 1000))}" for r in read_audioset_csv(uri)}
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if lines and "," in lines[0]:
        header = [h.strip() for h in lines[0].split(",")]
        if "clip_id" not in header:
            raise ConfigError(f"test_list: a CSV needs a clip_id column, got columns {header}")
        k = header.index("clip_id")
        return {ln.split(",")[k].strip() for ln in lines[1:]}
    return set(lines)
