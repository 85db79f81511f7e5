"""Crash consistency: a pass killed with SIGKILL at any point leaves the config old or new,
whole, and the next normal pass converges on its own against the real Prometheus.

Each test starts the installed `syncjob` in its own session, waits for proof that the pass
reached the kill point (a request the fake recorded, a marker the check command wrote, a
request FakeTarget saw), kills the whole process group (the check command's child too),
then looks at what is on disk and runs an ordinary pass that must put everything right:
finish a pending reload, remove the stray temporary files, and never reload content it
has not verified.
"""

import contextlib
import hashlib
import json
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli import SYNCJOB, pass_env, syncjob
from tests.fake_alertagent import FakeAlertAgent, Reply
from tests.fake_target import FakeTarget
from tests.targets import Prometheus, http_request

pytestmark = pytest.mark.integration

TEMP_SUFFIX = ".syncjob.tmp"
DEADLINE = 10.0  # seconds for a pass to reach its kill point


def prometheus_yml(job: str) -> bytes:
    return (
        "global:\n  scrape_interval: 15s\nscrape_configs:\n"
        f"  - job_name: {job}\n    static_configs:\n      - targets: []\n"
    ).encode()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def loaded_prometheus_config(prometheus: Prometheus) -> str:
    status, body = http_request("GET", prometheus.url + "/api/v1/status/config")
    assert status == 200
    return json.loads(body)["data"]["yaml"]


def reloads_in_log(prometheus: Prometheus) -> int:
    return prometheus.log_text().count("Loading configuration file")


def stray_temps(config: Path) -> list[Path]:
    return sorted(p for p in config.parent.iterdir() if p.name.endswith(TEMP_SUFFIX))


def state_path(config: Path) -> Path:
    return config.with_name(f".{config.name}.syncjob.json")


def read_state(config: Path) -> dict[str, Any]:
    return json.loads(state_path(config).read_text())


def stalling_check(marker: Path) -> str:
    """A CHECK_COMMAND that says it started on the staged file, then never answers.

    In `sh -c SCRIPT ARG0` the staged file ({path}) is $0; exec keeps one child to kill.
    """
    script = f"touch {shlex.quote(str(marker))}; exec sleep 60"
    return f"sh -c {shlex.quote(script)} {{path}}"


class Victim:
    """A pass run in its own session, to be killed with its whole process group."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        with log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [str(SYNCJOB)],
                env={**os.environ, **env},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
                start_new_session=True,
            )

    def wait_for(self, reached: Callable[[], bool], what: str, timeout: float = DEADLINE) -> None:
        """Until `reached()`; fails at once if the pass ended on its own before it."""
        deadline = time.monotonic() + timeout
        while not reached():
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"the pass exited ({self.proc.returncode}) before {what}:\n"
                    + self.log_path.read_text(errors="replace")[-3000:]
                )
            if time.monotonic() >= deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}")
            time.sleep(0.01)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        assert self.proc.returncode == -signal.SIGKILL, "the pass ended before it was killed"


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], Victim]]:
    started: list[Victim] = []

    def start(env: dict[str, str]) -> Victim:
        victim = Victim(env, tmp_path / f"killed-pass-{len(started)}.log")
        started.append(victim)
        return victim

    yield start
    for victim in started:  # a test that failed before its kill leaves nothing running
        if victim.proc.poll() is None:
            victim.kill()


@pytest.fixture
def env_for(prometheus: Prometheus, fake_agent: FakeAlertAgent) -> Callable[..., dict[str, str]]:
    """A pass against the real Prometheus; settings given override (RELOAD_URL, ...)."""

    def make(**settings: str) -> dict[str, str]:
        return pass_env(
            fake_agent.url,
            prometheus.config_path,
            RELOAD_URL=prometheus.reload_url,
            **settings,
        )

    return make


def kill_between_staging_and_swap(
    spawn: Callable[[dict[str, str]], Victim], env: dict[str, str], marker: Path
) -> None:
    victim = spawn({**env, "CHECK_COMMAND": stalling_check(marker)})
    victim.wait_for(marker.exists, "the check command to start on the staged file")
    victim.kill()


def kill_after_the_swap(
    spawn: Callable[[dict[str, str]], Victim], env: dict[str, str], stuck: str
) -> None:
    """Kill the pass while it waits on a target that hangs on the reload or is not ready."""
    with FakeTarget(
        hang_on_reload=stuck == "reload", ready_status=503 if stuck == "ready" else 200
    ) as fake:
        victim = spawn(
            {**env, "RELOAD_URL": fake.reload_url, "READY_TIMEOUT": "60s", "HTTP_TIMEOUT": "60s"}
        )
        seen = "POST /-/reload" if stuck == "reload" else "GET /-/ready"
        victim.wait_for(lambda: seen in fake.hits, f"FakeTarget to see {seen}")
        victim.kill()
        if stuck == "ready":
            assert "POST /-/reload" not in fake.hits


def assert_converged(prometheus: Prometheus, content: bytes, job: str, *gone: str) -> None:
    """The file is `content`, Prometheus runs it, nothing stray is left, nothing pending."""
    config = prometheus.config_path
    assert config.read_bytes() == content
    assert stray_temps(config) == []
    state = read_state(config)
    assert state["pending_reload"] is False
    assert state["applied_hash"] == sha256(content)
    assert state["last_exit_code"] == 0
    assert prometheus.reload_ok()
    loaded = loaded_prometheus_config(prometheus)
    assert f"job_name: {job}" in loaded
    for old_job in gone:
        assert old_job not in loaded


@pytest.mark.parametrize("stall", ["hang", "drip"])
def test_killed_while_fetching_leaves_the_old_config_and_the_next_pass_writes(
    prometheus, fake_agent, env_for, spawn, stall
):
    config = prometheus.config_path
    old = config.read_bytes()
    before = prometheus.reload_timestamp()
    if stall == "hang":
        fake_agent.script(Reply(hang=True))
        victim = spawn(env_for(HTTP_TIMEOUT="60s"))
        victim.wait_for(lambda: len(fake_agent.requests) >= 1, "the fetch to reach the source")
    else:  # headers sent, then the body one byte at a time: killed mid-body
        body = prometheus_yml("half-received")
        headers = {"Content-Type": "application/yaml", "X-Config-Hash": sha256(body)}
        fake_agent.script(Reply(200, headers, body, drip=0.05))
        victim = spawn(env_for(HTTP_TIMEOUT="60s"))
        victim.wait_for(
            lambda: bool(fake_agent.requests) and fake_agent.requests[0].bytes_out > 0,
            "the answer's headers to be sent",
        )
        started = fake_agent.requests[0].bytes_out
        victim.wait_for(
            lambda: fake_agent.requests[0].bytes_out >= started + 3, "part of the body to be sent"
        )
        assert fake_agent.requests[0].bytes_out < started + len(body) - 1
    victim.kill()

    assert config.read_bytes() == old
    # A raw body streams into a temporary file beside the config as it arrives: the
    # kill may leave it (half written); the next pass removes it.
    assert len(stray_temps(config)) <= 1
    if state_path(config).exists():  # nothing is recorded before the write-ahead save
        assert read_state(config)["pending_reload"] is False
    assert prometheus.reload_timestamp() == before

    new = prometheus_yml("after-a-killed-fetch")
    fake_agent.set_config(new)
    run = syncjob(env=env_for())
    assert (run.code, run.last["outcome"]) == (0, "written"), run.stderr
    assert prometheus.reload_timestamp() > before
    assert_converged(prometheus, new, "after-a-killed-fetch", "half-received")


def test_killed_between_staging_and_swap_leaves_the_old_config_and_a_stray_temp(
    prometheus, fake_agent, env_for, spawn, tmp_path
):
    config = prometheus.config_path
    old = config.read_bytes()
    before = prometheus.reload_timestamp()
    new = prometheus_yml("staged-then-killed")
    fake_agent.set_config(new)

    kill_between_staging_and_swap(spawn, env_for(), tmp_path / "check-started")

    assert config.read_bytes() == old
    strays = stray_temps(config)
    assert [p.name.startswith(f".{config.name}.") for p in strays] == [True], strays
    assert strays[0].read_bytes() == new  # staged whole and fsynced before the check ran
    if state_path(config).exists():
        assert read_state(config)["pending_reload"] is False
    assert prometheus.reload_timestamp() == before

    run = syncjob(env=env_for())  # the default checker (promtool) this time
    assert (run.code, run.last["outcome"]) == (0, "written"), run.stderr
    assert any("temporary file" in r["msg"] for r in run.records), run.stderr
    assert not strays[0].exists()
    assert prometheus.reload_timestamp() > before
    assert_converged(prometheus, new, "staged-then-killed")


@pytest.mark.parametrize("stuck", ["reload", "ready"])
def test_killed_after_the_swap_leaves_the_new_config_and_the_next_pass_reloads_it(
    prometheus, fake_agent, env_for, spawn, stuck
):
    config = prometheus.config_path
    before = prometheus.reload_timestamp()
    new = prometheus_yml(f"swapped-then-killed-waiting-for-{stuck}")
    fake_agent.set_config(new)

    kill_after_the_swap(spawn, env_for(), stuck)

    assert config.read_bytes() == new
    assert stray_temps(config) == []
    state = read_state(config)
    assert state["pending_reload"] is True
    assert state["applied_hash"] == sha256(new)
    assert prometheus.reload_timestamp() == before  # the real target was never told
    requests = len(fake_agent.requests)

    run = syncjob(env=env_for())  # the source unchanged
    assert (run.code, run.last["outcome"]) == (0, "reloaded"), run.stderr
    # The file it reloads is the one it checked before the swap: the source said 304.
    assert [r.status for r in fake_agent.requests[requests:]] == [304]
    assert prometheus.reload_timestamp() > before
    assert_converged(prometheus, new, f"swapped-then-killed-waiting-for-{stuck}")


@pytest.mark.parametrize("killed", ["staged", "swapped"])
def test_a_file_changed_by_hand_after_a_kill_is_replaced_not_reloaded(
    prometheus, fake_agent, env_for, spawn, tmp_path, killed
):
    config = prometheus.config_path
    fake_agent.set_config(prometheus_yml("verified-v1"))
    first = syncjob(env=env_for())
    assert (first.code, first.last["outcome"]) == (0, "written"), first.stderr

    v2 = prometheus_yml("verified-v2")
    fake_agent.set_config(v2)
    if killed == "staged":
        kill_between_staging_and_swap(spawn, env_for(), tmp_path / "check-started")
        assert read_state(config)["pending_reload"] is False
    else:
        kill_after_the_swap(spawn, env_for(), "reload")
        assert read_state(config)["pending_reload"] is True
    config.write_bytes(prometheus_yml("edited-by-hand"))  # drift while nobody was looking
    before = prometheus.reload_timestamp()
    reloads = reloads_in_log(prometheus)
    requests = len(fake_agent.requests)

    run = syncjob(env=env_for())
    assert (run.code, run.last["outcome"]) == (0, "written"), run.stderr
    # Asked in full (no If-None-Match): the disk is not what the state says was verified.
    fetches = fake_agent.requests[requests:]
    assert [(r.status, r.headers.get("if-none-match")) for r in fetches] == [(200, None)]
    if killed == "swapped":
        assert any("drift" in r["msg"] for r in run.records), run.stderr
    # One reload, of the source's config: the hand edit was never offered to Prometheus.
    assert reloads_in_log(prometheus) == reloads + 1
    assert prometheus.reload_timestamp() > before
    assert_converged(prometheus, v2, "verified-v2", "edited-by-hand", "verified-v1")
