"""The target (Prometheus, Alertmanager): ask it to reload its config."""

import urllib3

from syncjob import transport
from syncjob.dialects import server_message
from syncjob.errors import TargetRejected, TargetUnreachable


class Target:
    def __init__(self, reload_url: str, timeout: float, pool: urllib3.PoolManager | None = None):
        self.reload_url = reload_url
        self.pool = pool or transport.pool(timeout)

    def reload(self) -> None:
        """POST the reload URL; 2xx is accepted.

        Prometheus answers 500 `failed to reload config: ...` to a config it cannot
        load and keeps running the previous one: that text is the rejection's message.
        """
        with transport.translated(TargetUnreachable, f"target unreachable at {self.reload_url}"):
            response = self.pool.request("POST", self.reload_url, retries=False)
        if not 200 <= response.status < 300:
            raise TargetRejected(
                f"target rejected the config (HTTP {response.status}: "
                f"{server_message(response.data, limit=500)})"
            )
