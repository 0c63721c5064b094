"""Path (and device) checks every job runs before it reads a clip or starts Ray.

A mistaken path is the commonest first-hour error: an ``--output`` that names a file,
a manifest that is not there, a directory that cannot be written. Each would otherwise
surface minutes later as a traceback from deep inside fsspec, pyarrow or a Ray actor.
Here each becomes one :class:`~acoustic_env.config.ConfigError` line naming the field.
Only local paths are checked: for object storage the job's first write (or read) is the
check, and it too ends in one line. The one input a job may need the network for, an
``ontology`` given as a URL, is read here too (and cached), so an unreachable one stops
the job before it extracts anything rather than after. So does ``--device cuda`` on a machine
with no CUDA GPU when no cluster is named: the local Ray instance would have none either.

Which fields are paths, and whether a job reads or writes each, is declared with the field
(``role``, :data:`acoustic_env.config.schema.ROLES`); from it every job gets the same checks,
and one rule: no output is, holds or lies inside an input (:func:`keep_apart`), through
symbolic links too. ``duplicates`` (a command without a config) and ``export_features`` call :func:`keep_apart` with
its arguments. The same function holds the one rule for what a command may write into: no output is, or lies
inside, a folder of the project's own data that the command was not asked to write (:func:`check_not_in_data`:
a table's parts folder, a label store), whether it reads that folder or not; a label store given to be written is
checked by :func:`check_store`.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

from acoustic_env.config import DEVICES, ConfigError, ExtractConfig, Section
from acoustic_env.config.audioset import SampleConfig
from acoustic_env.storage import is_local, join, nesting, require_backend, same_file
from acoustic_env.labels.store import PREFIX as EVENTS_PREFIX
from acoustic_env.layout import PART_PREFIXES
from acoustic_env.table import check_table_source

#: The fewest clips with a target that train accepts: fewer cannot fill a train, a
#: validation and a test split with every class. Checked before Ray starts (and by
#: ``--dry-run``), so a table too small costs a second, not a cluster start-up.
MIN_TRAIN_CLIPS = 10


def one_class(n: int, source: str, task_name: str, present: list[str]) -> str | None:
    """Why ``n`` clips with a target, all of the one class in ``present``, cannot train a single-label task (None:
    two classes or more): train's check, and its dry run's."""
    if len(present) != 1:
        return None
    return (f"task: all {n} clips of {source} with a target for {task_name} are {present[0]}; a classifier needs "
            "clips of two classes or more")


def on_every_clip(n: int, source: str, task_name: str, per_label: dict[str, int]) -> str | None:
    """Why the audit cannot judge a multi-label task whose ``n`` clips all carry a label (``per_label``: the clips
    carrying each; None: no label is on every clip): confident learning weighs a label's clips against the clips
    without it, and cleanlab refuses a label of one value. Train fits such a label as its rate; a label on no clip
    stops both at the folds (``learn.splits.check_counts``)."""
    every = [name for name, count in per_label.items() if count == n]
    if not every:
        return None
    return (f"task: all {n} clips of {source} with a target for {task_name} carry {', '.join(every)}; the audit "
            f"judges a label against clips without it: leave {'it' if len(every) == 1 else 'them'} out of the task, "
            f"or add clips without {'it' if len(every) == 1 else 'them'}")


def _local(uri: str) -> Path | None:
    """The local path that ``uri`` names, to check here; None for object storage, where only the store's package
    can be checked (installed) before the job's first read or write."""
    require_backend(uri)
    return Path(uri.removeprefix("file://")) if is_local(uri) else None


def check_input(uri: str | None, field: str) -> None:
    """``uri`` (a local file or directory) exists and can be read; a remote one's store package is installed."""
    path = _local(uri) if uri else None
    if path is None:
        return
    if not path.exists():
        raise ConfigError(f"{field}: no such file or directory: {uri}")
    if not os.access(path, os.R_OK):
        raise ConfigError(f"{field}: cannot read {uri} (permission denied)")


def check_ontology(uri: str | None, field: str) -> None:
    """A given ontology can be read (fetched and cached now, when it is a URL); the package's copy needs no check."""
    if not uri:
        return
    from acoustic_env.vocabulary.ontology import OntologyError, load_ontology

    try:
        load_ontology(uri)
    except OntologyError as exc:
        raise ConfigError(f"{field}: {exc}") from None


def check_output(uri: str | None, field: str) -> None:
    """``uri`` is, or can become, a writable local directory (a remote one: its store package is installed)."""
    path = _local(uri) if uri else None
    if path is None:
        return
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{field}: {uri} is a file; give a directory (the job writes several files below it)")
    _creatable(path, uri, field)


def _creatable(path: Path, uri: str, field: str) -> None:
    """The directory ``path`` is, or can be made below its nearest existing ancestor, and written to."""
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"{field}: {existing} is a file, so {uri} cannot be created below it")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{field}: cannot write to {existing} (permission denied)")
    try:  # access() says yes to root everywhere, /proc and /sys included: a file made and gone says it for sure
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise ConfigError(f"{field}: cannot create a file in {existing} ({exc.strerror or type(exc).__name__}), so "
                          f"{uri} cannot be written") from None


def check_output_file(uri: str, field: str, inputs: dict[str, str]) -> None:
    """``uri`` is none of the job's ``inputs`` ({what: uri}; the same file by path, link or inode), and
    (locally) is not a directory and can be written: an input read and then replaced by the output would
    be lost, and a directory or an unwritable place would fail only after all the work."""
    path = _local(uri)
    for what, other in inputs.items():
        if same_file(uri, other):
            raise ConfigError(f"{field}: {uri} is the {what} this job reads; writing it would replace its "
                              "input: give another file")
    if path is None:
        return
    if path.is_dir():
        raise ConfigError(f"{field}: {uri} is a directory; give a file name (e.g. {join(uri, 'out.csv')})")
    if path.exists() and not os.access(path, os.W_OK):
        raise ConfigError(f"{field}: cannot write to {uri} (permission denied)")
    _creatable(path.parent, uri, field)


def check_local_device(device: str, ray_address: str | None) -> None:
    """``--device cuda`` with no cluster named needs a CUDA GPU here (a cluster's GPUs are checked once Ray is up)."""
    if device != "cuda" or ray_address or os.environ.get("RAY_ADDRESS"):
        return
    import torch

    if not torch.cuda.is_available():
        raise ConfigError("device: --device cuda, but this machine has no CUDA GPU and no cluster is named "
                          "(use --device auto or cpu)")


def check_device(device: str) -> None:
    """A device for work in this process (predict): one of DEVICES, and ``cuda`` only where there is one."""
    if device not in DEVICES:
        raise ConfigError(f"device: must be one of {', '.join(DEVICES)}, got {device!r}")
    check_local_device(device, None)


#: What each role of a path field (``config.schema.ROLES``) is to :func:`keep_apart`.
READ, WRITTEN = ("input", "table"), ("output", "output_file")


def path_fields(cfg: Section) -> list[tuple[str, str, str]]:
    """(role, field, path) of every path a job config gives, from its fields' declared roles (a list field: one
    per path; a mapping of another config's fields, annotate's ``extract``: as ``extract.<field>``)."""
    return list(_paths(type(cfg), {f.name: getattr(cfg, f.name) for f in fields(cfg)}, ""))  # type: ignore[arg-type]


def _paths(cls: type, values: Mapping[str, Any], prefix: str) -> Iterator[tuple[str, str, str]]:
    for f in fields(cls):
        value, name = values.get(f.name), prefix + f.name
        if f.metadata.get("flags_from"):  # the keys another config's fields may take (annotate's extract options)
            yield from _paths(f.metadata["flags_from"][0], value or {}, f"{name}.")
        elif isinstance(value, Section):
            yield from _paths(type(value), vars(value), f"{name}.")
        elif f.metadata.get("role") and value:
            yield from ((f.metadata["role"], name, uri) for uri in (value if isinstance(value, tuple) else (value,)))


#: What :func:`data_folder` calls the two kinds of the project's data folders.
PARTS, STORE = "a feature table's parts folder", "a label store"
#: How the names of the parts a run writes begin (``layout.part_name``, the compacted ``errors-*``).
_RUN_PARTS = tuple(sorted({p for prefixes in PART_PREFIXES.values() for p in prefixes}))


def data_folder(uri: str) -> str | None:
    """What the local folder ``uri`` is to the project's readers, by the Parquet files it holds itself: a table's
    parts folder (``part-*``, ``errors-*``: ``features/``, ``errors/``, ``annotations/``), a label store
    (``events-*``), else None (not a folder, not local, or neither). A file added to either would be read as one of its own."""
    path = _local(uri)
    if path is None or not path.is_dir():
        return None
    with os.scandir(path) as entries:
        names = [e.name for e in entries if e.name.endswith(".parquet")]
    if any(n.startswith(_RUN_PARTS) for n in names):
        return PARTS
    if any(n.startswith(EVENTS_PREFIX) for n in names):
        return STORE
    return None


def check_not_in_data(uri: str, field: str, may_be: str | None = None) -> None:
    """The output ``uri`` is not, and lies inside no, table parts folder or label store (:func:`data_folder`;
    locally, through symbolic links), unless it is itself the kind ``may_be`` names: a command writes only into
    the table or store it was asked to write (``labels add-verdicts --store``: :func:`check_store`)."""
    path = _local(uri)
    if path is None:
        return
    resolved = Path(os.path.realpath(path))
    for folder in (resolved, *resolved.parents):
        kind = data_folder(str(folder))
        if kind and not (folder == resolved and kind == may_be):
            where = f"is {kind}" if folder == resolved else f"lies inside {kind} ({folder})"
            raise ConfigError(f"{field}: {uri} {where}: a file written there would be read as one of its own; give "
                              "a path outside it")


def check_store(store: str, field: str = "store") -> None:
    """A label store about to be written: a writable directory (:func:`check_output`), a store already or a new
    one, and neither a table's parts folder nor inside one or inside another store (:func:`check_not_in_data`)."""
    check_not_in_data(store, field, may_be=STORE)
    check_output(store, field)


def keep_apart(inputs: Iterable[tuple[str, str]], outputs: Iterable[tuple[str, str]]) -> None:
    """No output (field, path) is, holds or lies inside an input: one line naming both, before any work.

    An output on an input replaces it (``search --save`` onto the table it searched); one inside an
    input adds a file to it (``export --output T/features/x.parquet``: the next extract resume of ``T``
    would meet it); one that holds an input may overwrite or sweep it. Paths are compared resolved,
    through symbolic and hard links (:func:`acoustic_env.storage.nesting`). Then no output, read or not, is or
    lies inside a table's parts folder or a label store (:func:`check_not_in_data`).
    """
    read = [(name, uri) for name, uri in inputs if uri]
    for field, out in outputs:
        if not out:
            continue
        for what, uri in read:
            how = nesting(out, uri)
            if how == "is":
                raise ConfigError(f"{field}: {out} is the {what} this job reads ({uri}): writing it would replace "
                                  "that input; give another path")
            if how == "inside":
                raise ConfigError(f"{field}: {out} lies inside the {what} this job reads ({uri}): give a path "
                                  "outside it")
            if how == "contains":
                raise ConfigError(f"{field}: {out} holds the {what} this job reads ({uri}): give a path that "
                                  "does not contain it")
        check_not_in_data(out, field)


def check_sample_paths(cfg: SampleConfig) -> None:
    """``audioset sample``'s two outputs (the list and its report beside it): each is none of its inputs and can
    be written (:func:`preflight`, and :func:`check_output_file` for the report), one line before the segment
    list is read."""
    from acoustic_env.audioset.sample import report_uri

    preflight(cfg)
    inputs = {"segments list": cfg.segments, **{f"exclude list {u}": u for u in cfg.exclude}}
    check_output_file(report_uri(cfg.output), "output (its report)", inputs)


def preflight(cfg: Section) -> None:
    """Check a job config's paths by their declared roles (see the module docstring and ``config.schema.ROLES``):
    each input exists (a feature table is one), each output can be written, and no output is, holds or lies
    inside an input (:func:`keep_apart`); raises ConfigError naming the field.

    A job's derived outputs (``audioset sample``'s report: :func:`check_sample_paths`; ``fetch``'s
    manifest, ``rescore``'s accuracy file) are checked by :func:`check_output_file` in their jobs.
    """
    if isinstance(cfg, ExtractConfig):
        check_local_device(cfg.device, cfg.ray_address)
    paths = path_fields(cfg)
    read = [(name, uri) for role, name, uri in paths if role in READ]
    for name, uri in read:
        check_input(uri, name)
    for role, name, uri in paths:
        if role == "table":
            check_table_source(uri, name)
    keep_apart(read, [(name, uri) for role, name, uri in paths if role in WRITTEN])  # before what an output is
    for role, name, uri in paths:
        if role == "output":
            check_output(uri, name)
        elif role == "output_file":
            check_output_file(uri, name, {})
        elif name.rpartition(".")[2] == "ontology":
            check_ontology(uri, name)
