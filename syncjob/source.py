"""Fetch a config from AlertAgent over HTTP: conditional, retried, size-capped."""

import time
from urllib.parse import urlencode

import urllib3

from syncjob import dialects, transport
from syncjob.dialects import Fetched
from syncjob.errors import ContentRefused, SourceUnavailable
from syncjob.settings import Settings

CHUNK = 64 * 1024


class Source:
    """AlertAgent's config endpoint for one (cluster, type)."""

    def __init__(self, settings: Settings, pool: urllib3.PoolManager | None = None) -> None:
        self.url = f"{settings.endpoint}{settings.api_path}?" + urlencode(
            {"cluster_id": settings.cluster_id, "type": settings.config_type}
        )
        self.timeout = settings.http_timeout
        self.max_body = settings.max_body_size
        self.retries = transport.retries(
            settings.max_retries, settings.retry_backoff, backoff_max=settings.sync_interval
        )
        self.pool = pool or transport.pool(settings.http_timeout)

    def fetch(self, if_none_match: str | None = None) -> Fetched | None:
        """The config, or None when the source says it is unchanged (304)."""
        # Headers given to request() replace the pool's, User-Agent included.
        headers = {
            "User-Agent": transport.USER_AGENT,
            "Accept": "application/json, application/yaml;q=0.9, */*;q=0.5",
        }
        if if_none_match:
            headers["If-None-Match"] = if_none_match
        with transport.translated(SourceUnavailable, "source unavailable"):
            response = self.pool.request(
                "GET", self.url, headers=headers, retries=self.retries, preload_content=False
            )
        try:
            if response.status == 304:
                if not if_none_match:
                    raise ContentRefused(
                        "source answered 304 to a request that was not conditional"
                    )
                return None
            body = self._read(response)
            retries_used = len(response.retries.history) if response.retries else 0
            dialects.check_status(response.status, body, retries_used)
            return dialects.parse(response.headers, body)
        finally:
            response.release_conn()

    def _read(self, response: urllib3.BaseHTTPResponse) -> bytes:
        """The whole body, refused as soon as it passes the cap or the deadline.

        The deadline bounds the whole body, not each read: a source dripping one
        byte a second never trips a per-read timeout.
        """
        declared = response.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > self.max_body:
            raise ContentRefused(f"body of {declared} bytes is over the cap of {self.max_body}")
        deadline = time.monotonic() + self.timeout
        chunks, size = [], 0
        with transport.reading_body():
            while chunk := response.read1(CHUNK):
                size += len(chunk)
                if size > self.max_body:
                    raise ContentRefused(f"body is over the cap of {self.max_body} bytes")
                if time.monotonic() > deadline:
                    raise SourceUnavailable(f"body not received within {self.timeout:g}s")
                chunks.append(chunk)
        return b"".join(chunks)
