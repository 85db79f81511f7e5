"""The command line: the main command's 60 options in panels, shell completion, and the
`status`, `diff`, `check` and `demo` commands.

Built only when a line has arguments to parse (see `cli.main`): the bare pass a CronJob
runs never imports typer.
"""

import inspect
import sys
from collections.abc import Callable
from functools import cache
from typing import Annotated, Any, TypeVar

import typer

from syncjob import __version__
from syncjob.cli import failures_reported, run_logging, run_pass
from syncjob.errors import MEANINGS, ExitCode, UsageError
from syncjob.output import usage_error
from syncjob.settings import BY_FIELD, FOR_A_PASS, SETTINGS, Setting, Settings, parse_bool, resolve

_KW = inspect.Parameter.KEYWORD_ONLY
F = TypeVar("F", bound=Callable[..., Any])


def _print_version(value: bool) -> None:
    if value:
        print(f"syncjob {__version__}")
        raise typer.Exit


def _rich(text: str) -> str:
    """Help text shown through rich markup: `[env: X]` is text, not a style tag."""
    return text.replace("[", r"\[")


def _setting_option(setting: Setting) -> inspect.Parameter:
    """A flag for one setting: None when not given, so the variable can speak."""
    default = f" [default: {setting.default}]" if setting.default else ""
    if setting.parse is parse_bool:
        annotation: Any = Annotated[bool | None, typer.Option(
            setting.flag, help=_rich(f"{setting.help} [env: {setting.env}]"),
            rich_help_panel=setting.panel)]  # fmt: skip
    else:
        annotation = Annotated[str | None, typer.Option(
            setting.flag, metavar=setting.metavar, rich_help_panel=setting.panel,
            help=_rich(f"{setting.help} [env: {setting.env}]{default}"))]  # fmt: skip
    return inspect.Parameter(setting.field, _KW, default=None, annotation=annotation)


def _with_settings(settings: tuple[Setting, ...]) -> Callable[[F], F]:
    """Give a command a flag for each setting it uses, in --help's panel order (its own
    options come last): so `syncjob status --config-path X` works as
    `syncjob --config-path X status` does.

    typer reads options from the signature: it is generated from the settings table, so
    a new setting is one row there, and its flag, env name and help cannot drift apart.
    """

    ordered = sorted(settings, key=lambda s: PANELS.index(s.panel))

    def add(command: F) -> F:
        params = inspect.signature(command).parameters.values()
        ctx = [p for p in params if p.annotation is typer.Context]
        own = [p.replace(kind=_KW) for p in params if p.kind != p.VAR_KEYWORD and p not in ctx]
        command.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [*ctx, *(_setting_option(s) for s in ordered), *own]
        )
        return command

    return add


def _flags(ctx: typer.Context) -> dict[str, str | None]:
    """The settings given on the line, before or after the command's name (after wins)."""
    chain, here = [], ctx
    while here is not None:
        chain.append(here)
        here = here.parent  # type: ignore[assignment]
    flags: dict[str, str | None] = {}
    for level in reversed(chain):
        for name, value in level.params.items():
            if name in BY_FIELD and value is not None:
                flags[name] = str(value) if isinstance(value, bool) else value
    return flags


def _settings(ctx: typer.Context, required: tuple[str, ...] = FOR_A_PASS) -> Settings:
    """Settings from the line's flags and the environment; exit 2 if they are wrong."""
    return resolve(_flags(ctx), required=required)


# --help lists the settings in these sections, in this order.
PANELS = ("Source", "Target", "Checking", "Pushgateway", "TLS", "Loop", "Logging")


def _panels(*names: str) -> tuple[Setting, ...]:
    return tuple(s for s in SETTINGS if s.panel in names)


# What each command reads: `status` only finds the state file, `diff` fetches and checks.
FOR_STATUS = tuple(BY_FIELD[f] for f in ("config_path", "config_type", "state_path",
                                         "sync_interval"))  # fmt: skip
FOR_DIFF = _panels("Source", "Target", "Checking", "TLS")
LOGGING = _panels("Logging")


def sync(
    ctx: typer.Context,
    loop: Annotated[bool, typer.Option(
        "--loop", rich_help_panel="Loop",
        help="sidecar: repeat the pass every SYNC_INTERVAL and serve /healthz /ready "
        "/metrics /status on HTTP_PORT")] = False,
    version: Annotated[bool, typer.Option(
        "--version", callback=_print_version, is_eager=True,
        help="print the version and exit")] = False,
    **settings: str | bool | None,
) -> None:  # fmt: skip
    """Fetch the config for (cluster, type) from AlertAgent, write it if it changed,
    reload the target, and exit with a code that says what happened.

    Every setting is a flag or an environment variable; a flag wins. Commands take the
    same flags, before or after their name.
    """
    if ctx.invoked_subcommand is not None:
        return
    with failures_reported():
        code = run_pass(_flags(ctx), loop=loop)
    raise typer.Exit(code)


def demo() -> None:
    """Run two real passes against an embedded AlertAgent on loopback, into a temporary
    directory: the first writes the config, the second finds nothing to do."""
    from syncjob.demo import run_demo

    with failures_reported():
        code = run_demo()
    raise typer.Exit(code)


def status(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="print the state as JSON")] = False,
    max_age: Annotated[str | None, typer.Option(
        metavar="DURATION",
        help=_rich("healthy only if the last success is this recent "
                   "[default: 3 x SYNC_INTERVAL]"))] = None,
    **settings: str | bool | None,
) -> None:  # fmt: skip
    """Show the last pass from the state file (no network). Exit 0 when it succeeded within
    --max-age; else the failed pass's exit code, 3 when no pass succeeded recently, or 73
    when no state is recorded and its folder cannot be written (the last pass could not
    record it)."""
    from syncjob import output, standing
    from syncjob import state as ledger
    from syncjob.durations import parse_duration

    with failures_reported():
        settings_ = _settings(ctx, required=("config_path",))
        try:
            age = parse_duration(max_age) if max_age else 3 * settings_.sync_interval
        except ValueError as exc:
            raise UsageError(f"invalid --max-age: {exc}") from None
        state = ledger.load(settings_.state_path)
    verdict = standing.judge(settings_, state, age)
    if as_json:
        output.print_json(standing.as_json(settings_, state, verdict))
    else:
        output.show_status(settings_, state, verdict)
    if verdict.exit_code != 0:
        usage_error(verdict.reason, prefix="unhealthy")
    raise typer.Exit(verdict.exit_code)


def diff(ctx: typer.Context, **settings: str | bool | None) -> None:
    """Fetch and validate the config as a pass would, and print the unified diff between
    the file on disk and what a pass would write. Writes, reloads and records nothing.
    Exit 0 when nothing would change, 4 when something would, or the code a pass would
    give (65 when the content would be refused, 69, 77, ...)."""
    from syncjob.diff import show_diff

    with failures_reported():
        settings_ = _settings(ctx)
        run_logging(settings_)
        code = show_diff(settings_)
    raise typer.Exit(code)


def check(ctx: typer.Context, **settings: str | bool | None) -> None:
    """Preflight the whole setup, one line per item: AlertAgent and its credentials (a real
    fetch), the config folder, the checker, the target's ready, reload and metrics
    endpoints, the Pushgateway. Writes nothing. Exit 0 when all hold, else the code a pass
    would give for the first item that fails, with the setting to fix."""
    from syncjob.preflight import run_checks

    with failures_reported():
        settings_ = _settings(ctx)
        run_logging(settings_)
        code = run_checks(settings_)
    raise typer.Exit(code)


def _one_line_usage_errors(group: type[Any]) -> type[Any]:
    """click's usage errors (unknown flag, missing value) as one `syncjob: error:` line,
    exit 2, like every other error, instead of a usage block."""

    class OneLine(group):  # type: ignore[misc]
        def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
            from typer._click import exceptions  # typer's own copy of click

            try:
                code = super().main(*args, standalone_mode=False, **kwargs)
            except exceptions.UsageError as exc:
                where = exc.ctx.command_path if exc.ctx else "syncjob"
                usage_error(f"{exc.format_message()} (see {where} --help)")
                code = exc.exit_code
            except exceptions.ClickException as exc:
                usage_error(exc.format_message())
                code = exc.exit_code
            except typer.Abort:  # Ctrl-C at a prompt: there are none, but click has it
                code = ExitCode.INTERNAL
            if not standalone_mode:
                return code
            sys.exit(code if isinstance(code, int) else 0)

    return OneLine


def _exit_codes() -> str:
    """The epilog: every exit code, wrapped with a hanging indent (rich would wrap to the
    margin). The leading line break keeps typer's dedent from eating the alignment."""
    import textwrap

    return "\nExit codes:\n\n" + "\n".join(
        textwrap.fill(f"{int(c):>4}  {m}", width=78, subsequent_indent=" " * 6)
        for c, m in MEANINGS.items()
    )


def _prose(doc: str | None) -> str:
    """A docstring as help: its paragraphs, each one line (rich mode keeps line breaks)."""
    paragraphs = inspect.cleandoc(doc or "").split("\n\n")
    return "\n\n".join(" ".join(p.split()) for p in paragraphs)


@cache
def build_app() -> typer.Typer:
    from typer.core import TyperGroup

    app = typer.Typer(
        cls=_one_line_usage_errors(TyperGroup),
        add_completion=True,
        pretty_exceptions_enable=False,
        rich_markup_mode="rich",
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    codes = _exit_codes()
    app.callback(invoke_without_command=True, epilog=codes, help=_prose(sync.__doc__))(
        _with_settings(SETTINGS)(sync)
    )
    app.command(help=_prose(demo.__doc__))(demo)
    for command, settings in ((status, FOR_STATUS + LOGGING), (diff, FOR_DIFF + LOGGING),
                              (check, SETTINGS)):  # fmt: skip
        app.command(epilog=codes, help=_prose(command.__doc__))(_with_settings(settings)(command))
    return app
