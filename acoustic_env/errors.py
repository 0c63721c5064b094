"""Exceptions shared across modules, kept free of heavy imports.

``ClipError`` is what a stage raises for a clip it cannot process: the pipeline
turns it into an errors/ row (stage, error_type, message) instead of failing the
batch; anything else a stage raises is caught too and recorded as
``error_type = "internal"``. ``WeightsError`` stops a job before it starts;
``AuditError`` stops the audit on data it cannot audit; ``OutputWriteError`` stops an
extract whose output refuses a part (the clips are fine, the store is not).
"""

from __future__ import annotations


class ClipError(Exception):
    """A clip failed a stage for a reason worth telling the user."""

    def __init__(self, stage: str, error_type: str, message: str):
        super().__init__(f"{stage}/{error_type}: {message}")
        self.stage = stage
        self.error_type = error_type
        self.message = message


class ConfigError(ValueError):
    """A configuration value, or a file a user handed the project, is invalid; the message names the field."""


class WeightsError(Exception):
    """Pretrained weights are missing, truncated, corrupt or not the expected release."""


class AuditError(ValueError):
    """The audit's input data cannot be audited (no feature columns, too few labelled clips, bad verdicts)."""


class DamagedFileError(ValueError):
    """A stored file (a Parquet part) cannot be parsed; the message names it. Extract quarantines such parts."""


class OutputWriteError(Exception):
    """A Parquet part could not be written to the output, even after the storage's own retries.

    The job stops: every later part would meet the same store. Nothing is lost: parts
    already written stay, and the next run redoes the clips whose parts are missing.
    The message is one line that starts ``output: cannot write to <output>: <reason>``,
    so the user sees which setting to check, whatever process the write failed in.
    """

    @classmethod
    def found_in(cls, exc: BaseException) -> OutputWriteError | None:
        """This error as one line, if ``exc`` is one or wraps one (Ray's task errors do), else None.

        Ray re-raises a task's exception on the driver as ``RayTaskError(<its type>)``, an
        instance of both, whose text is the worker's whole traceback; the original is kept
        in ``.cause``. Python's own chain (``__cause__``) is followed too.
        """
        seen: list[BaseException] = []
        e: BaseException | None = exc
        while e is not None and not any(e is s for s in seen):
            seen.append(e)
            if isinstance(e, cls):
                inner = getattr(e, "cause", None)
                source = inner if isinstance(inner, cls) else e
                return cls((str(source).strip().splitlines() or [""])[0])
            e = getattr(e, "cause", None) or e.__cause__
        return None


class MissingExtraError(ValueError):
    """A path needs an optional package that is not installed (``gs://`` without gcsfs); the message names the extra."""
