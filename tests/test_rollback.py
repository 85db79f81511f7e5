"""When the rollback itself fails: the installed `syncjob` against the real Prometheus.

A config Prometheus rejects is rolled back to the one it runs. These tests break the
rollback in the ways a host breaks it (the disk fills up between the write and the
rollback's copy, the rollback's own reload never reaches the target, the file was
edited by hand before the bad config arrived), then stop the fault and check the
invariant the README states: within two passes the file on disk and the config
Prometheus runs are the newest served config it accepts (while the newest is rejected:
the last one it ran), `prometheus_config_last_reload_successful` is 1, and Prometheus
never goes back to an older config than the last one it accepted.

Faults are injected at exact points, never by timing: a reverse proxy in front of
Prometheus (RELOAD_URL goes through it, and so /-/ready and /metrics beside it) runs
a step before forwarding a given POST /-/reload, or drops that POST's connection
unanswered.
"""

import contextlib
import hashlib
import http.client
import json
import os
import socket
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.cli import pass_env, syncjob
from tests.fake_alertagent import FakeAlertAgent, serve_in_thread
from tests.targets import Prometheus, http_request

pytestmark = pytest.mark.integration

PAGE = 4096  # tmpfs counts whole pages
# Prometheus parses it, but "banana" is no duration: the reload fails with
# "failed to reload config" and Prometheus keeps what it ran. (No CHECK_COMMAND, as in a
# container without promtool, so only Prometheus itself can refuse it.)
REJECTED = b"global:\n  scrape_interval: banana\n"


def prometheus_yml(job: str, padding: int = 0) -> bytes:
    text = (
        "global:\n  scrape_interval: 15s\nscrape_configs:\n"
        f"  - job_name: {job}\n    static_configs:\n      - targets: []\n"
    )
    line = "# kept for the record: a long comment that only takes up room on disk\n"
    return (text + line * (padding // len(line))).encode()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def state_path(config: Path) -> Path:
    return config.with_name(f".{config.name}.syncjob.json")


def read_state(config: Path) -> dict[str, Any]:
    return json.loads(state_path(config).read_text())


def running_config(prometheus: Prometheus) -> str:
    status, body = http_request("GET", prometheus.url + "/api/v1/status/config")
    assert status == 200
    return json.loads(body)["data"]["yaml"]


def reloads_in_log(prometheus: Prometheus) -> int:
    return prometheus.log_text().count("Loading configuration file")


def assert_converged(prometheus: Prometheus, config: Path, content: bytes, *older: str) -> None:
    """The invariant: `content` is on disk, Prometheus runs it (its job, none of `older`),
    its last reload succeeded, and nothing is left pending."""
    assert config.read_bytes() == content
    assert prometheus.reload_ok(), "prometheus_config_last_reload_successful is not 1"
    running = running_config(prometheus)
    job = content.decode().split("job_name: ", 1)[1].split("\n", 1)[0]
    assert f"job_name: {job}\n" in running
    for old in older:
        assert f"job_name: {old}\n" not in running
    assert read_state(config)["pending_reload"] is False


def assert_rejected_before(run: Any, rejected: bytes) -> None:
    assert run.code == 76, run.stderr
    error = run.last["error"]
    assert f"rejected config {sha256(rejected)[:12]} before" in error
    assert "waiting for the source to change" in error


@dataclass
class OnReload:
    """What the proxy does with one POST /-/reload: run `before`, then forward or drop."""

    before: Callable[[], None] | None = None
    drop: bool = False


class ReloadProxy:
    """Forwards every request to Prometheus, but the POST /-/reloads in the order queued
    in `on_reload` get its step first (or are dropped: the connection closed unanswered).
    `reloads` says what became of each POST /-/reload: "forwarded <status>" or "dropped"."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.removeprefix("http://")
        self.on_reload: deque[OnReload] = deque()
        self.reloads: list[str] = []
        self._server = _ProxyServer(("127.0.0.1", 0), _proxy_handler(self))
        self.url, self._thread = serve_in_thread(self._server, None)
        self.reload_url = self.url + "/-/reload"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> "ReloadProxy":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a dropped connection is the point, not a failure


def _proxy_handler(proxy: ReloadProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):  # HTTP/1.0: one request per connection
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            self._forward(b"")

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path == "/-/reload":
                step = proxy.on_reload.popleft() if proxy.on_reload else OnReload()
                if step.before is not None:
                    step.before()
                if step.drop:
                    proxy.reloads.append("dropped")
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(socket.SHUT_RDWR)
                    return
            self._forward(body)

        def _forward(self, body: bytes) -> None:
            conn = http.client.HTTPConnection(proxy.upstream, timeout=30)
            try:
                conn.request(self.command, self.path, body=body or None)
                answer = conn.getresponse()
                data = answer.read()
            finally:
                conn.close()
            if self.command == "POST" and self.path == "/-/reload":
                proxy.reloads.append(f"forwarded {answer.status}")
            self.send_response(answer.status)
            self.send_header("Content-Type", answer.getheader("Content-Type") or "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


@pytest.fixture
def proxy(prometheus: Prometheus) -> Iterator[ReloadProxy]:
    with ReloadProxy(prometheus.url) as forwarding:
        yield forwarding


def fill_leaving(folder: Path, pages: int) -> Path:
    """A file that takes all the free room in `folder`'s filesystem but `pages` pages."""
    st = os.statvfs(folder)
    free = st.f_bavail * st.f_frsize
    assert free > pages * PAGE, f"only {free} bytes free in {folder}"
    filler = folder / "filler"
    with filler.open("wb") as f:
        f.write(b"\0" * (free - pages * PAGE))
        f.flush()
        os.fsync(f.fileno())
    return filler


def test_a_rollback_copy_the_full_disk_refused_is_finished_once_there_is_room(
    tiny_fs: Path, tmp_path: Path, fake_agent: FakeAlertAgent
):
    config = tiny_fs / "prometheus.yml"  # a 64 KiB disk for the config and syncjob's files
    config.write_bytes(prometheus_yml("started-with"))
    # Four pages, so that its copy cannot fit where a state file (one page) still can.
    good = prometheus_yml("accepted", padding=3 * PAGE + 1000)
    assert 3 * PAGE < len(good) <= 4 * PAGE
    with (
        Prometheus(config, workdir=tmp_path / "prom") as prometheus,
        ReloadProxy(prometheus.url) as proxy,
    ):
        env = pass_env(fake_agent.url, config, RELOAD_URL=proxy.reload_url, CHECK_COMMAND="")
        fake_agent.set_config(good)
        first = syncjob(env=env)
        assert (first.code, first.last["outcome"]) == (0, "written"), first.stderr

        # The rejected config is written and reloaded; while Prometheus reads it,
        # the disk fills up: the rollback's copy has no room, its state file has.
        fake_agent.set_config(REJECTED)
        filled: list[Path] = []
        fill_the_disk = OnReload(before=lambda: filled.append(fill_leaving(tiny_fs, pages=2)))
        proxy.on_reload.append(fill_the_disk)
        full = syncjob(env=env)
        assert full.code == 73, full.stderr
        assert "failed to reload config" in full.last["error"]  # Prometheus's own words
        assert "No space left on device" in full.last["error"]
        assert proxy.reloads == ["forwarded 200", "forwarded 500"]
        assert config.read_bytes() == REJECTED  # the fault: the copy never landed
        state = read_state(config)
        assert (state["rejected_hash"], state["last_exit_code"]) == (sha256(REJECTED), 73)

        filled[0].unlink()  # the disk is freed
        before = prometheus.reload_timestamp()
        finished = syncjob(env=env)
        assert_rejected_before(finished, REJECTED)
        # The rejected file is this tool's own unfinished rollback, not a hand edit.
        assert not any("drift" in r["msg"] for r in finished.records), finished.stderr
        assert proxy.reloads[2:] == ["forwarded 200"]
        assert prometheus.reload_timestamp() > before
        assert_converged(prometheus, config, good, "started-with")

        # Converged for good: the same rejected config costs no write and no reload.
        reloads = reloads_in_log(prometheus)
        again = syncjob(env=env)
        assert_rejected_before(again, REJECTED)
        assert reloads_in_log(prometheus) == reloads
        assert_converged(prometheus, config, good)

        fixed = prometheus_yml("fixed-at-the-source")
        fake_agent.set_config(fixed)
        last = syncjob(env=env)
        assert (last.code, last.last["outcome"]) == (0, "written"), last.stderr
        assert_converged(prometheus, config, fixed, "accepted")


def test_a_rollback_reload_that_never_reached_the_target_is_done_by_the_next_pass(
    prometheus: Prometheus, fake_agent: FakeAlertAgent, proxy: ReloadProxy
):
    config = prometheus.config_path
    env = pass_env(fake_agent.url, config, RELOAD_URL=proxy.reload_url, CHECK_COMMAND="")
    good = prometheus_yml("accepted")
    fake_agent.set_config(good)
    first = syncjob(env=env)
    assert (first.code, first.last["outcome"]) == (0, "written"), first.stderr

    # Prometheus refuses the new config; the rollback's own reload is lost on the way.
    fake_agent.set_config(REJECTED)
    proxy.on_reload.extend([OnReload(), OnReload(drop=True)])
    lost = syncjob(env=env)
    assert lost.code == 75, lost.stderr  # the target could not be reached: try later
    assert "failed to reload config" in lost.last["error"]
    assert "the rollback did not finish" in lost.last["error"]
    assert proxy.reloads == ["forwarded 200", "forwarded 500", "dropped"]
    assert config.read_bytes() == good  # put back, but Prometheus was never told
    assert prometheus.metric("prometheus_config_last_reload_successful") == 0
    assert read_state(config)["pending_reload"] is True

    before = prometheus.reload_timestamp()
    finished = syncjob(env=env)
    assert_rejected_before(finished, REJECTED)
    assert proxy.reloads[3:] == ["forwarded 200"]
    assert prometheus.reload_timestamp() > before
    assert_converged(prometheus, config, good)

    again = syncjob(env=env)
    assert_rejected_before(again, REJECTED)
    assert proxy.reloads[4:] == []  # nothing pending: no reload
    assert_converged(prometheus, config, good)


def test_a_rollback_restores_what_the_target_runs_not_an_older_config(
    prometheus: Prometheus, fake_agent: FakeAlertAgent
):
    config = prometheus.config_path
    env = pass_env(fake_agent.url, config, RELOAD_URL=prometheus.reload_url, CHECK_COMMAND="")
    older, newer = prometheus_yml("accepted-first"), prometheus_yml("accepted-second")
    for content in (older, newer):
        fake_agent.set_config(content)
        run = syncjob(env=env)
        assert (run.code, run.last["outcome"]) == (0, "written"), run.stderr
    assert_converged(prometheus, config, newer, "accepted-first")

    # Edited by hand, and nobody reloaded: Prometheus still runs `newer`.
    config.write_bytes(prometheus_yml("edited-by-hand"))
    fake_agent.set_config(REJECTED)
    rolled = syncjob(env=env)
    assert rolled.code == 76, rolled.stderr
    assert "failed to reload config" in rolled.last["error"]
    assert "rolled back to the last good config" in rolled.last["error"]
    assert_converged(prometheus, config, newer, "accepted-first", "edited-by-hand")

    reloads = reloads_in_log(prometheus)
    again = syncjob(env=env)
    assert_rejected_before(again, REJECTED)
    assert reloads_in_log(prometheus) == reloads
    assert_converged(prometheus, config, newer, "accepted-first")


def test_a_state_with_an_etag_but_no_source_hash_fetches_in_full(
    prometheus: Prometheus, fake_agent: FakeAlertAgent
):
    config = prometheus.config_path
    content = prometheus_yml("on-disk")
    config.write_bytes(content)
    assert prometheus.reload()[0] == 200
    fake_agent.set_config(content)  # its ETag is the quoted SHA-256: that tag gets a 304
    etag = f'"{sha256(content)}"'
    state = {
        "schema_version": 1, "applied_hash": sha256(content), "source_hash": None,
        "version": None, "etag": etag, "pending_reload": False, "rejected_hash": None,
        "last_attempt": None, "last_success": None, "last_change": None, "last_error": None,
        "last_exit_code": None, "consecutive_failures": 0,
        "counts": dict.fromkeys(
            ("runs", "successes", "failures", "changes", "reloads", "rollbacks"), 0
        ),
    }  # fmt: skip
    state_path(config).write_text(json.dumps(state))
    env = pass_env(fake_agent.url, config, RELOAD_URL=prometheus.reload_url)
    before = prometheus.reload_timestamp()

    run = syncjob(env=env)
    assert run.code == 0, run.stderr  # not a crash on a 304 it cannot place
    assert run.last["outcome"] == "in sync"
    # Asked in full: a 304 would have said nothing about which config the tag stood for.
    assert [(r.status, r.headers.get("if-none-match")) for r in fake_agent.requests] == [
        (200, None)
    ]
    assert prometheus.reload_timestamp() == before
    assert config.read_bytes() == content

    # The state now knows what the tag stands for: the next pass may ask conditionally.
    second = syncjob(env=env)
    assert (second.code, second.last["outcome"]) == (0, "in sync"), second.stderr
    assert [(r.status, r.headers.get("if-none-match")) for r in fake_agent.requests[1:]] == [
        (304, etag)
    ]
    assert_converged(prometheus, config, content)
