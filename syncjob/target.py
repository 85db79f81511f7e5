"""The target (Prometheus, Alertmanager): wait until it is ready, reload, and check it took.

"POST /-/reload and hope" is not enough: a 2xx can come with a failed or stale reload.
The target's own metrics say whether its last reload succeeded and when.
"""

import logging
import math
import re
import time

import urllib3

from syncjob import transport
from syncjob.dialects import server_message
from syncjob.errors import SyncError, TargetRejected, TargetUnreachable
from syncjob.settings import Settings

log = logging.getLogger(__name__)

# prometheus_config_..., alertmanager_config_..., vmalert_config_... and the value on the
# same line (a line with an empty value must not take the next line's name for it).
_RELOAD_OK = re.compile(
    r"^(\w+)_config_last_reload_successful(?:\{[^}\n]*\})?[ \t]+([^ \t\r\n]*)", re.M
)
_RELOAD_AT = re.compile(
    r"^(\w+)_config_last_reload_success_timestamp_seconds(?:\{[^}\n]*\})?[ \t]+([^ \t\r\n]*)",
    re.M,
)
# A sample value as the text format writes it (Go's ParseFloat); ASCII digits only.
_VALUE = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[+-]?Inf|NaN")
POLL = 0.2  # seconds between looks at /-/ready and /metrics
# Some targets report whole seconds: a reload in the same second as `since` is fresh.
CLOCK_SLACK = 1.0
# /metrics is read up to this (decoded), keeping only the reload lines: Prometheus' own
# is ~0.1-2 MiB; a gzip bomb or an endless body is refused, never held in memory.
METRICS_LIMIT = 32 * 1024 * 1024
LOOK_AT_LEAST = 1.0  # seconds a look at /-/ready or /metrics gets, even at the deadline


class Target:
    def __init__(self, settings: Settings, pool: urllib3.PoolManager | None = None) -> None:
        assert settings.reload_url is not None or settings.reload_cmd is not None
        self.reload_url = settings.reload_url
        self.reload_cmd = settings.reload_cmd  # RELOAD_COMMAND, run instead of the POST
        self.command_timeout = settings.http_timeout  # bounded like the request it replaces
        self.ready_url = settings.target_url("/-/ready")
        self.metrics_url = settings.target_url("/metrics")
        self.ready_timeout = settings.ready_timeout
        self.http_timeout = settings.http_timeout  # bounds the POST, and each look
        self.insecure = settings.target_insecure_skip_verify
        self.pool = pool or transport.pool(settings.http_timeout, settings.tls("target_"))

    def reload(self) -> None:
        """Reload and verify; TargetRejected with the target's own words when it refused."""
        if self.insecure:
            log.warning(
                "the target's TLS certificate is not verified (--target-insecure-skip-verify)"
            )
        try:
            self._wait_ready()
            since = time.time()
            # A signal (RELOAD_COMMAND) reloads after the command returns: what the
            # metrics show for a while after it may be the last reload's, not this one's.
            before = self._last_reload() if self.reload_cmd is not None else None
            self._trigger()
            self._verify(since, before)
        except TargetUnreachable as exc:  # the file is in place; only its reload is not
            setting = "RELOAD_COMMAND" if self.reload_cmd is not None else "RELOAD_URL"
            raise TargetUnreachable(
                f"{exc}; the reload is pending and the next pass tries it again "
                f"(check {setting} and that the target runs)"
            ) from None

    def _trigger(self) -> None:
        """Make the target load the file: run RELOAD_COMMAND, else POST RELOAD_URL."""
        if self.reload_cmd is not None:
            from syncjob import reload_command

            reload_command.run(self.reload_cmd, self.command_timeout)
            return
        assert self.reload_url is not None
        exchange = self._exchange(self.reload_url, self.http_timeout, TargetUnreachable)
        response = exchange.send("POST", self.reload_url)
        if 200 <= response.status < 300:
            exchange.discard(response)
            return
        # Prometheus: 500 "failed to reload config: ..." and it keeps the old config.
        said = server_message(exchange.words(response), limit=500)
        raise TargetRejected(f"target rejected the config (HTTP {response.status}: {said})")

    def _exchange(self, url: str, budget: float, refused: type[SyncError]) -> transport.Exchange:
        shown = transport.redacted(url)
        # A body cut short is the network's doing, not the target's verdict: a rejection
        # would roll back a config the target took and refuse it until the source changes.
        return transport.Exchange(
            self.pool, budget, failed=f"target unreachable at {shown}",
            peer=f"the target at {shown}", unavailable=TargetUnreachable, refused=refused,
            cut=TargetUnreachable,
        )  # fmt: skip

    def _wait_ready(self) -> None:
        """A target still starting up is not a failure: wait for it, READY_TIMEOUT in all."""
        assert self.ready_url is not None
        deadline = time.monotonic() + self.ready_timeout
        while True:
            exchange = self._exchange(self.ready_url, self._look(deadline), TargetUnreachable)
            try:
                response = exchange.send("GET", self.ready_url)
                exchange.discard(response)
                if response.status == 200 or response.status in (404, 405):  # no endpoint
                    return
                problem = f"{transport.redacted(self.ready_url)} answered {response.status}"
            except TargetUnreachable as exc:
                problem = str(exc)
            if time.monotonic() + POLL >= deadline:
                raise TargetUnreachable(
                    f"target not ready after {self.ready_timeout:g}s ({problem})"
                )
            time.sleep(POLL)

    def _look(self, deadline: float) -> float:
        """One look's budget: what is left of the wait, at least LOOK_AT_LEAST, at most
        HTTP_TIMEOUT."""
        return min(self.http_timeout, max(deadline - time.monotonic(), LOOK_AT_LEAST))

    def _last_reload(self) -> tuple[float, float] | None:
        """(successful, success timestamp) as the metrics say now; None when unknown."""
        try:
            ok, at = self.reload_metrics(self.http_timeout)
            return None if ok is None or at is None else (sample_value(ok), sample_value(at))
        except (TargetRejected, TargetUnreachable):
            return None

    def _verify(self, since: float, before: tuple[float, float] | None = None) -> None:
        """The target's metrics must show a successful reload no older than `since`;
        whatever they say that is not that is the target's refusal, in its words.

        `before`: the metrics before a reload by signal, which this one must change until
        the deadline (a target that keeps whole seconds may not, within one second)."""
        assert self.metrics_url is not None
        deadline = time.monotonic() + max(self.ready_timeout, 2.0)
        while True:
            ok, at = self.reload_metrics(self._look(deadline))
            if ok is None or at is None:
                log.info(
                    "reload accepted by status code only: %s has no "
                    "*_config_last_reload_successful metric to verify it",
                    transport.redacted(self.metrics_url),
                )
                return
            last_look = time.monotonic() + POLL >= deadline
            settled = before is None or before[0] == 1 or last_look
            succeeded = sample_value(ok) == 1
            if not succeeded and settled:
                raise TargetRejected(
                    f"target answered the reload but {ok[1]} reports it failed "
                    f"({ok[1]}_config_last_reload_successful {ok[2]!r:.40})"
                )
            reloaded_at = sample_value(at)
            if not math.isfinite(reloaded_at):
                raise TargetRejected(
                    f"target answered the reload but its {at[1]}_config_last_reload_success_"
                    f"timestamp_seconds is {at[2]!r:.40}: it cannot be verified"
                )
            newer = before is None or reloaded_at > before[1] or last_look
            if succeeded and newer and reloaded_at >= since - CLOCK_SLACK:
                return
            if time.monotonic() + POLL >= deadline:
                raise TargetRejected(
                    f"target answered the reload but its last successful reload is "
                    f"{since - reloaded_at:.1f}s older than the request: it did not take"
                )
            time.sleep(POLL)

    def reload_metrics(self, budget: float) -> tuple[re.Match[str] | None, re.Match[str] | None]:
        """The reload lines of /metrics: (successful, timestamp), each None when absent
        (or when /metrics answers other than 200)."""
        assert self.metrics_url is not None
        exchange = self._exchange(self.metrics_url, budget, TargetRejected)
        response = exchange.send("GET", self.metrics_url)
        if response.status != 200:
            exchange.discard(response)
            return None, None
        lines = _ReloadLines()
        exchange.read(response, METRICS_LIMIT, into=lines.feed)
        text = lines.text()
        return _RELOAD_OK.search(text), _RELOAD_AT.search(text)


def sample_value(found: re.Match[str]) -> float:
    """A sample's value; TargetRejected, quoting it, unless the text format's float."""
    value = found[2]
    if not _VALUE.fullmatch(value):
        raise TargetRejected(
            f"target answered the reload but its metrics say {found[0].strip()!r:.120}: "
            "not a number, so the reload cannot be verified"
        )
    return float(value)


class _ReloadLines:
    """Fed /metrics as it comes, keeps only the lines about config reloads (bounded)."""

    KEEP = 64  # lines: a target has one or two of each, a few more with labels
    LONGEST = 4096  # bytes of a line kept; a longer one is no sample of ours

    def __init__(self) -> None:
        self.kept: list[bytes] = []
        self.partial = b""

    def feed(self, chunk: bytes) -> None:
        *lines, rest = (self.partial + chunk).split(b"\n")
        for line in lines:
            if b"_config_last_reload_success" in line and len(self.kept) < self.KEEP:
                self.kept.append(line[: self.LONGEST])
        # An endless line is cut to its start: enough to tell whether it is ours.
        self.partial = rest[: self.LONGEST]

    def text(self) -> str:
        lines = [*self.kept, self.partial] if self.partial else self.kept
        return b"\n".join(lines).decode("utf-8", "replace")
