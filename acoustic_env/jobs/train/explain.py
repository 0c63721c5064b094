"""SHAP attributions: which inputs the models use, in the units a person knows.

The network sees PCA components, which mean little to a reader. Because the
preprocessing is affine (``transform.GroupTransform.affine``), it is folded
into the network as a first linear layer and SHAP's expected-gradients
explainer runs on the original feature values: attributions come out per
acoustic index name and per modulation-grid cell (drawn as a heatmap), and
summed over a group they give the group's share. The same explainer on the
bare network gives the components' attributions; the trees (XGBoost, the
random forest) get TreeSHAP on the components.

Beside SHAP, the importances the studies we follow reported
(``importances``): logistic regression's coefficients (|coefficient| on the
standardised components, averaged over classes) and the forest's impurity
(Gini) importances, per component and summed per feature group, and carried
back through the PCA to the original columns, as the studies give them (per
MFCC band, index, MPS cell; ``learn.importances``: the slope of a linear model's
log-odds on each column, the Gini importances shared by squared loadings). They come from the fitted models
themselves, cost nothing to compute, and answer a narrower question than SHAP
(what the model weighs, not what moved these clips' predictions); the SVM and
kNN have neither and get no attribution.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from acoustic_env.learn.importances import linear_pattern, spread_by_loadings
from acoustic_env.learn.transform import GroupTransform
from acoustic_env.learn.zoo import ZooClassifier
from acoustic_env.table import GroupInfo


class RawInputModel(nn.Module):
    """The preprocessing as a linear layer in front of the network: raw features in, logits out."""

    def __init__(self, transforms: list[GroupTransform], net: nn.Module):
        super().__init__()
        affines = [t.affine() for t in transforms]
        d_in, d_out = sum(a.shape[0] for a, _ in affines), sum(a.shape[1] for a, _ in affines)
        weight = np.zeros((d_in, d_out), dtype=np.float32)
        r = c = 0
        for a, _ in affines:
            weight[r:r + a.shape[0], c:c + a.shape[1]] = a
            r, c = r + a.shape[0], c + a.shape[1]
        self.pre = nn.Linear(d_in, d_out)
        with torch.no_grad():
            self.pre.weight.copy_(torch.from_numpy(weight.T))
            self.pre.bias.copy_(torch.from_numpy(np.concatenate([b for _, b in affines])))
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.pre(x))


def _mean_abs(values: Any) -> np.ndarray:
    """Mean |SHAP| per input, averaged over outputs (a list per output, or an [n, d, outputs] array)."""
    v = np.stack(values, axis=-1) if isinstance(values, list) else np.asarray(values)
    v = np.abs(v)
    if v.ndim == 3:
        v = v.mean(axis=2)
    return v.mean(axis=0)


def _gradient_shap(model: nn.Module, background: np.ndarray, x: np.ndarray, seed: int) -> np.ndarray:
    import shap

    model.eval()
    explainer = shap.GradientExplainer(model, torch.as_tensor(background, dtype=torch.float32))
    return _mean_abs(explainer.shap_values(torch.as_tensor(x, dtype=torch.float32), nsamples=50, rseed=seed))


def _ranked(names: list[str], values: np.ndarray, top: int) -> list[list[Any]]:
    order = np.argsort(-values)[:top]
    return [[names[i], float(values[i])] for i in order]


def mlp_attributions(net: nn.Module, transforms: list[GroupTransform], infos: list[GroupInfo],
                     raw_background: np.ndarray, raw_explain: np.ndarray, seed: int, top: int = 25) -> dict[str, Any]:
    """Attributions of the network: per component, per original feature, per group, and MPS grids."""
    pca_names = [n for t in transforms for n in t.output_names()]
    pre = RawInputModel(transforms, net)
    comp = _gradient_shap(net, pre.pre(torch.as_tensor(raw_background)).detach().numpy(),
                          pre.pre(torch.as_tensor(raw_explain)).detach().numpy(), seed)
    raw = _gradient_shap(pre, raw_background, raw_explain, seed)
    names = [n for info in infos for n in info.feature_names()]
    by_group, grids, start = {}, {}, 0
    for info in infos:
        part = raw[start:start + info.dim]
        by_group[info.name] = float(part.sum())
        if info.grid and info.axes:
            grids[info.name] = {"values": part.reshape(info.grid).tolist(), **info.axes}
        start += info.dim
    return {"components": _ranked(pca_names, comp, top), "features": _ranked(names, raw, top),
            "by_group": by_group, "mps": grids}


def _per_component(transforms: list[GroupTransform], values: np.ndarray, top: int) -> dict[str, Any]:
    """One value per PCA component: the ``top`` components ranked, and the sum over each feature group's."""
    names = [n for t in transforms for n in t.output_names()]
    by_group: dict[str, float] = {}
    for t in transforms:
        by_group[t.group] = float(sum(v for n, v in zip(names, values) if n.startswith(t.group + ":")))
    return {"components": _ranked(names, values, top), "by_group": by_group}


def tree_attributions(model: Any, transforms: list[GroupTransform], x: np.ndarray, top: int = 25) -> dict[str, Any]:
    """TreeSHAP on the components for a fitted XGBoost model."""
    import shap

    return _per_component(transforms, _mean_abs(shap.TreeExplainer(model).shap_values(x)), top)


def _members(fitted: ZooClassifier) -> list[Any]:
    """The fitted scikit-learn estimators behind a zoo pipeline: one per label column for one-vs-rest."""
    from sklearn.multiclass import OneVsRestClassifier

    clf = fitted.model_[-1]
    return list(clf.estimators_) if isinstance(clf, OneVsRestClassifier) else [clf]


def zoo_attributions(fitted: ZooClassifier, transforms: list[GroupTransform], x: np.ndarray,
                     top: int = 25) -> dict[str, Any] | None:
    """TreeSHAP on the components for a fitted zoo model made of trees (its candidate's ``explainer``: XGBoost, the
    forest); None for others.

    The forest saw its inputs standardised (a monotone map per component), so its
    attributions are those of the components.
    """
    if fitted.model_ is None or fitted.spec.explainer != "trees":
        return None
    if not hasattr(fitted.model_, "steps"):  # a booster of its own, not a scikit-learn pipeline
        return tree_attributions(fitted.model_, transforms, x, top)
    import shap

    z = fitted.model_[0].transform(x)
    values = np.mean([_mean_abs(shap.TreeExplainer(f).shap_values(z)) for f in _members(fitted)], axis=0)
    return _per_component(transforms, values, top)


#: How ``importances`` carries each kind back to the original columns (``learn.importances``), in the report's words.
ON_ORIGINAL = {"impurity": "impurity (Gini) importance of each component shared among the columns by its squared "
                           "loadings",
               "coefficients": "|slope| of its group's share of the log-odds on each standardised column alone "
                               "(their covariance on the training clips, through the PCA), averaged over classes"}
#: The same, short enough for the axis of the report's figure.
ON_ORIGINAL_AXIS = {"impurity": "impurity (Gini) importance, shared by squared loadings",
                    "coefficients": "|slope| of the log-odds per standard deviation"}


def importances(fitted: ZooClassifier, transforms: list[GroupTransform], top: int = 25,
                infos: Sequence[GroupInfo] | None = None) -> dict[str, Any] | None:
    """A linear model's |coefficients| or a forest's impurity importances per component and group, as its candidate
    declares (``importance``; None for another model, or one fitted on fewer than two classes); given the groups'
    ``infos``, also the ``top`` original columns (``features``, named as ``GroupInfo.feature_names``)."""
    if fitted.model_ is None or fitted.spec.importance is None:
        return None
    members = _members(fitted)
    if fitted.spec.importance == "impurity":
        values, method = np.mean([m.feature_importances_ for m in members], axis=0), "impurity (Gini) importance"
        original = None if infos is None else spread_by_loadings(transforms, values)
    else:  # on standardised components: the change in log-odds per standard deviation
        values = np.mean([np.abs(m.coef_).mean(axis=0) for m in members], axis=0)
        method = "|coefficient| on the standardised components, averaged over classes"
        scale = fitted.model_[0].scale_  # the pipeline's own scaler in front of the coefficients
        original = None if infos is None else np.mean(
            [np.abs(linear_pattern(transforms, m.coef_ / scale)).mean(axis=0) for m in members], axis=0)
    out = {"method": method, **_per_component(transforms, values, top)}
    if original is not None:
        named = {info.name: info.feature_names() for info in infos}
        names = [n for t in transforms for n in named[t.group]]
        out.update(features=_ranked(names, original, top), features_method=ON_ORIGINAL[fitted.spec.importance],
                   features_axis=ON_ORIGINAL_AXIS[fitted.spec.importance])
    return out
