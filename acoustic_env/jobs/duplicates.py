"""``acoustic-env duplicates``: the near-duplicate pairs of a feature table's clips, written as one table.

Two modes, one config (``config/duplicates.py``): one vector per clip, the columns named (``learn/duplicates.py``),
or chunk by chunk, the table's log-mel images or the audio decoded again (``learn/duplicate_chunks.py``): shifted
and partial copies too. Train and the audit use the same finders to keep copies on one side of every fold; this
command writes the pairs for a person to read (``docs/duplicates.md``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from acoustic_env.config import ConfigError
from acoustic_env.config.duplicates import DuplicatesConfig


@dataclass(frozen=True)
class DuplicatesResult:
    """What ``duplicates`` found and wrote (``ae.run("duplicates", ...)`` returns it).

    Attributes:
        pairs: the pairs table written to ``output`` (clip_a, clip_b, distance, group_a, group_b; chunks: share).
        clips: the clips compared.
        rule: what made a pair, in words.
        output: the file written.
        sources: chunk mode: how many clips' chunks came from each source (``unread``: clips in no pair); else None.
        first_unread: chunk mode: the first clip that could not be read, and why.
    """

    pairs: Any
    clips: int
    rule: str
    output: str
    sources: dict[str, int] | None = None
    first_unread: str | None = None


def check(cfg: DuplicatesConfig) -> None:
    """The paths by their roles (``jobs/preflight.py``), and the output a table's file name, before any pair is
    looked for."""
    from acoustic_env.jobs.export import check_table_file
    from acoustic_env.jobs.preflight import preflight

    preflight(cfg)
    check_table_file(cfg.output)


def find_duplicates(cfg: DuplicatesConfig) -> DuplicatesResult:
    """Find the near-duplicate pairs of ``cfg.features``' clips and write them to ``cfg.output``."""
    from acoustic_env.jobs.export import write_table

    result = _chunk_pairs(cfg) if cfg.chunks else _clip_pairs(cfg)
    write_table(result.pairs, cfg.output)
    return result


def _clip_pairs(cfg: DuplicatesConfig) -> DuplicatesResult:
    """One vector per clip (``learn.duplicates``)."""
    from acoustic_env.learn.duplicates import DEFAULT_THRESHOLD, pairs_table
    from acoustic_env.table import read_features

    threshold = DEFAULT_THRESHOLD if cfg.threshold is None else cfg.threshold
    try:
        features = read_features(cfg.features, feature_groups=list(cfg.column), include_random_weights=True)
    except ConfigError as e:  # the reader names its field feature_groups; here that is the flag --column
        if not str(e).startswith("feature_groups:"):
            raise
        raise ConfigError(f"column:{str(e).removeprefix('feature_groups:')}") from None
    pairs = pairs_table(features, threshold, list(features.columns))  # a source (mps) names several columns
    return DuplicatesResult(pairs, len(features), f"mean cosine distance <= {threshold} over "
                                                  f"{', '.join(features.columns)}", cfg.output)


def _chunk_pairs(cfg: DuplicatesConfig) -> DuplicatesResult:
    """Chunk by chunk (``learn.duplicate_chunks``): time-shifted and partial copies too."""
    import numpy as np

    from acoustic_env.jobs.chunk_reader import read_chunks
    from acoustic_env.learn.duplicate_chunks import CHUNK_THRESHOLD, MIN_SHARE, chunk_pairs_table, rule
    from acoustic_env.table import selection

    threshold = CHUNK_THRESHOLD if cfg.threshold is None else cfg.threshold
    min_share = MIN_SHARE if cfg.min_share is None else cfg.min_share
    chosen = selection(cfg.features)  # every clip, no vector read
    facts = chosen.facts
    groups = np.array([g or f"clip:{c}" for g, c in zip(facts["group"].to_pylist(), facts["clip_id"].to_pylist())],
                      dtype=object)  # as table.read_features names a clip without a group
    chunks = read_chunks(chosen.table, facts)
    pairs = chunk_pairs_table(chunks, np.asarray(facts["clip_id"].to_pylist(), dtype=object), groups, threshold,
                              min_share)
    return DuplicatesResult(pairs, len(groups), rule(threshold, min_share), cfg.output, dict(chunks.sources),
                            chunks.first_unread)


def summary_lines(result: DuplicatesResult) -> list[str]:
    """The pairs found among how many clips, by which rule, where they are; chunk mode: where the chunks came from,
    and the clips that could not be read."""
    if result.sources is None:
        return [f"{result.pairs.num_rows} near-duplicate pairs among {result.clips} clips ({result.rule}): "
                f"{result.output}"]
    read = ", ".join(f"{n} from the {s}" for s, n in result.sources.items() if n and s != "unread")
    lines = [f"{result.pairs.num_rows} near-duplicate pairs among {result.clips} clips ({result.rule}; "
             f"chunks: {read or 'none'}): {result.output}"]
    if result.sources["unread"]:
        lines.append(f"  {result.sources['unread']} clip(s) could not be read and are in no pair, e.g. "
                     f"{result.first_unread}")
    return lines


def plan(cfg: DuplicatesConfig) -> dict[str, list[str]]:
    """``duplicates --dry-run``: what would be compared, by which rule, and where the pairs would go."""
    from acoustic_env.learn.duplicate_chunks import CHUNK_THRESHOLD, MIN_SHARE, rule
    from acoustic_env.learn.duplicates import DEFAULT_THRESHOLD

    if cfg.chunks:
        threshold = CHUNK_THRESHOLD if cfg.threshold is None else cfg.threshold
        how = f"chunk by chunk ({rule(threshold, MIN_SHARE if cfg.min_share is None else cfg.min_share)})"
    else:
        threshold = DEFAULT_THRESHOLD if cfg.threshold is None else cfg.threshold
        how = f"by {', '.join(cfg.column)} (mean cosine distance <= {threshold})"
    return {"lines": [f"duplicates: would compare the clips of {cfg.features} {how}", f"  and write the pairs to "
                      f"{cfg.output} (dry run: nothing read or written)"]}
