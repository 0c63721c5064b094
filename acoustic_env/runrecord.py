"""runs/<run_id>.json: what a run did, with what, and how long it took.

Written when the run starts (status "running") and rewritten when it ends, so
an interrupted run leaves a record of having started. It holds the config as
given (no credentials ever reach the config: they come from the environment),
package versions, the git revision, weight checksums (or "random"), counts
and wall/CPU time per stage.
"""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = ("acoustic-env", "ray", "pyarrow", "numpy", "scipy", "librosa", "soundfile", "soxr", "noisereduce",
            "scikit-maad", "soundsig", "torch", "fsspec", "s3fs")


def package_versions(extra: tuple[str, ...] = ()) -> dict[str, str | None]:
    """Installed versions of the core packages plus a job's own (``extra``); None when absent."""
    out: dict[str, str | None] = {}
    for name in PACKAGES + extra:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    out["python"] = platform.python_version()
    return out


def git_revision() -> str | None:
    """The checkout's commit (with '+dirty' if modified), or None outside a git checkout."""
    here = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        if rev.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return rev.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def base_record(run_id: str, job: str, config: dict[str, Any]) -> dict[str, Any]:
    return {"run_id": run_id, "job": job, "status": "running", "config": config,
            "versions": package_versions(), "git_revision": git_revision(), "host": platform.node()}
