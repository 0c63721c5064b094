"""The one reader of the files a user or a model folder hands the project: a regular file, a bounded size, bounded
parsing.

Such a file (a model folder's files, a verdict file, a label list, a test or truth list, an ontology, the YAML of a
task, a config or a tag map) is read whole by the code that parses it (:func:`read_bytes`), or streamed (a clip
list: :func:`open_stream`), so what it is and how large it may be are checked here first, before a byte is read
(the limits are stated in ``docs/limits.md``):

* A local path must be a regular file once its symbolic links are resolved: a FIFO would block the reader forever
  and ``/dev/zero`` never ends. Its ``stat`` decides, so neither is ever opened; the file is then opened without
  blocking (``O_NONBLOCK``) and its descriptor checked again, so one swapped for a FIFO in between is refused too.
* Its size is checked against the reader's bound before it is read (a 20-GB sparse file costs nothing to ``stat``),
  and the read stops one byte past the bound, for a file that grows while it is read. On object storage the
  listed size is checked, and the read is capped the same way.
* YAML is read with PyYAML's safe loader (no tag builds an object) and refused when its nodes, once every alias
  is expanded, pass :data:`MAX_YAML_NODES`: 442 bytes of nested anchors expand to billions of values, which
  every walk over the loaded data (a check, an error line quoting it, a run record) would expand again.
* A rejected value is quoted by a short prefix (:func:`shown`), never by its whole ``repr``.

A file that is missing, or a directory, raises ``FileNotFoundError`` / ``IsADirectoryError`` as a read would:
each caller says what it expected there. Anything else is one :class:`~acoustic_env.errors.ConfigError` line
naming the field, the file and the limit.
"""

from __future__ import annotations

import errno
import json
import os
import reprlib
import stat
from typing import Any, BinaryIO

import yaml

from acoustic_env.errors import ConfigError
from acoustic_env.storage import filesystem, is_local

#: The largest YAML file (a task, a config, a tag map): its text, before it is parsed.
MAX_YAML_BYTES = 1 << 20
#: The most nodes a YAML file may hold once its aliases are expanded (each scalar, list and mapping is one).
MAX_YAML_NODES = 100_000
#: The largest verdict file (``audit-estimate --verdicts``, ``labels add-verdicts --verdicts``).
MAX_VERDICT_BYTES = 64 << 20
#: The largest list of clips (a corrected label list, a test list, a truth list): about 2 million rows.
MAX_LIST_BYTES = 256 << 20
#: The largest JSON record or small table a user hands a job (the audit's label-accuracy estimate, an ontology, a
#: class list).
MAX_RECORD_BYTES = 16 << 20
#: The largest clip list (``--manifest``), read as a stream: tens of millions of rows.
MAX_MANIFEST_BYTES = 4 << 30
#: How many characters of a rejected value an error line quotes.
QUOTED_CHARS = 80


def _path(uri: str) -> str:
    """A local URI's path, without a trailing slash (fsspec reads ``list.csv/`` as ``list.csv``)."""
    return uri.removeprefix("file://").rstrip("/") or "/"


def _size_text(n: int) -> str:
    """A size for a person: ``20.0 GiB``, ``256 MiB``, ``1,024 bytes``."""
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            value = n / (1 << shift)
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{n:,} bytes"


def _limit_text(n: int) -> str:
    """A limit as it was set: ``256 MiB`` when it is a whole number of them, else exactly, ``1,674 bytes``."""
    exact = [f"{n >> shift} {unit}" for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10))
             if n >= 1 << shift and n % (1 << shift) == 0]
    return exact[0] if exact else f"{n:,} bytes"


def _too_large(field: str, uri: str, size: int, limit: int, of: str) -> ConfigError:
    exact = f" ({size:,} bytes)" if size >= 1 << 10 else ""
    return ConfigError(f"{field}: {uri} is {_size_text(size)}{exact}, over the limit of {of} ({_limit_text(limit)})")


def _refuse_kind(mode: int, field: str, uri: str) -> None:
    """IsADirectoryError for a directory; one ConfigError line for anything else that is not a regular file."""
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), uri)
    if not stat.S_ISREG(mode):
        raise ConfigError(f"{field}: {uri} is not a regular file (a FIFO, a device or a socket); give a file")


def file_size(uri: str, field: str, limit: int, of: str) -> int | None:
    """The size of the file at ``uri`` once it is known to be a regular file within ``limit`` bytes.

    Args:
        uri: A local path (symbolic links are followed) or an fsspec URL.
        field: The field or flag that named the file, which the error line starts with.
        limit: The most bytes the file may hold.
        of: What the limit is of, for the error line ("a label list", "this model's estimator.npz").

    Returns:
        Its size in bytes; None where the store does not say (an HTTP server without Content-Length), in which
        case :func:`read_bytes`' capped read still bounds it.

    Raises:
        FileNotFoundError: There is no such file.
        IsADirectoryError: It is a directory.
        ConfigError: It is a FIFO, a device or a socket, or it is larger than ``limit``.
    """
    if is_local(uri):
        st = os.stat(_path(uri))  # follows symlinks: a link to /dev/zero is judged as /dev/zero
        _refuse_kind(st.st_mode, field, uri)
        size: int | None = st.st_size
    else:
        fs, path = filesystem(uri)
        info = fs.info(path)
        if info.get("type") == "directory":
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), uri)
        size = info.get("size")
    if size is not None and size > limit:
        raise _too_large(field, uri, size, limit, of)
    return size


#: The bytes one read of ``read_bytes`` asks for: a file is read up to its limit, never a buffer of the limit at once.
CHUNK = 1 << 20


def read_bytes(uri: str, field: str, limit: int, of: str) -> bytes:
    """The bytes of the file at ``uri``, opened by :func:`open_stream` (which says what each argument is and what it
    raises) and read no further than one byte past ``limit``: a file that grew past it since its ``stat`` is one
    ConfigError line too.

    Returns:
        The file's bytes.
    """
    chunks, total = [], 0
    with open_stream(uri, field, limit, of) as fh:  # in chunks: read(limit + 1) allocates the whole limit at once
        while total <= limit and (chunk := fh.read(min(CHUNK, limit + 1 - total))):
            chunks.append(chunk)
            total += len(chunk)
    data = b"".join(chunks)
    if len(data) > limit:
        raise ConfigError(f"{field}: {uri} grew past the limit of {of} ({_limit_text(limit)}) while it was read")
    return data


def open_stream(uri: str, field: str, limit: int, of: str) -> BinaryIO:
    """The file at ``uri`` opened for reading as a stream (a clip list of millions of rows), once :func:`file_size`
    found it a regular file within ``limit`` bytes; a local file is opened without blocking and checked again.

    Args:
        uri: A local path or an fsspec URL.
        field: The field or flag that named the file, which the error line starts with.
        limit: The most bytes the file may hold.
        of: What the limit is of, for the error line.

    Returns:
        A binary file object; the caller closes it.

    Raises:
        FileNotFoundError: There is no such file.
        IsADirectoryError: It is a directory.
        ConfigError: It is not a regular file, or holds more than ``limit`` bytes.
    """
    file_size(uri, field, limit, of)
    if not is_local(uri):
        fs, path = filesystem(uri)
        # an HTTP server need not answer range requests: read it as one stream from its start
        return fs.open(path, "rb", **({"block_size": 0} if uri.startswith(("http://", "https://")) else {}))
    fd = os.open(_path(uri), os.O_RDONLY | os.O_NONBLOCK)  # swapped for a FIFO since the stat: no wait
    try:
        _refuse_kind(os.fstat(fd).st_mode, field, uri)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def read_record(uri: str, field: str, limit: int = MAX_RECORD_BYTES) -> Any:
    """The JSON file at ``uri`` of a folder a user hands a job (an audit's summary.json, a review's saved verdicts),
    read by :func:`read_bytes` within ``limit`` bytes (``field``: the flag that named the folder).

    Returns:
        The parsed JSON.
    """
    return json.loads(read_bytes(uri, field, limit, "a JSON record"))


# --- YAML -----------------------------------------------------------------------------------------------------

class _TooLarge(Exception):
    """A YAML document whose expanded nodes pass the bound, or whose aliases form a cycle."""


def _expanded(root: yaml.Node, cap: int) -> int:
    """How many nodes ``root`` holds once every alias is expanded (counted up to ``cap + 1``, then it stops).

    An alias is the node it names, shared: each node's count is computed once and reused, so a bomb of nested
    anchors costs its own size to count, not its expansion. A node that holds itself is a cycle: refused.
    """
    counts: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, closing = stack.pop()
        key = id(node)
        children = ([n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode)
                    else node.value if isinstance(node, yaml.SequenceNode) else [])
        if closing:
            open_nodes.discard(key)
            counts[key] = min(cap + 1, 1 + sum(counts[id(c)] for c in children))
            if counts[key] > cap:
                raise _TooLarge(f"more than {cap:,} values once its aliases are expanded, the limit of a YAML file")
            continue
        if key in counts:
            continue
        if key in open_nodes:
            raise _TooLarge("an alias inside the value it names (a cycle)")
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in counts)
    return counts[id(root)]


class _Duplicate(Exception):
    """A mapping that gives one key twice: PyYAML keeps the last value silently."""


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader that counts each document's expanded nodes before it builds a value of them, and
    refuses a mapping that gives one key twice (a tag map's category, a config's field: the first would be lost
    unseen). A merge key (``<<: *base``) may still be overridden: only the keys written in the mapping count."""

    def compose_document(self) -> Any:
        node = super().compose_document()
        if node is not None:
            _expanded(node, MAX_YAML_NODES)
        return node

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key, line = self.construct_object(key_node, deep=deep), key_node.start_mark.line + 1
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: PyYAML's own error names it
                continue
            if first is not None:
                raise _Duplicate(f"the key {shown(key)} is given twice (lines {first} and {line}), and the last "
                                 "would win silently; keep one")
            seen[key] = line
        return super().construct_mapping(node, deep)


def load_yaml(text: str, field: str, source: str) -> Any:
    """The value of one YAML document, parsed safely and within :data:`MAX_YAML_NODES` expanded nodes.

    Args:
        text: The document.
        field: The field or flag it came from, which the error line starts with.
        source: Where it came from (a file's URI), for the error line.

    Returns:
        The parsed value (None for an empty document).

    Raises:
        ConfigError: It is not YAML, it expands past the bound, or it nests too deeply to parse.
    """
    try:
        return yaml.load(text, Loader=_BoundedLoader)  # noqa: S506 - a SafeLoader subclass
    except _TooLarge as exc:
        raise ConfigError(f"{field}: {source} holds {exc}; write the values out instead of repeating aliases") from None
    except _Duplicate as exc:
        raise ConfigError(f"{field}: {source}: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{field}: {source} nests its lists or mappings too deeply to read") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{field}: {source}: not YAML ({shown(str(exc).splitlines()[0], bare=True)})") from None


def read_yaml(uri: str, field: str) -> Any:
    """The YAML file at ``uri``: a regular file of at most :data:`MAX_YAML_BYTES`, UTF-8, parsed by :func:`load_yaml`.

    Args:
        uri: A local path or an fsspec URL.
        field: The field or flag that named it.

    Returns:
        The parsed value.

    Raises:
        FileNotFoundError: There is no such file.
        IsADirectoryError: It is a directory.
        ConfigError: Not a regular file, too large, not UTF-8 or not YAML within the bound, in one line.
    """
    data = read_bytes(uri, field, MAX_YAML_BYTES, "a YAML file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{field}: {uri} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    return load_yaml(text, field, uri)


# --- quoting a rejected value ---------------------------------------------------------------------------------

_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother, _REPR.maxlong = 2, QUOTED_CHARS, QUOTED_CHARS, QUOTED_CHARS
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = _REPR.maxfrozenset = _REPR.maxdeque = 6


def shown(value: Any, bare: bool = False) -> str:
    """``value`` as an error line quotes it: at most :data:`QUOTED_CHARS` characters of its ``repr`` (``bare``: of the
    string itself), built by ``reprlib`` so that a large or deeply shared value is never expanded whole.

    Args:
        value: The rejected value.
        bare: Quote a string without its quotes (a parser's own message).

    Returns:
        One line of at most about :data:`QUOTED_CHARS` characters, ``…`` where it was cut.
    """
    text = (str(value)[:QUOTED_CHARS + 1] if bare and isinstance(value, str) else _REPR.repr(value))
    text = text.replace("\n", "\\n").replace("\r", "\\r")
    return text if len(text) <= QUOTED_CHARS else text[:QUOTED_CHARS - 1] + "…"
