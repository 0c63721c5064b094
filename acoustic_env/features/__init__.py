"""The CPU feature stage for one clip: separate, then indices and MPS per signal.

Plain functions of numpy arrays (no Ray): the pipeline's actors call
``cpu_features`` once per clip. CPU time is measured per stage with
``time.thread_time`` so the run record can say where the cost goes.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from acoustic_env.config import FeatureParams
from acoustic_env.features.fast import indices as fast_indices
from acoustic_env.features.fast import mps as fast_mps
from acoustic_env.features.fast import separation as fast_separation
from acoustic_env.features.reference.indices import INDEX_NAMES, maad_indices
from acoustic_env.features.reference.mps import mps_axes, mps_grid
from acoustic_env.features.reference.separation import separate

IndexFn = Callable[[np.ndarray, int, FeatureParams], np.ndarray]
MpsFn = Callable[[np.ndarray, int, FeatureParams], np.ndarray]
SeparateFn = Callable[[np.ndarray, int, FeatureParams], tuple[np.ndarray, np.ndarray]]


def implementation(name: str) -> tuple[IndexFn, MpsFn]:
    """The (indices, mps) functions of an implementation ('reference' = the libraries, 'fast' = vectorised)."""
    if name == "reference":
        return maad_indices, mps_grid
    if name == "fast":
        return fast_indices.maad_indices, fast_mps.mps_grid
    raise ValueError(f"features.impl: unknown implementation {name!r}")


def separation(name: str) -> SeparateFn:
    """The fg/bg separation of an implementation (same outputs, see fast_separation)."""
    return fast_separation.separate if name == "fast" else separate


def cpu_features(audio: np.ndarray, sr: int, params: FeatureParams) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Feature vectors ``indices_<signal>`` and ``mps_<signal>`` (float32) and CPU seconds per stage.

    Non-finite values are replaced by 0.0 and counted in ``nonfinite_features``.
    """
    index_fn, mps_fn = implementation(params.impl)
    cpu: dict[str, float] = {}
    t0 = time.thread_time()
    signals = {"raw": np.asarray(audio, dtype=np.float32)}
    if {"fg", "bg"} & set(params.signals):
        signals["fg"], signals["bg"] = separation(params.impl)(signals["raw"], sr, params)
    cpu["separate"] = time.thread_time() - t0
    out: dict[str, np.ndarray] = {}
    nonfinite = 0
    cpu["indices"] = cpu["mps"] = 0.0
    for name in params.signals:
        x = signals[name]
        t0 = time.thread_time()
        idx = index_fn(x, sr, params)
        t1 = time.thread_time()
        grid = mps_fn(x, sr, params)
        t2 = time.thread_time()
        cpu["indices"] += t1 - t0
        cpu["mps"] += t2 - t1
        for key, vec in ((f"indices_{name}", idx), (f"mps_{name}", grid)):
            with np.errstate(over="ignore"):
                vec32 = np.asarray(vec).astype(np.float32)  # values beyond float32's range become inf here
            bad = ~np.isfinite(vec32)
            nonfinite += int(bad.sum())
            out[key] = np.where(bad, np.float32(0.0), vec32)
    out["nonfinite_features"] = np.int32(nonfinite)
    return out, cpu


def feature_metadata(params: FeatureParams) -> dict[str, object]:
    """Names, shapes and axes of the CPU feature columns, for the schema metadata."""
    wf, wt = mps_axes(params)
    meta: dict[str, object] = {}
    for name in params.signals:
        meta[f"indices_{name}"] = {"shape": [len(INDEX_NAMES)], "names": list(INDEX_NAMES),
                                   "source": "scikit-maad alpha indices", "impl": params.impl}
        meta[f"mps_{name}"] = {"shape": [len(wf), len(wt)], "layout": "row-major [wf, wt]",
                               "axes": {"wf_cycles_per_hz": wf.tolist(), "wt_hz": wt.tolist()},
                               "values": "log10 modulation power", "source": "soundsig mps",
                               "impl": params.impl}
    return meta
