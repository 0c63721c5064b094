"""Each model's search samples a space of ranges (``acoustic_env.candidates.SPACES``, ``learn.tuning``), not a hand-written list.

Issue 63, part 4: ``train --baselines forest --tuning-trials 20`` tries 20
distinct settings drawn from ranges, and the report lists them; issue 57, part
4: the MLP is searched over depth, width, dropout, weight decay and learning
rate. The forests here have 5 trees (20 end to end), so each search takes
seconds.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import numpy as np
import pytest

from acoustic_env.cli import main
from acoustic_env.demo.tables import synthetic_features, write_features
from acoustic_env.jobs.train.crossval import _cv_tuning_note
from acoustic_env.pages.report import params_section
from acoustic_env.learn.mlp import architecture
from acoustic_env.candidates import PARAMS, SPACES
from acoustic_env.candidates.space import Space, numbers, one_of
from acoustic_env.learn.tuning import TuningPlan, grouped_tuning
from acoustic_env.learn.zoo import make_estimator

DOCS = Path(__file__).resolve().parents[1] / "docs" / "train.md"


def _clips(n: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two classes apart on two of four features; groups of 4 clips."""
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n) % 2)
    x = rng.standard_normal((n, 4)) + 1.2 * y[:, None] * (np.arange(4) < 2)
    return x.astype(np.float32), y, np.arange(n) // 4


def _forest(seed: int, trials: int = 20):
    x, y, groups = _clips()
    return make_estimator("forest", "single_label", 2, seed, threads=1, n_estimators=5,
                          search=TuningPlan(trials, 2)).fit(x, y, groups=groups)


def test_every_default_lies_inside_its_space_and_the_mlp_searches_its_architecture_and_training():
    for name, space in SPACES.items():
        defaults = space.defaults(PARAMS[name])
        assert all(space.ranges[k].holds(v) for k, v in defaults.items()), (name, defaults)
    mlp = SPACES["mlp"]
    assert set(mlp.ranges) == {"depth", "width", "dropout", "weight_decay", "lr", "l2"} and mlp.within == "network"
    assert (mlp.ranges["depth"].low, mlp.ranges["depth"].high) == (1, 3) and mlp.ranges["width"].log
    setting = {"depth": 3, "width": 40, "dropout": 0.1, "weight_decay": 1e-5, "lr": 3e-3}
    network = mlp.overrides(setting, PARAMS["mlp"])["network"]  # the network's own settings, the rest kept
    assert network == {**PARAMS["mlp"]["network"], **setting}
    built = architecture(8, "single_label", 2, network)  # depth and width are the network's hidden layers
    assert (built["depth"], built["width"], built["dropout"]) == (3, 40, 0.1)


def test_twenty_forest_trials_are_twenty_distinct_settings_in_range_the_defaults_first():
    fitted = _forest(seed=0)
    record, space = fitted.tuning_, SPACES["forest"]
    settings = [t["params"] for t in record.trials]
    assert len(settings) == 20 == record.asked and len({tuple(s.values()) for s in settings}) == 20
    assert settings[0] == space.defaults(PARAMS["forest"])
    assert all(space.ranges[k].holds(v) for s in settings for k, v in s.items())
    assert record.fits == 20 * 2 and record.space == space.describe()
    scores = [t["score"] for t in record.trials]
    assert record.best == settings[scores.index(max(scores))]  # the best inner score; ties to the earlier
    assert {k: fitted.params_[k] for k in space.ranges} == record.best  # refitted with the chosen setting
    again, other = _forest(seed=0), _forest(seed=1)
    assert [t["params"] for t in again.tuning_.trials] == settings  # the same seed, the same settings
    assert [t["params"] for t in other.tuning_.trials] != settings
    assert _forest(seed=0, trials=1).tuning_ is None  # one trial: the defaults, no search
    assert _forest(seed=0, trials=1).params_ == {**PARAMS["forest"], "n_estimators": 5}


def test_a_space_smaller_than_the_trials_is_tried_once_each_and_the_note_says_so():
    x, y, groups = _clips()
    space = Space({"n_neighbors": one_of(15, 3, 30)})
    record = grouped_tuning(lambda s: make_estimator("knn", "single_label", 2, **s), space, {"n_neighbors": 15}, 5,
                            x, y, groups, 2, seed=0, kind="single_label")
    assert sorted(t["params"]["n_neighbors"] for t in record.trials) == [3, 15, 30] and record.asked == 5
    nested = {"knn": {"settings": 3, "asked": 5, "inner_folds": 2, "outer_folds": 1, "fits": 6, "seconds": 0.0,
                      "space": record.space, "trials": [record.trials], "chosen": [record.best]}}
    note = _cv_tuning_note(["mlp", "knn"], 3, nested, {}, "knn")
    assert "knn tried 3 distinct settings in some outer fold, of 5 asked" in note
    assert "knn: n_neighbors {15, 3, 30}" in note
    narrow = Space({"p": numbers(1.0, 1.001)})  # endless numbers, one value at 3 significant figures
    record = grouped_tuning(lambda s: make_estimator("knn", "single_label", 2), narrow, {"p": 1.0}, 3, x, y, groups,
                            2, seed=0, kind="single_label")
    assert [t["params"] for t in record.trials] == [{"p": 1.0}] and record.asked == 3  # stopped after the repeats


def test_the_report_lists_every_setting_of_every_outer_fold():
    space = {"min_samples_leaf": "1–16 log", "max_depth": "{None, 4}"}
    trials = [[{"params": {"min_samples_leaf": 2, "max_depth": None}, "score": 0.8},
               {"params": {"min_samples_leaf": 7, "max_depth": 4}, "score": 0.9}],
              [{"params": {"min_samples_leaf": 2, "max_depth": None}, "score": 0.7},
               {"params": {"min_samples_leaf": 1, "max_depth": 4}, "score": 0.6}]]
    nested = {"forest": {"outer_folds": 2, "metric": "selection", "space": space, "trials": trials,
                         "chosen": [trials[0][1]["params"], trials[1][0]["params"]]}}
    page = params_section({"search": {"method": "", "params": {}, "nested": nested}})
    table = page.split("Nested tuning of forest", 1)[1]
    assert "4 settings tried over 2 outer folds" in table and "min_samples_leaf: 1–16 log" in table
    rows = re.findall(r"<tr class='(\w*)'>(.*?)</tr>", table)
    assert len(rows) == 4 and [k for k, _ in rows] == ["", "used", "used", ""]
    assert rows[0][1].count("defaults") == 1 and rows[2][1].count("defaults") == 1 and "<td>7</td>" in rows[1][1]


def test_the_docs_table_holds_each_models_space_and_defaults():
    table = DOCS.read_text().split("### The candidates", 1)[1]
    for name, space in SPACES.items():
        row = next(line for line in table.splitlines() if line.startswith(f"| `{name}`"))
        defaults = space.defaults(PARAMS[name])
        for k, described in space.describe().items():
            assert f"`{k}` {described} ({defaults[k]})" in row, (name, k, row)


@pytest.mark.slow
def test_train_with_twenty_forest_trials_records_and_reports_them(tmp_path, monkeypatch, capsys):
    """``train --baselines forest --tuning-trials 20`` on 36 clips: every outer fold's search lists 20 distinct
    settings with their inner scores, in the record and the report. The forest has 20 trees; the MLP's space is
    taken away so that it trains at its defaults (its search is the one above, in-process)."""
    monkeypatch.setitem(PARAMS["forest"], "n_estimators", 20)
    monkeypatch.delitem(SPACES, "mlp")
    source = write_features(synthetic_features(36, seed=5, signals=("raw",)).table, str(tmp_path / "t"))
    out = tmp_path / "out"
    assert main(["train", "--features", source, "--output", str(out), "--feature-groups", "indices_raw",
                 "--cv-folds", "3", "--baselines", "forest", "--tuning-trials", "20", "--no-ablations",
                 "--shap-samples", "0", "--no-progress"]) == 0
    console = capsys.readouterr().out
    search = json.loads((out / "report" / "metrics.json").read_text())["search"]
    forest = search["nested"]["forest"]
    assert forest["settings"] == forest["asked"] == 20 and len(forest["trials"]) == 3
    for tried in forest["trials"]:
        assert len({json.dumps(t["params"], sort_keys=True) for t in tried}) == 20
    assert forest["space"] == SPACES["forest"].describe()
    assert "forest 20 settings x 2 inner folds in each of 3 outer folds" in console
    assert "forest: min_samples_leaf 1–16 log" in console and "mlp at fixed hyper-parameters" in console
    page = (out / "report" / "index.html").read_text()
    assert "<b>Nested tuning of forest</b>: 60 settings tried over 3 outer folds" in page


def test_a_multi_label_tasks_inner_folds_keep_recordings_apart_and_each_label_pattern_in_every_fold():
    """The train job's groups are recording names; a multi-label task is stratified by each clip's set of labels,
    a pattern too rare to reach every fold (one clip) without a warning."""
    import warnings

    from acoustic_env.learn.tuning import inner_splits

    patterns = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    y = np.vstack([patterns[np.arange(60) % 4], [[1, 1]]])  # 15 clips of each pattern, then one more
    groups = np.array([f"rec{i // 3}" for i in range(61)])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        splits = inner_splits(y, groups, 3, seed=0)
    assert caught == [], [str(w.message) for w in caught]
    assert len(splits) == 3
    for fit_on, scored in splits:
        assert not set(groups[fit_on]) & set(groups[scored])
        held = {tuple(row) for row in y[scored]}
        assert held == {tuple(p) for p in patterns}, held  # stratified: every pattern in every fold
    rare = np.r_[np.arange(60) % 2, 2]  # single-label: a class of one clip, fewer than the folds, is expected
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert len(inner_splits(rare, groups, 3, seed=0)) == 3
    assert caught == [], [str(w.message) for w in caught]


def test_two_trials_are_a_search_of_the_defaults_and_one_other_setting():
    x, y, groups = _clips()
    record = grouped_tuning(lambda s: make_estimator("knn", "single_label", 2, **s), Space({"n_neighbors": one_of(
        15, 3, 30)}), {"n_neighbors": 15}, 2, x, y, groups, 2, seed=0, kind="single_label")
    assert record is not None and len(record.trials) == 2 and record.trials[0]["params"] == {"n_neighbors": 15}


class _Noisy:
    """A stand-in model: the logistic of the first input (which carries the class) plus ``noise`` times the second
    (which carries nothing), per label for a multi-label task; the less noise, the better its score."""

    def __init__(self, noise: float = 0.0, labels: int = 0):
        self.noise, self.labels = noise, labels

    def fit(self, x: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None) -> "_Noisy":
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        p = 1 / (1 + np.exp(-(x[:, :max(self.labels, 1)] + self.noise * x[:, 3:4])))
        return p if self.labels else np.column_stack([1 - p[:, 0], p[:, 0]])


def test_the_sampler_learns_from_each_score_and_draws_rates_on_a_log_scale():
    """30 trials over a noise weight from 0.001 to 10 (log): the first draws spread over the decades (a linear draw
    would fall below 0.1 once in a hundred), and once the sampler has scores it proposes low noise, the better
    settings; the record holds the folds and the search's own seconds."""
    from acoustic_env.candidates.space import Range

    x, y, groups = _clips(96)
    space = Space({"noise": Range(1e-3, 10.0, log=True)})
    start = time.time()
    record = grouped_tuning(lambda s: _Noisy(**s), space, {"noise": 1.0}, 30, x, y, groups, 2, seed=0,
                            kind="single_label")
    wall = time.time() - start
    drawn = np.log10([t["params"]["noise"] for t in record.trials])
    assert (drawn[1:11] < -1).sum() >= 3, drawn[1:11]
    assert np.median(drawn[15:]) < np.median(drawn[1:11]) - 0.5, drawn
    assert len(record.splits) == 2 and 0 <= record.seconds <= wall


def test_every_integer_of_a_range_is_drawn_and_a_tie_keeps_the_defaults():
    from acoustic_env.candidates.space import Range

    x, y, groups = _clips()
    record = grouped_tuning(lambda s: _Noisy(), Space({"k": Range(1, 3, integer=True)}), {"k": 2}, 3, x, y, groups,
                            2, seed=0, kind="single_label")
    assert sorted(t["params"]["k"] for t in record.trials) == [1, 2, 3]  # the top of the range too
    assert len({t["score"] for t in record.trials}) == 1 and record.best == {"k": 2}  # all alike: the defaults


def test_a_multi_label_search_scores_each_setting_by_mean_average_precision():
    from acoustic_env.learn.fit import val_score

    x, y, groups = _clips()
    labels = np.column_stack([y, 1 - y])
    record = grouped_tuning(lambda s: _Noisy(**s, labels=2), Space({"noise": one_of(0.0, 5.0)}), {"noise": 0.0}, 2,
                            x, labels, groups, 2, seed=0, kind="multi_label")
    quiet = val_score("multi_label", labels, _Noisy(labels=2).predict_proba(x))
    assert record.trials[0]["score"] == pytest.approx(quiet) and record.best == {"noise": 0.0}


@pytest.mark.parametrize("metric", ["accuracy", "map"])
def test_a_search_scores_each_setting_by_the_metric_asked(metric):
    """``--select-by``: each trial's score is that metric of the pooled inner predictions, not ROC AUC (the
    predictions do not depend on the fold here, so the pooled ones are the model's on every row)."""
    from acoustic_env.learn.fit import val_score

    x, y, groups = _clips()
    record = grouped_tuning(lambda s: _Noisy(**s), Space({"noise": one_of(0.0, 5.0)}), {"noise": 0.0}, 2, x, y,
                            groups, 2, seed=0, kind="single_label", metric=metric)
    proba = _Noisy().predict_proba(x)
    asked, auc = val_score("single_label", y, proba, metric), val_score("single_label", y, proba)
    assert asked != pytest.approx(auc) and record.trials[0]["score"] == pytest.approx(asked)


def test_a_search_told_its_defaults_score_fits_only_the_other_settings():
    """``known`` (the feature-set choice fitted the defaults on these folds): the defaults' trial takes that score and
    no fit; every other setting is fitted and scored as always."""
    x, y, groups = _clips()
    built = []
    record = grouped_tuning(lambda s: built.append(dict(s)) or _Noisy(**s), Space({"noise": one_of(0.0, 5.0)}),
                            {"noise": 5.0}, 2, x, y, groups, 2, seed=0, kind="single_label", known=0.123)
    assert built == [{"noise": 0.0}] * 2  # two inner folds of the one other setting
    assert record.trials[0] == {"params": {"noise": 5.0}, "score": 0.123} and record.trials[1]["score"] != 0.123


def test_a_space_of_40_settings_asked_for_40_is_tried_whole_however_often_the_sampler_repeats_itself():
    """The sampler proposes tried settings again and again as the space runs out (over 100 times here): only 100
    in a row stop a search short, not 100 in all."""
    from acoustic_env.candidates.space import Range

    x, y, groups = _clips()
    record = grouped_tuning(lambda s: _Noisy(), Space({"k": Range(1, 40, integer=True)}), {"k": 1}, 40, x, y, groups,
                            2, seed=0, kind="single_label")
    assert sorted(t["params"]["k"] for t in record.trials) == list(range(1, 41))
