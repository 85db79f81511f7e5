"""urllib3, configured once: timeouts, retries, User-Agent, and its errors translated.

urllib3 errors never leave this module's callers: `translated()` turns them into
the project's own error types at the boundary (httpx's map_httpcore_exceptions).
"""

import base64
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)
from urllib3.util.retry import Retry

from syncjob import __version__
from syncjob.errors import ContentRefused, SourceUnavailable, SyncError, UsageError
from syncjob.settings import TLS

USER_AGENT = f"syncjob/{__version__}"
RETRY_STATUSES = frozenset([429, *range(500, 600)])


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
        seconds = super().get_retry_after(response)
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


def pool(timeout: float, tls: TLS | None = None) -> urllib3.PoolManager:
    """Verified TLS by default: the system's CA store, plus TLS.ca_file when given."""
    return urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=timeout, read=timeout),
        headers={"User-Agent": USER_AGENT},
        **_tls_options(tls),
    )


def _tls_options(tls: TLS | None) -> dict[str, Any]:
    if tls is None or tls == TLS(None, None, None, False):
        return {}  # urllib3's defaults: verify against the system store
    import ssl

    context = ssl.create_default_context()  # the system store, hostname checks on
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
    return str(exc) or type(exc).__name__


@contextmanager
def translated(error: type[SyncError], what: str) -> Iterator[None]:
    """Re-raise any urllib3 error as `error("<what>: <reason>")`."""
    try:
        yield
    except HTTPError as exc:
        raise error(f"{what}: {_reason(exc)}") from None


@contextmanager
def reading_body() -> Iterator[None]:
    """Errors while a body streams in: slow is unavailable, cut short is refused."""
    try:
        yield
    except ReadTimeoutError:
        raise SourceUnavailable("source timed out sending the body") from None
    except HTTPError as exc:
        raise ContentRefused(f"body cut short: {_reason(exc)}") from None


# What an Authorization header can carry: a secret with a line break or a control
# character in it would make http.client raise, with the secret in the message.
_HEADER_TEXT = re.compile(r"[\x20-\x7e]+")


def authorization(
    token_file: str | None, basic_auth_file: str | None, token: str | None
) -> str | None:
    """The Authorization header, its secret read now: a rotated Secret is picked up
    at the next pass without a restart. Errors name the file, never what is in it."""
    where, secret, scheme = "ALERTAGENT_TOKEN", token, "Bearer"
    try:
        if token_file:
            where = token_file
            secret = Path(token_file).read_text().strip()
        elif basic_auth_file:
            where, scheme = basic_auth_file, "Basic"
            secret = Path(basic_auth_file).read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not text"
        raise UsageError(f"cannot read the credentials file {where}: {reason}") from None
    if not secret:
        return None
    if not _HEADER_TEXT.fullmatch(secret):
        raise UsageError(f"the credentials in {where} hold characters a header cannot carry")
    if scheme == "Basic":
        secret = base64.b64encode(secret.encode()).decode()
    return f"{scheme} {secret}"
