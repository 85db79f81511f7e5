"""Atomic writes on real files: modes, owners, leftovers, a disk really full or read-only."""

import hashlib
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from syncjob.errors import ExitCode, WriteFailed
from syncjob.files import TEMP_SUFFIX, file_hash, remove_stray_temps, staged, swap, write_atomic

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


def test_write_creates_missing_directories(tmp_path: Path) -> None:
    path = tmp_path / "etc" / "prometheus" / "rules" / "prometheus-rules.yml"
    write_atomic(path, NEW)
    assert path.read_bytes() == NEW


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
    with pytest.raises(WriteFailed, match=r"cannot replace .*prometheus\.yml") as info:
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
