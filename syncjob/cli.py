"""The command line: `syncjob` runs one pass and exits with a code that says what happened."""

import logging
from typing import Annotated, Any, cast

import typer

from syncjob import __version__
from syncjob.errors import MEANINGS, ExitCode, UsageError
from syncjob.output import setup_logging, usage_error
from syncjob.settings import BY_FIELD, FOR_A_PASS, Settings, resolve

log = logging.getLogger("syncjob")

# "\b" keeps click from re-wrapping the table into one paragraph.
EXIT_CODES = "Exit codes:\n\n\b\n" + "\n".join(f"{int(c):>3}  {m}" for c, m in MEANINGS.items())

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _option(field: str) -> Any:
    setting = BY_FIELD[field]
    default = f" [default: {setting.default}]" if setting.default else ""
    return typer.Option(
        setting.flag, metavar=setting.metavar, help=f"{setting.help} [env: {setting.env}]{default}"
    )


def _flag(field: str) -> Any:
    setting = BY_FIELD[field]
    return typer.Option(setting.flag, help=f"{setting.help} [env: {setting.env}]")


def _print_version(value: bool) -> None:
    if value:
        print(f"syncjob {__version__}")
        raise typer.Exit


@app.callback(invoke_without_command=True, epilog=EXIT_CODES)
def sync(
    ctx: typer.Context,
    endpoint: Annotated[str | None, _option("endpoint")] = None,
    cluster_id: Annotated[str | None, _option("cluster_id")] = None,
    config_type: Annotated[str | None, _option("config_type")] = None,
    config_path: Annotated[str | None, _option("config_path")] = None,
    reload_url: Annotated[str | None, _option("reload_url")] = None,
    sync_interval: Annotated[str | None, _option("sync_interval")] = None,
    http_timeout: Annotated[str | None, _option("http_timeout")] = None,
    http_port: Annotated[str | None, _option("http_port")] = None,
    max_retries: Annotated[str | None, _option("max_retries")] = None,
    retry_backoff: Annotated[str | None, _option("retry_backoff")] = None,
    app_env: Annotated[str | None, _option("app_env")] = None,
    api_path: Annotated[str | None, _option("api_path")] = None,
    state_path: Annotated[str | None, _option("state_path")] = None,
    max_body_size: Annotated[str | None, _option("max_body_size")] = None,
    check_cmd: Annotated[str | None, _option("check_cmd")] = None,
    allow_empty: Annotated[bool | None, _flag("allow_empty")] = None,
    ready_timeout: Annotated[str | None, _option("ready_timeout")] = None,
    metrics_url: Annotated[str | None, _option("metrics_url")] = None,
    pushgateway_url: Annotated[str | None, _option("pushgateway_url")] = None,
    pushgateway_job: Annotated[str | None, _option("pushgateway_job")] = None,
    pushgateway_timeout: Annotated[str | None, _option("pushgateway_timeout")] = None,
    pushgateway_token_file: Annotated[str | None, _option("pushgateway_token_file")] = None,
    pushgateway_basic_auth_file: Annotated[
        str | None, _option("pushgateway_basic_auth_file")
    ] = None,
    report_status: Annotated[bool | None, _flag("report_status")] = None,
    http_address: Annotated[str | None, _option("http_address")] = None,
    loop: Annotated[
        bool,
        typer.Option(
            "--loop",
            help="sidecar: repeat the pass every SYNC_INTERVAL and serve "
            "/healthz /ready /metrics /status on HTTP_PORT",
        ),
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="print the version and exit"
        ),
    ] = False,
) -> None:
    """Fetch the config for (cluster, type) from AlertAgent, write it if it changed,
    reload the target, and exit with a code that says what happened.

    Every setting is a flag or an environment variable; a flag wins.
    """
    if ctx.invoked_subcommand is not None:
        return
    settings = _settings(ctx)
    setup_logging(settings.json_logs)
    raise typer.Exit(sidecar(settings) if loop else one_shot(settings))


def _settings(ctx: typer.Context, required: tuple[str, ...] = FOR_A_PASS) -> Settings:
    """Settings from the main command's flags and the environment; exit 2 if they are wrong."""
    params = {k: str(v) if isinstance(v, bool) else v for k, v in ctx.params.items()}
    try:
        return resolve({k: v for k, v in params.items() if k in BY_FIELD}, required=required)
    except UsageError as exc:
        usage_error(str(exc))
        raise typer.Exit(ExitCode.USAGE) from None


def one_shot(settings: Settings) -> int:
    """One pass with the real source and target; a bug is logged with its traceback."""
    from syncjob.source import Source
    from syncjob.sync import run_once
    from syncjob.target import Target

    try:
        target = Target(settings) if settings.reload_url else None
        outcome = run_once(settings, source=Source(settings), target=target)
        if settings.pushgateway_url or settings.report_status:
            from syncjob.publish import after_pass

            after_pass(settings, outcome)
        return int(outcome.exit_code)
    except Exception:
        log.exception("internal error: please report it with this traceback")
        return ExitCode.INTERNAL


def sidecar(settings: Settings) -> int:
    from syncjob.loop import serve
    from syncjob.source import Source
    from syncjob.target import Target

    target = Target(settings) if settings.reload_url else None
    try:
        return serve(settings, source=Source(settings), target=target)
    except OSError as exc:  # e.g. the port is taken
        log.error("cannot serve on %s:%d: %s", settings.http_address, settings.http_port, exc)
        return ExitCode.USAGE


@app.command()
def demo() -> None:
    """Run two real passes against an embedded AlertAgent on loopback, into a temporary
    directory: the first writes the config, the second finds nothing to do."""
    from syncjob.demo import run_demo

    raise typer.Exit(run_demo())


@app.command()
def status(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="print the state as JSON")] = False,
    max_age: Annotated[
        str | None,
        typer.Option(
            metavar="DURATION",
            help="healthy only if the last success is this recent [default: 3 x SYNC_INTERVAL]",
        ),
    ] = None,
) -> None:
    """Show the last pass from the state file (no network). Exit 0 when it succeeded within
    --max-age; else the failed pass's exit code, or 3 when no pass succeeded recently."""
    from syncjob import health, output
    from syncjob import state as ledger
    from syncjob.durations import parse_duration

    settings = _settings(cast(typer.Context, ctx.parent), required=("config_path",))
    try:
        age = parse_duration(max_age) if max_age else 3 * settings.sync_interval
    except ValueError as exc:
        usage_error(f"invalid --max-age: {exc}")
        raise typer.Exit(ExitCode.USAGE) from None
    state = ledger.load(settings.state_path)
    verdict = health.judge(state, age)
    if as_json:
        output.print_json(
            {"healthy": verdict.exit_code == 0, "reason": verdict.reason,
             "config_path": str(settings.config_path), "state_path": str(settings.state_path),
             **ledger.to_json(state)}
        )  # fmt: skip
    else:
        output.show_status(settings, state, verdict)
    if verdict.exit_code != 0:
        usage_error(verdict.reason, prefix="unhealthy")
    raise typer.Exit(verdict.exit_code)


def main() -> None:
    app()
