"""The compared models' average as a saved model (``learn.portable.Average``, ``jobs.train.saved``): chosen when it
scores best, saved as its members each on its own feature set, loaded back with the probabilities of the members
refitted as the job fits them, and refused in one line where it has no saved form."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import acoustic_env as ae
from acoustic_env.candidates import AVERAGE
from acoustic_env.config import ConfigError, TrainConfig, from_dict
from acoustic_env.demo.tables import synthetic_features, write_features
from acoustic_env.jobs.train.evaluation import CV_THREADS, preprocessing
from acoustic_env.jobs.train.job import summary_lines, train
from acoustic_env.learn.cv import choose
from acoustic_env.learn.duplicates import merge_duplicate_groups
from acoustic_env.learn.transform import columns_of
from acoustic_env.learn.tuning import TuningPlan
from acoustic_env.learn.zoo import make_estimator
from acoustic_env.table import read_features
from acoustic_env.vocabulary.tasks import load_task

PRETRAINED = "ab" * 32  # a checksum standing in for pretrained weights


def test_the_average_of_vector_models_is_chosen_when_it_scores_best_and_not_with_an_image_model():
    y = np.array([0, 1, 0, 1])
    flat, sharp = np.tile([0.5, 0.5], (4, 1)), np.stack([1 - y * 0.9, y * 0.9], axis=1)
    chosen, best, _ = choose("single_label", y, {"logreg": flat, "xgboost": flat, AVERAGE: sharp})
    assert chosen == best == AVERAGE
    chosen, best, _ = choose("single_label", y, {"logreg": flat, "cnn": flat, AVERAGE: sharp})
    assert (chosen, best) == ("logreg", AVERAGE)  # the CNN reads images: no saved form for that average
    tie = {"logreg": sharp, "xgboost": flat, AVERAGE: sharp}
    assert choose("single_label", y, tie)[0] == "logreg"  # a tie goes to the simpler: one model, not three


@pytest.mark.parametrize("settings, words", [
    ({"baselines": ["logreg", "cnn"]}, "no cnn among the baselines"),
    ({"baselines": ["logreg"], "cv_folds": 0}, "needs cv_folds >= 2"),
    ({"baselines": []}, "each a model of the feature vectors"),  # the MLP alone: nothing to average
])
def test_saved_model_average_needs_two_vector_models_under_cross_validation(settings, words):
    with pytest.raises(ConfigError, match=r"^saved_model: average is saved as its members") as caught:
        from_dict(TrainConfig, {"features": "f", "output": "o", "saved_model": AVERAGE, **settings})
    assert words in str(caught.value) and "\n" not in str(caught.value)


@pytest.fixture(scope="module")
def averaged(tmp_path_factory):
    """One train run saving the average of logreg and the MLP on a table with a (stand-in) pretrained embedder, so
    that each member chooses its own feature set: (config, result)."""
    root = tmp_path_factory.mktemp("average")
    table = synthetic_features(60, seed=3, embedders=("vggish",), weights=PRETRAINED, signals=("raw",)).table
    cfg = from_dict(TrainConfig, {"features": write_features(table, str(root / "t")), "output": str(root / "o"),
                                  "cv_folds": 3, "tuning_folds": 2, "tuning_trials": 1, "baselines": ["logreg"],
                                  "saved_model": AVERAGE, "ablations": False, "shap_samples": 4, "progress": False,
                                  "max_rounds": 3, "grace_rounds": 1, "patience": 2})
    return cfg, train(cfg)


def _refit_as_the_job(cfg: TrainConfig, name: str, groups: list[str]) -> tuple[np.ndarray, str]:
    """Member ``name`` fitted on every clip on ``groups`` alone, as the job fits a saved model, recomputed here:
    its probabilities on every clip, and the table read (the clips' order)."""
    task = load_task(cfg.task)
    features = read_features(cfg.features, task=task, feature_groups=groups, signals=cfg.signals)
    features = merge_duplicate_groups(features).apply(features)
    prep, raw = preprocessing(cfg, features)
    fitted = make_estimator(name, task.kind, task.n_classes, cfg.seed, CV_THREADS,
                            search=TuningPlan(cfg.tuning_trials, cfg.tuning_folds), calibrate=True,
                            preprocessing=prep).fit(raw, features.y, groups=features.groups)
    return fitted.predict_proba(raw), features.ids


def test_the_saved_average_holds_each_member_on_its_own_set_and_scores_as_the_members_refitted(averaged):
    cfg, result = averaged
    ev = result.evaluation
    assert ev["saved_model"] == AVERAGE
    assert ("asked for with saved_model" in ev["description"]) == (ev["chosen"] != AVERAGE)
    saved = ev["feature_sets"]["saved"]
    members = {m["model"]: m for m in saved["members"]}
    assert set(members) == {"logreg", "mlp"}
    for m in members.values():  # each member's set is one of the sets, read whole
        assert m["groups"] == ev["feature_sets"]["sets"][m["set"]]
    model = ae.load_model(result.model)
    spec = model.meta["estimator"]
    assert spec["format"] == AVERAGE and [m["estimator"]["name"] for m in spec["members"]] == ["logreg", "mlp"]
    assert sorted(model.groups) == sorted({g for m in members.values() for g in m["groups"]}) == sorted(saved["groups"])
    for m in spec["members"]:
        assert sorted(m["groups"]) == sorted(members[m["estimator"]["name"]]["groups"])
        assert (Path(result.model) / "members" / m["estimator"]["name"] / "estimator.npz").is_file()
    assert (Path(result.model) / "members" / "mlp" / "weights.pt").is_file() and not list(
        Path(result.model).rglob("*.pkl"))
    refitted = [_refit_as_the_job(cfg, name, members[name]["groups"]) for name in ("logreg", "mlp")]
    assert list(refitted[0][1]) == list(refitted[1][1])
    table = model.predict_table(cfg.features)
    assert table["clip_id"].to_pylist() == list(refitted[0][1])
    np.testing.assert_allclose(model.predict_proba(cfg.features), np.mean([p for p, _ in refitted], axis=0),
                               rtol=0, atol=1e-6)


def test_the_report_console_and_record_explain_the_saved_average_member_by_member(averaged):
    _, result = averaged
    metrics = json.loads(Path(result.report).with_name("metrics.json").read_text())
    assert set(metrics["search"]["params"]) == {"model", "logreg", "mlp"}
    assert {t["model"] for t in metrics["search"]["trials"]} <= {"logreg", "mlp"}
    assert "The saved average's members were tuned the same way on all clips: logreg (" in metrics["search"]["method"]
    assert set(metrics["shap"]) == {"logreg", "mlp"}  # each member explained on its own groups
    for name, shap in metrics["shap"].items():
        member = next(m for m in metrics["evaluation"]["feature_sets"]["saved"]["members"] if m["model"] == name)
        assert set(shap["by_group"]) == set(member["groups"])
    lines = summary_lines(result)
    assert any(line.startswith("    saved average reads logreg ") and "; mlp " in line for line in lines)
    assert any("the saved model's map: logreg " in line and "; mlp " in line for line in lines)
    page = Path(result.report).read_text()
    assert "The saved average chose <b>logreg " in page


def _copy(result, tmp_path: Path) -> Path:
    dst = tmp_path / "model"
    shutil.copytree(result.model, dst)
    return dst


@pytest.mark.parametrize("damage, words", [
    (lambda spec, path: spec["members"].pop(), "has no 'estimator.members' as a train job writes them"),
    (lambda spec, path: spec["members"][0].update(groups=["nope"]), "reads no preprocessing for group(s) nope"),
    (lambda spec, path: shutil.rmtree(path / "members" / "mlp"), "at members/mlp: estimator.npz is missing"),
])
def test_a_damaged_average_is_one_line_naming_what(averaged, tmp_path, damage, words, capsys):
    path = _copy(averaged[1], tmp_path)
    meta = json.loads((path / "model.json").read_text())
    damage(meta["estimator"], path)
    (path / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ConfigError) as caught:
        ae.load_model(str(path))
    message = str(caught.value)
    assert message.startswith("model: ") and words in message.replace(str(path) + "/", "") and "\n" not in message


def test_a_members_columns_are_its_groups_components_in_the_models_input_order():
    from acoustic_env.learn.transform import GroupTransform

    def group(name: str, k: int) -> GroupTransform:
        return GroupTransform(name, np.zeros(3), np.ones(3), np.ones((k, 3)), np.zeros(k), np.ones(k), np.ones(k))

    transforms = [group("a", 2), group("b", 3), group("c", 1)]
    assert columns_of(transforms, ["c", "a"]).tolist() == [0, 1, 5]  # the inputs' order, whatever the list's
    assert columns_of(transforms, ["b"]).tolist() == [2, 3, 4] and columns_of(transforms, []).size == 0
    with pytest.raises(ValueError, match=r"no preprocessing for group\(s\) d \(has: a, b, c\)"):
        columns_of(transforms, ["a", "d"])


def test_the_shuffled_contrast_of_the_average_cross_validates_its_members_again(averaged, monkeypatch):
    from acoustic_env.jobs.train import shuffled
    from acoustic_env.jobs.train.evaluation import tuning_plan

    cfg, _ = averaged
    task = load_task(cfg.task)
    features = read_features(cfg.features, task=task, feature_groups=["indices_raw"])
    asked = []
    real = shuffled.cross_validate
    monkeypatch.setattr(shuffled, "cross_validate", lambda *a, **k: asked.append(a[5]) or real(*a, **k))
    grouped = np.tile([0.5, 0.5], (len(features), 1))
    contrast = shuffled.shuffled_contrast(cfg, task, features, AVERAGE, grouped, 3, tuning_plan(cfg), {}, None,
                                          ["logreg", "mlp", AVERAGE])
    assert asked == [["logreg", "mlp"]] and contrast["model"] == AVERAGE
    assert contrast["grouped"]["roc_auc"] == 0.5 and 0 <= contrast["shuffled"]["roc_auc"] <= 1


def test_saved_model_average_above_cv_max_clips_is_one_line_before_any_fit(averaged, tmp_path):
    cfg, _ = averaged
    over = from_dict(TrainConfig, {**cfg.to_dict(), "output": str(tmp_path / "o"), "cv_max_clips": 20})
    with pytest.raises(ConfigError, match=r"^saved_model: average is the average of the cross-validated models, and "
                                          r"60 clips take the train/val/test split \(above cv_max_clips=20, or above "
                                          r"memory_gb\); raise those or leave saved_model out$"):
        train(over)
    assert not (tmp_path / "o" / "model").exists()


def test_the_saved_models_feature_set_is_chosen_on_grouped_inner_folds_of_all_clips(tmp_path, monkeypatch,
                                                                                  tuned_pca_rules):
    """The saved model (refitted on every clip) chooses its set as each fold model chose its own, but on every clip:
    the set choice sees all clips' raw rows and labels, folds them by their groups (recordings) into --tuning-folds
    inner folds, and the saved model reads only the set it chose (issue 84, behaviour 5)."""
    from acoustic_env.jobs.train import saved
    from acoustic_env.jobs.train.evaluation import tuning_plan
    from acoustic_env.learn import feature_sets
    from acoustic_env.learn.feature_sets import candidate_sets

    table = synthetic_features(40, seed=3, embedders=("vggish",), weights=PRETRAINED, signals=("raw",)).table
    cfg = from_dict(TrainConfig, {"features": write_features(table, str(tmp_path / "t")), "output": str(tmp_path / "o"),
                                  "tuning_folds": 2, "tuning_trials": 1, "baselines": ["logreg"], "progress": False})
    task = load_task(cfg.task)
    features = merge_duplicate_groups(read_features(cfg.features, task=task, signals=cfg.signals)).apply(
        read_features(cfg.features, task=task, signals=cfg.signals))
    assert len(set(features.groups)) < len(features)  # clips share recordings: grouping matters
    calls, folds = [], []
    real_choose, real_splits = feature_sets.choose_set, feature_sets.inner_splits
    monkeypatch.setattr(feature_sets, "choose_set", lambda *a: calls.append(a) or real_choose(*a))
    monkeypatch.setattr(feature_sets, "inner_splits", lambda *a: folds.append(a) or real_splits(*a))
    sets = candidate_sets(features.feature_groups)
    kept = saved.refit(cfg, task, features, "logreg", ["logreg"], sets, tuning_plan(cfg), {})
    assert len(calls) == max(1, len(kept.rule_scores))  # one choice of the set per PCA count rule tried
    for _, given_sets, x, y, groups, n_folds, seed, kind, _ in calls:
        assert given_sets == sets and len(x) == len(features) and n_folds == 2 and seed == cfg.seed
        np.testing.assert_array_equal(y, features.y)
        np.testing.assert_array_equal(groups, features.groups)
    # the inner folds it scored the sets on keep every recording on one side (the same folds for every rule)
    splits = real_splits(y, groups, n_folds, seed)
    assert len(splits) == 2 and len(folds) == 1 + len(calls)
    assert all(np.array_equal(f[1], groups) and f[2] == 2 for f in folds)
    for fit_on, scored in splits:
        assert not set(groups[fit_on]) & set(groups[scored])
    chosen = kept.sets["logreg"]
    assert kept.groups["logreg"] == list(sets[chosen["set"]]) == chosen["groups"]
    assert sorted(g.name for g in kept.features.feature_groups) == sorted(chosen["groups"])
