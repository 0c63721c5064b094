"""Timing two versions of a module side by side, for the benchmarks that compare one file with its version before
(``report_figures.py``, ``review_assets.py``): the machines are noisy, so each pair is run in turn, in one process."""

from __future__ import annotations

import importlib.util
import statistics
import time
from pathlib import Path
from types import ModuleType
from typing import Any, Callable


def cpu_ms(fns: list[Callable[[], Any]], repeats: int) -> list[float]:
    """The median CPU milliseconds (``time.process_time``) of ``repeats`` calls of each of ``fns``, called in turn
    (A B A B ...) after one unrecorded call each, so that a machine that slows down meanwhile slows each alike."""
    for fn in fns:
        fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, kept in zip(fns, times):
            t = time.process_time()
            fn()
            kept.append(1000 * (time.process_time() - t))
    return [statistics.median(kept) for kept in times]


def other_version(path: Path, name: str) -> ModuleType:
    """Another version of a package module (``git show REV:acoustic_env/...py > FILE``) loaded under ``name``: its
    imports are the package's own, so only that file differs."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
