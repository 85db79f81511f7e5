"""A simulation of many passes against a source, a target and a disk that all fail.

Hypothesis drives the real pass (`syncjob.sync.run_once`, in-process) through random
sequences of steps, and checks after every step what the design promises.

The world (tests/sim_peers.py):
- The source serves versions v1, v2, ... (small valid Prometheus configs), some of them
  bad (the target refuses them), with ETags and 304s; on a step it may be unreachable.
- The target holds the config it runs and reads the real config file on reload: a bad
  one it refuses (TargetRejected) and keeps the old; on a reload it may be unreachable,
  or load the file and lose the answer, or load it as the pass is killed.
- The config folder is a real 64 KiB tmpfs. At the Nth I/O boundary of a pass (a write
  open, an fsync, a rename, the fetch, the reload) the disk fills up for real, is full
  for a moment (ENOSPC once), turns read-only (EROFS from then on), or the process is
  killed (`Killed`, a BaseException: nothing after it runs; `finally` blocks only remove
  temporary files, as the next pass would). Between passes the disk is whole again.
- Between passes someone may edit the config by hand without reloading (drift), or
  delete or corrupt the state file; the source may publish a new version.

Invariants, after every step:
- the config file is absent only before anything was ever written; otherwise it is
  exactly one whole served version, the original hand-placed file or a hand edit;
- the state file always loads, and is valid JSON (of the state's shape) when present,
  unless it is the corrupt file this simulation put there and no pass replaced yet;
- the target runs only configs it accepted, never a bad one;
- the target never goes back to a config older (by version number; the original file
  is version 0) than one it accepted, except to a hand edit;
- every pass's exit code is a documented one (0, 65, 69, 73, 75, 76, 77): an internal
  error (1) is a bug, reported with the pass's log.

Convergence: when the faults stop, within two passes the file and what the target runs
are the newest served config (or, while the newest is one the target rejects, the last
config it ran), nothing is pending, the target's last reload succeeded, no temporary
file is left, and a further pass exits 0 (76 while the newest is rejected) and changes
nothing.

Three limits of the design are forgiven, the last two pinned by a strict xfail below:
- AMNESIA: the state file is the only record of a rejection and of what the target runs.
  A pass with no state that finds the served config on disk reloads once to know the
  target runs it (plan.decide; pinned by a replay test below), but a lost state also
  forgets which file the target refused: a file left on disk by a rollback that could
  not finish is taken for the config the target was started with, and rolling a later
  rejected config back to it is refused too (76, the reload pending) until the source
  serves one the target accepts. Convergence is checked again once a pass exits 0 after
  the target loaded a config.
- PENDING EDITED AWAY: the target loaded a config but its answer was lost (pending), then
  the file was edited by hand: that config is nowhere on disk, so rolling back a later
  rejected one goes to the last config verified, older than the one the target ran (or,
  when the last good copy was refreshed but the state not saved, to nothing: the rejected
  file stays).
- NOWHERE: the last good copy could not be written (the disk was full), then the config
  was edited by hand: what the target runs is nowhere on disk, so a rejected config
  cannot be rolled back; it stays in place (the target keeps running its own) until the
  source serves another.

SYNCJOB_SIM_EXAMPLES runs more examples (default 275, of up to 50 steps each: about 12,000 steps).
"""

import hashlib
import json
import logging
import os
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, currently_in_test_context, settings
from hypothesis import event as hypothesis_event
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from syncjob import files
from syncjob import state as ledger
from syncjob.settings import resolve
from syncjob.sync import run_once
from tests.sim_peers import Catalogue, Faults, Killed, Label, OsWithFaults, Source, Target

DOCUMENTED = {0, 65, 69, 73, 75, 76, 77}
TEMP_SUFFIX = ".syncjob.tmp"
MAX_BOUNDARY = 40  # a pass with a write, a rejection and a rollback has about 35

SIMULATION = settings(
    max_examples=int(os.environ.get("SYNCJOB_SIM_EXAMPLES", "275")),
    stateful_step_count=50,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)

# Most passes have few boundaries (a pass that changes nothing: the fetch and the state's
# save), so small positions are drawn more often.
FAULTS = st.one_of(
    st.none(),
    st.tuples(
        st.sampled_from(["kill", "full", "full-briefly", "read-only"]),
        st.one_of(st.integers(0, 12), st.integers(0, MAX_BOUNDARY)),
    ),
)
RELOAD_FAULTS = st.lists(st.sampled_from([None, "unreachable", "lost", "killed"]), max_size=3)
SOURCE_DOWN = st.sampled_from([False, False, False, True])
BAD = st.sampled_from([False, False, True])  # a third of the versions are refused


TALLY: Counter[str] = Counter()


def event(what: str) -> None:
    """Counted for the run's summary line and --hypothesis-show-statistics."""
    TALLY[what] += 1
    if currently_in_test_context():
        hypothesis_event(what)


class _Records(logging.Handler):
    """The pass's log, to show with a failure."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        line = f"{record.levelname} {record.getMessage()}"
        if record.exc_info:
            line += "\n" + logging.Formatter().formatException(record.exc_info)
        self.lines.append(line)


class World:
    """What one test run shares with its machines: the folder, the patched disk, the log."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.steps = self.passes = 0
        self.faults = Faults(folder)
        self.records = _Records()
        config = folder / "prometheus.yml"
        self.settings = resolve(
            {"endpoint": "http://127.0.0.1:1", "cluster_id": "sim", "config_type": "prometheus",
             "config_path": str(config), "check_cmd": ""},
            env={},
        )  # fmt: skip

    def clear(self) -> None:
        self.faults.free()
        for entry in self.folder.iterdir():
            entry.unlink()


class Simulation(RuleBasedStateMachine):
    world: World  # set by the test
    forgive_amnesia = True  # see AMNESIA
    forgive_edits_over_a_pending_reload = True  # see PENDING EDITED AWAY
    forgive_nowhere = True  # see NOWHERE

    def __init__(self) -> None:
        super().__init__()
        self.world.clear()
        self.settings = self.world.settings
        self.config = self.settings.config_path
        self.catalogue = Catalogue()
        self.source = Source(self.catalogue, self.world.faults)
        self.target = Target(self.catalogue, self.world.faults, self.config)
        self.ticks = 0.0
        self.history: list[str] = []  # what happened, for a failure's message
        self.ever_written = False
        self.highest = -1  # the newest version (original: 0) the target has accepted
        self.checked_loads = 0
        self.corrupt_state: bytes | None = None
        self.hand_edits = 0
        # The state was lost since the target last verifiably took a config: what it
        # runs, what is pending and what it rejected are forgotten (see AMNESIA).
        self.amnesia = False
        # PENDING EDITED AWAY, until a pass verifies a config: what the target runs is
        # not known, and it may go back to the config last verified.
        self.pending_edited_away = False
        self.may_go_back_to: str | None = None
        self.edited_since_a_load = False  # see NOWHERE

    # --- the world changes ---

    @initialize(original=st.booleans(), first_bad=st.booleans())
    def start(self, original: bool, first_bad: bool) -> None:
        """The target may have been started with a hand-placed file; the source serves v1."""
        if original:
            content = self.catalogue.make(Label("original", 0))
            self.config.write_bytes(content)
            self.target.running, self.highest = content, 0
            self.ever_written = True
        self.source.publish(first_bad)
        self.history.append(f"start: original={original}, v1 bad={first_bad}")

    @rule(bad=BAD)
    def publish(self, bad: bool) -> None:
        self.source.publish(bad)
        self.history.append(f"the source publishes {self.catalogue.name(self.source.newest)}")

    @rule(bad=BAD, fault=FAULTS, reloads=RELOAD_FAULTS)
    def publish_then_a_pass(
        self, bad: bool, fault: tuple[str, int] | None, reloads: list[str | None]
    ) -> None:
        """A new version and the pass that writes it: where most boundaries are."""
        self.publish(bad)
        self.a_pass(fault, False, reloads)

    @rule()
    def edit_by_hand(self) -> None:
        self.hand_edits += 1
        content = self.catalogue.make(Label("hand", self.hand_edits))
        state = ledger.load(self.settings.state_path)
        if state.pending_reload and self.forgive_edits_over_a_pending_reload:
            self.pending_edited_away = True
            self.may_go_back_to = getattr(state, "running_hash", None)  # None before 96c0152
        self.config.write_bytes(content)
        self.ever_written = True
        self.edited_since_a_load = True
        self.history.append(f"the config is edited by hand ({self.catalogue.name(content)})")

    @rule(how=st.sampled_from(["delete", "truncate", "garbage"]))
    def damage_state(self, how: str) -> None:
        path = self.settings.state_path
        if how == "delete":
            path.unlink(missing_ok=True)
            self.corrupt_state = None
        else:
            whole = path.read_bytes() if path.exists() else b'{"schema_version": 1}'
            damaged = whole[: len(whole) // 2] if how == "truncate" else b"\x00garbage{"
            path.write_bytes(damaged)
            self.corrupt_state = damaged
        self.amnesia = True
        self.history.append(f"the state file: {how}")

    # --- passes ---

    @rule(fault=FAULTS, source_down=SOURCE_DOWN, reloads=RELOAD_FAULTS)
    def a_pass(
        self,
        fault: tuple[str, int] | None,
        source_down: bool,
        reloads: list[str | None],
    ) -> None:
        kind, at = fault if fault else (None, 0)
        self.world.faults.reset(kind, at)
        self.source.down = source_down
        self.target.plan, self.target.calls = tuple(reloads), 0
        what = f"a pass (fault {fault}, source down {source_down}, reloads {reloads})"
        try:
            self.run_pass(what)
        finally:
            self.world.faults.free()
            self.source.down = False
            self.target.plan = ()

    @rule()
    def faults_stop(self) -> None:
        """Two clean passes converge; a third changes nothing."""
        for n in (1, 2):
            code = self.run_pass(f"clean pass {n}")
        self.assert_converged(code)
        before = self.snapshot()
        reloads = len(self.target.loaded)
        again = self.run_pass("clean pass 3")
        assert again == code, self.story(f"the third clean pass exited {again}, not {code}")
        assert self.snapshot() == before, self.story("the third clean pass changed something")
        assert len(self.target.loaded) == reloads, self.story("the third clean pass reloaded")

    def run_pass(self, what: str) -> int | None:
        self.world.passes += 1
        self.world.records.lines.clear()
        self.ticks += 1.0
        loads = len(self.target.loaded)
        try:
            outcome = run_once(
                self.settings, source=self.source, target=self.target, clock=lambda: self.ticks
            )
        except Killed as killed:
            self.history.append(f"{what}: killed at {killed}")
            event("killed")
            return None
        code = int(outcome.exit_code)
        self.history.append(f"{what}: exit {code} ({outcome.summary})")
        event(f"exit {code}")
        assert code in DOCUMENTED, self.story(f"exit {code} is not a documented outcome")
        self.the_target_never_goes_back()  # before what this pass forgives is forgotten
        if len(self.target.loaded) > loads:
            self.edited_since_a_load = False
        if code == 0 and len(self.target.loaded) > loads:
            self.amnesia = False  # the target took the config the state now records
            self.pending_edited_away, self.may_go_back_to = False, None
        return code

    # --- what must hold ---

    @invariant()
    def promises_hold(self) -> None:
        """One invariant calling the others: hypothesis's cost is per invariant."""
        self.world.steps += 1
        self.the_config_is_one_whole_config()
        self.the_state_always_loads()
        self.the_target_never_goes_back()

    def the_config_is_one_whole_config(self) -> None:
        try:
            content: bytes | None = self.config.read_bytes()
        except FileNotFoundError:
            content = None
        if content is None:
            assert not self.ever_written, self.story("the config file disappeared")
            return
        self.ever_written = True
        assert content in self.catalogue.labels, self.story("the config is not a whole config")

    def the_state_always_loads(self) -> None:
        path = self.settings.state_path
        ledger.load(path)  # never raises
        if not path.exists():
            return
        raw = path.read_bytes()
        if raw == self.corrupt_state:
            return  # ours, and no pass has saved since
        self.corrupt_state = None
        try:
            ledger.from_json(json.loads(raw))
        except ValueError as exc:
            raise AssertionError(self.story(f"the state file is not valid: {exc}")) from None

    def the_target_never_goes_back(self) -> None:
        for content in self.target.loaded[self.checked_loads :]:
            label = self.catalogue.labels[content]
            assert not label.bad, self.story(f"the target runs a bad config: {label}")
            if label.kind == "hand":
                continue
            if hashlib.sha256(content).hexdigest() == self.may_go_back_to:
                self.highest, self.may_go_back_to = label.number, None
                continue
            assert label.number >= self.highest, self.story(
                f"the target went back to {label} after it had accepted version {self.highest}"
            )
            self.highest = label.number
        self.checked_loads = len(self.target.loaded)

    def assert_converged(self, code: int | None) -> None:
        if self.amnesia and self.forgive_amnesia:
            event("converged after amnesia: not checked")
            return
        newest = self.source.newest
        newest_bad = self.catalogue.labels[newest].bad
        on_disk = self.config.read_bytes() if self.config.exists() else None
        running = self.target.running
        name = self.catalogue.name
        state = ledger.load(self.settings.state_path)
        copy = self.settings.last_good_path
        kept = copy.read_bytes() if copy.exists() else None
        # While the newest is rejected, the file should be what runs, unless that is not
        # known (PENDING EDITED AWAY) or nowhere on disk to put back (NOWHERE).
        unknowable = newest_bad and (
            self.pending_edited_away
            or (self.forgive_nowhere and self.edited_since_a_load and running != kept)
        )
        if not newest_bad:
            assert (on_disk, running) == (newest, newest), self.story(
                f"not converged: the file is {name(on_disk)} and the target runs {name(running)}, "
                f"the newest is {name(newest)}"
            )
            assert code == 0, self.story(f"converged on a good config, yet exit {code}")
        else:
            if running is not None and not unknowable:
                assert on_disk == running, self.story(
                    f"not converged: the newest ({name(newest)}) is rejected, the target runs "
                    f"{name(running)}, and the file is {name(on_disk)}"
                )
            assert code == 76, self.story(f"the newest is rejected, yet exit {code}")
        assert not state.pending_reload, self.story("converged, yet a reload is pending")
        if running is not None and not unknowable:
            assert self.target.last_reload_ok, self.story("the target's last reload failed")
        strays = [p.name for p in self.world.folder.iterdir() if p.name.endswith(TEMP_SUFFIX)]
        assert not strays, self.story(f"temporary files left: {strays}")

    def snapshot(self) -> tuple[object, ...]:
        state = ledger.load(self.settings.state_path)
        return (
            self.config.read_bytes() if self.config.exists() else None,
            self.target.running,
            state.applied_hash,
            state.pending_reload,
            state.rejected_hash,
            getattr(state, "running_hash", None),
        )

    def story(self, problem: str) -> str:
        log = "\n    ".join(self.world.records.lines[-30:])
        steps = "\n  ".join(self.history[-25:])
        return f"{problem}\nsteps (latest last):\n  {steps}\nthe last pass's log:\n    {log}"


@pytest.fixture
def world(tiny_fs, monkeypatch) -> Iterator[World]:
    """The tiny disk, syncjob.files on the faulty `os`, and the pass's log kept aside
    (pytest's log capture costs more than a pass)."""
    made = World(tiny_fs)
    monkeypatch.setattr(files, "os", OsWithFaults(made.faults))
    monkeypatch.setattr(Simulation, "world", made, raising=False)
    logger = logging.getLogger("syncjob")
    monkeypatch.setattr(logger, "propagate", False)
    monkeypatch.setattr(logger, "level", logging.INFO)
    logger.addHandler(made.records)
    try:
        yield made
    finally:
        logger.removeHandler(made.records)


def test_passes_survive_faults_at_every_boundary_and_converge(world):
    started = time.monotonic()
    TALLY.clear()
    run_state_machine_as_test(Simulation, settings=SIMULATION)
    print(
        f"simulation: {world.steps} steps, {world.passes} passes "
        f"in {time.monotonic() - started:.1f}s; {dict(sorted(TALLY.items()))}"
    )


def replay(steps: list[tuple[str, dict[str, object]]]) -> Simulation:
    """A sequence of steps run as hypothesis runs them: each rule, then every invariant."""
    machine = Simulation()
    try:
        for name, arguments in steps:
            getattr(machine, name)(**arguments)
            machine.promises_hold()
    finally:
        machine.teardown()
    return machine


def a_pass(fault=None, source_down=False, reloads=()):
    return ("a_pass", {"fault": fault, "source_down": source_down, "reloads": list(reloads)})


def start(original=True, first_bad=False):
    return ("start", {"original": original, "first_bad": first_bad})


PUBLISH_GOOD = ("publish", {"bad": False})
PUBLISH_BAD = ("publish", {"bad": True})
FAULTS_STOP = ("faults_stop", {})
EDIT_BY_HAND = ("edit_by_hand", {})


# Sequences the simulation found, kept as they were found (shrunk): each must stay fixed.


def test_a_rollback_whose_copy_finds_the_disk_full_is_finished_by_the_next_pass(world):
    """Before the redesign: rejected_hash was saved, every later pass exited 76 and the
    rejected file stayed in place."""
    replay([
        start(original=False), FAULTS_STOP, PUBLISH_BAD,
        # the disk is full for a moment as the target refuses v2: the rollback's copy fails
        a_pass(fault=("full-briefly", ("reload", 0))),
        FAULTS_STOP,
    ])  # fmt: skip


@pytest.mark.parametrize(
    "broken",
    [a_pass(reloads=[None, "lost"]), a_pass(fault=("kill", ("reload", 1)))],
    ids=["its answer lost", "killed before it"],
)
def test_a_rollback_whose_reload_did_not_finish_is_reloaded_by_the_next_pass(world, broken):
    """Before the redesign: pending_reload stayed true, yet every pass refused and never
    reloaded."""
    replay([start(original=False), FAULTS_STOP, PUBLISH_BAD, broken, FAULTS_STOP])


def test_a_rollback_after_a_hand_edit_restores_what_runs_not_an_older_config(world):
    """Before the redesign: the target ran v2 (v1 before it), the file was edited by hand,
    then v3 was rejected: the rollback put v1 back."""
    replay([
        start(original=False), FAULTS_STOP, PUBLISH_GOOD, FAULTS_STOP, EDIT_BY_HAND,
        PUBLISH_BAD, FAULTS_STOP,
    ])  # fmt: skip


def test_a_rejected_config_after_a_lost_reload_answer_keeps_the_newer_config(world):
    """The target loaded v1 but its answer was lost (v1 pending, the state still says the
    original runs); then v2 is rejected: the rollback must not put the original back."""
    replay([start(original=True), a_pass(reloads=["lost"]), PUBLISH_BAD, FAULTS_STOP])


def test_a_reload_pending_when_the_state_is_lost_reaches_the_target(world, monkeypatch):
    """With no state, a pass that finds the served config on disk reloads once to know
    the target runs it, and keeps that reload pending until it gets through."""
    monkeypatch.setattr(Simulation, "forgive_amnesia", False)
    replay([
        start(original=True), a_pass(reloads=["unreachable"]),
        ("damage_state", {"how": "delete"}), FAULTS_STOP,
    ])  # fmt: skip


def test_a_refused_file_is_never_taken_for_the_config_the_target_runs(world):
    """No file at first and v1 refused: nothing runs that is known. Writing v2 over it
    took v1 for the config the target was started with, kept it as the last good copy,
    and the refused v2 was rolled back to v1, refused again, pending for ever."""
    replay([start(original=False, first_bad=True), FAULTS_STOP, PUBLISH_BAD, FAULTS_STOP])


@pytest.mark.xfail(strict=True, reason="PENDING EDITED AWAY: the pending config is nowhere")
def test_a_pending_config_edited_away_by_hand_is_not_rolled_back_past(world, monkeypatch):
    monkeypatch.setattr(Simulation, "forgive_edits_over_a_pending_reload", False)
    replay([
        start(original=False), FAULTS_STOP, PUBLISH_GOOD, a_pass(reloads=["lost"]),
        EDIT_BY_HAND, PUBLISH_BAD, FAULTS_STOP,
    ])  # fmt: skip


@pytest.mark.xfail(strict=True, reason="NOWHERE: what the target runs is nowhere on disk")
def test_a_rejected_config_is_rolled_back_when_what_runs_was_edited_away(world, monkeypatch):
    monkeypatch.setattr(Simulation, "forgive_nowhere", False)
    replay([
        start(original=True),
        # v2 (refused) is staged, and the disk fills before the last good copy is made
        ("publish_then_a_pass", {"bad": True, "fault": ("full", ("fsync", 0)), "reloads": []}),
        EDIT_BY_HAND, FAULTS_STOP,
    ])  # fmt: skip
