"""A training candidate is one module: toys declared here, outside the package, run through train, the CLI and
predict without any edit to acoustic_env (issue 59, part 1; issue 83, part 3; docs/development.md, "Adding a model").

The vector toy is Gaussian naive Bayes with a searched smoothing: scikit-learn's own estimator, so skops saves it,
and a model that cannot weigh classes, so its balance is declared ``none``. The network toy is a one-hidden-layer
torch network trained by the package's one training loop (``learn.fit.fit``), declared to train under a Ray Tune
search in the split evaluation (``trains="tune"``, its ``tune_space``, ``restore`` and ``predict``).
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import pkgutil
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.preprocessing import StandardScaler
from torch import nn

import acoustic_env as ae
from acoustic_env import candidates
from acoustic_env.candidates.space import Space, numbers, one_of
from acoustic_env.candidates.spec import Build, CandidateSpec, standardised
from acoustic_env.cli import main
from acoustic_env.config import ConfigError, TrainConfig, from_dict
from acoustic_env.demo.tables import synthetic_features, write_features
from acoustic_env.jobs.train.job import train
from acoustic_env.learn.balance import Balance
from acoustic_env.learn.fit import Schedule, fit
from acoustic_env.learn.mlp import n_outputs, predict_proba
from acoustic_env.learn.zoo import make_estimator
from acoustic_env.registry import lazy
from recipe_files import lazily_named, named, recipe_files

GROUP = "indices_raw"


def build_nb(p: dict[str, Any], b: Build) -> Any:
    """Gaussian naive Bayes behind the scaler every scikit-learn candidate has."""
    from sklearn.naive_bayes import GaussianNB

    return standardised(GaussianNB(var_smoothing=p["var_smoothing"]), b)


NB = CandidateSpec("nb", "Gaussian naive Bayes (a test's toy)", build=build_nb, format="skops", balance="none",
                   balance_note="its priors are the class rates", params={"var_smoothing": 1e-9},
                   space=Space({"var_smoothing": numbers(1e-12, 1e-3, log=True)}))


def tiny_module(width: int, kind: str, n_classes: int, network: dict[str, Any]) -> nn.Module:
    """One hidden layer of ``network["hidden"]`` tanh units: the toy network's architecture."""
    return nn.Sequential(nn.Linear(width, network["hidden"]), nn.Tanh(),
                         nn.Linear(network["hidden"], n_outputs(kind, n_classes)))


class TinyNet(ClassifierMixin, BaseEstimator):
    """The toy network as the zoo and the split evaluation take a network: ``fit`` (cross-validation: it
    standardises and holds out its own early-stopping rows) and ``train`` on a split the caller made (a Ray Tune
    trial: ``on_round`` after each round), both through the package's one training loop."""

    def __init__(self, seed: int, network: dict[str, Any], max_rounds: int, patience: int, val_fraction: float,
                 threads: int | None = None, class_weight: str | None = None, balanced_sampler: bool = False):
        self.seed, self.network, self.max_rounds, self.patience = seed, network, max_rounds, patience
        self.val_fraction, self.threads = val_fraction, threads
        self.class_weight, self.balanced_sampler = class_weight, balanced_sampler

    def fit(self, X: np.ndarray, y: np.ndarray) -> TinyNet:
        self.scaler_ = StandardScaler().fit(X)
        x = self.scaler_.transform(X).astype(np.float32)
        kind, k = ("multi_label", y.shape[1]) if y.ndim == 2 else ("single_label", int(y.max()) + 1)
        val = np.random.default_rng(self.seed).random(len(y)) < self.val_fraction
        self.train({"x_train": x[~val], "y_train": y[~val], "x_val": x[val], "y_val": y[val]}, kind, k)
        return self

    def train(self, data: dict[str, np.ndarray], kind: str, n_classes: int, steps_per_round: int = 10,
              prepare: Any = None, on_round: Any = None, device: Any = "cpu", rank: int = 0,
              world: int = 1) -> dict[str, Any]:
        torch.manual_seed(self.seed)
        self.model_ = tiny_module(data["x_train"].shape[1], kind, n_classes, self.network).to(device)
        result = fit(prepare(self.model_) if prepare else self.model_, data, kind, n_classes, self.network,
                     Schedule(self.max_rounds, self.patience, steps_per_round), self.seed + rank,
                     class_weight=self.class_weight, balanced_sampler=self.balanced_sampler, on_round=on_round,
                     device=device, rank=rank, world=world)
        self.kind_, self.n_classes_, self.classes_ = kind, n_classes, np.arange(n_classes)
        self.history_ = result["history"]
        return result

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return predict_proba(self.model_, self.scaler_.transform(X).astype(np.float32), self.kind_, self.n_classes_)


def build_tiny(p: dict[str, Any], b: Build) -> TinyNet:
    return TinyNet(seed=b.seed, threads=b.threads, **p)


def restore_tiny(shape: tuple[int, ...], kind: str, n_classes: int, network: dict[str, Any],
                 state: dict[str, Any]) -> nn.Module:
    """The network a Ray Tune trial trained, from its best round's weights (the split evaluation scores it)."""
    module = tiny_module(shape[0], kind, n_classes, network)
    module.load_state_dict(state)
    return module.eval()


TINY = CandidateSpec(
    "tinynet", "a one-hidden-layer network (a test's toy)", build=build_tiny, balance="network", calibrated=False,
    params={"max_rounds": 4, "patience": 2, "val_fraction": 0.25, "class_weight": None, "balanced_sampler": False,
            "network": {"hidden": 8, "lr": 1e-2, "weight_decay": 1e-4, "batch_size": 32}},
    trains="tune", tune_space=Space({"hidden": one_of(4, 8, 16), "lr": numbers(1e-3, 3e-2, log=True)},
                                    within="network"),
    restore=restore_tiny, predict=predict_proba)


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
    with pytest.raises(ValueError, match="tinynet: trains 'tune' needs tune_space, predict$"):
        replace(TINY, tune_space=None, predict=None)
    with pytest.raises(ValueError, match="nb: trains 'stream' needs restore, params\\['network'\\]$"):
        replace(NB, trains="stream")
    with pytest.raises(ValueError, match="tinynet: trains 'stream' is for images"):
        replace(TINY, trains="stream")
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
    assert fitted.tuning_ is not None and len(fitted.tuning_.trials) == 3  # its space, sampled
    assert NB.space.ranges["var_smoothing"].holds(fitted.params_["var_smoothing"])
    proba = fitted.predict_proba(x)
    assert proba.shape == (40, 2) and (proba.argmax(axis=1) == y).mean() > 0.8
    assert Balance("balanced").describe("nb", "single_label") == "none: nb cannot weigh classes (its priors are " \
                                                                  "the class rates)"


def ae_plan(trials: int):
    from acoustic_env.learn.tuning import TuningPlan

    return TuningPlan(trials, 2)


@pytest.mark.slow
def test_the_toy_is_compared_saved_and_predicted_through_the_cli(toy, table, tmp_path, capsys):
    """train on the CLI compares the toy on the same folds as logreg, saves it when asked, and predict reproduces
    the probabilities of the model refitted on every clip."""
    out = tmp_path / "out"
    code = main(["train", "--features", table, "--output", str(out), "--feature-groups", GROUP, "--cv-folds", "3",
                 "--baselines", "logreg,nb", "--saved-model", "nb", "--no-ablations", "--shap-samples", "0",
                 "--tuning-trials", "2", "--no-progress"])
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


@pytest.fixture
def toys():
    """Both toys registered for one test, forgotten after it."""
    for spec in (NB, TINY):
        candidates.register(spec)
    yield
    for spec in (NB, TINY):
        candidates.unregister(spec.name)


def _toys_config(table: str, out: Path, **fields: Any) -> TrainConfig:
    return from_dict(TrainConfig, {"features": table, "output": str(out), "feature_groups": [GROUP],
                                   "baselines": ["nb", "tinynet"], "tuning_trials": 1, "ablations": False,
                                   "shap_samples": 0, "progress": False, **fields})


def test_train_compares_a_vector_toy_and_a_network_toy_on_the_same_folds(toys, table, tmp_path, monkeypatch):
    """Cross-validation, in this process: both toys are fitted on every fold beside the MLP (one round here: the
    toys are the subject) and scored on the same out-of-fold clips; the network toy, which has no saved form, is
    compared but never saved."""
    monkeypatch.setitem(candidates.PARAMS["mlp"], "max_rounds", 1)
    result = train(_toys_config(table, tmp_path / "out", cv_folds=2))
    ev = result.evaluation
    assert ev["method"] == "cross_validation" and ev["candidates"] == ["mlp", "nb", "tinynet", "average"]
    assert ev["scores"]["nb"] > 0.8 and ev["scores"]["tinynet"] > 0.8  # the classes are well apart
    assert ev["saved_model"] != "tinynet" and result.metrics["tinynet"]["n"] == 48
    assert len(ev["models"]["tinynet"]["per_fold"]) == 2


@pytest.mark.slow
def test_the_split_trains_the_network_toy_under_its_own_ray_tune_search(toys, ray_session, table, tmp_path):
    """The split evaluation trains the network toy as its spec says: trials of its ``tune_space`` on Ray (the spec
    travels to the trials by value: Ray's workers cannot import this module), the best read back by its
    ``restore`` and scored on the test split by its ``predict``; the vector toy in this process."""
    import ray.cloudpickle

    module = __import__(__name__)
    ray.cloudpickle.register_pickle_by_value(module)
    try:
        result = train(_toys_config(table, tmp_path / "out", cv_folds=0, trials=2, max_rounds=2, grace_rounds=1,
                                    steps_per_round=5))
    finally:
        ray.cloudpickle.unregister_pickle_by_value(module)
    ev, method = result.evaluation, result.search["method"]
    assert ev["method"] == "split" and ev["candidates"] == ["mlp", "tinynet", "nb"]
    assert "tinynet: Optuna TPE (Bayesian) with ASHA early termination" in method, method
    n_test = result.counts["splits"]["test"]["clips"]
    assert result.metrics["tinynet"]["n"] == result.metrics["nb"]["n"] == n_test
    assert result.metrics["tinynet"]["roc_auc"] > 0.8, result.metrics["tinynet"]


# --- the recipe names every file a built-in needs ---------------------------------------------------------------


def candidate_files(module: Any, spec: CandidateSpec) -> set[str]:
    """What a built-in candidate needs, read from the code: its module and the registry's list, the modules its
    module and its spec's hooks name lazily, the saved forms' reader, and the train config's own flags."""
    needed = {f"candidates/{module.__name__.rsplit('.', 1)[1]}.py", "candidates/__init__.py",
              *lazily_named(*vars(module).values(), *(getattr(spec, f.name) for f in dataclasses.fields(spec)))}
    if spec.format:
        needed.add("learn/portable.py")
    if any(f.name.startswith(f"{spec.name}_") for f in dataclasses.fields(TrainConfig)):
        needed.add("config/learning.py")
    return needed


def builtin_candidates() -> list[tuple[Any, CandidateSpec]]:
    """Every built-in candidate with the module that states it."""
    import acoustic_env.candidates as package

    modules = [importlib.import_module(f"{package.__name__}.{m.name}") for m in pkgutil.iter_modules(package.__path__)
               if m.name not in ("spec", "space")]
    return [(m, s) for m in modules for s in getattr(m, "SPECS", ()) or [m.SPEC]]


def test_the_recipe_names_every_file_a_built_in_candidate_needs():
    files = recipe_files("Adding a model")
    found = builtin_candidates()
    assert {s.name for _, s in found} == set(candidates.names())  # every built-in, nothing else registered
    missing = {s.name: gaps for m, s in found
               if (gaps := named(files, candidate_files(m, s), name=m.__name__.rsplit(".", 1)[1]))}
    assert not missing, f"docs/development.md, Adding a model, lists none of {missing}"


def test_a_built_in_needing_a_file_the_recipe_does_not_name_is_caught():
    """The check can fail: a network whose estimator lives in a module the list does not name."""
    module, spec = next((m, s) for m, s in builtin_candidates() if s.name == "mlp")
    moved = SimpleNamespace(**{**vars(module), "_MLP": lazy("acoustic_env.learn.new_estimator", "MLPClassifier")})
    moved.__name__ = module.__name__
    assert named(recipe_files("Adding a model"), candidate_files(moved, spec), name="network") == {
        "learn/new_estimator.py"}
