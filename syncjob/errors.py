"""The project's error types, and the one place that gives each outcome its exit code.

Codes follow sysexits(3) where one fits, so a cron wrapper or a CronJob's
backoff can tell "retry later" from "fix the source" from "fix the flags".
"""

from enum import IntEnum
from typing import ClassVar


class ExitCode(IntEnum):
    OK = 0
    INTERNAL = 1
    USAGE = 2
    STALE = 3  # `syncjob status`: no pass has succeeded recently, or none ever ran
    DIFFERS = 4  # `syncjob diff`: a pass would change the config (like diff(1)'s 1)
    REFUSED = 65
    UNAVAILABLE = 69
    CANT_WRITE = 73
    TRY_LATER = 75
    REJECTED = 76
    UNAUTHORIZED = 77


MEANINGS = {
    ExitCode.OK: "in sync: nothing to do, or the new config was written and the reload accepted",
    ExitCode.INTERNAL: "unexpected internal error (a bug): traceback in the log",
    ExitCode.USAGE: "usage: unknown flag, missing or invalid setting",
    ExitCode.STALE: "status: no pass has succeeded within --max-age, or none has run",
    ExitCode.DIFFERS: "diff: a pass would change the config (the diff is on stdout)",
    ExitCode.REFUSED: "the source's content was refused (bad envelope, hash mismatch, "
    "not YAML, ...): nothing written",
    ExitCode.UNAVAILABLE: "the source is unavailable: unreachable, timed out or 5xx after "
    "retries, or 404",
    ExitCode.CANT_WRITE: "the config or state could not be written (permissions, read-only, "
    "disk full)",
    ExitCode.TRY_LATER: "try later: another pass holds the lock, the target could not be "
    "reached for the reload (pending), or the checker gave no verdict (CHECK_TIMEOUT, killed)",
    ExitCode.REJECTED: "the target rejected the new config",
    ExitCode.UNAUTHORIZED: "the source refused our credentials (401, 403)",
}


class SyncError(Exception):
    """A failure the pass expects and reports: a one-line message and an exit code.

    The message is for this host (the log, the state file): it may quote a peer or a
    local tool. `public` is what may leave the host (the status report to AlertAgent):
    syncjob's own words only, since a served config can make a checker quote a local
    file (`rule_files: [/var/run/secrets/token]`).
    """

    exit_code: ClassVar[ExitCode] = ExitCode.INTERNAL

    def __init__(self, *args: object, public: str | None = None) -> None:
        super().__init__(*args)
        self._public = public

    @property
    def public(self) -> str:
        """A short text safe to send anywhere; by default the exit code's meaning."""
        return self._public or MEANINGS[self.exit_code]


class UsageError(SyncError):
    exit_code = ExitCode.USAGE


class ContentRefused(SyncError):
    exit_code = ExitCode.REFUSED


class SourceUnavailable(SyncError):
    exit_code = ExitCode.UNAVAILABLE


class WriteFailed(SyncError):
    exit_code = ExitCode.CANT_WRITE


class Busy(SyncError):
    exit_code = ExitCode.TRY_LATER


class TargetUnreachable(SyncError):
    exit_code = ExitCode.TRY_LATER


class CheckerUnavailable(SyncError):
    """The checker gave no verdict (out of time, killed): not a refusal of the content."""

    exit_code = ExitCode.TRY_LATER


class TargetRejected(SyncError):
    exit_code = ExitCode.REJECTED


class CredentialsRefused(SyncError):
    exit_code = ExitCode.UNAUTHORIZED
