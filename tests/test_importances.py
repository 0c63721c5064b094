"""Importances per original feature (learn/importances.py, jobs/train/explain.py: importances): the linear models'
coefficients and the forest's impurity importances carried back through the per-group PCA to the original columns.

Real PCA (``learn.preprocess.fit_group``) and real fitted zoo models; the tables are built so that the answer is
known: one original column carries the classes, and the columns are mixed so that every component is made of
several of them.
"""

from __future__ import annotations

import numpy as np
import pytest

from acoustic_env.jobs.train.explain import importances
from acoustic_env.learn.importances import linear_pattern, spread_by_loadings
from acoustic_env.learn.preprocess import fit_group
from acoustic_env.learn.transform import transform_all
from acoustic_env.learn.zoo import make_estimator
from acoustic_env.table import GroupInfo

INFOS = [GroupInfo("indices_raw", 6, "indices", names=("ACI", "H", "NDSI", "BI", "ADI", "Ht")),
         GroupInfo("mps_raw", 8, "mps", grid=(2, 4),
                   axes={"wf_cycles_per_hz": [0.0, 0.001], "wt_hz": [-10.0, 0.0, 10.0, 20.0]})]
SIGNAL = ("mps_raw", 5)  # the column the classes follow: the second group's, so that a group offset shows


def _table(n: int, kind: str, seed: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Raw columns of mixed units, correlated within each group, and labels that follow ``SIGNAL`` alone."""
    rng = np.random.default_rng(seed)
    raw = {}
    for info in INFOS:
        mixing = np.eye(info.dim) + 0.5 * rng.standard_normal((info.dim, info.dim))
        raw[info.name] = (rng.standard_normal((n, info.dim)) @ mixing) * np.exp(rng.uniform(-3, 4, info.dim))
    column = raw[SIGNAL[0]][:, SIGNAL[1]]
    s = (column - column.mean()) / column.std() + 0.3 * rng.standard_normal(n)
    if kind == "multi_label":  # two labels, both on the signal column: above and below its tails
        return raw, np.stack([s > 0.5, s < -0.5], axis=1).astype(np.int64)
    return raw, (np.digitize(s, [-0.6, 0.6]) if kind == "single_label" else (s > 0).astype(np.int64))


def _fitted(raw: dict[str, np.ndarray], components: int, seed: int = 0):
    transforms = [fit_group(raw[i.name], components, i.name, seed) for i in INFOS]
    return transforms, transform_all(transforms, raw)


def test_the_linear_pattern_is_the_covariance_of_each_column_with_its_groups_log_odds():
    """``linear_pattern`` is exact: on the training clips, each standardised original column's covariance with its
    group's share of the logistic regression's log-odds, with fewer components kept than columns (the map goes
    through the projection, the scaling, and the model's own scaler)."""
    raw, y = _table(300, "binary")
    transforms, x = _fitted(raw, 4)
    model = make_estimator("logreg", "single_label", 2).fit(x, y).model_
    weights = model[-1].coef_[0] / model[0].scale_
    pattern = linear_pattern(transforms, weights[None, :])
    assert pattern.shape == (1, 14)
    start = column = 0
    for t in transforms:
        standardised = (raw[t.group] - t.in_mean) / t.in_scale
        share = x[:, start:start + t.n_components] @ weights[start:start + t.n_components]
        covariance = (standardised - standardised.mean(axis=0)).T @ (share - share.mean()) / len(share)
        assert np.allclose(pattern[0, column:column + len(covariance)], covariance, atol=1e-4), t.group
        start, column = start + t.n_components, column + len(covariance)


def test_spreading_by_squared_loadings_keeps_the_total_and_each_components_share():
    """Every component's importance lands on the columns in proportion to its squared loadings: one component with
    importance alone gives the columns exactly its loadings squared, and the total is kept."""
    raw, _ = _table(200, "binary")
    transforms, _ = _fitted(raw, 3)
    only = np.zeros(6)
    only[4] = 0.7  # the second group's second component
    spread = spread_by_loadings(transforms, only)
    assert spread.sum() == pytest.approx(0.7)
    assert np.allclose(spread[:6], 0) and np.allclose(spread[6:], 0.7 * transforms[1].components[1] ** 2)


@pytest.mark.parametrize("kind, seed", [("binary", 1), ("binary", 2), ("single_label", 3), ("multi_label", 2)])
def test_the_column_the_labels_follow_ranks_first_once_mapped_back(kind, seed):
    """On a table whose classes follow one original column (mixed with its neighbours by the PCA), logreg,
    elasticnet and the forest each rank that column first among the original features, named as the table names
    it, and for seeds where the linear models' coefficients (other columns held fixed) put a noise column first.
    The linear models' pattern stands well clear; the forest's shares by squared loadings also credit the columns
    mixed into the same components, so it only has to rank first."""
    raw, y = _table(400, kind, seed=seed)
    transforms, x = _fitted(raw, 8)
    task = "multi_label" if kind == "multi_label" else "single_label"
    k = y.shape[1] if kind == "multi_label" else int(y.max()) + 1
    expected = INFOS[1].feature_names()[SIGNAL[1]]
    for name, overrides in (("logreg", {}), ("elasticnet", {}), ("forest", {"n_estimators": 60})):
        found = importances(make_estimator(name, task, k, **overrides).fit(x, y), transforms, top=5, infos=INFOS)
        assert found["features"][0][0] == expected, (name, found["features"])
        if name != "forest":  # exact for the linear models; the forest's shares credit a component's other columns
            assert found["features"][0][1] > 1.5 * found["features"][1][1], (name, found["features"])
        assert found["features_method"] and len(found["features"]) == 5
    assert "features" not in importances(make_estimator("logreg", task, k).fit(x, y), transforms)  # no infos given
