"""MkDocs hooks: the pages that have their home elsewhere in the repository, added at build time.

* ``index.md`` is the README,
* ``reference/config.md`` is generated from the config fields (:func:`acoustic_env.config.flags.describe`),
  the same fields the flags, the validation and ``--help`` come from,
* ``cluster-files.md`` and ``benchmark-results.md`` are ``cluster/README.md`` and ``benchmarks/RESULTS.md``,
* ``benchmark-history/<month>.md`` is ``benchmarks/history/<month>.md``, the record RESULTS.md links to.

So nothing is written twice: the site only assembles what the repository already holds, and every link\nis written as it resolves in the repository (GitHub shows the same files) and made a site link here.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]

#: (site page, repository file) for the pages whose text lives outside docs/
BORROWED = {"index.md": "README.md", "cluster-files.md": "cluster/README.md",
            "benchmark-results.md": "benchmarks/RESULTS.md",
            **{f"benchmark-history/{p.name}": f"benchmarks/history/{p.name}"
               for p in sorted((ROOT / "benchmarks" / "history").glob("*.md"))}}
_SITE = {source: page for page, source in BORROWED.items()}


def _site_links(markdown: str, page: str) -> str:
    """Links as the repository has them (right on GitHub), made site links: a link is resolved from
    the file that holds it, then a borrowed file becomes its site page and ``docs/x`` becomes ``x``."""
    here = Path(next((s for p, s in BORROWED.items() if p == page), f"docs/{page}")).parent
    depth = len(Path(page).parent.parts)

    def swap(m: re.Match[str]) -> str:
        target, anchor = m.group(1), m.group(2) or ""
        if re.match(r"^[a-z]+:", target):
            return m.group(0)
        repo = os.path.normpath(here / target)
        site = _SITE.get(repo) or (repo[len("docs/"):] if repo.startswith("docs/") else None)
        return m.group(0) if site is None else f"]({'../' * depth}{site}{anchor})"
    return re.sub(r"\]\(([^)#\s]+)(#[^)\s]*)?\)", swap, markdown)


def config_reference() -> str:
    """Every catalogued command's options (``jobs/catalog.py``): config-file key, flag, help and default, one table
    per command."""
    from acoustic_env.config.flags import describe
    from acoustic_env.jobs import catalog
    from acoustic_env.web.commands import register

    register()  # serve and audit-review
    jobs = {spec.name: spec.config for spec in catalog.specs()}
    out = ["# Configuration reference", "",
           "Generated from the config fields (`acoustic_env/config/`), as the flags and `--help` are. Every option",
           "can be a flag or a key of the `--config` YAML/JSON file (a dotted key is a nested section).", ""]
    for job, cls in jobs.items():
        out += [f"## acoustic-env {job}", "", f"`{cls.__name__}`: {(cls.__doc__ or '').strip().splitlines()[0]}", "",
                "| config key | flag | meaning |", "|---|---|---|"]
        out += [f"| `{key}` | `{flag}` | {text.replace('|', '&#124;')} |" for key, flag, text in describe(cls)]
        out.append("")
    return "\n".join(out)


def on_files(files: Files, config) -> Files:  # mkdocs' config object
    for page, source in BORROWED.items():
        files.append(File.generated(config, page, content=(ROOT / source).read_text()))
    files.append(File.generated(config, "reference/config.md", content=config_reference()))
    return files


def on_page_markdown(markdown: str, page, **_) -> str:  # mkdocs' page object
    return _site_links(markdown, page.file.src_uri)
