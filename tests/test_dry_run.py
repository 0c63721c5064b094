"""--dry-run for every job: the plan in one go, without Ray, torch or a single write; path mistakes in one line;
run records that end ``failed`` with the reason.

Nothing here starts Ray: the plans must not, and the failures are caught before it would start.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from acoustic_env.cli import main
from acoustic_env.demo.synth import generate_demo
from acoustic_env.demo.tables import synthetic_table, write_features
from acoustic_env.embedders import panns
from acoustic_env.jobs.plan import plan_annotate, plan_audit, plan_extract, plan_train
from acoustic_env.storage import write_parquet
from acoustic_env.table import ERRORS_SCHEMA, now_utc

ROOT = Path(__file__).resolve().parents[1]


def cli(*argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The command in a fresh interpreter, which then says whether Ray or torch got imported and ends as
    ``acoustic-env`` does (``cli.run``: without the interpreter's teardown, where Arrow's thread pool can abort a
    process that read Parquet)."""
    code = ("import os, sys\nfrom acoustic_env.cli import main\nrc = main(sys.argv[1:])\n"
            "print('IMPORTED', 'ray' in sys.modules, 'torch' in sys.modules, file=sys.stderr, flush=True)\n"
            "sys.stdout.flush()\nos._exit(rc)")
    return subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=300,
                          cwd=cwd or ROOT)


def listing(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*")) if path.exists() else []


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    return generate_demo(tmp_path_factory.mktemp("dry") / "data", n_clips=8, duration_s=1.0, n_broken=0, seed=5)


def _fake_previous_run(out: Path, done: list[str], failed: list[str]) -> None:
    """An output where an earlier run put ``done`` in features/ and ``failed`` in errors/."""
    write_parquet(pa.table({"clip_id": done}), str(out / "features" / "part-earlier-0.parquet"))
    rows = [{"clip_id": c, "uri": "x", "stage": "decode", "error_type": "not_audio", "message": "m",
             "run_id": "earlier", "time": now_utc()} for c in failed]
    write_parquet(pa.Table.from_pylist(rows, schema=ERRORS_SCHEMA), str(out / "errors" / "part-earlier-1.parquet"))


def test_extract_dry_run_counts_done_and_retried_and_writes_nothing(clips, tmp_path):
    from acoustic_env.audio.manifest import read_manifest

    ids = read_manifest(str(clips.clips_csv), str(clips.audio_dir)).table["clip_id"].to_pylist()
    out = tmp_path / "out"
    fresh = cli("extract", "--manifest", str(clips.clips_csv), "--audio-root", str(clips.audio_dir),
                "--output", str(out), "--dry-run", "--embedders", "panns")
    assert fresh.returncode == 0, fresh.stderr
    assert f"{len(ids)} clips in" in fresh.stdout and f"{len(ids)} to do" in fresh.stdout
    assert "panns: MISSING" in fresh.stdout or "panns: /" in fresh.stdout  # the cache's state, said either way
    assert "IMPORTED False False" in fresh.stderr  # neither Ray nor torch
    assert not out.exists()  # not even the output directory

    _fake_previous_run(out, done=ids[:3], failed=[ids[3], ids[4]])
    before = listing(out)
    plan = cli("extract", "--manifest", str(clips.clips_csv), "--audio-root", str(clips.audio_dir),
               "--output", str(out), "--dry-run")
    assert plan.returncode == 0, plan.stderr
    assert f"3 already in features/, {len(ids) - 3} to do (2 of them retried" in plan.stdout
    assert "resources: this process, no Ray start-up" in plan.stdout and f"{out}/features/" in plan.stdout
    on_ray = cli("extract", "--manifest", str(clips.clips_csv), "--audio-root", str(clips.audio_dir),
                 "--output", str(out), "--dry-run", "--in-process-max", "4")  # 5 to do: more than 4
    assert "resources: a local Ray instance" in on_ray.stdout, on_ray.stdout
    assert listing(out) == before  # no record, no log, no repair


def test_extract_plan_in_python_matches_the_lines(clips, tmp_path):
    from acoustic_env.config import ExtractConfig, from_dict

    cfg = from_dict(ExtractConfig, {"manifest": str(clips.clips_csv), "audio_root": str(clips.audio_dir),
                                    "output": str(tmp_path / "o"), "embedders": ["vggish"],
                                    "allow_random_weights": True, "weights_cache": str(tmp_path / "empty-cache")})
    plan = plan_extract(cfg)
    assert plan["todo"] == plan["clips"] == 8 and plan["done"] == 0 and plan["retry"] == 0
    assert plan["weights"]["vggish"].startswith("RANDOM weights")
    assert any("weights: vggish: RANDOM" in line for line in plan["lines"])


def test_train_and_audit_dry_runs_say_clips_columns_and_outputs(tmp_path):
    from acoustic_env.config import AuditConfig, TrainConfig, from_dict

    table = write_features(synthetic_table(30, seed=2, embedders=("vggish",)), str(tmp_path / "t"))
    train = plan_train(from_dict(TrainConfig, {"features": table, "output": str(tmp_path / "m"), "trials": 3}))
    assert train["with_target"] == 30 and train["per_class"] == {"urban": 15, "natural": 15}
    assert train["excluded"] == {"vggish": "random weights"} and "indices_raw" in train["columns"]
    text = "\n".join(train["lines"])
    assert "  tuning: 3 trials of Optuna TPE with ASHA" in text and "vggish (random weights)" in text
    assert f"{tmp_path}/m/model/" in text and train["enough_clips"]
    # the grid reads every column, as the job does (each cell then takes its own)
    grid = plan_train(from_dict(TrainConfig, {"features": table, "output": str(tmp_path / "m"), "grid": True,
                                              "feature_groups": ("indices",), "grid_signals": ("raw", "all")}))
    assert "mps_raw" in grid["columns"] and "grid: one model per cell of embedders none" in "\n".join(grid["lines"])
    assert "signals raw, all" in "\n".join(grid["lines"])
    audit = plan_audit(from_dict(AuditConfig, {"features": table, "output": str(tmp_path / "a"), "folds": 4}))
    assert audit["with_target"] == 30 and " x 4 folds, flagging by prune_by_noise_rate" in audit["lines"][0]
    assert not (tmp_path / "m").exists() and not (tmp_path / "a").exists()

    # the CNN's warm start: its checkpoint looked for in the weights cache (hashed only when the job starts)
    warm = {"features": table, "output": str(tmp_path / "m"), "baselines": ("cnn",), "cnn_architecture": "cnn14",
            "cnn_init": "panns", "weights_cache": str(tmp_path / "cache")}
    missing = plan_train(from_dict(TrainConfig, warm))
    assert missing["warm_start_missing"] and missing["lines"][-1].startswith(
        f"  would stop: cnn_init: panns starts the CNN from the PANNs CNN14 checkpoint, which is not at "
        f"{tmp_path}/cache/{panns.SPEC.weights.filename}")
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / panns.SPEC.weights.filename).write_bytes(b"not hashed by a plan")
    found = plan_train(from_dict(TrainConfig, warm))
    assert not found["warm_start_missing"] and not any("would stop" in line for line in found["lines"])
    assert (f"  warm start: the CNN (cnn14) from the PANNs CNN14 checkpoint at {tmp_path}/cache/"
            f"{panns.SPEC.weights.filename} (its hash is checked when the job starts)") in found["lines"]

    # a class with too few clips stops either job: the dry run says so in the job's own words
    one = plan_train(from_dict(TrainConfig, {"features": table, "output": str(tmp_path / "m"),
                                             "task": "labels:/t/dd00128,never"}))
    assert one["lines"][-1] == (f"  would stop: task: all 15 clips of {table} with a target for labels:/t/dd00128,never "
                                "are /t/dd00128; a classifier needs clips of two classes or more")  # train's own words
    folds = plan_train(from_dict(TrainConfig, {"features": table, "output": str(tmp_path / "m"), "cv_folds": 16}))
    assert folds["lines"][-1] == ("  would stop: cv_folds: every class needs at least `cv_folds` labelled clips; class "
                                  "'urban' has 15, got cv_folds=16")
    assert not any("would stop" in line for line in plan_train(from_dict(TrainConfig, {
        "features": table, "output": str(tmp_path / "m"), "cv_folds": 16, "cv_max_clips": 29}))["lines"])  # split
    audit_one = plan_audit(from_dict(AuditConfig, {"features": table, "output": str(tmp_path / "a"),
                                                   "task": "labels:/t/dd00128,never"}))
    assert audit_one["lines"][-1] == one["lines"][-1]  # a task of one class present: train's words, the audit's too

    small = write_features(synthetic_table(6, seed=2), str(tmp_path / "small"))
    r = cli("train", "--features", small, "--output", str(tmp_path / "m2"), "--dry-run")
    assert r.returncode == 0 and "would stop: only 6 clips have a target (need 10 or more)" in r.stdout
    assert "IMPORTED False False" in r.stderr


def test_annotate_dry_run_reads_only_model_json(clips, tmp_path):
    from acoustic_env.config import AnnotateConfig, from_dict

    model = tmp_path / "model"
    model.mkdir()
    definition = {"name": "urban_natural", "classes": {"urban": {"labels": ["/t/dd00128"]},
                                                       "natural": {"labels": ["/t/dd00129"]}}}
    (model / "model.json").write_text(json.dumps({
        "run_id": "r1", "task": {"kind": "single_label", "class_names": ["urban", "natural"],
                                 "definition": definition},
        "groups": [{"name": "indices_raw", "dim": 60}, {"name": "yamnet", "dim": 1024, "weights": "random"}]}))
    cfg = from_dict(AnnotateConfig, {"manifest": str(clips.clips_csv), "model": str(model),
                                     "features": str(tmp_path / "f"), "output": str(tmp_path / "ann"),
                                     "extract": {"audio_root": str(clips.audio_dir), "allow_random_weights": True,
                                                 "weights_cache": str(tmp_path / "empty")}})
    plan = plan_annotate(cfg)
    assert plan["listed"] == 8 and plan["already_annotated"] == 0 and plan["extract"]["todo"] == 8
    assert "yamnet" in plan["extract"]["weights"]  # the model's embedders are the ones extract would run
    assert not (tmp_path / "f").exists() and not (tmp_path / "ann").exists()


# --- mistakes in paths: one line before anything starts ---------------------------------

@pytest.mark.parametrize("command", ["extract", "train", "audit", "annotate"])
def test_output_that_is_a_file_is_one_line(command, clips, tmp_path, capsys):
    a_file = tmp_path / "out.txt"
    a_file.write_text("x")
    table = write_features(synthetic_table(12, seed=1), str(tmp_path / "t"))
    args = {"extract": ["--manifest", str(clips.clips_csv), "--output", str(a_file)],
            "train": ["--features", table, "--output", str(a_file)],
            "audit": ["--features", table, "--output", str(a_file)],
            "annotate": ["--manifest", str(clips.clips_csv), "--model", str(clips.audio_dir), "--features", table,
                         "--output", str(a_file)]}[command]
    for dry in ([], ["--dry-run"]):
        assert main([command, *args, *dry]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [f"acoustic-env: error: output: {a_file} is a file; give a directory "
                       "(the job writes several files below it)"]


def test_missing_and_unreadable_manifests_are_one_line(tmp_path, capsys):
    out = str(tmp_path / "out")
    assert main(["extract", "--manifest", str(tmp_path / "nope.csv"), "--output", out]) == 2
    assert capsys.readouterr().err.strip() == f"acoustic-env: error: manifest: no such file or directory: " \
                                              f"{tmp_path / 'nope.csv'}"
    garbage = tmp_path / "list.parquet"
    garbage.write_bytes(os.urandom(300))
    assert main(["extract", "--manifest", str(garbage), "--output", out, "--dry-run"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"acoustic-env: error: {garbage}: cannot parse as parquet")
    inside = tmp_path / "afile"
    inside.write_text("x")
    assert main(["extract", "--manifest", str(garbage), "--output", str(inside / "out")]) == 2
    assert "is a file, so" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# --- run records end completed or failed ---------------------------------------------

def test_train_with_too_few_clips_leaves_a_failed_record_without_starting_ray(tmp_path):
    small = write_features(synthetic_table(6, seed=2), str(tmp_path / "small"))
    r = cli("train", "--features", small, "--output", str(tmp_path / "m"))
    assert r.returncode == 2
    assert r.stderr.splitlines()[0].startswith("acoustic-env: error: task: only 6 clips")
    assert "IMPORTED False" in r.stderr  # Ray was never started (nor imported)
    [record] = [json.loads(p.read_text()) for p in (tmp_path / "m" / "runs").glob("*.json")]
    assert record["status"] == "failed"
    assert record["error"].startswith("ConfigError: task: only 6 clips") and "need 10 or more" in record["error"]


def test_lifecycle_writes_the_record_started_then_completed_or_failed(tmp_path):
    from acoustic_env.jobs.record import lifecycle

    with lifecycle("job", {"token": "https://u:secret@host/x"}, str(tmp_path)) as run:
        started = json.loads(Path(run.uri).read_text())
        done = run.complete(counts={"n": 1})
    assert started["status"] == "running" and started["config"]["token"] == "https://***@host/x"  # masked
    assert done == json.loads(Path(run.uri).read_text()) and done["status"] == "completed" and done["wall_s"] >= 0
    with lifecycle("job", {}, str(tmp_path)) as run:
        pass  # a job that returns without completing its record still ends it completed
    assert json.loads(Path(run.uri).read_text())["status"] == "completed"
    with pytest.raises(RuntimeError), lifecycle("job", {}, str(tmp_path)) as run:
        raise RuntimeError("the raylet died\nsecond line")
    failed = json.loads(Path(run.uri).read_text())
    assert failed["status"] == "failed" and failed["error"] == "RuntimeError: the raylet died"
    assert failed["wall_s"] >= 0


def test_audit_and_annotate_keep_a_record_from_start_to_failure(tmp_path, monkeypatch):
    """A crash leaves a trace: the audit's and annotate's run records are written when they start and
    end ``failed`` with the reason, as extract's and train's do."""
    from acoustic_env.config import AnnotateConfig, AuditConfig, from_dict
    from acoustic_env.demo.quick_model import quick_model
    from acoustic_env.jobs import annotate as annotate_job
    from acoustic_env.jobs.audit import job as audit_job

    features = write_features(synthetic_table(24, seed=4, signals=("raw",)), str(tmp_path / "t"))

    def crash(*args, **kwargs):
        raise RuntimeError("the raylet died\nsecond line")

    monkeypatch.setattr(audit_job, "choose_model_and_set", crash)
    with pytest.raises(RuntimeError):
        audit_job.run_audit(from_dict(AuditConfig, {"features": features, "output": str(tmp_path / "audit"),
                                                    "parallel": "sequential"}))
    [record] = [json.loads(p.read_text()) for p in (tmp_path / "audit" / "runs").glob("audit-*.json")]
    assert record["status"] == "failed" and record["error"] == "RuntimeError: the raylet died"
    assert not (tmp_path / "audit" / "summary.json").exists()

    model = quick_model(features, str(tmp_path / "model"), feature_groups=["indices_raw"])
    monkeypatch.setattr(annotate_job, "_annotate_list", crash)
    (tmp_path / "new.csv").write_text("clip_id,uri\na,a.wav\n")
    with pytest.raises(RuntimeError):
        annotate_job.annotate(from_dict(AnnotateConfig, {"model": model, "features": features,
                                                         "output": str(tmp_path / "ann"),
                                                         "manifest": str(tmp_path / "new.csv")}))
    [record] = [json.loads(p.read_text()) for p in (tmp_path / "ann" / "runs").glob("annotate-*.json")]
    assert record["status"] == "failed" and record["error"] == "RuntimeError: the raylet died"


def test_a_cluster_job_script_ends_without_the_interpreters_teardown(clips, tmp_path):
    """``python -m acoustic_env.cli`` (what ``ray job submit`` runs) ends as ``acoustic-env`` does, through
    ``cli.run``'s quick exit: its output flushed, its status kept, and no module teardown, where Arrow's thread pool
    can abort a process that read Parquet (status -6). An object freed only by that teardown says whether it ran."""
    out = tmp_path / "out"
    _fake_previous_run(out, done=[], failed=[])  # Parquet for the plan to read
    code = ("import runpy, sys\n"
            "class Witness:\n    def __del__(self):\n        print('TEARDOWN', flush=True)\n"
            "witness = Witness()\n"
            f"sys.argv = ['acoustic_env.cli', 'extract', '--manifest', {str(clips.clips_csv)!r}, '--audio-root', "
            f"{str(clips.audio_dir)!r}, '--output', {str(out)!r}, '--dry-run']\n"
            "runpy.run_module('acoustic_env.cli', run_name='__main__', alter_sys=True)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "to do" in r.stdout and "TEARDOWN" not in r.stdout, r.stdout


def test_train_and_audit_dry_runs_read_the_corrected_list_as_the_job_does(tmp_path, capsys):
    """Issue 82, 15: ``train --dry-run`` ignored ``--labels``, so a list that contradicts itself passed the dry run
    and stopped the job. The plan reads and checks the list as the job does, counts its targets, and names it."""
    from acoustic_env.config import AuditConfig, TrainConfig, from_dict
    from acoustic_env.table import selection

    table = write_features(synthetic_table(30, seed=2), str(tmp_path / "t"))
    chosen = selection(table, task="urban_natural")
    urban = [c for c, y in zip(chosen.facts["clip_id"].to_pylist(), chosen.y) if y == 0]
    listed = tmp_path / "list.csv"
    listed.write_text(f"clip_id,labels\n{urban[0]},natural\n{urban[1]},\n")
    for plan, cls in ((plan_train, TrainConfig), (plan_audit, AuditConfig)):
        done = plan(from_dict(cls, {"features": table, "output": str(tmp_path / "m"), "labels": str(listed)}))
        assert done["with_target"] == 29 and done["per_class"] == {"urban": 13, "natural": 16}, plan
        assert any(line.startswith(f"  labels: {listed} (2 clips listed, 2 changed against the table; sha256 ")
                   for line in done["lines"])
    contradicting = tmp_path / "twice.csv"
    contradicting.write_text(f"clip_id,labels\n{urban[0]},natural\n{urban[0]},urban\n")
    for command in ("train", "audit"):
        assert main([command, "--features", table, "--output", str(tmp_path / "m"), "--labels", str(contradicting),
                     "--dry-run"]) == 2
        err = capsys.readouterr().err
        assert f"labels: {contradicting} lists clip {urban[0]!r} twice" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "m").exists()
