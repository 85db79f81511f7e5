"""`syncjob check`: a preflight of the whole setup, one line per item, writing nothing.

Each item is looked at the way a pass would meet it, without its effects: AlertAgent is
fetched from (one attempt, nothing kept), the config folder is written to and cleaned
(a temporary file), the target's reload endpoint is looked at with a GET (it takes POST:
a 405 says it is there) and never reloaded. A failing item names the setting to fix and
carries the exit code a pass would end with.
"""

import os
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TextIO
from urllib.parse import urlsplit, urlunsplit

import urllib3

from syncjob import checker, redact, transport
from syncjob.errors import (
    ContentRefused,
    CredentialsRefused,
    ExitCode,
    SourceUnavailable,
    SyncError,
    TargetRejected,
    TargetUnreachable,
)
from syncjob.settings import DEFAULT_CHECKERS, Settings
from syncjob.target import Target, sample_value

VERSION_TIMEOUT = 10.0


@dataclass(frozen=True)
class Item:
    name: str
    verdict: str  # ok, warn (a pass runs, with less), skip (not configured), FAIL
    detail: str
    code: int = ExitCode.OK  # what a pass would end with, for a FAIL

    @property
    def line(self) -> str:
        return f"{self.verdict:<4}  {self.name:<11}  {self.detail}"


def ok(name: str, detail: str) -> Item:
    return Item(name, "ok", detail)


def fail(name: str, detail: str, code: int, fix: str | None) -> Item:
    return Item(name, "FAIL", f"{detail} (fix {fix})" if fix else detail, code)


def run_checks(settings: Settings, out: TextIO | None = None) -> int:
    """Print every item's line; 0 when none fails, else the first failure's code."""
    failed: list[Item] = []
    secrets = redact.secrets(settings)  # a peer's words may echo our token: masked
    for item in items(settings):
        print(redact.scrub(item.line, secrets), file=out, flush=True)
        if item.verdict == "FAIL":
            failed.append(item)
    if failed:
        names = ", ".join(i.name for i in failed)
        print(f"{len(failed)} item(s) failed: {names}", file=out)
        return failed[0].code
    print("all items hold: a pass can run", file=out)
    return ExitCode.OK


def items(settings: Settings) -> Iterator[Item]:
    yield source(settings)
    yield from folders(settings)
    yield check_command(settings)
    yield from target(settings)
    yield pushgateway(settings)


def _shown(url: str) -> str:
    """A URL fit for a line on a terminal: without its userinfo (credentials)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=host))


# --- AlertAgent ---------------------------------------------------------------------


def source(settings: Settings) -> Item:
    """A real fetch, one attempt (a pass retries), unconditional, kept in memory only."""
    from syncjob.diff import Held
    from syncjob.source import Source

    fetcher = Source(replace(settings, max_retries=0))
    held = Held(settings.config_path)
    url = _shown(fetcher.url)
    try:
        fetched = fetcher.fetch(None, held)
    except CredentialsRefused as exc:
        return fail("source", str(exc), exc.exit_code,
                    "ALERTAGENT_TOKEN_FILE or ALERTAGENT_BASIC_AUTH_FILE")  # fmt: skip
    except SourceUnavailable as exc:
        said = str(exc)  # a 404 says already which settings to check
        fix = (
            None if "(check " in said else "ALERTAGENT_ENDPOINT, ALERTAGENT_API_PATH or CLUSTER_ID"
        )
        return fail("source", said, exc.exit_code, fix)
    except ContentRefused as exc:
        return fail("source", f"GET {url}: {exc}", exc.exit_code, "the config at the source")
    except SyncError as exc:
        return fail("source", str(exc), exc.exit_code, None)
    assert fetched is not None  # unconditional: never a 304
    version = f", version {fetched.version}" if fetched.version else ""
    return ok("source", f"GET {url}: {held.size} bytes, sha256 {held.sha256[:12]}{version}")


# --- the folders --------------------------------------------------------------------


def folders(settings: Settings) -> Iterator[Item]:
    """The config's folder (and the state's, if elsewhere): there, and writable."""
    config_folder = settings.config_path.parent
    yield _writable("folder", config_folder, "CONFIG_PATH")
    if settings.state_path.parent != config_folder:
        yield _writable("state", settings.state_path.parent, "STATE_PATH")


def _writable(name: str, folder: Path, setting: str) -> Item:
    if not folder.is_dir():
        return fail(name, f"{folder} does not exist: create it", ExitCode.CANT_WRITE, setting)
    try:  # the only way to know, as root on a read-only or full disk: try
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".syncjob-check-")
        os.close(fd)
        Path(probe).unlink()
    except OSError as exc:
        return fail(name, f"cannot write in {folder}: {exc.strerror}", ExitCode.CANT_WRITE,
                    f"{setting}, or the folder's mount")  # fmt: skip
    return ok(name, f"{folder} is there and writable")


# --- the checker --------------------------------------------------------------------


def check_command(settings: Settings) -> Item:
    template = checker.command(settings)
    if template is None:
        if settings.check_cmd == "":
            return Item("checker", "skip", "CHECK_COMMAND is empty: configs are not checked")
        return Item("checker", "warn", f"none: {checker.why_none(settings)}")
    program = shlex.split(template)[0]
    found = shutil.which(program)
    if found is None:
        return fail("checker", f"{program} is not on PATH", ExitCode.USAGE, "CHECK_COMMAND")
    default = settings.check_cmd is None and template == DEFAULT_CHECKERS.get(settings.config_type)
    how = "" if not default else " (the default; CHECK_COMMAND to change it)"
    return ok("checker", f"{template}{how}: {found}, {_version(found)}")


def _version(program: str) -> str:
    """The first line `program --version` says (kingpin tools say it on stderr).

    Its output is read as a checker's is: capped, as bytes, until it exits (a program
    that floods or speaks binary held it all, or raised UnicodeDecodeError)."""
    import time

    from syncjob.reload_command import _collect

    try:
        proc = subprocess.Popen(
            [program, "--version"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    except OSError as exc:
        return f"version unknown ({exc})"
    output, finished = _collect(proc, time.monotonic() + VERSION_TIMEOUT)
    if not finished:
        return f"version unknown (no answer within {VERSION_TIMEOUT:g}s)"
    text = output.decode("utf-8", "replace")
    lines = [line.strip()[:200] for line in text.splitlines() if line.strip()]
    # Printable only: a terminal's escape sequences are no version.
    return "".join(c if c.isprintable() else "?" for c in lines[0]) if lines else "version unknown"


# --- the target ---------------------------------------------------------------------


def target(settings: Settings) -> Iterator[Item]:
    if not (settings.reload_url or settings.reload_cmd):
        yield Item("target", "skip", "RELOAD_URL and RELOAD_COMMAND are unset: a pass writes "
                   "the file and reloads nothing")  # fmt: skip
        return
    pool = transport.pool(settings.http_timeout, settings.tls("target_"))
    get = _getter(pool, settings.http_timeout)
    hint = "RELOAD_URL" if settings.reload_url else "TARGET_METRICS_URL"
    ready_url = settings.target_url("/-/ready")
    metrics_url = settings.target_url("/metrics")
    assert ready_url is not None  # a reload needs a URL: RELOAD_URL or TARGET_METRICS_URL
    assert metrics_url is not None
    try:
        status, _ = get(ready_url)
    except TargetUnreachable as exc:
        yield fail("ready", str(exc), exc.exit_code, hint)
    else:
        if status == 200:
            yield ok("ready", f"GET {_shown(ready_url)}: 200")
        else:
            yield fail("ready", f"GET {_shown(ready_url)}: HTTP {status}",
                       ExitCode.TRY_LATER, hint)  # fmt: skip
    yield _reload(settings, get)
    fix = "TARGET_METRICS_URL" if settings.metrics_url else hint
    yield _metrics(metrics_url, Target(settings, pool), settings.http_timeout, fix)


Get = Callable[[str], tuple[int, bytes]]


def _getter(pool: urllib3.PoolManager, budget: float) -> Get:
    """A GET of the target as a pass makes one: one deadline, the body read up to a cap."""

    def get(url: str) -> tuple[int, bytes]:
        exchange = transport.Exchange(
            pool, budget, failed=f"GET {_shown(url)}", peer=f"the target at {_shown(url)}",
            unavailable=TargetUnreachable, refused=TargetUnreachable,
        )  # fmt: skip
        response = exchange.send("GET", url)
        return response.status, exchange.words(response)

    return get


def _reload(settings: Settings, get: Get) -> Item:
    """There, without reloading: RELOAD_COMMAND's program on PATH, or RELOAD_URL answering
    a GET with 405 (it takes POST); and Prometheus's lifecycle API turned on."""
    if settings.reload_cmd:
        program = shlex.split(settings.reload_cmd)[0]
        if found := shutil.which(program):
            return ok("reload", f"{settings.reload_cmd}: {found} (not run)")
        return fail("reload", f"{program} is not on PATH", ExitCode.USAGE, "RELOAD_COMMAND")
    url = settings.reload_url
    assert url is not None
    shown = _shown(url)
    try:
        status, _ = get(url)
    except TargetUnreachable as exc:
        return fail("reload", str(exc), exc.exit_code, "RELOAD_URL")
    if status == 404:
        return fail("reload", f"GET {shown}: HTTP 404, no such endpoint", ExitCode.USAGE,
                    "RELOAD_URL")  # fmt: skip
    lifecycle = _lifecycle_off(settings, get)
    if lifecycle:
        fix = "the target's flags (--web.enable-lifecycle), or set RELOAD_COMMAND"
        return fail("reload", lifecycle, ExitCode.REJECTED, fix)
    said = "405, it takes POST" if status == 405 else f"{status}"
    return ok("reload", f"GET {shown}: {said} (not reloaded)")


def _lifecycle_off(settings: Settings, get: Get) -> str | None:
    """Prometheus without --web.enable-lifecycle answers a reload with 403: its flags say so
    (/api/v1/status/flags). Alertmanager always takes reloads."""
    flags_url = settings.target_url("/api/v1/status/flags")
    if flags_url is None or not settings.config_type.startswith("prometheus"):
        return None
    try:
        status, body = get(flags_url)
    except TargetUnreachable:
        return None
    import json

    try:
        flags = json.loads(body)["data"] if status == 200 else {}
    except (ValueError, KeyError, TypeError, RecursionError):  # [[[[...]]]] from a peer
        return None
    if isinstance(flags, dict) and flags.get("web.enable-lifecycle") == "false":
        return ("Prometheus runs without --web.enable-lifecycle: it would answer the reload "
                "with 403")  # fmt: skip
    return None


def _metrics(url: str, target: Target, budget: float, fix: str) -> Item:
    """Where a pass verifies the reload: the *_config_last_reload_successful series, read
    as the pass reads it (capped, only the reload lines kept)."""
    shown = _shown(url)
    try:
        found, _ = target.reload_metrics(budget)
        value = None if found is None else sample_value(found)
    except (TargetUnreachable, TargetRejected) as exc:
        return fail("metrics", str(exc), exc.exit_code, fix)
    if found is None:
        return Item("metrics", "warn", f"GET {shown}: no *_config_last_reload_successful "
                    "series: reloads are accepted by status code alone")  # fmt: skip
    series = f"{found[1]}_config_last_reload_successful {found[2]}"
    if value != 1:
        return Item("metrics", "warn", f"GET {shown}: {series}: the target's "
                    "last reload failed (its log says why)")  # fmt: skip
    return ok("metrics", f"GET {shown}: {series}")


# --- the Pushgateway ----------------------------------------------------------------


def pushgateway(settings: Settings) -> Item:
    if not settings.pushgateway_url:
        return Item("pushgateway", "skip", "PUSHGATEWAY_URL is unset: nothing is pushed")
    pool = transport.pool(settings.pushgateway_timeout, settings.tls("pushgateway_"))
    url = f"{settings.pushgateway_url}/-/ready"
    shown = _shown(url)
    exchange = transport.Exchange(
        pool, settings.pushgateway_timeout, failed=f"GET {shown}",
        peer=f"the Pushgateway at {shown}", unavailable=SourceUnavailable,
        refused=SourceUnavailable,
    )  # fmt: skip
    try:
        response = exchange.send("GET", url)
        exchange.discard(response)
        status = response.status
    except SourceUnavailable as exc:
        return fail("pushgateway", str(exc), exc.exit_code, "PUSHGATEWAY_URL")
    if status != 200:
        return fail("pushgateway", f"GET {shown}: HTTP {status}", ExitCode.UNAVAILABLE,
                    "PUSHGATEWAY_URL")  # fmt: skip
    return ok("pushgateway", f"GET {shown}: 200")
