"""settings.resolve: flag over env over default, and one line naming both names on a mistake."""

from pathlib import Path

import pytest

from syncjob.errors import ExitCode, UsageError
from syncjob.settings import BY_FIELD, CONFIG_TYPES, SETTINGS, Settings, resolve


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """The four required settings, as a deployment's environment gives them."""
    return {
        "ALERTAGENT_ENDPOINT": "http://alertagent:8080",
        "CLUSTER_ID": "prometheus-cluster-1",
        "CONFIG_TYPE": "prometheus",
        "CONFIG_PATH": str(tmp_path / "prometheus.yml"),
    }


def usage_error(flags: dict[str, str | None], env: dict[str, str]) -> str:
    with pytest.raises(UsageError) as info:
        resolve(flags, env)
    assert info.value.exit_code == ExitCode.USAGE
    message = str(info.value)
    assert "\n" not in message
    return message


def test_defaults_are_the_seeds(env: dict[str, str], tmp_path: Path) -> None:
    settings = resolve({}, env)
    assert settings.endpoint == "http://alertagent:8080"
    assert settings.cluster_id == "prometheus-cluster-1"
    assert settings.config_type == "prometheus"
    assert settings.config_path == tmp_path / "prometheus.yml"
    assert settings.reload_url is None
    assert settings.sync_interval == 30.0
    assert settings.http_timeout == 30.0
    assert settings.http_port == 8080
    assert settings.max_retries == 3
    assert settings.retry_backoff == 5.0
    assert settings.app_env == "production"
    assert settings.json_logs
    assert settings.api_path == "/api/v1/configs"
    assert settings.state_path == tmp_path / ".prometheus.yml.syncjob.json"
    assert settings.max_body_size == 16 * 1024 * 1024


@pytest.mark.parametrize(
    ("field", "flag_value", "env_value", "expected"),
    [
        ("endpoint", "http://flag:1", "http://env:2", "http://flag:1"),
        ("cluster_id", "from-flag", "from-env", "from-flag"),
        ("config_type", "alertmanager", "prometheus", "alertmanager"),
        ("sync_interval", "1m", "10s", 60.0),
        ("http_timeout", "500ms", "2s", 0.5),
        ("http_port", "9999", "7777", 9999),
        ("max_retries", "0", "5", 0),
        ("retry_backoff", "1s", "2s", 1.0),
        ("app_env", "development", "production", "development"),
        ("api_path", "/api/v1/config/sync", "/env", "/api/v1/config/sync"),
        ("max_body_size", "1KiB", "2MiB", 1024),
        (
            "reload_url",
            "http://localhost:9090/-/reload",
            "http://env/-/reload",
            "http://localhost:9090/-/reload",
        ),
    ],
)
def test_flag_wins_over_env_over_default(
    env: dict[str, str], field: str, flag_value: str, env_value: str, expected: object
) -> None:
    name = BY_FIELD[field].env
    assert getattr(resolve({field: flag_value}, {**env, name: env_value}), field) == expected
    from_env = resolve({field: None}, {**env, name: flag_value})  # an unset flag arrives as None
    assert getattr(from_env, field) == expected


def test_env_wins_over_default(env: dict[str, str]) -> None:
    settings = resolve({}, {**env, "SYNC_INTERVAL": "2m", "MAX_BODY_SIZE": "1MiB"})
    assert (settings.sync_interval, settings.max_body_size) == (120.0, 1 << 20)


def test_an_empty_variable_counts_as_unset(env: dict[str, str]) -> None:
    assert resolve({}, {**env, "SYNC_INTERVAL": ""}).sync_interval == 30.0
    message = usage_error({}, {**env, "CLUSTER_ID": ""})
    assert message == "missing setting: set CLUSTER_ID / --cluster-id"


@pytest.mark.parametrize("field", ["endpoint", "cluster_id", "config_type", "config_path"])
def test_each_required_setting_missing(env: dict[str, str], field: str) -> None:
    setting = BY_FIELD[field]
    del env[setting.env]
    assert usage_error({}, env) == f"missing setting: set {setting.env} / {setting.flag}"


def test_nothing_set_names_the_first_required(tmp_path: Path) -> None:
    assert usage_error({}, {}) == "missing setting: set ALERTAGENT_ENDPOINT / --endpoint"


@pytest.mark.parametrize(
    ("field", "value", "why"),
    [
        ("endpoint", "alertagent:8080", "is not an http:// or https:// URL"),
        ("endpoint", "ftp://alertagent", "is not an http:// or https:// URL"),
        ("endpoint", "http://", "is not an http:// or https:// URL"),
        ("endpoint", "http:///path", "is not an http:// or https:// URL"),
        ("reload_url", "localhost:9090/-/reload", "is not an http:// or https:// URL"),
        ("cluster_id", "   ", "it is empty"),
        ("config_type", "prom", "is not one of: prometheus, alertmanager"),
        ("config_type", "Prometheus", "is not one of"),
        ("sync_interval", "0", "must be more than zero"),
        ("sync_interval", "-30s", "must be more than zero"),
        ("sync_interval", "30", "invalid duration '30'"),
        ("http_timeout", "0s", "must be more than zero"),
        ("http_timeout", "soon", "invalid duration 'soon'"),
        ("retry_backoff", "-1s", "must not be negative"),
        ("retry_backoff", "5 s", "invalid duration"),
        ("http_port", "65536", "is not between 0 and 65535"),
        ("http_port", "-1", "is not between 0 and 65535"),
        ("http_port", "http", "'http'"),
        ("max_retries", "101", "is not between 0 and 100"),
        ("max_retries", "-1", "is not between 0 and 100"),
        ("max_retries", "3.5", "'3.5'"),
        ("api_path", "api/v1/configs", "must start with /"),
        ("max_body_size", "0", "is not a size (e.g. 16MiB, 65536)"),
        ("max_body_size", "16MB!", "is not a size"),
        ("max_body_size", "16M", "is not a size"),
        ("max_body_size", "-1", "is not a size"),
        ("max_body_size", "1.5MiB", "is not a size"),
        ("max_body_size", "lots", "is not a size"),
        ("state_path", " ", "it is empty"),
    ],
)
@pytest.mark.parametrize("given_as", ["flag", "env"])
def test_invalid_value_names_variable_and_flag(
    env: dict[str, str], field: str, value: str, why: str, given_as: str
) -> None:
    setting = BY_FIELD[field]
    if given_as == "flag":
        message = usage_error({field: value}, env)
    else:
        message = usage_error({}, {**env, setting.env: value})
    assert message.startswith(f"invalid {setting.env} / {setting.flag}: ")
    assert why in message


@pytest.mark.parametrize("field", ["endpoint", "cluster_id", "config_path", "api_path"])
def test_an_empty_flag_is_invalid_not_unset(env: dict[str, str], field: str) -> None:
    setting = BY_FIELD[field]
    assert usage_error({field: ""}, env).startswith(f"invalid {setting.env} / {setting.flag}: ")


@pytest.mark.parametrize("value", ["http://alertagent:port", "http://alertagent:99999"])
def test_endpoint_with_a_bad_port_is_a_usage_error(env: dict[str, str], value: str) -> None:
    assert "ALERTAGENT_ENDPOINT / --endpoint" in usage_error({"endpoint": value}, env)


@pytest.mark.parametrize(
    ("value", "size"),
    [
        ("65536", 65536),
        ("16MiB", 16 << 20),
        ("1kib", 1024),
        ("2GiB", 2 << 30),
        ("1KB", 1000),
        ("3mb", 3_000_000),
        ("512B", 512),
        (" 8 KiB ", 8192),
    ],
)
def test_sizes(env: dict[str, str], value: str, size: int) -> None:
    assert resolve({"max_body_size": value}, env).max_body_size == size


@pytest.mark.parametrize("port", ["0", "1", "65535"])
def test_port_bounds(env: dict[str, str], port: str) -> None:
    assert resolve({"http_port": port}, env).http_port == int(port)


def test_zero_backoff_and_retries_are_allowed(env: dict[str, str]) -> None:
    settings = resolve({"retry_backoff": "0", "max_retries": "0"}, env)
    assert (settings.retry_backoff, settings.max_retries) == (0.0, 0)


@pytest.mark.parametrize("config_type", CONFIG_TYPES)
def test_all_config_types(env: dict[str, str], config_type: str) -> None:
    assert resolve({"config_type": config_type}, env).config_type == config_type


def test_trailing_slashes_are_trimmed_from_urls(env: dict[str, str]) -> None:
    settings = resolve(
        {"endpoint": "https://alertagent:8443/", "reload_url": "http://localhost:9090/-/reload/"},
        env,
    )
    assert settings.endpoint == "https://alertagent:8443"
    assert settings.reload_url == "http://localhost:9090/-/reload"


@pytest.mark.parametrize("config_type", CONFIG_TYPES)
def test_config_path_naming_a_directory_gets_the_type_file(
    env: dict[str, str], tmp_path: Path, config_type: str
) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    settings = resolve({"config_path": str(rules), "config_type": config_type}, env)
    assert settings.config_path == rules / f"{config_type}.yml"
    assert settings.state_path == rules / f".{config_type}.yml.syncjob.json"
    assert settings.lock_path == rules / f".{config_type}.yml.syncjob.lock"


def test_trailing_slash_means_a_directory_even_before_it_exists(
    env: dict[str, str], tmp_path: Path
) -> None:
    settings = resolve({"config_path": f"{tmp_path}/rules/"}, env)
    assert settings.config_path == tmp_path / "rules" / "prometheus.yml"


def test_state_and_lock_live_beside_the_config(env: dict[str, str], tmp_path: Path) -> None:
    settings = resolve({"config_path": str(tmp_path / "am" / "alertmanager.yml")}, env)
    assert settings.state_path == tmp_path / "am" / ".alertmanager.yml.syncjob.json"
    assert settings.lock_path == tmp_path / "am" / ".alertmanager.yml.syncjob.lock"
    assert settings.last_good_path == tmp_path / "am" / ".alertmanager.yml.syncjob.last-good"


def test_state_path_setting_wins(env: dict[str, str], tmp_path: Path) -> None:
    state = tmp_path / "var" / "state.json"
    assert resolve({}, {**env, "STATE_PATH": str(state)}).state_path == state


@pytest.mark.parametrize(("app_env", "json_logs"), [("production", True), ("development", False)])
def test_json_logs_only_in_production(env: dict[str, str], app_env: str, json_logs: bool) -> None:
    assert resolve({"app_env": app_env}, env).json_logs is json_logs


def test_every_setting_has_a_variable_a_flag_and_a_parser(env: dict[str, str]) -> None:
    fields = {s.field for s in SETTINGS}
    assert fields == set(Settings.__dataclass_fields__) - {"token"}  # token: env only
    for setting in SETTINGS:
        assert setting.flag == "--" + setting.field.replace("_", "-")
        assert setting.names == f"{setting.env} / {setting.flag}"


# Settings added with the target checks: checker command, empty-config guard, readiness.


@pytest.mark.parametrize(
    ("value", "allowed"),
    [
        ("true", True),
        ("True", True),
        ("1", True),
        ("yes", True),
        ("on", True),
        ("false", False),
        ("0", False),
        ("no", False),
        ("off", False),
        ("FALSE", False),
    ],
)
def test_allow_empty_is_a_boolean(env: dict[str, str], value: str, allowed: bool) -> None:
    assert resolve({}, {**env, "ALLOW_EMPTY": value}).allow_empty is allowed
    assert resolve({"allow_empty": value}, env).allow_empty is allowed


def test_allow_empty_defaults_to_false(env: dict[str, str]) -> None:
    assert resolve({}, env).allow_empty is False
    assert resolve({}, {**env, "ALLOW_EMPTY": ""}).allow_empty is False


def test_allow_empty_rejects_anything_else(env: dict[str, str]) -> None:
    message = usage_error({}, {**env, "ALLOW_EMPTY": "maybe"})
    assert message == "invalid ALLOW_EMPTY / --allow-empty: 'maybe' is not true or false"


def test_check_command_unset_empty_or_given(env: dict[str, str]) -> None:
    assert resolve({}, env).check_cmd is None  # the target's own checker, when installed
    assert resolve({}, {**env, "CHECK_COMMAND": ""}).check_cmd == ""  # empty: no check at all
    assert resolve({"check_cmd": ""}, env).check_cmd == ""
    given = resolve({}, {**env, "CHECK_COMMAND": " promtool check config {path} "})
    assert given.check_cmd == "promtool check config {path}"


def test_check_command_must_name_the_file(env: dict[str, str]) -> None:
    message = usage_error({"check_cmd": "promtool check config"}, env)
    assert message.startswith("invalid CHECK_COMMAND / --check-cmd: ")
    assert "{path}" in message


def test_ready_timeout(env: dict[str, str]) -> None:
    assert resolve({}, env).ready_timeout == 30.0
    assert resolve({}, {**env, "READY_TIMEOUT": "0"}).ready_timeout == 0.0
    assert "READY_TIMEOUT / --ready-timeout" in usage_error({"ready_timeout": "-1s"}, env)


@pytest.mark.parametrize(
    ("reload_url", "metrics_url", "ready", "metrics"),
    [
        (
            "http://localhost:9090/-/reload",
            None,
            "http://localhost:9090/-/ready",
            "http://localhost:9090/metrics",
        ),
        (
            "http://am:9093/alertmanager/-/reload",
            None,
            "http://am:9093/alertmanager/-/ready",
            "http://am:9093/alertmanager/metrics",
        ),
        (
            "http://localhost:9090/custom/reload",
            None,
            "http://localhost:9090/-/ready",
            "http://localhost:9090/metrics",
        ),
        (
            "http://localhost:9090/-/reload",
            "http://exporter:9100/metrics",
            "http://localhost:9090/-/ready",
            "http://exporter:9100/metrics",
        ),
    ],
)
def test_target_urls_sit_beside_the_reload_url(
    env: dict[str, str], reload_url: str, metrics_url: str | None, ready: str, metrics: str
) -> None:
    settings = resolve({"reload_url": reload_url, "metrics_url": metrics_url}, env)
    assert settings.target_url("/-/ready") == ready
    assert settings.target_url("/metrics") == metrics


def test_no_reload_url_no_target_urls(env: dict[str, str]) -> None:
    assert resolve({}, env).target_url("/-/ready") is None


DURATIONS = [s for s in SETTINGS if s.metavar == "DURATION"]


@pytest.mark.parametrize("setting", DURATIONS, ids=lambda s: s.env)
@pytest.mark.parametrize("value", ["99999999999h", "1" + "0" * 400 + "h", "8760h"])
def test_every_duration_has_an_upper_bound(
    env: dict[str, str], setting: object, value: str
) -> None:
    """Beyond its bound a duration is exit 2 naming it, never an overflow later on."""
    assert isinstance(setting, type(SETTINGS[0]))
    message = usage_error({}, {**env, setting.env: value})
    assert setting.env in message
    assert "most allowed" in message


def test_a_value_that_is_not_utf8_is_a_usage_error(env: dict[str, str]) -> None:
    """os.environ hands undecodable bytes over as lone surrogates."""
    message = usage_error(
        {}, {**env, "CLUSTER_ID": b"cl\xffuster".decode("utf-8", "surrogateescape")}
    )
    assert message == "invalid CLUSTER_ID / --cluster-id: not valid UTF-8"


def test_settings_fields_and_variables_are_declared_once() -> None:
    """One row per field: the flags, the variables and the test fixture all come from it."""
    from dataclasses import fields

    from syncjob.settings import ENVIRONMENT

    assert [s.field for s in SETTINGS] == [f.name for f in fields(Settings)][:-1]  # but `token`
    assert len(set(ENVIRONMENT)) == len(ENVIRONMENT) == len(SETTINGS) + 1


def test_host_variables_never_leak_into_tests() -> None:
    """The autouse fixture cleared every variable syncjob reads, SPLAY included."""
    import os

    from syncjob.settings import ENVIRONMENT

    assert not [name for name in ENVIRONMENT if name in os.environ]
