"""One pass: fetch -> decide -> validate -> check -> keep the last good copy -> swap ->
reload -> verify -> roll back -> record.

Plain orchestration over collaborators handed in as arguments, so a test can give it
a fake source or target and a real run gives it urllib3. What the state becomes at
each step is decided in `plan`; this module only does the I/O, in order.
"""

import logging
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import replace
from typing import NoReturn, Protocol

from syncjob import checker, files, lock, plan, redact, validate
from syncjob import state as ledger
from syncjob.dialects import Fetched
from syncjob.errors import ExitCode, SyncError, TargetRejected
from syncjob.outcome import Outcome
from syncjob.plan import Action
from syncjob.settings import Settings
from syncjob.state import State

log = logging.getLogger("syncjob")


class SourceLike(Protocol):
    def fetch(self, if_none_match: str | None, into: files.Spool) -> Fetched | None: ...


class TargetLike(Protocol):
    def reload(self) -> None: ...


def run_and_publish(
    settings: Settings, *, source: SourceLike, target: TargetLike | None
) -> Outcome:
    """A pass, then its metrics and status report: what the one-shot command and each
    turn of the loop do."""
    outcome = run_once(settings, source=source, target=target)
    if settings.pushgateway_url or settings.report_status:
        from syncjob.publish import after_pass

        after_pass(settings, outcome)
    return outcome


def run_once(
    settings: Settings,
    *,
    source: SourceLike,
    target: TargetLike | None,
    clock: Callable[[], float] = time.time,
) -> Outcome:
    """Run one pass and record it. Every failure becomes an Outcome with its exit code;
    a bug is exit code 1, logged with its traceback and recorded like any failure."""
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
        self.served: str | None = None  # the hash of what the source serves, once known
        self.check = checker.command(settings)

    def run(self) -> Outcome:
        self.state = plan.began(self.state, self.clock())
        public = ""  # what the status report may say: syncjob's words, never a peer's
        try:
            summary = self.sync()
        except SyncError as exc:
            code, summary, public = exc.exit_code, str(exc), exc.public
        except Exception as exc:  # a bug: recorded like any failure, the process goes on
            log.exception("internal error: please report it with this traceback")
            code, summary = ExitCode.INTERNAL, f"internal error: {type(exc).__name__}: {exc}"
        else:
            code = ExitCode.OK
        if code == ExitCode.OK:
            self.state = plan.succeeded(self.state, self.clock())
        else:
            # A peer's or a tool's words may quote our credentials or a URL's password.
            summary = redact.scrub(summary, redact.secrets(self.settings))
            self.state = plan.failed(self.state, code, summary, self.served)
        try:
            ledger.save(self.settings.state_path, self.state)
        except SyncError as exc:
            if code == ExitCode.OK:
                code, summary = exc.exit_code, str(exc)
        shown = self.served or self.state.applied_hash
        return Outcome(
            code, summary, shown, self.state.version, 0.0, self.state, bool(self.check), public
        )

    def sync(self) -> str:
        """The pass, top to bottom; returns its summary or raises its failure."""
        path, settings = self.settings.config_path, self.settings
        if not self.check and settings.check_cmd is None:  # not turned off: none was found
            log.warning("configs are not checked before the swap: %s", checker.why_none(settings))
        _remove_strays(settings)
        disk = files.file_hash(path)
        with files.spool(path) as spool:  # the new bytes, if any: removed unless swapped in
            fetched = self.source.fetch(plan.conditional_tag(self.state, disk), spool)
            self.served = fetched.sha256 if fetched else self.state.source_hash
            decision = plan.decide(fetched, disk, self.state)
            if decision.drift:
                log.warning("drift: %s was changed on disk (%s)", path, decision.reason)
            if decision.action is not Action.WRITE:
                self.state = plan.served(self.state, fetched, disk)
                if decision.action is Action.RELOAD:
                    self.state = plan.reloading(self.state)
            else:
                assert fetched is not None  # decided on fetched content only
                spool.finish()
                current = files.open_for_reading(path) if disk else None
                with spool.open() as new, current or nullcontext():
                    validate.check(new, current, settings.config_type, settings.allow_empty)
                if self.check:
                    checker.run(
                        self.check,
                        spool.path,
                        settings.check_timeout,
                        secrets=lambda: redact.secrets(settings),
                    )
                if self.state.pending_reload and disk == self.state.applied_hash:
                    # The last reload may have reached the target (its answer lost): it
                    # runs that config or the one before. Finish it first, so a rollback
                    # of the new one restores what runs, never an older config.
                    running = self.state.running_hash
                    self._reload(restoring=disk == running)
                self.state = plan.adopted(self.state, disk)
                self._keep_last_good(disk)
                # Write-ahead: if we die after the swap, the next pass sees the pending
                # reload and finishes it instead of taking the new file for drift.
                self._save(plan.intent(self.state, fetched, reloads=self.target is not None))
                files.swap(spool.path, path)
                self.state = plan.swapped(self.state, self.clock())
            if decision.action is Action.RESTORE:
                self._restore()
        if decision.action is not Action.NOTHING:
            self._reload(restoring=decision.held)
        if decision.held:
            running = self.state.running_hash
            keeps = f"it keeps {running[:12]}" if running else "no config it ran is known"
            raise TargetRejected(
                f"the target rejected config {(self.served or '')[:12]} before; {keeps}; "
                "waiting for the source to change"
            )
        return {Action.NOTHING: "in sync", Action.RELOAD: "reloaded"}.get(
            decision.action, "written"
        )

    def _reload(self, *, restoring: bool) -> None:
        """Reload and verify; a rejected new config is rolled back (and raises)."""
        if self.target is None:  # write only: the target takes it at its next start
            self.state = plan.unverified(self.state, self.state.applied_hash)
            return
        try:
            self.target.reload()
        except TargetRejected as refusal:
            if restoring:  # still pending: the next pass tries the reload again
                raise TargetRejected(
                    f"{refusal}; that is the config it ran before: check the target"
                ) from None
            self._roll_back(refusal)
        self.state = plan.verified(self.state, self.state.applied_hash)
        self._keep_last_good(self.state.applied_hash)

    def _roll_back(self, refusal: TargetRejected) -> NoReturn:
        """Put the config the target runs back, make it take it again, and say so (76).

        A rollback that fails part way is recorded as pending: the next pass finishes it
        before anything else (plan.decide: RESTORE or RELOAD while held).
        """
        self.state = plan.rejected(self.state)
        try:
            self._restore()
            self._reload(restoring=True)
        except SyncError as failure:
            raise type(failure)(f"{refusal}; the rollback did not finish: {failure}") from None
        self.state = plan.rolled_back(self.state)
        log.warning("rolled back %s to the last good config", self.settings.config_path)
        raise TargetRejected(f"{refusal}; rolled back to the last good config")

    def _restore(self) -> None:
        """The last good copy back in place of the config, its reload pending."""
        good, copy = self.state.running_hash, self.settings.last_good_path
        if good is None or files.file_hash(copy) != good:
            raise TargetRejected(
                f"no last good copy to roll back to ({copy} is missing or not the config "
                "the target runs): the rejected file stays in place"
            )
        self._save(plan.restoring(self.state, good))
        files.copy_atomic(copy, self.settings.config_path)

    def _keep_last_good(self, disk: str | None) -> None:
        """The last good copy holds what the target runs, taken from the config while the
        config is that: after each verified reload, and before a swap if it is missing.
        (Written with no target to reload, it is the config before the last write.)"""
        good, copy = self.state.running_hash, self.settings.last_good_path
        if good is None or files.file_hash(copy) == good:
            return
        if disk != good:  # the config was edited since: what runs is nowhere on disk
            log.warning("%s is not the config the target runs: cannot refresh it", copy)
            return
        files.copy_atomic(self.settings.config_path, copy, private=True)

    def _save(self, state: State) -> None:
        ledger.save(self.settings.state_path, state)
        self.state = state


def _remove_strays(settings: Settings) -> None:
    ours = (settings.config_path, settings.state_path, settings.last_good_path)
    if removed := [t for f in ours for t in files.remove_stray_temps(f)]:
        log.info("removed %d temporary file(s) left by an interrupted pass", len(removed))


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
