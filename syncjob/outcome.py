"""What a pass and the loop report: plain values, shared by the modules that publish them.

At the bottom of the package (it imports only errors and state), so that the loop, its
server, the metrics and the publishers read outcomes without importing the pass itself.
"""

from dataclasses import dataclass

from syncjob.errors import ExitCode
from syncjob.state import State


@dataclass(frozen=True)
class Outcome:
    exit_code: ExitCode
    summary: str  # "in sync", "written", "reloaded", or the error's one line
    config_hash: str | None  # what the pass served or kept; a refused config's own hash
    version: str | None
    duration: float
    state: State | None  # None when the pass could not take the lock
    checked: bool = True  # False: no checker ran or would have run on a new config
    # What may leave the host (errors.SyncError.public); "": the exit code's meaning
    public_summary: str = ""

    @property
    def ok(self) -> bool:
        return self.exit_code == ExitCode.OK


@dataclass(frozen=True)
class Progress:
    """What the loop has done so far; replaced whole, never mutated."""

    started: float  # wall clock, for uptime and timestamps
    started_mono: float
    last_start_mono: float | None = None
    last_end_mono: float | None = None
    last_end: float | None = None  # wall clock
    last: Outcome | None = None
    passes: int = 0  # passes run by this process
    ready: bool = False  # a config verified by this process (or already in sync) is on disk
    next_pass: float | None = None  # wall clock

    @property
    def last_activity_mono(self) -> float:
        return max(self.started_mono, self.last_start_mono or 0, self.last_end_mono or 0)
