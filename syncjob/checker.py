"""The target's own checker (promtool, amtool) run on the staged file before the swap."""

import os
import shlex
import signal
from collections.abc import Callable, Iterable

from syncjob import redact
from syncjob.errors import CheckerUnavailable, ContentRefused, UsageError
from syncjob.settings import DEFAULT_CHECKERS, Settings


def command(settings: Settings) -> str | None:
    """CHECK_COMMAND; unset: the target's checker when installed; empty: none."""
    if settings.check_cmd is not None:
        return settings.check_cmd or None
    default = DEFAULT_CHECKERS.get(settings.config_type)
    if default is None:
        return None
    import shutil

    return default if shutil.which(default.split()[0]) else None


def why_none(settings: Settings) -> str:
    """Why `command` found no checker, in words that say how to get one."""
    if settings.check_cmd == "":
        return "CHECK_COMMAND is empty"
    default = DEFAULT_CHECKERS.get(settings.config_type)
    if default is None:
        return f"no checker is known for {settings.config_type}: set CHECK_COMMAND"
    return f"{default.split()[0]} is not on PATH: install it or set CHECK_COMMAND"


def run(
    template: str, staged: str, timeout: float, *, secrets: Callable[[], Iterable[str]]
) -> None:
    """Run the check on `staged` from its own directory, so relative rule_files resolve.

    A refusal carries the checker's own words: they are what a person needs to fix it.
    A checker that runs out of time or is killed gives no verdict on the config: promtool
    takes 67-80 s and 1.5 GiB on a valid 64 MiB rules file (the README has the figures).
    """
    import subprocess
    import time

    from syncjob.reload_command import _collect

    argv = [part.replace("{path}", staged) for part in shlex.split(template)]
    try:
        # A session of its own, so that a timeout kills whatever the command started too.
        proc = subprocess.Popen(
            argv,
            cwd=os.path.dirname(staged),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except FileNotFoundError:
        raise UsageError(
            f"check command not found: {argv[0]} (CHECK_COMMAND / --check-cmd)"
        ) from None
    except OSError as exc:  # not executable, a directory, ...
        raise UsageError(
            f"check command cannot start: {argv[0]}: {exc.strerror} (CHECK_COMMAND / --check-cmd)"
        ) from None
    # Its output capped (a chatty checker held it all: 1.8 GiB RSS in 2 s of `yes`), as
    # bytes (a checker owes us no UTF-8), and read until it exits, not until its pipe
    # closes (a daemon it left behind may hold that open).
    output, finished = _collect(proc, time.monotonic() + timeout)
    if not finished:
        raise CheckerUnavailable(
            f"{argv[0]} gave no verdict within {timeout:g}s (CHECK_TIMEOUT): "
            "nothing written; raise CHECK_TIMEOUT / --check-timeout for configs this big"
        ) from None
    if killed_by := _signal(proc.returncode):
        raise CheckerUnavailable(
            f"{argv[0]} was killed by {killed_by} (exit {proc.returncode}), likely for memory "
            "(the OOM killer): no verdict on the config, nothing written; give it more memory"
        )
    if proc.returncode != 0:
        lines = output.decode("utf-8", "replace").splitlines()
        said = " | ".join(line.strip() for line in lines if line.strip())
        said = said.replace(staged, "<config>")
        # A served config can name our token file (rule_files:) and make the checker
        # quote it: credentials are scrubbed here, read only now that one is needed.
        said = redact.scrub(said, secrets())
        raise ContentRefused(
            f"{argv[0]} refused the config (exit {proc.returncode}): {said[:1000]}",
            public=f"the checker refused the config "
            f"({os.path.basename(argv[0])} exited {proc.returncode})",
        )


def _signal(returncode: int) -> str | None:
    """The signal that ended the checker: -N from the kernel, 137 from a shell whose child
    got SIGKILL (the OOM killer's); None when it exited by itself."""
    if returncode == 128 + signal.SIGKILL:
        return signal.SIGKILL.name
    if returncode < 0:
        try:
            return signal.Signals(-returncode).name
        except ValueError:
            return f"signal {-returncode}"
    return None
