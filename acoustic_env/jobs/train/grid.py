"""The comparison grid (``acoustic-env train --grid``): one model per cell of embedder x signal set, the best saved.

The study this project reproduces chose its features this way: for each
embedder (or none) and each set of signals (the raw recording, the
noisereduce foreground, the background, or all three), a model on that
embedder's embeddings of those signals plus the acoustic indices and the MPS
of the same signals, compared on ROC AUC. Here each cell is the train job's
cross-validation on the cell's feature groups: the same outer folds for every
cell, every candidate model with its own nested tuning (``learn.tuning``), the
cell's figure that of its chosen model, with a group bootstrap interval.

The winning cell's feature groups then go through the ordinary train job, so
the saved artifact, the report and ``predict`` are those of the winner. Its
figure is the best of the cells on the same folds, so it is optimistic by
that choice; the report says so.

Signal sets name the signals a cell uses; an embedder's column for a signal is
``embedding_column`` (:mod:`acoustic_env.table`'s rule): ``panns`` for the raw
signal, ``panns_fg`` and ``panns_bg`` for the separated ones, which extract
writes when asked (``--embed-signals raw,fg,bg``); without them only the raw
cells of an embedder can run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Collection, Sequence

import numpy as np

from acoustic_env import feature_groups
from acoustic_env.config import SIGNALS, ConfigError
from acoustic_env.embedders import registry
from acoustic_env.table import FeatureSet, embedding_column

if TYPE_CHECKING:  # the dry run reads the grid's cells without torch (learn.cv's estimators)
    from acoustic_env.learn.cv import CVResult

NONE = "none"
#: The hand-made sources of every cell (``--feature-groups`` replaces them): the groups declared ``in_grid``, the
#: study's indices and MPS.
HAND_MADE = feature_groups.names(lambda group: group.in_grid)
#: ``all`` is every signal at once, the study's fourth set.
ALL = "all"


@dataclass(frozen=True)
class Cell:
    embedder: str  # an embedder's name, or NONE
    signals: str  # a signal, or ALL
    groups: tuple[str, ...]  # the feature groups (table columns) the cell's model reads

    @property
    def name(self) -> str:
        return f"{self.embedder} x {self.signals}"


def cells(embedders: Sequence[str], signal_sets: Sequence[str], sources: Sequence[str]) -> list[Cell]:
    """Every cell, embedders outermost, in the order given (ties in the comparison go to the earlier cell)."""
    out = []
    for embedder in embedders:
        for signal_set in signal_sets:
            signals = SIGNALS if signal_set == ALL else (signal_set,)
            hand = [f"{source}_{s}" for s in signals for source in sources]  # the table's order
            embedded = [] if embedder == NONE else [embedding_column(embedder, s) for s in signals]
            out.append(Cell(embedder, signal_set, tuple(hand + embedded)))
    return out


def grid_embedders(asked: Sequence[str], columns: Collection[str]) -> tuple[str, ...]:
    """The embedder axis: as asked, or for ``auto`` none and every embedder whose raw-signal embeddings are among the
    table's read ``columns`` (an extra that was not installed, random weights left out: those embedders are no cells)."""
    if tuple(asked) != ("auto",):
        return tuple(asked)
    return (NONE, *(e for e in registry.names() if embedding_column(e, "raw") in columns))


def check_columns(grid: list[Cell], features: FeatureSet) -> None:
    """One line naming the field whose cell needs a column the table lacks (or that was left out, and why)."""
    have, left_out = set(features.columns), features.excluded["columns"]
    for cell in grid:
        for column in (c for c in cell.groups if c not in have):
            raw_embedding = cell.embedder != NONE and column == embedding_column(cell.embedder, "raw")
            why = (f"it was left out ({left_out[column]})" if column in left_out else "the table has no such column"
                   + ("" if raw_embedding or column.startswith(tuple(feature_groups.names())) else
                      " (embeddings of the fg and bg signals need extract --embed-signals)"))
            raise ConfigError(f"{'grid_embedders' if raw_embedding else 'grid_signals'}: cell {cell.name} needs "
                              f"column {column}: {why}")


#: ``evaluate(cell)`` → the cell's cross-validation (``learn.cv.cross_validate`` on the cell's groups).
Evaluate = Callable[[Cell], "CVResult"]
#: ``interval(proba)`` → the group bootstrap interval of the ROC AUC of those out-of-fold probabilities.
Interval = Callable[[np.ndarray], list[float] | None]


def compare(grid: list[Cell], evaluate: Evaluate, roc_auc: Callable[[np.ndarray], float | None],
            interval: Interval) -> dict[str, Any]:
    """Each cell's chosen model and figures, the winner (best score; ties to the earlier cell), the cost, and
    ``result``: the winner's cross-validation."""
    rows, results, start = [], [], time.time()
    for cell in grid:
        t = time.time()
        result = evaluate(cell)
        results.append(result)
        proba = result.proba[result.chosen]
        rows.append({"embedder": cell.embedder, "signals": cell.signals, "groups": list(cell.groups),
                     "model": result.chosen, "score": result.scores[result.chosen], "roc_auc": roc_auc(proba),
                     "roc_auc_interval": interval(proba), "scores": result.scores,
                     "seconds": round(time.time() - t, 1)})
    best = max(range(len(rows)), key=lambda i: (round(rows[i]["score"], 12), -i))
    for i, row in enumerate(rows):
        row["winner"] = i == best
    return {"cells": rows, "winner": rows[best], "wall_s": round(time.time() - start, 1), "result": results[best]}


def grid_lines(grid: dict[str, Any]) -> list[str]:
    """The console's table of the grid: one line per cell, the winner marked."""
    lines = [f"  grid: {len(grid['cells'])} cells in {grid['wall_s']:.0f} s (cross-validated ROC AUC of each "
             f"cell's chosen model [95% interval]):"]
    for row in grid["cells"]:
        ci = row["roc_auc_interval"]
        auc = ("–" if row["roc_auc"] is None else f"{row['roc_auc']:.3f}"
               + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""))
        mark = "  <- winner, saved" if row["winner"] else ""
        lines.append(f"    {row['embedder']:8s} x {row['signals']:4s} {row['model']:8s} {auc} ({row['seconds']:.0f} s)"
                     f"{mark}")
    return lines
