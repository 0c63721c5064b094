"""The resume index: one parallel pass over features/ and errors/ that planning, duplicate repair
and error compaction share; and the driver's memory as the clip list grows."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from acoustic_env import layout
from acoustic_env.storage import write_parquet
from acoustic_env.table import ERRORS_SCHEMA

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def features_part(out: Path, name: str, ids: list[str]) -> Path:
    path = out / "features" / f"part-{name}.parquet"
    write_parquet(pa.table({"clip_id": ids, "x": list(range(len(ids)))}), str(path))
    return path


def errors_part(out: Path, name: str, rows: list[tuple[str, str, int]]) -> None:
    """rows: (clip_id, run_id, minutes after T0)."""
    table = pa.Table.from_pylist([{"clip_id": c, "uri": f"/a/{c}.wav", "stage": "decode", "error_type": "missing_file",
                                   "message": "not found", "run_id": r, "time": T0 + timedelta(minutes=m)}
                                  for c, r, m in rows], schema=ERRORS_SCHEMA)
    write_parquet(table, str(out / "errors" / f"errors-{name}.parquet"))


def test_index_plans_repairs_duplicates_and_compacts_errors(tmp_path):
    out = tmp_path / "out"
    features_part(out, "1-aa", ["a", "b"])
    features_part(out, "2-bb", ["b", "c", "c"])  # b is part 1's; c twice in one part
    features_part(out, "3-cc", ["a"])  # nothing left: the part is deleted
    errors_part(out, "r1", [("d", "r1", 0), ("e", "r1", 0), ("a", "r1", 0)])
    errors_part(out, "r2", [("d", "r2", 5)])
    manifest = pa.table({"clip_id": list("abcdef")})
    plan = layout.make_plan(manifest, str(out))
    assert sorted(plan.index.done.to_pylist()) == ["a", "b", "c"] and plan.duplicates_repaired == 3
    assert plan.todo["clip_id"].to_pylist() == ["d", "e", "f"] and plan.skipped == 3 and plan.retried == 2
    assert sorted(p.name for p in (out / "features").iterdir()) == ["part-1-aa.parquet", "part-2-bb.parquet"]
    repaired = pq.read_table(out / "features" / "part-2-bb.parquet").to_pylist()
    assert repaired == [{"clip_id": "c", "x": 1}]  # the first copy of c kept with its own values
    # this run: d fails again, e succeeds (no new error row), f fails for the first time
    errors_part(out, "r3", [("d", "r3", 10), ("f", "r3", 10)])
    left = layout.compact_errors(str(out), "r3", plan.index, layout.id_hashes(plan.todo["clip_id"]))
    table = pq.read_table(out / "errors")
    assert left == 2 and sorted(table["clip_id"].to_pylist()) == ["d", "f"]
    assert set(table["run_id"].to_pylist()) == {"r3"}  # the latest row of each clip
    assert [p.name for p in (out / "errors").iterdir()] == ["errors-r3.parquet"]
    again = layout.make_plan(manifest, str(out))
    assert again.duplicates_repaired == 0 and again.todo["clip_id"].to_pylist() == ["d", "e", "f"]


def test_read_only_index_finds_what_the_run_finds_and_changes_nothing(tmp_path):
    """The dry run's pass over an output (``read_only``): the clips done and failed that the run's own pass
    finds, with a duplicate and a damaged part left where they are."""
    out = tmp_path / "out"
    features_part(out, "1-aa", ["a", "b"])
    features_part(out, "2-bb", ["b", "c", "c"])
    damaged = features_part(out, "3-cc", ["x"])
    damaged.write_bytes(damaged.read_bytes()[:40])  # cut short
    errors_part(out, "r1", [("d", "r1", 0), ("a", "r1", 0)])
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    seen = layout.index_output(str(out), read_only=True)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert [Path(p).name for p in seen.unreadable] == ["part-3-cc.parquet"]
    assert seen.quarantined == [] and seen.duplicates_removed == 0
    run = layout.index_output(str(out))
    assert sorted(seen.done.to_pylist()) == sorted(run.done.to_pylist()) == ["a", "b", "c"]
    assert sorted(seen.failed.to_pylist()) == sorted(run.failed.to_pylist()) == ["a", "d"]
    assert [Path(p).name for p in run.unreadable] == ["part-3-cc.parquet"] and len(run.quarantined) == 1


def test_parallel_index_reads_every_part(tmp_path):
    out = tmp_path / "out"
    ids = [f"clip{i:05d}" for i in range(3000)]
    (out / "features").mkdir(parents=True)
    for k in range(0, len(ids), 7):  # 429 parts, in name order
        pq.write_table(pa.table({"clip_id": ids[k:k + 7]}), out / "features" / f"part-r-{k:06d}.parquet")
    parallel = layout.index_output(str(out))
    assert parallel.n_feature_parts == 429 and parallel.done.to_pylist() == ids
    saved, layout.INDEX_THREADS = layout.INDEX_THREADS, 1
    try:
        assert layout.index_output(str(out)).done.equals(parallel.done)
    finally:
        layout.INDEX_THREADS = saved


PEAK = """
import json, resource, sys
from acoustic_env.audio.manifest import read_manifest
from acoustic_env import layout
path, out = sys.argv[1], sys.argv[2]
import pandas  # imported by the first id hash; its size is not the manifest's
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
manifest = read_manifest(path)  # the extract job's driver, up to the blocks it hands Ray
index = layout.index_output(out)
tally = layout.Tally()
rows = sum(chunk.num_rows for chunk in layout.pending(manifest.chunks(), index.done, index.failed, tally))
assert rows == tally.todo == manifest.rows
print(json.dumps({"rows": rows, "processed": len(tally.processed()),
                  "base_kb": base, "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def driver_peak_mb(tmp_path: Path, n: int) -> float:
    """Peak RSS of a fresh process reading, checking and streaming a manifest of ``n`` missing files
    through the resume filter, above its start (the file is written by this process, not that one)."""
    path = tmp_path / f"m{n}.csv"
    ids = pa.array([f"Y{i:010d}_30000" for i in range(n)])
    pacsv.write_csv(pa.table({"clip_id": ids, "uri": pc.binary_join_element_wise("/nonexistent/", ids, ".flac", ""),
                              "labels": pa.array(["/m/09x0r;/t/dd00128"] * n)}), str(path))
    got = subprocess.run([sys.executable, "-c", PEAK, str(path), str(tmp_path / f"o{n}")],
                         capture_output=True, text=True, timeout=600)
    assert got.returncode == 0, got.stderr[-2000:]
    rss = json.loads(got.stdout.strip().splitlines()[-1])
    assert rss["rows"] == rss["processed"] == n
    return (rss["peak_kb"] - rss["base_kb"]) / 1024


@pytest.mark.slow
def test_driver_memory_stays_flat_as_the_manifest_grows(tmp_path):
    """20k → 200k rows: the driver holds one chunk of the list at a time and 16 bytes a row (two
    id hashes), never the list itself. Growth measured: about 15 MB (8 B a row of it the hashes,
    the rest allocator noise); the whole-table driver of before grew 50 MB, and 993 MB at 2M rows."""
    small, large = driver_peak_mb(tmp_path, 20_000), driver_peak_mb(tmp_path, 200_000)
    assert large - small < 30, (small, large)
