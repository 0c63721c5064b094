"""Classification tasks: which of a manifest's labels make which class.

A task names its classes in one of two vocabularies, never both:

* your own label strings (``labels:``), matched exactly as the manifest gives them
  (UrbanSound8K's ``car_horn``, a field team's ``frogs``); several labels may make
  one class. Such a task never loads the ontology and never touches the network.
* AudioSet MIDs or display names (``mids:``), optionally with every class below
  them (``descendants: true``). A manifest label that is a display name is mapped
  to its MID here (manifests store labels as given), through the ontology, which
  is read only when a display name or descendants need it.

A clip a single-label task finds two classes in is **ambiguous**; a clip with no
labels is **unlabelled**; one whose labels no class claims is **unknown**. None
of them gets a target, and ``class_counts`` counts each. A label no class claims
is left out (``unknown_labels: skip``, the default) or stops the job with one line
naming it (``error``, for a closed label set); it is never guessed.

``urban_natural`` is built in; ``labels:urban,natural`` is an inline single-label
task whose classes are those labels; any YAML file of this shape defines another::

    name: urban_natural          # default: the file name
    kind: single_label           # or multi_label
    unknown_labels: skip         # or error
    classes:
      urban: {labels: [car_horn, siren, street_music]}
      natural: {labels: [birds, rain]}

``classes: [urban, natural]`` is short for classes that are their own label.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Sequence

import unicodedata

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from acoustic_env.bounded import MAX_YAML_BYTES, load_yaml, read_bytes, shown
from acoustic_env.errors import ConfigError
from acoustic_env.vocabulary.ontology import (
    Ontology,
    OntologyError,
    is_mid,
    load_ontology,
)

KINDS = ("single_label", "multi_label")
UNKNOWN_LABELS = ("skip", "error")
INLINE_PREFIX = "labels:"
#: Keys of ``Task.summarize`` beside the class names: a class may not be called so.
COUNTS = ("unlabelled", "unknown", "ambiguous")
_KEYS = ("name", "description", "kind", "unknown_labels", "classes")
#: Unicode categories a class name may not hold: control and format characters (a tab, a line break, an ANSI escape,
#: a direction override) and line and paragraph separators; each would shift a selection table's columns or forge
#: a console line.
_UNPRINTABLE = ("Cc", "Cf", "Zl", "Zp")
#: What a class name may not hold besides: the separator of a label list's ``labels`` cell.
_SEPARATOR = ";"


class TaskError(ValueError):
    """A task is malformed, names unknown classes, or meets a label it may not skip."""


@dataclass(frozen=True)
class Task:
    name: str
    kind: str
    class_names: tuple[str, ...]
    class_labels: tuple[frozenset[str], ...]  # what each class claims: label strings, or MIDs after expansion
    definition: dict  # the task as written, kept in artifacts for provenance
    unknown_labels: str = "skip"
    audioset: bool = False  # classes are MIDs: a display-name label is mapped to its MID first
    ontology: str | None = None  # where display names are looked up (None: the package's copy)

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @cached_property
    def _claimed(self) -> frozenset[str]:
        return frozenset().union(*self.class_labels)

    def _key(self, label: str) -> str:
        """The label in the classes' terms: an AudioSet display name becomes its MID, anything else stays."""
        if not self.audioset or is_mid(label):
            return label
        try:
            names = load_ontology(self.ontology).by_name
        except OntologyError as exc:
            raise TaskError(f"task {self.name}: label {label!r} is not a MID, and mapping AudioSet names needs the "
                            f"ontology ({exc}); for your own labels use a plain-label task "
                            "(classes with labels:, or --task labels:a,b)") from None
        return names.get(label.strip().lower(), label)

    def claims(self, labels: Iterable[str]) -> tuple[list[int], list[str]]:
        """The classes a clip's labels claim, and the labels no class claims."""
        keys = {label: self._key(label) for label in labels}
        found = set(keys.values())
        hits = [i for i, own in enumerate(self.class_labels) if not own.isdisjoint(found)]
        return hits, [label for label, key in keys.items() if key not in self._claimed]

    def claim_matrix(self, labels: pa.ListArray) -> np.ndarray:
        """[rows, classes] bool: which classes each row's labels claim, by :meth:`claims` (MIDs, display
        names) on whole Arrow columns: each distinct label is looked up once, so millions of rows cost seconds."""
        flat = labels.values
        distinct = pc.unique(flat)
        hit = np.zeros((len(distinct), self.n_classes), dtype=bool)
        for i, label in enumerate(distinct.to_pylist()):
            hit[i, self.claims([label])[0]] = True
        hit = hit[pc.index_in(flat, value_set=distinct).to_numpy(zero_copy_only=False)]  # per label of the column
        parents = pc.list_parent_indices(labels).to_numpy()
        out = np.zeros((len(labels), self.n_classes), dtype=bool)
        for c in range(self.n_classes):
            out[parents[hit[:, c]], c] = True
        return out

    def memberships(self, labels: Iterable[str]) -> list[int]:
        """Indices of the classes the clip's labels claim (``unknown_labels: error``: an unclaimed label stops)."""
        hits, unclaimed = self.claims(labels)
        if unclaimed and self.unknown_labels == "error":
            raise TaskError(f"task.unknown_labels: label {unclaimed[0]!r} is claimed by no class of task "
                            f"{self.name!r}; add it to a class, or set unknown_labels: skip")
        return hits

    def assign(self, labels: Iterable[str]) -> int | None:
        """Single-label target: the one class present, else None (no class, or ambiguous)."""
        hits = self.memberships(labels)
        return hits[0] if len(hits) == 1 else None

    def multi_hot(self, labels: Iterable[str]) -> list[int]:
        """Multi-label target: 0/1 per class."""
        hits = set(self.memberships(labels))
        return [int(i in hits) for i in range(self.n_classes)]

    def targets(self, label_lists: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
        """(keep mask, y of the kept rows, rows left out per reason) of a table's rows: a single-label task keeps
        the rows whose labels claim one class (y: its index), a multi-label task every row (y: 0/1 per class)."""
        if self.kind == "multi_label":
            y = np.array([self.multi_hot(ls) for ls in label_lists], dtype=np.int64)
            return np.ones(len(label_lists), dtype=bool), y.reshape(len(label_lists), self.n_classes), {}
        hits = [self.memberships(ls) for ls in label_lists]
        keep = np.array([len(h) == 1 for h in hits], dtype=bool)
        y = np.array([h[0] for h in hits if len(h) == 1], dtype=np.int64)
        return keep, y, {"no_class": sum(not h for h in hits), "ambiguous": sum(len(h) > 1 for h in hits)}

    def summarize(self, label_lists: Sequence[Sequence[str] | None]) -> dict[str, int]:
        """Clips per class, then the ``COUNTS``: flat, for run records."""
        counts = class_counts(self, label_lists)
        return {**counts["classes"], **{k: counts[k] for k in COUNTS}}


def class_counts(task: Task, labels_column: pa.Array | pa.ChunkedArray | Sequence[Sequence[str] | None]
                 ) -> dict[str, Any]:
    """What a task makes of a manifest's labels column, counted in full (never stopping at an unknown label).

    ``classes``: clips each class claims (an ambiguous clip counts for each of its
    classes); ``unlabelled``, ``unknown``, ``ambiguous``: see the module docstring;
    ``unknown_labels``: clips per label no class claims, most frequent first.
    """
    rows = labels_column.to_pylist() if isinstance(labels_column, (pa.Array, pa.ChunkedArray)) else labels_column
    per_class = [0] * task.n_classes
    unlabelled = unknown = ambiguous = 0
    unclaimed: Counter[str] = Counter()
    for labels in rows:
        labels = labels or []
        hits, left_out = task.claims(labels)
        for i in hits:
            per_class[i] += 1
        unclaimed.update(left_out)
        unlabelled += not labels
        unknown += bool(labels) and not hits
        ambiguous += task.kind == "single_label" and len(hits) > 1
    return {"clips": len(rows), "classes": dict(zip(task.class_names, per_class)), "unlabelled": unlabelled,
            "unknown": unknown, "ambiguous": ambiguous, "unknown_labels": dict(unclaimed.most_common())}


def builtin_tasks() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("acoustic_env.vocabulary").joinpath("task_files").iterdir()
                  if p.name.endswith(".yaml"))


def _read_definition(name_or_path: str) -> dict:
    if name_or_path.startswith(INLINE_PREFIX):
        return {"name": name_or_path, "kind": "single_label",
                "classes": [c.strip() for c in name_or_path[len(INLINE_PREFIX):].split(",") if c.strip()]}
    if name_or_path in builtin_tasks():
        text = resources.files("acoustic_env.vocabulary").joinpath("task_files", f"{name_or_path}.yaml").read_text()
    else:
        try:
            raw = read_bytes(name_or_path, "task", MAX_YAML_BYTES, "a task file")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise TaskError(f"task: {shown(name_or_path)} is neither a built-in task ({', '.join(builtin_tasks())}), "
                            f"an inline {INLINE_PREFIX}a,b task, nor a file") from None
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise TaskError(f"task: {name_or_path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        data = load_yaml(text, "task", name_or_path)
    except ConfigError as exc:
        raise TaskError(str(exc)) from None
    if not isinstance(data, dict):
        raise TaskError(f"task: {name_or_path} must be a mapping")
    return data


def load_task(name_or_path: str = "urban_natural", ontology: str | None = None) -> Task:
    """A built-in task, a task file, or an inline ``labels:a,b`` task.

    ``ontology``: ontology.json path or URL for AudioSet tasks (default: the official
    URL), read only when display names or descendants need it.
    """
    return task_from_definition(_read_definition(name_or_path), ontology, Path(name_or_path).stem)


def _label_list(value: Any, where: str) -> list[str]:
    ok = isinstance(value, list) and value and all(isinstance(v, (str, int)) and not isinstance(v, bool)
                                                   and str(v).strip() for v in value)
    if not ok:
        raise TaskError(f"{where}: must be a non-empty list of label strings, got {shown(value)}")
    return [str(v).strip() for v in value]


def _class_specs(classes: Any) -> list[tuple[str, dict]]:
    """(name, spec) per class; the list form makes each label a class of its own."""
    if isinstance(classes, list):
        names = _label_list(classes, "task.classes")
        if len(set(names)) < len(names):
            raise TaskError(f"task.classes: a class is listed twice in {names}")
        return [(n, {"labels": [n]}) for n in names]
    if not isinstance(classes, dict):
        raise TaskError(f"task.classes: must be a mapping of class name to {{labels: [...]}} or {{mids: [...]}}, "
                        f"or a list of labels, got {shown(classes)}")
    specs = []
    for cname, spec in classes.items():
        where = f"task.classes.{cname}"
        if not isinstance(spec, dict):
            raise TaskError(f"{where}: must be a mapping such as {{labels: [a, b]}} or {{mids: ['/m/..']}}, got {shown(spec)}")
        extra = sorted(set(spec) - {"labels", "mids", "descendants"})
        if extra:
            raise TaskError(f"{where}: unknown key(s) {extra} (known: labels, mids, descendants)")
        if ("labels" in spec) == ("mids" in spec):
            raise TaskError(f"{where}: give exactly one of labels (your own label strings) or mids (AudioSet)")
        if "descendants" in spec and ("labels" in spec or not isinstance(spec["descendants"], bool)):
            raise TaskError(f"{where}.descendants: must be true or false, and only AudioSet classes (mids) have it")
        specs.append((str(cname), spec))
    return specs


def escaped(name: str) -> str:
    """``name`` with each character a class name may not hold (``_UNPRINTABLE``) written as its escape (a tab as
    ``\\t``): what a writer of tab- or line-separated text puts in a cell, so that a class name from a model folder
    written before the rule (or forged) never shifts a column or starts a line."""
    return "".join(repr(c)[1:-1] if unicodedata.category(c) in _UNPRINTABLE else c for c in name)


def _check_class_names(names: Sequence[str], where: str = "task.classes") -> None:
    """Refuse a class name that holds a control or format character, or ``;``: one line naming the class,
    escaped. A class name is a cell of every table, selection table and label list the project writes, and the
    ``labels`` cell of a label list joins several with ``;``."""
    for name in names:
        bad = next((c for c in name if unicodedata.category(c) in _UNPRINTABLE), None)
        if bad is not None:
            raise TaskError(f"{where}: class {shown(name)} holds the control character {bad!r}; a class name is "
                            "printable text")
        if _SEPARATOR in name:
            raise TaskError(f"{where}: class {shown(name)} holds {_SEPARATOR!r}, which separates classes in a "
                            "label list; rename the class")


def task_from_definition(data: dict, ontology: str | None = None, default_name: str = "task") -> Task:
    """Build a task from its parsed definition (a task file, or the copy a model artifact keeps)."""
    extra = sorted(set(data) - set(_KEYS))
    if extra:
        raise TaskError(f"task: unknown key(s) {extra} (known: {', '.join(_KEYS)})")
    kind = data.get("kind", "single_label")
    if kind not in KINDS:
        raise TaskError(f"task.kind: must be one of {KINDS}, got {shown(kind)}")
    policy = data.get("unknown_labels", "skip")
    if policy not in UNKNOWN_LABELS:
        raise TaskError(f"task.unknown_labels: must be one of {UNKNOWN_LABELS}, got {shown(policy)}")
    specs = _class_specs(data.get("classes"))
    if len(specs) < (2 if kind == "single_label" else 1):
        raise TaskError("task.classes: a single-label task needs at least two classes, a multi-label task at least one")
    _check_class_names([n for n, _ in specs])
    reserved = [n for n, _ in specs if n in COUNTS]
    if reserved:
        raise TaskError(f"task.classes.{reserved[0]}: the name is kept for the counts ({', '.join(COUNTS)}); "
                        "rename the class (its labels may keep the word)")
    audioset = {"mids" in spec for _, spec in specs}
    if len(audioset) > 1:
        raise TaskError("task.classes: every class must use labels (your own) or every class mids (AudioSet), not both")
    is_audioset = audioset.pop()
    sets = [_audioset_class(n, spec, ontology) if is_audioset
            else frozenset(_label_list(spec["labels"], f"task.classes.{n}.labels")) for n, spec in specs]
    return Task(name=str(data.get("name", default_name)), kind=kind, class_names=tuple(n for n, _ in specs),
                class_labels=tuple(sets), definition=data, unknown_labels=policy, audioset=is_audioset,
                ontology=ontology)


def _audioset_class(cname: str, spec: dict, ontology: str | None) -> frozenset[str]:
    """A class's MIDs: display names mapped, descendants added (the ontology is read only for those)."""
    labels = _label_list(spec["mids"], f"task.classes.{cname}.mids")
    descendants = spec.get("descendants", False)
    if not descendants and all(is_mid(m) for m in labels):
        return frozenset(labels)
    onto: Ontology = load_ontology(ontology)
    try:
        mids = {onto.to_mid(m) for m in labels}
    except OntologyError as exc:
        raise TaskError(f"task.classes.{cname}.mids: {exc}") from None
    if descendants:
        mids = set().union(*(onto.descendants(m) for m in mids))
    return frozenset(mids)
