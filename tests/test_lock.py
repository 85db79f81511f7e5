"""One pass at a time per config: a second is Busy at once; a dead holder frees the lock."""

import os
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from syncjob.errors import Busy, ExitCode, WriteFailed
from syncjob.lock import exclusive

# Another process: takes the lock, says so, and holds it until its stdin closes.
HOLDER = """
import sys
from pathlib import Path
from syncjob.lock import exclusive

with exclusive(Path(sys.argv[1])):
    print("held", flush=True)
    sys.stdin.read()
print("released", flush=True)
"""


@pytest.fixture
def lock_path(tmp_path: Path) -> Path:
    return tmp_path / ".prometheus.yml.syncjob.lock"


@pytest.fixture
def holder(lock_path: Path) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(lock_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    # Blocks until the other process holds the lock: a condition, not a sleep.
    assert process.stdout.readline() == "held\n"
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                stream.close()


def test_second_pass_is_busy_while_another_process_holds_the_lock(
    lock_path: Path, holder: subprocess.Popen[str]
) -> None:
    with pytest.raises(Busy) as info, exclusive(lock_path):
        pytest.fail("took a lock another process holds")
    assert str(info.value) == f"another pass holds {lock_path}"
    assert info.value.exit_code == ExitCode.TRY_LATER


def test_released_when_the_holder_exits(lock_path: Path, holder: subprocess.Popen[str]) -> None:
    assert holder.stdin is not None
    assert holder.stdout is not None
    holder.stdin.close()
    assert holder.stdout.readline() == "released\n"
    assert holder.wait(timeout=10) == 0
    with exclusive(lock_path):
        pass


def test_released_when_the_holder_is_killed(lock_path: Path, holder: subprocess.Popen[str]) -> None:
    # flock dies with its process: a pass killed with -9 leaves no stale lock.
    holder.kill()
    holder.wait(timeout=10)
    assert lock_path.exists()
    with exclusive(lock_path):
        pass


def test_busy_within_one_process_too(lock_path: Path) -> None:
    # flock belongs to the open file, so a second open in the same process conflicts.
    with exclusive(lock_path):
        with pytest.raises(Busy), exclusive(lock_path):
            pytest.fail("took the lock twice")
        assert lock_path.exists()
    with exclusive(lock_path):  # and the first one released it
        pass


def test_lock_is_reusable_and_the_file_stays(lock_path: Path) -> None:
    for _ in range(3):
        with exclusive(lock_path):
            assert lock_path.exists()
    assert lock_path.exists()


def test_different_configs_do_not_block_each_other(tmp_path: Path) -> None:
    with (
        exclusive(tmp_path / ".prometheus.yml.syncjob.lock"),
        exclusive(tmp_path / ".alertmanager.yml.syncjob.lock"),
    ):
        pass


def test_the_body_raising_releases_the_lock(lock_path: Path) -> None:
    with pytest.raises(RuntimeError), exclusive(lock_path):
        raise RuntimeError("pass failed")
    with exclusive(lock_path):
        pass


def test_a_missing_lock_folder_is_never_created(tmp_path: Path) -> None:
    # Since 43c33b0: a missing folder is most often a typo in CONFIG_PATH.
    path = tmp_path / "etc" / "prometheus" / ".prometheus.yml.syncjob.lock"
    with (
        pytest.raises(WriteFailed, match=r"the folder .*prometheus does not exist"),
        exclusive(path),
    ):
        pytest.fail("locked in a folder that is not there")
    assert not (tmp_path / "etc").exists()


def test_lock_that_cannot_be_created_is_write_failed(tmp_path: Path) -> None:
    (tmp_path / "etc").write_bytes(b"a file, not a directory")
    with (
        pytest.raises(WriteFailed, match="cannot create lock file") as info,
        exclusive(tmp_path / "etc" / ".prometheus.yml.syncjob.lock"),
    ):
        pytest.fail("locked inside a file")
    assert info.value.exit_code == ExitCode.CANT_WRITE


def test_the_lock_file_is_private(tmp_path: Path) -> None:
    path = tmp_path / ".prometheus.yml.syncjob.lock"
    old = os.umask(0)
    try:
        with exclusive(path):
            pass
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize("kind", ["dangling link", "link to a file", "FIFO", "directory"])
def test_a_plant_at_the_lock_is_refused_without_following_or_waiting(
    tmp_path: Path, kind: str
) -> None:
    path, elsewhere = tmp_path / ".prometheus.yml.syncjob.lock", tmp_path / "elsewhere"
    if kind == "dangling link":
        path.symlink_to(elsewhere)  # as root, the lock used to be created there, 0644
    elif kind == "link to a file":
        elsewhere.write_bytes(b"SECRET")
        path.symlink_to(elsewhere)
    elif kind == "FIFO":
        os.mkfifo(path)
    else:
        path.mkdir()
    outcome: list[BaseException | None] = []

    def take() -> None:
        try:
            with exclusive(path):
                outcome.append(None)
        except BaseException as exc:  # handed to the test
            outcome.append(exc)

    taker = threading.Thread(target=take, daemon=True)
    taker.start()
    taker.join(5)
    if taker.is_alive():  # blocked in open(): set it free before failing
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("taking the lock blocked")
    assert len(outcome) == 1
    assert isinstance(outcome[0], WriteFailed), outcome
    assert str(path) in str(outcome[0])
    assert outcome[0].exit_code == ExitCode.CANT_WRITE
    if kind == "dangling link":
        assert not elsewhere.exists()
    if kind == "link to a file":
        assert elsewhere.read_bytes() == b"SECRET"
