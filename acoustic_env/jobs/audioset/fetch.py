"""``acoustic-env audioset fetch``: a segment list → clips, failure rows and a manifest extract takes as is.

Output layout (local or object storage):

* ``audio/<YTID>_<start ms>.<ext>``: one file per fetched segment, written whole
  (:mod:`acoustic_env.audioset.fetch`);
* ``failures/<run_id>-<n>.parquet``: one row per failed segment (``clip_id``, ``YTID``,
  ``start_s``, ``end_s``, ``reason``, ``message``, ``run_id``, ``started_at``,
  ``elapsed_s``), written while the run goes on, a few seconds apart;
* ``manifest.csv``: every segment of the list whose clip is in ``audio/`` (``clip_id``,
  ``uri``, ``labels`` separated by ``;``, ``group`` = YTID, ``start_s``, ``end_s``), rewritten at
  the end of each run; ``extract --manifest <output>/manifest.csv`` reads it as is;
* ``runs/<run_id>.json``: the run record with the counts per outcome and reason.

**Refused rows.** A row whose YTID is not a YouTube id (``../x``, ``a/b``, empty: an id is
data, never a path) is ``bad_id``, one whose bounds are not a segment ``bad_segment``
(:func:`acoustic_env.audioset.segments.refusals`, the rule ``sample`` applies): a failure row
each, its message naming the data row, and no download. A run with nothing to download
(an empty list, everything fetched, failed or refused) starts no Ray.

**Resuming.** A run lists ``audio/`` and reads ``failures/`` first: a segment with a clip
is never fetched again; one with a recorded failure is not tried again unless
``retry_failed``. A killed run loses only the downloads in flight (at most ``workers``;
their temporary files are in the workers' temporary directories, never in ``audio/``),
and the next run fetches those again: a downloader that outlived its killed worker may
have finished its download, but it made no clip.
"""

from __future__ import annotations

import itertools
import posixpath
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pyarrow as pa

from acoustic_env.audioset.fetch import Downloader, clip_name, fetch_segment
from acoustic_env.audioset.segments import read_segments, refusal_message, refusals
from acoustic_env.config.audioset import FetchConfig
from acoustic_env.csv_writer import csv_bytes
from acoustic_env.distributed.downloads import run_downloads
from acoustic_env.jobs.preflight import check_output_file, preflight
from acoustic_env.jobs.record import Run, lifecycle
from acoustic_env.jobs.results import FetchResult
from acoustic_env.storage import filesystem, join, read_parts, redact_all, write_bytes, write_parquet

AUDIO, FAILURES, MANIFEST = "audio", "failures", "manifest.csv"
FAILURE_COLUMNS = ("clip_id", "YTID", "start_s", "end_s", "reason", "message", "run_id", "started_at", "elapsed_s")
FLUSH_S = 2.0  # failure rows are written at most this long after they happen
REFUSED_LISTED = 20  # refused rows named in the run record and on the console (all are failure rows)


def present_clips(output: str) -> set[str]:
    """Names of the finished clip files in ``<output>/audio/`` (temporaries excluded)."""
    fs, path = filesystem(join(output, AUDIO))
    fs.invalidate_cache(path)
    try:
        names = fs.ls(path, detail=False)
    except FileNotFoundError:
        return set()
    return {posixpath.basename(n) for n in names if not posixpath.basename(n).startswith(".")}


def recorded_failures(output: str) -> pa.Table | None:
    """Every failure row of earlier runs (None: none recorded)."""
    return read_parts(join(output, FAILURES))


def _segments(uri: str) -> Iterator[dict[str, Any]]:
    """The list's rows, each with ``refused``: None, or ``bad_id`` / ``bad_segment`` (``refusals``' rule)."""
    for batch in read_segments(uri):
        bad_id, bad_segment = refusals(batch)
        reason = np.where(bad_id, "bad_id", np.where(bad_segment, "bad_segment", ""))
        for seg, why in zip(batch.select(["row", "YTID", "start_s", "end_s", "clip_id"]).to_pylist(), reason):
            yield {**seg, "refused": str(why) or None}


def _todo(cfg: FetchConfig, present: set[str], failed: set[str], counts: Counter[str]) -> Iterator[dict[str, Any]]:
    """The list's segments still to fetch or to refuse, streamed (the list may have millions of rows)."""
    seen: set[str] = set()
    for seg in _segments(cfg.segments):
        if cfg.limit and counts["segments"] >= cfg.limit:
            return
        counts["segments"] += 1
        if seg["clip_id"] in seen:
            counts["duplicate"] += 1
            continue
        seen.add(seg["clip_id"])
        if not seg["refused"] and clip_name(seg["clip_id"], cfg.clip_format) in present:
            counts["already_fetched"] += 1
        elif seg["clip_id"] in failed and not cfg.retry_failed:
            counts["already_failed"] += 1
        else:
            yield seg


def write_manifest(cfg: FetchConfig) -> tuple[str, int]:
    """``<output>/manifest.csv``: the list's segments whose clip is present, in the list's order."""
    present = present_clips(cfg.output)
    rows = []
    seen: set[str] = set()
    for batch in read_segments(cfg.segments):
        refused = np.logical_or(*refusals(batch))
        for seg, no in zip(batch.to_pylist(), refused):
            if no or seg["clip_id"] in seen or clip_name(seg["clip_id"], cfg.clip_format) not in present:
                continue
            seen.add(seg["clip_id"])
            rows.append({"clip_id": seg["clip_id"], "uri": join(cfg.output, AUDIO, clip_name(seg["clip_id"],
                                                                                             cfg.clip_format)),
                         "labels": seg["labels"], "group": seg["YTID"], "start_s": f"{seg['start_s']:.3f}",
                         "end_s": f"{seg['end_s']:.3f}"})
    uri = join(cfg.output, MANIFEST)
    write_bytes(csv_bytes(["clip_id", "uri", "labels", "group", "start_s", "end_s"], rows), uri)
    return uri, len(rows)


def check_paths(cfg: FetchConfig) -> None:
    """The output can be written, and its manifest would not replace the segment list: one line, before anything."""
    preflight(cfg)
    check_output_file(join(cfg.output, MANIFEST), "output (its manifest.csv)", {"segments list": cfg.segments})


def fetch(cfg: FetchConfig, progress: Callable[[str], None] | None = None) -> FetchResult:
    """Fetch what is left of ``cfg.segments`` (see the module docstring); the counts, the manifest, the record."""
    check_paths(cfg)
    for _ in read_segments(cfg.segments):  # a damaged list (a bad row anywhere) is one line before Ray starts:
        pass  # one streaming pass, seconds for AudioSet's 2 million rows, nothing to a run of downloads
    with lifecycle("audioset-fetch", redact_all(cfg.to_dict()), cfg.output) as run:
        return FetchResult.from_record(_fetch(cfg, run, progress))


def _fetch(cfg: FetchConfig, run: Run, progress: Callable[[str], None] | None) -> dict[str, Any]:
    """The job's work once its record is written: the downloads, their failures, the clip list."""
    run_id = run.run_id
    present = present_clips(cfg.output)
    earlier = recorded_failures(cfg.output)
    failed = set(earlier["clip_id"].to_pylist()) if earlier is not None else set()
    counts: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    pending: list[dict[str, Any]] = []
    refused: list[str] = []
    flushed = [time.time(), 0]

    def flush(force: bool = False) -> None:
        if pending and (force or time.time() - flushed[0] >= FLUSH_S):
            rows = [{k: r[k] for k in FAILURE_COLUMNS} for r in pending]
            table = pa.Table.from_pylist(rows, schema=_failure_schema())
            write_parquet(table, join(cfg.output, FAILURES, f"{run_id}-{flushed[1]:05d}.parquet"))
            pending.clear()
            flushed[0], flushed[1] = time.time(), flushed[1] + 1

    def on_result(row: dict[str, Any]) -> None:
        if row["ok"]:
            counts["fetched"] += 1
        else:
            counts["failed"] += 1
            reasons[row["reason"]] += 1
            pending.append({**row, "run_id": run_id})
            if row["reason"] in ("bad_id", "bad_segment") and len(refused) < REFUSED_LISTED:
                refused.append(row["message"])
        flush()
        if progress and (counts["fetched"] + counts["failed"]) % 100 == 0:
            progress(f"  {counts['fetched']} fetched, {counts['failed']} failed so far")

    downloader = Downloader(cfg.downloader, cfg.url_template, cfg.clip_format, cfg.timeout_s, cfg.max_bytes)
    items = _refused_first(_todo(cfg, present, failed, counts), on_result)
    first = next(items, None)  # nothing to download: no Ray started for nothing
    first_slot = None if first is None else run_downloads(
        fetch_segment, itertools.chain([first], items), cfg.workers, cfg.rate_per_s, on_result, cfg.ray_address,
        downloader=downloader, audio_dir=join(cfg.output, AUDIO))
    flush(force=True)
    manifest, clips = write_manifest(cfg)
    return run.complete(counts={**dict(counts), "failed_by_reason": dict(reasons), "manifest_clips": clips},
                        manifest=manifest, first_slot=first_slot, refused_rows=refused)


def _refused_first(segments: Iterator[dict[str, Any]], on_result: Callable[[dict[str, Any]], None]
                   ) -> Iterator[dict[str, Any]]:
    """Refused rows (``bad_id``, ``bad_segment``) become failure rows here, without a download; the rest go on."""
    for seg in segments:
        if seg["refused"]:
            on_result({**seg, "ok": False, "reason": seg["refused"], "started_at": time.time(), "elapsed_s": 0.0,
                       "message": refusal_message(seg["refused"], seg)})
            continue
        yield {k: seg[k] for k in ("YTID", "start_s", "end_s", "clip_id")}


def _failure_schema() -> pa.Schema:
    return pa.schema([("clip_id", pa.string()), ("YTID", pa.string()), ("start_s", pa.float64()),
                      ("end_s", pa.float64()), ("reason", pa.string()), ("message", pa.string()),
                      ("run_id", pa.string()), ("started_at", pa.float64()), ("elapsed_s", pa.float64())])


def summary_lines(result: FetchResult) -> list[str]:
    """What the command prints: the outcome counts, the failures by reason, where the manifest is."""
    c = result.counts
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(c["failed_by_reason"].items())) or "none"
    return [f"run {result.run_id}: {c.get('fetched', 0)} fetched, {c.get('failed', 0)} failed ({reasons}); "
            f"{c.get('already_fetched', 0)} fetched and {c.get('already_failed', 0)} failed before, skipped; "
            f"{result.wall_s:.1f} s",
            f"  manifest: {result.manifest} ({c['manifest_clips']} clips; extract --manifest takes it as is)",
            f"  failures: {join(result.output, FAILURES)}/",
            *(f"  refused {message}" for message in result.record["refused_rows"][:5])]
