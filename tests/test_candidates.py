"""A training candidate is one module: a toy declared here, outside the package, runs through train, the CLI and
predict without any edit to acoustic_env (issue 59, part 1; docs/development.md, "Adding a model").

The toy is Gaussian naive Bayes with a searched smoothing: scikit-learn's own estimator, so skops saves it, and
a model that cannot weigh classes, so its balance is declared ``none``.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import acoustic_env as ae
from acoustic_env import candidates
from acoustic_env.candidates.space import Space, numbers
from acoustic_env.candidates.spec import Build, CandidateSpec, standardised
from acoustic_env.cli import main
from acoustic_env.config import ConfigError, TrainConfig, from_dict
from acoustic_env.demo.tables import synthetic_features, write_features
from acoustic_env.learn.balance import Balance
from acoustic_env.learn.zoo import make_estimator

GROUP = "indices_raw"


def build_nb(p: dict[str, Any], b: Build) -> Any:
    """Gaussian naive Bayes behind the scaler every scikit-learn candidate has."""
    from sklearn.naive_bayes import GaussianNB

    return standardised(GaussianNB(var_smoothing=p["var_smoothing"]), b)


NB = CandidateSpec("nb", "Gaussian naive Bayes (a test's toy)", build=build_nb, format="skops", balance="none",
                   balance_note="its priors are the class rates", params={"var_smoothing": 1e-9},
                   space=Space({"var_smoothing": numbers(1e-12, 1e-3, log=True)}))


@pytest.fixture
def toy():
    """The toy registered for one test, forgotten after it."""
    candidates.register(NB)
    yield NB
    candidates.unregister(NB.name)


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> str:
    """48 clips of two well-separated classes, 2 clips a recording."""
    root = tmp_path_factory.mktemp("toy")
    return write_features(synthetic_features(48, seed=3, signals=("raw",), rows_per_group=2).table, str(root / "t"))


def test_a_registered_candidate_is_a_choice_of_every_config_that_names_models(toy):
    cfg = from_dict(TrainConfig, {"features": "f", "output": "o", "baselines": ["logreg", "nb"], "saved_model": "nb"})
    assert cfg.baselines == ("logreg", "nb")
    assert "nb" in candidates.PARAMS and candidates.SPACES["nb"] is NB.space and candidates.FORMATS["nb"] == "skops"
    assert list(candidates.names())[-1] == "nb"  # registered last: the least simple, for ties
    candidates.unregister("nb")
    with pytest.raises(ConfigError, match=r"^baselines: .*got 'nb'"):
        from_dict(TrainConfig, {"features": "f", "output": "o", "baselines": ["nb"]})


def test_a_declaration_that_contradicts_itself_is_refused_when_declared():
    with pytest.raises(ValueError, match="nb: balance 'weights' needs a class_weight setting"):
        replace(NB, balance="weights")
    with pytest.raises(ValueError, match="nb: format must be one of"):
        replace(NB, format="pickle")
    with pytest.raises(ValueError, match="'logreg' is already registered"):
        candidates.register(replace(NB, name="logreg"))


def test_the_zoo_builds_searches_and_balances_the_toy_from_its_declaration(toy):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 3))
    y = (x[:, 0] > 0).astype(int)
    fitted = make_estimator("nb", "single_label", 2, search=ae_plan(3), balance=Balance("balanced")).fit(
        x, y, groups=np.arange(40) // 2)
    assert fitted.search_ is not None and len(fitted.search_.trials) == 3  # its space, sampled
    assert NB.space.ranges["var_smoothing"].holds(fitted.params_["var_smoothing"])
    proba = fitted.predict_proba(x)
    assert proba.shape == (40, 2) and (proba.argmax(axis=1) == y).mean() > 0.8
    assert Balance("balanced").describe("nb", "single_label") == "none: nb cannot weigh classes (its priors are " \
                                                                  "the class rates)"


def ae_plan(trials: int):
    from acoustic_env.learn.tuning import SearchPlan

    return SearchPlan(trials, 2)


@pytest.mark.slow
def test_the_toy_is_compared_saved_and_predicted_through_the_cli(toy, table, tmp_path, capsys):
    """train on the CLI compares the toy on the same folds as logreg, saves it when asked, and predict reproduces
    the probabilities of the model refitted on every clip."""
    out = tmp_path / "out"
    code = main(["train", "--features", table, "--output", str(out), "--feature-groups", GROUP, "--cv-folds", "3",
                 "--baselines", "logreg,nb", "--saved-model", "nb", "--no-ablations", "--shap-samples", "0",
                 "--search-trials", "2", "--no-progress"])
    assert code == 0, capsys.readouterr().err
    metrics = json.loads((out / "report" / "metrics.json").read_text())
    ev = metrics["evaluation"]
    assert set(ev["candidates"]) >= {"logreg", "nb", "mlp"} and ev["saved_model"] == "nb"
    assert ev["scores"]["nb"] > 0.8  # the classes are well apart
    assert metrics["search"]["nested"]["nb"]["settings"] == 2  # searched in each outer fold, from its space
    model = ae.load_model(str(out / "model"))
    assert model.meta["estimator"]["name"] == "nb" and model.meta["estimator"]["format"] == "skops"
    assert (Path(out / "model") / "estimator.skops").is_file() and not list(Path(out / "model").glob("*.pkl"))
    proba = model.predict_proba(table)
    assert proba.shape == (48, 2) and np.allclose(proba.sum(axis=1), 1)
    labels = np.asarray([int(p[1] > p[0]) for p in proba])
    truth = np.asarray(ae.read_features(table, task="urban_natural").y)
    assert (labels == truth).mean() > 0.8
