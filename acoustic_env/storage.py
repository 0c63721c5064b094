"""One filesystem layer for local paths, s3://, gs://, az:// and https:// (fsspec).

``gs://`` and ``az://`` need optional packages (the ``gcs`` and ``azure`` extras);
without them every entry point here stops with one line naming the extra.

Credentials and endpoints come from the environment (``AWS_ACCESS_KEY_ID``,
``AWS_ENDPOINT_URL``, instance profiles, ...) through the providers' standard
chains; nothing here accepts or records a secret. A secret a user wrote into a
URL anyway (``https://user:pw@host/x``, ``?token=...``, a presigned
``X-Amz-Signature``) is replaced by ``***`` with :func:`redact` before a URL is
stored or logged.

Files (Parquet parts, JSON records, segment lists) are written atomically: a local file goes to a hidden temporary
name and is renamed (the temporary is removed if the write fails, e.g. on a full
disk), an object-store PUT is atomic by itself. A reader (or a resumed run)
therefore never sees half a file, which is what makes "every clip exactly once"
hold across interrupted runs. Object stores have no directories, so nothing here
creates one there: a missing bucket is an error, never created silently.
"""

from __future__ import annotations

import io
import json
import os
import posixpath
import re
import socket
import uuid
from typing import Any, Iterable
from urllib.parse import urlsplit

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from acoustic_env.errors import DamagedFileError, MissingExtraError

#: Query parameters that carry a secret in signed or token-authenticated URLs (matched
#: case-insensitively); ``ExtractConfig.redact_query_params`` adds names to these.
SECRET_QUERY_PARAMS = ("token", "access_token", "id_token", "auth", "key", "api_key", "apikey", "password",
                       "secret", "sig", "signature", "X-Amz-Signature", "X-Amz-Credential",
                       "X-Amz-Security-Token", "X-Goog-Signature", "X-Goog-Credential", "client_secret")
_USERINFO = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://)[^/?#\s]*@")


#: Object stores whose fsspec package is an optional extra: protocol → (extra, package).
EXTRAS = {"gs": ("gcs", "gcsfs"), "gcs": ("gcs", "gcsfs"), "az": ("azure", "adlfs"), "abfs": ("azure", "adlfs"),
          "abfss": ("azure", "adlfs")}


def require_backend(uri: str) -> None:
    """MissingExtraError naming the extra to install when ``uri``'s object store package is missing."""
    protocol = uri.split("://", 1)[0].lower() if "://" in uri else ""
    if protocol not in EXTRAS:
        return
    try:
        fsspec.get_filesystem_class(protocol)
    except ImportError:
        extra, package = EXTRAS[protocol]
        raise MissingExtraError(f"{protocol}:// paths need {package}, which is not installed: "
                                f"pip install 'acoustic-env[{extra}]'") from None


def filesystem(uri: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The filesystem and the protocol-less path of a URI (on S3 with the write retries, :func:`s3_retries`)."""
    require_backend(uri)
    if _is_s3(uri):
        return _bounded_s3(fsspec.core.url_to_fs(uri, config_kwargs={"retries": s3_retries(S3_WRITE_ATTEMPTS)}))
    return fsspec.core.url_to_fs(uri)


def read_filesystem(uri: str, timeout_s: float) -> tuple[fsspec.AbstractFileSystem, str]:
    """The filesystem of a clip to read: every network wait bounded (:func:`read_options`), S3 retries bounded."""
    require_backend(uri)
    found = fsspec.core.url_to_fs(uri, **read_options(uri, timeout_s))
    return _bounded_s3(found) if _is_s3(uri) else found


# --- retries on object stores ---

#: Tries of one S3 request, the first included: a write is worth waiting for (a lost part
#: fails the job), a clip that cannot be read becomes a ``read_failed`` row that the next
#: run retries. ``AWS_MAX_ATTEMPTS`` overrides both, ``AWS_RETRY_MODE`` the mode.
S3_WRITE_ATTEMPTS = 5
S3_READ_ATTEMPTS = 3


def s3_retries(attempts: int) -> dict[str, Any]:
    """botocore's ``retries`` config: ``standard`` mode unless ``AWS_RETRY_MODE`` says otherwise.

    Standard mode retries HTTP 500/502/503/504, throttling (S3's ``503 SlowDown``),
    connection resets and timeouts, with exponential backoff and full jitter (a random
    delay below 1, 2, 4, 8 ... s, at most 20 s); it is what AWS recommends, the same in
    every SDK, while botocore keeps ``legacy`` as its default only for compatibility. An
    explicit config would hide the environment, so the user's ``AWS_MAX_ATTEMPTS`` /
    ``AWS_RETRY_MODE`` are read here.
    """
    mode = os.environ.get("AWS_RETRY_MODE", "standard")
    total = os.environ.get("AWS_MAX_ATTEMPTS")
    return {"mode": mode, "total_max_attempts": int(total) if total and total.isdigit() else attempts}


def _bounded_s3(found: tuple[fsspec.AbstractFileSystem, str]) -> tuple[fsspec.AbstractFileSystem, str]:
    """s3fs wraps botocore's retries in a loop of its own (5 tries on resets, timeouts and
    SlowDown): one loop is enough, two multiply (25 tries, 36 s for a throttled PUT)."""
    found[0].retries = 1
    return found


def _is_s3(uri: str) -> bool:
    return uri.split("://", 1)[0].lower() in ("s3", "s3a") if "://" in uri else False


def is_local(uri: str) -> bool:
    return "://" not in uri or uri.startswith("file://")


def join(base: str, *parts: str) -> str:
    """``parts`` under ``base``, whose trailing slashes go (all but the root's: ``/`` stays the root, and so does a
    scheme's, ``file:///``)."""
    head = base.rstrip("/")
    return posixpath.join(base if head.endswith(":") else head or base[:1], *parts)


def strip_protocol_keep(reference: str, path: str) -> str:
    """Turn a protocol-less path returned by a filesystem back into a URI like ``reference``.

    HTTP's filesystem returns whole URLs already: those are kept as they are.
    """
    if "://" in reference and "://" not in path and not reference.startswith("file://"):
        protocol = reference.split("://", 1)[0]
        return f"{protocol}://{path}"
    return path


# --- secrets in URLs ---

def redact(text: str, extra_params: Iterable[str] = ()) -> str:
    """``text`` with URL user-info and secret query values replaced by ``***`` (anywhere in it).

    Works on free text, so error messages that quote a URL are cleaned as well as URIs: the punctuation of
    the sentence right after a secret (``?token=abc: not found``, ``...abc).``) is the message's, and is kept.
    A fragment is searched like a query: OAuth's implicit flow returns ``#access_token=...``.
    """
    text = _USERINFO.sub(r"\1***@", text)
    names = "|".join(re.escape(n) for n in (*SECRET_QUERY_PARAMS, *extra_params))
    return re.sub(rf"(?i)([?&;#](?:{names})=)[^&#\s'\"]*?(?=[:,.;)]*(?:[&#\s'\"]|$))", r"\1***", text)


def redact_all(obj: Any, extra_params: Iterable[str] = ()) -> Any:
    """A copy of plain data (a run record) with :func:`redact` applied to every string in it, dict keys included;
    tuples and sets come back as lists (a set sorted), as JSON writes them."""
    extra = tuple(extra_params)
    if isinstance(obj, str):
        return redact(obj, extra)
    if isinstance(obj, dict):
        # keys too: a dict keyed by URI is as likely as a list of them
        return {redact(k, extra) if isinstance(k, str) else k: redact_all(v, extra) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):  # a set as a list: json.dumps(default=str) wrote its repr
        return [redact_all(v, extra) for v in (sorted(obj, key=str) if isinstance(obj, (set, frozenset)) else obj)]
    return obj


# --- reading with limits ---

def read_options(uri: str, timeout_s: float) -> dict[str, Any]:
    """fsspec options that bound every network wait of a read to ``timeout_s`` (connect and each read).

    Without them a server that accepts a connection and never answers holds the reader,
    and every clip of its batch, forever.
    """
    protocol = uri.split("://", 1)[0].lower() if "://" in uri else "file"
    if protocol in ("http", "https"):
        import aiohttp

        return {"client_kwargs": {"timeout": aiohttp.ClientTimeout(total=timeout_s, sock_connect=timeout_s,
                                                                    sock_read=timeout_s)}}
    if protocol in ("s3", "s3a"):
        return {"config_kwargs": {"connect_timeout": timeout_s, "read_timeout": timeout_s,
                                  "retries": s3_retries(S3_READ_ATTEMPTS)}}
    return {}


def transport_failure(exc: BaseException) -> tuple[str, str]:
    """(error_type, one-line reason) for an exception raised while reading or writing a URI.

    fsspec wraps the real cause (an HTTP 500, a refused connection, a timeout) in a
    ``FileNotFoundError``; the cause decides. Types: ``read_timeout``, ``missing_file``,
    ``permission_denied``, ``read_failed``.
    """
    chain: list[BaseException] = []
    e: BaseException | None = exc
    while e is not None and e not in chain:
        chain.append(e)
        e = e.__cause__ or e.__context__
    if any(isinstance(c, TimeoutError) or "Timeout" in type(c).__name__ for c in chain):
        return "read_timeout", "no answer within the read timeout"
    for c in chain:
        status = getattr(c, "status", None)  # aiohttp's HTTP errors
        if isinstance(status, int):
            if status == 404:
                return "missing_file", "not found (HTTP 404)"
            if status in (401, 403):
                return "permission_denied", f"access denied (HTTP {status})"
            return "read_failed", f"HTTP {status} {getattr(c, 'message', '')}".rstrip()
    first = chain[0]
    # a refused connection or an unknown host, wrapped by fsspec as "not found"
    network = next((c for c in chain[1:] if isinstance(c, OSError) and not isinstance(c, FileNotFoundError)), None)
    if network is None and isinstance(first, FileNotFoundError):
        return "missing_file", "not found" if first.errno else f"not found ({_line(first)})"
    if network is None and isinstance(first, PermissionError):
        return "permission_denied", "permission denied"
    root = network or first
    return "read_failed", f"{type(root).__name__}: {_line(root)}"


def _line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else "no details"


def within_roots(uri: str, roots: Iterable[str]) -> bool:
    """Whether ``uri`` lies under one of ``roots`` once ``..`` and (locally) symlinks are resolved."""
    where = _anchor(uri)
    return any(where == _anchor(root) or _below(where, _anchor(root)) for root in roots)


def _below(inner: tuple[str, str], outer: tuple[str, str]) -> bool:
    """Whether the anchored path ``inner`` lies strictly below ``outer`` (same scheme and host)."""
    return inner[0] == outer[0] and inner[1].startswith(outer[1].rstrip("/") + "/")


def nesting(a: str, b: str) -> str | None:
    """How two places nest: ``"is"`` (one file or folder), ``"inside"`` (``a`` lies below ``b``), ``"contains"``
    (``b`` lies below ``a``), or None (apart). Local paths are compared resolved (symbolic links, ``..``) and by
    inode (hard links, :func:`same_file`); remote ones as normalised URIs (scheme, host, path), as nothing
    can be resolved there."""
    if same_file(a, b):
        return "is"
    where_a, where_b = _anchor(a), _anchor(b)
    return "inside" if _below(where_a, where_b) else "contains" if _below(where_b, where_a) else None


def _anchor(uri: str) -> tuple[str, str]:
    """(scheme://host, normalised absolute path) of a URI; local paths resolve symlinks."""
    if is_local(uri):
        return "", os.path.realpath(uri.removeprefix("file://"))
    parts = urlsplit(uri)
    host = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
    return f"{parts.scheme.lower()}://{host}", posixpath.normpath("/" + parts.path)


def same_file(a: str, b: str) -> bool:
    """Whether two URIs name one file: locally the same inode (a hard or symbolic link, another spelling of
    the path) or, for a file not there yet, the same resolved path; elsewhere the same normalised URI."""
    if is_local(a) and is_local(b):
        try:
            return os.path.samefile(a.removeprefix("file://"), b.removeprefix("file://"))
        except OSError:  # one of them does not exist (yet)
            pass
    return _anchor(a) == _anchor(b)


# --- Parquet parts and JSON records ---

def write_parquet(table: pa.Table, uri: str) -> None:
    """Write one Parquet file atomically (:func:`write_bytes`)."""
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    write_bytes(buf.getvalue(), uri)


def write_bytes(data: bytes, uri: str) -> None:
    """Write one file atomically: a hidden temporary name and a rename locally (the temporary is removed if
    the write fails), a single PUT on object storage. A reader never sees half a file, and a failed
    write leaves the file that was there."""
    fs, path = filesystem(uri)
    if not is_local(uri):
        fs.pipe_file(path, data)
        return
    fs.makedirs(posixpath.dirname(path), exist_ok=True)
    tmp = posixpath.join(posixpath.dirname(path), _temporary_name())
    try:
        with fs.open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)  # fs.mv onto a directory would move the file into it
    except BaseException:
        if fs.exists(tmp):
            fs.rm(tmp)
        raise


#: A temporary older than this (before the run that finds it) is a dead writer's, whoever wrote it.
STALE_TEMPORARY_S = 600.0


def _temporary_name() -> str:
    """``.tmp-<pid>@<host>-<random>``: who writes it, so that a later run can tell a dead writer's."""
    return f".tmp-{os.getpid()}@{socket.gethostname()}-{uuid.uuid4().hex}"


def _writer_alive(name: str) -> bool | None:
    """Whether the process that named a temporary still runs (None: not on this host, or an older name)."""
    owner = name[len(".tmp-"):].rpartition("-")[0]
    pid, _, host = owner.partition("@")
    if host != socket.gethostname() or not pid.isdigit():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        pass
    return True


def remove_stale_temporaries(directory: str, before: float, stale_s: float = STALE_TEMPORARY_S) -> list[str]:
    """Delete the ``.tmp-*`` files a killed (or ENOSPC'd) writer left in a local directory; return them.

    Only temporaries last written before ``before`` (the run that calls this started) are
    candidates, and of those only the ones no live writer can still rename: their writer
    process is gone (it ran on this host), or they are ``stale_s`` older than ``before`` (a
    part is written in one go, in seconds at most). A concurrent run's write in progress is
    newer, or its writer alive, so it is left alone. Object stores have no temporaries (a
    PUT is atomic), so nothing is listed there.
    """
    if not is_local(directory):
        return []
    fs, path = filesystem(directory)
    try:
        entries = fs.ls(path, detail=True)
    except FileNotFoundError:
        return []
    removed = []
    for e in entries:
        name = posixpath.basename(e["name"])
        mtime = e.get("mtime")
        if not name.startswith(".tmp-") or e.get("type") != "file" or mtime is None or mtime >= before:
            continue
        if _writer_alive(name) is False or before - mtime > stale_s:
            try:
                fs.rm(e["name"])
            except FileNotFoundError:  # its writer renamed it, or another run removed it, just now
                continue
            removed.append(strip_protocol_keep(directory, e["name"]))
    return removed


def list_parts(directory: str) -> list[str]:
    """Completed Parquet parts in a directory (hidden temporaries excluded), as URIs, sorted."""
    fs, path = filesystem(directory)
    fs.invalidate_cache(path)  # other processes write here: a cached listing would miss their parts
    try:
        names = fs.ls(path, detail=False)
    except FileNotFoundError:
        return []
    parts = [p for p in names if p.endswith(".parquet") and not posixpath.basename(p).startswith(".")]
    return sorted(strip_protocol_keep(directory, p) for p in parts)


def read_parts(directory: str, columns: list[str] | None = None) -> pa.Table | None:
    """Concatenate the parts of a directory (None if there are none)."""
    tables = [read_part(part, columns) for part in list_parts(directory)]
    if not tables:
        return None
    return pa.concat_tables(tables, promote_options="permissive")


def read_part(uri: str, columns: list[str] | None = None) -> pa.Table:
    """One Parquet file; DamagedFileError (naming it) when its bytes are not valid Parquet."""
    fs, path = filesystem(uri)
    try:
        with fs.open(path, "rb") as fh:
            # ParquetFile, not read_table: a third of the CPU on small parts (no dataset layer),
            # which is what indexing tens of thousands of parts costs
            return pq.ParquetFile(fh).read(columns=columns)
    except OSError as exc:
        # pyarrow reports a damaged file as a bare OSError without errno (a bad footer, a
        # corrupt page); transports raise OSError subclasses or set errno.
        if type(exc) is OSError and exc.errno is None:
            raise DamagedFileError(f"{uri}: not a readable Parquet file ({exc})") from None
        raise
    except pa.ArrowInvalid as exc:  # truncated or not Parquet at all
        raise DamagedFileError(f"{uri}: not a readable Parquet file ({exc})") from None


def move(src: str, dst: str) -> None:
    """Move a file (a rename locally, copy + delete on object stores)."""
    fs, src_path = filesystem(src)
    dst_path = filesystem(dst)[1]
    if is_local(dst):
        fs.makedirs(posixpath.dirname(dst_path), exist_ok=True)
    fs.mv(src_path, dst_path)


def delete(uri: str) -> None:
    fs, path = filesystem(uri)
    fs.rm(path)


def write_json(obj: Any, uri: str) -> None:
    write_bytes(json.dumps(obj, indent=2, sort_keys=True, default=str).encode(), uri)


def read_json(uri: str) -> Any:
    fs, path = filesystem(uri)
    return json.loads(fs.cat_file(path))
