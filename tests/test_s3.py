"""Input and output on s3:// against a real S3 endpoint on loopback (moto server mode).

Credentials and the endpoint reach s3fs only through the environment
(AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...), as on a real cluster.
"""

from __future__ import annotations

import io
import json

import pyarrow.parquet as pq
import s3fs

from acoustic_env.config import extract_config_from_dict
from acoustic_env.demo.synth import generate_demo
from acoustic_env.extract import extract


def test_s3_round_trip(ray_session, s3_endpoint, tmp_path):
    fs = s3fs.S3FileSystem()
    fs.mkdir("acoustic-in")
    fs.mkdir("acoustic-out")
    demo = generate_demo(tmp_path / "demo", n_clips=6, seed=11, duration_s=2.0, n_broken=2)
    fs.put(str(demo.audio_dir) + "/", "acoustic-in/audio/", recursive=True)
    fs.put(str(demo.clips_csv), "acoustic-in/lists/clips.csv")
    cfg = extract_config_from_dict({"manifest": "s3://acoustic-in/lists/clips.csv",
                                    "audio_root": "s3://acoustic-in/audio",
                                    "output": "s3://acoustic-out/run1", "progress": False})
    record = extract(cfg)
    assert record["counts"]["ok"] == demo.n_good and record["counts"]["failed"] == demo.n_broken
    fs.invalidate_cache()
    parts = fs.glob("acoustic-out/run1/features/*.parquet")
    assert parts
    ids = [i for p in parts for i in pq.read_table(io.BytesIO(fs.cat_file(p)), columns=["clip_id"])["clip_id"].to_pylist()]
    assert len(ids) == len(set(ids)) == demo.n_good
    assert all(u.startswith("s3://acoustic-in/audio/") for p in parts
               for u in pq.read_table(io.BytesIO(fs.cat_file(p)), columns=["uri"])["uri"].to_pylist())
    errors = [pq.read_table(io.BytesIO(fs.cat_file(p))) for p in fs.glob("acoustic-out/run1/errors/*.parquet")]
    assert sum(t.num_rows for t in errors) == demo.n_broken
    run = json.loads(fs.cat_file(f"acoustic-out/run1/runs/{record['run_id']}.json"))
    assert run["status"] == "completed"
    text = json.dumps(run)
    assert "testing" not in text and "AWS_SECRET" not in text  # no credentials in the record
    again = extract(cfg)
    assert again["counts"]["skipped"] == demo.n_good and again["counts"]["ok"] == 0
