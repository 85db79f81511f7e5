"""The target's own checker: its refusal is the content's, its silence is not.

The integration tests hold syncjob's gate to promtool's and amtool's verdicts on documents
written the way real ones are (tests/realistic.py): the same verdict, or a refusal for a
reason the README documents.
"""

import subprocess
import sys
import time
from pathlib import Path

import pytest

from syncjob import checker, validate
from syncjob.errors import CheckerUnavailable, ContentRefused, ExitCode, UsageError
from tests import realistic
from tests.cli import pass_env, syncjob
from tests.targets import require_binary
from tests.test_validate import EMPTY_RULES

PY = sys.executable


def no_secrets() -> tuple[str, ...]:
    return ()


def script(tmp_path: Path, body: str) -> str:
    """A checker command: this Python running `body`, with the staged path as argv[1]."""
    path = tmp_path / "checker.py"
    path.write_text(body)
    return f"{PY} {path} {{path}}"


@pytest.fixture
def staged(tmp_path: Path) -> str:
    path = tmp_path / ".rules.yml.tmp"
    path.write_text("groups: []\n")
    return str(path)


def test_a_checker_that_says_yes_lets_the_config_through(tmp_path: Path, staged: str) -> None:
    checker.run(script(tmp_path, "import sys; sys.exit(0)"), staged, timeout=30, secrets=no_secrets)


def test_a_refusal_carries_the_checkers_words(tmp_path: Path, staged: str) -> None:
    template = script(
        tmp_path, "import sys; print('FAILED:', sys.argv[1], 'bad expr'); sys.exit(1)"
    )
    with pytest.raises(ContentRefused) as info:
        checker.run(template, staged, timeout=30, secrets=no_secrets)
    assert info.value.exit_code == ExitCode.REFUSED
    assert str(info.value) == f"{PY} refused the config (exit 1): FAILED: <config> bad expr"


def test_a_checker_out_of_time_gives_no_verdict(tmp_path: Path, staged: str) -> None:
    # It starts a grandchild that holds its output open: that one is stopped too.
    template = script(
        tmp_path,
        "import subprocess, time\nsubprocess.Popen(['sleep', '60'])\ntime.sleep(60)\n",
    )
    started = time.monotonic()
    with pytest.raises(CheckerUnavailable) as info:
        checker.run(template, staged, timeout=0.5, secrets=no_secrets)
    assert time.monotonic() - started < 10
    assert info.value.exit_code == ExitCode.TRY_LATER
    assert str(info.value) == (
        f"{PY} gave no verdict within 0.5s (CHECK_TIMEOUT): nothing written; "
        "raise CHECK_TIMEOUT / --check-timeout for configs this big"
    )


@pytest.mark.parametrize(
    ("how", "code"),
    [
        ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", -9),
        # A shell wrapper reports its child's SIGKILL as 128 + 9.
        ("import subprocess, sys\n"
         "code = subprocess.call(['sh', '-c', 'kill -9 $$'])\n"
         "sys.exit(128 - code if code < 0 else code)\n", 137),
    ],
)  # fmt: skip
def test_a_checker_killed_by_the_oom_killer_gives_no_verdict(
    tmp_path: Path, staged: str, how: str, code: int
) -> None:
    with pytest.raises(CheckerUnavailable) as info:
        checker.run(script(tmp_path, how), staged, timeout=30, secrets=no_secrets)
    assert info.value.exit_code == ExitCode.TRY_LATER
    assert str(info.value) == (
        f"{PY} was killed by SIGKILL (exit {code}), likely for memory (the OOM killer): "
        "no verdict on the config, nothing written; give it more memory"
    )


def test_a_missing_checker_is_a_usage_error(staged: str) -> None:
    with pytest.raises(UsageError, match="check command not found: /nonexistent/promtool"):
        checker.run(
            "/nonexistent/promtool check rules {path}", staged, timeout=30, secrets=no_secrets
        )


def test_a_pass_whose_checker_runs_out_of_time_writes_nothing_and_exits_75(
    tmp_path: Path, fake_agent
) -> None:
    config = tmp_path / "rules.yml"
    config.write_bytes(b"groups: []\n")
    fake_agent.set_config(realistic.rules_file(1).encode())
    slow = script(tmp_path, "import time; time.sleep(60)")
    env = pass_env(fake_agent.url, config, CONFIG_TYPE="prometheus-rules", CHECK_COMMAND=slow,
                   CHECK_TIMEOUT="300ms")  # fmt: skip
    run = syncjob(env=env)
    assert run.code == 75, run.stderr
    assert "raise CHECK_TIMEOUT" in run.stderr
    assert config.read_bytes() == b"groups: []\n"
    assert {p.name for p in tmp_path.iterdir() if p.name.startswith(".rules.yml.")} <= {
        ".rules.yml.syncjob.json",
        ".rules.yml.syncjob.lock",
    }


# Integration: the real promtool and amtool.


def promtool_says(path: Path, what: str = "rules") -> tuple[int, str]:
    binary = require_binary("promtool", "prometheus")
    done = subprocess.run(
        [binary, "check", what, str(path)], capture_output=True, text=True, timeout=120
    )
    return done.returncode, done.stdout + done.stderr


def amtool_says(path: Path) -> tuple[int, str]:
    binary = require_binary("amtool", "prometheus-alertmanager")
    done = subprocess.run(
        [binary, "check-config", str(path)], capture_output=True, text=True, timeout=120
    )
    return done.returncode, done.stdout + done.stderr


def syncjob_says(content: bytes, config_type: str) -> str:
    try:
        validate.check(content, None, config_type, allow_empty=False)
    except ContentRefused as exc:
        return str(exc)
    return "accepted"


# Refusals the README documents that promtool would not make: a second document (promtool
# reads only the first) and, for prometheus and alertmanager, a config with nothing in it.
DOCUMENTED = ("more than one document", "must be a YAML mapping, got nothing",
              "must be a YAML mapping, got null", "source served an empty config")  # fmt: skip


@pytest.mark.integration
@pytest.mark.parametrize("content", EMPTY_RULES)
def test_empty_rules_documents_are_what_promtool_says(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "rules.yml"
    path.write_bytes(content)
    code, said = promtool_says(path)
    assert (code, "SUCCESS: 0 rules found" in said) == (0, True), said
    assert syncjob_says(content, "prometheus-rules") == "accepted"


# Documents at the edges of the gate, for each type: either both accept, or syncjob refuses
# (for a documented reason when promtool accepts).
EDGES = {
    "prometheus-rules": [
        b"rules: []\n", b"groups: {}\n", b"groups: node\n", b"- a\n", b"text\n", b"42\n",
        b"groups: []\n---\ngroups: []\n", b"{}\n---\n- a\n", b"a: &x 1\nb: *x\n",
        b"groups:\n  - name: a\n    rules:\n      - alert: A\n        expr: up\n  - [oops\n",
        b"groups: [{name: a, rules: [{alert: A, expr: up, labels: {x: *undefined}}]}]\n",
        b"groups: !!seq []\n", b"groups: !custom []\n", b"? [a]\n: b\n",
    ],
    "prometheus": [b"", b"# c\n", b"null\n", b"{}\n", b"global: {}\n---\n- a\n", b"- a\n",
                   b"global: {scrape_interval: 15s}\n"],
    "alertmanager": [b"", b"null\n", b"{}\n", b"- a\n",
                     realistic.alertmanager_config(5).encode() + b"---\n{}\n"],
}  # fmt: skip


@pytest.mark.integration
@pytest.mark.parametrize(
    ("config_type", "content"), [(t, c) for t, cs in EDGES.items() for c in cs]
)
def test_at_the_edges_syncjob_agrees_with_the_targets_checker(
    tmp_path: Path, config_type: str, content: bytes
) -> None:
    path = tmp_path / "config.yml"
    path.write_bytes(content)
    if config_type == "alertmanager":
        code, said = amtool_says(path)
    else:
        code, said = promtool_says(path, "config" if config_type == "prometheus" else "rules")
    ours = syncjob_says(content, config_type)
    if code == 0:
        assert ours == "accepted" or any(reason in ours for reason in DOCUMENTED), (ours, said)


@pytest.mark.integration
@pytest.mark.parametrize("seed", range(12))
def test_realistic_rules_files_pass_both(tmp_path: Path, seed: int) -> None:
    content = realistic.rules_file(seed, groups=4, rules=6).encode()
    path = tmp_path / "rules.yml"
    path.write_bytes(content)
    code, said = promtool_says(path)
    assert code == 0, said
    assert syncjob_says(content, "prometheus-rules") == "accepted"


@pytest.mark.integration
@pytest.mark.parametrize("seed", range(8))
def test_realistic_alertmanager_configs_with_merge_keys_pass_both(
    tmp_path: Path, seed: int
) -> None:
    content = realistic.alertmanager_config(seed, teams=1 + seed % 4).encode()
    path = tmp_path / "alertmanager.yml"
    path.write_bytes(content)
    code, said = amtool_says(path)
    assert code == 0, said
    assert syncjob_says(content, "alertmanager") == "accepted"


@pytest.mark.integration
def test_promtool_out_of_time_is_no_verdict(tmp_path: Path) -> None:
    binary = require_binary("promtool", "prometheus")
    path = tmp_path / "rules.yml"
    realistic.write_rules(path, 4 << 20)
    with pytest.raises(CheckerUnavailable, match="raise CHECK_TIMEOUT"):
        checker.run(f"{binary} check rules {{path}}", str(path), timeout=0.05, secrets=no_secrets)
    checker.run(
        f"{binary} check rules {{path}}", str(path), timeout=120, secrets=no_secrets
    )  # it is valid
