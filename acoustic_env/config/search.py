"""The search job's config: a feature table searched by example (``acoustic-env search``), and its index
(``acoustic-env index``)."""

from __future__ import annotations

from dataclasses import dataclass

from acoustic_env.config.common import EMBEDDERS, SIGNALS, _absolute, _location
from acoustic_env.config.schema import Section, like, option


@dataclass(frozen=True)
class SearchConfig(Section):
    """Search a feature table by example (``acoustic-env search``): the clips whose embeddings are nearest.

    ``signals`` empty compares the raw signal's embedding when the table has it (the clip
    as heard), else every signal's the table has (``--embed-signals fg,bg``); several
    signals are compared by their mean cosine similarity, as ``duplicates`` compares
    several columns.
    """

    features: str = _location(role="table", help="feature table: an extract output, its features/ directory, or a "
                                                 "Parquet file")
    example: str = option(help="a clip id of the table, or an audio file (path or URL) that is not in it: embedded "
                               "first with the settings the table was extracted with")
    embedder: str | None = option(None, choices=EMBEDDERS,
                                  help="the embedder whose embeddings are compared (default: the table's first "
                                       "embedder, one with pretrained weights before random ones)")
    k: int = option(20, ge=1, help="neighbours listed after the example")
    signals: tuple[str, ...] = option((), choices=SIGNALS,
                                      help="signals whose embeddings are compared (empty: raw when the table has "
                                           "it, else every signal it has)")
    include_random_weights: bool = option(False, help="also search embedder columns computed with random weights "
                                                      "(left out by default, as train and audit leave them out)")
    save: str | None = option(None, parse=_absolute, check=(lambda v: v.endswith((".csv", ".parquet")),
                                                            "must be a .csv or .parquet file"),
                              help="also write the clips found to this .csv or .parquet file", role="output_file")
    page: str | None = _location(None, help="also write a page with a player and a spectrogram per clip into this "
                                            "directory (index.html, assets/; opens from disk)", role="output")
    weights_cache: str | None = _location(None, help="embedder checkpoint cache for an example given as audio "
                                                  "(default: $ACOUSTIC_ENV_MODEL_CACHE, else "
                                                  "~/.cache/acoustic-env/models)", role="cache")
    device: str = option("cpu", choices=("cpu", "cuda"), help="embedder device for an example given as audio")
    exact: bool = option(False, help="compare every clip with the example, as without an index; with an index, "
                                     "also ask it and say how many of the exact neighbours it found, and each "
                                     "search's time")


#: How the index stores its rows: f16 and i8 cost a half and a quarter of f32's memory (their recall against exact
#: search: benchmarks/RESULTS.md, "Vector index").
INDEX_PRECISIONS = ("f32", "f16", "i8")


@dataclass(frozen=True)
class IndexConfig(Section):
    """The approximate nearest-neighbour index that ``search`` answers from (``acoustic-env index``): built,
    extended with the parts a later extract added, or built again when parts it covers were replaced."""

    features: str = like(SearchConfig, "features")
    embedder: str | None = like(SearchConfig, "embedder")
    signals: tuple[str, ...] = like(SearchConfig, "signals")
    include_random_weights: bool = like(SearchConfig, "include_random_weights")
    precision: str = option("f16", choices=INDEX_PRECISIONS,
                            help="how the index stores each value: f16 (half f32's memory, the same recall), i8 (a "
                                 "quarter; recall@10 0.75 against f16's 0.97 on 1,024-wide embeddings), or f32")
    rebuild: bool = option(False, help="build the index again from every part even when it could be extended")
    shards: int = option(1, ge=1, help="build the index in this many shards, runs of the table's parts, each a Ray "
                                       "task (a table of millions on a cluster); a query walks every shard")
