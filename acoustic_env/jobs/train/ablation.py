"""Feature-group ablations: the chosen network retrained on subsets of the groups.

They show what each source (indices, MPS, each embedder) and each signal
(raw, foreground, background) contributes. Each subset is the network's
one training path (its estimator's ``train`` on the job's split, built from
its spec as the tuning's trials build it: ``distributed.tune.trainable``) with
the tuning's best hyper-parameters, run as a Ray task (``distributed.fanout``:
they are many and small).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from acoustic_env.distributed.fanout import map_tasks
from acoustic_env.distributed.tune import Setup, trainable
from acoustic_env.learn.transform import GroupTransform
from acoustic_env.table import signal_of, source_of


def ablation_sets(groups: list[str]) -> dict[str, list[str]]:
    """Named subsets: each source alone, each source left out (3+ sources), each signal's indices+MPS alone."""
    sources = list(dict.fromkeys(source_of(g) for g in groups))
    signals = list(dict.fromkeys(s for s in map(signal_of, groups) if s))
    sets: dict[str, list[str]] = {}
    if len(sources) > 1:
        for s in sources:
            sets[f"{s} only"] = [g for g in groups if source_of(g) == s]
    if len(sources) > 2:
        for s in sources:
            sets[f"without {s}"] = [g for g in groups if source_of(g) != s]
    if len(signals) > 1:
        for sig in signals:
            sets[f"{sig} signal only"] = [g for g in groups if signal_of(g) == sig]
    unique: dict[frozenset, str] = {}
    for name, gs in sets.items():
        if gs and set(gs) != set(groups):
            unique.setdefault(frozenset(gs), name)
    return {name: sets[name] for name in unique.values()}


def columns_of(transforms: list[GroupTransform], groups: list[str]) -> np.ndarray:
    """Column indices of the network input that belong to ``groups``."""
    cols, start = [], 0
    for t in transforms:
        if t.group in groups:
            cols.extend(range(start, start + t.n_components))
        start += t.n_components
    return np.array(cols, dtype=np.int64)


def fit_subset(data: dict[str, np.ndarray], setup: Setup, params: dict[str, Any]) -> dict[str, Any]:
    """One ablation fit of ``setup.model`` at the ``network`` settings ``params`` (single process, one thread;
    its settings as the tuning's trials have them: balanced, scheduled); returns the best weights and validation
    score."""
    network = trainable(setup, params, 1, len(data["y_train"]), data["x_train"].shape[1])
    out = network.train(data, setup.kind, setup.n_classes, setup.schedule.steps_per_round)
    return {"best_state": out["best_state"], "best_val_score": out["best_val_score"]}


def run_ablations(sets: dict[str, list[str]], transforms: list[GroupTransform], data: dict[str, np.ndarray],
                  setup: Setup, params: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Fit every subset as a Ray task, trained as the full network was (``setup``); returns {name: {groups, cols,
    best_state, best_val_score}}."""
    cols = {name: columns_of(transforms, groups) for name, groups in sets.items()}
    subsets = [{k: (v[:, c] if k.startswith("x_") else v) for k, v in data.items()} for c in cols.values()]
    fitted = map_tasks(fit_subset, subsets, setup=setup, params=params)
    return {name: {"groups": sets[name], "cols": cols[name], **r} for name, r in zip(sets, fitted)}
