"""docs/studies.md: every figure has a source.

The page lists each study's figures beside the command that reproduces the method here; a figure with no
measurement behind it is a claim nobody can check. (Each ``acoustic-env ...`` in the page passes its config's
validation in tests/test_docs_commands.py, with every other page's.) Each figure of this project (a table's last
column) must be in ``benchmarks/RESULTS.md``, where the
command, the machine and the date that produced it are; each study figure must be one of the write-ups'
or computed from them by the project's own function; each link must resolve in the repository.
"""

from __future__ import annotations

import re
from pathlib import Path

PAGE = Path(__file__).resolve().parents[1] / "docs" / "studies.md"


def _commands() -> list[str]:
    return re.findall(r"`(acoustic-env [^`]+)`", PAGE.read_text())


def test_the_page_names_each_study_and_figure():
    text = PAGE.read_text()
    for needle in ("0.721 / 0.8 = 90.1 %", "0.868", "101 × 77", "top-20", "t-SNE", "ten folds", "60-band",
                   "elastic", "8 classes", "90.6 %", "91.4 %", "0.936 against 0.62", "--oversample", "--features-image mfcc",
                   "--compare-shuffled", "--select-by macro_f1", "--chunks", "--from-tags", "--resample-per-class",
                   "--cnn-architecture residual", "--tuning-trials 20", "--multi-label"):
        assert needle in text, needle
    assert len(_commands()) >= 25


RESULTS = PAGE.parents[1] / "benchmarks" / "RESULTS.md"
#: The write-ups' own figures, as issues 47 and 63 quote them: a study figure not here was written from nowhere.
WRITE_UPS = {"0.766", "0.721", "90.6", "91.4", "0.936", "0.62", "0.8", "0.2", "0.6"}
DECIMAL = re.compile(r"(?<![\w.])\d+\.\d+(?![\w.])")


def _rows() -> list[list[str]]:
    """Every row of the page's four-column tables (the study, its figure, the command, this project), cells split
    on the pipes outside code spans."""
    rows = []
    for line in PAGE.read_text().splitlines():
        if line.startswith("| ") and not line.startswith("|---"):
            cells = [c.strip() for c in re.split(r"\|(?=(?:[^`]*`[^`]*`)*[^`]*$)", line.strip().strip("|"))]
            if len(cells) == 4 and cells[0] != "the study":
                rows.append(cells)
    return rows


def _figures(cell: str) -> list[str]:
    """The decimal figures of a cell, its code spans (flags, file names) left out."""
    return DECIMAL.findall(re.sub(r"`[^`]*`", "", cell))


def test_every_figure_of_this_project_is_a_measured_one_in_the_results():
    results = RESULTS.read_text()
    rows = _rows()
    assert len(rows) >= 20
    found = [(row[0], f) for row in rows for f in _figures(row[3])]
    assert len(found) >= 20  # the figures are there to check, not left out
    missing = [f"{study}: {figure}" for study, figure in found if figure not in results]
    assert not missing, "figures in docs/studies.md that benchmarks/RESULTS.md does not hold:\n" + "\n".join(missing)


def test_every_study_figure_is_the_write_ups_or_computed_from_them():
    from acoustic_env.learn.metrics import adjusted_accuracy, study_ratio

    computed = {f"{100 * study_ratio(0.721, 0.8):.1f}",
                f"{adjusted_accuracy(0.721, 1000, {'overall': {'accuracy': 0.8, 'low': 0.8, 'high': 0.8, 'n': 1000}}, 2)['adjusted']:.3f}"}
    assert computed == {"90.1", "0.868"}
    for row in _rows():
        for figure in _figures(row[1]):
            assert figure in WRITE_UPS | computed, f"{row[0]}: {figure} is no write-up's figure"
    page = PAGE.read_text()
    for stale in ("0.927", "benchmark-results.md", "mel spectrograms", "this project's reading (the study"):
        assert stale not in page, stale


def test_every_link_of_the_page_resolves_in_the_repository():
    root = PAGE.parents[1]
    slugs = {re.sub(r"[-\s]+", "-", re.sub(r"[^\w\s-]", "", h.lower()).strip())
             for h in re.findall(r"^#+ (.+)$", RESULTS.read_text(), re.M)}
    links = re.findall(r"\]\(([^)\s]+)\)", PAGE.read_text())
    assert len(links) >= 10
    for link in links:
        path, _, anchor = link.partition("#")
        if path:
            assert (PAGE.parent / path).resolve().is_file(), link
        if path.endswith("RESULTS.md") and anchor:
            assert anchor in slugs, link
