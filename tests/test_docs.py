"""The documentation: a README a newcomer reads in ten minutes, and a site that builds without a warning.

The site (``make docs``) is built here as CI would, into a temporary folder, with MkDocs'
strict mode: a broken link or anchor, a page missing from the navigation or a docstring the API
reference cannot read fails the test, and so does a public function whose parameters the API page
does not list (the docstrings' ``Args:`` sections, read as ``mkdocs.yml``'s Google style). The
configuration reference is generated from the config fields, so every flag ``--help`` shows is on it.
"""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys

from conftest import REPO
from documentation import DOCS, README, pages

from acoustic_env import api
from acoustic_env.config import ExtractConfig, TrainConfig
from acoustic_env.config.flags import describe
from acoustic_env.learn.artifact import load_model
from acoustic_env.table import read_features

#: what docs/reference/api.md renders: every public function of the API, by the id the page gives it
PUBLIC_FUNCTIONS = {**{f"acoustic_env.api.{f}": getattr(api, f)
                       for f in ("extract", "train", "audit", "annotate", "predict", "predict_windows")},
                    "acoustic_env.table.read_features": read_features,
                    "acoustic_env.learn.artifact.load_model": load_model}


def test_the_readme_is_at_most_200_lines_and_says_where_to_go_next():
    text = README.read_text()
    assert len(text.splitlines()) <= 200
    linked = set(re.findall(r"\]\(docs/([^)#]+)", text))
    kept = {p.relative_to(DOCS).as_posix() for p in pages()[1:]}
    assert kept - {"design.md"} <= linked | {"reference/api.md"}, kept - linked  # every page reachable from it


def test_every_page_in_docs_is_in_the_navigation():
    on_disk = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    assert on_disk == {p.relative_to(DOCS).as_posix() for p in pages()[1:]}


def test_the_site_builds_without_a_warning(tmp_path):
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "WARNING" not in r.stderr, r.stderr[-3000:]
    site = tmp_path / "site"
    reference = (site / "reference" / "config" / "index.html").read_text()
    for cls in (ExtractConfig, TrainConfig):
        for key, flag, _ in describe(cls):
            assert f"<code>{flag}</code>" in reference, flag
    assert "features.mps_n_wt" in reference
    home = (site / "index.html").read_text()
    assert "Guide: your own recordings" in home and 'href="extract/"' in home  # the README, links made the site's
    api = (site / "reference" / "api" / "index.html").read_text()
    for name, fn in PUBLIC_FUNCTIONS.items():  # each with a Google-style Args: section the page lists
        assert f'id="{name}"' in api, name
        listed = api.split(f'id="{name}"', 1)[1].split('class="doc doc-object', 1)[0]
        assert "Parameters:" in listed, f"{name}: no parameter table (docstring_style in mkdocs.yml, Args: sections)"
        for param in inspect.signature(fn).parameters.values():
            shown = f"**{param.name}" if param.kind is param.VAR_KEYWORD else param.name
            assert f"<code>{shown}</code>" in listed, f"{name}: parameter {shown} is not on the API page"
    assert (site / "benchmark-results" / "index.html").is_file() and (site / "cluster-files" / "index.html").is_file()
