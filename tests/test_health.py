import pytest

from syncjob.health import STALE, judge
from syncjob.state import State

NOW = 1_800_000_000.0


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
    ],
)
def test_judge(state, code, reason):
    verdict = judge(state, max_age=90, now=NOW)
    assert verdict.exit_code == code
    assert reason in verdict.reason
