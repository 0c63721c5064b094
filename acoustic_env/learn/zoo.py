"""The estimator zoo: every classifier with fixed hyper-parameters, built and declared in this one place.

Two jobs fit them. The training job's baselines answer "does the network earn
its keep?" (if a linear model on the same PCA components does as well, the
report says so). The audit's cross-fitting fits one per fold for out-of-fold
probabilities, so nothing is tuned there: it needs calibrated-enough
probabilities, not the best classifier.

* ``logreg``: standardise + L2 logistic regression whose strength is chosen
  by an inner CV on log loss (``class_weight="balanced"`` weighs each class alike:
  the frame comparison's pooled model). With noisy labels the amount of regularisation
  decides whether the probabilities can be trusted, and the right amount
  depends on the number of clips and features. Given ``groups``, the inner
  folds keep every group on one side (``inner_splits``), so the search never
  scores a C on a copy of a clip it was fitted on; inside the train job's
  cross-validation it sees the training folds only (nested).
* ``xgboost``: gradient-boosted trees (hist). Given an ``eval_set`` (the
  training job's validation split) it stops adding trees once the log loss
  there stops improving.
* ``mlp``: the training job's network (``learn.mlp_estimator``); ``network``
  holds its hyper-parameters, the defaults of the Ray Tune search too. The
  search, the ablations and the final fit all build it here and train it with
  its ``train`` (``ZooClassifier.network``).

Given ``groups``, xgboost and the MLP also search their settings: the first
``trials`` of ``CANDIDATES`` (the defaults first), each scored by grouped CV
on the rows being fitted (``learn.search``), the best refitted on all of them.
The audit passes no groups, so its models keep the defaults.
* ``forest``, ``svm``, ``knn``: a random forest, an RBF support-vector machine
  (Platt-scaled probabilities) and k-nearest neighbours (distance-weighted) on
  standardised inputs: the other models the studies we follow compared. Train
  scores them on the same folds; none has a pickle-free saved form, so none
  becomes the saved model (``learn.portable``).
* ``cnn``: a small CNN over each clip's log-mel image (``learn.spectro``): its ``X`` is
  [clips, bands, frames] images, not feature vectors; it holds out whole groups of the
  rows it is given for early stopping.

``make_estimator`` wraps each in a ``ZooClassifier``, which fits on any subset
of the rows (a fold may lack a class, or a multi-label column may be constant
in it) and always predicts ``[n, n_classes]`` probabilities.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from acoustic_env.config import CLASSIFIERS, EXTRA_BASELINES, IMAGE_MODELS, ConfigError
from acoustic_env.learn.params import CANDIDATES, PARAMS
from acoustic_env.learn.search import SearchPlan, SearchRecord, grouped_search, inner_splits
from acoustic_env.learn.threads import blas_threads

if TYPE_CHECKING:
    from acoustic_env.learn.mlp_estimator import MLPClassifier

#: The names are declared with the configs that choose among them.
ESTIMATORS = (*CLASSIFIERS, *EXTRA_BASELINES, *IMAGE_MODELS)


def make_estimator(name: str, kind: str, n_classes: int, seed: int = 0, threads: int | None = None,
                   search: SearchPlan = SearchPlan(), **overrides: Any) -> ZooClassifier:
    """A fresh, unfitted zoo model for a ``single_label`` or ``multi_label`` task of ``n_classes`` classes.

    ``threads``: XGBoost's threads (None: every core; a one-CPU Ray task, or the
    train job's cross-validation of a small table, passes 1) and the MLP's torch
    threads (None: one, see ``MLPClassifier.fit``).
    ``search``: how many settings of ``CANDIDATES`` a grouped fit tries, on how
    many inner folds (logistic regression's C search uses those folds too).
    ``overrides`` replace entries of ``PARAMS[name]``.
    """
    if name not in ESTIMATORS:
        raise ConfigError(f"model: must be one of {list(ESTIMATORS)}, got {name!r}")
    unknown = sorted(set(overrides) - set(PARAMS[name]))
    if unknown:
        raise ConfigError(f"model: {name} has no parameter {unknown[0]!r} (it has {sorted(PARAMS[name])})")
    return ZooClassifier(name, kind, n_classes, {**PARAMS[name], **overrides}, seed, threads, *search)


class ZooClassifier(ClassifierMixin, BaseEstimator):
    """One zoo model for one task; targets are class indices (single-label) or an [n, K] 0/1 matrix (multi-label).

    The wrapped estimator is fitted on the classes (or label columns) that vary
    in the training rows only; the others get their training rate, which is 0
    for a class absent from a single-label fold.
    """

    def __init__(self, name: str, kind: str, n_classes: int, params: dict[str, Any], seed: int = 0,
                 threads: int | None = None, trials: int = SearchPlan().trials,
                 inner_folds: int = SearchPlan().inner_folds):
        self.name = name
        self.kind = kind
        self.n_classes = n_classes
        self.params = params
        self.seed = seed
        self.threads = threads
        self.trials = trials
        self.inner_folds = inner_folds

    def fit(self, X: np.ndarray, y: np.ndarray, eval_set: tuple[np.ndarray, np.ndarray] | None = None,
            groups: np.ndarray | None = None) -> ZooClassifier:
        """Fit on (X, y); ``eval_set`` = (X_val, y_val) for early stopping (XGBoost; the others ignore it).

        ``groups`` (one per row): the model's search runs grouped CV on these rows
        (``search_`` records it): logistic regression's C (single-label), or the
        first ``trials`` settings of ``CANDIDATES``. A small ``X`` is fitted on one BLAS thread (``learn.threads``).
        """
        with blas_threads(np.size(X)):
            return self._fit(X, np.asarray(y), eval_set, groups)

    def _fit(self, X: np.ndarray, y: np.ndarray, eval_set: tuple[np.ndarray, np.ndarray] | None,
             groups: np.ndarray | None) -> ZooClassifier:
        """``fit``'s work."""
        multi = self.kind == "multi_label"
        self.classes_ = np.arange(self.n_classes)
        self.prior_ = y.mean(axis=0) if multi else np.bincount(y, minlength=self.n_classes) / len(y)
        self.columns_ = np.flatnonzero(y.min(axis=0) != y.max(axis=0)) if multi else np.unique(y)
        self.model_ = None
        self.params_ = dict(self.params)  # the settings fitted: the search's choice, else the defaults
        self.search_: SearchRecord | None = None
        if len(self.columns_) < (1 if multi else 2):
            return self
        if groups is not None and self.name in CANDIDATES and self.trials > 1:
            self.search_ = grouped_search(self._candidate, CANDIDATES[self.name][:self.trials], X, y, groups,
                                          self.inner_folds, self.seed, self.kind)
            self.params_.update(self.search_.best if self.search_ else {})
        target = self._target(y)
        if target.ndim == 2:
            positives = target.sum(axis=0)
            smallest = int(np.minimum(positives, len(target) - positives).min())
        else:
            smallest = int(np.bincount(target).min())
        # grouped inner folds for the single-label C search (a multi-label column could lose a class in one)
        if self.name == "logreg" and groups is not None and target.ndim == 1:
            # below two inner folds _build falls back to a fixed C, and _record_c_search says no search ran
            splits = inner_splits(target, groups, min(self.inner_folds, smallest), self.seed)
            self.search_ = SearchRecord(splits, [], {})
        start = time.time()
        self.model_ = self._build(target.ndim == 2, smallest, len(target))
        if eval_set is not None and self.name == "xgboost":
            x_val, y_val = eval_set[0], np.asarray(eval_set[1])
            if not multi:  # rows of a class the training rows lack cannot be scored
                keep = np.isin(y_val, self.columns_)
                x_val, y_val = x_val[keep], y_val[keep]
            if len(y_val):
                self.model_.set_params(early_stopping_rounds=self.params["early_stopping_rounds"])
                self.model_.fit(X, target, eval_set=[(x_val, self._target(y_val))], verbose=False)
                return self
        self.model_.fit(X, target, **({"groups": groups} if self.name == "cnn" else {}))
        if self.name == "logreg" and self.search_ is not None:
            self._record_c_search(time.time() - start)
        return self

    def _candidate(self, overrides: dict[str, Any]) -> ZooClassifier:
        """One setting of the search, fitted on an inner fold without a search of its own."""
        return ZooClassifier(self.name, self.kind, self.n_classes, {**self.params, **overrides}, self.seed,
                             self.threads)

    def _record_c_search(self, seconds: float) -> None:
        """Logistic regression's C search as the other searches record theirs (mean inner score per C)."""
        if len(self.search_.splits) < 2:  # too few groups for a search: fallback_C was fitted
            self.search_ = None
            return
        clf = self.model_[-1]
        scores = np.asarray(clf.scores_).reshape(len(self.search_.splits), -1).mean(axis=0)
        self.search_.trials = [{"params": {"C": float(c)}, "score": float(s)} for c, s in zip(clf.Cs_, scores)]
        self.search_.best = {"C": float(clf.C_)}
        self.search_.seconds, self.search_.fits = seconds, len(clf.Cs_) * len(self.search_.splits)
        self.params_["C"] = float(clf.C_)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """[n, n_classes] probabilities (single-label rows sum to 1)."""
        out = np.tile(self.prior_, (len(X), 1)).astype(np.float64)
        if self.model_ is not None:
            with blas_threads(np.size(X)):
                p = np.asarray(self.model_.predict_proba(X), dtype=np.float64)
            # one varying label column was fitted as a binary problem: keep P(positive)
            out[:, self.columns_] = p if p.shape[1] == len(self.columns_) else p[:, 1:]
        return out

    def _target(self, y: np.ndarray) -> np.ndarray:
        """``y`` restricted to the fitted columns: re-indexed classes, the label matrix, or one 0/1 column."""
        if self.kind != "multi_label":
            return np.searchsorted(self.columns_, y)
        return y[:, self.columns_] if len(self.columns_) > 1 else y[:, self.columns_[0]]

    def _build(self, multi_label: bool, smallest_class: int, n_rows: int) -> Any:
        """The wrapped estimator; ``smallest_class`` (clips of the rarest class, or label value) bounds the inner CV."""
        p = self.params_
        if self.name in EXTRA_BASELINES:
            from sklearn.ensemble import RandomForestClassifier
            from sklearn.neighbors import KNeighborsClassifier
            from sklearn.svm import SVC

            clf = (RandomForestClassifier(**p, random_state=self.seed, n_jobs=self.threads) if self.name == "forest"
                   else SVC(**p, probability=True, random_state=self.seed) if self.name == "svm"
                   else KNeighborsClassifier(**{**p, "n_neighbors": min(p["n_neighbors"], n_rows)}))
            return make_pipeline(StandardScaler(), OneVsRestClassifier(clf) if multi_label else clf)
        if self.name == "logreg":
            inner = min(self.inner_folds, smallest_class)
            cv = inner if self.search_ is None else self.search_.splits
            n_splits = cv if isinstance(cv, int) else len(cv)
            clf = (LogisticRegressionCV(Cs=p["Cs"], l1_ratios=(0.0,), cv=cv, scoring="neg_log_loss",
                                        max_iter=p["max_iter"], class_weight=p["class_weight"],
                                        use_legacy_attributes=False) if n_splits >= 2
                   else LogisticRegression(C=p["fallback_C"], max_iter=p["max_iter"], class_weight=p["class_weight"]))
            return make_pipeline(StandardScaler(), OneVsRestClassifier(clf) if multi_label else clf)
        if self.name == "xgboost":
            from xgboost import XGBClassifier

            trees = {k: v for k, v in p.items() if k != "early_stopping_rounds"}
            return XGBClassifier(**trees, random_state=self.seed, n_jobs=self.threads)
        if self.name == "cnn":
            from acoustic_env.learn.spectro_estimator import CNNClassifier

            return CNNClassifier(seed=self.seed, threads=self.threads, **p)
        return self._network(p)

    def network(self) -> MLPClassifier:
        """The ``mlp`` of these settings, unfitted, for its ``train`` on a split the caller made.

        The Ray Tune search, the feature-group ablations and the quick model train
        the network on their own train/validation split, unscaled (the artifact's
        network reads the PCA components as they are), which ``fit`` here, with its
        class re-indexing and standardised inputs, would not do.
        """
        if self.name != "mlp":
            raise ValueError(f"network: {self.name} is not the network")
        return self._network(self.params)

    def _network(self, params: dict[str, Any]) -> MLPClassifier:
        from acoustic_env.learn.mlp_estimator import MLPClassifier

        return MLPClassifier(seed=self.seed, threads=self.threads, **params)

