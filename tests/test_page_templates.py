"""The pages' markup lives in templates (``acoustic_env/pages/templates/``), not in Python strings.

The report of a real train run (the ``report`` and ``cv_report`` runs of ``worlds.py``) shows every figure it
wrote and nothing else, each of its tables has a header row as wide as its rows; the templates escape what comes
from data (a clip id, a label, a model's name) and travel with the package; and no module of the pages, the web
layer or the jobs holds an HTML tag in a string literal (read with ``ast``; docstrings and comments may name tags).
"""

from __future__ import annotations

import ast
import re
import tomllib
from glob import glob
from html.parser import HTMLParser
from pathlib import Path

import pyarrow as pa
import pytest
from conftest import parse_python

from acoustic_env.jobs.search import SCHEMA, Found, write_page
from acoustic_env.pages.report import metrics_section

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "acoustic_env"
#: The packages whose pages come from templates: the pages themselves, the web layer and the jobs.
CHECKED = ("pages", "web", "jobs")
#: The elements a page of this project could hold; ``<output>``, ``<name>`` or ``<list>`` in a path or a console
#: line (``<output>/report/``) are placeholders, not tags, so the list names elements, not any word in brackets.
ELEMENTS = frozenset(
    "a abbr article audio b body br button caption code col colgroup details dialog div em figcaption figure "
    "footer form h1 h2 h3 h4 h5 h6 head header hr html i iframe img input kbd label legend li link main meta nav "
    "ol optgroup option p pre script section select small span strong style sub summary sup svg table tbody td "
    "template textarea tfoot th thead title tr u ul video".split())
_TAG = re.compile(r"<!doctype|<!--|</?([a-z][a-z0-9]*)(?=[\s/>])", re.I)
HOSTILE = "<script>alert(1)</script><!--<img src=x onerror=alert(2)>"


def html_tags(source: str) -> list[tuple[int, str]]:
    """(line, literal) of every string or bytes literal in ``source`` that holds an HTML tag, docstrings aside."""
    tree = parse_python(source)
    docstrings = {id(node.value) for node in ast.walk(tree)
                  if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes)) and id(node) not in docstrings:
            text = node.value.decode("latin-1") if isinstance(node.value, bytes) else node.value
            if any(m.group(1) is None or m.group(1).lower() in ELEMENTS for m in _TAG.finditer(text)):
                found.append((node.lineno, text))
    return found


def test_the_check_finds_a_tag_in_any_literal_and_none_in_docstrings_or_placeholders():
    planted = '''
"""A module that says <b>bold</b> in its docstring."""
PAGE = b"<!doctype html><title>x</title>"
def f(k, x):
    """``<output>/report/index.html``"""
    cell = f"<td class='{k}'>{x}</td>"
    return cell, f"{x}/runs/<run_id>.json", "a <list> of <name>", "a < b > c"
'''
    assert [line for line, _ in html_tags(planted)] == [3, 6, 6]


def test_no_module_of_the_pages_the_web_layer_or_the_jobs_builds_html_in_a_string():
    files = sorted(p for part in CHECKED for p in (PACKAGE / part).rglob("*.py"))
    assert len(files) > 30
    found = {f"{p.relative_to(ROOT)}:{line}": text[:80] for p in files for line, text in html_tags(p.read_text())}
    assert not found, f"HTML in Python strings (put it in acoustic_env/pages/templates/): {found}"


def test_every_template_is_package_data():
    """A wheel (``pip install .``) carries the templates: the package-data globs cover every file under them."""
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    covered = {Path(f) for pattern in patterns["acoustic_env"] for f in glob(str(PACKAGE / pattern), recursive=True)}
    templates = {p for p in (PACKAGE / "pages" / "templates").rglob("*") if p.is_file()}
    assert templates and templates <= covered, sorted(map(str, templates - covered))


class Page(HTMLParser):
    """A page's images and tables as the browser would read them: each table as rows of (cell tag, ...)."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.tables: list[list[list[str]]] = []
        self.elements: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append(tag)
        if tag == "img":
            self.images.append(dict(attrs)["src"])
        elif tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self.tables[-1][-1].append(tag)


def _read(text: str) -> Page:
    page = Page()
    page.feed(text)
    page.close()
    return page


@pytest.mark.slow
@pytest.mark.parametrize("run", ["report", "cv_report"])
def test_the_report_shows_every_figure_it_wrote_and_every_table_has_its_header(run, request):
    report: Path = request.getfixturevalue(run)
    page = _read((report / "index.html").read_text())
    shown = {i for i in page.images if not i.startswith("assets/")}
    written = {p.name for p in report.glob("*.png")}
    assert {"roc.png", "calibration.png", "network.png"} <= written and shown == written
    assert all((report / i).is_file() for i in page.images)  # the clips' spectrograms too
    assert len(page.tables) >= 8
    for table in page.tables:
        header, *rows = table
        assert header and set(header) == {"th"} and rows, table
        assert all(len(r) == len(header) and set(r) == {"td"} for r in rows), table
    assert "script" not in page.elements


def test_text_from_data_is_escaped_on_the_report_and_the_search_page(tmp_path):
    """A model's name, a description and clip ids and labels from someone else's table stay text."""
    test = {"n": 10, "accuracy": 0.7, "calibration": {}}
    section = metrics_section({"task": {"kind": "single_label", "class_names": ["a", "b"]},
                               "models": {HOSTILE: {"test": test}},
                               "evaluation": {"description": HOSTILE, "chosen": HOSTILE}})
    rows = [{"rank": 0, "clip_id": HOSTILE, "similarity": 1.0, "labels": [HOSTILE], "group": None,
             "uri": str(tmp_path / "missing.wav"), "start_s": None, "end_s": None}]
    found = Found(pa.Table.from_pylist(rows, schema=SCHEMA), "yamnet", (HOSTILE,), "random", 1, None, HOSTILE)
    search = Path(write_page(found, str(tmp_path / "page"), HOSTILE)).read_text()
    for text in (section, search):
        assert text.count(HOSTILE.replace("<", "&lt;").replace(">", "&gt;")) >= 2
        page = _read(text)
        assert "script" not in page.elements and "x" not in page.images
