"""The entry point: `syncjob` runs one pass and exits with a code that says what happened.

The line a CronJob or a timer runs, `syncjob` alone, has nothing to parse: it goes straight
to the pass, without importing typer or building the command line (`commands.py`: 60
options in panels, completion, subcommands), which only a line with arguments needs.
"""

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from syncjob.errors import ExitCode, SyncError, UsageError
from syncjob.output import setup_logging, usage_error
from syncjob.settings import Settings, resolve

if TYPE_CHECKING:  # imported where used: a no-op pass must not pay for what it skips
    from syncjob.source import Source
    from syncjob.target import Target

log = logging.getLogger("syncjob")

# typer's completion reads this variable; set, the line must go through the command.
COMPLETE_VAR = "_SYNCJOB_COMPLETE"


def main() -> None:
    if len(sys.argv) == 1 and COMPLETE_VAR not in os.environ:
        # No flag, no command: nothing to parse, so the command line is never built.
        with failures_reported():
            code = run_pass({}, loop=False)
        sys.exit(code)
    from syncjob.commands import build_app

    build_app()()


def __getattr__(name: str) -> Any:
    if name == "app":  # `from syncjob.cli import app`: the typer app (tests, typer's tools)
        from syncjob.commands import build_app

        return build_app()
    raise AttributeError(name)


@contextmanager
def failures_reported() -> Iterator[None]:
    """The one place where a command's failure becomes its exit code: an expected one as
    one `syncjob: error:` line, a bug with its traceback in the log (exit 1). SystemExit
    goes through click and typer untouched, so this works inside a command and without."""
    try:
        yield
    except SyncError as exc:
        usage_error(str(exc))
        sys.exit(exc.exit_code)
    except Exception:
        log.exception("internal error: please report it with this traceback")
        sys.exit(ExitCode.INTERNAL)


def run_pass(flags: dict[str, str | None], *, loop: bool) -> int:
    """One pass (or the --loop sidecar) with these flags over the environment."""
    settings = resolve(flags)
    run_logging(settings)
    source, target = _peers(settings)
    return (sidecar if loop else one_shot)(settings, source, target)


def run_logging(settings: Settings) -> None:
    setup_logging(settings.json_logs, settings.log_level, settings.log_format)


def _peers(settings: Settings) -> tuple["Source", "Target | None"]:
    """AlertAgent and the target, as configured; exit 2 when a TLS file is wrong."""
    from syncjob.source import Source

    if not (settings.reload_url or settings.reload_cmd):
        return Source(settings), None
    from syncjob.target import Target

    return Source(settings), Target(settings)


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
