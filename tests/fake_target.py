"""A stand-in for targets the real binaries cannot play: one that hangs on /-/reload,
answers 200 without reloading, or exposes no reload metrics at all."""

import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from tests.fake_alertagent import _handshake, serve_in_thread


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ssl.SSLError):
            return  # a client that refused our certificate (or we its): part of the TLS tests
        super().handle_error(request, client_address)


class FakeTarget:
    def __init__(
        self,
        *,
        ready_status: int = 200,
        reload_status: int = 200,
        reload_body: bytes = b"",
        hang_on_reload: bool = False,
        metrics: str | None = "fresh",  # "fresh", "stale", "failed", or None: no reload metrics
        tls: ssl.SSLContext | None = None,  # serve HTTPS with this server-side context
    ) -> None:
        self.ready_status = ready_status
        self.reload_status = reload_status
        self.reload_body = reload_body
        self.hang_on_reload = hang_on_reload
        self.metrics = metrics
        self.reloads: list[float] = []  # when each POST /-/reload arrived
        self.hits: list[str] = []  # "METHOD /path" of every request
        self._closed = threading.Event()
        self.last_reload = time.time() - 3600  # an hour ago
        self._server = _Server(("127.0.0.1", 0), _handler(self))
        self.url, _ = serve_in_thread(self._server, tls)
        self.reload_url = self.url + "/-/reload"

    def metrics_text(self) -> str:
        if self.metrics is None:
            return "# a target without reload metrics\nup 1\n"
        ok = 0 if self.metrics == "failed" else 1
        return (
            f"prometheus_config_last_reload_successful {ok}\n"
            f"prometheus_config_last_reload_success_timestamp_seconds {self.last_reload}\n"
        )

    def close(self) -> None:
        self._closed.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _handler(target: FakeTarget) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def setup(self) -> None:
            _handshake(self.request)
            super().setup()

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _answer(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            target.hits.append(f"GET {self.path}")
            if self.path == "/-/ready":
                self._answer(target.ready_status, b"ready\n")
            elif self.path == "/metrics":
                self._answer(200, target.metrics_text().encode())
            else:
                self._answer(404, b"404 page not found\n")

        def do_POST(self) -> None:
            target.hits.append(f"POST {self.path}")
            if self.path != "/-/reload":
                self._answer(404, b"404 page not found\n")
                return
            target.reloads.append(time.time())
            if target.hang_on_reload:
                target._closed.wait()
                return
            if target.metrics == "fresh" and 200 <= target.reload_status < 300:
                target.last_reload = time.time()
            self._answer(target.reload_status, target.reload_body)

    return Handler
