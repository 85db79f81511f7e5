"""Is this config healthy? Read from the state file alone, for a person or a host check."""

import math
import time
from dataclasses import dataclass

from syncjob.errors import ExitCode
from syncjob.state import State

# A clock may step back a little (NTP); more than this and "ago" means nothing.
CLOCK_SKEW = 60.0


@dataclass(frozen=True)
class Verdict:
    exit_code: int
    reason: str


def judge(state: State | None, max_age: float, now: float | None = None) -> Verdict:
    """0 when the last pass succeeded within `max_age`; else its own code, or STALE.

    A last success that is not a finite time, or that lies in the future, is no evidence
    of anything: it is reported as what it is, never as "in sync".
    """
    now = time.time() if now is None else now
    if state is None or state.last_attempt is None:
        return Verdict(ExitCode.STALE, "no pass has run yet")
    if state.last_exit_code not in (None, ExitCode.OK):
        return Verdict(
            state.last_exit_code,
            f"last pass failed with exit code {state.last_exit_code}: {state.last_error}",
        )
    success = state.last_success
    if success is None:
        return Verdict(ExitCode.STALE, f"last success never, more than {max_age:g}s ago")
    if not math.isfinite(success):
        return Verdict(ExitCode.STALE, f"last success is not a time ({success!r})")
    if success > now + CLOCK_SKEW:
        ahead = success - now
        shown = f"{ahead:.0f}s" if ahead < 1e12 else f"{ahead:.3g}s"  # 1e300: no 300 digits
        return Verdict(
            ExitCode.STALE,
            f"last success is {shown} in the future: the clock stepped back, "
            "or the state file is wrong",
        )
    age = max(0.0, now - success)
    if age > max_age:
        return Verdict(ExitCode.STALE, f"last success {age:.0f}s ago, more than {max_age:g}s ago")
    return Verdict(ExitCode.OK, f"in sync: last success {age:.0f}s ago")
