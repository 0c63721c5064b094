"""Starting Ray: the one place a job joins a cluster or starts a local instance, and how loud Ray may be.

Every job (extract, train, audit) calls ``start_ray`` before it hands Ray any
work, so the three behave alike:

* ``address`` (``--ray-address``), else ``RAY_ADDRESS`` (set by ``ray job
  submit``), names a cluster to join. Its workers run on other machines, so
  their output is forwarded to the driver: it is the only place a user sees it.
* Otherwise a fresh local instance starts, quietly: no dashboard, no worker
  output on the console (errors still reach the driver as exceptions), Ray's
  own log lines only from WARNING up, and token authentication stated
  explicitly (Ray's default for a new local instance, which it otherwise
  announces with a warning on every run).
* ``progress`` switches Ray Data's progress bars and its per-dataset log
  lines ("Starting execution of Dataset ...") on the console together.
"""

from __future__ import annotations

import logging
import os


def start_ray(address: str | None = None, progress: bool = False) -> dict[str, float]:
    """Join or start Ray (a no-op when this process already has); return the cluster's resources."""
    import ray

    if not ray.is_initialized():
        address = address or os.environ.get("RAY_ADDRESS")
        if address:
            ray.init(address=address, log_to_driver=True)
        else:
            os.environ.setdefault("RAY_AUTH_MODE", "token")
            ray.init(address="local", log_to_driver=False, include_dashboard=False, logging_level=logging.WARNING)
    _ray_data_output(progress)
    return ray.cluster_resources()


def _ray_data_output(progress: bool) -> None:
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = progress
    ctx.verbose_progress = False
    # Ray Data logs to a file in the session directory and to the console; only the console is turned down.
    for handler in logging.getLogger("ray.data").handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setLevel(logging.INFO if progress else logging.ERROR)
