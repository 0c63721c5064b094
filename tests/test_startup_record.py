"""Start-up paid once (issue 87, part 3): the embedder and device actors warm their networks in their constructors
on the Ray pipeline, and the run record's ``startup`` says when each stage's actors first became busy."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import tone_clip

from acoustic_env.audio import startup
from acoustic_env.audio.manifest import read_manifest
from acoustic_env.audio.rows import row_schema
from acoustic_env.audio.stages import (
    CpuFeatureStage,
    DecodeStage,
    DeviceStage,
    EmbedderStage,
    FeatureWriterStage,
    stages,
    vector_columns,
    write_batch,
)
from acoustic_env.config import ExtractConfig, from_dict
from acoustic_env.embedders.registry import get


def _config(tmp_path, **kw) -> ExtractConfig:
    return from_dict(ExtractConfig, {"manifest": str(tmp_path / "clips"), "output": str(tmp_path / "out"),
                                     "embedders": ["yamnet"], "allow_random_weights": True,
                                     "weights_cache": str(tmp_path / "no-weights"), "progress": False,
                                     "features": {"signals": ["raw"]}, **kw})


@pytest.fixture
def decoded(tmp_path):
    """(config, row schema, two short clips decoded with their features) for the stages that follow."""
    (tmp_path / "clips").mkdir()
    tone_clip(tmp_path / "clips" / "a.wav", seconds=1.0)
    tone_clip(tmp_path / "clips" / "b.wav", seconds=1.0, freq=880.0, seed=1)
    cfg = _config(tmp_path)
    table = read_manifest(cfg.manifest, cfg.audio_root).table
    schema = row_schema(table.schema, vector_columns(cfg), stages(cfg))
    return cfg, schema, table


def _entries(table: pa.Table) -> list[dict]:
    return [json.loads(e) for e in startup.entries(table)]


def test_an_embedder_actor_warms_when_built_and_stamps_its_first_batch(decoded):
    """Warmed, the stage ran a dummy batch through its network before any batch came (``warm_s``); its first
    output carries one entry on row 0 (load, warm-up, first batch), every later one none; unwarmed, no dummy
    batch. The entry comes after the feature actor's, on the same column."""
    cfg, schema, table = decoded
    features = CpuFeatureStage(cfg, schema)(table)
    [feature_entry] = _entries(features)
    assert feature_entry["stage"] == "features" and feature_entry["warm_s"] == 0
    assert features[startup.COLUMN].to_pylist()[1:] == [None]
    warm = EmbedderStage(get("yamnet"), cfg, schema, "cpu", "random", warm=True)
    first = warm(features)
    got = _entries(first)
    assert [e["stage"] for e in got] == ["features", "embed_yamnet"]
    entry = got[1]
    assert entry["load_s"] > 0 and entry["warm_s"] > 0 and "warm_error" not in entry
    assert entry["started"] <= entry["ready"] <= entry["first_batch"] and entry["first_batch_s"] > 0
    again = warm(CpuFeatureStage(cfg, schema)(table))
    assert [e["stage"] for e in _entries(again)] == ["features"]  # a new feature actor's; the embedder's once only
    cold = EmbedderStage(get("yamnet"), cfg, schema, "cpu", "random")
    assert _entries(cold(features))[1]["warm_s"] == 0
    # the dummy batch is the network's: its outputs are the ones the stage writes
    np.testing.assert_allclose(np.stack(first["yamnet"].to_numpy(zero_copy_only=False)),
                               np.stack(cold(features)["yamnet"].to_numpy(zero_copy_only=False)), rtol=1e-5, atol=1e-6)


def test_a_warm_up_that_fails_is_kept_in_the_entry_not_raised(decoded):
    """A network that cannot take the dummy batch does not stop the actor: the real batches decide, clip by clip."""
    cfg, schema, table = decoded
    stage = EmbedderStage(get("yamnet"), cfg, schema, "cpu", "random")
    stage.clock.warm(lambda: stage._embed([np.zeros(0, np.float32)]))  # an empty clip: the embedder refuses it
    [_, entry] = _entries(stage(CpuFeatureStage(cfg, schema)(table)))
    assert entry["warm_error"].startswith("ValueError")


def test_the_device_stage_warms_every_feature_and_embedder(decoded):
    """The device stage's dummy batch (one clip on the CPU) goes through the torch features and YAMNet."""
    cfg, schema, table = decoded
    stage = DeviceStage(cfg, schema, "cpu", {"yamnet": get("yamnet")}, {"yamnet": "random"}, warm=True)
    assert stage.clock.seconds["warm"] > 0 and stage.clock.warm_error is None
    out = stage(DecodeStage(cfg, schema)(table))
    assert [(e["stage"], e["warm_s"] > 0) for e in _entries(out)] == [("decode", False), ("device", True)]


def test_the_writer_keeps_the_entries_for_the_summary_and_stores_none(decoded, tmp_path):
    """``write_batch`` gathers every entry of the batch into its part's summary; the part holds no such column.
    A stage that writes its own parts (no embedder) stamps its first summary."""
    cfg, schema, table = decoded
    done = CpuFeatureStage(cfg, schema)(table)
    summary = write_batch(done, str(tmp_path / "w"), "r1", {})
    assert [e["stage"] for e in _entries(summary)] == ["features"]
    assert startup.COLUMN not in pq.read_table(tmp_path / "w" / "features").column_names
    plain = _config(tmp_path, embedders=[], output=str(tmp_path / "plain"))
    writer = FeatureWriterStage(plain, schema, str(tmp_path / "plain"), "r2", {})
    assert [e["stage"] for s in writer(table) for e in _entries(s)] == ["features"]


def test_the_record_gives_each_stage_its_first_busy_time_and_its_actors():
    """``summarise``: seconds after the run's start, per stage its earliest first batch, its actors by first batch."""
    def entry(stage, started, first, warm=0.0):
        return json.dumps({"stage": stage, "started": started, "ready": started + 1 + warm, "load_s": 1.0,
                           "warm_s": warm, "first_batch": first, "first_batch_s": 0.5})

    got = startup.summarise([entry("features", 110.0, 112.0), entry("embed_panns", 110.5, 115.0, warm=2.0),
                             entry("features", 110.2, 111.5)], t0=100.0)
    assert list(got) == ["features", "embed_panns"]
    assert got["features"]["first_busy_s"] == 11.5 and [a["started_s"] for a in got["features"]["actors"]] == [10.2, 10.0]
    assert got["embed_panns"]["actors"] == [{"started_s": 10.5, "load_s": 1.0, "warm_s": 2.0, "ready_s": 13.5,
                                             "first_batch_s": 15.0, "first_batch_took_s": 0.5}]


@pytest.mark.slow
def test_on_ray_the_record_shows_the_warmed_embedder_and_in_process_a_cold_one(ray_session, tmp_path):
    """The extract on Ray: the record's ``startup`` has the feature actors and the warmed YAMNet actor, its warm-up
    done before its first batch; in the command's process the same stages run unwarmed (nothing would overlap)."""
    from acoustic_env.jobs.extract import extract

    (tmp_path / "clips").mkdir()
    for i in range(3):
        tone_clip(tmp_path / "clips" / f"c{i}.wav", seconds=1.0, seed=i)
    on_ray = extract(_config(tmp_path, in_process_max=0, output=str(tmp_path / "ray"))).record["startup"]
    assert set(on_ray) == {"features", "embed_yamnet"}
    [actor] = on_ray["embed_yamnet"]["actors"]
    assert actor["warm_s"] > 0 and actor["load_s"] > 0
    assert 0 < actor["started_s"] <= actor["ready_s"] <= actor["first_batch_s"] == on_ray["embed_yamnet"]["first_busy_s"]
    assert on_ray["features"]["first_busy_s"] < on_ray["embed_yamnet"]["first_busy_s"]
    here = extract(_config(tmp_path, output=str(tmp_path / "here"))).record["startup"]
    assert here["embed_yamnet"]["actors"][0]["warm_s"] == 0
