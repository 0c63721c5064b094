"""The one training loop (``learn.fit``): early stopping keeps the best round, class weights reach the loss,
augmentation touches the training batches only."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from acoustic_env.learn.fit import Schedule, Stream, class_weights, fit
from acoustic_env.learn.mlp import n_outputs, predict_proba

FAST = {"lr": 0.05, "weight_decay": 0.0, "batch_size": 32}


def _signal(n: int, seed: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    """Two classes told apart by the first of 4 inputs, blurred by ``noise``."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    return (np.c_[y - 0.5, np.zeros((n, 3))] + noise * rng.standard_normal((n, 4))).astype(np.float32), y


def _xor(n: int, seed: int, flip: float) -> tuple[np.ndarray, np.ndarray]:
    """The sign of x0 · x1 (which a linear model cannot learn), a share ``flip`` of the labels flipped."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (n, 4)).astype(np.float32)
    y = (x[:, 0] * x[:, 1] > 0).astype(int)
    flipped = rng.random(n) < flip
    y[flipped] = 1 - y[flipped]
    return x, y


@pytest.mark.parametrize("monitor", ["score", "loss"])
def test_early_stopping_ends_patience_rounds_after_the_best_and_keeps_its_weights(monitor):
    """A wide network learns XOR from 40 clips with noisy labels, then learns the noise: the loop stops ``patience``
    rounds after the best validation round (by score, or by loss) and the network ends holding that round's
    weights, as ``best_state``."""
    x, y = _xor(40, 0, 0.2)
    xv, yv = _xor(300, 1, 0.0)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 256), nn.ReLU(), nn.Linear(256, 1))
    states = []
    schedule = Schedule(max_rounds=60, patience=3, steps_per_round=4, monitor=monitor)
    out = fit(net, {"x_train": x, "y_train": y, "x_val": xv, "y_val": yv}, "single_label", 2,
              {**FAST, "lr": 0.01}, schedule, seed=0,
              on_round=lambda m, improved, model: states.append({k: v.clone() for k, v in model.state_dict().items()}))
    history = out["history"]
    values = [h["val_score"] if monitor == "score" else -h["val_loss"] for h in history]
    best = int(np.argmax(values))  # the first round of the best value
    assert 3 <= best + 1 < len(history) < schedule.max_rounds, "learnt nothing, or never overfitted: no case"
    assert len(history) == best + 1 + schedule.patience
    for name, value in net.state_dict().items():
        assert torch.equal(value, states[best][name]) and torch.equal(out["best_state"][name], value), name
    assert out["best_val_score"] == history[best]["val_score"] and out["best_val_loss"] == history[best]["val_loss"]
    assert history[-1]["best_val_score"] == history[best]["val_score"]


def test_the_patience_counts_epochs_where_a_round_is_many():
    """The MLP's ``patience_epochs`` (50): 4 rounds where a round is about an epoch (a large table), down to 2 where a
    round is 25 epochs or more (a small table); never more than ``patience``, never fewer than 2 rounds."""
    schedule = Schedule(patience=4, patience_epochs=50)
    assert [schedule.rounds_of_patience(e) for e in (1, 12, 13, 17, 25, 50, 100)] == [4, 4, 4, 3, 2, 2, 2]
    assert Schedule(patience=4).rounds_of_patience(100) == 4  # unset: rounds as given
    assert Schedule(patience=1, patience_epochs=50).rounds_of_patience(100) == 1


@pytest.mark.parametrize("patience_epochs, rounds", [(None, 5), (4, 2), (6, 3), (100, 5)])
def test_a_run_of_long_rounds_stops_once_the_patience_in_epochs_has_passed(patience_epochs, rounds):
    """Rounds of 4 steps are 2 epochs of 40 clips in batches of 32: with ``patience_epochs`` the loop stops that many
    epochs after the best round (``rounds`` rounds), or ``patience`` rounds after it when that comes first."""
    x, y = _xor(40, 0, 0.2)
    xv, yv = _xor(300, 1, 0.0)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 256), nn.ReLU(), nn.Linear(256, 1))
    schedule = Schedule(max_rounds=60, patience=5, steps_per_round=4, patience_epochs=patience_epochs)
    out = fit(net, {"x_train": x, "y_train": y, "x_val": xv, "y_val": yv}, "single_label", 2,
              {**FAST, "lr": 0.01}, schedule, seed=0)
    scores = [h["val_score"] for h in out["history"]]
    best = int(np.argmax(scores))
    assert out["epochs_per_round"] == 2 and len(scores) < schedule.max_rounds
    assert len(scores) == best + 1 + rounds


def _prior_learnt(kind: str, y: np.ndarray, class_weight) -> np.ndarray:
    """The mean probabilities a linear model on all-zero inputs learns: only its bias can fit, to the
    (weighted) class frequencies."""
    n_classes = y.shape[1] if kind == "multi_label" else int(y.max()) + 1
    x = np.zeros((len(y), 3), np.float32)
    torch.manual_seed(0)
    net = nn.Linear(3, n_outputs(kind, n_classes))
    fit(net, {"x_train": x, "y_train": y, "x_val": x, "y_val": y}, kind, n_classes, FAST,
        Schedule(max_rounds=6, patience=6, steps_per_round=60, monitor="loss"), seed=0, class_weight=class_weight,
        score_train=False)
    return predict_proba(net, x[:1], kind, n_classes)[0]


@pytest.mark.parametrize("kind, y, class_weight, expected", [
    ("single_label", np.r_[np.zeros(80), np.ones(20)].astype(int), None, [0.8, 0.2]),  # one logit
    ("single_label", np.r_[np.zeros(80), np.ones(20)].astype(int), "balanced", [0.5, 0.5]),
    ("single_label", np.r_[np.zeros(80), np.ones(20)].astype(int), [1.0, 2.0], [2 / 3, 1 / 3]),
    ("single_label", np.r_[np.zeros(60), np.ones(30), 2 * np.ones(10)].astype(int), "balanced", [1 / 3] * 3),
    ("multi_label", np.c_[np.r_[np.ones(10), np.zeros(90)], np.r_[np.ones(50), np.zeros(50)]].astype(int),
     "balanced", [0.5, 0.5]),
])
def test_class_weights_reach_the_loss(kind, y, class_weight, expected):
    """Weighted, the loss is minimised at the weighted class frequencies: balanced, every class alike."""
    np.testing.assert_allclose(_prior_learnt(kind, y, class_weight), expected, atol=0.02)


def test_class_weights_balanced_and_given_and_refused():
    y = np.r_[np.zeros(6), np.ones(2)].astype(int)
    np.testing.assert_allclose(class_weights("balanced", y, "single_label", 3), [8 / 18, 8 / 6, 0.0])
    np.testing.assert_allclose(class_weights([1, 2], y, "single_label", 2), [1.0, 2.0])
    assert class_weights(None, y, "single_label", 2) is None
    with pytest.raises(ValueError, match="class_weight: must be 2 finite weights"):
        class_weights([1.0], y, "single_label", 2)
    with pytest.raises(ValueError, match="class_weight: must be None, 'balanced'"):
        class_weights("balance", y, "single_label", 2)


def test_augmentation_transforms_training_batches_only():
    """The hook sees every training row once per epoch and never a validation row; what it returns is what trains
    (labels flipped there: the network learns the opposite of the validation truth)."""
    x, y = _signal(64, 0, 0.1)
    xv, yv = _signal(40, 1, 0.1)
    xv[:, 1] = -1.0  # validation rows are marked, training rows have 0 (+ noise) there
    x[:, 1] = np.abs(x[:, 1])
    seen = []

    def flip(xb, yb, generator):
        seen.append(xb.clone())
        return xb, 1 - yb

    torch.manual_seed(0)
    net = nn.Linear(4, 1)
    out = fit(net, {"x_train": x, "y_train": y, "x_val": xv, "y_val": yv}, "single_label", 2, FAST,
              Schedule(max_rounds=3, patience=3, steps_per_round=10), seed=0, augment=flip, score_train=False)
    rows = torch.cat(seen)
    assert len(rows) == 3 * out["epochs_per_round"] * len(x) and (rows[:, 1] >= 0).all()
    assert out["history"][-1]["val_score"] < 0.1  # AUC of a network that learnt the flipped labels


def test_mixed_precision_is_a_no_op_on_a_cpu():
    x, y = _signal(48, 0, 0.5)
    data = {"x_train": x, "y_train": y, "x_val": x, "y_val": y}
    states = []
    for mixed in (False, True):
        torch.manual_seed(0)
        net = nn.Linear(4, 1)
        fit(net, data, "single_label", 2, FAST, Schedule(max_rounds=2, patience=2, steps_per_round=3), seed=0,
            mixed_precision=mixed)
        states.append(net.state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_a_stream_of_batches_trains_as_arrays_and_refuses_what_needs_the_arrays():
    """Batches as Ray Data hands them (numpy, any order, a shorter last one) train the same loop: the same batches
    as the arrays' give the same weights; the balanced sampler and the training score need the arrays."""
    x, y = _signal(70, 0, 0.3)
    xv, yv = _signal(40, 1, 0.3)
    data = {"x_train": x, "y_train": y, "x_val": xv, "y_val": yv}
    order = torch.Generator().manual_seed(0)  # the order in which the arrays' path draws its epochs

    def epoch(size):
        rows = torch.randperm(len(x), generator=order).numpy()
        return ((x[rows[i:i + size]], y[rows[i:i + size]]) for i in range(0, len(x), size))

    stream = Stream(train=epoch, val=lambda: iter([(xv[:25], yv[:25]), (xv[25:], yv[25:])]), labels=y)
    states, scores = [], []
    for source in (data, stream):
        torch.manual_seed(0)
        net = nn.Linear(4, 1)
        out = fit(net, source, "single_label", 2, FAST, Schedule(max_rounds=3, patience=3, steps_per_round=3),
                  seed=0, class_weight="balanced", score_train=False)
        states.append(net.state_dict())
        scores.append([h["val_score"] for h in out["history"]])
    assert all(torch.allclose(states[0][k], states[1][k]) for k in states[0]) and scores[0] == scores[1]
    assert scores[1][-1] > 0.9
    with pytest.raises(ValueError, match="balanced_sampler: draws rows from arrays"):
        fit(nn.Linear(4, 1), stream, "single_label", 2, FAST, Schedule(), seed=0, balanced_sampler=True)
    with pytest.raises(ValueError, match="score_train: this stream has no pass"):
        fit(nn.Linear(4, 1), stream, "single_label", 2, FAST, Schedule(), seed=0)


def _agree(rank: int, path: str, out: str) -> None:
    """One of two gloo processes: each brings its own figure, both keep rank 0's."""
    import torch.distributed as dist

    from acoustic_env.learn.fit import agreed

    dist.init_process_group("gloo", init_method=f"file://{path}", rank=rank, world_size=2)
    try:
        torch.save(agreed(0.75 + rank * 1e-12, "cpu", 2), f"{out}.{rank}")
    finally:
        dist.destroy_process_group()


def test_data_parallel_ranks_stop_on_rank_0s_figure(tmp_path):
    """Streamed validation rows reach each rank in its own order, so their scores can differ in the last bits: one
    rank stopping while the other trains on would hang the run. Every rank takes rank 0's figure."""
    from acoustic_env.learn.fit import agreed

    out = str(tmp_path / "value")
    torch.multiprocessing.start_processes(_agree, args=(str(tmp_path / "rendezvous"), out), nprocs=2,
                                          start_method="fork")  # no second import of torch
    assert [torch.load(f"{out}.{r}") for r in (0, 1)] == [0.75, 0.75]
    assert agreed(0.5, "cpu", 1) == 0.5  # one worker: no process group needed
