"""The fitted preprocessing as plain arrays (``learn/transform.py``): the affine map each group applies, the model's
inputs side by side, the arrays the artifact saves, and where a group's components sit among the inputs."""

from __future__ import annotations

import numpy as np
import pytest

from acoustic_env.learn.transform import ARRAYS, GroupTransform, columns_of, from_arrays, to_arrays, transform_all


def group(name: str, k: int, d: int, seed: int = 0) -> GroupTransform:
    """A group of ``d`` inputs and ``k`` components whose every array differs from 0 and 1 (so that a swapped or
    dropped term shows), float32 as ``learn.preprocess`` fits them."""
    rng = np.random.default_rng(seed)
    f32 = lambda *shape, lo=-2.0, hi=2.0: rng.uniform(lo, hi, shape).astype(np.float32)  # noqa: E731
    return GroupTransform(name, in_mean=f32(d, lo=1, hi=5), in_scale=f32(d, lo=0.5, hi=3),
                          components=f32(k, d), out_mean=f32(k), out_scale=f32(k, lo=0.5, hi=3),
                          explained_variance_ratio=f32(k, lo=0, hi=0.3))


def test_a_group_standardises_projects_and_scales_and_its_affine_map_is_the_same():
    t = group("g", 2, 3)
    x = np.random.default_rng(1).normal(size=(5, 3))
    want = (((x - t.in_mean) / t.in_scale) @ t.components.astype(np.float64).T - t.out_mean) / t.out_scale
    np.testing.assert_allclose(t.transform(x), want, rtol=1e-5, atol=1e-5)
    a, b = t.affine()
    assert a.shape == (3, 2) and b.shape == (2,) and a.dtype == b.dtype == np.float32  # SHAP's map, float32 inputs
    np.testing.assert_allclose(x @ a + b, want, rtol=1e-5, atol=1e-5)
    assert t.transform(x).dtype == np.float32 and t.n_components == 2
    assert t.output_names() == ["g:pc1", "g:pc2"]


def test_raw_features_of_1e8_are_summed_in_float64_so_a_clip_scores_the_same_alone_and_in_a_batch():
    t = group("g", 1, 64)
    x = np.random.default_rng(2).uniform(1e7, 1e8, (3, 64)).astype(np.float32)
    a, b = t.affine()
    exact = (x.astype(np.float64) @ a.astype(np.float64) + b).astype(np.float32)
    np.testing.assert_array_equal(t.transform(x), exact)  # a float32 sum of these products rounds differently
    np.testing.assert_array_equal(t.transform(x[1:2]), exact[1:2])


def test_the_inputs_are_every_groups_components_side_by_side_in_the_transforms_order():
    a, b = group("a", 2, 3, seed=1), group("b", 3, 4, seed=2)
    rng = np.random.default_rng(3)
    matrices = {"b": rng.normal(size=(4, 4)), "a": rng.normal(size=(4, 3))}
    out = transform_all([a, b], matrices)
    assert out.shape == (4, 5) and out.dtype == np.float32
    np.testing.assert_array_equal(out[:, :2], a.transform(matrices["a"]))
    np.testing.assert_array_equal(out[:, 2:], b.transform(matrices["b"]))


def test_the_saved_arrays_are_named_group_slash_array_and_read_back_equal():
    transforms = [group("a", 2, 3, seed=1), group("b", 1, 2, seed=2)]
    arrays = to_arrays(transforms)
    assert sorted(arrays) == sorted(f"{g}/{name}" for g in ("a", "b") for name in ARRAYS)
    np.testing.assert_array_equal(arrays["b/components"], transforms[1].components)
    back = from_arrays(["a", "b"], {k: v.tolist() for k, v in arrays.items()})  # any array-like reads back
    for t, u in zip(transforms, back):
        assert u.group == t.group
        for name in ARRAYS:
            got = getattr(u, name)
            assert isinstance(got, np.ndarray)
            np.testing.assert_array_equal(got, getattr(t, name))


def test_a_member_of_no_group_reads_no_column_as_an_index():
    transforms = [group("a", 2, 3)]
    columns = columns_of(transforms, [])
    assert columns.dtype == np.int64 and np.zeros((4, 2))[:, columns].shape == (4, 0)
    with pytest.raises(ValueError, match=r"^no preprocessing for group\(s\) b, c \(has: a\)$"):
        columns_of(transforms, ["b", "a", "c"])
