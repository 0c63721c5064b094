"""The ``demo`` command's entry in the job catalogue (``jobs/catalog.py``), declared beside the demo it runs. ``cli``
and ``api`` call :func:`register`, so ``acoustic-env demo`` and ``ae.run("demo", ...)`` both find it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from acoustic_env.config.demo import DemoConfig
from acoustic_env.jobs import catalog


def run(cfg: DemoConfig) -> dict[str, Any]:
    """The demo's data generated, and the jobs run on it (it says each step as it goes): what each step reported."""
    from acoustic_env.demo.run import run_demo

    return run_demo(Path(cfg.output), n_clips=cfg.clips, seed=cfg.seed, duration_s=cfg.duration,
                    features_impl=cfg.features_impl, progress=cfg.progress)


def _nothing_more(_: object) -> list[str]:
    """The demo says each step as it happens: nothing is left to say when it ends."""
    return []


#: ``demo``, added to the catalogue by :func:`register`.
SPEC = catalog.JobSpec("demo", "generate labelled synthetic soundscapes and run the jobs on them locally", DemoConfig,
                       run, _nothing_more, usage="%(prog)s [--output DIR] [options]")


def register() -> None:
    """Add :data:`SPEC` to the catalogue, once (the command line and the API both call this)."""
    if SPEC.name not in {spec.name for spec in catalog.specs()}:
        catalog.register(SPEC)
