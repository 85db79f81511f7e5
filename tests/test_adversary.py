"""Faults found by attacking syncjob as a hostile or careless world would, kept fixed."""

import json
import os
import shlex
import sys
import time
import tracemalloc
from pathlib import Path

import pytest

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


def test_a_fifo_given_as_a_tls_file_is_refused_not_waited_on(tmp_path: Path) -> None:
    # OpenSSL opens the CA file (or the client key) with a plain open(): a FIFO with no
    # writer held the pass, `check` and `diff` for ever.
    fifo = tmp_path / "ca.pem"
    os.mkfifo(fifo)
    env = pass_env("https://127.0.0.1:1", tmp_path / "prometheus.yml", CHECK_COMMAND="")
    cases = [("ALERTAGENT_CA_FILE", ()), ("ALERTAGENT_CA_FILE", ("check",)),
             ("ALERTAGENT_CA_FILE", ("diff",)), ("TARGET_CA_FILE", ("check",))]  # fmt: skip
    for variable, command in cases:
        more = {variable: str(fifo), "RELOAD_URL": "https://127.0.0.1:2/-/reload"}
        run = syncjob(*command, env={**env, **more}, timeout=20)
        assert run.code == 2, (variable, command, run.stderr)
        assert f"{fifo}: it is a FIFO, not a regular file" in run.stderr


def test_diff_never_reads_a_huge_config_on_disk_whole(tmp_path: Path) -> None:
    # A sparse 256 MiB file in the config's place: diff read it whole (4 GiB RSS for a
    # 1 GiB one) and printed every byte of it. Over MAX_BODY_SIZE it equals nothing served.
    config = tmp_path / "prometheus.yml"
    with config.open("wb") as f:
        f.truncate(256 << 20)  # a hole: no block written
    with FakeAlertAgent(content=NEW) as agent:
        env = pass_env(agent.url, config, CHECK_COMMAND="", MAX_BODY_SIZE="64KiB")
        run = syncjob("diff", env=env)
    assert run.code == 4, run.stderr
    assert f"--- {config} ({256 << 20} bytes, over MAX_BODY_SIZE: not shown)" in run.stdout
    assert "+  scrape_interval: 20s" in run.stdout
    assert len(run.stdout) < 1000


def test_check_survives_absurdly_nested_json_at_the_targets_flags(tmp_path: Path) -> None:
    # /api/v1/status/flags answering [[[[...]]]]: json.loads raised RecursionError out
    # of `syncjob check` (exit 1, a traceback).
    deep = http("200 OK", "Content-Type: application/json", body=b"[" * 100_000 + b"]" * 100_000)
    ok = http("200 OK", body=b"ok")
    routes = {"/-/ready": ok, "/-/reload": http("405 Method Not Allowed"),
              "/api/v1/status/flags": deep, "/metrics": _metrics()}  # fmt: skip
    with FakeAlertAgent(content=NEW) as agent, HostilePeer(routes=routes) as target:
        env = pass_env(agent.url, tmp_path / "prometheus.yml", CHECK_COMMAND="",
                       RELOAD_URL=target.url + "/-/reload")  # fmt: skip
        run = syncjob("check", env=env)
        assert "GET /api/v1/status/flags" in target.requests
    assert "Traceback" not in run.stderr
    assert run.code == 0, run.stdout + run.stderr
    assert "ok    reload" in run.stdout


def test_diff_and_check_never_print_a_token_the_source_echoes(tmp_path: Path) -> None:
    # A pass masks its credentials in a peer's words; diff and check printed them.
    token = "s3cr3t-T0KEN-xyz"
    (tmp_path / "token").write_text(token + "\n")
    said = json.dumps({"code": 401, "message": f"token {token} expired"}).encode()
    answer = http("401 Unauthorized", "Content-Type: application/json", body=said)
    with HostilePeer([answer]) as source:
        env = pass_env(source.url, tmp_path / "prometheus.yml", CHECK_COMMAND="",
                       ALERTAGENT_TOKEN_FILE=str(tmp_path / "token"))  # fmt: skip
        for command in ("diff", "check"):
            run = syncjob(command, env=env)
            assert run.code == 77, run.stdout + run.stderr
            assert "expired" in run.stdout + run.stderr
            assert token not in run.stdout + run.stderr


def test_a_checker_that_floods_or_speaks_binary_or_cannot_run_is_no_crash(tmp_path: Path) -> None:
    # The checker's output was held whole (1.8 GiB RSS after 2 s of `yes`) and decoded as
    # UTF-8 (UnicodeDecodeError: exit 1); a command that is not executable raised
    # PermissionError (exit 1, a traceback).
    from syncjob import checker
    from syncjob.errors import ContentRefused, UsageError

    staged = tmp_path / "prometheus.yml"
    staged.write_bytes(NEW)
    flood = _python('import sys; sys.stdout.write("x" * (64 << 20)); sys.exit(1)')
    binary = _python("import sys; sys.stdout.buffer.write(bytes(range(256))); sys.exit(1)")
    tracemalloc.start()
    with pytest.raises(ContentRefused, match=r"refused the config \(exit 1\): x+"):
        checker.run(flood, str(staged), 30, secrets=list)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 8 << 20, f"peak {peak >> 20} MiB for 64 MiB of checker output"
    with pytest.raises(ContentRefused, match="refused the config"):
        checker.run(binary, str(staged), 30, secrets=list)
    with pytest.raises(UsageError, match="check command cannot start: /etc/passwd: Permission"):
        checker.run("/etc/passwd {path}", str(staged), 30, secrets=list)


def _python(code: str) -> str:
    """A CHECK_COMMAND running `code` in this Python, {path} as its argument."""
    return f"{shlex.quote(sys.executable)} -c {shlex.quote(code)} {{path}}"


def test_check_reads_a_checkers_version_bounded(tmp_path: Path) -> None:
    # `check` ran `<checker> --version` with capture_output=True, text=True: binary output
    # was a UnicodeDecodeError (exit 1), a flood was held whole (10 GiB RSS in 10 s).
    from syncjob.preflight import _version

    flood = tmp_path / "flood"
    flood.write_text(f"#!{sys.executable}\nimport sys\nsys.stdout.write('x' * (64 << 20))\n")
    binary = tmp_path / "binary"
    speak = "sys.stdout.buffer.write(b'\\xff\\x1b[2Jv1')"
    binary.write_text(f"#!{sys.executable}\nimport sys\n{speak}\n")
    for program in (flood, binary):
        program.chmod(0o755)
    tracemalloc.start()
    said = _version(str(flood))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert said == "x" * 200
    assert peak < 8 << 20, f"peak {peak >> 20} MiB"
    assert _version(str(binary)) == "\ufffd?[2Jv1"
