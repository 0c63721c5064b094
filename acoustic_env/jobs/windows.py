"""Long recordings: each file cut into windows, each window scored as a clip, a table of windows out.

Users of tools like BirdNET-Analyzer expect, for an hour of field recording, a row per
window with its times and scores, and a summary per file; ``predict --windows``, the
Python API (``ae.predict_windows``), ``annotate --windows`` and the service
(``POST /predict?windows=1``) all go through :func:`recording_rows`:

* the windows are read from the open file one batch at a time
  (:class:`acoustic_env.audio.windows.Recording`), so memory holds ``window_batch``
  windows of audio whatever the length of the file;
* each file's windows are cut into spans (``span_windows`` windows, :class:`Span`), scored one after
  the other in this process, or spread over Ray's workers, every core (and a share of each GPU) at once
  (``distributed/windows.py``): where is decided by the options and, for a local run of more than
  ``in_process_max`` windows, by timing the first span here (or, of short files, the first spans that make a
  span's worth of windows: :func:`first_spans`, :func:`ray_is_sooner`, :class:`Route`);
  the table comes out in file and time order
  whatever order the spans finish in, and with an ``output`` each span is written as a part when scored,
  so that a stopped run scores only the spans it lacks;
* a batch is scored by :func:`score_clips`, the CPU features and embedders of
  :func:`acoustic_env.audio.featurize.batch_outputs` and the model's ``predict_table``,
  with the decode and feature parameters of the model's training table: the steps
  ``predict`` runs on a clip, so a window that covers a whole clip gets its probabilities.

The window table has predict's columns plus ``start_s`` and ``end_s``;
:func:`summarize` makes the per-file summary from it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import posixpath
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from typing import Any

import numpy as np
import pyarrow as pa

from acoustic_env.audio.decode import DecodedClip
from acoustic_env.audio.featurize import batch_outputs, clip_note, load_nets, pick_columns
from acoustic_env.audio.rows import redact_columns
from acoustic_env.audio.windows import Recording, Window, spans
from acoustic_env.config import ConfigError, DecodeParams, FeatureParams, WindowParams
from acoustic_env.embedders.registry import get
from acoustic_env.errors import ClipError, OutputWriteError
from acoustic_env.features.logmel import COLUMN as LOGMEL
from acoustic_env.learn.artifact import Model
from acoustic_env.storage import (
    join,
    list_parts,
    read_part,
    redact,
    remove_stale_temporaries,
    transport_failure,
    write_parquet,
)

log = logging.getLogger("acoustic_env.jobs.windows")

#: The columns a window row adds to predict's.
TIMES = (("start_s", pa.float64()), ("end_s", pa.float64()))


@dataclass(frozen=True)
class WindowResult:
    """One row per window (``clip_id``, ``uri``, ``start_s``, ``end_s``, ``predicted``, ``prob_<class>``,
    ``error``, ``note``) and one per file (:func:`summarize`), with the window and hop used, and where the windows
    were scored and why (:class:`Route`)."""

    table: pa.Table
    summary: pa.Table
    window_s: float
    hop_s: float
    route: Route


def window_lengths(window: WindowParams, model: Model, decode: DecodeParams) -> tuple[float, float]:
    """(window_s, hop_s): the given ones, else the training clip length; checked against the decode limits.

    A window is a clip: shorter than ``decode.min_duration_s`` it would be refused, longer
    than ``decode.max_duration_s`` it would be cut (so the default is at most that).
    """
    window_s = window.window_s or min(model.training_clip_s()[0], decode.max_duration_s)
    if not decode.min_duration_s <= window_s <= decode.max_duration_s:
        raise ConfigError(f"windows.window_s: must be in [decode.min_duration_s, decode.max_duration_s] = "
                          f"[{decode.min_duration_s:g}, {decode.max_duration_s:g}] s, got {window_s:g}")
    return window_s, window.hop_s or window_s


def score_clips(model: Model, clips: Sequence[DecodedClip], columns: Mapping[str, int], nets: Mapping[str, Any],
                decode: DecodeParams, features: FeatureParams) -> tuple[dict[str, list[Any]], dict[str, Any]]:
    """(the model's ``predict_table`` as columns, every computed column as [n, dim]: the images as a list) for
    decoded clips."""
    outs = [pick_columns(o, columns) for o in batch_outputs(clips, columns, nets, decode, features)]
    vectors = {c: [o[c] for o in outs] if c == LOGMEL else np.stack([o[c] for o in outs]) for c in columns}
    return model.predict_table({c: vectors[c] for c in model.inputs}).to_pydict(), vectors


def batches(items: Iterable[Window], size: int) -> Iterator[list[Window]]:
    """Consecutive lists of ``size`` items (the last one shorter), drawn as they are wanted."""
    it = iter(items)
    while batch := list(islice(it, size)):
        yield batch


def recording_rows(model: Model, windows: Iterable[Window], base: Mapping[str, Any], *, columns: Mapping[str, int],
                   nets: Mapping[str, Any], decode: DecodeParams, features: FeatureParams,
                   batch: int) -> Iterator[dict[str, Any]]:
    """One row per window (``base`` holds ``clip_id`` and ``uri``), scored ``batch`` windows at a time."""
    probs = [f"prob_{c}" for c in model.class_names]
    for group in batches(windows, batch):
        clips = [w.clip for w in group if w.clip is not None]
        scored = score_clips(model, clips, columns, nets, decode, features)[0] if clips else {}
        k = 0
        for w in group:
            row = {**base, "start_s": w.start_s, "end_s": w.end_s, "error": w.error, "note": None,
                   "silent": False}
            if w.clip is not None:
                row.update({p: scored[p][k] for p in ("predicted", *probs)}, silent=w.clip.is_silent,
                           note=clip_note(w.clip.is_silent, w.clip.orig_duration_s, w.end_s - w.start_s, decode))
                k += 1
            yield row


def predict_windows(inputs: Sequence[str], model: str, *, window: WindowParams = WindowParams(windows=True),
                    audio_root: str | None = None, weights_cache: str | None = None, device: str = "cpu",
                    output: str | None = None, ray_address: str | None = None,
                    on_ray: Callable[[], None] | None = None) -> WindowResult:
    """Score every file of ``inputs`` (files, a directory or a clip list) in windows (see :func:`score_windows`)."""
    from acoustic_env.jobs.predict import input_rows
    from acoustic_env.jobs.preflight import check_device, check_input, check_output
    from acoustic_env.learn.artifact import load_model

    check_input(model, "model")
    check_device(device)
    if output:
        check_output(output, "output")
    m = load_model(model)
    return score_windows(m, input_rows(inputs, audio_root)[0], window, weights_cache=weights_cache, device=device,
                         output=output, ray_address=ray_address, on_ray=on_ray)


@dataclass(frozen=True)
class Span:
    """Windows ``first`` .. ``end - 1`` of the ``file``-th recording of a run: what one worker scores at a time.

    ``frames`` and ``sr`` (the file's, read when the run was planned) give the windows' times even when the
    file cannot be opened again where the span is scored.
    """

    file: int
    clip_id: str
    uri: str
    first: int
    end: int
    frames: int
    sr: int

    def part_name(self) -> str:
        """The part a span is written to: the file named by a hash (its URI may hold a secret), then the windows."""
        key = hashlib.sha256(f"{self.clip_id}\0{self.uri}".encode()).hexdigest()[:20]
        return f"{key}-{self.first:09d}-{self.end:09d}.parquet"


@dataclass(frozen=True)
class Plan:
    """Each file's row for the summary (``clip_id``, ``uri``, ``duration_s``, ``error``), and its windows in spans."""

    files: list[dict[str, Any]]
    spans: list[Span]


def plan_spans(rows: Sequence[Mapping[str, Any]], decode: DecodeParams, window_s: float, hop_s: float,
               window: WindowParams) -> Plan:
    """Open each file (its header only, many at once: on object storage each is a round trip) and cut its windows
    into spans of ``window.span_windows``; a file that cannot be opened, or has too many windows, is a summary row
    with its error and no span."""
    def one(r: Mapping[str, Any]) -> tuple[dict[str, Any], int, int, int]:
        base = {"clip_id": str(r["clip_id"]), "uri": str(r["uri"])}
        try:
            with Recording(base["uri"], decode) as rec:
                count = rec.window_count(window_s, hop_s, window.max_windows)
                return {**base, "duration_s": rec.duration_s, "error": None}, count, rec.frames, rec.sample_rate
        except ClipError as exc:
            return {**base, "duration_s": None, "error": str(exc)}, 0, 0, 0

    with ThreadPoolExecutor(max_workers=16) as pool:
        opened = list(pool.map(one, rows))
    spans = [Span(i, f["clip_id"], f["uri"], first, min(first + window.span_windows, count), frames, sr)
             for i, (f, count, frames, sr) in enumerate(opened) for first in range(0, count, window.span_windows)]
    return Plan([f for f, *_ in opened], spans)


class SpanScorer:
    """Scores spans: the model and its embedders loaded once (a Ray actor's life, or an in-process run's), each span
    read window by window from its file and scored ``window_batch`` windows at a time (:func:`recording_rows`), so
    that a worker holds that many windows of audio whatever the file's length.

    ``parts``: where each span's rows are written as one Parquet part (:meth:`Span.part_name`) as soon as they are
    scored; a resumed run reads them back instead of scoring the span again.
    """

    def __init__(self, model: Model, window: WindowParams, window_s: float, hop_s: float, *,
                 weights_cache: str | None = None, device: str = "cpu", parts: str | None = None) -> None:
        self.model, self.window_s, self.hop_s, self.batch, self.parts = model, window_s, hop_s, window.window_batch, parts
        self.decode, self.features, _ = model.extraction_params()
        embedders, _, columns = model.feature_plan()
        self.columns = {c: columns[c] for c in model.inputs}  # the tagger's scores are for a clip's tags
        self.nets = load_nets(embedders, weights_cache, device)

    def __call__(self, span: Span) -> pa.Table:
        """The span's rows as the window table has them (its URIs not yet redacted), written first with ``parts``."""
        base = {"clip_id": span.clip_id, "uri": span.uri}
        try:
            with Recording(span.uri, self.decode) as rec:
                out = list(recording_rows(self.model, rec.windows(self.window_s, self.hop_s, None, span.first, span.end),
                                          base, columns=self.columns, nets=self.nets, decode=self.decode,
                                          features=self.features, batch=self.batch))
        except ClipError as exc:  # opened when the run was planned, not now: each window of the span says why
            out = [{**base, "start_s": a / span.sr, "end_s": b / span.sr, "error": str(exc), "note": None,
                    "silent": False} for a, b in islice(spans(span.frames, span.sr, self.window_s, self.hop_s,
                                                              self.decode.min_duration_s), span.first, span.end)]
        from acoustic_env.jobs.predict import rows_table

        table = rows_table(self.model, out, TIMES)
        if self.parts is not None:
            write_span(redact_columns(table), self.parts, span.part_name())
        return table


def write_span(table: pa.Table, parts: str, name: str) -> None:
    """One span's part; a failure is an OutputWriteError naming the output (the run stops: so would every part)."""
    try:
        write_parquet(table, join(parts, name))
    except Exception as exc:  # noqa: BLE001 - every transport says it its own way
        raise OutputWriteError(redact(f"output: cannot write to {parts}: {transport_failure(exc)[1]} "
                                      f"(writing {name})")) from exc


@dataclass(frozen=True)
class Route:
    """Where a run's windows are scored (``in_process``: here, else on Ray) and ``why``, one sentence that the
    console and the run's record quote as it is."""

    in_process: bool
    why: str


def route_by_options(window: WindowParams, windows_to_do: int, ray_address: str | None) -> Route | None:
    """The route the options decide alone: a named cluster (``ray_address`` or ``RAY_ADDRESS``) is always Ray; at
    most ``window.in_process_max`` windows to do stay here (no Ray start for a few short files), and beyond them
    ``in_process_max`` 0 is Ray. None: the first spans are to be timed here (:func:`first_spans`,
    :func:`ray_is_sooner`)."""
    if ray_address or os.environ.get("RAY_ADDRESS"):
        return Route(False, "on Ray: a cluster is named (--ray-address or RAY_ADDRESS)")
    if windows_to_do <= window.in_process_max:
        return Route(True, f"in this process: {windows_to_do} window(s) to score, at most "
                           f"--windows-in-process-max ({window.in_process_max})")
    if window.in_process_max == 0:
        return Route(False, "on Ray: --windows-in-process-max 0")
    return None


#: What a local Ray costs a run before its actors score like this process, in wall seconds: Ray's start, Ray Data's
#: executor, and each actor loading the model and its embedders. Fitted to the quiet 2-core figures of
#: benchmarks/RESULTS.md (long_recordings.py, 2026-11-26, a BirdNET model in 3-s windows): every window on Ray took
#: 19.7 s for 320 windows and 26.8 s for 800, in one process 11.8 s and 25.7 s (0.029 s and 0.036 CPU-s a window);
#: taking the in-process start and two actors' share of the CPU-seconds from the Ray figures leaves 11.4 s and
#: 9.9 s. The larger is kept: a close call stays in this process, which the issue asks never to be slower.
RAY_FIXED_S = 11.0
#: How much sooner Ray must be expected to finish before the rest goes there: one span's timing varies by about a tenth
#: from the next one's, and a quiet 2-core run of 40 min (a close call: ~22 s here against ~24 s) still went to Ray
#: once in five and took 36.8 s against 28.7. Within the margin the gain forgone is small; a wrong Ray is not.
RAY_MARGIN = 0.15


def ray_is_sooner(span_wall_s: float, span_cpu_s: float, span_windows: int, windows_left: int, spans_left: int,
                  cpus: int, spans_timed: int = 1) -> tuple[bool, str]:
    """Whether the rest of a local run would finish sooner on Ray than here, from the first spans timed here (one, or
    as many short files' spans as make one span's worth of windows: :func:`first_spans`): their wall and process
    CPU seconds for their ``span_windows`` windows in ``spans_timed`` spans; ``windows_left`` in ``spans_left`` spans
    remain, and Ray would have ``cpus`` cores. The sentence that says why comes with it.

    Ray is chosen when its estimate is more than :data:`RAY_MARGIN` below this process's (a tie stays here).
    Here, the rest takes the span's wall seconds a window. On Ray it costs :data:`RAY_FIXED_S`, then the rest's
    CPU-seconds (the span's a window) spread over one actor per core, no more actors than spans: CPU-seconds, not
    wall, because this process's libraries run threads of their own (1.2 to 1.6 cores busy on 2 cores) while an actor
    runs one, so the cores those threads already used are not counted twice. A process that kept less than one core
    busy (a loaded machine, or a wait for the network) says what each actor would get: Ray's estimate is stretched
    by the same share, fixed cost included, so that it leans to staying here, never to a Ray no quicker.
    """
    busy = span_cpu_s / span_wall_s if span_wall_s > 0 else 1.0
    share = min(1.0, busy) or 1.0
    actors = max(1, min(cpus, spans_left))
    here = windows_left * span_wall_s / span_windows
    ray = (RAY_FIXED_S + windows_left * span_cpu_s / span_windows / actors) / share
    sooner = ray < here * (1 - RAY_MARGIN)
    timed = f"span ({span_windows} windows)" if spans_timed == 1 else f"{spans_timed} spans ({span_windows} windows)"
    return sooner, (f"{'on Ray' if sooner else 'in this process'}: the first {timed} took "
                    f"{span_wall_s:.1f} s here on {busy:.1f} cores; the other {windows_left} windows ~{here:.0f} s "
                    f"here against ~{ray:.0f} s on Ray ({actors} actor(s), {RAY_FIXED_S:g} s to start)")


def first_spans(spans: Sequence[Span], windows: int) -> int:
    """How many of the first ``spans`` to time: the fewest that hold ``windows`` windows (one span's worth), or all.

    A long file's first span is one; a run of many short files times as many of them (each opened and scored as
    the rest will be) as make a span's worth. Timed on one file of a window, the first batch's one-off costs
    (below) passed for the cost of every window: 10,000 short files were estimated at ~8,321 s on Ray, and took
    318 s there."""
    total = 0
    for n, s in enumerate(spans, 1):
        total += s.end - s.first
        if total >= windows:
            return n
    return len(spans)


def timed_route(score: Callable[[Span], pa.Table], spans: Sequence[Span], windows_left: int, spans_left: int) -> \
        tuple[list[pa.Table], Route]:
    """The spans' rows, scored here and timed together (:func:`first_spans` chose them), and the route of the rest
    (:func:`ray_is_sooner`, Ray's cores: this process's CPU affinity). The scorer is built before (its model and
    embedders loaded outside the timing); the first batch still pays one-off costs (lazy imports, the interpreter's
    first allocations: 2.59 CPU-s against 2.49 and 2.33 for the next two spans of a BirdNET model), which leans the
    estimate a little to Ray."""
    wall, cpu = time.perf_counter(), time.process_time()
    tables = [score(s) for s in spans]
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    sooner, why = ray_is_sooner(wall, cpu, sum(s.end - s.first for s in spans), windows_left, spans_left,
                                len(os.sched_getaffinity(0)), len(spans))
    return tables, Route(not sooner, why)


def settings_key(m: Model, window_s: float, hop_s: float, window: WindowParams) -> str:
    """The folder of a run's parts under ``<output>/window-parts/``: a run with another model, window, hop or span
    length writes beside them, never among them (a part is one span of one file, scored by one model)."""
    said = json.dumps([m.model_id, window_s, hop_s, window.span_windows])
    return hashlib.sha256(said.encode()).hexdigest()[:16]


#: Where, under a run's ``output``, the windows' parts go: one folder per :func:`settings_key`.
WINDOW_PARTS = "window-parts"


def score_windows(m: Model, rows: Sequence[Mapping[str, Any]], window: WindowParams, *,
                  weights_cache: str | None = None, device: str = "cpu", output: str | None = None,
                  ray_address: str | None = None, on_ray: Callable[[], None] | None = None) -> WindowResult:
    """Score the recordings of ``rows`` (``clip_id``, ``uri``) in windows; the table in file and time order.

    The decode and feature parameters are those of the model's training table; a file
    that cannot be opened is a summary row with its error and no windows. Each file's windows are cut into
    spans (:func:`plan_spans`), scored here one after the other or on Ray (``distributed/windows.py``), spans of
    every file at once on every core: a named cluster is Ray, up to ``window.in_process_max`` windows stay here
    (:func:`route_by_options`), and beyond them the first span (short files: a span's worth of their spans) is
    scored here and timed, the rest going to Ray only when it is expected to finish them sooner
    (:func:`timed_route`; what was timed is kept, never scored twice).
    ``output``: each span's rows are written there as a part when scored (``window-parts/``), and a run that was
    stopped scores only the spans without one. ``on_ray``: called once before Ray starts (a command's console
    policy: Ray's output to its log).
    """
    decode = m.extraction_params()[0]
    window_s, hop_s = window_lengths(window, m, decode)
    plan = plan_spans(rows, decode, window_s, hop_s, window)
    parts = join(output, WINDOW_PARTS, settings_key(m, window_s, hop_s, window)) if output else None
    if parts:
        remove_stale_temporaries(parts, time.time())  # what a killed run's writers left half-written
    done = set(map(posixpath.basename, list_parts(parts))) if parts else set()
    todo = {i: s for i, s in enumerate(plan.spans) if s.part_name() not in done}
    tables: dict[int, pa.Table] = {}
    scorer = {"weights_cache": weights_cache, "device": device, "parts": parts}
    windows_to_do = sum(s.end - s.first for s in todo.values())
    route = route_by_options(window, windows_to_do, ray_address)
    score = SpanScorer(m, window, window_s, hop_s, **scorer) if todo and (route is None or route.in_process) else None
    if route is None:  # the first spans say whether Ray would finish the rest sooner; they are kept either way
        first = list(todo)[:first_spans(list(todo.values()), window.span_windows)]
        spans = [todo.pop(i) for i in first]
        timed, route = timed_route(score, spans, windows_to_do - sum(s.end - s.first for s in spans), len(todo))
        tables.update(zip(first, timed))
    if todo and not route.in_process and on_ray is not None:
        on_ray()  # first: the console policy opens the log file that the line below goes to
    log.info("windows %s", route.why)
    if route.in_process:
        tables.update({i: score(s) for i, s in todo.items()})
    elif todo:
        from acoustic_env.distributed.windows import score_spans

        embedders = m.feature_plan()[0]
        number = {s: i for i, s in todo.items()}
        tables.update({number[s]: t for s, t in score_spans(
            list(todo.values()), SpanScorer, (m, window, window_s, hop_s), scorer, address=ray_address,
            device=device if embedders else "cpu",  # a model of CPU features alone has nothing for a GPU to do
            memory=sum(get(name).memory for name in embedders))})
    for i, s in enumerate(plan.spans):  # the spans a stopped run wrote, read back
        if i not in tables:
            tables[i] = read_part(join(parts, s.part_name()))
    from acoustic_env.jobs.predict import rows_table

    table = pa.concat_tables([rows_table(m, [], TIMES), *(tables[i] for i in range(len(plan.spans)))])
    summary = summarize(table, plan.files, m.class_names, m.kind)
    return WindowResult(redact_columns(table), redact_columns(summary), window_s, hop_s, route)


def summarize(table: pa.Table, files: Sequence[Mapping[str, Any]], class_names: Sequence[str],
              kind: str) -> pa.Table:
    """One row per file: its length, how many windows were scored, silent or failed, and per class the mean and
    the highest probability over the scored windows and the share of them predicted as that class.

    ``files``: ``clip_id``, ``uri``, ``duration_s`` and ``error`` (a file that could not be opened has no windows).
    """
    ids = np.asarray(table["clip_id"].to_pylist(), dtype=object)
    probs = np.stack([table[f"prob_{c}"].to_numpy(zero_copy_only=False) for c in class_names], axis=1) \
        if table.num_rows else np.empty((0, len(class_names)))
    predicted = table["predicted"].to_pylist()
    errors = np.array([e is not None for e in table["error"].to_pylist()], dtype=bool)
    out = []
    for f in files:
        mine = ids == f["clip_id"]
        scored = mine & np.isfinite(probs).all(axis=1)
        p = probs[scored]
        chosen = [predicted[i] for i in np.flatnonzero(scored)]
        row: dict[str, Any] = {**f, "windows": int(mine.sum()), "scored": int(scored.sum()),
                               "silent": int((mine & ~scored & ~errors).sum()), "failed": int((mine & errors).sum())}
        for j, c in enumerate(class_names):
            hits = sum(c in x if kind == "multi_label" else c == x for x in chosen)
            row.update({f"mean_{c}": float(p[:, j].mean()) if len(p) else None,
                        f"max_{c}": float(p[:, j].max()) if len(p) else None,
                        f"share_{c}": hits / len(p) if len(p) else None})
        out.append(row)
    schema = pa.schema([("clip_id", pa.string()), ("uri", pa.string()), ("duration_s", pa.float64()),
                        ("error", pa.string()), ("windows", pa.int64()), ("scored", pa.int64()),
                        ("silent", pa.int64()), ("failed", pa.int64()),
                        *[(f"{s}_{c}", pa.float64()) for c in class_names for s in ("mean", "max", "share")]])
    return pa.Table.from_pylist(out, schema=schema)
