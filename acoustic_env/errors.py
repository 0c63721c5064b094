"""Exceptions shared across modules, kept free of heavy imports.

``ClipError`` is what a stage raises for a clip it cannot process: the pipeline
turns it into an errors/ row (stage, error_type, message) instead of failing the
batch; anything else a stage raises is caught too and recorded as
``error_type = "internal"``. ``WeightsError`` stops a job before it starts;
``AuditError`` stops the audit on data it cannot audit.
"""

from __future__ import annotations


class ClipError(Exception):
    """A clip failed a stage for a reason worth telling the user."""

    def __init__(self, stage: str, error_type: str, message: str):
        super().__init__(f"{stage}/{error_type}: {message}")
        self.stage = stage
        self.error_type = error_type
        self.message = message


class WeightsError(Exception):
    """Pretrained weights are missing, truncated, corrupt or not the expected release."""


class AuditError(ValueError):
    """The audit's input data cannot be audited (no feature columns, too few labelled clips, bad verdicts)."""


class DamagedFileError(ValueError):
    """A stored file (a Parquet part) cannot be parsed; the message names it. Extract quarantines such parts."""
