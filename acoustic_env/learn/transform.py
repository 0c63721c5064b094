"""The fitted preprocessing as plain arrays: standardise → project on PCA components → scale.

Kept free of scikit-learn (numpy only) so that a saved model can be applied on
a machine with nothing but numpy, torch, pyarrow and fsspec, and saved as
arrays (``.npz`` + JSON) rather than pickles, which are unsafe to load.
The whole map is affine, ``x @ A + b``, which is what lets SHAP attributions
on the network's inputs be carried back to the original feature names.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ARRAYS = ("in_mean", "in_scale", "components", "out_mean", "out_scale", "explained_variance_ratio")


@dataclass(frozen=True)
class GroupTransform:
    """One feature group's preprocessing, fitted on the training split.

    ``components``: [k, d] PCA axes in the standardised input space.
    ``out_mean``/``out_scale``: mean and spread of the projections on the training split.
    """

    group: str
    in_mean: np.ndarray
    in_scale: np.ndarray
    components: np.ndarray
    out_mean: np.ndarray
    out_scale: np.ndarray
    explained_variance_ratio: np.ndarray

    @property
    def n_components(self) -> int:
        return int(self.components.shape[0])

    def affine(self) -> tuple[np.ndarray, np.ndarray]:
        """(A [d, k], b [k]) with ``transform(x) == x @ A + b``."""
        a = (self.components / self.in_scale[None, :]).T / self.out_scale[None, :]
        b = (-(self.in_mean / self.in_scale) @ self.components.T - self.out_mean) / self.out_scale
        return a.astype(np.float32), b.astype(np.float32)

    def transform(self, x: np.ndarray) -> np.ndarray:
        """``x @ A + b``, summed in float64: raw features reach 1e8, and a float32 sum of such products depends
        on the BLAS kernel the batch's shape picks (a clip alone and in a batch differed by 1e-5 in probability)."""
        a, b = self.affine()
        return (np.asarray(x, dtype=np.float64) @ a.astype(np.float64) + b).astype(np.float32)

    def output_names(self) -> list[str]:
        return [f"{self.group}:pc{j + 1}" for j in range(self.n_components)]


def transform_all(transforms: list[GroupTransform], matrices: dict[str, np.ndarray]) -> np.ndarray:
    """The network's input: every group's components side by side, in the transforms' order."""
    return np.hstack([t.transform(matrices[t.group]) for t in transforms]).astype(np.float32)


def to_arrays(transforms: list[GroupTransform]) -> dict[str, np.ndarray]:
    return {f"{t.group}/{name}": getattr(t, name) for t in transforms for name in ARRAYS}


def from_arrays(groups: list[str], arrays: dict[str, np.ndarray]) -> list[GroupTransform]:
    return [GroupTransform(group=g, **{name: np.asarray(arrays[f"{g}/{name}"]) for name in ARRAYS}) for g in groups]


def columns_of(transforms: list[GroupTransform], groups: list[str]) -> np.ndarray:
    """Where ``groups``' components sit in ``transform_all``'s output (in the transforms' order): the model inputs a
    member of an average reads when it chose a feature set of its own (``learn.portable.Average``)."""
    ends = np.cumsum([t.n_components for t in transforms])
    at = {t.group: np.arange(end - t.n_components, end) for t, end in zip(transforms, ends)}
    unknown = [g for g in groups if g not in at]
    if unknown:
        raise ValueError(f"no preprocessing for group(s) {', '.join(unknown)} (has: {', '.join(at)})")
    picked = [at[t.group] for t in transforms if t.group in groups]
    return np.concatenate(picked) if picked else np.empty(0, np.int64)
