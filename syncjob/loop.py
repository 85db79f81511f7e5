"""`syncjob --loop`: the same pass, repeated beside the target, with an HTTP server.

The passes run in a worker thread and publish an immutable `Progress` after each
step; the server only ever reads the latest one, so a request never waits for a
pass in flight. The main thread waits for signals: SIGTERM/SIGINT stop within a
second (after any swap in progress), SIGHUP starts a pass now.
"""

import logging
import random
import signal
import threading
import time
from dataclasses import replace
from types import FrameType

from syncjob import files
from syncjob.errors import ExitCode
from syncjob.outcome import Outcome, Progress
from syncjob.settings import Settings
from syncjob.sync import SourceLike, TargetLike, run_and_publish

log = logging.getLogger("syncjob")

JITTER = 0.1  # +/-10% on every interval, so a fleet does not poll in lockstep


def next_delay(settings: Settings, outcome: Outcome, rand: float) -> float:
    """Seconds to the next pass: the interval +/-10%, or sooner after a failure.

    After a failure the wait grows from RETRY_BACKOFF, doubling with each consecutive
    failure, up to SYNC_INTERVAL. `rand` is uniform in [0, 1).
    """
    interval = settings.sync_interval
    if outcome.exit_code != ExitCode.OK:
        failures = outcome.state.consecutive_failures if outcome.state else 1
        floor = min(1.0, interval)  # RETRY_BACKOFF=0 must not spin against a dead source
        # Doublings capped: 2**1024 overflows a float, and 2**40 is past any interval.
        doublings = min(max(0, failures - 1), 40)
        interval = min(interval, max(floor, settings.retry_backoff) * 2**doublings)
    return interval * (1 - JITTER + 2 * JITTER * rand)


class Loop:
    def __init__(
        self, settings: Settings, *, source: SourceLike, target: TargetLike | None
    ) -> None:
        self.settings, self.source, self.target = settings, source, target
        self.progress = Progress(started=time.time(), started_mono=time.monotonic())
        self.stop = threading.Event()
        self.wake = threading.Event()

    def run_passes(self) -> None:
        """The worker: a pass at start, then one per interval, until stopped."""
        while not self.stop.is_set():
            self.progress = replace(self.progress, last_start_mono=time.monotonic())
            outcome = self._one_pass()
            try:
                delay = next_delay(self.settings, outcome, random.random())  # noqa: S311
            except Exception:  # never: but a worker that dies leaves a sidecar that lies
                log.exception("internal error: please report it with this traceback")
                delay = self.settings.sync_interval
            self.progress = replace(
                self.progress,
                last_end_mono=time.monotonic(),
                last_end=time.time(),
                last=outcome,
                passes=self.progress.passes + 1,
                ready=self.progress.ready or outcome.exit_code == ExitCode.OK,
                next_pass=time.time() + delay,
            )
            self.wake.wait(delay)
            self.wake.clear()

    def _one_pass(self) -> Outcome:
        try:
            return run_and_publish(self.settings, source=self.source, target=self.target)
        except Exception as exc:  # a bug must not end the sidecar: log it, count it, go on
            log.exception("internal error: please report it with this traceback")
            return Outcome(ExitCode.INTERNAL, f"internal error: {exc}", None, None, 0.0, None)


def serve(settings: Settings, *, source: SourceLike, target: TargetLike | None) -> int:
    """Run until SIGTERM/SIGINT; exit 0."""
    from syncjob.server import start_server

    loop = Loop(settings, source=source, target=target)
    worker = threading.Thread(target=loop.run_passes, name="passes", daemon=True)
    server = start_server(settings, lambda: loop.progress, worker.is_alive)
    log.info(
        "serving /healthz /ready /metrics /status on %s:%d",
        settings.http_address, server.server_address[1],
    )  # fmt: skip

    def on_stop(signum: int, frame: FrameType | None) -> None:
        loop.stop.set()
        loop.wake.set()

    def on_hup(signum: int, frame: FrameType | None) -> None:
        log.info("SIGHUP: starting a pass now")
        loop.wake.set()

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGHUP, on_hup)
    worker.start()
    loop.stop.wait()
    # A pass in flight is abandoned (the next start converges, as after a crash),
    # but never in the middle of a swap: hold the guard until the process is gone.
    files.SWAP_GUARD.acquire()
    server.shutdown()
    log.info("stopped")
    return ExitCode.OK
