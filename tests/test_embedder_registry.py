"""An embedder is one module plus one registered spec: the registry's rules, and a new one end to end.

The tiny embedder below (a fixed projection of a clip's mean log-mel bands) lives only in
this test module: registering its spec is all it takes for extract to write its column
with provenance, for training to use it as a feature group and for the audit to read it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from torch import nn

from acoustic_env.audio.stages import table_metadata
from acoustic_env.config import (
    EMBEDDERS,
    AuditConfig,
    ConfigError,
    ExtractConfig,
    TrainConfig,
    from_dict,
)
from acoustic_env.embedders import registry
from acoustic_env.embedders.base import PatchEmbedder, pad_to
from acoustic_env.embedders.factory import load_embedder
from acoustic_env.embedders.frontend import PATCH_SAMPLES, GoogleLogMel
from acoustic_env.embedders.spec import EmbedderSpec
from acoustic_env.embedders.weights import WeightsSource, WeightsSpec, save_checkpoint
from acoustic_env.table import read_metadata

BUILT_IN = ("vggish", "yamnet", "panns", "birdnet")


class TinyNet(nn.Module):
    """Log-mel patches [N, 1, 96, 64] → their mean over time, projected to 8 values."""

    def __init__(self) -> None:
        super().__init__()
        self.project = nn.Linear(64, 8)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        return self.project(patches.mean(dim=(1, 2)))


def load_tiny(weights: WeightsSource, device: str, precision: str, max_batch: int) -> TinyEmbedder:
    network, weights_id = weights.network(TINY.weights, TinyNet)
    return TinyEmbedder(network, weights_id, device, precision, max_batch)


TINY = EmbedderSpec(name="tiny", dim=8, load=load_tiny, pca=4, memory=2**27,
                    weights=WeightsSpec(name="tiny", filename="tiny.pt", source="tests/test_embedder_registry.py"))


class TinyEmbedder(PatchEmbedder):
    """0.96 s log-mel patches (VGGish's front end) through :class:`TinyNet`, mean over patches."""

    spec = TINY

    def __init__(self, model: TinyNet, weights_id: str, device: str = "cpu", precision: str = "fp32",
                 max_batch: int | None = None) -> None:
        super().__init__(model, weights_id, device, precision, max_batch)
        self.frontend = GoogleLogMel(0.01, 96).to(self.device)

    def _patches(self, clip: np.ndarray) -> torch.Tensor:
        return self.frontend(self._tensor(pad_to(clip, PATCH_SAMPLES)))

    def _network(self, patches: torch.Tensor) -> dict[str, torch.Tensor]:
        return {self.name: self.model(patches)}


@pytest.fixture()
def tiny() -> Iterator[EmbedderSpec]:
    """TINY registered for one test (the registry is process-wide)."""
    spec = registry.register(TINY)
    try:
        yield spec
    finally:
        registry.unregister(spec.name)


@pytest.fixture()
def pickled_by_value() -> Iterator[None]:
    """Ray workers cannot import this test module: what they get from it (TINY) travels by value."""
    import ray.cloudpickle

    module = sys.modules[__name__]
    ray.cloudpickle.register_pickle_by_value(module)
    try:
        yield
    finally:
        ray.cloudpickle.unregister_pickle_by_value(module)


def _extract_config(**kw: object) -> ExtractConfig:
    return from_dict(ExtractConfig, {"manifest": "m.csv", "output": "o", **kw})


# --- the registry --------------------------------------------------------------------------


def test_specs_load_without_torch() -> None:
    """Reading specs, validating a config and building the command line must not pay for torch."""
    code = ("import sys; import acoustic_env.embedders.registry, acoustic_env.embedders.weights; "
            "from acoustic_env.cli import build_parser; from acoustic_env.config import ExtractConfig, from_dict; "
            "from_dict(ExtractConfig, {'manifest': 'm', 'output': 'o', 'embedders': ['panns']}); build_parser(); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_spec_rules() -> None:
    weights = WeightsSpec(name="x", filename="x.pt", source="here")
    for bad in ("Tiny", "tiny-1", "tiny_scores", ""):
        with pytest.raises(ValueError, match="lowercase identifier"):
            EmbedderSpec(name=bad, dim=8, load=load_tiny, weights=weights)
    with pytest.raises(ValueError, match="already registered"):
        registry.register(registry.get("vggish"))
    with pytest.raises(ValueError, match=r"unknown embedder 'openl3'; choose from \['vggish', 'yamnet', 'panns'"):
        registry.get("openl3")
    with pytest.raises(ConfigError, match="^embedders: must be a subset of"):
        _extract_config(embedders=["tiny"])


def test_registering_makes_a_valid_choice_everywhere(tiny: EmbedderSpec) -> None:
    """Configs declared their choices at import; an embedder registered later is still one."""
    assert list(EMBEDDERS) == [*BUILT_IN, "tiny"]
    assert _extract_config(embedders=["tiny"]).embedders == ("tiny",)
    cfg = from_dict(TrainConfig, {"features": "f", "output": "o", "feature_groups": ["tiny"], "pca": "tiny=0.9"})
    assert cfg.pca_target("tiny") == 0.9 and from_dict(TrainConfig, {"features": "f", "output": "o"}).pca_target(
        "tiny") == tiny.pca
    assert registry.weight_files()["tiny"] is tiny.weights


def test_table_metadata_says_what_each_model_does(tmp_path: Path) -> None:
    """Schema and metadata come from the spec before any model loads; the loaded model agrees."""
    cfg = _extract_config(embedders=list(BUILT_IN))
    meta = table_metadata(cfg, "run", {name: "random" for name in BUILT_IN})["columns"]
    for name in BUILT_IN:
        emb = load_embedder(name, allow_random_weights=True, cache_dir=str(tmp_path))
        columns = {c: m for c, m in meta.items() if m.get("source") == name}
        assert {c: (m["shape"][0],) for c, m in columns.items()} == emb.output_columns
        assert {c: m["pooling"] for c, m in columns.items()} == emb.metadata()["pooling"]
        if emb.score_names:
            assert columns[f"{name}_scores"]["names"] == list(emb.score_names)
    assert meta["panns"]["pooling"].startswith("CNN14's own") and meta["yamnet"]["pooling"] == "mean over frames"


def test_an_embedder_with_only_embed_clips_serves_the_device_stage_through_the_host(tmp_path: Path) -> None:
    """``embed_tensor`` (the device stage's entry) on an embedder that implements ``_embed_clips`` only: its
    own vectors, by way of the host, returned on its device."""
    tiny = TinyEmbedder(TinyNet(), "random")
    clips = np.random.default_rng(0).standard_normal((2, 16000)).astype(np.float32)
    out = tiny.embed_tensor(torch.from_numpy(clips))
    assert out["tiny"].device == tiny.device and out["tiny"].dtype == torch.float32
    np.testing.assert_array_equal(out["tiny"].numpy(), tiny.embed(clips)["tiny"])


# --- a new embedder, end to end --------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.usefixtures("pickled_by_value")
def test_a_registered_embedder_goes_through_extract_train_and_audit(ray_session, tiny: EmbedderSpec,
                                                                    tmp_path: Path) -> None:
    from acoustic_env.demo.synth import generate_demo
    from acoustic_env.jobs.audit.job import run_audit
    from acoustic_env.jobs.extract import extract
    from acoustic_env.jobs.train.job import train

    cache = tmp_path / "models"
    torch.manual_seed(3)
    checkpoint = save_checkpoint(tiny.weights, TinyNet().state_dict(), str(cache / tiny.weights.filename))
    demo = generate_demo(tmp_path / "demo", n_clips=24, duration_s=2.0, n_broken=0, seed=11)
    out = tmp_path / "extract"
    result = extract(from_dict(ExtractConfig, {
        "manifest": str(demo.clips_csv), "audio_root": str(demo.audio_dir), "output": str(out),
        "embedders": ["tiny"], "weights_cache": str(cache), "features": {"signals": ["raw"]}, "progress": False,
        "in_process_max": 0}))  # on Ray: the spec registered only here must reach the embedder actors
    assert result.counts["ok"] == 24 and result.weights == {"tiny": checkpoint["sha256"]}

    table = pq.read_table(out / "features")
    assert table.schema.field("tiny").type.list_size == 8
    values = np.stack(table["tiny"].to_numpy(zero_copy_only=False))
    assert np.isfinite(values).all() and np.ptp(values, axis=0).min() > 0  # clips differ
    assert read_metadata(table.schema)["columns"]["tiny"] == {
        "shape": [8], "pooling": "mean over frames", "source": "tiny", "weights": checkpoint["sha256"]}

    summary = train(from_dict(TrainConfig, {
        "features": str(out), "output": str(tmp_path / "train"), "trials": 0, "max_rounds": 2, "grace_rounds": 1, "steps_per_round": 5,
        "baselines": ["logreg"], "cv_folds": 2, "tuning_trials": 1, "ablations": False, "shap_samples": 0,
        "progress": False}))
    trained_on = json.loads((tmp_path / "train" / "runs" / f"{summary.run_id}.json").read_text())["groups"]
    assert "tiny" in trained_on and summary.counts["with_target"] == 24

    audit = run_audit(from_dict(AuditConfig, {"features": str(out), "output": str(tmp_path / "audit"), "folds": 2,
                                              "review_top": 0, "random_sample": 0}))
    assert "tiny" in audit.record["features"]["columns"]
