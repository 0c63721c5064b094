"""Config ↔ command line: the flags and their help, derived from the field declarations (:mod:`.schema`)."""

from __future__ import annotations

import argparse
import dataclasses
import typing
from collections.abc import Iterator
from dataclasses import MISSING, dataclass, fields, is_dataclass
from typing import Any

from acoustic_env.config.schema import (
    Section,
    T,
    _bounds,
    _default,
    _flag_name,
    _hints,
    _unwrap,
    from_dict,
    load_config_file,
)


@dataclass(frozen=True)
class _Flag:
    path: tuple[str, ...]  # where the value goes in the config data, e.g. ("features", "impl")
    name: str  # "--features-impl"
    field: dataclasses.Field
    kind: Any


def _flags(cls: type, section: tuple[str, ...] = ()) -> Iterator[_Flag]:
    """One flag per leaf field; a section's fields carry its name (``--decode-min-duration-s``)."""
    for f in fields(cls):
        kind, path = _unwrap(_hints(cls)[f.name])[0], (*section, f.name)
        if is_dataclass(kind):
            yield from _flags(kind, path)
        elif f.metadata.get("flags_from"):  # flags named as on the other config's command
            source, left_out = f.metadata["flags_from"]
            yield from (dataclasses.replace(x, path=(*path, *x.path))
                        for x in _flags(source) if x.path[0] not in left_out)
        else:
            yield _Flag(path, _flag_name(f, ".".join(path)), f, kind)


def _text(value: Any) -> str:
    """A default as a user would type it."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (tuple, list)):
        return ",".join(map(str, value)) or "empty"
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in value.items()) or "empty"
    return str(value)


def _help(f: dataclasses.Field, kind: Any) -> str:
    notes = []
    words = f.metadata.get("nargs") or f.metadata.get("positional")  # several words, not comma-separated text
    listed = typing.get_origin(kind) is tuple and not words
    if f.metadata["choices"]:
        notes.append(("comma-separated subset of " if listed else "one of ") + ",".join(f.metadata["choices"]))
    elif listed:
        notes.append("comma-separated")
    bounds = _bounds(f.metadata, kind is int)
    if bounds and (f.metadata["le"] is not None or f.metadata["lt"] is not None):  # a ceiling is not guessable
        notes.append(bounds[1].removeprefix("must be "))
    default = _default(f)
    if default is MISSING:
        notes.append("required")
    elif default is not None:
        notes.append(f"default: {_text(default)}")
    text = f.metadata["help"] + (f" ({'; '.join(notes)})" if notes else "")
    return text.replace("%", "%%")


def describe(cls: type[Section]) -> list[tuple[str, str, str]]:
    """(config-file key, flag, help with the default) for every field of ``cls``: the
    documentation's configuration reference, derived from the same fields as the flags."""
    return [(".".join(flag.path), flag.path[-1].upper() if flag.field.metadata.get("positional") else flag.name,
             _help(flag.field, flag.kind).replace("%%", "%")) for flag in _flags(cls)]


def _metavar(flag: _Flag) -> str:
    if typing.get_origin(flag.kind) in (tuple, dict) and not flag.field.metadata.get("nargs"):
        return "A,B" if typing.get_origin(flag.kind) is tuple else "K=V,..."
    return {int: "N", float: "X"}.get(flag.kind) or flag.path[-1].upper()


def add_flags(parser: argparse.ArgumentParser, cls: type[Section], config_file: bool = True,
              dry_run: bool = False) -> None:
    """Add ``--config FILE`` and one flag per field of ``cls``; a section's flags get their own help group.

    Every flag defaults to None ("not given"), so that :func:`from_args` can tell a flag
    from the config file; values are parsed by :func:`from_dict`, which names the field.
    ``config_file=False``: the flags only. ``dry_run``: ``--dry-run`` too, for a job with a plan (not a config
    field: it says whether to run the job, not how).
    """
    if config_file:
        parser.add_argument("--config", metavar="FILE",
                            help=f"YAML/JSON file with any {cls.__name__} field; the flags given override it")
    if dry_run:
        parser.add_argument("--dry-run", action="store_true",
                            help="print what would run (clips to do, columns, resources, weights, outputs) "
                                 "without starting Ray or writing anything")
    groups: dict[tuple[str, ...], Any] = {(): parser}
    for flag in _flags(cls):
        where = flag.path[:-1]
        if where not in groups:
            dotted = ".".join(where)
            groups[where] = parser.add_argument_group(f"{dotted} options", f"the {dotted!r} section of a --config file")
        meta, text = flag.field.metadata, _help(flag.field, flag.kind)
        if meta.get("positional"):  # a word without a flag: its name is its dest (a top-level field)
            listed, optional = typing.get_origin(flag.kind) is tuple, _default(flag.field) is not MISSING
            groups[where].add_argument(flag.path[-1], nargs=("*" if optional else "+") if listed
                                       else ("?" if optional else None), help=text)
            continue
        kwargs: dict[str, Any] = ({"action": argparse.BooleanOptionalAction} if flag.kind is bool
                                  else {"metavar": _metavar(flag)})
        if meta.get("nargs"):
            kwargs.update(nargs=meta["nargs"], const=meta["const"])
        short = (f"-{flag.path[0]}",) if len(flag.path) == 1 and len(flag.path[0]) == 1 else ()  # -k beside --k
        groups[where].add_argument(*short, flag.name, dest=".".join(flag.path), default=None, help=text, **kwargs)


def from_args(cls: type[T], args: argparse.Namespace) -> T:
    """The ``--config`` file's fields overridden by the flags given, built and validated."""
    data = load_config_file(args.config) if getattr(args, "config", None) else {}
    for flag in _flags(cls):
        value = getattr(args, ".".join(flag.path))
        if value is None or (value == [] and flag.field.metadata.get("positional")):  # not given (no word: [])
            continue
        target = data
        for key in flag.path[:-1]:
            inner = target.get(key)
            target[key] = inner = dict(inner) if isinstance(inner, dict) else {}
            target = inner
        target[flag.path[-1]] = value
    return from_dict(cls, data)
