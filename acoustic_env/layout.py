"""The output directory of a job: features/, errors/ and runs/, the invariants between them, and run records.

* features/ and errors/ hold Parquet parts named ``part-<run_id>-<digest>.parquet``
  where the digest is computed from the clip_ids of the batch: a batch that Ray
  retries within a run rewrites the same part instead of adding a second one.
* ``index_output`` is the one pass a run makes over what earlier runs left: it lists
  features/ and errors/ and reads only ``clip_id`` from every features/ part (errors/
  parts are small and read whole), many parts at once on a thread pool. Planning
  (``pending``, which filters a clip list chunk by chunk as it streams to Ray, or
  ``make_plan`` for a table), duplicate repair and error compaction (``compact_errors``) all
  use that ``ResumeIndex``; the ids stay in Arrow arrays, never Python sets, so
  millions of clips cost tens of MB, not GBs.
* The index restores "every input clip in exactly one of features/ or errors/" after
  interrupted or concurrent runs: a features/ row whose clip an earlier part holds is
  removed (parts in name order; run ids sort by time, so the first copy written wins).
  A part that cannot be read (cut short by a full disk, damaged in transit) would
  otherwise stop every later run: it is moved to ``quarantine/<features|errors>/``,
  logged, and its clips count as not done, so the run recomputes them.
* A part is a file a run wrote, known by its name (``part-*``, and ``errors-*`` in errors/:
  :func:`own_parts`); any other Parquet file found there is logged and left alone, never counted,
  repaired or deleted.
* ``runs/<run_id>.json``, a run's record, is written by :mod:`acoustic_env.jobs.record`; this
  module only names the folder and the run ids.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from acoustic_env.config import ConfigError
from acoustic_env.errors import DamagedFileError
from acoustic_env.storage import (
    delete,
    filesystem,
    is_local,
    join,
    list_parts,
    move,
    read_part,
    redact,
    remove_stale_temporaries,
    write_parquet,
)
from acoustic_env.table import ERRORS_SCHEMA, PART_PREFIX

FEATURES = "features"
ERRORS = "errors"
RUNS = "runs"
QUARANTINE = "quarantine"
#: The lock file of a run writing to a local output (:func:`output_lock`).
LOCK = ".acoustic-env.lock"
#: Parts read at once while indexing: reads wait on storage far more than on the CPU.
INDEX_THREADS = 32

log = logging.getLogger("acoustic_env.layout")


@contextmanager
def output_lock(output: str) -> Iterator[None]:
    """Held by the run writing to a local ``output``; a second run at once is refused with one line.

    Two runs planning against the same features/ each see the other's clips as not done
    and both write them: a clip twice until a later run repairs it. An OS file lock
    (filelock) is released by the system however the holder ends, so a killed run never
    blocks the next. Object storage has no lock: there, the next run's index repairs
    what two runs at once wrote twice.
    """
    if not is_local(output):
        yield
        return
    from filelock import FileLock, Timeout

    fs, path = filesystem(output)
    fs.makedirs(path, exist_ok=True)
    lock = FileLock(f"{path}/{LOCK}", timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise ConfigError(f"output: another run is writing to {output} (it holds {LOCK} there); wait for it to "
                          "end, or give another output") from None
    try:
        yield
    finally:
        lock.release()


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def part_name(run_id: str, clip_ids: list[str]) -> str:
    digest = hashlib.sha1("\n".join(sorted(clip_ids)).encode()).hexdigest()[:16]
    return f"{PART_PREFIX}{run_id}-{digest}.parquet"


def run_of(part: str) -> str:
    """The run id in a part's name (:func:`part_name`): ``part-<run_id>-<digest>.parquet`` → ``<run_id>``."""
    return part.rsplit("/", 1)[-1].removeprefix("part-").removesuffix(".parquet").rpartition("-")[0]


#: How the files runs write into features/ and errors/ begin (:func:`part_name`; ``errors-<run_id>``, the
#: compacted errors of :func:`compact_errors`).
PART_PREFIXES = {FEATURES: (PART_PREFIX,), ERRORS: (PART_PREFIX, "errors-")}


def own_parts(output: str, sub: str) -> tuple[list[str], list[str]]:
    """(the parts runs wrote into ``sub``, by their names, in name order; any other Parquet file there).

    Only the first are the output's: a resume counts their clips as done, repairs, quarantines,
    compacts and deletes them. Another file in features/ (a ``--save`` or an export aimed there, a
    file copied in) is left as it is: taken as a part, its rows would count as done and push the real
    copies out (the first copy wins), or, sorting after the real parts, it would be deleted.
    """
    own: list[str] = []
    other: list[str] = []
    for part in list_parts(join(output, sub)):
        (own if part.rsplit("/", 1)[-1].startswith(PART_PREFIXES[sub]) else other).append(part)
    return own, other


@dataclass(frozen=True)
class ResumeIndex:
    """What one pass over an output's parts found (and repaired).

    ``done``: the distinct clip_ids in features/; ``errors``: every row of errors/
    (``ERRORS_SCHEMA``) and ``error_parts``, the parts they came from, which
    ``compact_errors`` replaces.
    """

    done: pa.Array
    errors: pa.Table
    error_parts: list[str]
    n_feature_parts: int
    duplicates_removed: int  # rows dropped from features/ because an earlier part holds their clip
    quarantined: list[str]  # unreadable parts moved to quarantine/ (their clips are recomputed)
    unreadable: list[str]  # the unreadable parts where they were found (a read-only index leaves them there)
    foreign: list[str] = field(default_factory=list)  # other Parquet files in features/ or errors/: left alone
    runs: tuple[str, ...] = ()  # the runs whose parts hold the clips done (their ids, from the parts' names)

    @property
    def failed(self) -> pa.Array:
        """clip_ids with a row in errors/."""
        return pc.unique(self.errors["clip_id"].combine_chunks())


@dataclass(frozen=True)
class Plan:
    todo: pa.Table  # manifest rows still to process
    skipped: int  # already in features/
    retried: int  # in errors/ from an earlier run, processed again
    duplicates_repaired: int
    quarantined: list[str]
    index: ResumeIndex


@dataclass
class Tally:
    """What ``pending`` let through and held back, filled in as its chunks are consumed."""

    todo: int = 0
    skipped: int = 0  # already in features/
    retried: int = 0  # in errors/ from an earlier run, processed again
    todo_hashes: list[np.ndarray] = field(default_factory=list)  # id_hashes of the rows let through

    def processed(self) -> np.ndarray:
        """``id_hashes`` of the clips to do, for ``compact_errors``: 8 bytes a clip, not the ids' 20-40."""
        return np.concatenate(self.todo_hashes) if self.todo_hashes else np.zeros(0, np.uint64)


def quarantine(output: str, sub: str, part: str, reason: str) -> str:
    """Move an unreadable part of ``sub`` (features or errors) to ``<output>/quarantine/<sub>/``; returns where."""
    target = join(output, QUARANTINE, sub, part.rstrip("/").rsplit("/", 1)[-1])
    move(part, target)
    log.warning("quarantined an unreadable part, its clips will be recomputed: %s -> %s (%s)",
                redact(part), redact(target), redact(reason))
    return target


def read_parts_parallel(parts: list[str], columns: list[str] | None,
                        threads: int | None = None) -> list[pa.Table | DamagedFileError]:
    """Each part read (``columns`` only), many at once; a damaged part gives its DamagedFileError, in order."""
    threads = threads or INDEX_THREADS
    def one(part: str) -> pa.Table | DamagedFileError:
        try:
            return read_part(part, columns=columns)
        except DamagedFileError as exc:
            return exc

    if len(parts) <= 1:
        return [one(p) for p in parts]
    with ThreadPoolExecutor(max_workers=max(1, min(threads, len(parts)))) as pool:
        return list(pool.map(one, parts))


def id_hashes(ids: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A 64-bit hash of each id (pandas' vectorised SipHash), the same in every process and run.

    8 bytes a row where the ids themselves take 20-40: what the driver keeps of a clip
    list of millions to find its repeated ids, and of the clips a run was given. Two
    different ids share a hash with a probability of about n²/2⁶⁵ (10⁻⁷ at 2 million
    rows). The manifest confirms a repeated id with the ids themselves; in the other uses
    a collision would give a derived id a suffix it did not need, or (``compact_errors``)
    drop an old error row of a clip, which the next run then recomputes.
    """
    from pandas.util import hash_array  # here: a dry run or a job imports pandas only when it reads a list

    ids = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
    return hash_array(ids.to_numpy(zero_copy_only=False), categorize=False)


def first_occurrence(ids: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """For each row, the index of the first row holding the same value.

    A stable sort and a scan of the runs of equal values: a few int64 arrays, where a
    hash group-by of millions of strings costs several times their size in memory.
    """
    ids = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
    n = len(ids)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    order = pc.sort_indices(ids).to_numpy()  # stable: equal values keep their row order
    ordered = ids.take(order)
    starts = np.ones(n, dtype=bool)
    starts[1:] = pc.not_equal(ordered.slice(1), ordered.slice(0, n - 1)).to_numpy(zero_copy_only=False)
    run_start = np.maximum.accumulate(np.where(starts, np.arange(n), 0))
    first = np.empty(n, dtype=np.int64)
    first[order] = order[run_start]
    return first


def _first_rows(ids: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """True for the first row of each distinct value (a later row repeats an earlier one)."""
    return first_occurrence(ids) == np.arange(len(ids))


def _repair_duplicates(parts: list[str], tables: list[pa.Table], damaged: Callable[[str, str, str], None]
                       ) -> tuple[pa.Array, int]:
    """Drop features/ rows whose clip an earlier row holds; returns (distinct ids, rows removed).

    Parts are rewritten only where they hold a repeated clip (none in a healthy output).
    A part whose other columns turn out unreadable goes to ``damaged`` (quarantined)
    instead, and the first-copy rule is applied again without it.
    """
    removed = 0
    while True:
        ids = pa.chunked_array([t["clip_id"] for t in tables], pa.string())
        keep = _first_rows(ids)
        if keep.all():
            return ids.combine_chunks(), removed
        bounds = np.cumsum([0] + [t.num_rows for t in tables])
        for k, part in enumerate(parts):
            mask = keep[bounds[k]:bounds[k + 1]]
            if mask.all():
                continue
            try:
                table = read_part(part)
            except DamagedFileError as exc:  # its clip_id column read, another column does not
                damaged(FEATURES, part, str(exc))
                del parts[k], tables[k]
                break  # which copy comes first has changed: start over
            table = table.filter(pa.array(mask))
            removed += int((~mask).sum())
            if table.num_rows:
                write_parquet(table, part)
            else:
                delete(part)
            tables[k] = tables[k].filter(pa.array(mask))


def _readable(parts: list[str], sub: str, columns: list[str] | None, damaged: Callable[[str, str, str], None]
              ) -> tuple[list[str], list[pa.Table]]:
    kept, tables = [], []
    for part, got in zip(parts, read_parts_parallel(parts, columns)):
        if isinstance(got, DamagedFileError):
            damaged(sub, part, str(got))
        else:
            kept.append(part)
            tables.append(got)
    return kept, tables


def index_output(output: str, read_only: bool = False) -> ResumeIndex:
    """The one pass over an output: quarantine unreadable parts, repair duplicates, collect the ids.

    ``read_only`` (the dry run) reads the same parts and finds the same clips done and
    failed, and changes nothing: no temporary is swept, no duplicate removed, and an
    unreadable part stays where it is (``unreadable`` names it; a run would quarantine it).
    """
    if not read_only:
        # temporaries a killed or ENOSPC'd writer left (storage.remove_stale_temporaries says whose go)
        swept = [t for sub in (FEATURES, ERRORS) for t in remove_stale_temporaries(join(output, sub), time.time())]
        if swept:
            log.info("removed %d temporary files left by dead writers: %s", len(swept), ", ".join(swept[:5]))
    unreadable: list[str] = []
    quarantined: list[str] = []

    def damaged(sub: str, part: str, reason: str) -> None:
        unreadable.append(part)
        if not read_only:
            quarantined.append(quarantine(output, sub, part, reason))

    (feature_parts, foreign), (error_parts, foreign_errors) = own_parts(output, FEATURES), own_parts(output, ERRORS)
    foreign += foreign_errors
    if foreign:
        log.warning("%s: left alone %d file(s) that no extract run wrote (not counted as done, never changed): %s",
                    redact(output), len(foreign), ", ".join(redact(f) for f in foreign[:5]))
    parts, tables = _readable(feature_parts, FEATURES, ["clip_id"], damaged)
    if read_only:
        done, removed = pc.unique(pa.chunked_array([t["clip_id"] for t in tables], pa.string())), 0
    else:
        done, removed = _repair_duplicates(parts, tables, damaged)
    # errors/ parts are small: read whole, so that compact_errors never meets a damaged one
    error_parts, error_tables = _readable(error_parts, ERRORS, None, damaged)
    errors = _concat_errors(error_tables)
    return ResumeIndex(done=done, errors=errors, error_parts=error_parts, n_feature_parts=len(parts),
                       duplicates_removed=removed, quarantined=quarantined, unreadable=unreadable, foreign=foreign,
                       runs=tuple(sorted({run_of(p) for p in parts})))


def _concat_errors(tables: list[pa.Table]) -> pa.Table:
    """Error parts as one ``ERRORS_SCHEMA`` table (a column a part lacks is null)."""
    def conform(t: pa.Table) -> pa.Table:
        return pa.Table.from_arrays([t[f.name].cast(f.type) if f.name in t.column_names
                                     else pa.nulls(t.num_rows, f.type) for f in ERRORS_SCHEMA], schema=ERRORS_SCHEMA)

    return pa.concat_tables([conform(t) for t in tables]) if tables else ERRORS_SCHEMA.empty_table()


def pending(chunks: Iterable[pa.Table], done: pa.Array, failed: pa.Array, tally: Tally) -> Iterator[pa.Table]:
    """Each chunk of a clip list without the clips in ``done``, counted into ``tally`` as it passes.

    The resume filter works chunk by chunk, so a clip list of millions streams from its
    file to Ray without ever being one table in the driver (``Manifest.chunks``).
    """
    for chunk in chunks:
        todo = chunk.filter(pc.invert(pc.is_in(chunk["clip_id"], value_set=done))) if len(done) else chunk
        tally.todo += todo.num_rows
        tally.skipped += chunk.num_rows - todo.num_rows
        tally.retried += int(pc.sum(pc.is_in(todo["clip_id"], value_set=failed)).as_py() or 0) if len(failed) else 0
        tally.todo_hashes.append(id_hashes(todo["clip_id"]))
        yield todo


def make_plan(manifest: pa.Table, output: str, index: ResumeIndex | None = None) -> Plan:
    """The manifest rows still to do, from one index of the output (built here unless given)."""
    index = index or index_output(output)
    tally = Tally()
    todo = pa.concat_tables(list(pending([manifest], index.done, index.failed, tally)))
    return Plan(todo=todo, skipped=tally.skipped, retried=tally.retried,
                duplicates_repaired=index.duplicates_removed, quarantined=index.quarantined, index=index)


def compact_errors(output: str, run_id: str, index: ResumeIndex, processed: np.ndarray) -> int:
    """Keep one row per failed clip (the latest) in errors/, none for a clip now in features/.

    A clip is in features/ if the index found it there, or if this run processed it
    (``processed``: the ``id_hashes`` of the clips it was given) and its latest error row
    is older than this run. Reads only the error parts the index
    has not seen (this run's, and a concurrent run's); one of those that cannot be read is quarantined and added to
    ``index.quarantined``, which the run record names. Writes the compacted table first (an empty part when
    nothing failed), then deletes the older parts, so an interruption in between leaves duplicates
    (repaired next time), never a loss. Returns the number of clips left in errors/.
    """
    seen = set(index.error_parts)

    # an unreadable new part is quarantined like the index's, not deleted with the parts compacted: its rows are lost
    # to this table either way, but the file stays for a person to look at, named in the run record with the index's
    def set_aside(sub: str, part: str, reason: str) -> None:
        index.quarantined.append(quarantine(output, sub, part, reason))

    new_parts, new_tables = _readable([p for p in own_parts(output, ERRORS)[0] if p not in seen], ERRORS, None,
                                      set_aside)
    table = _concat_errors([index.errors, *new_tables])
    parts = index.error_parts + new_parts
    target = join(output, ERRORS, f"errors-{run_id}.parquet")
    if not parts:  # errors/ always exists, with an empty part when nothing failed, so readers never miss it
        write_parquet(ERRORS_SCHEMA.empty_table(), target)
        return 0
    latest = table.sort_by([("time", "descending")])
    latest = latest.filter(pa.array(_first_rows(latest["clip_id"])))
    # Kleene logic: a row without a run_id (an older part) whose clip is in features/ is done all the same
    done_now = pc.or_kleene(pc.is_in(latest["clip_id"], value_set=index.done),
                            pc.and_kleene(pa.array(np.isin(id_hashes(latest["clip_id"]), processed)),
                                          pc.not_equal(latest["run_id"], run_id)))
    latest = latest.filter(pc.invert(pc.fill_null(done_now, False))).sort_by([("time", "ascending")])
    write_parquet(latest, target)
    for part in parts:
        if part != target:
            delete(part)
    return latest.num_rows
