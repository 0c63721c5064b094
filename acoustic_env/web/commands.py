"""The commands that serve a page until stopped, ``serve`` and ``audit-review``: their entries in the job catalogue
(``jobs/catalog.py``), declared here, on the floor of the servers they start. ``cli`` and ``api`` call :func:`register`,
so ``acoustic-env serve`` and ``ae.run("serve", ...)`` both find them."""

from __future__ import annotations

import threading

from acoustic_env.config import AuditConfig, ServeConfig
from acoustic_env.config.review import AuditReviewConfig
from acoustic_env.jobs import catalog
from acoustic_env.registry import lazy


def review(cfg: AuditReviewConfig) -> str | None:
    """The review page rebuilt (``review_top``, ``random_sample``) and/or served until a stop signal (``serve``),
    each step said as it happens; the rebuilt page's URI, or None."""
    from acoustic_env.jobs.audit.job import rebuild_review
    from acoustic_env.web.stop_signals import StopSignals
    from acoustic_env.pages.review import verdicts_uri
    from acoustic_env.storage import redact
    from acoustic_env.web.review_server import make_server

    page = None
    if cfg.review_top is not None or cfg.random_sample is not None:
        top = AuditConfig.review_top if cfg.review_top is None else cfg.review_top
        sample = AuditConfig.random_sample if cfg.random_sample is None else cfg.random_sample
        page = rebuild_review(cfg.audit, top, sample, cfg.seed)
        print(f"review page: {page}")
    if cfg.serve:
        with StopSignals() as stop:  # Ctrl-C or kill: the server stops and releases the audit's lock
            server = make_server(cfg.audit, cfg.port, cfg.store, cfg.reviewer)
            sink = server.store.sink
            also = f" and appended to the label store {redact(sink.store)}" if sink else ""
            print(f"serving the review page at http://127.0.0.1:{server.server_address[1]}/ "
                  f"(verdicts are saved to {redact(verdicts_uri(cfg.audit))}{also}); Ctrl-C stops", flush=True)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            try:
                stop.wait()
            finally:
                server.shutdown()
                server.server_close()
    return page


def _nothing_more(_: object) -> list[str]:
    """A serving command says each step as it happens: nothing is left to say when it stops."""
    return []


#: serve and audit-review, added to the catalogue by :func:`register`.
SPECS = (
        catalog.JobSpec("audit-review", "serve an audit's review page locally (verdicts saved as you click)",
                        AuditReviewConfig, review, _nothing_more, usage="%(prog)s --audit DIR [--serve] [options]",
                        console="never"),
        catalog.JobSpec("serve", "serve a trained model over HTTP on Ray Serve (JSON API and a browser page)",
                        ServeConfig, lazy("acoustic_env.web.serve", "serve"), _nothing_more,
                        usage="%(prog)s --model MODEL [options]", check=lazy("acoustic_env.web.serve", "check")))


def register() -> None:
    """Add :data:`SPECS` to the catalogue, once (the command line and the API both call this)."""
    known = {spec.name for spec in catalog.specs()}
    for spec in SPECS:
        if spec.name not in known:
            catalog.register(spec)
