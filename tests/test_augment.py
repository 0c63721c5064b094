"""Training rows resampled to N per class with noisy and pitch-shifted copies (``learn/augment.py``), and only those:
a fold's held-out rows, a network's early-stopping rows and the split's validation part are scored as they are."""

from __future__ import annotations

from markupsafe import escape  # the escaping of the report's templates (Jinja2)
import json

import numpy as np
import pyarrow as pa
import pytest
from sklearn.naive_bayes import GaussianNB

from acoustic_env import candidates
from acoustic_env.candidates.spec import CandidateSpec
from acoustic_env.cli import main
from acoustic_env.config import ConfigError, TrainConfig, from_dict
from acoustic_env.demo.tables import NATURAL, URBAN, synthetic_features, write_features
from acoustic_env.learn import cv, mlp_estimator
from acoustic_env.learn.augment import Resample, resample, resample_split, shift_bands
from acoustic_env.candidates import PARAMS
from acoustic_env.learn.zoo import make_estimator


def _rows(sizes=(30, 12, 6), width=4, seed=0) -> tuple[np.ndarray, np.ndarray]:
    """Classes of ``sizes`` clips, columns of very different scales (1, 10, 100, ...)."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(len(sizes)), sizes)
    return (rng.standard_normal((len(y), width)) * 10.0 ** np.arange(width)).astype(np.float32), y


def test_each_class_is_resampled_to_n_bigger_ones_undersampled_smaller_ones_topped_up_with_noisy_copies():
    x, y = _rows()
    groups = np.array([f"g{i // 2}" for i in range(len(y))])
    out = resample(x, y, Resample(20, noise=0.1, seed=3), groups)
    assert np.bincount(out.y).tolist() == [20, 20, 20] and (out.y == y[out.source]).all()
    assert (out.groups == groups[out.source]).all()  # a copy keeps its clip's group
    big = out.source[out.y == 0]
    assert len(set(big.tolist())) == 20 and not out.copy[out.y == 0].any()  # undersampled: distinct originals
    assert set(out.source[(out.y == 2) & ~out.copy].tolist()) == set(np.flatnonzero(y == 2).tolist())
    assert out.copy.sum() == (20 - 12) + (20 - 6)
    assert np.array_equal(out.x[~out.copy], x[out.source[~out.copy]])  # originals untouched
    noise = out.x[out.copy] - x[out.source[out.copy]]
    assert (noise != 0).all()
    relative = noise.std(axis=0) / x.std(axis=0)  # the same size relative to every column's spread
    assert np.allclose(relative, 0.1, rtol=0.35), relative
    exact = resample(x, y, Resample(20, seed=3))  # noise off: plain copies
    assert np.array_equal(exact.x, x[exact.source])
    with pytest.raises(ValueError, match=r"^resample_per_class: counts clips by their one class, so single-label "
                                         r"tasks only$"):
        resample(x, np.eye(3)[y], Resample(20))


def test_the_seed_repeats_the_draws_and_the_noise_and_another_seed_changes_them():
    x, y = _rows()
    a, b, c = (resample(x, y, Resample(20, noise=0.1, seed=s)) for s in (4, 4, 5))
    assert np.array_equal(a.x, b.x) and np.array_equal(a.source, b.source)
    assert not np.array_equal(a.x, c.x)


def test_a_pitch_shift_moves_an_images_mel_bands_and_fills_with_its_minimum():
    image = np.full((1, 8, 3), -80.0, dtype=np.float32)
    image[0, 3] = 0.0  # one loud band
    assert np.flatnonzero(shift_bands(image, [2])[0, :, 0] == 0).tolist() == [5]
    assert np.flatnonzero(shift_bands(image, [-3])[0, :, 0] == 0).tolist() == [0]
    assert (shift_bands(image, [10]) == -80).all() and (shift_bands(image, [-10]) == -80).all()  # beyond: silence
    assert np.array_equal(shift_bands(image, np.array([2.0])), shift_bands(image, [2]))  # whole numbers as floats
    assert shift_bands(np.zeros((2, 8, 0), np.float32), [1, -1]).shape == (2, 8, 0)  # no frames: nothing to fill
    rng = np.random.default_rng(1)
    images = rng.standard_normal((9, 16, 5)).astype(np.float32)
    out = resample(images, np.repeat([0, 1], [6, 3]), Resample(6, pitch_shift=2, seed=1))
    for im, src in zip(out.x[out.copy], out.source[out.copy]):  # each copy: its source moved by -2..2 bands
        assert any(np.array_equal(im, shift_bands(images[src:src + 1], [k])[0]) for k in range(-2, 3))
    assert any(not np.array_equal(im, images[s]) for im, s in zip(out.x[out.copy], out.source[out.copy]))
    vectors = resample(images[:, :, 0], np.repeat([0, 1], [6, 3]), Resample(6, pitch_shift=2, seed=1))
    assert np.array_equal(vectors.x, images[vectors.source, :, 0])  # vectors have no bands: copies as they are


def test_each_copy_is_shifted_by_a_whole_number_of_bands_drawn_from_minus_to_plus_the_limit():
    images = np.random.default_rng(5).standard_normal((4, 12, 3)).astype(np.float32)
    out = resample(images, np.zeros(4, dtype=int), Resample(400, pitch_shift=2, seed=5))
    shifts = [next(k for k in range(-4, 5) if np.array_equal(im, shift_bands(images[s:s + 1], [k])[0]))
              for im, s in zip(out.x[out.copy], out.source[out.copy])]
    counts = np.bincount(np.array(shifts) + 4, minlength=9)
    assert counts[[0, 1, 7, 8]].sum() == 0 and (counts[2:7] > 50).all(), counts  # -2..2, each about a fifth


def test_noise_on_an_images_copies_follows_each_mel_bands_spread_over_clips_and_frames():
    """Bands of very different loudness whose values sweep over the frames alike in every clip: the spread of
    a band lies along its frames, so noise sized per (band, frame) over the clips would be almost none."""
    rng = np.random.default_rng(6)
    sweep = np.linspace(-1, 1, 50)[None, None, :] * np.array([1.0, 10.0, 100.0, 1000.0])[None, :, None]
    images = (sweep + 0.01 * rng.standard_normal((20, 4, 50))).astype(np.float32)
    out = resample(images, np.repeat([0, 1], [15, 5]), Resample(15, noise=0.1, seed=6))
    noise = out.x[out.copy] - images[out.source[out.copy]]
    relative = noise.std(axis=(0, 2)) / images.std(axis=(0, 2))
    assert np.allclose(relative, 0.1, rtol=0.2), relative


def test_the_report_says_how_the_copies_were_made_and_a_pitch_shift_only_for_images():
    plan = Resample(40, noise=0.25, pitch_shift=3)
    assert plan.describe(images=True) == ("training rows resampled to 40 per class (copies: Gaussian noise of "
                                          "0.25 × each band's std and mel bands shifted by up to ±3)")
    assert plan.describe(images=False) == ("training rows resampled to 40 per class (copies: Gaussian noise of "
                                           "0.25 × each feature's std)")
    assert Resample(7, pitch_shift=2).describe(images=True) == ("training rows resampled to 7 per class (copies: mel "
                                                               "bands shifted by up to ±2)")
    assert Resample(7, pitch_shift=2).describe(images=False) == "training rows resampled to 7 per class (copies: exact)"


class _Recorder(GaussianNB):
    """A candidate that keeps every matrix it is fitted on and scores."""

    seen: list[tuple[str, np.ndarray, np.ndarray | None]] = []

    def fit(self, X, y, sample_weight=None):
        _Recorder.seen.append(("fit", np.array(X), np.array(y)))
        return super().fit(X, y)

    def predict_proba(self, X):
        _Recorder.seen.append(("score", np.array(X), None))
        return super().predict_proba(X)


@pytest.fixture
def recorder():
    _Recorder.seen = []
    spec = candidates.register(CandidateSpec("recorder", "keeps its rows", params={}, balance="none",
                                             build=lambda p, b: _Recorder()))
    yield _Recorder.seen
    candidates.unregister(spec.name)


def test_only_the_training_folds_are_resampled_the_held_out_fold_is_scored_as_it_is(recorder):
    x, y = _rows()
    folds = np.random.default_rng(2).permutation(np.arange(len(y)) % 3)
    cv.out_of_fold(x, y, folds, "single_label", 3, ["recorder"], 0, threads=1,
                   resample=Resample(15, noise=0.01, seed=0))
    fits = [(a, b) for what, a, b in recorder if what == "fit"]
    scores = [a for what, a, _ in recorder if what == "score"]
    assert len(fits) == len(scores) == 3
    for k, ((fitted, fitted_y), scored) in enumerate(zip(fits, scores)):
        assert np.array_equal(scored, x[folds == k])  # every held-out row, none augmented
        assert np.bincount(fitted_y).tolist() == [15, 15, 15]
        nearest = np.abs(fitted[:, None, :] - x[None]).sum(axis=2).argmin(axis=1)
        assert (folds[nearest] != k).all()  # nothing fitted comes from the held-out fold
        assert 0 < (~(fitted[:, None, :] == x[None]).all(axis=2).any(axis=1)).sum()  # noisy copies were fitted


def test_a_network_resamples_the_training_part_of_its_own_split_never_its_early_stopping_rows(monkeypatch):
    monkeypatch.setitem(PARAMS["mlp"], "max_rounds", 1)
    monkeypatch.setitem(PARAMS["mlp"], "full_batch_rows", 0)  # mini-batch rounds: the fit that holds rows out
    seen = []
    loop = mlp_estimator.fit

    def spy(model, data, *args, **kwargs):
        seen.append(data)
        return loop(model, data, *args, **kwargs)

    monkeypatch.setattr(mlp_estimator, "fit", spy)
    x, y = _rows((40, 10, 8))
    est = make_estimator("mlp", "single_label", 3, threads=1, resample=Resample(30, noise=0.05)).fit(x, y)
    scaled = est.model_.scaler_.transform(x).astype(np.float32)  # the rows as the network sees them
    data = seen[0]
    exact = lambda rows: (rows[:, None, :] == scaled[None]).all(axis=2)  # noqa: E731
    assert exact(data["x_val"]).any(axis=1).all()  # early-stopping rows: originals only
    assert np.bincount(data["y_train"]).tolist() == [30, 30, 30]
    copies = ~exact(data["x_train"]).any(axis=1)
    assert copies.sum() > 0
    val_rows = exact(data["x_val"]).argmax(axis=1)
    sources = np.abs(data["x_train"][copies][:, None, :] - scaled[None]).sum(axis=2).argmin(axis=1)
    assert not set(sources.tolist()) & set(val_rows.tolist())  # no copy of an early-stopping row trains it
    assert "train" not in vars(est.model_)  # the wrapper is gone once fitted
    split = {"x_train": x, "y_train": y, "x_val": x[:5], "y_val": y[:5]}
    assert resample_split(split, Resample(30))["x_val"] is split["x_val"]  # the split evaluation's network too


def test_a_network_fitted_at_once_learns_from_the_resampled_rows(monkeypatch):
    """At most ``full_batch_rows`` clips, nothing is held out: the full-batch fit takes every row, resampled."""
    seen = []
    monkeypatch.setattr(mlp_estimator, "full_batch", lambda model, x, y, *args, **kwargs: seen.append(y))
    x, y = _rows((40, 10, 8))
    make_estimator("mlp", "single_label", 3, threads=1, resample=Resample(30, noise=0.05)).fit(x, y)
    assert np.bincount(seen[0]).tolist() == [30, 30, 30]


def test_train_records_the_resampling_in_metrics_the_page_and_the_model(tmp_path, monkeypatch):
    monkeypatch.setitem(PARAMS["mlp"], "max_rounds", 3)
    asked = []
    made = cv.make_estimator

    def spy(name, *args, **kwargs):
        asked.append((kwargs.get("resample"), "search" in kwargs))  # a fold model's search, or an inner choice's
        return made(name, *args, **kwargs)

    monkeypatch.setattr(cv, "make_estimator", spy)
    synth = synthetic_features(80, (URBAN, NATURAL), seed=2, signals=("raw",), separation=0.6)
    keep = np.ones(80, dtype=bool)
    keep[np.flatnonzero(synth.true == 1)[8:]] = False
    source = write_features(synth.table.filter(pa.array(keep)), str(tmp_path / "features"))
    out = tmp_path / "out"
    assert main(["train", "--features", source, "--output", str(out), "--feature-groups", "indices_raw",
                 "--cv-folds", "3", "--baselines", "logreg", "--tuning-trials", "1", "--resample-per-class", "40",
                 "--augment-noise", "0.1", "--augment-pitch-shift", "2", "--no-ablations", "--shap-samples", "0",
                 "--no-progress"]) == 0
    assert {r for r, _ in asked} == {Resample(40, 0.1, 2, 0)}  # every model, the inner choices' (the PCA rule) too
    assert sum(fold for _, fold in asked) == 6  # every fold model of both candidates
    metrics = json.loads((out / "report" / "metrics.json").read_text())
    assert metrics["balance"]["resample"]["per_class"] == 40
    said = metrics["balance"]["resample"]["models"]
    assert said["logreg"] == said["mlp"] == ("training rows resampled to 40 per class (copies: Gaussian noise of "
                                             "0.1 × each feature's std)")
    assert metrics["balance"]["models"]["mlp"].endswith(said["mlp"])
    page = (out / "report" / "index.html").read_text()
    section = page.split("<h2>Class balance</h2>", 1)[1].split("<h2>", 1)[0]
    assert "--resample-per-class 40 --augment-noise 0.1 --augment-pitch-shift 2" in section
    assert escape(said["mlp"]) in section
    model = json.loads((out / "model" / "model.json").read_text())
    assert model["class_balance"]["resample"]["pitch_shift"] == 2
    assert said["logreg"] in model["class_balance"]["saved_model"]


def test_resampling_options_are_checked_in_one_line(tmp_path, capsys):
    with pytest.raises(ConfigError, match=r"^augment_noise: augments the copies that resampling adds: add "
                                          r"--resample-per-class N, got 0\.1$"):
        from_dict(TrainConfig, {"features": "f", "output": "o", "augment_noise": 0.1})
    cfg = from_dict(TrainConfig, {"features": "f", "output": "o", "resample_per_class": 100})
    with pytest.raises(ConfigError, match="^resample_per_class: counts clips by their one class, so single-label"):
        cfg.check_task("tags", "multi_label", 3)
    assert main(["train", "--features", "f", "--output", str(tmp_path / "o"), "--resample-per-class", "-1"]) == 2
    assert capsys.readouterr().err.strip().startswith("acoustic-env: error: resample_per_class: must be")
