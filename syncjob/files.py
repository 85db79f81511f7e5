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
from typing import BinaryIO

from syncjob.errors import WriteFailed

TEMP_SUFFIX = ".syncjob.tmp"
NEW_FILE_MODE = 0o644


def file_hash(path: Path) -> str | None:
    """SHA-256 hex of the file's bytes, or None when there is no file."""
    try:
        with path.open("rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()
    except FileNotFoundError:
        return None
    except OSError as exc:  # a directory in its place, no permission
        raise WriteFailed(f"cannot read {path}: {exc.strerror}") from None


class Spool:
    """Bytes on their way to replacing `target`, hashed as they arrive.

    Up to MEMORY bytes stay in memory, so that a poll that changes nothing (the source
    without conditional requests sends the same config again) touches no disk; past
    that, and whenever the bytes are to be swapped in, they go to a temporary file
    beside the target, so a config of any size is never held in memory whole and the
    swap is a rename. Removed unless swapped in."""

    MEMORY = 1 << 20

    def __init__(self, target: Path) -> None:
        self.target = target
        # Named by our pid, not at random: every write happens under the pass's lock, so
        # a file of that name is a leftover of a dead process that had our pid; and a
        # --loop writing thousands of times uses one name. A str, not a Path: pathlib
        # interns every name it sees, and that churn shows in a long run's RSS.
        self.path = os.path.join(target.parent, f".{target.name}.{os.getpid()}{TEMP_SUFFIX}")
        self.size = 0
        self.head = b""  # the first bytes, to recognise an HTML error page
        self._hash = hashlib.sha256()
        self._buffer = bytearray()
        self._file: BinaryIO | None = None

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def write(self, chunk: bytes) -> None:
        if self._file is None and len(self._buffer) + len(chunk) <= self.MEMORY:
            self._buffer += chunk
        else:
            self._spill(chunk)
        self._hash.update(chunk)
        self.size += len(chunk)
        if len(self.head) < 64:
            self.head += chunk[: 64 - len(self.head)]

    def finish(self, *, like: Path | None = None, mask: int = 0o7777) -> None:
        """Whole and durable, with the mode (within `mask`) and owner of `like` (the
        target by default), so the swap changes nothing but bytes."""
        self._spill(b"")  # to disk now, if it was all in memory (an empty config too)
        assert self._file is not None
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            _copy_ownership(like or self.target, self.path, mask)
        except OSError as exc:
            raise WriteFailed(f"cannot write {self.target}: {exc.strerror}") from None

    def open(self) -> BinaryIO:
        """The finished bytes, to read again (validation, the last good copy)."""
        return open(self.path, "rb")

    def discard(self) -> None:
        if self._file is None:
            return  # never made: nothing to remove
        with contextlib.suppress(OSError):  # closing flushes, and the disk may be full
            self._file.close()
        with contextlib.suppress(OSError):  # gone already (swapped in); else the next pass
            os.unlink(self.path)

    def _spill(self, chunk: bytes) -> None:
        """Write to the temporary file, making it (with what memory held) if need be."""
        try:
            if self._file is None:
                self._file = self._create()
                self._file.write(self._buffer)
                self._buffer = bytearray()
            self._file.write(chunk)
        except OSError as exc:
            raise WriteFailed(f"cannot write {self.target}: {exc.strerror}") from None

    def _create(self) -> BinaryIO:
        # A missing folder is never made: it is far more often a typo in CONFIG_PATH
        # (/etc/promethues) than a folder to create, and writing there reports success
        # for a file the target never reads.
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except FileNotFoundError:
            raise missing_folder(self.target.parent, "CONFIG_PATH or STATE_PATH") from None
        except OSError as exc:
            raise WriteFailed(f"cannot write in {self.target.parent}: {exc.strerror}") from None
        return os.fdopen(fd, "wb")


def missing_folder(folder: Path, setting: str) -> WriteFailed:
    """The one line for a folder that is not there: syncjob never creates one."""
    return WriteFailed(f"the folder {folder} does not exist: create it, or fix {setting}")


@contextlib.contextmanager
def spool(target: Path) -> Iterator[Spool]:
    held = Spool(target)
    try:
        yield held
    finally:
        held.discard()


@contextlib.contextmanager
def staged(
    target: Path, data: bytes, *, like: Path | None = None, mask: int = 0o7777
) -> Iterator[str]:
    """A whole, fsynced copy of `data` beside `target`, removed unless swapped in."""
    with spool(target) as held:
        held.write(data)
        held.finish(like=like, mask=mask)
        yield held.path


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


def copy_atomic(source: Path, target: Path, *, mask: int = 0o7777) -> None:
    """`target` becomes a copy of `source` (its mode and owner too), streamed, atomically."""
    with spool(target) as held, source.open("rb") as f:
        while chunk := f.read(1 << 20):
            held.write(chunk)
        held.finish(like=source, mask=mask)
        swap(held.path, target)


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
