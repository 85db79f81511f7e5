"""Settings: the original's environment variables, each also a flag; a flag wins.

Everything a pass needs is resolved and checked here, once, so a mistake is one
line naming both the variable and the flag (exit 2) before anything is touched.
"""

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from syncjob.durations import parse_duration
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


def _positive_duration(value: str) -> float:
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError(f"{value!r} must be more than zero")
    return seconds


def _duration(value: str) -> float:
    seconds = parse_duration(value)
    if seconds < 0:
        raise ValueError(f"{value!r} must not be negative")
    return seconds


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


def _command(value: str) -> str:
    """A check command; empty turns checking off, else it must name the file."""
    if value.strip() and "{path}" not in value:
        raise ValueError(f"{value!r} has no {{path}} to stand for the file to check")
    return value.strip()


@dataclass(frozen=True)
class Setting:
    field: str
    env: str
    flag: str
    default: str | None
    metavar: str
    parse: Callable[[str], Any]
    help: str
    keep_empty: bool = False  # an empty variable is a value, not "unset"

    @property
    def names(self) -> str:
        return f"{self.env} / {self.flag}"


def _tls_settings(env: str, flag: str, who: str) -> tuple[Setting, ...]:
    """The same four TLS options for each peer: AlertAgent, the target, the Pushgateway."""
    field = flag.replace("-", "_")
    return (
        Setting(f"{field}ca_file", f"{env}_CA_FILE", f"--{flag}ca-file", None, "PATH", _text,
                f"CA certificates trusted for {who}, besides the system's"),
        Setting(f"{field}client_cert", f"{env}_CLIENT_CERT", f"--{flag}client-cert", None, "PATH",
                _text, f"client certificate for mutual TLS with {who}"),
        Setting(f"{field}client_key", f"{env}_CLIENT_KEY", f"--{flag}client-key", None, "PATH",
                _text, f"the client certificate's key, for {who}"),
        Setting(f"{field}insecure_skip_verify", f"{env}_INSECURE_SKIP_VERIFY",
                f"--{flag}insecure-skip-verify", "false", "BOOL", parse_bool,
                f"do not verify {who}'s certificate (warned at every pass)"),
    )  # fmt: skip


# fmt: off
SETTINGS = (
    Setting("endpoint", "ALERTAGENT_ENDPOINT", "--endpoint", None, "URL", _url,
            "AlertAgent base URL, e.g. http://alertagent:8080"),
    Setting("cluster_id", "CLUSTER_ID", "--cluster-id", None, "ID", _text, "cluster identifier"),
    Setting("config_type", "CONFIG_TYPE", "--config-type", None, "TYPE", _choice,
            "one of: " + ", ".join(CONFIG_TYPES)),
    Setting("config_path", "CONFIG_PATH", "--config-path", None, "PATH", _text,
            "config file to keep in step (a directory gets <config-type>.yml)"),
    Setting("reload_url", "RELOAD_URL", "--reload-url", None, "URL", _url,
            "POSTed after a write, e.g. http://localhost:9090/-/reload; unset: write only"),
    Setting("sync_interval", "SYNC_INTERVAL", "--sync-interval", "30s", "DURATION",
            _positive_duration, "time between passes"),
    Setting("http_timeout", "HTTP_TIMEOUT", "--http-timeout", "30s", "DURATION",
            _positive_duration, "connect and read timeout of each request"),
    Setting("http_port", "HTTP_PORT", "--http-port", "8080", "PORT", _int_between(0, 65535),
            "port of the --loop HTTP server"),
    Setting("http_address", "HTTP_ADDRESS", "--http-address", "0.0.0.0", "ADDRESS", _text,
            "address the --loop HTTP server binds (0.0.0.0: reachable by the kubelet's probes)"),
    Setting("max_retries", "MAX_RETRIES", "--max-retries", "3", "N", _int_between(0, 100),
            "retries after the first attempt (connection errors, timeouts, 429, 5xx)"),
    Setting("retry_backoff", "RETRY_BACKOFF", "--retry-backoff", "5s", "DURATION", _duration,
            "first retry delay, doubled each retry"),
    Setting("app_env", "APP_ENV", "--app-env", "production", "ENV", _text,
            "production logs JSON lines; anything else logs for a person at a terminal"),
    Setting("api_path", "ALERTAGENT_API_PATH", "--api-path", "/api/v1/configs", "PATH",
            _api_path, "fetch path (the newer AlertAgent serves /api/v1/config/sync)"),
    Setting("state_path", "STATE_PATH", "--state-path", None, "PATH", _text,
            "state file (default: .<config file>.syncjob.json beside the config)"),
    Setting("max_body_size", "MAX_BODY_SIZE", "--max-body-size", "16MiB", "SIZE", _size,
            "largest response accepted (bytes, or with KiB/MiB/GiB)"),
    Setting("check_cmd", "CHECK_COMMAND", "--check-cmd", None, "COMMAND", _command,
            "checks the staged file before the swap, {path} standing for it; default: "
            "promtool/amtool when on PATH; empty: no check", keep_empty=True),
    Setting("allow_empty", "ALLOW_EMPTY", "--allow-empty", "false", "BOOL", parse_bool,
            "accept a config that removes every rule group / receiver the current one has"),
    Setting("ready_timeout", "READY_TIMEOUT", "--ready-timeout", "30s", "DURATION", _duration,
            "how long to wait for the target's /-/ready before reloading"),
    Setting("metrics_url", "TARGET_METRICS_URL", "--metrics-url", None, "URL", _url,
            "where the reload is verified (default: /metrics beside RELOAD_URL)"),
    Setting("pushgateway_url", "PUSHGATEWAY_URL", "--pushgateway-url", None, "URL", _url,
            "push metrics here after every pass, e.g. http://pushgateway:9091"),
    Setting("pushgateway_job", "PUSHGATEWAY_JOB", "--pushgateway-job", "syncjob", "NAME", _text,
            "the `job` of the pushed group"),
    Setting("pushgateway_timeout", "PUSHGATEWAY_TIMEOUT", "--pushgateway-timeout", "10s",
            "DURATION", _positive_duration, "bound on a push; a slow gateway never fails a pass"),
    Setting("pushgateway_token_file", "PUSHGATEWAY_TOKEN_FILE", "--pushgateway-token-file",
            None, "PATH", _text, "bearer token for the Pushgateway, read from this file"),
    Setting("pushgateway_basic_auth_file", "PUSHGATEWAY_BASIC_AUTH_FILE",
            "--pushgateway-basic-auth-file", None, "PATH", _text,
            "`user:password` for the Pushgateway, read from this file"),
    Setting("report_status", "REPORT_STATUS", "--report-status", "false", "BOOL", parse_bool,
            "POST each pass's outcome to AlertAgent's /api/v1/config/sync/status"),
    Setting("token_file", "ALERTAGENT_TOKEN_FILE", "--token-file", None, "PATH", _text,
            "bearer token for AlertAgent, read from this file at every pass"),
    Setting("basic_auth_file", "ALERTAGENT_BASIC_AUTH_FILE", "--basic-auth-file", None, "PATH",
            _text, "`user:password` for AlertAgent, read from this file at every pass"),
    Setting("splay", "SPLAY", "--splay", "0s", "DURATION", _duration,
            "one pass: first wait a random time up to this, so a fleet that cron starts at the "
            "same minute does not reach AlertAgent all at once"),
    Setting("log_level", "LOG_LEVEL", "--log-level", "info", "LEVEL", _level,
            "debug, info, warning or error"),
    *_tls_settings("ALERTAGENT", "", "AlertAgent"),
    *_tls_settings("TARGET", "target-", "the target"),
    *_tls_settings("PUSHGATEWAY", "pushgateway-", "the Pushgateway"),
)
# fmt: on
BY_FIELD = {s.field: s for s in SETTINGS}

# The checker that ships with each target, used when CHECK_COMMAND is unset and the
# tool is on PATH. vmalert's MetricsQL is not promtool's PromQL: no default there.
DEFAULT_CHECKERS = {
    "prometheus": "promtool check config {path}",
    "prometheus-rules": "promtool check rules {path}",
    "alertmanager": "amtool check-config {path}",
}


@dataclass(frozen=True)
class Settings:
    endpoint: str
    cluster_id: str
    config_type: str
    config_path: Path
    reload_url: str | None
    sync_interval: float
    http_timeout: float
    http_port: int
    http_address: str
    max_retries: int
    retry_backoff: float
    app_env: str
    api_path: str
    state_path: Path
    max_body_size: int
    check_cmd: str | None  # None: the default checker if installed; "": no check
    allow_empty: bool
    ready_timeout: float
    metrics_url: str | None
    pushgateway_url: str | None
    pushgateway_job: str
    pushgateway_timeout: float
    pushgateway_token_file: str | None
    pushgateway_basic_auth_file: str | None
    report_status: bool
    token_file: str | None
    basic_auth_file: str | None
    splay: float
    log_level: str
    ca_file: str | None
    client_cert: str | None
    client_key: str | None
    insecure_skip_verify: bool
    target_ca_file: str | None
    target_client_cert: str | None
    target_client_key: str | None
    target_insecure_skip_verify: bool
    pushgateway_ca_file: str | None
    pushgateway_client_cert: str | None
    pushgateway_client_key: str | None
    pushgateway_insecure_skip_verify: bool
    # ALERTAGENT_TOKEN: accepted from the environment only, never printed.
    token: str | None = field(default=None, repr=False)

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
        """`/-/ready` or `/metrics` of the target, beside RELOAD_URL's `/-/reload`."""
        if self.reload_url is None:
            return None
        if path == "/metrics" and self.metrics_url:
            return self.metrics_url
        base = self.reload_url.removesuffix("/-/reload")
        if base == self.reload_url:  # not the usual path: the target's root
            scheme, _, rest = self.reload_url.partition("://")
            base = f"{scheme}://{rest.split('/', 1)[0]}"
        return base + path


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
            values[setting.field] = setting.parse(raw)
        except ValueError as exc:
            raise UsageError(f"invalid {setting.names}: {exc}") from None
    for name in required:
        if values[name] is None:
            raise UsageError(f"missing setting: set {BY_FIELD[name].names}")
    values["config_path"] = config_file(values["config_path"], values["config_type"])
    state = values["state_path"]
    values["state_path"] = (
        Path(state)
        if state
        else values["config_path"].with_name(f".{values['config_path'].name}.syncjob.json")
    )
    return Settings(**values, token=env.get("ALERTAGENT_TOKEN") or None)


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
