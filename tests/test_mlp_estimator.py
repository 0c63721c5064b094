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
    """The zoo's network with train's defaults in mini-batch rounds (as on a table of more than ``full_batch_rows``
    clips) fitted on 80 clips of a linear task (the forest recordings' size), and the clips."""
    rng = np.random.default_rng(0)
    y = rng.permutation(np.arange(80) % 2)
    x = (rng.standard_normal((80, 20)) + 0.5 * y[:, None]).astype(np.float32)
    return make_estimator("mlp", "single_label", 2, seed=seed, full_batch_rows=0).network().fit(x, y), x


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


def _wide(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """2,080 clips of 100 features, a fifth of them carrying a linear signal under noise: the first 80 to learn from
    (more features than a fifth of the rows, as the forest recordings' components), the rest to score."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(100) * (rng.random(100) < 0.2)
    x = rng.standard_normal((2080, 100)).astype(np.float32)
    return x, (x @ w / np.linalg.norm(w) + 0.5 * rng.standard_normal(2080) > 0).astype(np.int64)


def _objective_gradient(net: Any, x: np.ndarray, y: np.ndarray) -> float:
    """The largest gradient of the full-batch objective (mean loss + l2 / 2n x the squared weights) on all of ``x``
    at the network's weights."""
    model, l2 = net.model_, PARAMS["mlp"]["network"]["l2"]
    model.zero_grad()
    xt = torch.as_tensor(net.scaler_.transform(x), dtype=torch.float32)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(model(xt).reshape(-1), torch.as_tensor(y).float())
    penalty = sum((p * p).sum() for name, p in model.named_parameters() if name.endswith("weight"))
    (loss + 0.5 * l2 / len(x) * penalty).backward()
    return max(float(p.grad.abs().max()) for p in model.parameters())


def test_a_fit_of_at_most_full_batch_rows_ends_at_the_penalised_minimum_of_every_row():
    """No row held out and no rounds: the fit ends where the gradient of the loss on all its rows plus the ``l2``
    penalty vanishes (L-BFGS stops below 1e-5), and a tenfold ``l2`` shrinks the weights. A network stopped early on
    held-out rows ends short of that minimum."""
    x, y = _wide(0)
    x, y = x[:80], y[:80]
    net = make_estimator("mlp", "single_label", 2, seed=0).network().fit(x, y)
    assert net.history_ == [] and PARAMS["mlp"]["full_batch_rows"] >= 80
    assert _objective_gradient(net, x, y) < 1e-4
    stronger = make_estimator("mlp", "single_label", 2, seed=0, network={
        **PARAMS["mlp"]["network"], "l2": 10 * PARAMS["mlp"]["network"]["l2"]}).network().fit(x, y)

    def norm(m: Any) -> float:
        return sum(float((p.detach() ** 2).sum()) for p in m.model_.parameters())

    assert norm(stronger) < 0.7 * norm(net)


def test_a_balanced_sampler_fitted_at_once_weighs_a_rare_class_as_a_common_one():
    """The full batch is the sampler's one balanced draw of the rows: on 60 clips of one class and 20 of the other,
    the rare class's mean probability moves from about its share (0.25) to about a half."""
    x, y = _wide(0)
    rare = np.flatnonzero(y == 1)[:20]
    rows = np.concatenate([np.flatnonzero(y == 0)[:60], rare])
    mean = {balanced: make_estimator("mlp", "single_label", 2, seed=0, balanced_sampler=balanced).network().fit(
        x[rows], y[rows]).predict_proba(x[rows])[:, 1].mean() for balanced in (False, True)}
    assert mean[False] < 0.35 and 0.4 < mean[True] < 0.6, mean
