"""The resume index: one parallel pass over features/ and errors/ that planning, duplicate repair
and error compaction share; and the driver's memory as the clip list grows."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from acoustic_env import layout
from acoustic_env.errors import DamagedFileError
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


# --- what make mutate runs against layout: the pieces of the index, one behaviour each (fast) ------------------

def test_run_ids_sort_by_utc_time_and_a_retried_batch_rewrites_the_same_part(monkeypatch):
    """A run id is the UTC time and six hex digits (so run ids, and the parts named after them, sort by time
    wherever the run started); a part's name depends on its run and the set of its clips, not their order."""
    import re
    import time

    monkeypatch.setenv("TZ", "America/New_York")  # a local time far from UTC: the id must not follow it
    time.tzset()
    try:
        before, run_id, after = datetime.now(timezone.utc), layout.new_run_id(), datetime.now(timezone.utc)
    finally:
        monkeypatch.undo()
        time.tzset()
    assert re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{6}", run_id), run_id
    stamp = datetime.strptime(run_id[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    assert before.replace(microsecond=0) <= stamp <= after and layout.new_run_id() != run_id
    name = layout.part_name("r1", ["b", "a", "c"])
    assert re.fullmatch(r"part-r1-[0-9a-f]{16}\.parquet", name)
    assert name == layout.part_name("r1", ["c", "b", "a"]) != layout.part_name("r1", ["a", "b"])
    assert name != layout.part_name("r2", ["a", "b", "c"])


def test_pending_filters_and_counts_every_chunk_of_a_clip_list():
    """Chunk by chunk: the clips done are held back (skipped), those that failed before pass (retried), and the
    tally sums over the chunks, with the id hashes of every clip let through."""
    chunks = [pa.table({"clip_id": list("abc")}), pa.table({"clip_id": list("de")}), pa.table({"clip_id": ["f"]})]
    done, failed = pa.array(list("ade")), pa.array(["c", "z"])
    tally = layout.Tally()
    assert tally.processed().dtype == np.uint64 and len(tally.processed()) == 0
    out = [t["clip_id"].to_pylist() for t in layout.pending(chunks, done, failed, tally)]
    assert out == [["b", "c"], [], ["f"]]
    assert (tally.todo, tally.skipped, tally.retried) == (3, 3, 1)
    np.testing.assert_array_equal(tally.processed(), layout.id_hashes(pa.array(list("bcf"))))
    fresh = layout.Tally()  # nothing done or failed before: every clip passes, none is a retry
    assert sum(t.num_rows for t in layout.pending(chunks, pa.array([], pa.string()), pa.array([], pa.string()),
                                                  fresh)) == 6
    assert (fresh.todo, fresh.skipped, fresh.retried) == (6, 0, 0)


def test_first_occurrence_points_every_row_at_the_first_row_of_its_value():
    ids = pa.array(["b", "a", "b", "c", "a", "b"])
    first = layout.first_occurrence(ids)
    assert first.dtype == np.int64 and first.tolist() == [0, 1, 0, 3, 1, 0]
    chunked = pa.chunked_array([ids.slice(0, 2), ids.slice(2)])
    assert layout.first_occurrence(chunked).tolist() == first.tolist()
    assert layout.first_occurrence(pa.array(["x"])).tolist() == [0]
    empty = layout.first_occurrence(pa.array([], pa.string()))
    assert empty.dtype == np.int64 and empty.shape == (0,)
    np.testing.assert_array_equal(layout.id_hashes(chunked), layout.id_hashes(ids))  # an Array or chunks: same
    assert len(set(layout.id_hashes(ids).tolist())) == 3


def _damage_column(path: Path, column: int) -> None:
    """Overwrite the page header of one column of a part: its other columns still read, a whole read fails."""
    meta = pq.ParquetFile(path).metadata.row_group(0).column(column)
    data = bytearray(path.read_bytes())
    data[meta.data_page_offset:meta.data_page_offset + 8] = b"\xff" * 8
    path.write_bytes(bytes(data))


def test_index_sweeps_dead_temporaries_and_quarantines_damaged_parts_saying_where(tmp_path, caplog):
    """A run's index removes a dead writer's temporary, and moves each unreadable part (features/ or errors/, or
    a features/ part whose clip_id reads but whose other columns do not) to quarantine/<sub>/, logged; its
    clips count as not done."""
    import logging
    import os

    out = tmp_path / "out"
    features_part(out, "1-aa", ["a", "c"])
    features_part(out, "2-bb", ["a", "b"])
    (out / "features" / "part-2-bb.parquet").write_bytes(b"")  # rewritten below: a copy whose x column is damaged
    pq.write_table(pa.table({"clip_id": ["a", "b"], "x": ["u" * 50, "v" * 50]}), out / "features" / "part-2-bb.parquet",
                   compression="none", use_dictionary=False)
    _damage_column(out / "features" / "part-2-bb.parquet", 1)
    cut = features_part(out, "3-cc", ["d"])
    cut.write_bytes(cut.read_bytes()[:40])
    errors_part(out, "r1", [("e", "r1", 0)])
    (out / "errors" / "errors-r0.parquet").write_bytes(b"not parquet")
    temporary = out / "features" / ".tmp-part-9-zz.parquet"
    temporary.write_bytes(b"half")
    os.utime(temporary, (1, 1))  # written long ago
    with caplog.at_level(logging.INFO, logger="acoustic_env.layout"):
        plan = layout.make_plan(pa.table({"clip_id": list("abcdef")}), str(out))
    assert not temporary.exists()
    q = out / "quarantine"
    assert plan.quarantined == [str(q / "features" / "part-3-cc.parquet"), str(q / "features" / "part-2-bb.parquet"),
                                str(q / "errors" / "errors-r0.parquet")]
    assert all(Path(p).is_file() for p in plan.quarantined)
    assert sorted(plan.index.done.to_pylist()) == ["a", "c"] and plan.todo["clip_id"].to_pylist() == list("bdef")
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0] == f"removed 1 temporary files left by dead writers: {temporary}"
    assert messages[1].startswith(f"quarantined an unreadable part, its clips will be recomputed: "
                                  f"{out / 'features' / 'part-3-cc.parquet'} -> {q / 'features' / 'part-3-cc.parquet'} "
                                  f"({out / 'features' / 'part-3-cc.parquet'}: not a readable Parquet file")
    assert "Deserializing page header failed" in messages[2]
    assert [Path(p).name for p in plan.index.unreadable] == ["part-3-cc.parquet", "part-2-bb.parquet",
                                                             "errors-r0.parquet"]


def test_read_parts_reads_the_columns_asked_for_and_returns_damage_in_order(tmp_path):
    out = tmp_path / "out"
    parts = [str(features_part(out, "1-aa", ["a"])), str(features_part(out, "2-bb", ["b"]))]
    Path(parts[1]).write_bytes(b"x")
    parts.append(str(features_part(out, "3-cc", ["c", "d"])))
    got = layout.read_parts_parallel(parts, ["clip_id"])
    assert [t.column_names for t in (got[0], got[2])] == [["clip_id"], ["clip_id"]]
    assert isinstance(got[1], DamagedFileError) and parts[1] in str(got[1])
    one = layout.read_parts_parallel(parts[:1], ["clip_id"])
    assert one[0].column_names == ["clip_id"] and layout.read_parts_parallel([], None) == []


def test_compaction_writes_an_empty_errors_part_and_keeps_old_rows_without_a_run_id(tmp_path):
    """errors/ always holds a part, empty when nothing failed; an error row of an older part without a run_id
    stays until its clip is done (its null run id is no proof this run processed it)."""
    out = tmp_path / "out"
    for read_only in (True, False):  # a new output: nothing done, nothing failed
        new = layout.index_output(str(out), read_only=read_only)
        assert new.done.type == pa.string() and len(new.done) == 0 and new.errors.num_rows == 0
    features_part(out, "1-aa", ["a"])
    index = layout.index_output(str(out))
    assert layout.compact_errors(str(out), "r9", index, np.zeros(0, np.uint64)) == 0
    empty = pq.read_table(out / "errors" / "errors-r9.parquet")
    assert empty.num_rows == 0 and empty.schema.equals(ERRORS_SCHEMA)
    old = pa.table({"clip_id": ["g", "a"], "uri": ["/a/g.wav", "/a/a.wav"], "stage": ["decode", "decode"],
                    "time": pa.array([T0, T0], ERRORS_SCHEMA.field("time").type)})
    pq.write_table(old, out / "errors" / "errors-old.parquet")
    index = layout.index_output(str(out))
    assert index.errors["run_id"].null_count == 2 and index.errors["message"].to_pylist() == [None, None]
    assert layout.compact_errors(str(out), "r10", index, layout.id_hashes(pa.array(["g"]))) == 1
    assert pq.read_table(out / "errors")["clip_id"].to_pylist() == ["g"]  # a is done: its row goes


def test_a_resume_takes_only_the_parts_runs_wrote_and_changes_no_other_file(tmp_path, caplog):
    """Issue 60: a Parquet file another command wrote into features/ or errors/ (a ``--save``, an export) is no
    part: its clips do not count as done, the real part keeps its rows whether the file sorts before it
    (``found``: taken as the first copy, it pushed three clips out of the part) or after (``x``: deleted as the
    later copy), and the compaction of errors/ neither reads nor deletes one there."""
    out = tmp_path / "out"
    features_part(out, "r1-aa", ["a", "b", "c", "d"])
    for name in ("found", "x"):
        write_parquet(pa.table({"clip_id": ["a", "b", "e"], "x": [7, 8, 9]}), str(out / "features" / f"{name}.parquet"))
    write_parquet(pa.table({"clip_id": ["f"], "predicted": ["urban"]}), str(out / "errors" / "saved.parquet"))
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with caplog.at_level("WARNING", logger="acoustic_env.layout"):
        plan = layout.make_plan(pa.table({"clip_id": list("abcdef")}), str(out))
    assert plan.duplicates_repaired == 0 and plan.todo["clip_id"].to_pylist() == ["e", "f"]
    assert sorted(Path(p).name for p in plan.index.foreign) == ["found.parquet", "saved.parquet", "x.parquet"]
    assert "left alone 3 file(s) that no extract run wrote" in caplog.text
    layout.compact_errors(str(out), "r2", plan.index, layout.id_hashes(plan.todo["clip_id"]))
    after = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after.pop(out / "errors" / "errors-r2.parquet") and after == before


def test_a_rerun_with_other_settings_says_the_clips_done_keep_theirs(tmp_path, caplog):
    """Issue 60: extract again into an output with other features (or embedders) skipped every clip as done and
    said nothing; now one line says which settings differ and that a new --output computes them. A run that
    asks for less than the clips have (annotate with one of the table's embedders) says nothing."""
    from acoustic_env.config import ExtractConfig, from_dict
    from acoustic_env.demo.synth import generate_demo
    from acoustic_env.jobs.extract import extract

    data = generate_demo(tmp_path / "data", n_clips=3, duration_s=1.0, n_broken=0, seed=3)
    base = {"manifest": str(data.clips_csv), "audio_root": str(data.audio_dir), "output": str(tmp_path / "out"),
            "progress": False, "weights_cache": str(tmp_path / "no-weights")}

    def run(**features: object) -> tuple[dict, list[str]]:
        caplog.clear()
        with caplog.at_level("WARNING", logger="acoustic_env.jobs.extract"):
            result = extract(from_dict(ExtractConfig, {**base, "features": {"spectral": False, **features}}))
        return result.record, [r.getMessage() for r in caplog.records if "other settings" in r.getMessage()]

    first, said = run(signals=["raw", "fg"])
    assert first["counts"]["ok"] == 3 and said == []
    record, said = run(signals=["raw", "bg"], spectral=True)
    assert record["counts"]["skipped"] == 3 and record["counts"]["processed"] == 0
    assert said == [f"3 clips already in {tmp_path / 'out'} count as done, but runs that wrote them used other "
                    "settings (features.signals raw,fg -> raw,bg; features.spectral False -> True): they keep their "
                    "values; to compute every clip with these settings, give a new --output"]
    assert record["other_settings"] == {"features.spectral": "False -> True", "features.signals": "raw,fg -> raw,bg"}
    record, said = run(signals=["fg"])  # fewer signals: nothing the clips lack
    assert said == [] and record["other_settings"] == {}


def test_the_files_left_alone_are_counted_and_the_first_five_named_in_one_warning(tmp_path, caplog):
    """The warning says which output, how many files no run wrote, and names the first five (features/ in name
    order first): enough to find them, one line however many there are."""
    out = tmp_path / "out"
    features_part(out, "r1-aa", ["a"])
    others = [out / "features" / f"f{k}.parquet" for k in range(6)]
    for path in others:
        write_parquet(pa.table({"clip_id": ["b"]}), str(path))
    with caplog.at_level("WARNING", logger="acoustic_env.layout"):
        index = layout.index_output(str(out))
    assert index.foreign == [str(p) for p in others]
    assert [r.getMessage() for r in caplog.records] == [
        f"{out}: left alone 6 file(s) that no extract run wrote (not counted as done, never changed): "
        + ", ".join(str(p) for p in others[:5])]


def test_compaction_quarantines_an_unreadable_part_written_after_the_index_instead_of_deleting_it(tmp_path):
    """An errors/ part the index has not seen (this run's, a concurrent run's) that cannot be read is moved to
    quarantine/errors/ like one the index found, never deleted with the parts the compaction replaces."""
    out = tmp_path / "out"
    features_part(out, "1-aa", ["a"])
    errors_part(out, "r1", [("e", "r1", 0)])
    index = layout.index_output(str(out))
    errors_part(out, "r2", [("f", "r2", 5)])
    (out / "errors" / "errors-r3.parquet").write_bytes(b"not parquet")
    assert layout.compact_errors(str(out), "r4", index, np.zeros(0, np.uint64)) == 2
    assert sorted(p.name for p in (out / "errors").iterdir()) == ["errors-r4.parquet"]
    assert pq.read_table(out / "errors")["clip_id"].to_pylist() == ["e", "f"]
    assert (out / "quarantine" / "errors" / "errors-r3.parquet").read_bytes() == b"not parquet"
    assert index.quarantined == [str(out / "quarantine" / "errors" / "errors-r3.parquet")]  # the record names it
