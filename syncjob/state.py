"""The state file: what the last passes did, kept beside the config.

It is a hint and a ledger, never the truth about the config: the decision to
write is made on the bytes on disk. Counts are cumulative so that one-shot runs
(cron, CronJob) add up like a long-running process.

Every pass reads it, so it is checked by the strict loader below rather than by
jsonschema (a 65 ms import); the test suite proves that whatever this module writes
satisfies `schemas/state.schema.json` and whatever the schema rejects, it rejects.
"""

import json
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from syncjob import files

SCHEMA_VERSION = 1
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Counts:
    runs: int = 0
    successes: int = 0
    failures: int = 0
    changes: int = 0
    reloads: int = 0
    rollbacks: int = 0


@dataclass(frozen=True)
class State:
    # SHA-256 of the config this tool last put in place, and of what the source last
    # served: they differ after a rollback, while the source still serves the rejected one.
    applied_hash: str | None = None
    source_hash: str | None = None
    version: str | None = None  # the source's version tag for it
    etag: str | None = None  # If-None-Match for the next fetch: it describes source_hash
    pending_reload: bool = False  # applied_hash is on disk, but the target has not taken it yet
    rejected_hash: str | None = None  # content the target refused: not tried again
    # SHA-256 of the config the target was last verified to have loaded (or was started
    # with): the last good copy holds it, and a rollback restores it. None: not known.
    running_hash: str | None = None
    last_attempt: float | None = None
    last_success: float | None = None
    last_change: float | None = None
    last_error: str | None = None
    last_exit_code: int | None = None
    consecutive_failures: int = 0
    counts: Counts = field(default_factory=Counts)

    def count(self, **increments: int) -> "State":
        bumped = {name: getattr(self.counts, name) + n for name, n in increments.items()}
        return replace(self, counts=replace(self.counts, **bumped))


_MISSING: Any = object()
_NULLABLE_STR = (str, type(None))
_NULLABLE_NUM = (int, float, type(None))
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "applied_hash": _NULLABLE_STR,
    "source_hash": _NULLABLE_STR,
    "version": _NULLABLE_STR,
    "etag": _NULLABLE_STR,
    "pending_reload": (bool,),
    "rejected_hash": _NULLABLE_STR,
    "running_hash": _NULLABLE_STR,
    "last_attempt": _NULLABLE_NUM,
    "last_success": _NULLABLE_NUM,
    "last_change": _NULLABLE_NUM,
    "last_error": _NULLABLE_STR,
    "last_exit_code": (int, type(None)),
    "consecutive_failures": (int,),
}


# Fields newer than schema version 1's first files: absent means not known yet.
_ADDED_LATER: dict[str, Any] = {"running_hash": None}


def to_json(state: State) -> dict[str, Any]:
    # Not dataclasses.asdict: its deep copies cost a --loop half a MiB of RSS that it
    # never gives back, and these are flat records of plain values.
    return {"schema_version": SCHEMA_VERSION, **vars(state), "counts": dict(vars(state.counts))}


def from_json(obj: Any) -> State:
    """A State from parsed JSON; ValueError naming the first field that is wrong."""
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    version = obj.get("schema_version")
    if type(version) is not int or version != SCHEMA_VERSION:  # True == 1 in Python
        raise ValueError(f"schema_version is {obj.get('schema_version')!r}, not {SCHEMA_VERSION}")
    obj = {**_ADDED_LATER, **obj}
    for name, types in _FIELD_TYPES.items():
        _check(name, obj.get(name, _MISSING), types)
    counts = obj.get("counts")
    if not isinstance(counts, dict):
        raise ValueError("counts: not an object")
    for name in Counts.__dataclass_fields__:
        _check(f"counts.{name}", counts.get(name, _MISSING), (int,), minimum=0)
    _check("consecutive_failures", obj["consecutive_failures"], (int,), minimum=0)
    return State(
        **{name: obj[name] for name in _FIELD_TYPES},
        counts=Counts(**{name: counts[name] for name in Counts.__dataclass_fields__}),
    )


def _check(name: str, value: Any, types: tuple[type, ...], minimum: int | None = None) -> None:
    if value is _MISSING:
        raise ValueError(f"{name}: missing")
    # bool is an int in Python, not in JSON Schema
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        raise ValueError(f"{name}: {value!r} is not of the expected type")
    if minimum is not None and isinstance(value, int) and value < minimum:
        raise ValueError(f"{name}: {value!r} is below {minimum}")


# A state file is about 1 KiB; a bigger one is not ours, and is never read whole.
MAX_BYTES = 1 << 20


def load(path: Path) -> State:
    """The saved state; a fresh one when missing, corrupt, too big or unreadable (logged).
    WriteFailed when something other than a regular file is at its name."""
    try:
        data = files.read_capped(path, MAX_BYTES)
        return State() if data is None else from_json(json.loads(data))
    except (OSError, ValueError, RecursionError) as exc:
        log.warning("state file %s is unusable (%s): starting a new one", path, exc)
        return State()


def save(path: Path, state: State) -> None:
    data = json.dumps(to_json(state), indent=2).encode() + b"\n"
    files.write_atomic(path, data, private=True)
