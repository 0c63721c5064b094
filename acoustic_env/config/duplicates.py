"""The config of ``acoustic-env duplicates``: the near-duplicate clips of a feature table, one vector per clip or
chunk by chunk (``jobs/duplicates.py``).

Each field is declared once, here; the flags, ``--config FILE``, the path checks and ``ae.run("duplicates", ...)``
derive from it.
"""

from __future__ import annotations

from dataclasses import dataclass

from acoustic_env.config.schema import Section, option
from acoustic_env.errors import ConfigError


@dataclass(frozen=True)
class DuplicatesConfig(Section):
    """The near-duplicate pairs of a feature table's clips, by nearest neighbours (``acoustic-env duplicates``)."""

    features: str = option(positional=True, role="table",
                           help="an extract output, its features/ directory or a Parquet file")
    output: str = option(role="output_file", help="a .parquet or .csv file of the pairs (clip_a, clip_b, distance, "
                                                  "group_a, group_b; with --chunks also share)")
    column: tuple[str, ...] = option((), help="vector column(s), e.g. vggish or indices_raw,mps_raw")
    chunks: bool = option(False, help="compare the clips chunk by chunk instead (1-s MFCC chunks of the table's "
                                      "log-mel images, or of the audio when it has none): finds time-shifted and "
                                      "partial copies too")
    threshold: float | None = option(None, ge=0, lt=2,
                                     help="largest mean cosine distance of a near-duplicate pair (default: "
                                          "acoustic_env.learn.duplicates.DEFAULT_THRESHOLD, 0.05), or with --chunks "
                                          "of two matching chunks (acoustic_env.learn.duplicate_chunks."
                                          "CHUNK_THRESHOLD, 0.015); see docs/duplicates.md")
    min_share: float | None = option(None, gt=0, le=1, help="with --chunks: the share of the shorter clip's chunks "
                                                            "that must match (default 0.5)")

    def cross_check(self) -> None:
        if self.chunks == bool(self.column):
            raise ConfigError("column: compares the vector columns named; --chunks compares MFCC chunks of each clip "
                              "instead: give one of the two" if self.chunks else "column: required (or --chunks)")
        if self.min_share is not None and not self.chunks:
            raise ConfigError("min_share: applies to --chunks only")
