"""The soundscape job's run (jobs/soundscape/job.py) on a few seconds of audio made here: which files become spans
and which error rows, where the segments are scored and what the console says, what a second run reads back, the
windows and effort the events and histories are drawn from (fast; the real deployment, the model's events and the
run on Ray are test_soundscape_job's)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import soundfile as sf
from test_windows_routing_rules import stand_in_ray  # noqa: F401 - score_spans stood in for, as there

from acoustic_env.audio.timeline import Issue, place
from acoustic_env.config.soundscape import SoundscapeConfig
from acoustic_env.jobs.soundscape.job import PARTS, SoundscapeResult, _firsts, _segments, _windows, input_rows, plan, \
    soundscape, summary_lines
from acoustic_env.jobs.soundscape.segments import SegmentSpan, schema

SR = 8000
#: 2019-05-22 00:00:00 UTC
T0 = 1558483200.0


def _write(path, seconds, seed=0):
    rng = np.random.default_rng(seed)
    sf.write(path, 0.1 * rng.standard_normal(int(seconds * SR)), SR, subtype="PCM_16")
    return path


@pytest.fixture()
def deployment(tmp_path):
    """Two sites: S1 with a 2.5-s and a 5-s file, S2 with one of 1 s, and a file that is not audio."""
    d = tmp_path / "in"
    d.mkdir()
    _write(d / "S1_20190522_000000.wav", 2.5)
    _write(d / "S1_20190522_001500.wav", 5.0, seed=1)
    _write(d / "S2_20190522_000010.wav", 1.0, seed=2)
    (d / "S1_20190522_003000.wav").write_bytes(b"RIFF not really a wave file")
    return d


def test_each_readable_file_is_cut_into_spans_and_one_that_is_not_is_one_row_with_its_reason(deployment):
    _write(deployment / "S2_20190522_010000.wav", 0.0)
    placed = place([{"clip_id": p.stem, "uri": str(p)} for p in sorted(deployment.glob("*.wav"))])
    failed, spans = plan(placed, 1.0, 2)
    assert failed == [
        {"site": "S1", "clip_id": "S1_20190522_003000", "uri": str(deployment / "S1_20190522_003000.wav"),
         "start_time": 1558485000000, "offset_s": 0.0,
         "error": "decode/not_audio: libsndfile cannot read it (Format not recognised.)"},
        {"site": "S2", "clip_id": "S2_20190522_010000", "uri": str(deployment / "S2_20190522_010000.wav"),
         "start_time": 1558486800000, "offset_s": 0.0, "error": "decode/too_short: no audio samples in the file"}]
    uri = str(deployment / "S1_20190522_001500.wav")
    assert spans == [
        SegmentSpan(0, "S1_20190522_000000", str(deployment / "S1_20190522_000000.wav"), 0, 2, int(2.5 * SR), SR, "S1",
                    T0),
        SegmentSpan(1, "S1_20190522_001500", uri, 0, 2, 5 * SR, SR, "S1", T0 + 900),
        SegmentSpan(1, "S1_20190522_001500", uri, 2, 4, 5 * SR, SR, "S1", T0 + 900),
        SegmentSpan(1, "S1_20190522_001500", uri, 4, 5, 5 * SR, SR, "S1", T0 + 900),
        SegmentSpan(3, "S2_20190522_000010", str(deployment / "S2_20190522_000010.wav"), 0, 1, SR, SR, "S2", T0 + 10)]


def test_a_run_here_writes_every_segment_in_site_and_time_order_and_the_next_run_scores_only_a_new_file(
        deployment, tmp_path, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    out = tmp_path / "out"
    cfg = SoundscapeConfig(inputs=(str(deployment),), output=str(out), segment_s=1.0, span_segments=2)
    got = soundscape(cfg)
    t = pq.read_table(out / "soundscape.parquet")
    assert t.equals(got.table) and t.schema.equals(schema())
    assert [(r["site"], r["clip_id"][3:], r["offset_s"]) for r in t.to_pylist()] == [
        ("S1", "20190522_000000", 0.0), ("S1", "20190522_000000", 1.0), ("S1", "20190522_001500", 0.0),
        ("S1", "20190522_001500", 1.0), ("S1", "20190522_001500", 2.0), ("S1", "20190522_001500", 3.0),
        ("S1", "20190522_001500", 4.0), ("S1", "20190522_003000", 0.0), ("S2", "20190522_000010", 0.0)]
    assert [r["error"] is None for r in t.to_pylist()] == [True] * 7 + [False, True]
    assert (got.files, got.failed_files, got.scored_spans, got.resumed_spans, got.events) == (4, 1, 5, 0, 0)
    assert got.where == "in this process: 8 segment(s), at most --in-process-max (400)"
    assert got.written == {"table": str(out / "soundscape.parquet"), "page": str(out / "page" / "index.html")}
    assert len(list((out / PARTS).glob("*/*.parquet"))) == 5 and (out / "page" / "index.html").is_file()
    assert not (out / "events").exists() and not (out / "histories").exists()
    record = sorted((out / "runs").glob("*.json")) if (out / "runs").exists() else sorted(out.glob("**/soundscape-*"))
    assert record, "the run is recorded"
    _write(deployment / "S2_20190522_001510.wav", 2.0, seed=3)  # the next file lands: it alone is scored
    again = soundscape(cfg)
    assert (again.scored_spans, again.resumed_spans, again.table.num_rows) == (1, 5, 11)
    assert again.where == "in this process: 2 segment(s), at most --in-process-max (400)"
    assert again.table.filter(pc.not_equal(again.table["clip_id"], "S2_20190522_001510")).equals(got.table)


def test_more_segments_than_in_process_max_or_a_named_cluster_go_to_ray_once(deployment, tmp_path, monkeypatch,
                                                                          stand_in_ray):  # noqa: F811
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    calls = []
    site = tuple(str(deployment / f"S1_20190522_{t}.wav") for t in ("000000", "001500"))  # 2 + 5 segments
    cfg = SoundscapeConfig(inputs=site, output=str(tmp_path / "ray"), segment_s=1.0, span_segments=2,
                           in_process_max=6, weights_cache=str(tmp_path / "w"))
    got = soundscape(cfg, on_ray=lambda: calls.append(1))
    assert calls == [1] and got.where == "on Ray: 7 segment(s) in 4 span(s)"
    assert got.table.num_rows == 7 and got.scored_spans == 4 and got.table["error"].null_count == 7
    [given] = stand_in_ray
    assert [(s.clip_id[3:], s.first, s.end) for s in given["spans"]] == [
        ("20190522_000000", 0, 2), ("20190522_001500", 0, 2), ("20190522_001500", 2, 4), ("20190522_001500", 4, 5)]
    here = soundscape(SoundscapeConfig(inputs=site, output=str(tmp_path / "here"), segment_s=1.0, in_process_max=7))
    assert here.where.startswith("in this process: 7 segment(s)") and here.table.equals(got.table)
    assert given["address"] is None and given["device"] == "cpu"
    assert given["kwargs"] == {"weights_cache": str(tmp_path / "w")}
    monkeypatch.setenv("RAY_ADDRESS", "ray://cluster:10001")  # a few segments, but a cluster named
    named = soundscape(SoundscapeConfig(inputs=(str(deployment / "S2_20190522_000010.wav"),),
                                        output=str(tmp_path / "named"), segment_s=1.0))
    assert named.where == "on Ray: 1 segment(s) in 1 span(s)" and len(stand_in_ray) == 2
    monkeypatch.delenv("RAY_ADDRESS")
    cluster = soundscape(SoundscapeConfig(inputs=(str(deployment / "S2_20190522_000010.wav"),),
                                          output=str(tmp_path / "cluster"), segment_s=1.0,
                                          ray_address="ray://head:10001"))
    assert cluster.where == "on Ray: 1 segment(s) in 1 span(s)" and stand_in_ray[2]["address"] == "ray://head:10001"


def test_a_clip_list_gives_each_files_site_and_start_and_leaves_out_the_rows_it_refuses(deployment, tmp_path):
    listed = tmp_path / "list.csv"
    listed.write_text("clip_id,uri,site,start_time\n"
                      f"a,{deployment / 'S1_20190522_000000.wav'},ridge,2019-05-22T06:00:00+02:00\n"
                      f"b,{deployment / 'S1_20190522_001500.wav'},ridge,2019-05-22T06:15:00+02:00\n"
                      f"a,{deployment / 'S2_20190522_000010.wav'},ridge,2019-05-22T06:30:00+02:00\n")  # a again
    rows = input_rows([str(listed)])
    assert [(r["clip_id"], r["uri"], r["site"], r["start_time"]) for r in rows] == [
        ("a", str(deployment / "S1_20190522_000000.wav"), "ridge", "2019-05-22T06:00:00+02:00"),
        ("b", str(deployment / "S1_20190522_001500.wav"), "ridge", "2019-05-22T06:15:00+02:00")]
    plain = input_rows([str(deployment / "S2_20190522_000010.wav")])
    assert plain == [{"clip_id": "S2_20190522_000010", "uri": str(deployment / "S2_20190522_000010.wav")}]


def _table(rows, classes=("bird",)):
    return pa.Table.from_pylist(rows, schema=schema(classes))


def test_each_window_is_placed_on_its_sites_clock_from_its_files_start():
    t = _table([
        {"site": "S1", "clip_id": "f1", "start_time": int((T0 + 4) * 1000), "offset_s": 4.0, "duration_s": 4.0,
         "win_start_s": [4.0, 6.0], "win_end_s": [6.0, 8.0], "win_prob_bird": [0.25, 0.75]},
        {"site": "S1", "clip_id": "f2", "start_time": int(T0 * 1000), "offset_s": 0.0, "error": "decode/x: y"}])
    assert _windows(t, ("bird",)) == [
        {"site": "S1", "clip_id": "f1", "start": T0 + 4, "end": T0 + 6, "file_start": T0, "prob_bird": 0.25},
        {"site": "S1", "clip_id": "f1", "start": T0 + 6, "end": T0 + 8, "file_start": T0, "prob_bird": 0.75}]


def test_the_histories_effort_is_each_segments_start_length_and_error():
    t = _table([{"site": "S1", "clip_id": "f1", "start_time": int((T0 + 4) * 1000), "offset_s": 4.0,
                 "duration_s": 4.0},
                {"site": "S2", "clip_id": "f2", "start_time": int(T0 * 1000), "offset_s": 0.0, "error": "decode/x: y"}])
    assert _segments(t) == [{"site": "S1", "start": T0 + 4, "duration_s": 4.0, "error": None},
                            {"site": "S2", "start": T0, "duration_s": 0.0, "error": "decode/x: y"}]


def test_a_sites_first_start_and_top_frequency_are_over_all_its_files():
    t = _table([
        {"site": "S1", "clip_id": "f1", "start_time": int((T0 + 60) * 1000), "offset_s": 60.0, "sample_rate": 16000},
        {"site": "S1", "clip_id": "f2", "start_time": int((T0 + 904) * 1000), "offset_s": 4.0, "sample_rate": 48000},
        {"site": "S2", "clip_id": "f3", "start_time": int((T0 + 30) * 1000), "offset_s": None, "sample_rate": None}])
    assert _firsts(t) == [{"site": "S1", "start": T0, "nyquist": 24000.0},
                          {"site": "S2", "start": T0 + 30, "nyquist": 0.0}]


def test_the_console_says_files_segments_errors_spans_issues_and_what_was_written():
    t = _table([{"site": s, "clip_id": c, "start_time": 0, "error": e}
                for s, c, e in (("S1", "a", None), ("S1", "a", "decode/x: y"), ("S2", "b", None))])
    issue = Issue("clock_jump", "S1", "a", "b", "S1: b starts 1:00:00 after a ends")
    result = SoundscapeResult(t, 3, 1, 2, 5, [issue], 7, "in this process: 3 segment(s)",
                              {"table": "o/soundscape.parquet", "page": "o/page/index.html", "events": "o/events",
                               "histories": "o/histories"})
    assert summary_lines(result) == [
        "soundscape: 3 file(s) on 2 site(s), 3 segment(s) (1 with an error, 1 file(s) unreadable); 2 span(s) scored "
        "now, 5 from an earlier run",
        "  in this process: 3 segment(s)",
        "  clock jump: S1: b starts 1:00:00 after a ends",
        "  7 event(s): o/events; detection histories: o/histories",
        "  table: o/soundscape.parquet", "  page: o/page/index.html"]
    plain = SoundscapeResult(t.slice(2), 1, 0, 0, 1, [], 0, "nothing to score: every span has its part",
                             {"table": "o/t", "page": "o/p"})
    assert summary_lines(plain) == [
        "soundscape: 1 file(s) on 1 site(s), 1 segment(s) (0 with an error, 0 file(s) unreadable); 0 span(s) scored "
        "now, 1 from an earlier run", "  nothing to score: every span has its part", "  table: o/t", "  page: o/p"]


def test_a_run_names_a_folder_without_recordings(tmp_path):
    from acoustic_env.config import ConfigError

    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="^inputs: no recordings found$"):
        soundscape(SoundscapeConfig(inputs=(str(tmp_path / "empty"),), output=str(tmp_path / "out")))

