"""A fitted estimator's portable form (``learn/portable.py``), in memory: every format gives the fitted model's
probabilities, refuses a description that does not fit it in one line, and the average of such forms scores each
member on its own columns. Small arrays and small models; the files themselves: tests/test_model_artifact.py."""

from __future__ import annotations

import functools
import io
import zipfile
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

from acoustic_env import candidates
from acoustic_env.candidates import AVERAGE, PARAMS
from acoustic_env.learn.calibrate import Calibrator
from acoustic_env.learn.image_input import IMAGE_COLUMN
from acoustic_env.learn.mlp import MLP
from acoustic_env.learn.mlp import architecture as mlp_architecture
from acoustic_env.learn.portable import (CALIBRATION, Average, Portable, _link, _unpacked_bytes, from_cnn,
                                         from_network, from_zoo, rebuild_network)
from acoustic_env.learn.spectro import SpectroCNN
from acoustic_env.learn.spectro import architecture as cnn_architecture
from acoustic_env.learn.zoo import ZooClassifier, make_estimator

#: Small versions of the slower models: each goes through the same code.
SMALL = {"forest": {"n_estimators": 5}, "xgboost": {"n_estimators": 20}, "mlp": {"max_rounds": 3}}


def data(kind: str, k: int, n: int = 48, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` rows of 4 inputs of very different scales and offsets (so that a standardisation left out shows), and
    their classes (single-label, each class present) or labels (multi-label, each column varying)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k if kind == "single_label" else (rng.uniform(size=(n, k)) < 0.5).astype(np.int64)
    signal = (y if y.ndim == 1 else y @ np.arange(1, k + 1)).astype(np.float64)
    x = rng.normal(size=(n, 4)) + signal[:, None] * [1.0, 0.5, -0.5, 0.2]
    return (x * [1.0, 10.0, 100.0, 0.1] + [5.0, -3.0, 50.0, 0.0]).astype(np.float32), y


@functools.cache
def fitted(name: str, kind: str, k: int) -> ZooClassifier:
    """Zoo model ``name`` fitted on ``data(kind, k)`` (cached: fitting is not what these tests check)."""
    x, y = data(kind, k)
    return make_estimator(name, kind, k, seed=0, threads=1, **SMALL.get(name, {})).fit(x, y)


CASES = [("logreg", "single_label", 2), ("logreg", "single_label", 3), ("logreg", "multi_label", 3),
         ("logreg", "multi_label", 2), ("xgboost", "single_label", 2), ("xgboost", "single_label", 3),
         ("xgboost", "multi_label", 3), ("xgboost", "multi_label", 2),
         ("forest", "single_label", 3), ("knn", "multi_label", 3), ("svm", "single_label", 2),
         ("mlp", "single_label", 2), ("mlp", "single_label", 3), ("mlp", "multi_label", 3)]


@pytest.mark.parametrize("name, kind, k", CASES)
def test_every_format_gives_the_fitted_models_probabilities_and_fits_its_own_description(name, kind, k):
    model = fitted(name, kind, k)
    portable = from_zoo(model)
    x = data(kind, k, n=20, seed=1)[0]
    assert portable.name == name and portable.spec["format"] == candidates.FORMATS[name]
    assert portable.spec["params"] == model.params_  # the settings fitted, which model.json states
    np.testing.assert_allclose(portable.predict_proba(x), model.predict_proba(x), rtol=0, atol=1e-6)
    portable.check(k, 4)
    assert portable.loaded() is portable


@pytest.mark.parametrize("kind, k, link, outputs", [
    ("single_label", 2, "binary", 2), ("single_label", 3, "softmax", 3), ("multi_label", 3, "sigmoid", 3),
    ("multi_label", 2, "sigmoid", 2)])
def test_a_linear_model_is_its_coefficients_and_the_link_of_its_task(kind, k, link, outputs):
    portable = from_zoo(fitted("logreg", kind, k))
    assert (portable.spec["link"], portable.n_outputs, portable.blob) == (link, outputs, None)
    assert {a.dtype for a in portable.arrays.values()} <= {np.dtype(np.float64), np.dtype(np.int64)}


def test_a_class_the_training_rows_lack_gets_its_rate_of_zero_and_the_others_their_columns():
    x, y = data("single_label", 3)
    keep = y != 1
    model = make_estimator("logreg", "single_label", 3).fit(x[keep], y[keep])
    portable = from_zoo(model)
    assert portable.arrays["columns"].tolist() == [0, 2] and portable.n_outputs == 2
    p = portable.predict_proba(x[:5])
    assert (p[:, 1] == 0).all()
    np.testing.assert_allclose(p, model.predict_proba(x[:5]), rtol=0, atol=1e-6)
    portable.check(3, 4)


@pytest.mark.parametrize("name", ["logreg", "xgboost", "forest"])
def test_one_varying_label_is_a_binary_model_whose_positive_column_is_the_labels(name):
    x, y = data("multi_label", 3)
    y[:, 0], y[:, 2] = 0, 1  # only the middle label varies
    model = make_estimator(name, "multi_label", 3, threads=1, **SMALL.get(name, {})).fit(x, y)
    portable = from_zoo(model)
    assert portable.arrays["columns"].tolist() == [1] and portable.n_outputs == 2
    p = portable.predict_proba(x[:6])
    np.testing.assert_allclose(p, model.predict_proba(x[:6]), rtol=0, atol=1e-6)
    assert (p[:, 0] == 0).all() and (p[:, 2] == 1).all()
    portable.check(3, 4)


def test_no_rows_score_to_no_probabilities_without_asking_the_estimator():
    portable = from_zoo(fitted("forest", "single_label", 3))
    assert portable.predict_proba(np.empty((0, 4), np.float32)).shape == (0, 3)


@pytest.mark.parametrize("name", ["logreg", "mlp"])
def test_the_standardisation_is_the_scalers_own_step_for_step(name):
    model = fitted(name, "single_label", 3)
    scaler = model.model_[0] if name == "logreg" else model.model_.scaler_
    portable = from_zoo(model)
    x = data("single_label", 3, n=20, seed=2)[0]
    z = portable._standardised(x)
    assert z.dtype == (np.float64 if name == "logreg" else np.float32)
    np.testing.assert_array_equal(z, scaler.transform(x.copy()).astype(z.dtype))
    bare = Portable(portable.spec, {k: v for k, v in portable.arrays.items() if k not in ("mean", "scale")})
    assert bare._standardised(x.astype(np.float64)).dtype == np.float32  # no standardisation: the inputs as they are


@pytest.mark.parametrize("name, kind", [("logreg", "single_label"), ("xgboost", "single_label"),
                                        ("logreg", "multi_label")])
def test_a_probability_map_is_kept_beside_the_estimator_and_applied_after_it(name, kind):
    model = fitted(name, kind, 3)
    calibrator = Calibrator("platt", kind, np.array([0, 1, 2]),
                            {"a": np.array([2.0, 0.5, 1.0]), "b": np.array([0.3, -0.2, 0.0])})
    calibrated = replace_attr(model, calibration_=calibrator)
    portable = from_zoo(calibrated)
    assert portable.spec["calibration"] == calibrator.describe() and portable.spec["kind"] == kind
    assert {k for k in portable.arrays if k.startswith(CALIBRATION)} == {CALIBRATION + "a", CALIBRATION + "b"}
    assert portable.blob == from_zoo(model).blob  # the booster's file kept beside the map
    x = data(kind, 3, n=10, seed=3)[0]
    np.testing.assert_allclose(portable.predict_proba(x), calibrated.predict_proba(x), rtol=0, atol=1e-6)
    assert not np.allclose(portable.predict_proba(x), model.predict_proba(x), atol=1e-3)
    mapped = portable.calibrator()
    assert mapped.method == "platt" and mapped.columns.dtype == np.int64 and set(mapped.arrays) == {"a", "b"}
    assert from_zoo(model).calibrator() is None


def replace_attr(model: ZooClassifier, **attrs: Any) -> ZooClassifier:
    """A shallow copy of ``model`` with ``attrs`` set (the cached model stays as fitted)."""
    copy = object.__new__(type(model))
    copy.__dict__.update(model.__dict__, **attrs)
    return copy


@pytest.mark.parametrize("damage, words", [
    (lambda p: (p, 3, 4), "the estimator was fitted for 2 classes, not 3"),
    (lambda p: (Portable(p.spec, {**p.arrays, "columns": np.array([0, 2])}), 2, 4),
     "the estimator was fitted for 2 classes, not 2"),
    (lambda p: (Portable({**p.spec, "outputs": 3}, p.arrays), 2, 4), "the estimator gives 3 outputs for 2 fitted"),
    (lambda p: (p, 2, 5), "the estimator cannot score 5 inputs (ValueError)"),
])
def test_a_description_that_does_not_fit_the_estimator_is_one_line(damage, words):
    portable, n_classes, in_dim = damage(from_zoo(fitted("logreg", "single_label", 2)))
    with pytest.raises(ValueError) as caught:
        portable.check(n_classes, in_dim)
    assert str(caught.value).startswith(words)


def test_an_estimator_computing_other_outputs_than_described_is_refused():
    portable = from_zoo(fitted("logreg", "multi_label", 3))
    wrong = Portable({**portable.spec, "link": "binary"}, portable.arrays)  # [1 - p, p]: six columns
    with pytest.raises(ValueError, match=r"^the estimator computes 6 outputs where its description says 3$"):
        wrong.check(3, 4)
    several = Portable({**portable.spec, "outputs": 2}, portable.arrays)  # two outputs for three labels
    with pytest.raises(ValueError, match=r"^the estimator gives 2 outputs for 3 fitted classes$"):
        several.check(3, 4)
    with pytest.raises(ValueError, match=r"^unknown estimator format 'onnx'$"):
        Portable({**portable.spec, "format": "onnx"}, portable.arrays).fitted_proba(np.zeros((1, 4)))


def tiny_cnn(kind: str = "single_label", n_classes: int = 2, bands: int = 8) -> tuple[SpectroCNN, dict[str, Any]]:
    """An untrained CNN of ``PARAMS["cnn"]``'s settings, 4 channels wide, and its architecture."""
    params = {**PARAMS["cnn"]["network"], "width": 4, "blocks": 2, "crop_frames": 16}
    arch = cnn_architecture(bands, kind, n_classes, params)
    torch.manual_seed(0)
    return rebuild_network(arch, SpectroCNN(**{k: v for k, v in arch.items() if k != "network"}).state_dict()), arch


def test_a_cnn_is_its_weights_and_the_images_it_reads_and_is_probed_with_an_image():
    net, _ = tiny_cnn()
    params = {**PARAMS["cnn"], "network": {**PARAMS["cnn"]["network"], "width": 4, "blocks": 2, "crop_frames": 16}}
    portable = from_cnn(net, 24, "single_label", 2, params)
    assert portable.spec["input"] == {"column": IMAGE_COLUMN, "bands": 8, "frames": 24}
    assert portable.spec["name"] == "cnn" and portable.spec["params"] == params
    assert portable.spec["architecture"]["network"] == "cnn" and portable.n_outputs == 2
    portable.check(2, 0)  # an image model reads no inputs: it is probed with one image of its window
    images = np.random.default_rng(0).normal(size=(3, 8, 24)).astype(np.float32)
    with torch.no_grad():
        want = torch.sigmoid(net(torch.as_tensor(images))).numpy().ravel()
    np.testing.assert_allclose(portable.predict_proba(images)[:, 1], want, rtol=0, atol=1e-6)
    assert isinstance(portable.network(), SpectroCNN) and not portable.network().training


def test_the_zoos_cnn_is_saved_with_its_window_and_wrapper():
    net, _ = tiny_cnn("single_label", 3)
    params = {**PARAMS["cnn"], "network": {**PARAMS["cnn"]["network"], "width": 4, "blocks": 2, "crop_frames": 16}}
    inner = SimpleNamespace(model_=net, frames_=24, kind_="single_label", n_classes_=3)
    model = SimpleNamespace(name="cnn", model_=inner, params_=params, kind="single_label", spec=candidates.get("cnn"),
                            prior_=np.array([0.2, 0.3, 0.5]), columns_=np.array([0, 1, 2]))
    portable = from_zoo(model)
    assert portable.spec["input"]["frames"] == 24 and portable.arrays["prior"].tolist() == [0.2, 0.3, 0.5]
    assert portable.spec["kind"] == "single_label" and portable.spec["params"] == params
    portable.check(3, 0)
    p = portable.predict_proba(np.random.default_rng(0).normal(size=(3, 8, 24)).astype(np.float32))
    np.testing.assert_allclose(p.sum(axis=1), 1, rtol=1e-6)  # one class of three: a softmax


def test_a_network_is_saved_with_its_architecture_and_an_even_prior_unless_given():
    torch.manual_seed(0)
    arch = mlp_architecture(4, "single_label", 3, PARAMS["mlp"]["network"] | {"width": 8})
    net = MLP(**arch)
    portable = from_network(net, arch, "single_label", 3)
    assert portable.spec == {"name": "mlp", "format": "torch", "architecture": arch, "kind": "single_label",
                             "classes": 3, "outputs": 3}
    np.testing.assert_allclose(portable.arrays["prior"], [1 / 3] * 3)
    assert portable.arrays["columns"].tolist() == [0, 1, 2]
    portable.check(3, 4)
    x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    with torch.no_grad():
        want = torch.softmax(net.eval()(torch.as_tensor(x)), dim=1).numpy()
    np.testing.assert_allclose(portable.predict_proba(x), want, rtol=0, atol=1e-6)
    assert portable.logits_module() is portable.network()  # no standardisation in front: the network itself
    with pytest.raises(ValueError, match=r"^the network has 3 outputs, not 1$"):
        from_network(net, arch, "single_label", 2)


def test_a_rebuilt_network_is_in_evaluation_mode_of_its_own_class():
    arch = mlp_architecture(4, "multi_label", 3, PARAMS["mlp"]["network"])
    net = rebuild_network(arch, MLP(**arch).state_dict())
    assert isinstance(net, MLP) and not net.training
    cnn, _ = tiny_cnn()
    assert isinstance(cnn, SpectroCNN) and not cnn.training


@pytest.mark.parametrize("name", ["mlp", "xgboost", "forest"])
def test_a_damaged_file_fails_when_loaded_not_at_the_first_clip(name):
    portable = from_zoo(fitted(name, "single_label", 2))
    assert portable.loaded() is portable
    broken = Portable(portable.spec, portable.arrays, portable.blob[: len(portable.blob) // 2])
    with pytest.raises(Exception):  # noqa: B017 - each library refuses a truncated file its own way
        broken.loaded()


def test_a_parsed_network_booster_or_pipeline_is_parsed_once():
    for name, parsed in (("mlp", "network"), ("xgboost", "booster"), ("forest", "pipeline")):
        portable = from_zoo(fitted(name, "single_label", 2))
        assert getattr(portable, parsed)() is getattr(portable, parsed)()


def test_a_skops_file_unpacking_to_more_than_recorded_or_not_a_pipeline_is_refused():
    import skops.io

    portable = from_zoo(fitted("forest", "single_label", 2))
    size = _unpacked_bytes(portable.blob)
    assert portable.spec["unpacked_bytes"] == size
    with zipfile.ZipFile(io.BytesIO(portable.blob)) as archive:  # trees' arrays compress: the artifact is smaller
        assert {m.compress_type for m in archive.infolist()} == {zipfile.ZIP_DEFLATED}
    Portable({**portable.spec, "unpacked_bytes": size}, portable.arrays, portable.blob).pipeline()  # exactly: fine
    with pytest.raises(ValueError, match=rf"^its members declare {size:,} bytes unpacked, where the model's "
                                         rf"description recorded {size - 1:,}$"):
        Portable({**portable.spec, "unpacked_bytes": size - 1}, portable.arrays, portable.blob).pipeline()
    without = {k: v for k, v in portable.spec.items() if k != "unpacked_bytes"}
    with pytest.raises(ValueError, match=r"^the model's description does not record the size the skops file unpacks "
                                         r"to \(a model saved before that was recorded\)$"):
        Portable(without, portable.arrays, portable.blob).pipeline()
    bare = skops.io.dumps(fitted("forest", "single_label", 2).model_[-1])
    with pytest.raises(ValueError, match=r"^the skops file holds a RandomForestClassifier, not a scikit-learn"):
        Portable({**portable.spec, "unpacked_bytes": _unpacked_bytes(bare)}, portable.arrays, bare).pipeline()


def test_a_zips_unpacked_size_is_what_its_members_declare():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("a", b"x" * 1000)
        archive.writestr("b", b"y" * 24)
    assert _unpacked_bytes(buf.getvalue()) == 1024 < len(buf.getvalue()) * 10


def test_boosted_trees_keep_the_trees_early_stopping_chose_or_all_of_them():
    x, y = data("single_label", 2)
    xv, yv = data("single_label", 2, n=30, seed=5)
    model = make_estimator("xgboost", "single_label", 2, threads=1, n_estimators=60, learning_rate=0.5,
                           early_stopping_rounds=2).fit(x, y, eval_set=(xv, yv))
    portable = from_zoo(model)
    best = int(model.model_.get_booster().attr("best_iteration"))
    assert portable.spec["iteration_range"] == [0, best + 1] and best + 1 < 60
    np.testing.assert_allclose(portable.predict_proba(xv), model.predict_proba(xv), rtol=0, atol=1e-6)
    assert from_zoo(fitted("xgboost", "single_label", 2)).spec["iteration_range"] == [0, 0]


def test_a_model_without_a_portable_form_or_fitted_on_one_class_is_refused():
    x, _ = data("single_label", 2)
    one = make_estimator("logreg", "single_label", 2).fit(x, np.zeros(len(x), np.int64))
    with pytest.raises(ValueError, match=r"^logreg was fitted on fewer than two classes: nothing to save$"):
        from_zoo(one)
    with pytest.raises(ValueError, match=r"^lasso has no portable form \(portable: logreg, "):
        from_zoo(replace_attr(one, name="lasso"))


@pytest.mark.parametrize("name, kind", [("logreg", "single_label"), ("logreg", "multi_label"),
                                        ("mlp", "single_label")])
def test_the_logits_module_gives_the_decision_values_the_probabilities_come_from(name, kind):
    portable = from_zoo(fitted(name, kind, 3))
    x = data(kind, 3, n=10, seed=4)[0]
    module = portable.logits_module()
    with torch.no_grad():
        logits = module.eval()(torch.as_tensor(x)).numpy().astype(np.float64)
    link = torch.softmax if kind == "single_label" else lambda t, dim: torch.sigmoid(t)
    np.testing.assert_allclose(link(torch.as_tensor(logits), dim=1).numpy(), portable.fitted_proba(x), atol=1e-5)
    if name == "logreg":  # without a standardisation: the coefficients on the inputs as they are
        bare = Portable(portable.spec, {k: v for k, v in portable.arrays.items() if k not in ("mean", "scale")})
        with torch.no_grad():
            got = bare.logits_module()(torch.as_tensor(x)).numpy()
        np.testing.assert_allclose(got, x @ portable.arrays["coef"].T + portable.arrays["intercept"], rtol=1e-5,
                                   atol=1e-4)


def test_trees_svm_and_knn_have_no_logits_module():
    for name, kind in (("xgboost", "single_label"), ("forest", "single_label"), ("knn", "multi_label")):
        assert from_zoo(fitted(name, kind, 3)).logits_module() is None


@pytest.mark.parametrize("link", ["binary", "sigmoid", "softmax"])
def test_decision_values_become_probabilities_by_the_link_a_softmax_of_large_values_too(link):
    from scipy.special import expit, softmax

    s = np.array([[800.0, -3.0], [0.0, 1.5], [-900.0, 2.0]])
    s = s[:, :1] if link == "binary" else s
    want = {"binary": np.hstack([1 - expit(s), expit(s)]), "sigmoid": expit(s), "softmax": softmax(s, axis=1)}[link]
    with np.errstate(over="ignore"):  # exp(900) is inf, and its sigmoid 0, as it should
        np.testing.assert_allclose(_link(s, link), want, rtol=1e-12, atol=1e-15)


@functools.cache
def members() -> tuple[ZooClassifier, ZooClassifier]:
    """logreg fitted on inputs 0 and 2, the MLP on 1 and 3 (each its own feature set)."""
    x, y = data("single_label", 3)
    return (make_estimator("logreg", "single_label", 3).fit(x[:, [0, 2]], y),
            make_estimator("mlp", "single_label", 3, threads=1, max_rounds=3).fit(x[:, [1, 3]], y))


def average() -> Average:
    a, b = members()
    return Average((from_zoo(a), from_zoo(b)), (("g0", "g2"), ("g1", "g3")), (np.array([0, 2]), np.array([1, 3])))


def test_the_average_scores_each_member_on_its_own_columns_and_averages_their_probabilities():
    avg = average()
    a, b = members()
    x = data("single_label", 3, n=12, seed=6)[0]
    want = (a.predict_proba(x[:, [0, 2]]) + b.predict_proba(x[:, [1, 3]])) / 2
    np.testing.assert_allclose(avg.predict_proba(x), want, rtol=0, atol=1e-6)
    assert avg.name == AVERAGE and avg.logits_module() is None
    assert avg.spec == {"name": AVERAGE, "format": AVERAGE, "members": [
        {"groups": ["g0", "g2"], "estimator": avg.members[0].spec},
        {"groups": ["g1", "g3"], "estimator": avg.members[1].spec}]}
    avg.check(3, 4)


def test_an_average_whose_member_reads_beyond_the_inputs_or_does_not_fit_is_refused():
    avg = average()
    with pytest.raises(ValueError, match=r"^the average's mlp reads column 3 of 3$"):
        avg.check(3, 3)
    with pytest.raises(ValueError, match=r"^the estimator was fitted for 3 classes, not 2$"):
        avg.check(2, 4)
    wide = replace(avg, columns=(np.array([0, 2]), np.array([1, 2, 3])))
    with pytest.raises(ValueError, match=r"^the estimator cannot score 3 inputs"):
        wide.check(3, 4)


_ran: list[str] = []


class Payload:
    """A pickled object that runs code when unpickled, as a hostile weights.pt could."""

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return _ran.append, ("code from the file ran",)


def test_a_weights_file_holding_anything_but_tensors_is_refused_without_running_its_code():
    import pickle

    portable = from_zoo(fitted("mlp", "single_label", 2))
    buf = io.BytesIO()
    torch.save({"payload": Payload()}, buf)
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        Portable(portable.spec, portable.arrays, buf.getvalue()).network()
    assert _ran == []


@pytest.mark.parametrize("kind, k", [("single_label", 2), ("single_label", 3), ("multi_label", 3)])
def test_a_balanced_svms_saved_form_puts_its_probabilities_on_equal_priors_as_the_fitted_one_does(kind, k):
    """Balanced, the fitted SVM divides its Platt-scaled probabilities by the class rates (``learn.balance``); its
    saved form must too, or a loaded model scores a rare class 0.13 lower and train refuses every balanced SVM."""
    x, y = data(kind, k)
    first = np.arange(len(x)) < len(x) // 3
    if kind == "single_label":  # class 1's clips in the first third only: a third as many as each other class's
        x, y = x[(y != 1) | first], y[(y != 1) | first]
    else:  # the first label on the first third's clips only
        y[~first, 0] = 0
    model = make_estimator("svm", kind, k, class_weight="balanced").fit(x, y)
    portable = from_zoo(model)
    assert portable.spec["equal_priors"] and portable.spec["kind"] == kind
    held_out = data(kind, k, n=20, seed=4)[0]
    np.testing.assert_allclose(portable.predict_proba(held_out), model.predict_proba(held_out), rtol=0, atol=1e-9)
    # unweighted, the probabilities are Platt's own: no map to carry
    plain = make_estimator("svm", kind, k).fit(x, y)
    assert "equal_priors" not in from_zoo(plain).spec
    np.testing.assert_allclose(from_zoo(plain).predict_proba(held_out), plain.predict_proba(held_out), rtol=0, atol=1e-9)
