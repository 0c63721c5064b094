"""``benchmarks/gpu_node.py``, the one command a GPU session runs for issue 87's node figures: its smoke on the CPU
(so that the command a session with a card gets to run once does not fail on its first try), and its arithmetic."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
import gpu_node  # noqa: E402 - benchmarks/gpu_node.py


def test_yamnets_multiply_adds_are_mobilenets_at_its_input_size():
    """A 1-s clip is two YAMNet patches of 96 × 64; MobileNet v1 takes 569 M multiply-adds at 224 × 224, so about
    70 M a patch at YAMNet's input (the classifier's 0.5 M beside it)."""
    macs = gpu_node.network_macs("yamnet", 1.0)
    per_patch = 569e6 * (96 * 64) / (224 * 224)
    assert 2 * per_patch * 0.9 < macs < 2 * per_patch * 1.1


def test_the_report_gives_each_stage_its_ms_a_clip_and_an_embedders_rate():
    """Seconds over clips; an embedder's rate: its multiply-adds times the signals it embedded, twice (FLOPs), per
    second; the share of the peak when one is given."""
    run = {"clips": 1000, "cpu_s": {"decode": 20.0, "indices": 2.5, "embed_panns": 1.2},
           "resources": {"device": "cuda"}, "embed_signals": ["raw", "fg", "bg"]}
    lines = gpu_node.stage_table(run, {"panns": 14e9}, peak_tflops=100.0)
    assert "| indices | 2.50 | - | - | - |" in lines
    assert "| embed_panns | 1.20 | 42.00 (3 signals) | 70.0 | 70.0 % |" in lines
    assert lines[0].startswith("| stage | card ms a clip")
    startup = {"decode": {"first_busy_s": 8.0, "actors": [{"ready_s": 7.5, "load_s": 0.0, "warm_s": 0.0}]},
               "device": {"first_busy_s": 9.0, "actors": [{"ready_s": 8.8, "load_s": 4.0, "warm_s": 1.5}]}}
    line = gpu_node.startup_line({"startup": startup, "timing_s": {"ray_start": 3.0}, "first_part_s": 12.0})
    assert "decode busy 8.0 s (ready 7.5 s)" in line and "device busy 9.0 s (ready 8.8 s, load 4.0 s, warm-up 1.5 s)" in line


@pytest.mark.slow
def test_the_node_benchmark_runs_on_the_cpu(tmp_path):
    """The smoke: a tiny pool and one extract with YAMNet on the CPU, each figure there."""
    out = subprocess.run([sys.executable, "gpu_node.py", "--device", "cpu", "--clips", "4", "--source-clips", "2",
                          "--seconds", "1", "--pool", "2", "--sets", "three", "--three", "yamnet", "--signals", "raw",
                          "--run-timeout", "600", "--json", str(tmp_path / "r.json")],
                         cwd=REPO / "benchmarks", capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads((tmp_path / "r.json").read_text())
    run = got["runs"]["three"]
    assert run["finished"] and run["clips"] == 4 and run["embedders"] == ["yamnet"]
    assert run["cpu_s"]["embed_yamnet"] > 0 and run["startup"]["embed_yamnet"]["actors"][0]["warm_s"] > 0
    assert got["macs"]["yamnet"] > 0
    assert "| extract, three: yamnet on raw | 4 |" in out.stdout and "| embed_yamnet |" in out.stdout
