"""The command line: `syncjob` runs one pass and exits with a code that says what happened."""

import logging
from typing import Annotated, Any

import typer

from syncjob import __version__
from syncjob.errors import MEANINGS, ExitCode, UsageError
from syncjob.output import setup_logging, usage_error
from syncjob.settings import BY_FIELD, Settings, resolve

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
    try:
        flags = {k: str(v) if isinstance(v, bool) else v for k, v in ctx.params.items()}
        settings = resolve({k: v for k, v in flags.items() if k in BY_FIELD})
    except UsageError as exc:
        usage_error(str(exc))
        raise typer.Exit(ExitCode.USAGE) from None
    setup_logging(settings.json_logs)
    raise typer.Exit(one_shot(settings))


def one_shot(settings: Settings) -> int:
    """One pass with the real source and target; a bug is logged with its traceback."""
    from syncjob.source import Source
    from syncjob.sync import run_once
    from syncjob.target import Target

    try:
        target = Target(settings) if settings.reload_url else None
        return int(run_once(settings, source=Source(settings), target=target).exit_code)
    except Exception:
        log.exception("internal error: please report it with this traceback")
        return ExitCode.INTERNAL


@app.command()
def demo() -> None:
    """Run two real passes against an embedded AlertAgent on loopback, into a temporary
    directory: the first writes the config, the second finds nothing to do."""
    from syncjob.demo import run_demo

    raise typer.Exit(run_demo())


def main() -> None:
    app()
