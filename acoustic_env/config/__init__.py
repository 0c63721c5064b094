"""Job configuration: one frozen dataclass per job, each field declared once.

Every field's declaration carries its help and its rules; the flags, the config-file
reading and the validation derive from it (:mod:`.schema`). A bad value must stop the
job *before* Ray starts, with one line that names the field
(``ConfigError: features.mps_n_wt: must be an odd integer >= 3, got 4``), instead of a
traceback from inside an actor twenty minutes later.
"""

from __future__ import annotations

import os
from dataclasses import MISSING, dataclass, fields
from typing import Any

from acoustic_env.config.schema import (
    ConfigError,
    Section,
    add_flags,
    flag_help,
    from_args,
    from_dict,
    load_config_file,
    option,
    require,
    validate,
)
from acoustic_env.embedders import registry
from acoustic_env.embedders.spec import PRECISIONS, SAMPLE_RATE

__all__ = ["DEFAULT_PCA", "EMBEDDERS", "SIGNALS", "SOURCES", "AnnotateConfig", "AuditConfig", "ConfigError",
           "DecodeParams", "ExtractConfig", "FeatureParams", "Section", "ServeConfig", "TrainConfig", "WindowParams",
           "add_flags", "flag_help", "from_args", "from_dict", "load_config_file", "option", "validate"]

#: The embedders the pipeline can run, in the order it runs them: a live view of the
#: torch-free registry, so that validating a config never imports a deep-learning runtime
#: and an embedder registered after this import is a valid choice too.
EMBEDDERS = registry.names()
SIGNALS = ("raw", "fg", "bg")
#: The grid's signal sets: one signal, or all three together.
SIGNAL_SETS = (*SIGNALS, "all")
DEVICES = ("auto", "cpu", "cuda")
#: Clips that ``predict`` featurises, and that a local extract computes, in their own process: about where a Ray
#: start-up (5-10 s) costs less than featurising the clips one after another on one core (~0.3 s per 10-s clip
#: without embedders, a few seconds with them).
IN_PROCESS_MAX = 32
#: The shortest hop between windows of a long recording (seconds): a spectrogram frame.
MIN_HOP_S = 0.01
#: What train can select: whole sources, or the indices, spectral statistics and MPS of one signal.
SOURCES = registry.names(before=("indices", "spectral", "mps"))
FEATURE_GROUPS = registry.names(before=("indices", "spectral", "mps"),
                                after=tuple(f"{s}_{g}" for s in ("indices", "spectral", "mps") for g in SIGNALS),
                                suffixes=SIGNALS[1:])  # panns_fg, panns_bg: the embeddings of --embed-signals
# Components kept per hand-made source: enough to hold most of their variance. An
# embedder's default is its spec's ``pca``.
DEFAULT_PCA: dict[str, float] = {"indices": 20, "spectral": 20, "mps": 10, "audioset_vggish": 128}
#: The estimator zoo's names (``acoustic_env.learn.zoo`` builds them); the MLP is the train job's own network.
CLASSIFIERS = ("logreg", "xgboost", "mlp")
#: Baselines compared by train on the same folds (random forest, RBF SVM, k-nearest neighbours) but never saved:
#: they have no pickle-free form (``learn.portable``). Off by default: the audit and the default run skip them.
EXTRA_BASELINES = ("forest", "svm", "knn")
BASELINES = tuple(c for c in CLASSIFIERS if c != "mlp")
FILTERS = ("prune_by_noise_rate", "prune_by_class", "both", "confident_learning", "predicted_neq_given")


def _absolute(value: Any) -> str | None:
    """A local path made absolute (``~`` expanded); URLs as given.

    Ray's workers run in another working directory, and run records outlive the shell
    they were started from: a relative path would name another file there.
    """
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"must be a path or URL, got {value!r}")
    text = os.fspath(value)
    return text if "://" in text or not text else os.path.abspath(os.path.expanduser(text))


def _location(default: Any = MISSING, *, help: str) -> Any:
    """A path or URL field: local paths are stored absolute (see ``_absolute``)."""
    return option(default, help=help, parse=_absolute)


def _ray_address() -> Any:
    return option(None, help="Ray cluster address (default: RAY_ADDRESS, else a local instance)")


def _progress() -> Any:
    return option(True, help="progress bars")


def _device(what: str) -> Any:
    return option("auto", choices=DEVICES, help=f"{what} device (auto: a GPU when the cluster has one)")


def _task() -> Any:
    return option("urban_natural", nonempty=True, help="built-in task name, task YAML file, or labels:a,b "
                                                       "(single-label classes that are those labels)")


def _ontology() -> Any:
    return option(None, help="ontology.json path or URL (default: the copy shipped with the package; "
                             "only read for display-name labels or classes with descendants)")


@dataclass(frozen=True)
class DecodeParams(Section):
    """How a clip becomes a mono 16 kHz float32 array."""

    sample_rate: int = option(SAMPLE_RATE, help="decoded sample rate in Hz",
                              check=(lambda v: v == SAMPLE_RATE,
                                     f"must be {SAMPLE_RATE} (every model and feature is defined at it)"))
    target_rms: float = option(0.1, gt=0, help="RMS every clip is normalised to")
    # The indices and the modulation spectrum need at least a few analysis windows
    # (1024-sample spectrogram frames and a 1 s MPS window) to mean anything.
    min_duration_s: float = option(0.5, gt=0,
                                   help="shorter clips (after cutting to the segment) become too_short errors")
    # A guard against a mislabelled hour-long file blowing an actor's memory.
    max_duration_s: float = option(60.0, help="longer clips are trimmed to this")
    silence_rms: float = option(1e-6, help="below this RMS a clip is digital silence and is not normalised")
    # Read limits: a FIFO, a silent server or an endless stream must cost one error row, not a hung batch.
    read_timeout_s: float = option(60.0, gt=0, help="longest wait for the network while reading a clip; the whole "
                                                    "read gets about twice that (read_timeout errors)")
    max_bytes: int = option(256 * 2**20, ge=1, help="larger files become too_large errors (raise it for long "
                                                   "whole-video files with --cut-segments)")


@dataclass(frozen=True)
class WindowParams(Section):
    """How a long recording is cut into windows, each scored as a clip (predict, annotate, serve).

    Field recordings last hours; one clip's answer for an hour says little, and scoring
    only the first ``decode.max_duration_s`` hides the rest. A window is made exactly as a
    file holding only that stretch would be, so a window equal to a training clip gets
    the clip's probabilities. A hop longer than the window samples the recording with
    gaps (a duty cycle); a shorter one overlaps the windows.
    """

    windows: bool = option(False, flag="windows", help="score each file in windows (a window table and a summary "
                                                        "per file) instead of as one clip")
    window_s: float | None = option(None, gt=0, flag="window-s",
                                    help="window length in seconds (default: the median clip length of the model's "
                                         "training table, 10 s when that table cannot be read)")
    # A hop of a few samples asks for millions of windows of one file: below a spectrogram frame (10 ms) the windows
    # say nothing the next one does not, and max_windows bounds what one file (or one service request) may ask for.
    hop_s: float | None = option(None, ge=MIN_HOP_S, flag="hop-s",
                                 help="seconds from one window's start to the next (default: window_s; shorter "
                                      f"overlaps the windows, longer leaves gaps; at least {MIN_HOP_S:g})")
    window_batch: int = option(16, ge=1, flag="window-batch",
                               help="windows decoded and scored together (memory: about this many windows of audio)")
    max_windows: int = option(100_000, ge=1, flag="max-windows",
                              help="a file that would give more windows is not scored (its error says so; the "
                                   "service answers 400): a longer hop, or a higher limit, scores it")

    def cross_check(self) -> None:
        for name in ("window_s", "hop_s"):
            require(self.windows or getattr(self, name) is None, name, "applies to windows only: add --windows",
                    getattr(self, name))


def _power_of_two(v: int) -> bool:
    return v >= 64 and v & (v - 1) == 0


@dataclass(frozen=True)
class FeatureParams(Section):
    """Parameters of the CPU feature stages (separation, indices, spectral statistics, MPS).

    Defaults follow the libraries' own examples, adapted to 16 kHz audio
    (Nyquist 8 kHz, so scikit-maad's 10–20 kHz 'high' band becomes 5–8 kHz).
    """

    # noisereduce (spectral gating). Non-stationary gating tracks a moving
    # noise floor, which suits soundscapes whose background changes (wind, traffic).
    nr_stationary: bool = option(False, help="noisereduce: stationary gating instead of a moving noise floor")
    nr_prop_decrease: float = option(1.0, gt=0, le=1, help="noisereduce: share of the noise removed")
    nr_time_constant_s: float = option(2.0, help="noisereduce: time constant of the moving noise floor (s)")
    nr_n_fft: int = option(1024, help="noisereduce: FFT size")
    # scikit-maad
    maad_nperseg: int = option(1024, check=(_power_of_two, "must be a power of two >= 64"),
                               help="scikit-maad: spectrogram window (samples)")
    maad_noverlap: int = option(512, help="scikit-maad: window overlap (samples)")
    maad_gain_db: float = option(42.0, help="scikit-maad: recorder gain (dB)")
    maad_sensitivity_dbv: float = option(-35.0, help="scikit-maad: microphone sensitivity (dBV)")
    maad_db_threshold: float = option(3.0, help="scikit-maad: dB threshold of the acoustic-event indices")
    maad_reject_duration_s: float = option(0.01, help="scikit-maad: events shorter than this are ignored (s)")
    maad_flim_low: tuple[float, float] = option((0.0, 1000.0), help="scikit-maad: low band (Hz)")
    maad_flim_mid: tuple[float, float] = option((1000.0, 5000.0), help="scikit-maad: mid band (Hz)")
    maad_flim_hi: tuple[float, float] = option((5000.0, 8000.0), help="scikit-maad: high band (Hz)")
    # soundsig modulation power spectrum
    mps_spec_sample_rate: float = option(1000.0, help="MPS: frame rate of its spectrogram (Hz)")
    mps_freq_spacing: float = option(50.0, help="MPS: frequency spacing of its spectrogram (Hz)")
    mps_max_freq: float = option(8000.0, help="MPS: highest spectrogram frequency (Hz)")
    mps_window_s: float = option(1.0, help="MPS: window length (s)")
    mps_n_wf: int = option(16, ge=2, help="MPS: spectral-modulation grid points")
    mps_max_wf: float = option(0.005, help="MPS: highest spectral modulation (cycles/Hz; 0.005 = 5 cycles/kHz)")
    mps_n_wt: int = option(33, check=(lambda v: v >= 3 and v % 2 == 1, "must be an odd integer >= 3"),
                           help="MPS: temporal-modulation grid points")
    mps_max_wt: float = option(64.0, help="MPS: highest temporal modulation (Hz)")
    # log-mel and MFCC statistics over the frames of the scikit-maad spectrogram above
    spectral: bool = option(True, help="log-mel band and MFCC statistics per signal (spectral_<signal> columns)")
    spectral_n_mels: int = option(40, ge=1, help="spectral: mel bands")
    spectral_n_mfcc: int = option(13, ge=1, help="spectral: MFCCs (at most spectral_n_mels)")
    spectral_fmin: float = option(50.0, help="spectral: lowest mel frequency (Hz)")
    spectral_fmax: float = option(8000.0, help="spectral: highest mel frequency (Hz)")
    spectral_percentiles: tuple[float, ...] = option((10.0, 50.0, 90.0),
                                                     check=(lambda v: len(set(v)) == len(v) and
                                                            all(0 <= q <= 100 for q in v),
                                                            "must be distinct percentiles in [0, 100]"),
                                                     help="spectral: percentiles of each band over the frames")
    signals: tuple[str, ...] = option(SIGNALS, choices=SIGNALS, nonempty=True, flag="signals",
                                      help="signals the features are computed for")
    impl: str = option("fast", choices=("reference", "fast"), help="CPU feature implementation")


@dataclass(frozen=True)
class ExtractConfig(Section):
    """Everything the extract job needs; the run record stores it whole."""

    manifest: str = _location(help="clip list: AudioSet segment CSV, CSV/Parquet/JSONL with uri+labels, or a directory")
    output: str = _location(help="output directory or URI (features/, errors/, runs/ go below it)")
    audio_root: str | None = _location(None, help="where the audio files are (local path or s3://, gs://, https://)")
    manifest_format: str = option("auto", choices=("auto", "audioset", "csv", "parquet", "jsonl", "directory"),
                                  help="format of --manifest")
    path_template: str = option("{audio_root}/{YTID}_{start_ms}.{ext}", help="AudioSet row -> file",
                                check=(lambda v: "{" in v, "must contain placeholders such as {YTID}"))
    audio_extensions: tuple[str, ...] = option(("flac", "wav", "ogg", "mp3", "m4a"), nonempty=True,
                                               help="extensions {ext} tries, in order")
    cut_segments: bool = option(False, help="files hold the whole video: cut start_seconds..end_seconds out of them")
    ontology: str | None = _ontology()
    limit: int | None = option(None, ge=1, help="process only the first N clips of the manifest")
    batch_size: int = option(4, ge=1, help="clips per batch")
    # Large enough that planning a resume of millions of clips reads thousands of parts,
    # not millions; small enough that an interruption loses little.
    write_batch_size: int = option(64, ge=1, help="rows per Parquet part written")
    embedders: tuple[str, ...] = option((), choices=EMBEDDERS, help="pretrained embedders to run")
    # Each signal is one more forward pass per embedder, and fg/bg audio handed from the feature actors to them.
    embed_signals: tuple[str, ...] = option(("raw",), choices=SIGNALS, nonempty=True,
                                            help="signals each embedder embeds: raw into the column named after the "
                                                 "embedder (panns, panns_scores), fg and bg (the noisereduce "
                                                 "foreground and background) into <embedder>_fg, <embedder>_bg "
                                                 "(panns_fg, panns_scores_fg, ...)")
    allow_random_weights: bool = option(False, help="run embedders with random weights when checkpoints are missing "
                                                    "(recorded as 'random')")
    weights_cache: str | None = _location(None, help="model cache directory or URI "
                                                  "(default: $ACOUSTIC_ENV_MODEL_CACHE, "
                                                  "else ~/.cache/acoustic-env/models)")
    device: str = _device("feature and embedder")
    # bf16 agreement with fp32 is measured on random weights only (cosine >= 0.99998; tests/test_embedders.py)
    embed_precision: str = option("fp32", choices=PRECISIONS,
                                  help="the embedders' networks in fp32, or in bf16 autocast (their front ends "
                                       "and the features stay in float32/float64)")
    device_batch_size: int = option(64, ge=1, help="clips per batch of the device stage on a GPU (every feature "
                                                   "and every embedding of a batch in one pass on the card)")
    # Embedder actors request a fraction of one ("GPU" on real clusters; a custom
    # resource stands in for it in tests).
    accelerator_resource: str = option("GPU", nonempty=True, help="cluster resource that marks an accelerator")
    embed_batch_size: int = option(16, ge=1, help="clips per embedder batch")
    # For clip lists from a third party: without roots, "../" or absolute paths read any file the worker can.
    allowed_roots: tuple[str, ...] = option((), help="clips must lie under one of these paths or URL prefixes; "
                                                     "others become outside_allowed_roots errors (empty: anywhere)")
    redact_query_params: tuple[str, ...] = option((), help="URL query parameters whose values are secrets, besides "
                                                           "token, sig, X-Amz-Signature, ... (replaced by *** "
                                                           "before anything is stored or logged)")
    ray_address: str | None = _ray_address()
    # where a Ray start-up (5-10 s) costs more than featurising the clips one after another (jobs/in_process.py)
    in_process_max: int = option(IN_PROCESS_MAX, ge=0, help="a run that names no Ray cluster (no --ray-address, "
                                                            "no RAY_ADDRESS) and no --device cuda, with at most "
                                                            "this many clips to do, computes them in this process "
                                                            "without starting Ray (0: always Ray)")
    progress: bool = _progress()
    # --dry-run's sizing (acoustic_env/jobs/sizing.py): the shape of a worker node and the time to fit in
    plan_node_cpus: int = option(32, ge=1, help="--dry-run sizing: CPUs of one worker node")
    plan_node_gpus: int = option(0, ge=0, help="--dry-run sizing: GPUs of one worker node (0: embedders on CPU)")
    plan_hours: float = option(8.0, gt=0, help="--dry-run sizing: the wall time the job should fit in")
    decode: DecodeParams = option(factory=DecodeParams, help="how a clip is decoded")
    features: FeatureParams = option(factory=FeatureParams, help="CPU feature parameters")

    def cross_check(self) -> None:
        d, f = self.decode, self.features
        require(bool(self.embedders) or self.embed_signals == ("raw",), "embed_signals",
                "names the signals the embedders embed: add --embedders", self.embed_signals)
        require(d.max_duration_s > d.min_duration_s, "decode.max_duration_s", "must be > decode.min_duration_s",
                 d.max_duration_s)
        require(0 <= f.maad_noverlap < f.maad_nperseg, "features.maad_noverlap", "must be in [0, maad_nperseg)",
                 f.maad_noverlap)
        for name in ("maad_flim_low", "maad_flim_mid", "maad_flim_hi"):
            lo, hi = getattr(f, name)
            require(0 <= lo < hi <= d.sample_rate / 2, f"features.{name}",
                     f"must be (low, high) with 0 <= low < high <= {d.sample_rate // 2}", (lo, hi))
        require(0 < f.mps_max_wt <= f.mps_spec_sample_rate / 2, "features.mps_max_wt",
                 "must be in (0, mps_spec_sample_rate/2]", f.mps_max_wt)
        require(0 < f.mps_max_wf <= 0.5 / f.mps_freq_spacing, "features.mps_max_wf",
                 "must be in (0, 0.5/mps_freq_spacing]", f.mps_max_wf)
        require(0 < f.mps_window_s <= d.min_duration_s * 4, "features.mps_window_s",
                 "must be > 0 and not much longer than decode.min_duration_s", f.mps_window_s)
        require(f.spectral_n_mfcc <= f.spectral_n_mels, "features.spectral_n_mfcc", "must be <= spectral_n_mels",
                 f.spectral_n_mfcc)
        second_bin = d.sample_rate / f.maad_nperseg
        require(f.spectral_fmin >= second_bin, "features.spectral_fmin", f"must be >= sample_rate / maad_nperseg "
                 f"= {second_bin:g} Hz (scikit-maad removes each frame's mean, which changes the bins below)",
                 f.spectral_fmin)
        require(f.spectral_fmin < f.spectral_fmax <= d.sample_rate / 2, "features.spectral_fmax",
                 f"must be in (spectral_fmin, {d.sample_rate // 2}]", f.spectral_fmax)


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


@dataclass(frozen=True)
class TrainConfig(Section):
    """Everything the train job needs; the run record stores it whole."""

    features: str = _location(help="feature table: an extract output or its features/ directory (local or s3://)")
    output: str = _location(help="output directory or URI (model/, report/, runs/ go below it)")
    task: str = _task()
    ontology: str | None = _ontology()
    feature_groups: tuple[str, ...] = option((), choices=FEATURE_GROUPS,
                                             help="sources or columns to train on (empty: every group the table has)")
    signals: tuple[str, ...] = option(SIGNALS, choices=SIGNALS, nonempty=True,
                                      help="signals kept for the per-signal columns (indices, MPS, and embeddings "
                                           "of fg and bg such as panns_fg; an embedder's raw column is kept)")
    include_random_weights: bool = option(False, help="also use embedder columns computed with random weights "
                                                      "(left out by default: they carry no pretrained knowledge)")
    pca: dict[str, float] = option(factory=dict, parse=_parse_pca,
                                   help="components per source: a count or a variance fraction, e.g. indices=20,mps=0.95 "
                                        f"(sources not named: {','.join(f'{k}={v}' for k, v in DEFAULT_PCA.items())}, "
                                        f"{','.join(f'{n}={registry.get(n).pca}' for n in EMBEDDERS)})")
    # With a few thousand clips, one validation split of a few dozen clips is too noisy to choose
    # a model on (or to report); cross-validation scores every clip once (see learn/cv.py).
    cv_folds: int = option(5, check=(lambda v: v == 0 or v >= 2, "must be 0 (no cross-validation) or >= 2"),
                           help="grouped K-fold cross-validation, the evaluation of record for up to cv_max_clips "
                                "clips (0: always the train/val/test split)")
    cv_max_clips: int = option(5000, ge=1, help="above this many clips, the train/val/test split replaces "
                                                "cross-validation (CV fits every model cv_folds times)")
    folds_column: str | None = option(None, help="manifest column with published folds (UrbanSound8K, ESC-50: fold): "
                                                 "cross-validation over exactly those folds, whatever the size")
    test_size: float = option(0.2, gt=0, lt=1, help="test fraction when no --test-list is given")
    val_size: float = option(0.2, gt=0, lt=1, help="validation fraction of the clips left after the test split")
    test_list: str | None = _location(None, help="clip ids for the test split: AudioSet segment CSV, CSV with clip_id, "
                                              "or one per line")
    seed: int = option(0, help="seed of the splits, the search and the networks")
    # Nested under cross-validation: each fold's models search on that fold's training clips only (learn/search.py).
    search_trials: int = option(2, ge=1, help="settings each of xgboost and the MLP tries in its own search, the "
                                              "defaults first, scored by grouped CV on the training clips only "
                                              "(1: the defaults, no search)")
    search_folds: int = option(2, ge=2, help="inner folds of every model's search (xgboost, the MLP, logistic "
                                             "regression's C), grouped like the outer folds")
    trials: int = option(8, ge=0, help="search trials (0: train once with the default hyper-parameters)")
    time_budget_s: float = option(900.0, gt=0, flag="time-budget", help="search time budget in seconds")
    max_concurrent_trials: int = option(0, ge=0, help="trials at once (0: one per two CPUs)")
    max_rounds: int = option(30, ge=1, help="validation rounds per run at most")
    grace_rounds: int = option(3, ge=1, help="rounds before early termination may stop a trial (at most max_rounds)")
    patience: int = option(6, ge=1, help="rounds without improvement before a run stops")
    steps_per_round: int = option(50, ge=1, help="optimizer steps per validation round at least")
    workers: int = option(1, ge=1, help="workers per training run (1: in the Tune trial's process; more: data-parallel "
                                        "Ray Train workers)")
    device: str = _device("training")
    baselines: tuple[str, ...] = option(BASELINES, choices=(*BASELINES, *EXTRA_BASELINES),
                                        help="baseline models (empty for none; forest, svm and knn are compared, "
                                             "never saved)")
    saved_model: str = option("record", choices=("record", *CLASSIFIERS),
                              help="the model the artifact holds: the model of record, or a compared model by name")
    ablations: bool = option(True, help="the feature-group ablations")
    # The study's comparison (jobs/train/grid.py): one cross-validated model per embedder x signal-set cell.
    grid: bool = option(False, help="compare one model per cell of grid_embedders x grid_signals (indices + MPS of "
                                    "the signals, plus the embedder's embeddings of them; --feature-groups names "
                                    "other hand-made sources), each with its own nested search; the winner is "
                                    "trained and saved")
    grid_embedders: tuple[str, ...] = option(("none", *EMBEDDERS), choices=("none", *EMBEDDERS), nonempty=True,
                                             help="the grid's embedder axis (none: indices and MPS alone)")
    grid_signals: tuple[str, ...] = option(("raw",), choices=SIGNAL_SETS, nonempty=True,
                                           help="the grid's signal axis (all: raw, fg and bg together); fg and bg "
                                                "embeddings need a table extracted with them")
    shap_samples: int = option(100, ge=0, help="test clips explained with SHAP (0 skips SHAP)")
    label_accuracy: str | None = _location(None, help="the audit's label-accuracy estimate (JSON): adds adjusted "
                                                   "accuracy to the report")
    memory_gb: float = option(4.0, gt=0, help="above this many GiB of raw feature values, the PCA is fitted "
                                              "incrementally while streaming the table")
    work_dir: str | None = _location(None, help="Ray Tune/Train run directory (default: <output>/ray, or a "
                                             "temporary one removed after the run when the output is remote; "
                                             "shared storage on a multi-node cluster)")
    ray_address: str | None = _ray_address()
    progress: bool = _progress()

    def pca_target(self, source: str) -> float:
        return self.pca.get(source, DEFAULT_PCA[source] if source in DEFAULT_PCA else registry.get(source).pca)

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
        require(self.grace_rounds <= self.max_rounds, "grace_rounds", "must be an integer in [1, max_rounds]",
                 self.grace_rounds)
        require(self.saved_model in ("record", "mlp", *self.baselines), "saved_model",
                f"must be record or a compared model ({', '.join(('mlp', *self.baselines))})", self.saved_model)
        require(not (self.folds_column and self.test_list), "folds_column",
                 "cannot be combined with test_list (given folds already say which clips test which)",
                 self.folds_column)
        require(not self.grid or (self.cv_folds or self.folds_column) and not self.test_list, "grid",
                 "compares cells by cross-validation: needs cv_folds >= 2 (or folds_column) and no test_list",
                 self.grid)
        for name in ("grid_embedders", "grid_signals"):  # the grid's axes: without --grid they would be ignored
            require(self.grid or getattr(self, name) == next(f.default for f in fields(self) if f.name == name), name,
                    "applies to the grid only: add --grid", getattr(self, name))
        hand_made = ("indices", "spectral", "mps")
        require(not self.grid or set(self.feature_groups) <= set(hand_made), "feature_groups",
                f"with grid, names the hand-made sources of every cell ({', '.join(hand_made)}); the grid adds "
                f"the embedders", self.feature_groups)


@dataclass(frozen=True)
class AuditConfig(Section):
    """Everything the audit job needs; summary.json stores it whole.

    ``feature_groups`` empty means every vector column except class-score
    columns (``*_scores``): scores from a pretrained AudioSet tagger were
    trained on the very labels being audited, so they would echo the label
    noise back instead of judging it. ``filter_by`` is cleanlab's rule for
    flagging; its default (``prune_by_noise_rate``) flags as many clips per
    (given, true) class pair as the estimated noise matrix says are wrong.
    """

    features: str = _location(help="feature table: an extract output, its features/ directory, or a Parquet file")
    output: str = _location(help="audit output directory or URI (audit.parquet, summary.json, review/)")
    task: str = _task()
    ontology: str | None = _ontology()
    classifier: str = option("auto", choices=("auto", *CLASSIFIERS, "average"),
                             help="out-of-fold classifier: auto keeps the zoo model (or their average) with the "
                                  "lowest out-of-fold log loss; logreg alone is the fastest")
    folds: int = option(5, ge=2, le=50, help="number of cross-fitting folds")
    seed: int = option(0, ge=0, help="seed of the folds, the classifier and the random review sample")
    feature_groups: tuple[str, ...] = option((), check=(all, "must be non-empty column names or prefixes"),
                                             help="feature columns or prefixes, e.g. indices,mps_fg,vggish "
                                                  "(empty: every vector except *_scores)")
    include_random_weights: bool = option(False, help="also use embedder columns computed with random weights "
                                                      "(left out by default: they carry no pretrained knowledge)")
    filter_by: str = option("prune_by_noise_rate", choices=FILTERS, help="cleanlab's flagging rule")
    review_top: int = option(50, ge=0, help="suspects on the review page")
    truth: str | None = _location(None, help="CSV of known label errors (clip_id, flipped 0/1; the demo's truth.csv): "
                                           "the summary adds precision and recall of the flags and of the top-k")
    random_sample: int = option(100, ge=0, help="randomly drawn clips on the review page")
    parallel: str = option("sequential", choices=("sequential", "ray"), help="ray: run the folds as Ray tasks")
    ray_address: str | None = _ray_address()


@dataclass(frozen=True)
class AnnotateConfig(Section):
    """The new list, the model, the shared feature table and where annotations go."""

    model: str = _location(help="model artifact written by `acoustic-env train` (directory or URI)")
    features: str = _location(help="the shared extract output the clips are added to (features/, errors/, runs/)")
    output: str = _location(help="where annotations/ and runs/ go")
    manifest: str | None = _location(None, help="the new clip list (any format extract reads); or --lists")
    lists: str | None = _location(None, help="a directory or prefix of clip lists: each list not yet recorded in "
                                             "<output>/lists/ is annotated once, in name order (a list that arrives "
                                             "during a run waits for the next run)")
    flag_threshold: float = option(0.5, gt=0, lt=1, help="flag a given label whose probability is below this")
    windows: WindowParams = option(factory=WindowParams, help="long recordings: each listed file scored in windows, "
                                                              "in this process, into window-annotations/")
    # The extract options; annotate sets the list, the table and the model's embedders (and their signals) itself.
    extract: dict[str, Any] = option(factory=dict, flags_from=(ExtractConfig, ("manifest", "output", "embedders",
                                                                              "embed_signals")),
                                     help="any ExtractConfig field but manifest, output, embedders and embed_signals")

    def cross_check(self) -> None:
        if (self.manifest is None) == (self.lists is None):
            raise ConfigError("manifest: give one clip list (--manifest) or a directory of them (--lists), not both")
        try:
            from_dict(ExtractConfig, {**self.extract, "manifest": self.manifest or self.lists, "output": self.features})
        except ConfigError as exc:
            raise ConfigError(f"extract.{exc}") from None


def _url_prefix(v: str) -> bool:
    return v.startswith(("https://", "http://")) and len(v.split("/", 3)) == 4 and bool(v.split("/", 3)[2])


@dataclass(frozen=True)
class ServeConfig(Section):
    """The live recognition service (``acoustic-env serve``): the model, the replicas, the limits of a request."""

    model: str = _location(help="model artifact written by `acoustic-env train` (directory or URI)")
    host: str = option("127.0.0.1", nonempty=True, help="address the HTTP server listens on (0.0.0.0: every "
                                                        "interface; the service has no authentication)")
    port: int = option(8000, ge=0, le=65535, help="HTTP port (0: a free one)")
    replicas: int = option(1, ge=1, help="model replicas (each loads the model and its embedders once)")
    # 2-CPU machines: Serve's controller and HTTP proxy need room beside the replica.
    replica_cpus: float = option(0.5, gt=0, help="CPUs reserved per replica")
    replica_gpus: float = option(0.0, ge=0, help="GPUs per replica (> 0: the embedders run on CUDA)")
    max_upload_mb: float = option(20.0, gt=0, help="larger uploads (and fetched URLs) get too_large (413)")
    max_duration_s: float = option(60.0, gt=0, help="longer recordings get too_long (422)")
    request_timeout_s: float = option(30.0, gt=0, help="a request not answered within this gets timeout (504)")
    # ?windows=1 scores a long recording from a temporary file, window by window, in memory that does not grow with
    # its length; these limits are about disk, time and the body in flight (Serve's HTTP proxy and the replica each
    # read a body as fast as it comes: docs/serve.md). An hour of 48 kHz stereo 16-bit WAV is 660 MiB.
    windows_max_upload_mb: float = option(1024.0, gt=0, help="larger ?windows=1 uploads (and fetched URLs) get "
                                                             "too_large (413); past --max-upload-mb they are "
                                                             "spooled to a temporary file")
    windows_max_duration_s: float = option(4 * 3600.0, gt=0, help="longer ?windows=1 recordings get too_long (422)")
    windows_timeout_s: float = option(3600.0, gt=0, help="a ?windows=1 request not answered within this gets "
                                                         "timeout (504); its scoring stops at the next window")
    allowed_url_prefixes: tuple[str, ...] = option((), check=(lambda v: all(map(_url_prefix, v)),
                                                              "must be http(s)://host/... prefixes"),
                                                   help="POST {\"url\": ...} is fetched only when it starts with "
                                                        "one of these (empty: no URL is fetched)")
    batch_max_size: int = option(1, ge=1, help="requests scored together by Serve's dynamic batching "
                                               "(1: no batching; worth it on a GPU)")
    batch_wait_s: float = option(0.01, ge=0, help="longest wait for a batch to fill")
    weights_cache: str | None = _location(None, help="embedder checkpoint cache (default: "
                                                  "$ACOUSTIC_ENV_MODEL_CACHE, else ~/.cache/acoustic-env/models)")
    ray_address: str | None = _ray_address()
