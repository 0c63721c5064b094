"""The log-mel CNN (learn/spectro.py): augmentation changes the training images only, every switch is honoured, the
network scores any window of frames the same way every time (the mean of its crops), and it trains on a schedule."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook

from acoustic_env.learn.fit import lr_factor
from acoustic_env.candidates import PARAMS
from acoustic_env.learn.portable import rebuild_network
from acoustic_env.learn.spectro import SpectroCNN, architecture, augmenter, average, mixup, views
from acoustic_env.learn.spectro_estimator import CNNClassifier, inner_split
from acoustic_env.learn.image_input import fit_width

OFF = {"crop_frames": 40, "shift": False, "time_masks": 0, "time_mask": 0, "freq_masks": 0, "freq_mask": 0,
       "mixup": 0.0}
SWITCHES = {"shift": {"shift": True}, "time masks": {"time_masks": 2, "time_mask": 10},
            "frequency masks": {"freq_masks": 2, "freq_mask": 4}, "mixup": {"mixup": 0.4}}
SMALL = {**PARAMS["cnn"]["network"], "blocks": 2, "width": 4, "crop_frames": 40, "batch_size": 64}


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
        clf = CNNClassifier(0, 0.25, 3, 3, SMALL, PARAMS["cnn"]["augment"])
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


def test_the_crops_cover_the_image_at_half_a_crop_from_end_to_end():
    """An image wider than the crop is cut into crops a half crop apart, the first at its start and the last at its
    end (rounded to frames); one no wider than the crop is itself."""
    x = torch.arange(2 * 3 * 100, dtype=torch.float32).reshape(2, 3, 100)
    crops, n = views(x, 40)
    assert n == 4 and crops.shape == (8, 3, 40)
    for i, start in enumerate((0, 20, 40, 60)):
        torch.testing.assert_close(crops[4 + i], x[1, :, start:start + 40])
    crops, n = views(x, 30)  # 70 frames to cover at a hop of 15: 6 crops, 14 frames apart
    starts = [int(c[0, 0]) for c in crops[:n]]
    assert n == 6 and starts[0] == 0 and starts[-1] == 70 and max(np.diff(starts)) <= 15
    assert views(x, 100)[1] == 1 and views(x, 200)[0] is x


@pytest.mark.parametrize("link, n_out", [("softmax", 3), ("sigmoid", 1), ("sigmoid", 3)])
def test_the_crops_logits_average_their_probabilities(link, n_out):
    """The averaged logits' probabilities are the mean of the crops' (softmax over the classes, else each sigmoid),
    and stay finite where a crop is sure (a logit of ±60, whose sigmoid rounds to 1 in float32)."""
    logits = torch.randn(5, 4, n_out, dtype=torch.float64) * 3
    logits[0, 0] = 60.0
    logits[1] = -60.0
    out = average(logits, link)
    prob = (lambda z: torch.softmax(z, dim=-1)) if link == "softmax" else torch.sigmoid
    assert torch.isfinite(out).all() and out.shape == (5, n_out)
    torch.testing.assert_close(prob(out), prob(logits).mean(dim=1))


def test_evaluation_scores_the_mean_of_the_crops_and_training_the_image_as_given():
    torch.manual_seed(0)
    a = architecture(16, "single_label", 3, {**SMALL, "crop_frames": 20, "dropout": 0.0})
    net = SpectroCNN(**{k: v for k, v in a.items() if k != "network"})
    assert (a["channels"], a["crop_frames"], a["link"]) == ([4, 8], 20, "softmax")
    x = torch.tensor(_images(3, frames=50)[0])
    x[:, :, 25:] += torch.linspace(0, 30, 25)  # crops unalike: a mean of logits is not a mean of probabilities
    net.mean.fill_(-50.0)
    net.std.fill_(6.0)
    net.eval()
    with torch.no_grad():
        per_crop = [torch.softmax(net.logits(x[:, :, s:s + 20]), dim=1) for s in (0, 10, 20, 30)]
        torch.testing.assert_close(torch.softmax(net(x), dim=1), torch.stack(per_crop).mean(dim=0))
        assert not torch.allclose(net(x), net.logits(x), atol=1e-4)  # not the whole window's
        net.train()
        torch.testing.assert_close(net(x), net.logits(x))
    assert architecture(16, "multi_label", 3, SMALL)["link"] == architecture(16, "single_label", 2, SMALL)["link"] \
        == "sigmoid"


def test_a_cnn_saved_before_the_crops_rebuilds_and_scores_its_whole_window():
    """A model saved before issue 57 stores an architecture without ``crop_frames`` or ``link``: it loads and scores
    as it did when saved, the whole window at once."""
    saved = {"network": "cnn", "bands": 16, "n_out": 1, "channels": [4, 8], "dropout": 0.3, "input_pool": [2, 4]}
    net = rebuild_network(saved, SpectroCNN(16, 1, [4, 8], 0.3, [2, 4]).state_dict())
    x = torch.tensor(_images(2, frames=300)[0])
    with torch.no_grad():
        torch.testing.assert_close(net(x), net.logits(x))


def test_the_cosine_schedule_warms_up_then_decays_to_zero():
    factors = [lr_factor("cosine", step, 100) for step in range(101)]
    assert factors[0] == pytest.approx(0.1) and factors[10] == pytest.approx(1.0) and max(factors) <= 1.0
    assert all(a > b for a, b in zip(factors[10:], factors[11:])) and factors[100] == pytest.approx(0.0)
    assert lr_factor("cosine", 500, 100) == pytest.approx(0.0)  # a stream's extra step: the end of the curve
    assert {lr_factor("constant", s, 100) for s in (0, 50, 150)} == {1.0}
    with pytest.raises(ValueError, match="lr_schedule: must be 'constant' or 'cosine', got 'step'"):
        lr_factor("step", 0, 100)


def test_the_cnn_trains_at_the_scheduled_rate_of_every_step():
    """Each optimiser step runs at ``lr`` times the schedule's factor of that step (``learn.fit``)."""
    x, y = _images(40)
    rates: list[float] = []
    handle = register_optimizer_step_pre_hook(
        lambda opt, *_: rates.append(opt.param_groups[0]["lr"]))
    try:
        CNNClassifier(0, 0.25, 4, 4, {**SMALL, "batch_size": 8, "lr": 0.01}, PARAMS["cnn"]["augment"]).fit(
            x, y, groups=np.arange(40) // 2)
    finally:
        handle.remove()
    assert len(rates) == 4 * 4  # 30 training rows in batches of 8, 4 rounds of one epoch
    assert rates == pytest.approx([0.01 * lr_factor("cosine", s, 16) for s in range(16)])
    assert rates[0] == pytest.approx(0.001) and rates[-1] < 0.001


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


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_the_cnn_trains_on_cuda_and_predicts_on_the_cpu_as_its_saved_model():
    """``device="cuda"`` (``PARAMS["cnn"]["device"]``): the network is moved to the GPU for training (its inputs are
    put there by the loop) and comes back to the CPU, where the saved model scores."""
    x, y = _images(40)
    clf = CNNClassifier(0, 0.25, 2, 2, SMALL, PARAMS["cnn"]["augment"], device="cuda")
    clf.fit(x, y, groups=np.arange(40) // 2)
    assert next(clf.model_.parameters()).device.type == "cpu" and len(clf.history_) == 2
    assert np.isfinite(clf.predict_proba(x)).all()


def test_a_model_saved_before_the_architectures_is_the_small_network():
    """Settings without ``architecture`` (a CNN saved before the residual one existed) rebuild the small network."""
    network = {k: v for k, v in PARAMS["cnn"]["network"].items() if k != "architecture"}
    assert architecture(64, "single_label", 2, network)["architecture"] == "small"


def test_each_blocks_pooling_follows_the_rows_the_input_pool_leaves():
    """An input pooled 2 x 4 leaves 20 bands 10 rows (the first factor is the bands'): 2 x 2 while two rows or more
    are left, then over time only."""
    from acoustic_env.learn.spectro import pools

    assert pools(20, (2, 4), 4) == [(2, 2), (2, 2), (2, 2), (1, 2)]
    assert pools(20, (4, 2), 4) == [(2, 2), (2, 2), (1, 2), (1, 2)]


def test_the_residual_block_is_two_convolutions_and_the_input_added_back():
    """ResNet's basic block, computed by hand: ReLU(BN(conv(ReLU(BN(conv(x))))) + skip(x)), then the max pool; the
    skip a 1 x 1 convolution with batch norm where the channels change, the input itself where they do not."""
    import torch.nn.functional as F

    from acoustic_env.learn.spectro import ResidualBlock

    torch.manual_seed(0)
    for c_in, c_out in ((4, 8), (8, 8)):
        block = ResidualBlock(c_in, c_out, (2, 2)).eval()
        convs = [m for m in block.body if isinstance(m, torch.nn.Conv2d)]
        bns = [m for m in block.body if isinstance(m, torch.nn.BatchNorm2d)]
        x = torch.randn(2, c_in, 6, 6)

        def bn(layer, v):
            return F.batch_norm(v, layer.running_mean, layer.running_var, layer.weight, layer.bias, False)

        body = bn(bns[1], F.conv2d(F.relu(bn(bns[0], F.conv2d(x, convs[0].weight, padding=1))), convs[1].weight,
                                   padding=1))
        if c_in == c_out:
            assert isinstance(block.skip, torch.nn.Identity)
            skip = x
        else:
            conv, norm = block.skip
            assert conv.kernel_size == (1, 1)
            skip = bn(norm, F.conv2d(x, conv.weight))
        expected = F.max_pool2d(F.relu(body + skip), (2, 2))
        torch.testing.assert_close(block(x), expected)


def test_a_network_that_cannot_be_built_says_why():
    with pytest.raises(ValueError, match=r"^cnn: architecture must be one of \['small', 'residual', 'cnn14'\], got "
                                         r"'wide'$"):
        SpectroCNN(64, 2, [8], 0.0, [1, 1], architecture="wide")
    with pytest.raises(ValueError, match=r"^cnn: the cnn14 architecture takes 64-band log-mel images .* have 32 bands"):
        SpectroCNN(32, 2, [64], 0.0, [1, 1], architecture="cnn14")
