"""What the registries share (the embedders', ``embedders/registry.py``, and the training candidates',
``candidates/``): names read again at every use, and functions imported on their first call.

A config declares its choices when it is imported; an embedder or a candidate registered after that (from a
notebook, a plugin module or a test) must still be a valid choice, so the choices are a live view of the registry,
not a tuple copied at import. A spec names the heavy code that builds its model lazily, so that reading the registry
(validating a config, ``acoustic-env --help``) imports neither torch nor scikit-learn, and the spec pickles.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Sequence
from typing import Any, Generic, Protocol, TypeVar, overload


class LiveNames(Sequence[str]):
    """The names ``current()`` gives, asked again at every use."""

    def __init__(self, current: Callable[[], tuple[str, ...]]) -> None:
        self._current = current

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


class _Named(Protocol):
    name: str


S = TypeVar("S", bound=_Named)


class Registry(Generic[S]):
    """Specs by name, in registration order: one ``kind`` of thing (an embedder, a candidate, a feature group)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._specs: dict[str, S] = {}

    def register(self, spec: S) -> S:
        """Make ``spec`` known to configs and jobs under its name; returns it."""
        if spec.name in self._specs:
            raise ValueError(f"{self.kind} {spec.name!r} is already registered")
        self._specs[spec.name] = spec
        return spec

    def unregister(self, name: str) -> None:
        """Forget ``name`` (a test's toy, once the test is done)."""
        self._specs.pop(name, None)

    def replace(self, spec: S) -> None:
        """Put ``spec`` in the place of the one registered under its name (a variant of a built-in one)."""
        self.get(spec.name)
        self._specs[spec.name] = spec

    def get(self, name: str) -> S:
        """The spec registered under ``name``."""
        try:
            return self._specs[name]
        except KeyError:
            raise ValueError(f"unknown {self.kind} {name!r}; choose from {list(self._specs)}") from None

    def specs(self) -> list[S]:
        """Every registered spec, in registration order."""
        return list(self._specs.values())

    def names(self, keep: Callable[[S], bool] = lambda spec: True) -> LiveNames:
        """The registered names ``keep`` keeps, live (see the module docstring)."""
        return LiveNames(lambda: tuple(s.name for s in self._specs.values() if keep(s)))


def _call(module: str, function: str, *args: Any, **kwargs: Any) -> Any:
    return getattr(importlib.import_module(module), function)(*args, **kwargs)


def lazy(module: str, function: str) -> Callable[..., Any]:
    """``module.function``, imported on the first call, so that a spec stays free of its model's libraries (and
    pickles)."""
    return functools.partial(_call, module, function)
