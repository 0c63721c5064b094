"""``python -m acoustic_env.cli``: the ``acoustic-env`` command where the console script is not installed."""

import sys

from acoustic_env.cli import main

sys.exit(main())
