"""Tell the world how a pass went: the Pushgateway and AlertAgent's status endpoint.

Neither may change the pass's exit code: a gateway or a central service that is down
or slow is logged, and the pass's own outcome stands.
"""

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from syncjob import transport
from syncjob.dialects import server_message
from syncjob.errors import MEANINGS, SourceUnavailable, SyncError
from syncjob.outcome import Outcome
from syncjob.settings import Settings

log = logging.getLogger(__name__)

STATUS_PATH = "/api/v1/config/sync/status"


def after_pass(settings: Settings, outcome: Outcome) -> None:
    if outcome.state is None:  # it could not take the lock: the pass that has it reports
        return
    # Publishing is best effort: whatever goes wrong here is logged, and the pass's own
    # outcome and exit code stand.
    for wanted, publish in (
        (settings.pushgateway_url, push),
        (settings.report_status, report_status),
    ):
        if wanted:
            try:
                publish(settings, outcome)
            except Exception:
                log.exception("%s failed: the pass's outcome stands", publish.__name__)


def push(settings: Settings, outcome: Outcome) -> None:
    """PUT the pass's metrics, replacing the group {job, cluster_id, config_type}."""
    # prometheus_client costs ~55 ms to import: only passes that push pay for it.
    from prometheus_client import push_to_gateway

    from syncjob.metrics import registry

    assert settings.pushgateway_url is not None
    try:
        push_to_gateway(
            settings.pushgateway_url,
            job=settings.pushgateway_job,
            registry=registry(settings, lambda: outcome),
            grouping_key={"cluster_id": settings.cluster_id, "config_type": settings.config_type},
            timeout=settings.pushgateway_timeout,
            handler=_handler(settings),
        )
    except SyncError as exc:  # down, slow, refused, or an unreadable credentials file
        log.warning(
            "push to the Pushgateway %s failed: %s",
            transport.redacted(settings.pushgateway_url),
            exc,
        )


def _handler(settings: Settings) -> Any:
    """prometheus_client's push, over urllib3: the gateway's TLS options and credentials."""
    pool = transport.pool(settings.pushgateway_timeout, settings.tls("pushgateway_"))
    auth = transport.authorization(
        settings.pushgateway_token_file, settings.pushgateway_basic_auth_file, None
    )
    if settings.pushgateway_insecure_skip_verify:
        log.warning("the Pushgateway's TLS certificate is not verified")

    def handler(
        url: str, method: str, timeout: float | None, headers: list[tuple[str, str]], data: bytes
    ) -> Callable[[], None]:
        def push() -> None:
            sent = dict(headers) | ({"Authorization": auth} if auth else {})
            # PUSHGATEWAY_TIMEOUT for the whole push: connect, answer and its words.
            exchange = transport.Exchange(
                pool, settings.pushgateway_timeout,
                failed=f"{method} {transport.redacted(url)}",
                peer="push failed: the Pushgateway",
                unavailable=SourceUnavailable, refused=SourceUnavailable,
            )  # fmt: skip
            response = exchange.send(method, url, body=data, headers=sent)
            if response.status >= 300:
                said = server_message(exchange.words(response))
                raise SourceUnavailable(
                    f"Pushgateway answered HTTP {response.status} to {method} "
                    f"{transport.redacted(url)}: {said}"
                )
            exchange.discard(response)

        return push

    return handler


def public_error(outcome: Outcome) -> str:
    """What AlertAgent is told of a failure: syncjob's summary and the exit code, never a
    checker's or a peer's words (a served config can make a checker quote a local file)."""
    said = outcome.public_summary or MEANINGS[outcome.exit_code]
    return f"{said}; syncjob exit {int(outcome.exit_code)}"


def report_status(settings: Settings, outcome: Outcome) -> None:
    """POST the outcome so AlertAgent keeps the history (it needs sync_duration_ms > 0)."""
    state = outcome.state
    assert state is not None
    ok = outcome.exit_code == 0
    try:
        size = settings.config_path.stat().st_size
    except OSError:
        size = 0
    body = {
        "cluster_id": settings.cluster_id,
        "config_type": settings.config_type,
        "status": "success" if ok else "failed",
        "sync_time": int(state.last_attempt or time.time()),
        "error_message": "" if ok else public_error(outcome),
        "config_hash": state.applied_hash or "",
        "config_size": size,
        "sync_duration_ms": max(1, round(outcome.duration * 1000)),
    }
    url = settings.endpoint + STATUS_PATH
    headers = {"Content-Type": "application/json", "User-Agent": transport.USER_AGENT}
    try:
        auth = transport.authorization(
            settings.token_file, settings.basic_auth_file, settings.token
        )
    except SyncError as exc:
        log.warning("status report not sent: %s", exc)
        return
    if auth:
        headers["Authorization"] = auth
    # HTTP_TIMEOUT for the whole report: connect, and the answer's status line and headers
    # (its body is not wanted).
    exchange = transport.Exchange(
        transport.pool(settings.http_timeout, settings.tls()), settings.http_timeout,
        failed=f"status report failed: POST {transport.redacted(url)}",
        peer="status report failed: AlertAgent",
        unavailable=SourceUnavailable, refused=SourceUnavailable,
    )  # fmt: skip
    try:
        response = exchange.send("POST", url, body=json.dumps(body).encode(), headers=headers)
    except SourceUnavailable as exc:
        log.warning("%s", exc)
        return
    exchange.discard(response)
    if not 200 <= response.status < 300:
        log.warning(
            "status report to %s answered HTTP %s", transport.redacted(url), response.status
        )
