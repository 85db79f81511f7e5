"""`syncjob check`, through the installed command, against a real Prometheus, a real
Pushgateway and the fake AlertAgent: one line per item, the setting to fix, nothing written."""

import os
import re

import pytest

from tests.cli import pass_env, syncjob
from tests.fake_alertagent import Reply
from tests.targets import Prometheus, free_port

pytestmark = pytest.mark.integration


def full_env(agent, prometheus, pushgateway, **settings):
    return pass_env(
        agent.url, prometheus.config_path, RELOAD_URL=prometheus.reload_url,
        PUSHGATEWAY_URL=pushgateway.url, **settings,
    )  # fmt: skip


def verdicts(run):
    """{item: verdict} from the command's lines."""
    return {m[2]: m[1] for m in re.finditer(r"^(ok|warn|skip|FAIL) +(\S+) ", run.stdout, re.M)}


def syncjob_files(folder):
    return sorted(p.name for p in folder.iterdir() if "syncjob" in p.name)


def test_a_working_setup_holds_on_every_item_and_nothing_is_written_or_reloaded(
    fake_agent, prometheus, pushgateway
):
    config = prometheus.config_path
    before = (config.read_bytes(), config.stat().st_mtime_ns, prometheus.reload_timestamp())
    run = syncjob("check", env=full_env(fake_agent, prometheus, pushgateway))
    assert run.code == 0, run.stdout + run.stderr
    assert verdicts(run) == {
        "source": "ok", "folder": "ok", "checker": "ok", "ready": "ok", "reload": "ok",
        "metrics": "ok", "pushgateway": "ok",
    }  # fmt: skip
    assert re.search(r"^ok +checker +promtool check config \{path\}.*version 2\.", run.stdout, re.M)
    assert "405, it takes POST (not reloaded)" in run.stdout
    assert "prometheus_config_last_reload_successful 1" in run.stdout
    assert run.stdout.endswith("all items hold: a pass can run\n")
    after = (config.read_bytes(), config.stat().st_mtime_ns, prometheus.reload_timestamp())
    assert after == before
    assert syncjob_files(config.parent) == []
    assert fake_agent.requests[0].status == 200


def test_an_unreachable_source_is_69_naming_the_endpoint(prometheus, pushgateway, fake_agent):
    env = full_env(fake_agent, prometheus, pushgateway)
    env["ALERTAGENT_ENDPOINT"] = f"http://127.0.0.1:{free_port()}"
    run = syncjob("check", env=env)
    assert run.code == 69
    line = next(line for line in run.stdout.splitlines() if line.startswith("FAIL  source"))
    assert "(fix ALERTAGENT_ENDPOINT, ALERTAGENT_API_PATH or CLUSTER_ID)" in line
    assert verdicts(run)["ready"] == "ok"  # every item is still looked at
    assert run.stdout.endswith("1 item(s) failed: source\n")


def test_refused_credentials_are_77_naming_the_token_file(fake_agent, prometheus, pushgateway):
    fake_agent.script(Reply(401, {"Content-Type": "application/json"}, b'{"code": 401}'))
    run = syncjob("check", env=full_env(fake_agent, prometheus, pushgateway))
    assert run.code == 77
    assert "(fix ALERTAGENT_TOKEN_FILE or ALERTAGENT_BASIC_AUTH_FILE)" in run.stdout


def test_a_missing_folder_is_73(fake_agent, prometheus, pushgateway, tmp_path):
    env = full_env(fake_agent, prometheus, pushgateway)
    env["CONFIG_PATH"] = str(tmp_path / "promethues" / "prometheus.yml")
    run = syncjob("check", env=env)
    assert run.code == 73
    assert (
        f"FAIL  folder       {tmp_path / 'promethues'} does not exist: create it (fix "
        "CONFIG_PATH)" in run.stdout
    )
    assert not (tmp_path / "promethues").exists()


def test_a_read_only_folder_is_73(fake_agent, tiny_fs):
    import subprocess

    subprocess.run(["mount", "-o", "remount,ro", str(tiny_fs)], check=True)
    run = syncjob("check", env=pass_env(fake_agent.url, tiny_fs / "prometheus.yml"))
    assert run.code == 73
    assert "cannot write in" in run.stdout
    assert "Read-only file system" in run.stdout


def test_a_wrong_reload_path_is_2_naming_reload_url(fake_agent, prometheus, pushgateway):
    env = full_env(fake_agent, prometheus, pushgateway)
    env["RELOAD_URL"] = prometheus.url + "/-/reloadd"
    run = syncjob("check", env=env)
    assert run.code == 2
    assert "HTTP 404, no such endpoint (fix RELOAD_URL)" in run.stdout


def test_a_target_that_is_down_is_75_naming_reload_url(fake_agent, tmp_path):
    down = f"http://127.0.0.1:{free_port()}"
    config = tmp_path / "prometheus.yml"
    run = syncjob("check", env=pass_env(fake_agent.url, config, RELOAD_URL=f"{down}/-/reload"))
    assert run.code == 75
    assert verdicts(run)["ready"] == "FAIL"
    assert f"GET {down}/-/ready" in run.stdout
    assert "(fix RELOAD_URL)" in run.stdout
    assert verdicts(run)["pushgateway"] == "skip"


def test_prometheus_without_the_lifecycle_api_is_named(fake_agent, tmp_path):
    class NoLifecycle(Prometheus):
        def args(self):
            return [a for a in super().args() if a != "--web.enable-lifecycle"]

    (tmp_path / "prom").mkdir()
    config = tmp_path / "prom" / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 15s\n")
    with NoLifecycle(config) as prometheus:
        env = pass_env(fake_agent.url, config, RELOAD_URL=prometheus.reload_url)
        run = syncjob("check", env=env)
    assert run.code == 76
    assert "Prometheus runs without --web.enable-lifecycle" in run.stdout


def test_a_reload_command_not_on_path_is_2(fake_agent, prometheus):
    env = pass_env(
        fake_agent.url, prometheus.config_path, RELOAD_COMMAND="no-such-reloader --now",
        TARGET_METRICS_URL=prometheus.url + "/metrics",
    )  # fmt: skip
    run = syncjob("check", env=env)
    assert run.code == 2
    assert "FAIL  reload       no-such-reloader is not on PATH (fix RELOAD_COMMAND)" in run.stdout


def test_a_checker_not_on_path_is_2(fake_agent, tmp_path):
    env = pass_env(fake_agent.url, tmp_path / "p.yml", CHECK_COMMAND="no-such-tool {path}")
    run = syncjob("check", env=env)
    assert run.code == 2
    assert "no-such-tool is not on PATH (fix CHECK_COMMAND)" in run.stdout


def test_an_unreachable_pushgateway_fails(fake_agent, tmp_path):
    gateway = f"http://127.0.0.1:{free_port()}"
    env = pass_env(fake_agent.url, tmp_path / "p.yml", PUSHGATEWAY_URL=gateway)
    run = syncjob("check", env={**env, "PATH": os.environ["PATH"]})
    assert run.code == 69
    assert "(fix PUSHGATEWAY_URL)" in run.stdout


def test_a_wrong_api_path_is_69_naming_the_url_and_the_settings(fake_agent, tmp_path):
    env = pass_env(fake_agent.url, tmp_path / "p.yml", ALERTAGENT_API_PATH="/api/v1/nope")
    run = syncjob("check", env=env)
    assert run.code == 69
    (line,) = [line for line in run.stdout.splitlines() if line.startswith("FAIL")]
    assert line.endswith(
        f"GET {fake_agent.url}/api/v1/nope?cluster_id=cluster-1&type=prometheus "
        "(check ALERTAGENT_API_PATH and CLUSTER_ID)"
    )


@pytest.mark.parametrize("value", ["abc", "0x1", ""])
def test_a_target_whose_metrics_say_nonsense_fails_the_item_and_never_crashes(
    fake_agent, tmp_path, value
):
    """The metrics are read as a pass reads them: capped, and a value that is no number
    is the target's word against the reload, never a traceback."""
    from tests.fake_target import FakeTarget

    class Garbled(FakeTarget):
        def metrics_text(self) -> str:
            return f"prometheus_config_last_reload_successful {value}\n"

    (tmp_path / "etc").mkdir()
    with Garbled() as target:
        env = pass_env(fake_agent.url, tmp_path / "etc" / "prometheus.yml",
                       RELOAD_URL=target.reload_url, CHECK_COMMAND="")  # fmt: skip
        run = syncjob("check", env=env)
    # The fake's reload endpoint answers a GET with 404: the first failure, exit 2.
    assert run.code == 2, run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    line = next(line for line in run.stdout.splitlines() if line.startswith("FAIL  metrics"))
    assert "not a number" in line
