"""The pass's metrics, in a private registry (never prometheus_client's global one).

Counters are read from the state file's cumulative counts, so they keep counting
across one-shot processes and across a switch between one-shot and --loop.
"""

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from syncjob import __version__
from syncjob.errors import ExitCode
from syncjob.outcome import Outcome
from syncjob.settings import Settings
from syncjob.state import State

LABELS = ("cluster_id", "config_type")


def in_sync(exit_code: ExitCode, state: State) -> bool:
    """The file on disk is the source's current config (its reload may still be pending)."""
    return exit_code == ExitCode.OK or (exit_code == ExitCode.TRY_LATER and state.pending_reload)


class SyncCollector(Collector):
    """Series describing the last pass that ran (one that could not take the lock did not)."""

    def __init__(self, settings: Settings, last_pass: Callable[[], Outcome | None]) -> None:
        self.labels = [settings.cluster_id, settings.config_type]
        self.last_pass = last_pass

    def collect(self) -> Iterator[Metric]:
        outcome = self.last_pass()
        if outcome is None or outcome.state is None:
            return
        state, counts = outcome.state, outcome.state.counts

        def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
            family = CounterMetricFamily(f"config_sync_{name}", doc, labels=LABELS)
            family.add_metric(self.labels, value)
            return family

        def gauge(name: str, doc: str, value: float | None) -> GaugeMetricFamily:
            family = GaugeMetricFamily(f"config_sync_{name}", doc, labels=LABELS)
            family.add_metric(self.labels, 0.0 if value is None else value)  # 0: never
            return family

        yield counter("runs", "Passes run.", counts.runs)
        yield counter("failures", "Passes that ended with a non-zero exit code.", counts.failures)
        yield counter("changes", "Times a new config was written.", counts.changes)
        yield counter("reloads", "Reloads the target accepted.", counts.reloads)
        yield counter("rollbacks", "Rejected configs rolled back.", counts.rollbacks)
        yield gauge("last_run_timestamp_seconds", "Start of the last pass.", state.last_attempt)
        yield gauge(
            "last_success_timestamp_seconds", "End of the last successful pass.", state.last_success
        )
        yield gauge(
            "last_change_timestamp_seconds",
            "When a new config was last written.",
            state.last_change,
        )
        yield gauge("last_duration_seconds", "Duration of the last pass.", outcome.duration)
        yield gauge(
            "consecutive_failures", "Failed passes since the last success.",
            state.consecutive_failures,
        )  # fmt: skip
        yield gauge("last_exit_code", "Exit code of the last pass.", int(outcome.exit_code))
        yield gauge(
            "checked",
            "1 when a checker (promtool, amtool, CHECK_COMMAND) judges each new config "
            "before the swap.",
            outcome.checked,
        )
        yield gauge(
            "in_sync",
            "1 when the file on disk is the source's config.",
            in_sync(outcome.exit_code, state),
        )
        info = GaugeMetricFamily(
            "config_sync_info", "The applied config and this syncjob.",
            labels=[*LABELS, "hash", "version", "syncjob_version"],
        )  # fmt: skip
        info.add_metric(
            [*self.labels, state.applied_hash or "", state.version or "", __version__], 1
        )
        yield info


def registry(settings: Settings, last_pass: Callable[[], Outcome | None]) -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(SyncCollector(settings, last_pass))
    return reg
