"""The AudioSet ontology and class list, loaded from the package or a path or URL.

AudioSet labels are MIDs (``/m/0btp2``) or display names (``Traffic noise,
roadway noise``); an AudioSet task is defined on MIDs, optionally with all their
descendants, and maps display names to MIDs itself (acoustic_env.vocabulary.tasks).
Both files ship with the package (``ontology.json`` beside this module, an unmodified
copy of :data:`ONTOLOGY_URL` at commit d417d32, CC BY-SA 4.0 by Google: see
``ONTOLOGY_LICENSE.md``; ``class_labels_indices.csv``, CC BY 4.0), so a task given by
class names never needs the network. Any fsspec path (local, s3://, https://) can
replace them; a remote one is cached on disk, and the jobs read it before any work
starts (``jobs/preflight.py``).
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass
from functools import cached_property, lru_cache
from importlib import resources
from pathlib import Path

from acoustic_env.bounded import MAX_RECORD_BYTES, read_bytes
from acoustic_env.errors import ConfigError

ONTOLOGY_URL = "https://raw.githubusercontent.com/audioset/ontology/master/ontology.json"
CLASS_LIST_URL = "http://storage.googleapis.com/us_audioset/youtube_corpus/v1/csv/class_labels_indices.csv"
#: The package's copy of the ontology: the default wherever an ontology is read.
PACKAGED_ONTOLOGY = str(resources.files(__package__) / "ontology.json")


class OntologyError(ValueError):
    """The ontology or class list cannot be read, or a label is unknown."""


def _cache_dir() -> Path:
    return Path(os.environ.get("ACOUSTIC_ENV_CACHE", Path.home() / ".cache" / "acoustic-env"))


def _read_text(uri: str) -> str:
    """Read a small text file from any fsspec URL, caching remote ones on disk."""
    remote = "://" in uri and not uri.startswith("file://")
    cached = _cache_dir() / "ontology" / Path(uri.split("?")[0]).name
    if remote and cached.is_file():
        return cached.read_text()
    try:
        text = read_bytes(uri, "ontology", MAX_RECORD_BYTES, "an ontology or class list").decode("utf-8")
    except ConfigError as exc:  # a FIFO, a device, a file over the limit: never read
        raise OntologyError(str(exc).removeprefix("ontology: ")) from None  # its callers name the field
    except Exception as exc:  # noqa: BLE001 - any transport error means the same to the user
        raise OntologyError(
            f"cannot read {uri}: {type(exc).__name__}: {exc}. "
            "Pass a local copy (--ontology) when the machine has no internet access."
        ) from None
    if remote:
        cached.parent.mkdir(parents=True, exist_ok=True)
        cached.write_text(text)
    return text


@dataclass(frozen=True)
class Ontology:
    """MID → name and MID → children, with name lookup and descendant closure."""

    names: dict[str, str]
    children: dict[str, tuple[str, ...]]

    @cached_property
    def by_name(self) -> dict[str, str]:
        """Lower-cased display name → MID (built once: tasks look up every display-name label)."""
        return {name.lower(): mid for mid, name in self.names.items()}

    def to_mid(self, label: str) -> str:
        """Accept a MID or a display name (case-insensitive); return the MID."""
        label = label.strip()
        if label in self.names:
            return label
        mid = self.by_name.get(label.lower())
        if mid is None:
            raise OntologyError(f"unknown AudioSet label {label!r} (neither a MID nor a display name)")
        return mid

    def descendants(self, mid: str) -> set[str]:
        """The MID and everything below it (the ontology is a DAG: visit each once)."""
        seen: set[str] = set()
        stack = [mid]
        while stack:
            m = stack.pop()
            if m in seen:
                continue
            seen.add(m)
            stack.extend(self.children.get(m, ()))
        return seen


@lru_cache(maxsize=8)
def load_ontology(uri: str | None = None) -> Ontology:
    """Parse ontology.json (a list of {id, name, child_ids, ...}); None: the package's copy."""
    uri = uri or PACKAGED_ONTOLOGY
    text = _read_text(uri)
    try:
        entries = json.loads(text)
        names = {e["id"]: e["name"] for e in entries}
        children = {e["id"]: tuple(e.get("child_ids", ())) for e in entries}
    except (ValueError, KeyError, TypeError) as exc:
        raise OntologyError(f"{uri} is not an AudioSet ontology.json: {exc}") from None
    return Ontology(names=names, children=children)


@lru_cache(maxsize=8)
def load_class_list(uri: str = CLASS_LIST_URL) -> tuple[tuple[str, str], ...]:
    """The 527 (mid, display_name) pairs in model output order."""
    rows = list(csv.DictReader(io.StringIO(_read_text(uri))))
    try:
        ordered = sorted(rows, key=lambda r: int(r["index"]))
        return tuple((r["mid"], r["display_name"]) for r in ordered)
    except (KeyError, ValueError) as exc:
        raise OntologyError(f"{uri} is not a class_labels_indices.csv: {exc}") from None


def is_mid(label: str) -> bool:
    """MIDs look like /m/0btp2, /g/122z_qxw or /t/dd00128."""
    return len(label) > 3 and label[0] == "/" and label[2] == "/"
