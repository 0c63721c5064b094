"""The config of ``acoustic-env export``: a feature table written as one Parquet or CSV file.

Each field is declared once, here, with its help, choices and path role; the flags (``config.flags``), the path
checks (``jobs/preflight.py``) and ``ae.run("export", ...)`` derive from it. The embedder and its signals are
search's fields (``like``).
"""

from __future__ import annotations

from dataclasses import dataclass

from acoustic_env.config.schema import Section, like, option
from acoustic_env.config.search import SearchConfig


@dataclass(frozen=True)
class ExportConfig(Section):
    """A feature table written as one Parquet or CSV file, one named column per value (``acoustic-env export``)."""

    features: str = option(positional=True, role="table",
                           help="an extract output, its features/ directory, or a Parquet file")
    output: str = option(role="output_file", help="a .parquet or .csv file")
    wide: bool = option(False, help="one column per feature value, named (indices_raw:ACI); without it, one list "
                                    "column per group (Parquet only: a .csv is always wide)")
    task: str | None = option(None, help="keep only the clips with a target of this task (default: every clip)")
    feature_groups: tuple[str, ...] = option((), help="groups or sources to export, e.g. indices,mps_fg (empty: all)")
    include_random_weights: bool = option(False, help="also export embedder columns computed with random weights")
    embeddings: bool = option(False, help="write one embedder's embeddings to share (a .parquet file): clip_id, uri, "
                                          "start_s, end_s, labels and the vectors, the embedder's name, version and "
                                          "weights in the file's metadata, and the table's search index beside it "
                                          "(docs/search.md)")
    embedder: str | None = like(SearchConfig, "embedder")
    signals: tuple[str, ...] = like(SearchConfig, "signals")
