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
    applied_hash=sha(OLD), source_hash=sha(BAD), etag=sha(BAD), rejected_hash=sha(BAD),
    running_hash=sha(OLD),
)  # fmt: skip
# The target rejected BAD, and the rollback did not finish: its copy failed (BAD still on
# disk), or its reload was lost (OLD on disk, not reloaded).
COPY_FAILED = State(
    applied_hash=sha(OLD), source_hash=sha(BAD), etag=sha(BAD), rejected_hash=sha(BAD),
    running_hash=sha(OLD), pending_reload=True,
)  # fmt: skip


@pytest.mark.parametrize(
    ("fetched", "disk", "state", "action", "reason", "held"),
    [
        pytest.param(NOT_MODIFIED, OLD, applied(OLD), Action.NOTHING, "unchanged", False,
                     id="304, in sync"),
        pytest.param(NOT_MODIFIED, OLD, applied(OLD, pending_reload=True), Action.RELOAD,
                     "the target has not reloaded this config yet", False,
                     id="304, reload pending"),
        pytest.param(served(OLD), OLD, applied(OLD), Action.NOTHING, "same bytes", False,
                     id="same bytes"),
        # Nothing says the target loaded it (its reload may be what the lost state held).
        pytest.param(served(OLD), OLD, State(), Action.RELOAD,
                     "no record that the target loaded this config", False,
                     id="same bytes, no state yet (hand-placed, or state lost)"),
        pytest.param(served(OLD), OLD, applied(OLD, pending_reload=True), Action.RELOAD,
                     "the target has not reloaded this config yet", False,
                     id="same bytes, pending"),
        pytest.param(served(NEW), None, State(), Action.WRITE, "no config on disk yet", False,
                     id="no file"),
        pytest.param(served(OLD), None, applied(OLD), Action.WRITE, "no config on disk yet",
                     False, id="file deleted since"),
        pytest.param(served(NEW), OLD, applied(OLD), Action.WRITE, "changed at the source",
                     False, id="changed"),
        pytest.param(served(NEW), OLD, State(), Action.WRITE, "changed at the source", False,
                     id="changed, no state yet"),
        pytest.param(served(OLD), HAND_EDITED, applied(OLD), Action.WRITE,
                     "the file was changed on disk: putting it back", False, id="drift"),
        pytest.param(served(NEW), HAND_EDITED, applied(OLD), Action.WRITE,
                     "changed at the source", False, id="drift and changed"),
        pytest.param(served(BAD), BAD, applied(BAD, rejected_hash=sha(BAD)), Action.NOTHING,
                     "rejected before, and no accepted config to restore", True,
                     id="rejected, nothing to roll back to"),
        pytest.param(served(BAD), OLD, ROLLED_BACK, Action.NOTHING, "same bytes", True,
                     id="rolled back, same bad"),
        pytest.param(NOT_MODIFIED, OLD, ROLLED_BACK, Action.NOTHING, "unchanged", True,
                     id="rolled back, 304"),
        pytest.param(served(NEW), OLD, ROLLED_BACK, Action.WRITE, "changed at the source", False,
                     id="rolled back, then a new config"),
        pytest.param(served(NEW), OLD, applied(OLD, rejected_hash=sha(HAND_EDITED)),
                     Action.WRITE, "changed at the source", False,
                     id="an older rejection does not block"),
        # The rollback of a rejected config did not finish: finished before anything else.
        pytest.param(served(BAD), BAD, COPY_FAILED, Action.RESTORE,
                     "putting back the config the target runs", True,
                     id="rollback copy failed: restore"),
        pytest.param(NOT_MODIFIED, OLD, COPY_FAILED, Action.RELOAD,
                     "the target has not reloaded this config yet", True,
                     id="rollback reload lost: reload"),
        pytest.param(served(BAD), OLD, COPY_FAILED, Action.RELOAD,
                     "the target has not reloaded this config yet", True,
                     id="rollback reload lost, full answer: reload"),
        # The file was edited by hand (and not reloaded), then a rejected config came:
        # what runs is put back, not what was edited, nor anything older.
        pytest.param(served(BAD), HAND_EDITED, ROLLED_BACK, Action.RESTORE,
                     "putting back the config the target runs", True,
                     id="held, and the file was edited"),
    ],
)  # fmt: skip
def test_decide(
    fetched: Fetched | None,
    disk: bytes | None,
    state: State,
    action: Action,
    reason: str,
    held: bool,
) -> None:
    plan = decide(fetched, None if disk is None else sha(disk), state)
    assert (plan.action, plan.held) == (action, held)
    assert plan.reason.startswith(reason)


def test_drift_is_a_field_of_the_plan() -> None:
    assert decide(served(OLD), sha(HAND_EDITED), applied(OLD)).drift
    assert decide(served(NEW), sha(HAND_EDITED), applied(OLD)).drift
    assert not decide(served(NEW), sha(OLD), applied(OLD)).drift
    # A pass killed between its write-ahead and the swap left what runs: not an edit.
    killed = applied(NEW, pending_reload=True, running_hash=sha(OLD))
    assert not decide(served(NEW), sha(OLD), killed).drift
    assert not decide(served(NEW), None, State()).drift


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
        # A schema-valid state with a tag but no served hash: a 304 would mean nothing.
        pytest.param(OLD, State(applied_hash=sha(OLD), etag="t"), None, id="tag, no source hash"),
        pytest.param(
            OLD,
            applied(OLD, source_hash=sha(NEW)),
            None,
            id="served something else, never written: ask in full",
        ),
        pytest.param(None, State(), None, id="first run"),
    ],
)
def test_conditional_tag(disk: bytes | None, state: State, tag: str | None) -> None:
    assert conditional_tag(state, None if disk is None else sha(disk)) == tag


hashes = st.none() | st.sampled_from([sha(OLD), sha(NEW), sha(BAD), sha(HAND_EDITED)])


states = st.builds(
    State,
    applied_hash=hashes,
    source_hash=hashes,
    etag=st.none() | st.just("tag"),
    pending_reload=st.booleans(),
    rejected_hash=hashes,
    running_hash=hashes,
)

# Any state the schema allows: a 304 to conditional_tag never asks for bytes it lacks.


@given(state=states, disk=hashes)
def test_a_304_never_asks_for_a_write(state: State, disk: str | None) -> None:
    # A 304 only answers conditional_tag, and a WRITE needs content: sync.py asserts it.
    if conditional_tag(state, disk) is not None:
        assert decide(None, disk, state).action is not Action.WRITE


@given(state=states, disk=hashes, content=st.sampled_from([OLD, NEW, BAD, HAND_EDITED]))
def test_what_is_wanted_on_disk(state: State, disk: str | None, content: bytes) -> None:
    """The served config, or while it is the rejected one, what the target runs."""
    plan = decide(served(content), disk, state)
    held = sha(content) == state.rejected_hash
    wanted = state.running_hash if held else sha(content)
    assert plan.held is held
    if wanted is None or wanted == disk:
        # No record at all (first pass, or the state lost): one reload, to know it runs.
        unknown = state.applied_hash is None
        reload = wanted is not None and (state.pending_reload or unknown)
        expected = Action.RELOAD if reload else Action.NOTHING
    else:
        expected = Action.RESTORE if held else Action.WRITE
    assert plan.action is expected


def test_the_transitions_of_a_rejected_config_and_its_rollback() -> None:
    """Each step's state, in the order the pass saves them (no I/O)."""
    from syncjob import plan

    running = applied(OLD, running_hash=sha(OLD))
    wrote = plan.intent(running, served(BAD), reloads=True)
    assert (wrote.applied_hash, wrote.pending_reload, wrote.running_hash) == (
        sha(BAD), True, sha(OLD))  # fmt: skip
    refused = plan.rejected(wrote)
    assert (refused.rejected_hash, refused.pending_reload) == (sha(BAD), False)
    restoring = plan.restoring(refused, sha(OLD))
    assert (restoring.applied_hash, restoring.pending_reload) == (sha(OLD), True)
    # Killed here, or the reload was lost: the next pass reloads OLD, then says 76.
    assert decide(None, sha(OLD), restoring).action is Action.RELOAD
    done = plan.rolled_back(plan.verified(restoring, sha(OLD)))
    assert (done.running_hash, done.pending_reload, done.counts.rollbacks) == (sha(OLD), False, 1)
    assert decide(None, sha(OLD), done) == decide(None, sha(OLD), ROLLED_BACK)


@pytest.mark.parametrize(
    ("state", "disk", "running"),
    [
        pytest.param(State(), sha(OLD), sha(OLD), id="the file the target started with"),
        pytest.param(State(), None, None, id="no file, nothing runs of ours"),
        pytest.param(applied(NEW, running_hash=sha(NEW)), sha(OLD), sha(NEW), id="known: kept"),
    ],
)
def test_adopted(state: State, disk: str | None, running: str | None) -> None:
    from syncjob import plan

    assert plan.adopted(state, disk).running_hash == running


def test_a_verified_reload_makes_the_config_the_running_one() -> None:
    from syncjob import plan

    state = plan.verified(applied(NEW, pending_reload=True, running_hash=sha(OLD)), sha(NEW))
    assert (state.running_hash, state.pending_reload, state.counts.reloads) == (sha(NEW), False, 1)
    unverified = plan.unverified(applied(NEW, pending_reload=True), sha(NEW))
    assert (unverified.running_hash, unverified.counts.reloads) == (sha(NEW), 0)


def test_success_and_failure_bookkeeping() -> None:
    from syncjob import plan

    failed = plan.failed(plan.began(State(), 100.0), 69, "source unavailable")
    assert (failed.last_exit_code, failed.consecutive_failures, failed.counts.runs) == (69, 1, 1)
    ok = plan.succeeded(failed, 101.0)
    assert (ok.last_exit_code, ok.last_error, ok.consecutive_failures) == (0, None, 0)
    assert (ok.last_success, ok.counts.successes, ok.counts.failures) == (101.0, 1, 1)


def test_a_failed_pass_remembers_what_it_failed_on_and_asks_in_full_next_time() -> None:
    from syncjob import plan

    refused = plan.failed(applied(OLD), 65, "not YAML", served=sha(NEW))
    assert (refused.source_hash, refused.applied_hash, refused.etag) == (sha(NEW), sha(OLD), None)
    assert conditional_tag(refused, sha(OLD)) is None
    unreachable = plan.failed(applied(OLD), 69, "source unavailable")
    assert unreachable.source_hash == sha(OLD)
    assert unreachable.etag == sha(OLD)


def test_an_unfinished_rollback_is_not_drift() -> None:
    """A rollback whose copy failed leaves the rejected file this tool wrote: no edit."""
    assert not decide(served(BAD), sha(BAD), COPY_FAILED).drift
