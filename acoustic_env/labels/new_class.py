"""A new class from one example: search hits judged yes or no become labels, a first model, and the next clips to judge.

The loop (``acoustic-env labels new-class``, one call a round, ``jobs/new_class.py: run_round``; the functions here
are its plain parts):

1. ``search`` from one example lists the nearest clips (``--save hits.csv``); the user writes ``yes``, ``no``
   or ``unsure`` in a ``verdict`` column (the review page's ``correct`` and ``wrong`` read as yes and no; a row
   left empty is not judged).
2. The answers go to the label store as verdicts of the binary task ``labels:<name>,<other>`` (:func:`task_of`),
   source ``search``, origin the example (:func:`answer_events`): ``yes`` says the clip is of the class the
   search proposed, ``no`` that it is ``other``. Every round's answers stay in the store.
3. The label list (:func:`round_list`) holds every clip of the table: the store's decisions (each reviewer's
   latest; a clip the reviewers disagree about gets no class, as an unsure one: origin ``unsure or in conflict``),
   plus ``negatives`` clips drawn at random (seeded) from the clips nobody judged, labelled ``other``; every
   other clip is listed with no class (origin ``not judged``), so the table's own labels never enter the task. A clip any reviewer ever marked yes is never drawn
   as a negative, even after a later ``no`` or ``unsure``.
4. The train job learns that list (``train --labels``, its Python API): an ordinary saved model that
   ``predict``, ``windows`` and ``serve`` use.
5. The model scores the whole table, and ``review_order`` (``uncertain`` or ``mixed``) picks the next clips to
   judge among those nobody judged yet (:func:`next_review`, :func:`next_round`): ``review.csv``, with an empty
   ``verdict`` column.

Random negatives are an assumption, not a verdict: in a collection where the class is common some of them are
positives, so they never enter the store, and the list says where they came from (source ``given``, origin
``random negatives (seed S)``). Plain functions on Arrow tables and numpy arrays; nothing here starts Ray (the
train job it calls does what it does).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import pyarrow as pa

from acoustic_env.config import ConfigError
from acoustic_env.labels.current import Corrected, Decision, corrected
from acoustic_env.labels.store import Event
from acoustic_env.labels.verdicts import verdict_events
from acoustic_env.learn.review_order import Pool, embed, next_batch
from acoustic_env.vocabulary.tasks import Task

#: The answers a verdict column may hold, and what each says about the class the search proposed.
ANSWERS = {"yes": "yes", "correct": "yes", "no": "no", "wrong": "no", "unsure": "unsure"}
STRATEGIES = ("mixed", "uncertain")


def task_of(name: str, other: str = "other") -> str:
    """The binary task of a new class: ``labels:<name>,<other>`` (the class first)."""
    for field, value in (("name", name), ("other", other)):
        if not value.strip() or any(c in value for c in ",;:"):
            raise ConfigError(f"{field}: a class name without ',', ';' or ':', got {value!r}")
    if name.strip() == other.strip():
        raise ConfigError(f"other: the negative class must differ from the new class, both are {name!r}")
    return f"labels:{name.strip()},{other.strip()}"


def answer_events(answers: list[dict[str, str]], task: Task, clip_ids: set[str], *, table: str,
                  reviewer: str | None, example: str) -> list[Event]:
    """The store events of ``answers`` (checked whole, as an audit's verdicts are: a clip not in the table, or no
    reviewer, refuses them all): yes is ``correct`` about the proposed class, no ``wrong`` with ``other``."""
    name, other = task.class_names
    verdict = {"yes": "correct", "no": "wrong", "unsure": "unsure"}
    records = [{"clip_id": a["clip_id"], "verdict": verdict[a["answer"]], "given_labels": [name],
                "corrected_label": [other] if a["answer"] == "no" else [], "reviewer": a["reviewer"],
                "time": a["time"], "note": a["note"]} for a in answers]
    return verdict_events(records, task, clip_ids, table=table, reviewer=reviewer, origin=f"search:{example}",
                          source="search")


@dataclass(frozen=True)
class Round:
    """A round's label list (every clip of the table) and what it is made of."""

    listed: Corrected
    positives: list[str]
    negatives: list[str]  # judged no
    drawn: list[str]  # random negatives
    marked_yes: frozenset[str]  # every clip any reviewer ever marked yes

    def counts(self) -> dict[str, int]:
        return {"yes": len(self.positives), "no": len(self.negatives), "random_negatives": len(self.drawn),
                "conflicts": len(self.listed.conflicts)}


def round_list(events: list[Event], clip_ids: list[str], task: Task, negatives: int, seed: int) -> Round:
    """The label list of a round (see the module docstring, step 3) from the store's events of ``task``."""
    name, other = task.class_names
    current = corrected(events)
    judged = {e.clip_id for e in events}
    marked_yes = frozenset(e.clip_id for e in events if e.decision() == (name,))
    free = [c for c in clip_ids if c not in judged]  # a clip marked yes is judged, whatever came after
    order = np.random.default_rng(seed).permutation(len(free))  # one draw a seed: a negative stays until judged
    drawn = sorted(free[i] for i in order[:negatives])
    origin = f"random negatives (seed {seed})"
    decisions = dict(current.decisions)
    for clip_id in clip_ids:
        if clip_id not in decisions:
            labels = (other,) if clip_id in set(drawn) else ()
            why = origin if labels else "unsure or in conflict" if clip_id in judged else "not judged"
            decisions[clip_id] = Decision(clip_id, labels, Event(clip_id, task.name, "given", labels=labels,
                                                                 origin=why))
    return Round(Corrected(dict(sorted(decisions.items())), current.conflicts),
                 sorted(c for c, d in current.decisions.items() if d.labels == (name,)),
                 sorted(c for c, d in current.decisions.items() if d.labels == (other,)), drawn, marked_yes)


def train_fields(positives: int, base: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The train job's fields for a round: a light search, with folds no more than the clips marked yes (a fold
    needs one of them), overridden by ``base`` (a train config file's fields)."""
    if positives < 2:
        raise ConfigError(f"verdicts: {positives} clip(s) marked yes so far; a first model needs 2 or more (the "
                          "answers are kept in the label store: answer more search hits, e.g. search with a larger "
                          "--k, and run it again)")
    return {"baselines": ("logreg",), "tuning_trials": 1, "ablations": False, "shap_samples": 0,
            "progress": False, "cv_folds": min(5, positives), **(base or {})}


def next_round(probs: np.ndarray, X: np.ndarray, clip_ids: list[str], judged: Mapping[str, int | None],
               strategy: str, n: int, seed: int) -> list[tuple[str, str]]:
    """The next ``n`` clips to judge, (clip id, why), by ``strategy`` over the model's ``probs`` ([clips, 2]: the
    class, other) and the feature rows ``X``; ``judged``: clip -> the class index a reviewer settled on (None:
    unsure or in conflict). Every clip not judged counts as ``other`` for ``mixed``, so it asks first for the
    clips the model (refitted on the verdicts) finds most likely of the class."""
    if strategy not in STRATEGIES:
        raise ConfigError(f"strategy: must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    row = {c: i for i, c in enumerate(clip_ids)}
    reviewed = {row[c]: label for c, label in judged.items() if c in row}
    given = np.ones(len(clip_ids), dtype=np.int64)
    for i, label in reviewed.items():
        if label is not None:
            given[i] = label
    pool = Pool(probs=probs, given=given, embedding=embed(X, seed=seed))
    return [(clip_ids[p.index], p.reason) for p in next_batch(strategy, pool, reviewed, n, seed)]


def review_table(picks: list[tuple[str, str]], probs: Mapping[str, float], facts: pa.Table, name: str) -> pa.Table:
    """``review.csv``'s rows: each pick with an empty ``verdict`` to fill in, why it was picked, the model's
    probability of the class, and where the clip lives (``facts``: the table's clip facts)."""
    where = {r["clip_id"]: r for r in facts.select(["clip_id", "labels", "uri", "start_s", "end_s"]).to_pylist()}
    rows = [{"clip_id": c, "verdict": "", "reason": why, f"prob_{name}": round(float(probs[c]), 4),
             **{k: where[c][k] for k in ("labels", "uri", "start_s", "end_s")}} for c, why in picks]
    schema = pa.schema([("clip_id", pa.string()), ("verdict", pa.string()), ("reason", pa.string()),
                        (f"prob_{name}", pa.float64()), ("labels", pa.list_(pa.string())), ("uri", pa.string()),
                        ("start_s", pa.float64()), ("end_s", pa.float64())])
    return pa.Table.from_pylist(rows, schema=schema)


def next_review(history: list[Event], rnd: Round, task: Task, probs: np.ndarray, X: np.ndarray, clip_ids: list[str],
                facts: pa.Table, strategy: str, n: int, seed: int) -> tuple[list[tuple[str, str]], pa.Table]:
    """A round's last step, from its model's scores of the table: the next ``n`` clips to judge, (clip id, why),
    and their rows of ``review.csv`` (:func:`review_table`).

    ``probs``: the model's [clips, 2] for ``clip_ids`` (a clip it could not score, a row not finite, is never
    picked), ``X``: the feature rows it read; ``history``: every event of the task in the store, this round's
    answers with them, and ``rnd`` the round's list: the clips any of them is about are left out, the settled
    ones teach ``mixed``'s refit (:func:`judged_classes`, :func:`next_round`). The plain part of the round
    (``jobs/new_class.py: run_round`` trains the model and writes the file), so that its choice is tested alone.
    """
    ok = np.isfinite(probs).all(axis=1)
    scored = [c for c, keep in zip(clip_ids, ok) if keep]
    picks = next_round(probs[ok], X[ok], scored, judged_classes(history, rnd.listed, task), strategy, n, seed)
    return picks, review_table(picks, dict(zip(scored, probs[ok][:, 0])), facts, task.class_names[0])


def judged_classes(events: list[Event], current: Corrected, task: Task) -> dict[str, int | None]:
    """Clip -> the class index the reviewers settled on, for every clip any event is about (None: unsure, or in
    conflict): those leave the next rounds' queues, and the settled ones teach ``mixed``'s refit."""
    out: dict[str, int | None] = {e.clip_id: None for e in events}
    for clip_id, d in current.decisions.items():
        if clip_id in out and d.reviewed and d.labels:
            out[clip_id] = task.class_names.index(d.labels[0])
    return out
