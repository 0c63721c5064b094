"""The config of ``acoustic-env submit``: a job of the repository's ``jobs/`` folder sent to a cluster's job server.

Its own module: no other command reads a job definition, and the fields say nothing of audio or models.
"""

from __future__ import annotations

from dataclasses import dataclass

from acoustic_env.config.schema import Section, option


@dataclass(frozen=True)
class SubmitConfig(Section):
    """A job of the ``jobs/`` folder submitted to a Ray cluster by name (``acoustic-env submit``)."""

    job: str = option(positional=True, help="the job: a folder of jobs/ with a job.yaml (extract, train, audit, "
                                            "reannotate)")
    address: str = option("http://127.0.0.1:8265", help="the cluster's job server (the dashboard's address)")
    options: str = option("", help="more options of the job's command, after its --config: each overrides the "
                                   "config file's key (the job's own flags, as one quoted string)")
    wait: bool = option(True, help="wait until the job has ended; a job that did not succeed fails the command")
    jobs: str = option("jobs", help="the folder of job definitions, from the working directory: the repository's "
                                    "root, which a job's runtime environment uploads")
