"""A candidate's search space: each searched setting's range (``Range``), declared with its ``CandidateSpec``
and sampled by ``learn.tuning`` (the defaults first, then Optuna's TPE). Plain data, importing nothing of the
package."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Range:
    """One searched setting: integers (``integer``) or numbers from ``low`` to ``high`` (``log``: drawn evenly on a
    log scale, for a rate or a strength whose effect goes by factors), or one of ``choices``."""

    low: float = 0.0
    high: float = 0.0
    log: bool = False
    integer: bool = False
    choices: tuple[Any, ...] = ()

    def size(self) -> float:
        """How many distinct values the range holds (infinite for numbers)."""
        if self.choices:
            return len(self.choices)
        return self.high - self.low + 1 if self.integer else math.inf

    def holds(self, value: Any) -> bool:
        """Whether ``value`` is one of the range's values."""
        if self.choices:
            return value in self.choices
        return self.low <= value <= self.high and (not self.integer or float(value).is_integer())

    def rounded(self, value: Any) -> Any:
        """A drawn value as the search uses and records it: numbers to 3 significant figures (0.0123, not
        0.012345678: the report reads them, and a setting can be typed back), integers as ``int``."""
        if self.choices:
            return value
        return int(value) if self.integer else float(f"{value:.3g}")

    def describe(self) -> str:
        """The range in words, for the report, the console and the docs' table."""
        if self.choices:
            return "{" + ", ".join(map(str, self.choices)) + "}"
        return f"{self.low:g}–{self.high:g}" + (" log" if self.log else "")


def ints(low: int, high: int, log: bool = False) -> Range:
    """The integers ``low`` to ``high``."""
    return Range(low, high, log, integer=True)


def numbers(low: float, high: float, log: bool = False) -> Range:
    """The numbers ``low`` to ``high``."""
    return Range(low, high, log)


def one_of(*values: Any) -> Range:
    """One of ``values`` (None: the model's own unbounded setting, a forest's depth)."""
    return Range(choices=values)


@dataclass(frozen=True)
class Space:
    """A model's search space: each searched setting's range. ``within``: the ``PARAMS`` entry holding those settings
    (the network's are in ``network``), else ``PARAMS[model]`` itself."""

    ranges: dict[str, Range]
    within: str | None = None

    def defaults(self, params: dict[str, Any]) -> dict[str, Any]:
        """The searched settings' values in ``params`` (a model's settings): the search's first trial."""
        return {name: (params[self.within] if self.within else params)[name] for name in self.ranges}

    def overrides(self, setting: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        """``setting`` (searched name -> value) as overrides of ``params``, nested where the space is ``within``."""
        return {self.within: {**params[self.within], **setting}} if self.within else dict(setting)

    def size(self) -> float:
        """How many distinct settings the space holds (infinite with a range of numbers)."""
        return math.prod(r.size() for r in self.ranges.values())

    def describe(self) -> dict[str, str]:
        """Each searched setting's range in words."""
        return {name: r.describe() for name, r in self.ranges.items()}
