"""Faults found by attacking syncjob as a hostile or careless world would, kept fixed."""

import json
import time
from pathlib import Path

from tests.cli import pass_env, syncjob
from tests.fake_alertagent import FakeAlertAgent
from tests.hostile_peer import Answer, HostilePeer, http

OLD = b"global:\n  scrape_interval: 15s\n"
NEW = b"global:\n  scrape_interval: 20s\n"


def _metrics() -> Answer:
    text = (
        "prometheus_config_last_reload_successful 1\n"
        f"prometheus_config_last_reload_success_timestamp_seconds {time.time() + 30:.3f}\n"
    )
    return http("200 OK", "Content-Type: text/plain", body=text.encode())


def _target(metrics: Answer) -> HostilePeer:
    ok = http("200 OK", body=b"ok")
    return HostilePeer(routes={"/-/ready": ok, "POST /-/reload": ok, "/metrics": metrics})


def test_metrics_cut_short_after_an_accepted_reload_leaves_it_pending_not_rejected(
    tmp_path: Path,
) -> None:
    # The target answers the reload 200, then the connection breaks in the middle of
    # /metrics (a reset, a proxy restarting). Nothing says the config was refused: the
    # pass must leave the reload pending (75), not roll back and refuse the new config
    # until the source changes (76 for ever after, though the target took it).
    config = tmp_path / "prometheus.yml"
    config.write_bytes(OLD)
    cut = Answer(b"HTTP/1.1 200 OK\r\nContent-Length: 4096\r\n\r\nprometheus_config_last")
    with FakeAlertAgent(content=OLD) as agent:
        env = pass_env(agent.url, config, CHECK_COMMAND="", READY_TIMEOUT="2s")
        with _target(_metrics()) as target:
            first = syncjob(env={**env, "RELOAD_URL": target.url + "/-/reload"})
        assert first.code == 0, first.stderr  # in sync; a last good copy of OLD exists
        agent.set_config(NEW, "v2")
        with _target(cut) as target:
            broken = syncjob(env={**env, "RELOAD_URL": target.url + "/-/reload"})
        assert broken.code == 75, broken.stderr
        assert "cut short" in broken.last["error"]
        assert "pending" in broken.last["error"]
        assert config.read_bytes() == NEW
        with _target(_metrics()) as target:
            after = syncjob(env={**env, "RELOAD_URL": target.url + "/-/reload"})
            assert "POST /-/reload" in target.requests
        assert after.code == 0, after.stderr
        assert config.read_bytes() == NEW
    state = json.loads((tmp_path / ".prometheus.yml.syncjob.json").read_text())
    assert state["rejected_hash"] is None
    assert state["pending_reload"] is False
