"""Atomic writes on real files: modes, owners, leftovers, a disk really full or read-only."""

import contextlib
import hashlib
import os
import stat
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from syncjob import files
from syncjob.errors import ExitCode, WriteFailed
from syncjob.files import (
    TEMP_SUFFIX,
    Spool,
    copy_atomic,
    file_hash,
    open_regular,
    remove_stray_temps,
    staged,
    swap,
    write_atomic,
)

OLD = b"global:\n  scrape_interval: 15s\n"
NEW = b"global:\n  scrape_interval: 30s\n"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def temps(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(TEMP_SUFFIX))


@pytest.fixture
def umask_077() -> Iterator[None]:
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


def test_file_hash(tmp_path: Path) -> None:
    path = tmp_path / "prometheus.yml"
    assert file_hash(path) is None
    path.write_bytes(OLD)
    assert file_hash(path) == hashlib.sha256(OLD).hexdigest()
    path.write_bytes(b"")
    assert file_hash(path) == hashlib.sha256(b"").hexdigest()


def test_file_hash_of_an_unreadable_path_is_write_failed(tmp_path: Path) -> None:
    path = tmp_path / "prometheus.yml"
    path.mkdir()
    with pytest.raises(WriteFailed, match=r"prometheus\.yml"):
        file_hash(path)


@pytest.mark.usefixtures("umask_077")
def test_new_file_is_0644_whatever_the_umask(tmp_path: Path) -> None:
    # Prometheus often runs as another user than the one writing its config.
    path = tmp_path / "prometheus.yml"
    write_atomic(path, NEW)
    assert path.read_bytes() == NEW
    assert mode(path) == 0o644
    assert temps(tmp_path) == []


@pytest.mark.parametrize("existing_mode", [0o600, 0o640, 0o444, 0o755])
def test_existing_file_keeps_its_mode(tmp_path: Path, existing_mode: int) -> None:
    path = tmp_path / "alertmanager.yml"
    path.write_bytes(OLD)
    path.chmod(existing_mode)
    write_atomic(path, NEW)
    assert path.read_bytes() == NEW
    assert mode(path) == existing_mode
    assert temps(tmp_path) == []


@pytest.mark.skipif(os.getuid() != 0, reason="only root can give a file to another user")
def test_existing_file_keeps_its_owner(tmp_path: Path) -> None:
    path = tmp_path / "prometheus.yml"
    path.write_bytes(OLD)
    os.chown(path, 65534, 65534)
    write_atomic(path, NEW)
    assert (path.stat().st_uid, path.stat().st_gid) == (65534, 65534)


def test_write_replaces_the_inode_not_the_bytes_in_place(tmp_path: Path) -> None:
    # A reader holding the old file open keeps reading whole old bytes.
    path = tmp_path / "prometheus.yml"
    path.write_bytes(OLD)
    with path.open("rb") as reader:
        write_atomic(path, NEW)
        assert reader.read() == OLD
    assert path.read_bytes() == NEW


def test_write_never_creates_a_missing_folder(tmp_path: Path) -> None:
    # Since 43c33b0: a missing folder is most often a typo in CONFIG_PATH.
    path = tmp_path / "etc" / "prometheus" / "rules" / "prometheus-rules.yml"
    with pytest.raises(WriteFailed, match=r"the folder .*rules does not exist") as info:
        write_atomic(path, NEW)
    assert info.value.exit_code == ExitCode.CANT_WRITE
    assert not (tmp_path / "etc").exists()


def test_staged_file_sits_beside_the_target_with_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "prometheus.yml"
    path.write_bytes(OLD)
    path.chmod(0o600)
    with staged(path, NEW) as name:
        temp = Path(name)
        assert temp.parent == tmp_path
        assert temp.name.startswith(".prometheus.yml.")
        assert temp.name.endswith(TEMP_SUFFIX)
        assert temp.read_bytes() == NEW
        assert mode(temp) == 0o600
        assert path.read_bytes() == OLD  # nothing changes before the swap
        swap(name, path)
    assert path.read_bytes() == NEW
    assert temps(tmp_path) == []


def test_staged_is_removed_on_exception(tmp_path: Path) -> None:
    path = tmp_path / "prometheus.yml"
    path.write_bytes(OLD)
    seen: list[Path] = []

    def check_then_fail() -> None:
        with staged(path, NEW) as temp:
            seen.append(Path(temp))
            assert Path(temp).exists()
            raise RuntimeError("the checker refused it")

    with pytest.raises(RuntimeError, match="the checker refused it"):
        check_then_fail()
    assert not seen[0].exists()
    assert temps(tmp_path) == []
    assert path.read_bytes() == OLD


def test_staged_is_removed_when_not_swapped(tmp_path: Path) -> None:
    path = tmp_path / "prometheus.yml"
    with staged(path, NEW):
        pass
    assert list(tmp_path.iterdir()) == []


def test_swap_onto_a_directory_is_write_failed(tmp_path: Path) -> None:
    path = tmp_path / "prometheus.yml"
    path.mkdir()
    (path / "keep").write_bytes(b"x")
    # Refused before the swap now, when the new file would take the directory's mode.
    with pytest.raises(WriteFailed, match=r"prometheus\.yml is a directory") as info:
        write_atomic(path, NEW)
    assert info.value.exit_code == ExitCode.CANT_WRITE
    assert temps(tmp_path) == []


def test_a_file_where_the_directory_should_be_is_write_failed(tmp_path: Path) -> None:
    (tmp_path / "etc").write_bytes(b"not a directory")
    with pytest.raises(WriteFailed, match="cannot write in"):
        write_atomic(tmp_path / "etc" / "prometheus.yml", NEW)


def test_remove_stray_temps_removes_only_ours(tmp_path: Path) -> None:
    config = tmp_path / "prometheus.yml"
    ours = [tmp_path / f".prometheus.yml.{tag}{TEMP_SUFFIX}" for tag in ("a1b2c3", "zz")]
    kept = [
        config,
        tmp_path / ".prometheus.yml.syncjob.json",
        tmp_path / ".prometheus.yml.syncjob.lock",
        tmp_path / "prometheus.yml.bak",
        tmp_path / "notes.tmp",
        tmp_path / f"visible{TEMP_SUFFIX}",
    ]
    for path in ours + kept:
        path.write_bytes(b"x")
    assert sorted(map(Path, remove_stray_temps(config))) == sorted(ours)
    assert sorted(tmp_path.iterdir()) == sorted(kept)
    assert remove_stray_temps(config) == []


def test_remove_stray_temps_leaves_other_configs_temps(tmp_path: Path) -> None:
    # Another config in the same directory has its own lock: its temp may be in flight.
    others = [
        tmp_path / f".prometheus.yml.a1b2c3{TEMP_SUFFIX}",  # the other config's
        tmp_path / f"..prometheus.yml.syncjob.json.d4e5f6{TEMP_SUFFIX}",  # its state's
        # our own state's: sync.py calls remove_stray_temps for the state path too
        tmp_path / f"..rules.yml.syncjob.json.0a0b0c{TEMP_SUFFIX}",
    ]
    for other in others:
        other.write_bytes(b"in flight")
    assert remove_stray_temps(tmp_path / "rules.yml") == []
    assert all(other.exists() for other in others)


def test_remove_stray_temps_takes_the_name_literally(tmp_path: Path) -> None:
    config = tmp_path / "prom[1].yml"
    ours = tmp_path / f".prom[1].yml.a1{TEMP_SUFFIX}"
    lookalike = tmp_path / f".prom1.yml.a1{TEMP_SUFFIX}"  # what the glob [1] would match
    for path in (ours, lookalike):
        path.write_bytes(b"x")
    assert remove_stray_temps(config) == [str(ours)]
    assert lookalike.exists()


def test_remove_stray_temps_in_a_missing_directory(tmp_path: Path) -> None:
    assert remove_stray_temps(tmp_path / "nowhere" / "prometheus.yml") == []


# A real tiny filesystem: tests run as root, so permission bits would stop nothing.


def _mount(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["mount", *args], capture_output=True, text=True, check=False)


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs: a disk that really fills up, and can really be made read-only."""
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    try:
        mounted = _mount("-t", "tmpfs", "-o", "size=64k,mode=0755", "tmpfs", str(mount_point))
    except FileNotFoundError:
        pytest.skip("no mount(8) here: cannot make a real full or read-only filesystem")
    if mounted.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


def make_read_only(mount_point: Path) -> None:
    remounted = _mount("-o", "remount,ro", str(mount_point))
    assert remounted.returncode == 0, remounted.stderr


def test_full_disk_is_write_failed_and_the_old_file_intact(tiny_fs: Path) -> None:
    path = tiny_fs / "prometheus.yml"
    write_atomic(path, OLD)
    with pytest.raises(WriteFailed, match="No space left on device") as info:
        write_atomic(path, os.urandom(200 * 1024))
    assert info.value.exit_code == ExitCode.CANT_WRITE
    assert str(path) in str(info.value)
    assert path.read_bytes() == OLD
    assert sorted(p.name for p in tiny_fs.iterdir()) == ["prometheus.yml"]


def test_full_disk_leaves_the_space_free_for_the_next_pass(tiny_fs: Path) -> None:
    path = tiny_fs / "prometheus.yml"
    with pytest.raises(WriteFailed):
        write_atomic(path, os.urandom(200 * 1024))
    write_atomic(path, NEW)  # the failed temp did not keep the disk full
    assert path.read_bytes() == NEW


def test_read_only_is_write_failed_and_the_old_file_intact(tiny_fs: Path) -> None:
    path = tiny_fs / "prometheus.yml"
    write_atomic(path, OLD)
    make_read_only(tiny_fs)
    with pytest.raises(WriteFailed, match="Read-only file system") as info:
        write_atomic(path, NEW)
    assert info.value.exit_code == ExitCode.CANT_WRITE
    assert path.read_bytes() == OLD
    assert remove_stray_temps(path) == []
    assert file_hash(path) == hashlib.sha256(OLD).hexdigest()  # reading still works


# --- what is planted at our names: never followed, never waited on ----------------------


@contextlib.contextmanager
def within(seconds: float) -> Iterator[Callable[[Callable[[], Any]], Any]]:
    """Run a call in a thread and fail if it has not returned in `seconds`: a read that
    blocks on a FIFO fails the test instead of hanging it. Any FIFO reader left blocked is
    set free at the end by opening the FIFO's other end."""
    fifos: list[Path] = []

    def call(fn: Callable[[], Any]) -> Any:
        box: dict[str, Any] = {}

        def run() -> None:
            try:
                box["value"] = fn()
            except BaseException as exc:  # handed to the test
                box["error"] = exc

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        worker.join(seconds)
        if worker.is_alive():
            pytest.fail(f"still blocked after {seconds}s")
        if "error" in box:
            raise box["error"]
        return box.get("value")

    call.fifos = fifos  # type: ignore[attr-defined]
    try:
        yield call
    finally:
        for fifo in fifos:
            with contextlib.suppress(OSError):
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


def plant(path: Path, kind: str, fifos: list[Path]) -> None:
    if kind == "link":
        path.symlink_to(path.parent / "elsewhere")
    elif kind == "link to a file":
        (path.parent / "secret").write_bytes(b"SECRET")
        path.symlink_to("secret")
    elif kind == "FIFO":
        os.mkfifo(path)
        fifos.append(path)
    elif kind == "directory":
        path.mkdir()
    else:
        os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(1, 3))  # /dev/null's numbers


SAID = {
    "link": "is a symbolic link: refusing to follow it",
    "link to a file": "is a symbolic link: refusing to follow it",
    "FIFO": "is a FIFO, not a regular file",
    "directory": "is a directory, not a regular file",
    "device": "is a character device, not a regular file",
}


@pytest.mark.parametrize("kind", list(SAID))
def test_file_hash_refuses_what_is_not_a_regular_file(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "prometheus.yml"
    with within(5) as call:
        plant(path, kind, call.fifos)
        with pytest.raises(WriteFailed) as info:
            call(lambda: file_hash(path))
    assert str(info.value).startswith(f"{path} {SAID[kind]}")
    assert info.value.exit_code == ExitCode.CANT_WRITE
    assert not (tmp_path / "elsewhere").exists()


@pytest.mark.parametrize("kind", list(SAID))
def test_open_regular_creates_nothing_through_a_plant(tmp_path: Path, kind: str) -> None:
    path = tmp_path / ".prometheus.yml.syncjob.lock"
    with within(5) as call:
        plant(path, kind, call.fifos)
        with pytest.raises(WriteFailed, match=SAID[kind]):
            call(lambda: open_regular(path, os.O_RDONLY | os.O_CREAT))
    assert not (tmp_path / "elsewhere").exists()
    if kind == "link to a file":
        assert (tmp_path / "secret").read_bytes() == b"SECRET"


def test_open_regular_is_none_when_missing_and_an_fd_on_a_file(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    assert open_regular(path) is None
    path.write_bytes(OLD)
    fd = open_regular(path)
    assert fd is not None
    with os.fdopen(fd, "rb") as f:
        assert f.read() == OLD


@pytest.mark.parametrize("kind", ["link", "link to a file", "FIFO"])
def test_a_plant_at_the_temporary_name_is_replaced_not_followed(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "prometheus.yml"
    held = Spool(path)
    plant(Path(held.path), kind, [])
    held.write(NEW)
    held.finish()
    swap(held.path, path)
    assert path.read_bytes() == NEW
    assert not (tmp_path / "elsewhere").exists()
    if kind == "link to a file":
        assert (tmp_path / "secret").read_bytes() == b"SECRET"


def test_a_directory_at_the_temporary_name_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "prometheus.yml"
    held = Spool(path)
    Path(held.path).mkdir()
    with pytest.raises(WriteFailed) as info:
        write_atomic(path, NEW)
    assert str(info.value) == f"{held.path} is a directory, not a regular file: refusing to use it"
    assert not path.exists()


@pytest.mark.parametrize("kind", list(SAID))
def test_copy_atomic_refuses_a_plant_as_its_source(tmp_path: Path, kind: str) -> None:
    source, config = tmp_path / ".prometheus.yml.syncjob.last-good", tmp_path / "prometheus.yml"
    config.write_bytes(OLD)
    with within(5) as call:
        plant(source, kind, call.fifos)
        with pytest.raises(WriteFailed, match=SAID[kind]):
            call(lambda: copy_atomic(source, config))
    assert config.read_bytes() == OLD


@pytest.mark.usefixtures("umask_077")
def test_a_restored_config_keeps_the_configs_mode_and_owner(tmp_path: Path) -> None:
    last_good, config = tmp_path / ".prometheus.yml.syncjob.last-good", tmp_path / "prometheus.yml"
    config.write_bytes(NEW)
    config.chmod(0o640)
    if os.getuid() == 0:
        os.chown(config, 65534, 65534)  # Prometheus's user reads it
    write_atomic(last_good, OLD, private=True)
    copy_atomic(last_good, config)
    assert config.read_bytes() == OLD
    assert mode(config) == 0o640
    if os.getuid() == 0:
        assert (config.stat().st_uid, config.stat().st_gid) == (65534, 65534)


@pytest.mark.parametrize("config_mode", [0o644, 0o664, 0o666])
def test_syncjobs_own_copies_are_private_whatever_the_configs_mode(
    tmp_path: Path, config_mode: int
) -> None:
    config, last_good = tmp_path / "prometheus.yml", tmp_path / ".prometheus.yml.syncjob.last-good"
    config.write_bytes(OLD)
    config.chmod(config_mode)
    copy_atomic(config, last_good, private=True)
    assert last_good.read_bytes() == OLD
    assert mode(last_good) == files.PRIVATE_MODE == 0o600
    assert mode(config) == config_mode
