"""extract --dry-run's sizing: nodes, hours, core- and GPU-hours from the measured per-clip costs."""

from __future__ import annotations

import math
import subprocess
import sys

from conftest import REPO, tone_clip
from documentation import all_text

from acoustic_env.audio.sizing import (
    CPU_S_PER_CLIP,
    DEVICE_CPU_S_PER_CLIP,
    DEVICE_FEATURES_GPU_S,
    EMBEDDER_CPU_S,
    EMBEDDER_GPU_S,
    size,
)

THREE = ("vggish", "yamnet", "panns")


def test_cpu_only_nodes_fit_the_target():
    s = size(2_000_000, THREE, node_cpus=32, node_gpus=0, hours=8)
    work = 2_000_000 * (CPU_S_PER_CLIP + sum(EMBEDDER_CPU_S[e] for e in THREE))
    assert math.isclose(s["core_hours"], work / 3600) and s["gpu_hours"] == 0
    assert s["nodes"] == math.ceil(work / (32 * 8 * 3600)) and s["wall_hours"] <= 8
    assert (s["nodes"] - 1) * 32 * 8 * 3600 < work, "no node more than the target needs"


def test_gpu_nodes_take_the_features_and_the_embedders():
    """A node with GPUs runs the device stage: its cores decode, its card computes the features and the embeddings."""
    s = size(2_000_000, THREE, node_cpus=32, node_gpus=1, hours=8)
    assert math.isclose(s["gpu_hours"], 2_000_000 * (DEVICE_FEATURES_GPU_S + sum(EMBEDDER_GPU_S.values())) / 3600)
    assert math.isclose(s["core_hours"], 2_000_000 * DEVICE_CPU_S_PER_CLIP / 3600)
    assert math.isclose(size(2_000_000, THREE, 32, 1, 8, embed_signals=3)["gpu_hours"] - s["gpu_hours"],
                        2 * 2_000_000 * sum(EMBEDDER_GPU_S.values()) / 3600)  # each signal one pass more
    # a GPU-bound shape: the embedders set the wall time
    tiny = size(100_000, THREE, node_cpus=512, node_gpus=1, hours=0.01)
    assert math.isclose(tiny["wall_hours"], tiny["gpu_hours"] / tiny["nodes"])
    assert "no measured cost" in size(10, ("clap",), 8, 0, 1)["lines"][-1]
    # BirdNET has no GPU path: on a GPU node its cost stays on the CPUs
    with_birdnet = size(2_000_000, (*THREE, "birdnet"), node_cpus=32, node_gpus=1, hours=8)
    assert math.isclose(with_birdnet["gpu_hours"], s["gpu_hours"])
    assert math.isclose(with_birdnet["core_hours"],
                        2_000_000 * (DEVICE_CPU_S_PER_CLIP + EMBEDDER_CPU_S["birdnet"]) / 3600)


def test_dry_run_prints_the_sizing(tmp_path):
    (tmp_path / "audio").mkdir()
    for i in range(3):
        tone_clip(tmp_path / "audio" / f"{i}.wav", freq=300.0 + 100 * i)
    out = subprocess.run([sys.executable, "-m", "acoustic_env.cli", "extract", "--manifest", str(tmp_path / "audio"),
                          "--output", str(tmp_path / "out"), "--dry-run", "--plan-node-cpus", "4",
                          "--plan-hours", "2"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert size(3, (), 4, 0, 2)["lines"][0] in out.stdout.splitlines()


def test_documented_audioset_figures_are_the_code_s():
    """The AudioSet (2 million clips) figures in the docs are what the code prints."""
    docs = all_text() + (REPO / "cluster" / "README.md").read_text()
    for embedders, gpus in (((), 0), (THREE, 0), (THREE, 1)):
        s = size(2_000_000, embedders, 32, gpus, 8)
        assert f"{s['core_hours']:,.1f} core-hours" in docs and f"{s['nodes']} × 32" in docs
        assert f"{s['wall_hours']:,.1f} h" in docs
        if gpus:
            assert f"{s['gpu_hours']:,.2f} GPU-hours" in docs


def test_the_dry_run_sizes_the_clips_by_the_lists_start_and_end_and_says_what_it_assumed(tmp_path):
    """Clips of 2, 30 and 90 s (trimmed to decode.max_duration_s, 60) cost as 92 s of audio, not as three 10-s
    clips; a clip the list gives no length for is assumed 10 s, and the line says so (it used to say every clip
    was 10 s)."""
    from acoustic_env.config import ExtractConfig, from_dict
    from acoustic_env.jobs.plan import plan_extract

    (tmp_path / "audio").mkdir()
    (tmp_path / "clips.csv").write_text("uri,labels,start_s,end_s\na.wav,x,0,2\nb.wav,x,10,40\nc.wav,x,0,90\n"
                                        "d.wav,x,,\n")
    cfg = from_dict(ExtractConfig, {"manifest": str(tmp_path / "clips.csv"), "audio_root": str(tmp_path / "audio"),
                                    "output": str(tmp_path / "out"), "embedders": ["vggish"],
                                    "allow_random_weights": True})
    sizing = plan_extract(cfg)["sizing"]
    assert sizing == size(4, ("vggish",), 32, 0, 8, known=3, known_s=92.0)
    assert math.isclose(sizing["core_hours"], (9.2 + 1) * (CPU_S_PER_CLIP + EMBEDDER_CPU_S["vggish"]) / 3600)
    assert sizing["lines"][0].startswith("  sizing (4 clips: 3 with 92 s of audio by the list's start and end, 1 "
                                         "assumed 10 s each, as the list gives no start and end; costs measured")
    assert size(2, (), 4, 0, 2, known=2, known_s=7200)["lines"][0].startswith(
        "  sizing (2 clips, 2.0 h of audio by the list's start and end; costs")
