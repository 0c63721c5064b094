"""The review page: assets, the local review server, and a real browser (headless Chromium) end to end:
mouse and keyboard verdicts, the relabel and note, filters, the playhead, storage and export.

The browser tests need Debian's ``chromium`` and ``chromium-driver`` (``selenium`` is a test
dependency): without them they skip with the reason, and fail with it in CI (``conftest.require``).
"""

from __future__ import annotations

import contextlib

import hashlib
import io
import json
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf
from conftest import tone_clip
from test_audit_support import NATURAL, URBAN, make_table
from worlds import MEDIA_READY, console_errors, fetched_elsewhere, wait_for

from acoustic_env.cli import main
from acoustic_env.config import AuditConfig, from_dict
from acoustic_env.errors import AuditError, ClipError
from acoustic_env.jobs.audit.estimate import (
    estimate_accuracy,
    parse_verdicts,
    read_verdicts,
)
from acoustic_env.jobs.audit.job import run_audit
from acoustic_env.pages.review import (
    asset_stem,
    build_review,
    choose_items,
    clip_audio,
    ogg_bytes,
    page_items,
    review_pool,
    source_url,
    write_assets,
)
from acoustic_env.web.review_server import VerdictStore, make_server, verdicts_uri

N_CLIPS = 18


def youtube_id(i: int) -> str:
    return f"yt{i:03d}ABCDEF"  # 11 characters, as a YouTube id


@pytest.fixture(scope="module")
def audited(tmp_path_factory) -> Path:
    """A small audit whose clips are real audio files: 3 suspects and 3 random clips on the page.

    Even-numbered clips get AudioSet's ids (``<YTID>_<start ms>``, group = YTID), so the page must link them.
    """
    root = tmp_path_factory.mktemp("review")
    uris = [str(tone_clip(root / f"c{i}.wav", seconds=1.0, freq=300 + 150 * (i % 2), seed=i)) for i in range(N_CLIPS)]
    path = root / "features.parquet"
    make_table(path, N_CLIPS, [[URBAN], [NATURAL]], 0.2, seed=8, uris=uris)
    table = pq.read_table(path)
    ids, groups = table["clip_id"].to_pylist(), table["group"].to_pylist()
    for i in range(0, N_CLIPS, 2):
        ids[i], groups[i] = f"{youtube_id(i)}_{30000 + 1000 * i}", youtube_id(i)
    table = table.set_column(table.schema.get_field_index("clip_id"), "clip_id", pa.array(ids, pa.string()))
    table = table.set_column(table.schema.get_field_index("group"), "group", pa.array(groups, pa.string()))
    pq.write_table(table, path)
    run_audit(from_dict(AuditConfig, {"features": str(root / "features.parquet"), "output": str(root / "audit"),
                                      "folds": 3, "review_top": 3, "random_sample": 3}))
    return root / "audit"


@pytest.fixture
def server(audited):
    srv = make_server(str(audited), port=0)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/"
    srv.shutdown()
    srv.server_close()
    Path(verdicts_uri(str(audited))).unlink(missing_ok=True)


def test_clip_audio_cuts_whole_recordings_and_keeps_segment_files(tmp_path):
    whole = tone_clip(tmp_path / "whole.wav", seconds=3.0, sr=32000, channels=2)
    assert clip_audio(str(whole), 1.0, 2.0).size == 16000  # file holds the recording: cut 1..2 s
    segment = tone_clip(tmp_path / "seg.wav", seconds=1.5)
    assert clip_audio(str(segment), 30.0, 40.0).size == 24000  # file is the segment
    assets = write_assets({"clip_id": "a/b c", "uri": str(segment), "start_s": None, "end_s": None}, str(tmp_path / "r"))
    audio, sr = sf.read(io.BytesIO((tmp_path / "r" / assets["audio"]).read_bytes()))
    assert sr == 16000 and audio.ndim == 1 and abs(audio.size - 24000) < 1600
    assert (tmp_path / "r" / assets["image"]).read_bytes()[:4] == b"\x89PNG"
    assert "/" not in asset_stem("a/b c") and asset_stem("a/b c") != asset_stem("a_b_c")
    missing = write_assets({"clip_id": "x", "uri": str(tmp_path / "gone.wav")}, str(tmp_path / "r"))
    assert missing["audio"] is None and missing["error"].startswith("missing_file")


def test_clip_audio_cuts_the_segment_a_row_names_and_no_other(tmp_path):
    """A file that holds the recording is cut to the row's segment (to within a millisecond of its end); a file
    that ends before the segment does is the segment itself, read from its start; a row with no segment, or an
    empty one, gets the whole file."""
    t = np.arange(32000) / 32000
    two = np.concatenate([np.sin(2 * np.pi * 300 * t), np.sin(2 * np.pi * 600 * t)]).astype(np.float32)
    sf.write(tmp_path / "two.wav", np.column_stack([two, two]), 32000)  # stereo at 32 kHz: 1 s of 300 Hz, 1 of 600
    uri = str(tmp_path / "two.wav")

    def tone(audio: np.ndarray) -> int:
        return round(np.argmax(np.abs(np.fft.rfft(audio))) * 16000 / audio.size)

    second = clip_audio(uri, 1.0, 2.0)
    assert second.dtype == np.float32 and second.shape == (16000,) and tone(second) == 600
    assert tone(clip_audio(uri, 0.0, 1.0)) == 300 and clip_audio(uri, 0.0, 1.0).size == 16000
    assert clip_audio(uri, 1.0, 2.0009).size == 16000  # ends within a millisecond of the file's end: still cut
    for start, end in ((None, None), (1.0, None), (None, 1.0), (1.0, 1.0)):
        assert clip_audio(uri, start, end).size == 32000, (start, end)  # the whole file, 2 s at 16 kHz
    beyond = clip_audio(uri, 1.0, 2.002)  # past the file's end: the file is the segment, read from its start
    assert beyond.size == 16032 and tone(beyond[:16000]) == 300
    with pytest.raises(ClipError, match="end_s = 0.5 is before start_s = 1.5"):  # the decoder's own check
        clip_audio(uri, 1.5, 0.5)


def test_a_file_whose_length_cannot_be_read_is_taken_as_the_segment(tmp_path, monkeypatch):
    """Where soundfile cannot read a file's header for its length (a file only the decoder's fallback reads), the
    file is taken as the segment itself, from its start, never cut at the row's times."""
    t = np.arange(64000) / 32000  # 2 s: 300 Hz for the first half second, then 600 Hz
    sf.write(tmp_path / "two.wav", np.where(t < 0.5, np.sin(2 * np.pi * 300 * t), np.sin(2 * np.pi * 600 * t)), 32000)

    def unreadable(*_args, **_kwargs):
        raise RuntimeError("no header")

    monkeypatch.setattr(sf, "info", unreadable)
    audio = clip_audio(str(tmp_path / "two.wav"), 0.5, 1.0)  # cut, it would be 600 Hz
    assert audio.size == 8000 and np.argmax(np.abs(np.fft.rfft(audio))) * 2 == 300  # from the start: 300 Hz


def test_asset_names_and_the_verdicts_file_are_where_the_page_and_server_look():
    """A clip's asset stem keeps its id's letters, digits, ``_.-`` (up to 80 of them) and the first 8 hex digits of its
    SHA-1, so two ids that differ only in the characters replaced never share a file; the verdicts sit in the
    review folder."""
    stem = asset_stem("Rain/on a ROOF_1.5-x")
    assert stem == "Rain_on_a_ROOF_1.5-x-" + hashlib.sha1(b"Rain/on a ROOF_1.5-x").hexdigest()[:8]
    long = "A" * 100
    assert asset_stem(long) == "A" * 80 + "-" + hashlib.sha1(long.encode()).hexdigest()[:8]
    assert verdicts_uri("s3://bucket/audit-v1") == "s3://bucket/audit-v1/review/verdicts.json"


def test_write_assets_plays_the_rows_segment_and_a_clip_it_cannot_read_is_an_error_without_secrets(tmp_path,
                                                                                                    monkeypatch):
    t = np.arange(32000) / 32000
    two = np.concatenate([np.sin(2 * np.pi * 300 * t), np.sin(2 * np.pi * 600 * t)]).astype(np.float32)
    sf.write(tmp_path / "two.wav", two, 32000)
    assets = write_assets({"clip_id": "c", "uri": str(tmp_path / "two.wav"), "start_s": 1.0, "end_s": 2.0},
                          str(tmp_path / "r"))
    audio, sr = sf.read(io.BytesIO((tmp_path / "r" / assets["audio"]).read_bytes()))
    assert abs(audio.size - 16000) < 800 and np.argmax(np.abs(np.fft.rfft(audio))) * sr / audio.size > 550
    (tmp_path / "empty.wav").write_bytes(b"")
    assert write_assets({"clip_id": "e", "uri": str(tmp_path / "empty.wav")}, str(tmp_path / "r")) == {
        "audio": None, "image": None, "error": f"empty_file: file is empty (0 bytes): {tmp_path / 'empty.wav'}"}

    def broken(uri, start_s, end_s):
        raise OSError(f"cannot reach {uri}")

    monkeypatch.setattr("acoustic_env.pages.review.clip_audio", broken)
    assert write_assets({"clip_id": "s", "uri": "s3://AKIAEXAMPLE:hunter2@bucket/s.wav"}, str(tmp_path / "r")) == {
        "audio": None, "image": None, "error": "OSError: cannot reach s3://***@bucket/s.wav"}


def test_source_url_links_audioset_segments_only():
    assert source_url("abcdefghijk_30000", "abcdefghijk") == "https://www.youtube.com/watch?v=abcdefghijk&t=30s"
    assert source_url("-_cdefghijk_1500", "-_cdefghijk") == "https://www.youtube.com/watch?v=-_cdefghijk&t=1s"
    assert source_url("birds_night_1200", None) is None  # one's own file that merely looks like a segment
    assert source_url("abcdefghijk_30000", "rec000001") is None
    assert source_url("clip0001", "clip0001") is None


def page_data(audited: Path) -> dict:
    html = (audited / "review" / "index.html").read_text()
    return json.loads(html.split('type="application/json">', 1)[1].split("</script>", 1)[0])


def test_page_lists_suspects_and_a_random_sample(audited):
    html = (audited / "review" / "index.html").read_text()
    data = page_data(audited)
    assert len(data["suspects"]) == 3 and len(data["random"]) == 3
    assert [i["rank"] for i in data["suspects"]] == [1, 2, 3]
    for item in data["suspects"] + data["random"]:
        assert (audited / "review" / item["audio"]).is_file() and (audited / "review" / item["image"]).is_file()
        assert item["given"] and set(item["probs"]) == {"urban", "natural"}
        if item["clip_id"].startswith("yt"):
            ytid, ms = item["clip_id"].rsplit("_", 1)
            assert item["source"] == f"https://www.youtube.com/watch?v={ytid}&t={int(ms) // 1000}s"
        else:
            assert item["source"] is None
    assert any(i["source"] for i in data["suspects"] + data["random"])
    # works from disk: no script, style sheet or font fetched from anywhere
    assert "<script src" not in html and "<link rel=\"stylesheet" not in html and "@import" not in html
    assert "@font-face" not in html and "url(http" not in html


def test_each_clip_on_the_page_is_its_audit_rows_values(audited):
    """Every field the page shows a clip is its row of the audit table, and the page's header is the audit summary's:
    the page never shows a clip, a probability or a count that the audit did not write."""
    data = page_data(audited)
    summary = json.loads((audited / "summary.json").read_text())
    rows = {r["clip_id"]: r for r in pq.read_table(audited / "audit.parquet").to_pylist()}
    classes = summary["task"]["classes"]
    assert {k: data[k] for k in ("audit_id", "task", "kind", "classes", "model", "folds", "n_clips", "n_flagged",
                                 "estimated_wrong_share", "per_class", "review_order", "adaptive", "batch", "seed",
                                 "spec_axes")} == {
        "audit_id": summary["audit_id"], "task": summary["task"]["name"], "kind": "single_label", "classes": classes,
        "model": summary["model"]["chosen"], "folds": 3, "n_clips": N_CLIPS, "n_flagged": summary["counts"]["flagged"],
        "estimated_wrong_share": summary["noise"]["estimated_wrong_share"], "per_class": summary["noise"]["per_class"],
        "review_order": "suspect", "adaptive": False, "batch": 10, "seed": 0, "spec_axes": [0.09, 0.2, 0.9, 0.76]}
    ranked = sorted(rows.values(), key=lambda r: r["suspect_rank"])
    assert [i["clip_id"] for i in data["suspects"]] == [r["clip_id"] for r in ranked[:3]]
    assert all(i["reason"] for i in data["suspects"]) and all("reason" not in i for i in data["random"])
    assert len({i["clip_id"] for i in data["random"]}) == 3
    for item in data["suspects"] + data["random"]:
        row, stem = rows[item["clip_id"]], asset_stem(item["clip_id"])
        assert {k: v for k, v in item.items() if k != "reason"} == {
            "clip_id": row["clip_id"], "uri": row["uri"], "start_s": row["start_s"], "end_s": row["end_s"],
            "source": source_url(row["clip_id"], row["group"]), "given": row["given_labels"],
            "suggested": row["suggested_labels"], "quality": round(row["label_quality"], 4),
            "flagged": row["flagged"], "rank": row["suspect_rank"],
            "probs": {c: round(row[f"prob_{c}"], 4) for c in classes},
            "audio": f"assets/{stem}.ogg", "image": f"assets/{stem}.png", "error": None}
        assert isinstance(item["flagged"], bool) and isinstance(item["rank"], int)


def test_the_random_sample_is_the_seeds_own_and_apart_from_the_queue(audited, tmp_path):
    """The same seed draws the same sample and another seed another; the sample is drawn from every clip, whatever
    the queue holds, in its drawn order."""
    table = pq.read_table(audited / "audit.parquet")
    summary = json.loads((audited / "summary.json").read_text())
    drawn = {}
    for seed in (0, 0, 1):
        out = tmp_path / f"seed{seed}-{len(drawn)}"
        build_review(table, summary, str(out), top=2, random_sample=N_CLIPS, seed=seed)
        data = page_data(out)
        drawn.setdefault(seed, []).append([i["clip_id"] for i in data["random"]])
        assert len(data["suspects"]) == 2 and sorted(drawn[seed][-1]) == sorted(table["clip_id"].to_pylist())
    assert drawn[0][0] == drawn[0][1] != drawn[1][0]
    assert drawn[0][0] != sorted(drawn[0][0])  # not sorted by id or rank: the order drawn
    build_review(table, summary, str(tmp_path / "none"), top=0, random_sample=0)
    assert page_data(tmp_path / "none")["suspects"] == page_data(tmp_path / "none")["random"] == []


def test_an_audit_from_before_the_orders_and_the_model_choice_gets_todays_page(audited, tmp_path):
    """A summary written before ``review_order`` and ``model`` existed: the suspect order and the configured
    classifier, as the audit then ran; no seed given: seed 0, the audit's default."""
    table = pq.read_table(audited / "audit.parquet")
    summary = json.loads((audited / "summary.json").read_text())
    old = {**summary, "config": {k: v for k, v in summary["config"].items() if k != "review_order"}}
    del old["model"]
    build_review(table, old, str(tmp_path / "old"), top=3, random_sample=3)
    then, now = page_data(tmp_path / "old"), page_data(audited)
    assert then["review_order"] == "suspect" and then["model"] == summary["config"]["classifier"]
    assert [i["clip_id"] for i in then["suspects"]] == [i["clip_id"] for i in now["suspects"]]
    assert [i["clip_id"] for i in then["random"]] == [i["clip_id"] for i in now["random"]]  # seed 0
    queue, sample = choose_items(table, 3, 3, 0, tuple(summary["task"]["classes"]))  # the defaults: as the audit
    assert [table["clip_id"][p.index].as_py() for p in queue] == [i["clip_id"] for i in now["suspects"]]
    assert [table["clip_id"][i].as_py() for i in sample] == [i["clip_id"] for i in now["random"]]
    first = {seed: [p.index for p in choose_items(table, 6, 0, seed, ("urban", "natural"), order="random")[0]]
             for seed in (0, 1)}  # the random order's first batch: drawn with the page's seed
    assert first[0] == [p.index for p in choose_items(table, 6, 0, 0, ("urban", "natural"), order="random")[0]]
    assert first[0] != first[1]


def test_a_page_without_the_audit_data_is_one_line_naming_it(tmp_path):
    (tmp_path / "review").mkdir()
    (tmp_path / "review" / "index.html").write_text("<html><body><p>hand-made</p><script>let x = 1;</script>"
                                                     "<script type='application/json' id='other'>{}</script></body>")
    with pytest.raises(AuditError) as caught:
        page_items(str(tmp_path / "review"))
    assert str(caught.value) == (f"audit: {tmp_path / 'review' / 'index.html'} holds no audit data; rebuild it with "
                                 "`acoustic-env audit-review --review-top N`")


def test_the_review_pool_is_the_audit_tables_columns():
    """What the review order chooses from: the given class indices (single-label) or indicator rows (multi-label),
    the probabilities in the task's class order, the embedding where the table kept one (else the probabilities),
    and the audit's quality and flags."""
    table = pa.table({"given_labels": [["b"], ["a"], ["c"]], "prob_a": [0.1, 0.7, 0.2], "prob_b": [0.8, 0.2, 0.3],
                      "prob_c": [0.1, 0.1, 0.5], "label_quality": [0.8, 0.7, 0.5], "flagged": [False, True, False],
                      "embedding": [[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]]})
    pool = review_pool(table, ("a", "b", "c"), "single_label")
    np.testing.assert_array_equal(pool.given, [1, 0, 2])
    assert pool.given.dtype == np.int64 and pool.probs.dtype == np.float64
    np.testing.assert_array_equal(pool.probs, [[0.1, 0.8, 0.1], [0.7, 0.2, 0.1], [0.2, 0.3, 0.5]])
    np.testing.assert_array_equal(pool.embedding, [[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    np.testing.assert_array_equal(pool.quality, [0.8, 0.7, 0.5])
    np.testing.assert_array_equal(pool.flagged, [False, True, False])
    multi = table.drop_columns(["embedding"]).set_column(0, "given_labels", pa.array([["a", "c"], [], ["b"]]))
    pool = review_pool(multi, ("a", "b", "c"), "multi_label")
    np.testing.assert_array_equal(pool.given, [[1, 0, 1], [0, 0, 0], [0, 1, 0]])
    assert pool.given.dtype == np.int64
    np.testing.assert_array_equal(pool.embedding, pool.probs)  # an audit from before the embedding column


def test_the_player_audio_is_the_clip_at_16_khz_and_never_clips(tmp_path):
    """The Ogg the page plays decodes to the clip's samples at 16 kHz: a clip louder than full scale is scaled to a
    0.95 peak (played as it is, it would crackle), a quieter one is left as it is."""
    t = np.arange(16000) / 16000
    for peak, expected in ((2.0, 0.95), (1.5, 0.95), (0.5, 0.5), (0.95, 0.95)):
        tone = (peak * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        audio, sr = sf.read(io.BytesIO(ogg_bytes(tone)))
        assert sr == 16000 and audio.shape == (16000,)
        assert abs(np.abs(audio).max() - expected) < 0.03, (peak, np.abs(audio).max())
        assert np.argmax(np.abs(np.fft.rfft(audio))) == 440  # one-second clip: bin k is k Hz
    assert sf.read(io.BytesIO(ogg_bytes(np.zeros(800, np.float32))))[0].shape == (800,)
    assert sf.read(io.BytesIO(ogg_bytes(np.zeros(0, np.float32))))[0].shape == (0,)  # no sample: no peak to take


def _request(url: str, data: bytes | None = None, headers: dict | None = None) -> tuple[int, bytes, dict]:
    req = urllib.request.Request(url, data=data, headers=headers or {}, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


def test_server_serves_ranges_and_saves_verdicts(audited, server):
    status, body, _ = _request(server)
    assert status == 200 and b"Label review" in body
    asset = next((audited / "review" / "assets").glob("*.ogg")).name
    status, body, headers = _request(server + "assets/" + asset, headers={"Range": "bytes=0-9"})
    assert status == 206 and len(body) == 10 and headers["Content-Type"] == "audio/ogg"
    assert _request(server + "../summary.json")[0] == 404
    assert _request(server + "api/verdicts", b'{"clip_id": "clip0001", "verdict": "nah", "sample": "random"}',
                    {"Content-Type": "application/json"})[0] == 400
    status, body, _ = _request(server + "api/verdicts", b"[" * 100_000, {"Content-Type": "application/json"})
    assert (status, json.loads(body)) == (400, {"error": "verdicts: the request nests deeper than 8 levels (a "
                                                         "verdict file has 4)"})
    clip = sorted(c for sample, c in page_items(str(audited / "review")) if sample == "random")[0]
    rec = {"clip_id": clip, "given_labels": ["urban"], "verdict": "wrong", "sample": "random",
           "reviewer": "t", "time": "2026-01-01T00:00:00Z"}
    status, body, _ = _request(server + "api/verdicts", json.dumps([rec]).encode(), {"Content-Type": "application/json"})
    assert status == 200 and json.loads(body) == {"total": 1}
    saved = read_verdicts([verdicts_uri(str(audited))])
    assert saved[0]["verdict"] == "wrong" and estimate_accuracy(saved)["overall"]["n"] == 1


# ----------------------------------------------------------------------------- headless Chromium


def _click(driver, sample: str, index: int, verdict: str) -> None:
    cards = driver.find_elements("css selector", f'article[data-sample="{sample}"]')
    cards[index].find_element("css selector", f'button[data-verdict="{verdict}"]').click()


def test_review_page_in_headless_chromium_reaches_the_estimate(audited, server, browser, tmp_path, capsys):
    browser.get(server)
    wait_for(browser, "return document.body.dataset.server === 'on'")
    wait_for(browser, MEDIA_READY)  # every player has loaded its Ogg (duration known), every spectrogram decoded
    assert browser.execute_script("return document.querySelectorAll('audio').length") == 6
    _click(browser, "random", 0, "wrong")
    _click(browser, "random", 1, "correct")
    _click(browser, "suspects", 0, "wrong")
    wait_for(browser, "return document.body.dataset.saved === '3'")
    records = read_verdicts([verdicts_uri(str(audited))])
    est = estimate_accuracy(records)
    assert est["sample"] == "random" and est["overall"]["n"] == 2 and est["overall"]["accuracy"] == 0.5
    assert estimate_accuracy(records, sample="suspects")["overall"] == {"accuracy": 0.0, "low": 0.0,
                                                                         "high": pytest.approx(0.7935, abs=1e-3), "n": 1}
    assert main(["audit-estimate", "--verdicts", verdicts_uri(str(audited)), "--output", str(tmp_path / "e.json")]) == 0
    assert json.loads((tmp_path / "e.json").read_text())["overall"]["n"] == 2
    capsys.readouterr()
    browser.refresh()  # verdicts come back from the server and the browser's storage
    wait_for(browser, "return document.body.dataset.server === 'on'")
    pressed = browser.execute_script(
        "return [...document.querySelectorAll('button[aria-pressed=\"true\"]')].map(b => b.dataset.verdict)")
    assert sorted(pressed) == ["correct", "wrong", "wrong"]


def _keys(driver, *keys: str) -> None:
    """Key presses as a person makes them: to whatever has the focus (the page, or a field it focused)."""
    from selenium.webdriver import ActionChains

    for key in keys:
        ActionChains(driver).send_keys(key).perform()


def _current(driver) -> str:
    return driver.execute_script("return window.acousticEnvReview.current()")


def _visible(driver) -> list[str]:
    return driver.execute_script("return [...document.querySelectorAll('.card:not([hidden])')].map(c => c.dataset.key)")


def test_keyboard_review_with_relabel_and_note_reaches_the_server(audited, server, browser):
    from selenium.webdriver.common.keys import Keys

    data = page_data(audited)
    first, second = data["random"][0], data["random"][1]
    browser.get(server)
    wait_for(browser, "return document.body.dataset.server === 'on'")
    wait_for(browser, MEDIA_READY)
    _keys(browser, "j")
    assert _current(browser) == "random|" + first["clip_id"]
    # space plays the current clip and the playhead follows it over the spectrogram's time axis; the 1-s clip plays
    # at a tenth of its speed, so that a loaded machine's slow polling still finds it playing and not ended
    browser.execute_script("document.querySelector('.card.current audio').playbackRate = 0.1")
    _keys(browser, Keys.SPACE)
    wait_for(browser, "const a = document.querySelector('.card.current audio'); return !a.paused && a.currentTime > 0.15")
    _keys(browser, Keys.SPACE)
    # the pause event (which places the playhead) arrives after `paused` turns true: wait for it
    wait_for(browser, "const c = document.querySelector('.card.current'), a = c.querySelector('audio');"
                   "return a.paused && Math.abs(parseFloat(c.querySelector('.playhead').dataset.fraction)"
                   " - Math.min(1, a.currentTime / a.duration)) < 1e-3")
    t, duration, left, fraction = browser.execute_script(
        "const c = document.querySelector('.card.current'), a = c.querySelector('audio'), p = c.querySelector('.playhead');"
        "return [a.currentTime, a.duration, parseFloat(p.style.left), parseFloat(p.dataset.fraction)]")
    axes = data["spec_axes"]
    # the playhead stands where the pause left the clip (the wait above: its fraction is currentTime / duration to
    # 1e-3), drawn over the spectrogram's time axis at that fraction
    assert 0 < t < duration and fraction == pytest.approx(t / duration, abs=1e-3)
    assert left == pytest.approx(100 * (axes[0] + axes[2] * fraction), abs=0.01)
    # wrong, then the right class and a note, all from the keyboard
    other = next(c for c in data["classes"] if c not in first["given"])
    _keys(browser, "w", "l")
    assert browser.switch_to.active_element.get_attribute("class") == "relabel"
    _keys(browser, other, Keys.ESCAPE, "e")
    assert browser.switch_to.active_element.get_attribute("class") == "note"
    _keys(browser, "dog barks, then traffic", Keys.ESCAPE)
    _keys(browser, "n")  # the next clip without a verdict
    assert _current(browser) == "random|" + second["clip_id"]
    _keys(browser, "c")
    path = Path(verdicts_uri(str(audited)))

    def saved() -> dict:
        if not path.is_file():
            return {}
        return {r["clip_id"]: r for r in read_verdicts([str(path)])}

    deadline = time.time() + 15
    while time.time() < deadline and not (saved().get(first["clip_id"], {}).get("note") and second["clip_id"] in saved()):
        time.sleep(0.2)
    records = saved()
    assert set(records) == {first["clip_id"], second["clip_id"]}
    assert (records[first["clip_id"]]["verdict"], records[first["clip_id"]]["corrected_label"],
            records[first["clip_id"]]["note"]) == ("wrong", [other], "dog barks, then traffic")
    assert (records[second["clip_id"]]["verdict"], records[second["clip_id"]]["corrected_label"]) == ("correct", [])
    assert estimate_accuracy(list(records.values()))["overall"]["n"] == 2
    # the AudioSet clips link to their source segment
    links = browser.execute_script(
        "return Object.fromEntries([...document.querySelectorAll('.card')].map(c => "
        "[c.dataset.key, (c.querySelector('a.source') || {}).href || null]))")
    assert links == {f"{s}|{i['clip_id']}": i["source"] for s in ("random", "suspects") for i in data[s]}
    assert console_errors(browser) == [] and fetched_elsewhere(browser, server) == []


def test_filters_by_class_and_state(audited, browser):
    from selenium.webdriver.support.ui import Select

    data = page_data(audited)
    browser.get((audited / "review" / "index.html").as_uri())
    wait_for(browser, MEDIA_READY)
    everything = [f"{s}|{i['clip_id']}" for s in ("random", "suspects") for i in data[s]]
    assert _visible(browser) == everything
    _click(browser, "random", 0, "wrong")
    _click(browser, "suspects", 0, "correct")
    _click(browser, "suspects", 1, "wrong")
    judged = {everything[0]: "wrong", everything[3]: "correct", everything[4]: "wrong"}
    state, cls = Select(browser.find_element("id", "filter-state")), Select(browser.find_element("id", "filter-class"))
    state.select_by_value("unreviewed")
    assert _visible(browser) == [k for k in everything if k not in judged]
    state.select_by_value("reviewed")
    assert _visible(browser) == [k for k in everything if k in judged]
    state.select_by_value("wrong")
    assert _visible(browser) == [k for k, v in judged.items() if v == "wrong"]
    given = {f"{s}|{i['clip_id']}": i["given"] for s in ("random", "suspects") for i in data[s]}
    for name in data["classes"]:
        state.select_by_value("")
        cls.select_by_value(name)
        assert _visible(browser) == [k for k in everything if name in given[k]]
        state.select_by_value("unreviewed")
        assert _visible(browser) == [k for k in everything if name in given[k] and k not in judged]
    assert browser.find_element("id", "shown").text == f"showing {len(_visible(browser))} of 6 clips"
    # "next unreviewed" goes on from the clip last judged (suspects 1), wraps around, and stays inside the filter
    cls.select_by_value("")
    _keys(browser, "n")
    assert _current(browser) == everything[5]
    _keys(browser, "n")
    assert _current(browser) == everything[1]
    name = next(c for c in data["classes"] if c not in given[everything[1]])
    cls.select_by_value(name)
    state.select_by_value("")
    _keys(browser, "n")  # the current clip is of another class: the first unreviewed clip of this class, if any
    expected = next((k for k in everything if name in given[k] and k not in judged), None)
    if expected is None:
        assert _current(browser) == everything[1]
        assert browser.find_element("id", "save-state").text == "no other unreviewed clip is shown"
    else:
        assert _current(browser) == expected
    assert console_errors(browser) == [] and fetched_elsewhere(browser, "file://") == []


def test_static_page_exports_verdicts_and_keeps_them_across_a_reload(audited, browser, tmp_path):
    from selenium.webdriver.support.ui import Select

    downloads = tmp_path / "downloads"
    downloads.mkdir()
    browser.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    browser.get((audited / "review" / "index.html").as_uri())
    wait_for(browser, MEDIA_READY)
    assert browser.execute_script("return window.acousticEnvReview.connected()") is False
    data = page_data(audited)
    browser.find_element("id", "reviewer").send_keys("ann")
    _click(browser, "suspects", 1, "unsure")
    _click(browser, "random", 2, "correct")
    card = browser.find_elements("css selector", 'article[data-sample="suspects"]')[2]
    key = card.get_attribute("data-key")  # the clip, whatever place it takes after the reload
    fix = next(c for c in data["classes"] if c not in data["suspects"][2]["given"])
    Select(card.find_element("css selector", "select.relabel")).select_by_value(fix)  # implies "wrong"
    card.find_element("css selector", "input.note").send_keys('a "quoted", two-part note\n')
    browser.find_element("id", "export-csv").click()
    deadline = time.time() + 15
    while not list(downloads.glob("verdicts-*.csv")) and time.time() < deadline:
        time.sleep(0.2)
    exported = list(downloads.glob("verdicts-*.csv"))
    assert exported, "the CSV export did not arrive as a download"
    records = parse_verdicts(exported[0].read_text())
    assert {(r["sample"], r["verdict"]) for r in records} == {("suspects", "unsure"), ("random", "correct"),
                                                              ("suspects", "wrong")}
    assert all(r["reviewer"] == "ann" for r in records)
    relabelled = next(r for r in records if r["verdict"] == "wrong")
    assert relabelled["corrected_label"] == [fix] and relabelled["note"] == 'a "quoted", two-part note'
    overall = estimate_accuracy(records)["overall"]
    assert (overall["accuracy"], overall["high"], overall["n"]) == (1.0, 1.0, 1)
    assert overall["low"] == pytest.approx(0.2065, abs=1e-3)  # Wilson, 1 of 1
    from_json = parse_verdicts(browser.execute_script("return window.acousticEnvReview.json()"))
    assert sorted(from_json, key=lambda r: r["clip_id"]) == sorted(records, key=lambda r: r["clip_id"])
    browser.refresh()  # progress lives in the browser: verdicts, the right class and the note come back
    wait_for(browser, MEDIA_READY)
    # the card as the reloaded page draws it (on a loaded machine the check once ran before its verdict was drawn)
    wait_for(browser, f"return document.querySelector('article[data-key=\"{key}\"]')?.dataset.verdict === 'wrong'")
    card = browser.find_element("css selector", f'article[data-key="{key}"]')
    assert card.get_attribute("data-verdict") == "wrong"
    assert Select(card.find_element("css selector", "select.relabel")).first_selected_option.get_attribute("value") == fix
    assert card.find_element("css selector", "input.note").get_attribute("value") == 'a "quoted", two-part note'
    assert browser.find_element("id", "progress").text == "reviewed: random 1/3, suspects 2/3"
    assert console_errors(browser) == []


@pytest.mark.slow
def test_audit_and_review_on_object_storage(s3_endpoint, tmp_path):
    """Features, audio, audit table, review assets and saved verdicts all on s3:// (moto on loopback)."""
    import s3fs

    fs = s3fs.S3FileSystem()
    fs.mkdir("audit-in")
    uris = []
    for i in range(10):
        fs.put(str(tone_clip(tmp_path / f"c{i}.wav", seconds=1.0, seed=i)), f"audit-in/audio/c{i}.wav")
        uris.append(f"s3://audit-in/audio/c{i}.wav")
    make_table(tmp_path / "features.parquet", 10, [[URBAN], [NATURAL]], 0.0, seed=9, uris=uris)
    fs.put(str(tmp_path / "features.parquet"), "audit-in/run/features/part-0.parquet")
    summary = run_audit(from_dict(AuditConfig, {"features": "s3://audit-in/run", "output": "s3://audit-in/audit",
                                                "folds": 2, "review_top": 2, "random_sample": 0}))
    assert summary.audited == 10 and summary.review == "s3://audit-in/audit/review/index.html"
    fs.invalidate_cache()
    assert fs.isfile("audit-in/audit/audit.parquet") and len(fs.glob("audit-in/audit/review/assets/*.ogg")) == 2
    srv = make_server("s3://audit-in/audit", port=0)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{srv.server_address[1]}/"
        assert _request(url)[0] == 200
        clip = sorted(c for _, c in page_items("s3://audit-in/audit/review"))[0]
        rec = {"clip_id": clip, "given_labels": ["natural"], "verdict": "correct", "sample": "suspects"}
        assert _request(url + "api/verdicts", json.dumps(rec).encode(), {"Content-Type": "application/json"})[0] == 200
    finally:
        srv.shutdown()
        srv.server_close()
    fs.invalidate_cache()
    assert estimate_accuracy(read_verdicts(["s3://audit-in/audit/review/verdicts.json"]))["sample"] == "suspects"
    # the command stops on Ctrl-C, kill or a closed terminal, and each time removes its lock marker (nothing else
    # would): Ctrl-C also when it started with SIGINT ignored, as a job that a script starts with `&` does
    lock = "audit-in/audit/review/verdicts.json.lock"
    for stop, ignore_sigint in ((signal.SIGTERM, False), (signal.SIGHUP, False), (signal.SIGINT, True)):
        with subprocess.Popen([sys.executable, "-m", "acoustic_env.cli", "audit-review", "--audit", "s3://audit-in/audit",
                               "--serve"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              preexec_fn=lambda: _as_started(ignore_sigint)) as proc:
            try:
                assert "serving the review page" in proc.stdout.readline(), proc.stderr.read()
                fs.invalidate_cache()
                assert fs.exists(lock)
                proc.send_signal(stop)
                assert proc.wait(timeout=30) == 0, proc.stderr.read()
            finally:
                proc.kill()  # a no-op once it has ended; never a hang
        fs.invalidate_cache()
        assert not fs.exists(lock), f"{stop.name} left the lock behind"


def _as_started(ignore_sigint: bool) -> None:
    """The child's signals as a terminal gives them, whatever this process inherited (a suite run under ``nohup``
    starts every child with SIGHUP ignored, and the command rightly leaves an ignored SIGHUP alone); SIGINT ignored
    as a script's ``&`` leaves it, when asked."""
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN if ignore_sigint else signal.SIG_DFL)


def test_multi_label_page_takes_the_right_set_of_classes(tmp_path, browser):
    """A multi-label task gets one tick per class (the given ones ticked); changing the set marks the label wrong."""
    classes = ["speech", "music", "traffic"]
    uris = [str(tone_clip(tmp_path / f"m{i}.wav", seconds=1.0, seed=i)) for i in range(2)]
    table = pa.table({"clip_id": ["m0", "m1"], "uri": uris, "start_s": [None, None], "end_s": [None, None],
                      "group": [None, None], "given_labels": [["speech"], ["music", "traffic"]],
                      "suggested_labels": [["speech", "music"], ["music"]], "label_quality": [0.2, 0.3],
                      "flagged": [True, True], "suspect_rank": [1, 2],
                      **{f"prob_{c}": [0.5, 0.5] for c in classes}})
    summary = {"audit_id": "ml", "task": {"name": "three", "kind": "multi_label", "classes": classes},
               "config": {"classifier": "logreg", "folds": 2}, "counts": {"audited": 2, "flagged": 2},
               "noise": {"estimated_wrong_share": 0.5, "per_class": {c: {"estimated_wrong_share": 0.5} for c in classes}}}
    page = build_review(table, summary, str(tmp_path / "audit"), top=2, random_sample=0)
    browser.get(Path(page).as_uri())
    wait_for(browser, MEDIA_READY)
    card = browser.find_elements("css selector", 'article[data-sample="suspects"]')[1]
    ticks = {b.get_attribute("value"): b for b in card.find_elements("css selector", ".relabel input[type=checkbox]")}
    assert {v: b.is_selected() for v, b in ticks.items()} == {"speech": False, "music": True, "traffic": True}
    ticks["traffic"].click()  # the clip has music only
    records = parse_verdicts(browser.execute_script("return window.acousticEnvReview.json()"))
    assert [(r["clip_id"], r["verdict"], r["corrected_label"]) for r in records] == [("m1", "wrong", ["music"])]
    ticks["traffic"].click()  # back to the given set: no correction left, the verdict stays for the reviewer to change
    records = parse_verdicts(browser.execute_script("return window.acousticEnvReview.json()"))
    assert records[0]["corrected_label"] == [] and records[0]["verdict"] == "wrong"
    assert console_errors(browser) == []


def test_ids_and_labels_that_html_reads_in_a_script_are_text_on_the_page(tmp_path, browser):
    """Clip ids and classes from someone else's list holding ``<!--<script>`` (which hid the page's own script:
    a blank page), ``</script>`` or ``]]>`` are shown as written, opened from disk and under ``--serve``."""
    classes = ["<!--<script>", "</script>]]>"]
    ids = ["<!--<script>", "</script>", "]]>", "a&amp;<b>"]
    uris = [str(tone_clip(tmp_path / f"h{i}.wav", seconds=1.0, seed=i)) for i in range(len(ids))]
    given = [[classes[i % 2]] for i in range(len(ids))]
    table = pa.table({"clip_id": ids, "uri": uris, "start_s": [None] * 4, "end_s": [None] * 4, "group": [None] * 4,
                      "given_labels": given, "suggested_labels": given[1:] + given[:1], "label_quality": [0.1] * 4,
                      "flagged": [True] * 4, "suspect_rank": [1, 2, 3, 4], **{f"prob_{c}": [0.5] * 4 for c in classes}})
    share = {"estimated_wrong_share": 0.5}
    summary = {"audit_id": "<!--<script>", "task": {"name": "</script>", "kind": "single_label", "classes": classes},
               "config": {"classifier": "logreg", "folds": 2}, "counts": {"audited": 4, "flagged": 4},
               "noise": {**share, "per_class": dict.fromkeys(classes, share)}}
    page = build_review(table, summary, str(tmp_path / "audit"), top=4, random_sample=0)
    assert page_items(str(tmp_path / "audit" / "review")) == {("suspects", i) for i in ids}
    srv = make_server(str(tmp_path / "audit"), port=0)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        for url in (Path(page).as_uri(), f"http://127.0.0.1:{srv.server_address[1]}/"):
            browser.get(url)
            wait_for(browser, MEDIA_READY)
            shown = browser.execute_script("return [...document.querySelectorAll('article')].map("
                                           "a => [a.dataset.clip, a.querySelector('.given').textContent])")
            assert shown == [[i, g[0]] for i, g in zip(ids, given)], url
            assert browser.execute_script("return document.getElementById('title').textContent").startswith(
                "Label review: </script> (4 clips")
            _click(browser, "suspects", 0, "wrong")
            records = parse_verdicts(browser.execute_script("return window.acousticEnvReview.json()"))
            assert [(r["clip_id"], r["given_labels"], r["verdict"]) for r in records] == [
                ("<!--<script>", ["<!--<script>"], "wrong")]
            assert console_errors(browser) == []
        wait_for(browser, "return document.body.dataset.saved === '1'")  # the served page posted it
        assert [r["clip_id"] for r in read_verdicts([verdicts_uri(str(tmp_path / "audit"))])] == ["<!--<script>"]
    finally:
        srv.shutdown()
        srv.server_close()


def test_verdict_store_upgrades_an_old_file_and_keeps_relabels(tmp_path):
    path = tmp_path / "verdicts.json"
    path.write_text(json.dumps([{"clip_id": "a", "given_labels": ["urban"], "verdict": "wrong", "sample": "random",
                                 "time": "2026-01-01T00:00:00Z"}]))  # written before corrected_label and note
    store = VerdictStore(str(path), frozenset({("random", "a"), ("random", "b")}))
    assert store.add([{"clip_id": "b", "given_labels": ["urban"], "verdict": "wrong", "sample": "random",
                       "corrected_label": ["natural"], "note": "birds", "time": "2026-01-02T00:00:00Z"}]) == 2
    saved = {r["clip_id"]: r for r in json.loads(path.read_text())}
    assert (saved["a"]["corrected_label"], saved["a"]["note"]) == ([], "")
    assert (saved["b"]["corrected_label"], saved["b"]["note"]) == (["natural"], "birds")


# ----------------------------------------------------------------------------- the active review order


@pytest.fixture(scope="module")
def mixed_audit(tmp_path_factory) -> tuple[Path, dict]:
    """An audit in the ``mixed`` order, re-ranked after every 2 verdicts: 3 clips in the page's queue of 18."""
    from acoustic_env.pages import review

    root = tmp_path_factory.mktemp("mixed")
    uris = [str(tone_clip(root / f"c{i}.wav", seconds=1.0, freq=300 + 150 * (i % 2), seed=i)) for i in range(N_CLIPS)]
    truth = make_table(root / "features.parquet", N_CLIPS, [[URBAN], [NATURAL]], 0.2, seed=8, uris=uris)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(review, "BATCH", 2)
        run_audit(from_dict(AuditConfig, {"features": str(root / "features.parquet"), "output": str(root / "audit"),
                                          "folds": 3, "review_top": 3, "random_sample": 3, "review_order": "mixed"}))
    return root / "audit", truth


@pytest.fixture
def mixed_server(mixed_audit):
    audit = mixed_audit[0]
    srv = make_server(str(audit), port=0)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/"
    srv.shutdown()
    srv.server_close()
    Path(verdicts_uri(str(audit))).unlink(missing_ok=True)
    (audit / "review" / "queue.json").unlink(missing_ok=True)


def _verdicts_on(items: list[dict], flipped: set[str]) -> bytes:
    return json.dumps([{"clip_id": i["clip_id"], "given_labels": i["given"], "sample": "suspects",
                        "verdict": "wrong" if i["clip_id"] in flipped else "correct"} for i in items]).encode()


def test_api_next_re_ranks_the_queue_on_the_verdicts(mixed_audit, mixed_server):
    audit, truth = mixed_audit
    data = page_data(audit)
    assert (data["review_order"], data["adaptive"], data["batch"]) == ("mixed", True, 2)
    assert all(i["reason"].startswith(("nearest the centre", "farthest from reviewed")) for i in data["suspects"])
    status, body, _ = _request(mixed_server + "api/next?n=4")
    first = json.loads(body)
    assert status == 200 and first["order"] == "mixed" and len(first["next"]) == 4
    on_page = {i["clip_id"] for i in data["suspects"]}
    # the clips the order reached beyond the page got their assets and joined the queue, so verdicts on them count
    assert {i["clip_id"] for i in first["added"]} == {i["clip_id"] for i in first["next"]} - on_page != set()
    for item in first["added"]:
        assert (audit / "review" / item["audio"]).is_file() and (audit / "review" / item["image"]).is_file()
        assert ("suspects", item["clip_id"]) in page_items(str(audit / "review"))
    json_headers = {"Content-Type": "application/json"}
    status, body, _ = _request(mixed_server + "api/verdicts", _verdicts_on(first["next"], set(truth["flipped"])),
                               json_headers)
    assert (status, json.loads(body)) == (200, {"total": 4})
    second = json.loads(_request(mixed_server + "api/next?n=4")[1])["next"]
    assert not {i["clip_id"] for i in second} & {i["clip_id"] for i in first["next"]}
    assert all(i["reason"].endswith("after a refit on 4 verdicts") for i in second), second
    # a clip the queue never reached is still refused
    handed = {c for _, c in page_items(str(audit / "review"))}
    never = next(c for c in truth["ids"] if c not in handed)
    status, body, _ = _request(mixed_server + "api/verdicts", _verdicts_on([{"clip_id": never, "given": ["urban"]}],
                                                                           set()), json_headers)
    assert status == 400 and "not in the suspects sample" in json.loads(body)["error"]
    # the POST's rules: another site's page cannot read the queue
    assert _request(mixed_server + "api/next", headers={"Host": "evil.example"})[0] == 403
    assert _request(mixed_server + "api/next", headers={"Origin": "http://evil.example"})[0] == 403
    status, body, _ = _request(mixed_server + "api/next?n=0")
    assert status == 400 and json.loads(body)["error"].startswith("n: must be a whole number from 1 to 50")


def test_the_page_re_ranks_after_each_batch_of_verdicts(mixed_audit, mixed_server, browser):
    """In Chromium: two verdicts (the batch) and the queue asks the server; the next clips come first, with why."""
    browser.get(mixed_server)
    wait_for(browser, "return document.body.dataset.server === 'on'")
    assert browser.execute_script("return document.querySelector('#suspects .order').textContent") == \
        "spread at first, then re-ranked on the verdicts"
    assert browser.execute_script("return document.querySelector('#suspects .why').textContent").startswith(
        "picked: nearest the centre of the collection")
    _click(browser, "suspects", 0, "correct")
    assert browser.execute_script("return document.body.dataset.ranked") is None  # one verdict: not a batch yet
    _click(browser, "suspects", 1, "wrong")
    wait_for(browser, "return document.body.dataset.ranked === '1'")
    following = browser.execute_script("return document.body.dataset.next").split(",")
    shown = browser.execute_script("return [...document.querySelectorAll('#suspects .card')].map("
                                   "c => [c.dataset.clip, c.querySelector('.why').textContent])")
    assert [c for c, _ in shown[:len(following)]] == following and len(shown) > 3
    assert all(why.endswith("after a refit on 2 verdicts") for _, why in shown[:len(following)])
    assert console_errors(browser) == []


def test_served_verdicts_go_into_the_label_store_as_clicked_and_a_refused_one_nowhere(audited, capsys):
    """``audit-review --serve --store``: each verdict the page posts is an event of the store beside the table at once
    (no `labels add-verdicts`), credited to the page's reviewer or the server's; one the store refuses is saved nowhere."""
    from acoustic_env.labels.current import corrected
    from acoustic_env.labels.store import read_events

    with _storing_server(audited, reviewer="night-shift") as (url, store):
        shown = page_data(audited)["random"]
        random_clips = [item["clip_id"] for item in shown]
        other = {"urban": "natural", "natural": "urban"}
        first = {"clip_id": random_clips[0], "given_labels": shown[0]["given"], "verdict": "wrong",
                 "corrected_label": [other[shown[0]["given"][0]]], "sample": "random", "reviewer": "ana"}
        second = {"clip_id": random_clips[1], "given_labels": shown[1]["given"], "verdict": "correct", "sample": "random"}
        for rec in (first, second):
            assert _request(url, json.dumps(rec).encode(), {"Content-Type": "application/json"})[0] == 200
        events = read_events(store, "urban_natural")
        assert [(e.clip_id, e.verdict, e.reviewer, e.source) for e in events] == [
            (random_clips[0], "wrong", "ana", "review"), (random_clips[1], "correct", "night-shift", "review")]
        decisions = corrected(events).decisions
        assert decisions[random_clips[0]].labels == tuple(first["corrected_label"])
        assert decisions[random_clips[1]].labels == tuple(shown[1]["given"])
        # the corrected list's accuracy: the table's 1 of 2, less the one label the store's list fixed, of 18 clips
        capsys.readouterr()
        assert main(["audit-estimate", "--verdicts", verdicts_uri(str(audited)), "--audit", str(audited),
                     "--labels", store]) == 0
        out = capsys.readouterr().out
        assert "accuracy of the corrected list" in out and f"{1 - (0.5 * N_CLIPS - 1) / N_CLIPS:.1%}" in out
        assert "relabels 1 and leaves out 0 of 18 audited clips" in out
        # a class the task does not have: 400 naming it, and neither the store nor verdicts.json takes it
        bad = {**second, "clip_id": random_clips[2], "verdict": "wrong", "corrected_label": ["chainsaw"]}
        status, body, _ = _request(url, json.dumps(bad).encode(), {"Content-Type": "application/json"})
        assert status == 400 and "'chainsaw'" in json.loads(body)["error"]
        assert len(read_events(store, "urban_natural")) == 2
        assert random_clips[2] not in {r["clip_id"] for r in read_verdicts([verdicts_uri(str(audited))])}


@contextlib.contextmanager
def _storing_server(audited: Path, **options):
    """``audit-review --serve --store`` on the audit (the store beside its table): (the verdicts URL, the store);
    afterwards the server stopped, its verdicts file and the store removed for the next test."""
    from acoustic_env.labels.store import default_store

    store = default_store(str(audited.parent / "features.parquet"))
    srv = make_server(str(audited), port=0, store="", **options)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}/api/verdicts", store
    finally:
        srv.shutdown()
        srv.server_close()
        Path(verdicts_uri(str(audited))).unlink(missing_ok=True)
        shutil.rmtree(store, ignore_errors=True)


def test_a_content_length_that_is_no_number_gets_400_not_a_dropped_line(server, capsys):
    """Issue 82, item 24: ``Content-Length: abc`` dropped the connection and printed a traceback on the console."""
    import http.client
    from urllib.parse import urlsplit

    for length in ("abc", "-5", "1e3", "²"):
        conn = http.client.HTTPConnection(urlsplit(server).hostname, urlsplit(server).port, timeout=10)
        try:
            conn.putrequest("POST", "/api/verdicts")
            conn.putheader("Content-Type", "application/json")
            conn.putheader("Content-Length", length)
            conn.endheaders()
            resp = conn.getresponse()
            assert (resp.status, json.loads(resp.read())) == (400, {
                "error": "Content-Length: a body of 1 to 1048576 bytes, given as a whole number"}), length
        finally:
            conn.close()
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_a_store_that_cannot_be_written_stops_the_server_at_start(audited):
    """Issue 82, item 12: ``--serve --store <read-only>`` started, then closed each click's connection unanswered
    with an OSError traceback; now it stops at start in one line, as ``labels add-verdicts`` does, and leaves the
    audit's lock free. (/proc: root may write anywhere else, and cannot create a file there.)"""
    from acoustic_env.config import ConfigError

    with pytest.raises(ConfigError, match=r"^store: cannot create a file in /proc \(.*\), so /proc/acoustic-env-store "
                                          "cannot be written$"):
        make_server(str(audited), port=0, store="/proc/acoustic-env-store")  # what audit-review --serve starts
    make_server(str(audited), port=0).server_close()  # the lock was released


def test_a_posted_reviewer_name_too_long_for_the_store_gets_400_and_is_saved_nowhere(audited):
    """Issue 82, item 7: a 128-KiB reviewer name posted with --store made every later read of the store fail."""
    from acoustic_env.labels.store import read_events

    with _storing_server(audited) as (url, store):
        item = page_data(audited)["random"][0]
        rec = {"clip_id": item["clip_id"], "given_labels": item["given"], "verdict": "correct", "sample": "random",
               "reviewer": "a" * (128 << 10)}
        status, body, _ = _request(url, json.dumps(rec).encode(), {"Content-Type": "application/json"})
        assert (status, json.loads(body)["error"]) == (400, f"reviewer: at most 256 characters, got 131072 "
                                                            f"({item['clip_id']})")
        assert read_events(store) == [] and not Path(verdicts_uri(str(audited))).exists()


def test_the_pages_csv_export_neutralises_formula_cells_by_the_one_writers_rule(audited, browser):
    """Issue 82, 11: the review page's export is a CSV the project writes (in the browser). Each cell goes through
    the one CSV writer's rule (``csv_writer.RULE``, inlined in the page): the page's ``cell`` equals Python's for
    formula cells, numbers and YouTube ids; a file of such cells reads back (``parse_verdicts``) as written."""
    from acoustic_env.csv_writer import safe_cell

    def python_cell(text: str) -> str:
        text = safe_cell(text)
        return '"' + text.replace('"', '""') + '"' if any(c in text for c in '",\n\r') else text

    browser.get((audited / "review" / "index.html").as_uri())
    wait_for(browser, MEDIA_READY)
    cells = ["=HYPERLINK(\"http://x.invalid\")", "+cmd|' /C calc'!A0", "-2+3+cmd|x", "@SUM(1)", "\t=1", "\r=1",
             "'=x", "-0.5", "1e-05", "-0RWZT-miFs_30000", "urban", ""]
    page = browser.execute_script("return arguments[0].map((c) => window.acousticEnvReview.cell(c))", cells)
    assert page == [python_cell(c) for c in cells]
    row = browser.execute_script("return ['=1+1', 'urban', 'wrong', 'random', '@SUM(1)']"
                                 ".map((c) => window.acousticEnvReview.cell(c)).join(',')")
    [record] = parse_verdicts(f"clip_id,given_labels,verdict,sample,note\n{row}\n")
    assert (record["clip_id"], record["note"]) == ("=1+1", "@SUM(1)") and row.startswith("'=1+1,urban,")


def test_a_body_that_never_arrives_or_cannot_be_saved_is_answered_and_the_console_gets_one_line(audited, monkeypatch,
                                                                                                  capsys):
    """Issue 82, beside item 24: a body sent shorter than its Content-Length kept a server thread waiting for ever,
    a verdicts file that cannot be written dropped the connection with a traceback; now 408 and 500, each with its
    reason, and anything no answer covers is one line on the console."""
    import http.client
    import socket

    import acoustic_env.web.review_server as review_server

    monkeypatch.setattr(review_server, "READ_TIMEOUT_S", 1.0)
    srv = make_server(str(audited), port=0)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    port = srv.server_address[1]
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(f"POST /api/verdicts HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
                         "Content-Length: 100\r\n\r\n[{".encode())
            answer = sock.makefile("rb").read()
        assert answer.startswith(b"HTTP/1.0 408 ") and answer.endswith(b'{"error": "the body did not arrive within 1 s"}')
        Path(verdicts_uri(str(audited))).mkdir()  # where verdicts.json goes, a folder: it cannot be written
        item = page_data(audited)["random"][0]
        rec = {"clip_id": item["clip_id"], "given_labels": item["given"], "verdict": "correct", "sample": "random"}
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("POST", "/api/verdicts", json.dumps(rec), {"Content-Type": "application/json"})
        resp = conn.getresponse()
        assert (resp.status, json.loads(resp.read())) == (500, {"error": "the verdict was not saved: Is a directory"})
        try:
            raise RuntimeError("a failure\nno answer covers")
        except RuntimeError:
            srv.handle_error(None, ("127.0.0.1", 1))
        assert capsys.readouterr().err == ("acoustic-env: review server: a request failed: RuntimeError: a "
                                           "failure\\nno answer covers\n")
    finally:
        srv.shutdown()
        srv.server_close()
        if Path(verdicts_uri(str(audited))).is_dir():
            Path(verdicts_uri(str(audited))).rmdir()
