"""Importances on the model's inputs (PCA components) carried back to the original feature columns.

The studies we follow report importances per original feature (per MFCC band, per acoustic index); our models see
each group's standardised PCA components, which mean little to a reader. The preprocessing
(``transform.GroupTransform``) is standardise → project on the components → scale, so:

- **a linear model** (``linear_pattern``): per class, the slope of the group's share of the log-odds on each of
  its standardised columns alone, i.e. their covariance on the training clips: ``(w * s) @ C`` for weights ``w``
  on a group's unit-scaled components of spread ``s`` and unit axes ``C`` (rows). Every kept axis is an
  eigenvector of the columns' covariance, so this is exact, however few components are kept; and it stays within
  the group, so a column is not credited with another group's signal it happens to correlate with. It is the
  model's "activation pattern" (Haufe et al., 2014), not its coefficients with the other columns held fixed
  (``(w / s) @ C``, the same model written on the columns): on correlated columns those are ill-defined, and the
  near-empty directions the PCA keeps at unit scale inflate them. On ``tests/test_importances.py``'s binary table,
  whose labels follow one column, the coefficients ranked that column 6th and 4th in two of three seeds (a column
  without signal first, at 10.2 and 4.9 against its 2.4 and 3.2); the pattern ranked it first in all three.
- **a forest** (``spread_by_loadings``): impurity (Gini) importance has no such algebra, so each component's
  importance is shared among the columns by its squared loadings ``C[j, i] ** 2``. A component's loadings are a
  unit vector, so the shares of one component sum to 1 and the columns' importances to the components' total. The
  rule says what the trees weighed, spread over what each component is made of: a component that mixes ten
  correlated columns credits all ten, by their share. Permutation importance on the original columns was the
  alternative; it needs the raw rows again and a prediction per column and repeat (hundreds of MPS cells), and on
  the clips the model was fitted on it measures memorised detail as much as use.

Numpy only, on the fitted transforms: the train report (``jobs/train/explain.py``) calls these.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from acoustic_env.learn.transform import GroupTransform


def _by_group(transforms: Sequence[GroupTransform], values: np.ndarray,
              per_group: Callable[[GroupTransform, np.ndarray], np.ndarray]) -> np.ndarray:
    """``per_group(transform, its slice of the last axis of values)`` side by side, in the transforms' order."""
    out, start = [], 0
    for t in transforms:
        out.append(per_group(t, values[..., start:start + t.n_components]))
        start += t.n_components
    if start != values.shape[-1]:
        raise ValueError(f"{values.shape[-1]} model inputs, but the transforms make {start} components")
    return np.concatenate(out, axis=-1)


def linear_pattern(transforms: Sequence[GroupTransform], weights: np.ndarray) -> np.ndarray:
    """``weights`` [outputs, components] of a linear model on the transforms' outputs → [outputs, columns]: the
    covariance of each group's standardised original columns with the group's share of each output's log-odds on
    the training clips."""
    return _by_group(transforms, np.atleast_2d(weights),
                     lambda t, w: (w * t.out_scale) @ t.components.astype(np.float64))


def spread_by_loadings(transforms: Sequence[GroupTransform], values: np.ndarray) -> np.ndarray:
    """One non-negative value per component (a forest's impurity importances) shared among the original columns
    by each component's squared loadings; the total is kept."""
    return _by_group(transforms, np.asarray(values, dtype=np.float64),
                     lambda t, v: v @ t.components.astype(np.float64) ** 2)
