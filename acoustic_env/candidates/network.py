"""``mlp``: the train job's network (``learn.mlp_estimator``) on the standardised components, saved as torch weights.

``network`` holds its hyper-parameters: the defaults of the Ray Tune tuning too (``learn.fit.DEFAULT_PARAMS``). The
tuning, the ablations and the final fit all build it here. It chooses a probability map on its inner folds, as the
other vector models do (``learn.calibrate``): fitted at once to the minimum of its penalised loss, it is underconfident
(Platt's slopes of 2-7), and the map took its out-of-fold ECE from 0.188 to 0.081 on the forest recordings and from
0.145 to 0.087 on the demo (ROC AUC 0.945 -> 0.940, 0.890 -> 0.890; benchmarks/RESULTS.md, "Leak-free inner folds").
Balanced classes reach it as loss weights, or as balanced batches (``balanced_sampler``; a multi-label clip drawn by
its rarest positive label).

It takes the rows' groups (``takes_groups``): its early stopping holds out whole groups, and the network holds a
linear skip path (``learn.mlp.MLP``). Together they lifted its pooled out-of-fold ROC AUC from 0.885 to 0.925 on the
forest recordings (logistic regression 0.929) and from 0.851 to 0.863 on the demo (0.871); an average of three
networks of other seeds and splits gained on the demo (0.880) and lost on the forest (0.919), with three fits for one,
so it is one network (benchmarks/RESULTS.md, "The MLP against logistic regression").

A fit of at most ``FULL_BATCH_ROWS`` clips learns from them all at once with L-BFGS, to the minimum of its loss plus
the L2 penalty ``l2`` (``learn.fit.full_batch``; scikit-learn's ``MLPClassifier``'s ``alpha``, 1/C of a logistic
regression), searched with the other settings. Stopped early on the few groups a small table can hold out, the
network trailed logistic regression by 0.054 ROC AUC on the forest recordings (0.883 against 0.937) and 0.015 on the
demo (0.866 against 0.881); fitted at once it came within 0.004 (0.945 against 0.949) and ahead (0.891 against 0.881),
at half train's CPU (benchmarks/RESULTS.md, "Leak-free inner folds"). ``l2`` 30: of 30, 100 and 300 on the forest
recordings, 0.949, 0.931 and 0.893. What follows is the mini-batch rounds of a larger fit (and of the Ray Tune trials).

A round is ``learn.fit.Schedule``'s 50 optimizer steps (about 25 epochs of 80 clips), and a fit stops 4 rounds after
its best. Rounds of one epoch, stopped on the validation loss or score, lifted the demo (0.863 -> 0.876) and cost the
forest (0.925 -> 0.897-0.912; every group pinned 0.938 -> 0.907, ECE 0.078 -> 0.178): stopped on a few held-out
groups, the network quits before its linear path has learnt what logistic regression does. On a small table a round
is dozens of epochs, so the patience is also counted in epochs: a fit stops once about 50 epochs have passed without
improvement, never before 2 rounds (``patience_epochs``, ``learn.fit.Schedule.rounds_of_patience``). A patience of 2
rounds gave the same figures on both tables at 0.6-0.9 of the CPU of a fit; on a table of thousands of clips, where two
rounds of 50 steps are about one epoch, the 4 rounds stay (benchmarks/RESULTS.md, "The MLP against logistic
regression").
"""

from __future__ import annotations

from typing import Any

from acoustic_env.candidates.space import Space, ints, numbers, one_of
from acoustic_env.candidates.spec import Build, CandidateSpec
from acoustic_env.registry import lazy

_MLP = lazy("acoustic_env.learn.mlp_estimator", "MLPClassifier")


def build(p: dict[str, Any], b: Build) -> Any:
    """The network of settings ``p`` (it standardises its own inputs); torch threads as ``b.threads`` (None: one)."""
    return _MLP(seed=b.seed, threads=b.threads, **p)


#: A fit of at most this many rows takes them all at once with L-BFGS (``learn.fit.full_batch``), more rows the
#: mini-batch rounds stopped on held-out groups.
FULL_BATCH_ROWS = 1000
#: The settings each way of fitting reads: at once, the network's shape and its penalty; in rounds, its shape,
#: dropout, AdamW's weight decay and learning rate (the batch size is Ray Tune's to search).
READ_AT_ONCE = ("depth", "width", "l2")
READ_IN_ROUNDS = ("depth", "width", "dropout", "weight_decay", "lr")


def regime(params: dict[str, Any], space: Space | None, rows: int) -> tuple[dict[str, Any], Space | None]:
    """The MLP's settings and search space for a fit of ``rows`` rows: fitted at once up to ``full_batch_rows``, and
    then every inner fit of its search and of its probability map too (they hold fewer rows); above it, fitted in
    rounds, and so is each inner fit, however few its rows (``full_batch_rows`` 0). Each searches only the settings
    its way of fitting reads.

    Why: the way of fitting followed each fit's own rows, so on a table of 1,000-2,000 clips (ESC-50's 2,000 on 5
    folds) the search's inner fits of half the rows were fitted at once and chose an ``l2`` that the fold's model,
    fitted in rounds, ignored, while the dropout, decay and rate it then used had never been scored; and on any
    table half of the searched settings were ones its fits never read.
    """
    at_once = rows <= params["full_batch_rows"]
    kept = READ_AT_ONCE if at_once else READ_IN_ROUNDS
    narrowed = None if space is None else Space({k: r for k, r in space.ranges.items() if k in kept}, space.within)
    return {**params, "full_batch_rows": params["full_batch_rows"] if at_once else 0}, narrowed


# depth: hidden layers; width: units in each; l2: the full-batch fit's penalty (1/C of a logistic regression), the
# mini-batch rounds' being weight_decay (AdamW's), lr, dropout and batch_size
SPEC = CandidateSpec("mlp", "the train job's network (a multilayer perceptron)", build=build, format="torch",
                     balance="network", default=True, takes_groups=True,
                     params={"val_fraction": 0.15, "max_rounds": 20, "patience": 4, "patience_epochs": 50,
                             "full_batch_rows": FULL_BATCH_ROWS, "class_weight": None,
                             "balanced_sampler": False,
                             "network": {"depth": 2, "width": 128, "lr": 1e-3, "activation": "relu", "dropout": 0.2,
                                         "weight_decay": 1e-4, "batch_size": 64, "l2": 30.0}},
                     space=Space({"depth": ints(1, 3), "width": ints(32, 512, log=True),
                                  "dropout": numbers(0.0, 0.5), "weight_decay": numbers(1e-6, 1e-2, log=True),
                                  "lr": numbers(1e-4, 1e-2, log=True), "l2": numbers(1.0, 1e3, log=True)},
                                 within="network"),
                     # the split evaluation: Ray Tune tunes it over a wider space (distributed.tune)
                     trains="tune", tune_space=Space({
                         "depth": ints(1, 3), "width": one_of(32, 64, 128, 256, 512),
                         "lr": numbers(1e-4, 3e-2, log=True), "activation": one_of("relu", "gelu", "silu", "tanh"),
                         "dropout": numbers(0.0, 0.5), "weight_decay": numbers(1e-6, 1e-2, log=True),
                         "batch_size": one_of(32, 64, 128, 256)}, within="network"),
                     regime=regime,
                     restore=lazy("acoustic_env.learn.trained_networks", "mlp_restore"),
                     predict=lazy("acoustic_env.learn.mlp", "predict_proba"),
                     save=lazy("acoustic_env.learn.trained_networks", "mlp_save"))
