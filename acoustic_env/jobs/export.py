"""``acoustic-env export``: a feature table as one file that any tool reads by column name.

The table itself keeps each feature group as one fixed-size list column, with the
names of its values in the schema metadata: compact, and what the jobs read. A person
with pandas, polars, DuckDB or a spreadsheet wants ``ACI`` as a column. ``--wide``
writes exactly that, through :meth:`acoustic_env.table.FeatureSet.to_arrow` (the same
reader and rules as every job: broken rows and random-weight columns left out).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from acoustic_env.config import ConfigError
from acoustic_env.csv_writer import write_csv_table
from acoustic_env.jobs.preflight import check_output, keep_apart
from acoustic_env.storage import filesystem, is_local, write_parquet
from acoustic_env.table import read_features


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
