"""Job configuration: one dataclass per concern, validated up front.

A bad value must stop the job *before* Ray starts, with one line that names the
field (``ConfigError: features.mps_n_wt: must be an odd integer >= 3, got 4``),
instead of a traceback from inside an actor twenty minutes later.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

#: The embedders the pipeline can run, in the order it runs them (torch-free, so that
#: validating a config never imports a deep-learning runtime).
EMBEDDERS = ("vggish", "yamnet", "panns")


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the field."""


@dataclass(frozen=True)
class DecodeParams:
    """How a clip becomes a mono 16 kHz float32 array.

    ``min_duration_s``: clips shorter than this (after cutting to the segment)
    become ``too_short`` error rows, because the indices and the modulation
    spectrum need at least a few analysis windows (1024-sample spectrogram
    frames and a 1 s MPS window) to mean anything.
    ``max_duration_s``: clips longer than this are trimmed (a guard against a
    mislabelled hour-long file blowing an actor's memory).
    """

    sample_rate: int = 16000
    target_rms: float = 0.1
    min_duration_s: float = 0.5
    max_duration_s: float = 60.0
    silence_rms: float = 1e-6


@dataclass(frozen=True)
class FeatureParams:
    """Parameters of the CPU feature stages (separation, indices, MPS).

    Defaults follow the libraries' own examples, adapted to 16 kHz audio
    (Nyquist 8 kHz, so scikit-maad's 10–20 kHz 'high' band becomes 5–8 kHz).
    """

    # noisereduce (spectral gating). Non-stationary gating tracks a moving
    # noise floor, which suits soundscapes whose background changes (wind, traffic).
    nr_stationary: bool = False
    nr_prop_decrease: float = 1.0
    nr_time_constant_s: float = 2.0
    nr_n_fft: int = 1024
    # scikit-maad
    maad_nperseg: int = 1024
    maad_noverlap: int = 512
    maad_gain_db: float = 42.0
    maad_sensitivity_dbv: float = -35.0
    maad_db_threshold: float = 3.0
    maad_reject_duration_s: float = 0.01
    maad_flim_low: tuple[float, float] = (0.0, 1000.0)
    maad_flim_mid: tuple[float, float] = (1000.0, 5000.0)
    maad_flim_hi: tuple[float, float] = (5000.0, 8000.0)
    # soundsig modulation power spectrum
    mps_spec_sample_rate: float = 1000.0
    mps_freq_spacing: float = 50.0
    mps_max_freq: float = 8000.0
    mps_window_s: float = 1.0
    mps_n_wf: int = 16
    mps_max_wf: float = 0.005  # cycles/Hz (= 5 cycles/kHz)
    mps_n_wt: int = 33
    mps_max_wt: float = 64.0  # Hz
    signals: tuple[str, ...] = ("raw", "fg", "bg")
    impl: str = "fast"


@dataclass(frozen=True)
class ExtractConfig:
    """Everything the extract job needs; the run record stores it whole."""

    manifest: str
    output: str
    audio_root: str | None = None
    manifest_format: str = "auto"
    path_template: str = "{audio_root}/{YTID}_{start_ms}.{ext}"
    audio_extensions: tuple[str, ...] = ("flac", "wav", "ogg", "mp3", "m4a")
    cut_segments: bool = False
    ontology: str | None = None
    limit: int | None = None
    batch_size: int = 4
    # Rows per Parquet part: large enough that planning a resume of millions of clips reads
    # thousands of parts, not millions; small enough that an interruption loses little.
    write_batch_size: int = 64
    embedders: tuple[str, ...] = ()
    allow_random_weights: bool = False
    weights_cache: str | None = None
    device: str = "auto"
    # The cluster resource that marks an accelerator. Embedder actors request a fraction
    # of one ("GPU" on real clusters; a custom resource stands in for it in tests).
    accelerator_resource: str = "GPU"
    embed_batch_size: int = 16
    ray_address: str | None = None
    progress: bool = True
    decode: DecodeParams = field(default_factory=DecodeParams)
    features: FeatureParams = field(default_factory=FeatureParams)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_SIGNALS = {"raw", "fg", "bg"}
_FORMATS = {"auto", "audioset", "csv", "parquet", "jsonl", "directory"}
_DEVICES = {"auto", "cpu", "cuda"}
_IMPLS = {"reference", "fast"}


def _require(cond: bool, name: str, msg: str, value: Any) -> None:
    if not cond:
        raise ConfigError(f"{name}: {msg}, got {value!r}")


def validate(cfg: ExtractConfig) -> ExtractConfig:
    """Check every field a user can set; raise ConfigError naming the first bad one."""
    _require(bool(cfg.manifest), "manifest", "is required", cfg.manifest)
    _require(bool(cfg.output), "output", "is required", cfg.output)
    _require(cfg.manifest_format in _FORMATS, "manifest_format", f"must be one of {sorted(_FORMATS)}", cfg.manifest_format)
    _require(isinstance(cfg.batch_size, int) and cfg.batch_size >= 1, "batch_size", "must be an integer >= 1", cfg.batch_size)
    _require(isinstance(cfg.write_batch_size, int) and cfg.write_batch_size >= 1, "write_batch_size",
             "must be an integer >= 1", cfg.write_batch_size)
    _require(cfg.limit is None or (isinstance(cfg.limit, int) and cfg.limit >= 1), "limit", "must be an integer >= 1", cfg.limit)
    bad = [e for e in cfg.embedders if e not in EMBEDDERS]
    _require(not bad, "embedders", f"must be a subset of {list(EMBEDDERS)}", cfg.embedders)
    _require(len(set(cfg.embedders)) == len(cfg.embedders), "embedders", "must not repeat a name", cfg.embedders)
    _require(isinstance(cfg.embed_batch_size, int) and cfg.embed_batch_size >= 1, "embed_batch_size",
             "must be an integer >= 1", cfg.embed_batch_size)
    _require(bool(cfg.accelerator_resource), "accelerator_resource", "must name a resource", cfg.accelerator_resource)
    _require(cfg.device in _DEVICES, "device", f"must be one of {sorted(_DEVICES)}", cfg.device)
    _require("{" in cfg.path_template, "path_template", "must contain placeholders such as {YTID}", cfg.path_template)
    _require(len(cfg.audio_extensions) > 0, "audio_extensions", "must not be empty", cfg.audio_extensions)
    d = cfg.decode
    _require(d.sample_rate == 16000, "decode.sample_rate", "must be 16000 (every model and feature is defined at 16 kHz)", d.sample_rate)
    _require(d.target_rms > 0, "decode.target_rms", "must be > 0", d.target_rms)
    _require(d.min_duration_s > 0, "decode.min_duration_s", "must be > 0", d.min_duration_s)
    _require(d.max_duration_s > d.min_duration_s, "decode.max_duration_s", "must be > decode.min_duration_s", d.max_duration_s)
    f = cfg.features
    _require(set(f.signals) <= _SIGNALS and len(f.signals) > 0, "features.signals", f"must be a non-empty subset of {sorted(_SIGNALS)}", f.signals)
    _require(f.impl in _IMPLS, "features.impl", f"must be one of {sorted(_IMPLS)}", f.impl)
    _require(0 < f.nr_prop_decrease <= 1, "features.nr_prop_decrease", "must be in (0, 1]", f.nr_prop_decrease)
    _require(f.maad_nperseg >= 64 and f.maad_nperseg & (f.maad_nperseg - 1) == 0, "features.maad_nperseg", "must be a power of two >= 64", f.maad_nperseg)
    _require(0 <= f.maad_noverlap < f.maad_nperseg, "features.maad_noverlap", "must be in [0, maad_nperseg)", f.maad_noverlap)
    for name in ("maad_flim_low", "maad_flim_mid", "maad_flim_hi"):
        lo, hi = getattr(f, name)
        _require(0 <= lo < hi <= d.sample_rate / 2, f"features.{name}", f"must be (low, high) with 0 <= low < high <= {d.sample_rate // 2}", (lo, hi))
    _require(f.mps_n_wf >= 2, "features.mps_n_wf", "must be an integer >= 2", f.mps_n_wf)
    _require(f.mps_n_wt >= 3 and f.mps_n_wt % 2 == 1, "features.mps_n_wt", "must be an odd integer >= 3", f.mps_n_wt)
    _require(0 < f.mps_max_wt <= f.mps_spec_sample_rate / 2, "features.mps_max_wt", "must be in (0, mps_spec_sample_rate/2]", f.mps_max_wt)
    _require(0 < f.mps_max_wf <= 0.5 / f.mps_freq_spacing, "features.mps_max_wf", "must be in (0, 0.5/mps_freq_spacing]", f.mps_max_wf)
    _require(0 < f.mps_window_s <= d.min_duration_s * 4, "features.mps_window_s", "must be > 0 and not much longer than decode.min_duration_s", f.mps_window_s)
    return cfg


def _build(cls: type, data: dict[str, Any], prefix: str) -> Any:
    """Construct a dataclass from a mapping, naming unknown or mistyped fields."""
    known = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in known:
            raise ConfigError(f"{prefix}{key}: unknown field (known: {', '.join(sorted(known))})")
        default = known[key].default
        if isinstance(default, tuple) and isinstance(value, list):
            value = tuple(tuple(v) if isinstance(v, list) else v for v in value)
        if isinstance(default, bool) and not isinstance(value, bool):
            raise ConfigError(f"{prefix}{key}: must be true or false, got {value!r}")
        if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(default, (int, float)) and not isinstance(default, bool) and not isinstance(value, (int, float)):
            raise ConfigError(f"{prefix}{key}: must be a number, got {value!r}")
        kwargs[key] = value
    try:
        return cls(**kwargs)
    except TypeError as exc:  # a required field is missing
        raise ConfigError(f"{prefix.rstrip('.') or cls.__name__}: {exc}") from None


def extract_config_from_dict(data: dict[str, Any]) -> ExtractConfig:
    """Build and validate an ExtractConfig from plain data (a parsed YAML/JSON file or CLI args)."""
    data = dict(data)
    decode = _build(DecodeParams, data.pop("decode", None) or {}, "decode.")
    features = _build(FeatureParams, data.pop("features", None) or {}, "features.")
    cfg = _build(ExtractConfig, data, "")
    return validate(dataclasses.replace(cfg, decode=decode, features=features))


def load_config_file(path: str) -> dict[str, Any]:
    """Read a YAML or JSON config file into a dict (one-line error if unreadable)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config: file not found: {path}")
    try:
        text = p.read_text()
        data = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"config: cannot parse {path}: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config: {path} must hold a mapping of field names to values")
    return data
