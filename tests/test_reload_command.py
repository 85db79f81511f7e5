"""RELOAD_COMMAND: a target without an HTTP reload endpoint, reloaded by a command.

The real Prometheus here runs WITHOUT --web.enable-lifecycle (as Debian's does), so
POST /-/reload is refused; syncjob reloads it with `kill -HUP <pid>`, as its systemd
unit's ExecReload does, and still verifies, rolls back and exits as after a POST.
"""

import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from syncjob import reload_command
from syncjob.errors import TargetUnreachable
from tests.cli import pass_env, syncjob
from tests.fake_alertagent import FakeAlertAgent
from tests.targets import Prometheus, http_request, prometheus_in, wait_next_second

pytestmark = pytest.mark.integration


# --- the command runner ------------------------------------------------------------------


def test_a_command_that_exits_0_is_a_reload() -> None:
    reload_command.run("true", timeout=10)


def test_a_failing_command_is_an_unreachable_target_in_its_own_words() -> None:
    with pytest.raises(TargetUnreachable) as raised:
        reload_command.run("sh -c 'echo Job for prometheus.service failed >&2; exit 3'", 10)
    assert raised.value.exit_code == 75
    assert "failed (exit 3)" in str(raised.value)
    assert "Job for prometheus.service failed" in str(raised.value)


def test_a_command_that_cannot_start_says_which() -> None:
    with pytest.raises(TargetUnreachable, match="cannot start: /no/such/systemctl"):
        reload_command.run("/no/such/systemctl reload prometheus", 10)


def test_a_hanging_command_is_killed_with_what_it_started(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    started = time.monotonic()
    with pytest.raises(TargetUnreachable, match=r"no answer within 0\.5s and was killed"):
        # The shell starts a child that would outlive it: the whole group is killed.
        reload_command.run(f"sh -c 'sleep 60 & echo $! > {pid_file}; wait'", timeout=0.5)
    assert time.monotonic() - started < 5
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child), "the command's child outlived the timeout"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead: its parent (killed) left it to init, which reaps it soon.
    status = Path(f"/proc/{pid}/stat")
    return status.exists() and status.read_text().split()[2] != "Z"


def test_endless_output_is_capped_and_the_command_bounded() -> None:
    started = time.monotonic()
    with pytest.raises(TargetUnreachable) as raised:
        reload_command.run(f"{sys.executable} -c 'while True: print(\"x\" * 1000)'", 1)
    assert time.monotonic() - started < 6
    message = str(raised.value)
    assert len(message) < 1000
    assert message.endswith(" ...")


def test_a_command_that_leaves_a_daemon_holding_its_output_still_returns() -> None:
    started = time.monotonic()
    reload_command.run("sh -c 'sleep 5 & echo reloaded'", timeout=30)
    assert time.monotonic() - started < 4


def test_the_command_never_sees_the_alertagent_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALERTAGENT_TOKEN", "s3cret-token")
    with pytest.raises(TargetUnreachable) as raised:
        reload_command.run("sh -c 'echo token=${ALERTAGENT_TOKEN:-none}; exit 1'", 10)
    assert "token=none" in str(raised.value)


# --- the settings ------------------------------------------------------------------------


def test_a_command_alone_cannot_verify_the_reload_exit_2(tmp_path: Path) -> None:
    env = pass_env(
        "http://127.0.0.1:9",
        tmp_path / "prometheus.yml",
        RELOAD_COMMAND="systemctl reload prometheus",
    )
    run = syncjob(env=env)
    assert run.code == 2
    (line,) = run.stderr.strip().splitlines()
    assert "RELOAD_COMMAND / --reload-cmd needs TARGET_METRICS_URL / --metrics-url" in line


def test_a_command_that_cannot_be_split_is_exit_2(tmp_path: Path) -> None:
    env = pass_env(
        "http://127.0.0.1:9",
        tmp_path / "prometheus.yml",
        RELOAD_COMMAND="kill -HUP 'unclosed",
        TARGET_METRICS_URL="http://127.0.0.1:9/metrics",
    )
    run = syncjob(env=env)
    assert run.code == 2
    assert "invalid RELOAD_COMMAND / --reload-cmd" in run.stderr


# --- the real Prometheus, reloaded by SIGHUP -----------------------------------------------


class PrometheusWithoutLifecycle(Prometheus):
    """Prometheus as Debian's unit starts it: no HTTP reload; SIGHUP reloads."""

    def args(self) -> list[str]:
        return [a for a in super().args() if a != "--web.enable-lifecycle"]


@pytest.fixture
def prometheus_hup(tmp_path: Path) -> Iterator[PrometheusWithoutLifecycle]:
    with prometheus_in(tmp_path, PrometheusWithoutLifecycle) as target:
        yield target


def _config(job: str) -> bytes:
    return (
        "global:\n  scrape_interval: 15s\nscrape_configs:\n"
        f"  - job_name: {job}\n    static_configs:\n      - targets: []\n"
    ).encode()


def _loaded(target: Prometheus) -> str:
    status, body = http_request("GET", target.url + "/api/v1/status/config")
    assert status == 200
    return json.loads(body)["data"]["yaml"]


def _env(agent: FakeAlertAgent, target: Prometheus, command: str, **more: str) -> dict[str, str]:
    assert target.proc is not None
    return pass_env(
        agent.url,
        target.config_path,
        RELOAD_COMMAND=command.format(pid=target.proc.pid),
        TARGET_METRICS_URL=f"{target.url}/metrics",
        **more,
    )


def test_sighup_applies_the_config_and_it_is_verified(
    prometheus_hup: PrometheusWithoutLifecycle, fake_agent: FakeAlertAgent
) -> None:
    assert http_request("POST", prometheus_hup.reload_url)[0] == 403  # no HTTP reload here
    before = prometheus_hup.reload_timestamp()
    fake_agent.set_config(_config("reloaded-by-sighup"))

    run = syncjob(env=_env(fake_agent, prometheus_hup, "kill -HUP {pid}"))

    assert (run.code, run.last["outcome"]) == (0, "written"), run.stderr
    assert prometheus_hup.reload_ok()
    assert prometheus_hup.reload_timestamp() >= before
    assert "reloaded-by-sighup" in _loaded(prometheus_hup)


def test_a_config_prometheus_rejects_on_sighup_is_rolled_back(
    prometheus_hup: PrometheusWithoutLifecycle, fake_agent: FakeAlertAgent
) -> None:
    env = _env(fake_agent, prometheus_hup, "kill -HUP {pid}", CHECK_COMMAND="")
    fake_agent.set_config(_config("good"))
    assert syncjob(env=env).code == 0
    good = prometheus_hup.config_path.read_bytes()
    # YAML, and syncjob's own checks pass it; Prometheus refuses the duration.
    fake_agent.set_config(b"global:\n  scrape_interval: banana\n")

    run = syncjob(env=env)

    assert run.code == 76, run.stderr
    assert "reports it failed" in run.last["error"]
    assert "rolled back to the last good config" in run.last["error"]
    assert prometheus_hup.config_path.read_bytes() == good
    assert prometheus_hup.reload_ok()  # the rollback was reloaded by SIGHUP and verified
    assert "good" in _loaded(prometheus_hup)


def test_a_command_that_reloads_nothing_is_caught_by_the_verification(
    prometheus_hup: PrometheusWithoutLifecycle, fake_agent: FakeAlertAgent
) -> None:
    fake_agent.set_config(_config("never-loaded"))
    # Past the clock slack after Prometheus's start-up load, which is no reload of ours.
    wait_next_second(prometheus_hup.reload_timestamp() + 0.5)
    run = syncjob(env=_env(fake_agent, prometheus_hup, "true", READY_TIMEOUT="1s"))
    assert run.code == 76, run.stderr
    assert "did not take" in run.stderr
    assert "never-loaded" not in _loaded(prometheus_hup)


def test_a_hanging_command_leaves_the_reload_pending_for_the_next_pass(
    prometheus_hup: PrometheusWithoutLifecycle, fake_agent: FakeAlertAgent
) -> None:
    fake_agent.set_config(_config("pending-reload"))
    started = time.monotonic()
    hung = syncjob(env=_env(fake_agent, prometheus_hup, "sleep 60", HTTP_TIMEOUT="1s"))
    assert hung.code == 75, hung.stderr
    assert time.monotonic() - started < 20
    assert "no answer within 1s" in hung.last["error"]
    assert prometheus_hup.config_path.read_bytes() == _config("pending-reload")
    assert "pending-reload" not in _loaded(prometheus_hup)

    second = syncjob(env=_env(fake_agent, prometheus_hup, "kill -HUP {pid}"))
    assert (second.code, second.last["outcome"]) == (0, "reloaded"), second.stderr
    assert "pending-reload" in _loaded(prometheus_hup)
