"""urllib3, configured once: deadlines, size caps, retries, User-Agent, errors translated.

Every exchange with a peer (AlertAgent, the target, the Pushgateway) goes through an
`Exchange`: one deadline for the whole of it (connect, headers, body, and any body read
to let go of an answer), a cap on every body it reads, framing headers read strictly,
and urllib3's errors turned into the project's own error types at this one boundary
(httpx's map_httpcore_exceptions).

Why not urllib3's own timeouts and retries: its read timeout bounds one read, so a peer
that drips a byte a second holds a request for ever; and before following a redirect or
retrying, urlopen drains the answer's body whole (`drain_conn`), however long or slow.
Here every read of a socket is given only what is left of the deadline (`_PacedReader`),
retries are made by hand with urllib3's `Retry` for the schedule (`send_retried`), and an
unwanted body is read only when it is small, else its connection is closed unread.
"""

import base64
import email.utils
import http.client
import io
import logging
import re
import socket
import stat
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import urllib3
import urllib3.connection
from urllib3.exceptions import (
    ConnectTimeoutError,
    DecodeError,
    HTTPError,
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)
from urllib3.util.retry import Retry

from syncjob import __version__, credentials
from syncjob.errors import SyncError, UsageError
from syncjob.files import file_kind
from syncjob.settings import TLS

USER_AGENT = f"syncjob/{__version__}"
log = logging.getLogger(__name__)
RETRY_STATUSES = frozenset([429, *range(500, 600)])
CHUNK = 64 * 1024  # bytes asked of a body at a time (decoded: a gzip bomb stays a chunk)
# An error's words, a redirect's or a retried answer's body: read up to this, never more.
ERROR_BODY_LIMIT = 64 * 1024

# ASCII digits only: str.isdigit() takes '²' and int() then refuses it; 18 digits is
# more than any body, and far below int()'s limit on digits (4300, then ValueError).
_DIGITS = re.compile(r"[0-9]{1,18}")


class MalformedAnswer(Exception):
    """The peer broke the protocol in a header syncjob reads (said as "<peer> sent ...")."""


def content_length(headers: Mapping[str, str]) -> int | None:
    """The declared body size, None if undeclared; MalformedAnswer unless plain digits.

    Two Content-Length headers arrive joined ("5, 5"): refused too, as is a length beside
    chunked framing (RFC 9112 6.3: the shape of request smuggling).
    """
    value = headers.get("Content-Length")
    if value is None:
        return None
    if not _DIGITS.fullmatch(value):
        raise MalformedAnswer(f"a malformed Content-Length header {value!r:.60}")
    if "chunked" in headers.get("Transfer-Encoding", "").lower():
        raise MalformedAnswer("both Content-Length and Transfer-Encoding: chunked")
    return int(value)


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Retry-After in seconds: ASCII digits or an HTTP date; MalformedAnswer otherwise."""
    value = headers.get("Retry-After")
    if value is None:
        return None
    value = value.strip()
    if _DIGITS.fullmatch(value):
        return float(int(value))
    try:
        when = email.utils.parsedate_to_datetime(value) if len(value) <= 64 else None
    except (TypeError, ValueError, IndexError, OverflowError):
        when = None
    if when is None or when.tzinfo is None:
        raise MalformedAnswer(f"a malformed Retry-After header {value!r:.60}")
    return max(0.0, when.timestamp() - time.time())


class Backoff(Retry):
    """urllib3's Retry, with the first retry already waiting `backoff_factor`.

    Stock urllib3 retries the first failure at once (0, 2b, 4b, ...); the setting
    RETRY_BACKOFF promises b, 2b, 4b. Retry-After is honoured but capped at
    `backoff_max`, so a server cannot park a one-shot job for an hour.
    """

    # urllib3 also honours Retry-After on 413; here every 4xx but 429 is final.
    RETRY_AFTER_STATUS_CODES = frozenset({429, 503})

    def get_backoff_time(self) -> float:
        errors = len(self.history)  # redirects never enter it: Source follows them itself
        if errors == 0:
            return 0.0
        return float(min(self.backoff_max, self.backoff_factor * 2 ** (errors - 1)))

    def get_retry_after(self, response: urllib3.BaseHTTPResponse) -> float | None:
        # Read strictly: urllib3's parser int()s any run of digits, and 5000 of them
        # raise ValueError (int's limit on digits), out of urlopen as a crash.
        seconds = retry_after(response.headers)
        return None if seconds is None else min(seconds, self.backoff_max)


def retries(max_retries: int, backoff: float, backoff_max: float) -> Retry:
    """Only connection errors, timeouts, 429 and 5xx are retried; a 4xx is final."""
    return Backoff(
        total=max_retries,
        connect=max_retries,
        read=max_retries,
        status=max_retries,
        other=0,
        redirect=False,  # followed by the caller, who knows which hops are acceptable
        allowed_methods=frozenset({"GET"}),
        status_forcelist=RETRY_STATUSES,
        backoff_factor=backoff,
        backoff_max=max(backoff_max, backoff),
        raise_on_status=False,
        respect_retry_after_header=True,
    )


# --- The deadline: every read of a socket gets only what is left of it ----------------


class Deadline:
    """The time one exchange may take, from the connect to the last byte of its body."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._at = time.monotonic() + seconds

    @property
    def shown(self) -> str:
        """The budget for a message: 2s, not 1.99999s for what was left of a longer wait."""
        return f"{round(self.seconds, 2):g}s"

    def left(self) -> float:
        return self._at - time.monotonic()

    @property
    def passed(self) -> bool:
        return self.left() <= 0

    def timeout(self) -> urllib3.Timeout:
        """For urllib3's connect (and the first read): what is left, never zero (none)."""
        left = max(self.left(), 0.001)
        return urllib3.Timeout(connect=left, read=left)


# The deadline of the exchange whose request is being sent in this thread (or task):
# http.client makes the response object deep inside urlopen, out of reach of arguments.
_deadline: ContextVar[Deadline | None] = ContextVar("syncjob_deadline", default=None)


class _PacedReader(io.RawIOBase):
    """A socket's reads, each allowed only what is left of the exchange's deadline.

    The status line, the headers (a "100 Continue" after another included), chunk sizes
    and body all go through it, so no pace of dripping outlasts the deadline.
    """

    def __init__(self, raw: io.RawIOBase, sock: socket.socket, deadline: Deadline) -> None:
        super().__init__()
        self._raw, self._sock, self._deadline = raw, sock, deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        left = self._deadline.left()
        if left <= 0:
            raise TimeoutError(f"no complete answer within {self._deadline.shown}")
        self._sock.settimeout(left)
        return self._raw.readinto(buffer)

    def close(self) -> None:
        self._raw.close()
        super().close()


class _PacedResponse(http.client.HTTPResponse):
    def __init__(
        self, sock: socket.socket, debuglevel: int = 0, method: str | None = None,
        url: str | None = None,
    ) -> None:  # fmt: skip
        super().__init__(sock, debuglevel, method, url)
        deadline = _deadline.get()
        if deadline is not None:
            raw = self.fp.detach()  # the socket's SocketIO: it keeps the socket open
            self.fp = io.BufferedReader(_PacedReader(raw, sock, deadline))


class _HTTPConnection(urllib3.connection.HTTPConnection):
    response_class = _PacedResponse


class _HTTPSConnection(urllib3.connection.HTTPSConnection):
    response_class = _PacedResponse


class _HTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


def pool(timeout: float, tls: TLS | None = None) -> urllib3.PoolManager:
    """Verified TLS by default: the system's CA store, plus TLS.ca_file when given.

    Its connections read at an Exchange's pace; `timeout` is for requests made outside one.
    """
    manager = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=timeout, read=timeout),
        headers={"User-Agent": USER_AGENT},
        **_tls_options(tls),
    )
    manager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}
    return manager


def _tls_options(tls: TLS | None) -> dict[str, Any]:
    if tls is None or tls == TLS(None, None, None, False):
        return {}  # urllib3's defaults: verify against the system store
    import ssl

    context = ssl.create_default_context()  # the system store, hostname checks on
    # OpenSSL opens them as it likes: a FIFO (or a device) would hold the pass for ever.
    for path in (tls.ca_file, tls.client_cert, tls.client_key):
        _refuse_unless_regular(path)
    try:
        if tls.ca_file:
            context.load_verify_locations(cafile=tls.ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(f"cannot load the CA file {tls.ca_file}: {_tls_reason(exc)}") from None
    try:
        if tls.client_cert:
            context.load_cert_chain(tls.client_cert, tls.client_key)
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(
            f"cannot load the client certificate {tls.client_cert} "
            f"(key {tls.client_key or 'in the same file'}): {_tls_reason(exc)}"
        ) from None
    if tls.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)  # we warn ourselves
        return {"ssl_context": context, "cert_reqs": "CERT_NONE", "assert_hostname": False}
    return {"ssl_context": context}


def _refuse_unless_regular(path: str | None) -> None:
    """UsageError unless `path` (its links followed: a mounted Secret is links) is a
    regular file; a missing one is left to OpenSSL's own message."""
    if not path:
        return
    try:
        mode = Path(path).stat().st_mode
    except OSError:
        return
    if not stat.S_ISREG(mode):
        raise UsageError(f"cannot load {path}: it is {file_kind(mode)}, not a regular file")


def _tls_reason(exc: OSError) -> str:
    return exc.strerror or str(exc.reason if hasattr(exc, "reason") else exc)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, MaxRetryError) and exc.reason is not None:
        exc = exc.reason
    # NewConnectionError is a subclass of ConnectTimeoutError: test it first.
    if isinstance(exc, NewConnectionError):
        # "...: Failed to establish a new connection: [Errno 111] Connection refused"
        return "cannot connect: " + str(exc).rsplit(": ", 1)[-1]
    if isinstance(exc, ConnectTimeoutError):
        return "connection timed out"
    if isinstance(exc, ReadTimeoutError):
        return "timed out waiting for an answer"
    if isinstance(exc, SSLError):
        return f"TLS error: {exc}"
    if isinstance(exc, ProtocolError):
        return f"connection broken: {exc.args[0] if exc.args else exc}"
    # urllib3 quotes URLs in some messages (LocationParseError): never a password.
    return _ANY_USERINFO.sub(r"\1***@", str(exc)) or type(exc).__name__


_ANY_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/?#\s@]*(?:@[^/?#\s@]*)*@")


@contextmanager
def translated(error: type[SyncError], what: str) -> Iterator[None]:
    """Re-raise any urllib3 error as `error("<what>: <reason>")`."""
    try:
        yield
    except HTTPError as exc:
        raise error(f"{what}: {_reason(exc)}") from None


# --- One exchange ------------------------------------------------------------------


class Exchange:
    """One request and its answer within one deadline, every body read under a cap.

    `unavailable` is raised (as "<failed>: <reason>") when the peer cannot be reached,
    is too slow or breaks the connection; `refused` (as "<peer> sent ...") when its
    answer breaks the protocol or a cap. A body cut short is `refused` too, unless `cut`
    says otherwise: where a verdict rests on the body (a reload's metrics), a connection
    reset mid-body says nothing about what was asked.
    """

    def __init__(
        self, pool: urllib3.PoolManager, budget: float, *, failed: str, peer: str,
        unavailable: type[SyncError], refused: type[SyncError],
        cut: type[SyncError] | None = None,
    ) -> None:  # fmt: skip
        self.pool = pool
        self.deadline = Deadline(budget)
        self.failed, self.peer = failed, peer
        self.unavailable, self.refused = unavailable, refused
        self.cut = cut or refused

    def send(
        self, method: str, url: str, *, headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
    ) -> urllib3.BaseHTTPResponse:  # fmt: skip
        """The answer's status and headers; its body is left to `read`, `words` or
        `discard` (one of them must be called)."""
        try:
            response = self._request(method, url, headers, body)
        except HTTPError as exc:
            raise self.broken(exc) from None
        self.check(response)
        return response

    def _request(
        self, method: str, url: str, headers: Mapping[str, str] | None, body: bytes | None
    ) -> urllib3.BaseHTTPResponse:
        """urllib3's request, its errors left to the caller: no retries, no redirects."""
        token = _deadline.set(self.deadline)
        try:
            return self.pool.request(
                method, url, body=body, headers=headers, retries=False, redirect=False,
                preload_content=False, timeout=self.deadline.timeout(),
            )  # fmt: skip
        finally:
            _deadline.reset(token)

    def check(self, response: urllib3.BaseHTTPResponse) -> None:
        """The framing headers, read strictly; the answer is dropped when they are not."""
        try:
            content_length(response.headers)
        except MalformedAnswer as exc:
            self.drop(response)
            raise self.refused(f"{self.peer} sent {exc}") from None

    def broken(self, exc: BaseException) -> SyncError:
        """The error to raise for a urllib3 error while the request was made."""
        if self.deadline.passed or isinstance(_unwrapped(exc), ReadTimeoutError):
            reason = f"timed out: no answer within {self.deadline.shown}"
        else:
            reason = _reason(exc)
        return self.unavailable(f"{self.failed}: {reason}")

    def read(
        self, response: urllib3.BaseHTTPResponse, limit: int, *,
        into: Callable[[bytes], object] | None = None, setting: str = "",
    ) -> bytes:  # fmt: skip
        """The whole body (or b"" when it goes `into` a sink as it comes), refused as
        soon as it passes `limit` bytes, decoded, or the deadline."""
        cap = f"the cap of {limit} bytes" + (f" ({setting})" if setting else "")
        declared = content_length(response.headers)  # checked by send()
        if declared is not None and declared > limit:
            self.drop(response)
            raise self.refused(f"{self.peer} sent a body of {declared} bytes, over {cap}")
        chunks: list[bytes] = []
        if not self._stream(response, limit, into or chunks.append):
            self.drop(response)
            raise self.refused(f"{self.peer} sent a body over {cap}")
        response.release_conn()
        return b"".join(chunks)

    def words(self, response: urllib3.BaseHTTPResponse) -> bytes:
        """The start of an error answer's body, for its words: up to ERROR_BODY_LIMIT,
        or what came before the deadline or a break; the rest is never read."""
        chunks: list[bytes] = []
        try:
            complete = self._stream(response, ERROR_BODY_LIMIT, chunks.append)
        except SyncError:
            complete = False
        if complete:
            response.release_conn()
        else:
            self.drop(response)
        return b"".join(chunks)

    def discard(self, response: urllib3.BaseHTTPResponse) -> None:
        """Let go of an unwanted body: read when it is declared small, so the connection
        can serve the next request; else the connection is closed with it unread."""
        try:
            declared = content_length(response.headers)
        except MalformedAnswer:
            declared = None
        if declared is not None and declared <= ERROR_BODY_LIMIT:
            try:
                if self._stream(response, ERROR_BODY_LIMIT, lambda _: None):
                    response.release_conn()
                    return
            except SyncError:
                pass
        self.drop(response)

    @staticmethod
    def drop(response: urllib3.BaseHTTPResponse) -> None:
        """Close the answer's connection unread (the pool opens a new one next time)."""
        response.close()
        response.release_conn()

    def _stream(
        self, response: urllib3.BaseHTTPResponse, limit: int, sink: Callable[[bytes], object]
    ) -> bool:
        """Feed the body to `sink` in bounded chunks: True when it ended within `limit`
        bytes, False when it went past (up to `limit` bytes were fed)."""
        size = 0
        try:
            # read1: one bounded read each time (read(n) on a chunk size of "-5" reads
            # to the end of the stream, in http.client); decoded, so a gzip bomb counts
            # what it inflates to.
            while chunk := response.read1(CHUNK):
                size += len(chunk)
                if size > limit:
                    sink(chunk[: len(chunk) - (size - limit)])
                    return False
                sink(chunk)
        except HTTPError as exc:
            self.drop(response)
            if self.deadline.passed or isinstance(exc, ReadTimeoutError):
                raise self.unavailable(
                    f"{self.failed}: body not received within {self.deadline.shown}"
                ) from None
            if isinstance(exc, DecodeError):
                raise self.refused(f"{self.peer} sent a body that cannot be decoded") from None
            raise self.cut(f"{self.peer} sent a body cut short: {_reason(exc)}") from None
        except BaseException:  # the sink failed (a full disk): the answer is left unread
            self.drop(response)
            raise
        return True


def send_retried(
    exchange: Callable[[], Exchange], method: str, url: str, headers: Mapping[str, str],
    retry: Retry,
) -> tuple[Exchange, urllib3.BaseHTTPResponse, int]:  # fmt: skip
    """Send, retrying as `retry` says, each attempt a new `exchange()` with its own
    deadline: the last attempt's exchange, its answer, and how many retries it took.

    urllib3's Retry decides and waits (backoff, Retry-After); the loop is here so that a
    retried answer's body is let go of by `Exchange.discard`, never drained whole.
    """
    while True:
        attempt = exchange()
        try:
            response = attempt._request(method, url, headers, None)
        except HTTPError as exc:
            try:
                retry = retry.increment(method, url, error=exc)
            except HTTPError:  # MaxRetryError, or the error itself when not retryable
                raise attempt.broken(exc) from None
            _say_retry(method, url, retry, _plain(_reason(exc)))
            retry.sleep()
            continue
        attempt.check(response)
        try:
            wanted = retry.is_retry(method, response.status, "Retry-After" in response.headers)
            if not wanted:
                return attempt, response, len(retry.history)
            try:
                retry = retry.increment(method, url, response=response)
            except MaxRetryError:
                return attempt, response, len(retry.history)
            attempt.discard(response)
            _say_retry(method, url, retry, f"HTTP {response.status}", response)
            retry.sleep(response)
        except MalformedAnswer as exc:
            attempt.drop(response)
            raise attempt.refused(f"{attempt.peer} sent {exc}") from None


def _say_retry(
    method: str, url: str, retry: Retry, why: str,
    response: urllib3.BaseHTTPResponse | None = None,
) -> None:  # fmt: skip
    """One plain line per retry, naming what is retried, when, and why (urllib3's own
    warnings, full of its internals, are silenced in output.setup_logging)."""
    delay = None
    if response is not None and retry.respect_retry_after_header:
        delay = retry.get_retry_after(response)
    if delay is None:
        delay = retry.get_backoff_time()
    attempt = len(retry.history) + 1
    left = retry.total if isinstance(retry.total, int) else 0
    log.warning(
        "retrying %s %s in %gs (attempt %d of %d): %s",
        method, redacted(url), delay, attempt, attempt + left, why,
    )  # fmt: skip


def _plain(reason: str) -> str:
    """`cannot connect: [Errno 111] Connection refused` as `cannot connect: connection
    refused`: a retry line is read by a person watching the log."""
    plain = re.sub(r"\[Errno -?\d+\] ", "", reason)
    return re.sub(r": ([A-Z])(?=[a-z])", lambda m: ": " + m[1].lower(), plain)


def redacted(url: str) -> str:
    """`url` fit for a message: the password of its userinfo (or a userinfo that may be
    a token) replaced by ***, as in http://user:***@host/."""
    match = _USERINFO.match(url)
    if match is None:
        return url
    user, colon, _ = match[2].partition(":")
    shown = f"{user}:***" if colon else "***"
    return f"{match[1]}{shown}@{url[match.end() :]}"


# scheme://userinfo@ ; the userinfo runs to the last '@' before the path, like urlsplit
_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)([^/?#]*)@")


def _unwrapped(exc: BaseException) -> BaseException:
    if isinstance(exc, MaxRetryError) and exc.reason is not None:
        return exc.reason
    return exc


# What an Authorization header can carry: a secret with a line break or a control
# character in it would make http.client raise, with the secret in the message.
_HEADER_TEXT = re.compile(r"[\x20-\x7e]+")
# Basic credentials go out as base64 of their UTF-8 (what browsers and Go send), so any
# text will do but line breaks and control characters, refused as in a token.
_LINE_OR_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def authorization(
    token_file: str | None, basic_auth_file: str | None, token: str | None
) -> str | None:
    """The Authorization header, its secret read now: a rotated Secret is picked up
    at the next pass without a restart. Errors name the file, never what is in it."""
    where, secret, scheme = "ALERTAGENT_TOKEN", token, "Bearer"
    if token_file:
        where, secret = token_file, credentials.read(token_file)
    elif basic_auth_file:
        where, secret, scheme = basic_auth_file, credentials.read(basic_auth_file), "Basic"
    if not secret:
        return None
    if scheme == "Basic":
        sendable = not _LINE_OR_CONTROL.search(secret)
    else:
        sendable = bool(_HEADER_TEXT.fullmatch(secret))  # a token goes as it is
    if not sendable:
        raise UsageError(f"the credentials in {where} hold characters a header cannot carry")
    if scheme == "Basic":
        secret = base64.b64encode(secret.encode()).decode()
    return f"{scheme} {secret}"
