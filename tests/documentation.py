"""The documentation as the tests read it: the README, then the pages of docs/ in the site's order.

A README section is a ``##`` heading; a docs page is one section, named by its ``#`` title (its
``##`` headings belong to it). ``commands()`` is every line of every ``sh`` block with the section
it is in, and ``section(title)`` the text under any heading of that title, so a test that runs a
page's commands or reads its tables does not care where the page lives.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"


def _nav(entries) -> Iterator[str]:  # mkdocs.yml's nav: lists of {title: page or list}
    for entry in entries:
        for value in (entry.values() if isinstance(entry, dict) else [entry]):
            yield from (_nav(value) if isinstance(value, list) else [value])


def pages() -> list[Path]:
    """The README, then every page kept in docs/, in the order of the site's navigation."""
    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]
    return [README, *(DOCS / p for p in _nav(nav) if (DOCS / p).is_file())]


def _sections(path: Path) -> Iterator[tuple[str, str]]:
    """(section, line) for every line of a page; code blocks never open a section."""
    level = "## " if path == README else "# "
    section, fenced = "", False
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith(level):
            section = line[len(level):].strip()
        yield section, line


def commands() -> list[tuple[str, str]]:
    """(section, command) for every line of every ``sh`` block: continuations joined, comments dropped."""
    out = []
    for path in pages():
        in_block, pending = False, ""
        for section, line in _sections(path):
            if line.startswith("```"):
                in_block = line.strip() == "```sh" if not in_block else False
                continue
            if not in_block:
                continue
            line = re.sub(r"\s+#\s.*$", "", line).rstrip()  # a trailing comment
            if not line or line.lstrip().startswith("#"):
                continue
            pending += line.rstrip("\\").strip() + " "
            if not line.endswith("\\"):
                out.append((section, pending.strip()))
                pending = ""
    return out


def section(title: str) -> str:
    """The text under the heading ``title`` (any level), up to the next heading of its level or above."""
    for path in pages():
        text = path.read_text()
        m = re.search(rf"^(#+) {re.escape(title)}\n", text, re.M)
        if m:
            rest = text[m.end():]
            end = re.search(rf"^#{{1,{len(m.group(1))}}} ", rest, re.M)
            return rest[:end.start()] if end else rest
    raise KeyError(f"no heading {title!r} in the README or docs/")


def all_text() -> str:
    return "\n".join(p.read_text() for p in pages())


def shown_commands() -> list[tuple[str, str]]:
    """(page, command) for every ``acoustic-env`` command the README and docs/ show, as the words after
    ``acoustic-env``: each line of an ``sh`` block that runs one (``python -m acoustic_env.cli`` after
    ``ray job submit ... --`` too), and each inline `` `acoustic-env ...` `` span that gives a command's arguments.
    Left out: a synopsis (``...``, ``A|B``, ``<name>``) and an inline mention of a command by name
    (`` `acoustic-env search` ``, `` `acoustic-env export --wide` ``: two words at most, or only flags after the name).
    An optional flag in brackets (``[--threshold 0.05]``) is kept, its brackets dropped."""
    out = []
    for path in pages():
        titles = {title for title, _ in _sections(path)}
        shown = [c for s, c in commands() if s in titles]
        for span in re.findall(r"`(acoustic-env [^`]+)`", path.read_text()):
            words = span.split()[1:]
            if len(words) >= 3 or (len(words) == 2 and not words[1].startswith("--")) or "--help" in words:
                shown.append(" ".join(span.split()))
        for command in dict.fromkeys(shown):
            m = re.search(r"(?:^|\s)(?:acoustic-env|python -m acoustic_env\.cli)\s+(.*)$", command)
            if m and not re.search(r"\.\.\.|\||<", command):
                out.append((path.name, re.sub(r"[\[\]]", "", m.group(1)).strip()))
    return out
