"""Whoever can write the config's folder plants things at syncjob's names: a symbolic link
to a secret or to a file to create, a FIFO, a directory, a device. A pass (the installed
`syncjob`, as a subprocess with a deadline: a FIFO used to block it for ever) refuses each
with exit 73 and one line naming the path and what is there, follows no link, creates
nothing where a link points, and never copies what a link leads to into the config."""

import contextlib
import hashlib
import os
import resource
import stat
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from syncjob.errors import ExitCode
from syncjob.state import State, save
from tests.cli import SYNCJOB, Run, pass_env, syncjob
from tests.fake_target import FakeTarget

CONFIG = b"global:\n  scrape_interval: 15s\n"
SECRET = b"tok-SECRET-planted-5c1d\n"
# A pass here takes well under a second; one that waits on a FIFO never ends.
DEADLINE = 20.0
QUICK = 10.0

NAMES = {
    "config": "prometheus.yml",
    "state": ".prometheus.yml.syncjob.json",
    "lock": ".prometheus.yml.syncjob.lock",
    "last good": ".prometheus.yml.syncjob.last-good",
}


def _link_to_secret(path: Path, elsewhere: Path) -> None:
    path.symlink_to(elsewhere / "token")


def _dangling_link(path: Path, elsewhere: Path) -> None:
    path.symlink_to(elsewhere / "created-by-syncjob")


def _fifo(path: Path, elsewhere: Path) -> None:
    os.mkfifo(path)


def _directory(path: Path, elsewhere: Path) -> None:
    path.mkdir()
    (path / "inside").write_bytes(b"x")


def _device(path: Path, elsewhere: Path) -> None:
    try:  # /dev/null's numbers: reading it is harmless, and it is no regular file
        os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("only root can make a device node")


def _link_to_a_device(path: Path, elsewhere: Path) -> None:
    path.symlink_to("/dev/null")


PLANTS: dict[str, tuple[Callable[[Path, Path], None], str]] = {
    "link to a secret": (_link_to_secret, "is a symbolic link: refusing to follow it"),
    "dangling link": (_dangling_link, "is a symbolic link: refusing to follow it"),
    "link to /dev/null": (_link_to_a_device, "is a symbolic link: refusing to follow it"),
    "FIFO": (_fifo, "is a FIFO, not a regular file"),
    "directory": (_directory, "is a directory, not a regular file"),
    "character device": (_device, "is a character device, not a regular file"),
}


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """Outside the config's folder: a secret to protect, and where nothing may appear."""
    folder = tmp_path / "secrets"
    folder.mkdir()
    (folder / "token").write_bytes(SECRET)
    return folder


@pytest.fixture
def target() -> Iterator[FakeTarget]:
    accepting = FakeTarget()
    yield accepting
    accepting.close()


def run_pass(env: dict[str, str]) -> tuple[Run, float]:
    started = time.monotonic()
    run = syncjob(env=env, timeout=DEADLINE)
    return run, time.monotonic() - started


def assert_nothing_leaked(etc: Path, elsewhere: Path, run: Run) -> None:
    assert (elsewhere / "token").read_bytes() == SECRET
    assert sorted(p.name for p in elsewhere.iterdir()) == ["token"]  # nothing created there
    config = etc / "prometheus.yml"
    if config.is_file() and not config.is_symlink():
        assert SECRET not in config.read_bytes()
    assert SECRET.decode().strip() not in run.stderr + run.stdout


# A directory at CONFIG_PATH is no plant: it means the config file inside it (settings).
CASES = [(n, p) for n in NAMES for p in PLANTS if (n, p) != ("config", "directory")]


@pytest.mark.parametrize(("name", "plant"), CASES)
def test_a_planted_file_is_refused_with_73_naming_it(
    fake_agent, target, tmp_path, elsewhere, name, plant
):
    etc = tmp_path / "etc"
    etc.mkdir()
    planted = etc / NAMES[name]
    make, said = PLANTS[plant]
    make(planted, elsewhere)
    # With a target, a verified reload refreshes the last good copy: every name is used.
    env = pass_env(
        fake_agent.url, etc / "prometheus.yml", CHECK_COMMAND="", RELOAD_URL=target.reload_url
    )
    run, took = run_pass(env)
    assert run.code == ExitCode.CANT_WRITE, run.stderr
    assert took < QUICK
    error = run.last["error"]
    assert f"{planted} {said}" in error
    assert "\n" not in error
    assert "Traceback" not in run.stderr
    assert_nothing_leaked(etc, elsewhere, run)


@pytest.mark.parametrize("plant", ["link to a secret", "FIFO"])
def test_a_rejected_first_config_never_restores_what_a_planted_last_good_copy_points_to(
    fake_agent, tmp_path, elsewhere, plant
):
    """The folder's writer also plants a state saying the target runs the secret's bytes:
    a rollback would then 'restore' the secret into the config."""
    etc = tmp_path / "etc"
    etc.mkdir()
    PLANTS[plant][0](etc / NAMES["last good"], elsewhere)
    save(etc / NAMES["state"], State(running_hash=hashlib.sha256(SECRET).hexdigest()))
    with FakeTarget(reload_status=500, reload_body=b"failed to reload config: bad\n") as rejects:
        env = pass_env(
            fake_agent.url, etc / "prometheus.yml", CHECK_COMMAND="", RELOAD_URL=rejects.reload_url
        )
        run, took = run_pass(env)
    assert took < QUICK
    assert run.code in (ExitCode.CANT_WRITE, ExitCode.REJECTED), run.stderr
    assert_nothing_leaked(etc, elsewhere, run)


@pytest.mark.parametrize("plant", ["dangling link", "link to a secret", "FIFO"])
def test_a_planted_temporary_name_is_removed_not_followed(fake_agent, tmp_path, elsewhere, plant):
    """The temporary files' names are syncjob's alone: whatever sits there is a leftover,
    removed (a link itself, never what it points to) before a new one is made with O_EXCL."""
    etc = tmp_path / "etc"
    etc.mkdir()
    planted = etc / ".prometheus.yml.4242.syncjob.tmp"
    PLANTS[plant][0](planted, elsewhere)
    run, took = run_pass(pass_env(fake_agent.url, etc / "prometheus.yml", CHECK_COMMAND=""))
    assert run.code == ExitCode.OK, run.stderr
    assert took < QUICK
    assert not planted.exists()
    assert not planted.is_symlink()
    assert (etc / "prometheus.yml").read_bytes() == CONFIG
    assert_nothing_leaked(etc, elsewhere, run)


def test_syncjobs_own_files_are_private_and_the_config_keeps_its_mode(fake_agent, target, tmp_path):
    etc = tmp_path / "etc"
    etc.mkdir()
    config = etc / "prometheus.yml"
    config.write_bytes(b"global: {}\n")
    config.chmod(0o664)  # group-writable: the old rule gave the state file 0664 too
    old = os.umask(0)
    try:
        env = pass_env(fake_agent.url, config, CHECK_COMMAND="", RELOAD_URL=target.reload_url)
        run = syncjob(env=env, timeout=DEADLINE)
    finally:
        os.umask(old)
    assert run.code == ExitCode.OK, run.stderr
    assert config.read_bytes() == CONFIG
    assert stat.S_IMODE(config.stat().st_mode) == 0o664
    for name in ("state", "last good", "lock"):
        assert stat.S_IMODE((etc / NAMES[name]).stat().st_mode) == 0o600, name


def test_a_rolled_back_config_keeps_the_configs_mode_and_owner(fake_agent, target, tmp_path):
    etc = tmp_path / "etc"
    etc.mkdir()
    config = etc / "prometheus.yml"
    env = pass_env(fake_agent.url, config, CHECK_COMMAND="", RELOAD_URL=target.reload_url)
    assert syncjob(env=env, timeout=DEADLINE).code == ExitCode.OK  # v1 runs, kept as last good
    config.chmod(0o640)
    os.chown(config, 65534, 65534)  # the target's user reads it, nobody else
    fake_agent.set_config(b"global:\n  scrape_interval: 30s\n")
    target.reload_status = 500  # v2 is rejected (and the reload after the restore, too)
    run = syncjob(env=env, timeout=DEADLINE)
    assert run.code == ExitCode.REJECTED, run.stderr
    assert config.read_bytes() == CONFIG  # the last good copy, put back
    assert stat.S_IMODE(config.stat().st_mode) == 0o640  # not the last good copy's 0600
    assert (config.stat().st_uid, config.stat().st_gid) == (65534, 65534)


def _address_space(limit: int) -> Callable[[], None]:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return apply


def test_a_3_gib_sparse_state_file_is_set_aside_without_being_read(fake_agent, tmp_path):
    """A pass under a 1 GiB address space (a 64Mi container is tighter still): the state is
    read up to its cap, found unusable, logged, and a new one started."""
    etc = tmp_path / "etc"
    etc.mkdir()
    state = etc / NAMES["state"]
    with state.open("wb") as f:
        f.truncate(3 << 30)  # no block written: 3 GiB of zeros that cost no disk
    env = {**os.environ, **pass_env(fake_agent.url, etc / "prometheus.yml", CHECK_COMMAND="")}
    started = time.monotonic()
    proc = subprocess.run(
        [str(SYNCJOB)], env=env, capture_output=True, text=True, timeout=DEADLINE,
        preexec_fn=_address_space(1 << 30), check=False,
    )  # fmt: skip
    assert time.monotonic() - started < QUICK
    assert proc.returncode == ExitCode.OK, proc.stderr
    assert "unusable" in proc.stderr
    assert str(state) in proc.stderr
    assert state.stat().st_size < 4096  # the new state replaced it
    with contextlib.suppress(FileNotFoundError):
        assert (etc / "prometheus.yml").read_bytes() == CONFIG


@pytest.mark.parametrize("plant", ["link to a secret", "FIFO"])
def test_diff_refuses_a_planted_config_too(fake_agent, tmp_path, elsewhere, plant):
    etc = tmp_path / "etc"
    etc.mkdir()
    config = etc / NAMES["config"]
    PLANTS[plant][0](config, elsewhere)
    started = time.monotonic()
    run = syncjob("diff", env=pass_env(fake_agent.url, config, CHECK_COMMAND=""), timeout=DEADLINE)
    assert time.monotonic() - started < QUICK
    assert run.code == ExitCode.CANT_WRITE, run.stderr + run.stdout
    assert f"{config} {PLANTS[plant][1]}" in run.stderr + run.stdout
    assert_nothing_leaked(etc, elsewhere, run)
