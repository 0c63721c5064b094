"""Train / validation / test splits: stratified, grouped, or given.

Grouped splits keep every clip of a source recording (AudioSet: a YouTube
video) on one side, because two 10-s segments of one video share microphone,
place and background: a model that saw one would be scored on a near copy.
An explicit test list (AudioSet's evaluation segments) is honoured exactly;
clips outside it whose recording appears in it are left out of training
rather than leaked (counted as ``dropped_group_overlap``).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from sklearn.model_selection import (
    GroupShuffleSplit,
    ShuffleSplit,
    StratifiedGroupKFold,
    StratifiedKFold,
    StratifiedShuffleSplit,
)

from acoustic_env.config import ConfigError

TRAIN, VAL, TEST, DROPPED = 0, 1, 2, -1
NAMES = {TRAIN: "train", VAL: "val", TEST: "test"}


def _coarse_strata(strata: np.ndarray, min_count: int) -> np.ndarray:
    """Merge strata too small to appear on both sides (rare label combinations) into one."""
    values, counts = np.unique(strata, return_counts=True)
    rare = set(values[counts < min_count])
    return np.array(["\0rare" if s in rare else s for s in strata], dtype=object) if rare else strata


def _held_out(strata: np.ndarray, groups: np.ndarray | None, fraction: float, seed: int) -> np.ndarray:
    """A boolean mask of about ``fraction`` of the rows, stratified (by label presence for a label matrix), never
    splitting a group."""
    n = len(strata)
    idx = np.arange(n)
    if strata.ndim == 2:
        units = np.arange(n) if groups is None else groups
        return multilabel_folds(strata, units, 2, seed, proportions=(fraction, 1 - fraction)) == 0
    if groups is None:
        s = _coarse_strata(strata, 2)
        try:
            _, held = next(StratifiedShuffleSplit(1, test_size=fraction, random_state=seed).split(idx, s))
        except ValueError:  # a class too small to stratify: plain shuffle
            _, held = next(ShuffleSplit(1, test_size=fraction, random_state=seed).split(idx))
    else:
        n_folds = max(2, int(round(1 / fraction)))
        s = _coarse_strata(strata, n_folds)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "least populated class has only N members"
                _, held = next(StratifiedGroupKFold(n_folds, shuffle=True, random_state=seed).split(idx, s, groups))
        except ValueError:  # fewer groups than folds
            _, held = next(GroupShuffleSplit(1, test_size=fraction, random_state=seed).split(idx, groups=groups))
    mask = np.zeros(n, dtype=bool)
    mask[held] = True
    return mask


def assign_splits(strata: np.ndarray, groups: np.ndarray | None, test_mask: np.ndarray | None,
                  test_size: float, val_size: float, seed: int) -> np.ndarray:
    """One of TRAIN, VAL, TEST or DROPPED per row.

    ``test_mask``: rows of an explicit test list (else ``test_size`` of the rows
    is held out); ``val_size`` is a fraction of the remaining rows.
    """
    split = np.full(len(strata), TRAIN, dtype=np.int8)
    if test_mask is None:
        test_mask = _held_out(strata, groups, test_size, seed)
    split[test_mask] = TEST
    if groups is not None:
        test_groups = set(groups[test_mask])
        overlap = ~test_mask & np.array([g in test_groups for g in groups], dtype=bool)
        split[overlap] = DROPPED
    rest = np.flatnonzero(split == TRAIN)
    if len(rest) >= 2:
        val = _held_out(strata[rest], None if groups is None else groups[rest], val_size, seed + 1)
        split[rest[val]] = VAL
    return split


def leaks(groups: np.ndarray, split: np.ndarray) -> set[str]:
    """Groups that appear in more than one split (should be empty)."""
    seen: dict[str, int] = {}
    bad = set()
    for g, s in zip(groups, split):
        if s == DROPPED:
            continue
        if seen.setdefault(g, s) != s:
            bad.add(g)
    return bad


def strata(y: np.ndarray) -> np.ndarray:
    """What ``assign_splits`` stratifies by: the class index per row (single-label), or the label matrix itself
    (multi-label), whose splits then keep each label's share (label presence), not each label pattern's: a rare
    label spread over many patterns of a clip or two would otherwise land wherever those patterns fall."""
    return y.astype(str) if y.ndim == 1 else np.asarray(y, dtype=np.int64)


# --- K folds (cross-validation in train, cross-fitting in the audit) --------------------

def check_counts(counts: np.ndarray, names: Sequence[str], n_folds: int, field: str) -> None:
    """Every class (``counts`` clips of each of ``names``) fills ``n_folds`` folds, or one line naming ``field`` (the
    option that sets the folds): the folds' own check, and the dry run's on a table's class counts."""
    for name, n in zip(names, counts):
        if n < n_folds:
            raise ConfigError(f"{field}: every class needs at least `{field}` labelled clips; class {name!r} has "
                              f"{int(n)}, got {field}={n_folds}")


def _check_spread(targets: np.ndarray, groups: np.ndarray, fold: np.ndarray, names: tuple[str, ...],
                  field: str) -> None:
    """Every class in two folds or more (``field``: the option the error names).

    A fold's clips are scored by a model fitted on the other folds: a class whose clips all fall in one fold
    (its clips are all of one group, which never splits) is missing from that model's training clips, so it is
    never predicted there and its recall of 0 would read like a result.
    """
    positive = targets.astype(bool) if targets.ndim == 2 else targets[:, None] == np.arange(len(names))
    for c, name in enumerate(names):
        rows = positive[:, c]
        if len(np.unique(fold[rows])) < 2:
            held = np.unique(groups[rows].astype(str))
            shown = ", ".join(held[:3]) + (", ..." if len(held) > 3 else "")
            raise ConfigError(f"{field}: class {name!r} has its {int(rows.sum())} clips in {len(held)} group(s) "
                              f"({shown}), all in one fold, so the model scoring them never learns {name!r}; "
                              f"grouped cross-validation needs its clips in 2 groups or more")


def _iterative_stratification(unit_labels: np.ndarray, unit_sizes: np.ndarray, shares: np.ndarray,
                              rng: np.random.Generator) -> np.ndarray:
    """Assign units (groups of clips) to folds so each label's positives spread as the folds' ``shares`` (sum 1).

    The rarest label still to place goes first; each of its units joins the fold
    that most lacks that label (ties, which are many: the fold that most lacks the unit's labels, each as a share of
    its count, then the fold that most lacks clips, then random). Without the second rule a unit of several clips
    goes where one label wants it whatever it carries of the others: on 120 groups of two clips, a common label
    ended 20/21/18/11/10 over 5 folds; with it, within 3 of even (tests/test_multilabel_parity.py).
    """
    n_units, n_folds = len(unit_sizes), len(shares)
    totals = np.maximum(unit_labels.sum(axis=0), 1)
    want_labels = np.outer(shares, unit_labels.sum(axis=0)).astype(float)
    want_size = shares * unit_sizes.sum()
    fold = np.full(n_units, -1)
    left = np.ones(n_units, dtype=bool)
    while left.any():
        remaining = unit_labels[left].sum(axis=0)
        if remaining.any():
            label = int(np.argmin(np.where(remaining > 0, remaining, np.inf)))
            units = np.flatnonzero(left & (unit_labels[:, label] > 0))
        else:
            label, units = None, np.flatnonzero(left)
        for u in rng.permutation(units):
            lacks = (want_labels / totals) @ unit_labels[u]
            score = (want_labels[:, label] if label is not None else np.zeros(n_folds), lacks, want_size,
                     rng.random(n_folds))
            f = int(np.lexsort(score[::-1])[-1])
            fold[u] = f
            want_labels[f] -= unit_labels[u]
            want_size[f] -= unit_sizes[u]
            left[u] = False
    return fold


def multilabel_folds(targets: np.ndarray, groups: np.ndarray, n_folds: int, seed: int,
                     proportions: tuple[float, ...] | None = None) -> np.ndarray:
    """Fold index per row of a 0/1 label matrix, stratified by label presence (iterative stratification,
    Sechidis et al., 2011), every group's rows in one fold; ``proportions``: each fold's share (default equal).

    Written here, not taken from the ``iterative-stratification`` package: its ``MultilabelStratifiedKFold`` has
    no groups. A group enters as one unit carrying the sum of its rows' labels, so a label's clips spread by
    groups, as evenly as the groups allow (the plain, ungrouped version: every row its own group).
    """
    unique_groups, group_index = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    unit_labels = np.zeros((len(unique_groups), targets.shape[1]))
    np.add.at(unit_labels, group_index, targets)
    shares = np.full(n_folds, 1 / n_folds) if proportions is None else np.asarray(proportions, dtype=float)
    unit_sizes = np.bincount(group_index, minlength=len(unique_groups))
    return _iterative_stratification(unit_labels, unit_sizes, shares, np.random.default_rng(seed))[group_index]


def fold_order(name: str) -> tuple[int, int, str]:
    """Sort key of published fold names: numbers in numeric order (1, 2, ..., 10), then words (train, val)."""
    return (0, int(name), name) if name.lstrip("-").isdigit() else (1, 0, name)


def assign_folds(targets: np.ndarray, groups: np.ndarray, class_names: tuple[str, ...], n_folds: int,
                 seed: int = 0, field: str = "folds") -> np.ndarray:
    """Fold index per clip; all clips of a group share one fold (``field``: the option errors name).

    * single-label: ``StratifiedGroupKFold`` (``StratifiedKFold`` when every
      clip is its own group), so each fold keeps the class balance;
    * multi-label: iterative stratification (Sechidis et al., 2011) over groups
      (``multilabel_folds``).

    Too few groups, too few clips of a class, or a class whose clips all share one fold stop with one line.
    """
    unique_groups, group_index = np.unique(groups.astype(str), return_inverse=True)
    if len(unique_groups) < n_folds:
        raise ConfigError(f"{field}: needs at least `{field}` groups (or clips), the table has "
                          f"{len(unique_groups)}, got {field}={n_folds}")
    if targets.ndim == 1:
        check_counts(np.bincount(targets, minlength=len(class_names)), class_names, n_folds, field)
        if len(unique_groups) == len(targets):
            splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
            splits = splitter.split(np.zeros(len(targets)), targets)
        else:
            splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
            splits = splitter.split(np.zeros(len(targets)), targets, group_index)
        fold = np.full(len(targets), -1)
        for k, (_, test) in enumerate(splits):
            fold[test] = k
    else:
        check_counts(targets.sum(axis=0), class_names, n_folds, field)
        fold = multilabel_folds(targets, groups, n_folds, seed)
    _check_spread(targets, groups, fold, class_names, field)
    return fold
