"""annotate: a new list that overlaps an earlier one is scored, and nothing is extracted twice."""

from __future__ import annotations

import shutil

import pyarrow.parquet as pq

from acoustic_env import load_model
from acoustic_env.config import AnnotateConfig, ExtractConfig, TrainConfig, from_dict
from acoustic_env.demo.synth import generate_demo
from acoustic_env.jobs.annotate import annotate
from acoustic_env.jobs.extract import extract
from acoustic_env.jobs.train.job import train


def _rows(csv_path):
    return [line for line in csv_path.read_text().splitlines() if not line.startswith("#")]


def test_annotate_overlapping_lists(ray_session, tmp_path):
    first = generate_demo(tmp_path / "first", n_clips=24, seed=30, duration_s=2.0, n_broken=0)
    features = tmp_path / "features"
    extract(from_dict(ExtractConfig, {"manifest": str(first.clips_csv), "audio_root": str(first.audio_dir),
                                      "output": str(features), "progress": False}))
    result = train(from_dict(TrainConfig, {
        "features": str(features), "output": str(tmp_path / "train"), "trials": 0, "baselines": [],
        "ablations": False, "shap_samples": 0, "max_rounds": 5, "progress": False}))
    model_uri = result["model"]

    # a later list: 6 clips already extracted + 5 new ones (one of them broken)
    later = generate_demo(tmp_path / "later", n_clips=5, seed=31, duration_s=2.0, n_broken=1)
    for f in later.audio_dir.iterdir():
        shutil.copy(f, first.audio_dir / f.name)
    header = "# new list\n# num_ytids=11\n# YTID, start_seconds, end_seconds, positive_labels\n"
    overlap = _rows(first.clips_csv)[:6]
    new_list = tmp_path / "new.csv"
    new_list.write_text(header + "\n".join(overlap + _rows(later.clips_csv)) + "\n")
    cfg = from_dict(AnnotateConfig, {"manifest": str(new_list), "model": model_uri, "features": str(features),
                                     "output": str(tmp_path / "ann"),
                                     "extract": {"audio_root": str(first.audio_dir), "progress": False}})
    record = annotate(cfg)
    c = record["counts"]
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
    again = annotate(cfg)
    assert again["counts"]["extracted"] == 0 and again["counts"]["annotated"] == 0
    assert again["counts"]["already_annotated"] == c["annotated"]
    ids = pq.read_table(features / "features", columns=["clip_id"])["clip_id"].to_pylist()
    assert len(ids) == len(set(ids)) == first.n_good + later.n_good
    assert pq.read_table(tmp_path / "ann" / "annotations").num_rows == c["annotated"]
