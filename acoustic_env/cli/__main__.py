"""``python -m acoustic_env.cli``: the ``acoustic-env`` command where the console script is not installed."""

from acoustic_env.cli import run

run()
