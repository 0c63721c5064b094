"""``acoustic-env soundscape``: a deployment's recordings as one table of segments on each site's clock, with its
events, detection histories and page.

The run:

1. the inputs (files, a directory, or a clip list) are placed in time (``audio/timeline.py``): a file whose time
   cannot be read stops the run before any audio is read, with one line naming it;
2. each file's header is read (many at once) and its segments cut into spans of ``span_segments``; a file that
   cannot be opened is one row with its error; overlaps and clock jumps are reported;
3. the spans without a part under ``<output>/soundscape-parts/<settings>/`` are scored (``segments.py``), in this
   process up to ``in_process_max`` segments, else on Ray's workers (``distributed/windows.py``: an actor per core,
   the model loaded once per actor); each span's part is written as it is scored, so a stopped run, or a new
   night's files added to the inputs, scores only what has no part yet;
4. ``soundscape.parquet`` (every segment, keyed by site, file and start time), with a model ``events/`` and
   ``histories/``, and ``page/`` are written from all the parts, old and new.
"""

from __future__ import annotations

import os
import posixpath
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from acoustic_env.audio.timeline import Issue, Placed, place, timeline_issues, zone
from acoustic_env.config import ConfigError, FeatureParams
from acoustic_env.config.soundscape import SoundscapeConfig
from acoustic_env.errors import ClipError
from acoustic_env.jobs.record import lifecycle
from acoustic_env.jobs.soundscape.events import Event, EventRule, events, write_events
from acoustic_env.jobs.soundscape.histories import histories, write_histories
from acoustic_env.jobs.soundscape.segments import SegmentScorer, SegmentSpan, open_audio, schema, segment_bounds, \
    settings_key
from acoustic_env.jobs.windows import write_span
from acoustic_env.storage import join, list_parts, read_part, remove_stale_temporaries, write_parquet

#: Where, under the output, the spans' parts go (one folder per :func:`segments.settings_key`).
PARTS = "soundscape-parts"
#: Recordings whose headers are read at once: each read waits on storage (an object store's round trip), not on a
#: core.
HEADERS_AT_ONCE = 16


@dataclass(frozen=True)
class SoundscapeResult:
    """What a run did: its table (every segment), the files and how many were scored now, the timeline's issues,
    the events found, where the segments were scored and what was written."""

    table: pa.Table
    files: int
    failed_files: int
    scored_spans: int
    resumed_spans: int
    issues: list[Issue]
    events: int
    where: str
    written: dict[str, str]


def input_rows(inputs: Sequence[str]) -> list[dict[str, Any]]:
    """``clip_id``, ``uri`` and, from a clip list, ``site`` and ``start_time`` per recording."""
    from acoustic_env.audio.manifest import read_manifest
    from acoustic_env.jobs.predict import input_rows as predict_inputs

    rows, manifest = predict_inputs(inputs)
    if manifest is None:
        return rows
    table = read_manifest(manifest).table
    table = table.filter(pc.is_null(table["error_type"]))
    return table.select([c for c in ("clip_id", "uri", "site", "start_time") if c in table.column_names]).to_pylist()


def plan(placed: Sequence[Placed], segment_s: float, span_segments: int) -> tuple[list[dict[str, Any]],
                                                                                  list[SegmentSpan]]:
    """(one row per file that cannot be opened, the spans of the others): each header read, many at once."""
    with ThreadPoolExecutor(max_workers=HEADERS_AT_ONCE) as pool:
        opened = list(pool.map(_header, placed))
    failed, out = [], []
    for i, (p, header) in enumerate(zip(placed, opened)):
        if isinstance(header, str):
            failed.append({"site": p.site, "clip_id": p.clip_id, "uri": p.uri,
                           "start_time": round(p.start.timestamp() * 1000), "offset_s": 0.0, "error": header})
            continue
        frames, sr = header
        count = len(segment_bounds(frames, sr, segment_s))
        out += [SegmentSpan(i, p.clip_id, p.uri, first, min(first + span_segments, count), frames, sr, p.site,
                            p.start.timestamp()) for first in range(0, count, span_segments)]
    return failed, out


def _header(p: Placed) -> tuple[int, int] | str:
    """A recording's frames and rate, or why it cannot be scored (a file of no samples has no segment)."""
    try:
        fh, f = open_audio(p.uri)
    except ClipError as exc:
        return str(exc)
    frames, sr = int(f.frames), int(f.samplerate)
    f.close()
    fh.close()
    return (frames, sr) if frames > 0 else "decode/too_short: no audio samples in the file"


def soundscape(cfg: SoundscapeConfig, on_ray: Any = None) -> SoundscapeResult:
    """Run the job (see the module docstring): the steps below in order, each decided by a function of its own
    (tests/test_soundscape_job_parts.py); this glue is what a whole run's tests (tests/test_soundscape_run.py)
    reach."""
    # pragma: no mutate block (the glue: a whole run's tests reach it; what it decides is the steps' own)
    from acoustic_env.learn.artifact import load_model

    tz = zone(cfg.timezone)
    placed = recordings(cfg.inputs, cfg.timezone)
    rule = event_rule(cfg)
    model = load_model(cfg.model) if cfg.model else None
    params = FeatureParams()
    with lifecycle("soundscape", cfg.to_dict(), cfg.output, prefix="soundscape-") as run:
        failed, spans = plan(placed, cfg.segment_s, cfg.span_segments)
        issues = timeline_issues(placed, file_lengths(placed, spans))
        parts = parts_folder(cfg, params, model.model_id if model else None)
        remove_stale_temporaries(parts, time.time())
        todo = unscored(spans, list_parts(parts))
        where = _score(todo, parts, cfg, params, model, on_ray)
        classes = tuple(model.class_names) if model else ()
        table = assemble(failed, [read_part(join(parts, s.part_name())) for s in spans], classes)
        written = {"table": join(cfg.output, "soundscape.parquet")}
        write_parquet(table, written["table"])
        found: list[Event] = []
        if model is not None:
            found, more = write_model_outputs(table, classes, rule, tz, cfg.occasion_h, cfg.output)
            written.update(more)
        from acoustic_env.pages.soundscape import write_page

        written["page"] = write_page(table, join(cfg.output, "page"), tz, classes, issues, rule)
        result = SoundscapeResult(table, len(placed), len(failed), len(todo), len(spans) - len(todo), issues,
                                  len(found), where, written)
        run.complete(**record(result, rule, cfg.timezone))
    return result


def recordings(inputs: Sequence[str], timezone: str) -> list[Placed]:
    """The inputs' recordings placed in time (``audio/timeline.py``: a file whose time cannot be read stops the run
    there, before any audio is read).

    Raises:
        ConfigError: when the inputs hold no recording, rather than writing an empty table.
    """
    placed = place(input_rows(inputs), timezone)
    if not placed:
        raise ConfigError("inputs: no recordings found")
    return placed


def event_rule(cfg: SoundscapeConfig) -> EventRule:
    """The hysteresis of ``--event-high``, ``--event-low``, ``--event-min-duration-s`` and ``--event-max-gap-s``
    (checked before the run starts: a low over the high stops it in one line)."""
    return EventRule(cfg.event_high, cfg.event_low, cfg.event_min_duration_s, cfg.event_max_gap_s)


def file_lengths(placed: Sequence[Placed], spans: Sequence[SegmentSpan]) -> dict[str, float | None]:
    """Each recording's length in seconds, None for one that cannot be opened: the timeline's overlaps and clock
    jumps are measured from each file's end."""
    lengths = {s.clip_id: s.frames / s.sr for s in spans}
    return {p.clip_id: lengths.get(p.clip_id) for p in placed}


def parts_folder(cfg: SoundscapeConfig, params: FeatureParams, model_id: str | None) -> str:
    """Where this run's parts go: one folder per segment length, index settings, model and window length, so that
    a run with other settings scores afresh beside the earlier parts instead of reading them as its own."""
    return join(cfg.output, PARTS, settings_key(cfg.segment_s, params, model_id, cfg.window_s))


def unscored(spans: Sequence[SegmentSpan], listed: Sequence[str]) -> list[SegmentSpan]:
    """The spans without a part among ``listed`` (the parts folder's listing): what a run scores, so that a stopped
    run or a new night's files score only what has no part yet."""
    done = set(map(posixpath.basename, listed))
    return [s for s in spans if s.part_name() not in done]


@dataclass(frozen=True)
class Scoring:
    """Where the spans to do are scored: in this process (``here``) or on Ray, on ``device`` there (the indices
    alone need no accelerator), and where, in words."""

    here: bool
    device: str
    where: str


def scoring(todo: Sequence[SegmentSpan], cfg: SoundscapeConfig, has_model: bool,
            environ: Mapping[str, str] = os.environ) -> Scoring:
    """In this process up to ``--in-process-max`` segments when no cluster is named (``--ray-address`` or
    ``RAY_ADDRESS`` in ``environ``), else on Ray: a cluster named is used whatever the work."""
    segments = sum(s.end - s.first for s in todo)
    device = cfg.device if has_model else "cpu"
    if not todo:
        return Scoring(True, device, "nothing to score: every span has its part")
    if not (cfg.ray_address or environ.get("RAY_ADDRESS")) and segments <= cfg.in_process_max:
        return Scoring(True, device, f"in this process: {segments} segment(s), at most --in-process-max "
                                     f"({cfg.in_process_max})")
    return Scoring(False, device, f"on Ray: {segments} segment(s) in {len(todo)} span(s)")


def _score(todo: list[SegmentSpan], parts: str, cfg: SoundscapeConfig, params: FeatureParams, model: Any,
           on_ray: Any) -> str:
    """Score the spans to do where :func:`scoring` says, each written as a part; where they were scored, in
    words."""
    # pragma: no mutate block (the glue: a whole run's tests reach it, on Ray stood in for; the choice is scoring's)
    how = scoring(todo, cfg, model is not None)
    if how.here:
        score = SegmentScorer(cfg.segment_s, params, model, cfg.window_s, weights_cache=cfg.weights_cache,
                              device=cfg.device)
        for s in todo:
            write_span(score(s), parts, s.part_name())
        return how.where
    from acoustic_env.distributed.windows import score_spans

    if on_ray is not None:
        on_ray()
    for span, table in score_spans(todo, SegmentScorer, (cfg.segment_s, params, model, cfg.window_s),
                                   {"weights_cache": cfg.weights_cache}, address=cfg.ray_address,
                                   device=how.device):
        write_span(table, parts, span.part_name())
    return how.where


def assemble(failed: Sequence[Mapping[str, Any]], parts: Sequence[pa.Table], classes: tuple[str, ...]) -> pa.Table:
    """The table of every segment: the unreadable files' rows and every span's part, old and new, on one schema,
    in site, start time and file order (two files of a site starting at once stay in a stable order)."""
    table = pa.concat_tables([pa.Table.from_pylist(list(failed), schema=schema(classes)), *parts])
    return table.sort_by([("site", "ascending"), ("start_time", "ascending"), ("clip_id", "ascending")])


def write_model_outputs(table: pa.Table, classes: Sequence[str], rule: EventRule, tz: tzinfo, occasion_h: float,
                        output: str) -> tuple[list[Event], dict[str, str]]:
    """With a model: its windows merged into events (``events/``, times on the recorders' zone ``tz``; each site's
    Raven table from its first recording, up to its highest Nyquist frequency) and the detection histories
    (``histories/``, occasions of ``occasion_h`` hours). The events and the folders written."""
    found = events(_windows(table, classes), classes, rule)
    sites = {r["site"]: r for r in _firsts(table)}
    written = {"events": join(output, "events"), "histories": join(output, "histories")}
    write_events(found, {s: r["start"] for s, r in sites.items()}, written["events"], rule,
                 {s: r["nyquist"] for s, r in sites.items()}, lambda t: datetime.fromtimestamp(t, tz).isoformat())
    write_histories(histories(_segments(table), found, classes, occasion_h, tz), written["histories"])
    return found, written


def record(result: SoundscapeResult, rule: EventRule, timezone: str) -> dict[str, Any]:
    """What the run record keeps of a completed run: the counts, the timeline's issues, the rule and the zone the
    events were drawn with, and where the segments were scored."""
    return {"files": result.files, "failed_files": result.failed_files, "scored_spans": result.scored_spans,
            "resumed_spans": result.resumed_spans, "issues": [i.message for i in result.issues],
            "events": result.events, "event_rule": rule.said(), "timezone": timezone, "where": result.where}


def _firsts(table: pa.Table) -> list[dict[str, Any]]:
    """Per site its first recording's start (epoch seconds) and the highest Nyquist frequency of its files."""
    out: dict[str, dict[str, Any]] = {}
    for r in table.select(["site", "start_time", "offset_s", "sample_rate"]).to_pylist():
        start = r["start_time"].timestamp() - (r["offset_s"] or 0.0)
        seen = out.setdefault(r["site"], {"site": r["site"], "start": start, "nyquist": 0.0})
        seen["start"] = min(seen["start"], start)
        seen["nyquist"] = max(seen["nyquist"], (r["sample_rate"] or 0) / 2)
    return list(out.values())


def _windows(table: pa.Table, classes: Sequence[str]) -> list[dict[str, Any]]:
    """Every scored window on its site's clock (epoch seconds), with its file's start and probabilities."""
    out = []
    for r in table.to_pylist():
        file_start = r["start_time"].timestamp() - r["offset_s"]
        for k, (a, b) in enumerate(zip(r.get("win_start_s") or [], r.get("win_end_s") or [])):
            out.append({"site": r["site"], "clip_id": r["clip_id"], "start": file_start + a, "end": file_start + b,
                        "file_start": file_start, **{f"prob_{c}": r[f"win_prob_{c}"][k] for c in classes}})
    return out


def _segments(table: pa.Table) -> list[Mapping[str, Any]]:
    """Each segment's site, start (epoch seconds), length and error: the histories' effort."""
    return [{"site": r["site"], "start": r["start_time"].timestamp(), "duration_s": r["duration_s"] or 0.0,
             "error": r["error"]} for r in table.select(["site", "start_time", "duration_s", "error"]).to_pylist()]


def summary_lines(result: SoundscapeResult) -> list[str]:
    """What the command prints: the files and segments, where they were scored, the issues, what was written."""
    t = result.table
    bad = int(pc.sum(pc.is_valid(t["error"])).as_py() or 0)
    sites = len(set(t["site"].to_pylist()))
    lines = [f"soundscape: {result.files} file(s) on {sites} site(s), {t.num_rows} segment(s) ({bad} with an error, "
             f"{result.failed_files} file(s) unreadable); {result.scored_spans} span(s) scored now, "
             f"{result.resumed_spans} from an earlier run",
             f"  {result.where}"]
    lines += [f"  {i.kind.replace('_', ' ')}: {i.message}" for i in result.issues]
    if "events" in result.written:
        lines.append(f"  {result.events} event(s): {result.written['events']}; detection histories: "
                     f"{result.written['histories']}")
    lines += [f"  table: {result.written['table']}", f"  page: {result.written['page']}"]
    return lines
