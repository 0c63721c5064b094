"""What the soundscape job decides, each step in this process in well under a second (jobs/soundscape/job.py): the
recordings it finds, the event rule it takes from the flags, each file's length for the timeline, the parts folder
its settings name, which spans a resumed run scores, where it scores them, the table it assembles, what a model's
windows write (events, histories) and what its run record keeps. The whole runs that join these steps are
test_soundscape_run's."""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest
from test_soundscape_run import T0, _table, _write

from acoustic_env.audio.timeline import Issue, Placed
from acoustic_env.config import ConfigError, FeatureParams
from acoustic_env.config.soundscape import SoundscapeConfig
from acoustic_env.jobs.soundscape.events import EventRule
from acoustic_env.jobs.soundscape.job import PARTS, Scoring, SoundscapeResult, assemble, event_rule, file_lengths, \
    parts_folder, plan, record, recordings, scoring, unscored, write_model_outputs
from acoustic_env.jobs.soundscape.segments import SegmentSpan, schema, settings_key

SR = 8000


def _span(clip_id, first, end, frames=5 * SR, sr=SR, index=0):
    return SegmentSpan(index, clip_id, f"/in/{clip_id}.wav", first, end, frames, sr, "S1", T0)


def _placed(clip_id, site="S1", start=T0):
    return Placed(clip_id, f"/in/{clip_id}.wav", site, datetime.fromtimestamp(start, timezone.utc), "song_meter")


def test_recordings_are_placed_on_the_recorders_zone_and_none_found_is_one_line(tmp_path):
    _write(tmp_path / "S1_20190522_020000.wav", 0.1)
    _write(tmp_path / "S2_20190522_021500.wav", 0.1)
    got = recordings([str(tmp_path)], "Europe/Paris")  # 02:00 in Paris (summer time) is midnight UTC
    assert [(p.clip_id, p.site, p.start.timestamp()) for p in got] == [
        ("S1_20190522_020000", "S1", T0), ("S2_20190522_021500", "S2", T0 + 900)]
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"^inputs: no recordings found$"):
        recordings([str(tmp_path / "empty")], "UTC")


def test_a_file_of_one_sample_is_scored_and_one_of_none_is_an_error_row(tmp_path):
    _write(tmp_path / "S1_20190522_000000.wav", 1 / SR)
    _write(tmp_path / "S1_20190522_001500.wav", 0.0)
    failed, spans = plan(recordings([str(tmp_path)], "UTC"), 60.0, 2)
    assert [(s.clip_id, s.first, s.end, s.frames, s.sr) for s in spans] == [("S1_20190522_000000", 0, 1, 1, SR)]
    assert [(r["clip_id"], r["error"]) for r in failed] == [
        ("S1_20190522_001500", "decode/too_short: no audio samples in the file")]


def test_the_event_rule_is_the_four_flags_each_in_its_place():
    cfg = SoundscapeConfig(inputs=("x",), output="o", event_high=0.8, event_low=0.3, event_min_duration_s=2.0,
                           event_max_gap_s=5.0)
    assert event_rule(cfg) == EventRule(high=0.8, low=0.3, min_duration_s=2.0, max_gap_s=5.0)


def test_each_files_length_is_its_frames_over_its_rate_and_an_unreadable_one_has_none():
    placed = [_placed("a"), _placed("b", start=T0 + 900), _placed("bad", start=T0 + 1800)]
    spans = [_span("a", 0, 3, frames=int(2.5 * SR)), _span("b", 0, 2, frames=5 * 16000, sr=16000),
             _span("b", 2, 4, frames=5 * 16000, sr=16000)]
    assert file_lengths(placed, spans) == {"a": 2.5, "b": 5.0, "bad": None}


def test_the_parts_folder_changes_with_each_setting_that_changes_a_segments_values_and_no_other():
    cfg = SoundscapeConfig(inputs=("x",), output="/out", segment_s=10.0)
    params = FeatureParams()
    here = parts_folder(cfg, params, None)
    assert here.startswith(f"/out/{PARTS}/") and here.count("/") == 3
    assert here == parts_folder(SoundscapeConfig(inputs=("y",), output="/out", segment_s=10.0, event_high=0.9,
                                                 in_process_max=3, span_segments=2), params, None)
    others = [parts_folder(SoundscapeConfig(inputs=("x",), output="/out", segment_s=20.0), params, None),
              parts_folder(cfg, FeatureParams(maad_nperseg=512), None),
              parts_folder(cfg, params, "model-1"),
              parts_folder(SoundscapeConfig(inputs=("x",), output="/out", segment_s=10.0, window_s=2.0), params, None)]
    assert len({here, *others}) == 5
    assert others[2].endswith(settings_key(10.0, params, "model-1", None))


def test_a_resumed_run_scores_only_the_spans_without_a_part_in_their_order():
    spans = [_span("a", 0, 2), _span("a", 2, 4), _span("b", 0, 2, index=1), _span("c", 0, 1, index=2)]
    listed = [f"s3://bucket/out/{PARTS}/k/{spans[1].part_name()}", f"/out/{PARTS}/k/{spans[2].part_name()}",
              f"/out/{PARTS}/k/part-other.parquet"]
    assert unscored(spans, listed) == [spans[0], spans[3]]
    assert unscored(spans, []) == spans
    assert unscored(spans, [f"/o/{s.part_name()}" for s in spans]) == []


def test_a_few_segments_are_scored_here_and_more_or_a_named_cluster_go_to_ray():
    cfg = SoundscapeConfig(inputs=("x",), output="o", in_process_max=5, device="cuda")
    todo = [_span("a", 0, 2), _span("a", 2, 5)]  # 5 segments
    assert scoring([], cfg, True, {}) == Scoring(True, "cuda", "nothing to score: every span has its part")
    assert scoring(todo, cfg, True, {}) == Scoring(True, "cuda", "in this process: 5 segment(s), at most "
                                                                  "--in-process-max (5)")
    assert scoring([*todo, _span("b", 0, 1)], cfg, False, {}) == Scoring(False, "cpu",
                                                                         "on Ray: 6 segment(s) in 3 span(s)")
    assert scoring(todo, cfg, True, {"RAY_ADDRESS": "ray://head:10001"}) == Scoring(
        False, "cuda", "on Ray: 5 segment(s) in 2 span(s)")
    named = SoundscapeConfig(inputs=("x",), output="o", in_process_max=5, ray_address="ray://head:10001")
    assert scoring(todo, named, False, {}).where == "on Ray: 5 segment(s) in 2 span(s)"
    assert scoring([], named, False, {"RAY_ADDRESS": "auto"}).here  # nothing to do: no Ray started


def test_by_default_the_cluster_is_named_by_the_processs_own_environment(monkeypatch):
    cfg, todo = SoundscapeConfig(inputs=("x",), output="o"), [_span("a", 0, 1)]
    monkeypatch.setenv("RAY_ADDRESS", "auto")
    assert not scoring(todo, cfg, False).here
    monkeypatch.delenv("RAY_ADDRESS")
    assert scoring(todo, cfg, False).here


def test_the_table_is_every_part_and_unreadable_file_on_one_schema_in_site_time_and_file_order():
    classes = ("bird",)
    failed = [{"site": "S2", "clip_id": "bad", "uri": "/in/bad.wav", "start_time": round(T0 * 1000), "offset_s": 0.0,
               "error": "decode/not_audio: libsndfile cannot read it"}]
    later = _table([{"site": "S1", "clip_id": "b", "start_time": round((T0 + 60) * 1000), "offset_s": 0.0},
                    {"site": "S1", "clip_id": "b", "start_time": round((T0 + 120) * 1000), "offset_s": 60.0}])
    same_start = _table([{"site": "S1", "clip_id": "c", "start_time": round((T0 + 60) * 1000), "offset_s": 0.0},
                         {"site": "S1", "clip_id": "a", "start_time": round((T0 + 60) * 1000), "offset_s": 0.0}])
    first = _table([{"site": "S1", "clip_id": "z", "start_time": round(T0 * 1000), "offset_s": 0.0}])
    t = assemble(failed, [later, same_start, first], classes)
    assert t.schema.equals(schema(classes))
    assert [(r["site"], r["clip_id"], r["start_time"].timestamp() - T0) for r in t.to_pylist()] == [
        ("S1", "z", 0), ("S1", "a", 60), ("S1", "b", 60), ("S1", "c", 60), ("S1", "b", 120), ("S2", "bad", 0)]
    assert t["error"].to_pylist()[-1].startswith("decode/not_audio") and t["error"].null_count == 5
    assert assemble([], [], ()).schema.equals(schema())


def _windowed(site, clip_id, start, sample_rate, starts, probs, offset=0.0, error=None):
    return {"site": site, "clip_id": clip_id, "start_time": round((start + offset) * 1000), "offset_s": offset,
            "duration_s": 2.0 * len(starts), "sample_rate": sample_rate, "error": error,
            "win_start_s": [offset + s for s in starts], "win_end_s": [offset + s + 2.0 for s in starts],
            "win_prob_bird": probs}


def test_a_models_windows_become_events_on_the_recorders_clock_and_histories_of_their_occasions(tmp_path):
    day = 86400.0
    t = _table([  # S1: a call running from one file into the next; S2 a day later, one call
        _windowed("S1", "f1", T0, 16000, [0.0, 2.0], [0.9, 0.5]),
        _windowed("S1", "f2", T0 + 4, 48000, [0.0], [0.8]),
        _windowed("S2", "g1", T0 + day, 8000, [0.0], [0.1]),
        _windowed("S2", "g1", T0 + day, 8000, [0.0], [0.95], offset=2.0),
        {"site": "S2", "clip_id": "g2", "start_time": round((T0 + day + 60) * 1000), "offset_s": 0.0,
         "error": "decode/not_audio: x"}])
    out = tmp_path / "out"
    found, written = write_model_outputs(t, ("bird",), EventRule(0.7, 0.4), ZoneInfo("Pacific/Auckland"), 12.0,
                                         str(out))
    assert written == {"events": str(out / "events"), "histories": str(out / "histories")}
    assert [(e.site, e.start - T0, e.end - T0, e.first_file, e.last_file) for e in found] == [
        ("S1", 0.0, 6.0, "f1", "f2"), ("S2", day + 2, day + 4, "g1", "g1")]
    csv = (out / "events" / "events.csv").read_text().splitlines()
    assert csv[0] == "# " + EventRule(0.7, 0.4).said()
    assert "2019-05-22T12:00:00+12:00" in csv[2] and "2019-05-22T12:00:06+12:00" in csv[2]
    s1 = (out / "events" / "S1.selections.txt").read_text().splitlines()[1].split("\t")
    s2 = (out / "events" / "S2.selections.txt").read_text().splitlines()[1].split("\t")
    assert (s1[3], s1[4], s1[6]) == ("0.0000", "6.0000", "24000")  # from the site's first file, its top Nyquist
    assert (s2[3], s2[4], s2[6]) == ("2.0000", "4.0000", "4000")
    # 12-h occasions from the recorders' midnight (UTC's is 12 hours before): S1 at noon on the 22nd (occasion 1),
    # S2 at noon on the 23rd (3)
    occasions = "site,2019-05-22T00:00,2019-05-22T12:00,2019-05-23T00:00,2019-05-23T12:00\n"
    assert (out / "histories" / "detections_bird.csv").read_text() == occasions + "S1,NA,1,NA,NA\nS2,NA,NA,NA,1\n"
    assert (out / "histories" / "effort.csv").read_text() == occasions + "S1,0.0,0.1,0.0,0.0\nS2,0.0,0.0,0.0,0.067\n"


def test_the_run_record_keeps_the_counts_issues_rule_zone_and_where():
    issue = Issue("overlap", "S1", "a", "b", "S1: b starts 5.0 s before a ends")
    result = SoundscapeResult(_table([]), 4, 1, 3, 2, [issue], 7, "on Ray: 9 segment(s) in 3 span(s)",
                              {"table": "o/soundscape.parquet", "page": "o/page/index.html"})
    rule = EventRule(0.8, 0.3, 1.0, 2.0)
    assert record(result, rule, "Europe/Paris") == {
        "files": 4, "failed_files": 1, "scored_spans": 3, "resumed_spans": 2,
        "issues": ["S1: b starts 5.0 s before a ends"], "events": 7, "event_rule": rule.said(),
        "timezone": "Europe/Paris", "where": "on Ray: 9 segment(s) in 3 span(s)"}
