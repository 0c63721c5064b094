"""Drawing a task's clips from a segment list: per-class targets, a balanced option, one pass, bounded memory.

The studies this tool follows each sampled before they extracted anything (about
6,800 natural and 6,500 urban clips of the unbalanced list; the four classes Speech,
Animal, Music and Vehicle, balanced). ``draw_sample`` does that for any task:

* **Who is eligible.** Each row gets at most one reason to be left out, counted in
  the report: ``bad_id`` (its YTID is not a YouTube id: an id is data, never a path),
  ``bad_segment`` (start or end not a number, start < 0, or end <= start; the rule of
  :func:`acoustic_env.audioset.segments.refusals`, which ``fetch`` applies too; the report
  lists the first ``REFUSED_LISTED`` rows refused for either, by data row),
  ``excluded_video`` (its video is in an ``exclude`` list, e.g. the evaluation list),
  ``unlabelled``, ``unknown`` (no class of the task claims any of its labels, by the
  task's own reader :meth:`Task.claim_matrix`: MIDs or display names) and,
  for a single-label task, ``ambiguous`` (two classes claim it: the task's own rule,
  the one train and audit apply; counted per pair of classes). A multi-label task has
  no ambiguous clips: a clip counts for each of its classes.
* **The draw.** Every clip gets a priority, a 64-bit SipHash of its id keyed by the
  seed; a class takes its eligible clips of lowest priority (bottom-k sampling, a
  reservoir sample that needs no second pass). The draw is therefore uniform within
  each class, the same for the same list, task and seed whatever the row order, and
  a smaller target's sample is contained in a larger one's. ``total`` without
  ``balanced`` is one pool of all eligible clips (the classes in their own proportions).
* **Memory.** The list is read once in Arrow batches of a few MB
  (:mod:`acoustic_env.audioset.segments`); per class only its current k best rows are
  kept, so the driver holds the targets' rows plus one batch, never the list. Repeated
  rows (the same clip id) share a priority, so a repeat is never kept beside its clip.
  To count them exactly whichever batches they fall in (a clip's first row may have left
  the kept rows long before its repeat comes), each class also keeps the priority of
  every eligible row it saw: 8 bytes a row (16 MB for the 2 million rows of the
  unbalanced list, twice that while they are counted). Its eligible clips are the
  distinct priorities, and the rows beyond the distinct clips of all classes are
  ``duplicate`` in the report (a 64-bit hash: two different ids share one with a chance
  of about one in ten million among 2 million ids).
* **Balanced.** Every class gets ``min(share, rarest class's eligible clips)`` clips,
  the share being ``per_class`` or ``total // classes``; a class's sample is again the
  lowest priorities of what it kept.

The result is a segment list in the published format (so ``fetch``, ``extract`` and
the ``audioset`` recipe take it as is), rows in the list's order, and a report
``<name>.report.json`` with the counts per class (eligible, target, drawn, short of
the target) and what was left out and why.
"""

from __future__ import annotations

import hashlib
import posixpath
import resource
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from acoustic_env.audioset.segments import SEGMENT_SCHEMA, read_segments, refusal_message, refusals, write_segments
from acoustic_env.config import ConfigError
from acoustic_env.config.audioset import SampleConfig
from acoustic_env.storage import redact_all, write_json
from acoustic_env.vocabulary.tasks import Task, TaskError, load_task

#: Reasons a row is left out, in the order they are checked (a row gets the first that applies).
REASONS = ("bad_id", "bad_segment", "excluded_video", "unlabelled", "unknown", "ambiguous")
REFUSED_LISTED = 100  # rows refused as bad_id or bad_segment named in the report (the rest counted)
ALL = "all"  # the one pool of a uniform draw (``total`` without ``balanced``)


def priorities(ids: pa.Array, seed: int) -> np.ndarray:
    """Each id's place in the draw: a 64-bit SipHash keyed by the seed (vectorised, the same in every process)."""
    from pandas.util import hash_array

    key = hashlib.sha256(str(seed).encode()).hexdigest()[:16]
    return hash_array(ids.to_numpy(zero_copy_only=False), hash_key=key, categorize=False)


def _video_ids(uris: tuple[str, ...]) -> pa.Array:
    """The YTIDs of the ``exclude`` lists (distinct)."""
    found = [pc.unique(batch["YTID"]) for uri in uris for batch in read_segments(uri)]
    return pc.unique(pa.chunked_array(found, pa.string())) if found else pa.array([], pa.string())


@dataclass
class _Pool:
    """The k eligible rows of lowest priority seen so far (with their priority), and the priorities of every
    eligible row it was offered (one array a batch), from which ``settle`` counts its distinct clips."""

    k: int
    eligible: int = 0
    rows: pa.Table | None = None
    seen: list[np.ndarray] = field(default_factory=list)

    def offer(self, rows: pa.Table, prio: np.ndarray) -> None:
        if not rows.num_rows:
            return
        self.seen.append(prio)
        rows = rows.append_column("priority", pa.array(prio, pa.uint64()))
        if self.rows is not None:
            rows = pa.concat_tables([self.rows, rows])
        if rows.num_rows > self.k or self.rows is not None:
            rows = self._lowest(rows)
        self.rows = rows

    def _lowest(self, rows: pa.Table) -> pa.Table:
        """The k lowest priorities, a repeated clip id kept once (its first row): a stable sort by priority, id, row."""
        order = pc.sort_indices(rows, [("priority", "ascending"), ("clip_id", "ascending"), ("row", "ascending")])
        rows = rows.take(order)
        ids = rows["clip_id"].combine_chunks()
        repeat = np.zeros(rows.num_rows, dtype=bool)
        if rows.num_rows > 1:
            repeat[1:] = pc.equal(ids.slice(1), ids.slice(0, rows.num_rows - 1)).to_numpy(zero_copy_only=False)
        if repeat.any():
            rows = rows.filter(pa.array(~repeat))
        return rows.slice(0, self.k)

    def settle(self) -> None:
        """Sort and de-duplicate what is kept (after the last batch); ``eligible``: the distinct clips offered."""
        if self.rows is not None:
            self.rows = self._lowest(self.rows)
        self.seen = [np.unique(np.concatenate(self.seen))] if self.seen else []
        self.eligible = sum(len(s) for s in self.seen)

    def take(self, n: int) -> pa.Array:
        """The rows (their numbers) of the ``n`` lowest priorities; ``settle`` first."""
        return pa.array([], pa.int64()) if self.rows is None else self.rows["row"].slice(0, n).combine_chunks()


@dataclass
class SampleResult:
    """The sample and its report (what ``<name>.report.json`` holds)."""

    sample: pa.Table
    report: dict[str, Any] = field(default_factory=dict)


def _pool_sizes(cfg: SampleConfig, task: Task) -> dict[str, int]:
    """How many rows each pool keeps while reading (the most it can be asked for)."""
    if cfg.targets:
        unknown = sorted(set(cfg.targets) - set(task.class_names))
        if unknown:
            raise ConfigError(f"targets: {unknown[0]!r} is not a class of task {task.name!r} "
                              f"(classes: {', '.join(task.class_names)})")
        return {c: cfg.targets.get(c, 0) for c in task.class_names}
    if cfg.per_class:
        return dict.fromkeys(task.class_names, cfg.per_class)
    assert cfg.total is not None
    if not cfg.balanced:
        return {ALL: cfg.total}
    share = cfg.total // task.n_classes
    if share < 1:
        raise ConfigError(f"total: {cfg.total} clips cannot be shared equally among {task.n_classes} classes")
    return dict.fromkeys(task.class_names, share)


def draw_sample(cfg: SampleConfig) -> SampleResult:
    """Read ``cfg.segments`` once and draw ``cfg``'s sample (see the module docstring); nothing is written."""
    t0, rss_before = time.time(), peak_rss_mb()
    task = load_task(cfg.task, cfg.ontology)
    sizes = _pool_sizes(cfg, task)
    pools = {name: _Pool(k) for name, k in sizes.items()}
    excluded_videos = _video_ids(cfg.exclude) if cfg.exclude else None
    left_out: Counter[str] = Counter()
    pairs: Counter[str] = Counter()
    refused: list[dict[str, Any]] = []
    rows_read = eligible_rows = 0
    for batch in read_segments(cfg.segments):
        rows_read += batch.num_rows
        member = task.claim_matrix(batch["labels"].combine_chunks())
        hits = member.sum(axis=1)
        bad_id, bad_segment = refusals(batch)
        reasons = {
            "bad_id": bad_id,
            "bad_segment": bad_segment,
            "excluded_video": (pc.is_in(batch["YTID"], value_set=excluded_videos).to_numpy(zero_copy_only=False)
                               if excluded_videos is not None else np.zeros(batch.num_rows, bool)),
            "unlabelled": pc.equal(pc.list_value_length(batch["labels"]), 0).to_numpy(zero_copy_only=False),
            "unknown": hits == 0,
            "ambiguous": (hits > 1) if task.kind == "single_label" else np.zeros(batch.num_rows, bool),
        }
        out = np.zeros(batch.num_rows, dtype=bool)
        for reason in REASONS:
            now = reasons[reason] & ~out
            left_out[reason] += int(now.sum())
            out |= now
            if reason == "ambiguous" and now.any():
                pairs.update(_combinations(member[now], task.class_names))
            if reason in ("bad_id", "bad_segment") and now.any() and len(refused) < REFUSED_LISTED:
                listed = batch.filter(pa.array(now)).slice(0, REFUSED_LISTED - len(refused)).to_pylist()
                refused += [{"row": r["row"], "reason": reason, "message": refusal_message(reason, r)} for r in listed]
        eligible = ~out
        eligible_rows += int(eligible.sum())
        prio = priorities(batch["clip_id"].combine_chunks(), cfg.seed)
        for name, pool in pools.items():
            rows = eligible if name == ALL else eligible & member[:, task.class_names.index(name)]
            keep = pa.array(rows)
            pool.offer(batch.filter(keep), prio[rows])
    for pool in pools.values():
        pool.settle()
    counts = _finish(pools, cfg)
    chosen = [pool.take(counts[name]["drawn"]) for name, pool in pools.items()]
    kept = {name: pool.rows for name, pool in pools.items() if pool.rows is not None}
    sample = _assemble(kept, chosen)
    # a clip of several classes (multi-label) is in several pools: the repeats are the rows beyond the distinct clips
    seen = [s for p in pools.values() for s in p.seen]
    duplicates = eligible_rows - (len(np.unique(np.concatenate(seen))) if seen else 0)
    in_sample = task.claim_matrix(sample["labels"].combine_chunks()).sum(axis=0)
    for c, name in enumerate(task.class_names):
        counts.setdefault(name, {})["in_sample"] = int(in_sample[c])
    report = {
        "source": cfg.segments, "task": task.name, "task_kind": task.kind, "seed": cfg.seed,
        "mode": ("targets" if cfg.targets else "per_class" if cfg.per_class else "total")
                + (" balanced" if cfg.balanced else ""),
        "rows_read": rows_read, "clips": sample.num_rows, "classes": counts,
        "left_out": {**{r: left_out[r] for r in REASONS}, "duplicate": duplicates},
        "ambiguous_pairs": dict(pairs.most_common()),
        "refused_rows": sorted(refused, key=lambda r: r["row"]),
        "not_drawn": rows_read - sum(left_out.values()) - duplicates - sample.num_rows,
        "wall_s": round(time.time() - t0, 3), "peak_rss_mb": peak_rss_mb(),
        "rss_before_mb": rss_before, "config": redact_all(cfg.to_dict()),
    }
    return SampleResult(sample=sample, report=report)


def _combinations(member: np.ndarray, names: tuple[str, ...]) -> dict[str, int]:
    """Rows per combination of classes (``urban+natural``), counted on the rows' bit patterns."""
    bits = [member[:, i:i + 62] @ (np.int64(1) << np.arange(member[:, i:i + 62].shape[1], dtype=np.int64))
            for i in range(0, member.shape[1], 62)]
    combos, first, counts = np.unique(np.stack(bits, axis=1), axis=0, return_index=True, return_counts=True)
    return {"+".join(names[c] for c in np.flatnonzero(member[i])): int(n) for i, n in zip(first, counts)}


def _finish(pools: dict[str, _Pool], cfg: SampleConfig) -> dict[str, dict[str, Any]]:
    """Per pool: eligible clips, its target, how many are drawn and how many it is short."""
    drawn = {name: min(p.k, p.eligible) for name, p in pools.items()}
    if cfg.balanced:
        equal = min(drawn.values())
        drawn = dict.fromkeys(drawn, equal)
    return {name: {"eligible": p.eligible, "target": p.k, "drawn": drawn[name], "short": max(p.k - drawn[name], 0)}
            for name, p in pools.items()}


def _assemble(kept: dict[str, pa.Table], chosen: list[pa.Array]) -> pa.Table:
    """The chosen rows, once each, in the list's order."""
    if not kept:
        return SEGMENT_SCHEMA.empty_table()
    rows = pa.concat_tables(list(kept.values())).drop_columns(["priority"])
    wanted = pc.unique(pa.chunked_array(chosen, pa.int64()))
    rows = rows.filter(pc.is_in(rows["row"], value_set=wanted))
    first = pc.unique(rows["row"])  # a clip kept for two classes (multi-label) is one row of the sample
    rows = rows.take(pc.index_in(first, value_set=rows["row"]))
    return rows.take(pc.sort_indices(rows["row"]))


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MB (what the report records of the driver).

    Linux: ``VmHWM`` of /proc/self/status, which starts afresh with the program (``ru_maxrss``
    keeps the peak of the process that forked it, a launcher's or a notebook's); elsewhere ``ru_maxrss``.
    """
    try:
        with open("/proc/self/status") as fh:
            return round(next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:")) / 1024, 1)
    except (OSError, StopIteration, ValueError):
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return round(rss / (2**20 if sys.platform == "darwin" else 2**10), 1)


def report_uri(output: str) -> str:
    """``<output without .csv>.report.json``."""
    root, ext = posixpath.splitext(output)
    return f"{root if ext == '.csv' else output}.report.json"


def sample_segments(cfg: SampleConfig) -> SampleResult:
    """Draw the sample and write it (a segment list) with its report beside it, each through a temporary
    file and a rename (the command checks first that the output is none of the inputs and can be written:
    ``jobs.preflight``)."""
    try:
        result = draw_sample(cfg)
    except TaskError as exc:
        raise ConfigError(str(exc)) from None  # its message names the task setting already
    comments = [f"Sampled by acoustic-env from {posixpath.basename(cfg.segments)}: task {result.report['task']}, "
                f"{result.report['mode']}, seed {cfg.seed}"]
    try:
        write_segments(result.sample, cfg.output, comments)
        write_json(result.report, report_uri(cfg.output))
    except OSError as exc:  # a place the checks could not foresee (a full disk, /proc): one line, nothing half-written
        raise ConfigError(f"output: cannot write {cfg.output}: {exc.strerror or exc}") from None
    return result


def summary_lines(report: dict[str, Any]) -> list[str]:
    """What the command prints: the counts per class, then what was left out and why."""
    lines = [f"{report['clips']} clips from {report['rows_read']} rows of {report['source']} "
             f"(task {report['task']}, {report['mode']}, seed {report['seed']}, {report['wall_s']:.1f} s, "
             f"peak memory {report['peak_rss_mb']:.0f} MB, {report['rss_before_mb']:.0f} MB before reading)"]
    for name, c in report["classes"].items():
        if "drawn" in c:
            short = f", {c['short']} short of the target" if c["short"] else ""
            lines.append(f"  {name}: {c['drawn']} drawn of {c['eligible']} eligible (target {c['target']}{short})")
    if ALL not in report["classes"] or len(report["classes"]) > 1:
        lines.append("  in the sample: " + ", ".join(f"{n} {c['in_sample']}" for n, c in report["classes"].items()
                                                      if n != ALL))
    left = ", ".join(f"{k} {v}" for k, v in report["left_out"].items() if v)
    lines.append(f"  left out: {left or 'none'}; eligible but not drawn: {report['not_drawn']}")
    refused = report["refused_rows"]
    if refused:
        more = report["left_out"]["bad_id"] + report["left_out"]["bad_segment"] - len(refused)
        lines += [f"  refused {r['message']}" for r in refused[:5]]
        if more + len(refused) > 5:
            lines.append(f"  ... {more + len(refused) - 5} more refused rows ({len(refused)} listed in the report)")
    return lines
