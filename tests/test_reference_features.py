"""The demo's feature table holds the same values as before the spine move.

``tests/data/reference_features.parquet`` was computed by ``tests/data/make_reference.py``
at commit 2fea36f (before any module moved); this test runs the same demo data through
today's extract and compares every column: decode facts exactly, CPU feature vectors to
float32 rounding, embedder vectors (fixed-seed random weights) to 1e-5.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

HERE = Path(__file__).parent / "data"
pytestmark = pytest.mark.slow


def _maker():
    spec = importlib.util.spec_from_file_location("make_reference", HERE / "make_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_demo_features_unchanged_since_the_move(tmp_path, ray_session):
    out = tmp_path / "now.parquet"
    _maker().main(str(out))
    ref, now = pq.read_table(HERE / "reference_features.parquet"), pq.read_table(out)
    assert set(ref.column_names) <= set(now.column_names)  # later issues may add columns, never change these
    assert now["clip_id"].to_pylist() == ref["clip_id"].to_pylist() and now.num_rows == 8
    for name in ref.column_names:
        a, b = ref[name].combine_chunks(), now[name].combine_chunks()
        if not str(a.type).startswith("fixed_size_list"):
            assert a.to_pylist() == b.to_pylist(), name
            continue
        x = a.flatten().to_numpy().astype(np.float64)
        y = b.flatten().to_numpy().astype(np.float64)
        tol = 1e-5 if name.split("_")[0] in ("vggish", "yamnet", "panns") else 1e-6
        np.testing.assert_allclose(y, x, rtol=tol, atol=tol, err_msg=name)
