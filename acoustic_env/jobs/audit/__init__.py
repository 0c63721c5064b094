"""Label audit: out-of-fold rescoring, confident learning, a review page and a label-accuracy estimate.

``run_audit(from_dict(AuditConfig, {...}))`` (both from ``acoustic_env.config``) audits a feature table;
``estimate_accuracy(read_verdicts([...]))`` turns reviewed clips into an
accuracy estimate with an interval. The page is written by :mod:`acoustic_env.pages.review` and served by
:mod:`acoustic_env.web.review_server`.

Names are imported on first use, so importing this package does not pay for
scikit-learn and cleanlab.
"""

from importlib import import_module
from typing import Any

_EXPORTS = {
    "estimate_accuracy": "estimate", "read_verdicts": "estimate",
    "rebuild_review": "job", "run_audit": "job",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
