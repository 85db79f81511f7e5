"""The command line: `syncjob` runs one pass and exits with a code that says what happened."""

import inspect
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer

from syncjob import __version__
from syncjob.errors import MEANINGS, ExitCode, SyncError, UsageError
from syncjob.output import setup_logging, usage_error
from syncjob.settings import BY_FIELD, FOR_A_PASS, SETTINGS, Setting, Settings, parse_bool, resolve

if TYPE_CHECKING:  # imported where used: a no-op pass must not pay for what it skips
    from syncjob.source import Source
    from syncjob.target import Target

log = logging.getLogger("syncjob")

# "\b" keeps click from re-wrapping the table into one paragraph.
EXIT_CODES = "Exit codes:\n\n\b\n" + "\n".join(f"{int(c):>3}  {m}" for c, m in MEANINGS.items())

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        print(f"syncjob {__version__}")
        raise typer.Exit


def sync(
    ctx: typer.Context,
    loop: bool = False,
    version: bool = False,
    **settings: str | bool | None,  # one flag per row of settings.SETTINGS
) -> None:
    """Fetch the config for (cluster, type) from AlertAgent, write it if it changed,
    reload the target, and exit with a code that says what happened.

    Every setting is a flag or an environment variable; a flag wins.
    """
    if ctx.invoked_subcommand is not None:
        return
    with failures_reported():
        resolved = _settings(ctx)
        setup_logging(resolved.json_logs, resolved.log_level)
        source, target = _peers(resolved)
        code = (sidecar if loop else one_shot)(resolved, source, target)
    raise typer.Exit(code)


@contextmanager
def failures_reported() -> Iterator[None]:
    """The one place where a command's failure becomes its exit code: an expected one as
    one `syncjob: error:` line, a bug with its traceback in the log (exit 1)."""
    try:
        yield
    except typer.Exit:
        raise
    except SyncError as exc:
        usage_error(str(exc))
        raise typer.Exit(exc.exit_code) from None
    except Exception:
        log.exception("internal error: please report it with this traceback")
        raise typer.Exit(ExitCode.INTERNAL) from None


def _setting_option(setting: Setting) -> inspect.Parameter:
    """A flag for one setting: None when not given, so the variable can speak."""
    default = f" [default: {setting.default}]" if setting.default else ""
    if setting.parse is parse_bool:
        annotation: Any = Annotated[bool | None, typer.Option(
            setting.flag, help=f"{setting.help} [env: {setting.env}]")]  # fmt: skip
    else:
        annotation = Annotated[str | None, typer.Option(
            setting.flag, metavar=setting.metavar,
            help=f"{setting.help} [env: {setting.env}]{default}")]  # fmt: skip
    return inspect.Parameter(setting.field, _KW, default=None, annotation=annotation)


_LOOP = typer.Option(
    "--loop",
    help="sidecar: repeat the pass every SYNC_INTERVAL and serve /healthz /ready /metrics "
    "/status on HTTP_PORT",
)
_VERSION = typer.Option(
    "--version", callback=_print_version, is_eager=True, help="print the version and exit"
)
_KW = inspect.Parameter.KEYWORD_ONLY

# typer reads options from the signature: generate it from the settings table, so a new
# setting is one row there, and its flag, env name and help cannot drift apart.
sync.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
    [
        inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context),
        *(_setting_option(s) for s in SETTINGS),
        inspect.Parameter("loop", _KW, default=False, annotation=Annotated[bool, _LOOP]),
        inspect.Parameter("version", _KW, default=False, annotation=Annotated[bool, _VERSION]),
    ]
)
app.callback(invoke_without_command=True, epilog=EXIT_CODES)(sync)


def _settings(ctx: typer.Context, required: tuple[str, ...] = FOR_A_PASS) -> Settings:
    """Settings from the main command's flags and the environment; exit 2 if they are wrong."""
    params = {k: str(v) if isinstance(v, bool) else v for k, v in ctx.params.items()}
    return resolve({k: v for k, v in params.items() if k in BY_FIELD}, required=required)


def _peers(settings: Settings) -> tuple["Source", "Target | None"]:
    """AlertAgent and the target, as configured; exit 2 when a TLS file is wrong."""
    from syncjob.source import Source
    from syncjob.target import Target

    reloads = settings.reload_url or settings.reload_cmd
    return Source(settings), (Target(settings) if reloads else None)


def one_shot(settings: Settings, source: "Source", target: "Target | None") -> int:
    """One pass, then its metrics and status report."""
    from syncjob.sync import run_and_publish

    if settings.splay:  # before the lock: a waiting pass holds nothing
        import random
        import time

        time.sleep(random.uniform(0, settings.splay))  # noqa: S311 - spreading, not secrets
    return int(run_and_publish(settings, source=source, target=target).exit_code)


def sidecar(settings: Settings, source: "Source", target: "Target | None") -> int:
    """Passes until SIGTERM, serving /healthz /ready /metrics /status."""
    from syncjob.loop import serve

    try:
        return serve(settings, source=source, target=target)
    except OSError as exc:  # e.g. the port is taken
        raise UsageError(
            f"cannot serve on {settings.http_address}:{settings.http_port}: {exc.strerror or exc}"
        ) from None


@app.command()
def demo() -> None:
    """Run two real passes against an embedded AlertAgent on loopback, into a temporary
    directory: the first writes the config, the second finds nothing to do."""
    from syncjob.demo import run_demo

    with failures_reported():
        code = run_demo()
    raise typer.Exit(code)


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

    with failures_reported():
        settings = _settings(cast(typer.Context, ctx.parent), required=("config_path",))
        try:
            age = parse_duration(max_age) if max_age else 3 * settings.sync_interval
        except ValueError as exc:
            raise UsageError(f"invalid --max-age: {exc}") from None
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
