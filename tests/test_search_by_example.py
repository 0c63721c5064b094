"""``acoustic-env search``: the clips nearest to an example, by an embedder's embeddings.

The table is real: generated scenes (and a near copy of one: 6 dB quieter, with a little
noise) through the extract job in this process with YAMNet (seeded random weights: no
download, so every search here says ``--include-random-weights``), its clips trimmed to
1.5 s by a non-default ``decode.max_duration_s`` so that an example given as audio must be
decoded with the table's own settings to land on its twin. The page is opened in headless
Chromium as the review page is.
"""

from __future__ import annotations

import contextlib
import csv
import io
import re
import shlex
import shutil
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import documentation
import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
import soundfile as sf
from worlds import MEDIA_READY, console_errors, fetched_elsewhere, wait_for

import acoustic_env as ae
from acoustic_env.cli import main
from acoustic_env.demo.synth import make_clip
from acoustic_env.demo.tables import synthetic_features, write_features
from acoustic_env.jobs.search import result_lines, write_page

N_CLIPS = 10
RANDOM = ("--include-random-weights",)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    """The extract output of N_CLIPS scenes and ``c0_copy``; ``outside/``: audio files that are not in it."""
    root = tmp_path_factory.mktemp("search")
    audio, outside = root / "audio", root / "outside"
    audio.mkdir()
    outside.mkdir()
    rows = []
    for i in range(N_CLIPS):
        cls = ("urban", "natural")[i % 2]
        x, _ = make_clip(np.random.default_rng([3, i]), cls, 2.0, 16000, 1)
        sf.write(audio / f"c{i}.wav", x, 16000, subtype="PCM_16")
        rows.append({"clip_id": f"c{i}", "uri": str(audio / f"c{i}.wav"), "labels": cls})
        if i in (0, 1):  # a near copy: 6 dB quieter, a little noise; c0's in the table, c1's outside it
            copy = np.clip(0.5 * x + 0.003 * np.random.default_rng(i).standard_normal(x.shape), -1, 1)
            where = audio if i == 0 else outside
            sf.write(where / f"c{i}_copy.wav", copy, 16000, subtype="PCM_16")
            if i == 0:
                rows.append({"clip_id": "c0_copy", "uri": str(audio / "c0_copy.wav"), "labels": cls})
    shutil.copy(audio / "c3.wav", outside / "c3_again.wav")  # the same file as c3, under another name
    with (root / "clips.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["clip_id", "uri", "labels"])
        w.writeheader()
        w.writerows(rows)
    ae.extract(str(root / "clips.csv"), str(root / "out"), embedders=["yamnet"], allow_random_weights=True,
               weights_cache=str(root / "no-weights"), progress=False,
               decode={"max_duration_s": 1.5}, features={"signals": ["raw"], "spectral": False})
    return {"root": root, "out": root / "out", "outside": outside, "audio": audio}


def _search(world: dict[str, Path], example: str, **options) -> list[dict]:
    found = ae.search(str(world["out"]), example, include_random_weights=True,
                      weights_cache=str(world["root"] / "no-weights"), **options)
    return found.table.to_pylist()


def test_the_example_comes_first_and_its_near_copy_next(world):
    rows = _search(world, "c0", k=5)
    assert [r["rank"] for r in rows] == list(range(6))
    assert rows[0]["clip_id"] == "c0" and rows[0]["similarity"] == 1.0
    assert "c0_copy" in [r["clip_id"] for r in rows[:3]]
    sims = [r["similarity"] for r in rows[1:]]
    assert sims == sorted(sims, reverse=True) and all(s < 1.0 for s in sims)
    assert rows[1]["labels"] == ["urban"] and rows[1]["uri"].endswith(".wav")


def test_an_audio_file_is_embedded_with_the_tables_settings(world):
    rows = _search(world, str(world["outside"] / "c1_copy.wav"), k=4)
    assert rows[0]["clip_id"] == "c1_copy" and rows[0]["uri"] == str(world["outside"] / "c1_copy.wav")
    assert "c1" in [r["clip_id"] for r in rows[:3]]
    # the same file as c3: decoded as the table was (cut to 1.5 s), it lands on c3 itself
    again = _search(world, str(world["outside"] / "c3_again.wav"), k=2)
    assert again[1]["clip_id"] == "c3" and again[1]["similarity"] > 0.9999, again
    # a file that is a clip of the table is that clip, not embedded again
    found = ae.search(str(world["out"]), str(world["audio"] / "c2.wav"), include_random_weights=True, k=1)
    assert found.table["clip_id"].to_pylist()[0] == "c2" and found.embedded_from is None


def test_an_audio_file_is_answered_from_the_index_as_comparing_every_clip_answers(world, tmp_path):
    """A file outside the table, embedded once with its settings, searched in the table's index: itself at rank 0
    (its own uri, its note), then the clips every clip compared finds; the console says which way each answered."""
    out = shutil.copytree(world["out"], tmp_path / "out")  # index writes beside the table: a copy, not the world's
    assert main(["index", "--features", str(out), *RANDOM]) == 0
    example, ask = world["outside"] / "c1_copy.wav", {"include_random_weights": True, "k": 4,
                                                      "weights_cache": str(world["root"] / "no-weights")}
    fast, exact = (ae.search(str(out), str(example), exact=e, **ask) for e in (False, True))
    assert fast.searched_by.startswith("11 clips in its index (") and exact.searched_by is None
    got, truth = fast.table.to_pylist(), exact.table.to_pylist()
    assert got[0] == truth[0] and (got[0]["clip_id"], got[0]["uri"]) == ("c1_copy", str(example))
    assert (fast.embedded_from, fast.note) == (exact.embedded_from, exact.note) and fast.note.startswith("cut: ")
    assert [r["rank"] for r in got] == list(range(5)) and got[1]["clip_id"] == truth[1]["clip_id"] == "c1"
    sims = {r["clip_id"]: r["similarity"] for r in truth}
    assert sorted(sims) == sorted(r["clip_id"] for r in got)
    assert all(abs(r["similarity"] - sims[r["clip_id"]]) < 0.02 for r in got) and all(r["labels"] for r in got[1:])
    assert result_lines(fast, "c1_copy.wav")[0].endswith(f"; from {fast.searched_by}")
    head, compared = result_lines(exact, "c1_copy.wav")[:2]
    assert head.endswith("; every clip compared") and compared.startswith(
        "  --exact: the index found 4 of these 4 (recall 1.00); exact ")


def test_each_clips_audio_under_another_name_lands_on_that_clip_through_the_index(world, tmp_path):
    """Whichever row of the index holds a clip, its sound given as a file outside the table finds it next to itself
    (rank 1, similarity 1 within f16's rounding): no row of the index is passed over."""
    out = shutil.copytree(world["out"], tmp_path / "out")
    assert main(["index", "--features", str(out), *RANDOM]) == 0
    for clip in [*(f"c{i}" for i in range(N_CLIPS)), "c0_copy"]:
        again = shutil.copy(world["audio"] / f"{clip}.wav", tmp_path / f"{clip}_again.wav")
        found = ae.search(str(out), str(again), include_random_weights=True, k=1,
                          weights_cache=str(world["root"] / "no-weights"))
        assert found.searched_by and found.table["clip_id"].to_pylist() == [f"{clip}_again", clip], clip
        assert found.table["similarity"][1].as_py() > 0.999, clip

def test_exact_on_a_table_without_an_index_compares_every_clip_and_says_nothing_of_an_index(world):
    """--exact where no index was built: the same answer as without it, no line comparing it with an index."""
    found = ae.search(str(world["out"]), "c0", include_random_weights=True, exact=True, k=3)
    assert found.searched_by is None and found.compared is None
    assert found.table.to_pylist() == _search(world, "c0", k=3)
    assert not any(line.startswith("  --exact") for line in result_lines(found, "c0"))

def _fails(capsys, *args: str) -> str:
    assert main(["search", *args]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_mistakes_are_one_line(world, capsys, tmp_path):
    out = str(world["out"])
    assert "'nope' is neither a clip id of" in _fails(capsys, "--features", out, "--example", "nope", *RANDOM)
    assert re.search(r"embedder: \S+ has no panns columns \(its embedders: yamnet\)",
                     _fails(capsys, "--features", out, "--example", "c0", "--embedder", "panns", *RANDOM))
    assert "embedder: must be one of" in _fails(capsys, "--features", out, "--example", "c0", "--embedder", "openl3")
    assert "k: must be an integer >= 1, got 0" in _fails(capsys, "--features", out, "--example", "c0", "-k", "0")
    for given in ((), ("--embedder", "yamnet")):  # random weights are left out, and the line says what brings them
        err = _fails(capsys, "--features", out, "--example", "c0", *given)
        assert "random weights" in err and "--include-random-weights" in err, err
    plain = write_features(synthetic_features(6, seed=1).table, str(tmp_path / "plain"))
    assert "has no embedder columns" in _fails(capsys, "--features", plain, "--example", "clip0000000", *RANDOM)
    assert "signals: " in _fails(capsys, "--features", out, "--example", "c0", "--signals", "fg", *RANDOM)
    assert "save: must be a .csv or .parquet file" in _fails(capsys, "--features", out, "--example", "c0",
                                                             "--save", str(tmp_path / "x.txt"), *RANDOM)


@pytest.fixture(scope="module")
def page(world, tmp_path_factory) -> tuple[str, Path, Path]:
    """(the console, the --save CSV, the --page directory) of one search on the command line."""
    work = tmp_path_factory.mktemp("search-page")
    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        code = main(["search", "--features", str(world["out"]), "--example", "c0", "-k", "3", *RANDOM,
                     "--weights-cache", str(world["root"] / "no-weights"),
                     "--save", str(work / "found.csv"), "--page", str(work / "page")])
    assert code == 0
    return text.getvalue(), work / "found.csv", work / "page"


def test_console_csv_and_page(page):
    console, saved, page_dir = page
    lines = console.splitlines()
    assert lines[0].startswith("search: the 3 clips nearest to c0 among 11 clips, by yamnet (yamnet; random")
    assert re.match(r"\s+0\s+1\.0000\s+c0\s+urban\s+\(the example\)$", lines[2]), lines
    assert re.search(r"\bc0_copy\b", "\n".join(lines[3:5])), lines
    table = pcsv.read_csv(saved)
    assert table.num_rows == 4 and table["clip_id"][0].as_py() == "c0" and table.column_names[:3] == [
        "rank", "clip_id", "similarity"]
    html = (page_dir / "index.html").read_text()
    ranks = re.findall(r"data-rank='(\d+)'", html)
    assert ranks == ["0", "1", "2", "3"] and "class='card example' data-clip='c0'" in html
    players = re.findall(r"<audio controls preload='metadata' src='([^']+)'", html)
    assert len(players) == 4 and all((page_dir / p).is_file() for p in players)


def test_page_plays_every_clip_in_headless_chromium(page, browser):
    page_dir = page[2]
    browser.get((page_dir / "index.html").as_uri())
    wait_for(browser, MEDIA_READY)
    cards = browser.execute_script("return [...document.querySelectorAll('article')].map(a => a.dataset.clip)")
    assert len(cards) == 4 and cards[0] == "c0"
    assert console_errors(browser) == [] and fetched_elsewhere(browser, page_dir.as_uri()) == []


def test_dry_run_reads_no_vector_and_writes_nothing(world, capsys, tmp_path):
    args = ["search", "--features", str(world["out"]), "--example", str(world["outside"] / "c1_copy.wav"),
            *RANDOM, "--page", str(tmp_path / "page"), "--dry-run"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert out.startswith("search (dry run): yamnet (yamnet; random weights)")
    assert "example: an audio file, embedded first with the settings of" in out and "/runs/" in out
    assert not (tmp_path / "page").exists()


def test_the_pages_commands_run_as_written(world, tmp_path, monkeypatch, capsys):
    """docs/search.md's commands, on a copy of this table (``features-v1``: ``index`` writes beside it), clip
    (``park-01``) and recording; then the page's Python reads the embeddings that its ``export`` wrote."""
    monkeypatch.chdir(tmp_path)
    shutil.copytree(world["out"], tmp_path / "features-v1")
    (tmp_path / "recordings").mkdir()
    shutil.copy(world["outside"] / "c1_copy.wav", tmp_path / "recordings" / "dawn-chorus.wav")
    commands = [c for s, c in documentation.commands() if s == "Search by example"]
    # -k 5, then the default 20 (more than the 11 clips: every one is listed); index, search --exact, export
    assert [shlex.split(c)[1] for c in commands] == ["search", "search", "index", "search", "export"]
    for command in commands:
        argv = shlex.split(command.replace("park-01", "c0"))
        assert argv[0] == "acoustic-env"
        cache = ["--weights-cache", str(world["root"] / "no-weights")] if argv[1] == "search" else []
        assert main([*argv[1:], *cache]) == 0, command
    out = capsys.readouterr().out
    assert "nearest to c0 among 11 clips" in out and "nearest to recordings/dawn-chorus.wav" in out
    assert pcsv.read_csv(tmp_path / "similar.csv").num_rows == 12 and (tmp_path / "similar" / "index.html").is_file()
    assert "--exact: the index found 5 of these 5 (recall 1.00)" in out
    assert "index: yamnet-embeddings.parquet.index/yamnet.json" in out
    page = (documentation.DOCS / "search.md").read_text()
    code = page.split("## Sharing embeddings", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    names: dict = {}
    exec(compile(code, "docs/search.md", "exec"), names)  # as a reader would paste it
    assert names["vectors"].shape == (11, 1024) and names["vectors"].dtype == np.float32
    assert np.array_equal(names["same"], names["vectors"])
    assert names["about"]["embedder"] == "yamnet" and names["about"]["weights_sha256"] == "random"
    table = ae.read_features("features-v1", feature_groups=["yamnet"], include_random_weights=True)
    order = np.argsort(names["frame"]["clip_id"].to_numpy())
    assert np.array_equal(names["vectors"][order], table.X["yamnet"])  # the table's own vectors, clip by clip
    assert capsys.readouterr().out.startswith("yamnet https://tfhub.dev/google/yamnet/1 (11, 1024)")


def test_an_example_given_as_a_url_shows_no_credentials_on_the_console():
    """The console line names the example as given: a URL's user-info and token are *** there."""
    import pyarrow as pa

    from acoustic_env.jobs.search import SCHEMA, Found, result_lines

    row = {"rank": 0, "clip_id": "x", "similarity": 1.0, "labels": [], "group": None, "uri": "u", "start_s": None,
           "end_s": None}
    found = Found(pa.Table.from_pylist([row], schema=SCHEMA), "yamnet", ("yamnet",), "random", 1, "r.json")
    text = "\n".join(result_lines(found, "http://KEYSECRET:PWSECRET@h/x.wav?token=TOKSECRET"))
    assert "http://" in text and not any(s in text for s in ("KEYSECRET", "PWSECRET", "TOKSECRET")), text


class _Guarded(SimpleHTTPRequestHandler):
    """Serves a file only to a request that carries the token, as a signed URL's server does."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if self.path.endswith("?token=abc"):
            super().do_GET()
        else:
            self.send_error(403)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def example_url(world):
    """An HTTP URL of ``outside/c1_copy.wav`` holding a user, a password and the token its server wants."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Guarded, directory=str(world["outside"])))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://alice:s3cret@127.0.0.1:{server.server_address[1]}/c1_copy.wav?token=abc"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("saved", ["found.csv", "found.parquet"])
def test_an_example_url_leaves_no_secret_in_the_saved_table_or_the_page(world, example_url, saved, tmp_path, capsys):
    """The saved table's ``uri`` goes through the console's redaction; the page still plays the example."""
    assert main(["search", "--features", str(world["out"]), "--example", example_url, "-k", "2", *RANDOM,
                 "--weights-cache", str(world["root"] / "no-weights"), "--save", str(tmp_path / saved),
                 "--page", str(tmp_path / "page")]) == 0
    table = (pcsv.read_csv if saved.endswith(".csv") else pq.read_table)(tmp_path / saved)
    assert table["clip_id"][0].as_py() == "c1_copy" and "c1" in table["clip_id"].to_pylist()
    uri = table["uri"][0].as_py()
    assert uri.startswith("http://***@127.0.0.1:") and uri.endswith("/c1_copy.wav?token=***"), uri
    written = [capsys.readouterr().out, str(table.to_pylist()), (tmp_path / "page" / "index.html").read_text()]
    assert not [w for w in written if "s3cret" in w or "token=abc" in w], written  # (a hex hash may hold "abc")
    assert "audio unavailable" not in written[2] and len(list((tmp_path / "page" / "assets").glob("c1_copy-*"))) == 2


def test_an_example_given_as_audio_gets_predicts_note(world, tmp_path):
    """Cut to the table's 1.5 s, or digital silence: the console and the page say so, as predict's answer does."""
    cut = ae.search(str(world["out"]), str(world["outside"] / "c1_copy.wav"), include_random_weights=True, k=2,
                    weights_cache=str(world["root"] / "no-weights"))
    assert result_lines(cut, "c1_copy.wav")[1] == "  the example: cut: scored the first 1.5 s of 2.0 s"
    sf.write(tmp_path / "hush.wav", np.zeros(16000, np.float32), 16000, subtype="PCM_16")
    silent = ae.search(str(world["out"]), str(tmp_path / "hush.wav"), include_random_weights=True, k=2,
                       weights_cache=str(world["root"] / "no-weights"))
    assert silent.note.startswith("silent: digital silence (RMS below decode.silence_rms")
    page = write_page(silent, str(tmp_path / "page"), "hush.wav")
    assert f"<p class='note example-note'>The example: {silent.note}</p>" in Path(page).read_text()
    on_the_table = ae.search(str(world["out"]), "c1", include_random_weights=True, k=2)
    assert on_the_table.note is None and len(result_lines(on_the_table, "c1")) == 2 + 3


@pytest.mark.parametrize("case", ["one clip", "identical vectors", "all zeros"])
def test_a_table_whose_vectors_are_all_alike_is_one_line(case, tmp_path, capsys):
    table = synthetic_features(1 if case == "one clip" else 4, embedders=("yamnet",), seed=2).table
    at = table.schema.get_field_index("yamnet")
    if case != "one clip":
        value = np.zeros(1024, np.float32) if case == "all zeros" else table["yamnet"][0].values.to_numpy()
        vectors = pa.FixedSizeListArray.from_arrays(pa.array(np.tile(value, table.num_rows)), 1024)
        table = table.set_column(at, table.schema.field(at), vectors)
    out = write_features(table, str(tmp_path / "t"), n_parts=1)
    err = _fails(capsys, "--features", out, "--example", "clip0000000", *RANDOM)
    held = "one clip with finite yamnet vectors" if case == "one clip" else \
        "4 clips with finite yamnet vectors, all alike"
    assert f"features: {out} holds {held}: every dimension is constant" in err, err
