"""The helpers that run the real binaries start them, reload them and stop them cleanly."""

import json
import socket
import time
from pathlib import Path

import pytest

from tests.targets import (
    ALERTMANAGER_YML,
    Alertmanager,
    Prometheus,
    Pushgateway,
    free_port,
    http_request,
    require_binary,
    wait_next_second,
    wait_until,
)

integration = pytest.mark.integration
RELOADABLE = ["prometheus", "alertmanager"]


def test_wait_until_times_out_with_the_reason() -> None:
    wait_until(lambda: True, 0.1, "nothing")
    with pytest.raises(AssertionError, match=r"timed out after 0.1s waiting for the moon"):
        wait_until(lambda: False, 0.1, "the moon")


def test_wait_next_second() -> None:
    now = time.time()
    wait_next_second(now)
    assert time.time() >= now + 1


def test_free_port_is_bindable() -> None:
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_require_binary_skips_or_fails_when_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("SYNCJOB_REQUIRE_INTEGRATION", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install prometheus"):
        require_binary("prometheus", "prometheus")
    monkeypatch.setenv("SYNCJOB_REQUIRE_INTEGRATION", "1")
    with pytest.raises(pytest.fail.Exception, match="install the Debian package prometheus"):
        require_binary("prometheus", "prometheus")


@integration
@pytest.mark.parametrize("name", RELOADABLE)
def test_reload_moves_the_timestamp(name: str, request: pytest.FixtureRequest) -> None:
    target = request.getfixturevalue(name)
    assert target.reload_ok()
    before = target.reload_timestamp()
    wait_next_second(before)
    assert target.reload() == (200, "")
    assert target.reload_timestamp() >= before + 1
    assert target.reload_ok()


@integration
@pytest.mark.parametrize("name", RELOADABLE)
def test_bad_config_is_refused_and_the_old_one_kept(
    name: str, request: pytest.FixtureRequest
) -> None:
    target = request.getfixturevalue(name)
    good = target.config_path.read_bytes()
    before = target.reload_timestamp()
    target.config_path.write_bytes(b"global: [\n")
    status, body = target.reload()
    assert status == 500
    assert "failed to reload config" in body
    assert not target.reload_ok()
    assert target.reload_timestamp() == before
    assert target.is_running()
    target.config_path.write_bytes(good)
    assert target.reload()[0] == 200
    assert target.reload_ok()


@integration
def test_prometheus_loads_rule_files_relative_to_its_config(prometheus: Prometheus) -> None:
    rules = prometheus.config_path.parent / "rules" / "a.yml"
    rules.write_text("groups:\n  - name: g1\n    rules:\n      - {record: r, expr: vector(1)}\n")
    assert prometheus.reload()[0] == 200
    status, body = http_request("GET", f"{prometheus.url}/api/v1/rules")
    assert status == 200
    assert [g["name"] for g in json.loads(body)["data"]["groups"]] == ["g1"]


@integration
def test_pushgateway_takes_pushes_and_labels_parse(pushgateway: Pushgateway) -> None:
    sample = b'syncjob_test{path="a b}c"} 2.5\n'
    assert http_request("PUT", f"{pushgateway.url}/metrics/job/t", sample)[0] == 200
    metrics = pushgateway.metrics()
    assert metrics['syncjob_test{instance="",job="t",path="a b}c"}'] == 2.5
    assert pushgateway.metric("syncjob_test") is None  # only labelled keys exist for it
    assert any(k.startswith("push_time_seconds{") for k in metrics)


@integration
def test_processes_are_stopped_and_ports_released(tmp_path: Path) -> None:
    config = tmp_path / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 15s\n")
    with Prometheus(config) as prom, Pushgateway(tmp_path / "pgw") as pgw:
        assert prom.is_running()
        assert pgw.is_running()
        targets = [prom, pgw]
    for target in targets:
        assert not target.is_running()
        assert target.proc is not None
        assert target.proc.returncode is not None
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", target.port), timeout=5).close()
        assert target.log_text()


@integration
def test_startup_failure_shows_the_log(tmp_path: Path) -> None:
    config = tmp_path / "prometheus.yml"
    config.write_text("scrape_configs: [\n")
    target = Prometheus(config)
    with pytest.raises(AssertionError, match=r"(?s)exited at startup.*prometheus.yml"):
        target.start()
    assert not target.is_running()


@integration
def test_alertmanager_fixture_config(alertmanager: Alertmanager) -> None:
    assert alertmanager.config_path.read_text() == ALERTMANAGER_YML
    assert alertmanager.config_path.parent.name == "am"
    assert alertmanager.reload_url == f"{alertmanager.url}/-/reload"
