"""The extract on a GPU node: decode on the CPUs, then one device stage that computes every feature and
every embedding of a batch on the card (``DeviceStage``), then the writers.

No GPU is needed: the stage takes its torch device from the plan, so the tests run it on "cpu" and hold it
to the CPU pipeline: the numpy features within the tolerances of tests/test_torch_features.py, and the CPU
embedder stage's vectors (on the numpy separation's fg and bg) within cosine 0.999. The plan itself is
tested on cluster shapes given as Ray reports them (``{"CPU": 16, "GPU": 1}``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from conftest import mixed_clips

from acoustic_env.audio.manifest import read_manifest
from acoustic_env.audio.rows import AUDIO, CPU_PREFIX, row_schema
from acoustic_env.audio.stages import (
    DeviceStage,
    EmbedderStage,
    cpu_vector_columns,
    decode_batch,
    features_batch,
    separated_signals,
    stages,
    table_metadata,
    vector_columns,
)
from acoustic_env.config import ExtractConfig, from_dict
from acoustic_env.distributed.pipeline import plan_extract_resources, run_pipeline
from acoustic_env.embedders.registry import get

THREE = ("vggish", "yamnet", "panns")
NO_CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
DEVICES = ["cpu", pytest.param("cuda", marks=[pytest.mark.gpu, NO_CUDA])]


def _tolerance(column: str) -> float:
    """The torch features against the numpy ones (tests/test_torch_features.py): MPS 1e-4 (and 1e-5 absolute), raw
    1e-6, fg/bg 1e-3."""
    return 1e-4 if column.startswith("mps") else 1e-6 if column.endswith("raw") else 1e-3


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row by row, by hand: random YAMNet's vectors (|v| ≈ 3e-10) are below torch's cosine epsilon."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def _rows(table: pa.Table, column: str, rows: list[int]) -> np.ndarray:
    return np.stack([np.asarray(table[column][i].values, dtype=np.float32) for i in rows])


# --- the plan ---

def test_the_device_plan_gives_each_card_to_one_device_actor_and_the_cores_to_decode():
    one = plan_extract_resources({"CPU": 16.0, "GPU": 1.0}, n_embedders=3)
    assert (one.device, one.device_actors, one.device_gpus, one.device_cpus) == ("cuda", 1, 1.0, 1.0)
    assert one.embed_on_accelerator and one.embed_actors == 0 and one.embed_resources == {}  # no embedder pools
    assert one.max_actors == 15 and one.actor_cpus == 0.75  # every core left decodes
    assert one.max_actors * one.actor_cpus + one.device_cpus + one.task_cpus * one.write_slots <= 16.0
    four = plan_extract_resources({"CPU": 64.0, "GPU": 4.0}, n_embedders=3)
    assert (four.device_actors, four.device_gpus, four.max_actors, four.write_slots) == (4, 1.0, 60, 2)
    assert four.max_actors * four.actor_cpus + 4 * four.device_cpus + four.task_cpus * four.write_slots <= 64.0
    features_only = plan_extract_resources({"CPU": 16.0, "GPU": 1.0})
    assert features_only.device == "cuda" and not features_only.embed_on_accelerator
    assert plan_extract_resources({"CPU": 8.0, "GPU": 0.5}, n_embedders=1).device_gpus == 0.5  # what Ray offers
    # no CUDA GPU, --device cpu, or a stand-in accelerator: the CPU pipeline, as before
    for plan in (plan_extract_resources({"CPU": 16.0}, n_embedders=3),
                 plan_extract_resources({"CPU": 16.0, "GPU": 1.0}, n_embedders=3, device="cpu"),
                 plan_extract_resources({"CPU": 16.0, "accel": 1.0}, n_embedders=3, accelerator="accel")):
        assert plan.device is None and plan.device_actors == 0 and plan.embed_actors > 0


# --- the stage, without Ray ---

@pytest.fixture(scope="module")
def decoded(tmp_path_factory) -> tuple[ExtractConfig, pa.Schema, pa.Table]:
    """Three clips of two lengths and one that is not audio, decoded; every embedder on raw, fg and bg."""
    root = tmp_path_factory.mktemp("device_stage")
    clips = mixed_clips(root / "clips")
    cfg = from_dict(ExtractConfig, {"manifest": str(clips), "output": str(root / "out"), "embedders": list(THREE),
                                    "embed_signals": "raw,fg,bg", "allow_random_weights": True,
                                    "weights_cache": str(root / "no-weights"), "progress": False})
    table = read_manifest(cfg.manifest, cfg.audio_root).table
    # the CPU pipeline's rows, audio_fg and audio_bg included: the CPU embedder stages read them
    schema = row_schema(table.schema, vector_columns(cfg), stages(cfg), separated_signals(cfg))
    return cfg, schema, decode_batch(table, cfg, schema)


@pytest.mark.parametrize("device", DEVICES)
def test_the_device_stage_gives_the_numpy_features_and_the_embedder_stages_vectors(decoded, device):
    """``DeviceStage`` (on "cpu" here, on "cuda" where there is one) against the CPU pipeline on the same decoded batch: feature columns within the
    torch path's tolerances, each embedder's columns of raw, fg and bg within cosine 0.999 of its
    ``EmbedderStage`` (which embeds the numpy separation's fg and bg), error rows passed through, no audio out."""
    cfg, schema, batch = decoded
    weights = dict.fromkeys(THREE, "random")
    stage = DeviceStage(cfg, schema, device, {name: get(name) for name in THREE}, weights)
    done = stage(batch)
    assert done.schema == schema
    assert all(done[col].null_count == done.num_rows for col in (AUDIO, "audio_fg", "audio_bg"))  # no audio out
    assert done["error_type"].to_pylist() == [None, None, None, "not_audio"]
    expected = features_batch(batch, cfg, schema)
    for name in THREE:
        expected = EmbedderStage(get(name), cfg, schema, "cpu", "random")(expected)
    good = [0, 1, 2]
    for col in cpu_vector_columns(cfg):
        tol = _tolerance(col)
        np.testing.assert_allclose(_rows(done, col, good), _rows(expected, col, good), rtol=tol,
                                   atol=1e-5 if col.startswith("mps") else 1e-6, err_msg=col)  # cuFFT: test_torch_features
        assert done[col][3].as_py() is None
    assert done["nonfinite_features"].to_pylist() == expected["nonfinite_features"].to_pylist()
    for col, _ in vector_columns(cfg).items():
        if col in cpu_vector_columns(cfg):
            continue
        cosine = _cosines(_rows(done, col, good), _rows(expected, col, good))
        assert (cosine >= 0.999).all(), (col, cosine)
        assert done[col][3].as_py() is None
    for stage_name in stages(cfg)[1:]:  # every stage but decode: seconds for the good rows only
        seconds = done[CPU_PREFIX + stage_name].to_numpy()
        assert (seconds[:3] > 0).all() and seconds[3] == 0, stage_name


# --- the pipeline on a local Ray ---

@pytest.mark.slow
def test_the_extract_decodes_then_runs_the_device_stage(ray_session, tmp_path):
    """``run_pipeline`` with the plan Ray would give one GPU, its device stage on "cpu": the decode actors and
    one device actor run (no embedder pool), every clip is written once, and the vectors are the stage's own.
    The features are of raw only and YAMNet embeds raw and fg: the separation runs for the embedder alone."""
    from acoustic_env.demo.synth import generate_demo
    from acoustic_env.jobs.extract import choose_embedders, resolve_weights

    demo = generate_demo(tmp_path / "demo", n_clips=6, seed=4, duration_s=1.5, n_broken=1)
    cfg = from_dict(ExtractConfig, {"manifest": str(demo.clips_csv), "audio_root": str(demo.audio_dir),
                                    "output": str(tmp_path / "out"), "embedders": ["yamnet"], "embed_signals": "raw,fg",
                                    "allow_random_weights": True, "weights_cache": str(tmp_path / "no-weights"),
                                    "device_batch_size": 3, "features": {"signals": ["raw"]}, "progress": False})
    plan = dataclasses.replace(plan_extract_resources({"CPU": 2.0, "GPU": 1.0}, n_embedders=1), device="cpu",
                               device_gpus=0.0)  # the session's Ray: 2 CPUs, no GPU
    weights = resolve_weights(choose_embedders(cfg, verify=True)[1])
    table = read_manifest(cfg.manifest, cfg.audio_root).table
    totals = run_pipeline([table], table.num_rows, cfg, "r1", table_metadata(cfg, "r1", weights), weights,
                          resources=plan)
    assert (totals["ok"], totals["failed"]) == (5, 1)
    assert totals["resources"]["feature_device"] == totals["resources"]["torch_device"] == "cpu"
    assert totals["resources"]["device_actors"] == 1 and totals["resources"]["embed_actors"] == 0
    assert all(totals["cpu_s"][s] > 0 for s in stages(cfg)), totals["cpu_s"]
    out = pq.read_table(Path(cfg.output) / "features").sort_by("clip_id")
    assert out.num_rows == 5 and pq.read_table(Path(cfg.output) / "errors").num_rows == 1
    assert {"yamnet", "yamnet_scores", "yamnet_fg", "yamnet_scores_fg"} <= set(out.column_names)
    assert not {"yamnet_bg", "indices_fg", AUDIO, "audio_fg"} & set(out.column_names)
    # the same vectors as the stage gives on the decoded clips in one batch, in this process
    schema = row_schema(table.schema, vector_columns(cfg), stages(cfg))
    alone = DeviceStage(cfg, schema, "cpu", {"yamnet": get("yamnet")}, weights)(decode_batch(table, cfg, schema))
    alone = alone.filter(alone["error_type"].is_null()).sort_by("clip_id")
    for col in ("indices_raw", "mps_raw", "yamnet", "yamnet_scores_fg"):
        np.testing.assert_allclose(_rows(out, col, list(range(5))), _rows(alone, col, list(range(5))),
                                   rtol=1e-5, atol=1e-12, err_msg=col)
