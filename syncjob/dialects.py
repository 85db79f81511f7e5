"""What AlertAgent answered, read without I/O: both dialects, told apart by the answer.

Dialect A (design document): a JSON envelope {status|code, message, data: {config,
config_hash, version}}. Dialect B (newer server): the config itself as the body, its
SHA-256 in `X-Config-Hash`. See CONTRACT.md in the project's shared docs.
"""

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from syncjob.errors import ContentRefused, CredentialsRefused, SourceUnavailable

_SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")
_SAFE_TAG = re.compile(r"[\x20-\x7e]{1,512}")


@dataclass(frozen=True)
class Fetched:
    """A config as the source served it. Its bytes are not here: they wait in a spool
    beside the target (files.Spool), so a 64 MiB config is never held in memory."""

    sha256: str
    version: str | None  # the source's version tag, if it gave one
    etag: str | None  # what to send as If-None-Match next time
    dialect: str  # "envelope" or "raw"


def server_message(body: bytes, limit: int = 200) -> str:
    """The server's own words: `message: error` of a JSON error, else the first line."""
    try:
        obj = json.loads(body)
    except (ValueError, RecursionError):
        obj = None
    if isinstance(obj, dict):
        parts = [" ".join(str(obj[k]).split()) for k in ("message", "error") if obj.get(k)]
        if parts:
            return ": ".join(dict.fromkeys(parts))[:limit]
    text = body.decode("utf-8", "replace").strip()
    return (text.splitlines()[0] if text else "(empty body)")[:limit]


def check_status(status: int, body: bytes, retries_used: int) -> None:
    """Raise the error a non-200 answer means (after urllib3's retries are spent)."""
    if status == 200:
        return
    said = f"HTTP {status}: {server_message(body)}"
    if status in (401, 403):
        raise CredentialsRefused(f"source refused our credentials ({said})")
    if status == 429 or status >= 500:
        raise SourceUnavailable(f"source unavailable after {retries_used} retries ({said})")
    if status == 404:
        raise SourceUnavailable(f"source has no such config ({said})")
    if 400 <= status < 500:
        raise SourceUnavailable(f"source refused the request ({said})")
    raise ContentRefused(f"unexpected answer from the source ({said})")


def is_envelope(headers: Mapping[str, str]) -> bool:
    """Dialect A answers JSON; dialect B answers the config itself."""
    return _content_type(headers).endswith("json")


def etag_of(headers: Mapping[str, str]) -> str | None:
    """The ETag if the server gave one, else the raw X-Config-Hash (the newer server
    compares If-None-Match with it unquoted). Echoed back as a header, so it must be
    plain printable text of a sane length."""
    etag = headers.get("ETag") or headers.get("X-Config-Hash")
    return etag if etag and _SAFE_TAG.fullmatch(etag) else None


def check_raw(headers: Mapping[str, str], head: bytes, sha256: str) -> Fetched:
    """A raw answer, given its first bytes and the SHA-256 of all of them."""
    if _content_type(headers) == "text/html" or head.lstrip()[:15].lower().startswith(
        (b"<!doctype", b"<html")
    ):
        raise ContentRefused("source answered an HTML page, not a config")
    _verify(headers.get("X-Config-Hash"), sha256)
    return Fetched(sha256, version=None, etag=etag_of(headers), dialect="raw")


def parse(headers: Mapping[str, str], body: bytes) -> tuple[Fetched, bytes]:
    """A 200 answer held in memory, in either dialect: what it says and the config's bytes."""
    if is_envelope(headers):
        return _envelope(body, etag_of(headers))
    return check_raw(headers, body[:64], hashlib.sha256(body).hexdigest()), body


def _content_type(headers: Mapping[str, str]) -> str:
    return headers.get("Content-Type", "").split(";")[0].strip().lower()


def _envelope(body: bytes, etag: str | None) -> tuple[Fetched, bytes]:
    try:
        obj: Any = json.loads(body)
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly nested JSON
        raise ContentRefused(f"source answered invalid JSON: {type(exc).__name__}") from None
    if isinstance(obj, dict) and not _succeeded(obj):
        raise SourceUnavailable(f"source reported an error: {server_message(body)}")
    problem = _schema_problem(obj)
    if problem:
        raise ContentRefused(f"source answered an envelope of the wrong shape: {problem}")
    data = obj["data"]
    content = data["config"].encode("utf-8", "surrogatepass")
    tag = data.get("config_hash")
    sha256 = hashlib.sha256(content).hexdigest()
    _verify(tag, sha256)
    version = data.get("version") or (tag if tag and not _SHA256_HEX.fullmatch(tag) else None)
    return Fetched(sha256, version=version, etag=etag, dialect="envelope"), content


def _succeeded(obj: dict[str, Any]) -> bool:
    if "status" in obj:
        return bool(obj["status"] == "success")
    code = obj.get("code")
    return not isinstance(code, int) or 200 <= code < 300


def _verify(declared: str | None, actual: str) -> None:
    """A 64-hex hash is a checksum to check; anything else is an opaque tag."""
    tag = (declared or "").strip('"').lower()
    if _SHA256_HEX.fullmatch(tag) and tag != actual:
        raise ContentRefused(
            f"hash mismatch: source declared {tag[:12]}..., body is {actual[:12]}..."
        )


@cache
def _validator() -> Any:
    # jsonschema costs ~65 ms to import: only envelope answers pay for it.
    import jsonschema

    schema = json.loads(
        resources.files("syncjob").joinpath("schemas/envelope.schema.json").read_text()
    )
    return jsonschema.Draft202012Validator(schema)


def _schema_problem(obj: Any) -> str | None:
    try:
        error = next(iter(_validator().iter_errors(obj)), None)
    except RecursionError:  # jsonschema recurses (and repr()s) into what it reports
        return "nested too deeply"
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "top level"
    return f"{where}: {error.message}"[:200]
