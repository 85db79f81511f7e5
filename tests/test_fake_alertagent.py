"""The fake AlertAgent speaks both wire dialects of CONTRACT.md and misbehaves on demand."""

import contextlib
import hashlib
import http.client
import json
import socket
import time

import pytest

from tests.fake_alertagent import FakeAlertAgent, Reply

QUERY = "/api/v1/configs?cluster_id=prod%20eu%2F1&type=prometheus"
CONTENT = b"global:\n  scrape_interval: 15s\n"
SHA = hashlib.sha256(CONTENT).hexdigest()


def get(
    agent: FakeAlertAgent, path: str = QUERY, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    host = agent.url.removeprefix("http://")
    conn = http.client.HTTPConnection(host, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body
    finally:
        conn.close()


def raw_exchange(agent: FakeAlertAgent, request: bytes) -> bytes:
    """Send exact bytes, read the answer until the server closes."""
    port = int(agent.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_raw_dialect_serves_yaml_with_hash_headers() -> None:
    with FakeAlertAgent() as agent:
        status, headers, body = get(agent)
        agent.wait_for_requests(1)
    assert (status, body) == (200, CONTENT)
    assert headers["content-type"] == "application/yaml"
    assert headers["cache-control"] == "no-cache"
    assert headers["x-config-hash"] == SHA
    assert headers["etag"] == f'"{SHA}"'
    rec = agent.requests[0]
    assert (rec.method, rec.path, rec.status) == ("GET", "/api/v1/configs", 200)
    assert rec.query == {"cluster_id": "prod eu/1", "type": "prometheus"}


@pytest.mark.parametrize("key", ["status", "code"])
def test_envelope_dialect(key: str) -> None:
    with FakeAlertAgent(dialect="envelope", envelope_key=key) as agent:
        status, headers, body = get(agent)
        agent.set_config(b"route: {}\n", version="v2")
        _, _, body2 = get(agent)
    assert status == 200
    assert headers["content-type"] == "application/json"
    assert "x-config-hash" not in headers
    doc = json.loads(body)
    assert doc["data"] == {"config": CONTENT.decode(), "config_hash": SHA, "version": "v1"}
    if key == "status":
        assert doc["status"] == "success"
    else:
        assert doc["code"] == 200
        assert isinstance(doc["timestamp"], int)
        assert doc["request_id"]
    data2 = json.loads(body2)["data"]
    assert data2["config"] == "route: {}\n"
    assert data2["config_hash"] == hashlib.sha256(b"route: {}\n").hexdigest()
    assert data2["version"] == "v2"


def test_config_hash_override_is_advertised() -> None:
    with FakeAlertAgent(dialect="envelope", config_hash="abc123") as agent:
        assert json.loads(get(agent)[2])["data"]["config_hash"] == "abc123"


@pytest.mark.parametrize("dialect", ["raw", "envelope"])
def test_quoted_etag_mode(dialect: str) -> None:
    with FakeAlertAgent(dialect=dialect) as agent:
        etag = get(agent)[1]["etag"]
        assert etag == f'"{SHA}"'
        assert get(agent, headers={"If-None-Match": etag})[::2] == (304, b"")
        assert get(agent, headers={"If-None-Match": f'W/"x", {etag}'})[0] == 304
        assert get(agent, headers={"If-None-Match": SHA})[0] == 200  # unquoted: no match
        agent.set_config(b"changed: true\n")
        assert get(agent, headers={"If-None-Match": etag})[0] == 200


@pytest.mark.parametrize("dialect", ["raw", "envelope"])
def test_raw_hash_etag_mode(dialect: str) -> None:
    with FakeAlertAgent(dialect=dialect, etag="raw-hash") as agent:
        status, headers, _ = get(agent)
        assert status == 200
        assert "etag" not in headers
        assert get(agent, headers={"If-None-Match": SHA})[::2] == (304, b"")
        assert get(agent, headers={"If-None-Match": f'"{SHA}"'})[0] == 200  # quoted: no match


def test_etag_none_never_answers_304() -> None:
    with FakeAlertAgent(etag="none") as agent:
        status, headers, _ = get(agent, headers={"If-None-Match": SHA})
        assert status == 200
        assert "etag" not in headers
        assert get(agent, headers={"If-None-Match": f'"{SHA}"'})[0] == 200


def test_api_path_unknown_paths_and_status_reports() -> None:
    with FakeAlertAgent(api_path="/api/v1/config/sync") as agent:
        assert get(agent, "/api/v1/config/sync?cluster_id=c&type=alertmanager")[0] == 200
        status, headers, body = get(agent, QUERY)
        assert status == 404
        assert headers["content-type"] == "application/json"
        assert json.loads(body)["code"] == 404

        report = {"cluster_id": "c", "config_type": "prometheus", "status": "success"}
        conn = http.client.HTTPConnection(agent.url.removeprefix("http://"), timeout=10)
        try:
            conn.request(
                "POST",
                "/api/v1/config/sync/status",
                body=json.dumps(report),
                headers={"Content-Type": "application/json"},
            )
            resp = conn.getresponse()
            assert (resp.status, json.loads(resp.read())) == (200, {"code": 200, "message": "ok"})
        finally:
            conn.close()
        agent.wait_for_requests(3)
    assert agent.status_reports == [report]
    assert agent.requests[2].headers["content-type"] == "application/json"


def test_scripted_replies_come_first_then_normal_behaviour() -> None:
    with FakeAlertAgent() as agent:
        agent.script(Reply(status=503, body=b"busy"), Reply(headers={"X-Config-Hash": "x"}))
        assert get(agent)[::2] == (503, b"busy")
        status, headers, body = get(agent)
        assert (status, headers["x-config-hash"], body) == (200, "x", b"")
        assert get(agent)[::2] == (200, CONTENT)
        agent.wait_for_requests(3)
    assert [r.status for r in agent.requests] == [503, 200, 200]


def test_truncated_reply_declares_full_length_but_sends_half() -> None:
    with FakeAlertAgent() as agent:
        agent.script(Reply(body=b"0123456789", truncate=True))
        with pytest.raises(http.client.IncompleteRead) as info:
            get(agent)
    assert info.value.partial == b"01234"


def test_dripped_reply_arrives_slowly_but_whole() -> None:
    with FakeAlertAgent() as agent:
        agent.script(Reply(body=b"abcdef", drip=0.05, delay=0.2))
        start = time.monotonic()
        assert get(agent)[2] == b"abcdef"
        assert time.monotonic() - start >= 0.2 + 5 * 0.05


def test_hanging_reply_is_woken_by_close() -> None:
    agent = FakeAlertAgent()
    agent.script(Reply(hang=True))
    host = agent.url.removeprefix("http://")
    conn = http.client.HTTPConnection(host, timeout=0.5)
    try:
        conn.request("GET", QUERY)
        agent.wait_for_requests(1)  # recorded on arrival, before any answer
        with pytest.raises(TimeoutError):
            conn.getresponse()
        start = time.monotonic()
        agent.close()
        assert time.monotonic() - start < 5
    finally:
        conn.close()
    assert agent.requests[0].status == 0


def test_close_with_a_client_stuck_mid_request() -> None:
    agent = FakeAlertAgent()
    port = int(agent.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /api/v1/configs HTTP/1.1\r\nHost: x\r\n")  # headers never end
        start = time.monotonic()
        agent.close()
        assert time.monotonic() - start < 5
        # the server hung up: EOF, or a reset if it closed with our bytes unread
        with contextlib.suppress(ConnectionResetError):
            assert sock.recv(100) == b""


def test_wire_bytes_are_counted_exactly() -> None:
    body = b'{"cluster_id":"c"}'
    request = (
        b"POST /api/v1/config/sync/status HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
        % (len(body), body)
    )
    get_request = b"GET " + QUERY.encode() + b" HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
    with FakeAlertAgent() as agent:
        answer = raw_exchange(agent, request)
        get_answer = raw_exchange(agent, get_request)
        agent.wait_for_requests(2)
    post, get_rec = agent.requests
    assert (post.bytes_in, post.bytes_out) == (len(request), len(answer))
    assert (get_rec.bytes_in, get_rec.bytes_out) == (len(get_request), len(get_answer))
    assert get_answer.endswith(b"\r\n\r\n" + CONTENT)


def test_keep_alive_requests_are_counted_separately() -> None:
    with FakeAlertAgent() as agent:
        conn = http.client.HTTPConnection(agent.url.removeprefix("http://"), timeout=10)
        try:
            for _ in range(2):
                conn.request("GET", QUERY)
                resp = conn.getresponse()
                assert resp.read() == CONTENT
        finally:
            conn.close()
        agent.wait_for_requests(2)
    first, second = agent.requests
    assert first.bytes_in == second.bytes_in > len(QUERY)
    assert first.bytes_out == second.bytes_out > len(CONTENT)


def test_wait_for_requests_times_out_with_a_clear_message() -> None:
    with FakeAlertAgent() as agent, pytest.raises(AssertionError, match="waiting for 1 requests"):
        agent.wait_for_requests(1, timeout=0.1)
