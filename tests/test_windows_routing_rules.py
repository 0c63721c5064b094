"""The routing rules of ``jobs/windows.py`` checked exactly: the options' route (``route_by_options``), the timed
estimate (``ray_is_sooner``, its sentence included: the console and the run's record quote it), the timing of the
first span (``timed_route``), and ``score_windows`` sending the rest to Ray, with Ray itself replaced by a stand-in
that scores the spans in this process (no Ray start: ``make mutate`` leaves out the tests that start one); then
what the routes carry, whichever is taken: the plan's spans, their parts, and ``predict_windows``'s options.

``tests/test_windows_routing.py`` checks the same rules on benchmark figures and in real runs.
"""

from __future__ import annotations

import logging
import os
import re
import time
from dataclasses import replace
from types import SimpleNamespace

import pyarrow as pa
import pytest
from test_windows import SR, world  # noqa: F401 - the module's fixture, shared here
from test_windows_ray import _rows

import acoustic_env.distributed.windows as distributed
from acoustic_env.config import ConfigError, WindowParams
from acoustic_env.embedders.registry import get
from acoustic_env.errors import OutputWriteError
from acoustic_env.jobs import windows as jobs
from acoustic_env.jobs.windows import (
    Route,
    Span,
    SpanScorer,
    plan_spans,
    ray_is_sooner,
    route_by_options,
    score_windows,
    settings_key,
    first_spans,
    timed_route,
    write_span,
)
from acoustic_env.jobs.predict import rows_table
from acoustic_env.learn.artifact import load_model
from acoustic_env.storage import transport_failure

# ----------------------------------------------------------------------------- the options' route


@pytest.fixture
def no_cluster(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)


def test_up_to_in_process_max_windows_stay_here_and_the_sentence_gives_both_numbers(no_cluster):
    window = WindowParams(windows=True, in_process_max=7)
    assert route_by_options(window, 7, None) == Route(
        True, "in this process: 7 window(s) to score, at most --windows-in-process-max (7)")
    assert route_by_options(window, 8, None) is None  # one more: the first span is timed


def test_in_process_max_0_sends_any_work_to_ray_and_no_work_stays_here(no_cluster):
    window = WindowParams(windows=True, in_process_max=0)
    assert route_by_options(window, 1, None) == Route(False, "on Ray: --windows-in-process-max 0")
    assert route_by_options(window, 0, None) == Route(
        True, "in this process: 0 window(s) to score, at most --windows-in-process-max (0)")


@pytest.mark.parametrize("address, env", [("ray://head:10001", None), (None, "10.0.0.1:6379")])
def test_a_named_cluster_is_ray_even_for_no_window(monkeypatch, address, env):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    if env:
        monkeypatch.setenv("RAY_ADDRESS", env)
    assert route_by_options(WindowParams(windows=True, in_process_max=10), 0, address) == Route(
        False, "on Ray: a cluster is named (--ray-address or RAY_ADDRESS)")


def test_an_empty_ray_address_names_no_cluster(monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "")
    assert route_by_options(WindowParams(windows=True, in_process_max=10), 3, "").in_process


# ----------------------------------------------------------------------------- the timed estimate


def test_the_sentence_gives_the_span_the_cores_both_estimates_and_the_actors():
    """10 windows in 1 s on 1.2 cores, 1000 left in 20 spans on 4 cores: here 100 s, on Ray 11 + 1000 * 0.12 / 4."""
    assert ray_is_sooner(1.0, 1.2, 10, 1000, 20, 4) == (True, (
        "on Ray: the first span (10 windows) took 1.0 s here on 1.2 cores; the other 1000 windows ~100 s here "
        "against ~41 s on Ray (4 actor(s), 11 s to start)"))


def test_no_more_actors_than_spans_left_and_at_least_one():
    assert ray_is_sooner(1.0, 1.2, 10, 1000, 3, 8)[1].endswith("~51 s on Ray (3 actor(s), 11 s to start)")
    assert ray_is_sooner(0.0, 0.0, 4, 8, 0, 2) == (False, (
        "in this process: the first span (4 windows) took 0.0 s here on 1.0 cores; the other 8 windows ~0 s here "
        "against ~11 s on Ray (1 actor(s), 11 s to start)"))


def test_less_than_a_core_busy_stretches_rays_estimate_fixed_cost_included():
    """Half a core: Ray's (11 + 100 * 0.025 / 2) s counted twice, ~24 s."""
    assert ray_is_sooner(0.5, 0.25, 10, 100, 3, 2) == (False, (
        "in this process: the first span (10 windows) took 0.5 s here on 0.5 cores; the other 100 windows ~5 s here "
        "against ~24 s on Ray (2 actor(s), 11 s to start)"))


def test_more_than_a_core_busy_does_not_shrink_rays_estimate():
    """1.5 cores busy: Ray's estimate is not divided by 1.5 (that would be ~17 s), it stays ~26 s."""
    assert ray_is_sooner(1.0, 1.5, 10, 200, 4, 2)[1].endswith("~20 s here against ~26 s on Ray (2 actor(s), 11 s to "
                                                              "start)")


def test_a_span_without_cpu_time_leaves_rays_estimate_unstretched():
    """No CPU second counted (a dividing share of 0 is none at all): Ray costs its start, 11 s, against 20 s."""
    assert ray_is_sooner(2.0, 0.0, 10, 100, 3, 2) == (True, (
        "on Ray: the first span (10 windows) took 2.0 s here on 0.0 cores; the other 100 windows ~20 s here "
        "against ~11 s on Ray (2 actor(s), 11 s to start)"))


def test_ray_exactly_the_margin_sooner_stays_here_and_a_little_more_goes_to_ray():
    """20 s here, 11 + 20 * 1.5 / 5 = 17 s on Ray: exactly 15 % sooner, a close call that stays in this process."""
    assert ray_is_sooner(1.0, 1.5, 1, 20, 5, 5)[0] is False
    assert ray_is_sooner(1.0, 1.5, 1, 20, 6, 6)[0] is True  # 16 s on Ray


# ----------------------------------------------------------------------------- the timing of the first span


SPAN = Span(0, "a", "/r/a.wav", 8, 12, 48_000, 16_000)


def test_the_first_span_is_timed_by_wall_and_process_cpu_and_ray_gets_this_processs_cores(monkeypatch):
    """The clocks read before and after the span (wall 5 -> 7 s, CPU 1 -> 4 s), the span's 4 windows, what is left,
    and the cores of this process's affinity go to the estimate; its answer is the route."""
    clocks = SimpleNamespace(perf_counter=iter([5.0, 7.0]).__next__, process_time=iter([1.0, 4.0]).__next__)
    monkeypatch.setattr(jobs, "time", clocks)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2} if pid == 0 else {0})
    asked = []
    monkeypatch.setattr(jobs, "ray_is_sooner", lambda *a: asked.append(a) or (True, "on Ray: said"))
    scored = []
    tables, route = timed_route(lambda s: scored.append(s) or "rows", [SPAN], 40, 10)
    assert (tables, route, scored) == (["rows"], Route(False, "on Ray: said"), [SPAN])
    assert asked == [(2.0, 3.0, 4, 40, 10, 3, 1)]
    monkeypatch.setattr(jobs, "ray_is_sooner", lambda *a: (False, "in this process: said"))
    monkeypatch.setattr(jobs, "time", SimpleNamespace(perf_counter=iter([0.0, 1.0]).__next__,
                                                      process_time=iter([0.0, 1.0]).__next__))
    assert timed_route(lambda s: "rows", [SPAN], 40, 10)[1] == Route(True, "in this process: said")


def test_a_real_timing_of_a_short_span_stays_here_and_says_so():
    tables, route = timed_route(lambda s: "rows", [SPAN], 4, 1)
    assert tables == ["rows"] and route.in_process
    assert re.fullmatch(r"in this process: the first span \(4 windows\) took 0\.0 s here on \d+\.\d cores; the "
                        r"other 4 windows ~0 s here against ~\d+ s on Ray \(1 actor\(s\), 11 s to start\)", route.why)


def test_short_files_are_timed_on_a_spans_worth_of_windows_and_the_sentence_says_how_many_spans(monkeypatch):
    """Issue 82, 19: the first span of a run of 10,000 short files was one file of a window, whose first batch's
    one-off costs passed for every window's: "~8321 s on Ray" for a run that took 318 s there. The first spans that
    hold a span's worth of windows are timed together (a long file: its first span alone), and the sentence says
    how many."""
    short = [Span(i, f"f{i}", f"/r/f{i}.wav", 0, 1, 16_000, 16_000) for i in range(100)]
    assert first_spans(short, 64) == 64 and first_spans([SPAN, *short], 64) == 61  # 4 windows, then 60 of one
    assert first_spans([Span(0, "long", "/r/l.wav", 0, 64, 0, 0), *short], 64) == 1 and first_spans(short[:5], 64) == 5
    clocks = SimpleNamespace(perf_counter=iter([0.0, 2.0]).__next__, process_time=iter([0.0, 2.56]).__next__)
    monkeypatch.setattr(jobs, "time", clocks)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    scored = []
    tables, route = timed_route(lambda s: scored.append(s) or s.clip_id, short[:64], 9_936, 9_936)
    assert scored == short[:64] and tables == [s.clip_id for s in short[:64]]
    assert route.why == ("on Ray: the first 64 spans (64 windows) took 2.0 s here on 1.3 cores; the other 9936 "
                         "windows ~310 s here against ~210 s on Ray (2 actor(s), 11 s to start)")


def test_a_run_of_short_files_times_a_spans_worth_and_keeps_it(world, stand_in_ray, monkeypatch):  # noqa: F811
    """Through ``score_windows``: four one-window files, spans of two windows, more windows than stay here. The first
    two files are scored here and timed (the old rule timed the first alone), kept, and the rest go where the
    estimate says; the table is a run's here."""
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(jobs, "ray_is_sooner", lambda *a, _real=ray_is_sooner: (True, _real(*a)[1]))
    model = load_model(str(world["model"]))
    rows = [{"clip_id": f"c{i}", "uri": str(world["clips"][i])} for i in range(4)]
    window = WindowParams(windows=True, span_windows=2, in_process_max=1)
    got = score_windows(model, rows, window)
    assert ": the first 2 spans (2 windows) took " in got.route.why and not got.route.in_process
    assert [s.clip_id for s in stand_in_ray[0]["spans"]] == ["c2", "c3"]
    assert got.table.equals(score_windows(model, rows, replace(window, in_process_max=10)).table)


# ----------------------------------------------------------------------------- the rest sent to Ray


@pytest.fixture
def stand_in_ray(monkeypatch) -> list[dict]:
    """``score_spans`` replaced: what it was given, and the spans scored here by ``make``, given back last first
    (Ray's actors finish in any order)."""
    calls: list[dict] = []

    def score_spans(spans, make, args, kwargs, *, address=None, device="cpu", memory=0.0):
        calls.append({"spans": list(spans), "address": address, "device": device, "memory": memory,
                      "kwargs": kwargs})
        scorer = make(*args, **{**kwargs, "device": device})  # as the actors are built
        return [(s, scorer(s)) for s in reversed(spans)]

    monkeypatch.setattr(distributed, "score_spans", score_spans)
    return calls


def test_a_run_sent_to_ray_gives_it_every_span_the_options_and_keeps_file_and_time_order(
        world, stand_in_ray, monkeypatch, tmp_path, caplog):  # noqa: F811
    """``in_process_max`` 0: nothing is scored here (no scorer built here either), Ray gets the spans of every file,
    the cluster, the CPU for a model of CPU features alone and no memory to reserve; ``on_ray`` is called once,
    before the route is logged; the table and summary are those of a run here."""
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    model = load_model(str(world["model"]))
    window = WindowParams(windows=True, hop_s=1.0, span_windows=4, in_process_max=0)
    here = score_windows(model, _rows(world), replace(window, in_process_max=10_000))
    built = []
    monkeypatch.setattr(SpanScorer, "__init__", lambda self, *a, _init=SpanScorer.__init__, **k: built.append(a)
                        or _init(self, *a, **k))
    calls = []
    caplog.set_level(logging.INFO, logger="acoustic_env.jobs.windows")
    on_ray = score_windows(model, _rows(world), window, device="cuda", output=str(tmp_path),
                           on_ray=lambda: calls.append(list(caplog.messages)))
    assert calls == [[]] and caplog.messages == ["windows on Ray: --windows-in-process-max 0"]
    assert len(built) == 1 and on_ray.route == Route(False, "on Ray: --windows-in-process-max 0")
    [given] = stand_in_ray
    assert [(s.clip_id, s.first, s.end) for s in given["spans"]] == [("long", 0, 4), ("long", 4, 8),
                                                                      ("long", 8, 11), ("c1", 0, 1)]
    parts = given["kwargs"].pop("parts")
    assert given == {"spans": given["spans"], "address": None, "device": "cpu", "memory": 0,
                     "kwargs": {"weights_cache": None, "device": "cuda"}}
    assert parts.startswith(str(tmp_path / jobs.WINDOW_PARTS))
    assert on_ray.table.equals(here.table) and on_ray.summary.equals(here.summary)
    assert (on_ray.window_s, on_ray.hop_s) == (here.window_s, here.hop_s)


def test_a_named_cluster_is_given_to_ray_and_a_run_without_on_ray_goes_there_too(
        world, stand_in_ray, monkeypatch):  # noqa: F811
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    model = load_model(str(world["model"]))
    got = score_windows(model, _rows(world)[1:], WindowParams(windows=True), ray_address="ray://head:10001")
    assert [(s.clip_id, s.first, s.end) for s in stand_in_ray[0]["spans"]] == [("c1", 0, 1)]
    assert stand_in_ray[0]["address"] == "ray://head:10001" and got.table.num_rows == 1
    assert got.table["error"].to_pylist() == [None]


def test_a_run_with_an_output_clears_a_killed_writers_temporary_in_its_settings_folder_and_writes_there(
        world, tmp_path):  # noqa: F811
    """The parts of a run go to ``window-parts/<16 hex digits of its model, window, hop and span length>``, the
    name a resumed run looks for; a temporary a killed writer left there an hour ago is removed first."""
    model = load_model(str(world["model"]))
    window = WindowParams(windows=True, window_s=2.0, hop_s=1.0)
    key = settings_key(model, 2.0, 1.0, window)
    assert re.fullmatch("[0-9a-f]{16}", key) and key != settings_key(model, 1.5, 1.0, window)
    folder = tmp_path / jobs.WINDOW_PARTS / key
    folder.mkdir(parents=True)
    left = folder / ".tmp-gone-0"
    left.write_bytes(b"half a part")
    os.utime(left, (time.time() - 3600, time.time() - 3600))
    score_windows(model, _rows(world)[1:], window, output=str(tmp_path))
    assert [p.name for p in folder.iterdir()] == [Span(0, "c1", str(world["clips"][1]), 0, 1, 0, 0).part_name()]


# ----------------------------------------------------------------------------- what the routes carry: spans, parts


def test_a_planned_file_gives_its_row_and_spans_and_a_span_gone_since_keeps_its_times(world, tmp_path):  # noqa: F811
    """The plan keeps each file's frames and rate, so that a span whose file is gone when it is scored (an actor on
    another machine) still gives each of its windows, at its times, with the error."""
    model = load_model(str(world["model"]))
    decode = model.extraction_params()[0]
    copy = tmp_path / "long.wav"
    copy.write_bytes(world["long"].read_bytes())
    window = WindowParams(windows=True, hop_s=1.0, span_windows=4)
    plan = plan_spans([{"clip_id": "long", "uri": str(copy)}, {"clip_id": "none", "uri": str(tmp_path / "no.wav")}],
                      decode, 2.0, 1.0, window)
    assert plan.files[0] == {"clip_id": "long", "uri": str(copy), "duration_s": 12.0, "error": None}
    assert plan.files[1]["duration_s"] is None and plan.files[1]["error"].startswith("decode/missing_file")
    assert [(s.file, s.first, s.end, s.frames, s.sr) for s in plan.spans] == [
        (0, 0, 4, 12 * SR, SR), (0, 4, 8, 12 * SR, SR), (0, 8, 11, 12 * SR, SR)]
    score = SpanScorer(model, window, 2.0, 1.0)
    read = score(plan.spans[1]).to_pylist()
    assert [(r["start_s"], r["error"]) for r in read] == [(4.0, None), (5.0, None), (6.0, None), (7.0, None)]
    copy.unlink()
    gone = score(plan.spans[1]).to_pylist()
    assert [(r["start_s"], r["end_s"]) for r in gone] == [(4.0, 6.0), (5.0, 7.0), (6.0, 8.0), (7.0, 9.0)]
    assert all(r["error"].startswith("decode/missing_file") and r["predicted"] is None for r in gone)


def test_a_part_is_named_by_a_hash_of_the_clip_id_and_uri_then_the_windows():
    name = Span(0, "a", "s3://b/a.wav?token=x", 8, 12, 0, 0).part_name()
    assert re.fullmatch("[0-9a-f]{20}-000000008-000000012.parquet", name) and "token" not in name
    assert name != Span(0, "a", "s3://b/b.wav", 8, 12, 0, 0).part_name()
    assert name != Span(0, "b", "s3://b/a.wav?token=x", 8, 12, 0, 0).part_name()


def test_a_part_that_cannot_be_written_names_the_output_the_reason_and_the_part(tmp_path):
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    with pytest.raises(OutputWriteError) as err:
        write_span(pa.table({"x": [1]}), str(blocked), "p.parquet")
    assert str(err.value) == (f"output: cannot write to {blocked}: {transport_failure(err.value.__cause__)[1]} "
                              "(writing p.parquet)")


def test_predict_windows_checks_its_output_and_passes_every_option_on(world, tmp_path, monkeypatch):  # noqa: F811
    given = []
    monkeypatch.setattr(jobs, "score_windows", lambda *a, **k: given.append((a, k)) or "result")
    on_ray = object()
    window = WindowParams(windows=True, hop_s=1.0)
    assert jobs.predict_windows([str(world["clips"][1])], str(world["model"]), window=window, weights_cache="w",
                                device="cpu", output=str(tmp_path / "out"), ray_address="auto",
                                on_ray=on_ray) == "result"
    [(args, kwargs)] = given
    assert args[1][0]["uri"] == str(world["clips"][1]) and args[2] == window
    assert kwargs == {"weights_cache": "w", "device": "cpu", "output": str(tmp_path / "out"), "ray_address": "auto",
                      "on_ray": on_ray}
    (tmp_path / "taken").write_text("")
    with pytest.raises(ConfigError, match=r"^output: .*taken is a file"):
        jobs.predict_windows([str(world["clips"][1])], str(world["model"]), output=str(tmp_path / "taken"))


def test_a_model_with_embedders_gives_ray_the_device_and_each_actors_memory(world, monkeypatch):  # noqa: F811
    """Ray gets the asked device and, per actor, the memory of the model's embedders (yamnet and vggish here, the
    model's plan replaced: Ray's stand-in scores nothing)."""
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    model = load_model(str(world["model"]))
    monkeypatch.setattr(type(model), "feature_plan", lambda self: ({"yamnet": "w1", "vggish": "w2"}, [], {}))
    calls = []
    monkeypatch.setattr(distributed, "score_spans", lambda spans, *a, **k: calls.append(k) or [
        (s, rows_table(model, [], jobs.TIMES)) for s in spans])
    score_windows(model, _rows(world)[1:], WindowParams(windows=True, in_process_max=0), device="cuda")
    assert calls == [{"address": None, "device": "cuda", "memory": get("yamnet").memory + get("vggish").memory}]


def test_a_resumed_run_times_its_first_span_to_do_and_counts_the_windows_after_it(world, monkeypatch):  # noqa: F811
    """The first span of the file is done (its part there): the span timed is the second (windows 4 to 8), and the
    estimate is given the 4 windows of the 2 spans after it."""
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    model = load_model(str(world["model"]))
    window = WindowParams(windows=True, hop_s=1.0, span_windows=4, in_process_max=4)
    plan = plan_spans(_rows(world), model.extraction_params()[0], 2.0, 1.0, window)
    monkeypatch.setattr(jobs, "list_parts", lambda parts: [f"{parts}/{plan.spans[0].part_name()}"])
    monkeypatch.setattr(jobs, "read_part", lambda path: rows_table(model, [], jobs.TIMES))
    asked = []
    monkeypatch.setattr(jobs, "ray_is_sooner", lambda *a: asked.append(a[2:5]) or (False, "in this process: said"))
    result = score_windows(model, _rows(world), window, output="/nowhere/out")
    assert asked == [(4, 4, 2)] and result.table["start_s"].to_pylist()[:2] == [4.0, 5.0]
