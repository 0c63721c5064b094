"""Recordings placed in time, events merged by hysteresis and detection histories, on timelines whose truth is
known by construction (the cases other tools' merges get wrong: a call longer than a window, two calls a gap
apart, an event across a file boundary)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from acoustic_env.audio.timeline import TimelineError, place, timeline_issues
from acoustic_env.config import ConfigError
from acoustic_env.jobs.soundscape.events import EventRule, events, site_events, write_events
from acoustic_env.jobs.soundscape.histories import histories, write_histories

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
    assert "5.0 s before S1_20190522_003000 ends" in issues[0].message


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
