"""What a window table becomes for a person: console lines, and selection tables for Raven and Audacity.

Raven Pro (and Raven Lite) open a *selection table*: tab-separated text, one row per
selection with ``Selection``, ``View``, ``Channel``, ``Begin Time (s)``, ``End Time
(s)``, ``Low Freq (Hz)``, ``High Freq (Hz)`` and any annotation columns after them; the
times are within the one sound file it belongs to, so there is one table per
recording (``<clip_id>.selections.txt``, as BirdNET-Analyzer writes its own). Each
scored window gives one selection per predicted class (single-label: its class), its
``Label`` and ``Score`` (the class probability); silent and failed windows give none.
The band is 0 Hz to the Nyquist frequency of the 16 kHz audio the model heard.
Audacity imports the same selections as a label track from
``<clip_id>.labels.txt`` (start, end, label, tab-separated, no header).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pyarrow as pa

from acoustic_env.config import DecodeParams
from acoustic_env.storage import filesystem, join
from acoustic_env.vocabulary.tasks import escaped

RAVEN_COLUMNS = ("Selection", "View", "Channel", "Begin Time (s)", "End Time (s)", "Low Freq (Hz)", "High Freq (Hz)",
                 "Label", "Score")
#: The top of the band a selection spans: the Nyquist frequency of the audio every model hears.
HIGH_HZ = DecodeParams().sample_rate / 2
#: Windows listed one by one on the console up to this many; beyond, the summary and ``--save``.
LISTED_WINDOWS = 20


def selections(rows: Sequence[Mapping[str, Any]]) -> Iterator[tuple[float, float, str, float]]:
    """(begin, end, label, score) per predicted class of each scored window, in time order; the label
    :func:`~acoustic_env.vocabulary.tasks.escaped`, so that a tab or a line break in a class name never shifts a
    selection table's columns or rows."""
    for r in rows:
        predicted = r["predicted"]
        for label in (predicted if isinstance(predicted, list) else [predicted] if predicted is not None else []):
            yield r["start_s"], r["end_s"], escaped(label), r[f"prob_{label}"]


def raven_table(rows: Sequence[Mapping[str, Any]], high_hz: float = HIGH_HZ) -> str:
    """One recording's windows as a Raven selection table (tab-separated text with its header)."""
    lines = ["\t".join(RAVEN_COLUMNS)]
    for i, (begin, end, label, score) in enumerate(selections(rows), 1):
        lines.append(f"{i}\tSpectrogram 1\t1\t{begin:.4f}\t{end:.4f}\t0\t{high_hz:g}\t{label}\t{score:.4f}")
    return "\n".join(lines) + "\n"


def audacity_labels(rows: Sequence[Mapping[str, Any]]) -> str:
    """One recording's windows as an Audacity label track (start, end, label with its score)."""
    return "".join(f"{begin:.4f}\t{end:.4f}\t{label} {score:.3f}\n" for begin, end, label, score in selections(rows))


def write_selections(table: pa.Table, directory: str) -> list[str]:
    """``<clip_id>.selections.txt`` (Raven) and ``<clip_id>.labels.txt`` (Audacity) per recording; their URIs."""
    by_file: dict[str, list[dict[str, Any]]] = {}
    for r in table.to_pylist():
        by_file.setdefault(r["clip_id"], []).append(r)
    fs, root = filesystem(directory)
    fs.makedirs(root, exist_ok=True)
    written = []
    for clip_id, rows in by_file.items():
        for name, text in ((f"{clip_id}.selections.txt", raven_table(rows)),
                           (f"{clip_id}.labels.txt", audacity_labels(rows))):
            with fs.open(f"{root.rstrip('/')}/{name}", "w", encoding="utf-8") as fh:
                fh.write(text)
            written.append(join(directory, name))
    return written


def window_lines(table: pa.Table, summary: pa.Table, class_names: Sequence[str], window_s: float,
                 hop_s: float) -> list[str]:
    """The console's account: per file its windows and, per class, the share of windows, mean and max probability;
    the windows themselves when there are few."""
    lines = []
    for f in summary.to_pylist():
        if f["error"]:
            lines.append(f"{f['clip_id']}: not scored: {f['error']}")
            continue
        lines.append(f"{f['clip_id']}: {f['duration_s']:.1f} s, {f['windows']} windows of {window_s:g} s every "
                     f"{hop_s:g} s ({f['scored']} scored, {f['silent']} silent, {f['failed']} failed)")
        if f["scored"]:
            order = sorted(class_names, key=lambda c: -f[f"share_{c}"])
            lines += [f"  {c:<16} {f[f'share_{c}']:>6.1%} of windows  mean {f[f'mean_{c}']:.3f}  "
                      f"max {f[f'max_{c}']:.3f}" for c in order]
    if table.num_rows <= LISTED_WINDOWS:
        for r in table.to_pylist():
            what = r["error"] or r["note"] if r["predicted"] is None else \
                ", ".join(f"{label} {score:.3f}" for *_, label, score in selections([r]))
            lines.append(f"  {r['clip_id']} {r['start_s']:9.2f} - {r['end_s']:9.2f} s  {what}")
    return lines
