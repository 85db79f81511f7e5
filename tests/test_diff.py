"""`syncjob diff`, through the installed command: what a pass would change, and nothing done."""

import hashlib
import os

import pytest

from tests.cli import pass_env, syncjob
from tests.fake_alertagent import Reply

OLD = b"global:\n  scrape_interval: 15s\n"
NEW = b"global:\n  scrape_interval: 30s\n"


@pytest.fixture
def config_path(tmp_path):
    (tmp_path / "etc").mkdir()
    return tmp_path / "etc" / "prometheus.yml"


def listing(folder):
    """Every entry with its size and times: what `ls -la --full-time` would show."""
    return {
        e.name: (e.stat().st_size, e.stat().st_mtime_ns, e.stat().st_ctime_ns)
        for e in os.scandir(folder)
    } | {".": (0, folder.stat().st_mtime_ns, folder.stat().st_ctime_ns)}


def test_no_change_is_exit_0_and_says_in_sync(fake_agent, config_path):
    config_path.write_bytes(OLD)
    fake_agent.set_config(OLD)
    run = syncjob("diff", env=pass_env(fake_agent.url, config_path))
    assert (run.code, run.stderr) == (0, "")
    digest = hashlib.sha256(OLD).hexdigest()
    assert run.stdout == f"{config_path}: in sync with the source (sha256 {digest[:12]})\n"


def test_a_change_is_exit_4_with_a_plain_unified_diff_and_nothing_changes(fake_agent, config_path):
    config_path.write_bytes(OLD)
    syncjob(env=pass_env(fake_agent.url, config_path, ALLOW_EMPTY="true"))  # state, last good
    config_path.write_bytes(OLD)  # drifted back: the source serves another config
    fake_agent.set_config(NEW)
    before = listing(config_path.parent)
    requests = len(fake_agent.requests)

    run = syncjob("diff", env=pass_env(fake_agent.url, config_path))

    assert run.code == 4, run.stderr
    assert run.stdout == (
        f"--- {config_path}\n"
        f"+++ {config_path} (served by the source)\n"
        "@@ -1,2 +1,2 @@\n"
        " global:\n"
        "-  scrape_interval: 15s\n"
        "+  scrape_interval: 30s\n"
    )  # no colour: stdout is not a terminal
    assert listing(config_path.parent) == before  # no lock, no state, no temporary file
    assert config_path.read_bytes() == OLD
    # unconditional: a diff needs the bytes even when the source would say 304
    assert "if-none-match" not in fake_agent.requests[requests].headers


def test_a_missing_file_is_diffed_against_nothing(fake_agent, config_path):
    fake_agent.set_config(NEW)
    run = syncjob("diff", "--config-path", str(config_path), env=pass_env(fake_agent.url, "x"))
    assert run.code == 4
    assert run.stdout.startswith(f"--- {config_path} (missing)\n+++ ")
    assert "+  scrape_interval: 30s\n" in run.stdout
    assert list(config_path.parent.iterdir()) == []


def test_content_a_pass_would_refuse_is_its_code_and_nothing_changes(fake_agent, config_path):
    config_path.write_bytes(OLD)
    fake_agent.set_config(b"global: [\n")
    before = listing(config_path.parent)
    run = syncjob("diff", env=pass_env(fake_agent.url, config_path))
    assert run.code == 65
    assert run.stdout == ""
    assert run.stderr.startswith("syncjob: error: ")
    assert run.stderr.count("\n") == 1
    assert listing(config_path.parent) == before


def test_the_checkers_refusal_is_65(fake_agent, config_path):
    """promtool's verdict, run on a copy outside the config folder."""
    from tests.targets import require_binary

    require_binary("promtool", "prometheus")
    config_path.write_bytes(OLD)
    fake_agent.set_config(b"global:\n  scrape_interval: soon\n")
    before = listing(config_path.parent)
    run = syncjob("diff", env=pass_env(fake_agent.url, config_path))
    assert run.code == 65
    assert "promtool refused the config" in run.stderr
    assert listing(config_path.parent) == before


def test_an_unreachable_source_is_69(config_path):
    from tests.targets import free_port

    url = f"http://127.0.0.1:{free_port()}"
    run = syncjob("diff", env=pass_env(url, config_path))
    assert run.code == 69
    *retries, error = run.stderr.splitlines()
    assert len(retries) == 2  # MAX_RETRIES=2, each retry one log line
    assert error.startswith(f"syncjob: error: source unavailable: GET {url}/api/v1/configs?")


def test_refused_credentials_are_77(fake_agent, config_path):
    fake_agent.script(Reply(401, {"Content-Type": "application/json"}, b'{"code": 401}'))
    run = syncjob("diff", env=pass_env(fake_agent.url, config_path))
    assert run.code == 77


def test_at_a_terminal_the_diff_is_coloured(fake_agent, config_path):
    """stdout a terminal (a pty): added lines green, removed red, as `git diff` shows them."""
    import pty
    import subprocess

    from tests.cli import SYNCJOB

    config_path.write_bytes(OLD)
    fake_agent.set_config(NEW)
    leader, follower = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    with subprocess.Popen(
        [str(SYNCJOB), "diff"], env={**env, **pass_env(fake_agent.url, config_path)},
        stdout=follower, stderr=subprocess.PIPE,
    ) as proc:  # fmt: skip
        os.close(follower)
        assert proc.wait(60) == 4
        shown = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # EIO: the child's side is closed, all was read
                break
            if not chunk:
                break
            shown += chunk
    os.close(leader)
    assert b"\x1b[32m+  scrape_interval: 30s\x1b[0m" in shown
    assert b"\x1b[31m-  scrape_interval: 15s\x1b[0m" in shown


@pytest.mark.parametrize(
    ("rule", "code"),
    [("expr: up == 0", 4), ("expr: 'up =='", 65)],
    ids=["good rules", "bad rules"],
)
def test_the_checker_reads_relative_rule_files_beside_the_config(
    fake_agent, config_path, rule, code
):
    """promtool checks the rule files the config names, resolved as beside the config."""
    from tests.targets import require_binary

    require_binary("promtool", "prometheus")
    rules = config_path.parent / "rules"
    rules.mkdir()
    (rules / "node.yml").write_text(f"groups:\n  - name: node\n    rules:\n      - alert: Down\n"
                                    f"        {rule}\n")  # fmt: skip
    config_path.write_bytes(OLD)
    fake_agent.set_config(OLD + b"rule_files:\n  - rules/*.yml\n")
    before = (listing(config_path.parent), listing(rules))
    run = syncjob("diff", env=pass_env(fake_agent.url, config_path))
    assert run.code == code, run.stderr
    if code == 65:
        assert "rules/node.yml" in run.stderr
    assert (listing(config_path.parent), listing(rules)) == before
