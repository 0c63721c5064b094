"""One recognition request, without Ray: audio bytes (or an allowed URL) in, a JSON-ready dict out.

The service (:mod:`acoustic_env.distributed.serve`) only routes HTTP to these
functions, so everything a request can get wrong is decided here and testable without
a cluster:

* :func:`parse_upload` takes the request body in one of three shapes (raw audio bytes,
  ``multipart/form-data`` with a ``file`` field, or JSON ``{"url": ...}``), never more
  than ``max_upload_bytes`` of it (:func:`read_body`), and keeps it in memory:
  python-multipart is told to keep a file part of that size in memory rather than spool
  it to disk.
* :meth:`Recognizer.decode_upload` is :func:`acoustic_env.audio.decode.decode_bytes`, and
  :meth:`Recognizer.score` is :func:`acoustic_env.audio.featurize.batch_outputs` and the
  model's own ``predict_proba``, with the decode and feature parameters of the model's
  training table (:meth:`acoustic_env.learn.artifact.Model.extraction_params`): the functions
  ``acoustic-env predict`` runs on a file, so a clip gets the same probabilities either way.
* ``?windows=1`` (with ``window_s`` and ``hop_s``, the ``WindowParams`` of ``predict
  --windows``) scores the upload in windows (:meth:`Recognizer.windows`,
  :mod:`acoustic_env.jobs.windows`): one entry per window with its times, the summary,
  and the Raven selection table as text. Such a request has its own, larger limits
  (``windows_max_upload_bytes``, ``windows_max_duration_s``, ``windows_timeout_s``): an
  hour of field recording is hundreds of MB, so its body (or its URL's) is streamed into
  a temporary file (:func:`spool_body`: in memory up to ``max_upload_bytes``, on disk past
  it, deleted when answered) and its windows are read from that file one batch at a
  time, as ``predict --windows`` reads a file: neither the upload nor its decoded audio
  is ever held whole, and a request that times out stops scoring at its next window.
* Every failure is a :class:`ServiceError`: an HTTP status and one of the documented
  error types, answered as ``{"error": {"type": ..., "message": ...}}``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import posixpath
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import unquote, urlsplit

import numpy as np

from acoustic_env.audio.decode import CHUNK, DecodedClip, copy_clip, decode_bytes, read_bytes
from acoustic_env.audio.featurize import clip_note, load_nets
from acoustic_env.audio.windows import Recording, Window
from acoustic_env.config import ConfigError, ServeConfig, WindowParams, from_dict
from acoustic_env.errors import ClipError
from acoustic_env.jobs.predict import rows_table
from acoustic_env.audio.selections import raven_table
from acoustic_env.jobs.windows import TIMES, recording_rows, score_clips, summarize, window_lengths
from acoustic_env.learn.artifact import load_model, top_scores
from acoustic_env.storage import redact

log = logging.getLogger(__name__)
PAGE = Path(__file__).with_name("serve_page.html")

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
    """What one request may cost; ``/info`` reports them so that a client can check before sending.

    A ``?windows=1`` request has its own size, duration and time limits (the ``windows_`` ones).
    """

    max_upload_bytes: int
    max_duration_s: float
    request_timeout_s: float
    windows_max_upload_bytes: int
    windows_max_duration_s: float
    windows_timeout_s: float
    allowed_url_prefixes: tuple[str, ...] = field(default=())

    @classmethod
    def of(cls, cfg: ServeConfig) -> Limits:
        return cls(int(cfg.max_upload_mb * 2**20), cfg.max_duration_s, cfg.request_timeout_s,
                   int(cfg.windows_max_upload_mb * 2**20), cfg.windows_max_duration_s, cfg.windows_timeout_s,
                   tuple(cfg.allowed_url_prefixes))

    def upload_bytes(self, windows: bool) -> tuple[int, str]:
        """(the most bytes a request may send or fetch, the limit's name) for a windowed request or a clip."""
        return ((self.windows_max_upload_bytes, "windows_max_upload_bytes") if windows
                else (self.max_upload_bytes, "max_upload_bytes"))

    def timeout(self, windows: bool) -> tuple[float, str]:
        """(the seconds a request has to be answered, the limit's name) for a windowed request or a clip."""
        return (self.windows_timeout_s, "windows_timeout_s") if windows else (self.request_timeout_s,
                                                                               "request_timeout_s")


@dataclass(frozen=True)
class Upload:
    """A request's audio and the name the answer gives it: its bytes in memory (a clip), or for ``?windows=1``
    an open binary file holding them (:func:`spool_body`; whoever made the Upload closes it)."""

    data: bytes | BinaryIO
    name: str
    top_tags: int = 3
    window: WindowParams = field(default_factory=WindowParams)


async def _within(chunks: AsyncIterator[bytes], limit: int, drain: int, name: str) -> AsyncIterator[bytes]:
    """The body's chunks up to ``limit`` bytes; too_large past it, once the drain is read (see :func:`read_body`)."""
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit + drain:
            break
        if size <= limit:
            yield chunk
    if size > limit:
        raise ServiceError("too_large", f"the upload is larger than {name} = {limit}")


async def read_body(chunks: AsyncIterator[bytes], limit: int, drain: int = 0, name: str = "max_upload_bytes") -> bytes:
    """The body from an async iterator of byte chunks, stopping with too_large past ``limit`` bytes.

    Past the limit up to ``drain`` more bytes are read and discarded before the error: a
    server that answers 413 while the client is still sending closes the socket under it,
    and most clients (urllib, requests) then report a broken pipe instead of the 413.
    """
    return b"".join([chunk async for chunk in _within(chunks, limit, drain, name)])


async def spool_body(chunks: AsyncIterator[bytes], limit: int, drain: int, memory: int,
                     name: str = "windows_max_upload_bytes") -> BinaryIO:
    """The body as :func:`read_body` reads it, written into a temporary file as it arrives; the file, at its start.

    The file is in memory up to ``memory`` bytes and on disk past them (an anonymous
    temporary file: deleted when closed, or when the process ends); the caller closes
    it. Chunks are gathered into :data:`CHUNK`-sized writes, made in a worker thread so
    that a slow disk does not hold up the event loop.
    """
    out: Any = tempfile.SpooledTemporaryFile(max_size=memory)
    pending = bytearray()
    try:
        async for chunk in _within(chunks, limit, drain, name):
            pending.extend(chunk)
            if len(pending) >= CHUNK:
                await asyncio.to_thread(out.write, bytes(pending))
                pending.clear()
        out.write(bytes(pending))
        out.seek(0)
    except BaseException:
        out.close()
        raise
    return out


def _size(body: bytes | BinaryIO) -> int:
    if isinstance(body, bytes):
        return len(body)
    size = body.seek(0, 2)
    body.seek(0)
    return size


def parse_upload(body: bytes | BinaryIO, content_type: str, query: dict[str, str], limits: Limits,
                 fetch: Callable[[str], bytes | BinaryIO]) -> Upload:
    """The audio of a POST /predict from its body and Content-Type (see the module docstring).

    ``body`` is the request's bytes, or (``?windows=1``) the file :func:`spool_body` wrote
    them to: then the Upload's data is a file too (that one, the form's file part in a
    temporary file of its own, or what ``fetch`` spooled), never the bytes read whole.
    """
    top_tags, window = _top_tags(query.get("top_tags")), _window(query)
    if not isinstance(body, bytes):
        body.seek(0)
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "application/json":
        text = body if isinstance(body, bytes) else body.read(limits.max_upload_bytes + 1)  # a URL is short
        try:
            url = json.loads(text)["url"]
        except (ValueError, KeyError, TypeError):
            raise ServiceError("bad_request", 'a JSON body must be an object {"url": "https://..."}') from None
        if not isinstance(url, str) or not url:
            raise ServiceError("bad_request", '"url" must be a non-empty string')
        if not allowed_url(url, limits.allowed_url_prefixes):
            allowed = ", ".join(limits.allowed_url_prefixes) or "none: the service was started without " \
                                                                 "--allowed-url-prefixes"
            raise ServiceError("url_not_allowed", f"{url} does not start with an allowed prefix ({allowed}), "
                                                  "or has . or .. path segments")
        return Upload(fetch(url), url_name(url), top_tags, window)
    if media == "multipart/form-data":
        data, name = _multipart_file(body, content_type, limits.upload_bytes(window.windows)[0],
                                     limits.max_upload_bytes)
        return Upload(data, name, top_tags, window)
    if not _size(body):
        raise ServiceError("bad_request", "the request has no body: POST the audio file's bytes, a multipart "
                                          'form with a "file" field, or JSON {"url": ...}')
    return Upload(body, "upload", top_tags, window)


def url_name(url: str) -> str:
    """What the answer calls a fetched clip: the URL's file name, or the masked URL when its path has none
    (the host part of ``http://user:secret@host/`` holds the credentials)."""
    return posixpath.basename(urlsplit(url).path.rstrip("/")) or redact(url)


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


def _multipart_file(body: bytes | BinaryIO, content_type: str, limit: int,
                    memory: int) -> tuple[bytes | BinaryIO, str]:
    """The ``file`` field of a multipart form: its bytes from a body in memory (the part held in memory:
    python-multipart spools big parts to disk otherwise), or from a spooled body its part as an open file (in
    memory up to ``memory`` bytes, in a temporary file past them)."""
    from python_multipart.exceptions import FormParserError
    from python_multipart.multipart import FormParser, parse_options_header

    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise ServiceError("bad_request", "multipart/form-data without a boundary")
    files: list[Any] = []
    in_memory = isinstance(body, bytes)
    parser = FormParser("multipart/form-data", on_field=None, on_file=files.append, boundary=boundary,
                        config={"MAX_MEMORY_FILE_SIZE": limit + 1 if in_memory else memory, "MAX_BODY_SIZE": limit})
    try:
        try:
            for chunk in [body] if in_memory else iter(lambda: body.read(CHUNK), b""):
                parser.write(chunk)
            parser.finalize()
        except (FormParserError, ValueError) as exc:
            raise ServiceError("bad_request", f"malformed multipart form: {exc}") from None
        part = next((f for f in files if f.field_name == b"file"), None)
        if part is None:
            raise ServiceError("bad_request", 'the multipart form has no "file" field')
    except BaseException:
        for f in files:
            f.close()
        raise
    for f in files:
        if f is not part:
            f.close()
    part.file_object.seek(0)
    name = (part.file_name or b"upload").decode("utf-8", "replace")
    if not in_memory:
        return part.file_object, name
    data = part.file_object.read()
    part.close()
    return data, name


class Recognizer:
    """A loaded model with its embedders: decodes and scores clips as ``predict`` does.

    Built once per replica: loading the embedders is the slow part (seconds), and a
    request then costs its decode, features and forward passes only.
    """

    def __init__(self, model: str, limits: Limits, *, weights_cache: str | None = None, device: str = "cpu") -> None:
        self.model = load_model(model)
        self.limits = limits
        decode, self.features, _ = self.model.extraction_params()
        # The training table's decode parameters; only the read limits are the service's own.
        self.decode = replace(decode, max_bytes=limits.max_upload_bytes, read_timeout_s=limits.request_timeout_s)
        embedders, taggers, self.columns = self.model.feature_plan()
        self.tagger = taggers[0] if taggers else None
        self.nets = load_nets(embedders, weights_cache, device)
        self.window_s, self.hop_s = window_lengths(WindowParams(windows=True), self.model, self.decode)

    def info(self) -> dict[str, Any]:
        """What ``GET /info`` answers: the classes, the task, the inputs, the sample rate and the limits."""
        return {"classes": self.model.class_names, "task": self.model.task_name, "kind": self.model.kind,
                "groups": self.model.groups, "tagger": self.tagger.name if self.tagger else None,
                "sample_rate": self.decode.sample_rate,
                "limits": {"max_upload_bytes": self.limits.max_upload_bytes,
                           "max_duration_s": self.limits.max_duration_s,
                           "request_timeout_s": self.limits.request_timeout_s,
                           "windows_max_upload_bytes": self.limits.windows_max_upload_bytes,
                           "windows_max_duration_s": self.limits.windows_max_duration_s,
                           "windows_timeout_s": self.limits.windows_timeout_s},
                "windows": {"window_s": self.window_s, "hop_s": self.hop_s},
                "allowed_url_prefixes": list(self.limits.allowed_url_prefixes)}

    def fetch(self, url: str) -> bytes:
        """An allowed URL's bytes, read as the extract job reads a clip (same size and time limits)."""
        try:
            return read_bytes(url, self.decode)
        except ClipError as exc:
            raise self._fetch_error(url, exc) from None

    def fetch_file(self, url: str) -> BinaryIO:
        """For ``?windows=1``: an allowed URL's bytes in a temporary file (as :func:`spool_body` keeps a body),
        within ``windows_max_upload_bytes`` and ``windows_timeout_s``; the caller closes it."""
        params = replace(self.decode, max_bytes=self.limits.windows_max_upload_bytes)
        out: Any = tempfile.SpooledTemporaryFile(max_size=self.limits.max_upload_bytes)
        try:
            copy_clip(url, params, out.write, deadline_s=self.limits.windows_timeout_s)
        except ClipError as exc:
            out.close()
            raise self._fetch_error(url, exc) from None
        out.seek(0)
        return out

    @staticmethod
    def _fetch_error(url: str, exc: ClipError) -> ServiceError:
        err = ServiceError.from_clip(exc)
        return ServiceError(err.error_type, f"fetching {url}: {err.message}")

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

    def windows(self, upload: Upload, stop: threading.Event | None = None) -> dict[str, Any]:
        """The upload scored in windows: each window's times and probabilities, the summary, the Raven table.

        Read window by window from the upload's bytes or file (:class:`Recording`),
        ``window_batch`` windows decoded at a time; too_long past ``windows_max_duration_s``
        before any is scored. Once ``stop`` is set (the request timed out or its client
        left) no further window is read: timeout.
        """
        try:
            window_s, hop_s = window_lengths(upload.window, self.model, self.decode)
        except ConfigError as exc:  # a window the training table's decode limits refuse
            raise ServiceError("bad_request", str(exc)) from None
        base = {"clip_id": upload.name, "uri": upload.name}
        most = self.limits.windows_max_duration_s
        try:
            with Recording(upload.data, self.decode) as rec:
                if rec.duration_s > most:
                    raise ServiceError("too_long", f"the recording lasts {rec.duration_s:.1f} s; this service takes "
                                                   f"at most windows_max_duration_s = {most:g} s in windows")
                stream = rec.windows(window_s, hop_s, upload.window.max_windows)
                rows = list(recording_rows(self.model, stream if stop is None else _until(stop, stream), base,
                                           columns={c: self.columns[c] for c in self.model.inputs}, nets=self.nets,
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


def _until(stop: threading.Event, windows: Iterable[Window]) -> Iterator[Window]:
    """The windows, until ``stop`` is set: then ServiceError("timeout") instead of the next one."""
    for w in windows:
        if stop.is_set():
            raise ServiceError("timeout", "the request was given up (timed out, or its client left) at "
                                          f"{w.start_s:.1f} s of the recording")
        yield w


def answer(upload: Upload, result: dict[str, Any], t0: float) -> dict[str, Any]:
    """The 200 body: the clip's name first, the time the service spent on it last."""
    return {"clip": upload.name, **result, "elapsed_ms": round((time.perf_counter() - t0) * 1000, 2)}


def page() -> bytes:
    """The browser page (``serve_page.html`` beside this module, package data like the pages' templates)."""
    return PAGE.read_bytes()


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
        # ?windows=1 has its own limits; a malformed value is refused by parse_upload, under a clip's limits.
        windows = request.query_params.get("windows", "0").lower() in ("1", "true")
        timeout, name = self.limits.timeout(windows)
        try:
            return await asyncio.wait_for(self._recognize(request, windows), timeout)
        except TimeoutError:
            raise ServiceError("timeout", f"not answered within {name} = {timeout:g} s") from None

    async def _recognize(self, request: Any, windows: bool) -> dict[str, Any]:
        t0 = time.perf_counter()
        # An upload up to twice the limit is read to its end (and dropped) so the client can
        # read the 413; a larger one is refused from its Content-Length, unread.
        limit, name = self.limits.upload_bytes(windows)
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > 2 * limit:
            raise ServiceError("too_large", f"the upload ({declared} bytes) is larger than {name} = {limit}")
        content_type, query = request.headers.get("content-type", ""), dict(request.query_params)
        if windows:
            body = await spool_body(request.stream(), limit, drain=limit, memory=self.limits.max_upload_bytes)
            stop = threading.Event()
            try:
                return await asyncio.to_thread(self._windows, body, content_type, query, stop, t0)
            finally:
                stop.set()  # a timed-out or abandoned request stops scoring at its next window
        body = await read_body(request.stream(), limit, drain=limit)
        upload = await asyncio.to_thread(parse_upload, body, content_type, query, self.limits, self.recognizer.fetch)
        clip = await asyncio.to_thread(self.recognizer.decode_upload, upload)
        return answer(upload, await self.scorer(clip, upload.top_tags), t0)

    def _windows(self, body: BinaryIO, content_type: str, query: dict[str, str], stop: threading.Event,
                 t0: float) -> dict[str, Any]:
        """A ``?windows=1`` request from its spooled body, in a worker thread that owns (and closes) its files."""
        try:
            upload = parse_upload(body, content_type, query, self.limits, self.recognizer.fetch_file)
            if upload.data is not body:
                body.close()  # the form's file part or the fetched URL has its own file
            try:
                return answer(upload, self.recognizer.windows(upload, stop), t0)
            finally:
                if not isinstance(upload.data, bytes):
                    upload.data.close()
        finally:
            body.close()
