"""Splits and folds (``learn.splits``) on small arrays: the sizes asked for, stratification, groups kept whole,
the same split for the same seed and the one-line errors (the test list's formats: ``test_train_inputs.py``).

Fast (no table, no model): ``make mutate`` runs these against every mutant of the module.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from acoustic_env.config import ConfigError
from acoustic_env.learn.splits import (
    DROPPED,
    TEST,
    TRAIN,
    VAL,
    _coarse_strata,
    _held_out,
    assign_folds,
    assign_splits,
    fold_order,
    leaks,
    strata,
)


def test_rare_strata_merge_into_one_and_common_ones_stay():
    """A label combination with fewer clips than sides cannot be stratified: all such merge into one stratum that
    no real one can be mistaken for; with none rare the strata come back untouched."""
    s = np.array(["0"] * 5 + ["1"] * 2 + ["2"] + ["3"])
    merged = _coarse_strata(s, 2)
    assert merged[:7].tolist() == s[:7].tolist() and merged[7] == merged[8] and merged[7] not in set(s)
    common = s[:7]
    assert _coarse_strata(common, 2).tolist() == common.tolist()
    assert _coarse_strata(s, 3)[5] == merged[7]  # a stratum of two is rare when three sides need it


def test_held_out_share_is_stratified_and_fixed_by_the_seed():
    """Without groups: the fraction asked for, a stratum of two on both sides, the same rows for the same seed; a
    stratum of one (no stratification possible) still gives the fraction."""
    s = np.array(["a"] * 16 + ["b", "b", "c", "c"])
    for seed in range(4):
        held = _held_out(s, None, 0.5, seed)
        assert held.dtype == bool and held.sum() == 10
        assert sorted(s[held].tolist()) == ["a"] * 8 + ["b", "c"]  # each pair split, not both on one side
        np.testing.assert_array_equal(held, _held_out(s, None, 0.5, seed))
    assert _held_out(s, None, 0.3, 0).sum() == 6
    single = np.array(["a"] * 19 + ["z"])
    assert _held_out(single, None, 0.3, 1).sum() == 6
    np.testing.assert_array_equal(_held_out(single, None, 0.3, 1), _held_out(single, None, 0.3, 1))


def test_grouped_held_out_keeps_groups_whole_and_spreads_rare_groups():
    """With groups: about ``fraction`` of the rows (one fold of round(1 / fraction)), stratified over groups (of
    five positive groups exactly one is held out at 20 %), the same for the same seed, no warning about a tiny
    stratum; fewer groups than folds falls back to a group shuffle of the fraction."""
    groups = np.repeat([f"g{i}" for i in range(50)], 2)
    s = np.array(["1" if i < 5 else "0" for i in range(50)]).repeat(2)
    for seed in range(5):
        held = _held_out(s, groups, 0.2, seed)
        assert held.sum() == 20 and (s[held] == "1").sum() == 2  # one positive group of two clips
        assert not set(groups[held]) & set(groups[~held])
        np.testing.assert_array_equal(held, _held_out(s, groups, 0.2, seed))
    assert _held_out(s, groups, 0.5, 0).sum() == 50
    odd = s.astype(object)
    odd[0] = "2"  # a stratum of one clip: scikit-learn's "least populated class" warning, not the user's business
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _held_out(odd, groups, 0.2, 0).sum() == 20
    few = np.repeat([f"r{i}" for i in range(6)], 3)  # 6 groups, 0.15 asks for 7 folds
    for seed in range(3):
        held = _held_out(np.array(["0", "1"] * 9), few, 0.15, seed)
        assert held.sum() == 3 and len(set(few[held])) == 1  # one group: 15 % of six groups, rounded up
        np.testing.assert_array_equal(held, _held_out(np.array(["0", "1"] * 9), few, 0.15, seed))


def test_assign_splits_drops_test_groups_from_training_and_splits_the_last_two_rows():
    """Rows sharing a group with the test list are dropped, not trained on; validation comes from the remaining
    rows only, even when two remain; the same seed gives the same split."""
    groups = np.array(["a", "a", "b", "c", "d", "d"], dtype=object)
    split = assign_splits(np.array(["x"] * 6), groups, np.array([1, 0, 0, 0, 1, 0], bool), 0.2, 0.5, seed=0)
    assert split[[0, 4]].tolist() == [TEST, TEST] and split[[1, 5]].tolist() == [DROPPED, DROPPED]
    assert sorted(split[[2, 3]].tolist()) == [TRAIN, VAL]
    s = np.array(["0", "1"] * 30)
    ungrouped = assign_splits(s, None, None, 0.25, 0.2, seed=4)
    assert [(ungrouped == c).sum() for c in (TRAIN, VAL, TEST)] == [36, 9, 15]
    np.testing.assert_array_equal(ungrouped, assign_splits(s, None, None, 0.25, 0.2, seed=4))
    g = np.repeat([f"r{i}" for i in range(20)], 3)
    grouped = assign_splits(np.repeat(np.array(["0", "1"] * 10), 3), g, None, 0.25, 0.25, seed=2)
    assert not leaks(g, grouped) and (grouped == DROPPED).sum() == 0
    assert [(grouped == c).sum() for c in (TRAIN, VAL, TEST)] == [33, 12, 15]
    np.testing.assert_array_equal(grouped, assign_splits(np.repeat(np.array(["0", "1"] * 10), 3), g, None, 0.25,
                                                         0.25, seed=2))


def test_leaks_names_groups_on_two_sides_and_ignores_dropped_rows():
    groups = np.array(["g1", "g1", "g2", "g2", "g3", "g3", "g4"])
    split = np.array([TRAIN, DROPPED, TRAIN, TEST, VAL, VAL, TEST])
    assert leaks(groups, split) == {"g2"}
    assert leaks(groups, np.array([TRAIN, TEST, DROPPED, TRAIN, VAL, VAL, TEST])) == {"g1"}


def test_strata_are_the_class_or_the_label_matrix():
    """A multi-label split stratifies by label presence, so its strata are the 0/1 matrix, not each row's pattern."""
    assert strata(np.array([0, 2, 1])).tolist() == ["0", "2", "1"]
    assert strata(np.array([[1, 0, 1], [0, 0, 0], [0.0, 1.0, 1.0]])).tolist() == [[1, 0, 1], [0, 0, 0], [0, 1, 1]]


def test_fold_names_sort_numbers_numerically_then_words():
    names = ["val", "10", "2", "train", "X2", "-1", "1"]
    assert sorted(names, key=fold_order) == ["-1", "1", "2", "10", "X2", "train", "val"]


def test_assign_folds_single_label_keeps_groups_and_class_balance_and_the_seed():
    """Every clip one of F folds, a group never split, each fold with its share of each class (singleton groups:
    exact), the same folds for the same seed; F groups and F clips per class are enough."""
    y = np.array([0, 1, 1] * 8)
    groups = np.repeat([f"g{i}" for i in range(12)], 2)
    folds = assign_folds(y, groups, ("a", "b"), 4, seed=1, field="cv_folds")
    assert folds.dtype.kind == "i" and sorted(set(folds.tolist())) == [0, 1, 2, 3] and not leaks(groups, folds)
    np.testing.assert_array_equal(folds, assign_folds(y, groups, ("a", "b"), 4, seed=1, field="cv_folds"))
    alone = assign_folds(y, np.arange(24).astype(str), ("a", "b"), 4, seed=1)
    assert [np.bincount(y[alone == k]).tolist() for k in range(4)] == [[2, 4]] * 4
    np.testing.assert_array_equal(alone, assign_folds(y, np.arange(24).astype(str), ("a", "b"), 4, seed=1))
    just = assign_folds(np.array([0, 1, 0, 1]), np.array(["p", "p", "q", "q"]), ("a", "b"), 2, seed=0)
    assert sorted(just.tolist()) == [0, 0, 1, 1] and not leaks(np.array(["p", "p", "q", "q"]), just)


@pytest.mark.parametrize("targets", [np.array([0, 1, 0, 1, 0, 1, 1, 1]),
                                     np.array([[1, 0], [0, 1], [1, 0], [0, 1], [1, 0], [0, 1], [0, 1], [0, 1]])])
def test_a_class_whose_clips_are_all_in_one_group_stops_naming_the_class_and_its_groups(targets):
    """Enough clips, but every clip of class 'a' is of recording r1 (or every one of class 'b' of r2, as with two
    groups and two folds): the fold holding them is scored by a model that never saw the class. That used to run and
    report the class's recall as 0.000; now one line names the class, its group and what the split needs."""
    groups = np.array(["r1", "r2", "r1", "r3", "r1", "r4", "r5", "r6"])
    with pytest.raises(ConfigError) as caught:
        assign_folds(targets, groups, ("a", "b"), 3, seed=0, field="cv_folds")
    assert str(caught.value) == ("cv_folds: class 'a' has its 3 clips in 1 group(s) (r1), all in one fold, so the "
                                 "model scoring them never learns 'a'; grouped cross-validation needs its clips in 2 "
                                 "groups or more")
    with pytest.raises(ConfigError, match=r"^folds: class 'a' has its 2 clips in 1 group\(s\) \(p\), all in one"):
        assign_folds(np.array([0, 1, 0, 1]), np.array(["p", "q", "p", "q"]), ("a", "b"), 2)


def test_assign_folds_errors_name_the_option_the_class_and_the_count():
    with pytest.raises(ConfigError, match=r"^cv_folds: needs at least `cv_folds` groups \(or clips\), the table has "
                                          r"3, got cv_folds=4$"):
        assign_folds(np.array([0, 1, 0, 1]), np.array(["a", "a", "b", "c"]), ("x", "y"), 4, field="cv_folds")
    y = np.array([0, 1, 0, 1, 0, 1, 1])
    with pytest.raises(ConfigError, match=r"^folds: every class needs at least `folds` labelled clips; class 'c' has "
                                          r"0, got folds=3$"):
        assign_folds(y, np.arange(7).astype(str), ("a", "b", "c"), 3)
    with pytest.raises(ConfigError, match=r"class 'a' has 2, got folds=3$"):
        assign_folds(np.array([[1, 1], [1, 1], [0, 1], [0, 1]]), np.arange(4).astype(str), ("a", "b"), 3)


def test_multi_label_folds_spread_every_label_and_the_clips_evenly_over_groups():
    """Iterative stratification: each label's positive clips spread evenly (no fold more than one group of two
    ahead of another), fold sizes too, a group never split, the same folds for the same seed."""
    rng = np.random.default_rng(0)
    n_groups, n_folds = 40, 4
    labels = np.zeros((n_groups, 3), int)
    labels[:8, 0] = 1  # rare label: 8 positive groups
    labels[4:20, 1] = 1
    labels[rng.permutation(n_groups)[:12], 2] = 1
    sizes = np.where(np.arange(n_groups) % 2 == 0, 1, 2)  # groups of one or two clips
    groups = np.repeat([f"g{i:02d}" for i in range(n_groups)], sizes)
    targets = np.repeat(labels, sizes, axis=0)
    folds = assign_folds(targets, groups, ("a", "b", "c"), n_folds, seed=3)
    assert folds.dtype.kind == "i" and not leaks(groups, folds)
    for label in range(3):
        per_fold = np.bincount(folds[targets[:, label] == 1], minlength=n_folds)
        assert per_fold.max() - per_fold.min() <= 2, (label, per_fold)
    clips = np.bincount(folds, minlength=n_folds)
    assert clips.max() - clips.min() <= 2, clips
    np.testing.assert_array_equal(folds, assign_folds(targets, groups, ("a", "b", "c"), n_folds, seed=3))


def test_a_label_left_with_one_positive_group_is_placed_before_more_common_ones():
    """After the rarest label's groups are placed, a label with one positive group left is the rarest to place
    next (not skipped as if it had none): every group gets a fold and each rare label spreads one per fold."""
    labels = np.zeros((14, 3), int)
    labels[:4, 0] = 1  # the rarest label: four groups
    labels[:5, 1] = 1  # four of its five groups go with label 0, one is left
    labels[5:11, 2] = 1  # six groups
    groups = np.array([f"g{i:02d}" for i in range(14)])
    folds = assign_folds(labels, groups, ("a", "b", "c"), 4, seed=0)
    assert sorted(folds[:4].tolist()) == [0, 1, 2, 3] and set(folds.tolist()) == {0, 1, 2, 3}
    assert np.bincount(folds[5:11], minlength=4).max() == 2
