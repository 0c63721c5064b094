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
import warnings
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pytest
from scipy import stats

from acoustic_env.demo.tables import synthetic_table, write_features
from acoustic_env.pages.report import (
    TOP_DIFFERENCES,
    eda_section,
    map_mistakes,
    mistakes,
    study_figures,
)
from acoustic_env.learn import eda
from acoustic_env.learn.preprocess import fit_group
from acoustic_env.table import GroupInfo, read_features

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


def test_a_column_constant_on_one_side_only_is_tested_without_a_warning():
    """A feature silent at night (0.3 in every night clip) and varying by day: Welch's test is defined (the day's
    variance) and is scipy's; scipy's precision-loss warning for the constant side never reached train's console."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((12, 2))
    inside = np.arange(12) < 6
    x[inside, 1] = 0.3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = eda.differences(x, ["a", "silent"], inside)
    assert got["constant"] == [] and {r["name"] for r in got["rows"]} == {"a", "silent"}
    row = next(r for r in got["rows"] if r["name"] == "silent")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t, p = stats.ttest_ind(x[inside, 1], x[~inside, 1], equal_var=False)
    assert np.isclose(row["t"], t) and np.isclose(row["p"], p)


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
    assert got["notes"] == [] and list(got["mps_t"]) == ["mps_raw"]  # every clip: nothing sampled to say
    json.dumps(got)  # plain data: it goes to eda.json as it is


def test_a_large_table_is_explored_on_a_seeded_sample_and_the_notes_say_so(table, monkeypatch):
    monkeypatch.setattr(eda, "MAX_ROWS", 40)
    monkeypatch.setattr(eda, "MAX_MAP_POINTS", 25)
    monkeypatch.setattr(eda, "MAX_HEATMAP", table.X["indices_raw"].shape[1])  # as wide as the widest: drawn
    transforms = [fit_group(table.X[g.name], 4, g.name) for g in table.feature_groups]
    got = eda.explore(table, transforms, "single_label", CLASSES, seed=1)
    assert got["notes"] == ["Statistics on a random sample of 40 of the 60 clips.",
                            "The map shows a random 25 of the 40 clips (t-SNE's cost)."]
    assert (got["n"], got["of"], len(got["map"]["xy"])) == (40, 60, 25)
    assert got["correlations"]["indices_raw"]["method"] == "spearman"
    assert got["correlations"]["mps_raw"] == {"skipped": f"{table.X['mps_raw'].shape[1]} unnamed values (an embedding "
                                              "or a modulation grid): correlations of its dimensions say nothing "
                                              "about named indices"}
    again = eda.explore(table, transforms, "single_label", CLASSES, seed=1)  # seeded: the same samples
    assert again["map"]["clip_id"] == got["map"]["clip_id"] and again["differences"] == got["differences"]


def test_a_multi_label_task_is_explored_label_by_label_and_mapped_by_sets_of_classes(tmp_path):
    three = [["/t/dd00128"], ["/t/dd00129"], ["/m/09x0r"]]
    classes = ["urban", "natural", "speech"]
    table = synthetic_table(45, three, multi_label=True, seed=2, signals=("raw",), embedders=("vggish",))
    (tmp_path / "three.yaml").write_text("name: three\nkind: multi_label\nclasses:\n" + "".join(
        f"  {c}: {{mids: ['{m[0]}']}}\n" for c, m in zip(classes, three)))
    fs = read_features(write_features(table, str(tmp_path / "a")), task=str(tmp_path / "three.yaml"),
                       feature_groups=["indices_raw", "vggish"], include_random_weights=True)
    transforms = [fit_group(fs.X[g.name], 4, g.name) for g in fs.feature_groups]
    got = eda.explore(fs, transforms, "multi_label", classes, seed=0)
    assert got["comparisons"] == ["urban vs not urban", "natural vs not natural", "speech vs not speech"]
    sets = dict(zip(fs.ids.tolist(), eda.class_labels("multi_label", classes, fs.y)))
    for m in (got["map"], got["embedder_maps"]["vggish"]):
        assert m["label"] == [sets[c] for c in m["clip_id"]]


def test_correlations_of_rows_none_of_them_finite_say_so():
    got = eda.correlations(np.full((5, 3), np.nan), ["a", "b", "c"])
    assert got["n"] == 0 and got["non_finite_rows"] == 5 and got["constant"] == ["a", "b", "c"]
    assert got["skipped"] == "0 non-constant value(s) over 0 clips: nothing to correlate"


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


# --- the study's figures: one ranking, MPS t-values, a map per embedder --------------

@pytest.fixture(scope="module")
def explored(table):
    return eda.explore(table, [fit_group(table.X[g.name], 8, g.name) for g in table.feature_groups],
                       "single_label", CLASSES, seed=0)


def test_the_ranking_is_one_list_across_groups_by_t_with_q_over_the_list(table, explored):
    """The top 20 by |t| of every named value of every group together, not a top list per group.

    Unequal sides (20 clips against 40): there Welch's t and Hedges' g order the values differently.
    """
    inside = (table.y == 0) & (np.arange(len(table)) < 40)
    label = "urban vs natural"
    diffs = {g.name: {label: eda.differences(table.X[g.name], eda.short_names(g), inside)}
             for g in table.feature_groups}
    got = eda.ranking(diffs, table.feature_groups)[label]
    named = [g for g in table.feature_groups if g.names]
    assert [g.name for g in named] == ["indices_raw", "spectral_raw"]  # the MPS has its heatmap, not a rank
    everything = []
    for g in named:
        x = table.X[g.name].astype(np.float64)
        for j, name in enumerate(eda.short_names(g)):
            t, p = stats.ttest_ind(x[inside, j], x[~inside, j], equal_var=False)
            everything.append((g.name, name, t, p))
    q_all = bh(np.array([p for *_, p in everything]))
    order = np.argsort([-abs(t) for _, _, t, _ in everything], kind="stable")[:eda.TOP_RANKING]
    assert got["n_tested"] == len(everything) and got["groups"] == ["indices_raw", "spectral_raw"]
    assert [(r["group"], r["name"]) for r in got["rows"]] == [everything[i][:2] for i in order]
    for r, i in zip(got["rows"], order):
        assert r["t"] == pytest.approx(everything[i][2], rel=1e-9)
        assert r["q_all"] == pytest.approx(q_all[i], rel=1e-9, abs=1e-300)
    assert {r["group"] for r in got["rows"]} == {"indices_raw", "spectral_raw"}  # both groups in the one list
    assert explored["ranking"] == eda.ranking(explored["differences"], table.feature_groups)  # explore's own


def test_mps_t_values_lie_on_the_columns_own_axes(table):
    """Cell [i][j] is the t of spectral modulation wf[i] and temporal modulation wt[j], as the metadata lays them out."""
    mps = next(g for g in table.feature_groups if g.name == "mps_raw")
    (label, inside), = eda.comparisons("single_label", CLASSES, table.y)
    x = table.X["mps_raw"].astype(np.float64).copy()
    x[:, 37] = 1.5  # a constant cell: untested, None in the grid
    found = eda.mps_t({label: eda.differences(x, eda.short_names(mps), inside)}, mps)
    wf, wt = mps.axes["wf_cycles_per_hz"], mps.axes["wt_hz"]
    assert found["wf_cycles_per_hz"] == wf and found["wt_hz"] == wt
    grid = found["t"][label]
    assert len(grid) == len(wf) == 16 and len(grid[0]) == len(wt) == 33
    for i, j in ((0, 0), (2, 5), (15, 32), (7, 20)):
        k = i * len(wt) + j  # the column's row-major [wf, wt] layout
        expected = stats.ttest_ind(x[inside, k], x[~inside, k], equal_var=False).statistic
        assert grid[i][j] == pytest.approx(expected, rel=1e-5)
    assert grid[37 // 33][37 % 33] is None
    json.dumps(found)  # None, not NaN: eda.json stays valid JSON


def test_one_map_per_embedding_column_on_a_seeded_sample(tmp_path, monkeypatch):
    t = synthetic_table(40, seed=4, signals=("raw",), embedders=("vggish", "yamnet"))
    fs = read_features(write_features(t, str(tmp_path / "x")), task="urban_natural",
                       feature_groups=["indices_raw", "mps_raw", "vggish", "yamnet"], include_random_weights=True)
    transforms = [fit_group(fs.X[g.name], 4, g.name) for g in fs.feature_groups]
    monkeypatch.setattr(eda, "MAX_EMBEDDER_MAP_POINTS", 25)
    found = eda.explore(fs, transforms, "single_label", CLASSES, seed=2)
    maps = found["embedder_maps"]
    assert list(maps) == ["vggish", "yamnet"]  # neither the named indices nor the MPS grid
    ids = fs.ids.tolist()
    for column, m in maps.items():
        assert len(m["xy"]) == len(m["clip_id"]) == 25 and m["of"] == 40
        assert m["label"] == [CLASSES[fs.y[ids.index(c)]] for c in m["clip_id"]]  # coloured by each clip's class
        assert m["dims"] == fs.X[column].shape[1]
    assert maps["vggish"]["clip_id"] == maps["yamnet"]["clip_id"]  # the same clips in every map
    again = eda.explore(fs, transforms, "single_label", CLASSES, seed=2)["embedder_maps"]
    assert again["vggish"]["xy"] == maps["vggish"]["xy"]  # seeded: the same sample and map
    x = fs.X["vggish"][[ids.index(c) for c in maps["vggish"]["clip_id"]]]
    assert maps["vggish"]["xy"] == eda.embedder_map(x, 2)["xy"]  # that column alone, not the model input


def _study_results(found: dict, ids: list[str], y: np.ndarray) -> dict:
    proba = np.eye(2)[y]
    proba[[1, 4]] = proba[[1, 4]][:, ::-1]  # two confident mistakes
    pred = {"clip_id": ids, "uri": ["u"] * len(ids), "start_s": [None] * len(ids), "end_s": [None] * len(ids),
            "group": [None] * len(ids), "y": y.tolist(), "proba": {"mlp": proba.tolist()}}
    return {"task": {"kind": "single_label", "class_names": CLASSES}, "predictions": pred,
            "evaluation": {"method": "cross_validation", "saved_model": "mlp"}, "eda": found}


def test_the_report_draws_and_lists_the_study_figures(tmp_path, monkeypatch):
    monkeypatch.setattr(eda, "MAX_EMBEDDER_MAP_POINTS", 20)  # fewer clips than the model input's map
    t = synthetic_table(30, seed=6, signals=("raw", "fg"), embedders=("vggish",))
    fs = read_features(write_features(t, str(tmp_path / "x")), task="urban_natural", include_random_weights=True,
                       feature_groups=["indices_raw", "indices_fg", "mps_raw", "mps_fg", "vggish"])
    found = eda.explore(fs, [fit_group(fs.X[g.name], 4, g.name) for g in fs.feature_groups], "single_label",
                        CLASSES, seed=0)
    results = _study_results(found, fs.ids.tolist(), fs.y)
    pngs = study_figures(results)
    study = {"eda_ranking.png", "eda_mps_t_mps_raw.png", "eda_mps_t_mps_fg.png", "eda_map_vggish.png"}
    assert study == set(pngs)
    assert b"Welch's t of each modulation cell" in pngs["eda_mps_t_mps_fg.png"]  # the PNG's Title chunk
    page = eda_section(results, list(pngs))
    ranked = page.split("One ranking across signals", 1)[1].split("</table>", 1)[0]
    label = "urban vs natural"
    shown = re.findall(r"<tr class=''><td class='t'>([^<]+)</td><td class='t'>([^<]+)</td>", ranked)
    assert shown == [(r["group"], r["name"]) for r in found["ranking"][label]["rows"]]
    assert {g for g, _ in shown} == {"indices_raw", "indices_fg"}  # both signals in the one list
    for name in study:
        assert f"<img src='{name}'" in page
    shown = found["embedder_maps"]["vggish"]["clip_id"]
    wrong, _ = map_mistakes(results, shown)
    ids = fs.ids.tolist()
    assert wrong.tolist() == [c in (ids[1], ids[4]) for c in shown]  # the same stored mistakes, on its own clips
    assert "a seeded sample of 20 clips" in page


def test_an_eda_json_written_before_the_study_figures_still_renders(table, explored):
    """Reports re-rendered from an older eda.json (no ranking, mps_t, embedder_maps) lose nothing else."""
    old = {k: v for k, v in explored.items() if k not in ("ranking", "mps_t", "embedder_maps")}
    results = _study_results(old, table.ids.tolist(), table.y)
    assert study_figures(results) == {}
    page = eda_section(results, ["eda_map.png"])
    assert "Map of the clips" in page and "One ranking" not in page and "Map per embedder" not in page


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
    assert found["ranking"] == eda.ranking(found["differences"], features.feature_groups)  # the study's figures
    for name in ("eda_ranking.png", "eda_mps_t_mps_raw.png"):
        assert f"<img src='{name}'" in section and (report / name).stat().st_size > 5000
    mlp = metrics["models"][metrics["evaluation"]["saved_model"]]["test"]  # the chosen model's mistakes
    assert f"Ringed: the {round((1 - mlp['accuracy']) * mlp['n'])} clips" in section
    assert "eda_" not in page.split("<h2>Figures</h2>", 1)[1].split("<h2", 1)[0]  # not repeated among the figures


def test_eda_needs_a_task(table):
    unlabelled = dataclasses.replace(table, y=None)
    with pytest.raises(ValueError, match=r"^explore needs a FeatureSet read with a task \(its y\)$"):
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


def test_a_comparison_with_nothing_to_rank_is_listed_empty_and_the_next_still_ranked():
    """A class too small to test gives its comparison an empty list that says so; the others rank as ever, with
    q over their own list; no group at all ranks nothing."""
    groups = [GroupInfo("indices_raw", 2, "indices", names=("ACI", "H"))]
    rows = [{"name": "ACI", "t": 3.0, "p": 0.01}, {"name": "H", "t": -5.0, "p": 0.001}]
    diffs = {"indices_raw": {"a vs rest": {"rows": []}, "b vs rest": {"rows": rows}}}
    assert eda.ranking(diffs, groups) == {
        "a vs rest": {"by": "|t|", "groups": ["indices_raw"], "n_tested": 0, "rows": []},
        "b vs rest": {"by": "|t|", "groups": ["indices_raw"], "n_tested": 2, "rows": [
            {"group": "indices_raw", "name": "H", "t": -5.0, "p": 0.001, "q_all": pytest.approx(0.002)},
            {"group": "indices_raw", "name": "ACI", "t": 3.0, "p": 0.01, "q_all": pytest.approx(0.01)}]}}
    assert eda.ranking({}, groups) == {}


def test_an_embedders_map_is_the_same_whatever_each_dimensions_units():
    """Each dimension standardised on its own (a constant one left at 0) before t-SNE, in float64 whatever the
    column's dtype: a dimension in large units does not draw the map alone."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 6)).astype(np.float32)
    x[:20, :2] += 3  # two clusters
    x[:, 5] = 7.0  # a constant dimension
    z = x.astype(np.float64)
    z = (z - z.mean(axis=0)) / np.where(z.std(axis=0) > 0, z.std(axis=0), 1.0)
    got = eda.embedder_map(x, 0)
    assert got == eda.embed_2d(z, 0)
    scaled = eda.embedder_map(x.astype(np.float64) * [1e-3, 0.5, 1, 4, 100, 1], 0)
    np.testing.assert_allclose(scaled["xy"], got["xy"], atol=1e-2)

    one = x[:, :1].astype(np.float64)  # one dimension: t-SNE starts at random, from the seed
    assert eda.embedder_map(one, 3) == eda.embedder_map(one, 3)


def test_a_multi_label_embedder_map_labels_each_clip_with_its_set_of_classes():
    y = np.array([[1, 0], [0, 1], [1, 1], [0, 0]] * 5)
    features = SimpleNamespace(feature_groups=[GroupInfo("vggish", 4, "vggish")],
                               ids=np.array([f"c{i}" for i in range(20)]))
    x = np.random.default_rng(1).standard_normal((20, 4))
    maps = eda._embedder_maps(features, {"vggish": x}, np.arange(20), "multi_label", ["bird", "rain"], y, 0)
    assert maps["vggish"]["label"] == ["bird", "rain", "bird+rain", "(none)"] * 5


def test_a_sample_of_clips_holds_each_clip_once_in_table_order():
    picked = eda._sample(100, 50, seed=3)
    assert len(set(picked.tolist())) == 50 and (np.diff(picked) > 0).all() and picked.max() < 100
    assert eda._sample(50, 50, seed=3).tolist() == list(range(50))


def test_a_binary_comparison_is_the_first_class_against_the_second():
    [(label, inside)] = eda.comparisons("single_label", CLASSES, np.array([0, 1, 1, 0]))
    assert label == "urban vs natural" and inside.tolist() == [True, False, False, True]


def test_two_clips_a_side_are_tested_and_a_constant_table_says_so():
    x = np.array([[1.0, 5.0], [2.0, 5.0], [4.0, 5.0], [6.0, 5.0]])
    got = eda.differences(x, ["a", "b"], np.array([True, True, False, False]))
    assert got["constant"] == ["b"] and [r["name"] for r in got["rows"]] == ["a"] and "skipped" not in got
    flat = eda.differences(np.full((4, 2), 3.0), ["a", "b"], np.array([True, True, False, False]))
    assert flat == {"n_values": 2, "n_in": 2, "n_out": 2, "non_finite_rows": 0, "constant": ["a", "b"], "rows": [],
                    "skipped": "every value is constant within both sides"}


def test_the_map_states_its_method_and_settings_at_their_edges():
    rng = np.random.default_rng(0)
    five = eda.embed_2d(rng.standard_normal((5, 3)), 0)
    assert (five["method"], five["perplexity"], five["pca"], len(five["xy"])) == ("t-SNE", 2.0, None, 5)
    assert eda.embed_2d(rng.standard_normal((4, 3)), 0) == {"skipped": "4 clips: a map needs at least 5"}
    fifty = eda.embed_2d(rng.standard_normal((10, 50)), 0)
    assert (fifty["perplexity"], fifty["pca"], fifty["dims"]) == (3.0, None, 50)  # (n - 1) / 3; 50 kept whole
    assert eda.embed_2d(rng.standard_normal((10, 51)), 0)["pca"] == 10


def test_a_class_of_one_clip_is_reported_with_the_same_fields_as_a_tested_one():
    one = eda.differences(np.arange(8.0).reshape(4, 2), ["a", "b"], np.array([True, False, False, False]))
    assert one == {"n_values": 2, "n_in": 1, "n_out": 3, "non_finite_rows": 0, "constant": [], "rows": [],
                   "skipped": "1 clip(s) on one side: a t-test needs at least 2 on each"}


def test_three_clips_of_two_values_are_correlated_and_redundant_values_sit_together():
    three = eda.correlations(np.array([[1.0, 2.0], [2.0, 1.0], [3.0, 3.0]]), ["a", "b"])
    assert "skipped" not in three and three["top_pairs"] == [{"a": "a", "b": "b", "rho": pytest.approx(0.5)}]
    rng = np.random.default_rng(2)
    base = rng.standard_normal((80, 2))
    x = np.column_stack([base[:, 0], base[:, 1], base[:, 0] + 0.1 * rng.standard_normal(80),
                         base[:, 1] + 0.1 * rng.standard_normal(80)])  # a ~ c, b ~ d
    order = [["a", "b", "c", "d"][i] for i in eda.correlations(x, ["a", "b", "c", "d"])["order"]]
    assert abs(order.index("a") - order.index("c")) == 1 and abs(order.index("b") - order.index("d")) == 1, order


def test_a_wide_input_is_mapped_from_its_first_50_components_reproducibly_at_perplexity_30():
    """100 clips of 600 values (scikit-learn's randomised PCA at this size: the seed fixes it): the map is the same
    on every call and is t-SNE of the input's first 50 principal components, at scikit-learn's perplexity."""
    from sklearn.decomposition import PCA
    from threadpoolctl import threadpool_limits

    x = np.random.default_rng(3).standard_normal((100, 600))
    found = eda.embed_2d(x, seed=4)
    assert (found["perplexity"], found["pca"], found["dims"]) == (30.0, 50, 600)
    assert eda.embed_2d(x, seed=4)["xy"] == found["xy"]
    with threadpool_limits(limits=1):
        components = PCA(n_components=50, random_state=4).fit_transform(x)
    assert eda.embed_2d(components, seed=4)["xy"] == found["xy"]



def test_the_models_float32_inputs_are_mapped_in_double_precision():
    """explore hands embed_2d the model inputs as float32 (``transform_all``): the map is that of their float64
    values, as every other caller's."""
    x = np.random.default_rng(5).standard_normal((30, 8)).astype(np.float32)
    assert eda.embed_2d(x, seed=0)["xy"] == eda.embed_2d(x.astype(np.float64), seed=0)["xy"]
