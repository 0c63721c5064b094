"""The rules of ``learn.splits`` that ``test_splits.py`` leaves open: a label matrix held out without groups (by
label presence, as with groups), the one line that names a class's groups when they all share one fold, and the
grouped hold-out's warnings (only scikit-learn's tiny-class one silenced).

Fast (no table, no model): ``make mutate`` runs these against every mutant of the module.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import numpy as np
import pytest
from test_multilabel_parity import RARE, _rare_label_table

from acoustic_env.config import ConfigError
from acoustic_env.learn import splits
from acoustic_env.learn.splits import TEST, VAL, _check_spread, _held_out, assign_splits, strata


@pytest.mark.parametrize("seed", range(4))
def test_a_label_matrix_without_groups_is_held_out_by_label_presence(seed):
    """Every clip its own unit: the held-out fifth holds each label within one clip of its share, the rare label
    (15 clips, 3 expected) included, and exactly a fifth of the clips; a split by label pattern (most patterns
    unique, so a plain shuffle) misses the rare label by two or more, and a common one by up to eight."""
    y, _ = _rare_label_table(seed)
    held = _held_out(y, None, 0.2, seed)
    assert held.dtype == bool and held.sum() == 48
    np.testing.assert_array_less(np.abs(y[held].sum(axis=0) - 0.2 * y.sum(axis=0)), 1)
    np.testing.assert_array_equal(held, _held_out(y, None, 0.2, seed))


def test_an_ungrouped_multi_label_split_holds_the_rare_label_in_test_and_validation():
    """``assign_splits`` on a label matrix without groups: test a fifth, validation a fifth of the rest, each with
    the rare label at its share (15 x 0.2 = 3, 12 x 0.2 = 2.4) to a clip."""
    for seed in range(3):
        y, _ = _rare_label_table(seed)
        split = assign_splits(strata(y), None, None, 0.2, 0.2, seed)
        assert (split == TEST).sum() == 48 and abs((split == VAL).sum() - 38.4) < 1
        assert y[split == TEST, RARE].sum() == 3 and 2 <= y[split == VAL, RARE].sum() <= 3, seed


def _one_fold_class_error(n_groups: int) -> str:
    """The error for class 'a' on ``n_groups`` groups of two clips, all in fold 0 (class 'b' in both folds)."""
    groups = np.repeat([f"r{i}" for i in range(n_groups)] + ["s0", "s1"], 2)
    targets = np.array([0] * 2 * n_groups + [1] * 4)
    fold = np.array([0] * 2 * n_groups + [0, 0, 1, 1])
    with pytest.raises(ConfigError) as caught:
        _check_spread(targets, groups, fold, ("a", "b"), "cv_folds")
    return str(caught.value)


def test_a_one_fold_class_names_its_first_three_groups_and_marks_more():
    """Up to three groups are all named; of more, the first three and ``...``, so the line stays one line."""
    assert _one_fold_class_error(3).startswith("cv_folds: class 'a' has its 6 clips in 3 group(s) (r0, r1, r2), all "
                                               "in one fold")
    assert _one_fold_class_error(4).startswith("cv_folds: class 'a' has its 8 clips in 4 group(s) (r0, r1, r2, ...), "
                                               "all in one fold")


def test_a_grouped_hold_out_silences_only_scikit_learns_tiny_class_warning(monkeypatch):
    """The grouped splitter's UserWarning ("least populated class has only N members") is no business of the user's;
    any other warning it raises (a deprecation, say) still reaches the caller, not swallowed with it."""

    class Warns(splits.StratifiedGroupKFold):
        """scikit-learn's splitter, warning twice before it splits: the tiny-class warning and another."""

        def split(self, *args: object, **kwargs: object) -> Iterator[tuple[np.ndarray, np.ndarray]]:
            warnings.warn("least populated class has only 1 members", UserWarning)
            warnings.warn("a parameter is deprecated", FutureWarning)
            return super().split(*args, **kwargs)

    monkeypatch.setattr(splits, "StratifiedGroupKFold", Warns)
    groups = np.repeat([f"g{i}" for i in range(10)], 2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert _held_out(np.array(["0", "1"] * 10), groups, 0.2, 0).sum() == 4
    assert [w.category for w in caught] == [FutureWarning]
