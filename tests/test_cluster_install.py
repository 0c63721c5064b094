"""cluster/install.sh, the install the Dockerfile and `ray up` run, in a fresh virtual environment,
from the files `ray up` copies to a node.

Offline and fast: the new environment sees the project environment's packages through a
``.pth`` file (as a Ray image's Python sees its own), pip may not reach an index
(``PIP_NO_INDEX``), so the script must find every pinned dependency installed and build the
project from the checkout. Then the jobs run from the new environment as a submitted job runs them
(``python -m acoustic_env.cli <job>``), in the node's copy of the files `ray up` copied, with the node's copy of
the package source moved away first, so that what runs is the installed package, not a checkout (``-m`` puts the
working directory first on ``sys.path``: run beside the source, it would import the checkout).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import yaml
from conftest import REPO, tone_clip

pytestmark = pytest.mark.slow  # creating the environment and building the project: ~30 s


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, dict[str, str], Path]:
    venv = tmp_path_factory.mktemp("fresh") / "venv"
    # the base interpreter, not the project's environment; no pip of its own (it would shadow the project's)
    subprocess.run([sys._base_executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next(venv.glob("lib/python3*/site-packages"))
    (site / "project-env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(PATH=f"{venv / 'bin'}:/usr/bin:/bin", PYTHON=str(venv / "bin" / "python"), PIP_NO_INDEX="1",
               PIP_NO_BUILD_ISOLATION="0")  # "0" turns isolation off: the build uses the setuptools it finds
    # from what `ray up` copies to a node (aws.yaml's file_mounts), not the whole checkout
    node = venv.parent / "acoustic-env"
    node.mkdir()
    for local in yaml.safe_load((REPO / "cluster" / "aws.yaml").read_text())["file_mounts"].values():
        if local.startswith("~"):
            continue  # the operator's Ray token (~/.ray/auth_token), not part of the install
        source = REPO / local
        copy = shutil.copytree if source.is_dir() else shutil.copy2
        copy(source, node / local, **({"ignore": shutil.ignore_patterns("__pycache__")} if source.is_dir() else {}))
    out = subprocess.run(["bash", str(node / "cluster" / "install.sh"), "cpu"], env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    assert "acoustic-env installed (cpu)" in out.stdout
    # the installed package is what the jobs may use from here on: not the node's source, not the checkout
    (node / "acoustic_env").rename(node / "acoustic_env.source")
    env["HOME"] = str(venv.parent / "home")  # a local Ray instance writes its token under ~/.ray
    return venv, env, node


def test_installed_into_the_fresh_environment(installed):
    venv, env, _ = installed
    assert list(venv.glob("lib/python3*/site-packages/acoustic_env/jobs/annotate.py"))
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import acoustic_env; print(acoustic_env.__file__)"],
                           env=env, cwd="/", capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(venv)), where


@pytest.mark.parametrize("job", ["extract", "train", "audit", "annotate"])
def test_job_entry_points_run(installed, job):
    venv, env, node = installed
    out = subprocess.run([str(venv / "bin" / "python"), "-m", "acoustic_env.cli", job, "--help"], env=env,
                         cwd=node, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "--output" in out.stdout, out.stderr[-2000:]


def test_an_extract_job_runs_from_the_installed_package(installed, tmp_path):
    """A real job, small: ``python -m acoustic_env.cli extract`` (what a submitted job runs) on two clips, on a local Ray
    instance of the new environment."""
    venv, env, node = installed
    (tmp_path / "audio").mkdir()
    tone_clip(tmp_path / "audio" / "a.wav")
    tone_clip(tmp_path / "audio" / "b.wav", freq=880.0)
    out = subprocess.run([str(venv / "bin" / "python"), "-m", "acoustic_env.cli", "extract", "--manifest",
                          str(tmp_path / "audio"), "--output", str(tmp_path / "out"), "--no-progress",
                          "--in-process-max", "0"],  # on Ray: its workers import the installed package
                         env=env, cwd=node, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    import pyarrow.parquet as pq

    ids = [i for p in (tmp_path / "out" / "features").glob("*.parquet") for i in pq.read_table(p)["clip_id"].to_pylist()]
    assert sorted(ids) == ["a", "b"], ids


def test_dry_run_from_the_installed_command(installed, tmp_path):
    venv, env, _ = installed
    (tmp_path / "audio").mkdir()
    tone_clip(tmp_path / "audio" / "a.wav")
    tone_clip(tmp_path / "audio" / "b.wav", freq=880.0)
    out = subprocess.run([str(venv / "bin" / "acoustic-env"), "extract", "--manifest", str(tmp_path / "audio"),
                          "--output", str(tmp_path / "out"), "--dry-run"], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "2 clips" in out.stdout and "2 to do" in out.stdout, out.stdout
    assert not (tmp_path / "out").exists()


def test_install_fails_loudly(tmp_path):
    """A wrong variant, or a pip that cannot install, ends the script with a non-zero status."""
    script = REPO / "cluster" / "install.sh"
    bad = subprocess.run(["bash", str(script), "tpu"], capture_output=True, text=True)
    assert bad.returncode == 2 and "cpu or gpu" in bad.stderr
    broken = tmp_path / "python"
    broken.write_text("#!/bin/sh\necho 'pip: cannot install' >&2\nexit 1\n")
    broken.chmod(0o755)
    out = subprocess.run(["bash", str(script), "gpu"], env={**os.environ, "PYTHON": str(broken)},
                         capture_output=True, text=True)
    assert out.returncode == 1 and "installed" not in out.stdout
    text = script.read_text()
    assert "set -euo pipefail" in text and "|| true" not in text
