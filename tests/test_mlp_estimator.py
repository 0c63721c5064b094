"""The zoo's MLP (learn/mlp_estimator.py) on a device."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from acoustic_env.learn.zoo import make_estimator


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_one_worker_trial_trains_the_network_on_the_device():
    """A Tune trial of one worker calls ``train`` with the device and no ``prepare``: the network goes there."""
    rng = np.random.default_rng(0)
    y = np.arange(60) % 2
    x = (rng.standard_normal((60, 12)) + y[:, None]).astype(np.float32)
    net = make_estimator("mlp", "single_label", 2, seed=0, max_rounds=3).network()
    data = {"x_train": x[:48], "y_train": y[:48], "x_val": x[48:], "y_val": y[48:]}
    result = net.train(data, "single_label", 2, device=torch.device("cuda"))
    assert next(net.model_.parameters()).is_cuda and np.isfinite(result["best_val_score"])
