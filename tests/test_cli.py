"""Each exit code, produced through the installed command line by a real situation.

76 (the target rejected the config) needs a real target: see test_integration.py.
"""

import hashlib
import json
import os
import re
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from syncjob import __version__
from syncjob.cli import app
from tests.cli import pass_env, syncjob
from tests.fake_alertagent import FakeAlertAgent, Reply
from tests.targets import free_port

CONFIG = b"global:\n  scrape_interval: 15s\n"


@pytest.fixture
def config_path(tmp_path):
    # syncjob never creates a missing folder (a typo in CONFIG_PATH must not "succeed")
    (tmp_path / "etc").mkdir()
    return tmp_path / "etc" / "prometheus.yml"


def test_version():
    run = syncjob("--version")
    assert (run.code, run.stdout.strip()) == (0, f"syncjob {__version__}")


def test_help_documents_every_exit_code():
    run = syncjob("--help")
    for code in (0, 1, 2, 3, 65, 69, 73, 75, 76, 77):
        assert f"\n{code:>5}  " in run.stdout


def test_demo_writes_then_finds_nothing_to_do():
    run = syncjob("demo")
    assert run.code == 0, run.stderr
    assert "written" in run.stdout
    assert "in sync" in run.stdout


# --- 0 ---------------------------------------------------------------------------


def test_first_pass_writes_and_second_is_a_304_no_op(fake_agent, config_path):
    fake_agent.set_config(CONFIG)
    env = pass_env(fake_agent.url, config_path)

    first = syncjob(env=env)
    assert first.code == 0, first.stderr
    assert config_path.read_bytes() == CONFIG
    assert first.last["outcome"] == "written"
    assert first.last["hash"] == hashlib.sha256(CONFIG).hexdigest()
    mtime = config_path.stat().st_mtime_ns

    second = syncjob(env=env)
    assert (second.code, second.last["outcome"]) == (0, "in sync")
    assert config_path.stat().st_mtime_ns == mtime
    assert [r.status for r in fake_agent.requests] == [200, 304]
    assert (
        fake_agent.requests[1].headers["if-none-match"] == f'"{hashlib.sha256(CONFIG).hexdigest()}"'
    )


def test_query_values_are_url_encoded(fake_agent, config_path):
    run = syncjob(env=pass_env(fake_agent.url, config_path, CLUSTER_ID="eu west/1&x=y"))
    assert run.code == 0, run.stderr
    assert fake_agent.requests[0].query == {"cluster_id": "eu west/1&x=y", "type": "prometheus"}
    assert fake_agent.requests[0].headers["user-agent"] == f"syncjob/{__version__}"


def test_a_config_path_directory_gets_the_documented_file_name(fake_agent, tmp_path):
    rules = tmp_path / "rules"
    rules.mkdir()
    fake_agent.set_config(b"groups: []\n")
    run = syncjob(env=pass_env(fake_agent.url, rules, CONFIG_TYPE="prometheus-rules"))
    assert run.code == 0, run.stderr
    assert (rules / "prometheus-rules.yml").read_bytes() == b"groups: []\n"


# --- 1 ---------------------------------------------------------------------------


def test_a_bug_exits_1_with_its_traceback_in_the_log(monkeypatch, fake_agent, config_path):
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("syncjob.sync.run_once", broken)
    result = CliRunner().invoke(app, [], env=pass_env(fake_agent.url, config_path))
    assert result.exit_code == 1
    record = json.loads(result.output.strip().splitlines()[-1])
    assert record["level"] == "error"
    assert "RuntimeError: boom" in record["traceback"]


# --- 2 ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("drop", "override", "message"),
    [
        ("CLUSTER_ID", {}, "missing setting: set CLUSTER_ID / --cluster-id"),
        (None, {"SYNC_INTERVAL": "soon"}, "invalid SYNC_INTERVAL / --sync-interval: "),
        (None, {"CONFIG_TYPE": "grafana"}, "invalid CONFIG_TYPE / --config-type: 'grafana'"),
        (
            None,
            {"ALERTAGENT_ENDPOINT": "alertagent:8080"},
            "invalid ALERTAGENT_ENDPOINT / --endpoint",
        ),
        (None, {"MAX_RETRIES": "-1"}, "invalid MAX_RETRIES / --max-retries"),
    ],
)
def test_a_bad_setting_is_one_line_naming_variable_and_flag(
    fake_agent, config_path, drop, override, message
):
    env = pass_env(fake_agent.url, config_path, **override)
    env.pop(drop, None)
    run = syncjob(env=env)
    assert run.code == 2
    assert run.stderr.count("\n") == 1
    assert run.stderr.startswith(f"syncjob: error: {message}")
    assert fake_agent.requests == []


def test_a_flag_wins_over_its_variable(fake_agent, config_path):
    env = pass_env(fake_agent.url, config_path, CONFIG_TYPE="grafana")
    run = syncjob("--config-type", "prometheus", env=env)
    assert run.code == 0, run.stderr


def test_an_unknown_flag_is_a_usage_error(fake_agent, config_path):
    run = syncjob("--no-such-flag", env=pass_env(fake_agent.url, config_path))
    assert run.code == 2
    assert "--no-such-flag" in run.stderr


# --- 65 --------------------------------------------------------------------------

HTML = b"<!DOCTYPE html><html><body>502 Bad Gateway</body></html>"
BIG = b"a: " + b"x" * 2048 + b"\n"


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (Reply(200, {"Content-Type": "text/html"}, HTML), "HTML page"),
        (
            Reply(200, {"Content-Type": "application/yaml", "X-Config-Hash": "0" * 64}, CONFIG),
            "hash mismatch",
        ),
        (Reply(200, {"Content-Type": "application/yaml"}, b"key: [unclosed\n"), "invalid YAML"),
        (Reply(200, {"Content-Type": "application/yaml"}, b"- a list\n"), "must be a YAML mapping"),
        (
            Reply(200, {"Content-Type": "application/json"}, b'{"status": "success", "data": {}}'),
            "wrong shape",
        ),
        (Reply(200, {"Content-Type": "application/yaml"}, BIG), "over the cap"),
        (Reply(200, {"Content-Type": "application/yaml"}, CONFIG * 20, truncate=True), "cut short"),
        (Reply(200, {"Content-Type": "application/yaml"}, b" \n"), "empty config"),
    ],
    ids=["html", "hash", "yaml", "list", "envelope", "cap", "truncated", "empty"],
)
def test_refused_content_exits_65_and_writes_nothing(fake_agent, config_path, reply, message):
    config_path.parent.mkdir(parents=True, exist_ok=True)
    config_path.write_bytes(CONFIG)
    fake_agent.script(reply)
    run = syncjob(env=pass_env(fake_agent.url, config_path, MAX_BODY_SIZE="1KiB"))
    assert run.code == 65, run.stderr
    assert message in run.last["error"]
    assert config_path.read_bytes() == CONFIG
    assert sorted(p.name for p in config_path.parent.iterdir()) == [
        ".prometheus.yml.syncjob.json",
        ".prometheus.yml.syncjob.lock",
        "prometheus.yml",
    ]


# --- 69 --------------------------------------------------------------------------


def test_an_unreachable_source_exits_69(config_path):
    run = syncjob(env=pass_env(f"http://127.0.0.1:{free_port()}", config_path))
    assert run.code == 69
    assert "cannot connect" in run.last["error"]


def test_5xx_is_retried_with_retry_after_then_exits_69(fake_agent, config_path):
    busy = Reply(
        503,
        {"Retry-After": "0", "Content-Type": "application/json"},
        b'{"code": 503, "message": "maintenance", "error": "db down"}',
    )
    fake_agent.script(busy, busy, busy)
    run = syncjob(env=pass_env(fake_agent.url, config_path, MAX_RETRIES="2"))
    assert run.code == 69
    assert len(fake_agent.requests) == 3  # the first attempt and MAX_RETRIES retries
    assert "after 2 retries" in run.last["error"]
    assert "maintenance: db down" in run.last["error"]


def test_a_retry_that_succeeds_is_a_success(fake_agent, config_path):
    fake_agent.script(Reply(502), Reply(429, {"Retry-After": "0"}))
    run = syncjob(env=pass_env(fake_agent.url, config_path))
    assert run.code == 0, run.stderr
    assert [r.status for r in fake_agent.requests] == [502, 429, 200]


def test_404_fails_at_once_with_the_servers_message(fake_agent, config_path):
    run = syncjob(env=pass_env(fake_agent.url, config_path, ALERTAGENT_API_PATH="/api/v1/nope"))
    assert run.code == 69
    assert len(fake_agent.requests) == 1
    assert "HTTP 404: not found" in run.last["error"]


def test_a_source_that_never_answers_times_out_with_69(fake_agent, config_path):
    fake_agent.script(Reply(hang=True))
    run = syncjob(env=pass_env(fake_agent.url, config_path, MAX_RETRIES="0", HTTP_TIMEOUT="300ms"))
    assert run.code == 69
    assert "timed out" in run.last["error"]


# --- 73 --------------------------------------------------------------------------


def test_a_read_only_directory_exits_73_and_keeps_the_old_file(fake_agent, tmp_path, tiny_fs):
    config = tiny_fs / "prometheus.yml"
    config.write_bytes(b"global: {}\n")
    subprocess.run(["mount", "-o", "remount,ro", str(tiny_fs)], check=True)
    fake_agent.set_config(CONFIG)
    run = syncjob(env=pass_env(fake_agent.url, config))
    assert run.code == 73
    assert "Read-only file system" in run.last["error"]
    assert config.read_bytes() == b"global: {}\n"


def test_a_full_disk_exits_73_and_keeps_the_old_file(fake_agent, tiny_fs):
    config = tiny_fs / "prometheus.yml"
    config.write_bytes(b"global: {}\n")
    fake_agent.set_config(b"a: " + b"x" * (256 * 1024) + b"\n")  # bigger than the 64 KiB disk
    run = syncjob(env=pass_env(fake_agent.url, config))
    assert run.code == 73
    assert "No space left on device" in run.last["error"]
    assert config.read_bytes() == b"global: {}\n"
    assert not [p for p in tiny_fs.iterdir() if p.name.endswith(".tmp")]


# --- 75 --------------------------------------------------------------------------


def test_a_second_pass_while_one_holds_the_lock_exits_75_and_touches_nothing(
    fake_agent, config_path
):
    config_path.parent.mkdir(parents=True, exist_ok=True)
    lock = config_path.with_name(".prometheus.yml.syncjob.lock")
    with subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(lock)], stdout=subprocess.PIPE, text=True
    ) as holder:
        try:
            assert holder.stdout.readline() == "locked\n"
            run = syncjob(env=pass_env(fake_agent.url, config_path))
        finally:
            holder.kill()
    assert run.code == 75
    assert "another pass holds" in run.last["error"]
    assert fake_agent.requests == []
    assert not config_path.exists()
    assert not config_path.with_name(".prometheus.yml.syncjob.json").exists()


HOLD_LOCK = """
import fcntl, sys, time
fd = open(sys.argv[1], "a")
fcntl.flock(fd, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(3600)  # killed by the test
"""


def test_an_unreachable_target_exits_75_and_keeps_the_reload_pending(fake_agent, config_path):
    down = f"http://127.0.0.1:{free_port()}/-/reload"
    env = pass_env(fake_agent.url, config_path, RELOAD_URL=down, READY_TIMEOUT="300ms")
    run = syncjob(env=env)
    assert run.code == 75
    assert "target not ready after 0.3s" in run.last["error"]
    assert "Connection refused" in run.last["error"]
    assert config_path.read_bytes() == fake_agent.content
    state = json.loads(config_path.with_name(".prometheus.yml.syncjob.json").read_text())
    assert state["pending_reload"] is True


# --- 77 --------------------------------------------------------------------------


@pytest.mark.parametrize("status", [401, 403])
def test_refused_credentials_exit_77_at_once(fake_agent, config_path, status):
    fake_agent.script(
        Reply(
            status,
            {"Content-Type": "application/json"},
            b'{"code": %d, "message": "unauthorized", "error": "token expired"}' % status,
        )
    )
    run = syncjob(env=pass_env(fake_agent.url, config_path))
    assert run.code == 77
    assert len(fake_agent.requests) == 1
    assert "token expired" in run.last["error"]


# --- syncjob status ----------------------------------------------------------------


def test_status_reads_the_state_file_without_the_network(fake_agent, config_path):
    env = pass_env(fake_agent.url, config_path)
    assert syncjob(env=env).code == 0
    offline = {"CONFIG_PATH": str(config_path)}  # no endpoint, no cluster: status needs neither

    human = syncjob("status", env=offline)
    assert human.code == 0
    assert "in sync: last success" in human.stdout

    as_json = syncjob("status", "--json", env=offline)
    doc = json.loads(as_json.stdout)
    assert (as_json.code, doc["healthy"], doc["counts"]["runs"]) == (0, True, 1)
    assert doc["applied_hash"] == hashlib.sha256(fake_agent.content).hexdigest()

    stale = syncjob("status", "--max-age", "1ms", env=offline)
    assert stale.code == 3
    assert stale.stderr.startswith("syncjob: unhealthy: last success")


def test_status_exits_with_the_failed_pass_code(fake_agent, config_path):
    fake_agent.script(Reply(403, {}, b"forbidden"))
    assert syncjob(env=pass_env(fake_agent.url, config_path)).code == 77
    run = syncjob("status", env={"CONFIG_PATH": str(config_path)})
    assert run.code == 77
    assert "last pass failed with exit code 77" in run.stderr


def test_status_of_a_config_never_synced_is_3(tmp_path):
    run = syncjob("status", env={"CONFIG_PATH": str(tmp_path / "prometheus.yml")})
    assert (run.code, run.stderr) == (3, "syncjob: unhealthy: no pass has run yet\n")


@pytest.mark.parametrize(
    ("last_success", "words"),
    [
        ("NaN", "last success is not a time (nan)"),
        ("Infinity", "last success is not a time (inf)"),
        ("1e300", "in the future"),
        ("2800000000", "in the future: the clock stepped back"),
    ],
)
def test_status_of_a_state_with_an_impossible_time_is_3_never_in_sync(
    fake_agent, config_path, last_success, words
):
    """A state file the schema allows, with a time that means nothing: said as such."""
    env = pass_env(fake_agent.url, config_path)
    assert syncjob(env=env).code == 0
    state = config_path.with_name(".prometheus.yml.syncjob.json")
    text = state.read_text()
    doc = json.loads(text)
    text = text.replace(
        f'"last_success": {json.dumps(doc["last_success"])}', f'"last_success": {last_success}'
    )
    state.write_text(text)
    offline = {"CONFIG_PATH": str(config_path)}
    human = syncjob("status", env=offline)
    assert human.code == 3
    assert human.stderr.startswith("syncjob: unhealthy: last success ")
    assert words in human.stderr
    assert len(human.stderr.splitlines()) == 1
    assert len(human.stderr) < 200
    assert "Traceback" not in human.stderr + human.stdout
    as_json = syncjob("status", "--json", env=offline)
    assert as_json.code == 3
    assert json.loads(as_json.stdout)["healthy"] is False


# --- what a new user meets first ---------------------------------------------------


def test_a_relative_config_path_with_a_folder_is_checked_and_written(fake_agent, tmp_path):
    """The checker runs in the config's folder: a relative path must still name the file."""
    from tests.cli import SYNCJOB
    from tests.targets import require_binary

    require_binary("promtool", "prometheus")
    (tmp_path / "conf").mkdir()
    fake_agent.set_config(CONFIG)
    env = {**pass_env(fake_agent.url, tmp_path), "CONFIG_PATH": "conf/prometheus.yml"}
    proc = subprocess.run(
        [str(SYNCJOB)], env={**os.environ, **env}, cwd=tmp_path, capture_output=True,
        text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "conf" / "prometheus.yml").read_bytes() == CONFIG


def test_a_typo_in_the_folder_is_73_and_creates_nothing(fake_agent, tmp_path):
    typo = tmp_path / "promethues" / "prometheus.yml"
    run = syncjob(env=pass_env(fake_agent.url, typo))
    assert run.code == 73
    assert run.last["error"] == (
        f"the folder {typo.parent} does not exist: create it, or fix CONFIG_PATH"
    )
    assert run.stderr.count("\n") == 1  # the pass's own line, and nothing else
    assert not typo.parent.exists()
    assert fake_agent.requests == []


def test_settings_stand_before_or_after_the_command(fake_agent, config_path):
    assert syncjob(env=pass_env(fake_agent.url, config_path)).code == 0
    after = syncjob("status", "--config-path", str(config_path), "--json")
    before = syncjob("--config-path", str(config_path), "status", "--json")
    assert (after.code, before.code) == (0, 0)
    assert json.loads(after.stdout)["config_path"] == str(config_path)


def test_a_refused_config_is_named_by_its_own_hash_in_the_log_and_status(fake_agent, config_path):
    fake_agent.set_config(CONFIG)
    assert syncjob(env=pass_env(fake_agent.url, config_path)).code == 0
    refused = b"groups: [\n"
    fake_agent.set_config(refused)
    run = syncjob(env=pass_env(fake_agent.url, config_path))
    assert run.code == 65
    served = hashlib.sha256(refused).hexdigest()
    assert run.last["hash"] == served
    status = syncjob("status", "--json", "--config-path", str(config_path))
    doc = json.loads(status.stdout)
    assert (status.code, doc["failed_config_hash"]) == (65, served)
    assert doc["applied_hash"] == hashlib.sha256(CONFIG).hexdigest()


def test_status_after_a_pass_that_could_not_record_says_so(fake_agent, tiny_fs):
    config = tiny_fs / "prometheus.yml"
    subprocess.run(["mount", "-o", "remount,ro", str(tiny_fs)], check=True)
    assert syncjob(env=pass_env(fake_agent.url, config)).code == 73
    run = syncjob("status", "--config-path", str(config))
    assert run.code == 73
    assert run.stderr == (
        f"syncjob: unhealthy: no state recorded in {config.parent}/.prometheus.yml.syncjob.json:"
        f" the folder {config.parent} is not writable, so the last pass could not record one"
        " (its log line says what it did)\n"
    )


@pytest.mark.parametrize(
    "args",
    [("--no-such-flag",), ("status", "--no-such-flag"), ("--max-retries",), ("nosuchcommand",)],
)
def test_a_usage_error_is_one_line_and_exit_2(args):
    run = syncjob(*args)
    assert run.code == 2
    assert run.stderr.startswith("syncjob: error: ")
    assert run.stderr.count("\n") == 1
    assert "--help)" in run.stderr


def test_demo_leaves_no_temporary_folder(tmp_path):
    run = syncjob("demo", env={"TMPDIR": str(tmp_path)})
    assert run.code == 0, run.stderr
    assert list(tmp_path.iterdir()) == []


# --- what operators expect ---------------------------------------------------------


def test_log_format_logfmt_is_prometheus_shaped(config_path):
    with FakeAlertAgent(dialect="envelope", version="v1") as agent:
        run = syncjob("--log-format", "logfmt", env=pass_env(agent.url, config_path))
    assert run.code == 0, run.stderr
    (line,) = run.stderr.splitlines()
    digest = hashlib.sha256(agent.content).hexdigest()
    assert re.fullmatch(
        r'ts=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z level=info msg="pass written" '
        rf"outcome=written exit_code=0 hash={digest} version=v1 duration_ms=[\d.]+ "
        r"cluster_id=cluster-1 config_type=prometheus",
        line,
    ), line


def test_log_format_text_shows_time_hash_version_and_duration(config_path):
    with FakeAlertAgent(dialect="envelope", version="v1") as agent:
        run = syncjob(env=pass_env(agent.url, config_path, LOG_FORMAT="text"))
    assert run.code == 0, run.stderr
    (line,) = run.stderr.splitlines()
    digest = hashlib.sha256(agent.content).hexdigest()
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO +pass written  ", line), line
    assert f"hash={digest}" in line
    assert "version=v1" in line
    assert "duration_ms=" in line


def test_a_bad_log_format_is_exit_2(fake_agent, config_path):
    run = syncjob(env=pass_env(fake_agent.url, config_path, LOG_FORMAT="yaml"))
    assert run.code == 2
    assert run.stderr == (
        "syncjob: error: invalid LOG_FORMAT / --log-format: 'yaml' is not one of: "
        "json, logfmt, text\n"
    )


def test_help_lists_settings_in_panels_and_offers_completion():
    run = syncjob("--help")
    assert run.code == 0
    for panel in ("Source", "Target", "Checking", "Pushgateway", "TLS", "Loop", "Logging"):
        assert f"─ {panel} ─" in run.stdout
    assert "--install-completion" in run.stdout
    for command in ("status", "diff", "check", "demo"):
        assert f"│ {command} " in run.stdout
    # typer detects the shell from the parent process: a bash that does not exec it
    from tests.cli import SYNCJOB

    shown = subprocess.run(
        ["bash", "-c", f"{SYNCJOB} --show-completion; exit $?"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert "_SYNCJOB_COMPLETE=complete_bash" in shown.stdout


def test_completion_completes_commands_and_flags():
    env = {
        "_SYNCJOB_COMPLETE": "complete_bash",
        "COMP_WORDS": "syncjob --config-",
        "COMP_CWORD": "1",
    }
    run = syncjob(env=env)
    assert run.code == 0
    assert "--config-path" in run.stdout
    assert "--config-type" in run.stdout


def test_the_loops_endpoints_agree_on_counts_and_verdicts(fake_agent, config_path, start_loop):
    import signal

    from tests.targets import wait_until

    env = pass_env(fake_agent.url, config_path, SYNC_INTERVAL="1h")
    assert syncjob(env=env).code == 0
    assert syncjob(env=env).code == 0
    loop = start_loop(env)
    wait_until(lambda: loop.get("/ready")[0] == 200, 15, "ready")
    ready, metrics, both = (loop.json(p)[1] for p in ("/ready", "/metrics?format=json", "/status"))
    assert ready["sync_count"] == metrics["sync_count"] == both["metrics"]["sync_count"] == 3
    assert (both["health"]["status"], both["metrics"]["healthy"]) == ("healthy", True)

    fake_agent.script(Reply(404, {}, b"not found"))  # final: no retries
    loop.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: loop.json("/health")[1]["status"] == "degraded", 15, "a failed pass")
    ready, both = loop.json("/ready")[1], loop.json("/status")[1]
    assert (both["health"]["status"], both["metrics"]["healthy"]) == ("degraded", False)
    assert ready["sync_count"] == both["metrics"]["sync_count"] == 4


def test_every_setting_is_listed_in_a_help_panel():
    from syncjob.commands import PANELS
    from syncjob.settings import SETTINGS

    assert [s.env for s in SETTINGS if s.panel not in PANELS] == []


# --- failures name what they talked to ---------------------------------------------


def test_a_wrong_api_path_names_the_url_it_asked(fake_agent, config_path):
    env = pass_env(fake_agent.url, config_path, ALERTAGENT_API_PATH="/api/v1/nope")
    run = syncjob(env=env)
    assert run.code == 69
    url = f"{fake_agent.url}/api/v1/nope?cluster_id=cluster-1&type=prometheus"
    assert run.last["error"].endswith(f": GET {url} (check ALERTAGENT_API_PATH and CLUSTER_ID)")


def test_an_unreachable_source_retries_in_plain_words_and_names_the_url(config_path):
    port = free_port()
    env = pass_env(f"http://robot:s3cret@127.0.0.1:{port}", config_path, LOG_FORMAT="logfmt")
    run = syncjob(env=env)
    assert run.code == 69
    url = f"http://robot:***@127.0.0.1:{port}/api/v1/configs?cluster_id=cluster-1&type=prometheus"
    lines = run.stderr.splitlines()
    assert lines[:2] == [
        f'{lines[0].split(" ")[0]} level=warning msg="retrying GET {url} in 0.01s '
        '(attempt 2 of 3): cannot connect: connection refused"',
        f'{lines[1].split(" ")[0]} level=warning msg="retrying GET {url} in 0.02s '
        '(attempt 3 of 3): cannot connect: connection refused"',
    ]
    assert f"source unavailable: GET {url}: cannot connect" in lines[2]
    assert "s3cret" not in run.stderr
    assert "Retrying (" not in run.stderr  # urllib3's own warning, with its internals
    assert len(lines) == 3


def test_an_unreachable_target_names_reload_url_and_the_pending_reload(fake_agent, config_path):
    env = pass_env(
        fake_agent.url, config_path, READY_TIMEOUT="300ms",
        RELOAD_URL=f"http://127.0.0.1:{free_port()}/-/reload",
    )  # fmt: skip
    run = syncjob(env=env)
    assert run.code == 75
    assert run.last["error"].endswith(
        "; the reload is pending and the next pass tries it again (check RELOAD_URL and that "
        "the target runs)"
    )
    status = json.loads(syncjob("status", "--json", "--config-path", str(config_path)).stdout)
    assert status["pending_reload"] is True


def test_a_push_that_fails_names_the_url_and_leaves_the_pass_alone(fake_agent, config_path):
    gateway = f"http://127.0.0.1:{free_port()}"
    run = syncjob(env=pass_env(fake_agent.url, config_path, PUSHGATEWAY_URL=gateway))
    assert run.code == 0
    (warning,) = [r for r in run.records if r["level"] == "warning"]
    assert warning["msg"].startswith(
        f"push to the Pushgateway {gateway} failed: PUT {gateway}/metrics/job/syncjob/"
        "cluster_id/cluster-1/config_type/prometheus: cannot connect"
    )
