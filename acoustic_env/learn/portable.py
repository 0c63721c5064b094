"""A fitted estimator in a portable form: plain arrays, a torch ``state_dict``, XGBoost's JSON or skops, never a pickle.

The model artifact must load from untrusted storage without running code from
it, so no estimator is pickled. Each kind is saved in the form its library
reads back safely:

* ``linear`` (logistic regression): the standardisation and the coefficients as
  float64 arrays; the probabilities are recomputed with numpy (logistic link
  for a binary or one-vs-rest model, softmax for a multinomial one);
* ``torch`` (the MLP, the CNN): the network's ``state_dict`` (``weights.pt``, loaded with
  ``weights_only=True``), its architecture (``network``: ``cnn`` for ``learn.spectro``'s, absent
  for the MLP), and the standardisation in front of it when the estimator had one; the CNN's
  spec also names its ``input``: the image column, its bands and the window's frames;
* ``xgboost``: the booster in XGBoost's JSON model format (``xgboost.json``),
  and the trees it uses (early stopping keeps fewer than it grew);
* ``skops`` (the forest, the SVM and kNN): the fitted scikit-learn pipeline
  (standardisation and estimator) in skops' format (``estimator.skops``): a
  zip of JSON and ``.npy`` arrays that skops rebuilds without unpickling,
  refusing any type outside scikit-learn's estimators, numpy and scipy unless
  named in ``SKOPS_TRUSTED`` (the trees' ``Tree`` alone). Why skops and not
  ONNX (skl2onnx + onnxruntime), the other well-kept format: the estimator
  read back is scikit-learn's own, so its probabilities are the fitted ones
  exactly (0 difference on every clip), where ONNX's kernels differ: kNN's
  distance weights of a clip in the training rows (distance 0) came out
  wrong by 0.93, and the one-vs-rest SVM by 1.2e-6; and skops is a small pure-Python package (1.4 MB) where
  onnxruntime and onnx weigh 110 MB. Plain arrays fit the linear model, but
  re-implementing libsvm's probability coupling or kNN's tie rules in numpy
  would be a second implementation to keep equal to the first.

Every kind also keeps the zoo's wrapper (``learn.zoo.ZooClassifier``): which
classes (or label columns) the estimator was fitted on and the training rate
of the others, so a loaded estimator returns the probabilities the fitted
one did (the train job checks that on every clip before saving, to
``SAVED_TOLERANCE``).

Every model of the zoo has such a form, so any of them can be the saved model
(``learn.cv``). Loading needs numpy and torch, and xgboost for a booster,
scikit-learn and skops (pinned with it) for the skops format only.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from acoustic_env.candidates import AVERAGE, FORMATS
from acoustic_env.learn.calibrate import Calibrator
from acoustic_env.learn.mlp import MLP, n_outputs

ARRAYS, WEIGHTS, BOOSTER, SKOPS = "estimator.npz", "weights.pt", "xgboost.json", "estimator.skops"
#: The file each format keeps beside ``ARRAYS`` (the linear model is arrays only).
FORMAT_FILES = {"linear": None, "torch": WEIGHTS, "xgboost": BOOSTER, "skops": SKOPS}
#: The types a skops file may hold beyond skops' defaults (scikit-learn's estimators, numpy, scipy): a tree's
#: node arrays. Anything else in the file stops the load.
SKOPS_TRUSTED = ["sklearn.tree._tree.Tree"]
#: The prefix of the probability map's arrays in ``ARRAYS`` (``learn.calibrate``).
CALIBRATION = "calibration_"
#: How far a saved form's probabilities may lie from its fitted estimator's on any clip (the train job's check, of
#: each model and of an average). The projections it scores are float32: summed by another kernel, raw features
#: near 1e3 moved a logistic regression on 32 components of 48 clips by 4.4e-6 to 6e-5 (tests/test_saved.py),
#: where a form that lost part of its model is off by 1e-2 and more (a balanced SVM without its priors: 0.13).
SAVED_TOLERANCE = 1e-4


@dataclass(frozen=True)
class Portable:
    """What the artifact stores of one estimator: a JSON-able ``spec``, float/int ``arrays`` and one file's bytes."""

    spec: dict[str, Any]
    arrays: dict[str, np.ndarray]
    blob: bytes | None = None
    _cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    @property
    def n_outputs(self) -> int:
        """How many probability columns the estimator itself gives (before the wrapper spreads them over classes)."""
        return int(self.spec["outputs"])

    def check(self, n_classes: int, in_dim: int) -> None:
        """Raise ValueError unless this estimator fits ``n_classes`` classes and ``in_dim`` inputs (a damaged artifact)."""
        columns, prior = self.arrays["columns"], self.arrays["prior"]
        if len(prior) != n_classes or (len(columns) and int(columns.max()) >= n_classes):
            raise ValueError(f"the estimator was fitted for {len(prior)} classes, not {n_classes}")
        if self.n_outputs != len(columns) and not (len(columns) == 1 and self.n_outputs == 2):
            raise ValueError(f"the estimator gives {self.n_outputs} outputs for {len(columns)} fitted classes")
        image = self.spec.get("input")
        probe = (1, int(image["bands"]), int(image["frames"])) if image else (1, in_dim)
        try:
            width = self.fitted_proba(np.zeros(probe, np.float32)).shape[1]
        except Exception as e:  # noqa: BLE001 - numpy, torch and xgboost each refuse a wrong width their own way
            raise ValueError(f"the estimator cannot score {in_dim} inputs ({type(e).__name__})") from None
        if width != self.n_outputs:
            raise ValueError(f"the estimator computes {width} outputs where its description says {self.n_outputs}")

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """[n, classes] probabilities, as ``ZooClassifier.predict_proba`` gave them (its calibration included)."""
        out = np.tile(self.arrays["prior"], (len(x), 1)).astype(np.float64)
        columns = self.arrays["columns"]
        if len(columns) and len(x):
            p = self.fitted_proba(x)
            out[:, columns] = p if p.shape[1] == len(columns) else p[:, 1:]
            if self.spec.get("equal_priors"):  # a balanced SVM's, as the fitted one gives them
                from acoustic_env.learn.balance import equal_priors

                out[:, columns] = equal_priors(out[:, columns], self.arrays["prior"][columns],
                                               self.spec["kind"] == "multi_label")
        calibrator = self.calibrator()
        return out if calibrator is None else calibrator(out)

    def calibrator(self) -> Calibrator | None:
        """The probability map the model chose on its inner folds (``learn.calibrate``), or None."""
        cal = self.spec.get("calibration")
        if not cal:
            return None
        arrays = {k.removeprefix(CALIBRATION): v for k, v in self.arrays.items() if k.startswith(CALIBRATION)}
        return Calibrator(cal["method"], self.spec["kind"], np.asarray(cal["columns"], np.int64), arrays)

    def fitted_proba(self, x: np.ndarray) -> np.ndarray:
        """The wrapped estimator's own probabilities over the classes it was fitted on."""
        fmt = self.spec["format"]
        if fmt == "linear":
            s = self._standardised(x) @ self.arrays["coef"].T + self.arrays["intercept"]
            return _link(s, self.spec["link"])
        if fmt == "torch":
            from acoustic_env.learn.mlp import predict_proba

            return predict_proba(self.network(), self._standardised(x), self.spec["kind"], int(self.spec["classes"]))
        if fmt == "xgboost":
            p = np.asarray(self.booster().inplace_predict(np.asarray(x, np.float32),
                                                          iteration_range=tuple(self.spec["iteration_range"])))
            p = p.reshape(len(x), -1).astype(np.float64)
            return np.hstack([1 - p, p]) if p.shape[1] == 1 and self.n_outputs == 2 else p
        if fmt == "skops":
            return np.asarray(self.pipeline().predict_proba(x), np.float64)
        raise ValueError(f"unknown estimator format {fmt!r}")

    def _standardised(self, x: np.ndarray) -> np.ndarray:
        """The estimator's own standardisation, step for step as scikit-learn's scaler computes it in place: its
        mean and scale cast to the inputs' float32 first (scikit-learn 1.9), so that the values are the fitted ones."""
        x = np.asarray(x, np.float32)
        if "mean" not in self.arrays:
            return x
        dtype = np.float32 if self.spec["format"] == "torch" else np.float64
        z = x - self.arrays["mean"].astype(np.float32)
        return (z / self.arrays["scale"].astype(np.float32)).astype(dtype)

    def loaded(self) -> Portable:
        """This estimator with its network or booster parsed (a damaged file fails here, not at the first clip)."""
        if self.spec["format"] == "torch":
            self.network()
        elif self.spec["format"] == "xgboost":
            self.booster()
        elif self.spec["format"] == "skops":
            self.pipeline()
        return self

    def network(self) -> nn.Module:
        if "net" not in self._cache:
            state = torch.load(io.BytesIO(self.blob or b""), weights_only=True, map_location="cpu")
            self._cache["net"] = rebuild_network(self.spec["architecture"], state)
        return self._cache["net"]

    def booster(self) -> Any:
        if "booster" not in self._cache:
            import xgboost

            booster = xgboost.Booster()
            booster.load_model(bytearray(self.blob or b""))
            self._cache["booster"] = booster
        return self._cache["booster"]

    def pipeline(self) -> Any:
        """The scikit-learn pipeline of a skops file, read with only the trusted types (``SKOPS_TRUSTED``)."""
        if "pipeline" not in self._cache:
            import skops.io
            from sklearn.pipeline import Pipeline

            _within_recorded_size(self.blob or b"", self.spec.get("unpacked_bytes"))
            pipeline = skops.io.loads(self.blob or b"", trusted=SKOPS_TRUSTED)
            if not isinstance(pipeline, Pipeline):
                raise ValueError(f"the skops file holds a {type(pipeline).__name__}, not a scikit-learn Pipeline")
            self._cache["pipeline"] = pipeline
        return self._cache["pipeline"]

    def logits_module(self) -> nn.Module | None:
        """A torch module from the model's input to its logits, for gradient SHAP (None for trees, SVM and kNN)."""
        fmt = self.spec["format"]
        if fmt in ("xgboost", "skops"):
            return None
        if fmt == "linear":
            coef = self.arrays["coef"]
            layer = nn.Linear(coef.shape[1], coef.shape[0])
            mean, scale = self.arrays.get("mean", np.zeros(coef.shape[1])), self.arrays.get("scale", np.ones(coef.shape[1]))
            with torch.no_grad():  # W((x - m)/s) + b = (W/s)x + (b - W(m/s))
                layer.weight.copy_(torch.tensor(coef / scale[None, :], dtype=torch.float32))
                layer.bias.copy_(torch.tensor(self.arrays["intercept"] - coef @ (mean / scale), dtype=torch.float32))
            return layer
        if "mean" not in self.arrays:
            return self.network()
        scale = torch.tensor(1 / self.arrays["scale"], dtype=torch.float32)
        pre = nn.Linear(len(scale), len(scale))
        with torch.no_grad():
            pre.weight.copy_(torch.diag(scale))
            pre.bias.copy_(-torch.tensor(self.arrays["mean"], dtype=torch.float32) * scale)
        return nn.Sequential(pre, self.network())


@dataclass(frozen=True)
class Average:
    """The mean of member estimators' probabilities, each member on its own feature groups' columns of the inputs.

    The average of the compared models often scores above each of them out of fold (the forest recordings: 0.940
    against logistic regression's 0.929), and ``learn.cv`` names the best pooled score the chosen model; kept as
    its members in their own portable forms, each with the feature set and probability map it chose, the average
    is a model the artifact can hold like any other.
    """

    members: tuple[Portable, ...]
    groups: tuple[tuple[str, ...], ...]  # per member, the feature groups it reads
    columns: tuple[np.ndarray, ...]  # per member, those groups' columns of the model inputs (transform.columns_of)

    @property
    def name(self) -> str:
        return AVERAGE

    @property
    def spec(self) -> dict[str, Any]:
        """What model.json keeps: each member's own spec beside the groups it reads."""
        return {"name": AVERAGE, "format": AVERAGE,
                "members": [{"groups": list(g), "estimator": m.spec} for m, g in zip(self.members, self.groups)]}

    def check(self, n_classes: int, in_dim: int) -> None:
        """Raise ValueError unless every member fits ``n_classes`` classes on columns within ``in_dim`` inputs."""
        for member, columns in zip(self.members, self.columns):
            if len(columns) and int(columns.max()) >= in_dim:
                raise ValueError(f"the average's {member.name} reads column {int(columns.max())} of {in_dim}")
            member.check(n_classes, len(columns))

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """[n, classes]: the members' probabilities (each calibrated by its own map), averaged."""
        return np.mean([m.predict_proba(x[:, c]) for m, c in zip(self.members, self.columns)], axis=0)

    def logits_module(self) -> nn.Module | None:
        """None: an average of probabilities has no logits (SHAP explains its members one by one)."""
        return None


def _unpacked_bytes(blob: bytes) -> int:
    """What a zip's members declare they unpack to (the sizes its reader decompresses up to)."""
    with zipfile.ZipFile(io.BytesIO(blob)) as archive:
        return sum(member.file_size for member in archive.infolist())


def _within_recorded_size(blob: bytes, recorded: int | None) -> None:
    """Raise ValueError unless the skops zip unpacks to at most the size model.json recorded when it was saved.

    skops decompresses every member whole: a member compressed a thousandfold (a zip bomb) would be read
    into memory before anything else is checked; its declared size is read first here.
    """
    if not isinstance(recorded, int):
        raise ValueError("the model's description does not record the size the skops file unpacks to (a model "
                         "saved before that was recorded)")
    size = _unpacked_bytes(blob)
    if size > recorded:
        raise ValueError(f"its members declare {size:,} bytes unpacked, where the model's description recorded "
                         f"{recorded:,}")


def rebuild_network(architecture: dict[str, Any], state: dict[str, Any]) -> nn.Module:
    """The network of ``architecture`` (:func:`acoustic_env.learn.mlp.architecture`'s, or ``learn.spectro``'s for
    ``network: cnn``) with the weights ``state``, in evaluation mode: how a saved model and the train job's
    evaluations get back the network a run trained."""
    if architecture.get("network") == "cnn":
        from acoustic_env.learn.spectro import SpectroCNN

        net: nn.Module = SpectroCNN(**{k: v for k, v in architecture.items() if k != "network"})
    else:
        net = MLP(**architecture)
    net.load_state_dict(state)
    net.eval()
    return net


def _link(s: np.ndarray, link: str) -> np.ndarray:
    """Probabilities from decision values: ``binary`` [1-σ, σ] of one column, ``sigmoid`` per column, ``softmax``."""
    if link == "softmax":
        e = np.exp(s - s.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    p = 1 / (1 + np.exp(-s))
    return np.hstack([1 - p, p]) if link == "binary" else p


def _wrapper(model: Any) -> dict[str, np.ndarray]:
    return {"prior": np.asarray(model.prior_, np.float64), "columns": np.asarray(model.columns_, np.int64)}


def _scaler(scaler: Any) -> dict[str, np.ndarray]:
    return {"mean": np.asarray(scaler.mean_, np.float64), "scale": np.asarray(scaler.scale_, np.float64)}


def from_zoo(model: Any) -> Portable:
    """The portable form of a fitted ``ZooClassifier`` (ValueError for a model without one, or not fitted), with
    its probability map when it chose one (``spec["calibration"]``, the arrays as ``calibration_<name>``)."""
    portable = _from_zoo(model)
    calibrator = getattr(model, "calibration_", None)
    if calibrator is None:
        return portable
    arrays = {**portable.arrays, **{CALIBRATION + k: v for k, v in calibrator.arrays.items()}}
    return Portable({**portable.spec, "kind": model.kind, "calibration": calibrator.describe()}, arrays,
                    portable.blob)


def _from_zoo(model: Any) -> Portable:
    """``from_zoo``'s estimator, without its calibration."""
    if model.name not in FORMATS:  # each candidate declares its saved form (acoustic_env.candidates)
        raise ValueError(f"{model.name} has no portable form (portable: {', '.join(FORMATS)})")
    if model.model_ is None:
        raise ValueError(f"{model.name} was fitted on fewer than two classes: nothing to save")
    arrays = _wrapper(model)
    fmt = FORMATS[model.name]
    spec: dict[str, Any] = {"name": model.name, "format": fmt, "params": model.params_}
    if fmt == "linear":
        scaler, clf = model.model_[0], model.model_[-1]
        members = clf.estimators_ if hasattr(clf, "estimators_") else [clf]  # one-vs-rest: one model per label
        coef = np.vstack([m.coef_ for m in members])
        intercept = np.concatenate([m.intercept_ for m in members])
        link = "sigmoid" if len(members) > 1 else "binary" if coef.shape[0] == 1 else "softmax"
        arrays.update(_scaler(scaler), coef=coef.astype(np.float64), intercept=intercept.astype(np.float64))
        spec.update(link=link, outputs=2 if link == "binary" else coef.shape[0])
        return Portable(spec, arrays)
    if fmt == "torch" and model.spec.inputs == "images":
        inner = model.model_
        return from_cnn(inner.model_, inner.frames_, inner.kind_, inner.n_classes_, model.params_, arrays)
    if fmt == "torch":
        from acoustic_env.learn.mlp import architecture

        inner = model.model_
        arrays.update(_scaler(inner.scaler_))
        arch = architecture(len(inner.scaler_.mean_), inner.kind_, inner.n_classes_, inner.network)
        return from_network(inner.model_, arch, inner.kind_, inner.n_classes_, arrays, spec)
    k = len(model.columns_)
    spec["outputs"] = max(k, 2)  # the columns the estimator gives: one fitted class still has two (its hstack)
    if fmt == "skops":
        import skops.io

        if model.equal_priors:
            spec.update(equal_priors=True, kind=model.kind)

        blob = skops.io.dumps(model.model_, compression=zipfile.ZIP_DEFLATED)
        return Portable({**spec, "unpacked_bytes": _unpacked_bytes(blob)}, arrays, blob)
    booster = model.model_.get_booster()
    best = booster.attr("best_iteration")  # set by early stopping; XGBClassifier then predicts with those trees
    spec["iteration_range"] = [0, 0 if best is None else int(best) + 1]
    return Portable(spec, arrays, bytes(booster.save_raw("json")))


def from_cnn(net: nn.Module, frames: int, kind: str, n_classes: int, params: dict[str, Any],
             arrays: dict[str, np.ndarray] | None = None) -> Portable:
    """A trained ``learn.spectro.SpectroCNN`` of window ``frames`` and settings ``params`` (``PARAMS["cnn"]``'s
    form): the zoo's, fitted in memory, or one trained on streamed images (``distributed.images``)."""
    from acoustic_env.learn.spectro import architecture
    from acoustic_env.learn.image_input import IMAGE_COLUMN

    bands = int(net.bands)
    spec = {"name": "cnn", "params": params,
            "input": {"column": IMAGE_COLUMN, "bands": bands, "frames": int(frames)}}
    return from_network(net, architecture(bands, kind, n_classes, params["network"]), kind, n_classes, arrays, spec)


def from_network(net: nn.Module, architecture: dict[str, Any], kind: str, n_classes: int,
                 arrays: dict[str, np.ndarray] | None = None, spec: dict[str, Any] | None = None) -> Portable:
    """A torch network of ``architecture`` over ``n_classes`` classes (the searched MLP, or the zoo MLP's network)."""
    if n_outputs(kind, n_classes) != architecture["n_out"]:
        raise ValueError(f"the network has {architecture['n_out']} outputs, not {n_outputs(kind, n_classes)}")
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in net.state_dict().items()}, buf)
    arrays = arrays or {"prior": np.full(n_classes, 1 / n_classes), "columns": np.arange(n_classes)}
    spec = {"name": "mlp", **(spec or {}), "format": "torch", "architecture": architecture, "kind": kind,
            "classes": int(n_classes), "outputs": int(n_classes)}
    return Portable(spec, arrays, buf.getvalue())
