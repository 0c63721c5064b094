"""``search`` answering from a table's index, as a user reads the answer (acoustic_env/jobs/search.py): the example
first, its neighbours with their own facts and similarities, ``--exact``'s line comparing the two answers in numbers,
and ``--exact`` on a table whose index no longer describes it (the exact answer, with why the index was left out).
A small table (300 clips) indexed for real; tests/test_vector_index.py holds the index's own rules."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from test_vector_index import _table, _write

import acoustic_env as ae
from acoustic_env.cli import main
from acoustic_env.config import ConfigError
from acoustic_env.jobs.search import result_lines

ROWS = 300
ASK = {"embedder": "yamnet", "include_random_weights": True, "k": 8}


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("search-index") / "out"
    _write(_table(out, rows=ROWS), out, parts=2)
    assert main(["index", "--features", str(out), "--embedder", "yamnet", "--include-random-weights"]) == 0
    return out


def test_the_index_answers_with_the_example_first_then_its_neighbours_own_facts(small):
    """The index's answer is the exact one's kind of table: the example at rank 0 (similarity 1), then k other
    clips, ranked, each with its own labels and group, its similarity the exact search's within f16's rounding."""
    found = ae.search(str(small), "clip00011", **ASK)
    exact = ae.search(str(small), "clip00011", exact=True, **ASK)
    assert found.searched_by.startswith(f"{ROWS} clips in its index (") and found.clips == ROWS
    rows, truth = found.table.to_pylist(), {r["clip_id"]: r for r in exact.table.to_pylist()}
    assert [r["rank"] for r in rows] == list(range(9)) and rows[0]["clip_id"] == "clip00011"
    assert rows[0]["similarity"] == 1.0 and "clip00011" not in [r["clip_id"] for r in rows[1:]]
    table = {r["clip_id"]: r for r in _table(small, rows=ROWS).select(["clip_id", "labels", "group"]).to_pylist()}
    for r in rows:
        assert (r["labels"], r["group"]) == (table[r["clip_id"]]["labels"], table[r["clip_id"]]["group"])
        if r["clip_id"] in truth:
            assert abs(r["similarity"] - truth[r["clip_id"]]["similarity"]) < 0.02
    sims = np.array([r["similarity"] for r in rows[1:]])
    assert np.all(np.diff(sims) <= 1e-6) and np.all(sims < 1.0)


def test_exact_says_how_many_of_its_neighbours_the_index_found_and_each_ones_seconds(small):
    found = ae.search(str(small), "clip00011", **ASK)
    exact = ae.search(str(small), "clip00011", exact=True, **ASK)
    assert exact.searched_by is None
    got, truth = (set(f.table["clip_id"].to_pylist()[1:]) for f in (found, exact))
    both = len(got & truth)
    said = re.fullmatch(rf"the index found {both} of these 8 \(recall {both / 8:.2f}\); exact (\d+\.\d\d) s, the "
                        rf"index (\d+\.\d\d) s \({re.escape(found.searched_by)}\)", exact.compared)
    assert said, exact.compared
    # on a quiet machine the index answers in under 5 ms: "0.00 s"
    assert 0 <= float(said[1]) < 60 and 0 <= float(said[2]) < 60
    one = {"k": 1, **{k: v for k, v in ASK.items() if k != "k"}}  # the recall of a single neighbour: 1.00 or 0.00
    hit = ae.search(str(small), "clip00011", **one).table["clip_id"][1] == exact.table["clip_id"][1]
    assert ae.search(str(small), "clip00011", exact=True, **one).compared.startswith(
        f"the index found {int(hit)} of these 1 (recall {int(hit)}.00); ")


def test_exact_on_a_table_its_index_no_longer_describes_answers_exactly_and_says_why(small, tmp_path):
    out = Path(shutil.copytree(small, tmp_path / "out"))
    _write(_table(out, seed=1, prefix="new", rows=50), out, first=10, parts=1)
    with pytest.raises(ConfigError) as refused:
        ae.search(str(out), "clip00011", **ASK)
    exact = ae.search(str(out), "clip00011", exact=True, **ASK)
    assert exact.compared == f"index not used: {refused.value}" and exact.searched_by is None
    assert exact.clips == ROWS + 50 and exact.table["clip_id"][0].as_py() == "clip00011"


def test_the_index_answers_header_names_the_embedder_columns_and_weights_it_searched(small):
    """The console's first line of an answer from the index says what was compared, as the exact answer's does: the
    embedder, its columns, their weights (a clip of the table, so no extract settings and no note)."""
    found = ae.search(str(small), "clip00011", **ASK)
    exact = ae.search(str(small), "clip00011", exact=True, **ASK)
    assert (found.embedder, found.columns, found.weights) == (exact.embedder, exact.columns, exact.weights) == (
        "yamnet", ("yamnet",), "random")
    assert (found.embedded_from, found.note) == (exact.embedded_from, exact.note) == (None, None)
    what = (f"search: the 8 clips nearest to clip00011 among {ROWS} clips, by yamnet (yamnet; random weights); "
            "similarity: cosine after standardising each dimension over the table; ")
    assert result_lines(found, "clip00011")[0] == what + f"from {found.searched_by}"
    assert result_lines(exact, "clip00011")[0] == what + "every clip compared"
