"""``--embedders auto``, extract's default: every embedder whose real weights are here and check, never random ones.

The pretrained network is the best path a user has, so it runs without a flag (DESIGN: the defaults are the best
path); random weights carry no meaning, so ``auto`` never chooses them, whatever ``--allow-random-weights`` says.
The suite itself runs with ``$ACOUSTIC_ENV_EMBEDDERS=none`` (tests/conftest.py), so these tests clear it.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from acoustic_env.cli import main
from acoustic_env.config import ConfigError, ExtractConfig, from_dict
from acoustic_env.demo.synth import DemoSet, generate_demo
from acoustic_env.embedders import registry
from acoustic_env.embedders.weights import save_checkpoint
from acoustic_env.jobs.extract import EMBEDDERS_ENV, choose_embedders
from acoustic_env.jobs.plan import plan_extract


@pytest.fixture(autouse=True)
def _auto(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(EMBEDDERS_ENV, raising=False)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> DemoSet:
    return generate_demo(tmp_path_factory.mktemp("auto") / "data", n_clips=3, duration_s=1.0, n_broken=0, seed=2)


def _config(tmp_path: Path, **kw: object) -> ExtractConfig:
    return from_dict(ExtractConfig, {"manifest": "m.csv", "output": str(tmp_path / "o"),
                                     "weights_cache": str(tmp_path / "cache"), **kw})


def _without_extra(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """``name``'s optional runtime as if it were not installed."""
    spec = registry.get(name)
    absent = dataclasses.replace(spec, requires=("no_such_module_for_a_test",))
    monkeypatch.setitem(registry._REGISTRY._specs, name, absent)


def test_auto_is_the_default_and_stands_alone(tmp_path: Path) -> None:
    assert _config(tmp_path).embedders == ("auto",)
    for bad in (["auto", "vggish"], ["none", "birdnet"]):
        with pytest.raises(ConfigError, match="embedders: auto and none stand alone"):
            _config(tmp_path, embedders=bad)


def test_auto_never_picks_random_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty weights cache and --allow-random-weights: auto runs none of the torch embedders (named ones would
    run random), and says what would make each run."""
    _without_extra(monkeypatch, "birdnet")
    cfg, found, choice = choose_embedders(_config(tmp_path, allow_random_weights=True), verify=True)
    assert cfg.embedders == () and found == {} and choice.ran == ()
    assert set(choice.left_out) == {"vggish", "yamnet", "panns", "birdnet"}
    assert "acoustic-env models fetch" in choice.left_out["vggish"]
    named, found, _ = choose_embedders(_config(tmp_path, allow_random_weights=True, embedders=["vggish"]), True)
    assert found["vggish"].use == "random"  # the explicit list keeps today's rule


def test_auto_picks_a_checked_checkpoint_and_passes_over_a_bad_one(tmp_path: Path) -> None:
    """A checkpoint in the cache that checks is chosen (and hashed once, for the run record); one that fails its
    check is left out with the reason, where a named embedder would stop the job."""
    from acoustic_env.embedders.vggish.model import VGGish

    spec = registry.get("vggish").weights
    save_checkpoint(spec, VGGish().state_dict(), str(tmp_path / "cache" / spec.filename))
    cfg, found, choice = choose_embedders(_config(tmp_path), verify=True)
    assert "vggish" in cfg.embedders and found["vggish"].use == "checkpoint" and found["vggish"].sha256
    (tmp_path / "cache" / spec.filename).write_bytes(b"not the checkpoint")
    cfg, found, choice = choose_embedders(_config(tmp_path), verify=True)
    assert "vggish" not in cfg.embedders and "fails its check" in choice.left_out["vggish"]


def test_without_the_extra_extract_runs_no_embedder_and_says_so_in_one_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], clips: DemoSet) -> None:
    _without_extra(monkeypatch, "birdnet")
    out = tmp_path / "out"
    assert main(["extract", "--manifest", str(clips.clips_csv), "--audio-root", str(clips.audio_dir),
                 "--output", str(out), "--weights-cache", str(tmp_path / "cache"), "--no-progress"]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if "embedders" in ln]
    assert len(lines) == 1, lines
    assert lines[0].startswith("  embedders (auto): none available offline; left out: ")
    assert "birdnet: not installed (pip install 'acoustic-env[birdnet]')" in lines[0]
    record = json.loads(next((out / "runs").glob("*.json")).read_text())
    assert record["embedders"]["requested"] == ["auto"] and record["embedders"]["ran"] == []
    assert record["config"]["embedders"] == [] and record["weights"] == {}


def test_the_dry_run_names_the_same_choice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clips: DemoSet) -> None:
    _without_extra(monkeypatch, "birdnet")
    cfg = _config(tmp_path, manifest=str(clips.clips_csv), audio_root=str(clips.audio_dir))
    plan = plan_extract(cfg)
    assert "no embedders" in plan["lines"][1] and plan["weights"] == {}
    assert any(ln.startswith("  embedders (auto): none available offline") for ln in plan["lines"])


def test_the_environment_stands_for_auto_and_is_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(EMBEDDERS_ENV, "none")
    cfg, _, choice = choose_embedders(_config(tmp_path), verify=False)
    assert cfg.embedders == () and choice.line() == f"embedders: none (${EMBEDDERS_ENV} none)"
    named, _, _ = choose_embedders(_config(tmp_path, embedders=["vggish"], allow_random_weights=True), False)
    assert named.embedders == ("vggish",)  # a named list is what the user asked for
    monkeypatch.setenv(EMBEDDERS_ENV, "vggish,nope")
    with pytest.raises(ConfigError, match=rf"^\${EMBEDDERS_ENV} \(what --embedders auto stands for\): embedders:"):
        choose_embedders(_config(tmp_path), verify=False)
