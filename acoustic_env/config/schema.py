"""How a config field is declared once, and what derives from the declaration.

A field's declaration (:func:`option`) carries its help text and its rules (choices,
bounds, a check, the flag name when it is not the field's). From it come the command
line flags (:func:`acoustic_env.config.flags.add_flags`), the reading of config files and flags (:func:`from_dict`,
:func:`acoustic_env.config.flags.from_args`) and the validation (:func:`validate`), so that a new field is one line
and every command spells a concept the same way. The jobs' configs themselves are in
:mod:`acoustic_env.config`.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import math
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, field, fields, is_dataclass
from pathlib import Path
from typing import Any, TypeVar

from acoustic_env.bounded import MAX_YAML_BYTES, load_yaml, read_bytes, shown
from acoustic_env.errors import ConfigError


# --- declaring a field ---------------------------------------------------------------

#: What a path field is to its job: read (``input``; ``table``: a feature table), written (``output``: a
#: directory the job writes below; ``output_file``: one file), or a ``cache`` it reads and fills (model weights).
ROLES = ("input", "table", "output", "output_file", "cache")

#: A rule a field's value must pass, and what to say when it does not.
Check = tuple[Callable[[Any], bool], str]


def option(default: Any = MISSING, *, help: str, factory: Callable[[], Any] | None = None,
           choices: Sequence[str] = (), nonempty: bool = False, ge: float | None = None, gt: float | None = None,
           le: float | None = None, lt: float | None = None, check: Check | None = None, flag: str | None = None,
           parse: Callable[[Any], Any] | None = None,
           flags_from: tuple[type, tuple[str, ...]] | None = None, role: str | None = None,
           positional: bool = False, nargs: str | None = None, const: Any = None) -> Any:
    """A dataclass field with what a user needs to know about it.

    No ``default`` (and no ``factory``) makes the field required. ``choices`` is the set of
    allowed values (a subset of them for a list-valued field, which a flag gives as
    comma-separated text), kept as given: a live sequence (the registered embedders) is
    read when a value is checked. ``flag``: the flag name when it is not the field's.
    ``parse`` turns a file's or a flag's value into the field's value where the generic
    coercion cannot. ``flags_from`` = (a config class, the names it leaves out): a mapping
    field whose keys are that class's fields, each with its own flag. ``role``: what a path field is to its
    job, one of :data:`ROLES` (``jobs/preflight.py`` checks each, and keeps every output apart from every input).
    ``positional``: given on the command line without a flag (``predict FILES``); ``nargs``: the flag takes several
    words (``--verdicts A B``: ``"+"``) or none (``"?"``, then ``const`` is its value), where a list field's
    comma-separated text or a plain value would not say what users type.
    """
    meta = {"help": help, "choices": choices, "nonempty": nonempty, "ge": ge, "gt": gt, "le": le, "lt": lt,
            "check": check, "flag": flag, "parse": parse, "flags_from": flags_from, "role": role,
            "positional": positional, "nargs": nargs, "const": const}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def like(cls: type, name: str, **changes: Any) -> Any:
    """A field declared as ``cls``'s field ``name`` is (its help and rules), with ``changes`` (``default``, or any
    :func:`option` keyword): one concept on two commands, declared once."""
    f = next(f for f in fields(cls) if f.name == name)
    default = changes.pop("default", _default(f))
    return field(default=default, metadata={**f.metadata, **changes})


class Section:
    """Base of every config dataclass: plain-data export, and the rules that span fields."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    def cross_check(self) -> None:
        """Rules involving several fields (each field's own rules come from its declaration)."""


T = TypeVar("T", bound=Section)


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _unwrap(hint: Any) -> tuple[Any, bool]:
    """(the type, whether None is allowed) of ``X`` or ``X | None``."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return next(a for a in typing.get_args(hint) if a is not type(None)), True
    return hint, False


def _required(f: dataclasses.Field) -> bool:
    return f.default is MISSING and f.default_factory is MISSING


def _default(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default_factory is not MISSING else f.default


# --- plain data → config -------------------------------------------------------------

_KINDS = {bool: "true or false", int: "an integer", float: "a number", str: "text"}


def _scalar(name: str, kind: type, value: Any) -> Any:
    """``value`` as ``kind``, from a file's value or a flag's text."""
    try:
        if kind is int and isinstance(value, str):
            value = int(value)
        elif kind is float and isinstance(value, (str, int)) and not isinstance(value, bool):
            value = float(value)
    except ValueError:
        pass
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise ConfigError(f"{name}: must be {_KINDS[kind]}, got {shown(value)}")
    if kind is float and not math.isfinite(value):  # inf passes every bound, nan fails them obscurely
        raise ConfigError(f"{name}: must be a finite number, got {shown(value)}")
    return value


def _coerce(name: str, hint: Any, value: Any, meta: Mapping[str, Any]) -> Any:
    """A file's, a flag's or Python's value as the declared type, or a ConfigError naming ``name``."""
    if meta.get("parse"):
        try:
            return meta["parse"](value)
        except TypeError as exc:
            raise ConfigError(f"{name}: {exc}") from None
    if meta.get("flags_from"):
        return _coerce_partial(meta["flags_from"][0], value or {}, f"{name}.")
    kind, optional = _unwrap(hint)
    if value is None and optional:
        return None
    if is_dataclass(kind):
        return value if isinstance(value, kind) else _build(kind, {} if value is None else value, f"{name}.")
    args = typing.get_args(kind)
    if typing.get_origin(kind) is tuple:  # tuple[str, ...] or a fixed size such as tuple[float, float]
        items = [s.strip() for s in value.split(",") if s.strip()] if isinstance(value, str) else value
        fixed = args[-1] is not Ellipsis
        if not isinstance(items, (list, tuple)) or (fixed and len(items) != len(args)):
            size = f" of {len(args)} values" if fixed else ""
            raise ConfigError(f"{name}: must be a list (or comma-separated text){size}, got {shown(value)}")
        return tuple(_scalar(name, k, v) for k, v in zip(args if fixed else [args[0]] * len(items), items))
    return _scalar(name, kind, value)


def _coerce_fields(cls: type, data: Any, prefix: str) -> dict[str, Any]:
    """The values of ``data`` as the types ``cls`` declares for them, naming unknown or mistyped fields."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: must be a mapping of field names to values, "
                          f"got {shown(data)}")
    declared = {f.name: f for f in fields(cls)}
    for key in data:
        if key not in declared:
            near = difflib.get_close_matches(str(key), declared, n=1, cutoff=0.75)  # a typo: say which was meant
            guess = f", did you mean {prefix}{near[0]}?" if near else ""
            raise ConfigError(f"{prefix}{key}: unknown field{guess} (known: {', '.join(sorted(declared))})")
    return {k: _coerce(prefix + k, _hints(cls)[k], v, declared[k].metadata) for k, v in data.items()}


def _coerce_partial(cls: type, data: Any, prefix: str) -> dict[str, Any]:
    """Some fields of ``cls`` (another command's options), coerced and checked, a section given as a mapping
    kept as the mapping of its fields given: the job that takes them can tell an option given from a default."""
    coerced = _coerce_fields(cls, data, prefix)
    for key, value in data.items():
        if is_dataclass(_unwrap(_hints(cls)[key])[0]) and isinstance(value, Mapping):
            coerced[key] = _coerce_partial(_unwrap(_hints(cls)[key])[0], value, f"{prefix}{key}.")
    return coerced


def _build(cls: type[T], data: Any, prefix: str) -> T:
    """Construct (not yet validate) a config from a mapping."""
    kwargs = _coerce_fields(cls, data, prefix)
    for f in fields(cls):
        if _required(f) and kwargs.get(f.name) is None:
            raise _missing(prefix + f.name, f)
    return cls(**kwargs)


def from_dict(cls: type[T], data: Mapping[str, Any]) -> T:
    """Build and validate a config from plain data (a parsed YAML/JSON file, flags, Python)."""
    return validate(_build(cls, data, ""))


def load_config_file(path: str) -> dict[str, Any]:
    """Read a YAML or JSON config file into a dict (one-line error if unreadable)."""
    try:
        raw = read_bytes(path, "config", MAX_YAML_BYTES, "a config file")
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise ConfigError(f"config: file not found: {path}") from None
    try:
        text = raw.decode("utf-8-sig")
        data = json.loads(text) if Path(path).suffix == ".json" else load_yaml(text, "config", path)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"config: cannot parse {path}: {shown(str(exc).splitlines()[0], bare=True)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config: {path} must hold a mapping of field names to values")
    return data


# --- validation ----------------------------------------------------------------------

def require(cond: bool, name: str, msg: str, value: Any) -> None:
    """Raise ``name: msg, got value`` unless ``cond`` (for the configs' cross-field rules)."""
    if not cond:
        value_shown = ",".join(map(str, value)) if isinstance(value, tuple) else value
        raise ConfigError(f"{name}: {msg}, got {shown(value_shown)}")


def _flag_name(f: dataclasses.Field, dotted: str) -> str:
    return "--" + (f.metadata.get("flag") or dotted.replace(".", "-")).replace("_", "-")


def _missing(name: str, f: dataclasses.Field) -> ConfigError:
    return ConfigError(f"{name}: is required ({_flag_name(f, name)} or in --config)")


def _bounds(meta: Mapping[str, Any], integer: bool) -> tuple[Callable[[Any], bool], str] | None:
    """The declared bounds as a test and its message (``must be an integer in [2, 50]``)."""
    low = ("[", meta["ge"]) if meta["ge"] is not None else ("(", meta["gt"]) if meta["gt"] is not None else None
    high = ("]", meta["le"]) if meta["le"] is not None else (")", meta["lt"]) if meta["lt"] is not None else None
    if low is None and high is None:
        return None

    def within(v: Any) -> bool:
        return ((low is None or (v >= low[1] if low[0] == "[" else v > low[1]))
                and (high is None or (v <= high[1] if high[0] == "]" else v < high[1])))

    kind = "an integer " if integer else ""
    if low and high:
        return within, f"must be {kind}in {low[0]}{_number(low[1])}, {_number(high[1])}{high[0]}"
    sign, bound = (">=" if low[0] == "[" else ">", low[1]) if low else ("<=" if high[0] == "]" else "<", high[1])
    return within, f"must be {kind}{sign} {_number(bound)}"


def _number(bound: float) -> str:
    """A bound in its shortest exact form: 0.5, 2e+09, but 2147483647 (2.14748e+09 would be another number)."""
    short = f"{bound:g}"
    return short if float(short) == bound else str(bound)


def _check(name: str, value: Any, meta: Mapping[str, Any], kind: Any) -> None:
    """One field's declared rules."""
    choices, nonempty = meta["choices"], meta["nonempty"]
    if isinstance(value, tuple) and choices:
        ok = set(value) <= set(choices) and (bool(value) or not nonempty)
        require(ok, name, f"must be a {'non-empty ' if nonempty else ''}subset of {list(choices)}", value)
        require(len(set(value)) == len(value), name, "must not repeat a name", value)
    elif choices:
        require(value in choices, name, f"must be one of {list(choices)}", value)
    elif nonempty:
        require(bool(value), name, "must not be empty", value)
    bounds = _bounds(meta, kind is int)
    if bounds:
        require(bounds[0](value), name, bounds[1], value)
    if meta["check"]:
        require(meta["check"][0](value), name, meta["check"][1], value)


def _validate(section: Section, prefix: str) -> None:
    hints = _hints(type(section))
    for f in fields(section):  # type: ignore[arg-type]
        value, name = getattr(section, f.name), prefix + f.name
        if isinstance(value, Section):
            _validate(value, f"{name}.")
        elif _required(f) and not value:
            raise _missing(name, f)
        elif value is not None:
            _check(name, value, f.metadata, _unwrap(hints[f.name])[0])
    section.cross_check()


def validate(cfg: T) -> T:
    """Check every field against its declaration, then the config's cross-field rules.

    Raises ConfigError naming the first bad field; returns ``cfg`` so calls can be chained.
    """
    _validate(cfg, "")
    return cfg
