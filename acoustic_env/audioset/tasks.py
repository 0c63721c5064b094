"""Classification tasks defined on the AudioSet ontology.

A task file names each class by MIDs, optionally with all descendants, and says
whether a clip takes one class (``single_label``: binary or multi-class) or any
subset (``multi_label``). ``urban_natural`` is built in; any YAML file with the
same shape defines another task.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Iterable, Sequence

import yaml

from acoustic_env.audioset.ontology import Ontology, OntologyError, is_mid

KINDS = ("single_label", "multi_label")


class TaskError(ValueError):
    """A task file is malformed or names unknown classes."""


@dataclass(frozen=True)
class Task:
    name: str
    kind: str
    class_names: tuple[str, ...]
    class_mids: tuple[frozenset[str], ...]  # after descendant expansion
    definition: dict  # the file as written, kept in artifacts for provenance

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def memberships(self, labels: Iterable[str]) -> list[int]:
        """Indices of the classes whose MID sets intersect the clip's labels."""
        label_set = set(labels)
        return [i for i, mids in enumerate(self.class_mids) if mids & label_set]

    def assign(self, labels: Iterable[str]) -> int | None:
        """Single-label target: the one class present, else None (no class, or ambiguous)."""
        hits = self.memberships(labels)
        return hits[0] if len(hits) == 1 else None

    def multi_hot(self, labels: Iterable[str]) -> list[int]:
        """Multi-label target: 0/1 per class."""
        hits = set(self.memberships(labels))
        return [int(i in hits) for i in range(self.n_classes)]

    def summarize(self, label_lists: Sequence[Sequence[str]]) -> dict[str, int]:
        """Counts per class, plus clips with no class and (single-label) ambiguous clips."""
        counts = {name: 0 for name in self.class_names}
        none = ambiguous = 0
        for labels in label_lists:
            hits = self.memberships(labels)
            for i in hits:
                counts[self.class_names[i]] += 1
            none += not hits
            ambiguous += len(hits) > 1
        return {**counts, "none": none, "ambiguous": ambiguous}


def builtin_tasks() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("acoustic_env.audioset").joinpath("task_files").iterdir() if p.name.endswith(".yaml"))


def _read_definition(name_or_path: str) -> dict:
    if name_or_path in builtin_tasks():
        text = resources.files("acoustic_env.audioset").joinpath("task_files", f"{name_or_path}.yaml").read_text()
    else:
        path = Path(name_or_path)
        if not path.is_file():
            raise TaskError(f"task: {name_or_path!r} is neither a built-in task ({', '.join(builtin_tasks())}) nor a file")
        text = path.read_text()
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise TaskError(f"task: {name_or_path} must be a mapping")
    return data


def load_task(name_or_path: str = "urban_natural", ontology: Ontology | None = None) -> Task:
    """Load a task; the ontology is only needed for display names or descendants."""
    return task_from_definition(_read_definition(name_or_path), ontology, Path(name_or_path).stem)


def task_from_definition(data: dict, ontology: Ontology | None = None, default_name: str = "task") -> Task:
    """Build a task from its parsed definition (a task file, or the copy a model artifact keeps)."""
    kind = data.get("kind", "single_label")
    if kind not in KINDS:
        raise TaskError(f"task.kind: must be one of {KINDS}, got {kind!r}")
    classes = data.get("classes")
    if not isinstance(classes, dict) or len(classes) < 2 and kind == "single_label" or not classes:
        raise TaskError("task.classes: a single-label task needs at least two classes, a multi-label task at least one")
    names, mid_sets = [], []
    for cname, spec in classes.items():
        spec = spec or {}
        labels = spec.get("mids") or []
        if not labels:
            raise TaskError(f"task.classes.{cname}.mids: must list at least one MID or class name")
        needs_ontology = spec.get("descendants", False) or not all(is_mid(m) for m in labels)
        if needs_ontology and ontology is None:
            raise TaskError(f"task.classes.{cname}: needs the AudioSet ontology (display names or descendants); pass --ontology")
        try:
            mids = {ontology.to_mid(m) for m in labels} if ontology else set(labels)
        except OntologyError as exc:
            raise TaskError(f"task.classes.{cname}.mids: {exc}") from None
        if spec.get("descendants", False):
            mids = set().union(*(ontology.descendants(m) for m in mids))
        names.append(str(cname))
        mid_sets.append(frozenset(mids))
    return Task(name=str(data.get("name", default_name)), kind=kind,
                class_names=tuple(names), class_mids=tuple(mid_sets), definition=data)
