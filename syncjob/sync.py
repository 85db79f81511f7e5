"""One pass: fetch -> compare -> validate -> write -> reload -> record.

Plain orchestration over collaborators handed in as arguments, so a test can give
it a fake source or target and a real run gives it urllib3.
"""

import logging
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, replace
from typing import NoReturn, Protocol

from syncjob import checker, files, lock, plan, validate
from syncjob import state as ledger
from syncjob.dialects import Fetched
from syncjob.errors import ExitCode, SyncError, TargetRejected
from syncjob.plan import Action
from syncjob.settings import Settings
from syncjob.state import State

log = logging.getLogger("syncjob")


class SourceLike(Protocol):
    def fetch(self, if_none_match: str | None, into: files.Spool) -> Fetched | None: ...


class TargetLike(Protocol):
    def reload(self) -> None: ...


@dataclass(frozen=True)
class Outcome:
    exit_code: ExitCode
    summary: str  # "in sync", "written", "reloaded", or the error's one line
    config_hash: str | None
    version: str | None
    duration: float
    state: State | None  # None when the pass could not take the lock

    @property
    def ok(self) -> bool:
        return self.exit_code == ExitCode.OK


def run_once(
    settings: Settings,
    *,
    source: SourceLike,
    target: TargetLike | None,
    clock: Callable[[], float] = time.time,
) -> Outcome:
    """Run one pass and record it; expected failures become an Outcome, bugs raise."""
    started = time.monotonic()
    try:
        with lock.exclusive(settings.lock_path):
            outcome = _Pass(settings, source, target, clock).run()
    except SyncError as exc:  # the lock itself: nothing was touched, nothing recorded
        outcome = Outcome(exc.exit_code, str(exc), None, None, 0.0, None)
    outcome = replace(outcome, duration=time.monotonic() - started)
    _log(settings, outcome)
    return outcome


class _Pass:
    """`self.state` is at every step what is durably true, so a failure records the truth."""

    def __init__(
        self,
        settings: Settings,
        source: SourceLike,
        target: TargetLike | None,
        clock: Callable[[], float],
    ) -> None:
        self.settings, self.source, self.target, self.clock = settings, source, target, clock
        self.state = ledger.load(settings.state_path)

    def run(self) -> Outcome:
        now = self.clock()
        self.state = replace(self.state, last_attempt=now).count(runs=1)
        try:
            summary = self._sync()
        except SyncError as exc:
            code, summary = exc.exit_code, str(exc)
            self.state = replace(
                self.state,
                last_error=summary,
                last_exit_code=int(code),
                consecutive_failures=self.state.consecutive_failures + 1,
            ).count(failures=1)
        else:
            code = ExitCode.OK
            self.state = replace(
                self.state,
                last_success=self.clock(),
                last_error=None,
                last_exit_code=0,
                consecutive_failures=0,
            ).count(successes=1)
        try:
            ledger.save(self.settings.state_path, self.state)
        except SyncError as exc:
            if code == ExitCode.OK:
                code, summary = exc.exit_code, str(exc)
        return Outcome(code, summary, self.state.applied_hash, self.state.version, 0.0, self.state)

    def _sync(self) -> str:
        path = self.settings.config_path
        ours = (path, self.settings.state_path, self.settings.last_good_path)
        if removed := [t for f in ours for t in files.remove_stray_temps(f)]:
            log.info("removed %d temporary file(s) left by an interrupted pass", len(removed))
        on_disk = files.file_hash(path)
        with files.spool(path) as spool:  # the new bytes, if any: removed unless swapped in
            fetched = self.source.fetch(plan.conditional_tag(self.state, on_disk), spool)
            return self._act(fetched, spool, on_disk)

    def _act(self, fetched: Fetched | None, spool: files.Spool, on_disk: str | None) -> str:
        path = self.settings.config_path
        decision = plan.decide(fetched, on_disk, self.state)
        if "drift" in decision.reason:
            log.warning("%s: %s", path, decision.reason)

        if decision.action is Action.REFUSE:
            rejected = (self.state.rejected_hash or "")[:12]
            raise TargetRejected(
                f"the target rejected config {rejected} before; waiting for the source to change"
            )
        if decision.action is Action.NOTHING:
            if fetched is not None:  # remember the tag even when the bytes were already there
                self.state = replace(
                    self.state,
                    applied_hash=on_disk,
                    source_hash=on_disk,
                    etag=fetched.etag,
                    version=fetched.version,
                )
            return "in sync"
        if decision.action is Action.RELOAD:
            self._reload()
            return "reloaded"
        assert fetched is not None  # WRITE is only decided on fetched content
        self._write(fetched, spool, on_disk)
        self._reload()
        return "written"

    def _write(self, fetched: Fetched, spool: files.Spool, on_disk: str | None) -> None:
        """Gate, check the staged file, keep the last good copy, then swap."""
        path = self.settings.config_path
        spool.finish()
        with spool.open() as new, path.open("rb") if on_disk else nullcontext() as current:
            validate.check(new, current, self.settings.config_type, self.settings.allow_empty)
        intent = replace(
            self.state,
            applied_hash=fetched.sha256,
            source_hash=fetched.sha256,
            etag=fetched.etag,
            version=fetched.version,
            pending_reload=self.target is not None,
            rejected_hash=None,
        )
        if check := checker.command(self.settings):
            checker.run(check, spool.path)
        if on_disk is not None and self._known_good(on_disk):
            files.copy_atomic(path, self.settings.last_good_path, mask=files.NOT_WORLD_WRITABLE)
        # Write-ahead: if we die after the swap, the next pass sees the pending
        # reload and finishes it instead of taking the new file for drift.
        ledger.save(self.settings.state_path, intent)
        files.swap(spool.path, path)
        self.state = replace(intent, last_change=self.clock()).count(changes=1)

    def _known_good(self, on_disk: str | None) -> bool:
        """Whether the file about to be replaced is one the target runs happily.

        A file this tool has not written yet is the one the target started with.
        """
        s = self.state
        if on_disk == s.rejected_hash:
            return False
        return s.applied_hash is None or (on_disk == s.applied_hash and not s.pending_reload)

    def _reload(self) -> None:
        if self.target is None:
            self.state = replace(self.state, pending_reload=False)
            return
        try:
            self.target.reload()
        except TargetRejected as rejected:
            self._roll_back(rejected)
        self.state = replace(self.state, pending_reload=False).count(reloads=1)

    def _roll_back(self, rejected: TargetRejected) -> NoReturn:
        """Put the last good config back, make the target take it again, and say so (76)."""
        bad = self.state.applied_hash
        self.state = replace(self.state, pending_reload=False, rejected_hash=bad)
        good = files.file_hash(self.settings.last_good_path)
        if good is None:
            raise TargetRejected(
                f"{rejected}; no last good copy to roll back to (first pass): "
                "the rejected file stays in place"
            )
        files.copy_atomic(self.settings.last_good_path, self.settings.config_path)
        self.state = replace(self.state, applied_hash=good, pending_reload=True)
        ledger.save(self.settings.state_path, self.state)
        assert self.target is not None
        try:
            self.target.reload()
        except SyncError as again:
            raise TargetRejected(f"{rejected}; the rollback did not take either: {again}") from None
        self.state = replace(self.state, pending_reload=False).count(reloads=1, rollbacks=1)
        log.warning("rolled back %s to the last good config", self.settings.config_path)
        raise TargetRejected(f"{rejected}; rolled back to the last good config")


def _log(settings: Settings, outcome: Outcome) -> None:
    fields = {
        "outcome": outcome.summary if outcome.ok else "failed",
        "exit_code": int(outcome.exit_code),
        "hash": outcome.config_hash,
        "version": outcome.version,
        "duration_ms": round(outcome.duration * 1000, 1),
        "cluster_id": settings.cluster_id,
        "config_type": settings.config_type,
    }
    if outcome.ok:
        log.info("pass %s", outcome.summary, extra={"fields": fields})
    elif outcome.state is None and outcome.exit_code == ExitCode.TRY_LATER:
        # another pass has the lock: nothing wrong, nothing done
        log.warning(
            "pass skipped: %s",
            outcome.summary,
            extra={"fields": {**fields, "error": outcome.summary}},
        )
    else:
        log.error(
            "pass failed: %s",
            outcome.summary,
            extra={"fields": {**fields, "error": outcome.summary}},
        )
