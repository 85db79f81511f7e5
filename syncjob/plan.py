"""What a pass must do, and what the state becomes at each step: decided without I/O.

`decide` reads what the source served, what is on disk and what the state says, and
names one action. The functions below it are the state's transitions, one per step of
the pass (intent, swapped, verified, rejected, ...): the pass calls them in order and
saves the result where a crash must find it.
"""

from dataclasses import dataclass, replace
from enum import Enum

from syncjob.dialects import Fetched
from syncjob.state import State


class Action(Enum):
    NOTHING = "in sync"
    RELOAD = "reload pending"  # the file is right but the target has not taken it
    WRITE = "write"  # put the source's config in place
    RESTORE = "restore"  # put the last good copy back: the source's config was rejected


@dataclass(frozen=True)
class Plan:
    action: Action
    reason: str
    # The file on disk is neither what this tool put there nor what the target runs:
    # someone edited it. It is put back (and logged), never taken as the new truth.
    drift: bool = False
    # The source serves a config the target rejected before: the target keeps the last
    # one it ran, and the pass ends with REJECTED until the source serves another.
    held: bool = False


def conditional_tag(state: State, disk_hash: str | None) -> str | None:
    """The If-None-Match to send, when a 304 can only mean something this state handles.

    Only while the file is the one this tool put there (after drift or a crash mid-write
    a 304 would say nothing about the disk), and only for a served config that is on
    disk or was rejected: either way a 304 needs no bytes.
    """
    if disk_hash is None or disk_hash != state.applied_hash or state.source_hash is None:
        return None
    if state.source_hash not in (state.applied_hash, state.rejected_hash):
        return None
    return state.etag


def decide(fetched: Fetched | None, disk_hash: str | None, state: State) -> Plan:
    """`fetched` is None when the source answered 304 to `conditional_tag`."""
    served = state.source_hash if fetched is None else fetched.sha256
    held = served is not None and served == state.rejected_hash
    # While the source serves a rejected config, what belongs on disk is the target's own.
    wanted = state.running_hash if held else served
    # A rollback whose copy failed leaves the rejected file, which this tool wrote: not an edit.
    unfinished = state.rejected_hash if state.pending_reload else None
    drift = (
        disk_hash is not None
        and state.applied_hash is not None
        and disk_hash not in (state.applied_hash, state.running_hash, unfinished)
    )
    if wanted is None:  # rejected, and no config the target ran is known to keep
        return Plan(Action.NOTHING, "rejected before, and no accepted config to restore", held=held)
    if wanted == disk_hash:
        if state.pending_reload:
            return Plan(Action.RELOAD, "the target has not reloaded this config yet", held=held)
        if state.applied_hash is None:  # no state (first pass, or lost): one reload to know
            return Plan(Action.RELOAD, "no record that the target loaded this config", held=held)
        return Plan(Action.NOTHING, "unchanged" if fetched is None else "same bytes", held=held)
    if held:
        return Plan(Action.RESTORE, "putting back the config the target runs", drift, held)
    if disk_hash is None:
        return Plan(Action.WRITE, "no config on disk yet")
    if drift and wanted == state.applied_hash:
        return Plan(Action.WRITE, "the file was changed on disk: putting it back", drift)
    return Plan(Action.WRITE, "changed at the source", drift)


# The state's transitions. Each is what is durably true after one step of the pass.


def began(state: State, now: float) -> State:
    return replace(state, last_attempt=now).count(runs=1)


def served(state: State, fetched: Fetched | None, disk_hash: str | None) -> State:
    """The source answered and nothing needs writing: remember its tag for the next 304."""
    if fetched is None:
        return state
    if fetched.sha256 == state.rejected_hash:
        return replace(state, source_hash=fetched.sha256, etag=fetched.etag)
    return replace(
        state,
        applied_hash=disk_hash,
        source_hash=fetched.sha256,
        etag=fetched.etag,
        version=fetched.version,
    )


def reloading(state: State) -> State:
    """A reload is asked of the target: until one is verified, it stays pending (a pass
    with no state reloads to know, and must not forget it did not get through)."""
    return replace(state, pending_reload=True)


def adopted(state: State, disk_hash: str | None) -> State:
    """A file this tool has never verified is the one the target was started with,
    unless the target refused it: then what it runs is not known."""
    if state.running_hash is not None or disk_hash in (None, state.rejected_hash):
        return state
    return replace(state, running_hash=disk_hash)


def intent(state: State, fetched: Fetched, reloads: bool) -> State:
    """Written ahead of the swap: a pass killed after it finishes the reload, not a rewrite."""
    return replace(
        state,
        applied_hash=fetched.sha256,
        source_hash=fetched.sha256,
        etag=fetched.etag,
        version=fetched.version,
        pending_reload=reloads,
        rejected_hash=None,
    )


def swapped(state: State, now: float) -> State:
    return replace(state, last_change=now).count(changes=1)


def restoring(state: State, good_hash: str) -> State:
    """Written ahead of putting the last good copy back: until it is reloaded, it is pending."""
    return replace(state, applied_hash=good_hash, pending_reload=True)


def verified(state: State, loaded_hash: str | None) -> State:
    """The target (if any) has loaded `loaded_hash`: it is what runs, and the last good."""
    return replace(state, pending_reload=False, running_hash=loaded_hash).count(reloads=1)


def unverified(state: State, loaded_hash: str | None) -> State:
    """Written with no target to reload: it runs from its next start."""
    return replace(state, pending_reload=False, running_hash=loaded_hash)


def rejected(state: State) -> State:
    """The target refused the config on disk: never tried again until the source changes."""
    return replace(state, pending_reload=False, rejected_hash=state.applied_hash)


def rolled_back(state: State) -> State:
    return state.count(rollbacks=1)


def succeeded(state: State, now: float) -> State:
    return replace(
        state, last_success=now, last_error=None, last_exit_code=0, consecutive_failures=0
    ).count(successes=1)


def failed(state: State, exit_code: int, error: str, served: str | None = None) -> State:
    """`served`: the config the pass failed on, when the source's answer was read. It
    becomes what the source last served (status shows it beside the one in place); its
    tag is dropped, so the next fetch asks in full."""
    if served is not None and served != state.source_hash:
        state = replace(state, source_hash=served, etag=None)
    return replace(
        state,
        last_error=error,
        last_exit_code=exit_code,
        consecutive_failures=state.consecutive_failures + 1,
    ).count(failures=1)
