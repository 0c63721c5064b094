"""``acoustic-env export``: a feature table as one file that any tool reads by column name, or its embeddings to share.

The table itself keeps each feature group as one fixed-size list column, with the
names of its values in the schema metadata: compact, and what the jobs read. A person
with pandas, polars, DuckDB or a spreadsheet wants ``ACI`` as a column. ``--wide``
writes exactly that, through :meth:`acoustic_env.table.FeatureSet.to_arrow` (the same
reader and rules as every job: broken rows and random-weight columns left out).

``--embeddings`` writes what another tool needs of one embedder's vectors (:func:`export_embeddings`,
the layout in ``docs/search.md``): one Parquet file of ``clip_id``, ``uri``, ``start_s``, ``end_s``,
``labels`` and the vector column(s) named as in the table (``birdnet``, ``birdnet_fg``), with the
embedder's name, version and weights checksum under the schema metadata key ``acoustic-env.embeddings``;
the table's own metadata stays under ``acoustic_env``, so the file is a feature table too, and the
table's search index is copied beside it (``<file>.index/``) for ``search --features <file>``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from acoustic_env.config import ConfigError
from acoustic_env.config.export import ExportConfig
from acoustic_env.embedders.spec import SAMPLE_RATE
from acoustic_env.csv_writer import write_csv_table
from acoustic_env.jobs.preflight import check_output, keep_apart
from acoustic_env.storage import filesystem, is_local, redact, write_parquet
from acoustic_env.table import RANDOM, metadata_json, now_utc, open_table, read_features, signal_of


def check_table_file(uri: str, field: str = "output") -> None:
    """``uri`` can take a table: a .parquet or .csv name, not a folder, in a folder that can be written.

    Checked before the work whose result it will hold (``predict --save``), not after.
    """
    if not uri.endswith((".parquet", ".csv")):
        raise ConfigError(f"{field}: {uri} must end in .parquet or .csv")
    if is_local(uri):
        if os.path.isdir(uri):
            raise ConfigError(f"{field}: {uri} is a folder; give a .parquet or .csv file")
        check_output(os.path.dirname(os.path.abspath(os.path.expanduser(uri))), field)


def write_table(table: pa.Table, uri: str) -> None:
    """Write ``table`` as Parquet or CSV, by the file's extension; list columns become ``a;b`` text in CSV, whose
    text cells go through the one CSV writer (:mod:`acoustic_env.csv_writer`: a cell that would open as a formula
    is neutralised)."""
    check_table_file(uri)
    if uri.endswith(".parquet"):
        write_parquet(table, uri)
        return
    for i, field in enumerate(table.schema):
        if pa.types.is_list(field.type) or pa.types.is_large_list(field.type):
            text = pc.binary_join(table[field.name].cast(pa.list_(pa.string())), ";")
            table = table.set_column(i, field.name, text)
        elif pa.types.is_fixed_size_list(field.type):
            raise ConfigError(f"output: CSV cannot hold the vector column {field.name}; use --wide or .parquet")
    fs, path = filesystem(uri)
    parent = path.rsplit("/", 1)[0] if "/" in path else ""
    if parent:
        fs.makedirs(parent, exist_ok=True)
    with fs.open(path, "wb") as fh:
        write_csv_table(table, fh)


#: The schema metadata key that describes an embeddings export (docs/search.md, "Sharing embeddings").
EMBEDDINGS_KEY = b"acoustic-env.embeddings"
EMBEDDINGS_LAYOUT = 1


def export_embeddings(cfg: ExportConfig) -> tuple[int, int, int, str]:
    """``export --embeddings``: the embeddings file and its index (see the module docstring); returns (rows,
    columns, clips left out for a missing or non-finite vector, where the index went or why it did not)."""
    from acoustic_env import __version__
    from acoustic_env.embedders.registry import get
    from acoustic_env.jobs.search import choose_columns
    from acoustic_env.learn.vector_index import copy_beside

    if not cfg.output.endswith(".parquet"):
        raise ConfigError(f"output: {cfg.output}: --embeddings writes Parquet; give a .parquet file")
    keep_apart([("features", cfg.features)], [("output", cfg.output)])
    table = open_table(cfg.features)
    embedder, columns = choose_columns(table, cfg)
    weights = table.weights.get(columns[0]) or RANDOM
    data = read_features(cfg.features, task=cfg.task, feature_groups=columns,
                         include_random_weights=cfg.include_random_weights)
    spec = get(embedder)
    shared = {"layout": EMBEDDINGS_LAYOUT, "embedder": embedder, "version": spec.weights.source,
              "weights_sha256": weights, "columns": {c: {"dim": data.columns[c], "signal": signal_of(c) or "raw"}
                                                      for c in columns},
              "pooling": table.columns.get(columns[0], {}).get("pooling"), "sample_rate": SAMPLE_RATE,
              "clips": len(data), "source": redact(cfg.features), "exported": now_utc().isoformat(timespec="seconds"),
              "package_version": __version__, "similarity": "cosine after standardising each dimension over the clips"}
    own = {"format_version": 1, "package_version": __version__, "columns": {c: table.columns.get(c, {}) for c in columns},
           "weights": {c: weights for c in columns}}
    out = data.to_arrow(named=False)
    out = out.replace_schema_metadata({**metadata_json(own), EMBEDDINGS_KEY: json.dumps(shared).encode()})
    write_table(out, cfg.output)
    index = copy_beside(table, columns, weights, open_table(cfg.output))
    rows = data.excluded["rows"]
    return out.num_rows, out.num_columns, rows.get("missing_features", 0) + rows.get("non_finite_features", 0), index


def export_features(source: str, output: str, *, wide: bool = True, task: str | None = None,
                    feature_groups: Sequence[str] = (), include_random_weights: bool = False) -> tuple[int, int, int]:
    """Write the feature table ``source`` to ``output`` (.parquet or .csv, which is always ``wide``: a CSV cell holds
    no vector); returns (rows, columns, clips left out for a missing or non-finite value of an exported group)."""
    wide = wide or output.endswith(".csv")
    keep_apart([("features", source)], [("output", output)])
    data = read_features(source, task=task, feature_groups=feature_groups,
                         include_random_weights=include_random_weights)
    if task and not len(data):  # an empty file would look like an export, and hold nothing the task asked for
        raise ConfigError(f"task: no clip of {source} has a target for {task} (and finite features): nothing to "
                          "export; leave --task out to export every clip")
    table = data.to_arrow(named=wide)
    write_table(table, output)
    rows = data.excluded["rows"]
    return table.num_rows, table.num_columns, rows.get("missing_features", 0) + rows.get("non_finite_features", 0)
