"""Detection histories for occupancy models: site × survey occasion, detected or not, with the effort per cell.

An occupancy model (MacKenzie et al. 2002; R's ``unmarked``) reads a matrix ``y`` of sites by survey occasions,
1 where the species was detected, 0 where it was surveyed and not detected, and NA where the site was not
surveyed; and the effort of each survey as an observation covariate of the same shape. Here an occasion is a
period of ``occasion_h`` hours of the site's local clock, counted from midnight of the deployment's first day (24:
one occasion a day); a cell is detected when an event of the class starts in it, and its effort is the minutes of
audio analysed in it (segments that failed do not count). A cell with no effort is NA, never 0: a recorder that was
off did not fail to hear the species.

The files, one pair per class, read by R as ``docs/soundscapes.md`` shows::

    detections_<class>.csv   site,<occasion start>,...   1 / 0 / NA
    effort.csv               site,<occasion start>,...   minutes analysed
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Any

from acoustic_env.csv_writer import csv_bytes
from acoustic_env.jobs.soundscape.events import Event, safe_name
from acoustic_env.storage import filesystem, join


@dataclass(frozen=True)
class Histories:
    """The occasions' starts (local), the sites, effort[site][occasion] in minutes and detected[label][site][occasion]
    (1, 0, or None where the effort is 0)."""

    occasions: list[datetime]
    sites: list[str]
    effort: list[list[float]]
    detected: dict[str, list[list[int | None]]]


def occasion_of(t: float, origin: datetime, occasion_h: float, tz: tzinfo) -> int:
    """The occasion (0, 1, ...) holding epoch second ``t`` on the local clock of ``tz``, from ``origin`` (a local
    midnight)."""
    local = datetime.fromtimestamp(t, tz).replace(tzinfo=None)
    return math.floor((local - origin.replace(tzinfo=None)).total_seconds() / (occasion_h * 3600))


def histories(segments: Sequence[Mapping[str, Any]], found: Sequence[Event], labels: Sequence[str],
              occasion_h: float, tz: tzinfo) -> Histories:
    """Detection histories from the analysed ``segments`` (``site``, ``start``: epoch seconds, ``duration_s``,
    ``error``) and the ``found`` events. A segment's effort goes to the occasion its start falls in."""
    sites = sorted({s["site"] for s in segments})
    ok = [s for s in segments if s["error"] is None]
    if not segments:
        return Histories([], sites, [], {label: [] for label in labels})
    first = min(s["start"] for s in segments)
    origin = datetime.fromtimestamp(first, tz).replace(hour=0, minute=0, second=0, microsecond=0)
    last = max([occasion_of(s["start"], origin, occasion_h, tz) for s in segments] +
               [occasion_of(e.start, origin, occasion_h, tz) for e in found])
    occasions = [origin + timedelta(hours=occasion_h * k) for k in range(last + 1)]
    row = {s: i for i, s in enumerate(sites)}
    effort = [[0.0] * len(occasions) for _ in sites]
    for s in ok:
        effort[row[s["site"]]][occasion_of(s["start"], origin, occasion_h, tz)] += s["duration_s"] / 60
    detected = {}
    for label in labels:
        y: list[list[int | None]] = [[0 if e > 0 else None for e in site_effort] for site_effort in effort]
        for e in found:
            if e.label == label and e.site in row:
                y[row[e.site]][occasion_of(e.start, origin, occasion_h, tz)] = 1
        detected[label] = y
    return Histories(occasions, sites, effort, detected)


def _matrix(h: Histories, cells: Sequence[Sequence[Any]]) -> str:
    """One matrix as CSV: a ``site`` column, then one per occasion named by its local start; NA for None."""
    return csv_bytes(["site", *(o.strftime("%Y-%m-%dT%H:%M") for o in h.occasions)],
                     [[site, *("NA" if v is None else round(v, 3) if isinstance(v, float) else v for v in values)]
                      for site, values in zip(h.sites, cells)]).decode()


def write_histories(h: Histories, directory: str) -> list[str]:
    """``effort.csv`` and ``detections_<class>.csv`` per class; the URIs written."""
    fs, root = filesystem(directory)
    fs.makedirs(root, exist_ok=True)
    files = {"effort.csv": _matrix(h, h.effort),
             **{f"detections_{safe_name(label)}.csv": _matrix(h, y) for label, y in h.detected.items()}}
    for name, body in files.items():
        with fs.open(f"{root.rstrip('/')}/{name}", "w", encoding="utf-8") as fh:
            fh.write(body)
    return [join(directory, name) for name in files]
