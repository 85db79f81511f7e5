"""Nothing a served config can make a local tool print leaves the host, and syncjob's own
credentials are redacted in what stays (the log, the state file, the loop's pages).

The leak scans run the installed `syncjob` against the real promtool, Prometheus and
Pushgateway, with a served config whose `rule_files:` names a credentials file: promtool
and Prometheus then quote it (go-yaml shows a value of up to 10 characters whole, the
first 7 characters of a longer one).
"""

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from syncjob import redact
from syncjob.errors import MEANINGS, ContentRefused, ExitCode, SyncError, TargetRejected
from syncjob.outcome import Outcome
from syncjob.publish import public_error
from syncjob.redact import MASK, MIN_PREFIX, scrub
from syncjob.settings import Settings, resolve
from tests.cli import pass_env, syncjob
from tests.fake_target import FakeTarget
from tests.targets import free_port, http_request, require_binary, wait_until

SHORT = "s3cr3t-k3y"  # 10 characters: go-yaml quotes it whole
LONG = "tok-SECRET-4f2a9c-0b7e"  # longer: go-yaml quotes its first 7 characters
BASIC = "syncer:pw-SECRET-7d1e0b"


def leaked(secret: str, text: str) -> bool:
    """The secret, or any prefix of it of MIN_PREFIX characters or more, is in `text`."""
    return secret[:MIN_PREFIX] in text


# --- scrub: a table ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "secrets", "scrubbed"),
    [
        # promtool quoting a short token whole, and a long one's first 7 characters
        (
            "line 1: cannot unmarshal !!str `s3cr3t-k3y` into rulefmt.RuleGroups",
            [SHORT],
            f"line 1: cannot unmarshal !!str `{MASK}` into rulefmt.RuleGroups",
        ),
        ("!!str `tok-SEC...` into", [LONG], f"!!str `{MASK}...` into"),
        # a basic-auth file: `user:password` whole, and the password alone
        (
            "!!str `syncer:...` and pw-SECRET-7d1e0b",
            [BASIC, "pw-SECRET-7d1e0b"],
            f"!!str `{MASK}...` and {MASK}",
        ),
        # prefixes shorter than MIN_PREFIX stay: they would hide ordinary words
        ("s3cr3 s3cr3t", [SHORT], f"s3cr3 {MASK}"),
        # a secret shorter than MIN_PREFIX is still replaced whole
        ("user:pa55 then pa5", ["pa55"], f"user:{MASK} then pa5"),
        # the longest match wins, and overlapping finds are one mask
        ("s3cr3t-k3y-and-more", [SHORT], f"{MASK}-and-more"),
        ("abcabcdefgh", ["abcdefgh", "cabcde"], f"ab{MASK}"),
        ("s3cr3t-k3ys3cr3t-k3y", [SHORT], MASK),
        # every occurrence, at the start and at the end
        ("s3cr3t-k3y: s3cr3t-k3y", [SHORT], f"{MASK}: {MASK}"),
        # empty secrets are ignored; no secret: the text is unchanged
        ("nothing to hide", ["", ""], "nothing to hide"),
        ("nothing to hide", [], "nothing to hide"),
        # a URL's password, or a userinfo without a colon (a token), up to the host's '@'
        (
            "push to http://pusher:hunter2@gw:9091/metrics failed",
            [],
            "push to http://pusher:***@gw:9091/metrics failed",
        ),
        ("https://t0ken@host/x", [], "https://***@host/x"),
        ("http://u:p@ss@host:9/x", [], "http://u:***@host:9/x"),
        ("already http://u:***@host/", [], None),
        # a password that is also a credential: masked either way
        ("http://syncer:s3cr3t-k3y@host/", [SHORT], "http://syncer:***@host/"),
        # an '@' after the host, or in plain text, is no userinfo
        ("http://host/a@b and mail me@example.com", [], "http://host/a@b and mail me@example.com"),
        ("http://host:9091 is down; ask ops@example.com", [], None),
    ],
)
def test_scrub(text, secrets, scrubbed):
    assert scrub(text, secrets) == (text if scrubbed is None else scrubbed)


# --- scrub: properties -------------------------------------------------------------------

# Credentials are not made of brackets, and a mask never spells a secret's prefix: with
# either, a secret could show around or inside a MASK (redact.scrub's docstring).
credential = st.text(
    st.characters(codec="utf-8", exclude_characters="[]", exclude_categories=("Cs",)),
    min_size=1,
    max_size=40,
).filter(lambda s: s[:MIN_PREFIX] not in MASK)
_FAST = settings(max_examples=300, deadline=None, derandomize=True)


@_FAST
@given(
    secrets=st.lists(credential, min_size=1, max_size=3),
    pieces=st.lists(st.text(max_size=12) | st.sampled_from(["", "`", ":", "..."]), max_size=8),
    data=st.data(),
)
@example(secrets=[SHORT], pieces=["`", "s3cr3t-k3", "`"], data=None)
def test_no_prefix_of_a_secret_survives(secrets, pieces, data):
    # text woven from arbitrary pieces and the secrets' prefixes (cut anywhere)
    text = ""
    for piece in pieces:
        text += piece
        if data is not None:
            secret = data.draw(st.sampled_from(secrets))
            text += secret[: data.draw(st.integers(1, len(secret)))]
    out = scrub(text, secrets)
    for secret in secrets:
        assert secret not in out
        for n in range(MIN_PREFIX, len(secret) + 1):
            assert secret[:n] not in out, (secret, out)


@_FAST
@given(secrets=st.lists(credential, max_size=3), text=st.text(max_size=200))
def test_text_without_secrets_or_urls_is_unchanged(secrets, text):
    assume("://" not in text)
    assume(not any(s[:MIN_PREFIX] in text for s in secrets))
    assert scrub(text, secrets) == text


@_FAST
@given(text=st.text(max_size=200))
def test_scrub_is_idempotent(text):
    once = scrub(text, [SHORT, LONG])
    assert scrub(once, [SHORT, LONG]) == once


def test_a_long_secret_is_found_in_linear_time():
    secret = "k" * 60_000 + "!"
    text = ("k" * 59_999 + " ") * 3
    assert scrub(text, [secret]) == f"{MASK} " * 3


# --- where the secrets come from -----------------------------------------------------------


def settings_with(**fields: object) -> Settings:
    env = {"ALERTAGENT_ENDPOINT": "http://127.0.0.1:1", "CLUSTER_ID": "c"}
    base = resolve({}, env={**env, "CONFIG_TYPE": "prometheus", "CONFIG_PATH": "/nowhere/p.yml"})
    return replace(base, **fields)


def test_secrets_are_every_credentials_file_and_the_token_variable(tmp_path):
    files = {
        "token_file": "agent-token\n",
        "basic_auth_file": "syncer:agent-pass\n",
        "pushgateway_token_file": "gw-token",
        "pushgateway_basic_auth_file": "pusher:gw-pass\n",
    }
    for name, content in files.items():
        (tmp_path / name).write_text(content)
    found = redact.secrets(
        settings_with(token="env-token", **{name: str(tmp_path / name) for name in files})
    )
    assert set(found) == {
        "env-token",
        "agent-token",
        "syncer:agent-pass",
        "agent-pass",
        "gw-token",
        "pusher:gw-pass",
        "gw-pass",
    }


def test_secrets_skip_what_cannot_be_read_without_blocking(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # nobody writes to it: a blocking read would hang the pass
    missing = tmp_path / "missing"
    assert redact.secrets(settings_with(token_file=str(fifo), basic_auth_file=str(missing))) == []
    assert redact.secrets(settings_with(token_file=str(tmp_path))) == []  # a folder


def test_secrets_read_a_file_of_several_lines_whole_and_line_by_line(tmp_path):
    token = tmp_path / "token"
    token.write_text("first-line\nsecond-line\n")
    assert redact.secrets(settings_with(token_file=str(token))) == [
        "first-line\nsecond-line",
        "first-line",
        "second-line",
    ]


# --- what may leave the host ---------------------------------------------------------------


@pytest.mark.parametrize("error", [ContentRefused, TargetRejected, SyncError])
def test_an_error_says_its_exit_codes_meaning_unless_given_a_public_text(error):
    assert error("promtool said s3cr3t-k3y").public == MEANINGS[error.exit_code]
    assert error("promtool said s3cr3t-k3y", public="refused").public == "refused"


@pytest.mark.parametrize(
    ("outcome", "message"),
    [
        (
            Outcome(ExitCode.REFUSED, "promtool said `s3cr3t-k3y`", None, None, 1.0, None,
                    public_summary="the checker refused the config (promtool exited 1)"),
            "the checker refused the config (promtool exited 1); syncjob exit 65",
        ),
        (
            Outcome(ExitCode.INTERNAL, "internal error: KeyError: 's3cr3t-k3y'", None, None,
                    1.0, None),
            f"{MEANINGS[ExitCode.INTERNAL]}; syncjob exit 1",
        ),
    ],
)  # fmt: skip
def test_the_status_report_carries_the_public_summary_and_the_exit_code(outcome, message):
    assert public_error(outcome) == message


# --- leak scans: the real checker, target and gateway ------------------------------------


def scan(where: str, text: str, secret: str) -> None:
    assert not leaked(secret, text), f"{secret[:MIN_PREFIX]!r}... leaked into {where}:\n{text}"
    if ":" in secret:  # a basic-auth file: its password too
        password = secret.partition(":")[2]
        assert not leaked(password, text), f"the password leaked into {where}:\n{text}"


def files_text(folder: Path) -> str:
    return "\n".join(
        path.read_text(errors="replace") for path in sorted(folder.rglob("*")) if path.is_file()
    )


CREDENTIALS = [
    pytest.param("ALERTAGENT_TOKEN_FILE", SHORT, id="short-token"),
    pytest.param("ALERTAGENT_TOKEN_FILE", LONG, id="long-token"),
    pytest.param("ALERTAGENT_BASIC_AUTH_FILE", BASIC, id="basic-auth"),
    pytest.param("PUSHGATEWAY_TOKEN_FILE", LONG, id="pushgateway-token"),
]


@pytest.mark.integration
@pytest.mark.parametrize(("setting", "secret"), CREDENTIALS)
def test_a_checker_quoting_a_credentials_file_leaks_nothing(
    setting, secret, fake_agent, pushgateway, start_loop, tmp_path
):
    require_binary("promtool", "prometheus")
    secret_file = tmp_path / "secrets" / "credentials"
    secret_file.parent.mkdir()
    secret_file.write_text(secret + "\n")
    fake_agent.set_config(f"rule_files:\n  - {secret_file}\n".encode())
    config_dir = tmp_path / "prom"
    config_dir.mkdir()
    env = pass_env(
        fake_agent.url, config_dir / "prometheus.yml",
        CHECK_COMMAND="promtool check config {path}",
        REPORT_STATUS="true", PUSHGATEWAY_URL=pushgateway.url, **{setting: str(secret_file)},
    )  # fmt: skip

    run = syncjob(env=env)
    assert run.code == ExitCode.REFUSED, run.stderr
    loop = start_loop({**env, "SYNC_INTERVAL": "1h"})
    wait_until(lambda: len(fake_agent.status_reports) >= 2, 30, "the loop's first pass")
    pages = {path: loop.get(path)[1].decode() for path in
             ("/status", "/health", "/metrics", "/metrics?format=json")}  # fmt: skip
    loop.stop()
    status, pushed = http_request("GET", pushgateway.url + "/metrics")
    assert status == 200
    outputs = {
        "the one-shot pass's stderr": run.stderr,
        "the one-shot pass's stdout": run.stdout,
        "the config's folder (state file)": files_text(config_dir),
        "the status reports": json.dumps(fake_agent.status_reports),
        "the Pushgateway's /metrics": pushed.decode(),
        "the loop's log": loop.log(),
        **{f"the loop's {path}": page for path, page in pages.items()},
    }
    for where, text in outputs.items():
        scan(where, text, secret)

    # The checker's words stay on this host, redacted: a person can still see why.
    state = json.loads((config_dir / ".prometheus.yml.syncjob.json").read_text())
    assert "cannot unmarshal" in state["last_error"]
    assert MASK in state["last_error"]
    assert MASK in run.last["msg"]
    assert MASK in pages["/status"]
    # AlertAgent is told only syncjob's summary and the exit code, by both modes.
    assert {r["error_message"] for r in fake_agent.status_reports} == {
        "the checker refused the config (promtool exited 1); syncjob exit 65"
    }
    # The metrics carry the exit code, and no error text at all.
    assert (
        'config_sync_last_exit_code{cluster_id="cluster-1"' in outputs["the Pushgateway's /metrics"]
    )
    for metrics in (outputs["the Pushgateway's /metrics"], pages["/metrics"]):
        assert "rulefmt" not in metrics
        assert "unmarshal" not in metrics


@pytest.mark.parametrize("secret", [SHORT, LONG], ids=["short", "long"])
def test_a_target_quoting_a_credentials_file_leaks_nothing(secret, fake_agent, tmp_path):
    """No checker, and a target whose refusal quotes the file, as Prometheus's own log does
    (its HTTP answer, in 2.42, does not): its words stay here, redacted."""
    secret_file = tmp_path / "secrets" / "token"
    secret_file.parent.mkdir()
    secret_file.write_text(secret + "\n")
    fake_agent.set_config(f"rule_files:\n  - {secret_file}\n".encode())
    quoted = secret if len(secret) <= 10 else secret[:7] + "..."
    said = f"failed to reload config: line 1: cannot unmarshal !!str `{quoted}` into rulefmt"
    with FakeTarget(reload_status=500, reload_body=said.encode()) as target:
        env = pass_env(
            fake_agent.url, tmp_path / "prometheus.yml", CHECK_COMMAND="", REPORT_STATUS="true",
            RELOAD_URL=target.reload_url, ALERTAGENT_TOKEN_FILE=str(secret_file),
        )  # fmt: skip
        run = syncjob(env=env)
    assert run.code == ExitCode.REJECTED, run.stderr
    state = json.loads((tmp_path / ".prometheus.yml.syncjob.json").read_text())
    assert f"cannot unmarshal !!str `{MASK}" in state["last_error"]
    (report,) = fake_agent.status_reports
    assert report["error_message"] == f"{MEANINGS[ExitCode.REJECTED]}; syncjob exit 76"
    for where, text in {
        "stderr": run.stderr,
        "the state file": json.dumps(state),
        "the status report": json.dumps(report),
    }.items():
        scan(where, text, secret)


def test_a_url_password_in_a_failure_is_redacted_in_the_log_and_the_state(fake_agent, tmp_path):
    """A target URL with a password that cannot be reached: the message names the URL."""
    config = tmp_path / "prometheus.yml"
    env = pass_env(
        fake_agent.url, config, CHECK_COMMAND="", READY_TIMEOUT="200ms",
        RELOAD_URL=f"http://admin:url-SECRET-99@127.0.0.1:{free_port()}/-/reload",
    )  # fmt: skip
    run = syncjob(env=env)
    assert run.code == ExitCode.TRY_LATER, run.stderr
    assert "@127.0.0.1:" in run.last["msg"]  # the message does name the URL
    state = (tmp_path / ".prometheus.yml.syncjob.json").read_text()
    for where, text in {"stderr": run.stderr, "the state file": state}.items():
        assert "url-SECRET-99" not in text, f"the URL's password leaked into {where}:\n{text}"
