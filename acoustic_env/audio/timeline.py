"""Recordings placed in time: each file's site and start, from its recorder's name or a clip list's columns.

A deployment is many files from a few recorders, each named by its recorder with when it started. Two naming
schemes cover most field recorders:

* Wildlife Acoustics Song Meter (SM2, SM3, SM4, Mini): ``SITE_YYYYMMDD_HHMMSS.wav``, where ``SITE`` is the prefix
  set on the recorder (``S4A03895_20190522_000000.wav``: site ``S4A03895``, 2019-05-22 00:00:00);
* Open Acoustic Devices AudioMoth: ``YYYYMMDD_HHMMSS.WAV``, with no site: the site is the file's folder name, or,
  where the files are kept in a folder per day (``ridge/20190522/20190522_061500.WAV``, as the AudioMoth
  configuration app's daily folders do), the name of the folder above the day's (``ridge``).

A clip list (CSV or Parquet) may instead give ``site`` and ``start_time`` (ISO 8601, ``2019-05-22T06:15:00``,
with or without an offset) per row; columns win over the name.

The recorders write local clock time without a zone. The zone is stated (``timezone``, an IANA name: UTC unless
given) and kept with every start, and a time written with its own offset keeps it. A file whose time cannot be
read is a :class:`TimelineError` of one line that names the file and the patterns tried: nothing is guessed.

:func:`timeline_issues` reports, per site, recordings that overlap (the next starts before the last ends) and clock
jumps (a start off the site's own schedule: the interval between starts is not a whole number of the site's usual
interval); they are reported, never merged or averaged.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np

from acoustic_env.config import ConfigError

#: The recorder name patterns, in the order they are tried: (name, what it looks like, the regular expression on the
#: file's stem).
PATTERNS: tuple[tuple[str, str, re.Pattern[str]], ...] = (
    ("song_meter", "SITE_YYYYMMDD_HHMMSS", re.compile(r"^(?P<site>.+?)_(?P<date>\d{8})_(?P<time>\d{6})$")),
    ("audiomoth", "YYYYMMDD_HHMMSS", re.compile(r"^(?P<date>\d{8})_(?P<time>\d{6})$")),
)
#: How far an interval between starts may be from a whole number of the site's usual interval before it is a
#: clock jump: recorders start on the second, and their clocks drift by seconds a week.
SCHEDULE_TOLERANCE_S = 2.0


class TimelineError(ConfigError):
    """A recording cannot be placed in time, or a setting of the placement is invalid: one line naming it, which the
    command prints as it prints a bad setting, before any audio is read."""


@dataclass(frozen=True)
class Placed:
    """One recording in time: ``site``, its ``start`` (timezone-aware) and how it was read (``source``: a pattern's
    name or ``manifest``)."""

    clip_id: str
    uri: str
    site: str
    start: datetime
    source: str


def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name`` (``UTC``, ``Europe/Paris``); a TimelineError naming it when unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise TimelineError(f"timezone: unknown time zone {name!r} (an IANA name such as UTC or "
                            f"Europe/Paris)") from None


def file_name(uri: str) -> str:
    """The last part of a path or URI, without its query."""
    path = urlsplit(uri).path if "://" in uri else uri
    return posixpath.basename(path.replace("\\", "/"))


#: A folder of one day's recordings (``20190522``): not a site's name, the site is the folder above.
DAY_FOLDER = re.compile(r"^\d{8}$")


def folder_name(uri: str) -> str:
    """The name of the folder holding ``uri`` (an AudioMoth's site), the one above when that is a day's folder
    (:data:`DAY_FOLDER`), or ``unknown`` at the root."""
    folder = posixpath.dirname((urlsplit(uri).path if "://" in uri else uri).replace("\\", "/"))
    if DAY_FOLDER.match(posixpath.basename(folder)):
        folder = posixpath.dirname(folder)
    return posixpath.basename(folder) or "unknown"


def from_name(uri: str, tz: ZoneInfo) -> tuple[str, datetime, str]:
    """(site, start, pattern's name) read from a recorder's file name; a TimelineError naming the file and the
    patterns tried when none fits or the date is not a date."""
    name = file_name(uri)
    stem = name.rsplit(".", 1)[0]
    tried = ", ".join(f"{shape} ({label})" for label, shape, _ in PATTERNS)
    for label, _, pattern in PATTERNS:
        m = pattern.match(stem)
        if m is None:
            continue
        try:
            start = datetime.strptime(m["date"] + m["time"], "%Y%m%d%H%M%S").replace(tzinfo=tz)
        except ValueError:
            raise TimelineError(f"{name}: {m['date']}_{m['time']} is not a date and time (YYYYMMDD_HHMMSS)") from None
        return (m["site"] if "site" in m.groupdict() else folder_name(uri)), start, label
    raise TimelineError(f"{name}: no start time in its name; tried {tried}; or give a clip list with site and "
                        f"start_time columns")


def from_columns(row: Mapping[str, object], tz: ZoneInfo) -> tuple[str, datetime]:
    """(site, start) from a clip list's ``site`` and ``start_time`` (ISO 8601; without an offset, in ``tz``)."""
    text = str(row["start_time"]).strip()
    try:
        start = datetime.fromisoformat(text)  # Python 3.11 reads a trailing Z as UTC
    except ValueError:
        raise TimelineError(f"{row['clip_id']}: start_time {text!r} is not an ISO 8601 time "
                            f"(2019-05-22T06:15:00, with or without an offset)") from None
    site = str(row.get("site") or "").strip()
    if not site:  # the recorder's prefix when the name has one, else the folder
        try:
            site = from_name(str(row["uri"]), tz)[0]
        except TimelineError:
            site = folder_name(str(row["uri"]))
    return site, start if start.tzinfo else start.replace(tzinfo=tz)


def place(rows: Iterable[Mapping[str, object]], timezone: str = "UTC") -> list[Placed]:
    """Every row (``clip_id``, ``uri``, optionally ``site`` and ``start_time``) in time, sorted by site and start.

    Raises TimelineError for the first row whose time cannot be read: a deployment with a file out of place would
    draw a wrong day, so the run stops before any audio is read.
    """
    tz = zone(timezone)
    out = []
    for r in rows:
        if r.get("start_time") not in (None, ""):
            site, start = from_columns(r, tz)
            source = "manifest"
        else:
            site, start, source = from_name(str(r["uri"]), tz)
        out.append(Placed(str(r["clip_id"]), str(r["uri"]), site, start, source))
    return sorted(out, key=lambda p: (p.site, p.start, p.clip_id))


@dataclass(frozen=True)
class Issue:
    """Something wrong with a site's timeline: ``kind`` ``overlap`` or ``clock_jump``, between two files."""

    kind: str
    site: str
    first: str
    second: str
    message: str


def usual_interval(starts: Sequence[datetime]) -> float | None:
    """The site's schedule: the median seconds between consecutive starts (None with fewer than three files, where
    no schedule can be told from a jump)."""
    if len(starts) < 3:
        return None
    gaps = np.diff([s.timestamp() for s in starts])
    return float(np.median(gaps[gaps > 0])) if (gaps > 0).any() else None


def timeline_issues(placed: Sequence[Placed], durations: Mapping[str, float | None]) -> list[Issue]:
    """Overlaps and clock jumps per site (``placed`` sorted as :func:`place` returns it; ``durations``: seconds per
    clip id, None where the file could not be read)."""
    issues: list[Issue] = []
    by_site: dict[str, list[Placed]] = {}
    for p in placed:
        by_site.setdefault(p.site, []).append(p)
    for site, files in by_site.items():
        every = usual_interval([f.start for f in files])
        for a, b in zip(files, files[1:]):
            gap = (b.start - a.start).total_seconds()
            length = durations.get(a.clip_id)
            if length is not None and gap < length:
                issues.append(Issue("overlap", site, a.clip_id, b.clip_id,
                                    f"{site}: {b.clip_id} starts {b.start.isoformat()}, {length - gap:.1f} s before "
                                    f"{a.clip_id} ends; both are kept, not merged"))
            elif every and abs(gap - round(gap / every) * every) > SCHEDULE_TOLERANCE_S:
                issues.append(Issue("clock_jump", site, a.clip_id, b.clip_id,
                                    f"{site}: {b.clip_id} starts {timedelta(seconds=gap)} after {a.clip_id}, off "
                                    f"the site's schedule of one every {timedelta(seconds=every)}: a clock jump?"))
    return issues
