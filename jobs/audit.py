"""Entry point for `ray job submit ... -- python jobs/audit.py --features ... --output ...`.

Takes the same options as `acoustic-env audit`; with `--parallel ray` the folds
run as tasks on the cluster that submitted it (RAY_ADDRESS is set by the job server).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the working_dir holds the package

from acoustic_env.cli import run  # noqa: E402

if __name__ == "__main__":
    run(["audit", *sys.argv[1:]])  # exits
