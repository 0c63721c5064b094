"""The recognition service on Ray Serve: the only module that imports ``ray.serve``.

One deployment, :class:`Recognition`, is the HTTP ingress and the model at once: a
request's bytes are already in the replica that scores them, so nothing crosses the
object store. What a request may send and what it gets back is decided by the Ray-free
service object the caller passes in (``acoustic_env.web.serve_handler.Service``: built
once per replica from the config); Serve adds only

* replicas with fractional CPUs (0.5 by default, so that on a 2-CPU machine Serve's
  controller and HTTP proxy keep a core) and optionally GPUs;
* dynamic batching (``@serve.batch``) of the scoring step: up to ``batch_max_size``
  decoded clips go through each embedder and the model together, which pays off where
  the embedders run on a GPU; decoding stays per request, so a bad file fails alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from typing import Any

from ray import serve

from acoustic_env.config import ServeConfig
from acoustic_env.distributed.session import log_file, route_ray_logs, start_ray

APP = "acoustic-env"
log = logging.getLogger(__name__)


@serve.deployment
class Recognition:
    """A Serve replica hosting one service object; every HTTP request goes to its ``handle``."""

    def __init__(self, make_service: Callable[[dict[str, Any], str], Any], config: dict[str, Any],
                 device: str) -> None:
        self.service = make_service(config, device)
        if config["batch_max_size"] > 1:
            self._score_batch.set_max_batch_size(config["batch_max_size"])
            self._score_batch.set_batch_wait_timeout_s(config["batch_wait_s"])
            self.service.scorer = self._score_one

    async def __call__(self, request: Any) -> Any:
        return await self.service.handle(request)

    async def _score_one(self, clip: Any, top_tags: int) -> dict[str, Any]:
        return await self._score_batch((clip, top_tags))

    @serve.batch(max_batch_size=1, batch_wait_timeout_s=0.0)
    async def _score_batch(self, items: list[tuple[Any, int]]) -> list[dict[str, Any]]:
        """Decoded clips of concurrent requests scored together (the batch limits are set per replica)."""
        clips, tops = zip(*items)
        return await asyncio.to_thread(self.service.recognizer.score, list(clips), list(tops))


def free_port(host: str) -> int:
    """A port nothing listens on now (for ``--port 0``: Serve's proxy needs a number before it starts)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def start(cfg: ServeConfig, make_service: Callable[[dict[str, Any], str], Any]) -> str:
    """Start Ray (or join ``ray_address``), Serve's HTTP proxy on host:port, and the app; return its URL.

    ``make_service(config dict, device)`` builds the request handler in each replica.
    Returns once every replica has loaded the model (``serve.run`` waits for them).
    """
    resources = start_ray(cfg.ray_address)
    port = cfg.port or free_port(cfg.host)
    logs = log_file()
    logging_config = {"log_level": "INFO", "logs_dir": str(logs.parent / "serve")} if logs else {"log_level": "WARNING"}
    serve.start(http_options={"host": cfg.host, "port": port}, logging_config=logging_config)
    route_ray_logs()  # ray.serve adds console handlers when it is first used
    if cfg.replica_gpus > resources.get("GPU", 0):
        log.warning("replica_gpus = %s but the cluster has %s GPU(s): the replicas wait for one",
                    cfg.replica_gpus, resources.get("GPU", 0))
    app = Recognition.options(num_replicas=cfg.replicas,
                              ray_actor_options={"num_cpus": cfg.replica_cpus, "num_gpus": cfg.replica_gpus},
                              max_ongoing_requests=max(8, 2 * cfg.batch_max_size),
                              logging_config=logging_config,
                              ).bind(make_service, cfg.to_dict(), "cuda" if cfg.replica_gpus > 0 else "cpu")
    serve.run(app, name=APP, route_prefix="/", logging_config=logging_config)
    host = f"[{cfg.host}]" if ":" in cfg.host else cfg.host
    return f"http://{host}:{port}/"


def stop() -> None:
    """Shut Serve down (replicas, proxy, controller), then this process's Ray.

    With a quiet console, what Ray prints meanwhile goes to the log file: killing the
    controller races its own graceful-shutdown task, and the raylet reports that retry
    through the driver's stdout ("Task ServeController.graceful_shutdown failed"), harmless.
    """
    import ray

    logs = log_file()
    with contextlib.ExitStack() as stack:
        if logs is not None:
            stream = stack.enter_context(logs.open("a", encoding="utf-8"))
            stack.enter_context(contextlib.redirect_stdout(stream))
            stack.enter_context(contextlib.redirect_stderr(stream))
        try:
            serve.shutdown()
        finally:
            ray.shutdown()
