"""Entry point for `ray job submit ... -- python jobs/annotate.py --manifest ... --model ... --features ... --output ...`.

Takes the same options as `acoustic-env annotate`; safe to run on a schedule.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the working_dir holds the package

from acoustic_env.cli import run  # noqa: E402

if __name__ == "__main__":
    run(["annotate", *sys.argv[1:]])  # exits
