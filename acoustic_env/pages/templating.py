"""The pages' Jinja2 templates (``pages/templates/``) and the table cells their ``table`` macro draws.

Python decides what goes in each page, section and table; the templates hold
all the markup. Autoescaping is on for every template, so any text that comes
from data (clip ids, labels, URIs, error messages, settings) is escaped where it
lands, whatever the code that passed it; only another template's output
(:class:`markupsafe.Markup`) goes in as it is. ``StrictUndefined`` makes a
misspelt name in a template an error instead of an empty string.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup


@dataclass(frozen=True)
class Interval:
    """A measured figure with its 95 % interval (a dash when there is no figure)."""

    value: float | None
    interval: list[float] | None = None


@dataclass(frozen=True)
class Adjusted:
    """Both adjusted figures of one accuracy: the noise model's (None: undefined), then the study's acc/a."""

    noise: Interval | None
    ratio: Interval | None


@dataclass(frozen=True)
class Plain:
    """Text in a number's column (right-aligned, unlike a string cell): a formatted statistic or a setting."""

    text: str


def figure(v: Any) -> str:
    """A measured figure: three decimals are all a test set of a few hundred clips supports."""
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def exact(v: Any) -> str:
    """A setting, shown as given (0.0001 stays 0.0001, not 0.000)."""
    if v is None:
        return "–"
    if isinstance(v, (list, tuple)):  # a grid of values (logreg's Cs): each one exact, not numpy's repr
        return "[" + ", ".join(exact(x) for x in v) + "]"
    return repr(float(v)) if isinstance(v, float) else str(v)


@cache
def environment() -> Environment:
    """The one environment: templates read from the package (a wheel carries them), autoescaped."""
    env = Environment(loader=PackageLoader("acoustic_env.pages", "templates"), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(figure=figure, exact=exact)
    env.tests.update(interval=lambda c: isinstance(c, Interval), adjusted=lambda c: isinstance(c, Adjusted),
                     plain=lambda c: isinstance(c, Plain))
    return env


def render(name: str, **context: Any) -> Markup:
    """Template ``name`` (a path under ``templates/``) filled with ``context``: markup another template may embed."""
    return Markup(environment().get_template(name).render(**context))
