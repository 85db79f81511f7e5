"""Every pass ends with a push to the real Pushgateway, and optionally a status report;
neither can change the pass's exit code."""

import http.server
import threading
import time

import pytest

from syncjob.errors import MEANINGS, ExitCode
from tests.cli import pass_env, syncjob
from tests.fake_alertagent import Reply
from tests.targets import free_port

CONFIG = b"global:\n  scrape_interval: 15s\n"
GROUP = '{cluster_id="cluster-1",config_type="prometheus",instance="",job="syncjob"}'


def pushed(pushgateway) -> dict[str, float]:
    return {k: v for k, v in pushgateway.metrics().items() if k.startswith("config_sync_")}


@pytest.mark.integration
def test_success_failure_and_no_change_are_all_pushed(pushgateway, fake_agent, tmp_path):
    env = pass_env(fake_agent.url, tmp_path / "prometheus.yml", PUSHGATEWAY_URL=pushgateway.url)
    fake_agent.set_config(CONFIG)

    written = syncjob(env=env)
    assert written.code == 0
    after_write = pushed(pushgateway)
    assert after_write[f"config_sync_runs_total{GROUP}"] == 1
    assert after_write[f"config_sync_changes_total{GROUP}"] == 1
    assert after_write[f"config_sync_last_exit_code{GROUP}"] == 0
    assert after_write[f"config_sync_in_sync{GROUP}"] == 1
    assert after_write[f"config_sync_last_change_timestamp_seconds{GROUP}"] > time.time() - 60

    fake_agent.script(Reply(200, {"Content-Type": "text/html"}, b"<html>oops</html>"))
    failed = syncjob(env=env)
    assert failed.code == 65
    after_failure = pushed(pushgateway)
    assert after_failure[f"config_sync_failures_total{GROUP}"] == 1
    assert after_failure[f"config_sync_consecutive_failures{GROUP}"] == 1
    assert after_failure[f"config_sync_last_exit_code{GROUP}"] == 65
    assert after_failure[f"config_sync_in_sync{GROUP}"] == 0

    unchanged = syncjob(env=env)
    assert (unchanged.code, unchanged.last["outcome"]) == (0, "in sync")
    after_no_change = pushed(pushgateway)
    assert after_no_change[f"config_sync_runs_total{GROUP}"] == 3  # counts add up across processes
    assert after_no_change[f"config_sync_changes_total{GROUP}"] == 1
    assert after_no_change[f"config_sync_consecutive_failures{GROUP}"] == 0
    assert after_no_change[f"config_sync_in_sync{GROUP}"] == 1
    info = [k for k in after_no_change if k.startswith("config_sync_info{")]
    assert len(info) == 1
    assert 'hash="' + written.last["hash"] + '"' in info[0]


def test_a_gateway_that_is_down_is_logged_and_the_exit_code_stands(fake_agent, tmp_path):
    env = pass_env(
        fake_agent.url, tmp_path / "prometheus.yml",
        PUSHGATEWAY_URL=f"http://127.0.0.1:{free_port()}",
    )  # fmt: skip
    run = syncjob(env=env)
    assert run.code == 0
    assert any("push to the Pushgateway" in r["msg"] for r in run.records)


def test_a_slow_gateway_is_cut_off_by_its_timeout(fake_agent, tmp_path):
    slow = _Recorder(delay=30)
    try:
        env = pass_env(
            fake_agent.url, tmp_path / "prometheus.yml",
            PUSHGATEWAY_URL=slow.url, PUSHGATEWAY_TIMEOUT="300ms",
        )  # fmt: skip
        started = time.monotonic()
        run = syncjob(env=env)
        assert run.code == 0
        assert time.monotonic() - started < 10
        assert any("timed out" in r["msg"] for r in run.records)
    finally:
        slow.close()


@pytest.mark.parametrize(
    ("setting", "content", "header"),
    [
        ("PUSHGATEWAY_TOKEN_FILE", "s3cret-token\n", "Bearer s3cret-token"),
        ("PUSHGATEWAY_BASIC_AUTH_FILE", "pusher:pa55\n", "Basic cHVzaGVyOnBhNTU="),
    ],
)
def test_gateway_credentials_come_from_files(fake_agent, tmp_path, setting, content, header):
    recorder = _Recorder()
    try:
        secret = tmp_path / "secret"
        secret.write_text(content)
        env = pass_env(
            fake_agent.url, tmp_path / "prometheus.yml",
            PUSHGATEWAY_URL=recorder.url, **{setting: str(secret)},
        )  # fmt: skip
        assert syncjob(env=env).code == 0
        assert recorder.requests == [
            ("PUT", "/metrics/job/syncjob/cluster_id/cluster-1/config_type/prometheus", header)
        ]
    finally:
        recorder.close()


def test_status_is_reported_to_alertagent(fake_agent, tmp_path):
    fake_agent.set_config(CONFIG)
    env = pass_env(fake_agent.url, tmp_path / "prometheus.yml", REPORT_STATUS="true")
    assert syncjob(env=env).code == 0
    fake_agent.script(Reply(200, {"Content-Type": "text/html"}, b"<html>oops</html>"))
    assert syncjob(env=env).code == 65
    ok, failed = fake_agent.status_reports
    assert ok["status"] == "success"
    assert ok["cluster_id"] == "cluster-1"
    assert ok["config_type"] == "prometheus"
    assert ok["config_size"] == len(CONFIG)
    assert ok["sync_duration_ms"] > 0
    assert ok["sync_time"] == pytest.approx(time.time(), abs=60)
    assert ok["error_message"] == ""
    assert len(ok["config_hash"]) == 64
    assert failed["status"] == "failed"
    # syncjob's summary and the exit code, not the source's or a checker's words: those
    # stay in the log and the state file (test_leaks.py)
    assert failed["error_message"] == f"{MEANINGS[ExitCode.REFUSED]}; syncjob exit 65"


@pytest.mark.parametrize(
    ("reply", "logged"),
    [
        (Reply(500, {}, b'{"code": 500, "message": "db down"}'), "answered HTTP 500"),
        (Reply(hang=True), "timed out"),
    ],
)
def test_a_failed_status_report_never_fails_the_pass(fake_agent, tmp_path, reply, logged):
    fake_agent.status_reply = reply
    env = pass_env(
        fake_agent.url, tmp_path / "prometheus.yml", REPORT_STATUS="true", HTTP_TIMEOUT="300ms"
    )
    run = syncjob(env=env)
    assert run.code == 0
    assert any(logged in r["msg"] for r in run.records)


class _Recorder:
    """A loopback HTTP server that records (method, path, Authorization) and answers 200."""

    def __init__(self, delay: float = 0) -> None:
        self.requests: list[tuple[str, str, str | None]] = []
        self.closed = threading.Event()
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_PUT(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                recorder.requests.append(
                    (self.command, self.path, self.headers.get("Authorization"))
                )
                recorder.closed.wait(delay)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.closed.set()
        self.server.shutdown()
        self.server.server_close()
