"""Where a run's windows are scored: the options first, then the first span's measured cost (issue 61).

The decision itself is a pure function of numbers (``jobs/windows.py: ray_is_sooner``), tested here on the figures
of benchmarks/RESULTS.md ("Long recordings: real-time factor per core count": a BirdNET model about 0.03 s and
0.036 CPU-s a window, a model on every CPU feature about 0.165 s on 1.2 cores). The real runs use
``tests/test_windows.py``'s model and recording (a model of CPU features, 2-s windows, a 12-s recording): above
``in_process_max`` such a file is far too small for Ray's start to pay, so it stays in this process.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from test_windows import world  # noqa: F401 - the module's fixture, shared here
from test_windows_ray import _rows, _scored

import acoustic_env.distributed.windows as distributed
from acoustic_env.cli import main
from acoustic_env.config import WindowParams
from acoustic_env.jobs import windows as jobs
from acoustic_env.jobs.windows import RAY_FIXED_S, WINDOW_PARTS, ray_is_sooner, route_by_options, score_windows
from acoustic_env.learn.artifact import load_model
from acoustic_env.storage import list_parts

#: One span of 64 3-s windows of a BirdNET model on a quiet 2-core machine: 1.9 s, 2.3 CPU-s (1.2 cores busy).
BIRDNET = {"span_wall_s": 1.9, "span_cpu_s": 2.3, "span_windows": 64}
#: The same span of a model on every CPU feature: 0.165 s a window.
CPU_FEATURES = {"span_wall_s": 64 * 0.165, "span_cpu_s": 64 * 0.165 * 1.2, "span_windows": 64}


# ----------------------------------------------------------------------------- the decision, on given numbers

def test_a_birdnet_model_stays_here_on_2_cores_and_goes_to_ray_on_16():
    """40 minutes (800 windows, 736 left after the first span): on 2 cores Ray's start is not paid back (the
    quiet run measured 26.8 s on Ray against 25.7 s here); on 16 cores it is, many times over."""
    here_2, why_2 = ray_is_sooner(**BIRDNET, windows_left=736, spans_left=12, cpus=2)
    ray_16, why_16 = ray_is_sooner(**BIRDNET, windows_left=736, spans_left=12, cpus=16)
    assert not here_2 and ray_16
    assert why_2 == ("in this process: the first span (64 windows) took 1.9 s here on 1.2 cores; the other 736 "
                     f"windows ~22 s here against ~24 s on Ray (2 actor(s), {RAY_FIXED_S:g} s to start)")
    assert why_16.startswith("on Ray: ") and "~22 s here against ~13 s on Ray (12 actor(s)" in why_16


def test_small_work_stays_here_and_large_work_of_a_costly_model_goes_to_ray():
    assert not ray_is_sooner(**BIRDNET, windows_left=256, spans_left=4, cpus=16)[0]  # 16 min: ~8 s of work left
    assert not ray_is_sooner(**CPU_FEATURES, windows_left=128, spans_left=2, cpus=16)[0]  # 2 spans: 2 actors
    assert ray_is_sooner(**CPU_FEATURES, windows_left=1024, spans_left=16, cpus=2)[0]  # ~169 s here, ~112 s on Ray
    # a close call stays here: Ray must be expected RAY_MARGIN sooner, not a few seconds on a one-span estimate
    assert not ray_is_sooner(**CPU_FEATURES, windows_left=256, spans_left=4, cpus=2)[0]  # ~42 s here, ~36 s on Ray
    assert not ray_is_sooner(**CPU_FEATURES, windows_left=96, spans_left=2, cpus=2)[0]  # ~16 s here, ~20 s on Ray


def test_a_process_that_got_less_than_a_core_stretches_rays_estimate_alike():
    """A loaded machine: the span's wall is three times its CPU. Counting Ray's actors at whole cores would send
    this run to a Ray that gets no more of the machine than this process did (~22 s against ~63 s here; stretched,
    ~65 s)."""
    loaded = {"span_wall_s": 3 * 64 * 0.165, "span_cpu_s": 64 * 0.165, "span_windows": 64}
    assert not ray_is_sooner(**loaded, windows_left=128, spans_left=2, cpus=2)[0]
    assert ray_is_sooner(**loaded, windows_left=2560, spans_left=40, cpus=2)[0]
    assert not ray_is_sooner(span_wall_s=0.0, span_cpu_s=0.0, span_windows=4, windows_left=8, spans_left=2,
                             cpus=2)[0]  # a span of unreadable windows costs nothing: nothing to gain on Ray


def test_the_options_decide_alone_for_a_named_cluster_a_few_windows_or_none_allowed(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    window = WindowParams(windows=True, in_process_max=10)
    assert route_by_options(window, 10, None).in_process and route_by_options(window, 0, None).in_process
    assert route_by_options(window, 11, None) is None  # the first span is timed
    assert route_by_options(replace(window, in_process_max=0), 1, None).why == "on Ray: --windows-in-process-max 0"
    assert route_by_options(replace(window, in_process_max=0), 0, None).in_process  # nothing to do: no Ray start
    named = route_by_options(window, 1, "ray://head:10001")
    assert not named.in_process and "a cluster is named" in named.why
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    assert not route_by_options(window, 1, None).in_process


# ----------------------------------------------------------------------------- real runs

def test_a_file_above_the_limit_of_a_cheap_model_stays_here_with_the_forced_tables_rows(
        world, monkeypatch):  # noqa: F811
    """11 windows above ``in_process_max`` 4: the first span is timed here, the rest (a second of work) stays here,
    Ray is never started, and every span is scored once: the table and summary are those of a forced run here."""
    import ray

    model = load_model(str(world["model"]))
    window = WindowParams(windows=True, hop_s=1.0, span_windows=4, in_process_max=4)
    forced = score_windows(model, _rows(world), replace(window, in_process_max=10_000))
    assert forced.route.why.startswith("in this process: 12 window(s) to score, at most")
    ray_was = ray.is_initialized()  # False unless an earlier test of this session started it
    started: list = []
    monkeypatch.setattr(distributed, "score_spans", lambda *a, **k: started.append(a) or iter(()))
    scored = _scored(monkeypatch)
    routed = score_windows(model, _rows(world), window)
    assert started == [] and ray.is_initialized() == ray_was
    assert [(s.clip_id, s.first, s.end) for s in scored] == [("long", 0, 4), ("long", 4, 8), ("long", 8, 11),
                                                              ("c1", 0, 1)]
    assert routed.route.in_process and routed.route.why.startswith(
        "in this process: the first span (4 windows) took ") and "the other 8 windows" in routed.route.why
    assert routed.table.equals(forced.table) and routed.summary.equals(forced.summary)


@pytest.mark.slow
def test_when_ray_is_sooner_the_rest_goes_there_and_the_first_span_is_kept(world, tmp_path, monkeypatch,  # noqa: F811
                                                                            ray_session):
    """The measured route says Ray (the decision planted): the first span, scored here, is written and kept, Ray's
    actors score only the others, and the table is the in-process one."""
    model = load_model(str(world["model"]))
    window = WindowParams(windows=True, hop_s=1.0, span_windows=2, in_process_max=4)
    here = score_windows(model, _rows(world), replace(window, in_process_max=10_000))
    monkeypatch.setattr(jobs, "ray_is_sooner", lambda *a: (True, "on Ray: planted"))
    scored = _scored(monkeypatch)  # this process's calls only: an actor's are in its own process
    given, score_spans = [], distributed.score_spans
    monkeypatch.setattr(distributed, "score_spans", lambda spans, *a, **k: given.extend(spans) or score_spans(
        spans, *a, **k))
    on_ray = score_windows(model, _rows(world), window, output=str(tmp_path))
    assert [(s.clip_id, s.first, s.end) for s in scored] == [("long", 0, 2)] and on_ray.route.why == "on Ray: planted"
    assert [(s.clip_id, s.first) for s in given] == [("long", 2), ("long", 4), ("long", 6), ("long", 8),
                                                     ("long", 10), ("c1", 0)]
    assert on_ray.table.drop_columns(["prob_urban", "prob_natural"]).equals(
        here.table.drop_columns(["prob_urban", "prob_natural"]))
    for c in ("prob_urban", "prob_natural"):
        np.testing.assert_allclose(on_ray.table[c].to_numpy(), here.table[c].to_numpy(), atol=1e-6)
    [folder] = (tmp_path / WINDOW_PARTS).iterdir()
    assert len(list_parts(str(folder))) == 7  # 6 spans of the long file and 1 of the clip, each once


def test_the_dry_run_says_the_rule(world, tmp_path, capsys):  # noqa: F811
    listing = tmp_path / "recordings.csv"
    listing.write_text(f"clip_id,uri\nlong,{world['long']}\n")
    argv = ["annotate", "--manifest", str(listing), "--model", str(world["model"]), "--features",
            str(tmp_path / "table"), "--output", str(tmp_path / "ann"), "--windows", "--dry-run"]
    assert main(argv) == 0
    assert "  where: in this process up to 200 windows (--windows-in-process-max); beyond, the first span is scored " \
           "here and timed" in capsys.readouterr().out
    assert main([*argv, "--ray-address", "ray://head:10001"]) == 0
    assert "  where: on Ray: a cluster is named" in capsys.readouterr().out
