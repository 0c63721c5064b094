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
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from acoustic_env.audio.timeline import Issue, Placed, place, timeline_issues, zone
from acoustic_env.config import ConfigError, FeatureParams
from acoustic_env.config.soundscape import SoundscapeConfig
from acoustic_env.errors import ClipError
from acoustic_env.jobs.record import lifecycle
from acoustic_env.jobs.soundscape.events import EventRule, events, write_events
from acoustic_env.jobs.soundscape.histories import histories, write_histories
from acoustic_env.jobs.soundscape.segments import SegmentScorer, SegmentSpan, open_audio, schema, segment_bounds, \
    settings_key
from acoustic_env.jobs.windows import write_span
from acoustic_env.storage import join, list_parts, read_part, remove_stale_temporaries, write_parquet

#: Where, under the output, the spans' parts go (one folder per :func:`segments.settings_key`).
PARTS = "soundscape-parts"


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
    def one(p: Placed) -> tuple[int, int, str | None]:
        try:
            fh, f = open_audio(p.uri)
        except ClipError as exc:
            return 0, 0, str(exc)
        frames, sr = int(f.frames), int(f.samplerate)
        f.close()
        fh.close()
        return (frames, sr, None) if frames > 0 else (0, 0, "decode/too_short: no audio samples in the file")

    with ThreadPoolExecutor(max_workers=16) as pool:
        opened = list(pool.map(one, placed))
    failed, out = [], []
    for i, (p, (frames, sr, error)) in enumerate(zip(placed, opened)):
        if error is not None:
            failed.append({"site": p.site, "clip_id": p.clip_id, "uri": p.uri,
                           "start_time": round(p.start.timestamp() * 1000), "offset_s": 0.0, "error": error})
            continue
        count = len(segment_bounds(frames, sr, segment_s))
        out += [SegmentSpan(i, p.clip_id, p.uri, first, min(first + span_segments, count), frames, sr, p.site,
                            p.start.timestamp()) for first in range(0, count, span_segments)]
    return failed, out


def soundscape(cfg: SoundscapeConfig, on_ray: Any = None) -> SoundscapeResult:
    """Run the job (see the module docstring)."""
    from acoustic_env.learn.artifact import load_model

    tz = zone(cfg.timezone)
    placed = place(input_rows(cfg.inputs), cfg.timezone)
    if not placed:
        raise ConfigError("inputs: no recordings found")
    rule = EventRule(cfg.event_high, cfg.event_low, cfg.event_min_duration_s, cfg.event_max_gap_s)
    model = load_model(cfg.model) if cfg.model else None
    params = FeatureParams()
    with lifecycle("soundscape", cfg.to_dict(), cfg.output, prefix="soundscape-") as run:
        failed, spans = plan(placed, cfg.segment_s, cfg.span_segments)
        lengths = {s.clip_id: s.frames / s.sr for s in spans}
        issues = timeline_issues(placed, {p.clip_id: lengths.get(p.clip_id) for p in placed})
        parts = join(cfg.output, PARTS, settings_key(cfg.segment_s, params, model.model_id if model else None,
                                                     cfg.window_s))
        remove_stale_temporaries(parts, time.time())
        done = set(map(posixpath.basename, list_parts(parts)))
        todo = [s for s in spans if s.part_name() not in done]
        where = _score(todo, parts, cfg, params, model, on_ray)
        classes = tuple(model.class_names) if model else ()
        table = pa.concat_tables([pa.Table.from_pylist(failed, schema=schema(classes)),
                                  *(read_part(join(parts, s.part_name())) for s in spans)]).cast(schema(classes))
        table = table.sort_by([("site", "ascending"), ("start_time", "ascending"), ("clip_id", "ascending")])
        written = {"table": join(cfg.output, "soundscape.parquet")}
        write_parquet(table, written["table"])
        found = []
        if model is not None:
            found = events(_windows(table, classes), classes, rule)
            sites = {r["site"]: r for r in _firsts(table)}
            written["events"] = join(cfg.output, "events")
            write_events(found, {s: r["start"] for s, r in sites.items()}, written["events"], rule,
                         {s: r["nyquist"] for s, r in sites.items()},
                         lambda t: datetime.fromtimestamp(t, tz).isoformat())
            written["histories"] = join(cfg.output, "histories")
            write_histories(histories(_segments(table), found, classes, cfg.occasion_h, tz), written["histories"])
        from acoustic_env.pages.soundscape import write_page

        written["page"] = write_page(table, join(cfg.output, "page"), tz, classes, issues, rule)
        run.complete(files=len(placed), failed_files=len(failed), scored_spans=len(todo),
                     resumed_spans=len(spans) - len(todo), issues=[i.message for i in issues], events=len(found),
                     event_rule=rule.said(), timezone=cfg.timezone, where=where)
    return SoundscapeResult(table, len(placed), len(failed), len(todo), len(spans) - len(todo), issues, len(found),
                            where, written)


def _score(todo: list[SegmentSpan], parts: str, cfg: SoundscapeConfig, params: FeatureParams, model: Any,
           on_ray: Any) -> str:
    """Score the spans to do, each written as a part; where they were scored, in words."""
    segments = sum(s.end - s.first for s in todo)
    named = cfg.ray_address or os.environ.get("RAY_ADDRESS")
    if not todo:
        return "nothing to score: every span has its part"
    if not named and segments <= cfg.in_process_max:
        score = SegmentScorer(cfg.segment_s, params, model, cfg.window_s, weights_cache=cfg.weights_cache,
                              device=cfg.device)
        for s in todo:
            write_span(score(s), parts, s.part_name())
        return f"in this process: {segments} segment(s), at most --in-process-max ({cfg.in_process_max})"
    from acoustic_env.distributed.windows import score_spans

    if on_ray is not None:
        on_ray()
    for span, table in score_spans(todo, SegmentScorer, (cfg.segment_s, params, model, cfg.window_s),
                                   {"weights_cache": cfg.weights_cache}, address=cfg.ray_address,
                                   device=cfg.device if model is not None else "cpu"):
        write_span(table, parts, span.part_name())
    return f"on Ray: {segments} segment(s) in {len(todo)} span(s)"


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
