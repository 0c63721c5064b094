"""Every model's default settings and the settings its search tries: plain data, importing nothing of the
package, so the zoo (which builds the models) and the network's trainer (``learn.fit``) both read them
without importing each other."""

from __future__ import annotations

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
    "xgboost": {"n_estimators": 200, "max_depth": 4, "learning_rate": 0.1, "subsample": 0.8,
                "colsample_bytree": 0.5, "tree_method": "hist", "verbosity": 0, "early_stopping_rounds": 30,
                "class_weight": None},
    "mlp": {"val_fraction": 0.15, "max_rounds": 20, "patience": 4, "class_weight": None, "balanced_sampler": False,
            "network": {"depth": 2, "width": 128, "lr": 1e-3, "activation": "relu", "dropout": 0.2,
                        "weight_decay": 1e-4, "batch_size": 64}},
    # cnn (learn.spectro): few, narrow blocks and few rounds, so a fold of a few hundred clips trains in seconds on
    # one CPU thread; augment: each entry switches one augmentation (0 or False: off), recorded with the model.
    "cnn": {"val_fraction": 0.2, "max_rounds": 12, "patience": 3,
            "network": {"input_pool": [2, 4], "channels": [8, 16, 32], "dropout": 0.3, "lr": 3e-3,
                        "weight_decay": 1e-4, "batch_size": 32},
            "augment": {"crop_frames": 200, "shift": True, "time_masks": 2, "time_mask": 20, "freq_masks": 2,
                        "freq_mask": 8, "mixup": 0.2}},
    "forest": {"n_estimators": 300, "min_samples_leaf": 2, "max_features": "sqrt", "max_depth": None,
               "class_weight": None},
    # gamma_factor: the RBF kernel's gamma times the number of inputs (1: scikit-learn's "scale" on standardised inputs)
    "svm": {"C": 1.0, "gamma_factor": 1.0, "class_weight": None},
    # brute: distances to every training row (no search tree), exact and saved as the rows themselves
    "knn": {"n_neighbors": 15, "weights": "distance", "algorithm": "brute"},
}


def _network(**changes: Any) -> dict[str, Any]:
    return {"network": {**PARAMS["mlp"]["network"], **changes}}


#: The settings each model's search tries, in this order (``trials`` caps how many): the defaults first, then
#: shallower/deeper or slower-learning trees, narrower, wider or faster-learning networks, more or less randomised
#: forests, softer or harder margins and wider or narrower kernels, fewer or more neighbours. Logistic regression and
#: the elastic net search C (and the L1 share) their own way (``learn.zoo``).
CANDIDATES: dict[str, list[dict[str, Any]]] = {
    "xgboost": [{}, {"max_depth": 2}, {"learning_rate": 0.05, "n_estimators": 400}, {"max_depth": 6},
                {"colsample_bytree": 1.0, "subsample": 1.0},
                {"max_depth": 3, "learning_rate": 0.03, "n_estimators": 500}],
    "mlp": [{}, _network(width=64, dropout=0.4), _network(depth=1, width=256, weight_decay=1e-3),
            _network(lr=3e-3, dropout=0.1)],
    "forest": [{}, {"max_features": 0.33}, {"min_samples_leaf": 5, "max_depth": 8}, {"max_features": "log2"}],
    "svm": [{}, {"C": 10.0}, {"C": 0.1}, {"C": 10.0, "gamma_factor": 0.1}, {"gamma_factor": 3.0}],
    "knn": [{}, {"n_neighbors": 5}, {"n_neighbors": 30}, {"weights": "uniform"}],
}
