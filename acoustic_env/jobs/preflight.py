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
"""

from __future__ import annotations

import os
from pathlib import Path

from acoustic_env.config import (
    DEVICES,
    AnnotateConfig,
    AuditConfig,
    ConfigError,
    ExtractConfig,
    SearchConfig,
    Section,
    TrainConfig,
)
from acoustic_env.config.audioset import SampleConfig
from acoustic_env.storage import is_local, join, require_backend, same_file

#: The fewest clips with a target that train accepts: fewer cannot fill a train, a
#: validation and a test split with every class. Checked before Ray starts (and by
#: ``--dry-run``), so a table too small costs a second, not a cluster start-up.
MIN_TRAIN_CLIPS = 10


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


#: Per job config, the fields ``preflight`` checks: inputs, outputs and the ontology (``extract.audio_root``:
#: a key of the ``extract`` section an annotate config carries). Sampling checks its own (its output is a file).
PATHS: dict[type, tuple[tuple[str, ...], tuple[str, ...], str | None]] = {
    ExtractConfig: (("manifest", "audio_root"), ("output",), "ontology"),
    TrainConfig: (("features", "test_list", "label_accuracy"), ("output", "work_dir"), "ontology"),
    AuditConfig: (("features",), ("output",), "ontology"),
    SearchConfig: (("features",), ("page",), None),
    # the shared table (features) is created on the first run
    AnnotateConfig: (("manifest", "lists", "model", "extract.audio_root"), ("features", "output"), "extract.ontology"),
}


def _field(cfg: Section, name: str) -> str | None:
    """A config's value of ``name``, or of ``section.key`` within a dict field."""
    head, _, key = name.partition(".")
    value = getattr(cfg, head)
    return value.get(key) if key else value


def check_sample_paths(cfg: SampleConfig) -> None:
    """``audioset sample``'s two outputs (the list and its report beside it): each is none of its inputs and can
    be written (:func:`check_output_file`), one line before the segment list is read."""
    from acoustic_env.audioset.sample import report_uri

    inputs = {"segments list": cfg.segments, **{f"exclude list {u}": u for u in cfg.exclude}}
    check_output_file(cfg.output, "output", inputs)
    check_output_file(report_uri(cfg.output), "output (its report)", inputs)


def preflight(cfg: Section) -> None:
    """Check a job config's paths (see the module docstring); raises ConfigError naming the field.

    The jobs that write single files check theirs with :func:`check_output_file`: ``audioset sample``
    (:func:`check_sample_paths`), ``fetch`` and ``rescore`` (in their jobs).
    """
    if isinstance(cfg, ExtractConfig):
        check_local_device(cfg.device, cfg.ray_address)
    inputs, outputs, ontology = PATHS.get(type(cfg), ((), (), None))
    for name in inputs:
        check_input(_field(cfg, name), name)
    for name in outputs:
        check_output(_field(cfg, name), name)
    if ontology:
        check_ontology(_field(cfg, ontology), ontology)
