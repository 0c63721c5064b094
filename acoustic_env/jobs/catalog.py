"""The commands that run one job from one config: a :class:`JobSpec` each, in one registry.

The command line (``acoustic-env <name>``: its flags from the config's fields, ``--config FILE``, ``--dry-run``),
the Python API (``ae.run(name, ...)`` and the named wrappers of ``api.py``) and submitted jobs
(``python -m acoustic_env.cli``) all read this table, so a job is declared once: its config, the function that runs it, the lines that say what it did,
and its dry run. ``register(spec)`` adds a command before the parser is built (``docs/development.md``, "Adding a
command"). The functions are named lazily (``registry.lazy``): building the parser imports none of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from acoustic_env.config import AnnotateConfig, AuditConfig, ExtractConfig, Section, TrainConfig
from acoustic_env.registry import Registry, lazy


@dataclass(frozen=True)
class JobSpec:
    """One command that runs a job.

    Attributes:
        name: the sub-command (``acoustic-env <name>``) and the API's name for it.
        summary: one line for ``--help``.
        config: the job's config class; every field is a flag (``config.flags``).
        run: ``run(config) -> result``: the job.
        lines: ``lines(result) -> list[str]``: what the command prints when the job is done.
        plan: ``plan(config) -> {"lines": [...]}``: what ``--dry-run`` prints, starting nothing.
        usage: the usage line of ``--help``.
    """

    name: str
    summary: str
    config: type[Section]
    run: Callable[[Any], Any]
    lines: Callable[[Any], list[str]]
    plan: Callable[[Any], dict[str, Any]]
    usage: str = "%(prog)s [--config FILE] [options]"


_REGISTRY: Registry[JobSpec] = Registry("command")
register, unregister, get, specs = _REGISTRY.register, _REGISTRY.unregister, _REGISTRY.get, _REGISTRY.specs


def _builtin(name: str, summary: str, config: type[Section], module: str, run: str) -> JobSpec:
    """A built-in job: ``acoustic_env.jobs.<module>``'s ``run`` and ``summary_lines``, ``jobs/plan.py``'s plan."""
    module = f"acoustic_env.jobs.{module}"
    return JobSpec(name, summary, config, lazy(module, run), lazy(module, "summary_lines"),
                   lazy("acoustic_env.jobs.plan", f"plan_{name}"))


for _spec in (
        _builtin("extract", "extract features from a clip list into Parquet", ExtractConfig, "extract", "extract"),
        _builtin("train", "train the environment classifier (PCA + MLP under Ray Tune) with baselines and a report",
                 TrainConfig, "train.job", "train"),
        _builtin("audit", "rescore the labels out of fold, flag likely wrong ones, write a review page", AuditConfig,
                 "audit.job", "run_audit"),
        _builtin("annotate", "label a new clip list with a trained model (extracts only new clips)", AnnotateConfig,
                 "annotate", "annotate")):
    register(_spec)
