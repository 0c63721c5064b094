"""Each model's search samples a space of ranges (``learn.params.SPACES``, ``learn.search``), not a hand-written list.

Issue 63, part 4: ``train --baselines forest --search-trials 20`` tries 20
distinct settings drawn from ranges, and the report lists them; issue 57, part
4: the MLP is searched over depth, width, dropout, weight decay and learning
rate. The forests here have 5 trees (20 end to end), so each search takes
seconds.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from acoustic_env.cli import main
from acoustic_env.demo.tables import synthetic_features, write_features
from acoustic_env.jobs.train.crossval import _cv_search_note
from acoustic_env.jobs.train.report import params_section
from acoustic_env.learn.mlp import architecture
from acoustic_env.learn.params import PARAMS, SPACES, Space, numbers, one_of
from acoustic_env.learn.search import SearchPlan, grouped_search
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
                          search=SearchPlan(trials, 2)).fit(x, y, groups=groups)


def test_every_default_lies_inside_its_space_and_the_mlp_searches_its_architecture_and_training():
    for name, space in SPACES.items():
        defaults = space.defaults(PARAMS[name])
        assert all(space.ranges[k].holds(v) for k, v in defaults.items()), (name, defaults)
    mlp = SPACES["mlp"]
    assert set(mlp.ranges) == {"depth", "width", "dropout", "weight_decay", "lr"} and mlp.within == "network"
    assert (mlp.ranges["depth"].low, mlp.ranges["depth"].high) == (1, 3) and mlp.ranges["width"].log
    setting = {"depth": 3, "width": 40, "dropout": 0.1, "weight_decay": 1e-5, "lr": 3e-3}
    network = mlp.overrides(setting, PARAMS["mlp"])["network"]  # the network's own settings, the rest kept
    assert network == {**PARAMS["mlp"]["network"], **setting}
    built = architecture(8, "single_label", 2, network)  # depth and width are the network's hidden layers
    assert (built["depth"], built["width"], built["dropout"]) == (3, 40, 0.1)


def test_twenty_forest_trials_are_twenty_distinct_settings_in_range_the_defaults_first():
    fitted = _forest(seed=0)
    record, space = fitted.search_, SPACES["forest"]
    settings = [t["params"] for t in record.trials]
    assert len(settings) == 20 == record.asked and len({tuple(s.values()) for s in settings}) == 20
    assert settings[0] == space.defaults(PARAMS["forest"])
    assert all(space.ranges[k].holds(v) for s in settings for k, v in s.items())
    assert record.fits == 20 * 2 and record.space == space.describe()
    scores = [t["score"] for t in record.trials]
    assert record.best == settings[scores.index(max(scores))]  # the best inner score; ties to the earlier
    assert {k: fitted.params_[k] for k in space.ranges} == record.best  # refitted with the chosen setting
    again, other = _forest(seed=0), _forest(seed=1)
    assert [t["params"] for t in again.search_.trials] == settings  # the same seed, the same settings
    assert [t["params"] for t in other.search_.trials] != settings
    assert _forest(seed=0, trials=1).search_ is None  # one trial: the defaults, no search
    assert _forest(seed=0, trials=1).params_ == {**PARAMS["forest"], "n_estimators": 5}


def test_a_space_smaller_than_the_trials_is_tried_once_each_and_the_note_says_so():
    x, y, groups = _clips()
    space = Space({"n_neighbors": one_of(15, 3, 30)})
    record = grouped_search(lambda s: make_estimator("knn", "single_label", 2, **s), space, {"n_neighbors": 15}, 5,
                            x, y, groups, 2, seed=0, kind="single_label")
    assert sorted(t["params"]["n_neighbors"] for t in record.trials) == [3, 15, 30] and record.asked == 5
    nested = {"knn": {"settings": 3, "asked": 5, "inner_folds": 2, "outer_folds": 1, "fits": 6, "seconds": 0.0,
                      "space": record.space, "trials": [record.trials], "chosen": [record.best]}}
    note = _cv_search_note(["mlp", "knn"], 3, nested, None, "knn")
    assert "knn tried 3 distinct settings in some outer fold, of 5 asked" in note
    assert "knn: n_neighbors {15, 3, 30}" in note
    narrow = Space({"p": numbers(1.0, 1.001)})  # endless numbers, one value at 3 significant figures
    record = grouped_search(lambda s: make_estimator("knn", "single_label", 2), narrow, {"p": 1.0}, 3, x, y, groups,
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
    table = page.split("Nested search of forest", 1)[1]
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
    """``train --baselines forest --search-trials 20`` on 36 clips: every outer fold's search lists 20 distinct
    settings with their inner scores, in the record and the report. The forest has 20 trees; the MLP's space is
    taken away so that it trains at its defaults (its search is the one above, in-process)."""
    monkeypatch.setitem(PARAMS["forest"], "n_estimators", 20)
    monkeypatch.delitem(SPACES, "mlp")
    source = write_features(synthetic_features(36, seed=5, signals=("raw",)).table, str(tmp_path / "t"))
    out = tmp_path / "out"
    assert main(["train", "--features", source, "--output", str(out), "--feature-groups", "indices_raw",
                 "--cv-folds", "3", "--baselines", "forest", "--search-trials", "20", "--no-ablations",
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
    assert "<b>Nested search of forest</b>: 60 settings tried over 3 outer folds" in page
