"""Is this config healthy? Read from the state file alone, for a person or a host check."""

import time
from dataclasses import dataclass

from syncjob.errors import ExitCode
from syncjob.state import State

STALE = 3  # `syncjob status`: no pass has succeeded recently, or none ever ran


@dataclass(frozen=True)
class Verdict:
    exit_code: int
    reason: str


def judge(state: State | None, max_age: float, now: float | None = None) -> Verdict:
    """0 when the last pass succeeded within `max_age`; else its own code, or STALE."""
    now = time.time() if now is None else now
    if state is None or state.last_attempt is None:
        return Verdict(STALE, "no pass has run yet")
    if state.last_exit_code not in (None, ExitCode.OK):
        return Verdict(
            state.last_exit_code,
            f"last pass failed with exit code {state.last_exit_code}: {state.last_error}",
        )
    if state.last_success is None or now - state.last_success > max_age:
        age = "never" if state.last_success is None else f"{now - state.last_success:.0f}s ago"
        return Verdict(STALE, f"last success {age}, more than {max_age:g}s ago")
    return Verdict(ExitCode.OK, f"in sync: last success {now - state.last_success:.0f}s ago")
