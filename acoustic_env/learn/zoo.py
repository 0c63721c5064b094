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

* ``forest``, ``svm``, ``knn``: a random forest, an RBF support-vector machine
  (Platt-scaled probabilities) and k-nearest neighbours (distance-weighted by
  default) on standardised inputs: the other models the studies we follow
  compared. The SVM's ``gamma_factor`` scales the kernel width with the number
  of inputs, so one setting means the same on 20 components and on 200.
* ``elasticnet``: logistic regression as ``logreg``, but searching the L1
  share of the penalty (``l1_ratios``) with C (saga solver): the sparse linear
  model of those studies. A model of its own rather than ``logreg``'s search,
  because ``logreg`` is also the audit's cross-fitted model and the CV
  ablations' (fitted per feature subset per fold), where the L2 search with
  lbfgs costs a fraction of saga's.

Given ``groups``, xgboost, the MLP, the forest, the SVM and kNN also search
their settings: ``trials`` settings sampled from their ``SPACES`` (the
defaults first, then Optuna's TPE), each scored by grouped CV on the rows
being fitted (``learn.search``), the best refitted on all of them. The audit passes no groups, so its models keep the
defaults. Every model has a saved form (``learn.portable``).

Every model but knn takes ``class_weight`` ("balanced": each class weighs alike), the network also
``balanced_sampler``; ``make_estimator``'s ``balance`` sets them (``learn.balance``).
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
from acoustic_env.learn.balance import Balance, equal_priors, sample_weights
from acoustic_env.learn.calibrate import Calibrator
from acoustic_env.learn.calibrate import choose as choose_calibration
from acoustic_env.learn.params import PARAMS, SPACES
from acoustic_env.learn.search import SearchPlan, SearchRecord, grouped_search, inner_splits
from acoustic_env.learn.threads import blas_threads

if TYPE_CHECKING:
    from acoustic_env.learn.mlp_estimator import MLPClassifier

#: The names are declared with the configs that choose among them.
ESTIMATORS = (*CLASSIFIERS, *EXTRA_BASELINES, *IMAGE_MODELS)
#: The logistic regressions: C (and the L1 share) searched by ``LogisticRegressionCV`` on the grouped inner folds.
LINEAR = ("logreg", "elasticnet")
#: The networks get no probability map: the CNN's inner refits would cost two more trainings a fold, and the MLP's
#: map, learnt from inner networks trained on half the clips and stopped early on fewer, made its out-of-fold ECE
#: worse on the forest recordings and the demo alike (0.091 -> 0.138, 0.120 -> 0.144; benchmarks/feature_sets.py).
UNCALIBRATED = ("mlp", *IMAGE_MODELS)


def make_estimator(name: str, kind: str, n_classes: int, seed: int = 0, threads: int | None = None,
                   search: SearchPlan = SearchPlan(), balance: Balance = Balance(), calibrate: bool = False,
                   **overrides: Any) -> ZooClassifier:
    """A fresh, unfitted zoo model for a ``single_label`` or ``multi_label`` task of ``n_classes`` classes.

    ``threads``: XGBoost's threads (None: every core; a one-CPU Ray task, or the
    train job's cross-validation of a small table, passes 1) and the MLP's torch
    threads (None: one, see ``MLPClassifier.fit``).
    ``search``: how many settings of its ``SPACES`` entry a grouped fit tries, on how
    many inner folds (logistic regression's C search uses those folds too).
    ``balance``: how the model weighs rare classes (``learn.balance``).
    ``calibrate``: a grouped fit also chooses a probability map on its inner folds (``learn.calibrate``).
    ``overrides`` replace entries of ``PARAMS[name]``.
    """
    if name not in ESTIMATORS:
        raise ConfigError(f"model: must be one of {list(ESTIMATORS)}, got {name!r}")
    unknown = sorted(set(overrides) - set(PARAMS[name]))
    if unknown:
        raise ConfigError(f"model: {name} has no parameter {unknown[0]!r} (it has {sorted(PARAMS[name])})")
    return ZooClassifier(name, kind, n_classes, {**PARAMS[name], **balance.overrides(name), **overrides}, seed,
                         threads, *search, calibrate=calibrate)


class ZooClassifier(ClassifierMixin, BaseEstimator):
    """One zoo model for one task; targets are class indices (single-label) or an [n, K] 0/1 matrix (multi-label).

    The wrapped estimator is fitted on the classes (or label columns) that vary
    in the training rows only; the others get their training rate, which is 0
    for a class absent from a single-label fold.
    """

    def __init__(self, name: str, kind: str, n_classes: int, params: dict[str, Any], seed: int = 0,
                 threads: int | None = None, trials: int = SearchPlan().trials,
                 inner_folds: int = SearchPlan().inner_folds, calibrate: bool = False):
        self.name = name
        self.kind = kind
        self.n_classes = n_classes
        self.params = params
        self.seed = seed
        self.threads = threads
        self.trials = trials
        self.inner_folds = inner_folds
        self.calibrate = calibrate

    def fit(self, X: np.ndarray, y: np.ndarray, eval_set: tuple[np.ndarray, np.ndarray] | None = None,
            groups: np.ndarray | None = None) -> ZooClassifier:
        """Fit on (X, y); ``eval_set`` = (X_val, y_val) for early stopping (XGBoost; the others ignore it).

        ``groups`` (one per row): the model's search runs grouped CV on these rows
        (``search_`` records it): logistic regression's C and L1 share (single-label), or the
        ``trials`` settings sampled from ``SPACES``; with ``calibrate``, the probability map too
        (``calibration_``, ``learn.calibrate``). A small ``X`` is fitted on one BLAS thread (``learn.threads``).
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
        self.n_features_in_ = np.shape(X)[1]
        self.model_ = None
        self.params_ = dict(self.params)  # the settings fitted: the search's choice, else the defaults
        self.search_: SearchRecord | None = None
        self.calibration_: Calibrator | None = None
        self.calibration_losses_: dict[str, float] | None = None  # each map's inner out-of-fold log loss
        if len(self.columns_) < (1 if multi else 2):
            return self
        if groups is not None and self.name in SPACES and self.trials > 1:
            space = SPACES[self.name]
            self.search_ = grouped_search(lambda setting: self._candidate(space.overrides(setting, self.params)),
                                          space, space.defaults(self.params), self.trials, X, y, groups,
                                          self.inner_folds, self.seed, self.kind)
            self.params_.update(space.overrides(self.search_.best, self.params) if self.search_ else {})
        target = self._target(y)
        if target.ndim == 2:
            positives = target.sum(axis=0)
            smallest = int(np.minimum(positives, len(target) - positives).min())
        else:
            smallest = int(np.bincount(target).min())
        # grouped inner folds for the single-label C search (a multi-label column could lose a class in one)
        if self.name in LINEAR and groups is not None and target.ndim == 1:
            # below two inner folds _build falls back to a fixed C, and _record_c_search says no search ran
            splits = inner_splits(target, groups, min(self.inner_folds, smallest), self.seed)
            self.search_ = SearchRecord(splits, [], {})
        start = time.time()
        self.model_ = self._build(target.ndim == 2, smallest, len(target))
        # the trees take balanced class weights per clip (learn.balance); the others' are in their settings
        weights = ({"sample_weight": sample_weights(self.params_["class_weight"], target)}
                   if self.name == "xgboost" else {})
        if eval_set is not None and self.name == "xgboost":
            x_val, y_val = eval_set[0], np.asarray(eval_set[1])
            if not multi:  # rows of a class the training rows lack cannot be scored
                keep = np.isin(y_val, self.columns_)
                x_val, y_val = x_val[keep], y_val[keep]
            if len(y_val):
                self.model_.set_params(early_stopping_rounds=self.params["early_stopping_rounds"])
                self.model_.fit(X, target, eval_set=[(x_val, self._target(y_val))], verbose=False, **weights)
                return self
        self.model_.fit(X, target, **weights, **({"groups": groups} if self.name == "cnn" else {}))
        if self.name in LINEAR and self.search_ is not None:
            self._record_c_search(time.time() - start)
        if self.calibrate and groups is not None and self.name not in UNCALIBRATED:
            self._calibrate(X, y, groups)
        return self

    def _calibrate(self, X: np.ndarray, y: np.ndarray, groups: np.ndarray) -> None:
        """Choose the probability map on the inner folds (the search's, else new ones): this model's settings refitted
        on each inner training part give every row an out-of-fold probability, which ``learn.calibrate.choose``
        maps. Fewer than two inner folds: no map."""
        splits = self.search_.splits if self.search_ is not None and len(self.search_.splits) >= 2 else \
            inner_splits(y, groups, self.inner_folds, self.seed)
        if len(splits) < 2:
            return
        chosen = dict(self.params_)
        if self.name in LINEAR and "C" in chosen:  # the C (and L1 share) chosen, as one-value grids
            chosen["Cs"] = [chosen.pop("C")]
            if "l1_ratio" in chosen:
                chosen["l1_ratios"] = [chosen.pop("l1_ratio")]
        oof = np.zeros((len(y), self.n_classes))
        for fit_on, scored in splits:
            oof[scored] = self._candidate(chosen).fit(X[fit_on], y[fit_on]).predict_proba(X[scored])
        self.calibration_, self.calibration_losses_ = choose_calibration(oof, y, self.kind, self.columns_, splits)

    def _candidate(self, overrides: dict[str, Any]) -> ZooClassifier:
        """One setting of the search, fitted on an inner fold without a search of its own."""
        return ZooClassifier(self.name, self.kind, self.n_classes, {**self.params, **overrides}, self.seed,
                             self.threads)

    def _record_c_search(self, seconds: float) -> None:
        """Logistic regression's C search as the other searches record theirs (mean inner score per C, and per
        L1 share when it searches more than one)."""
        if len(self.search_.splits) < 2:  # too few groups for a search: fallback_C was fitted
            self.search_ = None
            return
        clf, ratios = self.model_[-1], self.params_["l1_ratios"]
        scores = np.asarray(clf.scores_).reshape(len(self.search_.splits), len(ratios), -1).mean(axis=0)
        share = len(ratios) > 1  # the elastic net: each setting is (C, L1 share)
        self.search_.trials = [{"params": {"C": float(c), **({"l1_ratio": float(r)} if share else {})},
                                "score": float(s)} for r, row in zip(ratios, scores) for c, s in zip(clf.Cs_, row)]
        self.search_.best = {"C": float(clf.C_), **({"l1_ratio": float(clf.l1_ratio_)} if share else {})}
        self.search_.seconds, self.search_.fits = seconds, len(self.search_.trials) * len(self.search_.splits)
        self.search_.metric = "neg_log_loss"  # LogisticRegressionCV's scoring, not the selection metric
        self.params_.update(self.search_.best)

    def predict_proba(self, X: np.ndarray, calibrated: bool = True) -> np.ndarray:
        """[n, n_classes] probabilities (single-label rows sum to 1), mapped by the calibration when one was chosen
        (``calibrated=False``: the model's own)."""
        out = self._own_proba(X)
        return self.calibration_(out) if calibrated and getattr(self, "calibration_", None) is not None else out

    def _own_proba(self, X: np.ndarray) -> np.ndarray:
        out = np.tile(self.prior_, (len(X), 1)).astype(np.float64)
        if self.model_ is not None:
            with blas_threads(np.size(X)):
                p = np.asarray(self.model_.predict_proba(X), dtype=np.float64)
            # one varying label column was fitted as a binary problem: keep P(positive)
            out[:, self.columns_] = p if p.shape[1] == len(self.columns_) else p[:, 1:]
            if self.name == "svm" and self.params_["class_weight"]:  # Platt scaling undid the weights (learn.balance)
                out[:, self.columns_] = equal_priors(out[:, self.columns_], self.prior_[self.columns_],
                                                     self.kind == "multi_label")
        return out

    def _target(self, y: np.ndarray) -> np.ndarray:
        """``y`` restricted to the fitted columns: re-indexed classes, the label matrix, or one 0/1 column."""
        if self.kind != "multi_label":
            return np.searchsorted(self.columns_, y)
        return y[:, self.columns_] if len(self.columns_) > 1 else y[:, self.columns_[0]]

    def _build(self, multi_label: bool, smallest_class: int, n_rows: int) -> Any:
        """The wrapped estimator; ``smallest_class`` (clips of the rarest class, or label value) bounds the inner CV."""
        p = self.params_
        if self.name in ("forest", "svm", "knn"):
            clf = _neighbours_trees_or_kernel(self.name, p, self.seed, self.threads, n_rows, self.n_features_in_)
            return make_pipeline(StandardScaler(), OneVsRestClassifier(clf) if multi_label else clf)
        if self.name in LINEAR:
            inner = min(self.inner_folds, smallest_class)
            cv = inner if self.search_ is None else self.search_.splits
            n_splits = cv if isinstance(cv, int) else len(cv)
            ratios = p["l1_ratios"]
            solver = "lbfgs" if max(ratios) == 0 else "saga"  # lbfgs has no L1 term
            clf = (LogisticRegressionCV(Cs=p["Cs"], l1_ratios=tuple(ratios), cv=cv, scoring="neg_log_loss",
                                        solver=solver, max_iter=p["max_iter"], class_weight=p["class_weight"],
                                        random_state=self.seed, use_legacy_attributes=False) if n_splits >= 2
                   else LogisticRegression(C=p["fallback_C"], l1_ratio=ratios[len(ratios) // 2], solver=solver,
                                           max_iter=p["max_iter"], class_weight=p["class_weight"],
                                           random_state=self.seed))
            return make_pipeline(StandardScaler(), OneVsRestClassifier(clf) if multi_label else clf)
        if self.name == "xgboost":
            from xgboost import XGBClassifier

            trees = {k: v for k, v in p.items() if k not in ("early_stopping_rounds", "class_weight")}
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



def _neighbours_trees_or_kernel(name: str, p: dict[str, Any], seed: int, threads: int | None, n_rows: int,
                                n_features: int) -> Any:
    """The forest, the SVM or kNN of settings ``p`` for ``n_rows`` training rows of ``n_features`` inputs."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.svm import SVC

    if name == "forest":
        return RandomForestClassifier(**p, random_state=seed, n_jobs=threads)
    if name == "svm":
        return SVC(C=p["C"], gamma=p["gamma_factor"] / n_features, class_weight=p["class_weight"], probability=True,
                   random_state=seed)
    return KNeighborsClassifier(**{**p, "n_neighbors": min(p["n_neighbors"], n_rows)})
