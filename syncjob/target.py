"""The target (Prometheus, Alertmanager): wait until it is ready, reload, and check it took.

"POST /-/reload and hope" is not enough: a 2xx can come with a failed or stale reload.
The target's own metrics say whether its last reload succeeded and when.
"""

import logging
import re
import time

import urllib3

from syncjob import transport
from syncjob.dialects import server_message
from syncjob.errors import TargetRejected, TargetUnreachable
from syncjob.settings import Settings

log = logging.getLogger(__name__)

# prometheus_config_..., alertmanager_config_..., vmalert_config_...
_RELOAD_OK = re.compile(r"^(\w+)_config_last_reload_successful(?:\{[^}]*\})?\s+(\S+)", re.M)
_RELOAD_AT = re.compile(
    r"^(\w+)_config_last_reload_success_timestamp_seconds(?:\{[^}]*\})?\s+(\S+)", re.M
)
POLL = 0.2  # seconds between looks at /-/ready and /metrics
# Some targets report whole seconds: a reload in the same second as `since` is fresh.
CLOCK_SLACK = 1.0


class Target:
    def __init__(self, settings: Settings, pool: urllib3.PoolManager | None = None) -> None:
        assert settings.reload_url is not None or settings.reload_cmd is not None
        self.reload_url = settings.reload_url
        self.reload_cmd = settings.reload_cmd  # RELOAD_COMMAND, run instead of the POST
        self.command_timeout = settings.http_timeout  # bounded like the request it replaces
        self.ready_url = settings.target_url("/-/ready")
        self.metrics_url = settings.target_url("/metrics")
        self.ready_timeout = settings.ready_timeout
        self.insecure = settings.target_insecure_skip_verify
        self.pool = pool or transport.pool(settings.http_timeout, settings.tls("target_"))

    def reload(self) -> None:
        """Reload and verify; TargetRejected with the target's own words when it refused."""
        if self.insecure:
            log.warning(
                "the target's TLS certificate is not verified (--target-insecure-skip-verify)"
            )
        self._wait_ready()
        since = time.time()
        self._trigger()
        self._verify(since)

    def _trigger(self) -> None:
        """Make the target load the file: run RELOAD_COMMAND, else POST RELOAD_URL."""
        if self.reload_cmd is not None:
            from syncjob import reload_command

            reload_command.run(self.reload_cmd, self.command_timeout)
            return
        assert self.reload_url is not None
        with transport.translated(TargetUnreachable, f"target unreachable at {self.reload_url}"):
            response = self.pool.request("POST", self.reload_url, retries=False)
        if not 200 <= response.status < 300:
            # Prometheus: 500 "failed to reload config: ..." and it keeps the old config.
            raise TargetRejected(
                f"target rejected the config (HTTP {response.status}: "
                f"{server_message(response.data, limit=500)})"
            )

    def _get(self, url: str | None) -> tuple[int, bytes]:
        with transport.translated(TargetUnreachable, f"target unreachable at {url}"):
            response = self.pool.request("GET", url or "", retries=False)
        return response.status, response.data

    def _wait_ready(self) -> None:
        """A target still starting up is not a failure: wait for it, within bounds."""
        deadline = time.monotonic() + self.ready_timeout
        while True:
            try:
                status, _ = self._get(self.ready_url)
                if status == 200 or status in (404, 405):  # 404/405: no readiness endpoint
                    return
                problem = f"{self.ready_url} answered {status}"
            except TargetUnreachable as exc:
                problem = str(exc)
            if time.monotonic() >= deadline:
                raise TargetUnreachable(
                    f"target not ready after {self.ready_timeout:g}s ({problem})"
                )
            time.sleep(POLL)

    def _verify(self, since: float) -> None:
        """The target's metrics must show a successful reload no older than `since`."""
        deadline = time.monotonic() + max(self.ready_timeout, 2.0)
        while True:
            status, body = self._get(self.metrics_url)
            text = body.decode("utf-8", "replace") if status == 200 else ""
            ok, at = _RELOAD_OK.search(text), _RELOAD_AT.search(text)
            if ok is None or at is None:
                log.info(
                    "reload accepted by status code only: %s has no "
                    "*_config_last_reload_successful metric to verify it",
                    self.metrics_url,
                )
                return
            if float(ok[2]) != 1:
                raise TargetRejected(f"target answered the reload but {ok[1]} reports it failed")
            if float(at[2]) >= since - CLOCK_SLACK:
                return
            if time.monotonic() >= deadline:
                raise TargetRejected(
                    f"target answered the reload but its last successful reload is "
                    f"{since - float(at[2]):.1f}s older than the request: it did not take"
                )
            time.sleep(POLL)
