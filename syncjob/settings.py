"""Settings: the original's environment variables, each also a flag; a flag wins.

Everything a pass needs is resolved and checked here, once, so a mistake is one
line naming both the variable and the flag (exit 2) before anything is touched.
"""

import os
import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from syncjob.durations import format_duration, parse_duration
from syncjob.errors import UsageError

CONFIG_TYPES = ("prometheus", "alertmanager", "prometheus-rules", "vmalert")

# The file written when CONFIG_PATH names a directory (the seed's rule syncer
# points at /etc/prometheus/rules/).
FILE_IN_DIRECTORY = "{config_type}.yml"


def _url(value: str) -> str:
    parts = urlsplit(value)
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number in range
    except ValueError:
        raise ValueError(f"{value!r} has an invalid port") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r} is not an http:// or https:// URL")
    return value.rstrip("/")


def _choice(value: str) -> str:
    if value not in CONFIG_TYPES:
        raise ValueError(f"{value!r} is not one of: {', '.join(CONFIG_TYPES)}")
    return value


def _duration(*, above: float | None = None, upto: float) -> Callable[[str], float]:
    """A Go duration, not negative (or more than `above`), and at most `upto` seconds."""

    def parse(value: str) -> float:
        seconds = parse_duration(value)
        if above is not None and seconds <= above:
            raise ValueError(f"{value!r} must be more than zero")
        if seconds < 0:
            raise ValueError(f"{value!r} must not be negative")
        if seconds > upto:
            raise ValueError(f"{value!r} is more than the most allowed, {format_duration(upto)}")
        return seconds

    return parse


def _int_between(low: int, high: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        if not re.fullmatch(r"\s*-?\d+\s*", value):
            raise ValueError(f"{value!r} is not a whole number")
        number = int(value)
        if not low <= number <= high:
            raise ValueError(f"{value!r} is not between {low} and {high}")
        return number

    return parse


_SIZE_UNITS = {"": 1, "b": 1, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30,
               "kb": 1000, "mb": 1000**2, "gb": 1000**3}  # fmt: skip


def _size(value: str) -> int:
    match = re.fullmatch(r"\s*(\d+)\s*([a-zA-Z]*)\s*", value)
    if match is None or match[2].lower() not in _SIZE_UNITS or int(match[1]) == 0:
        raise ValueError(f"{value!r} is not a size (e.g. 16MiB, 65536)")
    return int(match[1]) * _SIZE_UNITS[match[2].lower()]


def _api_path(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError(f"{value!r} must start with /")
    return value


def _text(value: str) -> str:
    if not value.strip():
        raise ValueError("it is empty")
    return value


def parse_bool(value: str) -> bool:
    if value.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if value.strip().lower() in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"{value!r} is not true or false")


def _level(value: str) -> str:
    if value.strip().lower() not in ("debug", "info", "warning", "error"):
        raise ValueError(f"{value!r} is not one of: debug, info, warning, error")
    return value.strip().upper()


LOG_FORMATS = ("json", "logfmt", "text")


def _log_format(value: str) -> str:
    if value.strip().lower() not in LOG_FORMATS:
        raise ValueError(f"{value!r} is not one of: {', '.join(LOG_FORMATS)}")
    return value.strip().lower()


def _argv(value: str) -> str:
    """A command line, split as a shell would (quotes), though no shell runs it."""
    try:
        if shlex.split(value):
            return value.strip()
    except ValueError as exc:  # e.g. "No closing quotation"
        raise ValueError(f"{value!r} cannot be split into words: {exc}") from None
    raise ValueError("it is empty")


def _command(value: str) -> str:
    """A check command; empty turns checking off, else it must name the file."""
    if value.strip() and "{path}" not in value:
        raise ValueError(f"{value!r} has no {{path}} to stand for the file to check")
    return value.strip()


@dataclass(frozen=True)
class Setting:
    """How one field of Settings is given: an environment variable and a flag."""

    field: str
    env: str
    flag: str
    default: str | None
    metavar: str
    parse: Callable[[str], Any]
    help: str
    keep_empty: bool = False  # an empty variable is a value, not "unset"
    panel: str = ""  # the --help section it is listed in

    @property
    def names(self) -> str:
        return f"{self.env} / {self.flag}"


def _setting(
    env: str,
    flag: str,
    metavar: str,
    parse: Callable[[str], Any],
    help: str,
    default: str | None = None,
    *,
    keep_empty: bool = False,
    panel: str,
) -> Any:
    """A Settings field that is also an environment variable and a flag (see SETTINGS)."""
    row = Setting("", env, flag, default, metavar, parse, help, keep_empty, panel)
    return field(metadata={"setting": row})


def _tls(env: str, flag: str, part: str, who: str) -> Any:
    """One of the four TLS options each peer has: AlertAgent, the target, the Pushgateway."""
    prefix = f"{env}_" if env else "ALERTAGENT_"
    rows = {
        "ca_file": ("CA_FILE", "ca-file", "PATH", _text,
                    f"CA certificates trusted for {who}, besides the system's"),
        "client_cert": ("CLIENT_CERT", "client-cert", "PATH", _text,
                        f"client certificate for mutual TLS with {who}"),
        "client_key": ("CLIENT_KEY", "client-key", "PATH", _text,
                       f"the client certificate's key, for {who}"),
        "insecure_skip_verify": ("INSECURE_SKIP_VERIFY", "insecure-skip-verify", "BOOL",
                                 parse_bool,
                                 f"do not verify {who}'s certificate (warned at every pass)"),
    }  # fmt: skip
    name, flag_name, metavar, parse, text = rows[part]
    default = "false" if parse is parse_bool else None
    return _setting(
        f"{prefix}{name}", f"--{flag}{flag_name}", metavar, parse, text, default, panel="TLS"
    )


# Bounds on durations: far beyond any sensible value, and small enough that no sum or
# doubling of them overflows a float, a sleep or a socket timeout.
DAY = 86_400.0
_HOUR = 3_600.0


# fmt: off
@dataclass(frozen=True)
class Settings:
    """Everything a pass needs, resolved and checked once. Each field is one setting: its
    environment variable, flag, default and help are declared here and nowhere else."""

    endpoint: str = _setting("ALERTAGENT_ENDPOINT", "--endpoint", "URL", _url,
                             "AlertAgent base URL, e.g. http://alertagent:8080", panel="Source")
    cluster_id: str = _setting("CLUSTER_ID", "--cluster-id", "ID", _text, "cluster identifier",
        panel="Source")
    config_type: str = _setting("CONFIG_TYPE", "--config-type", "TYPE", _choice,
                                "one of: " + ", ".join(CONFIG_TYPES), panel="Source")
    config_path: Path = _setting("CONFIG_PATH", "--config-path", "PATH", _text,
                                 "config file to keep in step (a directory gets <config-type>.yml)",
                                 panel="Target")
    reload_url: str | None = _setting(
        "RELOAD_URL", "--reload-url", "URL", _url,
        "POSTed after a write, e.g. http://localhost:9090/-/reload; unset: write only",
        panel="Target")
    reload_cmd: str | None = _setting(
        "RELOAD_COMMAND", "--reload-cmd", "COMMAND", _argv,
        "run instead of POSTing RELOAD_URL, e.g. 'systemctl reload prometheus' or "
        "'kill -HUP 1234' (no shell); verified on TARGET_METRICS_URL", panel="Target")
    sync_interval: float = _setting("SYNC_INTERVAL", "--sync-interval", "DURATION",
                                    _duration(above=0, upto=DAY), "time between passes", "30s",
                                        panel="Loop")
    http_timeout: float = _setting("HTTP_TIMEOUT", "--http-timeout", "DURATION",
                                   _duration(above=0, upto=_HOUR),
                                   "connect and read timeout of each request", "30s",
                                   panel="Source")
    http_port: int = _setting("HTTP_PORT", "--http-port", "PORT", _int_between(0, 65535),
                              "port of the --loop HTTP server", "8080", panel="Loop")
    http_address: str = _setting(
        "HTTP_ADDRESS", "--http-address", "ADDRESS", _text,
        "address the --loop HTTP server binds (0.0.0.0: reachable by the kubelet's probes)",
        "0.0.0.0", panel="Loop")
    max_retries: int = _setting(
        "MAX_RETRIES", "--max-retries", "N", _int_between(0, 100),
        "retries after the first attempt (connection errors, timeouts, 429, 5xx)", "3",
        panel="Source")
    retry_backoff: float = _setting("RETRY_BACKOFF", "--retry-backoff", "DURATION",
                                    _duration(upto=_HOUR),
                                    "first retry delay, doubled each retry", "5s", panel="Source")
    app_env: str = _setting(
        "APP_ENV", "--app-env", "ENV", _text,
        "production logs JSON lines; anything else logs for a person at a terminal",
        "production", panel="Logging")
    api_path: str = _setting(
        "ALERTAGENT_API_PATH", "--api-path", "PATH", _api_path,
        "fetch path (the newer AlertAgent serves /api/v1/config/sync)", "/api/v1/configs",
        panel="Source")
    state_path: Path = _setting(
        "STATE_PATH", "--state-path", "PATH", _text,
        "state file (default: .<config file>.syncjob.json beside the config)", panel="Target")
    max_body_size: int = _setting("MAX_BODY_SIZE", "--max-body-size", "SIZE", _size,
                                  "largest response accepted (bytes, or with KiB/MiB/GiB)",
                                  "16MiB", panel="Source")
    # None: the default checker if installed; "": no check
    check_cmd: str | None = _setting(
        "CHECK_COMMAND", "--check-cmd", "COMMAND", _command,
        "checks the staged file before the swap, {path} standing for it; default: "
        "promtool/amtool when on PATH; empty: no check", keep_empty=True, panel="Checking")
    check_timeout: float = _setting(
        "CHECK_TIMEOUT", "--check-timeout", "DURATION", _duration(above=0, upto=_HOUR),
        "how long the checker may take; out of time it gives no verdict (exit 75)", "5m",
        panel="Checking")
    allow_empty: bool = _setting(
        "ALLOW_EMPTY", "--allow-empty", "BOOL", parse_bool,
        "accept a config that removes every rule group / receiver the current one has", "false",
        panel="Checking")
    ready_timeout: float = _setting(
        "READY_TIMEOUT", "--ready-timeout", "DURATION", _duration(upto=_HOUR),
        "how long to wait for the target's /-/ready before reloading", "30s", panel="Target")
    metrics_url: str | None = _setting(
        "TARGET_METRICS_URL", "--metrics-url", "URL", _url,
        "where the reload is verified (default: /metrics beside RELOAD_URL)", panel="Target")
    pushgateway_url: str | None = _setting(
        "PUSHGATEWAY_URL", "--pushgateway-url", "URL", _url,
        "push metrics here after every pass, e.g. http://pushgateway:9091", panel="Pushgateway")
    pushgateway_job: str = _setting("PUSHGATEWAY_JOB", "--pushgateway-job", "NAME", _text,
                                    "the `job` of the pushed group", "syncjob", panel="Pushgateway")
    pushgateway_timeout: float = _setting(
        "PUSHGATEWAY_TIMEOUT", "--pushgateway-timeout", "DURATION", _duration(above=0, upto=_HOUR),
        "bound on a push; a slow gateway never fails a pass", "10s", panel="Pushgateway")
    pushgateway_token_file: str | None = _setting(
        "PUSHGATEWAY_TOKEN_FILE", "--pushgateway-token-file", "PATH", _text,
        "bearer token for the Pushgateway, read from this file", panel="Pushgateway")
    pushgateway_basic_auth_file: str | None = _setting(
        "PUSHGATEWAY_BASIC_AUTH_FILE", "--pushgateway-basic-auth-file", "PATH", _text,
        "`user:password` for the Pushgateway, read from this file", panel="Pushgateway")
    report_status: bool = _setting(
        "REPORT_STATUS", "--report-status", "BOOL", parse_bool,
        "POST each pass's outcome to AlertAgent's /api/v1/config/sync/status", "false",
        panel="Source")
    token_file: str | None = _setting(
        "ALERTAGENT_TOKEN_FILE", "--token-file", "PATH", _text,
        "bearer token for AlertAgent, read from this file at every pass", panel="Source")
    basic_auth_file: str | None = _setting(
        "ALERTAGENT_BASIC_AUTH_FILE", "--basic-auth-file", "PATH", _text,
        "`user:password` for AlertAgent, read from this file at every pass", panel="Source")
    splay: float = _setting(
        "SPLAY", "--splay", "DURATION", _duration(upto=DAY),
        "one pass: first wait a random time up to this, so a fleet that cron starts at the "
        "same minute does not reach AlertAgent all at once", "0s", panel="Loop")
    log_level: str = _setting("LOG_LEVEL", "--log-level", "LEVEL", _level,
                              "debug, info, warning or error", "info", panel="Logging")
    log_format: str | None = _setting(
        "LOG_FORMAT", "--log-format", "FORMAT", _log_format,
        "json, logfmt or text; default: json when APP_ENV is production or stderr is not a "
        "terminal, else text", panel="Logging")
    ca_file: str | None = _tls("", "", "ca_file", "AlertAgent")
    client_cert: str | None = _tls("", "", "client_cert", "AlertAgent")
    client_key: str | None = _tls("", "", "client_key", "AlertAgent")
    insecure_skip_verify: bool = _tls("", "", "insecure_skip_verify", "AlertAgent")
    target_ca_file: str | None = _tls("TARGET", "target-", "ca_file", "the target")
    target_client_cert: str | None = _tls("TARGET", "target-", "client_cert", "the target")
    target_client_key: str | None = _tls("TARGET", "target-", "client_key", "the target")
    target_insecure_skip_verify: bool = _tls("TARGET", "target-", "insecure_skip_verify",
                                             "the target")
    pushgateway_ca_file: str | None = _tls("PUSHGATEWAY", "pushgateway-", "ca_file",
                                           "the Pushgateway")
    pushgateway_client_cert: str | None = _tls("PUSHGATEWAY", "pushgateway-", "client_cert",
                                               "the Pushgateway")
    pushgateway_client_key: str | None = _tls("PUSHGATEWAY", "pushgateway-", "client_key",
                                              "the Pushgateway")
    pushgateway_insecure_skip_verify: bool = _tls("PUSHGATEWAY", "pushgateway-",
                                                  "insecure_skip_verify", "the Pushgateway")
    # ALERTAGENT_TOKEN: accepted from the environment only, never printed.
    token: str | None = field(default=None, repr=False)
# fmt: on

    def tls(self, prefix: str = "") -> "TLS":
        """TLS options for AlertAgent (""), the target ("target_") or the Pushgateway."""
        return TLS(
            getattr(self, f"{prefix}ca_file"), getattr(self, f"{prefix}client_cert"),
            getattr(self, f"{prefix}client_key"), getattr(self, f"{prefix}insecure_skip_verify"),
        )  # fmt: skip

    # Cached: a --loop asks for these thousands of times, and every new Path interns
    # its name; the churn of the interpreter's interned strings shows up as RSS.
    @cached_property
    def lock_path(self) -> Path:
        return self._beside("syncjob.lock")

    @cached_property
    def last_good_path(self) -> Path:
        """The config the target last accepted, kept to roll back to."""
        return self._beside("syncjob.last-good")

    def _beside(self, suffix: str) -> Path:
        return self.config_path.with_name(f".{self.config_path.name}.{suffix}")

    @property
    def json_logs(self) -> bool:
        return self.app_env == "production"

    def target_url(self, path: str) -> str | None:
        """`/-/ready` or `/metrics` of the target, beside RELOAD_URL's `/-/reload` (or,
        reloaded by RELOAD_COMMAND alone, beside TARGET_METRICS_URL's `/metrics`)."""
        if path == "/metrics" and self.metrics_url:
            return self.metrics_url
        known, suffix = (self.reload_url, "/-/reload") if self.reload_url else (
            self.metrics_url, "/metrics")  # fmt: skip
        if known is None:
            return None
        base = known.removesuffix(suffix)
        if base == known:  # not the usual path: the target's root
            scheme, _, rest = known.partition("://")
            base = f"{scheme}://{rest.split('/', 1)[0]}"
        return base + path


# Every setting, in the order of the fields above (--help lists them so).
SETTINGS = tuple(
    replace(f.metadata["setting"], field=f.name) for f in fields(Settings) if f.metadata
)
BY_FIELD = {s.field: s for s in SETTINGS}
# Read from the environment only, never a flag: a token on a command line is in `ps`.
TOKEN_ENV = "ALERTAGENT_TOKEN"  # noqa: S105 - a variable's name, not a secret
# Every variable syncjob reads.
ENVIRONMENT = (*(s.env for s in SETTINGS), TOKEN_ENV)

# The checker that ships with each target, used when CHECK_COMMAND is unset and the
# tool is on PATH. vmalert's MetricsQL is not promtool's PromQL: no default there.
DEFAULT_CHECKERS = {
    "prometheus": "promtool check config {path}",
    "prometheus-rules": "promtool check rules {path}",
    "alertmanager": "amtool check-config {path}",
}


# What a pass cannot run without; `syncjob status` only needs to find the state file.
FOR_A_PASS = ("endpoint", "cluster_id", "config_type", "config_path")


def resolve(
    flags: Mapping[str, str | None],
    env: Mapping[str, str] = os.environ,
    required: tuple[str, ...] = FOR_A_PASS,
) -> Settings:
    """Settings from flags (by field name), then the environment, then defaults."""
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        raw = flags.get(setting.field)
        if raw is None:
            raw = env.get(setting.env)
            if not raw and not (setting.keep_empty and raw == ""):
                raw = setting.default
        if raw is None:
            values[setting.field] = None
            continue
        try:
            raw.encode()  # an environment value that is not UTF-8 holds lone surrogates
        except UnicodeEncodeError:
            raise UsageError(f"invalid {setting.names}: not valid UTF-8") from None
        try:
            values[setting.field] = setting.parse(raw)
        except ValueError as exc:
            raise UsageError(f"invalid {setting.names}: {exc}") from None
    for name in required:
        if values[name] is None:
            raise UsageError(f"missing setting: set {BY_FIELD[name].names}")
    if values["reload_cmd"] and not (values["reload_url"] or values["metrics_url"]):
        # A command says nothing about whether the reload took: the metrics do.
        raise UsageError(
            f"{BY_FIELD['reload_cmd'].names} needs {BY_FIELD['metrics_url'].names} (or "
            f"{BY_FIELD['reload_url'].names}) to verify the reload on the target's metrics"
        )
    # Absolute, so a relative CONFIG_PATH means the same from the checker's folder (it runs
    # in the config's); absolute(), not resolve(): a link the operator chose is kept.
    values["config_path"] = config_file(values["config_path"], values["config_type"]).absolute()
    state = values["state_path"]
    values["state_path"] = (
        Path(state).absolute()
        if state
        else values["config_path"].with_name(f".{values['config_path'].name}.syncjob.json")
    )
    return Settings(**values, token=env.get(TOKEN_ENV) or None)


@dataclass(frozen=True)
class TLS:
    ca_file: str | None
    client_cert: str | None
    client_key: str | None
    insecure: bool


def config_file(raw: str, config_type: str | None) -> Path:
    """The file to write: CONFIG_PATH itself, or a documented name inside a directory
    (one that exists, or one not created yet but named with a trailing slash)."""
    path = Path(raw)
    if path.is_dir() or raw.endswith(os.sep):
        if config_type is None:
            raise UsageError(
                f"CONFIG_PATH {path} is a directory: set {BY_FIELD['config_type'].names} too"
            )
        return path / FILE_IN_DIRECTORY.format(config_type=config_type)
    return path
