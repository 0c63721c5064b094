"""The docs name only code that exists: a move or a rename that strands a reference fails here.

Every page of the site (the README and ``docs/``) is read for these references to the code:

- a file, ``learn/zoo.py`` or ``tests/worlds.py``: a ``.py`` file of the repository whose path ends so
  (``jobs/*.py`` and ``embedders/<name>/__init__.py`` are patterns that must match one);
- a name in a file, ``learn/fit.py: fit`` (or ``tests/worlds.py``: ``_FileServer``): a function, class or
  constant defined at the top of that file (``MLPClassifier.train``: a method of the class);
- a dotted module or name, ``acoustic_env.table.read_features``, or without the package's name where
  it starts with one of the package's own modules (``table.read_features``, ``learn.fit.agreed``);
- a member of one of the package's classes, ``Model.extract_settings`` (its own, or a base class's of the package);
- a relative link out of ``docs/``, ``[RESULTS](../benchmarks/RESULTS.md)``: MkDocs checks only those into it.

And the package tree of ``docs/development.md`` names every module and folder of each of the package's
folders, each in its folder's paragraph. The code is read with ``ast``, never imported. A stale reference
fails with one line each: page, line, reference and what is missing.
"""

from __future__ import annotations

import ast
import fnmatch
import os
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
from conftest import parse_python
from documentation import ROOT, pages

PACKAGE = ROOT / "acoustic_env"
#: folders of the checkout that hold no code of the project's own (besides every hidden one: .git, .venv, ...)
NOT_CODE = {"build", "site", "node_modules", "__pycache__", "acoustic_env.egg-info"}
#: files the docs name that are no part of this repository (a third party's), each with where it lives
ELSEWHERE = {
    "vggish_params.py": "Google's VGGish, models/research/audioset/vggish in tensorflow/models",
    "vggish_postprocess.py": "Google's VGGish, models/research/audioset/vggish in tensorflow/models",
}

IDENT = r"[A-Za-z_]\w*"
#: a path to a Python file; not inside a URL or a longer name (``https://x/y.py``, ``a.b.py``)
PATH = r"(?<![\w./:<>*-])((?:[\w.<>*-]+/)*[\w<>*-]+\.py)(?![\w/])"
#: ``path.py: name`` in one code span, or ``path.py``: ``name`` in two
NAMED = re.compile(rf"`{PATH}(?::\s*|`:\s*`)({IDENT}(?:\.{IDENT})*)")
FILE = re.compile(PATH)
SPAN = re.compile(r"`([^`\n]+)`")
DOTTED = re.compile(rf"^(?:acoustic_env\.)?{IDENT}(?:\.{IDENT})+(?:\(\))?$")
PREFIXED = re.compile(rf"(?<![\w.])acoustic_env(?:\.{IDENT})+")
#: a relative link: not a URL (``https:``, ``mailto:``), not an anchor of the page itself
LINK = re.compile(r"\]\((?![a-z]+:|#)([^)#\s]+)")
#: the endings of data and text files, which a dotted code span (``vocabulary.csv``) names rather than code
FILE_ENDINGS = {"py", "csv", "json", "parquet", "png", "html", "md", "txt", "toml", "yml", "yaml", "npz", "pt", "lock",
                "wav", "flac"}


@dataclass(frozen=True)
class Reference:
    page: Path
    line: int
    text: str

    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}: `{self.text}`"


@cache
def code_files() -> tuple[str, ...]:
    """Every ``.py`` file of the checkout, as a path from its root."""
    found = []
    for folder, subfolders, files in os.walk(ROOT):
        # not into an environment's thousands of files (.venv, and .venv-label-studio beside it) nor a hidden folder
        subfolders[:] = [d for d in subfolders if d not in NOT_CODE and not d.startswith(".")]
        found += [(Path(folder) / f).relative_to(ROOT).as_posix() for f in files if f.endswith(".py")]
    return tuple(sorted(found))


def files_named(ref: str) -> list[str]:
    """The files of the checkout whose path is ``ref`` or ends with ``/ref`` (``<name>`` and ``*``: any name)."""
    pattern = ref.replace("<name>", "*")
    return [f for f in code_files() if fnmatch.fnmatchcase(f, pattern) or fnmatch.fnmatchcase(f, "*/" + pattern)]


@cache
def defined(file: str) -> dict[str, set[str]]:
    """The names a file defines at its top (functions, classes, assignments), each with its class's own names."""
    tree = parse_python((ROOT / file).read_text(), file)
    names: dict[str, set[str]] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names[node.name] = set()
        elif isinstance(node, ast.ClassDef):
            names[node.name] = {n for item in node.body for n in _targets(item)}
        else:
            names.update((n, set()) for n in _targets(node))
    return names


def _targets(node: ast.stmt) -> list[str]:
    """The names a statement of a module or class body binds: a def, a class, an assignment, an annotated field."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [node.name]
    if isinstance(node, ast.Assign):
        return [t.id for target in node.targets for t in ast.walk(target) if isinstance(t, ast.Name)]
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return [node.target.id]
    return []


@cache
def config_fields() -> frozenset[str]:
    """The fields of every config section (``acoustic_env/config``): ``features.spectral_n_mels`` is one, not code."""
    return frozenset(name for path in sorted((PACKAGE / "config").glob("*.py"))
                     for node in ast.walk(parse_python(path.read_text(), str(path))) if isinstance(node, ast.ClassDef)
                     for item in node.body if isinstance(item, ast.AnnAssign) for name in _targets(item))


def has_name(file: str, name: str) -> bool:
    """Whether ``file`` defines ``name`` (``Class.member``: the class, and that member in it or a base class)."""
    top, _, member = name.partition(".")
    if top not in defined(file):
        return False
    return not member or member in defined(file)[top] or has_member(top, member)


@cache
def package_classes() -> dict[str, list[tuple[str, ...]]]:
    """Each class of the package by name: the names of its bases, for each file that defines one so named."""
    found: dict[str, list[tuple[str, ...]]] = {}
    for file in code_files():
        if file.startswith("acoustic_env/"):
            for node in parse_python((ROOT / file).read_text(), file).body:
                if isinstance(node, ast.ClassDef):
                    bases = tuple(ast.unparse(b).rpartition(".")[2] for b in node.bases)
                    found.setdefault(node.name, []).append((file, *bases))
    return found


def has_member(cls: str, member: str) -> bool:
    """Whether a class of the package named ``cls`` has ``member``, its own or a base class's of the package (one
    from outside it, ``nn.Module``, is taken to have it: its members are not read here)."""
    for file, *bases in package_classes().get(cls, []):
        if member in defined(file)[cls]:
            return True
        for base in bases:
            own = base in package_classes()
            if (own and has_member(base, member)) or (not own and base not in ("object", "ABC", "Generic")):
                return True
    return False


def references(page: Path, text: str | None = None) -> list[tuple[Reference, str | None]]:
    """Every (reference, problem) of a page (its ``text``, by default read from it); problem None where it holds."""
    found = []
    for number, line in enumerate((page.read_text() if text is None else text).splitlines(), 1):
        named = {m.start(1): (m.group(1), m.group(2)) for m in NAMED.finditer(line)}
        for m in FILE.finditer(line):
            path, name = named.get(m.start(1), (m.group(1), None))
            found.append((Reference(page, number, f"{path}: {name}" if name else path), file_problem(path, name)))
        spans = [s for s in SPAN.findall(line) if DOTTED.match(s)]
        for dotted in sorted({*spans, *PREFIXED.findall(line)}):
            problem = dotted_problem(dotted.removesuffix("()"))
            if problem != "not code":
                found.append((Reference(page, number, dotted), problem))
        for target in LINK.findall(line):
            path = (page.parent / target).resolve()
            if not path.is_relative_to(ROOT / "docs"):  # MkDocs checks the site's own pages, generated ones too
                found.append((Reference(page, number, target), None if path.exists() else "no such file"))
    return found


def file_problem(path: str, name: str | None) -> str | None:
    """What is wrong with a reference to ``path`` (and a name in it), or None."""
    if path in ELSEWHERE:
        return None
    files = files_named(path)
    if not files:
        return "no such file"
    if name and not any(has_name(f, name) for f in files):
        return f"{name} is not defined in {' or '.join(files)}"
    return None


def dotted_problem(dotted: str) -> str | None:
    """What is wrong with ``acoustic_env.a.b.name`` (or ``a.b.name``, ``a`` a module of the package), or None.

    "not code" where, without the package's name, it is a word of another kind: its first part is none of the
    package's modules (``summary.truth``), it names a file (``vocabulary.csv``) or a config field
    (``features.logmel``).
    """
    parts = dotted.removeprefix("acoustic_env.").split(".")
    if len(parts) == 2 and parts[0] in package_classes():
        return None if has_member(*parts) else f"{parts[0]} has no {parts[1]}"
    if not dotted.startswith("acoustic_env."):
        module = (PACKAGE / parts[0]).is_dir() or (PACKAGE / f"{parts[0]}.py").is_file()
        if not module or parts[-1] in FILE_ENDINGS or (len(parts) == 2 and parts[1] in config_fields()):
            return "not code"
    folder = PACKAGE
    for i, part in enumerate(parts):
        if (folder / part).is_dir():
            folder = folder / part
            continue
        module = folder / f"{part}.py"
        if module.is_file():
            rest = ".".join(parts[i + 1:])
            file = module.relative_to(ROOT).as_posix()
            return None if not rest or has_name(file, rest) else f"{rest} is not defined in {file}"
        init = (folder / "__init__.py").relative_to(ROOT).as_posix()
        rest = ".".join(parts[i:])
        if (folder / "__init__.py").is_file() and has_name(init, rest):
            return None
        return f"no module or name {part} in {folder.relative_to(ROOT).as_posix()}"
    return None


def package_tree(text: str) -> dict[str, str]:
    """The paragraphs of the package tree (the code block that opens with ``acoustic_env/``): what a line
    starting two spaces in names (``learn/``, ``table.py``, ``storage.py  errors.py``), with its text and
    the lines under it."""
    block = text.split("```\nacoustic_env/\n", 1)[1].split("```", 1)[0]
    paragraphs: dict[str, str] = {}
    name = ""
    for line in block.splitlines():
        head = re.match(r"  ([\w.]+/?)(?:\s|$)", line)
        if head:
            name = head.group(1)
            paragraphs[name] = line
        else:
            paragraphs[name] += "\n" + line
    return paragraphs


def tree_problems(paragraphs: dict[str, str], package: Path = PACKAGE) -> list[str]:
    """What the tree leaves out (a folder or module of the package, or of one of its folders, not named in its
    paragraph) or names wrongly (a ``.py`` file in a folder's paragraph that is nowhere in that folder, nor a
    path from the package's root: ``learn/duplicates.py`` in ``jobs/``'s)."""
    problems = []
    whole = "\n".join(paragraphs.values())
    for entry in _entries(package):
        if not _named(entry, whole):
            problems.append(f"acoustic_env/{entry} is not in the tree")
    for name, text in paragraphs.items():
        folder = package / name
        if not name.endswith("/") or not folder.is_dir():
            continue
        problems += [f"acoustic_env/{name}{entry} is not in its folder's paragraph"
                     for entry in _entries(folder) if not _named(entry, text)]
        files = {p.relative_to(folder).as_posix() for p in folder.rglob("*.py")}
        problems += [f"acoustic_env/{name}: {ref} is nowhere in acoustic_env/{name}" for ref in FILE.findall(text)
                     if not any(f == ref or f.endswith("/" + ref) for f in files) and not (package / ref).is_file()]
    return problems


def _entries(folder: Path) -> list[str]:
    """The modules of a folder and its folders of Python code (``learn/``), ``__pycache__`` left out."""
    return sorted(p.name + "/" if p.is_dir() else p.name for p in folder.iterdir()
                  if (p.suffix == ".py" and p.name != "__init__.py") or (p.is_dir() and any(p.glob("*.py"))))


def _named(entry: str, text: str) -> bool:
    """Whether ``text`` names ``entry`` (``zoo.py``, ``nets/``) as a word of its own (not in ``a/zoo.py``)."""
    end = "/" if entry.endswith("/") else r"(?!\w)"
    return re.search(r"(?<![\w/.])" + re.escape(entry.removesuffix("/")) + end, text) is not None


def test_every_reference_in_the_docs_names_code_that_exists():
    stale = [f"{ref.where()}: {problem}" for page in pages() for ref, problem in references(page) if problem]
    assert not stale, "stale references to the code:\n" + "\n".join(stale)


def test_the_pages_do_reference_the_code():
    """The reader sees the references (a pattern that matched nothing would pass every page)."""
    texts = {ref.text for page in pages() for ref, _ in references(page)}
    assert {"learn/fit.py: fit", "tests/worlds.py", "acoustic_env.table.read_features", "table.read_features",
            "Model.extract_settings", "../benchmarks/RESULTS.md"} <= texts


@pytest.mark.parametrize("line,problem", [
    ("the loop, `learn/fit.py: fit`.", None),
    ("the loop, `learn/fit.py: no_such_function`.", "no_such_function is not defined in acoustic_env/learn/fit.py"),
    ("(`tests/worlds.py`: `_FileServer`)", None),
    ("(`tests/worlds.py`: `_NoServer`)", "_NoServer is not defined in tests/worlds.py"),
    ("`learn/mlp_estimator.py: MLPClassifier.train`", None),
    ("`learn/artifact.py: Model.fly`", "Model.fly is not defined in acoustic_env/learn/artifact.py"),
    ("see learn/gone.py for it", "no such file"),
    ("python benchmarks/windows.py --serve", None),
    ("https://example.org/learn/gone.py", None),
    ("`table.read_features`", None),
    ("`Model.extract_settings` and `Model.scoring_features()`", None),  # its own, and its base class's
    ("`Model.extract_setting`", "Model has no extract_setting"),
    ("`LOGMEL.metadata()`, `NearestNeighbors.radius_neighbors`", None),  # an instance; a class of another package
    ("`table.read_nothing`", "read_nothing is not defined in acoustic_env/table.py"),
    ("`runs.write_record`", None),  # runs is no module of the package: not a reference it can check
    ("`features.spectral_n_mels` and `vocabulary.csv`", None),  # a config field and a file
    ("`features.logmel_nothing`", "no module or name logmel_nothing in acoustic_env/features"),
    ("::: acoustic_env.learn.gone.load", "no module or name gone in acoustic_env/learn"),
    ("[RESULTS](../benchmarks/RESULTS.md#x)", None),
    ("[RESULTS](../benchmarks/GONE.md)", "no such file"),
    ("[the reference](reference/config.md)", None),  # a page of the site (generated): MkDocs checks it
])
def test_a_stale_reference_is_named_with_its_problem(line, problem):
    page = ROOT / "docs" / "planted.md"  # a page of the site that does not exist: its text is given
    found = [(ref, p) for ref, p in references(page, f"# Planted\n\n{line}\n") if p]
    assert [p for _, p in found] == ([problem] if problem else [])
    assert all(ref.where().startswith("docs/planted.md:3: ") for ref, _ in found)


def test_the_package_tree_names_every_module_where_it_lives():
    problems = tree_problems(package_tree((ROOT / "docs" / "development.md").read_text()))
    assert not problems, "docs/development.md's package tree:\n" + "\n".join(problems)


def test_a_module_left_out_of_the_tree_or_named_in_the_wrong_folder_is_named(tmp_path):
    for path in ("learn/zoo.py", "learn/nets/cnn.py", "audio/rows.py", "table.py"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("")
    text = "```\nacoustic_env/\n  learn/   zoo.py, nets/ (cnn.py)\n     and rows.py\n  audio/   learn/zoo.py\n```\n"
    assert tree_problems(package_tree(text), tmp_path) == [
        "acoustic_env/table.py is not in the tree", "acoustic_env/learn/: rows.py is nowhere in acoustic_env/learn/",
        "acoustic_env/audio/rows.py is not in its folder's paragraph"]
