"""A network trained on Ray comes back into train's process (``learn.trained_networks``): the module rebuilt from its
best round's weights scores as the trained one did, and its saved form scores the same and records the network it
holds, so the artifact's model is the one the evaluation measured. Small networks, random weights, milliseconds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from acoustic_env.candidates import PARAMS
from acoustic_env.learn import mlp, spectro, trained_networks
from acoustic_env.learn.image_input import IMAGE_COLUMN
from acoustic_env.learn.portable import Portable

TASKS = [("single_label", 2), ("single_label", 3), ("multi_label", 3)]


def _scores_alike(portable: Portable, net: torch.nn.Module, trained: torch.nn.Module, x: np.ndarray, kind: str,
                  n_classes: int) -> None:
    """The rebuilt module and the saved form (read back from its bytes) both score ``x`` as the trained module."""
    expected = mlp.predict_proba(trained, x, kind, n_classes)
    assert expected.shape == (len(x), n_classes)
    np.testing.assert_allclose(mlp.predict_proba(net, x, kind, n_classes), expected, rtol=0, atol=1e-6)
    read_back = Portable(portable.spec, portable.arrays, portable.blob)
    np.testing.assert_allclose(read_back.predict_proba(x), expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("kind, n_classes", TASKS)
def test_an_mlp_comes_back_with_its_trained_weights_and_saves_as_it_scores(kind, n_classes):
    settings = {**PARAMS["mlp"]["network"], "depth": 1, "width": 6}
    torch.manual_seed(0)
    trained = mlp.MLP(**mlp.architecture(5, kind, n_classes, settings)).eval()
    net = trained_networks.mlp_restore((5,), kind, n_classes, settings, trained.state_dict())
    assert not net.training  # evaluation mode: dropout off, the scores repeat
    x = np.random.default_rng(0).normal(size=(9, 5)).astype(np.float32)
    portable = trained_networks.mlp_save(net, (5,), kind, n_classes, {**PARAMS["mlp"], "network": settings})
    assert portable.spec["architecture"] == mlp.architecture(5, kind, n_classes, settings)
    assert (portable.spec["format"], portable.spec["kind"], portable.spec["classes"]) == ("torch", kind, n_classes)
    _scores_alike(portable, net, trained, x, kind, n_classes)


@pytest.mark.parametrize("kind, n_classes", TASKS)
def test_a_cnn_comes_back_with_its_trained_weights_and_saves_its_window(kind, n_classes):
    settings = {**PARAMS["cnn"]["network"], "blocks": 1, "width": 2, "input_pool": [1, 1], "crop_frames": 12}
    bands, frames = 8, 20
    torch.manual_seed(0)
    arch = spectro.architecture(bands, kind, n_classes, settings)
    trained = spectro.SpectroCNN(**{k: v for k, v in arch.items() if k != "network"}).eval()
    net = trained_networks.cnn_restore((bands, frames), kind, n_classes, settings, trained.state_dict())
    assert not net.training and net.bands == bands
    images = np.random.default_rng(0).normal(size=(5, bands, frames)).astype(np.float32)
    params = {**PARAMS["cnn"], "network": settings}
    portable = trained_networks.cnn_save(net, (bands, frames), kind, n_classes, params)
    assert portable.spec["input"] == {"column": IMAGE_COLUMN, "bands": bands, "frames": frames}
    assert portable.spec["architecture"] == arch and portable.spec["params"] == params
    assert (portable.spec["kind"], portable.spec["classes"]) == (kind, n_classes)
    _scores_alike(portable, net, trained, images, kind, n_classes)
