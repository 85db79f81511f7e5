import os

import pytest

from tests.cli import start_loop  # noqa: F401
from tests.disks import tiny_fs  # noqa: F401
from tests.targets import alertmanager, fake_agent, prometheus, pushgateway  # noqa: F401

_PROXY_VARS = {"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"}

# syncjob's settings: a value left in the host environment must never leak into a test.
_SYNCJOB_VARS = (
    "ALERTAGENT_ENDPOINT",
    "CLUSTER_ID",
    "CONFIG_TYPE",
    "CONFIG_PATH",
    "RELOAD_URL",
    "SYNC_INTERVAL",
    "HTTP_TIMEOUT",
    "HTTP_PORT",
    "MAX_RETRIES",
    "RETRY_BACKOFF",
    "APP_ENV",
    "ALERTAGENT_API_PATH",
    "STATE_PATH",
    "MAX_BODY_SIZE",
    "ALERTAGENT_TOKEN",
    "ALERTAGENT_TOKEN_FILE",
    "PUSHGATEWAY_URL",
    "CHECK_COMMAND",
    "ALLOW_EMPTY",
)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper() in _PROXY_VARS:
            monkeypatch.delenv(name)
    # only loopback is reachable: no proxy, whatever a library reads
    monkeypatch.setenv("NO_PROXY", "*")
    for name in _SYNCJOB_VARS:
        monkeypatch.delenv(name, raising=False)
