"""Tell the world how a pass went: the Pushgateway and AlertAgent's status endpoint.

Neither may change the pass's exit code: a gateway or a central service that is down
or slow is logged, and the pass's own outcome stands.
"""

import json
import logging
import time
from pathlib import Path
from typing import Any

from syncjob import transport
from syncjob.errors import SourceUnavailable
from syncjob.settings import Settings
from syncjob.sync import Outcome

log = logging.getLogger(__name__)

STATUS_PATH = "/api/v1/config/sync/status"


def after_pass(settings: Settings, outcome: Outcome) -> None:
    if outcome.state is None:  # it could not take the lock: the pass that has it reports
        return
    if settings.pushgateway_url:
        push(settings, outcome)
    if settings.report_status:
        report_status(settings, outcome)


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
            handler=_auth_handler(settings),
        )
    except OSError as exc:  # URLError, HTTPError, timeouts, an unreadable token file
        log.warning("push to the Pushgateway %s failed: %s", settings.pushgateway_url, exc)


def _auth_handler(settings: Settings) -> Any:
    from prometheus_client.exposition import default_handler

    def handler(
        url: str, method: str, timeout: float | None, headers: list[Any], data: bytes
    ) -> Any:
        extra = []
        if settings.pushgateway_token_file:
            token = Path(settings.pushgateway_token_file).read_text().strip()
            extra.append(("Authorization", f"Bearer {token}"))
        elif settings.pushgateway_basic_auth_file:
            import base64

            pair = Path(settings.pushgateway_basic_auth_file).read_text().strip()
            extra.append(("Authorization", "Basic " + base64.b64encode(pair.encode()).decode()))
        return default_handler(url, method, timeout, [*headers, *extra], data)

    return handler


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
        "error_message": "" if ok else (state.last_error or ""),
        "config_hash": state.applied_hash or "",
        "config_size": size,
        "sync_duration_ms": max(1, round(outcome.duration * 1000)),
    }
    url = settings.endpoint + STATUS_PATH
    try:
        with transport.translated(SourceUnavailable, "status report failed"):
            response = transport.pool(settings.http_timeout).request(
                "POST", url, body=json.dumps(body).encode(), retries=False,
                headers={"Content-Type": "application/json", "User-Agent": transport.USER_AGENT},
            )  # fmt: skip
    except SourceUnavailable as exc:
        log.warning("%s", exc)
        return
    if not 200 <= response.status < 300:
        log.warning("status report to %s answered HTTP %s", url, response.status)
