"""plan.decide and plan.conditional_tag: what a pass must do, from source, disk and state."""

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncjob.dialects import Fetched
from syncjob.plan import Action, conditional_tag, decide
from syncjob.state import State

OLD = b"global:\n  scrape_interval: 15s\n"
NEW = b"global:\n  scrape_interval: 30s\n"
BAD = b"global:\n  scrape_interval: never\n"
HAND_EDITED = b"global:\n  scrape_interval: 1s  # hot fix\n"


def sha(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def served(content: bytes) -> Fetched:
    return Fetched(sha(content), version="v1", etag=sha(content), dialect="raw")


def applied(content: bytes, **more: object) -> State:
    """The state after this tool put `content` in place, as the source served it."""
    fields: dict[str, object] = {"applied_hash": sha(content), "source_hash": sha(content),
                                 "etag": sha(content), **more}  # fmt: skip
    return State(**fields)  # type: ignore[arg-type]


NOT_MODIFIED = None  # what Source.fetch returns for a 304
# After the target refused BAD and the last good OLD was put back: the source still serves BAD.
ROLLED_BACK = State(
    applied_hash=sha(OLD), source_hash=sha(BAD), etag=sha(BAD), rejected_hash=sha(BAD)
)


@pytest.mark.parametrize(
    ("fetched", "disk", "state", "action", "reason"),
    [
        pytest.param(NOT_MODIFIED, OLD, applied(OLD), Action.NOTHING, "unchanged at the source",
                     id="304, in sync"),
        pytest.param(NOT_MODIFIED, OLD, applied(OLD, pending_reload=True), Action.RELOAD,
                     "the target has not reloaded this config yet", id="304, reload pending"),
        pytest.param(served(OLD), OLD, applied(OLD), Action.NOTHING, "same bytes",
                     id="same bytes"),
        pytest.param(served(OLD), OLD, State(), Action.NOTHING, "same bytes",
                     id="same bytes, no state yet (hand-placed, or state lost)"),
        pytest.param(served(OLD), OLD, applied(OLD, pending_reload=True), Action.RELOAD,
                     "the target has not reloaded this config yet", id="same bytes, pending"),
        pytest.param(served(NEW), None, State(), Action.WRITE, "no config on disk yet",
                     id="no file"),
        pytest.param(served(OLD), None, applied(OLD), Action.WRITE, "no config on disk yet",
                     id="file deleted since"),
        pytest.param(served(NEW), OLD, applied(OLD), Action.WRITE, "changed at the source",
                     id="changed"),
        pytest.param(served(NEW), OLD, State(), Action.WRITE, "changed at the source",
                     id="changed, no state yet"),
        pytest.param(served(OLD), HAND_EDITED, applied(OLD), Action.WRITE,
                     "drift: the file was changed on disk, putting it back", id="drift"),
        pytest.param(served(NEW), HAND_EDITED, applied(OLD), Action.WRITE,
                     "changed at the source (and the file had drifted)", id="drift and changed"),
        pytest.param(served(BAD), BAD, applied(BAD, rejected_hash=sha(BAD)), Action.REFUSE,
                     "the target rejected this content before; waiting for a new one",
                     id="rejected, nothing to roll back to"),
        pytest.param(served(BAD), OLD, ROLLED_BACK, Action.REFUSE,
                     "the target rejected this content before", id="rolled back, same bad"),
        pytest.param(NOT_MODIFIED, OLD, ROLLED_BACK, Action.REFUSE,
                     "the target rejected this content before", id="rolled back, 304"),
        pytest.param(served(NEW), OLD, ROLLED_BACK, Action.WRITE, "changed at the source",
                     id="rolled back, then a new config"),
        pytest.param(served(NEW), OLD, applied(OLD, rejected_hash=sha(HAND_EDITED)), Action.WRITE,
                     "changed at the source", id="an older rejection does not block"),
    ],
)  # fmt: skip
def test_decide(
    fetched: Fetched | None, disk: bytes | None, state: State, action: Action, reason: str
) -> None:
    plan = decide(fetched, None if disk is None else sha(disk), state)
    assert plan.action is action
    assert plan.reason.startswith(reason)


def test_drift_is_named_in_the_reason() -> None:
    # sync.py logs a warning when the reason mentions drift.
    assert "drift" in decide(served(OLD), sha(HAND_EDITED), applied(OLD)).reason
    assert "drift" in decide(served(NEW), sha(HAND_EDITED), applied(OLD)).reason
    assert "drift" not in decide(served(NEW), sha(OLD), applied(OLD)).reason


@pytest.mark.parametrize(
    ("disk", "state", "tag"),
    [
        pytest.param(OLD, applied(OLD), sha(OLD), id="file is the applied one: ask conditionally"),
        pytest.param(OLD, applied(OLD, etag='"v7"'), '"v7"', id="quoted ETag"),
        pytest.param(OLD, ROLLED_BACK, sha(BAD), id="rolled back: the tag of what is served"),
        pytest.param(HAND_EDITED, applied(OLD), None, id="drift: ask in full"),
        pytest.param(None, applied(OLD), None, id="no file: ask in full"),
        pytest.param(OLD, State(etag=sha(OLD)), None, id="no applied hash: ask in full"),
        pytest.param(OLD, State(applied_hash=sha(OLD)), None, id="no tag known"),
        pytest.param(None, State(), None, id="first run"),
    ],
)
def test_conditional_tag(disk: bytes | None, state: State, tag: str | None) -> None:
    assert conditional_tag(state, None if disk is None else sha(disk)) == tag


hashes = st.none() | st.sampled_from([sha(OLD), sha(NEW), sha(BAD), sha(HAND_EDITED)])


def _can_be_left_by_a_pass(state: State) -> bool:
    # sync.py sets applied_hash and source_hash together, except a rollback, which
    # marks what the source serves as rejected; a fresh state has neither.
    if state.source_hash is None:
        return state.applied_hash is None
    return state.source_hash in (state.applied_hash, state.rejected_hash)


states = st.builds(
    State,
    applied_hash=hashes,
    source_hash=hashes,
    etag=st.none() | st.just("tag"),
    pending_reload=st.booleans(),
    rejected_hash=hashes,
).filter(_can_be_left_by_a_pass)


@given(state=states, disk=hashes)
def test_a_304_never_asks_for_a_write(state: State, disk: str | None) -> None:
    # A 304 only answers conditional_tag, and a WRITE needs content: sync.py asserts it.
    if conditional_tag(state, disk) is not None:
        assert decide(None, disk, state).action is not Action.WRITE


@given(state=states, disk=hashes, content=st.sampled_from([OLD, NEW, BAD, HAND_EDITED]))
def test_write_exactly_when_the_bytes_differ(
    state: State, disk: str | None, content: bytes
) -> None:
    plan = decide(served(content), disk, state)
    if sha(content) == state.rejected_hash:
        assert plan.action is Action.REFUSE
    elif sha(content) != disk:
        assert plan.action is Action.WRITE
    else:
        assert plan.action is (Action.RELOAD if state.pending_reload else Action.NOTHING)
