"""A hand-made feature group is one declaration: a toy declared here, outside the package, is computed by extract,
described in the table's metadata, a choice of train's ``--feature-groups`` and learnt from (issue 59, part 2;
docs/development.md, "Adding a feature group")."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import replace
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest

import acoustic_env as ae
from acoustic_env import feature_groups
from acoustic_env.config import FeatureParams, TrainConfig, from_dict
from acoustic_env.demo.synth import generate_demo
from acoustic_env.feature_groups import GroupSpec
from acoustic_env.features import STAGES, cpu_features, feature_metadata
from acoustic_env.registry import lazy
from recipe_files import lazily_named, named, recipe_files

NAMES = ["rms_db", "peak_db", "crest"]


def level(x: np.ndarray, sr: int, params: Any, shared: dict[str, Any]) -> np.ndarray:
    """The signal's RMS and peak level (dB) and their ratio: a group the libraries do not compute."""
    x = np.asarray(x, np.float64)
    rms, peak = np.sqrt(np.mean(x**2)), np.max(np.abs(x))
    return np.array([20 * np.log10(rms + 1e-12), 20 * np.log10(peak + 1e-12), peak / (rms + 1e-12)])


LEVEL = GroupSpec("level", "RMS and peak levels (a test's toy)", pca=2, compute={"reference": level, "fast": level},
                  metadata=lambda params: {"shape": [3], "names": NAMES, "source": "a test's toy"})


@pytest.fixture
def toy():
    feature_groups.register(LEVEL)
    yield LEVEL
    feature_groups.unregister(LEVEL.name)


def test_a_registered_group_is_computed_timed_and_described_for_every_signal(toy):
    params = FeatureParams(signals=("raw", "fg"))
    x = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
    out, cpu = cpu_features(x, 16000, params)
    np.testing.assert_allclose(out["level_raw"], level(x, 16000, params, {}).astype(np.float32))
    assert out["level_fg"].shape == (3,) and "level" in cpu and "level" in STAGES
    meta = feature_metadata(params)
    assert meta["level_fg"] == {"shape": [3], "names": NAMES, "source": "a test's toy", "impl": params.impl}
    assert list(meta).index("level_raw") < list(meta).index("indices_fg")  # a signal's groups, then the next's
    assert from_dict(TrainConfig, {"features": "f", "output": "o", "feature_groups": ["level", "level_fg"]})


def test_a_declaration_that_contradicts_itself_is_refused():
    with pytest.raises(ValueError, match="level: needs implementations .* missing \\['fast'\\]"):
        replace(LEVEL, compute={"reference": level})
    with pytest.raises(ValueError, match="level: pca must be"):
        replace(LEVEL, pca=0)
    with pytest.raises(ValueError, match="'indices' is already registered"):
        feature_groups.register(replace(LEVEL, name="indices"))
    with pytest.raises(ValueError, match="feature group level has no torch implementation"):
        LEVEL.implementation("torch")


def test_a_group_switched_off_is_neither_computed_nor_described():
    off = FeatureParams(spectral=False)
    out, _ = cpu_features(np.zeros(16000, np.float32), 16000, off)
    assert "spectral_raw" not in out and "spectral_raw" not in feature_metadata(off)
    assert [g.name for g in feature_groups.specs(off)] == ["indices", "mps"]


@pytest.mark.slow
def test_extract_writes_the_toy_and_train_learns_from_it_alone(toy, tmp_path):
    data = generate_demo(tmp_path / "data", n_clips=16, duration_s=2.0, n_broken=0, seed=5)
    table = tmp_path / "features"
    ae.extract(str(data.clips_csv), str(table), audio_root=str(data.audio_dir), embedders=["none"], progress=False)
    schema = pq.read_schema(next((table / "features").rglob("*.parquet")))
    meta = json.loads(schema.metadata[b"acoustic_env"])["columns"]
    assert meta["level_raw"]["names"] == NAMES and "level_raw" in schema.names
    out = tmp_path / "train"
    result = ae.train(str(table), str(out), feature_groups=["level"], cv_folds=2, ablations=False, shap_samples=0,
                      tuning_trials=1, baselines=["logreg"], progress=False)
    # the chosen model is the better of the two candidates on the toy's columns (the MLP holds the logistic model)
    assert result.groups == ["level_raw", "level_fg", "level_bg"] and result.evaluation["saved_model"] in ("logreg", "mlp")
    assert all(result.metrics[m]["n"] == 16 for m in ("logreg", "mlp"))
    proba = ae.load_model(result.model).predict_proba(str(table))  # the saved model reads the toy's columns
    assert proba.shape == (16, 2) and np.allclose(proba.sum(axis=1), 1)


def group_files(spec: GroupSpec) -> set[str]:
    """What a built-in group needs, read from the code: the registry's list, the implementations and metadata its
    declaration names lazily, and the ``FeatureParams`` fields that switch and set it."""
    needed = {"feature_groups.py", *lazily_named(spec.metadata, *spec.compute.values())}
    if spec.switch or any(f.name.startswith(f"{spec.name}_") for f in dataclasses.fields(FeatureParams)):
        needed.add("config/extraction.py")
    return needed


def test_the_recipe_names_every_file_a_built_in_group_needs():
    files = recipe_files("Adding a feature group")
    missing = {s.name: gaps for s in feature_groups.specs() if (gaps := named(files, group_files(s), name=s.name))}
    assert not missing, f"docs/development.md, Adding a feature group, lists none of {missing}"
    # the check can fail: the spectral statistics' torch implementation, moved to a module the list does not name
    spectral = feature_groups.get("spectral")
    moved = replace(spectral, compute={**spectral.compute, "torch": lazy("acoustic_env.features.gpu.spectral", "group")})
    assert named(files, group_files(moved), name="spectral") == {"features/gpu/spectral.py"}
