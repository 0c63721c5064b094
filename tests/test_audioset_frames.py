"""The released embeddings with frames kept: a CNN over 10 × 128 against the pooled vector, on one split.

The TFRecords (the release's schema, written with the ``tfrecord`` package) hold the
four classes of the shipped ``speech_animal_music_vehicle`` task, whose frames differ
only in their order: dimensions 0-15 are high in five of the ten seconds and low in the
other five, the five seconds being the first ones (speech), the last ones (animal),
every other one (music) or pairs (vehicle). Every class has the same number of high and
low frames, so the mean and max over the frames, the pooled vector, are the same in
distribution for all four and the pooled model is at chance (1/4); the frame model, which
sees the order, is not. Some clips carry two of the four labels: the single-label task
leaves them out as ambiguous.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from test_audioset_embeddings import quantize

from acoustic_env.cli import main
from acoustic_env.jobs.audioset_embeddings import FRAMES_COLUMN, convert

#: class → (its index in class_labels_indices.csv, which of the ten seconds are high)
PATTERNS = {"speech": (0, "HHHHHLLLLL"), "animal": (72, "LLLLLHHHHH"),
            "music": (137, "HLHLHLHLHL"), "vehicle": (300, "LHHLLHHLLH")}
N, SHORT, AMBIGUOUS = 400, 12, 20  # clips; every 12th has 7 frames; every 20th also has another class's label


def write_order_tfrecords(directory, n=N, seed=0):
    """``n`` segments, two per video, the four classes in turn (see the module docstring)."""
    from tfrecord.writer import TFRecordWriter

    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    writer = TFRecordWriter(str(directory / "part.tfrecord"))
    classes = list(PATTERNS.values())
    for i in range(n):
        index, order = classes[i % 4]
        x = 0.3 * rng.standard_normal((10, 128))
        x[:, :16] += np.array([1.0 if s == "H" else -1.0 for s in order])[:, None]
        q = quantize(x[:7] if i % SHORT == 5 else x)
        labels = [index] + ([classes[(i + 1) % 4][0]] if i % AMBIGUOUS == 3 else [])
        writer.write({"video_id": (f"vid{i // 2:05d}xx".encode(), "byte"),
                      "start_time_seconds": (float(10 * (i % 2)), "float"),
                      "end_time_seconds": (float(10 * (i % 2) + 10), "float"),
                      "labels": (labels, "int")},
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
    short = sum(i % SHORT == 5 for i in range(N))
    assert features.num_rows == N and frames.num_rows == N - short
    assert frames.schema.field(FRAMES_COLUMN).type.list_size == 1280
    assert set(frames["clip_id"].to_pylist()) <= set(features["clip_id"].to_pylist())


@pytest.mark.slow  # about 5 s of training on a quiet machine
def test_the_frame_model_separates_four_classes_the_pooled_vector_cannot(converted, capsys):
    out = converted / "comparison.json"
    assert main(["audioset", "frames", "--features", str(converted / "out"), "--output", str(out),
                 "--task", "speech_animal_music_vehicle", "--threads", "1"]) == 0
    result = json.loads(out.read_text())
    full = [i for i in range(N) if i % SHORT != 5]
    ambiguous = sum(i % AMBIGUOUS == 3 for i in full)
    kept = [i for i in full if i % AMBIGUOUS != 3]
    assert result["left_out"] == ambiguous and result["clips"] == len(kept)
    assert result["classes"] == {name: sum(i % 4 == k for i in kept) for k, name in enumerate(PATTERNS)}
    acc = result["test_accuracy"]
    assert result["split"]["test"] >= 60
    assert acc["frames_cnn"]["accuracy"] >= 0.9, acc
    assert acc["pooled_logreg"]["high"] < acc["frames_cnn"]["low"], acc  # intervals apart
    assert acc["pooled_logreg"]["accuracy"] <= 0.5, acc  # chance is 0.25
    assert "frames_cnn: test accuracy" in capsys.readouterr().out


def test_frames_need_the_frames_directory(tmp_path, capsys):
    assert main(["audioset", "frames", "--features", str(tmp_path), "--output", str(tmp_path / "c.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--keep-frames" in err[0]
