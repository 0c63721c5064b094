"""Recordings placed in time, events merged by hysteresis and detection histories, on timelines whose truth is
known by construction (the cases other tools' merges get wrong: a call longer than a window, two calls a gap
apart, an event across a file boundary)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from acoustic_env.audio.timeline import TimelineError, place, timeline_issues, usual_interval
from acoustic_env.config import ConfigError
from acoustic_env.jobs.soundscape.events import EventRule, events, safe_name, site_events, write_events
from acoustic_env.jobs.soundscape.histories import Histories, histories, write_histories

T0 = datetime(2019, 5, 22, 6, 0, tzinfo=timezone.utc).timestamp()


def test_song_meter_and_audiomoth_names_give_site_and_start_in_the_stated_zone():
    placed = place([{"clip_id": "a", "uri": "/d/S4A03895_20190522_061500.wav"},
                    {"clip_id": "b", "uri": "s3://bucket/north/20190522_000000.WAV?x=1"},
                    {"clip_id": "c", "uri": "/d/north/20190523/20190523_000000.WAV"},
                    {"clip_id": "d", "uri": "/d/20190523/20190523_000000.WAV"}], "Europe/Paris")
    by = {p.clip_id: p for p in placed}
    assert (by["c"].site, by["d"].site) == ("north", "d")  # a day's folder: the site is the folder above
    assert (by["a"].site, by["a"].source) == ("S4A03895", "song_meter")
    assert by["a"].start.isoformat() == "2019-05-22T06:15:00+02:00"
    assert (by["b"].site, by["b"].source, by["b"].start.hour) == ("north", "audiomoth", 0)


@pytest.mark.parametrize("uri, site", [
    ("C:\\rec\\S1_20190522_061500.wav", "S1"),  # a Windows path
    ("/d/a#b?c/S1_20190522_061500.wav", "S1"),  # a local folder named with # and ?: not a URL's parts
    ("site.3_20190522_061500.wav", "site.3"),  # a recorder prefix holding a dot
    ("s3://bucket/north/20190522_061500.WAV?v=a/b.5", "north"),  # a URL's query is not the name
    ("C:\\moths\\north\\20190522_061500.WAV", "north"),
    ("20190522_061500.WAV", "unknown"),  # an AudioMoth file at the root: no folder to name the site
    ("/d/north#2/20190522_061500.WAV", "north#2"),  # a local site folder named with #
])
def test_the_name_is_read_from_any_path(uri, site):
    [p] = place([{"clip_id": "a", "uri": uri}])
    assert (p.site, p.uri, p.start.isoformat()) == (site, uri, "2019-05-22T06:15:00+00:00")


def test_a_clip_lists_empty_site_or_time_falls_back_to_the_name():
    placed = place([{"clip_id": "a", "uri": "/d/S1_20190522_061500.wav", "site": "", "start_time": "2019-05-23T07:00Z"},
                    {"clip_id": "b", "uri": "/d/ridge/clip.wav", "site": None, "start_time": "2019-05-23T08:00"},
                    {"clip_id": "c", "uri": "/d/S2_20190522_061500.wav", "site": "", "start_time": ""}],
                   "Europe/Paris")
    assert [(p.clip_id, p.site, p.start.isoformat(), p.source) for p in placed] == [
        ("a", "S1", "2019-05-23T07:00:00+00:00", "manifest"), ("c", "S2", "2019-05-22T06:15:00+02:00", "song_meter"),
        ("b", "ridge", "2019-05-23T08:00:00+02:00", "manifest")]


def test_manifest_columns_win_over_the_name_and_keep_their_offset():
    placed = place([{"clip_id": "a", "uri": "/d/S1_20190522_061500.wav", "site": "ridge",
                     "start_time": "2019-05-23T07:00:00-05:00"},
                    {"clip_id": "b", "uri": "/d/x.wav", "site": "ridge", "start_time": "2019-05-23T08:00:00"}])
    assert [(p.site, p.start.isoformat(), p.source) for p in placed] == [  # in time order: 07:00-05:00 is 12:00 UTC
        ("ridge", "2019-05-23T08:00:00+00:00", "manifest"), ("ridge", "2019-05-23T07:00:00-05:00", "manifest")]


@pytest.mark.parametrize("row, said", [
    ({"clip_id": "x", "uri": "/d/recording 7.wav"}, "recording 7.wav: no start time in its name; tried "
                                                    "SITE_YYYYMMDD_HHMMSS (song_meter), YYYYMMDD_HHMMSS (audiomoth)"),
    ({"clip_id": "x", "uri": "/d/S1_20191332_250000.wav"}, "S1_20191332_250000.wav: 20191332_250000 is not a date"),
    ({"clip_id": "x", "uri": "/d/a.wav", "start_time": "last tuesday"}, "x: start_time 'last tuesday' is not an "
                                                                        "ISO 8601 time"),
])
def test_an_unreadable_time_is_one_line_naming_the_file(row, said):
    with pytest.raises(TimelineError) as err:
        place([row])
    assert str(err.value).startswith(said) and "\n" not in str(err.value)


def test_an_unknown_zone_names_the_setting():
    with pytest.raises(TimelineError, match="^timezone: unknown time zone 'Mars/Olympus'"):
        place([], "Mars/Olympus")


def test_overlaps_and_clock_jumps_are_reported_not_merged():
    names = ["S1_20190522_000000", "S1_20190522_001500", "S1_20190522_003000", "S1_20190522_003005",
             "S1_20190522_005213", "S1_20190522_010000", "S2_20190522_000000"]
    placed = place([{"clip_id": n, "uri": f"/d/{n}.wav"} for n in names])
    issues = timeline_issues(placed, {n: 10.0 for n in names})
    assert [(i.kind, i.first, i.second) for i in issues] == [
        ("overlap", "S1_20190522_003000", "S1_20190522_003005"),
        ("clock_jump", "S1_20190522_003005", "S1_20190522_005213"),
        ("clock_jump", "S1_20190522_005213", "S1_20190522_010000")]
    assert issues[0].message == ("S1: S1_20190522_003005 starts 2019-05-22T00:30:05+00:00, 5.0 s before "
                                 "S1_20190522_003000 ends; both are kept, not merged")
    assert issues[1].message == ("S1: S1_20190522_005213 starts 0:22:08 after S1_20190522_003005, off the site's "
                                 "schedule of one every 0:15:00: a clock jump?")
    assert {i.site for i in issues} == {"S1"}


def test_files_end_to_end_do_not_overlap_and_a_drift_within_the_tolerance_is_no_jump():
    names = ["S1_20190522_000000", "S1_20190522_001500", "S1_20190522_003002", "S1_20190522_004500"]
    placed = place([{"clip_id": n, "uri": f"/d/{n}.wav"} for n in names])
    assert timeline_issues(placed, {"S1_20190522_000000": 900.0, "S1_20190522_001500": 10.0}) == []


@pytest.mark.parametrize("gaps, every", [([900, 900], 900.0), ([0, 0], None), ([0, 0, 0, 900], 900.0),
                                         ([1, 1], 1.0), ([900], None)])
def test_a_sites_usual_interval(gaps, every):
    """The median of the intervals between starts, files starting together left out; None from fewer than three
    files or none apart."""
    starts = [datetime(2019, 5, 22, tzinfo=timezone.utc) + timedelta(seconds=float(sum(gaps[:k])))
              for k in range(len(gaps) + 1)]
    assert usual_interval(starts) == every


def windows(probs, *, start=T0, length=1.0, site="S1", clip="f1", file_start=None):
    """Back-to-back windows of ``length`` s from ``start`` with the given probabilities of ``bird``."""
    return [{"site": site, "clip_id": clip, "start": start + i * length, "end": start + (i + 1) * length,
             "file_start": start if file_start is None else file_start, "prob_bird": p} for i, p in enumerate(probs)]


def spans(found):
    return [(e.start - T0, e.end - T0) for e in found]


def test_a_call_longer_than_a_window_is_one_event_with_its_peak_and_mean():
    found = events(windows([0.1, 0.5, 0.9, 0.8, 0.45, 0.1]), ["bird"], EventRule(high=0.7, low=0.4))
    assert spans(found) == [(1.0, 5.0)]
    assert (found[0].peak, found[0].mean, found[0].windows) == (0.9, pytest.approx((0.5 + 0.9 + 0.8 + 0.45) / 4), 4)


def test_low_alone_never_starts_an_event():
    assert events(windows([0.1, 0.6, 0.65, 0.1]), ["bird"], EventRule(high=0.7, low=0.4)) == []


def test_two_calls_a_gap_apart_merge_only_within_the_longest_gap():
    probs = [0.9, 0.9, 0.1, 0.1, 0.9]  # two calls, two windows (2 s) apart
    assert spans(events(windows(probs), ["bird"], EventRule(max_gap_s=1.9))) == [(0.0, 2.0), (4.0, 5.0)]
    assert spans(events(windows(probs), ["bird"], EventRule(max_gap_s=2.0))) == [(0.0, 5.0)]


def test_an_event_shorter_than_the_minimum_is_dropped():
    found = events(windows([0.9, 0.1, 0.9, 0.9, 0.9]), ["bird"], EventRule(min_duration_s=2.0))
    assert spans(found) == [(2.0, 5.0)]


def test_an_event_continues_across_consecutive_files_and_not_across_a_recorder_off():
    first = windows([0.1, 0.8, 0.9], clip="f1")
    second = windows([0.85, 0.5, 0.1], start=T0 + 3, clip="f2")  # starts as f1 ends
    found = events(second + first, ["bird"], EventRule())
    assert spans(found) == [(1.0, 5.0)]
    assert (found[0].first_file, found[0].last_file, found[0].file_offset_s) == ("f1", "f2", 1.0)
    later = windows([0.85, 0.5, 0.1], start=T0 + 60, clip="f3")  # the recorder was off for 57 s
    assert spans(events(first + later, ["bird"], EventRule(max_gap_s=5))) == [(1.0, 3.0), (60.0, 62.0)]


def test_overlapping_windows_merge_and_sites_stay_apart():
    hop = [{**w, "end": w["start"] + 2.0} for w in windows([0.9, 0.9, 0.9])]  # 2-s windows every second
    other = windows([0.9], site="S2")
    found = events(hop + other, ["bird"], EventRule())
    assert [(e.site, e.start - T0, e.end - T0) for e in found] == [("S1", 0.0, 4.0), ("S2", 0.0, 1.0)]


def test_site_events_ignores_windows_without_a_probability():
    ws = [{**w, "prob": w["prob_bird"]} for w in windows([0.9, None, 0.9])]
    assert spans(site_events(ws, "bird", EventRule())) == [(0.0, 1.0), (2.0, 3.0)]


@pytest.mark.parametrize("rule", [dict(high=0.3, low=0.5), dict(low=-0.1), dict(high=1.5), dict(max_gap_s=-1)])
def test_a_bad_rule_is_a_config_error(rule):
    with pytest.raises(ConfigError, match="^events: "):
        EventRule(**rule)


def test_the_thresholds_and_the_minimum_are_inclusive():
    """A window at exactly ``high`` starts an event, one at exactly ``low`` extends it, an event of exactly the
    minimum duration is kept; the rule's bounds themselves are allowed (0 <= low == high <= 1)."""
    found = events(windows([0.4, 0.7, 0.4, 0.39]), ["bird"], EventRule(high=0.7, low=0.4, min_duration_s=3.0))
    assert spans(found) == [(0.0, 3.0)]
    for high, low in ((1.0, 1.0), (0.5, 0.5), (0.0, 0.0)):
        assert EventRule(high=high, low=low).said().startswith(f"hysteresis: starts at p >= {high:g}, extends "
                                                                f"while p >= {low:g}")


def test_the_selection_tables_are_whole_files_raven_and_audacity_read(tmp_path):
    """The whole text: Raven's tab-separated header and one numbered line per event (from 1), a line break after
    each; Audacity's lines; the CSV's duration to the 0.1 ms; the URIs written are under the folder given, with a
    slash after it or not."""
    rule = EventRule()
    found = events(windows([0.9, 0.1, 0.9, 0.9], length=0.123456), ["bird"], rule)
    for folder in (f"{tmp_path}/a", f"{tmp_path}/b/"):
        written = write_events(found, {"S1": T0}, folder, rule, {"S1": 8000.0}, str)
        assert sorted(written) == sorted(f"{folder.rstrip('/')}/{n}" for n in (
            "events.csv", "S1.selections.txt", "S1.labels.txt"))
    raven = (tmp_path / "a" / "S1.selections.txt").read_text()
    assert raven == ("Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\tLow Freq (Hz)\tHigh Freq (Hz)\t"
                     "Begin File\tFile Offset (s)\tLabel\tPeak\tMean\n"
                     "1\tSpectrogram 1\t1\t0.0000\t0.1235\t0\t8000\tf1\t0.0000\tbird\t0.9000\t0.9000\n"
                     "2\tSpectrogram 1\t1\t0.2469\t0.4938\t0\t8000\tf1\t0.2469\tbird\t0.9000\t0.9000\n")
    assert (tmp_path / "a" / "S1.labels.txt").read_text() == ("0.0000\t0.1235\tbird 0.900\n"
                                                            "0.2469\t0.4938\tbird 0.900\n")
    assert [line.split(",")[4] for line in (tmp_path / "a" / "events.csv").read_text().splitlines()[2:]] == [
        "0.1235", "0.2469"]


@pytest.mark.parametrize("site, name", [("..ridge..", "ridge"), ("X.ridge.", "X.ridge"), ("...", "site"),
                                        (" a/b ", "_a_b_")])
def test_a_sites_file_name(site, name):
    assert safe_name(site) == name


def test_events_are_written_as_csv_raven_and_audacity_with_the_rule(tmp_path):
    rule = EventRule(max_gap_s=0.5)
    found = events(windows([0.1, 0.9, 0.8], site="<b>x</b>") + windows([0.9], site="S2"), ["bird"], rule)
    written = write_events(found, {"<b>x</b>": T0, "S2": T0 - 10}, str(tmp_path), rule,
                           {"<b>x</b>": 11000.0, "S2": 8000.0},
                           lambda t: datetime.fromtimestamp(t, timezone.utc).isoformat())
    assert sorted(p.rsplit("/", 1)[-1] for p in written) == [
        "S2.labels.txt", "S2.selections.txt", "_b_x__b_.labels.txt", "_b_x__b_.selections.txt", "events.csv"]
    csv_lines = (tmp_path / "events.csv").read_text().splitlines()
    assert csv_lines[0] == f"# {rule.said()}" and "merged across gaps <= 0.5 s" in csv_lines[0]
    assert csv_lines[2].startswith("<b>x</b>,bird,2019-05-22T06:00:01+00:00,2019-05-22T06:00:03+00:00,2.0,0.9,")
    raven = (tmp_path / "S2.selections.txt").read_text().splitlines()
    assert raven[1].split("\t")[3:10] == ["10.0000", "11.0000", "0", "8000", "f1", "0.0000", "bird"]
    assert (tmp_path / "_b_x__b_.labels.txt").read_text() == "1.0000\t3.0000\tbird 0.900\n"


def test_histories_mark_detections_and_leave_unsurveyed_cells_na(tmp_path):
    day = 86400.0
    segs = [{"site": "A", "start": T0, "duration_s": 60.0, "error": None},
            {"site": "A", "start": T0 + 60, "duration_s": 60.0, "error": None},
            {"site": "A", "start": T0 + 2 * day, "duration_s": 60.0, "error": None},
            {"site": "B", "start": T0 + day, "duration_s": 30.0, "error": None},
            {"site": "B", "start": T0 + 2 * day, "duration_s": 60.0, "error": "decode/corrupt: x"}]
    found = events(windows([0.9], site="A", start=T0 + 61) + windows([0.9], site="B", start=T0 + day + 5),
                   ["bird"], EventRule())
    h = histories(segs, found, ["bird", "frog"], 24, timezone.utc)
    assert [o.isoformat() for o in h.occasions] == ["2019-05-22T00:00:00+00:00", "2019-05-23T00:00:00+00:00",
                                                   "2019-05-24T00:00:00+00:00"]
    assert h.effort == [[2.0, 0.0, 1.0], [0.0, 0.5, 0.0]]
    assert h.detected == {"bird": [[1, None, 0], [None, 1, None]], "frog": [[0, None, 0], [None, 0, None]]}
    write_histories(h, str(tmp_path))
    assert (tmp_path / "detections_bird.csv").read_text() == (
        "site,2019-05-22T00:00,2019-05-23T00:00,2019-05-24T00:00\nA,1,NA,0\nB,NA,1,NA\n")
    assert (tmp_path / "effort.csv").read_text().splitlines()[2] == "B,0.0,0.5,0.0"


def test_histories_count_occasions_on_the_local_clock():
    tz = timezone(timedelta(hours=-5))
    segs = [{"site": "A", "start": T0, "duration_s": 60.0, "error": None},  # 01:00 local
            {"site": "A", "start": T0 + 13 * 3600, "duration_s": 60.0, "error": None}]  # 14:00 local
    h = histories(segs, [], ["bird"], 12, tz)
    assert [o.isoformat() for o in h.occasions] == ["2019-05-22T00:00:00-05:00", "2019-05-22T12:00:00-05:00"]
    assert h.effort == [[1.0, 1.0]]


def test_histories_take_the_stated_zone_and_the_first_days_midnight(tmp_path):
    """Occasions of 24 h from the local midnight of the first start (01:23:45.5 local: the origin is 00:00:00): a
    start at 23:00 local (04:00 UTC the next day) is the first day's, one at the next local midnight exactly is the
    second's, as are a start and an event late that night (the day after in UTC); effort in minutes to 0.001; the
    matrices' URIs are under the folder given."""
    tz = timezone(timedelta(hours=-5))
    first = datetime(2019, 5, 22, 1, 23, 45, 500000, tzinfo=tz).timestamp()
    segs = [{"site": "A", "start": first, "duration_s": 7.4, "error": None},
            {"site": "A", "start": datetime(2019, 5, 22, 23, 0, tzinfo=tz).timestamp(), "duration_s": 60.0,
             "error": None},
            {"site": "A", "start": datetime(2019, 5, 23, 0, 0, tzinfo=tz).timestamp(), "duration_s": 60.0,
             "error": None},
            {"site": "A", "start": datetime(2019, 5, 23, 22, 0, tzinfo=tz).timestamp(), "duration_s": 60.0,
             "error": None}]  # 03:00 UTC on the 24th: the 23rd's on the stated clock
    found = events(windows([0.9], site="A", start=datetime(2019, 5, 23, 22, 30, tzinfo=tz).timestamp()), ["bird"],
                   EventRule())
    h = histories(segs, found, ["bird"], 24, tz)
    assert [o.isoformat() for o in h.occasions] == ["2019-05-22T00:00:00-05:00", "2019-05-23T00:00:00-05:00"]
    assert h.effort == [[pytest.approx(7.4 / 60 + 1.0), 2.0]] and h.detected == {"bird": [[0, 1]]}
    written = write_histories(h, f"{tmp_path}/h")
    assert sorted(written) == [f"{tmp_path}/h/detections_bird.csv", f"{tmp_path}/h/effort.csv"]
    assert (tmp_path / "h" / "effort.csv").read_text().splitlines()[1] == "A,1.123,2.0"


def test_histories_of_no_segment_are_empty():
    assert histories([], [], ["bird"], 24, timezone.utc) == Histories([], [], [], {"bird": []})
