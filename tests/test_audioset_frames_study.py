"""The released-embeddings study as written: its CNN and FC net layer for layer, its grid, its multi-output head.

The layer shapes are the write-up's, typed here from it and read from the models (never from
constants the code shares). The grid's wiring is checked with the training loop replaced (what
each fit is given), the multi-label head by real training on synthetic TFRecords
(``acoustic_env.audioset.synthetic_frames``) in which every fourth clip carries two classes.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from acoustic_env.audioset.synthetic_frames import write_order_tfrecords
from acoustic_env.cli import main
from acoustic_env.config.audioset import FRAME_INPUTS, FRAME_LOSSES
from acoustic_env.jobs.audioset import frames as job
from acoustic_env.jobs.audioset.embeddings import convert
from acoustic_env.learn import audioset_frames as frames

N, TWO_CLASS = 240, 4  # clips (every 12th short: left out), every 4th with a second class
TASK = ["--task", "speech_animal_music_vehicle", "--threads", "1"]


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("study")
    write_order_tfrecords(tmp / "tfrecords", n=N, two_class_every=TWO_CLASS)
    convert(str(tmp / "tfrecords"), str(tmp / "out"), keep_frames=True)
    return tmp


def _layers(model: nn.Sequential, x: torch.Tensor) -> list[tuple]:
    """Each layer of ``model`` as (kind, its settings, the shape it outputs for ``x``, batch left out)."""
    out = []
    for layer in model:
        x = layer(x)
        if isinstance(layer, nn.Conv2d):
            settings = (layer.out_channels, layer.kernel_size, layer.stride, layer.padding)
        elif isinstance(layer, nn.MaxPool2d):
            settings = (layer.kernel_size, layer.stride, layer.padding)
        else:
            settings = ()
        out.append((type(layer).__name__, settings, tuple(x.shape[1:])))
    return out


@pytest.mark.parametrize("final_pool", [True, False])
def test_the_study_cnn_has_the_write_ups_layers(final_pool):
    net = frames.StudyCNN(4, final_pool=final_pool).eval()
    x = torch.randn(3, 1, 10, 128)  # ten seconds of 128 values, one channel
    expected = [
        ("Conv2d", (16, (1, 6), (2, 2), (0, 0)), (16, 5, 62)),  # 16 filters 1 x 6, stride 2 x 2 (unpadded)
        ("ReLU", (), (16, 5, 62)),
        ("MaxPool2d", (2, 1, 0), (16, 4, 61)),  # 2 x 2, stride 1
        ("Conv2d", (32, (1, 6), (1, 1), "same"), (32, 4, 61)),  # 32 filters 1 x 6, stride 1, "same": width kept
        ("ReLU", (), (32, 4, 61)),
        ("MaxPool2d", (2, 1, 0), (32, 3, 60)),
        ("Conv2d", (32, (1, 6), (1, 1), "same"), (32, 3, 60)),
        ("ReLU", (), (32, 3, 60)),
        *([("MaxPool2d", (2, 1, 0), (32, 2, 59))] if final_pool else []),  # the optional pool
        ("Flatten", (), (32 * 2 * 59 if final_pool else 32 * 3 * 60,)),
    ]
    assert _layers(net.features, x) == expected
    assert (net.head.in_features, net.head.out_features) == (expected[-1][2][0], 4)  # flatten, then dense to output
    assert net(x.squeeze(1)).shape == (3, 4)


def test_the_fc_net_reads_1280_then_100_then_1000():
    net = frames.FrameMLP(4).eval()
    dense = [(m.in_features, m.out_features) for m in net.modules() if isinstance(m, nn.Linear)]
    assert dense == [(1280, 100), (100, 1000), (1000, 4)]  # the ten frames flattened; hidden 100, 1000; the output
    assert [type(m).__name__ for m in net.net] == ["Flatten", "Linear", "ReLU", "Linear", "ReLU", "Linear"]
    assert net(torch.randn(3, 10, 128)).shape == (3, 4)


def test_the_config_names_what_learn_and_the_job_use():
    assert tuple(frames.LOSSES) == FRAME_LOSSES and tuple(job.SCALINGS) == FRAME_INPUTS


def _record_fits(monkeypatch) -> list[tuple]:
    """Replace the training loop: record each fit's network, task kind, batch size and data instead."""
    seen = []

    def fake(model, data, kind, n_classes, params, *a, **k):
        seen.append((model, kind, params["batch_size"], data))
        return {"history": [{}] * 3}

    monkeypatch.setattr(frames, "fit", fake)
    return seen


def test_every_cell_of_the_grid_is_fitted_as_named(monkeypatch):
    seen = _record_fits(monkeypatch)
    rng = np.random.default_rng(0)
    y = np.arange(120) % 4
    x = rng.standard_normal((120, 10, 128)).astype(np.float32)
    result = frames.compare(x, y, np.arange(120) // 2, 4, models=("study_cnn", "frames_fc", "pooled_logreg"),
                            losses=FRAME_LOSSES, batch_sizes=(32, 128), final_pools=(True, False))
    cells = [(r["model"], r["loss"], r["batch_size"], r["final_pool"]) for r in result.rows]
    study = [("study_cnn", loss, b, p) for loss in FRAME_LOSSES for b in (32, 128) for p in (True, False)]
    fc = [("frames_fc", loss, b, None) for loss in FRAME_LOSSES for b in (32, 128)]
    assert cells == study + fc + [("pooled_logreg", None, None, None)]
    assert [r["rounds"] for r in result.rows] == [3] * 12 + [None]
    for (model, kind, batch, data), (name, loss, b, pool) in zip(seen, study + fc):
        assert type(model) is frames.NETWORKS[name] and batch == b
        assert kind == ("single_label" if loss == "categorical_crossentropy" else "multi_label")
        if kind == "multi_label":  # a sigmoid per class: one-hot targets of the same clips
            assert data["y_train"].shape[1] == 4 and (data["y_train"].sum(axis=1) == 1).all()
        if name == "study_cnn":  # the pooling ablation reaches the network
            assert sum(isinstance(m, nn.MaxPool2d) for m in model.features) == (3 if pool else 2)


def test_the_command_runs_the_grid_over_input_scalings(converted, monkeypatch, capsys):
    seen = _record_fits(monkeypatch)
    out = converted / "grid.json"
    assert main(["audioset", "frames", "--features", str(converted / "out"), "--output", str(out), *TASK,
                 "--models", "frames_fc,pooled_logreg", "--losses", "categorical_crossentropy,binary_crossentropy",
                 "--batch-sizes", "32,128", "--inputs", "scaled,raw"]) == 0
    result = json.loads(out.read_text())
    assert len(result["results"]) == 2 * (2 * 2 + 1) == len(result["test_accuracy"])
    assert result["grid"] == {"loss": list(FRAME_LOSSES), "batch_size": [32, 128], "inputs": ["scaled", "raw"],
                              "final_pool": [True]}
    scaled, raw = seen[0][3]["x_train"], seen[4][3]["x_train"]  # the first fit of each scaling: the same clips
    assert scaled.min() >= 0 and scaled.max() <= 1 and raw.max() > 100
    assert np.array_equal(raw, np.round(raw)) and np.allclose(scaled * 255, raw, atol=1e-3)  # q / 255 against q
    assert "frames_fc / loss binary_crossentropy / batch 128 / inputs raw" in result["test_accuracy"]
    assert "pooled_logreg / inputs scaled" in result["test_accuracy"]
    printed = capsys.readouterr().out
    lines = job.table(result["results"]).splitlines()
    assert job.table(result["results"]) in printed  # the command prints the grid as this table
    assert lines[0].split()[:5] == ["model", "loss", "batch", "inputs", "final"] and len(lines) == 11
    assert lines[-1].split()[:4] == ["pooled_logreg", "-", "-", "raw"]


def test_the_multi_output_head_keeps_and_finds_two_class_clips(converted):
    full = [i for i in range(N) if i % 12 != 5]
    two = sum(i % TWO_CLASS == 3 for i in full)
    single_out, multi_out = converted / "single.json", converted / "multi.json"
    args = ["audioset", "frames", "--features", str(converted / "out"), *TASK]
    assert main([*args, "--output", str(single_out), "--models", "frames_fc"]) == 0
    assert main([*args, "--output", str(multi_out), "--models", "frames_fc,pooled_logreg", "--multi-label"]) == 0
    single, multi = json.loads(single_out.read_text()), json.loads(multi_out.read_text())
    assert single["left_out"] == two and single["clips"] == len(full) - two  # ambiguous for one class per clip
    assert multi["left_out"] == 0 and multi["clips"] == len(full) and multi["two_or_more_classes"] == two
    assert multi["mode"] == "multi_label" and multi["grid"]["loss"] == ["binary_crossentropy"]
    assert sum(multi["classes"].values()) == len(full) + two  # a two-class clip counts for both
    acc = multi["test_accuracy"]
    # a quarter of the test clips carry two classes: a head that names one class per clip gets at most ~0.75
    assert acc["frames_fc"]["accuracy"] >= 0.9 and acc["frames_fc"]["macro_f1"] >= 0.9, acc
    assert acc["pooled_logreg"]["high"] < acc["frames_fc"]["low"], acc


@pytest.mark.parametrize("flags, field", [
    (["--multi-label", "--oversample"], "oversample"),
    (["--multi-label", "--losses", "categorical_crossentropy"], "losses"),
    (["--batch-sizes", "32,0"], "batch_sizes"),
    (["--batch-sizes", "32,32"], "batch_sizes"),
    (["--final-pool", "maybe"], "final_pool"),
    (["--inputs", "normalised"], "inputs"),
])
def test_a_bad_grid_is_one_line_naming_its_field(converted, capsys, flags, field):
    assert main(["audioset", "frames", "--features", str(converted / "out"), "--output",
                 str(converted / "bad.json"), *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and field in err[0], err
