"""The local HTTP layer: the audit's review server and the trained model's service (``acoustic-env serve``).

Both take requests from a page in the user's browser and answer from the jobs' own functions (predict, windows,
the review queue); neither runs a job of its own. Above :mod:`acoustic_env.jobs`, below the API and the CLI.
"""
