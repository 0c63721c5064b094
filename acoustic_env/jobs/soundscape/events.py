"""Events: a class's consecutive windows over a site's timeline merged into calls with a start and an end.

The rule (:class:`EventRule`, every setting written into the run's record and the events' files):

1. a window is *in* an event's reach when its probability is at least ``low``;
2. windows in reach are merged while the time from the end of the last one to the start of the next is at most
   ``max_gap_s`` (overlapping windows have a negative gap). The gap is counted on the site's clock, across files:
   consecutive recordings with no time between them (one file ends when the next begins) continue an event, and
   a recorder switched off for longer than ``max_gap_s`` ends it;
3. a merged run is an event only when one of its windows reaches ``high`` (hysteresis: ``low`` extends an event,
   only ``high`` starts one), and only when it lasts at least ``min_duration_s``.

An event keeps its start and end (the first window's start, the last window's end), its peak probability and its
mean probability (over the windows merged into it), the files it starts and ends in, and the start's offset in
its file (where a sound editor opens it). BirdNET's merge splits a call longer than a window, or merges two calls a
short gap apart, when its windows are counted per file; here the windows are placed on the site's clock first
(``audio/timeline.py``), and ``tests/test_soundscape_events.py`` holds those cases to a known truth.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from acoustic_env.config import ConfigError
from acoustic_env.csv_writer import csv_bytes
from acoustic_env.storage import filesystem, join
from acoustic_env.vocabulary.tasks import escaped

#: A Raven selection table spanning several files: its times count from the site's first recording, and its
#: ``Begin File`` and ``File Offset (s)`` say where each selection starts (Raven opens a file list that way).
RAVEN_COLUMNS = ("Selection", "View", "Channel", "Begin Time (s)", "End Time (s)", "Low Freq (Hz)", "High Freq (Hz)",
                 "Begin File", "File Offset (s)", "Label", "Peak", "Mean")
#: The columns of events.csv.
EVENT_COLUMNS = ("site", "label", "start_time", "end_time", "duration_s", "peak", "mean", "windows", "first_file",
                 "last_file", "file_offset_s")


@dataclass(frozen=True)
class EventRule:
    """How windows become events (see the module docstring): the two thresholds, the shortest event and the longest
    gap merged."""

    high: float = 0.7
    low: float = 0.4
    min_duration_s: float = 0.0
    max_gap_s: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.low <= self.high <= 1.0:
            raise ConfigError(f"events: need 0 <= event_low <= event_high <= 1, got low {self.low:g}, "
                              f"high {self.high:g}")
        if self.min_duration_s < 0 or self.max_gap_s < 0:
            raise ConfigError("events: event_min_duration_s and event_max_gap_s must be >= 0")

    def said(self) -> str:
        """The rule in one line, as the files and the record state it."""
        return (f"hysteresis: starts at p >= {self.high:g}, extends while p >= {self.low:g}, windows merged across "
                f"gaps <= {self.max_gap_s:g} s, events of at least {self.min_duration_s:g} s")


@dataclass(frozen=True)
class Event:
    """One event of ``label`` on ``site``: times in seconds since the epoch (UTC), peak and mean probability."""

    site: str
    label: str
    start: float
    end: float
    peak: float
    mean: float
    windows: int
    first_file: str
    last_file: str
    file_offset_s: float


def site_events(windows: Sequence[Mapping[str, Any]], label: str, rule: EventRule) -> list[Event]:
    """The events of ``label`` in one site's windows (``start``, ``end``: epoch seconds; ``prob``; ``clip_id``;
    ``file_start``: the epoch second its file starts), sorted or not: they are put in time order here."""
    out: list[Event] = []
    run: list[Mapping[str, Any]] = []
    for w in sorted((w for w in windows if w["prob"] is not None and w["prob"] >= rule.low),
                    key=lambda w: (w["start"], w["end"])):
        if run and w["start"] - max(r["end"] for r in run) > rule.max_gap_s:
            out.extend(_event(run, label, rule))
            run = []
        run.append(w)
    out.extend(_event(run, label, rule))
    return out


def _event(run: Sequence[Mapping[str, Any]], label: str, rule: EventRule) -> Iterator[Event]:
    """The run as an event, when it reaches ``high`` and lasts ``min_duration_s``; else nothing."""
    if not run:
        return
    peak = max(r["prob"] for r in run)
    start, end = run[0]["start"], max(r["end"] for r in run)
    if peak < rule.high or end - start < rule.min_duration_s:
        return
    yield Event(run[0]["site"], label, start, end, float(peak), float(sum(r["prob"] for r in run) / len(run)),
                len(run), run[0]["clip_id"], run[-1]["clip_id"], start - run[0]["file_start"])


def events(windows: Iterable[Mapping[str, Any]], labels: Sequence[str], rule: EventRule) -> list[Event]:
    """Every site's events of every label, by site, label and start; ``windows`` hold ``prob_<label>`` per label
    and ``site``, ``clip_id``, ``start``, ``end``, ``file_start``."""
    by_site: dict[str, list[Mapping[str, Any]]] = {}
    for w in windows:
        by_site.setdefault(w["site"], []).append(w)
    found = [e for site in sorted(by_site) for label in labels
             for e in site_events([{**w, "prob": w.get(f"prob_{label}")} for w in by_site[site]], label, rule)]
    return sorted(found, key=lambda e: (e.site, e.label, e.start))


def raven_table(found: Sequence[Event], origin: float, high_hz: float) -> str:
    """One site's events as a Raven selection table; times from ``origin`` (its first recording's start); the file
    and the label :func:`~acoustic_env.vocabulary.tasks.escaped`, so that a tab or a line break in one never shifts
    the columns."""
    lines = ["\t".join(RAVEN_COLUMNS)]
    for i, e in enumerate(found, 1):
        lines.append(f"{i}\tSpectrogram 1\t1\t{e.start - origin:.4f}\t{e.end - origin:.4f}\t0\t{high_hz:g}\t"
                     f"{escaped(e.first_file)}\t{e.file_offset_s:.4f}\t{escaped(e.label)}\t{e.peak:.4f}\t{e.mean:.4f}")
    return "\n".join(lines) + "\n"


def audacity_labels(found: Sequence[Event], origin: float) -> str:
    """One site's events as an Audacity label track (start, end, label with its peak), from ``origin``."""
    return "".join(f"{e.start - origin:.4f}\t{e.end - origin:.4f}\t{escaped(e.label)} {e.peak:.3f}\n" for e in found)


def write_events(found: Sequence[Event], origins: Mapping[str, float], directory: str, rule: EventRule,
                 high_hz: Mapping[str, float], as_time: Any) -> list[str]:
    """``events.csv`` (every site; times as ``as_time(epoch)`` gives them), and per site ``<site>.selections.txt``
    (Raven) and ``<site>.labels.txt`` (Audacity), times from the site's first recording (``origins``). The rule
    heads events.csv as a comment line. The URIs written."""
    fs, root = filesystem(directory)
    fs.makedirs(root, exist_ok=True)
    rows = [{**asdict(e), "start_time": as_time(e.start), "end_time": as_time(e.end),
             "duration_s": round(e.end - e.start, 4)} for e in found]
    files = {"events.csv": f"# {rule.said()}\n" + csv_bytes(EVENT_COLUMNS, rows).decode()}
    for site, origin in origins.items():
        mine = [e for e in found if e.site == site]
        safe = safe_name(site)
        files[f"{safe}.selections.txt"] = raven_table(mine, origin, high_hz[site])
        files[f"{safe}.labels.txt"] = audacity_labels(mine, origin)
    for name, body in files.items():
        with fs.open(f"{root.rstrip('/')}/{name}", "w", encoding="utf-8") as fh:
            fh.write(body)
    return [join(directory, name) for name in files]


def safe_name(site: str) -> str:
    """A site's name as a file name: anything but letters, digits, ``-``, ``_`` and ``.`` becomes ``_``."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in site).strip(".") or "site"
