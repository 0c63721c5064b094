"""An HTTP proxy on 127.0.0.1 that injects object-store faults in front of a real S3 API (moto).

Why a proxy and not a mock: the code under test (s3fs → aiobotocore → aiohttp) must meet
the faults on the wire, in the processes that really do the I/O (Ray workers included),
so its real retry and timeout machinery is what gets exercised.

Faults follow a *schedule*: a list of :class:`Fault` rules. Each request takes the first
rule that matches it (method and a regex on the path) and still has uses left; the rule
then uses one up. ``times=-1`` never runs out (a persistent fault); ``fresh=True`` takes only
objects no fault has hit yet, so each object meets at most one fault and its retry passes.
The number of faults injected is therefore fixed by the schedule, whatever the order in
which concurrent workers arrive. Every request is logged as an :class:`Event` so a test can count
attempts and measure the pauses between them (the client's backoff).

Actions:

* ``"500"`` – InternalError, ``"503"`` – ServiceUnavailable, ``"slowdown"`` – 503 SlowDown
  (S3's throttling answer); nothing reaches the store.
* ``"reset"`` – read half of the request body, then close the socket with a TCP RST
  (a connection reset mid-upload); nothing reaches the store.
* ``"reset_after"`` – forward the request (the store has it), then reset instead of
  answering: the client cannot know the write landed and must retry it.
* ``"stall"`` – wait ``seconds`` before answering (longer than the client's read timeout).
* ``"trickle"`` – answer, but send the body in small pieces spread over ``seconds``.

The proxy stops itself after ``lifetime_s`` so a forgotten one cannot hold a test run.
"""

from __future__ import annotations

import http.client
import http.server
import re
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Iterator

ACTIONS = ("500", "503", "slowdown", "reset", "reset_after", "stall", "trickle")
_ERRORS = {
    "500": (500, "InternalError", "We encountered an internal error. Please try again."),
    "503": (503, "ServiceUnavailable", "Service is unable to handle request."),
    "slowdown": (503, "SlowDown", "Please reduce your request rate."),
}
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te", "trailer", "upgrade"}


@dataclass
class Fault:
    """One rule of a schedule: ``action`` on the next ``times`` requests matching ``method`` and ``path``."""

    action: str
    method: str = "*"
    path: str = ""  # a regex searched in the request path (bucket/key and query)
    times: int = 1  # -1: every matching request (a persistent fault)
    seconds: float = 0.0  # for stall and trickle
    fresh: bool = False  # only objects no fault has hit yet: each object meets at most one (its retry passes)
    after: int = 0  # let this many matching requests pass first (a transfer that fails part-way through)
    used: int = field(default=0, init=False)
    passed: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"unknown fault action {self.action!r} (one of {ACTIONS})")

    def takes(self, method: str, path: str, faulted: set[str]) -> bool:
        matches = ((self.times < 0 or self.used < self.times) and self.method in ("*", method)
                   and re.search(self.path, path) is not None and not (self.fresh and _key(path) in faulted))
        if matches and self.passed < self.after:
            self.passed += 1
            return False
        return matches


@dataclass(frozen=True)
class Event:
    """One request as the proxy saw it: when, what, and which fault it got (``"pass"`` if none)."""

    t: float  # when the request arrived (time.monotonic)
    method: str
    path: str
    action: str
    status: int | None  # what the client was answered (None: reset, or stalled past its patience)
    range: str | None = None  # the request's Range header: a read of part of an object
    sent: int = 0  # bytes of body answered


class FaultProxy:
    """Forward S3 requests to ``upstream``, injecting the faults of ``schedule``."""

    def __init__(self, upstream: str, schedule: list[Fault] | None = None, lifetime_s: float = 600.0):
        self.upstream = upstream.removeprefix("http://").rstrip("/")
        self.schedule = list(schedule or [])
        self.events: list[Event] = []
        self._faulted: set[str] = set()  # objects (paths without the query) a fault has hit
        self._lock = threading.Lock()
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._timer = threading.Timer(lifetime_s, self.stop)
        self._timer.daemon = True

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> "FaultProxy":
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self._timer.start()
        return self

    def stop(self) -> None:
        self._timer.cancel()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "FaultProxy":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def set_schedule(self, schedule: list[Fault]) -> None:
        with self._lock:
            self.schedule = list(schedule)

    def injected(self, action: str | None = None) -> list[Event]:
        """The requests that got a fault (of ``action``, or any)."""
        return [e for e in self.events if e.action != "pass" and action in (None, e.action)]

    def _pick(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for rule in self.schedule:
                if rule.takes(method, path, self._faulted):
                    rule.used += 1
                    self._faulted.add(_key(path))
                    return rule
        return None

    def _log(self, t: float, method: str, path: str, action: str, status: int | None, range_: str | None = None,
             sent: int = 0) -> None:
        with self._lock:
            self.events.append(Event(t, method, path, action, status, range_, sent))

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a real endpoint: the client pools connections
            timeout = 120  # a silent client cannot hold a handler thread for ever

            def _body(self) -> bytes:
                if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                    return b"".join(_read_chunks(self.rfile))
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _reset(self) -> None:
                """Close with RST (SO_LINGER 0): the client sees ECONNRESET, as from a dropped connection."""
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.close_connection = True
                self.connection.close()

            def _answer(self, status: int, headers: list[tuple[str, str]], body: bytes, trickle_s: float = 0) -> None:
                self.send_response(status)
                head = self.command == "HEAD"  # the size of the object, not of an (absent) body
                for k, v in headers:
                    if k.lower() not in _HOP_BY_HOP and (head or k.lower() != "content-length"):
                        self.send_header(k, v)
                if not head:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command == "HEAD" or not body:
                    return
                if trickle_s <= 0:
                    self.wfile.write(body)
                    return
                pieces = 20
                step = max(1, -(-len(body) // pieces))
                for i in range(0, len(body), step):
                    self.wfile.write(body[i:i + step])
                    self.wfile.flush()
                    time.sleep(trickle_s / pieces)

            def _serve(self) -> None:
                t, method, path = time.monotonic(), self.command, self.path
                rule = proxy._pick(method, path)
                action = rule.action if rule else "pass"
                if action == "reset":
                    length = int(self.headers.get("Content-Length") or 0)
                    self.rfile.read(length // 2)  # half of the upload arrives, then the line drops
                    proxy._log(t, method, path, action, None)
                    self._reset()
                    return
                body = self._body()
                if action in _ERRORS:
                    status, code, message = _ERRORS[action]
                    xml = (f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code>"
                           f"<Message>{message}</Message><RequestId>fault-proxy</RequestId></Error>").encode()
                    proxy._log(t, method, path, action, status)
                    self._answer(status, [("Content-Type", "application/xml")], xml)
                    return
                if action == "stall":
                    proxy._log(t, method, path, action, None)  # now: the client may give up before we wake
                    time.sleep(rule.seconds)
                    self._reset()  # the client has given up on this one long ago
                    return
                status, headers, answer = _forward(proxy.upstream, method, path, self.headers.items(), body)
                if action == "reset_after":
                    proxy._log(t, method, path, action, None)
                    self._reset()
                    return
                proxy._log(t, method, path, action, status, self.headers.get("Range"), len(answer))
                self._answer(status, headers, answer, rule.seconds if action == "trickle" else 0)

            def _safe(self) -> None:
                try:
                    self._serve()
                except (ConnectionError, OSError):  # the client went away first: its problem to retry
                    self.close_connection = True

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _safe  # noqa: N815 - the stdlib's names

            def log_message(self, *args: object) -> None:
                pass

        return Handler


def _key(path: str) -> str:
    return path.split("?", 1)[0]


def _forward(upstream: str, method: str, path: str, headers: Iterator[tuple[str, str]] | list,
             body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
    conn = http.client.HTTPConnection(upstream, timeout=60)
    try:
        sent = {k: v for k, v in headers if k.lower() not in _HOP_BY_HOP}
        sent["Content-Length"] = str(len(body))
        conn.request(method, path, body=body if body or method in ("PUT", "POST") else None, headers=sent)
        response = conn.getresponse()
        data = response.read()
        return response.status, response.getheaders(), data
    finally:
        conn.close()


def _read_chunks(rfile) -> Iterator[bytes]:
    while True:
        size = int(rfile.readline().split(b";")[0].strip() or b"0", 16)
        if size == 0:
            while rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                pass
            return
        yield rfile.read(size)
        rfile.readline()


def measure() -> None:
    """``python tests/s3_fault_proxy.py``: tries and seconds until a persistent fault gives up, per
    fault and direction, through ``acoustic_env.storage`` (the numbers in benchmarks/RESULTS.md)."""
    import datetime as dt
    import os
    import socket

    from moto.server import ThreadedMotoServer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
    from acoustic_env.audio.decode import read_bytes
    from acoustic_env.config import DecodeParams
    from acoustic_env.storage import filesystem

    with FaultProxy(f"http://127.0.0.1:{port}") as proxy:
        os.environ["AWS_ENDPOINT_URL"] = proxy.endpoint
        fs, _ = filesystem("s3://fault-measure/x")
        fs.mkdir("fault-measure")
        fs.pipe_file("fault-measure/clip.wav", b"RIFF" + bytes(4000))
        print(f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC; AWS_RETRY_MODE="
              f"{os.environ.get('AWS_RETRY_MODE', '')!r} AWS_MAX_ATTEMPTS={os.environ.get('AWS_MAX_ATTEMPTS', '')!r}")
        print("| persistent fault | write (a part): tries, s | read (a clip, read_timeout_s 1): tries, s |")
        print("|---|---|---|")
        for action in ("500", "slowdown", "reset", "stall"):
            cells = []
            for op in ("PUT", "*"):
                proxy.events.clear()
                proxy.set_schedule([Fault(action, op, "/fault-measure/", times=-1, seconds=3.0)])
                t0 = time.monotonic()
                try:
                    if op == "PUT":
                        fs.pipe_file("fault-measure/part.parquet", b"x" * 1000)
                    else:
                        read_bytes("s3://fault-measure/clip.wav", DecodeParams(read_timeout_s=1.0))
                except Exception:  # noqa: BLE001 - giving up is the point
                    pass
                cells.append(f"{len(proxy.injected())}, {time.monotonic() - t0:.1f}")
            print(f"| {action} | {cells[0]} | {cells[1]} |")
    server.stop()


if __name__ == "__main__":
    measure()
