"""``acoustic-env search``: what a user sees of an example given as a URL, and an example that is a file the table
holds cut into several segments.

A URL's user-info and token stay off the page as they stay off the console (its title, heading and cards). A
file cut into segments is none of them: given as the example it is embedded as audio, whole, and never stands
silently for its first segment (``jobs/search.py: example_position``).
"""

from __future__ import annotations

import csv
import re
import shutil
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pytest
import soundfile as sf

import acoustic_env as ae
from acoustic_env.audio.featurize import clip_rows
from acoustic_env.config import ConfigError
from acoustic_env.demo.synth import make_clip
from acoustic_env.demo.tables import synthetic_features, write_features
from acoustic_env.pages.review import asset_stem
from acoustic_env.jobs.search import (SCHEMA, Found, _alike, choose_columns, example_position, result_lines,
                                 write_page)
from acoustic_env.table import RANDOM

SECRETS = ("KEYSECRET", "PWSECRET", "TOKSECRET")
SR = 16000
NEIGHBOUR = "abcdefghijk_30000"  # an AudioSet clip: its card links its YouTube source


def _row(**values) -> dict:
    return {"rank": 0, "clip_id": "x", "similarity": 1.0, "labels": [], "group": None, "uri": "u", "start_s": None,
            "end_s": None, **values}


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[tuple[str, str]]:
    """(the URL of a 1-s WAV on a loopback server, with a user, a password and a token; one nothing serves)."""
    root = tmp_path_factory.mktemp("served")
    (root / "calls").mkdir()
    x, _ = make_clip(np.random.default_rng(1), "natural", 1.0, SR, 1)
    sf.write(root / "calls" / "owl.wav", x, SR, subtype="PCM_16")

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    yield (f"http://KEYSECRET:PWSECRET@127.0.0.1:{port}/calls/owl.wav?token=TOKSECRET",
           "http://KEYSECRET:PWSECRET@127.0.0.1:9/calls/owl.wav?token=TOKSECRET")
    server.shutdown()


def _page(example: str, tmp_path: Path) -> str:
    """The page of a search whose example was given as ``example``: its card is the URL's row (``clip_rows``, as
    ``search`` makes it for audio), then one neighbour."""
    [row] = clip_rows([example])
    neighbour = tmp_path / "n.wav"
    sf.write(neighbour, np.zeros(SR, dtype=np.float32), SR)
    rows = [_row(clip_id=row["clip_id"], uri=row["uri"]),
            _row(rank=1, clip_id=NEIGHBOUR, similarity=0.5, labels=["owl", "wind"], group=NEIGHBOUR[:11],
                 uri=str(neighbour))]
    found = Found(pa.Table.from_pylist(rows, schema=SCHEMA), "yamnet", ("yamnet",), "random", 2, "runs/r.json")
    page = Path(write_page(found, str(tmp_path / "page"), example)).read_text()
    assert not any(s in page for s in SECRETS), [line for line in page.split("<") if any(s in line for s in SECRETS)]
    return page


def test_the_page_of_an_example_given_as_a_url_shows_no_credentials(served, tmp_path):
    """Its title and heading name the example with the user-info and the token as ``***``; its card plays it."""
    page = _page(served[0], tmp_path)
    [title] = re.findall(r"<title>(.*?)</title>", page)
    assert title == re.search(r"<h1>(.*?)</h1>", page)[1]
    assert re.fullmatch(r"Clips like http://\*\*\*@127\.0\.0\.1:\d+/calls/owl\.wav\?token=\*\*\*", title), title
    assert page.count("<audio ") == 2 and "audio unavailable" not in page
    # what each card says: the example first, then the neighbour with its rank, similarity, labels and source
    stem = asset_stem(NEIGHBOUR)
    assert ("<p class='note'>The 1 clips nearest to the example among 2, by yamnet (yamnet; random weights): cosine "
            "similarity after standardising each dimension over the table.</p>") in page
    assert re.search(r"<article class='card example' data-clip='owl' data-rank='0'><div class='head'><span "
                     r"class='clip-id'>owl</span><span>the example · similarity 1\.0000</span></div><img src='assets/"
                     r"owl-\w+\.png' alt='spectrogram of owl'><audio controls preload='metadata' src='assets/owl-\w+"
                     r"\.ogg'></audio><div>labels: \(none\)</div></article>", page)
    assert (f"<article class='card' data-clip='{NEIGHBOUR}' data-rank='1'><div class='head'><span class='clip-id'>"
            f"{NEIGHBOUR} <a href='https://www.youtube.com/watch?v=abcdefghijk&amp;t=30s' target='_blank' "
            f"rel='noopener'>source</a></span><span>#1 · similarity 0.5000</span></div><img src='assets/{stem}.png' "
            f"alt='spectrogram of {NEIGHBOUR}'><audio controls preload='metadata' src='assets/{stem}.ogg'></audio>"
            "<div>labels: owl, wind</div></article>") in page
    assert all((Path(tmp_path / "page" / "assets" / f"{stem}.{ext}")).is_file() for ext in ("png", "ogg"))


def test_an_example_url_that_cannot_be_fetched_says_so_on_the_page_without_its_credentials(served, tmp_path):
    page = _page(served[1], tmp_path)
    assert "audio unavailable" in page and page.count("<audio ") == 1


def _example_table(uris: list[str]) -> tuple[pa.Table, SimpleNamespace]:
    """The clip facts ``example_position`` reads (ids ``s0``, ``s1``, ...) and a stand-in for the table."""
    clips = pa.table({"clip_id": [f"s{i}" for i in range(len(uris))], "uri": uris})
    return clips, SimpleNamespace(source="features", dataset=lambda: ds.dataset(clips))


def test_a_file_several_rows_share_is_audio_and_a_file_one_row_holds_is_that_row(tmp_path):
    cut, whole = tmp_path / "cut.wav", tmp_path / "whole.wav"
    for path in (cut, whole):
        sf.write(path, np.zeros(SR, dtype=np.float32), SR)
    clips, table = _example_table([str(cut), str(whole), str(cut)])
    assert example_position(SimpleNamespace(example=str(cut)), clips, table) is None
    assert example_position(SimpleNamespace(example=str(whole)), clips, table) == 1
    assert example_position(SimpleNamespace(example="s2"), clips, table) == 2  # a segment by its id: that segment


@pytest.fixture(scope="module")
def segmented(tmp_path_factory) -> Path:
    """An extract (YAMNet, seeded random weights) of a 4-s recording cut into two 2-s segments and of two files."""
    root = tmp_path_factory.mktemp("segments")
    rows = []
    for i, seconds in enumerate((4.0, 2.0, 2.0)):
        x, _ = make_clip(np.random.default_rng([5, i]), ("urban", "natural")[i % 2], seconds, SR, 1)
        sf.write(root / f"f{i}.wav", x, SR, subtype="PCM_16")
    rows = [{"clip_id": "f0_a", "uri": str(root / "f0.wav"), "start_s": 0.0, "end_s": 2.0, "labels": "urban"},
            {"clip_id": "f0_b", "uri": str(root / "f0.wav"), "start_s": 2.0, "end_s": 4.0, "labels": "urban"},
            {"clip_id": "f1", "uri": str(root / "f1.wav"), "start_s": "", "end_s": "", "labels": "natural"},
            {"clip_id": "f2", "uri": str(root / "f2.wav"), "start_s": "", "end_s": "", "labels": "urban"}]
    with (root / "clips.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    ae.extract(str(root / "clips.csv"), str(root / "out"), embedders=["yamnet"], allow_random_weights=True,
               weights_cache=str(root / "no-weights"), progress=False, features={"signals": ["raw"], "spectral": False})
    return root


def test_a_file_cut_into_segments_given_as_the_example_is_embedded_whole(segmented):
    """The file is decoded and embedded with the table's settings (``embedded_from``): the example row is the file,
    not its first segment, and both segments are among its neighbours."""
    found = ae.search(str(segmented / "out"), str(segmented / "f0.wav"), include_random_weights=True, k=4,
                      weights_cache=str(segmented / "no-weights"))
    rows = found.table.to_pylist()
    assert found.embedded_from is not None and found.clips == 4
    assert rows[0]["clip_id"] == "f0" and rows[0]["uri"] == str(segmented / "f0.wav") and rows[0]["start_s"] is None
    assert {r["clip_id"] for r in rows[1:]} == {"f0_a", "f0_b", "f1", "f2"}


def test_the_console_says_what_was_searched_and_how_then_one_aligned_line_per_clip():
    table = pa.Table.from_pylist([
        _row(clip_id="ex", labels=["bird"]), _row(rank=1, clip_id="a-long-clip-id", similarity=0.51234,
                                                  labels=["bird", "rain"]),
        _row(rank=2, clip_id="c", similarity=-0.25, labels=None)], schema=SCHEMA)
    clips = ["rank  similarity  clip            labels",
             "   0      1.0000  ex              bird  (the example)",
             "   1      0.5123  a-long-clip-id  bird, rain",
             "   2     -0.2500  c               -"]
    audio = Found(table, "birdnet", ("birdnet", "birdnet_fg"), "0123456789abcdef", 40, "runs/r1/extract.yaml",
                  "silent for 2 s")
    assert result_lines(audio, "recordings/dawn.wav") == [
        "search: the 2 clips nearest to recordings/dawn.wav among 40 clips, by birdnet (birdnet, birdnet_fg; weights "
        "0123456789ab), embedded with the settings of runs/r1/extract.yaml; similarity: cosine after standardising "
        "each dimension over the table; every clip compared", "  the example: silent for 2 s", *clips]
    assert result_lines(Found(table, "yamnet", ("yamnet",), RANDOM, 3, None), "c0") == [
        "search: the 2 clips nearest to c0 among 3 clips, by yamnet (yamnet; random weights); similarity: cosine "
        "after standardising each dimension over the table; every clip compared", *clips]
    indexed = Found(table, "yamnet", ("yamnet",), RANDOM, 3, None, searched_by="3 clips in its index (usearch)",
                    compared="the index found 2 of these 2 (recall 1.00)")
    assert result_lines(indexed, "c0")[:2] == [
        "search: the 2 clips nearest to c0 among 3 clips, by yamnet (yamnet; random weights); similarity: cosine "
        "after standardising each dimension over the table; from 3 clips in its index (usearch)",
        "  --exact: the index found 2 of these 2 (recall 1.00)"]


def test_a_table_of_alike_vectors_is_refused_naming_its_clips_and_columns():
    why = ": every dimension is constant, so no clip is nearer the example than another (search needs clips whose " \
          "vectors differ)"
    assert _alike("features-v1", ["a", "b"], 2) == f"features: features-v1 holds 2 clips with finite a, b vectors, " \
                                                   f"all alike{why}"
    assert _alike("features-v1", ["a", "b"], 1) == f"features: features-v1 holds one clip with finite a, b vectors{why}"


def _held(weights: dict[str, str], source: str = "features-v1") -> SimpleNamespace:
    """A stand-in for a table whose embedding columns are the keys of ``weights`` (column -> weights id)."""
    return SimpleNamespace(source=source, weights=weights, vector_columns=lambda: dict.fromkeys(weights, 8))


def _choose(weights: dict[str, str], **cfg) -> tuple[str, list[str]]:
    options = {"embedder": None, "signals": (), "include_random_weights": True, **cfg}
    return choose_columns(_held(weights), SimpleNamespace(**options))


def test_the_default_embedder_has_pretrained_weights_and_its_raw_signal_is_the_clip_as_heard():
    """The table's first embedder with pretrained weights, before one with random weights that comes first in the
    embedder list; its raw signal's column alone when it has one, else every signal it has; ``--signals`` picks."""
    both = {"vggish": RANDOM, "vggish_fg": RANDOM, "yamnet": "c0ffee", "yamnet_fg": "c0ffee"}
    assert _choose(both) == ("yamnet", ["yamnet"])
    assert _choose(both, signals=("fg",)) == ("yamnet", ["yamnet_fg"])
    assert _choose(both, embedder="vggish", signals=("raw", "fg")) == ("vggish", ["vggish", "vggish_fg"])
    assert _choose({"yamnet_fg": "c0ffee", "yamnet_bg": "c0ffee"}) == ("yamnet", ["yamnet_fg", "yamnet_bg"])


def test_columns_that_cannot_be_searched_are_refused_naming_the_table_and_what_it_holds():
    def refused(weights: dict[str, str], **cfg) -> str:
        with pytest.raises(ConfigError) as e:
            _choose(weights, **cfg)
        return str(e.value)

    assert refused({}) == "features: features-v1 has no embedder columns (extract it with --embedders, e.g. " \
                          "--embedders vggish)"
    assert refused({"vggish": RANDOM, "yamnet": RANDOM}, include_random_weights=False) == (
        "features: every embedder column of features-v1 (vggish, yamnet) was computed with random weights, left out "
        "as train and audit leave them out; --include-random-weights searches them")
    assert refused({}, embedder="panns") == "embedder: features-v1 has no panns columns (its embedders: none)"
    assert refused({"vggish": RANDOM, "yamnet": RANDOM}, embedder="panns") == (
        "embedder: features-v1 has no panns columns (its embedders: vggish, yamnet)")
    assert refused({"yamnet": RANDOM, "yamnet_fg": RANDOM}, signals=("bg",)) == (
        "signals: features-v1 has no yamnet_bg column (it has yamnet, yamnet_fg; extract with --embed-signals)")
    assert refused({"yamnet": RANDOM}, signals=("fg", "bg")).startswith(
        "signals: features-v1 has no yamnet_fg, yamnet_bg column (it has yamnet;")


def test_an_example_given_as_a_url_or_a_relative_path_is_the_clip_stored_under_it(tmp_path, monkeypatch):
    """A stored URL is matched as written (not taken for a local path); a relative path as the absolute path the
    table stores."""
    (tmp_path / "here.wav").write_bytes(b"")
    clips, table = _example_table(["s3://bucket/calls/owl.wav", str(tmp_path / "here.wav")])
    assert example_position(SimpleNamespace(example="s3://bucket/calls/owl.wav"), clips, table) == 0
    monkeypatch.chdir(tmp_path)
    assert example_position(SimpleNamespace(example="here.wav"), clips, table) == 1


def test_a_clip_of_the_table_left_out_of_the_search_is_refused_in_one_line():
    clips, table = _example_table(["a.wav", "b.wav"])
    with pytest.raises(ConfigError) as e:
        example_position(SimpleNamespace(example="s1"), clips.slice(0, 1), table)
    assert str(e.value) == ("example: clip s1 of features has no finite embedding in the columns searched (a failed or "
                            "partial row); choose another clip")


def test_a_table_with_pretrained_weights_is_searched_on_its_embeddings_whatever_its_other_columns_hold(tmp_path):
    """Its columns' checksum is reported (the page and console say which weights); a clip whose hand-made features
    failed (NaN) is still searched on its embedding; the saved table keeps the documented column types."""
    table = synthetic_features(6, embedders=("yamnet",), seed=3, weights="ab" * 32).table
    at = table.schema.get_field_index("indices_raw")
    values = table["indices_raw"].combine_chunks()
    broken = np.array(values.values.to_numpy(), copy=True).reshape(6, -1)
    broken[2] = np.nan
    table = table.set_column(at, table.schema.field(at), pa.FixedSizeListArray.from_arrays(
        pa.array(broken.ravel()), broken.shape[1]))
    out = write_features(table, str(tmp_path / "t"), n_parts=1)
    found = ae.search(out, "clip0000002", k=2)
    assert (found.weights, found.columns, found.clips) == ("ab" * 32, ("yamnet",), 6)
    assert found.table["clip_id"][0].as_py() == "clip0000002" and found.table.schema == SCHEMA


def test_the_page_names_every_column_compared_and_pretrained_weights_without_a_note(tmp_path):
    neighbour = tmp_path / "n.wav"
    sf.write(neighbour, np.zeros(SR, dtype=np.float32), SR)
    rows = [_row(clip_id="a", uri=str(neighbour)), _row(rank=1, clip_id="b", similarity=0.5, uri=str(neighbour))]
    found = Found(pa.Table.from_pylist(rows, schema=SCHEMA), "birdnet", ("birdnet", "birdnet_fg"), "ab" * 32, 9, None)
    page = Path(write_page(found, str(tmp_path / "page"), "a")).read_text()
    assert ("<p class='note'>The 1 clips nearest to the example among 9, by birdnet (birdnet, birdnet_fg): cosine "
            "similarity after standardising each dimension over the table.</p></header><main><article ") in page
    assert page.count("</article><article ") == 1 and page.endswith("</article></main></body></html>")


@pytest.fixture
def spied(monkeypatch) -> list[dict]:
    """The keyword arguments of every ``featurize`` call (the real one still runs)."""
    import acoustic_env.audio.featurize as featurize

    calls, real = [], featurize.featurize

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(featurize, "featurize", spy)
    return calls


def test_an_example_given_as_audio_is_embedded_with_the_tables_features_and_the_users_cache(segmented, spied,
                                                                                             tmp_path):
    """The table's feature settings (here: no spectral features, raw signal only), the ``--weights-cache`` given and
    the ``--device``: what the example needs to land in the table's space with the user's checkpoint."""
    cache = str(segmented / "no-weights")
    shutil.copy(segmented / "f1.wav", tmp_path / "elsewhere.wav")
    ae.search(str(segmented / "out"), str(tmp_path / "elsewhere.wav"), include_random_weights=True, k=1,
              weights_cache=cache, device="cpu")
    [call] = spied
    assert call["weights_cache"] == cache and call["device"] == "cpu"
    assert call["features"].spectral is False and call["features"].signals == ("raw",)


def test_an_example_that_is_not_audio_is_refused_in_one_line_saying_why(segmented, tmp_path):
    bad = tmp_path / "notes.wav"
    bad.write_text("not a recording")
    with pytest.raises(ConfigError) as e:
        ae.search(str(segmented / "out"), str(bad), include_random_weights=True, k=1,
                  weights_cache=str(segmented / "no-weights"))
    assert str(e.value).startswith(f"example: cannot embed {bad}: decode/not_audio: not a recognised audio file"), e
