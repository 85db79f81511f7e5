"""`syncjob status`: the state file's verdict, and what the state file cannot say itself.

A pass that cannot write its folder (read-only, full, missing) cannot record that it
failed either: no state is then not "no pass has run", and status says so.
"""

import os
from pathlib import Path
from typing import Any

from syncjob import health
from syncjob import state as ledger
from syncjob.errors import ExitCode
from syncjob.health import Verdict
from syncjob.settings import Settings
from syncjob.state import State


def judge(settings: Settings, state: State, max_age: float, now: float | None = None) -> Verdict:
    if state.last_attempt is None and (why := unrecordable(settings.state_path)):
        return Verdict(
            ExitCode.CANT_WRITE,
            f"no state recorded in {settings.state_path}: {why}, so the last pass could not "
            "record one (its log line says what it did)",
        )
    return health.judge(state, max_age, now)


def unrecordable(path: Path) -> str | None:
    """Why no state file could be written at `path`, if anything says so; None otherwise.
    Read-only: status never writes to find out."""
    folder = path.parent
    if not folder.is_dir():
        return f"the folder {folder} does not exist"
    if not os.access(folder, os.W_OK):  # also false on a read-only file system, even as root
        return f"the folder {folder} is not writable"
    try:
        if os.statvfs(folder).f_bavail == 0:
            return f"the disk holding {folder} is full"
    except OSError:
        pass
    return None


def failed_config_hash(state: State) -> str | None:
    """The SHA-256 of the config the last pass failed on (refused, rejected, not written),
    when it was not the one in place."""
    if state.last_exit_code in (None, ExitCode.OK) or state.source_hash == state.applied_hash:
        return None
    return state.source_hash


def as_json(settings: Settings, state: State, verdict: Verdict) -> dict[str, Any]:
    return {
        "healthy": verdict.exit_code == 0,
        "reason": verdict.reason,
        "config_path": str(settings.config_path),
        "state_path": str(settings.state_path),
        "failed_config_hash": failed_config_hash(state),
        **ledger.to_json(state),
    }
