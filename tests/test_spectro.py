"""The log-mel CNN (learn/spectro.py): augmentation changes the training images only, every switch is honoured, and
the network scores any window of frames the same way every time."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from acoustic_env.learn.params import PARAMS
from acoustic_env.learn.spectro import SpectroCNN, augmenter, mixup
from acoustic_env.learn.spectro_estimator import CNNClassifier, inner_split
from acoustic_env.learn.window import fit_width

OFF = {"crop_frames": 40, "shift": False, "time_masks": 0, "time_mask": 0, "freq_masks": 0, "freq_mask": 0,
       "mixup": 0.0}
SWITCHES = {"shift": {"shift": True}, "time masks": {"time_masks": 2, "time_mask": 10},
            "frequency masks": {"freq_masks": 2, "freq_mask": 4}, "mixup": {"mixup": 0.4}}
SMALL = {**PARAMS["cnn"]["network"], "channels": [4, 8], "batch_size": 64}


def _images(n: int, frames: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two classes told apart by which bands are loud; dB-like values."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    x = rng.normal(-50, 6, (n, 16, frames)).astype(np.float32)
    x[y == 1, 2:6] += 12
    x[y == 0, 10:14] += 12
    return x, y


@pytest.mark.parametrize("switch", list(SWITCHES))
def test_each_augmentation_changes_training_batches_when_on_and_nothing_when_off(switch):
    """With every switch off a batch is its centred window, whatever the epoch; one switch on makes the batch differ
    from that window and from the previous epoch's, and never writes into the stored training images."""
    x, y = _images(8)
    xt, yt = torch.tensor(x), torch.tensor(y, dtype=torch.float32).reshape(-1, 1)
    kept = xt.clone()
    centre = xt[:, :, 10:50]
    gen = torch.Generator().manual_seed(1)
    plain = augmenter(OFF, "single_label", 2)
    epochs = [plain(xt, yt, gen)[0] for _ in range(2)]
    assert all(torch.equal(e, centre) for e in epochs)
    on = augmenter({**OFF, **SWITCHES[switch]}, "single_label", 2)
    first, second = on(xt, yt, gen)[0], on(xt, yt, gen)[0]
    assert first.shape == centre.shape and not torch.equal(first, centre) and not torch.equal(first, second)
    assert torch.equal(xt, kept)


def test_mixup_blends_targets_with_the_images_and_one_hot_encodes_classes():
    x, _ = _images(6)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    out_x, out_y = augmenter({**OFF, "mixup": 0.4}, "single_label", 3)(torch.tensor(x), y, torch.Generator())
    assert out_y.shape == (6, 3) and torch.allclose(out_y.sum(dim=1), torch.ones(6))
    assert not torch.equal(out_y, torch.nn.functional.one_hot(y, 3).float())


def test_training_sees_new_images_each_epoch_and_evaluation_sees_the_stored_ones(monkeypatch):
    """Every forward pass of the network is recorded: in evaluation mode (validation rounds, predict) the inputs are
    exactly stored images, unchanged; in training mode they are augmented windows, different in each epoch."""
    x, y = _images(40)
    seen: list[tuple[bool, torch.Tensor]] = []

    def spy(module, args):
        if isinstance(module, SpectroCNN):
            seen.append((module.training, args[0].detach().clone()))

    handle = torch.nn.modules.module.register_module_forward_pre_hook(spy)
    try:
        clf = CNNClassifier(0, 0.25, 3, 3, SMALL, {**PARAMS["cnn"]["augment"], "crop_frames": 40})
        clf.fit(x[:32], y[:32], groups=np.arange(32) // 2)
        first = clf.predict_proba(x[32:])
        np.testing.assert_array_equal(first, clf.predict_proba(x[32:]))
    finally:
        handle.remove()
    stored = {im.tobytes() for im in x}
    evaluated = [t for training, t in seen if not training]
    trained = [t for training, t in seen if training]
    assert len(trained) == 3 and len(evaluated) == 3 + 2  # one step per epoch (64 > 24 rows); 3 rounds; 2 predicts
    assert all(im.numpy().tobytes() in stored for batch in evaluated for im in batch)
    assert trained[0].shape[2] == 40 and not any(im.numpy().tobytes() in stored for im in trained[0])
    assert {im.numpy().tobytes() for im in trained[0]}.isdisjoint({im.numpy().tobytes() for im in trained[1]})


def test_inner_split_keeps_groups_on_one_side_and_holds_every_class():
    y = np.arange(60) % 3
    groups = np.arange(60) // 4
    train, val = inner_split(y, groups, 0.2, seed=0)
    assert set(groups[train]).isdisjoint(groups[val]) and len(train) + len(val) == 60
    assert set(y[val]) == {0, 1, 2} and 8 <= len(val) <= 16


def test_fit_width_centres_cuts_and_pads_with_the_minimum():
    image = np.arange(12, dtype=np.float32).reshape(2, 6)
    np.testing.assert_array_equal(fit_width(image, 4), image[:, 1:5])
    padded = fit_width(image, 9)
    assert padded.shape == (2, 9) and (padded[:, :1] == 0).all() and np.array_equal(padded[:, 1:7], image)


def test_the_network_scores_any_number_of_frames():
    net = SpectroCNN(16, 1, [4, 8], 0.0, [2, 4]).eval()
    for frames in (40, 61, 300):
        assert net(torch.zeros(2, 16, frames)).shape == (2, 1)


def test_the_networks_parameters_are_those_a_saved_model_stores():
    """A saved CNN is its ``state_dict``: every key and shape is part of the format (no convolution bias: batch norm
    follows; dropout before the one linear layer, which reads the mean and the max over time of each channel)."""
    net = SpectroCNN(16, 3, [4, 8], 0.2, [2, 4])
    shapes = {k: tuple(v.shape) for k, v in net.state_dict().items() if "running" not in k and "tracked" not in k}
    assert shapes == {"mean": (), "std": (), "blocks.1.weight": (4, 1, 3, 3), "blocks.2.weight": (4,),
                      "blocks.2.bias": (4,), "blocks.5.weight": (8, 4, 3, 3), "blocks.6.weight": (8,),
                      "blocks.6.bias": (8,), "head.1.weight": (3, 16), "head.1.bias": (3,)}
    assert isinstance(net.head[0], torch.nn.Dropout) and net.head[0].p == 0.2


def test_the_network_computes_what_its_docstring_says():
    """Standardised by its buffers, pooled, each block a 3 x 3 convolution (padded by 1), batch norm, ReLU and 2 x 2
    max pooling, the mean over bands, then the mean and the max over time into the linear layer."""
    f = torch.nn.functional
    torch.manual_seed(0)
    net = SpectroCNN(16, 2, [4, 8], 0.0, [1, 2])
    net.mean.fill_(-50.0)
    net.std.fill_(6.0)
    for block in (net.blocks[2], net.blocks[6]):
        block.running_mean.uniform_(-0.5, 0.5)
        block.running_var.uniform_(0.5, 2.0)
    net.eval()
    x = torch.tensor(_images(3, frames=40)[0])
    z = f.avg_pool2d(((x + 50.0) / 6.0).unsqueeze(1), (1, 2))
    for conv, bn in ((net.blocks[1], net.blocks[2]), (net.blocks[5], net.blocks[6])):
        z = f.max_pool2d(f.relu(f.batch_norm(f.conv2d(z, conv.weight, padding=1), bn.running_mean, bn.running_var,
                                             bn.weight, bn.bias, eps=bn.eps)), 2)
    z = z.mean(dim=2)
    expected = net.head[1](torch.cat([z.mean(dim=2), z.amax(dim=2)], dim=1))
    with torch.no_grad():
        torch.testing.assert_close(net(x), expected)


def test_mixup_draws_new_weights_for_every_batch():
    """Each batch's λ comes from a seed drawn from the loop's generator over 2³¹ values: 300 batches of two images
    (0 and 1) blend in as many ways, bar the batches whose partner is the image itself."""
    gen = torch.Generator().manual_seed(0)
    x = torch.tensor([[0.0], [1.0]])
    blends = {tuple(mixup(x, x, 0.4, gen)[0].flatten().tolist()) for _ in range(300)}
    assert len(blends) > 100


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_every_augmentation_draws_from_the_training_loops_cuda_generator():
    """On a GPU the loop's generator lives on the device (learn.fit): every draw must be made there, or torch stops
    the step ("Expected a 'cpu' device type for generator")."""
    x, y = _images(8, frames=60)
    settings = {"crop_frames": 40, "shift": True, "time_masks": 2, "time_mask": 10, "freq_masks": 2, "freq_mask": 4,
                "mixup": 0.4}
    xb, yb = torch.as_tensor(x, device="cuda"), torch.as_tensor(y, device="cuda")
    out_x, out_y = augmenter(settings, "single_label", 2)(xb, yb, torch.Generator(device="cuda").manual_seed(0))
    assert out_x.device.type == out_y.device.type == "cuda" and out_x.shape == (8, 16, 40)
