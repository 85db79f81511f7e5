"""A stand-in for targets the real binaries cannot play: one that hangs on /-/reload,
answers 200 without reloading, or exposes no reload metrics at all."""

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self


class FakeTarget:
    def __init__(
        self,
        *,
        ready_status: int = 200,
        reload_status: int = 200,
        reload_body: bytes = b"",
        hang_on_reload: bool = False,
        metrics: str | None = "fresh",  # "fresh", "stale", "failed", or None: no reload metrics
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
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.reload_url = self.url + "/-/reload"
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

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
