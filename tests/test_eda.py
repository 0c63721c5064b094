"""The report's exploratory analysis (``learn.eda``, report section ``#eda``) against direct scipy computations.

Small feature tables in the extract job's schema (``demo.tables``), read back
with ``read_features`` as the train job reads them; every statistic is
recomputed here column by column with scipy (``ttest_ind``, ``spearmanr``) and a
Benjamini-Hochberg written out by hand, so the vectorised code has to agree with
the textbook one. The report test reuses the trained report of
``tests/test_report.py`` and checks the page's tables against the same direct
computation on that run's own feature table.
"""

from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import pyarrow as pa
import pytest
from scipy import stats

from acoustic_env.demo.tables import synthetic_table, write_features
from acoustic_env.jobs.train.report import (
    TOP_DIFFERENCES,
    eda_section,
    map_mistakes,
    mistakes,
)
from acoustic_env.learn import eda
from acoustic_env.learn.preprocess import fit_group
from acoustic_env.table import read_features

CLASSES = ["urban", "natural"]


def bh(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values, written out: p_(i) * m / i, then a running minimum from the top."""
    m = len(p)
    order = np.argsort(p)
    adjusted = np.empty(m)
    running = 1.0
    for rank in range(m, 0, -1):
        i = order[rank - 1]
        running = min(running, p[i] * m / rank)
        adjusted[i] = running
    return adjusted


def hedges(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = len(a), len(b)
    sd = np.sqrt(((na - 1) * np.var(a, ddof=1) + (nb - 1) * np.var(b, ddof=1)) / (na + nb - 2))
    return (np.mean(a) - np.mean(b)) / sd * (1 - 3 / (4 * (na + nb) - 9))


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    """60 clips of a binary task, raw signal only: the indices (60 named values), spectral and MPS groups."""
    out = write_features(synthetic_table(60, seed=5, separation=0.7, signals=("raw",)),
                         str(tmp_path_factory.mktemp("eda") / "extract"))
    return read_features(out, task="urban_natural")


def check_against_scipy(x: np.ndarray, names: list[str], inside: np.ndarray, got: dict) -> None:
    """Every row of ``got`` (a ``differences`` result) equals scipy's per-column Welch test, BH and Hedges' g."""
    x = x.astype(np.float64)
    a, b = x[inside], x[~inside]
    t, p = zip(*(stats.ttest_ind(a[:, j], b[:, j], equal_var=False) for j in range(x.shape[1])))
    q = bh(np.array(p))
    by_name = {r["name"]: r for r in got["rows"]}
    assert sorted(by_name) == sorted(names) and got["n_in"] == len(a) and got["n_out"] == len(b)
    for j, name in enumerate(names):
        r = by_name[name]
        assert r["t"] == pytest.approx(t[j], rel=1e-9)
        assert r["p"] == pytest.approx(p[j], rel=1e-9, abs=1e-300)
        assert r["q"] == pytest.approx(q[j], rel=1e-9, abs=1e-300)
        assert r["g"] == pytest.approx(hedges(a[:, j], b[:, j]), rel=1e-9)
        assert r["mean_in"] == pytest.approx(a[:, j].mean()) and r["mean_out"] == pytest.approx(b[:, j].mean())
    effects = [abs(r["g"]) for r in got["rows"]]
    assert effects == sorted(effects, reverse=True)  # the table's order: largest effect first


def test_hand_computed_bh_and_hedges_g():
    """The two reference formulas of this file, on numbers worked by hand."""
    # p = .01 .04 .03 .005 (m = 4): sorted .005 .01 .03 .04 → ×4/rank .02 .02 .04 .04 (already monotone)
    assert bh(np.array([0.01, 0.04, 0.03, 0.005])) == pytest.approx([0.02, 0.04, 0.04, 0.02])
    # a running minimum is needed here: .02 .03 → ×2/rank .04 .03 → both .03
    assert bh(np.array([0.02, 0.03])) == pytest.approx([0.03, 0.03])
    assert stats.false_discovery_control([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.02, 0.04, 0.04, 0.02])
    # a = 1 2 3 (mean 2, var 1), b = 4 5 6 7 (mean 5.5, var 5/3): pooled sd sqrt((2 + 5) / 5), J = 1 − 3/19
    a, b = np.array([[1.0], [2], [3]]), np.array([[4.0], [5], [6], [7]])
    expected = -3.5 / np.sqrt(7 / 5) * (16 / 19)
    assert hedges(a[:, 0], b[:, 0]) == pytest.approx(expected)
    assert eda.hedges_g(a, b)[0] == pytest.approx(expected)


def test_differences_equal_scipy_for_every_group(table):
    (label, inside), = eda.comparisons("single_label", CLASSES, table.y)
    assert label == "urban vs natural" and inside.sum() == (table.y == 0).sum() == 30
    for g in table.feature_groups:
        got = eda.differences(table.X[g.name], eda.short_names(g), inside)
        check_against_scipy(table.X[g.name], eda.short_names(g), inside, got)
        assert got["constant"] == [] and "skipped" not in got and got["n_values"] == g.dim
    indices = next(g for g in table.feature_groups if g.name == "indices_raw")
    assert {"ACI", "NDSI", "BI"} <= set(eda.short_names(indices))  # the indices' own names, not positions
    mps = next(g for g in table.feature_groups if g.name == "mps_raw")
    assert re.fullmatch(r"wf=\d+\.\d\d/kHz,wt=[+-]\d+Hz", eda.short_names(mps)[5])


def test_correlations_equal_scipy_spearman(table):
    indices = next(g for g in table.feature_groups if g.name == "indices_raw")
    x, names = table.X["indices_raw"], eda.short_names(indices)
    got = eda.correlations(x, names)
    expected = stats.spearmanr(x.astype(np.float64)).statistic
    assert got["names"] == names and got["constant"] == []
    np.testing.assert_allclose(np.asarray(got["matrix"]), expected, atol=2e-6)
    assert sorted(got["order"]) == list(range(len(names)))  # a permutation: the clustered display order
    pairs = [(p["a"], p["b"], p["rho"]) for p in got["top_pairs"]]
    i, j = np.triu_indices(len(names), 1)
    strongest = np.sort(np.abs(expected[i, j]))[::-1][:eda.TOP_PAIRS]
    np.testing.assert_allclose([abs(r) for _, _, r in pairs], strongest, atol=2e-6)
    for a, b, r in pairs:
        assert r == pytest.approx(expected[names.index(a), names.index(b)], abs=2e-6)


def test_one_vs_rest_for_multi_class_and_multi_label(tmp_path):
    three = [["/t/dd00128"], ["/t/dd00129"], ["/m/09x0r"]]  # urban, natural, speech
    classes = ["urban", "natural", "speech"]
    multi = read_features(write_features(synthetic_table(45, three, seed=2, signals=("raw",)), str(tmp_path / "a")),
                          task="labels:/t/dd00128,/t/dd00129,/m/09x0r", feature_groups=["indices_raw"])
    pairs = eda.comparisons("single_label", classes, multi.y)
    assert [p[0] for p in pairs] == ["urban vs rest", "natural vs rest", "speech vs rest"]
    for k, (_, inside) in enumerate(pairs):
        assert np.array_equal(inside, multi.y == k)
        got = eda.differences(multi.X["indices_raw"], eda.short_names(multi.feature_groups[0]), inside)
        check_against_scipy(multi.X["indices_raw"], eda.short_names(multi.feature_groups[0]), inside, got)
    y = np.array([[1, 0], [1, 1], [0, 0], [0, 1]])
    labelled = eda.comparisons("multi_label", CLASSES, y)
    assert [p[0] for p in labelled] == ["urban vs not urban", "natural vs not natural"]
    assert labelled[1][1].tolist() == [False, True, False, True]
    assert eda.class_labels("multi_label", CLASSES, y) == ["urban", "urban+natural", "(none)", "natural"]


def test_constant_columns_non_finite_rows_and_tiny_classes_give_notes_not_errors():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((12, 4))
    x[:, 1] = 3.0  # constant
    x[5, 2] = np.nan
    inside = np.arange(12) < 6
    got = eda.differences(x, ["a", "b", "c", "d"], inside)
    assert got["constant"] == ["b"] and got["non_finite_rows"] == 1 and got["n_in"] == 5
    assert [r["name"] for r in got["rows"]] and "b" not in {r["name"] for r in got["rows"]}
    check_against_scipy(np.delete(x, 5, axis=0)[:, [0, 2, 3]], ["a", "c", "d"], np.delete(inside, 5),
                        {**got, "n_in": 5})
    one = eda.differences(x, ["a", "b", "c", "d"], np.arange(12) == 0)  # a class of one clip
    assert one["rows"] == [] and "at least 2" in one["skipped"]
    corr = eda.correlations(x, ["a", "b", "c", "d"])
    assert corr["constant"] == ["b"] and corr["names"] == ["a", "c", "d"] and corr["non_finite_rows"] == 1
    assert "skipped" in eda.correlations(x[:, :2], ["a", "b"])  # one varying column: nothing to correlate
    assert "at least" in eda.embed_2d(x[:3], seed=0)["skipped"]
    assert len(eda.embed_2d(x[:, :1], seed=0)["xy"]) == 12  # one input dimension (one PCA component): still a map


def test_the_map_is_deterministic_and_adapts_perplexity_to_few_clips():
    rng = np.random.default_rng(1)
    x = np.vstack([rng.normal(0, 1, (6, 80)), rng.normal(4, 1, (6, 80))])
    first, again = eda.embed_2d(x, seed=3), eda.embed_2d(x, seed=3)
    assert first["xy"] == again["xy"] and len(first["xy"]) == 12
    assert first["perplexity"] < 12 and first["pca"] == 12 and first["dims"] == 80  # wide input: PCA first
    xy = np.asarray(first["xy"])
    within = np.linalg.norm(xy[:6].mean(0) - xy[:6], axis=1).mean()
    assert np.linalg.norm(xy[:6].mean(0) - xy[6:].mean(0)) > 2 * within  # two separated blobs stay apart


def test_explore_reads_every_group_and_keeps_wide_groups_out_of_the_heatmaps(table):
    transforms = [fit_group(table.X[g.name], 8, g.name) for g in table.feature_groups]
    got = eda.explore(table, transforms, "single_label", CLASSES, seed=0)
    assert got["n"] == got["of"] == len(table) and got["comparisons"] == ["urban vs natural"]
    assert list(got["differences"]) == list(table.columns)
    assert "matrix" in got["correlations"]["indices_raw"]
    assert "too many" in got["correlations"]["spectral_raw"]["skipped"]
    assert "unnamed" in got["correlations"]["mps_raw"]["skipped"]
    m = got["map"]
    assert m["clip_id"] == table.ids.tolist() and m["dims"] == 8 * len(transforms) and len(m["xy"]) == len(table)
    assert m["label"] == [CLASSES[v] for v in table.y]
    json.dumps(got)  # plain data: it goes to eda.json as it is


def test_the_section_marks_the_stored_mistakes_and_says_what_it_skipped(table):
    """The map's rings come from the stored predictions (the misclassified-clips list), not from a new model."""
    transforms = [fit_group(table.X[g.name], 8, g.name) for g in table.feature_groups]
    found = eda.explore(table, transforms, "single_label", CLASSES, seed=0)
    ids = table.ids.tolist()
    scored = ids[:20]  # a test split: only these were scored
    y = table.y[:20]
    proba = np.eye(2)[y]
    proba[[0, 3, 7]] = proba[[0, 3, 7]][:, ::-1]  # three confident mistakes
    pred = {"clip_id": scored, "uri": ["u"] * 20, "start_s": [None] * 20, "end_s": [None] * 20, "group": [None] * 20,
            "y": y.tolist(), "proba": {"mlp": proba.tolist()}}
    results = {"task": {"kind": "single_label", "class_names": CLASSES}, "predictions": pred,
               "evaluation": {"method": "split", "saved_model": "mlp"}, "eda": found}
    wrong, legend = map_mistakes(results)
    assert sorted(np.asarray(ids)[wrong].tolist()) == sorted(m["clip_id"] for m in mistakes(results)[1])
    assert wrong.sum() == 3 and legend == "misclassified, mlp (held-out test split)"
    page = eda_section(results, [])
    assert "Ringed: the 3 clips" in page and f"Only 20 of the {len(ids)} clips shown were scored" in page
    assert "spectral_raw: 232 values, too many for a readable heatmap" in page


# --- the report of a real train run (tests/worlds.py's fixture) -------------------

def _section(page: str) -> str:
    return page.split("<h2 id='eda'>", 1)[1].split("<h2", 1)[0]


@pytest.mark.slow
def test_report_eda_tables_equal_scipy_on_the_runs_own_table(report):
    metrics = json.loads((report / "metrics.json").read_text())
    found = json.loads((report / "eda.json").read_text())
    assert "eda" not in metrics  # the summary numbers stay small; the EDA has its own file
    features = read_features(metrics["features"], task="urban_natural", signals=["raw"])
    assert found["of"] == len(features) and list(found["differences"]) == metrics["groups"]
    (label, inside), = eda.comparisons("single_label", CLASSES, features.y)
    page = (report / "index.html").read_text()
    section = _section(page)
    for g in features.feature_groups:
        got = found["differences"][g.name][label]
        check_against_scipy(features.X[g.name], eda.short_names(g), inside, got)
        table_html = section.split(f"<b>{g.name}</b>", 1)[1].split("</table>", 1)[0]
        shown = re.findall(r"<tr class=''><td class='t'>([^<]+)</td>", table_html)
        assert shown == [r["name"] for r in got["rows"][:TOP_DIFFERENCES]]  # the page lists them in order
        first = got["rows"][0]
        assert f"<td>{first['g']:+.3f}</td><td>{first['t']:.4g}</td><td>{first['p']:.4g}</td>" in table_html
        assert (report / f"eda_differences_{g.name}.png").stat().st_size > 5000
        assert f"<img src='eda_differences_{g.name}.png'" in section
    corr = found["correlations"]["indices_raw"]
    np.testing.assert_allclose(corr["matrix"], stats.spearmanr(features.X["indices_raw"].astype(float)).statistic,
                               atol=2e-6)
    assert "<img src='eda_correlation_indices_raw.png'" in section
    assert (report / "eda_correlation_indices_raw.png").stat().st_size > 20000
    assert "<img src='eda_map.png'" in section and found["map"]["clip_id"] == features.ids.tolist()
    mlp = metrics["models"][metrics["evaluation"]["saved_model"]]["test"]  # the model of record's mistakes
    assert f"Ringed: the {round((1 - mlp['accuracy']) * mlp['n'])} clips" in section
    assert "eda_" not in page.split("<h2>Figures</h2>", 1)[1].split("<h2", 1)[0]  # not repeated among the figures


def test_eda_needs_a_task(table):
    unlabelled = dataclasses.replace(table, y=None)
    with pytest.raises(ValueError, match="with a task"):
        eda.explore(unlabelled, [], "single_label", CLASSES)


def test_labels_with_a_class_of_one_clip_still_explore(tmp_path):
    """A class with a single clip: its comparison says why it was not tested; the rest of the EDA is there."""
    base = synthetic_table(30, seed=9, signals=("raw",))
    labels = base["labels"].to_pylist()
    labels = [["/m/09x0r"] if i == 0 else ls for i, ls in enumerate(labels)]  # one speech clip
    t = base.set_column(base.schema.get_field_index("labels"), "labels", pa.array(labels, pa.list_(pa.string())))
    fs = read_features(write_features(t, str(tmp_path / "x")), task="labels:/t/dd00128,/t/dd00129,/m/09x0r",
                       feature_groups=["indices_raw"])
    found = eda.explore(fs, [fit_group(fs.X["indices_raw"], 5, "indices_raw")], "single_label",
                        ["urban", "natural", "speech"])
    speech = found["differences"]["indices_raw"]["speech vs rest"]
    assert speech["n_in"] == 1 and "at least 2" in speech["skipped"] and not speech["rows"]
    assert found["differences"]["indices_raw"]["urban vs rest"]["rows"]
    results = {"eda": found, "task": {"kind": "single_label", "class_names": ["urban", "natural", "speech"]},
               "predictions": None}
    assert "Not tested: 1 clip(s) on one side" in eda_section(results, [])
