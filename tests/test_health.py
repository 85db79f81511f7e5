import pytest

from syncjob.errors import ExitCode
from syncjob.health import judge
from syncjob.state import State

NOW = 1_800_000_000.0
STALE = ExitCode.STALE


@pytest.mark.parametrize(
    ("state", "code", "reason"),
    [
        (State(), STALE, "no pass has run yet"),
        (State(last_attempt=NOW - 5, last_success=NOW - 5, last_exit_code=0), 0, "in sync"),
        (
            State(last_attempt=NOW - 5, last_exit_code=69, last_error="source unavailable: x"),
            69,
            "last pass failed with exit code 69: source unavailable: x",
        ),
        (State(last_attempt=NOW, last_success=NOW - 500, last_exit_code=0), STALE, "500s ago"),
        (State(last_attempt=NOW, last_exit_code=0), STALE, "last success never"),
        # The clock stepped back (or the file lies): never "in sync", never "-999998020s ago".
        (
            State(last_attempt=NOW, last_success=NOW + 999_998_020, last_exit_code=0),
            STALE,
            "999998020s in the future",
        ),
        (State(last_attempt=NOW, last_success=1e300, last_exit_code=0), STALE, "in the future"),
        (
            State(last_attempt=NOW, last_success=float("nan"), last_exit_code=0),
            STALE,
            "not a time (nan)",
        ),
        (
            State(last_attempt=NOW, last_success=float("inf"), last_exit_code=0),
            STALE,
            "not a time (inf)",
        ),
        # A few seconds of NTP step is not worth a false alarm.
        (
            State(last_attempt=NOW, last_success=NOW + 5, last_exit_code=0),
            0,
            "in sync: last success 0s ago",
        ),
    ],
)
def test_judge(state, code, reason):
    verdict = judge(state, max_age=90, now=NOW)
    assert verdict.exit_code == code
    assert reason in verdict.reason
