"""Both dialects of CONTRACT.md, read without I/O: what a 200 means, what an error says."""

import hashlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from urllib3 import HTTPHeaderDict

from syncjob.dialects import Fetched, check_status, parse, server_message
from syncjob.errors import (
    ContentRefused,
    CredentialsRefused,
    ExitCode,
    SourceUnavailable,
    SyncError,
)

CONFIG = b"global:\n  scrape_interval: 15s\nscrape_configs: []\n"
CONFIG_SHA = hashlib.sha256(CONFIG).hexdigest()
JSON = {"Content-Type": "application/json; charset=utf-8"}
YAML = {"Content-Type": "application/yaml"}


def envelope(**data: Any) -> bytes:
    return json.dumps(
        {"status": "success", "message": "Config retrieved successfully", "data": data}
    ).encode()


# Dialect B: the raw body, its SHA-256 in X-Config-Hash (kmain GetSyncConfig).


def test_raw_yaml_with_its_hash() -> None:
    fetched, content = parse(
        {**YAML, "Cache-Control": "no-cache", "X-Config-Hash": CONFIG_SHA}, CONFIG
    )
    assert fetched == Fetched(CONFIG_SHA, version=None, etag=CONFIG_SHA, dialect="raw")
    assert content == CONFIG
    assert fetched.sha256 == CONFIG_SHA


def test_raw_headers_are_read_case_insensitively_as_urllib3_gives_them() -> None:
    headers = HTTPHeaderDict({"content-type": "application/yaml", "x-config-hash": CONFIG_SHA})
    assert parse(headers, CONFIG)[0].etag == CONFIG_SHA


def test_raw_without_a_hash_is_taken_as_is() -> None:
    assert parse({"Content-Type": "text/plain"}, CONFIG)[1] == CONFIG
    assert parse({}, CONFIG)[0].etag is None


def test_upper_case_hash_is_the_same_hash() -> None:
    assert parse({**YAML, "X-Config-Hash": CONFIG_SHA.upper()}, CONFIG)[1] == CONFIG


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"ETag": '"v42"', "X-Config-Hash": CONFIG_SHA}, '"v42"'),
        ({"ETag": 'W/"v42"'}, 'W/"v42"'),
        ({"X-Config-Hash": CONFIG_SHA}, CONFIG_SHA),  # kmain compares the raw, unquoted hash
        ({}, None),
    ],
)
def test_etag_is_preferred_over_x_config_hash(headers: dict[str, str], expected: str) -> None:
    assert parse({**YAML, **headers}, CONFIG)[0].etag == expected
    assert parse({**JSON, **headers}, envelope(config=CONFIG.decode()))[0].etag == expected


def test_raw_hash_mismatch_is_refused() -> None:
    wrong = hashlib.sha256(b"something else").hexdigest()
    with pytest.raises(
        ContentRefused, match=r"hash mismatch: source declared \w{12}\.\.\."
    ) as info:
        parse({**YAML, "X-Config-Hash": wrong}, CONFIG)
    assert info.value.exit_code == ExitCode.REFUSED
    assert f"body is {CONFIG_SHA[:12]}" in str(info.value)


def test_quoted_etag_style_hash_is_still_checked() -> None:
    wrong = hashlib.sha256(b"x").hexdigest()
    with pytest.raises(ContentRefused, match="hash mismatch"):
        parse({**YAML, "X-Config-Hash": f'"{wrong}"'}, CONFIG)
    assert parse({**YAML, "X-Config-Hash": f'"{CONFIG_SHA}"'}, CONFIG)[1] == CONFIG


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ({"Content-Type": "text/html"}, b"<h1>502 Bad Gateway</h1>"),
        ({"Content-Type": "text/html; charset=UTF-8"}, b"login"),
        ({}, b"<!DOCTYPE html><html><body>Sign in</body></html>"),
        ({"Content-Type": "application/yaml"}, b"\n  <html><head><title>proxy</title>"),
    ],
)
def test_html_page_is_refused(headers: dict[str, str], body: bytes) -> None:
    with pytest.raises(ContentRefused, match="source answered an HTML page, not a config"):
        parse(headers, body)


# Dialect A: the JSON envelope (design document) or the newer generic wrapper.


def test_envelope_with_status() -> None:
    fetched, content = parse(
        JSON, envelope(config=CONFIG.decode(), config_hash=CONFIG_SHA, version="v1")
    )
    assert fetched == Fetched(CONFIG_SHA, version="v1", etag=None, dialect="envelope")
    assert content == CONFIG


def test_envelope_with_code_is_the_same_dialect() -> None:
    body = json.dumps(
        {
            "code": 200,
            "message": "ok",
            "data": {"config": "test: config\nversion: 1.0"},
            "request_id": "r-1",
            "timestamp": 1700000000,
        }
    ).encode()
    fetched, content = parse(JSON, body)
    assert (content, fetched.dialect) == (b"test: config\nversion: 1.0", "envelope")


def test_contract_fixture_opaque_tag_is_the_version() -> None:
    # The Go test fixture's "abc123" is not a checksum: accepted, and kept as the version.
    fetched, content = parse(
        JSON, envelope(config="test: config\nversion: 1.0", config_hash="abc123")
    )
    assert content == b"test: config\nversion: 1.0"
    assert fetched.version == "abc123"


def test_explicit_version_wins_over_the_opaque_tag() -> None:
    assert (
        parse(JSON, envelope(config="a: 1", config_hash="abc123", version="v2"))[0].version == "v2"
    )


def test_a_checksum_is_not_a_version() -> None:
    assert parse(JSON, envelope(config=CONFIG.decode(), config_hash=CONFIG_SHA))[0].version is None


def test_null_hash_and_version_are_allowed() -> None:
    fetched, content = parse(JSON, envelope(config="a: 1", config_hash=None, version=None))
    assert (content, fetched.version) == (b"a: 1", None)


def test_envelope_hash_mismatch_is_refused() -> None:
    with pytest.raises(ContentRefused, match="hash mismatch"):
        parse(JSON, envelope(config="a: 2", config_hash=hashlib.sha256(b"a: 1").hexdigest()))


def test_envelope_config_is_utf8_on_disk() -> None:
    _, content = parse(JSON, envelope(config="summary: température élevée ✓"))
    assert content == "summary: température élevée ✓".encode()


@pytest.mark.parametrize(
    ("obj", "where"),
    [
        ({"status": "success"}, "top level: 'data' is a required property"),
        ({"status": "success", "data": []}, "data: [] is not of type 'object'"),
        ({"status": "success", "data": {}}, "data: 'config' is a required property"),
        ({"status": "success", "data": {"config": 1}}, "data/config: 1 is not of type 'string'"),
        ({"status": "success", "data": {"config": "a", "version": 2}}, "data/version"),
        ({"status": "success", "data": {"config": "a", "config_hash": []}}, "data/config_hash"),
        ({"code": "200", "data": {"config": "a"}}, "code: '200' is not of type 'integer'"),
        ({"data": {"config": "a"}}, "top level: "),  # neither status nor code
        ([], "top level: [] is not of type 'object'"),
        ("a: 1", "top level: "),
    ],
)
def test_envelope_of_the_wrong_shape_says_where(obj: Any, where: str) -> None:
    with pytest.raises(ContentRefused) as info:
        parse(JSON, json.dumps(obj).encode())
    message = str(info.value)
    assert message.startswith("source answered an envelope of the wrong shape: ")
    assert where in message
    assert "\n" not in message
    assert len(message) <= 300


@pytest.mark.parametrize("body", [b"", b"{", b"status: success", b"\xff\xfe\x00"])
def test_invalid_json_is_refused(body: bytes) -> None:
    with pytest.raises(ContentRefused, match="source answered invalid JSON"):
        parse(JSON, body)


@pytest.mark.parametrize(
    ("obj", "said"),
    [
        ({"status": "error", "message": "cluster not found"}, "cluster not found"),
        ({"status": "failed", "message": "db down", "data": None}, "db down"),
        ({"code": 500, "message": "internal error", "error": "db down"}, "internal error: db down"),
        ({"code": 404, "message": "config not found", "data": None}, "config not found"),
    ],
)
def test_error_envelope_is_the_source_being_unavailable(obj: dict[str, Any], said: str) -> None:
    with pytest.raises(SourceUnavailable) as info:
        parse(JSON, json.dumps(obj).encode())
    assert str(info.value) == f"source reported an error: {said}"
    assert info.value.exit_code == ExitCode.UNAVAILABLE


# Non-200 answers, after urllib3's retries.


@pytest.mark.parametrize(
    ("status", "error", "start"),
    [
        (401, CredentialsRefused, "source refused our credentials (HTTP 401: "),
        (403, CredentialsRefused, "source refused our credentials (HTTP 403: "),
        (404, SourceUnavailable, "source has no such config (HTTP 404: "),
        (400, SourceUnavailable, "source refused the request (HTTP 400: "),
        (409, SourceUnavailable, "source refused the request (HTTP 409: "),
        (429, SourceUnavailable, "source unavailable after 3 retries (HTTP 429: "),
        (500, SourceUnavailable, "source unavailable after 3 retries (HTTP 500: "),
        (502, SourceUnavailable, "source unavailable after 3 retries (HTTP 502: "),
        (503, SourceUnavailable, "source unavailable after 3 retries (HTTP 503: "),
        (204, ContentRefused, "unexpected answer from the source (HTTP 204: "),
        (302, ContentRefused, "unexpected answer from the source (HTTP 302: "),
    ],
)
def test_check_status(status: int, error: type[SyncError], start: str) -> None:
    body = json.dumps({"code": status, "message": "nope", "error": "details"}).encode()
    with pytest.raises(error) as info:
        check_status(status, body, retries_used=3)
    assert type(info.value) is error
    assert str(info.value) == f"{start}nope: details)"


def test_check_status_200_passes() -> None:
    check_status(200, b"anything", retries_used=0)


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (401, ExitCode.UNAUTHORIZED),
        (403, ExitCode.UNAUTHORIZED),
        (404, ExitCode.UNAVAILABLE),
        (400, ExitCode.UNAVAILABLE),
        (429, ExitCode.UNAVAILABLE),
        (503, ExitCode.UNAVAILABLE),
    ],
)
def test_check_status_exit_codes(status: int, code: ExitCode) -> None:
    with pytest.raises(SyncError) as info:
        check_status(status, b"", retries_used=0)
    assert info.value.exit_code == code


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            b'{"code": 401, "message": "unauthorized", "error": "token expired"}',
            "unauthorized: token expired",
        ),
        (b'{"code": 500, "message": "boom", "error": "boom"}', "boom"),  # said once
        (b'{"message": "only a message"}', "only a message"),
        (b'{"error": "only an error"}', "only an error"),
        (
            b'{"code": 500, "message": "", "error": null}',
            '{"code": 500, "message": "", "error": null}',
        ),
        (
            b"failed to reload config: couldn't load configuration\ndetails\n",
            "failed to reload config: couldn't load configuration",
        ),
        (b"\n\n  upstream connect error  \n", "upstream connect error"),
        (b"", "(empty body)"),
        (b"   \n ", "(empty body)"),
        (b"bad \xff byte", "bad \ufffd byte"),
        (b'"a JSON string"', '"a JSON string"'),
    ],
)
def test_server_message(body: bytes, message: str) -> None:
    assert server_message(body) == message


def test_server_message_is_capped() -> None:
    assert server_message(b"x" * 1000) == "x" * 200
    assert server_message(json.dumps({"message": "y" * 1000}).encode(), limit=50) == "y" * 50


def test_server_message_of_a_multi_line_json_error_is_one_line() -> None:
    body = json.dumps(
        {"code": 500, "message": "render failed", "error": "yaml: unmarshal errors:\n  line 3: x"}
    ).encode()
    assert "\n" not in server_message(body)


# Whatever the source sends, parse() answers a Fetched or one of our errors.

DEEP = b"[" * 100_000


def test_deeply_nested_json_envelope_is_refused() -> None:
    with pytest.raises(ContentRefused):
        parse(JSON, DEEP)


def test_deeply_nested_error_body_still_gives_the_status_error() -> None:
    with pytest.raises(SourceUnavailable, match="HTTP 502"):
        check_status(502, DEEP, retries_used=0)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
near_envelopes = st.fixed_dictionaries(
    {},
    optional={
        "status": st.sampled_from(["success", "error", ""]) | json_values,
        "code": st.sampled_from([200, 204, 404, 500]) | json_values,
        "message": json_values,
        "data": st.fixed_dictionaries(
            {},
            optional={
                "config": st.text() | json_values,
                "config_hash": st.sampled_from(["abc123", CONFIG_SHA, "", "0" * 64]) | json_values,
                "version": st.text() | json_values,
            },
        )
        | json_values,
    },
)
content_types = st.sampled_from(
    ["application/json", "application/yaml", "text/html", "text/plain", "", "application/x+json"]
)
hashes = st.none() | st.sampled_from([CONFIG_SHA, "abc123", "0" * 64, '"' + CONFIG_SHA + '"'])


def _outcome(headers: dict[str, str], body: bytes) -> tuple[Fetched, bytes] | SyncError:
    """parse()'s answer; any exception that is not a SyncError fails the test."""
    try:
        return parse(headers, body)
    except SyncError as exc:
        return exc


@given(content_type=content_types, hash_header=hashes, body=st.binary())
def test_any_bytes_give_a_fetched_or_our_error(
    content_type: str, hash_header: str | None, body: bytes
) -> None:
    headers = {"Content-Type": content_type}
    if hash_header is not None:
        headers["X-Config-Hash"] = hash_header
    result = _outcome(headers, body)
    if isinstance(result, SyncError):
        assert str(result)
    elif result[0].dialect == "raw":
        assert result[1] == body


@given(value=json_values | near_envelopes)
def test_any_json_value_gives_a_fetched_or_our_error(value: Any) -> None:
    body = json.dumps(value).encode()
    result = _outcome(JSON, body)
    if not isinstance(result, SyncError):
        assert result[0].dialect == "envelope"
        assert result[1] == value["data"]["config"].encode("utf-8", "surrogatepass")


@given(status=st.integers(min_value=100, max_value=599), body=st.binary())
def test_check_status_only_raises_our_errors(status: int, body: bytes) -> None:
    said = ""
    try:
        check_status(status, body, retries_used=0)
    except SyncError as exc:
        said = str(exc)
    assert f"HTTP {status}: " in said or status == 200
