"""What a pass must do, decided without I/O from what the source, the disk and the state say."""

from dataclasses import dataclass
from enum import Enum

from syncjob.dialects import Fetched
from syncjob.state import State


class Action(Enum):
    NOTHING = "in sync"
    RELOAD = "reload pending"  # the file is right but the target has not taken it
    WRITE = "write"
    REFUSE = "previously rejected"  # the target refused this content before


@dataclass(frozen=True)
class Plan:
    action: Action
    reason: str


def conditional_tag(state: State, disk_hash: str | None) -> str | None:
    """The If-None-Match to send: only while the file is the one this tool put there.

    After drift or a crash mid-write a 304 would say nothing about the disk, so ask in full.
    """
    return state.etag if disk_hash is not None and disk_hash == state.applied_hash else None


def decide(fetched: Fetched | None, disk_hash: str | None, state: State) -> Plan:
    """`fetched` is None when the source answered 304 to `conditional_tag`."""
    wanted = state.source_hash if fetched is None else fetched.sha256
    if wanted is not None and wanted == state.rejected_hash:
        return Plan(Action.REFUSE, "the target rejected this content before; waiting for a new one")
    if wanted == disk_hash:
        if state.pending_reload:
            return Plan(Action.RELOAD, "the target has not reloaded this config yet")
        return Plan(Action.NOTHING, "unchanged at the source" if fetched is None else "same bytes")
    if disk_hash is None:
        return Plan(Action.WRITE, "no config on disk yet")
    if state.applied_hash is not None and disk_hash != state.applied_hash:
        if wanted == state.applied_hash:
            return Plan(Action.WRITE, "drift: the file was changed on disk, putting it back")
        return Plan(Action.WRITE, "changed at the source (and the file had drifted)")
    return Plan(Action.WRITE, "changed at the source")
