#!/usr/bin/env bash
# The one install of acoustic-env on a node: the Dockerfile runs it, and so do the `ray up`
# configs' setup commands (aws.yaml, gcp.yaml); runtime_env.yaml has Ray's pip install what
# `install.sh cpu` installs (torch-cpu.txt, constraints.txt, this checkout) into a job's environment.
#
#   cluster/install.sh cpu|gpu [EXTRAS]      e.g.  cluster/install.sh gpu gcs
#
# cpu: torch's CPU build (torch-cpu.txt: PyTorch's CPU wheel index; no CUDA libraries in the image).
# gpu: torch's default Linux build (CUDA). EXTRAS: the package's optional extras (gcs, azure).
# Any failure stops the script with a non-zero status: a node never comes up half-installed.
set -euo pipefail

variant="${1:?usage: cluster/install.sh cpu|gpu [EXTRAS]}"
extras="${2:-}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python}"
pip=("$python" -m pip install --disable-pip-version-check -c "$root/constraints.txt")

case "$variant" in
  cpu) "${pip[@]}" -r "$root/cluster/torch-cpu.txt" ;;
  gpu) ;;
  *) echo "install.sh: variant must be cpu or gpu, not '$variant'" >&2; exit 2 ;;
esac
"${pip[@]}" "$root${extras:+[$extras]}"
# the installed jobs import (from outside the checkout): a missing dependency fails here, not in the first job;
# and librosa's numba kernels are compiled into the image's cache once (13 CPU-s), not in each Ray worker of a node
(cd / && "$python" -c "import acoustic_env.jobs.extract, acoustic_env.jobs.train.job, acoustic_env.jobs.audit.job, acoustic_env.jobs.annotate, librosa.core.pitch")
echo "install.sh: acoustic-env installed ($variant${extras:+, extras: $extras})"
