"""`syncjob --loop`: a real process with a 1 s interval, the fake AlertAgent and the real
Prometheus; its HTTP endpoints, signals, and what happens when the source goes down."""

import json
import math
import select
import signal
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest

from syncjob.errors import ExitCode
from syncjob.loop import Progress, next_delay
from syncjob.server import Views, start_server, stuck_after
from syncjob.settings import resolve
from syncjob.state import State
from syncjob.sync import Outcome
from tests.cli import pass_env, syncjob
from tests.fake_alertagent import Reply
from tests.targets import http_request, wait_until

PROM = (
    "global:\n  scrape_interval: 15s\nscrape_configs:\n  - job_name: {}\n    static_configs: []\n"
)


def running_config(prometheus) -> str:
    _, body = http_request("GET", prometheus.url + "/api/v1/status/config")
    return json.loads(body)["data"]["yaml"]


@pytest.mark.integration
def test_the_loop_keeps_prometheus_in_step_and_answers_its_endpoints(
    prometheus, fake_agent, start_loop
):
    fake_agent.set_config(PROM.format("v1").encode(), version="v1")
    env = pass_env(
        fake_agent.url, prometheus.config_path, RELOAD_URL=prometheus.reload_url,
        SYNC_INTERVAL="1s",
    )  # fmt: skip
    loop = start_loop(env)
    wait_until(lambda: loop.get("/ready")[0] == 200, 15, "ready")

    status, ready = loop.json("/ready")
    assert ready["ready"] is True
    assert ready["sync_count"] >= 1
    status, health = loop.json("/health")
    assert status == 200
    assert set(health) == {
        "status", "timestamp", "uptime", "version", "cluster_id", "config_type", "last_sync",
        "error",
    }  # fmt: skip
    assert (health["status"], health["cluster_id"], health["error"]) == ("healthy", "cluster-1", "")
    assert loop.get("/healthz") == (200, b"ok\n")

    status, text = loop.get("/metrics")
    assert b'config_sync_in_sync{cluster_id="cluster-1",config_type="prometheus"} 1.0' in text
    status, metrics = loop.json("/metrics?format=json")
    assert metrics["success_count"] >= 1
    asked = urllib.request.Request(loop.url + "/metrics", headers={"Accept": "application/json"})
    with urllib.request.urlopen(asked, timeout=5) as response:
        assert json.loads(response.read()).keys() == metrics.keys()
    status, both = loop.json("/status")
    assert set(both) == {"health", "metrics"}
    assert loop.get("/nope")[0] == 404
    assert loop.get("/healthz", method="POST")[0] == 405

    # A change at the source reaches Prometheus within one interval (+ jitter and a pass).
    fake_agent.set_config(PROM.format("v2").encode())
    changed_at = time.monotonic()
    wait_until(lambda: "job_name: v2" in running_config(prometheus), 5, "Prometheus to run v2")
    assert time.monotonic() - changed_at < 1.1 + 1.0

    assert loop.stop() == 0


def test_a_source_outage_is_an_error_in_health_not_a_liveness_failure(
    fake_agent, tmp_path, start_loop
):
    loop = start_loop(pass_env(fake_agent.url, tmp_path / "prometheus.yml", SYNC_INTERVAL="1s"))
    wait_until(lambda: loop.get("/ready")[0] == 200, 10, "ready")
    fake_agent.close()  # AlertAgent goes away

    wait_until(lambda: loop.json("/health")[1]["error"] != "", 10, "/health to report the error")
    status, health = loop.json("/health")
    assert (status, health["status"]) == (200, "degraded")
    assert "source unavailable" in health["error"]
    assert loop.get("/healthz")[0] == 200  # no restart for an AlertAgent outage
    assert loop.get("/ready")[0] == 200  # the verified config is still on disk
    assert loop.json("/metrics?format=json")[1]["retry_count"] >= 1
    assert loop.stop() == 0


def test_not_ready_before_the_first_pass_has_put_a_config_in_place(
    fake_agent, tmp_path, start_loop
):
    fake_agent.script(Reply(hang=True))
    loop = start_loop(pass_env(fake_agent.url, tmp_path / "prometheus.yml", HTTP_TIMEOUT="30s"))
    fake_agent.wait_for_requests(1)
    status, ready = loop.json("/ready")
    assert (status, ready["ready"], ready["sync_count"]) == (503, False, 0)
    assert loop.get("/healthz")[0] == 200  # a pass in flight: alive, and answering at once


def test_sighup_starts_a_pass_now(fake_agent, tmp_path, start_loop):
    loop = start_loop(pass_env(fake_agent.url, tmp_path / "prometheus.yml", SYNC_INTERVAL="1h"))
    fake_agent.wait_for_requests(1)
    wait_until(lambda: loop.json("/ready")[0] == 200, 10, "the first pass")
    loop.proc.send_signal(signal.SIGHUP)
    fake_agent.wait_for_requests(2, timeout=5)
    assert fake_agent.requests[1].status == 304


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_ends_the_loop_within_a_second_even_mid_pass(
    fake_agent, tmp_path, start_loop, sig
):
    config = tmp_path / "prometheus.yml"
    loop = start_loop(pass_env(fake_agent.url, config, SYNC_INTERVAL="1s"))
    wait_until(lambda: loop.get("/ready")[0] == 200, 10, "ready")
    fake_agent.script(Reply(hang=True))  # the next pass hangs on the source
    fake_agent.wait_for_requests(len(fake_agent.requests) + 1, timeout=5)
    before = config.read_bytes()
    sent = time.monotonic()
    loop.proc.send_signal(sig)
    assert loop.proc.wait(5) == 0
    assert time.monotonic() - sent < 1.0
    assert config.read_bytes() == before
    assert loop.records()[-1]["msg"] == "stopped"


def test_counts_continue_from_one_shot_passes(fake_agent, tmp_path, start_loop):
    from tests.cli import syncjob

    env = pass_env(fake_agent.url, tmp_path / "prometheus.yml", SYNC_INTERVAL="1h")
    assert syncjob(env=env).code == 0
    assert syncjob(env=env).code == 0
    loop = start_loop(env)
    wait_until(lambda: loop.get("/ready")[0] == 200, 10, "ready")
    assert loop.json("/metrics?format=json")[1]["sync_count"] == 3


# --- the schedule and the views, without processes ------------------------------------


@pytest.fixture
def settings(tmp_path):
    return resolve(
        {"endpoint": "http://127.0.0.1:1", "cluster_id": "c", "config_type": "prometheus",
         "config_path": str(tmp_path / "p.yml"), "sync_interval": "30s", "retry_backoff": "5s"},
        env={},
    )  # fmt: skip


def outcome(code: ExitCode, failures: int = 0) -> Outcome:
    return Outcome(code, "", None, None, 0.1, State(consecutive_failures=failures))


@pytest.mark.parametrize(
    ("code", "failures", "rand", "delay"),
    [
        (ExitCode.OK, 0, 0.5, 30.0),
        (ExitCode.OK, 0, 0.0, 27.0),  # -10%
        (ExitCode.OK, 0, 1.0, 33.0),  # +10%
        (ExitCode.UNAVAILABLE, 1, 0.5, 5.0),  # sooner after a failure
        (ExitCode.UNAVAILABLE, 2, 0.5, 10.0),
        (ExitCode.UNAVAILABLE, 3, 0.5, 20.0),
        (ExitCode.UNAVAILABLE, 9, 0.5, 30.0),  # never longer than the interval
    ],
)
def test_next_delay(settings, code, failures, rand, delay):
    assert next_delay(settings, outcome(code, failures), rand) == pytest.approx(delay)


# --- a worker that must not die: any number of failures, a bounded interval -------------


@pytest.mark.parametrize("failures", [1025, 10**6, 10**100], ids=["1025", "1e6", "1e100"])
@pytest.mark.parametrize("rand", [0.0, 0.999])
def test_next_delay_after_any_number_of_failures_is_at_most_the_interval(settings, failures, rand):
    # 2**1024 overflows a float: the worker thread used to die on the 1,025th failure.
    delay = next_delay(settings, outcome(ExitCode.UNAVAILABLE, failures), rand)
    assert math.isfinite(delay)
    assert 0 < delay <= settings.sync_interval * 1.1


def test_the_loop_keeps_polling_after_a_hundred_thousand_failed_passes(
    fake_agent, tmp_path, start_loop
):
    config = tmp_path / "prometheus.yml"
    counts = dict.fromkeys(("runs", "failures"), 100_000) | dict.fromkeys(
        ("successes", "changes", "reloads", "rollbacks"), 0
    )
    state = {
        "schema_version": 1, "applied_hash": None, "source_hash": None, "version": None,
        "etag": None, "pending_reload": False, "rejected_hash": None, "last_attempt": None,
        "last_success": None, "last_change": None, "last_error": "source unavailable",
        "last_exit_code": 69, "consecutive_failures": 100_000, "counts": counts,
    }  # fmt: skip
    state_path = tmp_path / ".prometheus.yml.syncjob.json"
    state_path.write_text(json.dumps(state))
    fake_agent.script(*[Reply(503)] * 1000)  # AlertAgent down: every request is a 503
    loop = start_loop(pass_env(fake_agent.url, config, SYNC_INTERVAL="1s"))  # 3 requests a pass

    # Three passes: the worker lived through the delay after the first two.
    def runs() -> int:
        return json.loads(state_path.read_text())["counts"]["runs"]

    wait_until(lambda: runs() >= 100_003, 20, "three passes recorded in the state")
    assert len(fake_agent.requests) >= 9
    assert {r.status for r in fake_agent.requests} == {503}
    assert loop.get("/healthz") == (200, b"ok\n")
    status, health = loop.json("/health")
    assert (status, health["status"]) == (200, "degraded")
    assert loop.stop() == 0


@pytest.mark.parametrize("mode", [[], ["--loop"]], ids=["one-shot", "loop"])
def test_a_sync_interval_past_the_bound_is_a_usage_error(fake_agent, tmp_path, mode):
    env = pass_env(
        fake_agent.url, tmp_path / "prometheus.yml", SYNC_INTERVAL="99999999999h",
        HTTP_PORT="0", HTTP_ADDRESS="127.0.0.1",
    )  # fmt: skip
    run = syncjob(*mode, env=env, timeout=20)
    assert run.code == 2
    assert len(run.stderr.strip().splitlines()) == 1
    assert "SYNC_INTERVAL" in run.stderr
    assert fake_agent.requests == []


@pytest.mark.parametrize("worker_alive", [True, False])
def test_healthz_fails_when_the_worker_is_gone(settings, worker_alive):
    settings = replace(settings, http_port=0, http_address="127.0.0.1")
    now = time.monotonic()
    progress = Progress(started=time.time(), started_mono=now, last_start_mono=now)
    server = start_server(settings, lambda: progress, worker_alive=lambda: worker_alive)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        healthz = http_request("GET", url + "/healthz")
        status, body = http_request("GET", url + "/health")
    finally:
        server.shutdown()
        server.server_close()
    if worker_alive:
        assert healthz == (200, b"ok\n")
        assert status == 200
    else:
        assert healthz == (503, b"stuck\n")  # the kubelet restarts the sidecar
        assert status == 503
        health = json.loads(body)
        assert health["status"] == "unhealthy"
        assert health["error"] == "the worker that runs the passes has stopped"


def test_liveness_fails_only_when_no_pass_started_or_finished_for_too_long(settings):
    views = Views(settings, lambda: True)
    now = time.monotonic()
    fresh = Progress(started=time.time(), started_mono=now, last_start_mono=now)
    assert views.alive(fresh)
    old = now - stuck_after(settings) - 1
    stuck = Progress(started=time.time(), started_mono=old, last_start_mono=old, last_end_mono=old)
    assert not views.alive(stuck)
    assert views.health(stuck)["status"] == "unhealthy"
    failing = Progress(
        started=time.time(), started_mono=now, last_end_mono=now,
        last=outcome(ExitCode.UNAVAILABLE, 3),
    )  # fmt: skip
    assert views.alive(failing)


# --- the HTTP server under a flood of idle connections ---------------------------------


def _usage(pid: int) -> tuple[int, int]:
    """The process's resident memory (KiB) and thread count, from /proc."""
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines())
    return int(fields["VmRSS"].split()[0]), int(fields["Threads"])


def test_a_thousand_idle_connections_neither_starve_nor_bloat_the_loop(
    fake_agent, tmp_path, start_loop
):
    loop = start_loop(pass_env(fake_agent.url, tmp_path / "prometheus.yml", SYNC_INTERVAL="1h"))
    wait_until(lambda: loop.get("/ready")[0] == 200, 10, "the first pass")
    rss_before, threads_before = _usage(loop.proc.pid)
    idle: list[socket.socket] = []
    try:
        for _ in range(1000):  # connected, and never a byte sent: each one a probe's worst case
            idle.append(socket.create_connection(("127.0.0.1", loop.port), timeout=5))
        asked = time.monotonic()
        # accepted after every idle one (the listen queue is first in, first out)
        assert loop.get("/healthz") == (200, b"ok\n")
        answered = time.monotonic() - asked
        rss, threads = _usage(loop.proc.pid)
        assert answered < 1.0
        assert threads <= threads_before + 40  # a bounded pool, not a thread per connection
        assert rss - rss_before < 8 * 1024
    finally:
        for conn in idle:
            conn.close()
    assert loop.get("/healthz") == (200, b"ok\n")
    assert loop.stop() == 0


def _answering() -> int:
    return sum(t.name == "http-answer" for t in threading.enumerate())


@contextmanager
def serving_on_loopback(settings) -> Iterator[tuple[str, int]]:
    """The loop's server, alone, on a free loopback port; its address."""
    settings = replace(settings, http_port=0, http_address="127.0.0.1")
    now = time.monotonic()
    progress = Progress(started=time.time(), started_mono=now, last_start_mono=now)
    server = start_server(settings, lambda: progress)
    try:
        yield ("127.0.0.1", server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def test_a_silent_connection_is_closed_and_a_busy_server_turns_extras_away_at_once(
    settings, monkeypatch
):
    from syncjob import server as http_server

    monkeypatch.setattr(http_server, "IDLE_TIMEOUT", 0.5)
    monkeypatch.setattr(http_server, "MAX_ANSWERING", 2)
    with serving_on_loopback(settings) as address:
        silent = socket.create_connection(address, timeout=5)
        slow = [socket.create_connection(address, timeout=5) for _ in range(2)]
        for conn in slow:  # half a request: each holds one of the two answering threads
            conn.sendall(b"GET /healthz HTTP/1.1\r\n")
        wait_until(lambda: _answering() == 2, 5, "both slow connections to hold a thread")
        extra = socket.create_connection(address, timeout=5)
        extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        started = time.monotonic()
        assert extra.recv(100) == b""  # closed unanswered, not queued behind the slow ones
        assert time.monotonic() - started < 0.4
        for conn in (silent, *slow):  # the server hangs up on each after IDLE_TIMEOUT
            assert conn.recv(100) == b""
        assert time.monotonic() - started < 3
        assert http_request("GET", f"http://127.0.0.1:{address[1]}/healthz") == (200, b"ok\n")
        for conn in (silent, extra, *slow):
            conn.close()


def test_a_request_that_trickles_in_frees_its_thread_within_the_idle_timeout(settings, monkeypatch):
    from syncjob import server as http_server

    monkeypatch.setattr(http_server, "IDLE_TIMEOUT", 0.5)
    with serving_on_loopback(settings) as address:
        with socket.create_connection(address, timeout=5) as drip:
            drip.sendall(b"G")  # dispatched to a thread: it has spoken
            started = time.monotonic()
            closed = False
            for byte in b"ET /healthz HTTP/1.1\r\nHost: x\r\n":
                time.sleep(0.2)  # the pace under test: well within each read's 0.5 s
                try:
                    drip.sendall(bytes([byte]))
                except OSError:  # reset: the server has closed it
                    closed = True
                    break
                if not select.select([drip], [], [], 0)[0]:
                    continue
                closed = drip.recv(100) == b""
                break
            assert closed
            assert time.monotonic() - started < 1.5  # 0.5 s, and never the ~6 s of bytes
        assert http_request("GET", f"http://127.0.0.1:{address[1]}/healthz") == (200, b"ok\n")
