"""The configs of a person's review of an audit: ``audit-review`` (the review page rebuilt or served) and
``audit-estimate`` (the label accuracy from the verdicts).

Each field is declared once, here; a field the audit declares already (``review_top``, ``random_sample``) is taken
from it with ``like``.
"""

from __future__ import annotations

from dataclasses import dataclass

from acoustic_env.config.common import _seed
from acoustic_env.config.learning import AuditConfig
from acoustic_env.config.schema import Section, like, option


@dataclass(frozen=True)
class AuditReviewConfig(Section):
    """An audit's review page rebuilt or served locally (``acoustic-env audit-review``)."""

    audit: str = option(role="input", help="the audit's output directory or URI")
    serve: bool = option(False, help="serve the page on 127.0.0.1 and save verdicts it posts")
    port: int = option(8765, ge=0, le=65535, help="port for --serve (0 picks a free one)")
    store: str | None = option(None, nargs="?", const="",
                               help="with --serve, append each verdict to the label store too, as it is clicked (no "
                                    "URI: the store beside the audited feature table); `labels apply` then writes "
                                    "the corrected list")
    reviewer: str | None = option(None, help="with --store, the reviewer credited when the page names nobody "
                                             "(default: the account running the server)")
    review_top: int | None = like(AuditConfig, "review_top", default=None,
                                  help="rebuild the page with this many suspects (and the audit's default random "
                                       "sample unless --random-sample says)")
    random_sample: int | None = like(AuditConfig, "random_sample", default=None,
                                     help="rebuild the page with this many randomly drawn clips (and the audit's "
                                          "default suspects unless --review-top says)")
    seed: int = _seed("seed of the random sample when the page is rebuilt (--review-top, --random-sample)")



@dataclass(frozen=True)
class AuditEstimateConfig(Section):
    """The label accuracy per class, with an interval, from review verdicts (``acoustic-env audit-estimate``)."""

    verdicts: tuple[str, ...] = option(nargs="+", nonempty=True, role="input",
                                       help="verdict file(s): JSON or CSV from the review page")
    sample: str | None = option(None, choices=("random", "suspects"),
                                help="random (unbiased accuracy; the default when present) or suspects (precision "
                                     "of the flags)")
    method: str = option("wilson", choices=("wilson", "bootstrap"), help="the interval's method")
    output: str | None = option(None, role="output_file",
                                help="write the estimate JSON here (the training report reads it)")
    audit: str | None = option(None, role="input",
                               help="the audit reviewed: verdicts for clips not on its review page are left out "
                                    "(default: the review page beside the first verdict file, when there is one)")
    labels: str | None = option(None, role="input",
                                help="a corrected label list (CSV of `labels apply`, or a label store): estimate its "
                                     "accuracy instead of the table's: the wrong labels the random sample implies, "
                                     "less those the list fixed (needs --audit)")
