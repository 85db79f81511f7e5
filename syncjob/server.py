"""The --loop HTTP server (stdlib): liveness, readiness, metrics and status.

Liveness is about this process, not about AlertAgent: the original made /health fail
whenever the central service was unreachable and used it as the liveness probe, so
every outage restarted every sidecar. Here an unreachable source shows in /health's
`error`, and only a loop that stopped running passes fails /healthz.
"""

import contextlib
import io
import json
import math
import selectors
import socket
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import BoundedSemaphore, Thread
from typing import Any
from urllib.parse import parse_qs, urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from syncjob import __version__
from syncjob.durations import format_duration
from syncjob.metrics import registry
from syncjob.outcome import Progress
from syncjob.settings import Settings


def stuck_after(settings: Settings) -> float:
    """Seconds without a pass starting or finishing after which the loop is stuck.

    2 x (interval + the longest a pass may legitimately take): every attempt timing
    out on connect and read, the backoffs between them, waiting for the target to be
    ready and verifying its reload, and the checker.
    """
    attempts = settings.max_retries + 1
    longest_pass = (
        attempts * 3 * settings.http_timeout  # connect, read, and the body's deadline
        + settings.max_retries * max(settings.sync_interval, settings.retry_backoff)
        + 2 * (settings.ready_timeout + max(settings.ready_timeout, 2.0))  # reload, rollback
        + settings.check_timeout
    )
    return 2 * (settings.sync_interval + longest_pass)


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


class Views:
    """The JSON documents, built from one Progress (no I/O), with one definition of each
    figure and verdict: /ready, /health, /metrics and /status never disagree."""

    def __init__(self, settings: Settings, worker_alive: Callable[[], bool]) -> None:
        self.settings = settings
        self.stuck_after = stuck_after(settings)
        self.worker_alive = worker_alive

    def alive(self, p: Progress) -> bool:
        """The worker thread runs, and has started or finished a pass lately."""
        recent = time.monotonic() - p.last_activity_mono < self.stuck_after
        return recent and self.worker_alive()

    def verdict(self, p: Progress) -> tuple[str, str]:
        """healthy, degraded (alive, the last pass failed) or unhealthy; and the error."""
        error = "" if p.last is None or p.last.ok else p.last.summary
        if not self.alive(p):
            return "unhealthy", error or (
                f"no pass started or finished for {self.stuck_after:g}s"
                if self.worker_alive()
                else "the worker that runs the passes has stopped"
            )
        return ("degraded" if error else "healthy"), error

    @staticmethod
    def sync_count(p: Progress) -> int:
        """Passes run, counted in the state file: one-shot passes and restarts add up."""
        return p.last.state.counts.runs if p.last and p.last.state else 0

    def health(self, p: Progress) -> dict[str, Any]:
        status, error = self.verdict(p)
        return {
            "status": status,
            "timestamp": _iso(time.time()),
            "uptime": format_duration(time.time() - p.started),
            "version": __version__,
            "cluster_id": self.settings.cluster_id,
            "config_type": self.settings.config_type,
            "last_sync": _iso(p.last_end),
            "error": error,
        }

    def ready(self, p: Progress) -> dict[str, Any]:
        return {
            "ready": p.ready,
            "timestamp": _iso(time.time()),
            "sync_count": self.sync_count(p),
            "uptime": format_duration(time.time() - p.started),
        }

    def metrics(self, p: Progress) -> dict[str, Any]:
        """The original's JSON shape; counts are the state file's, so they survive restarts."""
        state = p.last.state if p.last else None
        counts = state.counts if state else None
        return {
            "last_sync_time": _iso(p.last_end),
            "sync_count": self.sync_count(p),
            "success_count": counts.successes if counts else 0,
            "failure_count": counts.failures if counts else 0,
            "last_error": "" if p.last is None or p.last.ok else p.last.summary,
            "config_hash": (state.applied_hash or "") if state else "",
            "config_version": (state.version or "") if state else "",
            "retry_count": state.consecutive_failures if state else 0,
            "next_sync_time": _iso(p.next_pass),
            "healthy": self.verdict(p)[0] == "healthy",
            "uptime": format_duration(time.time() - p.started),
        }


# What HTTP clients may hold: HTTP_ADDRESS is 0.0.0.0 by default, so anyone who can reach
# the port can open connections and send nothing; the probes must still be answered.
IDLE_TIMEOUT = 5.0  # seconds a connection may stay silent, before or between requests
MAX_ANSWERING = 32  # connections being answered at once, a thread each
MAX_WAITING = 256  # silent connections held (a descriptor each, no thread)

_Address = Any  # what accept() gives: (host, port) for IPv4


class BoundedHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that gives a thread only to a connection that has spoken.

    The stdlib's starts a thread per connection at once and never times it out: 1,000 idle
    connections pinned 1,000 threads and took RSS from 31 to 56 MiB, against a 64Mi limit.
    Here a new connection waits in a selector, without a thread, until its request arrives
    (at most IDLE_TIMEOUT); then one of MAX_ANSWERING threads answers it, or, all busy, it
    is closed at once. Past MAX_WAITING silent connections the oldest is dropped, so a
    probe that connects after a flood of them still gets in, and answered at once.
    """

    daemon_threads = True
    # The listen backlog: a burst of connections waits in the kernel for accept(), rather
    # than in the clients' SYN retries (1 s, then 3 s...).
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self._answering = BoundedSemaphore(MAX_ANSWERING)
        self._waiting: OrderedDict[socket.socket, tuple[float, _Address]] = OrderedDict()
        self._arrivals: deque[tuple[socket.socket, _Address]] = deque()
        self._selector = selectors.DefaultSelector()
        self._wake, self._waker = socket.socketpair()
        self._wake.setblocking(False)
        self._waker.setblocking(False)
        self._selector.register(self._wake, selectors.EVENT_READ)
        self._closing = False
        Thread(target=self._watch, name="http-waiting", daemon=True).start()

    def process_request(self, request: Any, client_address: _Address) -> None:
        """In the accepting thread: to the waiting room, which only this thread fills."""
        self._arrivals.append((request, client_address))
        self._nudge()

    def server_close(self) -> None:
        super().server_close()
        self._closing = True
        self._nudge()

    def _nudge(self) -> None:
        with contextlib.suppress(OSError):  # full: the watcher is due to wake anyway
            self._waker.send(b"\0")

    def _watch(self) -> None:
        """The waiting room: admit arrivals, dispatch whoever speaks, drop the silent."""
        try:
            while not self._closing:
                first = next(iter(self._waiting.values()), None)
                wait = IDLE_TIMEOUT if first is None else first[0] - time.monotonic()
                for key, _ in self._selector.select(max(0.0, wait)):
                    if key.fileobj is self._wake:
                        with contextlib.suppress(OSError):
                            self._wake.recv(4096)
                    else:
                        self._dispatch(key.fileobj)  # type: ignore[arg-type]
                self._admit()
                self._expire()
        finally:
            for conn in list(self._waiting):
                self._drop(conn)
            self._selector.close()
            self._wake.close()
            self._waker.close()

    def _admit(self) -> None:
        while self._arrivals:
            conn, address = self._arrivals.popleft()
            try:
                self._selector.register(conn, selectors.EVENT_READ)
            except (OSError, ValueError):  # gone already: nothing to wait for
                self.shutdown_request(conn)
                continue
            self._waiting[conn] = (time.monotonic() + IDLE_TIMEOUT, address)
            if len(self._waiting) > MAX_WAITING:
                self._drop(next(iter(self._waiting)))

    def _expire(self) -> None:
        now = time.monotonic()
        while self._waiting:
            conn, (deadline, _) = next(iter(self._waiting.items()))
            if deadline > now:
                return
            self._drop(conn)

    def _drop(self, conn: socket.socket) -> None:
        self._selector.unregister(conn)
        del self._waiting[conn]
        self.shutdown_request(conn)

    def _dispatch(self, conn: socket.socket) -> None:
        """A request is arriving: a thread answers it, if one of MAX_ANSWERING is free."""
        self._selector.unregister(conn)
        _, address = self._waiting.pop(conn)
        if not self._answering.acquire(blocking=False):
            self.shutdown_request(conn)
            return
        try:
            Thread(
                target=self._answer, args=(conn, address), name="http-answer", daemon=True
            ).start()
        except RuntimeError:  # no thread to be had
            self._answering.release()
            self.shutdown_request(conn)

    def _answer(self, conn: socket.socket, address: _Address) -> None:
        try:
            self.process_request_thread(conn, address)  # answers, then closes
        finally:
            self._answering.release()


class _PacedReader(io.RawIOBase):
    """A connection's bytes, each read given only what is left of `deadline`: the socket's
    own timeout bounds one read, so a byte every few seconds would hold a thread for ever."""

    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn
        self.deadline = math.inf

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the request took too long to arrive")
        self.conn.settimeout(min(left, IDLE_TIMEOUT))
        return self.conn.recv_into(buffer)


def start_server(
    settings: Settings,
    progress: Callable[[], Progress],
    worker_alive: Callable[[], bool] = lambda: True,
) -> ThreadingHTTPServer:
    views = Views(settings, worker_alive)
    reg = registry(settings, lambda: progress().last)

    class Handler(BaseHTTPRequestHandler):
        server_version = f"syncjob/{__version__}"
        protocol_version = "HTTP/1.1"  # keep-alive for probes and scrapers
        # Headers and body go out as two writes: without TCP_NODELAY, Nagle's algorithm
        # holds the body until the client's delayed ACK, 40 ms per keep-alive request.
        disable_nagle_algorithm = True
        # Writing an answer to a client that reads nothing gives up after this.
        timeout = IDLE_TIMEOUT

        def setup(self) -> None:
            super().setup()
            self.rfile.close()  # unused: its socket reference would keep the socket open
            self._paced = _PacedReader(self.connection)
            self.rfile = io.BufferedReader(self._paced)

        def handle_one_request(self) -> None:
            # The next request, waited for and read, whole within IDLE_TIMEOUT: a client
            # sending a byte every few seconds frees its thread as a silent one does.
            self._paced.deadline = time.monotonic() + IDLE_TIMEOUT
            super().handle_one_request()

        def parse_request(self) -> bool:
            parsed = super().parse_request()  # the request line and headers are in
            self._paced.deadline = math.inf
            self.connection.settimeout(IDLE_TIMEOUT)
            return parsed

        def log_message(self, format: str, *args: Any) -> None:
            pass  # probes every few seconds would drown the pass log

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            p = progress()
            if url.path in ("/healthz", "/health"):
                alive = views.alive(p)
                if url.path == "/health":
                    self._json(200 if alive else 503, views.health(p))
                else:
                    self._send(200 if alive else 503, b"ok\n" if alive else b"stuck\n")
            elif url.path == "/ready":
                self._json(200 if p.ready else 503, views.ready(p))
            elif url.path == "/metrics":
                wants_json = "application/json" in self.headers.get("Accept", "") or parse_qs(
                    url.query
                ).get("format") == ["json"]
                if wants_json:
                    self._json(200, views.metrics(p))
                else:
                    self._send(200, generate_latest(reg), CONTENT_TYPE_LATEST)
            elif url.path == "/status":
                self._json(200, {"health": views.health(p), "metrics": views.metrics(p)})
            else:
                self._send(404, b"not found\n")

        def do_HEAD(self) -> None:
            self.do_GET()

        def _refuse(self) -> None:
            self._send(405, b"method not allowed\n", extra={"Allow": "GET, HEAD"})

        do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse

        def _json(self, status: int, doc: dict[str, Any]) -> None:
            self._send(status, json.dumps(doc).encode() + b"\n", "application/json")

        def _send(
            self,
            status: int,
            body: bytes,
            content_type: str = "text/plain; charset=utf-8",
            extra: dict[str, str] | None = None,
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (extra or {}).items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

    server = BoundedHTTPServer((settings.http_address, settings.http_port), Handler)
    Thread(target=server.serve_forever, args=(0.1,), name="http", daemon=True).start()
    return server
