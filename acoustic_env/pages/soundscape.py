"""A deployment's page: false-colour spectrograms per site and day, diel plots, a summary per site (``page/``).

**False-colour spectrogram** (after Towsey et al. 2014): one column per time step of the site's schedule, one row
per frequency bin, low frequencies at the bottom; red is ACI (acoustic complexity: birdsong, insects'
stridulation), green is 1 − ENT (temporal entropy reversed: a bin whose energy is concentrated in a few moments
is bright), blue is EVN (acoustic events per second). Each index is scaled to [0, 1] between its 2nd and 98th
percentile over the site (scikit-maad's ``false_Color_Spectro`` clips at percentiles too), so colours compare
within a site, not between sites.

**Diel plots**: the hour of the day (local clock, the run's time zone) up, the date across; one per index of
:data:`DIEL_INDICES` and, with a model, per class's share of windows.

**Bands through the day**: acoustic events per second (the per-bin EVN) averaged over each :data:`BAND_HZ` band,
the hour of the day across, averaged over the site's days: when each band is busy. A dawn chorus is the birds'
bands (2–8 kHz) lit at sunrise; stridulating insects at night would light their bands (4–10 kHz in the audible
range) after dusk, though many bush-crickets sing above the 11 kHz that a 22-kHz recording reaches. Whole-segment
indices average the bands together, and an insect band's events drown in them; a band of its own shows them.

**Time steps and gaps.** A site's time step is its usual interval between segment starts (60 s for continuous
recording in minutes; 15 min for 10-s recordings every 15 min; at least a minute). A step with no segment (a
recorder off, a file missing or unreadable) is drawn as a gap (grey), never filled from its neighbours.

The PNGs are written beside ``index.html`` (matplotlib, Agg); the page's markup is ``templates/soundscape.html``,
autoescaped (a site named ``<b>`` is shown as text).
"""

from __future__ import annotations

from collections.abc import Sequence
import warnings
from datetime import date, datetime, tzinfo
from typing import Any

import numpy as np
import pyarrow as pa

from acoustic_env.pages.plots import _png, plt
from acoustic_env.pages.templating import render
from acoustic_env.storage import filesystem, join

#: The indices drawn as diel plots (names of the table's columns: scikit-maad's).
DIEL_INDICES = ("ACI", "NDSI", "BI", "Ht", "EVNspCount", "LEQt")
#: The false-colour channels: (table column, reversed?) for red, green and blue.
CHANNELS = (("bins_ACI", False), ("bins_ENT", True), ("bins_EVN", False))
#: The width of a band of the bands-through-the-day plot (Hz).
BAND_HZ = 1000.0
#: The colour of a gap.
GAP = (0.82, 0.82, 0.82)


#: The shortest time step drawn: a day is at most 1,440 columns (Towsey's minute); shorter segments share a column,
#: the latest drawn.
MIN_STEP_S = 60.0


def site_step(starts: np.ndarray) -> float:
    """A site's time step in seconds: the median interval between its segments' starts, at least
    :data:`MIN_STEP_S`."""
    gaps = np.diff(np.unique(starts))
    return max(MIN_STEP_S, float(np.median(gaps)) if gaps.size else MIN_STEP_S)


def local_rows(table: pa.Table, tz: tzinfo) -> list[dict[str, Any]]:
    """The table's scored rows with their local start time (``local``) and epoch seconds (``t``); the per-bin
    columns as numpy views of the table (a list of Python floats would be 20 times their size), the windows left
    out."""
    lists = [c for c in table.column_names if c.startswith(("bins_", "win_"))]
    bins = {c: table[c].combine_chunks() for c in lists if c.startswith("bins_")}
    out = []
    for i, r in enumerate(table.drop_columns(lists).to_pylist()):
        if r["error"] is None:
            r.update({c: a[i].values.to_numpy(zero_copy_only=False) for c, a in bins.items()},
                     t=r["start_time"].timestamp(), local=r["start_time"].astimezone(tz))
            out.append(r)
    return out


def scale(values: np.ndarray, reverse: bool = False) -> np.ndarray:
    """Values scaled to [0, 1] between their 2nd and 98th percentiles (NaN kept)."""
    finite = values[np.isfinite(values)]
    if not finite.size:
        return values
    lo, hi = np.percentile(finite, [2, 98])
    out = np.clip((values - lo) / (hi - lo if hi > lo else 1.0), 0, 1)
    return 1 - out if reverse else out


def site_channels(rows: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], np.ndarray]:
    """(the rows drawn, their three channels [rows, bins, 3] each scaled over the site): the rows with the site's
    most bins (a file at another sample rate has other bins, and is left out of the picture)."""
    bins = max(len(r["bins_ACI"]) for r in rows)
    usable = [r for r in rows if len(r["bins_ACI"]) == bins]
    rgb = np.stack([scale(np.stack([r[name] for r in usable]).astype(np.float32), reverse)
                    for name, reverse in CHANNELS], axis=-1)
    return usable, rgb


def day_column(local: datetime, step: float) -> int:
    """The time step of its day (0 .. steps - 1) that a local start falls in."""
    seconds = local.hour * 3600 + local.minute * 60 + local.second
    return min(int(round(86400 / step)) - 1, int(seconds // step))


def false_colour(usable: Sequence[dict[str, Any]], rgb: np.ndarray, day: date, step: float) -> tuple[np.ndarray,
                                                                                                       float]:
    """(RGB image [bins, steps of the day, 3], the top frequency in Hz) of one site's day (:func:`site_channels`);
    gaps grey."""
    columns = int(round(86400 / step))
    image = np.empty((rgb.shape[1], columns, 3), dtype=np.float32)
    image[:] = GAP
    for r, v in zip(usable, rgb):
        if r["local"].date() == day:
            image[:, day_column(r["local"], step)] = np.where(np.isnan(v), GAP, v)
    return image[::-1], rgb.shape[1] * usable[0]["bin_hz"]


def false_colour_png(usable: Sequence[dict[str, Any]], rgb: np.ndarray, site: str, day: date, step: float) -> bytes:
    """The false-colour spectrogram of a site's day as a PNG, hours across, kHz up, with its legend."""
    image, top = false_colour(usable, rgb, day, step)
    fig, ax = plt.subplots(figsize=(10, 3.2))
    ax.imshow(image, aspect="auto", extent=(0, 24, 0, top / 1000), interpolation="nearest")
    ax.set_xticks(range(0, 25, 3))
    ax.set_xlabel("hour of day (local)")
    ax.set_ylabel("kHz")
    ax.set_title(f"{site} {day.isoformat()}: red ACI, green 1 - ENT, blue EVN; grey: no recording")
    return _png(fig)


def diel_grid(rows: Sequence[dict[str, Any]], column: str, step: float) -> tuple[np.ndarray, list[date]]:
    """(values [time steps of a day, days], the days): NaN where no segment was scored (a gap)."""
    days = sorted({r["local"].date() for r in rows})
    steps = int(round(86400 / step))
    grid = np.full((steps, len(days)), np.nan)
    col = {d: i for i, d in enumerate(days)}
    for r in rows:
        v = r.get(column)
        if v is not None:
            grid[day_column(r["local"], step), col[r["local"].date()]] = v
    return grid, days


def diel_png(rows: Sequence[dict[str, Any]], site: str, column: str, step: float) -> bytes:
    """A diel plot of one column for a site: hour of day up, date across; gaps grey."""
    grid, days = diel_grid(rows, column, step)
    fig, ax = plt.subplots(figsize=(max(3.5, 1.0 + 0.25 * len(days)), 3.4))
    ax.set_facecolor(GAP)
    mesh = ax.pcolormesh(np.arange(len(days) + 1), np.linspace(0, 24, grid.shape[0] + 1),
                         np.ma.masked_invalid(grid), cmap="viridis", shading="flat")
    ax.set_xticks(np.arange(len(days)) + 0.5, [d.strftime("%m-%d") for d in days], rotation=90 if len(days) > 6 else 0)
    ax.set_yticks(range(0, 25, 6))
    ax.set_ylabel("hour of day (local)")
    ax.set_title(f"{site}: {column}")
    fig.colorbar(mesh, ax=ax)
    return _png(fig)


def band_grid(usable: Sequence[dict[str, Any]], step: float) -> tuple[np.ndarray, float]:
    """(events per second [bands of :data:`BAND_HZ`, time steps of a day], the top frequency in Hz) of the rows with
    the site's bins (:func:`site_channels`): each band's bins averaged, each time step's days averaged; NaN where no
    day has a segment (a gap)."""
    evn = np.stack([r["bins_EVN"] for r in usable]).astype(np.float64)
    bin_hz = usable[0]["bin_hz"]
    band = (np.arange(evn.shape[1]) * bin_hz // BAND_HZ).astype(int)
    steps = int(round(86400 / step))
    total, count = np.zeros((band.max() + 1, steps)), np.zeros((band.max() + 1, steps))
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # a band of NaN bins (a silent segment's) is NaN
        per_band = np.stack([np.nanmean(evn[:, band == b], axis=1) for b in range(band.max() + 1)], axis=1)
    for r, v in zip(usable, per_band):
        column, finite = day_column(r["local"], step), np.isfinite(v)
        total[finite, column] += v[finite]
        count[finite, column] += 1
    with np.errstate(invalid="ignore"):
        return np.where(count > 0, total / count, np.nan), evn.shape[1] * bin_hz


def band_png(usable: Sequence[dict[str, Any]], site: str, step: float) -> bytes:
    """The bands through the day of a site (:func:`band_grid`) as a PNG: hours across, kHz up, gaps grey."""
    grid, top = band_grid(usable, step)
    days = len({r["local"].date() for r in usable})
    fig, ax = plt.subplots(figsize=(10, 3.2))
    ax.set_facecolor(GAP)
    mesh = ax.pcolormesh(np.linspace(0, 24, grid.shape[1] + 1),
                         np.minimum(np.arange(grid.shape[0] + 1) * BAND_HZ, top) / 1000,
                         np.ma.masked_invalid(grid), cmap="magma", shading="flat")
    ax.set_xticks(range(0, 25, 3))
    ax.set_xlabel("hour of day (local)")
    ax.set_ylabel("kHz")
    ax.set_title(f"{site}: acoustic events per second by {BAND_HZ / 1000:g}-kHz band, mean of {days} day(s)")
    fig.colorbar(mesh, ax=ax, label="events / s (EVN)")
    return _png(fig)


def site_summary(site: str, all_rows: Sequence[dict[str, Any]], rows: Sequence[dict[str, Any]],
                 classes: Sequence[str]) -> dict[str, Any]:
    """One row of the per-site table: files, segments, failures, hours analysed, first and last start, the mean
    of a few indices and of each class's share."""
    mean = {c: float(np.nanmean([r[c] for r in rows if r.get(c) is not None] or [np.nan]))
            for c in ("ACI", "NDSI", "BI") + tuple(f"share_{c}" for c in classes)}
    return {"site": site, "files": len({r["clip_id"] for r in all_rows}), "segments": len(all_rows),
            "failed": len(all_rows) - len(rows), "hours": sum(r["duration_s"] for r in rows) / 3600,
            "first": min(r["local"] for r in rows).isoformat() if rows else None,
            "last": max(r["local"] for r in rows).isoformat() if rows else None, **mean}


def write_page(table: pa.Table, directory: str, tz: tzinfo, classes: Sequence[str], issues: Sequence[Any],
               rule: Any) -> str:
    """``index.html`` and its PNGs into ``directory``; its URI."""
    fs, root = filesystem(directory)
    fs.makedirs(root, exist_ok=True)
    rows = local_rows(table, tz)
    every = table.select(["site", "clip_id"]).to_pylist()
    sites = []
    for n, site in enumerate(sorted(set(table["site"].to_pylist()))):
        mine = [r for r in rows if r["site"] == site]
        entry = {"name": site, "spectrograms": [], "diel": [], "bands": None,
                 "summary": site_summary(site, [r for r in every if r["site"] == site], mine, classes)}
        if mine:
            step = site_step(np.array([r["t"] for r in mine]))
            usable, rgb = site_channels(mine)
            figures = {f"site{n}-{day.isoformat()}-false-colour.png": (false_colour_png(usable, rgb, site, day, step),
                                                                      day)
                       for day in sorted({r["local"].date() for r in usable})}
            bands = f"site{n}-bands.png"
            entry["top_khz"] = rgb.shape[1] * usable[0]["bin_hz"] / 1000
            figures[bands] = (band_png(usable, site, step), "bands")
            for column in (*DIEL_INDICES, *(f"share_{c}" for c in classes)):
                figures[f"site{n}-diel-{column}.png"] = (diel_png(mine, site, column, step), column)
            for name, (png, what) in figures.items():
                with fs.open(f"{root.rstrip('/')}/{name}", "wb") as fh:
                    fh.write(png)
                if name == bands:
                    entry["bands"] = name
                else:
                    (entry["spectrograms"] if "false-colour" in name else entry["diel"]).append({"src": name,
                                                                                                  "what": str(what)})
        sites.append(entry)
    html = render("soundscape.html", sites=sites, classes=list(classes), issues=[i.message for i in issues],
                  band_khz=f"{BAND_HZ / 1000:g}",
                  rule=rule.said(), timezone=str(tz))
    with fs.open(f"{root.rstrip('/')}/index.html", "w", encoding="utf-8") as fh:
        fh.write(html)
    return join(directory, "index.html")
