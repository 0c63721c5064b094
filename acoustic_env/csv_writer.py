"""The one CSV writer: every CSV file the project writes goes through it, its text cells neutralised.

A spreadsheet opens a CSV cell that starts with ``=``, ``+``, ``-`` or ``@`` as a formula, and one that starts
with a tab or a carriage return may be read as one too (OWASP, "CSV Injection"). The cells come from what users
and attackers choose: file names (clip ids), class names, reviewers' names and notes, tags. So a text cell that
starts with one of those six characters is written with a leading ``'``, which a spreadsheet shows as text and
never runs, with two exceptions, both cells that no spreadsheet can turn into a call:

* a number stays a number: ``-0.5``, ``+3``, ``1e-05`` (a decimal, optionally signed, with an optional exponent),
  so a probability or an offset reads back as the value written;
* a ``-`` followed only by letters, digits, ``_``, ``.`` and ``-`` stays as written: YouTube ids start with ``-``
  (``-0RWZT-miFs``, and AudioSet's clip ids made from them, ``-0RWZT-miFs_30000``), and a spreadsheet can read
  such a cell at most as subtraction of cell names, never as a function call or a link.

Cells that are numbers in the data (an Arrow float column, a Python ``float``) are never touched. What a job reads
back from a CSV the project wrote (a corrected list, a round's answers) goes through :func:`restore_cell`, which
takes the ``'`` off again. ``tests/test_csv_writer.py`` checks the rule, and that no module of the package writes
CSV another way. The review page's export of verdicts, written by the browser, applies :data:`RULE` too.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

#: The first characters that make a spreadsheet read a cell as a formula (OWASP's list).
TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
#: The prefix a neutralised cell gets.
QUOTE = "'"
# each pattern past any ' a cell starts with, so that a cell the user wrote as '=x is told from one the writer made
_STARTS = r"^'*[=+\-@\t\r]"
_NUMBER = r"^'*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"
_NAME = r"^'*-[A-Za-z0-9_.\-]*$"
_KEEP = re.compile(f"{_NUMBER}|{_NAME}")
#: The rule's patterns, for the one writer outside Python: the review page's CSV export, in the browser
#: (``pages/review.py`` inlines them; JavaScript reads these regular expressions as Python does).
RULE = {"starts": _STARTS, "kept": [_NUMBER, _NAME]}


def needs_quote(text: str) -> bool:
    """Whether ``text`` gets a ``'``: past any ``'`` it starts with (so that a cell written as ``'=x`` reads back
    as itself), it starts with a trigger and is neither a number nor a ``-name``."""
    return re.match(_STARTS, text) is not None and not _KEEP.match(text)


def safe_cell(value: Any) -> Any:
    """``value`` as the writer puts it in a cell: text that would open as a formula gets a leading ``'``; anything
    else (a number, an empty cell, harmless text) unchanged."""
    return QUOTE + value if isinstance(value, str) and needs_quote(value) else value


def restore_cell(text: str) -> str:
    """A cell as it was before :func:`safe_cell`: the ``'`` it added taken off (for the jobs that read back a
    CSV the project wrote)."""
    return text[1:] if text[:1] == QUOTE and needs_quote(text) else text


def csv_bytes(header: Sequence[str], rows: Iterable[Mapping[str, Any] | Sequence[Any]]) -> bytes:
    """A CSV file's bytes (UTF-8, ``\\n`` after each row): ``header``, then each row under it (a mapping by column
    name: keys not in ``header`` ignored, missing ones empty; or a sequence in the header's order), a list or tuple
    value joined by ``;``, each cell through :func:`safe_cell`, and quoted when it holds a comma, a quote or a line
    break.

    The csv module quotes a cell only for the characters of its row ending: told ``\\n``, it would write a lone
    carriage return inside a cell unquoted, where a reader starts a new row and a new first cell. So each row is
    written with ``\\r\\n`` and its ending then made ``\\n``."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    out = []
    for row in [header, *rows]:
        values = [row.get(k, "") for k in header] if isinstance(row, Mapping) else row
        writer.writerow([safe_cell(";".join(v) if isinstance(v, (list, tuple)) else v) for v in values])
        out.append(buf.getvalue()[:-2] + "\n")
        buf.seek(0)
        buf.truncate()
    return "".join(out).encode()


def safe_column(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """A text column with :func:`safe_cell`'s rule applied in Arrow (nulls stay null); any other column as it is."""
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        return column
    starts = pc.match_substring_regex(column, _STARTS)
    keep = pc.or_(pc.match_substring_regex(column, _NUMBER), pc.match_substring_regex(column, _NAME))
    quote, empty = pa.scalar(QUOTE, column.type), pa.scalar("", column.type)
    return pc.if_else(pc.and_(starts, pc.invert(keep)), pc.binary_join_element_wise(quote, column, empty), column)


def restore_column(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """A text column read back from a CSV the project wrote, :func:`restore_cell`'s rule in Arrow (a clip list a
    recipe or ``audioset fetch`` wrote, read by extract); any other column as it is."""
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        return column
    quoted = pc.starts_with(column, QUOTE)
    if not pc.any(quoted).as_py():  # the common list: no cell the writer quoted, nothing more to look at
        return column
    keep = pc.or_(pc.match_substring_regex(column, _NUMBER), pc.match_substring_regex(column, _NAME))
    added = pc.and_(quoted, pc.and_(pc.match_substring_regex(column, _STARTS), pc.invert(keep)))
    return pc.if_else(added, pc.utf8_slice_codeunits(column, 1), column)


def write_csv_table(table: pa.Table, fh: Any) -> None:
    """Write an Arrow table to the open binary file ``fh`` as CSV (Arrow's writer: a header, ``\\n`` between rows,
    batch by batch; it quotes every text cell, so a line break inside one never starts a row), its text columns
    through :func:`safe_column`. A list column must be text already (the caller
    decides how to join it)."""
    import pyarrow.csv as pcsv

    pcsv.write_csv(pa.table([safe_column(c) for c in table.columns], names=table.column_names), fh)
