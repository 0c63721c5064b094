"""``acoustic-env serve --model M``: the trained model as a live HTTP service on Ray Serve.

The job checks what it can before Ray starts (the model loads, the flags are valid:
one line and exit status 2 otherwise), starts the service
(:mod:`acoustic_env.distributed.serve`), prints its URL and waits. Ctrl-C, SIGTERM or SIGHUP
shuts Serve down (replicas, HTTP proxy, controller) and then Ray, so no actor or port
outlives the command. What a request may send and what it gets back is
:mod:`acoustic_env.web.serve_handler`.
"""

from __future__ import annotations

from collections.abc import Callable

from acoustic_env.config import ServeConfig
from acoustic_env.jobs.preflight import check_input
from acoustic_env.web.stop_signals import StopSignals


def check(cfg: ServeConfig) -> None:
    """Stop before Ray with one line when the model cannot be loaded (missing, not a model artifact)."""
    from acoustic_env.learn.artifact import load_model

    check_input(cfg.model, "model")
    load_model(cfg.model)


def serve(cfg: ServeConfig, on_ready: Callable[[str], None] = print) -> None:
    """Run the service until a stop signal (:mod:`acoustic_env.web.stop_signals`); ``on_ready`` gets the line with its URL."""
    check(cfg)
    from acoustic_env.distributed import serve as service
    from acoustic_env.web.serve_handler import Service

    with StopSignals() as stop:
        try:
            url = service.start(cfg, Service)
            stop.catch()  # again: Ray's core worker installs its own SIGTERM handler (it aborts the process)
            on_ready(f"serve: {url} (POST audio to {url}predict; the page is {url}); Ctrl-C stops")
            stop.wait()
        finally:
            service.stop()
        on_ready("serve: stopped")
