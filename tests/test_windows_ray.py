"""Long recordings cut into spans of windows: on Ray the same table as in this process, and a stopped run resumes.

The model and recordings are ``tests/test_windows.py``'s (``world``: a model trained in this
process on generated clips of two kinds, and a 12-s recording made of six 2-s clips end to
end). The fast tests run the spans in this process; the two marked slow start Ray.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf
from test_windows import SR, world  # noqa: F401 - the module's fixture, shared here

from acoustic_env.audio.windows import Recording
from acoustic_env.cli import main
from acoustic_env.config import ConfigError, DecodeParams, WindowParams
from acoustic_env.distributed.windows import input_blocks, plan_span_resources
from acoustic_env.jobs import windows as jobs
from acoustic_env.jobs.windows import WINDOW_PARTS, Span, SpanScorer, plan_spans, route_by_options, score_windows
from acoustic_env.learn.artifact import load_model
from acoustic_env.storage import list_parts, read_part

IN_PROCESS = WindowParams(windows=True, hop_s=1.0, span_windows=4)


def _rows(world, *extra: str) -> list[dict]:
    return [{"clip_id": "long", "uri": str(world["long"])}, {"clip_id": "c1", "uri": str(world["clips"][1])},
            *({"clip_id": f"x{i}", "uri": u} for i, u in enumerate(extra))]


def _scored(monkeypatch) -> list[Span]:
    """The spans scored from here on (not read back from a part)."""
    seen: list[Span] = []
    call = SpanScorer.__call__

    def counted(self, span):
        seen.append(span)
        return call(self, span)

    monkeypatch.setattr(SpanScorer, "__call__", counted)
    return seen


# ----------------------------------------------------------------------------- spans, in this process

def test_each_file_is_cut_into_spans_and_a_span_reads_only_its_windows(world, tmp_path):
    plan = plan_spans(_rows(world, str(tmp_path / "gone.wav")), DecodeParams(), 2.0, 1.0, IN_PROCESS)
    assert [(s.file, s.clip_id, s.first, s.end) for s in plan.spans] == [
        (0, "long", 0, 4), (0, "long", 4, 8), (0, "long", 8, 11), (1, "c1", 0, 1)]
    assert [f["duration_s"] for f in plan.files] == [12.0, 2.0, None]
    assert plan.files[2]["error"].startswith("decode/missing_file")
    with Recording(str(world["long"]), DecodeParams()) as rec:
        every = list(rec.windows(2.0, 1.0))
        span = list(rec.windows(2.0, 1.0, None, 4, 8))
        assert rec.window_count(2.0, 1.0) == len(every) == 11
    assert [(w.start_s, w.end_s) for w in span] == [(w.start_s, w.end_s) for w in every[4:8]]
    assert all(np.array_equal(a.clip.audio, b.clip.audio) for a, b in zip(span, every[4:8]))


def test_a_stopped_run_resumes_from_its_parts_scoring_only_the_spans_without_one(world, tmp_path, monkeypatch):
    model = load_model(str(world["model"]))
    plain = score_windows(model, _rows(world), IN_PROCESS)
    first = score_windows(model, _rows(world), IN_PROCESS, output=str(tmp_path))
    [folder] = (tmp_path / WINDOW_PARTS).iterdir()
    parts = list_parts(str(folder))
    assert len(parts) == 4 and first.table.equals(plain.table) and first.summary.equals(plain.summary)
    [lost] = [p for p in parts if p.endswith("-000000004-000000008.parquet")]
    os.remove(lost)  # as if the run had stopped before that span was written
    scored = _scored(monkeypatch)
    again = score_windows(model, _rows(world), IN_PROCESS, output=str(tmp_path))
    assert [(s.clip_id, s.first, s.end) for s in scored] == [("long", 4, 8)]
    assert again.table.equals(plain.table) and again.summary.equals(plain.summary)
    scored.clear()
    score_windows(model, _rows(world), replace(IN_PROCESS, hop_s=2.0), output=str(tmp_path))
    assert len(scored) == 3 and len(list((tmp_path / WINDOW_PARTS).iterdir())) == 2  # other settings: own folder


def test_the_command_writes_each_span_under_its_output_and_a_second_run_scores_none(world, tmp_path, monkeypatch):
    argv = ["predict", str(world["long"]), "--model", str(world["model"]), "--windows", "--hop-s", "1",
            "--span-windows", "4", "--output", str(tmp_path)]
    assert main(argv) == 0 and len(list((tmp_path / WINDOW_PARTS).rglob("*.parquet"))) == 3
    scored = _scored(monkeypatch)
    assert main(argv) == 0 and scored == []


def test_a_part_holds_the_uri_without_its_secret(world, tmp_path, monkeypatch):
    model = load_model(str(world["model"]))
    span = Span(0, "long", "file://" + str(world["long"]) + "?token=abc", 0, 2, 12 * SR, SR)
    monkeypatch.setattr(jobs, "Recording", lambda uri, decode: Recording(str(world["long"]), decode))
    table = SpanScorer(model, IN_PROCESS, 2.0, 1.0, parts=str(tmp_path))(span)
    [part] = list_parts(str(tmp_path))
    assert table.num_rows == 2 and read_part(part)["uri"].to_pylist() == ["file://" + str(world["long"]) + "?token=***"] * 2


def test_a_file_gone_since_the_plan_gives_each_window_of_its_span_the_error(world, tmp_path):
    model = load_model(str(world["model"]))
    span = Span(3, "gone", str(tmp_path / "gone.wav"), 2, 5, 12 * SR, SR)
    rows = SpanScorer(model, IN_PROCESS, 2.0, 1.0)(span).to_pylist()
    assert [(r["start_s"], r["end_s"]) for r in rows] == [(2.0, 4.0), (3.0, 5.0), (4.0, 6.0)]
    assert all(r["error"].startswith("decode/missing_file") and r["predicted"] is None for r in rows)


def test_a_few_windows_stay_in_this_process_unless_a_cluster_is_named(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    window = WindowParams(windows=True, in_process_max=10)
    assert route_by_options(window, 10, None).in_process and route_by_options(window, 11, None) is None  # timed
    assert not route_by_options(window, 1, "auto").in_process
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    assert not route_by_options(window, 1, None).in_process


def test_spans_go_to_the_actors_in_small_blocks_and_a_million_in_blocks_of_64():
    assert input_blocks(8, 2) == 8 and input_blocks(1000, 2) == 32 and input_blocks(10**6, 16) == 15_625


def test_one_actor_per_cpu_each_with_a_share_of_the_gpus_on_cuda():
    cpu = plan_span_resources({"CPU": 16.0}, spans=100, device="cpu")
    assert (cpu.actors, cpu.gpus, cpu.device) == (16, 0.0, "cpu") and cpu.actors * cpu.cpus <= 16 - 0.25
    assert plan_span_resources({"CPU": 16.0}, spans=3, device="cpu").actors == 3
    assert plan_span_resources({"CPU": 16.0, "memory": 5 * 2.0**30}, spans=100, device="cpu", memory=2**30).actors == 5
    gpu = plan_span_resources({"CPU": 16.0, "GPU": 1.0}, spans=100, device="cuda")
    assert (gpu.actors, gpu.device) == (16, "cuda") and 0 < gpu.gpus * 16 <= 1.0
    assert plan_span_resources({"CPU": 4.0, "GPU": 2.0}, spans=100, device="auto").gpus == 0.5
    assert plan_span_resources({"CPU": 4.0, "GPU": 2.0}, spans=100, device="cpu").device == "cpu"
    with pytest.raises(ConfigError, match="^device: --device cuda, but the Ray cluster has no GPU"):
        plan_span_resources({"CPU": 4.0}, spans=1, device="cuda")


# ----------------------------------------------------------------------------- on Ray

@pytest.mark.slow
def test_on_ray_the_table_is_the_in_process_one(world, tmp_path, ray_session):
    """Spans of two files and a missing one, scored by Ray's actors in any order: the same rows in file and time
    order, the probabilities to 1e-6, the same summary; each span written as a part."""
    model = load_model(str(world["model"]))
    rows = _rows(world, str(tmp_path / "gone.wav"))
    here = score_windows(model, rows, replace(IN_PROCESS, span_windows=2))
    ray = score_windows(model, rows, replace(IN_PROCESS, span_windows=2, in_process_max=0), output=str(tmp_path))
    assert ray.table.drop_columns(["prob_urban", "prob_natural"]).equals(
        here.table.drop_columns(["prob_urban", "prob_natural"]))
    for c in ("prob_urban", "prob_natural"):
        np.testing.assert_allclose(ray.table[c].to_numpy(), here.table[c].to_numpy(), atol=1e-6)
    means = [c for c in here.summary.column_names if c.startswith(("mean_", "max_"))]
    assert ray.summary.drop_columns(means).equals(here.summary.drop_columns(means)) and ray.table.num_rows == 12
    for c in means:
        np.testing.assert_allclose(ray.summary[c].to_numpy(), here.summary[c].to_numpy(), atol=1e-6)
    [folder] = (tmp_path / WINDOW_PARTS).iterdir()
    assert len(list_parts(str(folder))) == 7


RUN = """
import json, sys
from acoustic_env.config import WindowParams
from acoustic_env.jobs.windows import predict_windows
a = json.loads(sys.argv[1])
predict_windows([a["file"]], a["model"], output=a["output"],
                window=WindowParams(windows=True, hop_s=0.25, span_windows=2, in_process_max=0))
"""


@pytest.mark.slow
def test_a_ray_run_killed_mid_way_resumes_with_every_window_once(world, tmp_path, monkeypatch):
    """The Ray run in a process of its own, SIGKILLed once its first parts are written; the next run (here, in this
    process) scores only the spans without a part, and every window of the recording is in the table once."""
    long = tmp_path / "long.wav"
    sf.write(long, np.tile(sf.read(world["long"], dtype="int16")[0], 2), SR, subtype="PCM_16")  # 24 s: 89 windows
    args = json.dumps({"file": str(long), "model": str(world["model"]), "output": str(tmp_path / "out")})
    err = tmp_path / "run.err"
    with open(err, "wb") as stderr:
        run = subprocess.Popen([sys.executable, "-c", RUN, args], start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and run.poll() is None:
            written = [p for p in (tmp_path / "out").rglob("*.parquet")]
            if len(written) >= 3:
                break
            time.sleep(0.05)
        assert run.poll() is None, ("the run ended (or never wrote 3 parts) before it could be stopped:\n"
                                    + err.read_text(errors="replace")[-3000:])
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
        run.wait()
    before, deadline = -1, time.monotonic() + 60
    while time.monotonic() < deadline:  # until its actors, ended by the reaper after the driver, write no more
        time.sleep(1.5)
        now = len(list((tmp_path / "out").rglob("*.parquet")))
        if now == before:
            break
        before = now
    scored = _scored(monkeypatch)
    model = load_model(str(world["model"]))
    window = WindowParams(windows=True, hop_s=0.25, span_windows=2, in_process_max=10_000)
    result = score_windows(model, [{"clip_id": "long", "uri": str(long)}], window, output=str(tmp_path / "out"))
    assert 3 <= before < 45 and len(scored) == 45 - before
    times = [(r["start_s"], r["end_s"]) for r in result.table.to_pylist()]
    assert times == [(0.25 * k, 0.25 * k + 2.0) for k in range(89)] and result.table["error"].null_count == 89
