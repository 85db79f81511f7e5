"""urllib3, configured once: the retry schedule, what is retried, and its errors in our words."""

import http.server
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)

from syncjob import __version__, transport
from syncjob.errors import (
    ContentRefused,
    ExitCode,
    SourceUnavailable,
    SyncError,
    TargetUnreachable,
)
from syncjob.transport import Backoff, Exchange, redacted, retries, translated
from tests.hostile_peer import Answer, HostilePeer


def answer(status: int, headers: dict[str, str] | None = None) -> urllib3.HTTPResponse:
    return urllib3.HTTPResponse(status=status, headers=headers or {})


def after(retry: urllib3.Retry, *statuses: int) -> urllib3.Retry:
    for status in statuses:
        retry = retry.increment(method="GET", url="/api/v1/configs", response=answer(status))
    return retry


# The schedule: RETRY_BACKOFF b promises b, 2b, 4b, ... capped at backoff_max.


def test_retries_is_our_backoff() -> None:
    retry = retries(3, 5.0, 30.0)
    assert isinstance(retry, Backoff)
    assert isinstance(after(retry, 503), Backoff)  # urllib3's new() keeps the class


@pytest.mark.parametrize(
    ("failures", "wait"),
    [(0, 0.0), (1, 5.0), (2, 10.0), (3, 20.0)],
)
def test_backoff_is_b_2b_4b(failures: int, wait: float) -> None:
    retry = after(retries(3, 5.0, 60.0), *[503] * failures)
    assert retry.get_backoff_time() == wait


def test_backoff_is_capped() -> None:
    retry = after(retries(10, 5.0, 30.0), *[503] * 6)
    assert retry.get_backoff_time() == 30.0


def test_cap_is_never_below_the_first_wait() -> None:
    # SYNC_INTERVAL shorter than RETRY_BACKOFF must not cut the promised first wait.
    assert after(retries(3, 5.0, 1.0), 503).get_backoff_time() == 5.0


def test_redirects_are_left_to_the_caller() -> None:
    # Source follows them itself, refusing downgrades and keeping credentials home.
    retry = retries(3, 5.0, 60.0)
    assert (retry.redirect, retry.raise_on_redirect) == (0, False)


def test_max_retries_means_retries_after_the_first_attempt() -> None:
    retry = after(retries(3, 0.0, 0.0), 503, 503, 503)
    assert len(retry.history) == 3
    with pytest.raises(MaxRetryError):
        after(retry, 503)


def test_zero_retries_tries_once() -> None:
    with pytest.raises(MaxRetryError):
        after(retries(0, 5.0, 30.0), 503)


@pytest.mark.parametrize(("header", "wait"), [("3600", 30.0), ("7", 7.0), ("0", 0.0)])
def test_retry_after_is_honoured_but_capped(header: str, wait: float) -> None:
    retry = retries(3, 5.0, 30.0)
    assert retry.get_retry_after(answer(503, {"Retry-After": header})) == wait


def test_no_retry_after_header() -> None:
    assert retries(3, 5.0, 30.0).get_retry_after(answer(503)) is None


# What is retried: 429 and 5xx on GET; a 4xx is final.


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504, 599])
def test_429_and_5xx_are_retried(status: int) -> None:
    assert retries(3, 5.0, 30.0).is_retry("GET", status)


@pytest.mark.parametrize("status", [200, 204, 301, 304, 400, 401, 403, 404, 409, 410, 422])
def test_other_statuses_are_final(status: int) -> None:
    retry = retries(3, 5.0, 30.0)
    assert not retry.is_retry("GET", status)
    assert not retry.is_retry("GET", status, has_retry_after=True)


def test_413_with_retry_after_is_final() -> None:
    assert not retries(3, 5.0, 30.0).is_retry("GET", 413, has_retry_after=True)


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_only_get_is_retried(method: str) -> None:
    # POST /-/reload twice could reload twice: never retried.
    assert not retries(3, 5.0, 30.0).is_retry(method, 503)


# The same, over real HTTP on loopback.


class Scripted(http.server.BaseHTTPRequestHandler):
    """Answers each request with the next status of the server's script."""

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def _answer(self) -> None:
        server: ScriptedServer = self.server  # type: ignore[assignment]
        status, headers = server.script.pop(0) if server.script else (200, {})
        server.seen.append((self.command, self.headers.get("User-Agent")))
        body = b"ok" if status == 200 else f"status {status}".encode()
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class ScriptedServer(http.server.ThreadingHTTPServer):
    script: list[tuple[int, dict[str, str]]]
    seen: list[tuple[str, str | None]]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/api/v1/configs"


@pytest.fixture(scope="module")
def running_server() -> Iterator[ScriptedServer]:
    httpd = ScriptedServer(("127.0.0.1", 0), Scripted)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


@pytest.fixture
def server(running_server: ScriptedServer) -> ScriptedServer:
    running_server.script, running_server.seen = [], []
    return running_server


def get(
    server: ScriptedServer, retry: urllib3.Retry, method: str = "GET"
) -> urllib3.BaseHTTPResponse:
    with transport.pool(5.0) as pool:
        return pool.request(method, server.url, retries=retry)


def test_5xx_then_success_over_http(server: ScriptedServer) -> None:
    server.script = [(503, {}), (502, {})]
    response = get(server, retries(3, 0.0, 0.0))
    assert response.status == 200
    assert len(response.retries.history) == 2
    assert len(server.seen) == 3


def test_retries_spent_gives_the_last_answer(server: ScriptedServer) -> None:
    server.script = [(503, {})] * 10
    response = get(server, retries(3, 0.0, 0.0))
    assert (response.status, response.data) == (503, b"status 503")  # for check_status
    assert len(response.retries.history) == 3
    assert len(server.seen) == 4


@pytest.mark.parametrize("status", [400, 401, 404])
def test_4xx_is_not_retried_over_http(server: ScriptedServer, status: int) -> None:
    server.script = [(status, {})] * 3
    response = get(server, retries(3, 0.0, 0.0))
    assert response.status == status
    assert len(server.seen) == 1


def test_post_is_not_retried_over_http(server: ScriptedServer) -> None:
    server.script = [(503, {})] * 3
    assert get(server, retries(3, 0.0, 0.0), method="POST").status == 503
    assert len(server.seen) == 1


def test_a_server_cannot_park_a_one_shot_job(server: ScriptedServer) -> None:
    server.script = [(429, {"Retry-After": "3600"}), (503, {"Retry-After": "3600"})]
    started = time.monotonic()
    response = get(server, retries(3, 0.0, 0.0))  # backoff_max 0: Retry-After capped to 0
    assert response.status == 200
    assert time.monotonic() - started < 30


def test_pool_sends_our_user_agent(server: ScriptedServer) -> None:
    get(server, retries(0, 0.0, 0.0))
    assert server.seen == [("GET", f"syncjob/{__version__}")]


def test_pool_timeouts() -> None:
    with transport.pool(7.5) as pool:
        timeout = pool.connection_pool_kw["timeout"]
    assert (timeout.connect_timeout, timeout.read_timeout) == (7.5, 7.5)


# Errors, translated once at the boundary.


@pytest.fixture
def refusing_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound, never listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that accepts the connection (backlog) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock.getsockname()[1]


def fetch_translated(
    port: int, error: type[SyncError], retry: urllib3.Retry | bool, timeout: float = 5.0
) -> SyncError:
    what = f"{error.__name__} at 127.0.0.1:{port}"
    with pytest.raises(error) as info, translated(error, what), transport.pool(timeout) as pool:
        pool.request("GET", f"http://127.0.0.1:{port}/api/v1/configs", retries=retry)
    assert type(info.value) is error
    assert str(info.value).startswith(f"{what}: ")
    assert "\n" not in str(info.value)
    assert info.value.__cause__ is None  # no urllib3 chain in the traceback
    assert info.value.__suppress_context__
    return info.value


# retries=False raises urllib3's own error; a Retry raises MaxRetryError wrapping it.
NO_RETRY = [pytest.param(False, id="bare"), pytest.param(retries(0, 0.0, 0.0), id="max-retry")]


@pytest.mark.parametrize("retry", NO_RETRY)
@pytest.mark.parametrize("error", [SourceUnavailable, TargetUnreachable])
def test_refused_connection_becomes_the_given_error(
    refusing_port: int, retry: object, error: type[SyncError]
) -> None:
    exc = fetch_translated(refusing_port, error, retry)  # type: ignore[arg-type]
    assert exc.exit_code == {SourceUnavailable: ExitCode.UNAVAILABLE,
                             TargetUnreachable: ExitCode.TRY_LATER}[error]  # fmt: skip


@pytest.mark.parametrize("retry", NO_RETRY)
def test_refused_connection_says_it_was_refused(refusing_port: int, retry: object) -> None:
    exc = fetch_translated(refusing_port, SourceUnavailable, retry)  # type: ignore[arg-type]
    # urllib3's NewConnectionError is a ConnectTimeoutError: not "connection timed out"
    assert str(exc).endswith(": cannot connect: [Errno 111] Connection refused")


@pytest.mark.parametrize("retry", NO_RETRY)
def test_silent_server_is_a_read_timeout(silent_port: int, retry: object) -> None:
    exc = fetch_translated(silent_port, SourceUnavailable, retry, timeout=0.05)  # type: ignore[arg-type]
    assert str(exc).endswith(": timed out waiting for an answer")


@pytest.mark.parametrize(
    ("raised", "reason"),
    [
        (
            ReadTimeoutError(None, "/", "Read timed out. (read timeout=30)"),  # type: ignore[arg-type]
            "timed out waiting for an answer",
        ),
        (
            ConnectTimeoutError(None, "Connection to alertagent timed out. (connect timeout=30)"),
            "connection timed out",
        ),
        (
            MaxRetryError(None, "/", ReadTimeoutError(None, "/", "Read timed out.")),  # type: ignore[arg-type]
            "timed out waiting for an answer",
        ),
        (
            ProtocolError("Connection aborted.", ConnectionResetError(104, "reset")),
            "connection broken: Connection aborted.",
        ),
        (MaxRetryError(None, "/", None), "Max retries exceeded with url: /"),  # type: ignore[arg-type]
    ],
)
def test_translated_messages(raised: Exception, reason: str) -> None:
    with (
        pytest.raises(TargetUnreachable) as info,
        translated(TargetUnreachable, "target unreachable at http://localhost:9090/-/reload"),
    ):
        raise raised
    message = str(info.value)
    assert message.startswith("target unreachable at http://localhost:9090/-/reload: ")
    assert reason in message
    assert "\n" not in message
    assert info.value.exit_code == ExitCode.TRY_LATER


def test_translated_new_connection_error_message() -> None:
    refused = NewConnectionError(
        None,  # type: ignore[arg-type]
        "Failed to establish a new connection: [Errno 111] Connection refused",
    )
    with pytest.raises(SourceUnavailable) as info, translated(SourceUnavailable, "source"):
        raise MaxRetryError(None, "/api/v1/configs", refused)  # type: ignore[arg-type]
    assert str(info.value) == "source: cannot connect: [Errno 111] Connection refused"


def test_other_exceptions_pass_through() -> None:
    with pytest.raises(KeyError), translated(SourceUnavailable, "source unavailable"):
        raise KeyError("a bug, not a network error")


def _exchange(pool: urllib3.PoolManager, budget: float = 5.0) -> Exchange:
    return Exchange(
        pool, budget, failed="source unavailable", peer="source",
        unavailable=SourceUnavailable, refused=ContentRefused,
    )  # fmt: skip


def test_body_read_timeout_is_unavailable() -> None:
    # The headers at once, then the body a byte every 0.2 s: the deadline ends it.
    slow = Answer(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", b"x" * 100, drip=0.2,
                  head_at_once=True)  # fmt: skip
    with HostilePeer([slow]) as peer, transport.pool(5.0) as pool:
        exchange = _exchange(pool, budget=0.5)
        response = exchange.send("GET", peer.url)
        with pytest.raises(SourceUnavailable, match=r"body not received within 0\.5s") as info:
            exchange.read(response, 1000)
    assert "\n" not in str(info.value)


def test_body_cut_short_is_refused() -> None:
    # Over real HTTP: Content-Length promises 100 bytes, the server sends 5 and hangs up.
    short = Answer(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort")
    with HostilePeer([short]) as peer, transport.pool(5.0) as pool:
        exchange = _exchange(pool)
        response = exchange.send("GET", peer.url)
        with pytest.raises(ContentRefused, match="source sent a body cut short: ") as info:
            exchange.read(response, 1000)
    assert "\n" not in str(info.value)


def test_a_small_unwanted_body_keeps_the_connection_a_large_one_closes_it() -> None:
    small = Answer(b"HTTP/1.1 503 Busy\r\nContent-Length: 4\r\n\r\nbusy", close=False)
    large = Answer(b"HTTP/1.1 503 Busy\r\nContent-Length: 99999999\r\n\r\n", b"x" * 1000,
                   close=False)  # fmt: skip
    with HostilePeer([small, large, small]) as peer, transport.pool(5.0) as pool:
        for _ in range(3):
            exchange = _exchange(pool)
            exchange.discard(exchange.send("GET", peer.url))
        connections = peer.connections
    assert connections == 2  # the second answer's connection was dropped, not drained


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://user:pa55@host:9091/x", "http://user:***@host:9091/x"),
        ("https://user:p@ss:w@rd@host/", "https://user:***@host/"),
        ("http://t0ken@host/", "http://***@host/"),
        ("http://host/path?a=b@c", "http://host/path?a=b@c"),
        ("http://host:9090/-/reload", "http://host:9090/-/reload"),
        ("not a url", "not a url"),
    ],
)
def test_redacted_hides_a_urls_password(url: str, shown: str) -> None:
    assert redacted(url) == shown


@pytest.mark.parametrize(("header", "wait"), [("Thu, 01 Jan 1970 00:00:00 GMT", 0.0), (" 7 ", 7.0)])
def test_retry_after_as_a_date_or_with_spaces(header: str, wait: float) -> None:
    assert retries(3, 5.0, 30.0).get_retry_after(answer(503, {"Retry-After": header})) == wait


@pytest.mark.parametrize("header", ["9" * 5000, "soon", "\u0663", "-1", "1.5"])
def test_a_malformed_retry_after_is_a_protocol_error(header: str) -> None:
    with pytest.raises(transport.MalformedAnswer, match="malformed Retry-After"):
        retries(3, 5.0, 30.0).get_retry_after(answer(503, {"Retry-After": header}))
