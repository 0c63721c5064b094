"""The train and audit jobs' configs: what is learned from a feature table, and how it is checked."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from acoustic_env import candidates
from acoustic_env.candidates import cnn
from acoustic_env.config.extraction import ExtractConfig
from acoustic_env.bounded import shown
from acoustic_env.config.schema import ConfigError, Section, like, option, require
from acoustic_env.config.common import EMBEDDERS, SIGNALS, SIGNAL_SETS, SOURCES, FEATURE_GROUPS, HAND_MADE, RELEASED_PCA, BASELINE_CHOICES, default_pca, BASELINES, FILTERS, _location, _ray_address, _progress, _device, _seed, _task, _ontology


def _parse_pca(value: Any) -> dict[str, float]:
    """``{"mps": 0.95}`` or ``"indices=20,mps=0.95"`` → a dict of int counts / float fractions."""
    if isinstance(value, dict):
        items = list(value.items())
    else:
        items = []
        for part in filter(str.strip, str(value or "").split(",")):
            if "=" not in part:
                raise ConfigError(f"pca: expected source=value pairs such as indices=20,mps=0.95, got {part.strip()!r}")
            k, v = part.split("=", 1)
            items.append((k.strip(), v.strip()))
    out: dict[str, float] = {}
    for k, v in items:
        try:
            num = float(v)
        except (TypeError, ValueError):
            raise ConfigError(f"pca.{k}: must be an integer >= 1 or a variance fraction in (0, 1), got {v!r}") from None
        out[k] = int(num) if num >= 1 and num == int(num) else num
    return out


#: What ``--select-by`` may name: ``learn/fit.py: val_score`` computes each (named here because config sits below learn).
SELECTION_METRICS = ("roc_auc", "map", "macro_f1", "accuracy")


def _label_list() -> Any:
    """``--labels``: train and audit learn from a corrected label list, declared once for both."""
    return _location(None, help="the corrected label list (`acoustic-env labels apply`'s CSV, or a label store) "
                                "used in place of the table's labels, without re-extracting; clips absent from it "
                                "keep the table's labels")


@dataclass(frozen=True)
class TrainConfig(Section):
    """Everything the train job needs; the run record stores it whole."""

    features: str = _location(role="table", help="feature table: an extract output or its features/ directory "
                                                 "(local or s3://)")
    output: str = _location(role="output", help="output directory or URI (model/, report/, runs/ go below it)")
    task: str = _task()
    ontology: str | None = _ontology()
    labels: str | None = _label_list()
    feature_groups: tuple[str, ...] = option((), choices=FEATURE_GROUPS,
                                             help="sources or columns to train on, a pinned feature set (empty: "
                                                  "each model chooses its set on inner folds)")
    signals: tuple[str, ...] = option(SIGNALS, choices=SIGNALS, nonempty=True,
                                      help="signals kept for the per-signal columns (indices, MPS, and embeddings "
                                           "of fg and bg such as panns_fg; an embedder's raw column is kept)")
    include_random_weights: bool = option(False, help="also use embedder columns computed with random weights "
                                                      "(left out by default: they carry no pretrained knowledge)")
    pca: dict[str, float] = option(factory=dict, parse=_parse_pca,
                                   help="components per source: a count or a variance fraction, e.g. indices=20,mps=0.95 "
                                        f"(sources not named: {','.join(f'{s}={default_pca(s)}' for s in SOURCES)}, "
                                        f"{','.join(f'{s}={default_pca(s)}' for s in RELEASED_PCA)})")
    # With a few thousand clips, one validation split of a few dozen clips is too noisy to choose
    # a model on (or to report); cross-validation scores every clip once (see learn/cv.py).
    cv_folds: int = option(5, check=(lambda v: v == 0 or v >= 2, "must be 0 (no cross-validation) or >= 2"),
                           help="grouped K-fold cross-validation, the evaluation reported for up to cv_max_clips "
                                "clips (0: always the train/val/test split)")
    cv_max_clips: int = option(5000, ge=1, help="above this many clips, the train/val/test split replaces "
                                                "cross-validation (CV fits every model cv_folds times)")
    folds_column: str | None = option(None, help="manifest column with published folds (UrbanSound8K, ESC-50: fold): "
                                                 "cross-validation over exactly those folds, whatever the size")
    # The sourcing-sound study's lesson: 0.936 on a shuffled split, 0.62 under folds that keep a source in one
    # (jobs/train/shuffled.py).
    compare_shuffled: bool = option(False, help="also cross-validate the chosen model on stratified folds drawn "
                                                "clip by clip (groups and folds_column ignored) and print its figures "
                                                "beside the grouped ones (cross-validation only)")
    # The YouTube study's duplicates: k-NN over chunks of MFCCs (learn/duplicate_chunks.py).
    duplicate_chunks: bool = option(False, help="the near-duplicate guard compares clips by their 1-s MFCC chunks "
                                                "(of the table's log-mel images, or of the audio, decoded again, when "
                                                "it has none), which also merges time-shifted and partial copies; up "
                                                "to 5000 clips")
    test_size: float = option(0.2, gt=0, lt=1, help="test fraction when no --test-list is given")
    val_size: float = option(0.2, gt=0, lt=1, help="validation fraction of the clips left after the test split")
    test_list: str | None = _location(None, help="clip ids for the test split: AudioSet segment CSV, CSV with clip_id, "
                                              "or one per line")
    seed: int = _seed("seed of the splits, the tuning and the networks")
    # Nested under cross-validation: each fold's models are tuned on that fold's training clips only (learn/tuning.py).
    tuning_trials: int = option(2, ge=1, help="distinct settings each of xgboost, the MLP, forest, svm, knn and the "
                                              "CNN tries in its own tuning: the defaults first, then drawn from its "
                                              "space of ranges (acoustic_env.candidates.SPACES) by Optuna's TPE, each scored "
                                              "by grouped CV on the training clips only (1: the defaults, no tuning)")
    tuning_folds: int = option(2, ge=2, help="inner folds of every model's tuning (those, and logistic "
                                             "regression's C), grouped like the outer folds")
    select_by: str = option("auto", choices=("auto", *SELECTION_METRICS),
                            help="the metric that picks the chosen model and that every tuning scores by "
                                 "(auto: roc_auc for single-label tasks, map for multi-label ones; macro_f1 and "
                                 "accuracy threshold multi-label probabilities at 0.5, accuracy is then exact-match)")
    trials: int = option(8, ge=0, help="Ray Tune trials of the split evaluation's networks (0: train once with the "
                                       "default hyper-parameters)")
    time_budget_s: float = option(900.0, gt=0, flag="time-budget", help="the Ray Tune trials' time budget in seconds")
    max_concurrent_trials: int = option(0, ge=0, help="trials at once (0: one per two CPUs)")
    max_rounds: int = option(30, ge=1, help="validation rounds per run at most")
    grace_rounds: int = option(3, ge=1, help="rounds before early termination may stop a trial (at most max_rounds)")
    patience: int = option(6, ge=1, help="rounds without improvement before a run stops")
    steps_per_round: int = option(50, ge=1, help="optimizer steps per validation round at least")
    workers: int = option(1, ge=1, help="workers per training run (1: in the Tune trial's process; more: data-parallel "
                                        "Ray Train workers)")
    device: str = _device("training")
    baselines: tuple[str, ...] = option(BASELINES, choices=BASELINE_CHOICES,
                                        help="models compared with the MLP (empty for none), each tuned as its "
                                             "space says: " + "; ".join(f"{s.name}, {s.summary}" for s in
                                                                        candidates.specs() if s.name != "mlp"))
    saved_model: str = option("chosen", choices=candidates.names(before=("chosen",), after=(candidates.AVERAGE,)),
                              help="the model the artifact holds: the chosen model, a compared model by name, or "
                                   "the average of the compared models (under cross-validation; no cnn among them)")
    # the CNN's network and view, else tuned (candidates/cnn.py: fixed); recorded in the model's hyperparameters
    cnn_architecture: str | None = option(None, choices=cnn.ARCHITECTURES,
                                          help="the CNN's network: small (one convolution a block) or residual "
                                               "(ResNet's basic blocks); unset: tuned with its other settings")
    cnn_crop_s: float | None = option(None, gt=0, le=60,
                                      help="the CNN's crop: the stretch of image it learns from and scores clips "
                                           "by, in seconds (100 image frames a second); unset: tuned")
    cnn_init: str = option("none", choices=("none", "panns"),
                           help="the CNN's starting weights: none (random), or panns: with --cnn-architecture cnn14, "
                                "its bn0 and blocks copied from the PANNs CNN14 checkpoint in the weights cache "
                                "(checked by its sha256; fetch it with `acoustic-env models fetch panns`), the head "
                                "random")
    weights_cache: str | None = like(ExtractConfig, "weights_cache", parse=None)
    # A class of 2 % costs 2 % of an unweighted loss: "never" is then a cheap answer (learn/balance.py).
    class_weight: str = option("none", choices=("none", "balanced"),
                               help="balanced: every model weighs each class alike, n / (K x class count), in its "
                                    "loss or as sample weights (knn cannot weigh classes; the report says what each "
                                    "model did)")
    balanced_sampler: bool = option(False, help="the networks draw their training batches with every class equally "
                                                "likely, their loss unweighted, instead of class_weight (multi-label: "
                                                "a clip by its rarest positive label's inverse count; validation rows "
                                                "are never drawn)")
    # The FSD50K study's balance (learn/augment.py): every class of the training rows at N clips, copies augmented.
    resample_per_class: int = option(0, ge=0, help="resample every class of each model's training rows to this many "
                                                   "clips: bigger classes undersampled, smaller ones topped up with "
                                                   "copies (augmented as --augment-noise and --augment-pitch-shift "
                                                   "say); validation and test rows never (0: off; single-label tasks)")
    augment_noise: float = option(0.0, ge=0, help="Gaussian noise added to the resampled copies, in standard "
                                                  "deviations of each feature (each mel band of an image) over the "
                                                  "training rows (0: exact copies)")
    augment_pitch_shift: int = option(0, ge=0, help="the CNN's resampled copies: their log-mel image moved up or down "
                                                    "by up to this many mel bands, a pitch shift (0: off)")
    ablations: bool = option(True, help="the feature-group ablations")
    # The study's comparison (jobs/train/grid.py): one cross-validated model per embedder x signal-set cell.
    grid: bool = option(False, help="compare one model per cell of grid_embedders x grid_signals (indices + MPS of "
                                    "the signals, plus the embedder's embeddings of them; --feature-groups names "
                                    "other hand-made sources), each with its own nested tuning; the winner is "
                                    "trained and saved")
    grid_embedders: tuple[str, ...] = option(("auto",), choices=("auto", "none", *EMBEDDERS), nonempty=True,
                                             check=(lambda v: "auto" not in v or len(v) == 1,
                                                    "auto stands alone"),
                                             help="the grid's embedder axis (none: indices and MPS alone; auto: none "
                                                  "and every embedder whose embeddings the table holds; a named "
                                                  "embedder must be in the table)")
    grid_signals: tuple[str, ...] = option(("raw",), choices=SIGNAL_SETS, nonempty=True,
                                           help="the grid's signal axis (all: raw, fg and bg together); fg and bg "
                                                "embeddings need a table extracted with them")
    shap_samples: int = option(100, ge=0, help="test clips explained with SHAP (0 skips SHAP)")
    label_accuracy: str | None = _location(None, help="the audit's label-accuracy estimate (JSON): adds adjusted "
                                                   "accuracy to the report")
    assumed_label_accuracy: float | None = option(None, gt=0, le=1,
                                                  help="a label accuracy assumed without a review (the study assumed "
                                                       "0.8): adds the adjusted accuracies as --label-accuracy does, "
                                                       "their intervals from the test clips alone; above 1/K for K "
                                                       "classes")
    memory_gb: float = option(4.0, gt=0, help="above this many GiB of raw feature values, the PCA is fitted "
                                              "incrementally while streaming the table")
    work_dir: str | None = _location(None, help="Ray Tune/Train run directory (default: <output>/ray, or a "
                                             "temporary one removed after the run when the output is remote; "
                                             "shared storage on a multi-node cluster)", role="output")
    ray_address: str | None = _ray_address()
    progress: bool = _progress()

    def check_task(self, name: str, kind: str, n_classes: int) -> None:
        """The rules that need the task (read after validation): the job and its dry run call it before starting.

        A label accuracy at or below chance (1/K) says nothing of a model's accuracy: the noise model's
        adjusted figure is undefined there, so an assumed one that low stops the job instead of vanishing.
        """
        require(not self.resample_per_class or kind == "single_label", "resample_per_class",
                f"counts clips by their one class, so single-label tasks only; {name} is multi-label",
                self.resample_per_class)
        a = self.assumed_label_accuracy
        require(a is None or kind != "single_label" or a > 1 / n_classes, "assumed_label_accuracy",
                f"must be above 1/K = {1 / n_classes:.3g} for the {n_classes} classes of task {name} (labels right "
                "no more often than chance say nothing of the accuracy)", a)

    def pca_target(self, source: str) -> float:
        return self.pca.get(source, default_pca(source))

    def read_groups(self) -> tuple[str, ...]:
        """The feature groups the job reads from the table (empty: every one): the grid reads every column
        and checks each cell's itself; otherwise ``feature_groups``. The job and its dry run ask here."""
        return () if self.grid else self.feature_groups

    def cross_check(self) -> None:
        for source, target in self.pca.items():
            require(source in SOURCES, f"pca.{source}", f"unknown source (known: {', '.join(SOURCES)})", target)
            ok = (isinstance(target, int) and not isinstance(target, bool) and target >= 1) or (
                isinstance(target, float) and 0 < target < 1)
            require(ok, f"pca.{source}", "must be an integer >= 1 or a variance fraction in (0, 1)", target)
        for name in ("cnn_architecture", "cnn_crop_s"):  # set for a CNN that is not trained, it would be ignored
            require(getattr(self, name) is None or "cnn" in self.baselines, name, "applies to the CNN only: add cnn "
                    "to --baselines", getattr(self, name))
        if self.cnn_init != "none" and self.cnn_architecture != "cnn14":  # the architecture is what is wrong: shown
            given = "unset (tuned)" if self.cnn_architecture is None else shown(self.cnn_architecture)
            raise ConfigError(f"cnn_init: {self.cnn_init} copies PANNs CNN14's blocks: needs --cnn-architecture cnn14, "
                              f"got --cnn-architecture {given}")
        require(self.grace_rounds <= self.max_rounds, "grace_rounds", "must be an integer in [1, max_rounds]",
                 self.grace_rounds)
        require(self.saved_model in ("chosen", "mlp", *self.baselines, candidates.AVERAGE), "saved_model",
                f"must be chosen, a compared model ({', '.join(('mlp', *self.baselines))}) or average",
                self.saved_model)
        require(self.saved_model != candidates.AVERAGE or candidates.averageable(("mlp", *self.baselines))
                and (self.cv_folds or self.folds_column) and not self.test_list, "saved_model",
                "average is saved as its members, each a model of the feature vectors, under cross-validation: "
                "needs cv_folds >= 2 (or folds_column), no test_list and no cnn among the baselines", self.saved_model)
        require(not (self.label_accuracy and self.assumed_label_accuracy), "assumed_label_accuracy",
                "cannot be combined with label_accuracy (the audit's estimate replaces an assumption)",
                self.assumed_label_accuracy)
        require(not (self.folds_column and self.test_list), "folds_column",
                 "cannot be combined with test_list (given folds already say which clips test which)",
                 self.folds_column)
        require(not self.compare_shuffled or (self.cv_folds or self.folds_column) and not self.test_list,
                "compare_shuffled", "compares two cross-validations: needs cv_folds >= 2 (or folds_column) and no "
                "test_list", self.compare_shuffled)
        require(not self.grid or (self.cv_folds or self.folds_column) and not self.test_list, "grid",
                 "compares cells by cross-validation: needs cv_folds >= 2 (or folds_column) and no test_list",
                 self.grid)
        for name in ("grid_embedders", "grid_signals"):  # the grid's axes: without --grid they would be ignored
            require(self.grid or getattr(self, name) == next(f.default for f in fields(self) if f.name == name), name,
                    "applies to the grid only: add --grid", getattr(self, name))
        for name in ("augment_noise", "augment_pitch_shift"):  # they augment the resampled copies only
            require(self.resample_per_class or not getattr(self, name), name,
                    "augments the copies that resampling adds: add --resample-per-class N", getattr(self, name))
        hand_made = tuple(HAND_MADE)
        require(not self.grid or set(self.feature_groups) <= set(hand_made), "feature_groups",
                f"with grid, names the hand-made sources of every cell ({', '.join(hand_made)}); the grid adds "
                f"the embedders", self.feature_groups)


#: The review queue's orders, by name: ``learn/review_order.py: STRATEGIES`` holds one function for each (named
#: here because config sits below learn; tests/test_review_order.py checks that the two agree).
REVIEW_ORDERS = ("suspect", "uncertain", "diverse", "mixed", "random")


@dataclass(frozen=True)
class AuditConfig(Section):
    """Everything the audit job needs; summary.json stores it whole.

    ``feature_groups`` empty means the feature set is chosen (``learn.feature_sets``) among sets of the vector
    columns, never the class-score columns (``*_scores``): scores from a pretrained AudioSet tagger were
    trained on the very labels being audited, so they would echo the label
    noise back instead of judging it. ``filter_by`` is cleanlab's rule for
    flagging; its default (``prune_by_noise_rate``) flags as many clips per
    (given, true) class pair as the estimated noise matrix says are wrong.
    """

    features: str = _location(role="table", help="feature table: an extract output, its features/ directory, or a "
                                                 "Parquet file")
    output: str = _location(role="output", help="audit output directory or URI (audit.parquet, summary.json, review/)")
    task: str = _task()
    ontology: str | None = _ontology()
    labels: str | None = _label_list()
    classifier: str = option("auto", choices=candidates.names(lambda s: s.inputs == "vectors", ("auto",),
                                                                     (candidates.AVERAGE,)),
                             help="out-of-fold classifier: auto keeps the zoo model (or their average) with the "
                                  "lowest out-of-fold log loss; logreg alone is the fastest")
    folds: int = option(5, ge=2, le=50, help="number of cross-fitting folds")
    seed: int = _seed("seed of the folds, the classifier and the random review sample")
    feature_groups: tuple[str, ...] = option((), check=(all, "must be non-empty column names or prefixes"),
                                             help="feature columns or prefixes, a pinned feature set, e.g. "
                                                  "indices,mps_fg,vggish (empty: the set of lowest out-of-fold log "
                                                  "loss, never *_scores)")
    include_random_weights: bool = option(False, help="also use embedder columns computed with random weights "
                                                      "(left out by default: they carry no pretrained knowledge)")
    filter_by: str = option("prune_by_noise_rate", choices=FILTERS, help="cleanlab's flagging rule")
    review_top: int = option(50, ge=0, help="suspects on the review page")
    review_order: str = option("suspect", choices=REVIEW_ORDERS,
                               help="order of the review queue: suspect (lowest label quality), uncertain (margin), "
                                    "diverse (k-centre), mixed (diverse, then re-ranked on the verdicts), random")
    truth: str | None = _location(None, help="CSV of known label errors (clip_id, flipped 0/1; the demo's truth.csv): "
                                           "the summary adds precision and recall of the flags and of the top-k")
    random_sample: int = option(100, ge=0, help="randomly drawn clips on the review page")
    parallel: str = option("sequential", choices=("sequential", "ray"), help="ray: run the folds as Ray tasks")
    ray_address: str | None = _ray_address()


