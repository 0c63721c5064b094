"""The released embeddings with frames kept: a CNN over 10 × 128 against the pooled vector, on one split.

The TFRecords (the release's schema, written with the ``tfrecord`` package) hold two
classes whose frames differ only in their order: dimensions 0-15 are high in the first
five seconds and low in the last five for one class, the reverse for the other. Their
mean and max over the frames, the pooled vector, are the same in distribution, so the
pooled model is at chance, and the frame model, which sees the order, is not.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from test_audioset_embeddings import NATURAL, URBAN, quantize

from acoustic_env.cli import main
from acoustic_env.recipes.audioset_embeddings import FRAMES_COLUMN, convert


def write_order_tfrecords(directory, n=360, seed=0):
    """``n`` segments, two per video; every 12th has only 7 frames (not a full segment)."""
    from tfrecord.writer import TFRecordWriter

    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    writer = TFRecordWriter(str(directory / "part.tfrecord"))
    for i in range(n):
        first = i % 2 == 0  # urban: high then low; natural: low then high
        x = 0.3 * rng.standard_normal((10, 128))
        x[:5, :16] += 1.0 if first else -1.0
        x[5:, :16] += -1.0 if first else 1.0
        q = quantize(x[:7] if i % 12 == 5 else x)
        writer.write({"video_id": (f"vid{i // 2:05d}xx".encode(), "byte"),
                      "start_time_seconds": (float(10 * (i % 2)), "float"),
                      "end_time_seconds": (float(10 * (i % 2) + 10), "float"),
                      "labels": ([URBAN if first else NATURAL], "int")},
                     {"audio_embedding": ([bytes(row) for row in q], "byte")})
    writer.close()


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("frames")
    write_order_tfrecords(tmp / "tfrecords")
    convert(str(tmp / "tfrecords"), str(tmp / "out"), keep_frames=True)
    return tmp


def test_frames_are_kept_for_full_segments_only(converted):
    frames = pq.read_table(converted / "out" / "frames")
    features = pq.read_table(converted / "out" / "features")
    assert features.num_rows == 360 and frames.num_rows == 360 - 30  # 30 segments of 7 frames
    assert frames.schema.field(FRAMES_COLUMN).type.list_size == 1280
    assert set(frames["clip_id"].to_pylist()) <= set(features["clip_id"].to_pylist())


@pytest.mark.slow  # 5-10 s of training on a quiet machine; 34 s on the shared one
def test_the_frame_model_separates_what_the_pooled_vector_cannot(converted, capsys):
    out = converted / "comparison.json"
    assert main(["audioset", "frames", "--features", str(converted / "out"), "--output", str(out), "--threads", "1"]) == 0
    result = json.loads(out.read_text())
    acc = result["test_accuracy"]
    assert result["clips"] == 330 and result["split"]["test"] >= 50
    assert acc["frames_cnn"]["accuracy"] >= 0.9, acc
    assert acc["pooled_logreg"]["high"] < acc["frames_cnn"]["low"], acc  # intervals apart
    assert acc["pooled_logreg"]["accuracy"] <= 0.7, acc
    assert "frames_cnn: test accuracy" in capsys.readouterr().out


def test_frames_need_the_frames_directory(tmp_path, capsys):
    assert main(["audioset", "frames", "--features", str(tmp_path), "--output", str(tmp_path / "c.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--keep-frames" in err[0]
