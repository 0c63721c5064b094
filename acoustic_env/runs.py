"""The output directory of a job: features/, errors/ and runs/, the invariants between them, and run records.

* features/ and errors/ hold Parquet parts named ``part-<run_id>-<digest>.parquet``
  where the digest is computed from the clip_ids of the batch: a batch that Ray
  retries within a run rewrites the same part instead of adding a second one.
* ``plan`` reads only the clip_id column of each part, so planning a resume of
  millions of clips costs a listing and a few small column reads.
* ``sweep`` and ``compact_errors`` restore "every input clip in exactly one of
  features/ or errors/" after interrupted or concurrent runs. A part that cannot
  be read (cut short by a full disk, damaged in transit) would otherwise stop
  every later run: ``sweep`` moves it to ``quarantine/<features|errors>/``, logs
  it, and its clips count as not done, so the run recomputes them.
* ``runs/<run_id>.json`` (``base_record``, ``write_record``) is written when a run starts
  (status "running") and rewritten when it ends: config (never credentials: they come from
  the environment, and a secret written into a URL anyway is redacted),
  package versions, git revision, weight checksums, counts and time per stage.
"""

from __future__ import annotations

import hashlib
import logging
import platform
import secrets
import subprocess
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from acoustic_env.errors import DamagedFileError
from acoustic_env.storage import (
    delete,
    join,
    list_parts,
    move,
    read_part,
    read_parts,
    redact,
    redact_all,
    write_json,
    write_parquet,
)
from acoustic_env.table import ERRORS_SCHEMA

FEATURES = "features"
ERRORS = "errors"
RUNS = "runs"
QUARANTINE = "quarantine"

log = logging.getLogger("acoustic_env.runs")


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def part_name(run_id: str, clip_ids: list[str]) -> str:
    digest = hashlib.sha1("\n".join(sorted(clip_ids)).encode()).hexdigest()[:16]
    return f"part-{run_id}-{digest}.parquet"


@dataclass(frozen=True)
class Sweep:
    """What one pass over an output's parts found and fixed."""

    done: set[str]  # clip_ids in features/
    failed: set[str]  # clip_ids in errors/
    duplicates_removed: int  # rows dropped from features/ because an earlier part holds their clip
    quarantined: list[str]  # unreadable parts moved to quarantine/ (their clips are recomputed)


@dataclass(frozen=True)
class Plan:
    todo: pa.Table  # manifest rows still to process
    skipped: int  # already in features/
    retried: int  # in errors/ from an earlier run, processed again
    duplicates_repaired: int
    quarantined: list[str]


def quarantine(output: str, sub: str, part: str, reason: str) -> str:
    """Move an unreadable part of ``sub`` (features or errors) to ``<output>/quarantine/<sub>/``; returns where."""
    target = join(output, QUARANTINE, sub, part.rstrip("/").rsplit("/", 1)[-1])
    move(part, target)
    log.warning("quarantined an unreadable part, its clips will be recomputed: %s -> %s (%s)",
                redact(part), redact(target), redact(reason))
    return target


def _readable(output: str, sub: str, quarantined: list[str], columns: list[str] | None) -> list[tuple[str, list[str]]]:
    """(part, its clip_ids) for each readable part of features/ or errors/; the others are quarantined."""
    out = []
    for part in list_parts(join(output, sub)):
        try:
            out.append((part, read_part(part, columns=columns)["clip_id"].to_pylist()))
        except DamagedFileError as exc:
            quarantined.append(quarantine(output, sub, part, str(exc)))
    return out


def sweep(output: str) -> Sweep:
    """Quarantine unreadable parts, drop rows of features/ whose clip an earlier part holds, collect the ids.

    Parts are visited in name order (run ids sort by time), so the first copy written
    wins; a part left empty is deleted.
    """
    quarantined: list[str] = []
    seen: set[str] = set()
    removed = 0
    for part, ids in _readable(output, FEATURES, quarantined, columns=["clip_id"]):
        dup = [i for i in ids if i in seen]
        seen.update(ids)
        if not dup:
            continue
        try:
            table = read_part(part)
        except DamagedFileError as exc:  # its clip_id column read, another column does not
            quarantined.append(quarantine(output, FEATURES, part, str(exc)))
            seen.difference_update(set(ids) - set(dup))
            continue
        table = table.filter(pc.invert(pc.is_in(table["clip_id"], value_set=pa.array(dup, pa.string()))))
        removed += len(dup)
        if table.num_rows:
            write_parquet(table, part)
        else:
            delete(part)
    # errors/ parts are small: read whole, so that compact_errors never meets a damaged one
    failed = {i for _, ids in _readable(output, ERRORS, quarantined, columns=None) for i in ids}
    return Sweep(done=seen, failed=failed, duplicates_removed=removed, quarantined=quarantined)


def make_plan(manifest: pa.Table, output: str) -> Plan:
    found = sweep(output)
    ids = manifest["clip_id"]
    todo = manifest.filter(pc.invert(pc.is_in(ids, value_set=pa.array(sorted(found.done), pa.string()))))
    retried = sum(i in found.failed for i in todo["clip_id"].to_pylist())
    return Plan(todo=todo, skipped=manifest.num_rows - todo.num_rows, retried=retried,
                duplicates_repaired=found.duplicates_removed, quarantined=found.quarantined)


def compact_errors(output: str, run_id: str, done: set[str]) -> int:
    """Keep one row per failed clip (the latest), none for clips in ``done`` (those in features/).

    Writes the compacted table first, then deletes the older parts, so an
    interruption in between leaves duplicates (repaired next time), never a loss.
    Returns the number of clips left in errors/.
    """
    parts = list_parts(join(output, ERRORS))
    if not parts:
        return 0
    table = read_parts(join(output, ERRORS))
    rows = sorted(table.to_pylist(), key=lambda r: r["time"])
    latest = {r["clip_id"]: r for r in rows if r["clip_id"] not in done}
    target = join(output, ERRORS, f"errors-{run_id}.parquet")
    if latest:
        write_parquet(pa.Table.from_pylist(list(latest.values()), schema=ERRORS_SCHEMA), target)
    for part in parts:
        if part != target:
            delete(part)
    return len(latest)


# --- run records ---

PACKAGES = ("acoustic-env", "ray", "pyarrow", "numpy", "scipy", "librosa", "soundfile", "soxr", "noisereduce",
            "scikit-maad", "soundsig", "torch", "fsspec", "s3fs")


def package_versions(extra: tuple[str, ...] = ()) -> dict[str, str | None]:
    """Installed versions of the core packages plus a job's own (``extra``); None when absent."""
    out: dict[str, str | None] = {}
    for name in PACKAGES + extra:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    out["python"] = platform.python_version()
    return out


def git_revision() -> str | None:
    """The checkout's commit (with '+dirty' if modified), or None outside a git checkout."""
    here = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        if rev.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return rev.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def base_record(run_id: str, job: str, config: dict[str, Any]) -> dict[str, Any]:
    return {"run_id": run_id, "job": job, "status": "running", "config": config,
            "versions": package_versions(), "git_revision": git_revision(), "host": platform.node()}


def write_record(record: dict[str, Any], uri: str, redact_params: tuple[str, ...] = ()) -> dict[str, Any]:
    """Write a run record with every secret in its URLs (user-info, token query values) replaced by ***.

    Returns what was written, which is what a job should hand back or print.
    """
    clean = redact_all(record, redact_params)
    write_json(clean, uri)
    return clean
