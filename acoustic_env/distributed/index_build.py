"""The vector index of a large table built on Ray (``acoustic-env index --shards N``).

One process builds the USearch graphs of a million 1,024-wide rows in 516 CPU-s on two cores; a
cluster builds it in shards, side by side. ``learn.vector_index.build`` cuts the table's parts into
``shards`` runs and maps two steps over them: each run's moments (summed into the one search space,
as the in-process build fits it), then each run's graphs over its rows keyed by table row (of at most
``vector_index.GRAPH_ROWS`` rows each). Here each call is a Ray task (``fanout.map_tasks``); the graphs
come back as bytes and are written as one file under one digest, which ``search`` reads as any index.
"""

from __future__ import annotations

from collections.abc import Sequence

from acoustic_env.distributed.fanout import map_tasks
from acoustic_env.learn.vector_index import Built, build
from acoustic_env.table import TableInfo


def build_on_ray(table: TableInfo, embedder: str, columns: Sequence[str], weights: str, precision: str,
                 rebuild: bool, shards: int) -> Built:
    """:func:`learn.vector_index.build` with each run of parts' moments and graph a Ray task (a local Ray instance
    unless the command joined one)."""
    return build(table, embedder, columns, weights, precision, rebuild, shards=shards, mapper=map_tasks)
