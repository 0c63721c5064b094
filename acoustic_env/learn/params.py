"""Every model's default settings and the space its search samples: plain data, importing nothing of the
package, so the zoo (which builds the models) and the network's trainer (``learn.fit``) both read them
without importing each other."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

PARAMS: dict[str, dict[str, Any]] = {
    # Cs: L2 strengths in half-decade steps tried by the inner CV; fallback_C when the rarest class has too few
    # clips for an inner CV. class_weight (every model but knn, which cannot weigh classes): None, or "balanced"
    # (each class weighs alike); balanced_sampler: the network draws balanced batches instead (learn.balance).
    # l1_ratios: the penalty's L1 share (0: L2) searched with each C; the fallback takes the middle one.
    "logreg": {"Cs": list(np.logspace(-4, -1, 7)), "l1_ratios": [0.0], "fallback_C": 0.01, "max_iter": 2000,
               "class_weight": None},
    "elasticnet": {"Cs": list(np.logspace(-3, 0, 7)), "l1_ratios": [0.0, 0.5, 1.0], "fallback_C": 0.1,
                   "max_iter": 2000, "class_weight": None},
    # min_child_weight 1: XGBoost's own default, named so that the search's range holds it
    "xgboost": {"n_estimators": 200, "max_depth": 4, "learning_rate": 0.1, "subsample": 0.8,
                "colsample_bytree": 0.5, "min_child_weight": 1.0, "tree_method": "hist", "verbosity": 0,
                "early_stopping_rounds": 30, "class_weight": None},
    "mlp": {"val_fraction": 0.15, "max_rounds": 20, "patience": 4, "class_weight": None, "balanced_sampler": False,
            "network": {"depth": 2, "width": 128, "lr": 1e-3, "activation": "relu", "dropout": 0.2,
                        "weight_decay": 1e-4, "batch_size": 64}},
    # cnn (learn.spectro): ``blocks`` conv blocks (batch norm, global pooling) of ``width`` channels doubling per
    # block, on ``crop_frames``-frame crops (averaged over crops covering the clip when it scores), trained with a
    # cosine learning rate for at most max_rounds epochs, stopped early on a grouped inner split of the training rows;
    # device: where it trains (cpu or cuda). augment: each entry switches one augmentation (0 or False: off),
    # recorded with the model.
    "cnn": {"val_fraction": 0.2, "max_rounds": 30, "patience": 6, "device": "cpu",
            "network": {"input_pool": [2, 2], "blocks": 4, "width": 8, "crop_frames": 200, "dropout": 0.3,
                        "lr": 3e-3, "weight_decay": 1e-3, "batch_size": 32, "lr_schedule": "cosine"},
            "augment": {"shift": True, "time_masks": 2, "time_mask": 20, "freq_masks": 2, "freq_mask": 8,
                        "mixup": 0.2}},
    "forest": {"n_estimators": 300, "min_samples_leaf": 2, "max_features": "sqrt", "max_depth": None,
               "class_weight": None},
    # gamma_factor: the RBF kernel's gamma times the number of inputs (1: scikit-learn's "scale" on standardised inputs)
    "svm": {"C": 1.0, "gamma_factor": 1.0, "class_weight": None},
    # brute: distances to every training row (no search tree), exact and saved as the rows themselves
    "knn": {"n_neighbors": 15, "weights": "distance", "algorithm": "brute"},
}


@dataclass(frozen=True)
class Range:
    """One searched setting: integers (``integer``) or numbers from ``low`` to ``high`` (``log``: drawn evenly on a
    log scale, for a rate or a strength whose effect goes by factors), or one of ``choices``."""

    low: float = 0.0
    high: float = 0.0
    log: bool = False
    integer: bool = False
    choices: tuple[Any, ...] = ()

    def size(self) -> float:
        """How many distinct values the range holds (infinite for numbers)."""
        if self.choices:
            return len(self.choices)
        return self.high - self.low + 1 if self.integer else math.inf

    def holds(self, value: Any) -> bool:
        """Whether ``value`` is one of the range's values."""
        if self.choices:
            return value in self.choices
        return self.low <= value <= self.high and (not self.integer or float(value).is_integer())

    def rounded(self, value: Any) -> Any:
        """A drawn value as the search uses and records it: numbers to 3 significant figures (0.0123, not
        0.012345678: the report reads them, and a setting can be typed back), integers as ``int``."""
        if self.choices:
            return value
        return int(value) if self.integer else float(f"{value:.3g}")

    def describe(self) -> str:
        """The range in words, for the report, the console and the docs' table."""
        if self.choices:
            return "{" + ", ".join(map(str, self.choices)) + "}"
        return f"{self.low:g}–{self.high:g}" + (" log" if self.log else "")


def ints(low: int, high: int, log: bool = False) -> Range:
    """The integers ``low`` to ``high``."""
    return Range(low, high, log, integer=True)


def numbers(low: float, high: float, log: bool = False) -> Range:
    """The numbers ``low`` to ``high``."""
    return Range(low, high, log)


def one_of(*values: Any) -> Range:
    """One of ``values`` (None: the model's own unbounded setting, a forest's depth)."""
    return Range(choices=values)


@dataclass(frozen=True)
class Space:
    """A model's search space: each searched setting's range. ``within``: the ``PARAMS`` entry holding those settings
    (the network's are in ``network``), else ``PARAMS[model]`` itself."""

    ranges: dict[str, Range]
    within: str | None = None

    def defaults(self, params: dict[str, Any]) -> dict[str, Any]:
        """The searched settings' values in ``params`` (a model's settings): the search's first trial."""
        return {name: (params[self.within] if self.within else params)[name] for name in self.ranges}

    def overrides(self, setting: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        """``setting`` (searched name -> value) as overrides of ``params``, nested where the space is ``within``."""
        return {self.within: {**params[self.within], **setting}} if self.within else dict(setting)

    def size(self) -> float:
        """How many distinct settings the space holds (infinite with a range of numbers)."""
        return math.prod(r.size() for r in self.ranges.values())

    def describe(self) -> dict[str, str]:
        """Each searched setting's range in words."""
        return {name: r.describe() for name, r in self.ranges.items()}


#: Each model's search space, sampled by ``learn.search`` (the defaults first, then Optuna's TPE) for
#: ``--search-trials`` settings. Every default of ``PARAMS`` lies inside its range. Logistic regression and the
#: elastic net search C (and the L1 share) their own way, over ``Cs`` and ``l1_ratios`` (``learn.zoo``).
SPACES: dict[str, Space] = {
    "xgboost": Space({"max_depth": ints(2, 8), "learning_rate": numbers(0.01, 0.3, log=True),
                      "n_estimators": ints(100, 600), "subsample": numbers(0.5, 1.0),
                      "colsample_bytree": numbers(0.3, 1.0), "min_child_weight": numbers(0.5, 10.0, log=True)}),
    # depth: hidden layers; width: units in each
    "mlp": Space({"depth": ints(1, 3), "width": ints(32, 512, log=True), "dropout": numbers(0.0, 0.5),
                  "weight_decay": numbers(1e-6, 1e-2, log=True), "lr": numbers(1e-4, 1e-2, log=True)},
                 within="network"),
    # max_features: per split, a rule of the inputs' count or a share of them; max_depth None: grown until pure
    "forest": Space({"min_samples_leaf": ints(1, 16, log=True),
                     "max_features": one_of("sqrt", "log2", 0.2, 0.33, 0.5, 0.75, 1.0),
                     "max_depth": one_of(None, 4, 8, 16, 32)}),
    "svm": Space({"C": numbers(0.01, 100.0, log=True), "gamma_factor": numbers(0.01, 10.0, log=True)}),
    "knn": Space({"n_neighbors": ints(3, 60, log=True), "weights": one_of("distance", "uniform")}),
    # width: the first block's channels; narrow ranges, since on a few hundred clips a wider space chose settings that
    # won the inner folds and lost outside (benchmarks/RESULTS.md, the CNN's section)
    "cnn": Space({"width": one_of(8, 16), "crop_frames": one_of(150, 200, 250), "dropout": numbers(0.2, 0.5),
                  "lr": numbers(1e-3, 4e-3, log=True), "weight_decay": numbers(1e-4, 1e-2, log=True)},
                 within="network"),
}
