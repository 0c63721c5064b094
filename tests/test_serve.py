"""``acoustic-env serve``: the real command on Ray Serve, asked over HTTP on loopback.

The model and the service are the session's (``tests/worlds.py``, shared with ``test_predict``
and ``test_serve_page``): real demo clips, the real extract job with YAMNet (seeded random
weights: no download) so that AudioSet tags come back, then ``demo.quick_model``; the service is
the CLI in a subprocess (its own local Ray, ``--port 0``, dynamic batching on), and every answer is compared with ``predict`` on the same file.
URLs are served by a real HTTP server on 127.0.0.1; the slow path of that server holds
its answer longer than the service's request timeout. The unbatched path is the same
service object hosted by uvicorn without Ray. The service is started with the README's
``acoustic-env serve`` line, and the README's curl lines are run against it as written
(URL and file substituted).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import shlex
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import soundfile as sf
from conftest import free_port, tone_clip
from worlds import (
    MAX_DURATION_S,
    MAX_UPLOAD_MB,
    MODEL_GROUPS,
    TIMEOUT_S,
    serve_readme_commands,
)

from acoustic_env.jobs.predict import predict


@pytest.fixture
def world(serve_world):
    """(directory of good clips, model, weights cache, a 16-bit WAV, file server URL): tests/worlds.py's."""
    return serve_world


def _post(url: str, body: bytes, content_type: str = "application/octet-stream", timeout: float = 120):
    req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers.get("Content-Type"), json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), json.load(e)


def _get(url: str):
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.status, r.headers.get("Content-Type"), r.read()


def _multipart(field: str, name: str, data: bytes) -> tuple[bytes, str]:
    boundary = "----acoustic-env-test-7d1f"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{name}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def _expected(files, model, cache) -> list[dict]:
    """``predict`` on the same files: what every answer must equal."""
    return predict([str(f) for f in files], str(model), weights_cache=str(cache), top_tags=3).to_pylist()


def _assert_same(answer: dict, row: dict) -> None:
    classes = list(answer["probabilities"])
    assert classes == ["urban", "natural"]
    assert np.allclose([answer["probabilities"][c] for c in classes], [row[f"prob_{c}"] for c in classes],
                       rtol=0, atol=1e-6)
    assert answer["predicted"] == row["predicted"]
    assert [t["name"] for t in answer["tags"]] == [t.rsplit(" ", 1)[0] for t in row["tags"]]
    assert [f"{t['score']:.2f}" for t in answer["tags"]] == [t.rsplit(" ", 1)[1] for t in row["tags"]]


def test_a_real_wav_upload_gets_the_probabilities_of_predict(world, service):
    clips, model, cache, wav, _ = world
    base = service[0]
    [row] = _expected([wav], model, cache)
    status, ctype, raw = _post(base + "predict", wav.read_bytes(), "audio/wav")
    assert status == 200 and ctype == "application/json", raw
    assert raw["clip"] == "upload" and raw["duration_s"] == 2.0 and raw["sample_rate"] == sf.info(wav).samplerate
    assert raw["elapsed_ms"] > 0
    _assert_same(raw, row)
    body, ctype = _multipart("file", wav.name, wav.read_bytes())
    status, _, form = _post(base + "predict?top_tags=2", body, ctype)
    assert status == 200 and form["clip"] == wav.name and len(form["tags"]) == 2
    assert form["probabilities"] == raw["probabilities"] and form["tags"] == raw["tags"][:2]


def test_the_readme_requests_run_as_written(world, service, serve_long):
    """Its curl lines against this service (URL and files substituted): the answers the README describes."""
    wav, base = world[3], service[0]
    curls = [c for c in serve_readme_commands() if c.startswith("curl ")]
    assert len(curls) == 4
    answers = []
    for command in curls:
        command = command.replace("http://127.0.0.1:8000/", base).replace(
            "recordings/park-01.wav", shlex.quote(str(wav))).replace("recordings/dawn-chorus.wav",
                                                                       shlex.quote(str(serve_long)))
        r = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        answers.append(json.loads(r.stdout))
    raw, form, info, windows = answers
    assert raw["clip"] == "upload" and form["clip"] == wav.name and len(form["tags"]) == 5
    assert raw["probabilities"] == form["probabilities"] and form["tags"][:3] == raw["tags"]
    assert info["classes"] == list(raw["probabilities"])
    assert [(w["start_s"], w["end_s"]) for w in windows["windows"]] == [(0, 2), (2, 4), (4, 5)]


def test_concurrent_uploads_are_batched_without_changing_any_answer(world, service):
    clips, model, cache, _, _ = world
    files = sorted(clips.glob("*.flac"))[:6]
    with ThreadPoolExecutor(len(files)) as pool:
        answers = list(pool.map(lambda f: _post(service[0] + "predict", f.read_bytes()), files))
    assert [a[0] for a in answers] == [200] * len(files)
    for (_, _, answer), row in zip(answers, _expected(files, model, cache)):
        _assert_same(answer, row)


def test_an_allowed_url_is_fetched_and_scored_like_the_file(world, service):
    clips, model, cache, wav, files = world
    flac = sorted(clips.glob("*.flac"))[1]
    status, _, answer = _post(service[0] + "predict", json.dumps({"url": f"{files}ok/{flac.name}"}).encode(),
                              "application/json")
    assert status == 200 and answer["clip"] == flac.name, answer
    _assert_same(answer, _expected([flac], model, cache)[0])
    url = json.dumps({"url": f"{files}ok/{flac.name}"}).encode()
    status, _, windowed = _post(service[0] + "predict?windows=1", url, "application/json")  # into a temporary file
    assert status == 200 and windowed["clip"] == flac.name, windowed
    assert [(w["start_s"], w["end_s"]) for w in windowed["windows"]] == [(0, 2)]
    assert windowed["windows"][0]["predicted"] == answer["predicted"]
    for escape in ("..", "%2E%2e"):  # starts with the prefix, but the server would resolve it outside it
        status, _, answer = _post(service[0] + "predict", json.dumps(
            {"url": f"{files}ok/{escape}/ok/{flac.name}"}).encode(), "application/json")
        assert (status, answer["error"]["type"]) == (403, "url_not_allowed"), answer


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    long_wav = tone_clip(root / "long.wav", seconds=MAX_DURATION_S + 2)
    truncated = tone_clip(root / "cut.wav", seconds=2).read_bytes()[:20000]
    big = np.random.default_rng(0).standard_normal(int(MAX_UPLOAD_MB * 2**20 / 4) + 16000).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, big, 16000, format="WAV", subtype="FLOAT")
    return {"long": long_wav.read_bytes(), "truncated": truncated, "big": buf.getvalue()}


BAD = [  # (name, path and query, body, content type, status, error type, words in the message)
    ("text", "predict", b"just some text, not audio\n" * 20, "text/plain", 415, "not_audio", "not a recognised"),
    ("truncated", "predict", "truncated", "audio/wav", 415, "not_audio", "truncated"),
    ("too large", "predict", "big", "audio/wav", 413, "too_large", "max_upload_bytes"),
    ("too long", "predict", "long", "audio/wav", 422, "too_long", f"max_duration_s = {MAX_DURATION_S:g}"),
    ("url not allowed", "predict", b'{"url": "https://example.com/a.wav"}', "application/json", 403,
     "url_not_allowed", "example.com"),
    ("malformed json", "predict", b'{"url": ', "application/json", 400, "bad_request", "JSON"),
    ("json without url", "predict", b'["x"]', "application/json", 400, "bad_request", "JSON"),
    ("empty body", "predict", b"", "audio/wav", 400, "bad_request", "no body"),
    ("form without file", "predict", "form", None, 400, "bad_request", '"file"'),
    ("bad top_tags", "predict?top_tags=many", "long", "audio/wav", 400, "bad_request", "top_tags"),
    ("unknown endpoint", "classify", b"x", "audio/wav", 400, "bad_request", "no such endpoint"),
]


@pytest.mark.parametrize("name,path,body,ctype,status,error_type,words", BAD, ids=[b[0] for b in BAD])
def test_a_bad_request_gets_its_json_error_and_the_service_answers_after_it(world, service, bad_inputs, name, path,
                                                                             body, ctype, status, error_type, words):
    base = service[0]
    if body == "form":
        body, ctype = _multipart("audio", "x.wav", bad_inputs["long"])
    elif isinstance(body, str):
        body = bad_inputs[body]
    got, got_ctype, answer = _post(base + path, body, ctype)
    assert (got, got_ctype) == (status, "application/json"), answer
    assert answer["error"]["type"] == error_type and words in answer["error"]["message"], answer
    assert "\n" not in answer["error"]["message"] and "Traceback" not in answer["error"]["message"]
    assert _get(base + "healthz")[2] == b'{"status":"ok"}'
    wav = world[3]
    assert _post(base + "predict", wav.read_bytes())[0] == 200


def test_a_slow_url_times_out_as_json_while_health_still_answers(world, service):
    base, files = service[0], world[4]
    out: dict = {}
    t0 = time.monotonic()
    slow = threading.Thread(target=lambda: out.update(r=_post(base + "predict", json.dumps(
        {"url": f"{files}slow/{world[3].name}"}).encode(), "application/json")))
    slow.start()
    time.sleep(1)
    h0 = time.monotonic()
    assert _get(base + "healthz")[0] == 200
    assert time.monotonic() - h0 < 3  # the pending request does not block the replica's event loop
    slow.join(60)
    status, _, answer = out["r"]
    assert (status, answer["error"]["type"]) == (504, "timeout"), answer
    assert TIMEOUT_S - 0.5 <= time.monotonic() - t0 < 2 * TIMEOUT_S
    assert f"request_timeout_s = {TIMEOUT_S:g}" in answer["error"]["message"]


def test_windows_of_an_upload_are_scored_as_predict_scores_the_clip(world, service, serve_long):
    clips, model, cache, wav, _ = world
    status, _, answer = _post(service[0] + "predict?windows=1&top_tags=3", serve_long.read_bytes(), "audio/wav")
    assert status == 200, answer
    assert (answer["window_s"], answer["hop_s"], answer["duration_s"]) == (2.0, 2.0, MAX_DURATION_S)
    assert [(w["start_s"], w["end_s"]) for w in answer["windows"]] == [(0, 2), (2, 4), (4, 5)]
    [row] = _expected([wav], model, cache)
    for w in answer["windows"][:2]:  # each the whole WAV: predict's probabilities for it
        assert w["predicted"] == row["predicted"]
        assert np.allclose([w["probabilities"][c] for c in ("urban", "natural")],
                           [row[f"prob_{c}"] for c in ("urban", "natural")], rtol=0, atol=1e-6)
    assert answer["summary"]["windows"] == answer["summary"]["scored"] == 3
    assert answer["selection_table"].startswith("Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)")


def test_info_describes_the_model_and_the_limits_and_the_page_is_html(world, service):
    base, files = service[0], world[4]
    info = json.loads(_get(base + "info")[2])
    assert info["classes"] == ["urban", "natural"] and info["task"] == "urban_natural"
    assert info["kind"] == "single_label" and info["groups"] == MODEL_GROUPS and info["tagger"] == "yamnet"
    assert info["limits"] == {"max_upload_bytes": int(MAX_UPLOAD_MB * 2**20), "max_duration_s": MAX_DURATION_S,
                              "request_timeout_s": TIMEOUT_S, "windows_max_upload_bytes": 2**30,
                              "windows_max_duration_s": 4 * 3600.0, "windows_timeout_s": 3600.0}  # the defaults
    assert info["allowed_url_prefixes"] == [f"{files}ok/", f"{files}slow/"]
    assert info["windows"] == {"window_s": 2.0, "hop_s": 2.0}  # the training clips' length
    status, ctype, page = _get(base)
    assert status == 200 and ctype == "text/html; charset=utf-8" and page.lower().startswith(b"<!doctype html")


@contextlib.contextmanager
def _without_ray(config: dict):
    """The service object built from ``config`` and hosted by uvicorn (no Serve, no batching): its base URL."""
    import uvicorn
    from starlette.requests import Request

    from acoustic_env.config import ServeConfig, from_dict
    from acoustic_env.web.serve_handler import Service

    service = Service(from_dict(ServeConfig, config).to_dict())
    assert service.scorer == service._score_one

    async def app(scope, receive, send):
        response = await service.handle(Request(scope, receive))
        await response(scope, receive, send)

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.time() + 30
        while not server.started:
            assert time.time() < deadline
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.should_exit = True
        thread.join(10)


def test_the_service_without_ray_scores_one_request_as_predict_does(world):
    """The same service object under uvicorn (no Serve, no batching): the unbatched path."""
    clips, model, cache, wav, _ = world
    with _without_ray({"model": str(model), "weights_cache": str(cache)}) as base:
        status, _, answer = _post(base + "predict", wav.read_bytes())
    assert status == 200, answer
    _assert_same(answer, _expected([wav], model, cache)[0])


def test_the_service_scores_with_a_forest_as_predict_does(world, clips_model, tmp_path):
    """A random forest as the saved model (skops' format: scikit-learn's own estimator, read with trusted types
    only): the service loads it and answers an upload with the probabilities ``predict`` gives the same file."""
    from test_model_artifact import save_zoo_model

    from acoustic_env.vocabulary.tasks import load_task

    _, model, cache, wav, _ = world
    save_zoo_model(str(clips_model[1]), load_task("urban_natural"), "forest", MODEL_GROUPS, str(tmp_path / "forest"),
                   include_random_weights=True)
    with _without_ray({"model": str(tmp_path / "forest"), "weights_cache": str(cache)}) as base:
        status, _, answer = _post(base + "predict", wav.read_bytes())
    assert status == 200, answer
    expected = _expected([wav], tmp_path / "forest", cache)[0]
    _assert_same(answer, expected)
    assert expected["prob_urban"] != _expected([wav], model, cache)[0]["prob_urban"]  # not the world's own model


def _long_walk(wav, seconds: int) -> bytes:
    """``seconds`` (even) of the serve world's 2-s WAV end to end, as WAV bytes: a 2-s window at an even second
    is the WAV."""
    audio, sr = sf.read(wav, dtype="int16")
    buf = io.BytesIO()
    sf.write(buf, np.concatenate([audio] * (seconds * sr // len(audio))), sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def test_a_five_minute_upload_in_windows_is_scored_past_the_clip_limits(world, service):
    """Five minutes (over twice --max-upload-mb, 60 times --max-duration-s) POSTed raw and as the page's form: a
    window every minute, each the WAV itself, so each gets predict's answer for the WAV; the times are exact."""
    clips, model, cache, wav, _ = world
    base, body = service[0], _long_walk(wav, 300)
    assert len(body) > 2 * MAX_UPLOAD_MB * 2**20  # as one clip it would be refused unread
    [row] = _expected([wav], model, cache)
    form, ctype = _multipart("file", "long walk.wav", body)
    for data, content_type, name in ((body, "audio/wav", "upload"), (form, ctype, "long walk.wav")):
        status, _, answer = _post(base + "predict?windows=1&window_s=2&hop_s=60", data, content_type)
        assert status == 200, answer
        assert (answer["clip"], answer["duration_s"], answer["window_s"], answer["hop_s"]) == (name, 300.0, 2.0, 60.0)
        assert [(w["start_s"], w["end_s"]) for w in answer["windows"]] == [(60.0 * k, 60.0 * k + 2) for k in range(5)]
        for w in answer["windows"]:
            assert w["predicted"] == row["predicted"] and w["error"] is None
            assert np.allclose([w["probabilities"][c] for c in ("urban", "natural")],
                               [row[f"prob_{c}"] for c in ("urban", "natural")], rtol=0, atol=1e-6)
        assert answer["summary"]["windows"] == answer["summary"]["scored"] == 5
        assert len(answer["selection_table"].splitlines()) == 6


def test_a_windowed_upload_over_the_windowed_limits_gets_its_json_error(world):
    """The windowed limits are the service's own (--windows-max-upload-mb, --windows-max-duration-s): past them a
    JSON 413 or 422 naming the limit, and the service answers the next request."""
    clips, model, cache, wav, _ = world
    long, longer = _long_walk(wav, 40), _long_walk(wav, 60)
    limit = len(long) + 1000  # 40 s fits, 60 s does not (and is drained: under twice the limit)
    config = {"model": str(model), "weights_cache": str(cache), "max_upload_mb": 0.25, "max_duration_s": 5.0,
              "windows_max_upload_mb": limit / 2**20, "windows_max_duration_s": 30.0}
    with _without_ray(config) as base:
        info = json.loads(_get(base + "info")[2])["limits"]
        assert (info["windows_max_upload_bytes"], info["windows_max_duration_s"]) == (limit, 30.0)
        for data, status, error_type, words in (
                (long, 422, "too_long", "lasts 40.0 s; this service takes at most windows_max_duration_s = 30 s"),
                (longer, 413, "too_large", f"larger than windows_max_upload_bytes = {limit}"),
                (b"not audio at all\n" * 1000, 415, "not_audio", "libsndfile cannot read it")):
            got, ctype, answer = _post(base + "predict?windows=1", data, "audio/wav")
            assert (got, ctype, answer["error"]["type"]) == (status, "application/json", error_type), answer
            assert words in answer["error"]["message"], answer
        status, _, answer = _post(base + "predict?windows=1&window_s=2&hop_s=10", _long_walk(wav, 20))
        assert status == 200 and [(w["start_s"], w["end_s"]) for w in answer["windows"]] == [(0, 2), (10, 12)], answer


@pytest.mark.parametrize("args,words", [
    (["--model", "/no/such/model"], "model: no such file or directory: /no/such/model"),
    (["--model", "{model}", "--replica-cpus", "0"], "replica_cpus: must be"),
    (["--model", "{model}", "--allowed-url-prefixes", "file:///etc/"], "allowed_url_prefixes: must be http(s)"),
    (["--model", "{clips}"], "model: no model artifact"),
])
def test_a_bad_flag_or_model_is_one_line_before_ray(world, args, words):
    clips, model, *_ = world
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "acoustic_env.cli", "serve",
                        *[a.format(model=model, clips=clips) for a in args]],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and words in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and r.stdout == ""
    assert time.monotonic() - t0 < 60  # no Ray start


def test_an_oversized_body_is_read_to_its_end_within_the_drain_and_no_further():
    """A client still sending when the 413 goes out sees a broken pipe, not the answer (CI, 2026-11-23)."""
    from acoustic_env.web.serve_handler import ServiceError, read_body

    def run(n_chunks: int, limit: int, drain: int) -> tuple[int, Exception | bytes]:
        consumed = 0

        async def chunks():
            nonlocal consumed
            for _ in range(n_chunks):
                consumed += 1
                yield b"x" * 10

        try:
            got: Exception | bytes = asyncio.run(read_body(chunks(), limit, drain))
        except ServiceError as exc:
            got = exc
        return consumed, got

    assert run(3, limit=30, drain=30) == (3, b"x" * 30)
    consumed, got = run(5, limit=30, drain=30)
    assert consumed == 5 and isinstance(got, ServiceError) and got.error_type == "too_large"
    consumed, got = run(100, limit=30, drain=30)
    assert consumed == 7 and isinstance(got, ServiceError)
