"""The estimator zoo: every classifier with fixed hyper-parameters, built and declared in this one place.

Two jobs fit them. The training job's baselines answer "does the network earn
its keep?" (if a linear model on the same PCA components does as well, the
report says so). The audit's cross-fitting fits one per fold for out-of-fold
probabilities, so nothing is tuned there: it needs calibrated-enough
probabilities, not the best classifier.

Each candidate is one module of ``acoustic_env.candidates`` (its settings, its tuning space, how it is built,
saved and balanced); this module builds any of them and runs the hooks where they differ. Given ``groups``, the
candidates with a space tune their settings: ``trials`` settings sampled from their ``SPACES`` (the defaults
first, then Optuna's TPE), each scored by grouped CV on the rows being fitted (``learn.tuning``), the best refitted
on all of them; the logistic regressions tune C on the same grouped inner folds themselves. The audit passes no
groups, so its models keep the defaults. Every model has a saved form (``learn.portable``).

``make_estimator`` wraps each in a ``ZooClassifier``, which fits on any subset
of the rows (a fold may lack a class, or a multi-label column may be constant
in it) and always predicts ``[n, n_classes]`` probabilities.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from acoustic_env import candidates
from acoustic_env.candidates import PARAMS, SPACES
from acoustic_env.candidates.spec import Build, CandidateSpec
from acoustic_env.config import ConfigError
from acoustic_env.learn.augment import Resample, resample_split
from acoustic_env.learn.augment import resample as resampled
from acoustic_env.learn.balance import Balance, equal_priors, sample_weights
from acoustic_env.learn.calibrate import Calibrator, fitted_classes
from acoustic_env.learn.calibrate import choose as choose_calibration
from acoustic_env.learn.preprocess import Preprocessing
from acoustic_env.learn.tuning import TuningPlan, TuningRecord, grouped_tuning, inner_splits
from acoustic_env.learn.threads import blas_threads

if TYPE_CHECKING:
    from acoustic_env.learn.mlp_estimator import MLPClassifier

def make_estimator(name: str, kind: str, n_classes: int, seed: int = 0, threads: int | None = None,
                   search: TuningPlan = TuningPlan(), balance: Balance = Balance(), calibrate: bool = False,
                   resample: Resample | None = None, preprocessing: Preprocessing | None = None,
                   rows: int | None = None, **overrides: Any) -> ZooClassifier:
    """A fresh, unfitted zoo model for a ``single_label`` or ``multi_label`` task of ``n_classes`` classes.

    ``threads``: XGBoost's threads (None: every core; a one-CPU Ray task, or the
    train job's cross-validation of a small table, passes 1) and the MLP's torch
    threads (None: one, see ``MLPClassifier.fit``).
    ``search``: how many settings of its ``SPACES`` entry a grouped fit tries, on how
    many inner folds (logistic regression's C tuning uses those folds too).
    ``balance``: how the model weighs rare classes (``learn.balance``).
    ``calibrate``: a grouped fit also chooses a probability map on its inner folds (``learn.calibrate``).
    ``resample``: every fit resamples the rows it trains on (``learn.augment``; ``ZooClassifier.fit``).
    ``preprocessing``: the model's first step (``learn.preprocess.Preprocessing``): it takes the raw columns of every
    group and fits the per-group PCA on the rows of each fit, its tuning's inner fits too. None: it takes its inputs
    as they are.
    ``rows``: this is an inner fit of a choice made for a model fitted on so many rows (the feature-set choice), so it
    is fitted that model's way (its candidate's ``regime``: the MLP at once, or in rounds), whatever its own rows.
    ``overrides`` replace entries of ``PARAMS[name]``.
    """
    if name not in PARAMS:
        raise ConfigError(f"model: must be one of {list(PARAMS)}, got {name!r}")
    unknown = sorted(set(overrides) - set(PARAMS[name]))
    if unknown:
        raise ConfigError(f"model: {name} has no parameter {unknown[0]!r} (it has {sorted(PARAMS[name])})")
    params = {**PARAMS[name], **balance.overrides(name), **overrides}
    regime = candidates.get(name).regime
    if rows is not None and regime is not None:
        params = regime(params, None, rows)[0]
    return ZooClassifier(name, kind, n_classes, params, seed, threads, *search, calibrate=calibrate, resample=resample,
                         preprocessing=preprocessing)


class ZooClassifier(ClassifierMixin, BaseEstimator):
    """One zoo model for one task; targets are class indices (single-label) or an [n, K] 0/1 matrix (multi-label).

    The wrapped estimator is fitted on the classes (or label columns) that vary
    in the training rows only; the others get their training rate, which is 0
    for a class absent from a single-label fold.
    """

    def __init__(self, name: str, kind: str, n_classes: int, params: dict[str, Any], seed: int = 0,
                 threads: int | None = None, trials: int = TuningPlan().trials,
                 inner_folds: int = TuningPlan().inner_folds, metric: str | None = TuningPlan().metric,
                 calibrate: bool = False, resample: Resample | None = None,
                 preprocessing: Preprocessing | None = None):
        self.name = name
        self.kind = kind
        self.n_classes = n_classes
        self.params = params
        self.seed = seed
        self.threads = threads
        self.trials = trials
        self.inner_folds = inner_folds
        self.metric = metric
        self.calibrate = calibrate
        self.resample = resample
        self.preprocessing = preprocessing

    def fit(self, X: np.ndarray, y: np.ndarray, eval_set: tuple[np.ndarray, np.ndarray] | None = None,
            groups: np.ndarray | None = None, defaults_score: float | None = None) -> ZooClassifier:
        """Fit on (X, y); ``eval_set`` = (X_val, y_val) for early stopping (XGBoost; the others ignore it).

        ``groups`` (one per row): the model's tuning runs grouped CV on these rows
        (``tuning_`` records it): logistic regression's C and L1 share (single-label), or the
        ``trials`` settings sampled from ``SPACES``; with ``calibrate``, the probability map too
        (``calibration_``, ``learn.calibrate``). A small ``X`` is fitted on one BLAS thread (``learn.threads``).

        With ``resample``, the rows the model trains on are resampled (``learn.augment``), and only those: the
        tuning scores each setting on inner folds of the rows as given, each inner fit resampling its own training
        part (so does the probability map's), ``eval_set`` stays as given, and a network, which holds out its own
        early-stopping rows (``val_fraction``), resamples the training part of its split only (``_resampling``).

        ``defaults_score``: the tuning's score of the defaults on these rows, when the caller has it (the feature-set
        choice fitted the defaults on the same inner folds, ``learn.feature_sets.choose_set``): not fitted again.
        """
        with blas_threads(np.size(X)):
            return self._fit(X, np.asarray(y), eval_set, groups, defaults_score)

    def _fit(self, X: np.ndarray, y: np.ndarray, eval_set: tuple[np.ndarray, np.ndarray] | None,
             groups: np.ndarray | None, defaults_score: float | None) -> ZooClassifier:
        """``fit``'s work."""
        multi = self.kind == "multi_label"
        own_split = "val_fraction" in self.params
        raw = X  # what each inner fit of the tuning or a probability map is given: it fits its own preprocessing
        self.transforms_ = None
        if self.preprocessing is not None:
            self.transforms_ = self.preprocessing.fit(X)
            X = self.preprocessing.transform(self.transforms_, X)
            if eval_set is not None:
                eval_set = (self.preprocessing.transform(self.transforms_, eval_set[0]), eval_set[1])
        fit_x, fit_y, fit_groups = X, y, groups  # the rows the model itself trains on
        if self.resample is not None and not own_split:
            rows = resampled(X, y, self.resample, groups)
            fit_x, fit_y, fit_groups = rows.x, rows.y, rows.groups
        self.classes_ = np.arange(self.n_classes)
        self.prior_ = fit_y.mean(axis=0) if multi else np.bincount(fit_y, minlength=self.n_classes) / len(fit_y)
        self.columns_ = fitted_classes(y, self.kind)
        self.n_features_in_ = np.shape(X)[1]
        self.model_ = None
        params, space = dict(self.params), SPACES.get(self.name)
        if self.spec.regime is not None:  # the way these rows are fitted, which every inner fit keeps
            params, space = self.spec.regime(params, space, len(fit_y))
        self.params_ = dict(params)  # the settings fitted: the tuning's choice, else the defaults
        self.tuning_: TuningRecord | None = None
        self.calibration_: Calibrator | None = None
        self.calibration_losses_: dict[str, float] | None = None  # each map's inner out-of-fold log loss
        if len(self.columns_) < (1 if multi else 2):
            return self
        if groups is not None and space is not None and self.trials > 1:
            self.tuning_ = grouped_tuning(lambda setting: self._candidate(space.overrides(setting, params)),
                                          space, space.defaults(params), self.trials, raw, y, groups,
                                          self.inner_folds, self.seed, self.kind, self.metric, defaults_score)
            self.params_.update(space.overrides(self.tuning_.best, params) if self.tuning_ else {})
        target = self._target(fit_y)
        if target.ndim == 2:
            positives = target.sum(axis=0)
            smallest = int(np.minimum(positives, len(target) - positives).min())
        else:
            smallest = int(np.bincount(target).min())
        spec = self.spec
        settings, inner_folds = self.params_, self.inner_folds
        # a candidate that tunes itself with its preprocessing inside: once per grouped inner split, on that
        # split's preprocessing, then the chosen setting fitted without a tuning of its own
        per_split = spec.tunes_itself and self.preprocessing is not None and groups is not None and not multi
        if per_split:
            self.tuning_ = self._tune_each_split(raw, y, groups, smallest)
            if self.tuning_ is not None:
                self.params_.update(self.tuning_.best)
                settings, inner_folds = spec.fixed(self.params_), 1
        # grouped inner folds for a candidate that tunes itself (a multi-label column could lose a class in one)
        elif spec.tunes_itself and fit_groups is not None and target.ndim == 1:
            # below two inner folds the candidate falls back to fixed settings, and _record_tuning says no tuning ran
            splits = inner_splits(target, fit_groups, min(self.inner_folds, smallest), self.seed)
            self.tuning_ = TuningRecord(splits, [], {})
        start = time.time()
        self.model_ = spec.build(settings, Build(target.ndim == 2, smallest, len(target), self.n_features_in_,
                                                 self.seed, self.threads, inner_folds,
                                                 [] if per_split and self.tuning_ is None else
                                                 self.tuning_.splits if spec.tunes_itself and self.tuning_
                                                 and not per_split else None))
        # per-row balanced class weights for a candidate that takes them (learn.balance); the others' are settings
        kwargs: dict[str, Any] = ({"sample_weight": sample_weights(self.params_["class_weight"], target)}
                                  if spec.balance == "sample_weights" else {})
        if eval_set is not None and spec.fit_early is not None:
            x_val, y_val = eval_set[0], np.asarray(eval_set[1])
            if not multi:  # rows of a class the training rows lack cannot be scored
                keep = np.isin(y_val, self.columns_)
                x_val, y_val = x_val[keep], y_val[keep]
            if len(y_val):
                spec.fit_early(self.model_, fit_x, target, (x_val, self._target(y_val)), kwargs, self.params_)
                return self
        with _resampling(self.model_, self.resample if own_split else None):
            self.model_.fit(fit_x, target, **kwargs, **({"groups": fit_groups} if spec.takes_groups else {}))
        if spec.tunes_itself and self.tuning_ is not None and not per_split:
            self._record_tuning(time.time() - start)
        if self.calibrate and groups is not None and spec.calibrated:
            self._calibrate(raw, y, groups)
        return self

    @property
    def spec(self) -> CandidateSpec:
        """The candidate's declaration (``acoustic_env.candidates``)."""
        return candidates.get(self.name)

    def _calibrate(self, X: np.ndarray, y: np.ndarray, groups: np.ndarray) -> None:
        """Choose the probability map on the inner folds (the tuning's, else new ones): this model's settings refitted
        on each inner training part give every row an out-of-fold probability, which ``learn.calibrate.choose``
        maps. Fewer than two inner folds: no map. A candidate that tuned itself on resampled rows has folds of
        those; the map's are of the rows as given."""
        given = self.preprocessing is not None or not (self.spec.tunes_itself and self.resample is not None)
        splits = self.tuning_.splits if given and self.tuning_ is not None and len(self.tuning_.splits) >= 2 else \
            inner_splits(y, groups, self.inner_folds, self.seed)
        if len(splits) < 2:
            return
        chosen = self.spec.fixed(self.params_) if self.spec.fixed else dict(self.params_)
        oof = np.zeros((len(y), self.n_classes))
        for fit_on, scored in splits:
            oof[scored] = self._candidate(chosen).fit(X[fit_on], y[fit_on]).predict_proba(X[scored])
        self.calibration_, self.calibration_losses_ = choose_calibration(oof, y, self.kind, self.columns_, splits)

    def _candidate(self, overrides: dict[str, Any]) -> ZooClassifier:
        """One setting of the tuning, fitted on an inner fold without a tuning of its own, the way this model's rows
        are fitted (``params_`` before the tuning's choice: the candidate's ``regime``)."""
        return ZooClassifier(self.name, self.kind, self.n_classes, {**self.params_, **overrides}, self.seed,
                             self.threads, resample=self.resample, preprocessing=self.preprocessing)

    def _tune_each_split(self, raw: np.ndarray, y: np.ndarray, groups: np.ndarray,
                           smallest: int) -> TuningRecord | None:
        """A candidate that tunes itself (the logistic regressions' C), its preprocessing inside: its own tuning
        run on each grouped inner split of the rows as given, with the preprocessing fitted on that split's training
        part (and those rows resampled, with ``resample``), the held-out part scored through it; each setting's
        score is its mean over the splits, as the candidate's own CV averages its folds. None below two splits."""
        start = time.time()
        splits = inner_splits(y, groups, min(self.inner_folds, smallest), self.seed)
        if len(splits) < 2:
            return None
        spec, prep = self.spec, self.preprocessing
        trials: list[dict[str, Any]] = []
        for fit_on, scored in splits:
            transforms = prep.fit(raw[fit_on])
            x_fit, y_fit = prep.transform(transforms, raw[fit_on]), y[fit_on]
            if self.resample is not None:
                rows = resampled(x_fit, y_fit, self.resample, groups[fit_on])
                x_fit, y_fit = rows.x, rows.y
            x = np.vstack([x_fit, prep.transform(transforms, raw[scored])])
            target = self._target(np.concatenate([y_fit, y[scored]]))
            own = [(np.arange(len(x_fit)), np.arange(len(x_fit), len(x)))]  # fitted on the first rows, scored on the rest
            model = spec.build(self.params_, Build(False, int(np.bincount(target[:len(x_fit)]).min()), len(x),
                                                   x.shape[1], self.seed, self.threads, self.inner_folds, own))
            kwargs = ({"sample_weight": sample_weights(self.params_["class_weight"], target)}
                      if spec.balance == "sample_weights" else {})
            found, _ = spec.record_tuning(model.fit(x, target, **kwargs), self.params_, 1)
            trials = found if not trials else [{**t, "score": t["score"] + f["score"]} for t, f in zip(trials, found)]
        trials = [{**t, "score": t["score"] / len(splits)} for t in trials]
        best = max(range(len(trials)), key=lambda i: (trials[i]["score"], -i))
        return TuningRecord(splits, trials, dict(trials[best]["params"]), time.time() - start,
                            len(trials) * len(splits), metric="neg_log_loss")

    def _record_tuning(self, seconds: float) -> None:
        """What a candidate that tunes itself tried, as the other models' tuning records theirs."""
        if len(self.tuning_.splits) < 2:  # too few groups for tuning: the fixed settings were fitted
            self.tuning_ = None
            return
        self.tuning_.trials, self.tuning_.best = self.spec.record_tuning(self.model_, self.params_,
                                                                         len(self.tuning_.splits))
        self.tuning_.seconds, self.tuning_.fits = seconds, len(self.tuning_.trials) * len(self.tuning_.splits)
        self.tuning_.metric = "neg_log_loss"  # its own CV's scoring, not the selection metric
        self.params_.update(self.tuning_.best)

    def predict_proba(self, X: np.ndarray, calibrated: bool = True) -> np.ndarray:
        """[n, n_classes] probabilities (single-label rows sum to 1), mapped by the calibration when one was chosen
        (``calibrated=False``: the model's own)."""
        if self.preprocessing is not None:
            X = self.preprocessing.transform(self.transforms_, X)
        out = self._own_proba(X)
        return self.calibration_(out) if calibrated and getattr(self, "calibration_", None) is not None else out

    @property
    def equal_priors(self) -> bool:
        """Whether the fitted model's probabilities are put on equal class priors (``learn.balance.equal_priors``):
        balanced, where the map behind its probabilities, fitted on the clips' own class rates, undid the weights
        (the SVM's Platt scaling). Its saved form carries this (``learn.portable``)."""
        return bool(self.spec.equal_priors and self.params_["class_weight"])

    def _own_proba(self, X: np.ndarray) -> np.ndarray:
        out = np.tile(self.prior_, (len(X), 1)).astype(np.float64)
        if self.model_ is not None:
            with blas_threads(np.size(X)):
                p = np.asarray(self.model_.predict_proba(X), dtype=np.float64)
            # one varying label column was fitted as a binary problem: keep P(positive)
            out[:, self.columns_] = p if p.shape[1] == len(self.columns_) else p[:, 1:]
            if self.equal_priors:
                out[:, self.columns_] = equal_priors(out[:, self.columns_], self.prior_[self.columns_],
                                                     self.kind == "multi_label")
        return out

    def _target(self, y: np.ndarray) -> np.ndarray:
        """``y`` restricted to the fitted columns: re-indexed classes, the label matrix, or one 0/1 column."""
        if self.kind != "multi_label":
            return np.searchsorted(self.columns_, y)
        return y[:, self.columns_] if len(self.columns_) > 1 else y[:, self.columns_[0]]

    def network(self) -> MLPClassifier:
        """The ``mlp`` of these settings, unfitted, for its ``train`` on a split the caller made.

        The Ray Tune trials, the feature-group ablations and the quick model train
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


@contextmanager
def _resampling(network: Any, plan: Resample | None) -> Iterator[None]:
    """While ``network`` fits, the training part of the split it makes resampled by ``plan`` (None: as it is).

    A network's ``fit`` holds out its early-stopping rows from the rows it is given, then hands the split to its
    ``train(data, ...)`` (``MLPClassifier``, ``CNNClassifier``); resampling before that would put copies of training
    clips among its validation rows. So ``train`` is wrapped for the fit: ``data``'s ``x_train``/``y_train`` are
    resampled, ``x_val``/``y_val`` never.
    """
    if plan is None:
        yield
        return
    own = network.train

    def train(data: Any, *args: Any, **kwargs: Any) -> Any:
        return own(resample_split(data, plan), *args, **kwargs)

    network.train = train
    try:
        yield
    finally:
        del network.train
