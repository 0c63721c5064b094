"""What every layer knows about a training candidate before it is built: its :class:`CandidateSpec`.

A candidate is one module that states its facts and says how its estimator is built, as an embedder is
(``embedders.spec``): its default settings, the space its tuning samples, the form a saved model keeps it in, how it
weighs a rare class, whether it reads feature vectors or log-mel images, and the hooks the zoo calls where models
differ (``learn.zoo.ZooClassifier`` runs them). Nothing here imports scikit-learn, XGBoost or torch: a config names
the candidates (``--baselines``, ``--saved-model``) and ``acoustic-env --help`` lists them without loading any; a
builder imports its library when it is first called.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from acoustic_env.candidates.space import Space

#: How a candidate weighs a rare class when train asks for balanced classes (``learn.balance``): ``weights``,
#: ``class_weight`` in its settings; ``sample_weights``, per-row weights given to its ``fit``; ``network``, the torch
#: network's loss weights or balanced sampler; ``none``, it cannot weigh classes.
BALANCES = ("weights", "sample_weights", "network", "none")
#: What a candidate reads: the table's feature vectors (after the per-group PCA), or its log-mel images.
INPUTS = ("vectors", "images")
#: The saved forms ``learn.portable`` writes and reads (None: the candidate cannot be the saved model).
FORMATS = ("linear", "torch", "xgboost", "skops")
#: How the train report explains a fitted candidate: ``trees`` (TreeSHAP on its components), else gradient SHAP
#: through its saved form where it has a torch module (the linear models, the networks), else nothing.
EXPLAINERS = ("trees",)
#: The importances the report draws for a candidate fitted on all clips: ``coefficients`` (|coefficient| on the
#: standardised components) or ``impurity`` (a forest's Gini importances), each also carried back through the PCA
#: to the original columns as ``learn.importances`` says for its kind.
IMPORTANCES = ("coefficients", "impurity")
#: How train's split evaluation trains a candidate (cross-validation fits every one in this process, through the
#: zoo): ``estimator``, the zoo's estimator fitted in this process on the training split, stopped on the validation
#: split where it can (``fit_early``); ``tune``, a network tuned by Ray Tune (``distributed.tune``), its trials'
#: settings drawn from ``tune_space`` (``--trials``; 0: its defaults once) and trained on the training split's arrays,
#: each trial checkpointed and the best read back; ``stream``, a network of images trained on Ray Data's stream of
#: them (``distributed.images``), data-parallel over ``--workers``, never held whole in one process.
TRAININGS = ("estimator", "tune", "stream")
#: The entry of a network's settings (``params``) that a run of it trains with: what a Ray Tune trial varies, what
#: the feature-group ablations fix to the tuning's choice.
NETWORK = "network"


@dataclass(frozen=True)
class Build:
    """What a builder knows of the fit ahead.

    ``smallest_class``: clips of the rarest class (or label value) in the training rows, which bounds an inner CV;
    ``splits``: the grouped inner folds of a candidate that tunes itself (``tunes_itself``), else None;
    ``threads``: the library's threads (None: every core).
    """

    multi_label: bool
    smallest_class: int
    n_rows: int
    n_features: int
    seed: int
    threads: int | None
    inner_folds: int
    splits: list[tuple[Any, Any]] | None = None


#: ``build(settings, build)``: the unfitted estimator (a scikit-learn classifier: ``fit``, ``predict_proba``).
Builder = Callable[[dict[str, Any], Build], Any]
#: ``fit_early(estimator, X, target, (x_val, target_val), fit_kwargs, settings)``: a fit that stops on the
#: validation rows (XGBoost's early stopping; the train/val/test split passes them).
EarlyFit = Callable[[Any, Any, Any, tuple[Any, Any], dict[str, Any], dict[str, Any]], None]
#: ``record_tuning(fitted estimator, settings)``: what a candidate that tunes itself tried and chose:
#: ``(trials, best)`` with ``trials`` a list of ``{"params", "score"}`` over the inner folds, ``best`` the chosen
#: settings (merged into the fitted settings).
TuningRecorder = Callable[[Any, dict[str, Any], int], tuple[list[dict[str, Any]], dict[str, Any]]]
#: ``regime(params, space, rows)``: the settings and tuning space of a fit of ``rows`` training rows (see
#: ``CandidateSpec.regime``).
Regime = Callable[[dict[str, Any], Space | None, int], tuple[dict[str, Any], Space | None]]


@dataclass(frozen=True)
class CandidateSpec:
    """Everything about one training candidate that is known without building it.

    Attributes:
        name: the name configs, reports and saved models use.
        summary: what it is, in a few words (``--help``, docs).
        params: its default settings (``PARAMS[name]``); ``learn.balance`` and ``make_estimator`` override entries.
        build: its estimator for settings (see :data:`Builder`).
        space: the ranges its grouped tuning samples (``SPACES[name]``); None: it is not tuned, or tunes
            itself (``tunes_itself``).
        format: its saved form (one of :data:`FORMATS`), None if it cannot be saved.
        balance: how it weighs a rare class (one of :data:`BALANCES`); ``balance_note``: what the report adds to
            that (why it cannot, or what else it does).
        inputs: ``vectors`` or ``images`` (:data:`INPUTS`).
        default: compared by train and the audit unless told otherwise.
        calibrated: chooses a probability map on its inner folds (``learn.calibrate``); the CNN does not, and takes
            one chosen on the other outer folds instead (``learn.calibrate.across_folds``).
        equal_priors: balanced, its probabilities are put on equal class priors (they come from a map fitted on the
            clips' own class rates, Platt scaling, which undid the weights: ``learn.balance.equal_priors``).
        takes_groups: its ``fit`` takes the rows' ``groups`` (the CNN's grouped early-stopping split).
        fit_early: how it fits with validation rows (see :data:`EarlyFit`); None: it ignores them.
        tunes_itself: it tunes its own settings over the grouped inner folds it is built with
            (``Build.splits``), as the logistic regressions' C; ``record_tuning`` reads what it tried, ``fixed``
            turns the chosen settings into the settings of a refit that does not tune.
        explainer, importance: how the report explains it (:data:`EXPLAINERS`, :data:`IMPORTANCES`).
        trains: how train's split evaluation trains it (:data:`TRAININGS`). A network (``tune`` or ``stream``)
            keeps the settings a run trains with in ``params["network"]`` (:data:`NETWORK`); what ``build`` returns
            has ``train(data, kind, n_classes, ...)`` (``learn.mlp_estimator.MLPClassifier.train``'s arguments for
            ``tune``, ``learn.spectro_estimator.CNNClassifier.train``'s for ``stream``), which calls ``on_round`` with
            the network after every round.
        tune_space: the ranges Ray Tune's tuning of a ``tune`` network draws its ``network`` settings from.
        restore: ``restore(shape, kind, n_classes, settings, state)``: the torch module a run of a network trained,
            in evaluation mode, from its best round's weights ``state`` (``shape``: one input's, ``(width,)`` of a
            vector or ``(bands, frames)`` of an image window; ``settings``: its ``network`` settings).
        predict: ``predict(module, x, kind, n_classes)``: a ``tune`` network's probabilities for the vectors ``x``.
        save: ``save(module, shape, kind, n_classes, params)``: a network's saved form (``learn.portable``) from its
            module and all its settings; None: it cannot be the saved model of the split evaluation.
        input_problem: ``input_problem(bands, params)``: why images of ``bands`` rows do not fit the settings
            ``params`` (None: they do), checked before anything trains.
        regime: the settings and tuning space of a fit of so many training rows (see :data:`Regime`), which the
            inner fits of its search and of its probability map keep whatever their own rows: a fit whose way of
            fitting depends on its rows (the MLP: at once up to ``full_batch_rows``) is tuned the way it is fitted,
            over the settings that way reads. None: the same for any rows.
    """

    name: str
    summary: str
    params: Mapping[str, Any]
    build: Builder
    space: Space | None = None
    format: str | None = None
    balance: str = "weights"
    balance_note: str = ""
    inputs: str = "vectors"
    default: bool = False
    calibrated: bool = True
    equal_priors: bool = False
    takes_groups: bool = False
    fit_early: EarlyFit | None = None
    tunes_itself: bool = False
    record_tuning: TuningRecorder | None = None
    fixed: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    explainer: str | None = None
    importance: str | None = None
    trains: str = "estimator"
    tune_space: Space | None = None
    restore: Callable[..., Any] | None = None
    predict: Callable[..., Any] | None = None
    save: Callable[..., Any] | None = None
    input_problem: Callable[[int, Mapping[str, Any]], str | None] | None = None
    regime: Regime | None = None

    def __post_init__(self) -> None:
        for field, value, allowed in (("balance", self.balance, BALANCES), ("inputs", self.inputs, INPUTS),
                                      ("format", self.format, (None, *FORMATS)),
                                      ("explainer", self.explainer, (None, *EXPLAINERS)),
                                      ("importance", self.importance, (None, *IMPORTANCES)),
                                      ("trains", self.trains, TRAININGS)):
            if value not in allowed:
                raise ValueError(f"candidate {self.name}: {field} must be one of {list(allowed)}, got {value!r}")
        if self.balance == "weights" and "class_weight" not in self.params:
            raise ValueError(f"candidate {self.name}: balance 'weights' needs a class_weight setting")
        if self.tunes_itself and self.record_tuning is None:
            raise ValueError(f"candidate {self.name}: a candidate that tunes itself (tunes_itself) says what "
                             "it tried (record_tuning)")
        self._check_training()

    def _check_training(self) -> None:
        """A network trained on Ray states what the split evaluation needs to train it and read it back."""
        if self.trains == "estimator":
            return
        needs = {"restore": self.restore, "params['network']": self.params.get(NETWORK)}
        needs.update({"tune_space": self.tune_space, "predict": self.predict} if self.trains == "tune" else {})
        if missing := [name for name, value in needs.items() if value is None]:
            raise ValueError(f"candidate {self.name}: trains {self.trains!r} needs {', '.join(missing)}")
        if (self.trains == "stream") != (self.inputs == "images"):
            raise ValueError(f"candidate {self.name}: trains 'stream' is for images, and images train streamed")


def standardised(classifier: Any, build: Build) -> Any:
    """``classifier`` behind a standard scaler, one per label column (one-vs-rest) for a multi-label task: the form
    of every scikit-learn candidate, which ``learn.portable`` saves (and the linear form reads back)."""
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), OneVsRestClassifier(classifier) if build.multi_label else classifier)
