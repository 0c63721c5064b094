"""Synthetic feature tables with the extract job's schema, for tests and benchmarks.

Same columns, types and schema metadata as ``features/`` (fixed-size float32
lists, AudioSet MIDs in ``labels``, a ``group`` per source recording), with a
class-dependent shift in every group so a model has something to learn, and a
per-recording offset so that leaking recordings across splits would flatter it.
Lets the train job be tested and benchmarked without running extraction.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from acoustic_env.config import FeatureParams
from acoustic_env.embedders import registry
from acoustic_env.features import feature_metadata
from acoustic_env.storage import join, write_parquet
from acoustic_env.table import metadata_json, vector_type

URBAN, NATURAL = "/t/dd00128", "/t/dd00129"


def synthetic_table(n_rows: int, class_mids: tuple[str, ...] = (URBAN, NATURAL), multi_label: bool = False,
                    seed: int = 0, rows_per_group: int = 3, embedders: tuple[str, ...] = (),
                    separation: float = 1.0) -> pa.Table:
    """``n_rows`` clips; single-label rows carry one class's MID (multi-label: each with probability 0.4)."""
    rng = np.random.default_rng(seed)
    k = len(class_mids)
    if multi_label:
        member = rng.random((n_rows, k)) < 0.4
    else:
        member = np.eye(k, dtype=bool)[rng.permutation(np.arange(n_rows) % k)]
    labels = [[class_mids[j] for j in np.flatnonzero(m)] + ["/m/0jbk"] for m in member]  # plus an unrelated MID
    group_ids = np.arange(n_rows) // rows_per_group
    params = FeatureParams()
    meta = {"format_version": 1, "package_version": "synthetic", "run_id": "synthetic",
            "columns": feature_metadata(params), "weights": {e: "random" for e in embedders}}
    dims = {f"{kind}_{s}": d for kind, d in (("indices", 60), ("mps", params.mps_n_wf * params.mps_n_wt))
            for s in params.signals}
    dims.update({e: registry.get(e).dim for e in embedders})
    columns: dict[str, pa.Array] = {
        "clip_id": pa.array([f"clip{i:07d}" for i in range(n_rows)]),
        "labels": pa.array(labels, pa.list_(pa.string())),
        "group": pa.array([f"rec{g:06d}" for g in group_ids]),
        "duration_s": pa.array(np.full(n_rows, 10.0)),
    }
    n_groups = int(group_ids.max()) + 1 if n_rows else 0
    for name, d in dims.items():
        directions = rng.standard_normal((k, d)) * separation
        units = np.exp(rng.uniform(-3, 4, d))  # mixed units, as the indices have
        rec_offset = 0.5 * rng.standard_normal((n_groups, d))
        x = rng.standard_normal((n_rows, d)) + member.astype(float) @ directions + rec_offset[group_ids]
        x = (x * units).astype(np.float32)
        columns[name] = pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), d)
    schema = pa.schema([pa.field(n, vector_type(dims[n]) if n in dims else a.type) for n, a in columns.items()],
                       metadata=metadata_json(meta))
    return pa.Table.from_arrays(list(columns.values()), schema=schema)


def write_features(table: pa.Table, output: str, n_parts: int = 2) -> str:
    """Write ``table`` as ``<output>/features/part-*.parquet``, as the extract job would; returns ``output``."""
    step = max(1, -(-table.num_rows // n_parts))
    for i, start in enumerate(range(0, table.num_rows, step)):
        write_parquet(table.slice(start, step), join(output, "features", f"part-synthetic-{i:04d}.parquet"))
    return output
