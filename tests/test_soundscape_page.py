"""The soundscape page's pictures and summary (pages/soundscape.py) from segment rows made here, with values chosen
so that each pixel's source is known: which time step and day a segment lands in, a gap left grey, each channel
scaled over its site, a band's mean (fast: no audio; the page in Chromium and on the real recordings is
test_soundscape_job's)."""

from __future__ import annotations

import io
from datetime import date, datetime, timedelta, timezone

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from acoustic_env.audio.timeline import Issue
from acoustic_env.jobs.soundscape.events import EventRule
from acoustic_env.jobs.soundscape.segments import schema
from acoustic_env.pages import soundscape
from acoustic_env.pages.soundscape import GAP, band_grid, band_png, day_column, diel_grid, diel_png, false_colour, \
    false_colour_png, local_rows, scale, site_channels, site_step, site_summary, write_page

UTC = timezone.utc
PLUS2 = timezone(timedelta(hours=2))
#: 2019-05-22 00:00:00 UTC
T0 = 1558483200.0


def _row(t: float, *, bins: int = 4, value: float = 1.0, site: str = "ridge", clip: str = "f1", bin_hz: float = 500.0,
         tz=UTC, **more) -> dict:
    """A scored segment as local_rows gives it: its per-bin indices all ``value`` (EVN rising with the bin)."""
    return {"site": site, "clip_id": clip, "t": t, "local": datetime.fromtimestamp(t, tz), "bin_hz": bin_hz,
            "duration_s": 60.0, "bins_ACI": np.full(bins, value), "bins_ENT": np.full(bins, value),
            "bins_EVN": value * np.arange(1, bins + 1, dtype=float), **more}


def _title(png: bytes) -> str:
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.width > 100 and image.height > 100
    return image.text["Title"]


@pytest.mark.parametrize("starts, step", [([0, 900, 1800, 3600], 900.0), ([0, 10, 20, 30], 60.0), ([5], 60.0),
                                          ([0, 120, 120, 240, 600], 120.0)])
def test_a_sites_step_is_its_median_interval_and_at_least_a_minute(starts, step):
    assert site_step(np.array(starts, dtype=float)) == step


def test_a_local_start_falls_in_its_step_of_the_day():
    assert day_column(datetime(2019, 5, 22, 0, 0, 0), 900) == 0
    assert day_column(datetime(2019, 5, 22, 0, 14, 59), 900) == 0
    assert day_column(datetime(2019, 5, 22, 0, 15, 0), 900) == 1
    assert day_column(datetime(2019, 5, 22, 13, 2, 5), 60) == 13 * 60 + 2
    assert day_column(datetime(2019, 5, 22, 13, 59, 50), 60) == 13 * 60 + 59  # an hour is 3,600 s, late in it too
    assert day_column(datetime(2019, 5, 22, 23, 59, 59), 900) == 95
    assert day_column(datetime(2019, 5, 22, 23, 59, 59), 7 * 3600) == 2  # 3 steps of 7 h: the rest in the last


def test_values_are_scaled_between_their_2nd_and_98th_percentiles_and_nan_is_kept():
    v = np.array([0.0, *np.linspace(10, 20, 98), 100.0, np.nan])
    lo, hi = np.percentile(v[:-1], [2, 98])
    out = scale(v)
    np.testing.assert_allclose(out[:-1], np.clip((v[:-1] - lo) / (hi - lo), 0, 1))
    assert out[0] == 0 and out[-2] == 1 and np.isnan(out[-1])
    np.testing.assert_allclose(scale(v, reverse=True)[:-1], 1 - out[:-1])
    np.testing.assert_array_equal(scale(np.full(3, 7.0)), [0, 0, 0])  # no spread: every value at the bottom
    assert np.isnan(scale(np.full(2, np.nan))).all()


def test_local_rows_are_the_scored_segments_on_the_runs_clock_with_their_bins():
    table = pa.Table.from_pylist([
        {"site": "ridge", "clip_id": "f1", "start_time": 1558483200000, "offset_s": 0.0, "duration_s": 10.0,
         "bin_hz": 500.0, "error": None, "bins_ACI": [1.0, 2.0], "bins_ENT": [0.5, 0.25], "bins_EVN": [3.0, 4.0],
         "bins_BGN": [0.0, 0.0], "bins_ACT": [0.0, 0.0], "ACI": 7.0},
        {"site": "ridge", "clip_id": "f2", "start_time": 1558483800000, "offset_s": 0.0, "duration_s": 10.0,
         "error": "decode/corrupt: x"}], schema=schema())
    (row,) = local_rows(table, PLUS2)
    assert row["clip_id"] == "f1" and row["ACI"] == 7.0 and row["t"] == T0
    assert row["local"] == datetime(2019, 5, 22, 2, 0, tzinfo=PLUS2) and row["local"].utcoffset() == timedelta(hours=2)
    np.testing.assert_array_equal(row["bins_ACI"], np.array([1.0, 2.0], dtype=np.float32))
    assert isinstance(row["bins_EVN"], np.ndarray) and not any(k.startswith("win_") for k in row)
    model = pa.Table.from_pylist([{"site": "s", "clip_id": "f", "start_time": 0, "error": None,
                                   **{f"bins_{n}": [1.0] for n in ("ACI", "ENT", "EVN", "BGN", "ACT")},
                                   "win_start_s": [0.0, 2.0], "win_prob_a": [0.1, 0.2]}],
                                 schema=schema(("a",)))
    assert "win_start_s" not in local_rows(model, UTC)[0] and "win_prob_a" not in local_rows(model, UTC)[0]


def test_the_picture_holds_the_rows_with_the_sites_most_bins_each_channel_scaled_over_the_site():
    rows = [_row(T0, value=1.0), _row(T0 + 900, value=3.0), _row(T0 + 1800, bins=2, value=9.0)]
    usable, rgb = site_channels(rows)
    assert usable == rows[:2] and rgb.shape == (2, 4, 3)
    np.testing.assert_array_equal(rgb[:, 0, 0], [0, 1])  # red: ACI, the site's low and high
    np.testing.assert_array_equal(rgb[:, 0, 1], [1, 0])  # green: 1 - ENT
    np.testing.assert_allclose(rgb[0, :, 2], scale(np.stack([r["bins_EVN"] for r in rows[:2]]))[0])  # blue: EVN


def test_a_days_false_colour_puts_each_segment_in_its_step_low_bins_at_the_bottom_and_leaves_gaps_grey():
    rows = [_row(T0 + 900, value=1.0), _row(T0 + 3 * 900, value=3.0), _row(T0 + 86400 + 900, value=5.0)]
    rows[1]["bins_ACI"][3] = np.nan
    usable, rgb = site_channels(rows)
    image, top = false_colour(usable, rgb, date(2019, 5, 22), 900.0)
    assert image.shape == (4, 96, 3) and image.dtype == np.float32 and top == 4 * 500.0
    np.testing.assert_allclose(image[::-1, 1], rgb[0], rtol=1e-6)  # bin 0 in the bottom row
    np.testing.assert_allclose(image[1:, 3], rgb[1][:3][::-1], rtol=1e-6)
    np.testing.assert_allclose(image[0, 3], [GAP[0], *rgb[1][3][1:]], rtol=1e-6)  # a NaN channel is grey
    grey = np.ones(96, bool)
    grey[[1, 3]] = False
    assert np.all(image[:, grey] == np.array(GAP, dtype=np.float32))
    nextday, _ = false_colour(usable, rgb, date(2019, 5, 23), 900.0)
    np.testing.assert_allclose(nextday[::-1, 1], rgb[2], rtol=1e-6)
    assert np.all(nextday[:, 0] == np.float32(GAP[0]))


def test_a_diel_grid_is_the_step_of_the_day_by_date_with_gaps_nan():
    rows = [_row(T0 + 1800, ACI=1.0), _row(T0 + 86400 + 3600, ACI=2.0), _row(T0 + 86400 + 7200, ACI=None),
            _row(T0 + 3 * 86400, ACI=4.0)]
    grid, days = diel_grid(rows, "ACI", 1800.0)
    assert days == [date(2019, 5, 22), date(2019, 5, 23), date(2019, 5, 25)] and grid.shape == (48, 3)
    assert grid[1, 0] == 1.0 and grid[2, 1] == 2.0 and grid[0, 2] == 4.0
    assert np.isnan(grid[4, 1]) and np.isfinite(grid).sum() == 3


def test_the_bands_average_their_bins_and_the_days_of_each_step_and_leave_an_empty_step_nan():
    # 6 bins of 400 Hz: bins 0-2 in band 0 (0-1 kHz, bin 2 from 800 Hz), 3-4 in band 1, 5 in band 2 (to 2.4 kHz)
    a, b, c = _row(T0, bins=6, bin_hz=400.0), _row(T0 + 86400, bins=6, bin_hz=400.0, value=3.0), \
        _row(T0 + 3600, bins=6, bin_hz=400.0)
    c["bins_EVN"] = np.array([np.nan, 2.0, np.nan, np.nan, np.nan, 6.0])
    grid, top = band_grid([a, b, c], 3600.0)
    assert grid.shape == (3, 24) and top == 2400.0
    np.testing.assert_allclose(grid[:, 0], [(2 + 6) / 2, (4.5 + 13.5) / 2, (6 + 18) / 2])  # a's and b's days averaged
    np.testing.assert_allclose(grid[[0, 2], 1], [2.0, 6.0])
    assert np.isnan(grid[1, 1])  # a band of NaN bins: nothing
    assert np.isnan(grid[:, 2:]).all()


def test_the_figures_say_what_they_show_in_their_titles():
    rows = [_row(T0 + k * 900, value=k + 1.0, ACI=float(k)) for k in range(4)]
    usable, rgb = site_channels(rows)
    assert _title(false_colour_png(usable, rgb, "ridge", date(2019, 5, 22), 900.0)) == \
        "ridge 2019-05-22: red ACI, green 1 - ENT, blue EVN; grey: no recording"
    assert _title(diel_png(rows, "ridge", "ACI", 900.0)) == "ridge: ACI"
    assert _title(band_png(usable, "ridge", 900.0)) == \
        "ridge: acoustic events per second by 1-kHz band, mean of 1 day(s)"


@pytest.fixture
def drawn(monkeypatch) -> list:
    """The figures behind the PNGs the page's functions return (each still saved as its PNG): their axes, scales and
    cells are what a reader sees."""
    figures = []
    png = soundscape._png
    monkeypatch.setattr(soundscape, "_png", lambda fig: figures.append(fig) or png(fig))
    return figures


def _pure(png: bytes, colours: np.ndarray) -> float:
    """The share of a picture's coloured pixels (:func:`_coloured`'s) that are exactly one of ``colours`` (0-1)."""
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int).reshape(-1, 3)
    rgb = rgb[rgb.max(axis=-1) - rgb.min(axis=-1) > 40]
    want = np.round(np.asarray(colours) * 255).astype(int)
    return float(np.mean((np.abs(rgb[:, None] - want[None]).max(axis=-1) <= 1).any(axis=1)))


@pytest.mark.filterwarnings("error")  # drawing says nothing on the console
def test_a_false_colour_is_the_day_in_hours_across_and_khz_up_each_minute_its_own_colour_never_a_blend(drawn):
    """A day recorded minute by minute, two sounds alternating: 1,440 columns drawn on fewer pixels show each
    minute's own colour (the nearest column), never a blend of neighbours; the axes read 0-24 h every 3 h and 0 kHz
    to the top bin's edge."""
    rows = [_row(T0 + 60 * k, value=(1.0, 3.0)[k % 2]) for k in range(1440)]
    usable, rgb = site_channels(rows)
    png = false_colour_png(usable, rgb, "ridge", date(2019, 5, 22), 60.0)
    [fig] = drawn
    ax = fig.axes[0]
    image, top = false_colour(usable, rgb, date(2019, 5, 22), 60.0)
    np.testing.assert_array_equal(ax.images[0].get_array(), image)
    assert list(ax.images[0].get_extent()) == [0, 24, 0, top / 1000] and top == 2000.0  # midnight to midnight
    assert (ax.get_xlim(), ax.get_ylim()) == ((0, 24), (0, top / 1000))
    assert list(ax.get_xticks()) == list(range(0, 25, 3))
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("hour of day (local)", "kHz")
    assert tuple(fig.get_size_inches()) == (10, 3.2)
    assert _pure(png, np.unique(image.reshape(-1, 3), axis=0)) > 0.99


@pytest.mark.filterwarnings("error")
def test_a_diel_plot_is_each_days_steps_in_colour_its_gaps_grey_on_hours_up_and_dates_across(drawn):
    """Each cell is the step's value (viridis), a step without one shows the grey behind; hours 0-24 up every
    6 h; a date under each day's cells, turned upright past 6 days; a wider figure for more days; the colour bar
    spans the values."""
    few = [_row(T0 + 1800, ACI=1.0), _row(T0 + 86400 + 3600, ACI=2.0)]
    many = [_row(T0 + d * 86400 + 1800 * d, ACI=float(d)) for d in range(20)]
    for rows, rotation, width in ((few, 0, 3.5), (many[:6], 0, 3.5), (many[:7], 90, 3.5), (many, 90, 6.0)):
        diel_png(rows, "ridge", "ACI", 1800.0)
        fig = drawn[-1]
        ax, bar = fig.axes
        grid, days = diel_grid(rows, "ACI", 1800.0)
        [mesh] = ax.collections
        np.testing.assert_array_equal(mesh.get_array().filled(np.nan), grid)
        assert mesh.get_cmap().name == "viridis" and ax.get_facecolor() == (*GAP, 1)
        assert bar.get_ylim() == (np.nanmin(grid), np.nanmax(grid))
        np.testing.assert_allclose(mesh.get_coordinates()[:, 0, 1], np.linspace(0, 24, grid.shape[0] + 1))  # hours
        np.testing.assert_array_equal(mesh.get_coordinates()[0, :, 0], np.arange(len(days) + 1))  # a day a column
        assert (ax.get_xlim(), ax.get_ylim()) == ((0, len(days)), (0, 24))
        assert list(ax.get_yticks()) == list(range(0, 25, 6)) and ax.get_ylabel() == "hour of day (local)"
        labels = ax.get_xticklabels()
        assert [t.get_text() for t in labels] == [d.strftime("%m-%d") for d in days]
        assert list(ax.get_xticks()) == [d + 0.5 for d in range(len(days))]  # under its day's cells
        assert {t.get_rotation() for t in labels} == {rotation}
        assert tuple(fig.get_size_inches()) == (width, 3.4)


@pytest.mark.filterwarnings("error")
def test_the_bands_plot_is_each_bands_events_by_hour_its_top_band_cut_at_the_top_bin(drawn):
    """Each band's mean events per second in its cell (magma), empty steps grey; hours across every 3 h, kHz up,
    the last band ending at the recording's top frequency (2.4 kHz: not 3); the colour bar spans the values."""
    rows = [_row(T0 + 3600 * h, bins=6, bin_hz=400.0, value=h + 1.0) for h in range(0, 24, 2)]
    band_png(rows, "ridge", 3600.0)
    [fig] = drawn
    ax, bar = fig.axes
    grid, top = band_grid(rows, 3600.0)
    [mesh] = ax.collections
    np.testing.assert_array_equal(mesh.get_array().filled(np.nan), grid)
    assert mesh.get_cmap().name == "magma" and ax.get_facecolor() == (*GAP, 1)
    assert bar.get_ylim() == (np.nanmin(grid), np.nanmax(grid))
    np.testing.assert_allclose(mesh.get_coordinates()[:, 0, 1], [0, 1, 2, 2.4])
    np.testing.assert_allclose(mesh.get_coordinates()[0, :, 0], np.linspace(0, 24, 25))
    assert list(ax.get_xticks()) == list(range(0, 25, 3))
    assert (ax.get_xlabel(), ax.get_ylabel(), bar.get_ylabel()) == ("hour of day (local)", "kHz", "events / s (EVN)")
    assert tuple(fig.get_size_inches()) == (10, 3.2)

def test_a_sites_summary_counts_files_segments_failures_and_hours_and_means_the_scored():
    every = [{"site": "ridge", "clip_id": c} for c in ("f1", "f1", "f2", "f3")]
    rows = [_row(T0 + 900, ACI=1.0, NDSI=0.5, BI=None, share_bird=0.25), _row(T0, ACI=3.0, NDSI=None, BI=None,
                                                                             share_bird=0.75)]
    s = site_summary("ridge", every, rows, ("bird",))
    assert (s["site"], s["files"], s["segments"], s["failed"], s["hours"]) == ("ridge", 3, 4, 2, 120 / 3600)
    assert s["first"] == "2019-05-22T00:00:00+00:00" and s["last"] == "2019-05-22T00:15:00+00:00"
    assert (s["ACI"], s["NDSI"], s["share_bird"]) == (2.0, 0.5, 0.5) and np.isnan(s["BI"])
    empty = site_summary("dead", every[:1], [], ())
    assert (empty["failed"], empty["hours"], empty["first"], empty["last"]) == (1, 0, None, None)


def _coloured(png: bytes) -> float:
    """The share of a picture's pixels in colour (not grey, white or black: the plot's cells, not its gaps or text)."""
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    return float(np.mean(rgb.max(axis=-1) - rgb.min(axis=-1) > 40))


def test_the_page_lists_each_site_with_its_pictures_and_a_site_without_a_scored_segment_says_so(tmp_path):
    """Each site's pictures and summary, on its own step; the page written again into the same folder (the next
    night's run) replaces it."""
    # ridge: a segment every 15 min, the last at a bat detector's rate (more bins: the one in the false colour)
    rows = [{"site": "ridge", "clip_id": "f1", "start_time": int((T0 + 900 * k) * 1000), "offset_s": 0.0,
             "duration_s": 10.0, "bin_hz": 32000.0, "error": None, "ACI": 1.0 + k, "share_bird": 0.5,
             **{f"bins_{n}": [float(k + 1), 2.0, 3.0, 1.0, 2.5][:2 + k + k // 2]
                for n in ("ACI", "ENT", "EVN", "BGN", "ACT")}}
            for k in range(3)]
    rows.append({"site": "<b>dead</b>", "clip_id": "f9", "start_time": int(T0 * 1000), "error": "decode/corrupt: x"})
    table = pa.Table.from_pylist(rows, schema=schema(("bird",)))
    issue = Issue("clock_jump", "ridge", "f1", "f2", "ridge: f2 starts 1:00:00 after f1 ends")
    page = tmp_path / "page-X"
    write_page(table, str(page), UTC, ("bird",), [], EventRule(0.8, 0.3))
    uri = write_page(table, str(page), PLUS2, ("bird",), [issue], EventRule(0.8, 0.3))
    assert uri == str(page / "index.html")
    html = (page / "index.html").read_text()
    written = sorted(p.name for p in page.glob("*.png"))
    assert written == sorted(["site1-2019-05-22-false-colour.png", "site1-bands.png",
                              *(f"site1-diel-{c}.png" for c in ("ACI", "NDSI", "BI", "Ht", "EVNspCount", "LEQt",
                                                                "share_bird"))])
    assert "Soundscape of 2 site(s)" in html and "UTC+02:00" in html and "ridge: f2 starts 1:00:00 after" in html
    assert "hysteresis: starts at p &gt;= 0.8, extends while p &gt;= 0.3" in html and "<b>dead</b>" not in html
    dead, ridge = html.split("<section")[1:]
    assert "&lt;b&gt;dead&lt;/b&gt;" in dead and "No segment of this site could be scored." in dead
    assert "<img" not in dead and "No segment" not in ridge
    assert "src='site1-2019-05-22-false-colour.png' alt='false-colour spectrogram of ridge on 2019-05-22'" in ridge
    assert "src='site1-bands.png'" in ridge and "in each 1-kHz band" in ridge and "160.0 kHz here" in ridge
    assert "alt='diel plot of share_bird at ridge'" in ridge and "alt='diel plot of ACI at ridge'" in ridge
    summary = html.split("<tbody>")[1].split("</tbody>")[0]
    assert "<td>ridge</td><td>1</td><td>3</td><td>0</td><td>0.01</td><td>2019-05-22T02:00:00+02:00</td>" in summary
    assert "<td>&lt;b&gt;dead&lt;/b&gt;</td><td>1</td><td>1</td><td>1</td><td>0.00</td><td>–</td>" in summary
    assert _title((page / "site1-diel-share_bird.png").read_bytes()) == "ridge: share_bird"
    assert _title((page / "site1-2019-05-22-false-colour.png").read_bytes()).startswith("ridge 2019-05-22: red ACI")
    assert _title((page / "site1-bands.png").read_bytes()).startswith("ridge: acoustic events per second")
    # the segment in the picture lights one 15-min step of the day's 96 (at 1-min steps, one of 1,440: a hairline)
    assert _coloured((page / "site1-2019-05-22-false-colour.png").read_bytes()) > 0.004
