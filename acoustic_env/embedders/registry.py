"""The registry: the embedders configs and jobs can name, in the order the pipeline runs them.

Each embedder states its own facts in an :class:`~.spec.EmbedderSpec` (a built-in one as
``SPEC`` in its module: :mod:`.vggish`, :mod:`.yamnet`, :mod:`.panns`, :mod:`.birdnet`); this module only
collects them. ``register(spec)`` makes one known before the job runs. Jobs hand the spec
itself to their workers, so an embedder registered in a notebook or a test reaches Ray
actors without being importable there. Nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import overload

from acoustic_env.embedders.birdnet import SPEC as BIRDNET
from acoustic_env.embedders.panns import SPEC as PANNS
from acoustic_env.embedders.spec import EmbedderSpec
from acoustic_env.embedders.vggish import SPEC as VGGISH
from acoustic_env.embedders.weights import WeightsSpec
from acoustic_env.embedders.yamnet import SPEC as YAMNET

_SPECS: dict[str, EmbedderSpec] = {}


def register(spec: EmbedderSpec) -> EmbedderSpec:
    """Make ``spec`` known to configs and jobs under its name; returns it."""
    if spec.name in _SPECS:
        raise ValueError(f"embedder {spec.name!r} is already registered")
    _SPECS[spec.name] = spec
    return spec


def get(name: str) -> EmbedderSpec:
    """The spec registered under ``name``."""
    try:
        return _SPECS[name]
    except KeyError:
        raise ValueError(f"unknown embedder {name!r}; choose from {list(_SPECS)}") from None


class _Names(Sequence[str]):
    """Registered names between fixed ones (then each with the suffixes), read again at every use."""

    def __init__(self, before: tuple[str, ...], after: tuple[str, ...], suffixes: tuple[str, ...] = ()) -> None:
        self._before, self._after, self._suffixes = before, after, suffixes

    def _current(self) -> tuple[str, ...]:
        return (*self._before, *_SPECS, *self._after, *(f"{n}_{s}" for n in _SPECS for s in self._suffixes))

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[str, ...]: ...

    def __getitem__(self, index: int | slice) -> str | tuple[str, ...]:
        return self._current()[index]

    def __len__(self) -> int:
        return len(self._current())

    def __repr__(self) -> str:
        return repr(self._current())


def names(before: tuple[str, ...] = (), after: tuple[str, ...] = (), suffixes: tuple[str, ...] = ()) -> Sequence[str]:
    """Registered names in registration order (the order the pipeline runs them).

    The result is live: a config declares its choices at import, and an embedder
    registered after that must still be a valid choice. ``before``/``after``: fixed names
    around them (train's sources are ``indices``, ``mps`` and every embedder); ``suffixes``:
    each name again with each suffix, last (``panns_fg``: the columns of a separated signal).
    """
    return _Names(before, after, suffixes)


def weight_files() -> dict[str, WeightsSpec]:
    """Every registered pretrained file by its name: what the model cache can hold."""
    return {w.name: w for spec in _SPECS.values() for w in spec.weight_files()}


def convertible() -> tuple[str, ...]:
    """The registered embedders whose checkpoint ``models convert`` builds (those with a ``convert``)."""
    return tuple(name for name, spec in _SPECS.items() if spec.convert is not None)


# The built-in embedders, in the order the pipeline runs them; each module states its own facts.
for _spec in (VGGISH, YAMNET, PANNS, BIRDNET):
    register(_spec)
