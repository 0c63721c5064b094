"""The extract job end to end on a real local Ray instance: outputs, resume, retry, interruption."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import s3_environment, tone_clip

from acoustic_env.config import ConfigError, ExtractConfig, from_dict
from acoustic_env.demo.synth import generate_demo
from acoustic_env.jobs.extract import extract
from acoustic_env.table import read_metadata

EXPECTED_ERRORS = {"empty": "empty_file", "not_audio": "not_audio", "truncated": {"truncated", "corrupt"},
                   "missing": "missing_file", "nan_samples": "nan_samples", "too_short": "too_short"}


def truth(demo) -> dict[str, dict[str, str]]:
    with open(demo.truth_csv) as fh:
        return {r["clip_id"]: r for r in csv.DictReader(fh)}


def config(demo, output: Path, **kw):
    return from_dict(ExtractConfig, {"manifest": str(demo.clips_csv), "audio_root": str(demo.audio_dir),
                                     "output": str(output), "progress": False, "embedders": [], **kw})


def features_ids(output: Path) -> list[str]:
    return pq.read_table(output / "features", columns=["clip_id"])["clip_id"].to_pylist()


def errors_table(output: Path) -> dict[str, dict]:
    rows = pq.read_table(output / "errors").to_pylist()
    assert len(rows) == len({r["clip_id"] for r in rows}), "one errors/ row per clip"
    return {r["clip_id"]: r for r in rows}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return generate_demo(tmp_path_factory.mktemp("demo"), n_clips=14, seed=3, duration_s=2.0, n_broken=6)


@pytest.mark.slow
def test_extract_writes_every_clip_once_with_errors_named(ray_session, demo, tmp_path):
    out = tmp_path / "out"
    result = extract(config(demo, out, in_process_max=0))  # the Ray pipeline, whatever the clip count
    t = truth(demo)
    good = {c for c, r in t.items() if r["broken"] == "0"}
    broken = {c: r["broken_kind"] for c, r in t.items() if r["broken"] == "1"}
    ids = features_ids(out)
    assert sorted(ids) == sorted(good)
    # no embedder: each feature actor writes its block's parts itself, one per write_batch_size rows
    block = result.record["resources"]["rows_per_block"]
    parts = [pq.read_metadata(p).num_rows for p in (out / "features").glob("*.parquet")]
    assert len(parts) <= -(-len(t) // block) and max(parts) <= min(block, 64), (parts, block)
    errs = errors_table(out)
    assert set(errs) == set(broken)
    for clip_id, kind in broken.items():
        expected = EXPECTED_ERRORS[kind]
        assert errs[clip_id]["error_type"] in (expected if isinstance(expected, set) else {expected}), clip_id
        assert errs[clip_id]["stage"] == "decode" and errs[clip_id]["message"]
    c = result.counts
    assert (c["input"], c["ok"], c["failed"], c["skipped"]) == (len(t), len(good), len(broken), 0)
    assert set(result.record["cpu_s"]) == {"decode", "separate", "indices", "spectral", "mps"}
    assert all(v > 0 for v in result.record["cpu_s"].values())
    assert result.record["versions"]["ray"] and result.record["status"] == "completed"
    # the table: fixed-size float32 vectors, no NaN, names and shapes in the metadata
    table = pq.read_table(out / "features")
    meta = read_metadata(pq.read_schema(next((out / "features").glob("*.parquet"))))
    for sig in ("raw", "fg", "bg"):
        col = table[f"indices_{sig}"]
        assert col.type.list_size == 60 and len(meta["columns"][f"indices_{sig}"]["names"]) == 60
        assert col.type.list_size == 60 and str(col.type.value_type) == "float"
        assert table[f"mps_{sig}"].type.list_size == int(np.prod(meta["columns"][f"mps_{sig}"]["shape"]))
        values = np.stack(col.to_numpy(zero_copy_only=False))
        assert np.isfinite(values).all()
    # fg + bg partition the signal, so their indices differ from raw and from each other
    raw, fg = (np.stack(table[f"indices_{s}"].to_numpy(zero_copy_only=False)) for s in ("raw", "fg"))
    assert not np.allclose(raw, fg)
    assert set(table.column_names) >= {"clip_id", "uri", "labels", "group", "orig_sample_rate", "channels",
                                       "orig_duration_s", "is_silent"}
    rates = {int(t[c]["sample_rate"]) for c in good}
    assert set(table["orig_sample_rate"].to_pylist()) == rates


@pytest.mark.slow
def test_resume_skips_done_and_retries_errors(ray_session, demo, tmp_path, capfd):
    out = tmp_path / "out"
    first = extract(config(demo, out))
    second = extract(config(demo, out))
    assert second.counts["skipped"] == first.counts["ok"]
    assert second.counts["processed"] == second.counts["retried"] == first.counts["failed"]
    assert sorted(features_ids(out)) == sorted(set(features_ids(out)))
    assert len(errors_table(out)) == first.counts["failed"]
    # repair one broken clip: the next run moves it from errors/ to features/
    t = truth(demo)
    empty = next(c for c, r in t.items() if r["broken_kind"] == "empty")
    path = next(demo.audio_dir.glob(f"{empty}.*"))
    tone_clip(path, seconds=2.0)
    capfd.readouterr()
    third = extract(config(demo, out, progress=True, in_process_max=0))  # on Ray: its own bars stay off
    err = capfd.readouterr().err
    assert third.counts["ok"] == 1
    # one line for the job (not a terminal: plain lines), none of Ray Data's operator bars
    processed = third.counts["processed"]
    assert f"extract: {processed} of {processed} clips (100 %)" in err and f"{processed - 1} failed" in err
    ours = [line for line in err.splitlines() if "core_worker.cc" not in line]  # Ray's C++ notice of a first actor
    assert not any("MapBatches" in line or "Running Dataset" in line for line in ours), err
    assert empty in features_ids(out) and empty not in errors_table(out)
    assert len(features_ids(out)) + len(errors_table(out)) == len(t)
    assert len(list((out / "runs").glob("*.json"))) == 3


@pytest.mark.slow
def test_interrupted_run_resumes_with_every_clip_exactly_once(ray_session, tmp_path):
    # 10 good clips: the kill comes after 3 parts, the dead driver's workers may add a few, the resume does the rest
    n_clips = 12
    demo = generate_demo(tmp_path / "demo", n_clips=n_clips, seed=5, duration_s=2.0, n_broken=2)
    out = tmp_path / "out"
    address = ray_session.get_runtime_context().gcs_address
    cmd = [sys.executable, "-m", "acoustic_env.cli", "extract", "--manifest", str(demo.clips_csv),
           "--audio-root", str(demo.audio_dir), "--output", str(out), "--batch-size", "1", "--write-batch-size", "1",
           "--ray-address", address, "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if len(list((out / "features").glob("part-*.parquet"))) >= 3:
            break
        time.sleep(0.2)
    assert proc.poll() is None, f"the job ended before it could be interrupted: {proc.stderr.read()[-2000:]}"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    # Ray reaps the dead driver's workers in the background: wait until features/ stops changing.
    parts = lambda: sorted(p.name for p in (out / "features").glob("part-*.parquet"))  # noqa: E731
    before, stable_since = parts(), time.time()
    while time.time() - stable_since < 3:
        time.sleep(0.5)
        if parts() != before:
            before, stable_since = parts(), time.time()
    done_before = set(features_ids(out))
    assert 3 <= len(done_before) < demo.n_good
    result = extract(config(demo, out))
    ids = features_ids(out)
    assert len(ids) == len(set(ids)) == demo.n_good
    # Nothing done was recomputed: the resumed run processed exactly the clips that were missing,
    # and the parts it wrote (named with its run id) hold none of the clips done before.
    assert result.counts["skipped"] == len(done_before)
    assert result.counts["processed"] == n_clips - len(done_before)
    new_parts = list((out / "features").glob(f"part-{result.run_id}-*.parquet"))
    recomputed = {c for p in new_parts for c in pq.read_table(p, columns=["clip_id"])["clip_id"].to_pylist()}
    assert recomputed and not recomputed & done_before
    assert len(errors_table(out)) == demo.n_broken


def test_bad_config_is_one_line_naming_the_field(tmp_path):
    with pytest.raises(ConfigError, match=r"^features\.mps_n_wt: must be an odd integer"):
        from_dict(ExtractConfig, {"manifest": "m.csv", "output": "o", "features": {"mps_n_wt": 4}})
    with pytest.raises(ConfigError, match=r"^decode\.min_duratoin_s: unknown field"):
        from_dict(ExtractConfig, {"manifest": "m.csv", "output": "o", "decode": {"min_duratoin_s": 1}})
    with pytest.raises(ConfigError, match=r"^batch_size: must be an integer >= 1"):
        from_dict(ExtractConfig, {"manifest": "m.csv", "output": "o", "batch_size": 0})
    with pytest.raises(ConfigError, match=r"^features\.signals: must be a non-empty subset"):
        from_dict(ExtractConfig, {"manifest": "m.csv", "output": "o", "features": {"signals": ["mid"]}})


@pytest.mark.parametrize("args,needle", [
    (["--manifest", "m.csv", "--output", "o", "--batch-size", "0"], "batch_size: must be an integer >= 1"),
    (["--output", "o"], "manifest: is required"),
    (["--manifest", "/nonexistent/list.csv", "--output", "o"], "manifest: no such file or directory"),
])
def test_cli_bad_input_is_one_line(tmp_path, args, needle):
    out = subprocess.run([sys.executable, "-m", "acoustic_env.cli", "extract", *args], capture_output=True,
                         text=True, cwd=tmp_path, timeout=120)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in out.stderr


def test_cli_config_file_field_errors(tmp_path):
    (tmp_path / "c.yaml").write_text("manifest: m.csv\noutput: o\nfeatures:\n  maad_flim_mid: [5000, 1000]\n")
    out = subprocess.run([sys.executable, "-m", "acoustic_env.cli", "extract", "--config", "c.yaml"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert out.returncode == 2 and out.stderr.startswith("acoustic-env: error: features.maad_flim_mid:")


@pytest.mark.slow
def test_embedders_write_their_columns_with_provenance(ray_session, tmp_path):
    """All three embedders in one pass: columns, widths, and where their weights came from."""
    from acoustic_env.embedders.vggish import SPEC
    from acoustic_env.embedders.vggish.model import VGGish
    from acoustic_env.embedders.weights import save_checkpoint

    demo = generate_demo(tmp_path / "demo", n_clips=4, seed=8, duration_s=1.5, n_broken=1)
    cache = tmp_path / "models"
    save_checkpoint(SPEC.weights, VGGish().state_dict(), str(cache / SPEC.weights.filename))
    out = tmp_path / "out"
    result = extract(config(demo, out, embedders=["vggish", "yamnet", "panns"], allow_random_weights=True,
                            weights_cache=str(cache), features={"signals": ["raw"]}))
    table = pq.read_table(out / "features")
    widths = {"vggish": 128, "yamnet": 1024, "yamnet_scores": 521, "panns": 2048, "panns_scores": 527}
    for col, width in widths.items():
        assert table[col].type.list_size == width
        values = np.stack(table[col].to_numpy(zero_copy_only=False))
        assert values.shape == (demo.n_good, width) and np.isfinite(values).all()
    meta = read_metadata(table.schema)
    sidecar = json.loads((cache / (SPEC.weights.filename + ".json")).read_text())
    assert result.weights == {"vggish": sidecar["sha256"], "yamnet": "random", "panns": "random"}
    assert meta["weights"] == result.weights
    assert meta["columns"]["panns_scores"]["names"][0] == "Speech"
    assert meta["columns"]["vggish"]["pooling"] == "mean over frames"
    assert {"embed_vggish", "embed_yamnet", "embed_panns"} <= set(result.record["cpu_s"])
    assert result.record["resources"]["torch_device"] == "cpu"


def test_missing_weights_stop_before_ray(tmp_path):
    (tmp_path / "m.csv").write_text("uri,labels\na.wav,\n")  # a manifest that exists: the weights are what fails
    out = subprocess.run([sys.executable, "-m", "acoustic_env.cli", "extract", "--manifest", "m.csv", "--output", "o",
                          "--embedders", "panns", "--weights-cache", str(tmp_path / "empty")],
                         capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "Weights for 'panns' not found" in out.stderr and "acoustic-env models fetch panns" in out.stderr


def test_resource_plan():
    from acoustic_env.distributed.pipeline import block_rows, plan_extract_resources

    for cpus in (2.0, 4.0, 16.0, 64.0):  # every core runs a decode+feature actor; the writer still fits
        plan = plan_extract_resources({"CPU": cpus})
        assert plan.max_actors == cpus
        assert plan.max_actors * plan.actor_cpus + plan.task_cpus * plan.write_slots <= cpus
        assert plan.actor_cpus == 0.75  # room for a writer's quarter CPU on any 1-CPU node
    # a GPU: the device stage (tests/test_device_stage.py); --device cpu keeps the CPU pipeline, embedders on CPU
    forced = plan_extract_resources({"CPU": 16.0, "GPU": 1.0}, n_embedders=3, device="cpu")
    assert not forced.embed_on_accelerator and "GPU" not in forced.embed_resources and forced.device is None
    # a stand-in accelerator is not CUDA: embedders on it, the features stay on the numpy path
    custom = plan_extract_resources({"CPU": 2.0, "accel": 1.0}, n_embedders=1, accelerator="accel")
    assert custom.embed_resources == {"num_cpus": 0.25, "accel": 1.0} and custom.device is None
    assert plan_extract_resources({"CPU": 2.0}, n_embedders=1).device is None  # no GPU: nothing changes
    with pytest.raises(ConfigError, match=r"^device: --device cuda, but the Ray cluster has no 'GPU' resource"):
        plan_extract_resources({"CPU": 2.0}, device="cuda")
    # two 1-CPU nodes (the cluster test): a feature actor, a writer and an embedder's quarter CPU must fit
    # on them in any placement, so no actor asks for more than a node holds less a quarter
    assert custom.actor_cpus <= 0.75 and all(plan_extract_resources({"CPU": c}).actor_cpus <= 0.75 for c in (1, 2, 64))
    # blocks: a multiple of the batch, ~16 per actor for an even finish, never millions of them
    assert block_rows(120, 2, 4) == 4 and block_rows(2_000_000, 2, 4) == 16_384 and block_rows(1000, 2, 4) == 32


def test_stages_work_on_columns(demo, tmp_path):
    """Decode and features on one Arrow batch, without Ray: the values are cpu_features' own, error
    rows pass through every stage, the audio is one float32 buffer, and secrets in a URI are gone."""
    from acoustic_env.audio.manifest import read_manifest
    from acoustic_env.audio.rows import audio_views, row_schema
    from acoustic_env.audio.stages import decode_batch, features_batch, stages, vector_columns, write_batch
    from acoustic_env.features import cpu_features

    cfg = config(demo, Path("unused"))
    table = read_manifest(cfg.manifest, cfg.audio_root).table.slice(0, 8)
    secret = table["uri"][0].as_py() + "?token=s3cr3t"
    table = table.set_column(1, "uri", pa.array([secret, *table["uri"].to_pylist()[1:]]))
    schema = row_schema(table.schema, vector_columns(cfg), stages(cfg))
    decoded = decode_batch(table, cfg, schema)
    assert decoded.schema == schema and decoded["audio"].type == pa.large_list(pa.float32())
    assert "s3cr3t" not in str(decoded["uri"].to_pylist()) + str(decoded["error_message"].to_pylist())
    failed = decoded["error_type"].is_valid().to_numpy(zero_copy_only=False)
    assert failed.any() and not failed.all()
    done = features_batch(decoded, cfg, schema, keep_audio=False)
    assert done["error_type"].to_pylist() == decoded["error_type"].to_pylist()
    assert done["audio"].null_count == done.num_rows
    for i, audio in enumerate(audio_views(decoded["audio"])):
        assert (audio is None) == failed[i]
        if audio is None:
            assert done["indices_raw"][i].as_py() is None
            continue
        expected, _ = cpu_features(np.array(audio), 16000, cfg.features)
        for col in ("indices_fg", "mps_bg", "spectral_raw"):
            assert np.array_equal(np.asarray(done[col][i].values), expected[col]), (i, col)
        assert done["nonfinite_features"][i].as_py() == expected["nonfinite_features"]
    # the writer: healthy rows to features/ (no audio, no error or CPU columns), failed ones to errors/
    summary = write_batch(done, str(tmp_path), "r1", {}).to_pylist()[0]
    assert (summary["n_ok"], summary["n_failed"]) == ((~failed).sum(), failed.sum())
    features, errors = pq.read_table(tmp_path / "features"), pq.read_table(tmp_path / "errors")
    assert features.num_rows == (~failed).sum() and "audio" not in features.column_names
    assert not any(c.startswith(("_cpu_", "error_")) for c in features.column_names)
    assert errors["error_type"].to_pylist() == [t for t in done["error_type"].to_pylist() if t]


def test_without_embedders_the_feature_stage_writes_a_part_per_write_batch(demo, tmp_path):
    """FeatureWriterStage (decode + features + write in one actor) on a 10-row block with parts of 4 and
    batches of 3: three summaries as the parts are written, the same feature rows and error rows as the
    separate stages and writer give, and parts of at most 4 rows."""
    from acoustic_env.audio.manifest import read_manifest
    from acoustic_env.audio.rows import row_schema
    from acoustic_env.audio.stages import FeatureWriterStage, decode_batch, features_batch, stages, vector_columns
    from acoustic_env.audio.stages import write_batch

    cfg = config(demo, tmp_path / "fused", write_batch_size=4, batch_size=3)
    table = read_manifest(cfg.manifest, cfg.audio_root).table.slice(0, 10)
    schema = row_schema(table.schema, vector_columns(cfg), stages(cfg))
    stage = FeatureWriterStage(cfg, schema, output=cfg.output, run_id="r1", meta={})
    try:
        summaries = list(stage(table))
    finally:
        stage._threads.restore_original_limits()
    assert [s.num_rows for s in summaries] == [1, 1, 1]
    assert sum(s["n_ok"][0].as_py() + s["n_failed"][0].as_py() for s in summaries) == 10
    separate = tmp_path / "separate"
    write_batch(features_batch(decode_batch(table, cfg, schema), cfg, schema, keep_audio=False), str(separate), "r1", {})
    for sub in ("features", "errors"):
        fused = pq.read_table(tmp_path / "fused" / sub).sort_by("clip_id")
        assert fused.num_rows > 0
        assert all(pq.read_metadata(p).num_rows <= 4 for p in (tmp_path / "fused" / sub).glob("*.parquet"))
        expected = pq.read_table(separate / sub).sort_by("clip_id")
        drop = [c for c in ("time",) if c in fused.column_names]  # errors/ stamps the time of writing
        assert fused.drop_columns(drop).equals(expected.drop_columns(drop)), sub


def test_a_feature_actor_runs_its_native_thread_pools_on_one_thread(tmp_path):
    """One clip per core: numpy's BLAS/OpenMP pools start as wide as the machine, before Ray's OMP_NUM_THREADS."""
    from threadpoolctl import threadpool_info, threadpool_limits

    from acoustic_env.audio.stages import CpuFeatureStage

    cfg = from_dict(ExtractConfig, {"manifest": str(tmp_path / "clips.csv"), "output": str(tmp_path / "out")})
    with threadpool_limits(limits=2):  # as wide as this machine, whatever the suite's OMP_NUM_THREADS says
        assert any(p["num_threads"] == 2 for p in threadpool_info())
        stage = CpuFeatureStage(cfg, pa.schema([]))
        try:
            pools = threadpool_info()
            assert pools and all(p["num_threads"] == 1 for p in pools), pools
        finally:
            stage._threads.restore_original_limits()


def test_the_input_dataset_equals_ray_datas_own_from_arrow_refs(ray_session):
    """``dataset_of_blocks`` rebuilds ``from_arrow_refs`` without its metadata tasks, from Ray Data
    internals: the same rows, schema, blocks and metadata, or a Ray upgrade that moved them fails here."""
    import ray
    import ray.data

    from acoustic_env.distributed.pipeline import block_metadata, dataset_of_blocks

    blocks = [pa.table({"clip_id": [f"c{i}-{j}" for j in range(n)], "uri": [f"/a/{i}-{j}.wav" for j in range(n)]})
              for i, n in enumerate((3, 5, 1))]
    refs = [ray.put(b) for b in blocks]
    ours = dataset_of_blocks(refs, [block_metadata(b) for b in blocks])
    theirs = ray.data.from_arrow_refs(refs)
    assert ours.schema() == theirs.schema() and ours.num_blocks() == theirs.num_blocks() == 3
    assert ours.take_all() == theirs.take_all() and ours.count() == 9
    mapped = ours.map_batches(lambda t: t.append_column("n", pa.array([len(x) for x in t["uri"].to_pylist()])),
                              batch_format="pyarrow", batch_size=None)
    assert sorted(r["n"] for r in mapped.take_all()) == sorted(len(u) for b in blocks for u in b["uri"].to_pylist())


@pytest.mark.slow
def test_a_few_clips_run_in_this_process_and_give_the_table_ray_gives(ray_session, tmp_path):
    """A local run with at most ``in_process_max`` clips to do calls the stages itself (``jobs/in_process.py``):
    the same features/ and errors/ as the Ray pipeline, embedders and separated signals included, the same
    counts, the executor named in the record, and the process's thread pools as they were before."""
    from threadpoolctl import threadpool_info

    demo = generate_demo(tmp_path / "demo", n_clips=7, seed=9, duration_s=1.5, n_broken=2)
    kw = {"embedders": ["vggish"], "embed_signals": ["raw", "fg"], "allow_random_weights": True,
          "weights_cache": str(tmp_path / "models"), "batch_size": 3, "write_batch_size": 5, "embed_batch_size": 2}
    pools = [p["num_threads"] for p in threadpool_info()]
    here = extract(config(demo, tmp_path / "here", **kw))
    assert [p["num_threads"] for p in threadpool_info()] == pools
    on_ray = extract(config(demo, tmp_path / "ray", in_process_max=0, **kw))
    assert here.record["resources"] == {"executor": "in-process", "torch_device": "cpu", "feature_device": None}
    assert on_ray.record["resources"]["executor"] == "ray"
    assert here.counts == on_ray.counts and here.error_types == on_ray.error_types
    assert set(here.record["cpu_s"]) == set(on_ray.record["cpu_s"]) and all(here.record["cpu_s"].values())
    a, b = (pq.read_table(tmp_path / name / "features").sort_by("clip_id") for name in ("here", "ray"))
    assert a.column_names == b.column_names and a.num_rows == demo.n_good
    for name in a.column_names:
        if name.startswith("vggish"):  # batched differently: equal to float rounding (embedders honour lengths)
            x, y = (np.stack(t[name].to_numpy(zero_copy_only=False)) for t in (a, b))
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-5, err_msg=name)
        else:
            assert a[name].equals(b[name]), name
    drop = ["time", "run_id"]
    e_here, e_ray = (pq.read_table(tmp_path / name / "errors").sort_by("clip_id").drop_columns(drop)
                     for name in ("here", "ray"))
    assert e_here.equals(e_ray) and e_here.num_rows == demo.n_broken


def test_which_runs_stay_in_this_process(monkeypatch, tmp_path):
    """In this process: no cluster named, no --device cuda, at most in_process_max clips to do."""
    from acoustic_env.jobs.in_process import runs_in_process

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    cfg = lambda **kw: from_dict(ExtractConfig, {"manifest": "m.csv", "output": str(tmp_path), **kw})  # noqa: E731
    assert runs_in_process(cfg(), 32) and not runs_in_process(cfg(), 33)
    assert not runs_in_process(cfg(in_process_max=0), 1)
    assert not runs_in_process(cfg(ray_address="ray://head:10001"), 1)
    assert not runs_in_process(cfg(device="cuda"), 1) and runs_in_process(cfg(device="cpu"), 1)
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")  # as `ray job submit` sets it
    assert not runs_in_process(cfg(), 1)


def test_the_suites_ray_workers_run_at_the_test_processes_priority(ray_session):
    """``RAY_worker_niceness=0`` (tests/conftest.py) reaches the workers: at Ray's default nice 15 a worker beside busy
    test processes gets about 3 % of a core (docs/development.md, "Ray's workers at the tests' priority")."""
    @ray_session.remote(num_cpus=0)
    def niceness() -> int:
        return os.nice(0)

    assert ray_session.get(niceness.remote()) == os.nice(0) == 0


def test_the_suites_ray_workers_have_the_s3_variables_that_the_test_process_has_only_inside_a_test(ray_session,
                                                                                                   s3_server):
    """The session's instance passes the loopback S3 endpoint and credentials to its workers from the environment it
    started with (tests/conftest.py: no runtime_env, whose setup worker costs a second interpreter a worker), while
    this process has them only inside a test that asks for ``s3_endpoint``."""
    expected = s3_environment(s3_server)
    keys = tuple(expected)  # plain names: a worker cannot import conftest

    @ray_session.remote(num_cpus=0)
    def variables() -> dict[str, str | None]:
        return {key: os.environ.get(key) for key in keys}

    assert ray_session.get(variables.remote()) == expected
    assert os.environ.get("AWS_ENDPOINT_URL") != s3_server  # not outside a test that asks for it
