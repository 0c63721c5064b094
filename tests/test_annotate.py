"""annotate: a new list that overlaps an earlier one is scored, nothing is extracted twice, the list is
read once per run, and a directory of lists is annotated list by list, each once."""

from __future__ import annotations

import json
import shutil
from types import SimpleNamespace

import pyarrow.parquet as pq
import pytest

from acoustic_env import load_model
from acoustic_env.config import AnnotateConfig, ConfigError, ExtractConfig, TrainConfig, from_dict
from acoustic_env.demo.synth import generate_demo
from acoustic_env.jobs import annotate as annotate_job
from acoustic_env.jobs.extract import extract
from acoustic_env.jobs.plan import plan_annotate
from acoustic_env.jobs.train.job import train

HEADER = "# new clips\n# num_ytids=1\n# YTID, start_seconds, end_seconds, positive_labels\n"


def _rows(csv_path):
    return [line for line in csv_path.read_text().splitlines() if not line.startswith("#")]


@pytest.fixture(scope="module")
def trained(ray_session, tmp_path_factory):
    """A model and its feature table (24 clips), and six more clips (AudioSet rows) in the same audio root."""
    tmp = tmp_path_factory.mktemp("annotate")
    first = generate_demo(tmp / "first", n_clips=24, seed=30, duration_s=2.0, n_broken=0)
    features = tmp / "features"
    extract(from_dict(ExtractConfig, {"manifest": str(first.clips_csv), "audio_root": str(first.audio_dir),
                                      "output": str(features), "progress": False}))
    # no test here looks at how well the model scores: the fewest folds, no search
    model = train(from_dict(TrainConfig, {
        "features": str(features), "output": str(tmp / "train"), "trials": 0, "baselines": [], "cv_folds": 2,
        "tuning_trials": 1, "ablations": False, "shap_samples": 0, "max_rounds": 5, "progress": False})).model
    later = generate_demo(tmp / "later", n_clips=6, seed=41, duration_s=2.0, n_broken=0)
    for f in later.audio_dir.iterdir():
        shutil.copy(f, first.audio_dir / f.name)
    return {"model": model, "features": str(features), "audio_root": str(first.audio_dir), "first": first,
            "rows": _rows(later.clips_csv)}


def test_a_lists_extract_takes_the_models_table_parameters_under_the_options_given(tmp_path):
    """annotate computes the features as the model's training table was extracted (model.json's
    ``extraction``: decode and feature parameters); an option given to annotate overrides its field only."""
    from acoustic_env.config import DecodeParams, FeatureParams
    from acoustic_env.demo.quick_model import quick_model
    from acoustic_env.demo.tables import synthetic_table, write_features
    from acoustic_env.learn.artifact import describe
    from acoustic_env.storage import write_json

    table = tmp_path / "table"
    features = write_features(synthetic_table(24, seed=3, signals=("raw",)), str(table))
    write_json({"job": "extract", "status": "completed",
                "config": {"decode": DecodeParams(max_duration_s=2.0, read_timeout_s=1.0).to_dict(),
                           "features": FeatureParams(signals=("raw",), maad_nperseg=2048).to_dict()}},
               str(table / "runs" / "r1.json"))
    model = quick_model(features, str(tmp_path / "model"), feature_groups=["indices_raw", "spectral_raw"])
    cfg = from_dict(AnnotateConfig, {"model": model, "features": str(tmp_path / "shared"), "manifest": "new.csv",
                                     "output": str(tmp_path / "out"), "extract": {"decode": {"read_timeout_s": 5.0}}})
    facts = annotate_job.model_facts(cfg, describe(model))
    ext = annotate_job.list_config(cfg, "new.csv", facts.settings)
    assert (ext.decode.max_duration_s, ext.decode.read_timeout_s) == (2.0, 5.0)  # the model's, the option given
    assert ext.features.signals == ("raw",) and ext.features.maad_nperseg == 2048
    assert ext.manifest.endswith("new.csv") and ext.output == str(tmp_path / "shared")


def _config(trained, output, **where) -> AnnotateConfig:
    return from_dict(AnnotateConfig, {**where, "model": trained["model"], "features": trained["features"],
                                      "output": str(output),
                                      "extract": {"audio_root": trained["audio_root"], "progress": False}})


@pytest.mark.slow
def test_annotate_overlapping_lists(trained, tmp_path):
    first, features, model_uri = trained["first"], trained["features"], trained["model"]

    # a later list: 6 clips already extracted + 5 new ones (one of them broken)
    later = generate_demo(tmp_path / "later", n_clips=5, seed=31, duration_s=2.0, n_broken=1)
    for f in later.audio_dir.iterdir():
        shutil.copy(f, first.audio_dir / f.name)
    header = "# new list\n# num_ytids=11\n# YTID, start_seconds, end_seconds, positive_labels\n"
    overlap = _rows(first.clips_csv)[:6]
    new_list = tmp_path / "new.csv"
    new_list.write_text(header + "\n".join(overlap + _rows(later.clips_csv)) + "\n")
    cfg = _config(trained, tmp_path / "ann", manifest=str(new_list))
    result = annotate_job.annotate(cfg)
    c = result.counts
    assert c["listed"] == 11 and c["extract_skipped"] == 6 and c["extracted"] == later.n_good
    assert c["annotated"] == 6 + later.n_good and c["not_annotated_failed_extract"] == later.n_broken
    table = pq.read_table(tmp_path / "ann" / "annotations")
    assert sorted(table["clip_id"].to_pylist()) == sorted(set(table["clip_id"].to_pylist()))
    assert set(table.column_names) >= {"clip_id", "predicted", "prob_urban", "prob_natural", "model_id", "time",
                                       "given", "label_quality", "flagged"}
    model = load_model(model_uri)
    assert set(table["model_id"].to_pylist()) == {model.meta["run_id"]}
    probs = table.to_pandas()
    assert ((probs["prob_urban"] + probs["prob_natural"] - 1).abs() < 1e-5).all()
    given = probs.dropna(subset=["given"])
    assert len(given) == c["annotated"]  # every demo clip carries its class MID
    q = given.apply(lambda r: r[f"prob_{r['given']}"], axis=1)
    assert ((q - given["label_quality"]).abs() < 1e-9).all()
    assert (given["flagged"] == (given["label_quality"] < 0.5)).all()

    # the same list again: nothing extracted, nothing annotated twice
    again = annotate_job.annotate(cfg)
    assert again.counts["extracted"] == 0 and again.counts["annotated"] == 0
    assert again.counts["already_annotated"] == c["annotated"]
    ids = pq.read_table(f"{features}/features", columns=["clip_id"])["clip_id"].to_pylist()
    assert len(ids) == len(set(ids))  # the table is the module's: other tests add their clips
    assert pq.read_table(tmp_path / "ann" / "annotations").num_rows == c["annotated"]


def test_the_console_counts_the_clips_whose_features_the_model_cannot_read():
    """A clip already in the shared table without a column the model reads (an extract with other settings) is
    left unscored: the run record counted it, and the console line says so, and why."""
    counts = dict.fromkeys(annotate_job._COUNTS, 0) | {"listed": 2, "annotated": 1, "extracted": 1,
                                                        "extract_skipped": 1, "not_annotated_broken_features": 1}
    result = SimpleNamespace(counts=counts, record={"config": {"output": "o", "windows": {"windows": False},
                                                                "lists": None}}, run_id="r1", model_id="m1")
    line = annotate_job.summary_lines(result)[0]
    assert line.endswith("0 failed extraction (see the feature table's errors/); 1 not annotated: the feature table "
                         "lacks a value the model reads, or holds a non-finite one (clips extracted earlier with "
                         "other settings keep theirs)"), line
    assert "not annotated" not in annotate_job.summary_lines(
        SimpleNamespace(**{**vars(result), "counts": {**counts, "not_annotated_broken_features": 0}}))[0]


def _during_extract(monkeypatch, action) -> None:
    """Run ``action`` once, right after the job's (first) extract: a list changing while the job runs."""
    real = annotate_job.extract
    pending = [action]

    def extract_then_act(cfg):
        result = real(cfg)
        while pending:
            pending.pop()()
        return result

    monkeypatch.setattr(annotate_job, "extract", extract_then_act)


@pytest.mark.slow
def test_a_row_appended_during_the_run_waits_for_the_next(trained, tmp_path, monkeypatch):
    rows = trained["rows"]
    clip_list = tmp_path / "new.csv"
    clip_list.write_text(HEADER + "\n".join(rows[:2]) + "\n")
    _during_extract(monkeypatch, lambda: clip_list.write_text(clip_list.read_text() + rows[2] + "\n"))
    cfg = _config(trained, tmp_path / "ann", manifest=str(clip_list))
    c = annotate_job.annotate(cfg).counts
    # the run saw the list as it was when it started: two clips, both extracted and annotated
    assert (c["listed"], c["annotated"], c["not_annotated_failed_extract"]) == (2, 2, 0), c
    monkeypatch.undo()
    c = annotate_job.annotate(cfg).counts
    assert (c["listed"], c["extracted"], c["annotated"], c["already_annotated"]) == (3, 1, 1, 2), c


@pytest.mark.slow
def test_directory_of_lists_each_once(trained, tmp_path, monkeypatch):
    rows = trained["rows"]
    incoming, out = tmp_path / "incoming", tmp_path / "ann"
    incoming.mkdir()
    (incoming / "a.csv").write_text(HEADER + rows[3] + "\n")
    (incoming / "b.csv").write_text(HEADER + rows[4] + "\n")
    _during_extract(monkeypatch, lambda: (incoming / "c.csv").write_text(HEADER + rows[5] + "\n"))
    cfg = _config(trained, out, lists=str(incoming))
    assert plan_annotate(cfg)["lists"] == [str(incoming / "a.csv"), str(incoming / "b.csv")]  # --dry-run

    first = annotate_job.annotate(cfg)
    assert sorted(first.lists) == ["a.csv", "b.csv"] and first.counts["annotated"] == 2
    assert sorted(p.name for p in (out / "lists").iterdir()) == ["a.csv.json", "b.csv.json"]
    assert json.loads((out / "lists" / "a.csv.json").read_text())["counts"]["annotated"] == 1

    second = annotate_job.annotate(cfg)  # the list that arrived during the first run
    assert list(second.lists) == ["c.csv"] and second.lists_already_done == ["a.csv", "b.csv"]
    assert second.counts["annotated"] == 1 and second.counts["extracted"] == 1

    assert plan_annotate(cfg)["lists"] == []
    third = annotate_job.annotate(cfg)  # nothing new: nothing done
    assert third.lists == {} and third.counts["annotated"] == third.counts["extracted"] == 0
    ids = pq.read_table(out / "annotations")["clip_id"].to_pylist()
    assert len(ids) == len(set(ids)) == 3


@pytest.mark.parametrize("where", [{"manifest": "a.csv", "lists": "incoming/"}, {}])
def test_one_list_or_a_directory(where, tmp_path):
    fake = {"model": str(tmp_path), "features": str(tmp_path), "audio_root": str(tmp_path)}
    with pytest.raises(ConfigError, match="--manifest.*--lists"):
        _config(fake, tmp_path, **where)
