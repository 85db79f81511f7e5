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
    """A config as the source served it."""

    content: bytes
    version: str | None  # the source's version tag, if it gave one
    etag: str | None  # what to send as If-None-Match next time
    dialect: str  # "envelope" or "raw"

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


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


def parse(headers: Mapping[str, str], body: bytes) -> Fetched:
    """A 200 answer, in either dialect; raises ContentRefused when it is not a config."""
    content_type = headers.get("Content-Type", "").split(";")[0].strip().lower()
    etag = headers.get("ETag") or headers.get("X-Config-Hash")
    if etag and not _SAFE_TAG.fullmatch(etag):
        etag = None  # echoed back as a header: no control characters, nothing huge
    if content_type.endswith("json"):
        return _envelope(body, etag)
    if content_type == "text/html" or body.lstrip()[:15].lower().startswith(
        (b"<!doctype", b"<html")
    ):
        raise ContentRefused("source answered an HTML page, not a config")
    _verify(headers.get("X-Config-Hash"), body)
    return Fetched(content=body, version=None, etag=etag, dialect="raw")


def _envelope(body: bytes, etag: str | None) -> Fetched:
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
    _verify(tag, content)
    version = data.get("version") or (tag if tag and not _SHA256_HEX.fullmatch(tag) else None)
    return Fetched(content=content, version=version, etag=etag, dialect="envelope")


def _succeeded(obj: dict[str, Any]) -> bool:
    if "status" in obj:
        return bool(obj["status"] == "success")
    code = obj.get("code")
    return not isinstance(code, int) or 200 <= code < 300


def _verify(declared: str | None, content: bytes) -> None:
    """A 64-hex hash is a checksum to check; anything else is an opaque tag."""
    if declared and _SHA256_HEX.fullmatch(declared.strip('"')):
        actual = hashlib.sha256(content).hexdigest()
        if declared.strip('"').lower() != actual:
            raise ContentRefused(
                f"hash mismatch: source declared {declared.strip(chr(34))[:12]}..., "
                f"body is {actual[:12]}..."
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
    error = next(iter(_validator().iter_errors(obj)), None)
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "top level"
    return f"{where}: {error.message}"[:200]
