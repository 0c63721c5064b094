"""``acoustic-env audit-review --serve``: a tiny local server for the review page that saves verdicts.

The static page keeps verdicts in the browser and exports them as a file; when
the reviewer would rather not juggle downloads, this server hands out the page
and its assets and takes each verdict as it is clicked (``POST api/verdicts``),
merging it into ``<audit>/review/verdicts.json`` (latest verdict per clip and
sample) where ``audit-estimate`` reads it. The standard library's HTTP server, bound to
127.0.0.1: it is meant for one reviewer on their own machine, not the network.

Files are read and written through fsspec, so an audit on object storage can
be reviewed the same way. Byte ranges are served because browsers seek in
(and read the duration of) Ogg files with range requests.

What another web page in the reviewer's browser could do to it is refused: a request
whose ``Host`` is not this server's own (DNS rebinding) or whose ``Origin`` is
another site's gets 403, and a verdict must be ``application/json`` (415 otherwise),
which a cross-site page cannot send without a preflight that is never answered.
The server stamps each verdict with its own clock (a client's ``time`` is ignored),
and a new verdict replaces the stored one whatever time the file gives it, so no
verdict dated in the future, posted or already in the file, can outlast later ones.
``GET api/next?n=10`` (same Host and Origin rules) hands out the next clips of the review queue by the audit's
order, re-ranked on the verdicts so far (queue.py); a clip it reaches beyond the page joins the page's queue.
It takes verdicts only for the clips on the page (or so added), in the sample they are shown in. One server per audit:
a second one on the same audit stops with one line (:class:`ReviewLock`), so two
never keep diverging copies of ``verdicts.json``. With a label store (``make_server(..., store=...)``, the
command's ``--store``) every verdict it takes is appended there too, as it arrives (``labels.review_sink``).
"""

from __future__ import annotations

import json
import mimetypes
import posixpath
import re
import sys
import threading
from datetime import datetime, timezone
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from acoustic_env.bounded import shown
from acoustic_env.config import ConfigError
from acoustic_env.errors import AuditError
from acoustic_env.jobs.audit.estimate import latest, load_json, normalize_verdict
from acoustic_env.jobs.audit.queue import MAX_BATCH, ReviewQueue
from acoustic_env.jobs.preflight import check_store
from acoustic_env.pages.review import BATCH, PAGE, REVIEW_DIR, page_items, verdicts_uri
from acoustic_env.labels.review_sink import ReviewSink
from acoustic_env.bounded import MAX_VERDICT_BYTES, read_record
from acoustic_env.storage import filesystem, is_local, join, write_json

HOST = "127.0.0.1"
_MAX_BODY = 1 << 20
_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")
_DIGITS = re.compile(r"[0-9]{1,12}")
#: How long a request's line, headers or body may keep the server waiting, in seconds.
READ_TIMEOUT_S = 60.0


def server_time() -> str:
    """Now, UTC, ISO 8601 to the millisecond (the form the page writes; such strings sort by time)."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class VerdictStore:
    """verdicts.json behind a lock: the server's threads merge into it one at a time.

    ``known``: the (sample, clip_id) pairs on the review page; a verdict about any
    other clip is refused, and one already in the file is dropped when it is read.
    A verdict that arrives replaces the stored one of its clip whatever the file's
    times say: they were written by whoever wrote the file (a forged ``2099`` would
    otherwise outlast every later click), the arrival is this server's own fact.
    """

    def __init__(self, uri: str, known: frozenset[tuple[str, str]], sink: ReviewSink | None = None):
        self.uri = uri
        self.known = known
        self.sink = sink  # the label store each verdict is appended to as well (None: verdicts.json only)
        self._lock = threading.Lock()
        fs, path = filesystem(uri)
        # normalised on load too: a file written before corrected_label/note existed comes back with them empty
        saved = read_record(uri, "verdicts", MAX_VERDICT_BYTES) if fs.exists(path) else []
        found = [normalize_verdict(r) for r in saved]
        self._records: list[dict[str, Any]] = latest([r for r in found if (r["sample"], r["clip_id"]) in known])

    def all(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._records)

    def allow(self, clip_ids: list[str]) -> None:
        """Take verdicts about these clips of the queue too (the review order reached them after the page was built)."""
        with self._lock:
            self.known = self.known | {("suspects", c) for c in clip_ids}

    def add(self, records: list[dict[str, Any]]) -> int:
        clean = [{**normalize_verdict(r), "time": server_time()} for r in records]
        for r in clean:
            if (r["sample"], r["clip_id"]) not in self.known:
                raise AuditError(f"verdicts: clip {r['clip_id']!r} is not in the {r['sample']} sample of this "
                                 "review page")
        with self._lock:
            if self.sink is not None:  # the store first: a verdict it refuses is saved nowhere, and said so
                try:
                    self.sink.add(clean)
                except ConfigError as exc:
                    raise AuditError(str(exc)) from None
            by_clip = {(r["sample"], r["clip_id"]): r for r in self._records + clean}  # in order of arrival
            self._records = sorted(by_clip.values(), key=lambda r: (r["sample"], r["clip_id"]))
            write_json(self._records, self.uri)
            return len(self._records)


class ReviewLock:
    """One review server per audit: held while a server runs, refused to a second one.

    On a local disk an OS file lock (filelock), which the system releases when the
    process ends however it ends; on object storage, where nothing can be locked, a
    marker object that a server removes when it stops (one left by a killed server
    is named in the message, to be deleted by hand).
    """

    def __init__(self, verdicts: str) -> None:
        self.uri = verdicts + ".lock"
        self._file_lock: Any = None

    def acquire(self) -> None:
        busy = AuditError(f"audit: another review server is serving this audit (it holds {self.uri}); use that one, "
                          "or stop it first")
        if is_local(self.uri):
            from filelock import FileLock, Timeout

            lock = FileLock(filesystem(self.uri)[1], timeout=0)
            try:
                lock.acquire()
            except Timeout:
                raise busy from None
            self._file_lock = lock
            return
        fs, path = filesystem(self.uri)
        if fs.exists(path):
            raise AuditError(f"{busy} (if no server runs, delete {self.uri})")
        fs.pipe_file(path, server_time().encode())

    def release(self) -> None:
        if self._file_lock is not None:
            self._file_lock.release()
            return
        fs, path = filesystem(self.uri)
        fs.rm_file(path)


def make_handler(review_dir: str, store: VerdictStore, own: set[str],
                 queue: ReviewQueue) -> type[BaseHTTPRequestHandler]:
    """The request handler; ``own``: this server's ``host:port`` names (filled in once the port is bound)."""
    fs, base = filesystem(review_dir)

    class Handler(BaseHTTPRequestHandler):
        server_version = "acoustic-env-review"
        timeout = READ_TIMEOUT_S  # a body announced longer than it is sent: 408, not a thread waiting for ever

        def log_message(self, fmt: str, *args: Any) -> None:  # quiet: the CLI prints the URL once
            pass

        def _send(self, status: int, body: bytes, ctype: str, extra: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _json(self, status: int, obj: Any) -> None:
            self._send(status, json.dumps(obj).encode(), "application/json")

        def _foreign(self) -> bool:
            """Answer 403 (and say True) unless Host, and Origin when sent, are this server's own."""
            host, origin = self.headers.get("Host", ""), self.headers.get("Origin")
            if host not in own:
                self._json(HTTPStatus.FORBIDDEN, {"error": f"Host {host!r} is not this review server's own"})
                return True
            if origin is not None and origin not in {f"http://{h}" for h in own}:
                self._json(HTTPStatus.FORBIDDEN, {"error": f"Origin {origin!r} is not this review server's own"})
                return True
            return False

        def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
            self.do_GET()

        def do_GET(self) -> None:  # noqa: N802
            if self._foreign():
                return None
            path = unquote(urlsplit(self.path).path).lstrip("/") or PAGE
            if path == "api/verdicts":
                return self._json(HTTPStatus.OK, store.all())
            if path == "api/next":
                return self._next()
            clean = posixpath.normpath(path)
            if clean.startswith("..") or clean.startswith("/"):
                return self._json(HTTPStatus.NOT_FOUND, {"error": "not found"})
            target = join(base, clean)
            if not fs.isfile(target):
                return self._json(HTTPStatus.NOT_FOUND, {"error": "not found"})
            data = fs.cat_file(target)
            ctype = {".ogg": "audio/ogg"}.get(posixpath.splitext(clean)[1]) or \
                mimetypes.guess_type(clean)[0] or "application/octet-stream"
            match = _RANGE.match(self.headers.get("Range", ""))
            if match and any(match.groups()):
                first, last = match.groups()
                start = int(first) if first else max(0, len(data) - int(last))
                end = min(int(last), len(data) - 1) if first and last else len(data) - 1
                if start >= len(data) or start > end:
                    return self._send(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE, b"", ctype,
                                      {"Content-Range": f"bytes */{len(data)}"})
                return self._send(HTTPStatus.PARTIAL_CONTENT, data[start:end + 1], ctype,
                                  {"Content-Range": f"bytes {start}-{end}/{len(data)}", "Accept-Ranges": "bytes"})
            self._send(HTTPStatus.OK, data, ctype, {"Accept-Ranges": "bytes"})

        def _next(self) -> None:
            """The next batch of the review queue (``?n=``, default BATCH), re-ranked on the verdicts so far."""
            asked = parse_qs(urlsplit(self.path).query).get("n", [str(BATCH)])[0]
            if not asked.isdigit() or not 0 < int(asked) <= MAX_BATCH:
                return self._json(HTTPStatus.BAD_REQUEST, {"error": f"n: must be a whole number from 1 to {MAX_BATCH}, "
                                                                    f"got {asked!r}"})
            try:
                found = queue.next(store.all(), int(asked))
            except AuditError as exc:
                return self._json(HTTPStatus.CONFLICT, {"error": str(exc)})
            store.allow([item["clip_id"] for item in found["added"]])
            self._json(HTTPStatus.OK, found)

        def do_POST(self) -> None:  # noqa: N802
            if self._foreign():
                return None
            if urlsplit(self.path).path.lstrip("/") != "api/verdicts":
                return self._json(HTTPStatus.NOT_FOUND, {"error": "not found"})
            media = self.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
            if media != "application/json":
                return self._json(HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                                  {"error": f"verdicts must be sent as application/json, not {media or 'nothing'!r}"})
            length = self.headers.get("Content-Length", "").strip()
            if not _DIGITS.fullmatch(length) or not 0 < int(length) <= _MAX_BODY:  # "abc": a 400, no dropped line
                return self._json(HTTPStatus.BAD_REQUEST, {"error": f"Content-Length: a body of 1 to {_MAX_BODY} "
                                                                    "bytes, given as a whole number"})
            try:
                data = self.rfile.read(int(length))
            except OSError:  # the socket's timeout: fewer bytes came than Content-Length said
                return self._json(HTTPStatus.REQUEST_TIMEOUT, {"error": f"the body did not arrive within "
                                                                        f"{READ_TIMEOUT_S:g} s"})
            try:
                body = load_json(data, "the request")
                total = store.add(body if isinstance(body, list) else [body])
            except AuditError as exc:
                return self._json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
            except OSError as exc:  # the store or verdicts.json could not be written (a full disk, a lost mount)
                return self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {
                    "error": f"the verdict was not saved: {exc.strerror or type(exc).__name__}"})
            self._json(HTTPStatus.OK, {"total": total})

    return Handler


class ReviewServer(ThreadingHTTPServer):
    """The HTTP server, holding the audit's :class:`ReviewLock` until it is closed."""

    daemon_threads = True

    def __init__(self, port: int, handler: type[BaseHTTPRequestHandler], own: set[str], lock: ReviewLock,
                 store: VerdictStore) -> None:
        super().__init__((HOST, port), handler)
        self.lock = lock
        self.store = store
        own.update({f"{HOST}:{self.server_address[1]}", f"localhost:{self.server_address[1]}"})

    def server_close(self) -> None:
        super().server_close()
        self.lock.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A request that failed in a way no answer covers: one line on the console, not socketserver's traceback
        (which would bury the server's own line), and the connection closed."""
        exc = sys.exc_info()[1]
        print(f"acoustic-env: review server: a request failed: {type(exc).__name__}: {shown(str(exc), bare=True)}",
              file=sys.stderr, flush=True)


def make_server(audit_output: str, port: int = 0, store: str | None = None,
                reviewer: str | None = None) -> ReviewServer:
    """A server (not yet serving) for ``<audit_output>/review/`` on 127.0.0.1; ``port=0`` picks a free one.

    ``store``: also append each verdict to this label store ("": the one beside the audited table; None: none),
    crediting ``reviewer`` when the page names nobody. Stops with AuditError when another server holds the audit
    (:class:`ReviewLock`).
    """
    review_dir = join(audit_output, REVIEW_DIR)
    fs, page = filesystem(join(review_dir, PAGE))
    if not fs.exists(page):
        raise AuditError(f"audit: no review page at {join(review_dir, PAGE)}; run `acoustic-env audit` first")
    lock = ReviewLock(verdicts_uri(audit_output))
    lock.acquire()
    try:
        from acoustic_env.jobs.audit.job import SUMMARY, TABLE

        summary = read_record(join(audit_output, SUMMARY), "audit") if store is not None else None
        sink = None if summary is None else ReviewSink.for_audit(summary["config"], store, reviewer)
        if sink is not None:  # a store that cannot take a verdict says so now, not at the first click
            check_store(sink.store)
        verdicts = VerdictStore(verdicts_uri(audit_output), page_items(review_dir), sink)
        own: set[str] = set()
        queue = ReviewQueue(join(audit_output, TABLE), review_dir)
        return ReviewServer(port, make_handler(review_dir, verdicts, own, queue), own, lock, verdicts)
    except BaseException:
        lock.release()
        raise
