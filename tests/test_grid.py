"""The comparison grid (``train --grid``): cells, their columns, the choice among them, and the winner saved."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import documentation
import numpy as np
import pytest

from acoustic_env.config import ConfigError, TrainConfig, from_dict, validate
from acoustic_env.demo.tables import synthetic_features, write_features
from acoustic_env.jobs.train.grid import cells, check_columns, compare, embedding_column, grid_embedders
from acoustic_env.learn.cv import CVResult
from acoustic_env.table import read_features
from test_model_artifact import fit_as_the_job
from worlds import choosing_commands, run_as_written


def test_cells_pair_each_embedder_with_the_indices_and_mps_of_the_same_signals():
    grid = cells(("none", "panns"), ("raw", "all"), ("indices", "mps"))
    assert [c.name for c in grid] == ["none x raw", "none x all", "panns x raw", "panns x all"]
    assert grid[0].groups == ("indices_raw", "mps_raw")
    assert grid[2].groups == ("indices_raw", "mps_raw", "panns")  # today's column of the raw signal's embeddings
    assert grid[3].groups == ("indices_raw", "mps_raw", "indices_fg", "mps_fg", "indices_bg", "mps_bg",
                              "panns", "panns_fg", "panns_bg")
    assert embedding_column("yamnet", "bg") == "yamnet_bg"


def test_a_cell_without_its_columns_is_one_line_naming_the_field(tmp_path):
    source = write_features(synthetic_features(30, embedders=("vggish",)).table, str(tmp_path / "t"))
    without_random = read_features(source, task="urban_natural")
    with pytest.raises(ConfigError, match=r"^grid_embedders: cell vggish x raw needs column vggish: it was left out "
                                          r"\(random weights"):
        check_columns(cells(("vggish",), ("raw",), ("indices", "mps")), without_random)
    with_random = read_features(source, task="urban_natural", include_random_weights=True)
    check_columns(cells(("none", "vggish"), ("raw",), ("indices", "mps")), with_random)  # all there
    check_columns(cells(("none",), ("raw", "fg", "bg", "all"), ("indices", "mps")), with_random)
    with pytest.raises(ConfigError, match=r"^grid_signals: cell vggish x fg needs column vggish_fg: the table has no "
                                          r"such column \(embeddings of the fg and bg signals need extract"):
        check_columns(cells(("vggish",), ("fg",), ("indices", "mps")), with_random)
    with pytest.raises(ConfigError, match=r"^grid: compares cells by cross-validation"):
        from_dict(TrainConfig, {"features": source, "output": str(tmp_path / "o"), "grid": True, "cv_folds": 0})
    with pytest.raises(ConfigError, match=r"^feature_groups: with grid, names the hand-made sources"):
        from_dict(TrainConfig, {"features": source, "output": str(tmp_path / "o"), "grid": True,
                                "feature_groups": ["vggish"]})


def test_the_winner_is_the_best_cell_and_ties_go_to_the_earlier_one():
    grid = cells(("none", "vggish", "panns"), ("raw",), ("indices",))
    score = {"none": 0.8, "vggish": 0.9, "panns": 0.9}

    def evaluate(cell):
        proba = np.tile([0.5, 0.5], (4, 1))
        return CVResult(np.zeros(4), {"logreg": proba}, {"logreg": score[cell.embedder]}, "logreg", "logreg")

    out = compare(grid, evaluate, lambda p: 0.5, lambda p: [0.4, 0.6])
    assert out["winner"]["embedder"] == "vggish" and [c["winner"] for c in out["cells"]] == [False, True, False]
    assert [c["score"] for c in out["cells"]] == [0.8, 0.9, 0.9] and out["cells"][1]["roc_auc_interval"] == [0.4, 0.6]


@pytest.mark.slow
def test_train_grid_saves_the_winning_cell_and_reports_every_cell(tmp_path):
    """End to end on a synthetic table: 2 embedders x the raw signal, the winner's groups and model are saved, and
    the saved artifact gives the in-process probabilities of the winning cell's chosen model."""
    import acoustic_env as ae
    from acoustic_env.jobs.train.job import summary_lines, train

    source = write_features(synthetic_features(60, embedders=("vggish",), seed=4).table, str(tmp_path / "t"))
    cfg = from_dict(TrainConfig, {"features": source, "output": str(tmp_path / "out"), "grid": True,
                                  "grid_embedders": ["none", "vggish"], "grid_signals": ["raw"],
                                  "include_random_weights": True, "cv_folds": 3, "baselines": ["logreg"],
                                  "tuning_trials": 1, "ablations": False, "shap_samples": 0})
    summary = train(cfg)
    grid = summary.grid
    assert [(c["embedder"], c["signals"]) for c in grid["cells"]] == [("none", "raw"), ("vggish", "raw")]
    winner = grid["winner"]
    assert winner["score"] == max(c["score"] for c in grid["cells"]) and sum(c["winner"] for c in grid["cells"]) == 1
    for c in grid["cells"]:
        lo, hi = c["roc_auc_interval"]
        assert lo <= c["roc_auc"] <= hi and c["model"] in ("logreg", "mlp", "average")
    # the winner went through the ordinary job: its groups are the model's, its CV reproduces the cell's figure
    assert summary.groups == winner["groups"]
    assert summary.evaluation["scores"][winner["model"]] == pytest.approx(winner["score"], abs=1e-9)
    assert summary.evaluation["chosen"] == winner["model"]
    model = ae.load_model(summary.model)
    assert [g["group"] for g in model.meta["preprocessing"]] == winner["groups"]
    assert model.meta["estimator"]["name"] == winner["model"]
    # ... and it is that model (or the average's members) as fitted in this process on the winner's groups, to 1e-6
    # on every training clip
    spec = model.meta["estimator"]
    members = [m["estimator"] for m in spec["members"]] if winner["model"] == "average" else [spec]
    fits = [fit_as_the_job(cfg, m["name"], winner["groups"]) for m in members]
    assert [m["params"] for m in members] == [json.loads(json.dumps(fitted.params_)) for fitted, _ in fits]
    np.testing.assert_allclose(model.predict_proba(source), np.mean([f.predict_proba(x) for f, x in fits], axis=0),
                               rtol=0, atol=1e-6)
    text = "\n".join(summary_lines(summary))
    assert "grid: 2 cells in" in text and "<- winner, saved" in text
    page = Path(summary.report).read_text()
    assert "Grid: embedder x signals" in page and "grid.png" in page
    assert (Path(summary.report).parent / "grid.png").stat().st_size > 1000


@pytest.mark.slow
def test_the_readme_walkthrough_runs_as_written(demo_run, monkeypatch, capfd):
    """The "Choosing a model" page's commands, in order: its ``acoustic-env demo`` (the session's one demo
    run, a process of its own), then ``acoustic-env train --grid`` on that demo's table, as written, through
    ``cli.main`` in this process (``worlds.run_as_written``: its cross-validation runs in the command's process, no
    Ray; a subprocess would add only an interpreter and the imports)."""
    assert len(documentation.section("Choosing a model: the grid").strip().splitlines()) <= 30
    demo, train_grid = choosing_commands()
    assert demo.split()[1] == "demo" and train_grid.split()[1] == "train" and "--grid" in train_grid
    cwd, made = demo_run
    assert made.returncode == 0, made.stdout + made.stderr
    monkeypatch.chdir(cwd)
    out = run_as_written(train_grid, capfd)
    cells = 1 + (importlib.util.find_spec("ai_edge_litert") is not None)  # none, and BirdNET when its extra is in
    assert "<- winner, saved" in out and f"grid: {cells} cells in" in out, out
    assert (cwd / "demo-output" / "grid" / "model" / "model.json").is_file()
    assert (cwd / "demo-output" / "grid" / "report" / "grid.png").is_file()


def test_auto_embedders_are_those_the_table_holds(tmp_path):
    """The default axis (auto) is none plus the embedders whose columns were read: a table without BirdNET (the extra
    not installed) or with random weights left out still runs the grid; a named embedder stays strict."""
    source = write_features(synthetic_features(30, embedders=("vggish",)).table, str(tmp_path / "t"))
    assert grid_embedders(("auto",), read_features(source, task="urban_natural").columns) == ("none",)
    with_random = read_features(source, task="urban_natural", include_random_weights=True)
    assert grid_embedders(("auto",), with_random.columns) == ("none", "vggish")
    assert grid_embedders(("none", "birdnet"), with_random.columns) == ("none", "birdnet")
    with pytest.raises(ConfigError, match="grid_embedders: auto stands alone"):
        validate(TrainConfig(features="f", output="o", grid_embedders=("auto", "vggish")))
