"""The installed `syncjob` against the fake AlertAgent and the real Prometheus / Alertmanager.

Effects are read off the targets themselves: their reload timestamps (float seconds,
finer than a pass), their loaded config, and their logs.
"""

import hashlib
import json

import pytest

from tests.cli import pass_env, syncjob
from tests.fake_alertagent import FakeAlertAgent
from tests.targets import free_port, http_request

pytestmark = pytest.mark.integration


def prometheus_yml(job: str) -> bytes:
    return (
        "global:\n  scrape_interval: 15s\nscrape_configs:\n"
        f"  - job_name: {job}\n    static_configs:\n      - targets: []\n"
    ).encode()


def alertmanager_yml(receiver: str) -> bytes:
    return f"route:\n  receiver: {receiver}\nreceivers:\n  - name: {receiver}\n".encode()


def loaded_prometheus_config(prometheus) -> str:
    status, body = http_request("GET", prometheus.url + "/api/v1/status/config")
    assert status == 200
    return json.loads(body)["data"]["yaml"]


def reloads_in_log(target) -> int:
    return target.log_text().count("Loading configuration file")


@pytest.fixture
def env_for(fake_agent):
    def make(target, config_type="prometheus", **settings):
        return pass_env(
            fake_agent.url,
            target.config_path,
            CONFIG_TYPE=config_type,
            RELOAD_URL=target.reload_url,
            **settings,
        )

    return make


def test_prometheus_write_reload_no_op_change_and_drift(prometheus, fake_agent, env_for):
    env = env_for(prometheus)
    fake_agent.set_config(prometheus_yml("from-alertagent-v1"), version="v1")

    first = syncjob(env=env)
    assert (first.code, first.last["outcome"]) == (0, "written"), first.stderr
    assert prometheus.reload_ok()
    after_first = prometheus.reload_timestamp()
    assert "from-alertagent-v1" in loaded_prometheus_config(prometheus)

    # Unchanged: a 304, no write, no reload.
    mtime = prometheus.config_path.stat().st_mtime_ns
    second = syncjob(env=env)
    assert (second.code, second.last["outcome"]) == (0, "in sync")
    assert fake_agent.requests[-1].status == 304
    assert prometheus.config_path.stat().st_mtime_ns == mtime
    assert prometheus.reload_timestamp() == after_first

    # A change at the source is written and reloaded.
    fake_agent.set_config(prometheus_yml("from-alertagent-v2"), version="v2")
    third = syncjob(env=env)
    assert (third.code, third.last["outcome"]) == (0, "written")
    after_change = prometheus.reload_timestamp()
    assert after_change > after_first
    assert "from-alertagent-v2" in loaded_prometheus_config(prometheus)

    # Drift: a hand edit is put back, and the log says so.
    prometheus.config_path.write_bytes(prometheus_yml("edited-by-hand"))
    fourth = syncjob(env=env)
    assert (fourth.code, fourth.last["outcome"]) == (0, "written")
    assert any("drift" in r["msg"] for r in fourth.records)
    assert prometheus.config_path.read_bytes() == prometheus_yml("from-alertagent-v2")
    assert prometheus.reload_timestamp() > after_change
    assert "edited-by-hand" not in loaded_prometheus_config(prometheus)


def test_alertmanager_write_reload_and_no_op(alertmanager, fake_agent, env_for):
    env = env_for(alertmanager, "alertmanager")
    fake_agent.set_config(alertmanager_yml("team-pager"))

    first = syncjob(env=env)
    assert (first.code, first.last["outcome"]) == (0, "written"), first.stderr
    assert alertmanager.reload_ok()
    after_first = alertmanager.reload_timestamp()
    _status, body = http_request("GET", alertmanager.url + "/api/v2/status")
    assert "team-pager" in json.loads(body)["config"]["original"]

    second = syncjob(env=env)
    assert (second.code, second.last["outcome"]) == (0, "in sync")
    assert alertmanager.reload_timestamp() == after_first


@pytest.mark.parametrize(
    ("dialect", "envelope_key", "etag", "api_path"),
    [
        ("envelope", "status", "none", "/api/v1/configs"),  # the design document's server
        ("envelope", "code", "quoted", "/api/v1/configs"),  # the newer generic wrapper
        ("raw", "status", "raw-hash", "/api/v1/config/sync"),  # the newer server, raw hash as ETag
    ],
)
def test_both_dialects_reach_prometheus(prometheus, env_for, dialect, envelope_key, etag, api_path):
    content = prometheus_yml(f"dialect-{dialect}-{envelope_key}")
    with FakeAlertAgent(
        dialect=dialect,
        envelope_key=envelope_key,
        etag=etag,
        api_path=api_path,
        content=content,
        version="v7",
    ) as agent:
        env = {
            **env_for(prometheus),
            "ALERTAGENT_ENDPOINT": agent.url,
            "ALERTAGENT_API_PATH": api_path,
        }
        first = syncjob(env=env)
        assert first.code == 0, first.stderr
        assert prometheus.config_path.read_bytes() == content
        assert f"dialect-{dialect}-{envelope_key}" in loaded_prometheus_config(prometheus)
        second = syncjob(env=env)
        assert (second.code, second.last["outcome"]) == (0, "in sync")
        assert first.last["version"] == ("v7" if dialect == "envelope" else None)
        sent = agent.requests[1].headers.get("if-none-match")
        digest = hashlib.sha256(content).hexdigest()
        # What each server compares against: nothing, its quoted ETag, or the raw hash.
        assert sent == {"none": None, "quoted": f'"{digest}"', "raw-hash": digest}[etag]
        assert agent.requests[1].status == (200 if etag == "none" else 304)


def test_target_down_during_reload_exits_75_and_the_next_pass_reloads(
    prometheus, fake_agent, env_for
):
    fake_agent.set_config(prometheus_yml("pending-reload"))
    down = {
        **env_for(prometheus),
        "RELOAD_URL": f"http://127.0.0.1:{free_port()}/-/reload",
        "READY_TIMEOUT": "300ms",
    }
    before = prometheus.reload_timestamp()

    first = syncjob(env=down)
    assert first.code == 75
    assert prometheus.config_path.read_bytes() == prometheus_yml("pending-reload")
    assert prometheus.reload_timestamp() == before  # nobody told Prometheus yet

    second = syncjob(env=env_for(prometheus))
    assert (second.code, second.last["outcome"]) == (0, "reloaded"), second.stderr
    assert prometheus.reload_timestamp() > before
    assert "pending-reload" in loaded_prometheus_config(prometheus)


def test_prometheus_rejecting_a_config_is_rolled_back_and_not_retried(
    prometheus, fake_agent, env_for
):
    # No checker (as in a container without promtool): only Prometheus itself can refuse.
    env = env_for(prometheus, CHECK_COMMAND="")
    started_with = prometheus.config_path.read_bytes()
    fake_agent.set_config(b"global:\n  scrape_interval: banana\n")  # YAML, but not a duration

    first = syncjob(env=env)
    assert first.code == 76
    assert "failed to reload config" in first.last["error"]  # Prometheus's own words
    assert "rolled back to the last good config" in first.last["error"]
    assert prometheus.config_path.read_bytes() == started_with
    assert prometheus.reload_ok()  # the rollback was reloaded and verified
    state = json.loads(prometheus.config_path.with_name(".prometheus.yml.syncjob.json").read_text())
    assert state["counts"]["rollbacks"] == 1
    assert "failed to reload config" in state["last_error"]
    reloads = reloads_in_log(prometheus)

    # The same content again: not written, not reloaded again, still 76.
    second = syncjob(env=env)
    assert second.code == 76
    assert "rejected" in second.last["error"]
    assert reloads_in_log(prometheus) == reloads
    assert prometheus.config_path.read_bytes() == started_with

    # A new content at the source is tried normally.
    fake_agent.set_config(prometheus_yml("fixed"))
    third = syncjob(env=env)
    assert (third.code, third.last["outcome"]) == (0, "written"), third.stderr
    assert prometheus.reload_ok()
    assert "fixed" in loaded_prometheus_config(prometheus)


def test_alertmanager_rejecting_a_config_is_rolled_back(alertmanager, fake_agent, env_for):
    started_with = alertmanager.config_path.read_bytes()
    fake_agent.set_config(b"route:\n  receiver: nobody\nreceivers:\n  - name: default\n")
    run = syncjob(env=env_for(alertmanager, "alertmanager", CHECK_COMMAND=""))
    assert run.code == 76
    assert "nobody" in run.last["error"]
    assert "rolled back" in run.last["error"]
    assert alertmanager.config_path.read_bytes() == started_with
    assert alertmanager.reload_ok()


def test_a_rejected_first_config_stays_in_place_when_there_is_nothing_to_roll_back_to(
    prometheus, fake_agent, env_for
):
    # Prometheus loads rules/*.yml; the rules file does not exist before the first pass.
    rules_dir = prometheus.config_path.parent / "rules"
    fake_agent.set_config(
        b"groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: 'up =='\n"
    )
    env = {
        **env_for(prometheus, "prometheus-rules", CHECK_COMMAND=""),
        "CONFIG_PATH": str(rules_dir),
    }
    run = syncjob(env=env)
    assert run.code == 76
    assert "no last good copy" in run.last["error"]
    assert (rules_dir / "prometheus-rules.yml").exists()


@pytest.mark.parametrize(
    ("target_fixture", "config_type", "content", "checker_says"),
    [
        (
            "prometheus",
            "prometheus",
            b"global:\n  scrape_interval: banana\n",
            "not a valid duration",
        ),
        ("alertmanager", "alertmanager", b"route:\n  receiver: nobody\nreceivers: []\n", "nobody"),
    ],
)
def test_the_targets_own_checker_refuses_before_anything_is_written(
    request, fake_agent, env_for, target_fixture, config_type, content, checker_says
):
    target = request.getfixturevalue(target_fixture)
    before = target.config_path.read_bytes()
    fake_agent.set_config(content)
    run = syncjob(env=env_for(target, config_type, ALLOW_EMPTY="true"))
    assert run.code == 65
    assert checker_says in run.last["error"]
    assert target.config_path.read_bytes() == before
    assert reloads_in_log(target) == 1  # the start only
