"""The config and state on disk: hashed, staged beside the target, swapped in atomically.

A reader (Prometheus on reload, a crashed pass's successor) sees the old file or
the new one, whole: the new bytes are fsynced in a temporary file in the same
directory, `os.replace`d over the target, and the directory entry fsynced.
"""

import contextlib
import hashlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from syncjob.errors import WriteFailed

TEMP_SUFFIX = ".syncjob.tmp"
NEW_FILE_MODE = 0o644


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_hash(path: Path) -> str | None:
    """SHA-256 hex of the file's bytes, or None when there is no file."""
    try:
        with path.open("rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()
    except FileNotFoundError:
        return None
    except OSError as exc:  # a directory in its place, no permission
        raise WriteFailed(f"cannot read {path}: {exc.strerror}") from None


@contextlib.contextmanager
def staged(
    target: Path, data: bytes, *, like: Path | None = None, mask: int = 0o7777
) -> Iterator[str]:
    """A whole, fsynced copy of `data` beside `target`, removed unless swapped in.

    It gets the mode (within `mask`) and owner of `like` (the target itself by default)
    now, so the swap changes nothing but bytes.
    """
    # Named by our pid, not at random: every write happens under the pass's lock, so a
    # file of that name is a leftover of a dead process that had our pid; and a --loop
    # that writes thousands of times uses one name (pathlib interns every name it sees).
    # A str, not a Path: see remove_stray_temps.
    temp = os.path.join(target.parent, f".{target.name}.{os.getpid()}{TEMP_SUFFIX}")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise WriteFailed(f"cannot write in {target.parent}: {exc.strerror}") from None
    try:
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            _copy_ownership(like or target, temp, mask)
        except OSError as exc:
            raise WriteFailed(f"cannot write {target}: {exc.strerror}") from None
        yield temp
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)


# Held for the length of a swap: --loop takes it before exiting on SIGTERM, so it
# never stops in the middle of one.
SWAP_GUARD = threading.Lock()


def swap(staged_file: str, target: Path) -> None:
    """Replace `target` by the staged file in one step, and make it durable."""
    try:
        with SWAP_GUARD:
            os.replace(staged_file, target)
            _fsync_directory(target.parent)
    except OSError as exc:
        raise WriteFailed(f"cannot replace {target}: {exc.strerror}") from None


# For syncjob's own files (state, last good copy): never writable by everyone.
NOT_WORLD_WRITABLE = 0o7775


def write_atomic(
    target: Path, data: bytes, *, like: Path | None = None, mask: int = 0o7777
) -> None:
    with staged(target, data, like=like, mask=mask) as temp:
        swap(temp, target)


def remove_stray_temps(target: Path) -> list[str]:
    """Temporary files a killed pass left beside the target (and only the target's)."""
    prefix, removed = f".{target.name}.", []
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return []
    for entry in entries:
        if entry.name.startswith(prefix) and entry.name.endswith(TEMP_SUFFIX):
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
                removed.append(entry.path)
    return removed


def _copy_ownership(source: Path, dest: str, mask: int) -> None:
    try:
        st = source.stat()
    except FileNotFoundError:
        os.chmod(dest, NEW_FILE_MODE & mask)
        return
    os.chmod(dest, st.st_mode & 0o7777 & mask)
    if (st.st_uid, st.st_gid) != (os.getuid(), os.getgid()):
        with contextlib.suppress(PermissionError):  # only root may give a file away
            os.chown(dest, st.st_uid, st.st_gid)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
