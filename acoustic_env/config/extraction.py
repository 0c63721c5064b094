"""The extract job's config and its sections: decoding, windows over long recordings, the CPU features."""

from __future__ import annotations

from dataclasses import dataclass

from acoustic_env.config.schema import Section, option, require
from acoustic_env.embedders.spec import PRECISIONS, SAMPLE_RATE
from acoustic_env.config.common import (
    AUTO,
    EMBEDDER_CHOICES,
    NO_EMBEDDERS,
    IN_PROCESS_MAX,
    MIN_HOP_S,
    SIGNALS,
    _device,
    _location,
    _ontology,
    _progress,
    _ray_address,
)


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
    read_timeout_s: float = option(60.0, gt=0, help="longest wait for the network while reading a clip; reading "
                                                    "it once open gets about twice that (read_timeout errors)")
    max_bytes: int = option(256 * 2**20, ge=1, help="larger files become too_large errors (raise it for long "
                                                   "whole-video files with --cut-segments)")


#: The most windows a local run scores in its own process without asking whether Ray would be quicker
#: (``WindowParams.in_process_max``): beyond them the first span is timed here (jobs/windows.py: ray_is_sooner).
#: 10 minutes in 3-s windows (200) took 14.1 s on one thread with a BirdNET model, and a local Ray costs about 11 s
#: more than one process before its actors score: below this, Ray is never the quicker on the machines measured.
WINDOWS_IN_PROCESS_MAX = 200


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
    # Ray's start costs a local run seconds before the first window (jobs/windows.py): a few short files are scored
    # in this process, as extract's in_process_max draws the line for clips; beyond it the model's own cost decides
    in_process_max: int = option(WINDOWS_IN_PROCESS_MAX, ge=0, flag="windows-in-process-max",
                                 help="a local run (no Ray cluster named) with at most this many windows to "
                                      "score scores them in this process without "
                                      "starting Ray; with more, the first span is scored here and timed, and the "
                                      "rest go to Ray only if it is expected to finish them sooner (0: always Ray)")
    # a span of 64 3-s windows is seconds of work: small enough that a few files keep every core busy to the end,
    # large enough that opening the file and writing the part cost little beside it
    span_windows: int = option(64, ge=1, flag="span-windows",
                               help="on Ray, a long file is cut into spans of this many windows, each scored by "
                                    "one worker (and written as one part, which a resumed run skips)")

    def cross_check(self) -> None:
        for name in ("window_s", "hop_s"):
            require(self.windows or getattr(self, name) is None, f"windows.{name}",
                    "applies to windows only: add --windows", getattr(self, name))


#: The most points on either MPS axis. soundsig's MPS of a clip has about 41 native points of wf (0-0.005 cycles/Hz)
#: and 129 of wt (within ±64 Hz): a finer grid interpolates, adding values, not information, and each point is a
#: value per signal per clip (255 x 255: 0.8 MB of float32 per clip for raw + fg + bg). A million points asked
#: 4 GB of one worker before it failed.
MPS_MAX_POINTS = 255


def _power_of_two(v: int) -> bool:
    return v >= 64 and v & (v - 1) == 0


@dataclass(frozen=True)
class FeatureParams(Section):
    """Parameters of the CPU feature stages (separation, indices, spectral statistics, MPS; the log-mel image).

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
    mps_n_wf: int = option(16, ge=2, le=MPS_MAX_POINTS, help="MPS: spectral-modulation grid points (the study's "
                                                                   "grid: 101)")
    mps_max_wf: float = option(0.005, help="MPS: highest spectral modulation (cycles/Hz; 0.005 = 5 cycles/kHz)")
    mps_n_wt: int = option(33, ge=3, le=MPS_MAX_POINTS, check=(lambda v: v % 2 == 1, "must be an odd integer >= 3"),
                           help="MPS: temporal-modulation grid points (the study's grid: 77)")
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
    # an image for networks that learn from the time-frequency plane; its settings (features/logmel.py) are
    # recorded in the column's metadata, so that a model can check that a table was computed its way
    logmel: bool = option(False, help="an image of the raw signal per clip (the logmel column: by default 64 "
                                      "log-mel bands 0-8 kHz, 25-ms window, 100 frames a second, dB stored in 8 bits)")
    image: str = option("logmel", choices=("logmel", "mfcc"),
                        help="the logmel column's kind: log-mel bands in dB, or their MFCCs (librosa.feature.mfcc "
                             "of the log-mel: the DCT of each frame's dB bands)")
    # above 160 bands over 0-8 kHz, librosa's filterbank on a 512-point FFT has empty bands
    image_bands: int = option(64, ge=8, le=160, help="the image's mel bands (an mfcc image's are computed from them)")
    image_mfcc: int = option(20, ge=1, help="an mfcc image's coefficients: its rows (at most image_bands)")
    signals: tuple[str, ...] = option(SIGNALS, choices=SIGNALS, nonempty=True, flag="signals",
                                      help="signals the features are computed for")
    impl: str = option("fast", choices=("reference", "fast"), help="CPU feature implementation")


@dataclass(frozen=True)
class ExtractConfig(Section):
    """Everything the extract job needs; the run record stores it whole."""

    manifest: str = _location(help="clip list: AudioSet segment CSV, CSV/Parquet/JSONL with uri+labels, or a directory")
    output: str = _location(role="output", help="output directory or URI (features/, errors/, runs/ go below it)")
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
    embedders: tuple[str, ...] = option(
        (AUTO,), choices=EMBEDDER_CHOICES,
        check=(lambda v: len(v) == 1 or not {AUTO, NO_EMBEDDERS} & set(v), f"{AUTO} and {NO_EMBEDDERS} stand alone"),
        help=f"pretrained embedders to run: {AUTO} (every one whose real weights are available offline and check: "
             f"BirdNET with its extra installed, VGGish, YAMNet or PANNs with a checkpoint in the weights cache; "
             f"never random weights), {NO_EMBEDDERS}, or names")
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
                                                  "else ~/.cache/acoustic-env/models)", role="cache")
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
    # --dry-run's sizing (acoustic_env/audio/sizing.py): the shape of a worker node and the time to fit in
    plan_node_cpus: int = option(32, ge=1, help="--dry-run sizing: CPUs of one worker node")
    plan_node_gpus: int = option(0, ge=0, help="--dry-run sizing: GPUs of one worker node (0: embedders on CPU)")
    plan_hours: float = option(8.0, gt=0, help="--dry-run sizing: the wall time the job should fit in")
    decode: DecodeParams = option(factory=DecodeParams, help="how a clip is decoded")
    features: FeatureParams = option(factory=FeatureParams, help="CPU feature parameters")

    def cross_check(self) -> None:
        d, f = self.decode, self.features
        require(self.embedders not in ((), (NO_EMBEDDERS,)) or self.embed_signals == ("raw",), "embed_signals",
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
        require(f.image_mfcc <= f.image_bands, "features.image_mfcc", "must be <= image_bands", f.image_mfcc)
        image, default = (f.image, f.image_bands, f.image_mfcc), FeatureParams()
        require(f.logmel or image == (default.image, default.image_bands, default.image_mfcc), "features.image",
                "sets the logmel column's image: add --features-logmel", image)
        second_bin = d.sample_rate / f.maad_nperseg
        require(f.spectral_fmin >= second_bin, "features.spectral_fmin", f"must be >= sample_rate / maad_nperseg "
                 f"= {second_bin:g} Hz (scikit-maad removes each frame's mean, which changes the bins below)",
                 f.spectral_fmin)
        require(f.spectral_fmin < f.spectral_fmax <= d.sample_rate / 2, "features.spectral_fmax",
                 f"must be in (spectral_fmin, {d.sample_rate // 2}]", f.spectral_fmax)


