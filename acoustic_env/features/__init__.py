"""The CPU feature stage for one clip: separate, then each feature group per signal (indices, spectral statistics and
MPS, ``acoustic_env.feature_groups``); the log-mel
image of the raw signal when ``features.logmel`` asks for it.

Plain functions of numpy arrays (no Ray): the pipeline's actors call
``cpu_features`` once per clip. CPU time is measured per stage with
``time.thread_time`` so the run record can say where the cost goes.
"""

from __future__ import annotations

import time
from typing import Callable, Iterator

import numpy as np

from acoustic_env import feature_groups
from acoustic_env.config import FeatureParams
from acoustic_env.registry import LiveNames

# The implementations are imported where they run (scipy.signal alone takes 0.5-0.8 s to import):
# a driver that only names the columns (``feature_metadata``) starts Ray that much sooner.

#: The stages ``cpu_features`` times: the separation, then each feature group of the registry
#: (``acoustic_env.feature_groups``), whose columns name the signal (``spectral_fg``).
STAGES = LiveNames(lambda: ("separate", *feature_groups.names()))
#: The stage of the log-mel image (``features.logmel``), timed only when it runs.
LOGMEL_STAGE = "logmel"
#: One signal's features: (group, vector) pairs, each yielded as soon as it is computed, so
#: that the caller can time each group while the groups share work (the fast spectrogram).
SignalFeatures = Callable[[np.ndarray, int, FeatureParams], Iterator[tuple[str, np.ndarray]]]
SeparateFn = Callable[[np.ndarray, int, FeatureParams], tuple[np.ndarray, np.ndarray]]
#: ``features.impl``'s choices: the libraries, or their vectorised equivalents.
IMPLS = ("reference", "fast")


def implementation(name: str) -> SignalFeatures:
    """The per-signal features of an implementation ('reference' = the libraries, 'fast' = vectorised): every group
    the params turn on, in the registry's order, sharing one dict per signal (``feature_groups``)."""
    if name not in IMPLS:
        raise ValueError(f"features.impl: unknown implementation {name!r}")

    def signal_features(x: np.ndarray, sr: int, params: FeatureParams) -> Iterator[tuple[str, np.ndarray]]:
        shared: dict[str, object] = {}
        for group in feature_groups.specs(params):
            yield group.name, group.implementation(name)(x, sr, params, shared)

    return signal_features


def separation(name: str) -> SeparateFn:
    """The fg/bg separation of an implementation (same outputs, see fast/separation.py)."""
    from acoustic_env.features.fast import separation as fast_separation
    from acoustic_env.features.reference.separation import separate

    return fast_separation.separate if name == "fast" else separate


def separate_signals(audio: np.ndarray, sr: int, params: FeatureParams) -> dict[str, np.ndarray]:
    """``fg`` and ``bg``: the clip's noisereduce foreground and background (float32, the clip's length), as the
    features of those signals see them; the embedders of the separated signals are given the same arrays."""
    fg, bg = separation(params.impl)(np.asarray(audio, dtype=np.float32), sr, params)
    return {"fg": np.asarray(fg, dtype=np.float32), "bg": np.asarray(bg, dtype=np.float32)}


def feature_stages(params: FeatureParams) -> tuple[str, ...]:
    """The stages ``cpu_features`` (and the torch path) time for ``params``: ``STAGES``, and ``logmel`` when on."""
    return (*STAGES, LOGMEL_STAGE) if params.logmel else STAGES


def cpu_features(audio: np.ndarray, sr: int, params: FeatureParams,
                 separated: dict[str, np.ndarray] | None = None) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Feature vectors ``<stage>_<signal>`` (float32) and CPU seconds per stage (every one of ``feature_stages``).

    Non-finite values are replaced by 0.0 and counted in ``nonfinite_features``. ``separated``: a
    dict that receives the ``fg`` and ``bg`` signals (:func:`separate_signals`; the separation then
    runs even when ``params.signals`` is ``raw`` alone), for the embedders of those signals. With
    ``params.logmel``, ``logmel`` holds the raw signal's image (``params.image``: dB bands or MFCCs), float32
    [rows, frames] (:mod:`acoustic_env.features.logmel`; a clip shorter than one window raises its ``too_short``
    ClipError).
    """
    signal_features = implementation(params.impl)
    cpu = dict.fromkeys(feature_stages(params), 0.0)
    out: dict[str, np.ndarray] = {}
    signals = {"raw": np.asarray(audio, dtype=np.float32)}
    if params.logmel:  # first: a clip too short for the image fails before the costly stages
        from acoustic_env.features.logmel import COLUMN, compute_image, image_settings

        t0 = time.thread_time()
        out[COLUMN] = compute_image(signals["raw"], image_settings(params))
        cpu[LOGMEL_STAGE] = time.thread_time() - t0
    t0 = time.thread_time()
    if {"fg", "bg"} & set(params.signals) or separated is not None:
        signals.update(separate_signals(signals["raw"], sr, params))
        if separated is not None:
            separated.update(fg=signals["fg"], bg=signals["bg"])
    cpu["separate"] = time.thread_time() - t0
    nonfinite = 0
    for name in params.signals:
        t0 = time.thread_time()
        for stage, vec in signal_features(signals[name], sr, params):
            cpu[stage] += time.thread_time() - t0
            with np.errstate(over="ignore"):
                vec32 = np.asarray(vec).astype(np.float32)  # values beyond float32's range become inf here
            bad = ~np.isfinite(vec32)
            nonfinite += int(bad.sum())
            out[f"{stage}_{name}"] = np.where(bad, np.float32(0.0), vec32)
            t0 = time.thread_time()
    out["nonfinite_features"] = np.int32(nonfinite)
    return out, cpu


def feature_metadata(params: FeatureParams) -> dict[str, object]:
    """Names, shapes and axes of the CPU feature columns, for the schema metadata (in column order)."""
    return {f"{group.name}_{name}": {**group.metadata(params), "impl": params.impl}
            for name in params.signals for group in feature_groups.specs(params)}
