"""The zoo's MLP (learn/mlp_estimator.py): its seed, its rounds, and a trial on a device."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from acoustic_env.candidates import PARAMS
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


def _fitted(seed: int) -> tuple[Any, np.ndarray]:
    """The zoo's network with train's defaults fitted on 80 clips of a linear task (the forest recordings' size),
    and the clips."""
    rng = np.random.default_rng(0)
    y = rng.permutation(np.arange(80) % 2)
    x = (rng.standard_normal((80, 20)) + 0.5 * y[:, None]).astype(np.float32)
    return make_estimator("mlp", "single_label", 2, seed=seed).network().fit(x, y), x


def test_a_seed_repeats_a_fit_and_another_seed_changes_it():
    """train fits the network once per fold and search trial: the same seed gives the same network (a rerun
    reproduces train's figures), another seed another one (the seed reaches the weights, the split and the
    batches, not only one of them)."""
    (a, x), (b, _), (c, _) = _fitted(0), _fitted(0), _fitted(1)
    assert np.array_equal(a.predict_proba(x), b.predict_proba(x)) and a.history_ == b.history_
    assert not np.allclose(a.predict_proba(x), c.predict_proba(x))


def test_a_fit_stops_patience_rounds_after_its_best_round():
    """Most fits on a table this small keep an early round, so every round past the best plus the patience is
    spent for nothing. A round here is 50 steps, 25 epochs, so the patience in epochs (50) ends a fit 2 rounds after
    the best, not ``patience`` (4)."""
    net, _ = _fitted(0)
    scores = [r["val_score"] for r in net.history_]
    assert PARAMS["mlp"]["patience"] == 4 and PARAMS["mlp"]["patience_epochs"] == 50
    assert len(scores) == min(int(np.argmax(scores)) + 1 + 2, PARAMS["mlp"]["max_rounds"])
    assert [r["epoch"] for r in net.history_][:2] == [25, 50]
