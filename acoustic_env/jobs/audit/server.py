"""``acoustic-env audit-review --serve``: a tiny local server for the review page that saves verdicts.

The static page keeps verdicts in the browser and exports them as a file; when
the reviewer would rather not juggle downloads, this server hands out the page
and its assets and takes each verdict as it is clicked (``POST api/verdicts``),
merging it into ``<audit>/review/verdicts.json`` (latest verdict per clip and
sample) where ``audit-estimate`` reads it. Standard library only, bound to
127.0.0.1: it is meant for one reviewer on their own machine, not the network.

Files are read and written through fsspec, so an audit on object storage can
be reviewed the same way. Byte ranges are served because browsers seek in
(and read the duration of) Ogg files with range requests.
"""

from __future__ import annotations

import json
import mimetypes
import posixpath
import re
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from acoustic_env.errors import AuditError
from acoustic_env.jobs.audit.estimate import latest, normalize_verdict
from acoustic_env.jobs.audit.review import PAGE, REVIEW_DIR
from acoustic_env.storage import filesystem, join, read_json, write_json

VERDICTS_FILE = "verdicts.json"
HOST = "127.0.0.1"
_MAX_BODY = 1 << 20
_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


def verdicts_uri(audit_output: str) -> str:
    return join(audit_output, REVIEW_DIR, VERDICTS_FILE)


class VerdictStore:
    """verdicts.json behind a lock: the server's threads merge into it one at a time."""

    def __init__(self, uri: str):
        self.uri = uri
        self._lock = threading.Lock()
        fs, path = filesystem(uri)
        # normalised on load too: a file written before corrected_label/note existed comes back with them empty
        self._records: list[dict[str, Any]] = [normalize_verdict(r) for r in read_json(uri)] if fs.exists(path) else []

    def all(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._records)

    def add(self, records: list[dict[str, Any]]) -> int:
        clean = [normalize_verdict(r) for r in records]
        with self._lock:
            self._records = sorted(latest(self._records + clean), key=lambda r: (r["sample"], r["clip_id"]))
            write_json(self._records, self.uri)
            return len(self._records)


def make_handler(review_dir: str, store: VerdictStore) -> type[BaseHTTPRequestHandler]:
    fs, base = filesystem(review_dir)

    class Handler(BaseHTTPRequestHandler):
        server_version = "acoustic-env-review"

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

        def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
            self.do_GET()

        def do_GET(self) -> None:  # noqa: N802
            path = unquote(urlsplit(self.path).path).lstrip("/") or PAGE
            if path == "api/verdicts":
                return self._json(HTTPStatus.OK, store.all())
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

        def do_POST(self) -> None:  # noqa: N802
            if urlsplit(self.path).path.lstrip("/") != "api/verdicts":
                return self._json(HTTPStatus.NOT_FOUND, {"error": "not found"})
            length = int(self.headers.get("Content-Length") or 0)
            if not 0 < length <= _MAX_BODY:
                return self._json(HTTPStatus.BAD_REQUEST, {"error": "empty or too large body"})
            try:
                body = json.loads(self.rfile.read(length))
                total = store.add(body if isinstance(body, list) else [body])
            except (ValueError, AuditError) as exc:
                return self._json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
            self._json(HTTPStatus.OK, {"total": total})

    return Handler


def make_server(audit_output: str, port: int = 0) -> ThreadingHTTPServer:
    """A server (not yet serving) for ``<audit_output>/review/`` on 127.0.0.1; ``port=0`` picks a free one."""
    review_dir = join(audit_output, REVIEW_DIR)
    fs, page = filesystem(join(review_dir, PAGE))
    if not fs.exists(page):
        raise AuditError(f"audit: no review page at {join(review_dir, PAGE)}; run `acoustic-env audit` first")
    store = VerdictStore(verdicts_uri(audit_output))
    server = ThreadingHTTPServer((HOST, port), make_handler(review_dir, store))
    server.daemon_threads = True
    return server
