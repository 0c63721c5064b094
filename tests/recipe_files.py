"""The "Adding a ..." recipes of docs/development.md name every file a built-in needs: what a test reads of a
recipe's list of files and of a built-in's declaration, to hold the two together (tests/test_candidates.py,
tests/test_feature_groups.py)."""

from __future__ import annotations

import functools
import re
from typing import Any

from conftest import REPO

from acoustic_env import registry


def recipe_files(section: str) -> list[str]:
    """The files of a built-in as docs/development.md's ``section`` lists them: every backticked path of the list
    after "is these files" (a placeholder, ``<name>``, stands for the
    built-in's own module)."""
    part = (REPO / "docs" / "development.md").read_text().split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    listed = part.split("is these files", 1)[1].split("\n\n", 2)[1]
    return re.findall(r"`([\w/<>.]+\.py)`", listed)


def named(files: list[str], needed: set[str], **placeholders: str) -> set[str]:
    """The ``needed`` files that ``files`` (a recipe's list) does not name, with its placeholders filled in."""
    def filled(f: str) -> str:
        for key, value in placeholders.items():
            f = f.replace(f"<{key}>", value)
        return f

    return needed - {filled(f) for f in files}


def lazily_named(*objects: Any) -> set[str]:
    """The package files that ``objects`` name lazily (``registry.lazy``), as paths below acoustic_env/."""
    return {o.args[0].removeprefix("acoustic_env.").replace(".", "/") + ".py" for o in objects
            if isinstance(o, functools.partial) and o.func is registry._call}
