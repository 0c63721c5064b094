"""The training candidates: the models train compares and the audit cross-fits, one module each, in one registry.

Each candidate states its own facts in a :class:`~.spec.CandidateSpec` (a built-in one as ``SPEC`` in its module:
:mod:`.linear` (``logreg``, ``elasticnet``), :mod:`.knn`, :mod:`.svm`, :mod:`.forest`, :mod:`.boosted`
(``xgboost``), :mod:`.network` (``mlp``), :mod:`.cnn`); this module only collects them, simplest first: the order of
the reports, and the tie-break when two candidates score alike. ``register(spec)`` makes one known before a job
runs: the zoo builds it, cross-validation compares it, ``learn.portable`` saves it in its format, and the configs'
choices and help name it. Nothing here imports scikit-learn, XGBoost or torch, so the configs below the learning
code read it (as they read the embedders' registry).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from acoustic_env.candidates import boosted, cnn, forest, knn, linear, network, svm
from acoustic_env.candidates.space import Space
from acoustic_env.candidates.spec import CandidateSpec
from acoustic_env.registry import LiveNames, Registry

_REGISTRY: Registry[CandidateSpec] = Registry("model")
register, unregister, get, specs = _REGISTRY.register, _REGISTRY.unregister, _REGISTRY.get, _REGISTRY.specs


def names(keep: Callable[[CandidateSpec], bool] = lambda spec: True, before: tuple[str, ...] = (),
          after: tuple[str, ...] = ()) -> Sequence[str]:
    """Registered names that ``keep`` keeps, simplest first, between the fixed ``before`` and ``after``.

    The result is live: a config declares its choices at import, and a candidate registered after that must still
    be a valid choice.
    """
    kept = _REGISTRY.names(keep)
    return LiveNames(lambda: (*before, *kept, *after))


class _View(MutableMapping[str, Any]):
    """One field of every registered spec that has it, by name, read again at every use. Setting an entry
    replaces that spec with the field changed (a benchmark's or a test's variant of a built-in candidate)."""

    def __init__(self, field: str):
        self._field = field

    def _current(self) -> dict[str, Any]:
        return {s.name: v for s in specs() if (v := getattr(s, self._field)) is not None}

    def __setitem__(self, name: str, value: Any) -> None:
        _REGISTRY.replace(replace(get(name), **{self._field: value}))

    def __delitem__(self, name: str) -> None:  # a space removed: the candidate keeps its defaults, untuned
        _REGISTRY.replace(replace(get(name), **{self._field: None}))

    def __getitem__(self, name: str) -> Any:
        return self._current()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._current())

    def __len__(self) -> int:
        return len(self._current())


#: Every candidate's default settings, by name.
PARAMS: MutableMapping[str, dict[str, Any]] = _View("params")
#: Every tuned candidate's space of ranges (``learn.tuning`` samples it for ``--tuning-trials`` settings; the
#: logistic regressions tune C their own way, ``tunes_itself``).
SPACES: MutableMapping[str, Space] = _View("space")
#: The saved form of every candidate that has one (``learn.portable``).
FORMATS: MutableMapping[str, str] = _View("format")
#: The compared models' average: no candidate of its own, but named where candidates are (``learn.cv``, the audit's
#: cross-fit), and saved as its members when each is a saveable model of vectors (``learn.portable.Average``).
AVERAGE = "average"


def averageable(models: Sequence[str]) -> bool:
    """Whether the average of ``models`` (``AVERAGE`` aside) has a saved form: two or more members, each a saveable
    model of the feature vectors; an image model's probabilities come from inputs one artifact does not hold
    beside the vectors."""
    members = [m for m in models if m != AVERAGE]
    return len(members) > 1 and all(m in FORMATS and get(m).inputs == "vectors" for m in members)

# The built-in candidates, simplest first; each module states its own facts.
for _spec in (*linear.SPECS, knn.SPEC, svm.SPEC, forest.SPEC, boosted.SPEC, network.SPEC, cnn.SPEC):
    register(_spec)


@contextmanager
def pinned(name: str, settings: dict[str, Any]) -> Iterator[None]:
    """Candidate ``name`` with ``settings`` (entries of its ``network`` defaults, e.g. :func:`.cnn.chosen`'s) fixed
    in its defaults and taken out of its tuning space, for the block, then restored: every fit of a job (its
    cross-validation, split, streamed run) reads its settings from the registry, so a job's flags reach them all
    and the saved model records them. One job per process at a time."""
    spec = get(name)
    if settings:
        space = spec.space
        kept = None if space is None else Space({k: r for k, r in space.ranges.items() if k not in settings},
                                                space.within)
        _REGISTRY.replace(replace(spec, params={**spec.params, "network": {**spec.params["network"], **settings}},
                                  space=kept if kept and kept.ranges else None))
    try:
        yield
    finally:
        _REGISTRY.replace(spec)
