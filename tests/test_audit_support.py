"""The audit tests' feature tables: ``acoustic_env.demo.tables`` written as one Parquet file, with the truth.

(No test functions here.) The audit's "done when" numbers need data whose true classes a
model can learn and whose labels were flipped by a known amount.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from acoustic_env.demo.tables import NATURAL, URBAN, synthetic_features

__all__ = ["NATURAL", "URBAN", "make_table"]


def make_table(path: Path, n: int, class_mids: list[list[str]], flip: float, seed: int = 0,
               multi_label: bool = False, groups: int | None = None, uris: list[str] | None = None) -> dict:
    """Write ``path`` and return the truth: ids, true/given targets, flipped clip ids, groups.

    ``groups``: that many recordings (consecutive clips share one); None: no group column values.
    """
    synth = synthetic_features(n, class_mids, multi_label=multi_label, seed=seed, flip=flip, uris=uris,
                               rows_per_group=-(-n // groups) if groups else None, signals=("raw",),
                               scores=("panns",))
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(synth.table, path)
    return {"ids": synth.ids, "true": synth.true, "given": synth.given, "flipped": synth.flipped,
            "groups": synth.table["group"].to_pylist() if groups else None}
