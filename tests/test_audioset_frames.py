"""The released embeddings with frames kept: a CNN over 10 × 128 against the pooled vector, on one split.

The TFRecords (the release's schema, written with the ``tfrecord`` package) hold the
four classes of the shipped ``speech_animal_music_vehicle`` task, whose frames differ
only in their order: dimensions 0-15 are high in five of the ten seconds and low in the
other five, the five seconds being the first ones (speech), the last ones (animal),
every other one (music) or pairs (vehicle). Every class has the same number of high and
low frames, so the mean and max over the frames, the pooled vector, are the same in
distribution for all four and the pooled model is at chance (1/4); the frame model, which
sees the order, is not (``acoustic_env.audioset.synthetic_frames`` writes them). Some clips
carry two of the four labels: the single-label task leaves them out as ambiguous.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from acoustic_env.cli import main
from acoustic_env.audioset.synthetic_frames import PATTERNS, write_order_tfrecords
from acoustic_env.config.audioset import FRAME_MODELS
from acoustic_env.jobs.audioset.embeddings import FRAMES_COLUMN, convert
from acoustic_env.learn import audioset_frames as frames
from acoustic_env.learn.splits import TEST, TRAIN, VAL, assign_splits, strata

N, SHORT, AMBIGUOUS = 400, 12, 20  # clips; every 12th has 7 frames; every 20th also has another class's label


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("frames")
    write_order_tfrecords(tmp / "tfrecords", n=N, short_every=SHORT, two_class_every=AMBIGUOUS)
    convert(str(tmp / "tfrecords"), str(tmp / "out"), keep_frames=True)
    return tmp


def test_frames_are_kept_for_full_segments_only(converted):
    frames = pq.read_table(converted / "out" / "frames")
    features = pq.read_table(converted / "out" / "features")
    short = sum(i % SHORT == 5 for i in range(N))
    assert features.num_rows == N and frames.num_rows == N - short
    assert frames.schema.field(FRAMES_COLUMN).type.list_size == 1280
    assert set(frames["clip_id"].to_pylist()) <= set(features["clip_id"].to_pylist())


@pytest.mark.slow  # three networks: about 15 s of training on a quiet machine
def test_the_frame_models_separate_four_classes_the_pooled_vector_cannot(converted, capsys):
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
    assert sorted(acc) == sorted(FRAME_MODELS) and result["oversampled"] is None
    for network in ("frames_cnn", "frames_fc", "study_cnn"):  # each sees the order of the seconds
        assert acc[network]["accuracy"] >= 0.9, acc
        assert acc["pooled_logreg"]["high"] < acc[network]["low"], acc  # intervals apart
    assert acc["pooled_logreg"]["accuracy"] <= 0.5, acc  # chance is 0.25
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines() if line.split()[:1] in (["frames_cnn"], ["study_cnn"])}
    assert "test accuracy" in out and f"{acc['study_cnn']['accuracy']:.1%}" in rows["study_cnn"], out


def test_frames_need_the_frames_directory(tmp_path, capsys):
    assert main(["audioset", "frames", "--features", str(tmp_path), "--output", f"{tmp_path}-c.json"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--keep-frames" in err[0]


@pytest.mark.parametrize("name, n_out", [("frames_cnn", 4), ("frames_fc", 1), ("study_cnn", 3)])
def test_each_network_reads_ten_seconds_of_128_values(name, n_out):
    import torch

    net = frames.NETWORKS[name](n_out).eval()
    assert net(torch.zeros(5, frames.N_FRAMES, frames.DIM)).shape == (5, n_out)
    first = next(m for m in net.modules() if isinstance(m, torch.nn.Linear))
    if name == "frames_fc":
        assert first.in_features == 1280  # the flattened frames, not the pooled 256
    assert (*frames.NETWORKS, frames.POOLED) == FRAME_MODELS  # the config names what learn fits


def _imbalanced(n_per_class=(40, 12, 6), seed=0):
    """Frames whose every value says its clip (row i holds i + second / 100): any copy can be traced to its source."""
    y = np.concatenate([np.full(n, c) for c, n in enumerate(n_per_class)])
    x = np.arange(len(y), dtype=np.float32)[:, None, None] + np.arange(10, dtype=np.float32)[None, :, None] / 100
    return np.repeat(x, 128, axis=2), y, np.arange(len(y)) // 2  # two clips per video


def test_oversampling_shuffles_the_seconds_of_a_class_own_clips():
    x, y, _ = _imbalanced()
    got, gy, added = frames.oversample_by_shuffling(x, y, seed=1)
    assert np.bincount(gy).tolist() == [40, 40, 40] and added == {1: 28, 2: 34}
    assert np.array_equal(got[:len(x)], x) and np.array_equal(gy[:len(y)], y)  # the originals first, untouched
    new, new_y = got[len(x):], gy[len(y):]
    source = new[:, 0, 0].astype(int)  # the clip each value came from (the integer part)
    assert (new[:, :, 0].astype(int) == source[:, None]).all()  # one clip per new row
    assert (y[source] == new_y).all()  # of its own class
    seconds = np.rint((new[:, :, 0] - source[:, None]) * 100).astype(int)
    assert (np.sort(seconds, axis=1) == np.arange(10)).all()  # all ten seconds, once each
    assert (seconds != np.arange(10)).any(axis=1).mean() > 0.9  # in another order
    again = frames.oversample_by_shuffling(x, y, seed=1)
    assert np.array_equal(again[0], got)  # seeded
    balanced = frames.oversample_by_shuffling(x[:12], np.zeros(12, dtype=int))
    assert balanced[2] == {} and len(balanced[0]) == 12


@pytest.mark.parametrize("oversample", [False, True])
def test_oversampling_touches_training_rows_only(monkeypatch, oversample):
    """Every network's training rows come from the training split (with shuffled copies of its clips only);
    its validation rows are the validation split as it is; the test split is scored once, unseen."""
    x, y, groups = _imbalanced()
    seen = []
    monkeypatch.setattr(frames, "fit", lambda model, data, *a, **k: seen.append((model, data, k))
                        or {"history": []})  # no training
    result = frames.compare(x, y, groups, 3, seed=3, models=("frames_cnn", "frames_fc", "study_cnn"),
                            oversample=oversample)
    split = assign_splits(strata(y), groups, None, 0.2, 0.15, 3)
    train, val, test = (np.flatnonzero(split == s) for s in (TRAIN, VAL, TEST))
    assert [type(m) for m, _, _ in seen] == [frames.FrameCNN, frames.FrameMLP, frames.StudyCNN]
    assert result.n_test == len(test) and all(r["n"] == len(test) for r in result.rows)
    for _, data, options in seen:
        assert np.array_equal(data["x_val"], x[val]) and np.array_equal(data["y_val"], y[val])
        assert np.array_equal(data["x_train"][:len(train)], x[train])
        sources = data["x_train"][:, 0, 0].astype(int)
        assert set(sources) <= set(train)  # no row made from a validation or a test clip
        assert (y[sources] == data["y_train"]).all()
        counts = np.bincount(data["y_train"], minlength=3)
        if oversample:
            assert len(set(counts)) == 1 and options["class_weight"] is None
            assert result.oversampled == {c: int(counts[0] - (y[train] == c).sum()) for c in (1, 2)}
        else:
            assert len(data["x_train"]) == len(train) and options["class_weight"] == "balanced"
            assert result.oversampled == {}


def test_the_oversample_flag_reaches_the_networks_and_the_record(converted, monkeypatch, capsys):
    monkeypatch.setattr(frames, "fit", lambda *a, **k: {"history": []})  # the wiring, not the training
    out = converted / "oversampled.json"
    assert main(["audioset", "frames", "--features", str(converted / "out"), "--output", str(out),
                 "--task", "speech_animal_music_vehicle", "--models", "frames_fc", "--oversample"]) == 0
    result = json.loads(out.read_text())
    assert list(result["test_accuracy"]) == ["frames_fc"] and sum(result["oversampled"].values()) > 0
    assert "training rows added by shuffling seconds: " in capsys.readouterr().out
    assert main(["audioset", "frames", "--features", str(converted / "out"), "--output", str(out),
                 "--models", "frames_fc,resnet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "models" in err[0] and "resnet" in err[0]
