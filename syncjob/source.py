"""Fetch a config from AlertAgent over HTTP: conditional, retried, size-capped."""

import logging
import re
from functools import partial
from urllib.parse import urlencode, urljoin

import urllib3
from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from syncjob import dialects, transport
from syncjob.dialects import Fetched
from syncjob.errors import ContentRefused, SourceUnavailable, SyncError
from syncjob.files import Spool
from syncjob.settings import Settings

log = logging.getLogger(__name__)

MAX_REDIRECTS = 3
REDIRECTS = (301, 302, 303, 307, 308)


class Source:
    """AlertAgent's config endpoint for one (cluster, type)."""

    def __init__(self, settings: Settings, pool: urllib3.PoolManager | None = None) -> None:
        self.settings = settings
        self.url = f"{settings.endpoint}{settings.api_path}?" + urlencode(
            {"cluster_id": settings.cluster_id, "type": settings.config_type}
        )
        self.timeout = settings.http_timeout
        self.max_body = settings.max_body_size
        self.retries = transport.retries(
            settings.max_retries, settings.retry_backoff, backoff_max=settings.sync_interval
        )
        self.pool = pool or transport.pool(settings.http_timeout, settings.tls())

    def fetch(self, if_none_match: str | None, into: Spool) -> Fetched | None:
        """The config, its bytes written `into` the spool; None when the source says it
        is unchanged (304)."""
        s = self.settings
        if s.insecure_skip_verify:
            log.warning("AlertAgent's TLS certificate is not verified (--insecure-skip-verify)")
        if s.token and not s.token_file:
            log.warning("the token comes from ALERTAGENT_TOKEN: use ALERTAGENT_TOKEN_FILE instead")
        # Headers given to request() replace the pool's, User-Agent included.
        headers = {
            "User-Agent": transport.USER_AGENT,
            "Accept": "application/json, application/yaml;q=0.9, */*;q=0.5",
        }
        if auth := transport.authorization(s.token_file, s.basic_auth_file, s.token):
            headers["Authorization"] = auth
        if if_none_match:
            headers["If-None-Match"] = if_none_match
        exchange, response, retries_used = self._follow(self.url, headers)
        if response.status == 304:
            exchange.discard(response)
            if not if_none_match:
                raise ContentRefused("source answered 304 to a request that was not conditional")
            return None
        if response.status != 200:
            try:
                dialects.check_status(response.status, exchange.words(response), retries_used)
            except SyncError as exc:  # the answer's words, and what was asked of whom
                hint = (
                    " (check ALERTAGENT_API_PATH and CLUSTER_ID)" if response.status == 404 else ""
                )
                raise type(exc)(f"{exc}: GET {transport.redacted(self.url)}{hint}") from None
        if dialects.is_envelope(response.headers):
            body = self._read(exchange, response)  # JSON: whole, in memory, up to the cap
            fetched, content = dialects.parse(response.headers, body)
            into.write(content)
            return fetched
        self._read(exchange, response, into)  # the config itself: streamed to disk as it comes
        return dialects.check_raw(response.headers, into.head, into.sha256)

    def _exchange(self, url: str) -> transport.Exchange:
        """One attempt: HTTP_TIMEOUT for all of it, connect to the body's last byte."""
        return transport.Exchange(
            self.pool, self.timeout, failed=f"source unavailable: GET {transport.redacted(url)}",
            peer="source",
            unavailable=SourceUnavailable, refused=ContentRefused,
        )  # fmt: skip

    def _follow(
        self, url: str, headers: dict[str, str]
    ) -> tuple[transport.Exchange, urllib3.BaseHTTPResponse, int]:
        """GET, following a few redirects: same scheme or up to https, and credentials
        only ever to the host they were given for. The answer's exchange (its deadline
        bounds the body still to read), the answer, and the retries it took."""
        origin = _where(url)
        for _ in range(MAX_REDIRECTS + 1):
            exchange, response, retries_used = transport.send_retried(
                partial(self._exchange, url), "GET", url, headers, self.retries
            )
            log.debug("GET %s: HTTP %d", transport.redacted(url), response.status)
            location = response.headers.get("Location")
            if response.status not in REDIRECTS or not location:
                return exchange, response, retries_used
            exchange.discard(response)  # a redirect's body: never drained whole
            # Decided with the parser urllib3 connects with: `http://a\@b/` must not be
            # judged as host b and then connected to a with our credentials.
            if _MALFORMED.search(location):
                raise SourceUnavailable(
                    f"source redirected to a malformed location {location!r:.100}"
                )
            try:
                next_url = urljoin(url, location)
            except ValueError:  # e.g. a broken IPv6 literal
                raise SourceUnavailable(
                    f"source redirected to an unusable location {location!r:.100}"
                ) from None
            here, there = _where(url), _where(next_url)
            if (here[0], there[0]) not in (("http", "http"), ("https", "https"), ("http", "https")):
                raise SourceUnavailable(f"source redirected from {here[0]} to {there[0]}: refused")
            if there[1:] != origin[1:]:
                headers = {k: v for k, v in headers.items() if k != "Authorization"}
            url = next_url
        raise SourceUnavailable(f"source redirected more than {MAX_REDIRECTS} times")

    def _read(
        self, exchange: transport.Exchange, response: urllib3.BaseHTTPResponse,
        into: Spool | None = None,
    ) -> bytes:  # fmt: skip
        """The whole body (or nothing, when it goes `into` a spool), refused as soon as it
        passes MAX_BODY_SIZE, and cut off when the attempt's deadline passes: a source
        dripping one byte a second never trips a per-read timeout."""
        return exchange.read(
            response, self.max_body, into=into.write if into else None, setting="MAX_BODY_SIZE"
        )


_MALFORMED = re.compile(r"[\\\s\x00-\x1f\x7f]")  # backslashes, whitespace, control characters


def _where(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) as urllib3 will connect; SourceUnavailable when unparsable."""
    try:
        parsed = parse_url(url)
        scheme = parsed.scheme or "http"
        return (
            scheme,
            (parsed.host or "").lower(),
            parsed.port or (443 if scheme == "https" else 80),
        )
    except (LocationParseError, ValueError):
        raise SourceUnavailable(f"source redirected to an unusable location {url!r:.100}") from None
