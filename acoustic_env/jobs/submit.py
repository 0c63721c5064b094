"""``acoustic-env submit NAME``: a job of the repository's ``jobs/`` folder to a Ray cluster's job server.

Each folder of ``jobs/`` defines one job a cluster runs (extract, train, audit, the scheduled re-annotation): its
``job.yaml`` holds the entry point (``python -m acoustic_env.cli <command> --config jobs/<name>/config.yaml``) and
the runtime environment file, and its ``config.yaml`` the job's options. The documented ``ray job submit``, this
command and the KubeRay manifests read those files; the jobs' code stays in the package.
"""

from __future__ import annotations

import shlex
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from acoustic_env.bounded import read_yaml
from acoustic_env.config.cluster import SubmitConfig
from acoustic_env.config.schema import ConfigError
from acoustic_env.storage import redact

#: the keys of a job.yaml
KEYS = ("entrypoint", "runtime_env")


@dataclass(frozen=True)
class JobDefinition:
    """One job of ``jobs/``: its name (the folder), its entry point and its runtime environment's file."""

    name: str
    entrypoint: str
    runtime_env: str


@dataclass(frozen=True)
class Submitted:
    """A submitted job: its submission id, the status it was left in, and the end of its log when it failed."""

    job: str
    submission_id: str
    entrypoint: str
    status: str
    log: str = ""


def definition(folder: str, name: str) -> JobDefinition:
    """The job ``name`` of ``folder``; ConfigError naming the jobs there when it has none, or a key it lacks."""
    root = Path(folder)
    names = sorted(p.parent.name for p in root.glob("*/job.yaml"))
    if name not in names:
        raise ConfigError(f"job: no jobs/ definition {name!r} in {root.resolve()} (there: {', '.join(names) or 'none'})")
    path = root / name / "job.yaml"
    data = read_yaml(str(path), "job") or {}
    missing = [k for k in KEYS if not isinstance(data.get(k), str) or not data[k].strip()]
    if missing or set(data) - set(KEYS):
        raise ConfigError(f"job: {path} must hold exactly {', '.join(KEYS)}, got {', '.join(sorted(data)) or 'nothing'}")
    return JobDefinition(name, " ".join(data["entrypoint"].split()), data["runtime_env"])


def entrypoint(job: JobDefinition, options: str) -> str:
    """The job's entry point with ``options`` after it (a flag overrides its config file's key)."""
    return " ".join([job.entrypoint, *map(shlex.quote, shlex.split(options))])


def runtime_env(job: JobDefinition) -> dict[str, Any]:
    """The job's runtime environment, read from its file (relative to the working directory)."""
    path = Path(job.runtime_env)
    if not path.is_file():
        raise ConfigError(f"job: {job.name}'s runtime_env {path} is not a file under {Path.cwd()}")
    return read_yaml(str(path), "job") or {}


def submit(cfg: SubmitConfig) -> Submitted:
    """Submit the job ``cfg.job``, and with ``cfg.wait`` wait for its end; a job that did not succeed raises."""
    from acoustic_env.distributed.submission import submit_job

    job = definition(cfg.jobs, cfg.job)
    command = entrypoint(job, cfg.options)
    submission_id = f"{job.name}-{uuid.uuid4().hex[:8]}"
    status, log = submit_job(cfg.address, command, runtime_env(job), submission_id, wait=cfg.wait)
    if status in ("FAILED", "STOPPED"):
        raise RuntimeError(redact(f"job {submission_id} ended {status}; the end of its log:\n{log}"))
    return Submitted(job.name, submission_id, command, status, log)


def summary_lines(result: Submitted) -> list[str]:
    """What ``acoustic-env submit`` prints."""
    return [f"submit: {result.job} as {result.submission_id}: {result.status}", redact(f"  {result.entrypoint}")]


def plan_submit(cfg: SubmitConfig) -> dict[str, list[str]]:
    """``--dry-run``: the entry point and runtime environment the job would be submitted with, nothing sent."""
    job = definition(cfg.jobs, cfg.job)
    runtime_env(job)
    return {"lines": [redact(f"submit {job.name} to {cfg.address}"),  # a URI's credentials are *** in every line
                      redact(f"  entrypoint: {entrypoint(job, cfg.options)}"), f"  runtime_env: {job.runtime_env}"]}
