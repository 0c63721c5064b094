"""FSD50K's free-text Freesound tags binned into categories by an editable mapping, and how often each tag occurs.

The FSD50K study binned the uploaders' free-text tags (``FSD50K.metadata/*_clips_info_FSD50K.json``), not the
200 vocabulary labels, into eight classes, music the largest. A mapping is a YAML of category → tags
(``tag_maps/fsd50k_tag_categories.yaml``, or the user's ``--tag-map``), read by :func:`load_tag_map`.

The rule for a clip (:func:`categorise`): each of its tags the mapping lists votes for that tag's category; the
clip takes the category with the most votes, a tie going to the category written first in the mapping (the file's
order is the user's priority, so the outcome never depends on the tags' order). A clip with no listed tag gets no
category: the recipe drops it and counts it. Single-label by design: the study trained one class per clip.

:func:`frequency_rows` is the exploratory table beside the clip list: the most frequent tags over every clip, per
category (what a category's clips are tagged with, the tags that won them and those that came along) and among the
dropped clips (the tags a mapping might add).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from acoustic_env.bounded import read_yaml, shown
from acoustic_env.config import ConfigError
from acoustic_env.csv_writer import csv_bytes
from acoustic_env.recipes.common import LABEL_SEPARATOR
from acoustic_env.storage import filesystem

#: The packaged mapping: eight categories, this project's reading of the study's eight (``--from-tags``).
TAG_MAP = "fsd50k_tag_categories.yaml"
FLAG = "--tag-map"
#: Rows of the frequency table: over every clip, and per category (and among the dropped clips).
TOP_ALL, TOP_EACH = 100, 25
DROPPED = "dropped"


def tag_map_path() -> str:
    """The packaged mapping's path."""
    return str(resources.files("acoustic_env.recipes") / "tag_maps" / TAG_MAP)


def normalise(tag: str) -> str:
    """A tag as it is matched: without surrounding spaces, lower case (Freesound's own tags are lower case)."""
    return tag.strip().lower()


@dataclass(frozen=True)
class TagMap:
    """Categories in the mapping file's order, and the category index each listed tag votes for."""

    source: str
    categories: tuple[str, ...]
    category_of: dict[str, int]


def _bad(uri: str, why: str) -> ConfigError:
    return ConfigError(f"{FLAG}: {uri}: {why}")


def load_tag_map(uri: str) -> TagMap:
    """Read and check a mapping; anything wrong is one ``ConfigError`` naming ``--tag-map`` and the file."""
    try:
        data = read_yaml(uri, FLAG)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise _bad(uri, "not found") from None
    if not isinstance(data, dict) or len(data) < 2:
        raise _bad(uri, "must map two or more categories to their tags (category: [tag, tag, ...])")
    category_of: dict[str, int] = {}
    for index, (name, tags) in enumerate(data.items()):
        if not isinstance(name, str) or not name.strip() or LABEL_SEPARATOR in name or name != name.strip():
            raise _bad(uri, f"category {shown(name)} must be a name without {LABEL_SEPARATOR!r} or surrounding spaces")
        if not isinstance(tags, list) or not tags or not all(isinstance(t, str) and t.strip() for t in tags):
            raise _bad(uri, f"category {shown(name, bare=True)}: must list one or more tags (strings), "
                            f"got {shown(tags)}")
        for tag in map(normalise, tags):
            if category_of.get(tag, index) != index:
                raise _bad(uri, f"tag {tag!r} is listed under both {list(data)[category_of[tag]]} and {name}; "
                                "a tag votes for one category")
            category_of[tag] = index
    return TagMap(uri, tuple(data), category_of)


def votes(tags: Sequence[str], tag_map: TagMap) -> Counter[int]:
    """Per category index, how many of the clip's distinct tags the mapping lists under it."""
    return Counter(tag_map.category_of[t] for t in {normalise(t) for t in tags} if t in tag_map.category_of)


def winner(voted: Counter[int]) -> int | None:
    """The category with the most votes, a tie going to the one written first in the mapping; None without votes."""
    if not voted:
        return None
    most = max(voted.values())
    return min(c for c, n in voted.items() if n == most)


def categorise(tags: Sequence[str], tag_map: TagMap) -> int | None:
    """The clip's category index (see the module docstring), None when no tag of it is listed."""
    return winner(votes(tags, tag_map))


def bin_tags(tag_lists: Sequence[Sequence[str]], tag_map: TagMap,
             folds: Sequence[str]) -> tuple[list[int | None], dict[str, Any]]:
    """Every clip's category (:func:`categorise`) and the counts the recipe writes (``fsd50k_tags.json``): clips
    per category, overall and per fold; the dropped ones; those whose tags voted for two or more categories, and
    among them the ties the mapping's order settled."""
    chosen: list[int | None] = []
    several = ties = 0
    for tags in tag_lists:
        voted = votes(tags, tag_map)
        chosen.append(winner(voted))
        several += len(voted) > 1
        ties += len(voted) > 1 and list(voted.values()).count(max(voted.values())) > 1
    names = [DROPPED if c is None else tag_map.categories[c] for c in chosen]
    per_fold = {f: _counts([n for n, g in zip(names, folds) if g == f], tag_map) for f in sorted(set(folds))}
    seen = {normalise(t) for tags in tag_lists for t in tags}
    return chosen, {"tag_map": tag_map.source, "clips": len(chosen), **_counts(names, tag_map),
                    "several_categories": several, "ties_by_mapping_order": ties, "per_fold": per_fold,
                    "distinct_tags": len(seen), "mapped_tags_never_seen": sorted(set(tag_map.category_of) - seen)}


def _counts(names: Sequence[str], tag_map: TagMap) -> dict[str, Any]:
    count = Counter(names)
    return {"categories": {c: count[c] for c in tag_map.categories}, DROPPED: count[DROPPED]}


def frequency_rows(tag_lists: Sequence[Sequence[str]], chosen: Sequence[int | None],
                   tag_map: TagMap) -> list[dict[str, Any]]:
    """The tag-frequency table: per scope (``all``, each category, ``dropped``) its most frequent tags by clips
    (``TOP_ALL`` over every clip, ``TOP_EACH`` in the others), each with its share of the scope's clips and the
    category the mapping gives it (empty: unlisted)."""
    scopes: dict[str, list[set[str]]] = {"all": [], **{c: [] for c in tag_map.categories}, DROPPED: []}
    for tags, category in zip(tag_lists, chosen):
        unique = {normalise(t) for t in tags}
        scopes["all"].append(unique)
        scopes[DROPPED if category is None else tag_map.categories[category]].append(unique)
    rows = []
    for scope, clips in scopes.items():
        counted = Counter(t for tags in clips for t in tags)
        for rank, (tag, n) in enumerate(sorted(counted.items(), key=lambda kv: (-kv[1], kv[0]))
                                        [:TOP_ALL if scope == "all" else TOP_EACH], 1):
            mapped = tag_map.category_of.get(tag)
            rows.append({"scope": scope, "rank": rank, "tag": tag, "clips": n, "share": round(n / len(clips), 4),
                         "category": "" if mapped is None else tag_map.categories[mapped]})
    return rows


def write_frequency_csv(rows: Sequence[dict[str, Any]], uri: str) -> str:
    """The table as CSV (``scope, rank, tag, clips, share, category``); returns ``uri``."""
    fs, path = filesystem(uri)
    fs.pipe_file(path, csv_bytes(["scope", "rank", "tag", "clips", "share", "category"], rows))
    return uri


def top_lines(rows: Sequence[dict[str, Any]], overall: int = 10, each: int = 5) -> list[str]:
    """The console's lines: the most frequent tags over every clip, then in each category's clips."""
    scopes: dict[str, list[str]] = {}
    for r in rows:
        if r["rank"] <= (overall if r["scope"] == "all" else each):
            scopes.setdefault(r["scope"], []).append(f"{r['tag']} {r['clips']}")
    return [f"  top tags{'' if scope == 'all' else ' in the dropped clips' if scope == DROPPED else ' in ' + scope}: "
            f"{', '.join(tags)}"
            for scope, tags in scopes.items()]
