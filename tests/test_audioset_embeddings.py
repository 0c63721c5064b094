"""AudioSet's released embeddings: TFRecords in the published schema → feature table → train and audit.

The TFRecord files are written here with the ``tfrecord`` package in the schema of
``audioset_v1_embeddings`` (SequenceExample: context ``video_id``, ``start_time_seconds``,
``end_time_seconds``, ``labels``; feature list ``audio_embedding`` of 128-byte strings),
from float embeddings quantised exactly as VGGish's post-processor does.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from acoustic_env.vocabulary.classes import AUDIOSET_CLASSES
from acoustic_env.config import ConfigError
from acoustic_env.errors import DamagedFileError
from acoustic_env.jobs.audioset.embeddings import (
    COLUMN,
    convert,
    dequantize,
    list_tfrecords,
    read_segments,
)
from acoustic_env.storage import read_parts

URBAN, NATURAL = 509, 510  # /t/dd00128, /t/dd00129 in class_labels_indices.csv
SPEECH = 0  # /m/09x0r: a label outside the urban_natural task


def quantize(x: np.ndarray) -> np.ndarray:
    """VGGish's post-processor (vggish_postprocess.py): clip to [-2, 2], then uint8((x + 2) * 255 / 4)."""
    return ((np.clip(x, -2.0, 2.0) + 2.0) * (255.0 / 4.0)).astype(np.uint8)


def write_tfrecords(directory: Path, n_files: int = 3, per_file: int = 30, seed: int = 0) -> list[dict]:
    """Segments of two classes whose embeddings differ in their first 8 dimensions; returns what was written."""
    from tfrecord.writer import TFRecordWriter

    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for f in range(n_files):
        writer = TFRecordWriter(str(directory / f"{f:02d}.tfrecord"))
        for i in range(per_file):
            urban = (f * per_file + i) % 2 == 0
            centre = np.zeros(128)
            centre[:8] = 0.8 if urban else -0.8
            n_frames = int(rng.integers(3, 11))
            q = quantize(centre + 0.4 * rng.standard_normal((n_frames, 128)))
            labels = [URBAN if urban else NATURAL] + ([SPEECH] if i % 5 == 0 else [])
            seg = {"video_id": f"v{f}x{i:03d}-_A", "start": float(10 * (i % 3)) + 0.5, "labels": labels, "q": q}
            writer.write({"video_id": (seg["video_id"].encode(), "byte"),
                          "start_time_seconds": (seg["start"], "float"),
                          "end_time_seconds": (seg["start"] + 10.0, "float"),
                          "labels": (labels, "int")},
                         {"audio_embedding": ([row.tobytes() for row in q], "byte")})
            written.append(seg)
        writer.close()
    return written


@pytest.fixture(scope="module")
def tfrecords(tmp_path_factory) -> tuple[Path, list[dict]]:
    root = tmp_path_factory.mktemp("tfr") / "bal_train"
    return root, write_tfrecords(root)


def test_dequantize_inverts_the_vggish_quantiser_exactly():
    codes = np.arange(256, dtype=np.uint8)
    values = dequantize(codes)
    assert values[0] == -2.0 and values[-1] == 2.0
    # each value is the lower edge of its code's bin: half a bin above it quantises back to the code
    np.testing.assert_array_equal(quantize(values.astype(np.float64) + 2.0 / 255.0), codes)
    np.testing.assert_allclose(values, codes / 255.0 * 4.0 - 2.0, rtol=0, atol=1e-6)


def test_segments_and_table_hold_the_written_values(tfrecords, tmp_path):
    root, written = tfrecords
    segs = [s for f in list_tfrecords(str(root)) for s in read_segments(f)]
    assert len(segs) == len(written) == 90
    for seg, w in zip(segs, written):
        assert seg.video_id == w["video_id"] and seg.start_s == w["start"] and seg.end_s == w["start"] + 10
        np.testing.assert_array_equal(seg.frames, w["q"])  # the bytes, exactly
        assert seg.labels.tolist() == w["labels"]

    result = convert(str(root), str(tmp_path / "out"), part_rows=40)
    assert result.counts == {"files": 3, "files_skipped": 0, "segments": 90, "frames": sum(len(w["q"]) for w in written),
                                "parts": 2}
    table = read_parts(str(tmp_path / "out" / "features")).sort_by("clip_id")
    by_id = {f"{w['video_id']}_{round(w['start'] * 1000)}": w for w in written}
    assert sorted(by_id) == table["clip_id"].to_pylist()
    vectors = np.asarray(table[COLUMN].combine_chunks().flatten()).reshape(-1, 256)
    for clip_id, labels, group, vec in zip(table["clip_id"].to_pylist(), table["labels"].to_pylist(),
                                           table["group"].to_pylist(), vectors):
        w = by_id[clip_id]
        frames = w["q"].astype(np.float64) * 4.0 / 255.0 - 2.0  # the published inverse, in float64
        np.testing.assert_allclose(vec[:128], frames.mean(axis=0), rtol=0, atol=1e-6)
        np.testing.assert_allclose(vec[128:], frames.max(axis=0), rtol=0, atol=1e-6)
        assert labels == [AUDIOSET_CLASSES[k][0] for k in w["labels"]] and group == w["video_id"]
    meta = json.loads(pq.read_schema(next((tmp_path / "out" / "features").glob("*.parquet"))).metadata[b"acoustic_env"])
    assert meta["columns"][COLUMN]["shape"] == [256] and meta["columns"][COLUMN]["names"][128] == "max_0"

    again = convert(str(root), str(tmp_path / "out"))  # a second run finds every file converted
    assert again.counts["files_skipped"] == 3 and again.counts["segments"] == 0
    assert len(list((tmp_path / "out" / "features").glob("*.parquet"))) == 2


def test_object_storage_source_gives_the_same_table(tfrecords, tmp_path, s3_endpoint):
    import s3fs

    root, _ = tfrecords
    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": s3_endpoint})
    fs.mkdir("tfr-bucket")
    fs.put(str(root) + "/", "tfr-bucket/bal_train/", recursive=True)
    convert("s3://tfr-bucket/bal_train", "s3://tfr-bucket/out")
    convert(str(root), str(tmp_path / "local"))
    remote = read_parts("s3://tfr-bucket/out/features").sort_by("clip_id")
    local = read_parts(str(tmp_path / "local" / "features")).sort_by("clip_id")
    assert remote.drop(["source"]).equals(local.drop(["source"]))
    assert remote["source"][0].as_py().startswith("s3://tfr-bucket/bal_train/")


def test_bad_inputs_end_in_one_line_naming_the_file(tfrecords, tmp_path):
    root, _ = tfrecords
    data = (root / "00.tfrecord").read_bytes()
    cut = tmp_path / "cut" / "x.tfrecord"
    cut.parent.mkdir()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(DamagedFileError, match=r"x\.tfrecord: truncated after record \d+"):
        convert(str(cut.parent), str(tmp_path / "o1"))
    [record] = [json.loads(p.read_text()) for p in (tmp_path / "o1" / "runs").glob("*.json")]
    assert record["status"] == "failed" and record["error"].startswith("DamagedFileError: ")  # not left 'running'
    with pytest.raises(DamagedFileError, match="outside the class list's 3 classes"):
        small = tmp_path / "classes.csv"
        small.write_text("index,mid,display_name\n0,/m/a,A\n1,/m/b,B\n2,/m/c,C\n")
        convert(str(root), str(tmp_path / "o2"), class_list=str(small))
    with pytest.raises(ConfigError, match="source: no such TFRecord file or directory"):
        convert(str(tmp_path / "nothing"), str(tmp_path / "o3"))


def test_command_converts_and_damaged_files_end_in_one_line(tfrecords, tmp_path):
    root, _ = tfrecords
    cmd = [sys.executable, "-m", "acoustic_env.cli", "recipe", "audioset-embeddings"]
    ok = subprocess.run([*cmd, str(root), str(tmp_path / "out")], capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stderr
    assert "90 segments from 3 TFRecord file(s) (0 already converted) into 1 part(s)" in ok.stdout
    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    (bad_dir / "zz.tfrecord").write_bytes((root / "01.tfrecord").read_bytes()[:1000])
    bad = subprocess.run([*cmd, str(bad_dir), str(tmp_path / "o2")], capture_output=True, text=True, check=False)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "zz.tfrecord: truncated after record" in bad.stderr


@pytest.mark.slow
def test_train_and_audit_run_on_the_converted_table(tfrecords, tmp_path, ray_session):
    import acoustic_env as ae

    root, _ = tfrecords
    out = tmp_path / "table"
    convert(str(root), str(out))
    table = ae.read_features(str(out), task="urban_natural")
    assert list(table.columns) == [COLUMN] and len(table) == 90 and table.has_groups

    # the MLP at its defaults, on two folds, separates the classes: no search (nothing here reads it)
    trained = ae.train(str(out), str(tmp_path / "model"), trials=0, ablations=False, shap_samples=0,
                       baselines=("logreg",), max_rounds=5, cv_folds=2, tuning_trials=1)
    assert trained.metrics["mlp"]["roc_auc"] > 0.9  # the classes differ in 8 of 128 dimensions
    assert trained.counts["duplicates"]["pairs"] == 0  # distinct segments: the guard merges nothing
    audit = ae.audit(str(out), str(tmp_path / "audit"), review_top=0, random_sample=0, folds=3)
    assert audit.audited == 90
    assert pq.read_table(audit.table).column_names[:6] == ["clip_id", "uri", "start_s", "end_s", "labels", "group"]
