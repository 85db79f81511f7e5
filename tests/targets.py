"""Run the real Prometheus / Alertmanager / Pushgateway binaries for tests, on loopback only."""

from __future__ import annotations

import http.client
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Self

import pytest

from tests.fake_alertagent import FakeAlertAgent

# name, optional {labels} (label values may hold spaces, braces and escaped quotes), value
_SAMPLE = re.compile(r'^([a-zA-Z_:][\w:]*(?:\{(?:[^"}]|"(?:[^"\\]|\\.)*")*\})?)\s+(\S+)')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(
    predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.05
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def wait_next_second(after: float) -> None:
    """Wait until the wall clock is a full second past ``after`` (a time.time() value)."""
    timeout = max(0.0, after + 1 - time.time()) + 5
    wait_until(lambda: time.time() >= after + 1, timeout, f"the clock to pass {after + 1}", 0.01)


def require_binary(name: str, package: str) -> str:
    path = shutil.which(name)
    if path:
        return path
    msg = f"{name} not found: install the Debian package {package} (apt-get install {package})"
    if os.environ.get("SYNCJOB_REQUIRE_INTEGRATION") == "1":
        pytest.fail(msg)
    pytest.skip(msg)


def http_request(
    method: str, url: str, body: bytes = b"", timeout: float = 10
) -> tuple[int, bytes]:
    """Plain http.client request: no proxy settings can get in the way of loopback."""
    host_port = url.removeprefix("http://").split("/", 1)[0]
    path = url[len("http://") + len(host_port) :] or "/"
    conn = http.client.HTTPConnection(host_port, timeout=timeout)
    try:
        conn.request(method, path, body=body if method != "GET" else None)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def _die_with_parent() -> list[str]:
    """Command prefix so the binary gets SIGTERM if pytest itself is killed (e.g. CI timeout).

    setpriv execs the binary (same pid); no preexec_fn, which is unsafe with threads running.
    The signal fires when the *thread* that started the binary exits: start targets from
    the main thread or one that outlives them.
    """
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM"] if setpriv else []


class Target:
    """A started binary, its stdout/stderr in a log file inside ``workdir``."""

    binary = ""
    package = ""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / f"{self.binary}.log"
        self.port = 0
        self.url = ""
        self.reload_url = ""
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def args(self) -> list[str]:
        raise NotImplementedError

    def start(self, timeout: float = 30) -> Self:
        path = require_binary(self.binary, self.package)
        for _ in range(3):  # another process may grab the free port before the binary binds it
            self.port = free_port()
            self.url = f"http://127.0.0.1:{self.port}"
            self.reload_url = f"{self.url}/-/reload"
            self._log = self.log_path.open("wb")
            self.proc = subprocess.Popen(
                [*_die_with_parent(), path, *self.args()],
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
            )
            try:
                wait_until(lambda: self._ready_or_exited(), timeout, f"{self.binary} /-/ready")
            except AssertionError:
                self.stop()
                raise AssertionError(
                    f"{self.binary} not ready after {timeout}s; log:\n{self.log_text()[-4000:]}"
                ) from None
            if self.proc.poll() is None:
                return self
            self.stop()
            if "address already in use" not in self.log_text():
                break
        raise AssertionError(f"{self.binary} exited at startup; log:\n{self.log_text()[-4000:]}")

    def _ready_or_exited(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            return True
        try:
            return http_request("GET", f"{self.url}/-/ready", timeout=2)[0] == 200
        except OSError:
            return False

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def metrics(self) -> dict[str, float]:
        """GET /metrics, as ``name{labels}`` (or plain ``name``) -> value."""
        status, body = http_request("GET", f"{self.url}/metrics")
        assert status == 200, f"/metrics answered {status}"
        samples: dict[str, float] = {}
        for line in body.decode().splitlines():
            m = _SAMPLE.match(line)
            if m:
                samples[m[1]] = float(m[2])
        return samples

    def metric(self, name: str) -> float | None:
        return self.metrics().get(name)

    def __enter__(self) -> Self:
        return self.start() if self.proc is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _ConfigTarget(Target):
    """A target that loads a config file and reloads it on POST /-/reload."""

    metric_prefix = ""

    def __init__(self, config_path: Path, workdir: Path | None = None) -> None:
        super().__init__(workdir or config_path.parent)
        self.config_path = config_path

    def reload(self) -> tuple[int, str]:
        status, body = http_request("POST", self.reload_url)
        return status, body.decode(errors="replace")

    def reload_timestamp(self) -> float:
        value = self.metric(f"{self.metric_prefix}_last_reload_success_timestamp_seconds")
        assert value is not None, "no reload timestamp metric"
        return value

    def reload_ok(self) -> bool:
        return self.metric(f"{self.metric_prefix}_last_reload_successful") == 1


class Prometheus(_ConfigTarget):
    binary = "prometheus"
    package = "prometheus"
    metric_prefix = "prometheus_config"

    def args(self) -> list[str]:
        return [
            f"--config.file={self.config_path}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--web.enable-lifecycle",  # without it /-/reload answers 403
            f"--storage.tsdb.path={self.workdir / 'data'}",
        ]


class Alertmanager(_ConfigTarget):
    binary = "prometheus-alertmanager"
    package = "prometheus-alertmanager"
    metric_prefix = "alertmanager_config"

    def args(self) -> list[str]:
        return [
            f"--config.file={self.config_path}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            f"--storage.path={self.workdir / 'data'}",
            "--cluster.listen-address=",  # no gossip: it would listen on 0.0.0.0:9094
        ]


class Pushgateway(Target):
    binary = "prometheus-pushgateway"
    package = "prometheus-pushgateway"

    def args(self) -> list[str]:
        return [
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--persistence.file=",  # Debian defaults to /var/lib/prometheus/pushgateway.data
        ]


PROMETHEUS_YML = """\
global:
  scrape_interval: 15s
  evaluation_interval: 15s
rule_files:
  - rules/*.yml
"""

ALERTMANAGER_YML = """\
route:
  receiver: default
receivers:
  - name: default
"""


def prometheus_in(tmp_path: Path, kind: type[Prometheus] | None = None) -> Prometheus:
    """An unstarted Prometheus (or `kind` of it) on tmp_path/prom/prometheus.yml; its
    rule_files are relative (rules/*.yml). Start it with `with`."""
    workdir = tmp_path / "prom"
    (workdir / "rules").mkdir(parents=True)
    config = workdir / "prometheus.yml"
    config.write_text(PROMETHEUS_YML)
    return (kind or Prometheus)(config)


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Prometheus]:
    """Prometheus on tmp_path/prom/prometheus.yml; rule_files are relative (rules/*.yml)."""
    with prometheus_in(tmp_path) as target:
        yield target


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[Alertmanager]:
    workdir = tmp_path / "am"
    workdir.mkdir()
    config = workdir / "alertmanager.yml"
    config.write_text(ALERTMANAGER_YML)
    with Alertmanager(config) as target:
        yield target


@pytest.fixture
def pushgateway(tmp_path: Path) -> Iterator[Pushgateway]:
    with Pushgateway(tmp_path / "pushgateway") as target:
        yield target


@pytest.fixture
def fake_agent() -> Iterator[FakeAlertAgent]:
    with FakeAlertAgent() as agent:
        yield agent
