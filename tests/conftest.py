import os

import pytest

from syncjob.settings import ENVIRONMENT
from tests.cli import start_loop  # noqa: F401
from tests.disks import tiny_fs  # noqa: F401
from tests.targets import alertmanager, fake_agent, prometheus, pushgateway  # noqa: F401

_PROXY_VARS = {"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"}


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper() in _PROXY_VARS:
            monkeypatch.delenv(name)
    # only loopback is reachable: no proxy, whatever a library reads
    monkeypatch.setenv("NO_PROXY", "*")
    # every variable syncjob reads: a value left in the host environment must never leak in
    for name in ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
