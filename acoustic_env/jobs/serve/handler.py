"""One recognition request, without Ray: audio bytes (or an allowed URL) in, a JSON-ready dict out.

The service (:mod:`acoustic_env.distributed.serve`) only routes HTTP to these
functions, so everything a request can get wrong is decided here and testable without
a cluster:

* :func:`read_upload` takes the request body in one of three shapes (raw audio bytes,
  ``multipart/form-data`` with a ``file`` field, or JSON ``{"url": ...}``), never more
  than ``max_upload_bytes`` of it, and keeps it in memory: python-multipart is told to
  keep a file part of that size in memory rather than spool it to disk.
* :meth:`Recognizer.decode_upload` is :func:`acoustic_env.audio.decode.decode_bytes`, and
  :meth:`Recognizer.score` is :func:`acoustic_env.audio.featurize.batch_outputs` and the
  model's own ``predict_proba``, with the decode and feature parameters of the model's
  training table (:func:`acoustic_env.jobs.predict.extraction_params`): the functions
  ``acoustic-env predict`` runs on a file, so a clip gets the same probabilities either way.
* ``?windows=1`` (with ``window_s`` and ``hop_s``, the ``WindowParams`` of ``predict
  --windows``) scores the upload in windows (:meth:`Recognizer.windows`,
  :mod:`acoustic_env.jobs.windows`): one entry per window with its times, the summary,
  and the Raven selection table as text; the whole recording stays within
  ``max_duration_s`` and ``max_upload_bytes``, and its decoded audio is never held whole.
* Every failure is a :class:`ServiceError`: an HTTP status and one of the documented
  error types, answered as ``{"error": {"type": ..., "message": ...}}``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import numpy as np

from acoustic_env.audio.decode import DecodedClip, decode_bytes, read_bytes
from acoustic_env.audio.featurize import clip_note, load_nets
from acoustic_env.audio.windows import Recording
from acoustic_env.config import ConfigError, ServeConfig, WindowParams, from_dict
from acoustic_env.errors import ClipError
from acoustic_env.jobs.predict import extraction_params, rows_table
from acoustic_env.jobs.window_outputs import raven_table
from acoustic_env.jobs.windows import TIMES, recording_rows, score_clips, summarize, window_lengths
from acoustic_env.learn.artifact import load_model, top_scores
from acoustic_env.storage import redact

log = logging.getLogger(__name__)
PAGE = Path(__file__).with_name("page.html")
PLACEHOLDER = b"<!doctype html><title>acoustic-env</title><p>POST audio to /predict; see /info.</p>\n"

#: error type -> HTTP status (the README's table of the service's errors).
STATUS = {"not_audio": 415, "too_large": 413, "too_long": 422, "url_not_allowed": 403, "bad_request": 400,
          "timeout": 504, "internal": 500}
#: decode error types -> the service's error type: a file that is not (or no longer) readable audio is
#: ``not_audio``; one the decoder reads but refuses (too short, 12 channels) is a bad request.
_DECODE = {"not_audio": "not_audio", "corrupt": "not_audio", "truncated": "not_audio", "empty_file": "not_audio",
           "nan_samples": "not_audio", "too_large": "too_large", "read_timeout": "timeout"}


class ServiceError(Exception):
    """A request the service answers with an error: its type (see :data:`STATUS`) and one line."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = redact(" ".join(str(message).split()))  # one line, whatever the cause said; no secret

    @property
    def status(self) -> int:
        return STATUS[self.error_type]

    def body(self) -> dict[str, Any]:
        return {"error": {"type": self.error_type, "message": self.message}}

    @classmethod
    def from_clip(cls, exc: ClipError) -> ServiceError:
        return cls(_DECODE.get(exc.error_type, "bad_request"), f"{exc.error_type}: {exc.message}")


@dataclass(frozen=True)
class Limits:
    """What one request may cost; ``/info`` reports them so that a client can check before sending."""

    max_upload_bytes: int
    max_duration_s: float
    request_timeout_s: float
    allowed_url_prefixes: tuple[str, ...] = field(default=())

    @classmethod
    def of(cls, cfg: ServeConfig) -> Limits:
        return cls(int(cfg.max_upload_mb * 2**20), cfg.max_duration_s, cfg.request_timeout_s,
                   tuple(cfg.allowed_url_prefixes))


@dataclass(frozen=True)
class Upload:
    """A request's audio: its bytes (in memory only) and the name the answer gives it."""

    data: bytes
    name: str
    top_tags: int = 3
    window: WindowParams = field(default_factory=WindowParams)


async def read_body(chunks: AsyncIterator[bytes], limit: int, drain: int = 0) -> bytes:
    """The body from an async iterator of byte chunks, stopping with too_large past ``limit`` bytes.

    Past the limit up to ``drain`` more bytes are read and discarded before the error: a
    server that answers 413 while the client is still sending closes the socket under it,
    and most clients (urllib, requests) then report a broken pipe instead of the 413.
    """
    parts, size = [], 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit + drain:
            break
        if size <= limit:
            parts.append(chunk)
    if size > limit:
        raise ServiceError("too_large", f"the upload is larger than max_upload_bytes = {limit}")
    return b"".join(parts)


def parse_upload(body: bytes, content_type: str, query: dict[str, str], limits: Limits,
                 fetch: Callable[[str], bytes]) -> Upload:
    """The audio of a POST /predict from its body and Content-Type (see the module docstring)."""
    top_tags, window = _top_tags(query.get("top_tags")), _window(query)
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "application/json":
        try:
            url = json.loads(body)["url"]
        except (ValueError, KeyError, TypeError):
            raise ServiceError("bad_request", 'a JSON body must be an object {"url": "https://..."}') from None
        if not isinstance(url, str) or not url:
            raise ServiceError("bad_request", '"url" must be a non-empty string')
        if not allowed_url(url, limits.allowed_url_prefixes):
            allowed = ", ".join(limits.allowed_url_prefixes) or "none: the service was started without " \
                                                                 "--allowed-url-prefixes"
            raise ServiceError("url_not_allowed", f"{url} does not start with an allowed prefix ({allowed}), "
                                                  "or has . or .. path segments")
        return Upload(fetch(url), url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1] or url, top_tags, window)
    if media == "multipart/form-data":
        data, name = _multipart_file(body, content_type, limits.max_upload_bytes)
        return Upload(data, name, top_tags, window)
    if not body:
        raise ServiceError("bad_request", "the request has no body: POST the audio file's bytes, a multipart "
                                          'form with a "file" field, or JSON {"url": ...}')
    return Upload(body, "upload", top_tags, window)


def allowed_url(url: str, prefixes: Sequence[str]) -> bool:
    """``url`` starts with one of ``prefixes`` and has no dot segment (``/ok/../secret`` would leave the prefix).

    Dot segments are looked for after percent-decoding, as a server resolves ``%2e%2e`` too.
    """
    path = unquote(urlsplit(url).path)
    return not any(seg in (".", "..") for seg in path.split("/")) and any(url.startswith(p) for p in prefixes)


def _top_tags(value: str | None) -> int:
    if value is None:
        return 3
    try:
        k = int(value)
    except ValueError:
        k = -1
    if not 0 <= k <= 50:
        raise ServiceError("bad_request", f"top_tags: must be an integer in [0, 50], got {value!r}")
    return k


def _window(query: dict[str, str]) -> WindowParams:
    """``windows``, ``window_s`` and ``hop_s`` of the query, checked as ``predict --windows`` checks its flags."""
    on = query.get("windows", "0").lower()
    if on not in ("0", "1", "true", "false"):
        raise ServiceError("bad_request", f"windows: must be 1 or 0, got {query['windows']!r}")
    try:
        return from_dict(WindowParams, {"windows": on in ("1", "true"),
                                        **{k: query[k] for k in ("window_s", "hop_s") if k in query}})
    except ConfigError as exc:
        raise ServiceError("bad_request", str(exc)) from None


def _multipart_file(body: bytes, content_type: str, limit: int) -> tuple[bytes, str]:
    """The ``file`` field of a multipart form, held in memory (python-multipart spools big parts to disk otherwise)."""
    from python_multipart.exceptions import FormParserError
    from python_multipart.multipart import FormParser, parse_options_header

    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise ServiceError("bad_request", "multipart/form-data without a boundary")
    files: list[Any] = []
    parser = FormParser("multipart/form-data", on_field=None, on_file=files.append, boundary=boundary,
                        config={"MAX_MEMORY_FILE_SIZE": limit + 1, "MAX_BODY_SIZE": limit})
    try:
        parser.write(body)
        parser.finalize()
    except (FormParserError, ValueError) as exc:
        raise ServiceError("bad_request", f"malformed multipart form: {exc}") from None
    part = next((f for f in files if f.field_name == b"file"), None)
    if part is None:
        raise ServiceError("bad_request", 'the multipart form has no "file" field')
    part.file_object.seek(0)
    name = (part.file_name or b"upload").decode("utf-8", "replace")
    return part.file_object.read(), name


class Recognizer:
    """A loaded model with its embedders: decodes and scores clips as ``predict`` does.

    Built once per replica: loading the embedders is the slow part (seconds), and a
    request then costs its decode, features and forward passes only.
    """

    def __init__(self, model: str, limits: Limits, *, weights_cache: str | None = None, device: str = "cpu") -> None:
        self.model = load_model(model)
        self.limits = limits
        decode, self.features, _ = extraction_params(self.model.meta)
        # The training table's decode parameters; only the read limits are the service's own.
        self.decode = replace(decode, max_bytes=limits.max_upload_bytes, read_timeout_s=limits.request_timeout_s)
        embedders, taggers, self.columns = self.model.feature_plan()
        self.tagger = taggers[0] if taggers else None
        self.nets = load_nets(embedders, weights_cache, device)
        self.window_s, self.hop_s = window_lengths(WindowParams(windows=True), self.model.meta, self.decode)

    def info(self) -> dict[str, Any]:
        """What ``GET /info`` answers: the classes, the task, the inputs, the sample rate and the limits."""
        task = self.model.meta["task"]
        return {"classes": self.model.class_names, "task": task.get("name"), "kind": self.model.kind,
                "groups": self.model.groups, "tagger": self.tagger.name if self.tagger else None,
                "sample_rate": self.decode.sample_rate,
                "limits": {"max_upload_bytes": self.limits.max_upload_bytes,
                           "max_duration_s": self.limits.max_duration_s,
                           "request_timeout_s": self.limits.request_timeout_s},
                "windows": {"window_s": self.window_s, "hop_s": self.hop_s},
                "allowed_url_prefixes": list(self.limits.allowed_url_prefixes)}

    def fetch(self, url: str) -> bytes:
        """An allowed URL's bytes, read as the extract job reads a clip (same size and time limits)."""
        try:
            return read_bytes(url, self.decode)
        except ClipError as exc:
            err = ServiceError.from_clip(exc)
            raise ServiceError(err.error_type, f"fetching {url}: {err.message}") from None

    def decode_upload(self, upload: Upload) -> DecodedClip:
        """The upload decoded with the training table's parameters; too_long past ``max_duration_s``."""
        try:
            clip = decode_bytes(upload.data, self.decode, uri=upload.name)
        except ClipError as exc:
            raise ServiceError.from_clip(exc) from None
        if clip.orig_duration_s > self.limits.max_duration_s:
            raise ServiceError("too_long", f"the recording lasts {clip.orig_duration_s:.1f} s; this service takes "
                                           f"at most max_duration_s = {self.limits.max_duration_s:g} s")
        return clip

    def score(self, clips: Sequence[DecodedClip], top_tags: Sequence[int]) -> list[dict[str, Any]]:
        """Probabilities (and tags) for decoded clips, in one pass of each embedder and of the model."""
        table, vectors = score_clips(self.model, clips, self.columns, self.nets, self.decode, self.features)
        tags: list[Any] = [None] * len(clips)
        if self.tagger is not None:
            ranked = top_scores(vectors[self.tagger.scores_column], self.tagger.score_names or (),
                                max(top_tags, default=0))
            tags = [None if r is None else [{"name": n, "score": s} for n, s in r[:k]] for r, k in zip(ranked, top_tags)]
        results = []
        for i, clip in enumerate(clips):
            probabilities = {c: table[f"prob_{c}"][i] for c in self.model.class_names}
            if not clip.is_silent and not all(np.isfinite(list(probabilities.values()))):
                raise ServiceError("internal", "the features of this clip are not finite; the model cannot score it")
            scored_s = len(clip.audio) / self.decode.sample_rate
            results.append({"duration_s": round(scored_s, 3), "sample_rate": int(clip.orig_sample_rate),
                            "predicted": None if clip.is_silent else table["predicted"][i],
                            "probabilities": None if clip.is_silent else probabilities, "tags": tags[i],
                            "silent": clip.is_silent,
                            "note": clip_note(clip.is_silent, clip.orig_duration_s, scored_s, self.decode)})
        return results

    def windows(self, upload: Upload) -> dict[str, Any]:
        """The upload scored in windows: each window's times and probabilities, the summary, the Raven table.

        Read window by window from the bytes in memory (:class:`Recording`), ``window_batch``
        windows decoded at a time; too_long past ``max_duration_s`` before any is scored.
        """
        window_s, hop_s = window_lengths(upload.window, self.model.meta, self.decode)
        base = {"clip_id": upload.name, "uri": upload.name}
        try:
            with Recording(upload.data, self.decode) as rec:
                if rec.duration_s > self.limits.max_duration_s:
                    raise ServiceError("too_long", f"the recording lasts {rec.duration_s:.1f} s; this service takes "
                                                   f"at most max_duration_s = {self.limits.max_duration_s:g} s")
                rows = list(recording_rows(self.model, rec.windows(window_s, hop_s), base,
                                           columns={g: self.columns[g] for g in self.model.groups}, nets=self.nets,
                                           decode=self.decode, features=self.features,
                                           batch=upload.window.window_batch))
                facts, sample_rate = {**base, "duration_s": rec.duration_s, "error": None}, rec.sample_rate
        except ClipError as exc:
            raise ServiceError.from_clip(exc) from None
        table = rows_table(self.model, rows, TIMES)
        [summary] = summarize(table, [facts], self.model.class_names, self.model.kind).to_pylist()
        return {"duration_s": round(facts["duration_s"], 3), "sample_rate": sample_rate,
                "window_s": window_s, "hop_s": hop_s,
                "windows": [{"start_s": r["start_s"], "end_s": r["end_s"], "predicted": r["predicted"],
                             "probabilities": self._probabilities(r), "error": r["error"], "note": r["note"]}
                            for r in table.to_pylist()],
                "summary": {k: v for k, v in summary.items() if k not in ("clip_id", "uri", "error")},
                "selection_table": raven_table(table.to_pylist())}

    def _probabilities(self, row: dict[str, Any]) -> dict[str, float] | None:
        """A window row's probabilities by class; None when it has none (silent, failed, features not finite)."""
        probs = {c: row[f"prob_{c}"] for c in self.model.class_names}
        return probs if all(p is not None and np.isfinite(p) for p in probs.values()) else None


def answer(upload: Upload, result: dict[str, Any], t0: float) -> dict[str, Any]:
    """The 200 body: the clip's name first, the time the service spent on it last."""
    return {"clip": upload.name, **result, "elapsed_ms": round((time.perf_counter() - t0) * 1000, 2)}


def page() -> bytes:
    """The browser page (``page.html`` beside this module), or a one-line placeholder until it exists."""
    try:
        return PAGE.read_bytes()
    except FileNotFoundError:
        return PLACEHOLDER


#: Scores decoded clips: (clip, top_tags) -> the result dict of :meth:`Recognizer.score`.
Scorer = Callable[[DecodedClip, int], Awaitable[dict[str, Any]]]


class Service:
    """The HTTP API on Starlette requests: ``GET /``, ``/info``, ``/healthz`` and ``POST /predict``.

    Whoever hosts it (a Ray Serve replica) calls :meth:`handle` per request and may
    replace :attr:`scorer` by a batching one; nothing here knows about Ray. The
    blocking steps (decoding, the forward passes) run in a worker thread, so the event
    loop keeps reading other requests and answering ``/healthz``; the request timeout
    is an ``asyncio`` deadline answered as JSON 504 (a thread cannot be interrupted, so
    a decode or forward pass already running finishes, unanswered, in the background).
    """

    def __init__(self, config: dict[str, Any], device: str = "cpu") -> None:
        cfg = from_dict(ServeConfig, config)
        self.limits = Limits.of(cfg)
        self.recognizer = Recognizer(cfg.model, self.limits, weights_cache=cfg.weights_cache, device=device)
        self.scorer: Scorer = self._score_one

    async def _score_one(self, clip: DecodedClip, top_tags: int) -> dict[str, Any]:
        [result] = await asyncio.to_thread(self.recognizer.score, [clip], [top_tags])
        return result

    async def handle(self, request: Any) -> Any:
        """One Starlette request → one Starlette response (JSON, or the page)."""
        from starlette.responses import JSONResponse, Response

        path, method = request.url.path.rstrip("/") or "/", request.method
        try:
            if (method, path) == ("GET", "/"):
                return Response(page(), media_type="text/html; charset=utf-8")
            if (method, path) == ("GET", "/info"):
                return JSONResponse(self.recognizer.info())
            if (method, path) == ("GET", "/healthz"):
                return JSONResponse({"status": "ok"})
            if (method, path) == ("POST", "/predict"):
                return JSONResponse(await self._predict(request))
            known = path in ("/", "/info", "/healthz", "/predict")
            raise ServiceError("bad_request", f"{method} {path}: " + (
                "wrong method" if known else "no such endpoint (GET /, /info, /healthz; POST /predict)"))
        except ServiceError as exc:
            return JSONResponse(exc.body(), status_code=exc.status)
        except Exception as exc:  # noqa: BLE001 - one failed request is one JSON 500; the service stays up
            log.exception("request failed")
            err = ServiceError("internal", f"{type(exc).__name__}: {exc}")
            return JSONResponse(err.body(), status_code=err.status)

    async def _predict(self, request: Any) -> dict[str, Any]:
        try:
            return await asyncio.wait_for(self._recognize(request), self.limits.request_timeout_s)
        except TimeoutError:
            raise ServiceError("timeout", f"not answered within request_timeout_s = "
                                          f"{self.limits.request_timeout_s:g} s") from None

    async def _recognize(self, request: Any) -> dict[str, Any]:
        t0 = time.perf_counter()
        # An upload up to twice the limit is read to its end (and dropped) so the client can
        # read the 413; a larger one is refused from its Content-Length, unread.
        limit = self.limits.max_upload_bytes
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > 2 * limit:
            raise ServiceError("too_large", f"the upload ({declared} bytes) is larger than max_upload_bytes = {limit}")
        body = await read_body(request.stream(), limit, drain=limit)
        upload = await asyncio.to_thread(parse_upload, body, request.headers.get("content-type", ""),
                                         dict(request.query_params), self.limits, self.recognizer.fetch)
        if upload.window.windows:
            return answer(upload, await asyncio.to_thread(self.recognizer.windows, upload), t0)
        clip = await asyncio.to_thread(self.recognizer.decode_upload, upload)
        return answer(upload, await self.scorer(clip, upload.top_tags), t0)
