"""The page of ``acoustic-env serve`` (``GET /``) in headless Chromium, against the real service.

The service is the session's (``tests/worlds.py``, shared with ``test_serve``): the real command in a subprocess (Ray Serve on its own local
Ray, a free loopback port, small limits) on a model trained on real demo clips with the real
extract job and YAMNet (seeded random weights: no download), so that AudioSet tags come back.
Every number the page shows is compared with the JSON the service returns for the same bytes,
fetched here with urllib. The microphone is Chromium's fake capture device (a beep), and a
spy on ``window.fetch`` shows what the page really sent.

Needs Debian's ``chromium`` and ``chromium-driver``: skips with the reason without them, fails in CI.
"""

from __future__ import annotations

import base64
import io
import json
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import tone_clip
from test_serve import _get, _post
from worlds import console_errors, fetched_elsewhere, wait_for

#: added to the shared ``browser`` fixture's flags: a fake microphone that plays a beep, allowed without a prompt
CHROMIUM_FLAGS = ("--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream")


# ----------------------------------------------------------------------------- the real service

@pytest.fixture
def served(service, serve_world) -> tuple[str, Path]:
    """(base URL, a 16-bit WAV of a demo clip): ``test_serve``'s running service and its clip."""
    return service[0], serve_world[3]


def _info(base: str) -> dict:
    return json.loads(_get(base + "info")[2])


def service_answer(base: str, body: bytes) -> tuple[int, dict]:
    """What the service answers for these bytes posted raw, as a script would send them."""
    status, _, answer = _post(base + "predict?top_tags=5", body)
    return status, answer


# ----------------------------------------------------------------------------- the page

# Every request the page makes from now on, with the file it posted (base64) and the service's JSON answer.
FETCH_SPY = """
window.sent = [];
const original = window.fetch;
window.fetch = async (url, opts = {}) => {
  const file = opts.body instanceof FormData ? opts.body.get('file') : null, entry = {url: new URL(url, location.href).href};
  window.sent.push(entry);
  if (file) {
    const bytes = new Uint8Array(await file.arrayBuffer());
    let s = '';
    for (const b of bytes) s += String.fromCharCode(b);
    Object.assign(entry, {name: file.name, b64: btoa(s)});
  }
  const res = await original(url, opts);
  entry.status = res.status;
  entry.answer = await res.clone().json().catch(() => null);
  return res;
};
"""

SHOWN = """
const rows = id => [...document.querySelectorAll(`#${id} li`)].map(li =>
  [li.querySelector('.name').textContent, li.querySelector('.value').textContent]);
return {state: document.body.dataset.state, predicted: document.getElementById('predicted').textContent,
        probs: rows('probs'), tags: rows('tags'), tagsShown: !document.getElementById('tags-box').hidden,
        error: document.getElementById('error').hidden ? null : document.getElementById('error').textContent};
"""

# The share of the plot's pixels that are not the white background, and how many distinct colours it has:
# a blank canvas or one with only axes has few of either; a drawn spectrogram has many.
INK = """
const c = document.getElementById('plot');
if (c.closest('[hidden]')) return null;
const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data, colours = new Set();
let ink = 0;
for (let i = 0; i < d.length; i += 4) {
  if (d[i] < 250 || d[i + 1] < 250 || d[i + 2] < 250) ink++;
  colours.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
}
return {ink: ink / (d.length / 4), colours: colours.size};
"""

# A file dropped on the drop zone, as a drag from the desktop delivers it (arguments: base64 bytes, name).
DROP = """
const bytes = Uint8Array.from(atob(arguments[0]), c => c.charCodeAt(0)), files = new DataTransfer();
files.items.add(new File([bytes], arguments[1], {type: 'audio/wav'}));
document.getElementById('drop').dispatchEvent(new DragEvent('drop', {dataTransfer: files, bubbles: true, cancelable: true}));
"""


def open_page(driver, base: str) -> dict:
    """Load the page, wait for its /info, install the fetch spy; returns /info as the service gives it."""
    driver.get(base)
    wait_for(driver, "return document.body.dataset.state === 'ready'")
    driver.execute_script(FETCH_SPY)
    return _info(base)


def choose(driver, path: Path, until: str) -> dict:
    """Choose ``path`` with the file input; wait until the page reaches state ``until``; what it shows."""
    driver.find_element("id", "file").send_keys(str(path))
    wait_for(driver, f"return document.body.dataset.state === '{until}'", timeout=120)
    return driver.execute_script(SHOWN)


def assert_shows(shown: dict, answer: dict) -> None:
    """The page shows this JSON answer: the class, every probability sorted, the tags, to 3 decimals."""
    assert shown["predicted"] == answer["predicted"]
    probs = sorted(answer["probabilities"].items(), key=lambda kv: -kv[1])
    assert shown["probs"] == [[name, f"{p:.3f}"] for name, p in probs]
    assert shown["tagsShown"] == bool(answer["tags"])
    assert shown["tags"] == [[t["name"], f"{t['score']:.3f}"] for t in answer["tags"] or []]


def assert_same_answer(a: dict, b: dict) -> None:
    assert a["predicted"] == b["predicted"] and a["probabilities"].keys() == b["probabilities"].keys()
    np.testing.assert_allclose([a["probabilities"][k] for k in a["probabilities"]],
                               [b["probabilities"][k] for k in a["probabilities"]], atol=1e-6, rtol=0)
    assert [t["name"] for t in a["tags"] or []] == [t["name"] for t in b["tags"] or []]


# ----------------------------------------------------------------------------- tests

def test_upload_shows_the_services_answer_and_draws_the_clip(served, browser):
    base, wav = served
    info = open_page(browser, base)
    assert "Task urban_natural: urban, natural" in browser.find_element("id", "model").text
    assert f"{info['limits']['max_duration_s']:g} s per clip" in browser.find_element("id", "limits").text

    shown = choose(browser, wav, "done")
    [sent] = browser.execute_script("return window.sent")
    assert sent["url"].startswith(base + "predict") and sent["name"] == wav.name
    assert base64.b64decode(sent["b64"]) == wav.read_bytes()  # the file itself: the service decodes it
    status, direct = service_answer(base, wav.read_bytes())
    assert status == sent["status"] == 200
    assert_same_answer(sent["answer"], direct)
    assert_shows(shown, sent["answer"])
    assert direct["tags"] and len(shown["tags"]) == len(direct["tags"])  # YAMNet ran: tags came back and are shown
    assert sent["answer"]["clip"] == wav.name and wav.name in browser.find_element("id", "answer-meta").text

    ink = browser.execute_script(INK)
    assert ink["ink"] > 0.4 and ink["colours"] > 50, ink
    assert browser.execute_script("return document.getElementById('plot').dataset.drawn") == "true"
    assert fetched_elsewhere(browser, base) == []  # no external script, style or font
    assert console_errors(browser) == []


def test_recording_is_sent_as_16bit_mono_wav_and_answered(served, browser):
    from selenium.webdriver import ActionChains
    from selenium.webdriver.common.keys import Keys

    base, _ = served
    open_page(browser, base)
    # keyboard only: Tab reaches the record button, Space starts and stops it
    for _ in range(6):
        if browser.execute_script("return document.activeElement.id") == "record":
            break
        ActionChains(browser).send_keys(Keys.TAB).perform()
    assert browser.execute_script("return document.activeElement.id") == "record"
    ActionChains(browser).send_keys(Keys.SPACE).perform()
    wait_for(browser, "return document.body.dataset.state === 'recording'")
    time.sleep(2.0)
    ActionChains(browser).send_keys(Keys.SPACE).perform()
    wait_for(browser, "return document.body.dataset.state === 'done'", timeout=120)

    [sent] = browser.execute_script("return window.sent")
    body = base64.b64decode(sent["b64"])
    assert sent["name"] == "recording.wav" and body[:4] == b"RIFF" and body[8:12] == b"WAVE"
    info = sf.info(io.BytesIO(body))
    assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
    assert 1.5 <= info.duration <= 3.5, info.duration
    pcm, _ = sf.read(io.BytesIO(body), dtype="float32")
    assert np.sqrt(np.mean(pcm ** 2)) > 1e-3  # the fake device's beep, not silence

    answer = sent["answer"]
    assert sent["status"] == 200 and abs(answer["duration_s"] - info.duration) < 0.05
    assert sum(answer["probabilities"].values()) == pytest.approx(1.0, abs=1e-6)
    shown = browser.execute_script(SHOWN)
    assert_shows(shown, answer)
    assert abs(sum(float(v) for _, v in shown["probs"]) - 1.0) <= 0.001 * len(shown["probs"])
    assert_same_answer(answer, service_answer(base, body)[1])  # the same bytes from a script: the same answer
    assert browser.execute_script(INK)["ink"] > 0.4
    assert console_errors(browser) == []


WINDOW_ROWS = """
return [...document.querySelectorAll('#window-table tbody tr')].map(tr => [...tr.children].map(td => td.textContent));
"""


def test_a_long_upload_in_windows_shows_the_window_table(served, browser, serve_long):
    base, _ = served
    info = open_page(browser, base)
    assert browser.find_element("id", "windows-label").text == f"In windows of {info['windows']['window_s']:g} s"
    browser.find_element("id", "windows").click()
    choose(browser, serve_long, "done")
    [sent] = browser.execute_script("return window.sent")
    assert "windows=1" in sent["url"] and sent["status"] == 200
    status, _, direct = _post(base + "predict?windows=1", serve_long.read_bytes())  # a script's request
    windows = sent["answer"]["windows"]
    assert status == 200 and [w["predicted"] for w in direct["windows"]] == [w["predicted"] for w in windows]
    assert browser.execute_script(WINDOW_ROWS) == [
        [f"{w['start_s']:.2f}", f"{w['end_s']:.2f}", w["predicted"],
         *[f"{w['probabilities'][c]:.3f}" for c in info["classes"]]] for w in windows]
    assert [(w["start_s"], w["end_s"]) for w in windows] == [(0, 2), (2, 4), (4, 5)]
    assert "3 windows of 2 s every 2 s over 5.0 s: 3 scored" in browser.find_element("id", "windows-summary").text
    link = browser.find_element("id", "selections")
    assert link.get_attribute("download") == "long walk.selections.txt"
    text = browser.execute_script("return fetch(document.getElementById('selections').href).then(r => r.text())")
    assert text == sent["answer"]["selection_table"] and text.startswith("Selection\tView\tChannel\tBegin Time (s)")
    assert browser.find_element("id", "result").get_attribute("hidden") is not None  # the single answer stays hidden
    assert console_errors(browser) == []


def test_a_file_past_the_clip_limits_is_sent_in_windows_without_being_drawn(served, browser, tmp_path):
    """Over --max-upload-mb: refused before sending as a clip; In windows it goes (under the windowed limits, which
    the page states) and its window table comes back, but the page neither decodes nor draws it."""
    base, _ = served
    info = open_page(browser, base)
    limits = info["limits"]
    assert f"In windows: up to {limits['windows_max_upload_bytes'] / 2**20:.1f} MB" in \
        browser.find_element("id", "limits").text
    big = tone_clip(tmp_path / "big.wav", seconds=4.0, sr=48000, channels=2, subtype="FLOAT")  # 1.5 MB in 4 s
    assert limits["max_upload_bytes"] < big.stat().st_size < limits["windows_max_upload_bytes"]
    shown = choose(browser, big, "rejected")
    assert "per clip. Nothing was sent" in shown["error"] and browser.execute_script("return window.sent") == []
    browser.find_element("id", "windows").click()
    choose(browser, big, "done")
    [sent] = browser.execute_script("return window.sent")
    assert "windows=1" in sent["url"] and sent["status"] == 200, sent
    assert [(w["start_s"], w["end_s"]) for w in sent["answer"]["windows"]] == [(0, 2), (2, 4)]
    assert [row[:2] for row in browser.execute_script(WINDOW_ROWS)] == [["0.00", "2.00"], ["2.00", "4.00"]]
    assert browser.find_element("id", "view").get_attribute("hidden") is not None  # not decoded, not drawn
    assert browser.execute_script("return document.getElementById('plot').dataset.drawn") == "false"
    assert console_errors(browser) == []


def test_errors_are_readable_and_limits_are_checked_before_upload(served, browser, tmp_path):
    base, wav = served
    info = open_page(browser, base)
    limits = info["limits"]

    text = tmp_path / "notes.wav"  # a text file with an audio name: the service's decoder refuses it
    text.write_text("these are field notes, not a recording\n" * 40)
    status, refused = service_answer(base, text.read_bytes())
    assert status in (415, 422) and refused["error"]["type"] == "not_audio"
    shown = choose(browser, text, "error")
    [sent] = browser.execute_script("return window.sent")
    assert sent["status"] == status and sent["answer"]["error"]["type"] == "not_audio"
    assert shown["error"] == f"Not audio the service can read: {sent['answer']['error']['message']}"
    assert browser.execute_script(INK) is None  # nothing decoded: no plot is shown

    # still usable after the error; this time the file is dropped on the page
    browser.execute_script(DROP, base64.b64encode(wav.read_bytes()).decode(), wav.name)
    wait_for(browser, "return document.body.dataset.state === 'done'", timeout=120)
    shown = browser.execute_script(SHOWN)
    answer = browser.execute_script("return window.sent")[-1]["answer"]
    assert shown["error"] is None and answer["clip"] == wav.name
    assert_shows(shown, answer)

    sr = 16000  # 16-bit mono: 32 kB per second
    large = tone_clip(tmp_path / "large.wav", seconds=limits["max_upload_bytes"] / (2 * sr) + 1, sr=sr)
    assert large.stat().st_size > limits["max_upload_bytes"]
    shown = choose(browser, large, "rejected")
    assert "large.wav" in shown["error"] and "Nothing was sent" in shown["error"]
    assert f"{limits['max_upload_bytes'] / 2**20:.1f} MB" in shown["error"]

    long = tone_clip(tmp_path / "long.wav", seconds=limits["max_duration_s"] + 3, sr=8000)
    assert long.stat().st_size < limits["max_upload_bytes"]
    shown = choose(browser, long, "rejected")
    assert f"at most {limits['max_duration_s']:g} s" in shown["error"] and "Nothing was sent" in shown["error"]
    assert len(browser.execute_script("return window.sent")) == 2  # neither over-limit file made a request
    # the one console error: Chromium's note that the refused upload answered 415/422
    assert [e for e in console_errors(browser) if "/predict" not in e] == []
