"""A real HTTP server that imitates the AlertAgent service (see CONTRACT.md)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import socket
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, BinaryIO, Self
from urllib.parse import parse_qsl, urlsplit

STATUS_PATH = "/api/v1/config/sync/status"


@dataclass
class Reply:
    """A scripted one-off answer to a GET on the config path."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    delay: float = 0.0  # seconds to wait before sending headers
    drip: float = 0.0  # seconds between body bytes, 0 = send at once
    truncate: bool = False  # declare the full Content-Length, send half the body, close
    hang: bool = False  # never answer until the server is closed


@dataclass
class Recorded:
    """One request as seen on the wire.

    Appended as soon as the request has been read, so a test can wait for a request
    that will hang; ``status`` and ``bytes_out`` are filled in before each chunk of the
    answer is written, so they are final by the time the client has the last byte.
    """

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # names lower-cased
    body: bytes
    status: int = 0
    bytes_in: int = 0  # request line + header block + body
    bytes_out: int = 0  # status line + header block + body actually written


class _CountingReader:
    """Wraps the request stream to count the bytes the parser consumes."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self.total = 0

    def readline(self, limit: int = -1) -> bytes:
        data = self._raw.readline(limit)
        self.total += len(data)
        return data

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        self.total += len(data)
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # close() must not wait for clients stuck mid-request

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that hang up mid-answer are part of the tests, not failures


def serve_in_thread(
    server: ThreadingHTTPServer, tls: ssl.SSLContext | None
) -> tuple[str, threading.Thread]:
    """Serve `server` (over TLS when given a context) in a daemon thread: its URL."""
    if tls is not None:
        # The handshake happens in each connection's own thread (_handshake), so a client
        # that fails it never stalls the server.
        server.socket = tls.wrap_socket(
            server.socket, server_side=True, do_handshake_on_connect=False
        )
    scheme = "https" if tls is not None else "http"
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    return f"{scheme}://127.0.0.1:{server.server_address[1]}", thread


class FakeAlertAgent:
    """AlertAgent on 127.0.0.1 at a free port, serving ``content`` at ``api_path``.

    ``config_hash`` overrides the advertised hash (X-Config-Hash / envelope config_hash, and
    what the "raw-hash" etag mode compares with); the quoted ETag is always the real sha256.
    ``tls``: a server-side context (certificate, and client verification for mutual TLS):
    the fake then serves HTTPS and ``url`` starts with https://. The handshake happens in
    the connection's own thread, so a client that fails it never stalls the others.
    """

    def __init__(
        self,
        *,
        dialect: str = "raw",
        envelope_key: str = "status",
        etag: str = "quoted",
        api_path: str = "/api/v1/configs",
        content: bytes = b"global:\n  scrape_interval: 15s\n",
        version: str = "v1",
        config_hash: str | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        assert dialect in ("raw", "envelope"), dialect
        assert envelope_key in ("status", "code"), envelope_key
        assert etag in ("quoted", "raw-hash", "none"), etag
        self.dialect = dialect
        self.envelope_key = envelope_key
        self.etag = etag
        self.api_path = api_path
        self.content = content
        self.version = version
        self.config_hash = config_hash  # advertised hash override; None = real sha256
        self.requests: list[Recorded] = []
        self.status_reports: list[dict[str, Any]] = []
        self.status_reply: Reply | None = None  # how to answer status reports, if not 200
        self._script: deque[Reply] = deque()
        self._cond = threading.Condition()
        self._closed = threading.Event()
        self._conns: set[socket.socket] = set()
        self._server = _Server(("127.0.0.1", 0), _make_handler(self))
        self.url, self._thread = serve_in_thread(self._server, tls)

    def set_config(self, content: bytes, version: str | None = None) -> None:
        with self._cond:
            self.content = content
            if version is not None:
                self.version = version

    def script(self, *replies: Reply) -> None:
        with self._cond:
            self._script.extend(replies)

    def wait_for_requests(self, n: int, timeout: float = 10) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.requests) >= n, timeout):
                raise AssertionError(
                    f"timed out after {timeout}s waiting for {n} requests, got {len(self.requests)}"
                )

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()  # wakes delayed, dripping and hanging answers
        self._server.shutdown()
        with self._cond:
            conns = list(self._conns)
        for conn in conns:  # wake handlers blocked reading idle keep-alive connections
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._server.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- what the server answers -------------------------------------------------

    def _answer_config(self, rec: Recorded) -> Reply:
        with self._cond:
            if self._script:
                return self._script.popleft()
            content, version = self.content, self.version
        sha = hashlib.sha256(content).hexdigest()
        advertised = self.config_hash or sha
        quoted = f'"{sha}"'
        inm = rec.headers.get("if-none-match")
        headers: dict[str, str] = {"Cache-Control": "no-cache"}
        if self.etag == "quoted":
            headers["ETag"] = quoted
            tags = [t.strip().removeprefix("W/") for t in (inm or "").split(",")]
            if quoted in tags or "*" in tags:
                return Reply(304, headers)
        elif self.etag == "raw-hash" and inm == advertised:  # the Go server's plain ==
            return Reply(304, headers)
        if self.dialect == "raw":
            headers |= {"Content-Type": "application/yaml", "X-Config-Hash": advertised}
            return Reply(200, headers, content)
        data = {"config": content.decode("utf-8"), "config_hash": advertised, "version": version}
        if self.envelope_key == "status":
            doc: dict[str, Any] = {
                "status": "success",
                "message": "Config retrieved successfully",
                "data": data,
            }
        else:
            doc = {
                "code": 200,
                "message": "success",
                "data": data,
                "request_id": f"req-{len(self.requests)}",
                "timestamp": int(time.time()),
            }
        headers["Content-Type"] = "application/json"
        return Reply(200, headers, json.dumps(doc).encode())

    def _answer(self, rec: Recorded) -> Reply:
        if rec.method == "GET" and rec.path == self.api_path:
            return self._answer_config(rec)
        if rec.method == "POST" and rec.path == STATUS_PATH:
            try:
                report = json.loads(rec.body)
            except ValueError as exc:
                return _json_reply(400, {"code": 400, "message": "bad request", "error": str(exc)})
            with self._cond:
                self.status_reports.append(report)
            return self.status_reply or _json_reply(200, {"code": 200, "message": "ok"})
        error = f"no route for {rec.method} {rec.path}"
        return _json_reply(404, {"code": 404, "message": "not found", "error": error})


def _json_reply(status: int, doc: dict[str, Any]) -> Reply:
    return Reply(status, {"Content-Type": "application/json"}, json.dumps(doc).encode())


def _handshake(conn: socket.socket, timeout: float = 10) -> None:
    """Complete a TLS server handshake (a no-op for plain TCP), bounded in time."""
    if isinstance(conn, ssl.SSLSocket):
        conn.settimeout(timeout)
        conn.do_handshake()
        conn.settimeout(None)


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:  # scripted odd codes such as 599
        return "Unknown"


def _make_handler(agent: FakeAlertAgent) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, like the Go server
        rfile: Any

        def setup(self) -> None:
            with agent._cond:
                agent._conns.add(self.request)
            try:
                _handshake(self.request)
            except OSError:
                with agent._cond:
                    agent._conns.discard(self.request)
                raise  # the server's handle_error drops it quietly
            super().setup()
            self.rfile = _CountingReader(self.rfile)
            self._mark = 0  # bytes consumed by earlier requests on this connection

        def finish(self) -> None:
            with agent._cond:
                agent._conns.discard(self.connection)
            with contextlib.suppress(OSError):
                super().finish()

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            url = urlsplit(self.path)
            rec = Recorded(
                method=self.command,
                path=url.path,
                query=dict(parse_qsl(url.query, keep_blank_values=True)),
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
                bytes_in=self.rfile.total - self._mark,
            )
            self._mark = self.rfile.total
            with agent._cond:
                agent.requests.append(rec)
                agent._cond.notify_all()
            reply = agent._answer(rec)
            try:
                self._send(rec, reply)
            except OSError:
                self.close_connection = True  # the client went away

        def _send(self, rec: Recorded, reply: Reply) -> None:
            if reply.hang or (reply.delay and agent._closed.wait(reply.delay)):
                agent._closed.wait()
                self.close_connection = True
                return
            headers = dict(reply.headers)
            if reply.status >= 200 and reply.status not in (204, 304):
                headers.setdefault("Content-Length", str(len(reply.body)))
            if reply.truncate:
                headers["Connection"] = "close"
            head = f"HTTP/1.1 {reply.status} {_reason(reply.status)}\r\n"
            head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
            body = reply.body[: len(reply.body) // 2] if reply.truncate else reply.body
            rec.status = reply.status
            self._write(rec, head.encode("latin-1"))
            if reply.drip:
                for i in range(len(body)):
                    if i and agent._closed.wait(reply.drip):
                        break
                    self._write(rec, body[i : i + 1])
            else:
                self._write(rec, body)
            if reply.truncate or (reply.drip and agent._closed.is_set()):
                self.close_connection = True

        def _write(self, rec: Recorded, data: bytes) -> None:
            rec.bytes_out += len(data)  # counted first so the record is final on arrival
            try:
                self.wfile.write(data)
            except OSError:
                rec.bytes_out -= len(data)
                raise

    return Handler
