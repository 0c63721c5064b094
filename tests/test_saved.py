"""The saved model under cross-validation (``jobs.train.saved``), on small tables built here in memory: which models
it fits, which feature set and PCA count rule each takes (chosen on grouped inner folds of all clips), what it reads
and what it saves. Each test runs the job's own refit in this process, in about a second; the whole train runs
around it are ``tests/test_saved_average.py``'s."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pyarrow as pa
import pytest

from acoustic_env.candidates import AVERAGE
from acoustic_env.config import TrainConfig, from_dict
from acoustic_env.jobs.train import saved
from acoustic_env.jobs.train.evaluation import tuning_plan
from acoustic_env.learn.feature_sets import candidate_sets
from acoustic_env.learn.portable import Average
from acoustic_env.learn.preprocess import ROWS_PER_COMPONENT, n_components_for
from acoustic_env.learn.zoo import make_estimator
from acoustic_env.table import CLIP_COLUMNS, FeatureSet, GroupInfo
from acoustic_env.vocabulary.tasks import Task

TASK = Task("t", "single_label", ("no", "yes"), (frozenset({"no"}), frozenset({"yes"})), {})
CFG = from_dict(TrainConfig, {"features": "f", "output": "o", "tuning_trials": 1, "tuning_folds": 2,
                              "progress": False})
PRETRAINED = "ab" * 32  # a checksum standing in for pretrained weights
#: 12 recordings of 4 clips each; a recording's clips share its class
RECORDINGS, CLIPS = 12, 4


def _features(x: dict[str, np.ndarray], y: np.ndarray, recording: np.ndarray) -> FeatureSet:
    """The clips as the table's reader gives them: each group of ``x`` (``<source>_raw``, an embedder's with
    pretrained weights), the class of each clip, its recording as its group."""
    n = len(y)
    groups = np.array([f"rec{r}" for r in recording], dtype=object)
    labels = [[TASK.class_names[c]] if np.ndim(c) == 0 else [f"{k}" for k in np.flatnonzero(c)] for c in y]
    clips = pa.table({"clip_id": [f"clip{i:03d}" for i in range(n)], "uri": [f"/audio/rec{r}.wav" for r in recording],
                      "start_s": [float(i % CLIPS) for i in range(n)], "end_s": [float(i % CLIPS + 1) for i in range(n)],
                      "labels": labels, "group": list(groups)}, schema=CLIP_COLUMNS)
    info = tuple(GroupInfo(name, m.shape[1], name.removesuffix("_raw"), "raw",
                           None if name.startswith("indices") else PRETRAINED) for name, m in x.items())
    return FeatureSet(None, clips, info, {k: v.astype(np.float32) for k, v in x.items()}, y, groups, True,
                      {"rows": {}, "columns": {}}, n)


def _recordings(seed: int = 0) -> tuple[np.random.Generator, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    recording = np.repeat(np.arange(RECORDINGS), CLIPS)
    return rng, recording, recording % 2


@pytest.fixture(scope="module")
def leaky() -> FeatureSet:
    """The class in the acoustic indices (``indices_raw``, through each clip's noise), and an embedder group
    (``vggish_raw``) that tells only which recording a clip comes from: it predicts the class of a clip whose
    recording was fitted on, and nothing of a new recording."""
    rng, recording, y = _recordings()
    indices = y[:, None] * 1.5 + rng.normal(size=(len(y), 4))
    identity = rng.normal(size=(RECORDINGS, 32))[recording] + 0.05 * rng.normal(size=(len(y), 32))
    return _features({"indices_raw": indices, "vggish_raw": identity}, y, recording)


@pytest.fixture(scope="module")
def deep() -> FeatureSet:
    """One embedder group whose class lies past its first components: eight loud directions of noise, then the
    class. An inner fit (24 rows) that keeps one component per four rows keeps the noise alone; one per row
    reaches the class."""
    rng, recording, y = _recordings()
    noise = rng.normal(size=(len(y), 8)) @ rng.normal(size=(8, 32)) * 3
    signal = y + 0.3 * rng.normal(size=len(y))
    values = noise + np.outer(signal, rng.normal(size=32)) * 1.5 + rng.normal(size=(len(y), 32))
    return _features({"vggish_raw": values}, y, recording)


def _args(features: FeatureSet, model: str, compared: tuple[str, ...], sets: bool,
          images: dict[str, np.ndarray] | None) -> tuple:
    """``refit``'s and ``take``'s arguments as cross-validation passes them."""
    return (CFG, TASK, features, model, list(compared), candidate_sets(features.feature_groups) if sets else None,
            tuning_plan(CFG), images or {})


def _refit(features: FeatureSet, model: str = "logreg", compared: tuple[str, ...] = ("logreg",), sets: bool = True,
           images: dict[str, np.ndarray] | None = None) -> saved.Saved:
    return saved.refit(*_args(features, model, compared, sets, images))


def _take(features: FeatureSet, model: str = "logreg", compared: tuple[str, ...] = ("logreg",), sets: bool = True,
          images: dict[str, np.ndarray] | None = None) -> saved.Taken:
    return saved.take(*_args(features, model, compared, sets, images))


@pytest.fixture(scope="module")
def average(leaky) -> saved.Saved:
    """The average of logistic regression and the elastic net saved from ``leaky``'s clips."""
    return _refit(leaky, AVERAGE, ("logreg", "elasticnet", AVERAGE))


def test_the_saved_set_is_chosen_on_folds_that_keep_each_recording_whole(leaky):
    """A set that only recognises recordings wins on folds that split them, never on the grouped inner folds
    of all clips the saved model chooses on (issue 84, behaviour 5)."""
    taken = _take(leaky)
    chosen = taken.sets["logreg"]
    assert chosen["set"] == "hand-made" and chosen["groups"] == ["indices_raw"] == taken.groups["logreg"]
    assert chosen["scores"]["hand-made"] > chosen["scores"]["vggish"] and chosen["rule"] == taken.rule
    # the same clips with each clip its own recording: the identity looks perfect, and a set holding it is chosen
    unfolded = _take(replace(leaky, groups=np.array([f"clip{i}" for i in range(len(leaky))], dtype=object)))
    assert unfolded.sets["logreg"]["scores"]["vggish"] > chosen["scores"]["vggish"]
    assert "vggish_raw" in unfolded.groups["logreg"]


def test_the_saved_model_reads_and_saves_only_its_set(leaky):
    kept = _refit(leaky)
    assert [g.name for g in kept.features.feature_groups] == ["indices_raw"] == list(kept.features.X)
    assert kept.features.excluded["columns"] == {"vggish_raw": saved.FEATURE_SET_REASON}
    assert [t.group for t in kept.transforms] == ["indices_raw"] and kept.x.shape == (len(leaky), 4)
    assert kept.set_record() == kept.sets["logreg"] and kept.set_record()["rule"] == kept.rule
    assert kept.name == "logreg" and kept.estimator is kept.portables["logreg"] and list(kept.fitted) == ["logreg"]
    transforms, groups, x = kept.view("logreg")
    assert [t.group for t in transforms] == [g.name for g in groups] == ["indices_raw"]
    np.testing.assert_array_equal(x, kept.x)
    # the saved form scores the projections as the fitted model scores the raw columns of its set
    np.testing.assert_allclose(kept.estimator.predict_proba(kept.x),
                               kept.fitted["logreg"].predict_proba(leaky.X["indices_raw"]), atol=1e-6)
    assert kept.params == {"model": "logreg", **kept.fitted["logreg"].params_}
    assert kept.components == {"logreg": {"indices_raw": 4}}


def test_without_a_set_search_the_saved_model_reads_every_group(leaky):
    kept = _refit(leaky, sets=False)
    assert kept.sets == {} and kept.set_record() is None
    assert kept.groups == {"logreg": ["indices_raw", "vggish_raw"]} and kept.features is leaky
    assert [t.group for t in kept.transforms] == ["indices_raw", "vggish_raw"]
    assert kept.x.shape[1] == sum(t.n_components for t in kept.transforms)


def test_the_saved_model_keeps_the_pca_count_rule_its_inner_folds_chose(deep, tuned_pca_rules):
    """Where one component per four rows keeps only noise, the inner folds choose one per row, and the saved
    model's PCA, fitted on every clip, keeps that many."""
    kept = _refit(deep, sets=False)
    assert set(kept.rule_scores) == {1, 4} and kept.rule_scores[1] > kept.rule_scores[4]
    assert kept.rule == 1
    target = CFG.pca_target("vggish")
    assert kept.components == {"logreg": {"vggish_raw": n_components_for(target, len(deep), 32, 1)}}
    assert [t.n_components for t in kept.transforms] == [n_components_for(target, len(deep), 32, 1)]
    assert kept.x.shape == (len(deep), n_components_for(target, len(deep), 32, 1))


def test_the_saved_average_takes_every_compared_model_and_a_single_model_itself(leaky):
    assert _take(leaky, AVERAGE, ("logreg", "elasticnet", AVERAGE), sets=False).models == ["logreg", "elasticnet"]
    assert _take(leaky, "elasticnet", ("logreg", "elasticnet", AVERAGE), sets=False).models == ["elasticnet"]
    # a model of images reads no group and chooses no set; the vector models beside it choose theirs
    images = np.zeros((len(leaky), 3), np.float32)
    taken = _take(leaky, AVERAGE, ("logreg", "elasticnet", AVERAGE), images={"elasticnet": images})
    assert list(taken.sets) == ["logreg"]
    assert taken.groups["elasticnet"] == [g.name for g in taken.features.feature_groups]
    alone = _take(leaky, "elasticnet", ("elasticnet",), images={"elasticnet": images})
    assert (alone.sets, alone.rule_scores, alone.features) == ({}, {}, leaky) and alone.rule == ROWS_PER_COMPONENT


def test_the_saved_model_is_the_one_asked_for_fitted_alone(leaky):
    kept = _refit(leaky, "logreg", ("elasticnet", "logreg", AVERAGE))
    assert kept.name == "logreg" and list(kept.fitted) == list(kept.portables) == list(kept.sets) == ["logreg"]
    fitted = kept.fitted["logreg"]
    assert kept.calibration == {"method": fitted.calibration_.method if fitted.calibration_ else "none",
                                "log_loss": fitted.calibration_losses_}
    assert kept.searches == {"logreg": fitted.tuning_} and fitted.tuning_.splits


def test_the_saved_average_holds_each_compared_model_on_its_own_set(average):
    kept = average
    assert kept.name == AVERAGE and list(kept.fitted) == ["logreg", "elasticnet"]
    assert isinstance(kept.estimator, Average)
    assert kept.groups == {m: kept.sets[m]["groups"] for m in ("logreg", "elasticnet")}
    assert kept.estimator.groups == tuple(tuple(kept.groups[m]) for m in ("logreg", "elasticnet"))
    read = {g for m in ("logreg", "elasticnet") for g in kept.groups[m]}
    assert {g.name for g in kept.features.feature_groups} == read == {t.group for t in kept.transforms}
    # the saved average scores every clip as the mean of its members fitted on their raw columns
    raw = np.hstack([kept.features.X[g.name] for g in kept.features.feature_groups])
    np.testing.assert_allclose(kept.estimator.predict_proba(kept.x),
                               np.mean([f.predict_proba(raw) for f in kept.fitted.values()], axis=0), atol=1e-6)
    record = kept.set_record()
    assert record["model"] == AVERAGE and record["members"] == [kept.sets["logreg"], kept.sets["elasticnet"]]
    assert record["set"] == f"logreg {kept.sets['logreg']['set']}; elasticnet {kept.sets['elasticnet']['set']}"
    assert sorted(record["groups"]) == sorted(read)
    assert kept.params == {"model": AVERAGE, "logreg": kept.fitted["logreg"].params_,
                           "elasticnet": kept.fitted["elasticnet"].params_}
    maps = {m: f.calibration_.method if f.calibration_ is not None else "none" for m, f in kept.fitted.items()}
    assert kept.calibration == {"method": f"logreg {maps['logreg']}; elasticnet {maps['elasticnet']}",
                                "log_loss": {m: f.calibration_losses_ for m, f in kept.fitted.items()}}
    assert kept.searches == {m: f.tuning_ for m, f in kept.fitted.items()} and all(kept.searches.values())
    for m in ("logreg", "elasticnet"):
        transforms, groups, x = kept.view(m)
        assert [t.group for t in transforms] == [g.name for g in groups] == [
            g for g in (t.group for t in kept.transforms) if g in kept.groups[m]]
        assert x.shape[1] == sum(t.n_components for t in transforms)


def test_a_saved_average_that_drifts_from_its_members_stops_the_run(average):
    kept = average
    raw = np.hstack([kept.features.X[g.name] for g in kept.features.feature_groups])
    members = {m: f.predict_proba(raw) for m, f in kept.fitted.items()}
    assert saved._average(kept.portables, kept.groups, kept.transforms, kept.x, members).members
    # a member's rounding, halved by the mean, is within the tolerance; a real difference is not
    rounded = {**members, "elasticnet": members["elasticnet"] + np.array([2e-5, -2e-5])}
    assert saved._average(kept.portables, kept.groups, kept.transforms, kept.x, rounded).members
    members["elasticnet"] = members["elasticnet"] + np.array([2e-2, -2e-2])
    with pytest.raises(RuntimeError, match=r"^the saved average differs from its fitted members' by 0.01 on the "
                                           r"training clips$"):
        saved._average(kept.portables, kept.groups, kept.transforms, kept.x, members)


def test_a_saved_form_scoring_float32_projections_summed_another_way_is_the_fitted_model(monkeypatch):
    """Raw features near 1e3 projected in float32 sums (as another BLAS kernel, or the streaming fit, gives them)
    move a logistic regression on 32 components of 48 clips by more than 1e-6 and less than the tolerance: the
    saved form passes; scored on inputs that differ for real, it is refused."""
    from acoustic_env.jobs.train.evaluation import checked_portable
    from acoustic_env.learn import preprocess
    from acoustic_env.learn.portable import SAVED_TOLERANCE, from_zoo

    monkeypatch.setattr(preprocess, "RULES", (1,))  # every component the rows carry: 32
    rng, recording, y = _recordings()
    noise = rng.normal(size=(len(y), 8)) @ rng.normal(size=(8, 32)) * 3
    signal = y + 0.3 * rng.normal(size=len(y))
    values = 1000 + noise + np.outer(signal, rng.normal(size=32)) * 1.5 + rng.normal(size=(len(y), 32))
    features = _features({"vggish_raw": values}, y, recording)
    kept = _refit(features, sets=False)
    raw, fitted = features.X["vggish_raw"], kept.fitted["logreg"]
    a, b = kept.transforms[0].affine()
    summed = raw @ a + b  # float32 throughout
    assert summed.shape == kept.x.shape == (48, 32)
    drift = np.abs(from_zoo(fitted).predict_proba(summed) - fitted.predict_proba(raw)).max()
    assert 1e-6 < drift < SAVED_TOLERANCE
    assert checked_portable(fitted, summed, raw).name == "logreg"
    with pytest.raises(RuntimeError, match=r"^the saved logreg differs from the fitted one by 0\.\d+ on the "
                                           r"training clips$"):
        checked_portable(fitted, summed + 0.5, raw)


def test_an_image_model_is_fitted_on_its_images_and_chooses_no_set(leaky):
    """An image model reads its images, not the groups: no set, no count rule chosen, no fit of the groups' PCA
    inside it (a vector model stands in for it here: only the routing is under test)."""
    rng, _, y = _recordings(1)
    images = (y[:, None] * 3.0 + rng.normal(size=(len(y), 6))).astype(np.float32)
    kept = _refit(leaky, "elasticnet", ("elasticnet",), images={"elasticnet": images})
    assert kept.sets == {} and kept.rule_scores == {} and kept.features is leaky
    assert kept.fitted["elasticnet"].transforms_ is None and kept.components == {}
    alone = make_estimator("elasticnet", TASK.kind, TASK.n_classes, CFG.seed, search=tuning_plan(CFG),
                           calibrate=True).fit(images, y, groups=leaky.groups)
    np.testing.assert_allclose(kept.estimator.predict_proba(images), alone.predict_proba(images), atol=1e-6)


def test_a_model_without_an_inner_map_is_saved_with_the_one_chosen_on_the_outer_folds(leaky, unmapped):
    """Its cross-validation's out-of-fold probabilities before any map, over their folds, choose its map
    (``learn.calibrate.outer_map``), which the saved form keeps; a model with its own inner map ignores them."""
    from acoustic_env.learn.calibrate import outer_map

    rng, recording, y = _recordings(2)
    images = (y[:, None] * 3.0 + rng.normal(size=(len(y), 6))).astype(np.float32)
    folds = recording % 4
    noise = np.random.default_rng(5).normal(0, 0.6, len(y))
    p1 = 1 / (1 + np.exp(-20 * (y - 0.5 + noise)))  # out-of-fold probabilities far more certain than right
    oof = np.stack([1 - p1, p1], axis=1)
    kept = _refit(leaky, unmapped, (unmapped,), images={unmapped: images})
    assert kept.fitted[unmapped].calibration_ is None  # no outer probabilities given: no map
    outer = ({unmapped: oof, "logreg": oof}, folds)
    mapped = saved.refit(*_args(leaky, unmapped, (unmapped,), True, {unmapped: images}), outer)
    want, losses = outer_map(oof, leaky.y, TASK.kind, folds)
    assert want is not None and mapped.calibration == {"method": want.method, "log_loss": losses}
    plain = kept.fitted[unmapped].predict_proba(images)
    np.testing.assert_allclose(mapped.estimator.predict_proba(images), want(plain), atol=1e-6)
    own = saved.refit(*_args(leaky, "logreg", ("logreg",), True, None), outer)
    assert own.calibration == _refit(leaky).calibration  # its own inner map, the outer probabilities unread


def test_a_multi_label_model_without_an_inner_map_is_saved_with_a_map_per_label(unmapped):
    """The outer map is chosen for the task: per label, each label's out-of-fold probabilities its own map."""
    from acoustic_env.learn.calibrate import outer_map

    task, features = _rare(multi_label=True)
    images = (features.y @ np.array([[2.0, 0.0], [0.0, 2.0]]) + np.random.default_rng(0).normal(size=(48, 2)))
    noise = np.random.default_rng(5).normal(0, 0.6, features.y.shape)
    oof = 1 / (1 + np.exp(-20 * (features.y - 0.5 + noise)))  # each label far more certain than right
    folds = np.repeat(np.arange(RECORDINGS), CLIPS) % 4
    kept = saved.refit(CFG, task, features, unmapped, [unmapped], None, tuning_plan(CFG),
                       {unmapped: images.astype(np.float32)}, ({unmapped: oof}, folds))
    want, losses = outer_map(oof, features.y, "multi_label", folds)
    assert want is not None and want.kind == "multi_label" and want.columns.tolist() == [0, 1]
    assert kept.calibration == {"method": want.method, "log_loss": losses}


#: a run's settings that reach the inner fits, the saved model's fits too (resampling evens the classes: apart)
RUN = {"seed": 3, "select_by": "accuracy", "class_weight": "balanced"}
RESAMPLED = {"resample_per_class": 20}


def _rare(multi_label: bool = False) -> tuple[Task, FeatureSet]:
    """A third of the recordings of one class (the other's, and, multi-label, a second label on half of them)."""
    rng, recording, _ = _recordings(3)
    y, task = (recording % 3 == 0).astype(int), TASK
    if multi_label:
        task = Task("m", "multi_label", ("a", "b"), (frozenset({"a"}), frozenset({"b"})), {})
        y = np.column_stack([y, recording % 2])
    signal = y if y.ndim == 1 else y @ np.array([1.0, -1.0])
    return task, _features({"indices_raw": signal[:, None] * 1.5 + rng.normal(size=(len(y), 4)),
                            "vggish_raw": rng.normal(size=(len(y), 6))}, y, recording)


@pytest.mark.parametrize("models, settings, multi_label", [
    (["logreg"], RUN, False), (["logreg"], RESAMPLED, False), (["logreg"], {}, True),
    (["elasticnet", "knn"], {"seed": 3}, False), (["knn"], {"seed": 1}, False)])  # knn: a second setting wins
def test_the_saved_models_choice_is_made_as_an_outer_folds(models, settings, multi_label):
    """Its inner fits are built as an outer fold builds its own (``learn.cv``): the run's seed, one setting each, the
    run's class weights and resampling, scored for the task by ``--select-by``."""
    from acoustic_env.jobs.train.evaluation import class_balance, preprocessing, resample_plan
    from acoustic_env.learn.feature_sets import choose_sets
    from acoustic_env.learn.tuning import TuningPlan

    task, features = _rare(multi_label)
    cfg = from_dict(TrainConfig, {**CFG.to_dict(), **settings})
    plan, sets = tuning_plan(cfg), candidate_sets(features.feature_groups)
    taken = saved.take(cfg, task, features, AVERAGE, [*models, AVERAGE], sets, plan, {})
    prep, raw = preprocessing(cfg, features)
    expected = choose_sets(
        lambda m, own: make_estimator(m, task.kind, task.n_classes, cfg.seed, 1, TuningPlan(1, plan.inner_folds),
                                      balance=class_balance(cfg), resample=resample_plan(cfg), preprocessing=own,
                                      rows=len(features.y)),
        models, sets, prep, raw, features.y, features.groups, plan.inner_folds, cfg.seed, task.kind, plan.metric)
    assert {m: s["scores"] for m, s in taken.sets.items()} == {m: c[1] for m, c in expected.sets.items()}


@pytest.mark.parametrize("limit, way", [(48, "at once"), (30, "in rounds")], ids=["at most the limit", "above it"])
def test_the_saved_mlps_choice_fits_each_inner_network_the_way_the_saved_one_is(monkeypatch, mlp_ways, leaky, limit, way):
    """48 clips on 2 inner folds of 24: at ``full_batch_rows`` 30 the saved network (48 clips) is fitted in rounds, and
    so is every inner fit of its set's choice, though each is under the limit."""
    from acoustic_env.candidates import PARAMS

    monkeypatch.setitem(PARAMS["mlp"], "full_batch_rows", limit)
    taken = _take(leaky, "mlp", ("mlp",))
    assert set(taken.sets["mlp"]["scores"]) == {"all", "vggish", "hand-made"}
    assert len(mlp_ways) >= 6 and set(mlp_ways) == {way}, mlp_ways  # 3 sets on 2 inner folds (each count rule tried)


@pytest.mark.parametrize("settings, multi_label", [(RUN, False), (RESAMPLED, False), ({}, True)])
def test_the_saved_model_is_fitted_as_the_run_asks(settings, multi_label):
    """Fitted on every clip for its task, with the run's seed, tuning, class weights, resampling and probability map."""
    from acoustic_env.jobs.train.evaluation import class_balance, preprocessing, resample_plan

    task, features = _rare(multi_label)
    cfg = from_dict(TrainConfig, {**CFG.to_dict(), **settings})
    kept = saved.refit(cfg, task, features, "logreg", ["logreg"], None, tuning_plan(cfg), {})
    prep, raw = preprocessing(cfg, features)
    alone = make_estimator("logreg", task.kind, task.n_classes, cfg.seed, 1, search=tuning_plan(cfg),
                           balance=class_balance(cfg), calibrate=True, resample=resample_plan(cfg),
                           preprocessing=prep.with_rule(kept.rule)).fit(raw, features.y, groups=features.groups)
    np.testing.assert_allclose(kept.fitted["logreg"].predict_proba(raw), alone.predict_proba(raw), atol=1e-9)


def test_each_member_of_the_average_takes_its_own_set():
    """The class in the indices, linearly, and in an embedder's ring (the class's recordings far from the centre,
    the other's near it): logistic regression reads the indices, the nearest neighbours the ring."""
    rng = np.random.default_rng(1)
    recording = np.repeat(np.arange(24), 2)
    y = recording % 2
    angle = rng.uniform(0, 2 * np.pi, 24)[recording]
    ring = np.where(y == 1, 3.0, 0.3)[:, None] * np.column_stack([np.cos(angle), np.sin(angle)])
    features = _features({"indices_raw": y[:, None] * 0.8 + rng.normal(size=(48, 4)),
                          "vggish_raw": ring + 0.3 * rng.normal(size=(48, 2))}, y, recording)
    taken = _take(features, AVERAGE, ("logreg", "knn", AVERAGE))
    assert taken.groups == {"logreg": ["indices_raw"], "knn": ["vggish_raw"]}
    assert {m: (s["model"], s["set"]) for m, s in taken.sets.items()} == {"logreg": ("logreg", "hand-made"),
                                                                         "knn": ("knn", "vggish")}
    assert [g.name for g in taken.features.feature_groups] == ["indices_raw", "vggish_raw"]
