"""The per-group preprocessing fitted on the training rows (``learn/preprocess.py``): standardise → PCA → scale, in
memory (``fit_group``) and over a streamed table (``fit_streaming``), on small arrays against scikit-learn's own."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler

from acoustic_env.learn.preprocess import ROWS_PER_COMPONENT, component_cap, fit_group, fit_streaming, n_components_for
from acoustic_env.learn.transform import ARRAYS
from acoustic_env.table import GroupInfo


def low_rank(n: int, dim: int, rank: int, seed: int = 0) -> np.ndarray:
    """``n`` rows in ``dim`` columns of very different scales, nearly all their spread in ``rank`` directions."""
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=(n, rank)) * np.arange(rank, 0, -1) @ rng.normal(size=(rank, dim))
    return ((signal + 0.05 * rng.normal(size=(n, dim))) * 10.0 ** np.arange(dim) + 3.0).astype(np.float32)


def test_a_count_is_capped_by_the_columns_and_the_training_rows_and_a_fraction_passes_through():
    assert n_components_for(0.9, 100, 10) == 0.9
    assert n_components_for(5, 100, 10) == 5
    assert n_components_for(20, 100, 10) == 10  # no more than the group's columns
    assert ROWS_PER_COMPONENT == 4
    assert n_components_for(20, 57, 50) == 14  # nor than one per 4 training rows, centred: (57 - 1) // 4
    assert n_components_for(200, 193, 1024) == component_cap(193, 1024) == 48  # BirdNET on a 240-clip outer fold
    assert n_components_for(20, 8, 50) == 1
    assert n_components_for(0, 100, 10) == n_components_for(3, 1, 10) == 1  # at least one
    one = n_components_for(1.0, 100, 10)  # a float of 1 or more is a count
    assert one == 1 and isinstance(one, int)


def test_a_group_is_standardised_projected_on_its_leading_components_and_scaled_on_the_training_rows():
    x = low_rank(200, 6, 3)
    t = fit_group(x, 3, "g")
    assert t.group == "g" and t.n_components == 3
    assert all(getattr(t, name).dtype == np.float32 for name in ARRAYS)  # what the artifact saves, half the size
    assert t.in_mean.shape == t.in_scale.shape == (6,) and t.out_mean.shape == t.out_scale.shape == (3,)
    np.testing.assert_allclose(t.in_mean, x.mean(axis=0, dtype=np.float64), rtol=1e-5)
    np.testing.assert_allclose(t.in_scale, x.std(axis=0, dtype=np.float64), rtol=1e-5)
    ref = PCA(3).fit(StandardScaler().fit_transform(x.astype(np.float64)))
    np.testing.assert_allclose(np.abs(t.components), np.abs(ref.components_), atol=1e-4)
    np.testing.assert_allclose(t.explained_variance_ratio, ref.explained_variance_ratio_, rtol=1e-4)
    out = t.transform(x)
    np.testing.assert_allclose(out.mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(out.std(axis=0), 1, rtol=1e-4)  # each input the same spread on the training rows
    share = fit_group(x, 0.9, "g").explained_variance_ratio  # a fraction: the fewest components that reach it
    assert share.sum() >= 0.9 > share[:-1].sum()


def test_a_component_without_spread_on_the_training_rows_is_left_unscaled_not_blown_up():
    """A group whose training rows span fewer directions than the components asked (a column that doubles
    another): the last component's spread is rounding, and dividing by it made every clip's input millions."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 5))
    x[:, 4] = 2 * x[:, 3]
    t = fit_group(x, 8, "g")
    assert t.n_components == 5 and t.out_scale[-1] == 1 and (t.out_scale[:-1] != 1).all()
    other = rng.normal(size=(20, 5))
    other[:, 4] = 2 * other[:, 3]
    assert np.abs(t.transform(other)).max() < 10
    assert np.abs(t.transform(x)[:, -1]).max() < 1e-3  # the training rows too: an input of ~0, as it carries nothing


@pytest.mark.filterwarnings("ignore:invalid value encountered in divide:RuntimeWarning")  # PCA's 0/0 variance share
def test_a_group_constant_on_the_training_rows_gives_inputs_of_zero_not_nan():
    t = fit_group(np.full((10, 3), 2.5, dtype=np.float32), 2, "g")
    assert (t.out_scale == 1).all() and (t.transform(np.full((4, 3), 2.5)) == 0).all()


def test_the_seed_makes_a_large_groups_randomised_pca_repeatable():
    """600 columns, 10 components: scikit-learn's randomised solver, whose draws the seed fixes."""
    x = np.random.default_rng(4).normal(size=(600, 600)).astype(np.float32)
    a, b, c = fit_group(x, 10, "g"), fit_group(x, 10, "g", seed=0), fit_group(x, 10, "g", seed=1)
    assert np.array_equal(a.components, b.components)
    assert not np.array_equal(a.components, c.components)


def batches(matrices: dict[str, np.ndarray], sizes: list[int]) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
    """A table's stream: (positions, {group: rows}) batches of ``sizes`` rows, every row once."""
    start = 0
    for size in sizes:
        pos = np.arange(start, start + size)
        yield pos, {name: m[pos] for name, m in matrices.items()}
        start += size


@pytest.mark.parametrize("n_rows, sizes", [(300, [40, 100, 160]), (3200, [400] * 8)])
def test_streaming_fits_what_the_matrices_in_memory_fit(n_rows, sizes):
    """Three passes over the batches (the table never in memory) give the in-memory fit on the training rows,
    a batch without a training row included; 3200 rows: the principal axes updated batch by batch."""
    mats = {"a": low_rank(n_rows, 6, 3, seed=1), "b": low_rank(n_rows, 5, 2, seed=2)}
    groups = [GroupInfo("a", 6, "test"), GroupInfo("b", 5, "test")]
    is_train = np.arange(n_rows) % 4 != 0
    is_train[:40] = False  # the first batch scores only
    targets = {"a": 3, "b": 0.9}
    transforms, projected = fit_streaming(lambda: batches(mats, sizes), groups, targets, is_train, n_rows)
    assert [t.group for t in transforms] == ["a", "b"] and list(projected) == ["a", "b"]
    for t in transforms:
        ref = fit_group(mats[t.group][is_train], targets[t.group], t.group)
        assert t.n_components == ref.n_components
        assert all(getattr(t, name).dtype == np.float32 for name in ARRAYS)
        np.testing.assert_allclose(t.in_mean, ref.in_mean, rtol=1e-4)
        np.testing.assert_allclose(t.in_scale, ref.in_scale, rtol=1e-4)
        np.testing.assert_allclose(np.abs(t.components), np.abs(ref.components), atol=1e-2)
        np.testing.assert_allclose(t.explained_variance_ratio, ref.explained_variance_ratio, rtol=1e-2)
        out = t.transform(mats[t.group])
        assert projected[t.group].dtype == np.float32 and projected[t.group].shape == out.shape
        np.testing.assert_allclose(projected[t.group], out, atol=1e-3)  # every row, scored or trained on
        np.testing.assert_allclose(out[is_train].mean(axis=0), 0, atol=1e-3)
        np.testing.assert_allclose(out[is_train].std(axis=0), 1, atol=1e-3)  # scaled on the training rows only


@pytest.mark.parametrize("rows, kept", [(57, 14), (20, 4)])
def test_a_fraction_of_a_group_wider_than_its_training_rows_keeps_what_the_rows_support(rows, kept):
    """30 columns: 0.999 of the variance needs every component, and 57 training rows carry 14 of them, 20 rows 4
    (fewer rows than columns: the streamed fit fits no more components than the rows hold), in memory and streamed."""
    x = np.random.default_rng(3).normal(size=(rows, 30)).astype(np.float32)
    transforms, _ = fit_streaming(lambda: batches({"w": x}, [rows]), [GroupInfo("w", 30, "test")], {"w": 0.999},
                                  np.ones(rows, dtype=bool), rows)
    assert transforms[0].n_components == fit_group(x, 0.999, "w").n_components == kept


@pytest.mark.parametrize("target", [20, 0.999])
def test_a_rule_of_one_component_per_row_keeps_what_the_rows_carry_past_the_defaults(target):
    """48 rows of 30 columns: one component per 4 rows keeps 11 ((48 - 1) // 4), one per row 20 (the count) or
    all 30 (the fraction)."""
    x = np.random.default_rng(4).normal(size=(48, 30)).astype(np.float32)
    assert fit_group(x, target, "g").n_components == 11
    assert fit_group(x, target, "g", rows_per_component=1).n_components == (20 if target == 20 else 30)


@pytest.mark.parametrize("sizes", [[2048], [2048, 4]])
def test_streaming_fits_when_the_buffer_is_emptied_by_the_last_batch_or_leaves_fewer_rows_than_columns(sizes):
    """2048 rows fill the buffer, which is fitted: nothing left after, or 4 rows, fewer than the 6 columns but
    enough to update the 2 components asked for."""
    n_rows = sum(sizes)
    x = low_rank(n_rows, 6, 2, seed=5)
    transforms, projected = fit_streaming(lambda: batches({"a": x}, sizes), [GroupInfo("a", 6, "test")], {"a": 2},
                                          np.ones(n_rows, dtype=bool), n_rows)
    ref = fit_group(x, 2, "a")
    np.testing.assert_allclose(transforms[0].explained_variance_ratio, ref.explained_variance_ratio, rtol=1e-2)
    np.testing.assert_allclose(np.abs(projected["a"]), np.abs(ref.transform(x)), atol=1e-2)


@pytest.fixture
def empty_cache(monkeypatch) -> None:
    """No fit kept from an earlier test: each fit here is computed, or reused from this test's own."""
    from acoustic_env.learn import preprocess

    monkeypatch.setattr(preprocess, "_CACHE", type(preprocess._CACHE)())


def _groups(n: int = 40, seed: int = 0):
    """``n`` clips of three groups (``a``: 6 columns, ``b``: 3, ``c``: 2), as the table's reader gives them, and
    their raw matrix."""
    from acoustic_env.table import FeatureSet

    x = {"a": low_rank(n, 6, 3, seed), "b": low_rank(n, 3, 2, seed + 1), "c": low_rank(n, 2, 1, seed + 2)}
    info = tuple(GroupInfo(name, m.shape[1], name, "raw", None) for name, m in x.items())
    features = FeatureSet(None, None, info, x, np.zeros(n, int), None, True, {"rows": {}, "columns": {}}, n)
    return features, np.hstack(list(x.values()))


def test_the_step_reads_each_group_from_its_columns_of_the_raw_matrix_in_the_tables_order(empty_cache):
    from acoustic_env.learn.preprocess import Preprocessing, Slot, raw_matrix

    features, raw = _groups()
    prep = Preprocessing.of(features, {"c": 1, "b": 2, "a": 0.9}, seed=3).only(["a", "b"])
    assert prep.slots == (Slot("a", 0, 6, 0.9), Slot("b", 6, 9, 2)) and prep.seed == 3
    assert Preprocessing.of(features, {"c": 1, "b": 2, "a": 0.9}).slots[-1] == Slot("c", 9, 11, 1)
    assert prep.groups == ("a", "b") and prep.rule == ROWS_PER_COMPONENT
    matrix = raw_matrix(features)
    assert matrix.dtype == np.float32
    np.testing.assert_array_equal(matrix, raw)
    raw = raw[:, :9]
    transforms = prep.fit(raw)
    assert [t.group for t in transforms] == ["a", "b"] and transforms[1].n_components == 2
    x = prep.transform(transforms, raw)
    assert x.dtype == np.float32 and x.shape == (40, transforms[0].n_components + 2)
    np.testing.assert_array_equal(x, np.hstack([transforms[0].transform(raw[:, :6]), transforms[1].transform(raw[:, 6:])]))
    # a feature set: the same columns of the same raw matrix, whatever order it names its groups in
    alone = prep.only(["b"])
    assert alone.slots == (Slot("b", 6, 9, 2),) and alone.seed == 3
    assert prep.only(["b", "a"]).slots == prep.slots
    np.testing.assert_array_equal(alone.transform(alone.fit(raw), raw), x[:, -2:])
    with pytest.raises(ValueError, match=r"^no preprocessing for group\(s\) c, d \(has: a, b\)$"):
        prep.only(["d", "a", "c"])


def test_a_fit_is_each_groups_own_and_reused_only_for_the_same_rows_target_seed_and_rule(empty_cache):
    from acoustic_env.learn.preprocess import Preprocessing, Slot

    features, raw = _groups(48)
    prep = Preprocessing.of(features, {"a": 5, "b": 2, "c": 1}).only(["a", "b"])
    first = prep.fit(raw)
    expected = fit_group(raw[:, :6], 5, "a", 0, ROWS_PER_COMPONENT)
    assert first[0].group == "a" and first[1].group == "b"
    for name in ARRAYS:
        np.testing.assert_array_equal(getattr(first[0], name), getattr(expected, name))
    big = np.random.default_rng(4).normal(size=(600, 600)).astype(np.float32)  # the randomised PCA: the step's seed
    seeded = Preprocessing((Slot("a", 0, 600, 10),), seed=5).fit(big)[0]
    np.testing.assert_array_equal(seeded.components, fit_group(big, 10, "a", seed=5).components)
    assert Preprocessing((Slot("a", 0, 6, 40),)).with_rule(1).fit(raw)[0].n_components == 6
    assert all(a is b for a, b in zip(prep.fit(raw.copy()), first))  # the same rows' content: the same fit
    assert prep.fit(raw[:40])[0] is not first[0]
    assert Preprocessing((Slot("a", 0, 6, 4),)).fit(raw)[0].n_components == 4
    assert Preprocessing((Slot("a", 0, 6, 5),), seed=1).fit(raw)[0] is not first[0]
    assert Preprocessing((Slot("b", 6, 9, 2),)).fit(raw)[0] is first[1]
    renamed = Preprocessing((Slot("z", 6, 9, 2),)).fit(raw)[0]
    assert renamed.group == "z" and renamed is not first[1]
    ruled = prep.with_rule(8)
    assert ruled.rule == 8 and ruled.slots == prep.slots and prep.rule == ROWS_PER_COMPONENT
    assert ruled.fit(raw)[0].n_components == 5 and ruled.fit(raw)[0] is not first[0]
    assert prep.with_rule(16).fit(raw)[0].n_components == 2  # (48 - 1) // 16


def test_the_fits_kept_are_the_last_used_and_no_more_than_the_cache_holds(empty_cache, monkeypatch):
    from acoustic_env.learn import preprocess
    from acoustic_env.learn.preprocess import Preprocessing, Slot

    monkeypatch.setattr(preprocess, "CACHE_SIZE", 2)
    prep = Preprocessing((Slot("a", 0, 3, 2),))
    rows = [low_rank(20, 3, 2, seed) for seed in range(3)]
    kept = prep.fit(rows[0])[0]
    prep.fit(rows[1])
    assert prep.fit(rows[0])[0] is kept  # used again: now the most recent
    prep.fit(rows[2])  # one over the size: the least recently used (rows[1]'s) goes
    assert len(preprocess._CACHE) == 2 and prep.fit(rows[0])[0] is kept
    assert len(preprocess._CACHE) == 2


def test_the_count_rules_tried_are_those_that_keep_other_counts_this_ones_first(tuned_pca_rules):
    from acoustic_env.learn import preprocess
    from acoustic_env.learn.preprocess import Preprocessing, Slot, component_rule

    assert preprocess.RULES == (1, ROWS_PER_COMPONENT)
    wide = Preprocessing((Slot("a", 0, 64, 64), Slot("b", 64, 66, 2)))
    assert wide.rules(49) == (ROWS_PER_COMPONENT, 1)  # 12 components against 48
    assert wide.with_rule(1).rules(49) == (1, ROWS_PER_COMPONENT)
    assert wide.with_rule(2).rules(49) == (2, 1, ROWS_PER_COMPONENT)
    assert wide.rules(1000) == (ROWS_PER_COMPONENT,)  # no rule cuts a target: nothing to search
    # a fraction's count is cut wherever a rule caps below the group's columns
    assert Preprocessing((Slot("a", 0, 64, 0.9),)).rules(200) == (ROWS_PER_COMPONENT, 1)  # 49 against 64
    assert Preprocessing((Slot("a", 0, 64, 0.9),)).rules(2000) == (ROWS_PER_COMPONENT,)
    assert Preprocessing((Slot("a", 0, 8, 2),)).rules(9) == (ROWS_PER_COMPONENT,)  # 2 either way
    assert Preprocessing((Slot("a", 0, 8, 2),)).rules(8) == (ROWS_PER_COMPONENT, 1)  # 1 against 2
    # a group's width is its own columns', wherever they start; a float of 1 or more is a count, not a fraction
    assert Preprocessing((Slot("z", 0, 8, 8), Slot("a", 8, 72, 0.9))).rules(200) == (ROWS_PER_COMPONENT, 1)
    assert Preprocessing((Slot("z", 0, 8, 8), Slot("a", 8, 72, 0.9))).rules(300) == (ROWS_PER_COMPONENT,)  # 64
    assert Preprocessing((Slot("z", 0, 8, 2), Slot("a", 8, 16, 20))).rules(20) == (ROWS_PER_COMPONENT, 1)
    assert Preprocessing((Slot("z", 0, 8, 2), Slot("a", 8, 16, 20))).rules(60) == (ROWS_PER_COMPONENT,)  # 8
    assert Preprocessing((Slot("a", 0, 64, 1.0),)).rules(200) == (ROWS_PER_COMPONENT,)
    assert Preprocessing((Slot("a", 0, 64, 2.0),)).rules(200) == (ROWS_PER_COMPONENT,)
    words = component_rule()
    assert f"R is {ROWS_PER_COMPONENT}" in words and "chosen among 1, 4 on the inner folds" in words
