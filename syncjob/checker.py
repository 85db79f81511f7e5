"""The target's own checker (promtool, amtool) run on the staged file before the swap."""

import os
import shlex

from syncjob.errors import ContentRefused, UsageError
from syncjob.settings import DEFAULT_CHECKERS, Settings

TIMEOUT = 60.0  # seconds; promtool on a large rules file takes a few


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


def run(template: str, staged: str) -> None:
    """Run the check on `staged` from its own directory, so relative rule_files resolve.

    A refusal carries the checker's own words: they are what a person needs to fix it.
    """
    import subprocess

    argv = [part.replace("{path}", staged) for part in shlex.split(template)]
    try:
        done = subprocess.run(
            argv,
            cwd=os.path.dirname(staged),
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
    except FileNotFoundError:
        raise UsageError(
            f"check command not found: {argv[0]} (CHECK_COMMAND / --check-cmd)"
        ) from None
    except subprocess.TimeoutExpired:
        raise ContentRefused(
            f"check command gave no answer within {TIMEOUT:g}s: {template}"
        ) from None
    if done.returncode != 0:
        said = " | ".join(
            line.strip() for line in (done.stdout + done.stderr).splitlines() if line.strip()
        )
        said = said.replace(staged, "<config>")
        raise ContentRefused(
            f"{argv[0]} refused the config (exit {done.returncode}): {said[:1000]}"
        )
