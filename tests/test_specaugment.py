"""SpecAugment's masks (``learn/spectro.py: mask``) hide a band or a stretch of time as the docstring says: with
the image's own mean level, in widths drawn from 0 to the configured width inclusive, anywhere in the image.

A mask filled with 0 dB on an image at -60 dB is a bright stripe the network learns to look for, not a hidden band;
widths that never reach ``freq_mask`` make ``freq_mask=1`` a switch that does nothing.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from acoustic_env.learn.spectro import augmenter, crop, mask, mixup

BANDS, FRAMES = 16, 24


def _images(n: int, seed: int = 0) -> torch.Tensor:
    """``n`` dB images, each at its own level (-80 to -20 dB) with a few dB of texture: no two share a mean."""
    rng = np.random.default_rng(seed)
    levels = np.linspace(-80, -20, n)[:, None, None]
    return torch.tensor(levels + rng.normal(0, 3, (n, BANDS, FRAMES)), dtype=torch.float32)


def _hidden(x: torch.Tensor, out: torch.Tensor, axis: int) -> torch.Tensor:
    """Which bands (axis 1) or frames (axis 2) of each image the masks replaced: [images, bands or frames]."""
    changed = out != x
    return changed.all(dim=3 - axis)


@pytest.mark.parametrize("axis", [1, 2])
def test_a_mask_hides_with_each_images_own_mean(axis):
    x = _images(12)
    out = mask(x, axis, count=2, widest=4, gen=torch.Generator().manual_seed(0))
    changed = out != x
    assert changed.any() and torch.equal(x, _images(12)), "masks change a new tensor, never the batch given"
    for image, masked, where in zip(x, out, changed):
        if where.any():
            assert torch.allclose(masked[where], image.mean()), "a masked cell holds that image's mean"
            assert image.min() < masked[where][0] < image.max(), "within the image's own range: hidden, not a stripe"
    lines = _hidden(x, out, axis)  # whole bands or whole frames, never a few cells of one
    assert torch.equal(changed, (lines[:, :, None] if axis == 1 else lines[:, None, :]).expand_as(changed))


@pytest.mark.parametrize("axis, widest", [(1, 1), (1, 3), (2, 5)])
def test_mask_widths_are_drawn_from_zero_to_the_widest_inclusive(axis, widest):
    """One mask per image: its width (the lines it hides) is each of 0..widest about equally often, and it can
    start anywhere, so that every band or frame, the first and the last included, is sometimes hidden."""
    n = 4000
    x = _images(n, seed=1)
    out = mask(x, axis, count=1, widest=widest, gen=torch.Generator().manual_seed(2))
    hidden = _hidden(x, out, axis)
    widths = hidden.sum(dim=1).numpy()
    share = np.bincount(widths, minlength=widest + 1) / n
    assert len(share) == widest + 1 and np.allclose(share, 1 / (widest + 1), atol=0.05), share
    assert hidden.any(dim=0).all(), "a line that no mask ever reaches"


def test_no_mask_when_switched_off():
    x = _images(4)
    gen = torch.Generator().manual_seed(0)
    assert mask(x, 1, count=0, widest=4, gen=gen) is x and mask(x, 2, count=3, widest=0, gen=gen) is x


def test_masks_of_one_image_add_up():
    """Several masks per image each hide their own lines: with three of width 0 or 1, an image loses up to three."""
    x = _images(3000, seed=3)
    hidden = _hidden(x, mask(x, 1, count=3, widest=1, gen=torch.Generator().manual_seed(4)), 1).sum(dim=1)
    assert set(hidden.tolist()) == {0, 1, 2, 3}


def test_a_mask_as_wide_as_the_image_lies_whole_inside_it():
    """Widths 0..widest are equally likely even when widest is the whole axis: every mask starts where it fits."""
    x = torch.arange(4 * 6, dtype=torch.float32).reshape(1, 4, 6).repeat(10000, 1, 1)
    widths = _hidden(x, mask(x, 1, count=1, widest=4, gen=torch.Generator().manual_seed(5)), 1).sum(dim=1)
    share = np.bincount(widths.numpy(), minlength=5) / len(x)
    assert np.allclose(share, 0.2, atol=0.03), share


def test_a_shifted_crop_starts_at_every_offset_alike():
    x = torch.arange(10, dtype=torch.float32).repeat(6000, 2, 1)  # frame t holds t
    starts = crop(x, 6, True, torch.Generator().manual_seed(0))[:, 0, 0].long()
    assert np.allclose(np.bincount(starts.numpy(), minlength=5) / len(x), 0.2, atol=0.03)
    assert torch.equal(crop(x[:2], 6, False, torch.Generator())[0, 0], torch.arange(2, 8, dtype=torch.float32))


def test_mixup_blends_each_image_and_its_targets_with_one_partner_by_one_weight():
    """Each image i becomes λ_i·x_i + (1-λ_i)·x_p(i) and its targets likewise, with the same λ_i and partner; the
    partners are a permutation of the batch and λ ~ Beta(α, α): symmetric about 1/2, one draw per image.

    Image i is band i lit (an identity matrix of images), so a blend reads off: λ_i at band i, its partner the other
    band lit."""
    n = 1000
    eye = torch.eye(n)
    out_x, out_y = mixup(eye[:, :, None], eye.clone(), 0.4, torch.Generator().manual_seed(1))
    blend = out_x[:, :, 0]
    torch.testing.assert_close(blend, out_y)  # the targets blended with the images' partner and weight
    assert ((blend >= 0) & (blend <= 1)).all() and torch.allclose(blend.sum(dim=1), torch.ones(n))
    assert ((blend > 0).sum(dim=1) <= 2).all()  # each image blended with one other at most
    lam = blend.diagonal()
    others = blend - torch.diag(lam)
    paired = others.sum(dim=1) > 0
    partners = others.argmax(dim=1)[paired]
    assert paired.sum() > 0.9 * n and len(set(partners.tolist())) == len(partners)  # a permutation
    weights = lam[paired]
    assert len(set(weights.round(decimals=4).tolist())) > n / 2  # one λ per image
    assert abs(float(weights.mean()) - 0.5) < 0.05
    assert float((weights < 0.5).float().mean()) == pytest.approx(0.5, abs=0.05)


def test_every_augmentation_follows_the_generator_alone():
    """The same generator seed gives the same batch whatever torch's and numpy's global seeds: training runs repeat."""
    x, y = _images(16), torch.tensor(np.arange(16) % 3)
    settings = {"crop_frames": 20, "shift": True, "time_masks": 2, "time_mask": 5, "freq_masks": 2, "freq_mask": 4,
                "mixup": 0.4}
    runs = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        np.random.seed(seed)
        runs.append(augmenter(settings, "single_label", 3)(x, y, torch.Generator().manual_seed(7)))
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1])
    assert runs[0][1].shape == (16, 3)


def test_every_augmentation_keeps_the_batch_on_its_device():
    """On the meta device, a stand-in for a GPU here: a tensor left on the CPU beside the batch stops the step."""
    x, y = torch.zeros(4, BANDS, FRAMES, device="meta"), torch.zeros(4, 3, device="meta")
    settings = {"crop_frames": 20, "shift": True, "time_masks": 2, "time_mask": 5, "freq_masks": 2, "freq_mask": 4,
                "mixup": 0.4}
    out_x, out_y = augmenter(settings, "multi_label", 3)(x, y, torch.Generator().manual_seed(0))
    assert out_x.device.type == out_y.device.type == "meta" and out_x.shape == (4, BANDS, 20)


def test_frequency_masks_hide_bands_and_time_masks_frames_and_classes_keep_their_count():
    x, y = _images(64), torch.tensor([0, 1] * 32)  # a batch without the third class
    off = {"crop_frames": FRAMES, "shift": False, "time_masks": 0, "time_mask": 0, "freq_masks": 0, "freq_mask": 0,
           "mixup": 0.0}
    for switch, axis in (({"freq_masks": 1, "freq_mask": 3}, 1), ({"time_masks": 1, "time_mask": 3}, 2)):
        out = augmenter({**off, **switch}, "single_label", 3)(x, y, torch.Generator().manual_seed(0))[0]
        changed = out != x
        assert changed.any() and torch.equal(changed, _hidden(x, out, axis).unsqueeze(3 - axis).expand_as(changed))
    assert augmenter({**off, "mixup": 0.4}, "single_label", 3)(x, y, torch.Generator())[1].shape == (64, 3)
