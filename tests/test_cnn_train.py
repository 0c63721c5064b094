"""The ``cnn`` candidate in train: compared under the same folds as the others, saved pickle-free as the chosen
model, and the saved model scores the training clips as the fitted one did in the train process."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import acoustic_env as ae
from acoustic_env import table as table_module
from acoustic_env.config import ConfigError, TrainConfig, from_dict
from acoustic_env.distributed import images as images_module
from acoustic_env.demo.tables import synthetic_features, synthetic_images, write_features
from acoustic_env.jobs.train import saved as refitted
from acoustic_env.jobs.train.job import summary_lines, train
from acoustic_env.learn.artifact import save_model
from acoustic_env.candidates import PARAMS, SPACES
from acoustic_env.learn.portable import from_zoo
from acoustic_env.learn.tuning import TuningPlan
from acoustic_env.learn.spectro import views
from acoustic_env.learn.image_input import stack_images
from acoustic_env.learn.zoo import make_estimator
from acoustic_env.table import decode_images, encode_images, open_table

FAST = {"ablations": False, "shap_samples": 0, "tuning_trials": 1, "cv_folds": 3, "feature_groups": ["indices_raw"]}
#: The CNN at the size the tests trained before it grew to four wider blocks (three of 8-32 channels over the image
#: pooled 2 x 4, at most 12 rounds): these tests check its paths, not what a larger network learns, at their old cost.
TINY = {**PARAMS["cnn"], "max_rounds": 12, "patience": 3,
        "network": {**PARAMS["cnn"]["network"], "blocks": 3, "width": 8, "input_pool": [2, 4]}}


@pytest.fixture(autouse=True)
def tiny_cnn(monkeypatch):
    monkeypatch.setitem(PARAMS, "cnn", TINY)


@pytest.fixture(scope="module")
def image_table(tmp_path_factory):
    """48 clips of 3 s, two classes, with their log-mel images; the rows stored out of clip order."""
    root = tmp_path_factory.mktemp("cnn")
    data = synthetic_features(48, seed=5, logmel_s=3.0)
    shuffled = data.table.take(np.random.default_rng(0).permutation(48))
    return write_features(shuffled, str(root / "table")), data


def test_cnn_is_compared_on_the_same_folds_saved_and_scores_the_clips_as_in_training(image_table, tmp_path,
                                                                                     monkeypatch):
    source, data = image_table
    fitted = {}
    checked = refitted.checked_portable

    def spy(estimator, x):
        fitted["proba"] = estimator.predict_proba(x)
        return checked(estimator, x)

    monkeypatch.setattr(refitted, "checked_portable", spy)
    cfg = from_dict(TrainConfig, {"features": source, "output": str(tmp_path / "out"), **FAST,
                                  "baselines": ["xgboost", "cnn"], "saved_model": "cnn"})
    summary = train(cfg)
    ev = summary.evaluation
    assert ev["candidates"] == ["xgboost", "mlp", "cnn", "average"] and ev["saved_model"] == "cnn"
    folds = {m: [(f["fold"], f["n"]) for f in d["per_fold"]] for m, d in ev["models"].items()}
    assert len({tuple(f) for f in folds.values()}) == 1 and summary.metrics["cnn"]["n"] == 48
    assert summary.metrics["cnn"]["roc_auc"] > 0.8  # the classes differ in where their events lie
    assert "cnn: on each clip's log-mel image" in ev["description"]
    assert "cv cnn" in "\n".join(summary_lines(summary))

    model = ae.load_model(summary.model)
    spec = model.meta["estimator"]
    assert spec["name"] == "cnn" and spec["format"] == "torch" and model.groups == []
    assert spec["params"]["augment"]["mixup"] > 0 and spec["input"]["column"] == "logmel"
    from_table = model.predict_proba(source)
    np.testing.assert_allclose(from_table, fitted["proba"], atol=1e-5)
    # the images as computed (float dB, as predict computes them from audio) score as the stored 8-bit ones
    order = np.argsort(data.ids)
    from_floats = model.predict_proba({"logmel": [data.images[i] for i in order]})
    np.testing.assert_allclose(from_floats, fitted["proba"], atol=1e-5)


def test_cnn_on_a_table_without_images_is_one_line(tmp_path):
    source = write_features(synthetic_features(24, seed=1).table, str(tmp_path / "t"))
    cfg = from_dict(TrainConfig, {"features": source, "output": str(tmp_path / "out"), **FAST,
                                  "baselines": ["cnn"]})
    with pytest.raises(ConfigError, match="baselines: cnn learns from the 'logmel' image column, which .* lacks"):
        train(cfg)


@pytest.mark.slow
def test_cnn_under_the_split_trains_data_parallel_on_streamed_images_and_is_saved(ray_session, image_table, tmp_path,
                                                                                  monkeypatch):
    """Under the train/val/test split the CNN trains on its images streamed by Ray Data (distributed.images), which
    decode them in their tasks: the job's process never does. With two workers, as two data-parallel Ray Train
    workers (DDP), each on a dataset of its own share of the training clips: equal (or one would wait for ever for
    the other's gradients) and disjoint; the run does not hang on 2 CPUs beside Ray Data's reads. It is scored on
    the test split (rows and labels kept together through the stream) and, saved, scores the table's clips. (One
    worker trains in the trial's process as the MLP does; ``benchmarks/cnn_stream.py`` runs that path.)"""
    source, _ = image_table
    read, datasets = images_module.images, []
    score, scored = images_module.score, []

    def never(*_):
        raise AssertionError("the train job's process decoded images")

    def spy(table, rows, shape):
        datasets.append(rows.ids)
        return read(table, rows, shape)

    # Ray's workers import the modules afresh: only a decode in this process fails
    for module in (table_module, images_module):
        monkeypatch.setattr(module, "decode_images", never)
    monkeypatch.setattr(images_module, "images", spy)  # fit_streamed builds every dataset in this process
    monkeypatch.setattr(images_module, "score", lambda *args: scored.append(score(*args)) or scored[-1])
    # each round is a pass of Ray Data over the training and the validation images: one, not the default 12 (the
    # rounds' loop, early stopping and the agreed stop of the ranks are learn.fit's, tested in test_fit.py)
    monkeypatch.setitem(PARAMS["cnn"], "max_rounds", 1)
    cfg = from_dict(TrainConfig, {"features": source, "output": str(tmp_path / "out"), **FAST, "cv_folds": 0,
                                  "trials": 0, "max_rounds": 1, "grace_rounds": 1, "baselines": ["cnn"],
                                  "saved_model": "cnn", "workers": 2})
    summary = train(cfg)
    monkeypatch.undo()
    first, second, val, test = datasets  # the two workers' training rows, then the validation and the test split
    n_train = summary.counts["splits"]["train"]["clips"]
    assert len(first) == len(second) == n_train // 2 and not set(first) & set(second)
    assert not (set(first) | set(second)) & (set(val) | set(test))
    assert summary.evaluation["candidates"] == ["mlp", "cnn"] and summary.evaluation["saved_model"] == "cnn"
    # the MLP beside it as two data-parallel Ray Train workers too (DDP over gloo, on the arrays): the path one
    # worker does not take, which no other test runs on Ray Train
    assert summary.search["method"].startswith("no search: default hyper-parameters, 2 Ray Train workers "
                                               "(data-parallel)"), summary.search["method"]
    assert summary.metrics["cnn"]["n"] == summary.counts["splits"]["test"]["clips"]
    assert "cnn: its images streamed by Ray Data, trained on 2 Ray Train workers (data-parallel), 1 round(s)" in (
        summary.search["method"])
    model = ae.load_model(summary.model)
    assert model.meta["estimator"]["name"] == "cnn"
    # each test row kept with its own prediction through the stream: the saved network, scoring the table in this
    # process, gives the streamed probabilities again clip by clip (one round learns little from 48 clips, so a
    # score threshold would test the learning, not the stream: its ROC AUC was once 0.6)
    saved = model.predict_table(source).to_pydict()
    by_clip = dict(zip(saved["clip_id"], zip(*(saved[f"prob_{c}"] for c in model.class_names))))
    [streamed] = scored
    assert len(saved["clip_id"]) == 48
    np.testing.assert_allclose([by_clip[c] for c in test], streamed, atol=1e-4)


def test_each_data_parallel_worker_streams_an_equal_share_of_the_rows():
    """``Rows.share``: ``world`` disjoint shares of ``n // world`` rows with their own targets, interleaved (rows
    stored in class order give each a mix); one worker, all."""
    rows = images_module.Rows(np.array([f"c{i}" for i in range(11)], dtype=object), np.arange(11) % 3)
    shares = [rows.share(rank, 3) for rank in range(3)]
    assert [len(s.ids) for s in shares] == [3, 3, 3] == [len(s.y) for s in shares]
    assert shares[1].ids.tolist() == ["c1", "c4", "c7"]
    assert len(set(np.concatenate([s.ids for s in shares]).tolist())) == 9
    assert all((s.y == np.array([int(c[1:]) for c in s.ids]) % 3).all() for s in shares)
    assert rows.share(0, 1).ids.tolist() == rows.ids.tolist()


@pytest.mark.parametrize("cpus, workers, held", [(2, 1, 0.0), (2, 2, 0.01), (3, 2, 0.01), (16, 3, 0.01)])
def test_the_training_workers_leave_ray_data_a_whole_cpu(cpus, workers, held):
    """Ray Data's listing task asks for one CPU: beside two workers of 0.5 and their trial's 0.01 it never ran."""
    per_worker = images_module.training_cpus({"CPU": cpus}, workers, held)
    assert per_worker > 0 and cpus - workers * per_worker - held >= 1


@pytest.mark.parametrize("kind, k", [("single_label", 3), ("multi_label", 3)])
def test_a_saved_cnn_loads_back_with_its_own_probabilities(kind, k, tmp_path):
    """Any task's CNN (softmax with mixup's soft targets, independent sigmoids) saved and loaded, nothing pickled."""
    rng = np.random.default_rng(0)
    member = np.eye(k)[np.arange(30) % k] if kind == "single_label" else (rng.random((30, k)) < 0.5).astype(int)
    images = synthetic_images(member, np.arange(30) // 2, 1.0, rng)
    x = stack_images(images, 98)
    y = member.argmax(axis=1) if kind == "single_label" else member
    fitted = make_estimator("cnn", kind, k, max_rounds=2,
                            network={**PARAMS["cnn"]["network"], "blocks": 2, "width": 4, "crop_frames": 60})
    fitted.fit(x, y, groups=np.arange(30) // 2)
    meta = {"task": {"name": "t", "kind": kind, "class_names": [f"c{j}" for j in range(k)], "definition": {}}}
    save_model(str(tmp_path / "m"), from_zoo(fitted), [], meta, [])
    model = ae.load_model(str(tmp_path / "m"))
    # the saved network scores as the fitted one: the mean of 3 crops of 60 frames over the 98, by the task's link
    arch = model.meta["estimator"]["architecture"]
    assert (arch["crop_frames"], arch["link"]) == (60, "softmax" if kind == "single_label" else "sigmoid")
    assert views(torch.zeros(1, 64, 98), arch["crop_frames"])[1] == 3
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["estimator.npz", "model.json", "preprocessing.npz",
                                                                   "weights.pt"]
    stored = decode_images(encode_images(images))  # what a table holds, and predict scores
    np.testing.assert_allclose(model.predict_proba({"logmel": images}), fitted.predict_proba(stack_images(stored, 98)),
                               rtol=0, atol=1e-6)


def test_the_cnn_searches_its_space_on_grouped_inner_folds_and_refits_the_setting_chosen():
    """Given groups, the zoo's CNN is searched as the other candidates are (``SPACES["cnn"]``, the defaults first, each
    setting fitted on grouped inner folds) and the network refitted on every row is the chosen setting's."""
    images = synthetic_images(np.eye(2)[np.arange(32) % 2], np.arange(32) // 2, 1.0, np.random.default_rng(1))
    network = {**PARAMS["cnn"]["network"], "blocks": 2, "width": 8, "crop_frames": 150}
    fitted = make_estimator("cnn", "single_label", 2, max_rounds=2, search=TuningPlan(2, 2), network=network)
    fitted.fit(stack_images(images, 98), np.arange(32) % 2, groups=np.arange(32) // 2)
    record, space = fitted.tuning_, SPACES["cnn"]
    assert len(record.trials) == 2 and record.fits == 2 * 2
    assert record.trials[0]["params"] == {k: network[k] for k in space.ranges}  # the defaults first
    assert all(space.ranges[k].holds(v) for t in record.trials for k, v in t["params"].items())
    for fit_on, scored in record.splits:
        assert not set(np.arange(32)[fit_on] // 2) & set(np.arange(32)[scored] // 2)
    assert fitted.params_["network"] == {**network, **record.best}
    assert fitted.model_.model_.blocks[1].out_channels == record.best["width"]


def test_the_grid_compares_the_cnn_in_its_cells_on_the_same_folds(tmp_path):
    source = write_features(synthetic_features(30, seed=2, logmel_s=1.0).table, str(tmp_path / "t"))
    cfg = from_dict(TrainConfig, {"features": source, "output": str(tmp_path / "out"), **FAST, "cv_folds": 2,
                                  "grid": True, "feature_groups": ["indices"], "baselines": ["cnn"]})
    summary = train(cfg)
    [cell] = summary.grid["cells"]
    assert set(cell["scores"]) == {"mlp", "cnn", "average"}
    assert summary.evaluation["scores"] == cell["scores"]  # the winning cell's cross-validation, reused


def test_a_clip_without_its_image_is_one_line_before_the_streamed_training(ray_session, image_table):
    """The survey of the streamed images (``distributed.images``) names the clips a table cannot feed the CNN."""
    source, data = image_table
    rows = images_module.Rows(np.append(np.array(data.ids, dtype=object), "no-such-clip"), np.append(data.true, 0))
    with pytest.raises(ConfigError, match=r"cnn needs every clip's 'logmel' image; 1 clip\(s\)"):
        images_module.survey(open_table(source), rows)


def test_the_images_are_read_without_a_footer_actor_pool_and_the_default_is_left_alone(ray_session, image_table):
    """``distributed.images`` reads the table with Ray Data's ``ReadParquet`` (footers read where the dataset is
    made), not Ray 2.60's default ``ListFiles → ReadFilesParquetV2``, which starts and ends a pool of FooterReader
    actors for every read; the process's own ``DataContext`` keeps its reader; every row of the split arrives."""
    source, data = image_table
    context = ray_session.data.DataContext.get_current()
    assert context.use_datasource_v2  # Ray's default, which a notebook's own reads keep
    rows = images_module.Rows(np.array(data.ids[:20], dtype=object), data.true[:20])
    table = open_table(source)
    dataset = images_module.images(table, rows, images_module.survey(table, rows))
    assert context.use_datasource_v2
    dag = dataset._logical_plan.dag  # map_batches(_decoded) over the read
    [read] = dag.input_dependencies
    assert read.name == "ReadParquet" and not read.input_dependencies, read.name
    seen = np.concatenate([b["row"] for b in dataset.iter_batches(batch_format="numpy", batch_size=None)])
    assert sorted(seen.tolist()) == list(range(20))


def test_class_weight_and_the_balanced_sampler_reach_the_cnns_training_loop(monkeypatch):
    """``--class-weight balanced`` weighs the CNN's loss and ``--balanced-sampler`` draws its batches, through the
    one training loop (``learn.fit``), as for the MLP; unbalanced, neither."""
    from acoustic_env.learn import spectro_estimator
    from acoustic_env.learn.balance import Balance

    seen = []
    real = spectro_estimator.fit
    monkeypatch.setattr(spectro_estimator, "fit", lambda *a, **kw: seen.append(
        (kw["class_weight"], kw["balanced_sampler"])) or real(*a, **kw))
    y = (np.arange(24) % 4 == 0).astype(int)  # a rare class: a quarter of the clips
    images = stack_images(synthetic_images(np.eye(2)[y], np.arange(24), 1.0, np.random.default_rng(2)), 98)
    network = {**PARAMS["cnn"]["network"], "blocks": 2, "width": 8, "crop_frames": 90}
    for balance, want in ((Balance("balanced"), ("balanced", False)), (Balance(sampler=True), (None, True)),
                          (Balance(), (None, False))):
        make_estimator("cnn", "single_label", 2, balance=balance, max_rounds=1, network=network).fit(images, y)
        assert seen[-1] == want


def test_the_streamed_cnn_refuses_the_balanced_sampler_in_one_line(image_table, tmp_path):
    """The split evaluation streams the CNN's images, which a sampler cannot draw from: refused before anything
    starts, the flag named."""
    source, _ = image_table
    cfg = from_dict(TrainConfig, {"features": source, "output": str(tmp_path / "out"), **FAST, "cv_folds": 0,
                                  "baselines": ["cnn"], "balanced_sampler": True})
    with pytest.raises(ConfigError, match=r"^balanced_sampler: the split evaluation streams the CNN's images"):
        train(cfg)
