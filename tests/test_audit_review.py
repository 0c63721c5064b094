"""The review page: assets, the local review server, and a real browser (headless Chromium) end to end.

The browser test needs Debian's ``chromium`` and ``chromium-driver`` and the
``selenium`` package; it skips with the reason when any is missing.
"""

from __future__ import annotations

import io
import json
import shutil
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import soundfile as sf
from conftest import tone_clip
from test_audit_support import NATURAL, URBAN, make_table

from acoustic_env.cli import main
from acoustic_env.config import AuditConfig, from_dict
from acoustic_env.jobs.audit.estimate import (
    estimate_accuracy,
    parse_verdicts,
    read_verdicts,
)
from acoustic_env.jobs.audit.job import run_audit
from acoustic_env.jobs.audit.review import asset_stem, clip_audio, write_assets
from acoustic_env.jobs.audit.server import make_server, verdicts_uri

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
N_CLIPS = 18


@pytest.fixture(scope="module")
def audited(tmp_path_factory) -> Path:
    """A small audit whose clips are real audio files: 3 suspects and 3 random clips on the page."""
    root = tmp_path_factory.mktemp("review")
    uris = [str(tone_clip(root / f"c{i}.wav", seconds=1.0, freq=300 + 150 * (i % 2), seed=i)) for i in range(N_CLIPS)]
    make_table(root / "features.parquet", N_CLIPS, [[URBAN], [NATURAL]], 0.2, seed=8, uris=uris)
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


def test_page_lists_suspects_and_a_random_sample(audited):
    html = (audited / "review" / "index.html").read_text()
    data = json.loads(html.split('type="application/json">', 1)[1].split("</script>", 1)[0])
    assert len(data["suspects"]) == 3 and len(data["random"]) == 3
    assert [i["rank"] for i in data["suspects"]] == [1, 2, 3]
    for item in data["suspects"] + data["random"]:
        assert (audited / "review" / item["audio"]).is_file() and (audited / "review" / item["image"]).is_file()
        assert item["given"] and set(item["probs"]) == {"urban", "natural"}


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
    rec = {"clip_id": "clip0001", "given_labels": ["urban"], "verdict": "wrong", "sample": "random",
           "reviewer": "t", "time": "2026-01-01T00:00:00Z"}
    status, body, _ = _request(server + "api/verdicts", json.dumps([rec]).encode(), {"Content-Type": "application/json"})
    assert status == 200 and json.loads(body) == {"total": 1}
    saved = read_verdicts([verdicts_uri(str(audited))])
    assert saved[0]["verdict"] == "wrong" and estimate_accuracy(saved)["overall"]["n"] == 1


# ----------------------------------------------------------------------------- headless Chromium

@pytest.fixture
def browser(tmp_path):
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("headless browser test needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="headless browser test needs selenium (pip install selenium)")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,1000"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def _wait(driver, script: str, timeout: float = 20.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for: {script}")


MEDIA_READY = """
const audio = [...document.querySelectorAll('audio')], imgs = [...document.querySelectorAll('img')];
return audio.length > 0 && imgs.length === audio.length
  && audio.every(a => a.readyState >= 1 && a.duration > 0.5 && !a.error)
  && imgs.every(i => i.complete && i.naturalWidth > 0);
"""


def _click(driver, sample: str, index: int, verdict: str) -> None:
    cards = driver.find_elements("css selector", f'article[data-sample="{sample}"]')
    cards[index].find_element("css selector", f'button[data-verdict="{verdict}"]').click()


def test_review_page_in_headless_chromium_reaches_the_estimate(audited, server, browser, tmp_path, capsys):
    browser.get(server)
    _wait(browser, "return document.body.dataset.server === 'on'")
    _wait(browser, MEDIA_READY)  # every player has loaded its Ogg (duration known), every spectrogram decoded
    assert browser.execute_script("return document.querySelectorAll('audio').length") == 6
    _click(browser, "random", 0, "wrong")
    _click(browser, "random", 1, "correct")
    _click(browser, "suspects", 0, "wrong")
    _wait(browser, "return document.body.dataset.saved === '3'")
    records = read_verdicts([verdicts_uri(str(audited))])
    est = estimate_accuracy(records)
    assert est["sample"] == "random" and est["overall"]["n"] == 2 and est["overall"]["accuracy"] == 0.5
    assert estimate_accuracy(records, sample="suspects")["overall"] == {"accuracy": 0.0, "low": 0.0,
                                                                         "high": pytest.approx(0.7935, abs=1e-3), "n": 1}
    assert main(["audit-estimate", "--verdicts", verdicts_uri(str(audited)), "--output", str(tmp_path / "e.json")]) == 0
    assert json.loads((tmp_path / "e.json").read_text())["overall"]["n"] == 2
    capsys.readouterr()
    browser.refresh()  # verdicts come back from the server and the browser's storage
    _wait(browser, "return document.body.dataset.server === 'on'")
    pressed = browser.execute_script(
        "return [...document.querySelectorAll('button[aria-pressed=\"true\"]')].map(b => b.dataset.verdict)")
    assert sorted(pressed) == ["correct", "wrong", "wrong"]


def test_static_page_exports_verdicts_as_a_file(audited, browser, tmp_path):
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    browser.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    browser.get((audited / "review" / "index.html").as_uri())
    _wait(browser, MEDIA_READY)
    assert browser.execute_script("return window.acousticEnvReview.connected()") is False
    browser.find_element("id", "reviewer").send_keys("ann")
    _click(browser, "suspects", 1, "unsure")
    _click(browser, "random", 2, "correct")
    browser.find_element("id", "export-csv").click()
    deadline = time.time() + 15
    while not list(downloads.glob("verdicts-*.csv")) and time.time() < deadline:
        time.sleep(0.2)
    exported = list(downloads.glob("verdicts-*.csv"))
    assert exported, "the CSV export did not arrive as a download"
    records = parse_verdicts(exported[0].read_text())
    assert {(r["sample"], r["verdict"]) for r in records} == {("suspects", "unsure"), ("random", "correct")}
    assert all(r["reviewer"] == "ann" for r in records)
    overall = estimate_accuracy(records)["overall"]
    assert (overall["accuracy"], overall["high"], overall["n"]) == (1.0, 1.0, 1)
    assert overall["low"] == pytest.approx(0.2065, abs=1e-3)  # Wilson, 1 of 1
    from_json = parse_verdicts(browser.execute_script("return window.acousticEnvReview.json()"))
    assert len(from_json) == 2


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
    assert summary["counts"]["audited"] == 10 and summary["outputs"]["review"] == "s3://audit-in/audit/review/index.html"
    fs.invalidate_cache()
    assert fs.isfile("audit-in/audit/audit.parquet") and len(fs.glob("audit-in/audit/review/assets/*.ogg")) == 2
    srv = make_server("s3://audit-in/audit", port=0)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{srv.server_address[1]}/"
        assert _request(url)[0] == 200
        rec = {"clip_id": "clip0003", "given_labels": ["natural"], "verdict": "correct", "sample": "suspects"}
        assert _request(url + "api/verdicts", json.dumps(rec).encode(), {"Content-Type": "application/json"})[0] == 200
    finally:
        srv.shutdown()
        srv.server_close()
    fs.invalidate_cache()
    assert estimate_accuracy(read_verdicts(["s3://audit-in/audit/review/verdicts.json"]))["sample"] == "suspects"
