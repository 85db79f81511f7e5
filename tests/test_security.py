"""Security: credentials, TLS, redirects and hostile input.

Each test runs the installed `syncjob` as a user would (a subprocess against loopback
fakes: FakeAlertAgent, FakeTarget and a recording Pushgateway, over HTTP or over HTTPS
with certificates made by trustme), except the hostile-input tests, which drive
`run_once` or the validator in-process so that hypothesis can try hundreds of answers.
"""

import base64
import contextlib
import hashlib
import json
import os
import signal
import ssl
import threading
import time
import tracemalloc
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
import trustme
from hypothesis import HealthCheck, currently_in_test_context, event, example, given, settings
from hypothesis import strategies as st
from urllib3 import HTTPHeaderDict

from syncjob import dialects, files, validate
from syncjob.errors import ContentRefused, ExitCode
from syncjob.settings import resolve
from syncjob.sync import run_once
from tests.cli import pass_env, syncjob
from tests.fake_alertagent import FakeAlertAgent, Reply, _handshake
from tests.fake_target import FakeTarget, _Server
from tests.targets import free_port, wait_until

CONFIG = b"global:\n  scrape_interval: 15s\n"
CONFIG_V2 = b"global:\n  scrape_interval: 30s\n"
QUERY = "/api/v1/configs?cluster_id=cluster-1&type=prometheus"

TOKEN = "tok-SECRET-4f2a9c"
BASIC_USER, BASIC_PASSWORD = "syncer", "pw-SECRET-7d1e0b"
PUSH_TOKEN = "pgw-SECRET-93be5a"
BASIC_HEADER = "Basic " + base64.b64encode(f"{BASIC_USER}:{BASIC_PASSWORD}".encode()).decode()
# Every form in which a secret could escape: as written, and as sent on the wire.
SECRETS = (TOKEN, BASIC_PASSWORD, BASIC_HEADER.removeprefix("Basic "), PUSH_TOKEN)


def env_for(endpoint: str, config: Path, **settings: str) -> dict[str, str]:
    """pass_env without the default checker: these tests are about the wire, not promtool.
    The config's folder is made here: syncjob never creates a missing one."""
    config.parent.mkdir(parents=True, exist_ok=True)
    return pass_env(endpoint, config, CHECK_COMMAND="", **settings)


def raw(body: bytes, **headers: str) -> Reply:
    """A 200 in the raw dialect."""
    return Reply(200, {"Content-Type": "application/yaml", **headers}, body)


def json_reply(status: int, doc: dict[str, Any]) -> Reply:
    return Reply(status, {"Content-Type": "application/json"}, json.dumps(doc).encode())


def redirect(location: str, status: int = 302) -> Reply:
    return Reply(status, {"Location": location, "Content-Length": "0"})


def auth_headers(agent: FakeAlertAgent) -> list[str | None]:
    return [r.headers.get("authorization") for r in agent.requests]


def files_under(root: Path, leave_out: Path) -> dict[Path, bytes]:
    return {
        path: path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and leave_out not in path.parents
    }


def assert_no_secret(where: str, data: str | bytes) -> None:
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} leaked into {where}"


class Recorder:
    """Stands in for the Pushgateway on loopback, over HTTP or HTTPS: records every
    request whole (method, path, headers, body) and answers 200."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def setup(self) -> None:
                _handshake(self.request)
                super().setup()

            def log_message(self, *args: Any) -> None:
                pass

            def do_PUT(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                recorder.requests.append((self.command, self.path, headers, body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_POST = do_PUT

        self.server = _Server(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(
                self.server.socket, server_side=True, do_handshake_on_connect=False
            )
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def agent():
    with FakeAlertAgent(content=CONFIG) as fake:
        yield fake


@pytest.fixture
def elsewhere():
    """A second AlertAgent on another port: where redirects lead. It records headers too."""
    with FakeAlertAgent(content=CONFIG_V2) as fake:
        yield fake


@pytest.fixture
def recorder():
    rec = Recorder()
    yield rec
    rec.close()


@pytest.fixture
def secrets(tmp_path) -> dict[str, str]:
    """The credential files, in their own folder so the leak scan can leave them out."""
    folder = tmp_path / "secrets"
    folder.mkdir()
    (folder / "token").write_text(TOKEN + "\n")
    (folder / "basic").write_text(f"{BASIC_USER}:{BASIC_PASSWORD}\n")
    (folder / "push-token").write_text(PUSH_TOKEN + "\n")
    return {
        "token": str(folder / "token"),
        "basic": str(folder / "basic"),
        "push": str(folder / "push-token"),
    }


# --- 1. credentials ---------------------------------------------------------------------


def test_the_token_file_is_sent_as_a_bearer_token_and_read_again_at_every_pass(agent, tmp_path):
    token = tmp_path / "token"
    token.write_text("first-token\n")
    env = env_for(agent.url, tmp_path / "etc" / "prometheus.yml", ALERTAGENT_TOKEN_FILE=str(token))
    assert syncjob(env=env).code == 0
    token.write_text("rotated-token\n")  # a Kubernetes Secret updated in place
    assert syncjob(env=env).code == 0
    assert auth_headers(agent) == ["Bearer first-token", "Bearer rotated-token"]


def test_a_loop_sends_a_rotated_token_without_a_restart(agent, tmp_path, start_loop):
    token = tmp_path / "token"
    token.write_text("first-token\n")
    env = env_for(
        agent.url, tmp_path / "etc" / "prometheus.yml",
        ALERTAGENT_TOKEN_FILE=str(token), SYNC_INTERVAL="1h",
    )  # fmt: skip
    loop = start_loop(env)
    wait_until(lambda: loop.get("/ready")[0] == 200, 10, "the first pass")
    token.write_text("rotated-token\n")
    loop.proc.send_signal(signal.SIGHUP)  # the next pass, now rather than in an hour
    agent.wait_for_requests(2)
    assert auth_headers(agent) == ["Bearer first-token", "Bearer rotated-token"]
    assert loop.proc.poll() is None  # the same process


def test_basic_auth_comes_from_a_user_password_file(agent, tmp_path, secrets):
    env = env_for(
        agent.url, tmp_path / "etc" / "prometheus.yml", ALERTAGENT_BASIC_AUTH_FILE=secrets["basic"]
    )
    assert syncjob(env=env).code == 0
    assert auth_headers(agent) == [BASIC_HEADER]
    user, password = base64.b64decode(BASIC_HEADER.split()[1]).decode().split(":", 1)
    assert (user, password) == (BASIC_USER, BASIC_PASSWORD)  # the newline is not part of it


def test_a_token_in_the_environment_works_but_is_warned_about(agent, tmp_path):
    env = env_for(agent.url, tmp_path / "etc" / "prometheus.yml", ALERTAGENT_TOKEN=TOKEN)
    run = syncjob(env=env)
    assert run.code == 0
    assert auth_headers(agent) == [f"Bearer {TOKEN}"]
    warnings = [r["msg"] for r in run.records if r["level"] == "warning"]
    assert any("ALERTAGENT_TOKEN_FILE" in w for w in warnings), run.stderr
    assert TOKEN not in run.stderr + run.stdout


def test_a_missing_token_file_is_a_one_line_error_and_nothing_is_fetched(agent, tmp_path):
    missing = tmp_path / "no-such-token"
    config = tmp_path / "etc" / "prometheus.yml"
    run = syncjob(env=env_for(agent.url, config, ALERTAGENT_TOKEN_FILE=str(missing)))
    assert run.code == ExitCode.USAGE
    assert len(run.stderr.splitlines()) == 1, run.stderr
    assert str(missing) in run.last["error"]
    assert "Traceback" not in run.stderr
    assert agent.requests == []  # never asked without the credentials it was told to use
    assert not config.exists()


MULTILINE = f"{TOKEN}\nsecond-line\n"  # two tokens pasted, or a stray comment line


@pytest.mark.parametrize(
    ("setting", "code"),
    [("ALERTAGENT_TOKEN_FILE", 2), ("ALERTAGENT_TOKEN", 2), ("PUSHGATEWAY_TOKEN_FILE", 0)],
)
def test_a_credential_with_a_line_break_is_refused_without_showing_it(
    agent, recorder, tmp_path, setting, code
):
    token = tmp_path / "secrets" / "token"
    token.parent.mkdir()
    token.write_text(MULTILINE)
    value = MULTILINE if setting == "ALERTAGENT_TOKEN" else str(token)
    env = env_for(
        agent.url, tmp_path / "etc" / "prometheus.yml", PUSHGATEWAY_URL=recorder.url,
        **{setting: value},
    )  # fmt: skip
    run = syncjob(env=env)
    assert_no_secret("the log", run.stderr + run.stdout)
    assert run.code == code  # a usage error; and a push never changes the pass's code


def test_a_loop_goes_on_when_the_pushgateway_token_is_unusable(
    agent, recorder, tmp_path, start_loop
):
    token = tmp_path / "secrets" / "push-token"
    token.parent.mkdir()
    token.write_text(MULTILINE)
    loop = start_loop(
        env_for(
            agent.url, tmp_path / "etc" / "prometheus.yml", SYNC_INTERVAL="1h",
            PUSHGATEWAY_URL=recorder.url, PUSHGATEWAY_TOKEN_FILE=str(token),
        )
    )  # fmt: skip
    wait_until(
        lambda: loop.get("/ready")[0] == 200 or "Traceback" in loop.log(), 10, "the first pass"
    )
    assert_no_secret("the loop's log", loop.log())
    assert loop.get("/ready")[0] == 200
    loop.proc.send_signal(signal.SIGHUP)
    agent.wait_for_requests(2, timeout=5)


# --- 2. secrets never leak --------------------------------------------------------------


# Each failure path: arrange(agent, elsewhere, stack) -> extra settings, and its exit code.


def _unreachable(agent, elsewhere, stack):
    return {"ALERTAGENT_ENDPOINT": f"http://127.0.0.1:{free_port()}"}


def _target_unreachable(agent, elsewhere, stack):
    return {"RELOAD_URL": f"http://127.0.0.1:{free_port()}/-/reload", "READY_TIMEOUT": "300ms"}


def _target_rejects(agent, elsewhere, stack):
    target = stack.enter_context(
        FakeTarget(reload_status=500, reload_body=b"failed to reload config: bad\n")
    )
    return {"RELOAD_URL": target.reload_url}


def _script(*replies: Reply, **settings: str):
    def arrange(agent, elsewhere, stack):
        agent.script(*replies)
        return settings

    return arrange


def _redirect_elsewhere(agent, elsewhere, stack):
    agent.script(redirect(elsewhere.url + QUERY))
    return {}


ERROR_500 = json_reply(500, {"code": 500, "message": "database down", "error": "pq: refused"})
FAILURES = {
    "written": (_script(), 0),
    "401": (_script(json_reply(401, {"code": 401, "message": "invalid token"})), 77),
    "403": (_script(json_reply(403, {"code": 403, "message": "forbidden"})), 77),
    "500 with a JSON error": (_script(ERROR_500, ERROR_500, ERROR_500), 69),
    "HTML 200": (_script(Reply(200, {"Content-Type": "text/html"}, b"<html>login</html>")), 65),
    "hash mismatch": (_script(raw(CONFIG, **{"X-Config-Hash": "0" * 64})), 65),
    "source unreachable": (_unreachable, 69),
    "redirect to another host": (_redirect_elsewhere, 0),
    "timeout": (_script(*[Reply(hang=True)] * 3, HTTP_TIMEOUT="300ms"), 69),
    "target unreachable": (_target_unreachable, 75),
    "target rejects": (_target_rejects, 76),
}


@pytest.mark.parametrize("credentials", ["token", "basic"])
@pytest.mark.parametrize("failure", list(FAILURES))
def test_no_failure_path_leaks_a_secret(
    agent, elsewhere, recorder, secrets, tmp_path, failure, credentials
):
    arrange, expected = FAILURES[failure]
    credential = (
        {"ALERTAGENT_TOKEN_FILE": secrets["token"]}
        if credentials == "token"
        else {"ALERTAGENT_BASIC_AUTH_FILE": secrets["basic"]}
    )
    env = env_for(
        agent.url, tmp_path / "etc" / "prometheus.yml",
        LOG_LEVEL="debug", REPORT_STATUS="true",
        PUSHGATEWAY_URL=recorder.url, PUSHGATEWAY_TOKEN_FILE=secrets["push"],
        **credential,
    )  # fmt: skip
    with contextlib.ExitStack() as stack:
        env.update(arrange(agent, elsewhere, stack))
        run = syncjob(env=env)
        status = syncjob("status", "--json", env=env)

    assert run.code == expected, run.stderr
    assert any(r["level"] == "debug" for r in run.records)  # the chattiest level was on
    assert json.loads(status.stdout)["last_exit_code"] == expected
    for where, text in [("stdout", run.stdout), ("stderr", run.stderr),
                        ("status --json", status.stdout + status.stderr)]:  # fmt: skip
        assert_no_secret(where, text)
    written = files_under(tmp_path, leave_out=tmp_path / "secrets")
    assert tmp_path / "etc" / ".prometheus.yml.syncjob.json" in written
    for path, data in written.items():
        assert_no_secret(str(path), data)
    for _, path, _, body in recorder.requests:
        assert_no_secret(f"the push to {path}", body)
    for request in agent.requests + elsewhere.requests:
        assert_no_secret(f"the body of {request.method} {request.path}", request.body)

    # ...and yet they were sent, each where it belongs (so this test can fail).
    sent = f"Bearer {TOKEN}" if credentials == "token" else BASIC_HEADER
    if failure != "source unreachable":
        assert agent.requests, "the fake saw nothing"
        assert set(auth_headers(agent)) == {sent}
        assert len(agent.status_reports) == 1  # the status report carried them too
    assert [h.get("authorization") for _, _, h, _ in recorder.requests] == [f"Bearer {PUSH_TOKEN}"]
    assert all("authorization" not in r.headers for r in elsewhere.requests)


def test_a_loop_shows_no_secret_on_its_endpoints(agent, recorder, secrets, tmp_path, start_loop):
    agent.script(json_reply(401, {"code": 401, "message": "invalid token"}))
    env = env_for(
        agent.url, tmp_path / "etc" / "prometheus.yml",
        LOG_LEVEL="debug", SYNC_INTERVAL="1s", REPORT_STATUS="true",
        ALERTAGENT_TOKEN_FILE=secrets["token"],
        PUSHGATEWAY_URL=recorder.url, PUSHGATEWAY_TOKEN_FILE=secrets["push"],
    )  # fmt: skip
    loop = start_loop(env)
    pages = ["/status", "/health", "/healthz", "/ready", "/metrics", "/metrics?format=json"]

    seen: list[str] = []

    def health_error() -> str:  # kept: the next pass may clear it before a second look
        seen.append(loop.json("/health")[1]["error"])
        return seen[-1]

    wait_until(health_error, 10, "the refused pass")
    assert "credentials" in seen[-1]
    for page in pages:
        assert_no_secret(f"{page} after a 401", loop.get(page)[1])
    wait_until(lambda: loop.get("/ready")[0] == 200, 10, "a successful pass")
    for page in pages:
        assert_no_secret(f"{page} after a success", loop.get(page)[1])
    assert loop.stop() == 0

    for path, data in files_under(tmp_path, leave_out=tmp_path / "secrets").items():
        assert_no_secret(str(path), data)  # the loop's log is among them
    for _, path, _, body in recorder.requests:
        assert_no_secret(f"the push to {path}", body)
    assert set(auth_headers(agent)) == {f"Bearer {TOKEN}"}
    assert {h.get("authorization") for _, _, h, _ in recorder.requests} == {f"Bearer {PUSH_TOKEN}"}


# --- 3. TLS -----------------------------------------------------------------------------


class PKI:
    """Real certificates on loopback: a CA, server certificates, a client certificate."""

    def __init__(self, folder: Path) -> None:
        self.ca = trustme.CA()
        self.server = self.ca.issue_cert("127.0.0.1", "localhost")
        self.wrong_name = self.ca.issue_cert("other.example")
        client = self.ca.issue_cert("syncjob.client.example")
        self.ca_file = str(folder / "ca.pem")
        self.ca.cert_pem.write_to_path(self.ca_file)
        self.client_cert, self.client_key = str(folder / "client.pem"), str(folder / "client.key")
        client.cert_chain_pems[0].write_to_path(self.client_cert)
        client.private_key_pem.write_to_path(self.client_key)
        self.unknown_ca_file = str(folder / "unknown-ca.pem")
        trustme.CA().cert_pem.write_to_path(self.unknown_ca_file)

    def context(self, cert: trustme.LeafCert | None = None, *, mutual: bool = False):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        (cert or self.server).configure_cert(context)
        if mutual:
            self.ca.configure_trust(context)
            context.verify_mode = ssl.CERT_REQUIRED
        return context


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> PKI:
    return PKI(tmp_path_factory.mktemp("pki"))


def test_a_good_chain_is_accepted_with_the_ca_file(pki, tmp_path):
    config = tmp_path / "etc" / "prometheus.yml"
    with FakeAlertAgent(content=CONFIG, tls=pki.context()) as agent:
        assert agent.url.startswith("https://")
        run = syncjob(
            env=env_for(agent.url, config, ALERTAGENT_CA_FILE=pki.ca_file, REPORT_STATUS="true")
        )
        assert run.code == 0, run.stderr
        assert config.read_bytes() == CONFIG
        assert len(agent.status_reports) == 1  # the status report trusts the same CA


@pytest.mark.parametrize("ca_file", [None, "unknown"], ids=["system store", "another CA"])
def test_a_certificate_from_an_unknown_ca_is_refused(pki, tmp_path, ca_file):
    config = tmp_path / "etc" / "prometheus.yml"
    extra = {"ALERTAGENT_CA_FILE": pki.unknown_ca_file} if ca_file else {}
    with FakeAlertAgent(content=CONFIG, tls=pki.context()) as agent:
        run = syncjob(env=env_for(agent.url, config, MAX_RETRIES="0", **extra))
    assert run.code == ExitCode.UNAVAILABLE
    assert "certificate verify failed" in run.last["error"], run.last["error"]
    assert not config.exists()


def test_a_certificate_for_another_host_name_is_refused(pki, tmp_path):
    config = tmp_path / "etc" / "prometheus.yml"
    with FakeAlertAgent(content=CONFIG, tls=pki.context(pki.wrong_name)) as agent:
        run = syncjob(
            env=env_for(agent.url, config, MAX_RETRIES="0", ALERTAGENT_CA_FILE=pki.ca_file)
        )
    assert run.code == ExitCode.UNAVAILABLE
    assert "certificate verify failed" in run.last["error"]
    assert "mismatch" in run.last["error"]  # the chain is fine: it is the name
    assert not config.exists()


def test_mutual_tls_needs_the_client_certificate(pki, tmp_path):
    config = tmp_path / "etc" / "prometheus.yml"
    with FakeAlertAgent(content=CONFIG, tls=pki.context(mutual=True)) as agent:
        env = env_for(agent.url, config, MAX_RETRIES="0", ALERTAGENT_CA_FILE=pki.ca_file)
        without = syncjob(env=env)
        assert without.code == ExitCode.UNAVAILABLE
        assert "TLS error" in without.last["error"]
        assert agent.requests == []  # the server never let the request through
        with_cert = syncjob(
            env={**env, "ALERTAGENT_CLIENT_CERT": pki.client_cert,
                 "ALERTAGENT_CLIENT_KEY": pki.client_key},
        )  # fmt: skip
        assert with_cert.code == 0, with_cert.stderr
        assert len(agent.requests) == 1
    assert config.read_bytes() == CONFIG


INSECURE_WARNING = "AlertAgent's TLS certificate is not verified"


def test_insecure_skip_verify_accepts_an_unknown_ca_and_warns_at_every_pass(
    pki, tmp_path, start_loop
):
    with FakeAlertAgent(content=CONFIG, tls=pki.context()) as agent:
        env = env_for(
            agent.url, tmp_path / "etc" / "prometheus.yml",
            ALERTAGENT_INSECURE_SKIP_VERIFY="true", SYNC_INTERVAL="1h",
        )  # fmt: skip
        one_shot = syncjob(env=env)
        assert one_shot.code == 0, one_shot.stderr
        assert [r["msg"] for r in one_shot.records if r["level"] == "warning"] == [
            f"{INSECURE_WARNING} (--insecure-skip-verify)"
        ]

        loop = start_loop(env)
        wait_until(lambda: loop.get("/ready")[0] == 200, 10, "the loop's first pass")
        loop.proc.send_signal(signal.SIGHUP)
        agent.wait_for_requests(3)

        def passes() -> list[dict]:
            return [r for r in loop.records() if r["msg"].startswith("pass ")]

        wait_until(lambda: len(passes()) == 2, 10, "the loop's second pass")
        assert loop.stop() == 0
    messages = [r["msg"] for r in loop.records()]
    warned = [i for i, m in enumerate(messages) if m.startswith(INSECURE_WARNING)]
    done = [i for i, m in enumerate(messages) if m.startswith("pass ")]
    assert len(warned) == len(done) == 2
    assert warned[0] < done[0] < warned[1] < done[1]  # one warning in each pass
    assert all(r["outcome"] == "in sync" for r in passes())


def test_the_target_takes_the_same_tls_options(pki, agent, tmp_path):
    config = tmp_path / "etc" / "prometheus.yml"
    with FakeTarget(tls=pki.context()) as target:
        assert target.reload_url.startswith("https://")
        env = env_for(agent.url, config, RELOAD_URL=target.reload_url, READY_TIMEOUT="300ms")

        untrusted = syncjob(env=env)
        assert untrusted.code == ExitCode.TRY_LATER
        assert "TLS error" in untrusted.last["error"]
        assert "certificate verify failed" in untrusted.last["error"]
        assert target.reloads == []

        trusted = syncjob(env={**env, "TARGET_CA_FILE": pki.ca_file})
        assert trusted.code == 0, trusted.stderr
        assert trusted.last["outcome"] == "reloaded"  # the pending reload, now over TLS
        assert len(target.reloads) == 1


def test_the_pushgateway_takes_the_same_tls_options(pki, agent, tmp_path):
    gateway = Recorder(tls=pki.context())
    try:
        env = env_for(agent.url, tmp_path / "etc" / "prometheus.yml", PUSHGATEWAY_URL=gateway.url)
        untrusted = syncjob(env=env)
        assert untrusted.code == 0  # a push never changes the pass's outcome
        pushes = [r["msg"] for r in untrusted.records if "Pushgateway" in r["msg"]]
        assert len(pushes) == 1
        assert "certificate verify failed" in pushes[0]
        assert gateway.requests == []

        trusted = syncjob(env={**env, "PUSHGATEWAY_CA_FILE": pki.ca_file})
        assert trusted.code == 0
        assert not any("Pushgateway" in r["msg"] for r in trusted.records), trusted.stderr
        assert [(m, p) for m, p, _, _ in gateway.requests] == [
            ("PUT", "/metrics/job/syncjob/cluster_id/cluster-1/config_type/prometheus")
        ]
    finally:
        gateway.close()


@pytest.mark.parametrize("mode", [[], ["--loop"]], ids=["one-shot", "loop"])
@pytest.mark.parametrize(
    "setting", ["ALERTAGENT_CA_FILE", "ALERTAGENT_CLIENT_CERT", "TARGET_CA_FILE"]
)
def test_a_tls_file_that_cannot_be_loaded_is_a_one_line_usage_error(agent, tmp_path, setting, mode):
    missing = str(tmp_path / "no-such.pem")
    env = env_for(
        agent.url, tmp_path / "etc" / "prometheus.yml", RELOAD_URL="https://127.0.0.1:9/-/reload",
        HTTP_PORT="0", HTTP_ADDRESS="127.0.0.1", **{setting: missing},
    )  # fmt: skip
    run = syncjob(*mode, env=env, timeout=30)
    assert "Traceback" not in run.stderr
    assert len(run.stderr.splitlines()) == 1, run.stderr
    assert missing in run.stderr
    assert run.code == ExitCode.USAGE


# --- 4. redirects -----------------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_to_another_port_is_followed_without_the_credentials(
    agent, elsewhere, secrets, tmp_path, status
):
    agent.script(redirect(elsewhere.url + QUERY, status))
    config = tmp_path / "etc" / "prometheus.yml"
    run = syncjob(env=env_for(agent.url, config, ALERTAGENT_TOKEN_FILE=secrets["token"]))
    assert run.code == 0, run.stderr
    assert config.read_bytes() == CONFIG_V2  # fetched from where it was sent
    assert auth_headers(agent) == [f"Bearer {TOKEN}"]
    assert auth_headers(elsewhere) == [None]


def test_a_redirect_to_another_host_name_on_the_same_port_drops_the_credentials(
    agent, secrets, tmp_path
):
    port = agent.url.rsplit(":", 1)[1]
    agent.script(redirect(f"http://localhost:{port}{QUERY}"))
    run = syncjob(
        env=env_for(
            agent.url, tmp_path / "etc" / "prometheus.yml", ALERTAGENT_TOKEN_FILE=secrets["token"]
        )
    )
    assert run.code == 0, run.stderr
    assert auth_headers(agent) == [f"Bearer {TOKEN}", None]  # the same server, another name


def test_a_redirect_on_the_same_host_and_port_keeps_the_credentials(agent, secrets, tmp_path):
    agent.script(redirect(QUERY + "&moved=1"), redirect(agent.url + QUERY + "&moved=2"))
    run = syncjob(
        env=env_for(
            agent.url, tmp_path / "etc" / "prometheus.yml", ALERTAGENT_TOKEN_FILE=secrets["token"]
        )
    )
    assert run.code == 0, run.stderr
    assert auth_headers(agent) == [f"Bearer {TOKEN}"] * 3
    assert [r.query.get("moved") for r in agent.requests] == [None, "1", "2"]


def test_a_redirect_from_https_down_to_http_is_refused(pki, elsewhere, secrets, tmp_path):
    config = tmp_path / "etc" / "prometheus.yml"
    with FakeAlertAgent(content=CONFIG, tls=pki.context()) as agent:
        agent.script(redirect(elsewhere.url + QUERY))
        run = syncjob(
            env=env_for(agent.url, config, ALERTAGENT_CA_FILE=pki.ca_file,
                        ALERTAGENT_TOKEN_FILE=secrets["token"])
        )  # fmt: skip
    assert run.code == ExitCode.UNAVAILABLE
    assert "https to http" in run.last["error"]
    assert elsewhere.requests == []
    assert not config.exists()


def test_a_redirect_from_http_up_to_https_is_followed(pki, agent, tmp_path):
    with FakeAlertAgent(content=CONFIG_V2, tls=pki.context()) as secure:
        agent.script(redirect(secure.url + QUERY))
        config = tmp_path / "etc" / "prometheus.yml"
        run = syncjob(env=env_for(agent.url, config, ALERTAGENT_CA_FILE=pki.ca_file))
        assert run.code == 0, run.stderr
        assert len(secure.requests) == 1
    assert config.read_bytes() == CONFIG_V2


@pytest.mark.parametrize(("hops", "code"), [(3, 0), (4, 69)])
def test_at_most_three_redirects_are_followed(agent, tmp_path, hops, code):
    agent.script(*[redirect(f"{QUERY}&hop={n}") for n in range(hops)])
    run = syncjob(env=env_for(agent.url, tmp_path / "etc" / "prometheus.yml"))
    assert run.code == code, run.stderr
    if code:
        assert "redirected more than 3 times" in run.last["error"]
        assert len(agent.requests) == 4  # the fourth redirect is not followed
    else:
        assert len(agent.requests) == 4  # three redirects, then the config


def test_a_backslash_in_a_redirect_does_not_carry_the_credentials_elsewhere(
    agent, elsewhere, secrets, tmp_path
):
    here, there = agent.url.removeprefix("http://"), elsewhere.url.removeprefix("http://")
    agent.script(redirect(f"http://{there}\\@{here}{QUERY}"))
    syncjob(
        env=env_for(
            agent.url, tmp_path / "etc" / "prometheus.yml", ALERTAGENT_TOKEN_FILE=secrets["token"]
        )
    )
    assert auth_headers(agent)[0] == f"Bearer {TOKEN}"
    assert all(header is None for header in auth_headers(elsewhere)), "the token went elsewhere"


@pytest.mark.parametrize(
    "location", ["http://127.0.0.1:8080./", "http://127.0.0.1:99999/", "http://[::1/"]
)
def test_a_malformed_redirect_is_refused_not_a_crash(agent, tmp_path, location):
    agent.script(redirect(location))
    run = syncjob(env=env_for(agent.url, tmp_path / "etc" / "prometheus.yml"))
    assert "Traceback" not in run.stderr
    assert run.code == ExitCode.UNAVAILABLE


# --- 5. hostile input -------------------------------------------------------------------


class FakeSource:
    """A source that answers with whatever the test says, parsed as the real one does."""

    def __init__(self, headers: dict[str, str], body: bytes) -> None:
        self.headers, self.body = HTTPHeaderDict(headers), body
        self.content: bytes | None = None  # the config it served, once parsed

    def fetch(self, if_none_match: str | None, into: files.Spool) -> dialects.Fetched | None:
        fetched, self.content = dialects.parse(self.headers, self.body)
        into.write(self.content)  # as Source does with a JSON answer's config
        return fetched


@pytest.fixture
def hostile_dir(tmp_path) -> Path:
    return tmp_path / "hostile"


def in_process_settings(config: Path):
    return resolve(
        {"endpoint": "http://127.0.0.1:1", "cluster_id": "c", "config_type": "prometheus",
         "config_path": str(config), "check_cmd": ""},
        env={},
    )  # fmt: skip


OURS = {"prometheus.yml", ".prometheus.yml.syncjob.json", ".prometheus.yml.syncjob.lock",
        ".prometheus.yml.syncjob.last-good"}  # fmt: skip


def assert_a_whole_pass(folder: Path, headers: dict[str, str], body: bytes) -> None:
    """One pass on this answer: exit 0 or 65 (69 only when the envelope says the source
    failed), and the file is the old bytes or exactly the new ones, with no leftovers."""
    config = folder / "prometheus.yml"
    before = config.read_bytes() if config.exists() else None
    source = FakeSource(headers, body)
    outcome = run_once(in_process_settings(config), source=source, target=None)

    if currently_in_test_context():  # --hypothesis-show-statistics shows the mix
        event(f"exit {int(outcome.exit_code)}")
    reported_error = outcome.exit_code == 69 and "source reported an error" in outcome.summary
    assert outcome.exit_code in (0, 65) or reported_error, outcome.summary
    after = config.read_bytes() if config.exists() else None
    if outcome.exit_code == 0:
        assert after == source.content
    else:
        assert after == before
    assert {p.name for p in folder.iterdir()} <= OURS


RAW_TYPES = st.sampled_from(
    ["application/yaml", "text/yaml; charset=latin-1", "text/plain", "", "application/octet-stream"]
)
CONTENT_TYPES = st.one_of(
    RAW_TYPES,
    st.sampled_from(["application/json", "application/json; charset=utf-8",
                     "application/problem+json", "text/html"]),
)  # fmt: skip
# Header values as http.client hands them over: latin-1, no CR/LF.
HEADER_TEXT = st.text(st.characters(max_codepoint=0xFF, exclude_characters="\r\n"), max_size=600)
HASHES = st.one_of(
    st.none(), st.just("<real>"), st.from_regex(r"[0-9a-fA-F]{64}", fullmatch=True), HEADER_TEXT
)


def answer_headers(content_type: str, config_hash: str | None, etag: str | None, body: bytes):
    headers = {"Content-Type": content_type}
    if config_hash is not None:
        real = hashlib.sha256(body).hexdigest()
        headers["X-Config-Hash"] = real if config_hash == "<real>" else config_hash
    if etag is not None:
        headers["ETag"] = etag
    return headers


HYPOTHESIS = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=30,
)
# Config text: anything (lone surrogates too), JSON objects (YAML mappings, so they get
# as far as the write), or YAML-looking lines. (Collections as mapping keys crash the
# validator: test_a_collection_as_a_mapping_key_is_refused.)
CONFIG_TEXT = st.one_of(
    st.dictionaries(st.text(max_size=10), JSON_VALUES, min_size=1, max_size=5).map(json.dumps),
    st.text(st.characters() | st.characters(categories=["Cs"]), max_size=300),  # surrogates
    st.lists(
        st.sampled_from(["global:", "  scrape_interval: 15s", "- a", "  - b", "x: &a [1, 2]",
                         "y: *a", "z: !!str 1", "w: !!python/object:os.system x", "---",
                         "%YAML 1.1", "'", '"', "\t", "k: v # c", "groups: []", "|", "  |",
                         "v: \x00", "n: 1e999999", "m: 0x_"]),
        max_size=12,
    ).map("\n".join),
)  # fmt: skip
RAW_BODIES = st.one_of(
    st.binary(max_size=4096),
    CONFIG_TEXT.map(lambda text: text.encode("utf-8", "surrogatepass")),
    st.builds(  # a config that starts well and ends in arbitrary bytes
        bytes.__add__, st.sampled_from([b"a: ", b"global:\n  x: ", b"k: |\n  "]), st.binary()
    ),
)


@HYPOTHESIS
@given(body=RAW_BODIES, content_type=RAW_TYPES | CONTENT_TYPES, config_hash=HASHES,
       etag=st.one_of(st.none(), HEADER_TEXT))  # fmt: skip
@example(body=b"a: \x00\n", content_type="application/yaml", config_hash=None, etag=None)
@example(body=b"a: \xff\xfe\n", content_type="text/plain", config_hash=None, etag=None)
@example(body=b"\xef\xbb\xbfa: 1\n", content_type="", config_hash="<real>", etag=None)
@example(body=CONFIG, content_type="application/yaml", config_hash="<real>", etag="x" * 10_000)
@example(body=b"a: " + b"9" * 100_000, content_type="text/plain", config_hash=None, etag=None)
@example(body=b"[" * 100_000, content_type="application/yaml", config_hash=None, etag=None)
def test_any_bytes_end_in_0_or_65_and_a_whole_file(
    hostile_dir, body, content_type, config_hash, etag
):
    hostile_dir.mkdir(exist_ok=True)
    assert_a_whole_pass(hostile_dir, answer_headers(content_type, config_hash, etag, body), body)


ENVELOPES = st.fixed_dictionaries(
    {"data": st.fixed_dictionaries(
        {"config": CONFIG_TEXT},
        optional={"config_hash": st.one_of(st.none(), HEADER_TEXT, st.just("<real>")),
                  "version": st.one_of(st.none(), st.text(), JSON_VALUES)},
    )},
    optional={"status": st.one_of(st.just("success"), JSON_VALUES),
              "code": st.one_of(st.just(200), JSON_VALUES),
              "message": JSON_VALUES, "extra": JSON_VALUES},
)  # fmt: skip


def _envelope_body(envelope: dict[str, Any]) -> bytes:
    data = envelope["data"]
    if data.get("config_hash") == "<real>":
        content = data["config"].encode("utf-8", "surrogatepass")
        data["config_hash"] = hashlib.sha256(content).hexdigest()
    return json.dumps(envelope).encode()


def _nested(depth: int, opener: str) -> str:
    closer = {"[": "]", '{"a":': "}", "- ": ""}[opener]
    return opener * depth + ("1" if opener != "[" else "") + closer * depth


# Depths well below and well above the interpreter's recursion limit; the depths around
# it are walked one by one in test_json_nested_near_the_recursion_limit_is_refused.
DEPTHS = st.one_of(st.integers(0, 300), st.integers(3_000, 100_000))


@HYPOTHESIS
@given(
    body=st.one_of(
        JSON_VALUES.map(lambda v: json.dumps(v).encode()),
        ENVELOPES.map(_envelope_body),
        CONFIG_TEXT.map(  # well-formed envelopes, to get as far as the write
            lambda text: json.dumps({"status": "success", "data": {"config": text}}).encode()
        ),
        st.builds(_nested, DEPTHS, st.sampled_from(["[", '{"a":'])).map(str.encode),
        st.builds(  # the config itself deeply nested, in an envelope
            lambda d, o: json.dumps({"status": "success", "data": {"config": _nested(d, o)}}),
            DEPTHS,
            st.sampled_from(["[", '{"a":', "- "]),
        ).map(str.encode),
        st.integers(4_000, 50_000).map(  # a number too long for int()
            lambda n: (
                b'{"status": "success", "data": {"config": "a: 1", "version": ' + b"9" * n + b"}}"
            )
        ),
        st.binary(max_size=512).map(  # not UTF-8 inside the JSON string
            lambda b: b'{"status": "success", "data": {"config": "a: ' + b + b'"}}'
        ),
    ),
    content_type=CONTENT_TYPES,
    config_hash=HASHES,
)
def test_any_json_envelope_ends_in_0_or_65_and_a_whole_file(
    hostile_dir, body, content_type, config_hash
):
    hostile_dir.mkdir(exist_ok=True)
    assert_a_whole_pass(hostile_dir, answer_headers(content_type, config_hash, None, body), body)


def _billion_laughs(levels: int = 9, width: int = 10) -> bytes:
    lines = ['lol0: &lol0 "lol"']
    for n in range(1, levels + 1):
        lines.append(f"lol{n}: &lol{n} [" + ", ".join([f"*lol{n - 1}"] * width) + "]")
    return ("\n".join(lines) + "\n").encode()


HOSTILE_YAML = {
    "billion laughs": _billion_laughs(),
    "[ x 100000": b"[" * 100_000,
    "{ x 100000": b"{" * 100_000,
    "- x 100000": b"- " * 100_000,
    "1000 nested mappings": "".join(f"{' ' * i}k:\n" for i in range(1000)).encode(),
}


# Nothing in syncjob expands an alias or builds the document (it reads parser events), so a
# bomb costs what its text costs; the target's checker judges what it would make of it.
# Flow collections nested 100,000 deep would take libyaml 0.2.5 30 s: a read over its
# budget. libyaml 0.2.6 (PyYAML 6.0.4's wheels) refuses nesting past 1,000 levels itself.
DEEPER_THAN_LIBYAML_READS = "exceeded maximum nesting depth"
HOSTILE_VERDICTS = {
    "billion laughs": ("accepted",),
    "[ x 100000": ("too long to read", DEEPER_THAN_LIBYAML_READS),
    "{ x 100000": ("too long to read", DEEPER_THAN_LIBYAML_READS),
    "- x 100000": ("must be a YAML mapping", DEEPER_THAN_LIBYAML_READS),
    "1000 nested mappings": ("accepted", DEEPER_THAN_LIBYAML_READS),
}


@pytest.mark.parametrize("document", list(HOSTILE_YAML))
def test_alias_bombs_and_deep_documents_are_judged_in_bounded_time_and_memory(document):
    content = HOSTILE_YAML[document]
    validate.check(b"warm: up\n", None, "prometheus", allow_empty=False)  # PyYAML's import
    tracemalloc.start()
    started = time.monotonic()
    try:
        try:
            validate.check(content, None, "prometheus", allow_empty=False)
            verdict = "accepted"
        except ContentRefused as exc:
            verdict = f"{exc} (exit {exc.exit_code})"
        elapsed = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert any(word in verdict for word in HOSTILE_VERDICTS[document]), verdict
    assert verdict == "accepted" or verdict.endswith(f"(exit {ExitCode.REFUSED})")
    assert elapsed < 2.0
    assert peak < 50 * 2**20


def test_an_alias_bomb_that_resets_its_anchors_through_keys_is_never_expanded():
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for n, (anchor, previous) in enumerate(zip("bcdefghij", "abcdefghi", strict=True)):
        lines.append(f"? *{previous}\n: reset{n}")
        lines.append(f"{anchor}: &{anchor} [" + ", ".join([f"*{previous}"] * 10) + "]")
    started = time.monotonic()  # 10**10 nodes once expanded
    validate.check(("\n".join(lines) + "\n").encode(), None, "prometheus", False)
    assert time.monotonic() - started < 2.0


@pytest.mark.parametrize("document", [b"? [a, b]\n: c\n", b"{[a]: b}\n", b"? {x: 1}\n: c\nd: e\n"])
def test_a_collection_as_a_mapping_key_is_a_verdict_not_a_crash(hostile_dir, document):
    hostile_dir.mkdir()
    assert_a_whole_pass(hostile_dir, {"Content-Type": "application/yaml"}, document)


def _json_accepts(depth: int) -> bool:
    try:
        json.loads("[" * depth + "]" * depth)
    except RecursionError:
        return False
    return True


def test_json_nested_near_the_recursion_limit_is_refused_not_a_crash(hostile_dir):
    hostile_dir.mkdir()
    deepest = next(d for d in range(1, 10_000) if not _json_accepts(d)) - 1
    # From a little below what json.loads accepts here (a pass calls it a few frames
    # deeper) to where it refuses too: every depth, the window may be one level wide.
    for depth in range(deepest - 100, deepest + 10):
        for inner in (_nested(depth, "["), _nested(depth, '{"a":')):
            body = b'{"status": "success", "data": {"config": ' + inner.encode() + b"}}"
            assert_a_whole_pass(hostile_dir, {"Content-Type": "application/json"}, body)


def test_a_source_dripping_its_body_is_cut_off_by_the_deadline(agent, tmp_path):
    body = b"global:\n  scrape_interval: 15s\n# pad\n"
    assert 35 <= len(body) <= 45
    agent.script(Reply(200, {"Content-Type": "application/yaml"}, body, drip=0.3))  # ~11 s
    config = tmp_path / "etc" / "prometheus.yml"
    started = time.monotonic()
    run = syncjob(env=env_for(agent.url, config, HTTP_TIMEOUT="1s", MAX_RETRIES="0"))
    elapsed = time.monotonic() - started
    assert run.code == ExitCode.UNAVAILABLE
    assert "body not received within 1s" in run.last["error"]
    assert elapsed < 5
    assert not config.exists()
    assert {p.name for p in config.parent.iterdir()} <= OURS  # no spool left behind


# --- 6. files ---------------------------------------------------------------------------

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="giving a file away needs root")


@needs_root
@pytest.mark.parametrize("mode", [0o640, 0o666])
def test_a_write_keeps_the_configs_owner_and_mode_and_our_files_are_not_world_writable(
    agent, tmp_path, mode
):
    config = tmp_path / "etc" / "prometheus.yml"
    state = config.with_name(".prometheus.yml.syncjob.json")
    last_good = config.with_name(".prometheus.yml.syncjob.last-good")
    env = env_for(agent.url, config)
    assert syncjob(env=env).code == 0
    os.chown(config, 1234, 1234)
    os.chmod(config, mode)
    os.chmod(state, 0o666)  # as someone careless left it

    agent.set_config(CONFIG_V2)
    run = syncjob(env=env)
    assert (run.code, run.last["outcome"]) == (0, "written"), run.stderr

    st_config = config.stat()
    assert config.read_bytes() == CONFIG_V2
    assert (st_config.st_uid, st_config.st_gid) == (1234, 1234)
    assert st_config.st_mode & 0o7777 == mode  # the config keeps what its owner chose
    assert state.stat().st_mode & 0o002 == 0
    assert last_good.read_bytes() == CONFIG  # the config the target ran before
    assert last_good.stat().st_mode & 0o002 == 0
    assert (last_good.stat().st_uid, last_good.stat().st_gid) == (1234, 1234)


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mode)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def envelope(config: bytes, **data: str) -> Reply:
    doc = {"status": "success", "data": {"config": config.decode(), **data}}
    return json_reply(200, doc)


def test_nothing_is_written_outside_the_configs_folder_whatever_the_source_says(agent, tmp_path):
    (tmp_path / "etc" / "passwd").parent.mkdir()
    (tmp_path / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (tmp_path / "srv" / "other").mkdir(parents=True)
    (tmp_path / "srv" / "other" / "keep.txt").write_text("untouched\n")
    folder = tmp_path / "srv" / "prometheus" / "conf"
    config = folder / "prometheus.yml"
    before = snapshot(tmp_path)

    control = "".join(chr(c) for c in range(32) if chr(c) not in "\r\n") + "\x7f"
    hostile = [
        raw(b"a: 1\n", ETag='"../../../etc/passwd"', **{"X-Config-Hash": "../../x"}),
        raw(b"a: 2\n", ETag=f"../{control}../evil", **{"X-Config-Hash": "../../../etc/passwd"}),
        raw(b"a: 3\n", ETag="E" * 10_240, **{"Content-Disposition": 'attachment; filename="../x"'}),
        envelope(b"a: 4\n", version="../../etc/passwd", config_hash="../../../../tmp/evil"),
        envelope(b"a: 5\n", version=f"v{control}/../..", config_hash="/etc/shadow"),
        envelope(b"a: 6\n", version="/" + "../" * 3000 + "etc/passwd"),
    ]
    agent.script(*hostile)
    env = env_for(agent.url, config)
    for n in range(len(hostile)):
        run = syncjob(env=env)
        assert (run.code, run.last["outcome"]) == (0, "written"), (n, run.stderr)
        assert config.read_bytes() == f"a: {n + 1}\n".encode()
    assert syncjob("status", "--json", env=env).code == 0

    # What went back as If-None-Match was a safe header or nothing.
    for request in agent.requests:
        tag = request.headers.get("if-none-match")
        assert tag is None or (len(tag) <= 512 and tag.isprintable()), tag[:80]

    after = snapshot(tmp_path)
    outside = {k: v for k, v in after.items() if not k.startswith("srv/prometheus/conf/")}
    assert outside == before
    assert {p.name for p in folder.iterdir()} == OURS
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_dir()) == [
        Path(d) for d in ("etc", "srv", "srv/other", "srv/prometheus", "srv/prometheus/conf")
    ]
