"""Whatever a peer sends, at whatever pace: every exchange ends within its budget, holds
little memory, and fails only with the project's own errors (never exit 1).

Each peer syncjob talks to is played by tests/hostile_peer.py, which writes raw bytes:
AlertAgent's config endpoint, the target's /-/ready, /-/reload and /metrics, the
Pushgateway, and AlertAgent's status endpoint.
"""

import contextlib
import logging
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncjob import publish
from syncjob.errors import (
    ContentRefused,
    ExitCode,
    SourceUnavailable,
    SyncError,
    TargetRejected,
    TargetUnreachable,
)
from syncjob.outcome import Outcome
from syncjob.settings import Settings, resolve
from syncjob.source import Source
from syncjob.state import State
from syncjob.sync import run_once
from syncjob.target import Target
from tests.hostile_peer import (
    Answer,
    HostilePeer,
    endless,
    endless_chunked,
    gzip_bomb,
    http,
)

# This machine is slow and shared: an exchange may overrun its budget by this much.
MARGIN = 1.5
# Memory an exchange may take, whatever it is sent: far below the manifests' 64Mi.
MEMORY = 16 * 1024 * 1024
CONFIG = b"global:\n  scrape_interval: 15s\n"
OURS = {"prometheus.yml", ".prometheus.yml.syncjob.json", ".prometheus.yml.syncjob.lock"}


def settings_for(folder: Path, endpoint: str, **more: str) -> Settings:
    values = {
        "endpoint": endpoint,
        "cluster_id": "c",
        "config_type": "prometheus",
        "config_path": str(folder / "prometheus.yml"),
        "check_cmd": "",
        "max_retries": "0",
        "retry_backoff": "0s",
        "http_timeout": "1s",
        **more,
    }
    return resolve(values, env={})


@contextlib.contextmanager
def bounded(budget: float) -> Iterator[None]:
    """The block ends within `budget` (plus MARGIN) and its peak memory is under MEMORY."""
    tracemalloc.start()
    started = time.monotonic()
    try:
        yield
    finally:
        elapsed = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert elapsed < budget + MARGIN, f"took {elapsed:.1f}s, budget {budget:g}s"
    assert peak < MEMORY, f"peak {peak / 2**20:.1f} MiB"


def fetch(folder: Path, peer: HostilePeer, **more: str) -> None:
    """Source.fetch, as a pass makes it (into a spool beside the config)."""
    from syncjob.files import Spool

    folder.mkdir(exist_ok=True)
    s = settings_for(folder, peer.url, **more)
    spool = Spool(s.config_path)
    try:
        Source(s).fetch(None, spool)
    finally:
        Path(spool.path).unlink(missing_ok=True)


def target_for(folder: Path, peer: HostilePeer, **more: str) -> Target:
    values = {"reload_url": peer.url + "/-/reload", "ready_timeout": "1s", **more}
    return Target(settings_for(folder, "http://127.0.0.1:1", **values))


def metrics(ok: str = "1", at: str | None = None) -> Answer:
    when = at if at is not None else f"{time.time() + 5:.3f}"
    text = (
        "# HELP prometheus_config_last_reload_successful Whether the last reload worked.\n"
        f"prometheus_config_last_reload_successful {ok}\n"
        f"prometheus_config_last_reload_success_timestamp_seconds {when}\n"
    )
    return http("200 OK", "Content-Type: text/plain; version=0.0.4", body=text.encode())


OK = http("200 OK", body=b"ok")
RAW_CONFIG = http("200 OK", "Content-Type: application/yaml", body=CONFIG)


def target_routes(**changed: Answer) -> dict[str, Answer]:
    routes = {"/-/ready": OK, "POST /-/reload": OK, "/metrics": metrics()}
    for name, answer in changed.items():
        routes[{"ready": "/-/ready", "reload": "POST /-/reload", "metrics": "/metrics"}[name]] = (
            answer
        )
    return routes


# --- AlertAgent's config endpoint -------------------------------------------------------

DRIPPED_HEAD = Answer(
    b"HTTP/1.1 200 OK\r\nContent-Type: application/yaml\r\nX-Pad: " + b"a" * 200 + b"\r\n\r\n",
    drip=0.05,  # ~12 s for the whole head: each byte well within a per-read timeout
)


def test_headers_dripping_a_byte_at_a_time_are_cut_off_at_http_timeout(tmp_path):
    with HostilePeer([DRIPPED_HEAD]) as peer, bounded(1.0):
        with pytest.raises(SourceUnavailable, match=r"timed out: no answer within 1s"):
            fetch(tmp_path / "f", peer)


def test_a_body_dripping_is_cut_off_at_http_timeout(tmp_path):
    dripping = Answer(RAW_CONFIG.head, CONFIG * 10, drip=0.05, head_at_once=True)
    with HostilePeer([dripping]) as peer, bounded(1.0):
        with pytest.raises(SourceUnavailable, match="body not received within 1s"):
            fetch(tmp_path / "f", peer)


@pytest.mark.parametrize("status", ["302 Found", "503 Service Unavailable"])
@pytest.mark.parametrize("framing", ["chunked", "close", "length"])
def test_a_redirect_or_retried_answer_with_an_endless_body_is_never_drained(
    tmp_path, status, framing
):
    """urllib3 drains such a body whole before the next request: 3 GiB took 22 s."""
    body = endless_chunked(seconds=30) if framing == "chunked" else endless(seconds=30)
    header = {
        "chunked": "Transfer-Encoding: chunked",
        "close": "Connection: close",
        "length": f"Content-Length: {3 << 30}",
    }[framing]
    first = Answer(f"HTTP/1.1 {status}\r\nLocation: /moved\r\n{header}\r\n\r\n".encode(), body)
    with HostilePeer([first, RAW_CONFIG]) as peer, bounded(1.0):
        fetch(tmp_path / "f", peer, max_retries="1")
        assert len(peer.requests) == 2


@pytest.mark.parametrize(
    "value", ["²", "١٢", "12abc", "-1", "5, 5", "0x10", " ", "9" * 5000], ids=repr
)
def test_a_malformed_content_length_is_refused_not_a_crash(tmp_path, value):
    head = f"HTTP/1.1 200 OK\r\nContent-Type: application/yaml\r\nContent-Length: {value}\r\n\r\n"
    answer = Answer(head.encode("utf-8" if value == "١٢" else "latin-1"), CONFIG)
    with HostilePeer([answer]) as peer:
        with pytest.raises(ContentRefused, match="malformed Content-Length"):
            fetch(tmp_path / "f", peer)


def test_content_length_of_superscript_two_ends_a_pass_in_65_and_writes_nothing(tmp_path):
    # "²".isdigit() is True and int("²") raises ValueError: it was exit 1.
    answer = Answer(
        "HTTP/1.1 200 OK\r\nContent-Type: application/yaml\r\nContent-Length: ²\r\n\r\n".encode(
            "latin-1"
        ),
        CONFIG,
    )
    folder = tmp_path / "f"
    folder.mkdir()
    with HostilePeer([answer]) as peer:
        s = settings_for(folder, peer.url)
        outcome = run_once(s, source=Source(s), target=None)
    assert outcome.exit_code == ExitCode.REFUSED, outcome.summary
    assert "malformed Content-Length" in outcome.summary
    assert not (folder / "prometheus.yml").exists()
    assert {p.name for p in folder.iterdir()} <= OURS


@pytest.mark.parametrize("value", ["9" * 5000, "soon", "٣", "-1", "Mon, 99 Foo 2026"], ids=repr)
def test_a_malformed_retry_after_is_refused_not_a_crash(tmp_path, value):
    # 5000 digits: urllib3 int()s them and int() refuses more than 4300 (ValueError).
    head = f"HTTP/1.1 503 Busy\r\nRetry-After: {value}\r\nContent-Length: 0\r\n\r\n"
    with HostilePeer([Answer(head.encode("utf-8"))]) as peer:
        with pytest.raises(ContentRefused, match="malformed Retry-After"):
            fetch(tmp_path / "f", peer, max_retries="1")


def test_retry_after_as_an_http_date_is_honoured(tmp_path):
    head = b"HTTP/1.1 503 Busy\r\nRetry-After: Thu, 01 Jan 1970 00:00:00 GMT\r\n\r\n"
    with HostilePeer([Answer(head), RAW_CONFIG]) as peer, bounded(1.0):
        fetch(tmp_path / "f", peer, max_retries="1")
        assert len(peer.requests) == 2


def test_a_gzip_bomb_counts_what_it_inflates_to(tmp_path):
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/yaml\r\nContent-Encoding: gzip\r\n\r\n"
    with HostilePeer([Answer(head, gzip_bomb())]) as peer, bounded(1.0):
        with pytest.raises(ContentRefused, match=r"over the cap of 1048576 bytes \(MAX_BODY_SIZE"):
            fetch(tmp_path / "f", peer, max_body_size="1MiB")


def test_an_error_body_is_read_only_as_far_as_its_words(tmp_path):
    head = b"HTTP/1.1 500 Oops\r\nContent-Type: text/plain\r\n\r\ndatabase down\n"
    with HostilePeer([Answer(head, endless(seconds=30))]) as peer, bounded(1.0):
        with pytest.raises(SourceUnavailable, match="HTTP 500: database down"):
            fetch(tmp_path / "f", peer)


def test_a_negative_chunk_size_is_not_a_read_to_the_end(tmp_path):
    # http.client's read(n) on chunk size "-5" reads the socket to its end, into memory.
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/yaml\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    answer = Answer(head + b"-5\r\n", endless(seconds=30))
    with HostilePeer([answer]) as peer, bounded(1.0):
        with pytest.raises(SyncError):
            fetch(tmp_path / "f", peer, max_body_size="1MiB")


# --- The target --------------------------------------------------------------------------


def dripping(answer: Answer) -> Answer:
    return Answer(answer.head, answer.body, drip=0.05)


@pytest.mark.parametrize(
    ("route", "error", "budget"),
    [
        ("ready", TargetUnreachable, 1.0),  # READY_TIMEOUT
        ("reload", TargetUnreachable, 1.0),  # HTTP_TIMEOUT
        ("metrics", TargetUnreachable, 1.0),  # a look at /metrics: HTTP_TIMEOUT
    ],
)
def test_a_target_dripping_is_cut_off_within_its_budget(tmp_path, route, error, budget):
    slow = Answer(b"HTTP/1.1 200 OK\r\nX-Pad: " + b"a" * 400 + b"\r\n\r\n", drip=0.05)
    with HostilePeer(routes=target_routes(**{route: slow})) as peer, bounded(budget):
        with pytest.raises(error, match=r"no answer within 1s|not ready after 1s"):
            target_for(tmp_path, peer).reload()


def test_a_reload_error_with_an_endless_body_keeps_the_targets_words(tmp_path):
    failed = Answer(
        b"HTTP/1.1 500 Internal Server Error\r\n\r\nfailed to reload config: bad\n",
        endless(seconds=30),
    )
    with HostilePeer(routes=target_routes(reload=failed)) as peer, bounded(1.0):
        with pytest.raises(TargetRejected, match="HTTP 500: failed to reload config: bad"):
            target_for(tmp_path, peer).reload()


def test_a_gzip_bomb_at_metrics_is_a_rejection_in_bounded_memory(tmp_path):
    head = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n\r\n"
    bomb = Answer(head, gzip_bomb())
    with HostilePeer(routes=target_routes(metrics=bomb)) as peer, bounded(2.0):
        with pytest.raises(TargetRejected, match="over the cap"):
            target_for(tmp_path, peer).reload()


@pytest.mark.parametrize("value", ["abc", "0x1", "", "1_0", "\u0661", "nan", "0"], ids=repr)
def test_an_unreadable_or_failed_reload_metric_is_a_rejection_not_a_crash(tmp_path, value):
    with HostilePeer(routes=target_routes(metrics=metrics(ok=value))) as peer:
        with pytest.raises(TargetRejected, match="prometheus") as info:
            target_for(tmp_path, peer).reload()
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("value", ["abc", "+Inf", "NaN", ""], ids=repr)
def test_an_unreadable_reload_timestamp_is_a_rejection(tmp_path, value):
    with HostilePeer(routes=target_routes(metrics=metrics(at=value))) as peer:
        with pytest.raises(TargetRejected, match="cannot be verified"):
            target_for(tmp_path, peer).reload()


def test_a_target_without_reload_metrics_is_still_judged_by_the_status_code(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    plain = http("200 OK", body=b"up 1\n")
    with HostilePeer(routes=target_routes(metrics=plain)) as peer:
        target_for(tmp_path, peer).reload()
    assert "accepted by status code only" in caplog.text


def test_a_fresh_reload_is_accepted_with_labels_and_a_trailing_timestamp(tmp_path):
    text = (
        f'prometheus_config_last_reload_successful{{a="b"}} 1 {int(time.time())}000\n'
        f"prometheus_config_last_reload_success_timestamp_seconds {time.time() + 5:.12e}\n"
    )
    with HostilePeer(routes=target_routes(metrics=http("200 OK", body=text.encode()))) as peer:
        target_for(tmp_path, peer).reload()


# --- Pushgateway and status report ---------------------------------------------------------


def an_outcome() -> Outcome:
    return Outcome(ExitCode.OK, "in sync", None, None, 0.1, State())


# What a peer of the publishers may answer: a push and a status report end in time anyway.
PUBLISH_ANSWERS = pytest.mark.parametrize(
    "answer",
    [
        Answer(b"HTTP/1.1 200 OK\r\nX-Pad: " + b"a" * 400 + b"\r\n\r\n", drip=0.05),
        Answer(b"HTTP/1.1 500 Oops\r\n\r\n", endless(seconds=30)),
        Answer(b"HTTP/1.1 200 OK\r\nContent-Length: \xb2\r\n\r\n"),
    ],
    ids=["dripping", "endless-error", "malformed"],
)


@PUBLISH_ANSWERS
def test_the_pushgateway_is_bounded_by_its_timeout(tmp_path, caplog, answer):
    with HostilePeer([answer]) as peer, bounded(1.0):
        s = settings_for(tmp_path, "http://127.0.0.1:1", pushgateway_url=peer.url,
                         pushgateway_timeout="1s")  # fmt: skip
        publish.push(s, an_outcome())
    assert "push to the Pushgateway" in caplog.text


@PUBLISH_ANSWERS
def test_the_status_report_is_bounded_by_http_timeout(tmp_path, caplog, answer):
    with HostilePeer([answer]) as peer, bounded(1.0):
        s = settings_for(tmp_path, peer.url, report_status="true")
        publish.report_status(s, an_outcome())
    assert "status report" in caplog.text


# --- A URL's password is never shown --------------------------------------------------------


def test_a_password_in_the_reload_url_is_not_in_the_error(tmp_path):
    with HostilePeer(routes=target_routes(ready=DRIPPED_HEAD)) as peer:
        url = peer.url.replace("http://", "http://admin:hunter2@") + "/-/reload"
        with pytest.raises(TargetUnreachable) as info:
            target_for(tmp_path, peer, reload_url=url).reload()
    assert "hunter2" not in str(info.value)
    assert "admin:***@127.0.0.1" in str(info.value)


def test_a_password_in_the_pushgateway_url_is_not_logged(tmp_path, caplog):
    with HostilePeer([http("500 Oops", body=b"no")]) as peer:
        url = peer.url.replace("http://", "http://pusher:hunter2@")
        s = settings_for(tmp_path, "http://127.0.0.1:1", pushgateway_url=url)
        publish.push(s, an_outcome())
    assert "push to the Pushgateway http://pusher:***@127.0.0.1" in caplog.text
    assert "hunter2" not in caplog.text


# --- Whatever the bytes: generated answers for each peer -------------------------------------

STATUS_LINES = st.one_of(
    st.sampled_from(
        [
            "HTTP/1.1 200 OK", "HTTP/1.1 204 No Content", "HTTP/1.1 302 Found",
            "HTTP/1.1 304 Not Modified", "HTTP/1.1 404 Not Found", "HTTP/1.1 500 Oops",
            "HTTP/1.1 503 Busy", "HTTP/1.0 200 OK", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK",
            "HTTP/1.1 999 What", "HTTP/1.1 20 Short", "HTTP/1.1 ²00 OK", "HTTP/9 200 OK",
            "ICY 200 OK", "", "HTTP/1.1",
        ]
    ),
    st.text(st.characters(max_codepoint=0xFF, exclude_characters="\r\n"), max_size=40),
)  # fmt: skip
HEADERS = st.lists(
    st.one_of(
        st.sampled_from(
            [
                "Content-Length: 0", "Content-Length: 5", "Content-Length: 99999999999",
                "Content-Length: \xb2", "Content-Length: -1", "Content-Length: 5, 6",
                "Transfer-Encoding: chunked", "Transfer-Encoding: gzip, chunked",
                "Content-Encoding: gzip", "Content-Encoding: deflate", "Content-Encoding: br",
                "Content-Encoding: gzip, gzip, gzip, gzip, gzip, gzip, gzip",
                "Content-Type: application/json", "Content-Type: application/yaml",
                "Location: /elsewhere", "Location: http://[::1", "Retry-After: 0",
                "Retry-After: " + "9" * 5000, "Retry-After: soon", "Connection: close",
                "X-Config-Hash: " + "0" * 64, "no colon here", ": empty name", "X" * 70000,
            ]
        ),
        st.text(st.characters(max_codepoint=0xFF, exclude_characters="\r\n"), max_size=60),
    ),
    max_size=6,
)  # fmt: skip
BODIES = st.one_of(
    st.binary(max_size=300),
    st.sampled_from(
        [
            b"5\r\nhello\r\n0\r\n\r\n", b"-5\r\nhello", b"zz\r\n", b"ffffffffffffffff\r\nab",
            b'{"status": "success", "data": {"config": "a: 1"}}',
            b"prometheus_config_last_reload_successful abc\n",
            b"prometheus_config_last_reload_successful 1\n"
            b"prometheus_config_last_reload_success_timestamp_seconds 9e99\n",
        ]
    ),
)  # fmt: skip
ENDLESS = st.sampled_from(["no", "plain", "chunked", "gzip"])


@st.composite
def answers(draw: st.DrawFn) -> Answer:
    head = draw(STATUS_LINES) + "".join("\r\n" + h for h in draw(HEADERS)) + "\r\n\r\n"
    body: bytes | Iterator[bytes] = draw(BODIES)
    tail = draw(ENDLESS)
    if tail != "no":
        more = {"plain": endless, "chunked": endless_chunked}.get(tail)
        rest = more(seconds=5) if more else gzip_bomb(64 << 20)
        body = _then(body, rest)
    drip = draw(st.sampled_from([0.0, 0.0, 0.002, 0.05]))
    return Answer(
        head.encode("latin-1"), body, drip=drip, drip_size=draw(st.sampled_from([1, 7, 512])),
        close=draw(st.booleans()),
    )  # fmt: skip


def _then(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest


FEW = settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
BUDGET = 0.5  # HTTP_TIMEOUT and PUSHGATEWAY_TIMEOUT in these tests


@FEW
@given(answer=answers())
def test_any_answer_from_the_source_ends_a_pass_in_its_own_exit_code(tmp_path_factory, answer):
    folder = tmp_path_factory.mktemp("pass")
    # Two attempts (one retry), and the pass's own work: lock, state, first imports.
    with HostilePeer([answer, RAW_CONFIG]) as peer, bounded(2 * BUDGET + 1.0):
        s = settings_for(folder, peer.url, http_timeout="500ms", max_retries="1")
        outcome = run_once(s, source=Source(s), target=None)
    assert outcome.exit_code != ExitCode.INTERNAL, outcome.summary
    config = folder / "prometheus.yml"
    if outcome.exit_code == ExitCode.OK:
        assert config.read_bytes() in (CONFIG, b"a: 1")
    else:
        assert not config.exists()
    assert {p.name for p in folder.iterdir()} <= OURS


@FEW
@given(route=st.sampled_from(["ready", "reload", "metrics"]), answer=answers())
def test_any_answer_from_the_target_is_its_own_error(tmp_path_factory, route, answer):
    folder = tmp_path_factory.mktemp("target")
    # READY_TIMEOUT 0.5s: the readiness wait; verification: max(READY_TIMEOUT, 2s).
    budget = {"ready": BUDGET, "reload": BUDGET, "metrics": 2.0}[route]
    with HostilePeer(routes=target_routes(**{route: answer})) as peer, bounded(budget):
        with contextlib.suppress(TargetRejected, TargetUnreachable):
            target_for(folder, peer, ready_timeout="500ms", http_timeout="500ms").reload()


@FEW
@given(answer=answers())
def test_any_answer_from_the_pushgateway_is_logged(tmp_path_factory, answer):
    folder = tmp_path_factory.mktemp("push")
    with HostilePeer([answer]) as peer, bounded(BUDGET):
        s = settings_for(folder, "http://127.0.0.1:1", pushgateway_url=peer.url,
                         pushgateway_timeout="500ms")  # fmt: skip
        publish.push(s, an_outcome())


@FEW
@given(answer=answers())
def test_any_answer_to_the_status_report_is_logged(tmp_path_factory, answer):
    folder = tmp_path_factory.mktemp("report")
    with HostilePeer([answer]) as peer, bounded(BUDGET):
        s = settings_for(folder, peer.url, report_status="true", http_timeout="500ms")
        publish.report_status(s, an_outcome())
