"""A job to a cluster's job server through Ray's job submission client (what ``ray job submit`` calls)."""

from __future__ import annotations

import time
from typing import Any

#: the states a submitted job does not leave
ENDED = ("SUCCEEDED", "FAILED", "STOPPED")


def submit_job(address: str, entrypoint: str, runtime_env: dict[str, Any], submission_id: str, *,
               wait: bool, poll_s: float = 0.5) -> tuple[str, str]:
    """Submit ``entrypoint`` with ``runtime_env`` (a local ``working_dir`` is uploaded, as ``ray job submit`` does).

    Returns:
        The job's status (its last, when ``wait``) and, for a job that ended unsuccessfully, the end of its log.
    """
    from ray.job_submission import JobSubmissionClient

    client = JobSubmissionClient(address)
    client.submit_job(entrypoint=entrypoint, runtime_env=runtime_env, submission_id=submission_id)
    status = str(client.get_job_status(submission_id).value)
    while wait and status not in ENDED:
        time.sleep(poll_s)
        status = str(client.get_job_status(submission_id).value)
    log = client.get_job_logs(submission_id)[-3000:] if status in ("FAILED", "STOPPED") else ""
    return status, log
