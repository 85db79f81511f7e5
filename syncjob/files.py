"""The config and state on disk: hashed, staged beside the target, swapped in atomically.

A reader (Prometheus on reload, a crashed pass's successor) sees the old file or
the new one, whole: the new bytes are fsynced in a temporary file in the same
directory, `os.replace`d over the target, and the directory entry fsynced.

Whoever can write the config's folder can plant anything at our names (a symbolic
link to a secret, a FIFO that blocks `open` forever, a device): every file here is
opened by `open_regular`, which follows no link, never blocks, and accepts a regular
file or nothing.
"""

import contextlib
import errno
import hashlib
import io
import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from syncjob.errors import WriteFailed

TEMP_SUFFIX = ".syncjob.tmp"
NEW_FILE_MODE = 0o644
# syncjob's own files (state, last good copy, lock): they say what runs and when, and
# the last good copy is a whole config; nobody else needs to read them.
PRIVATE_MODE = 0o600

# No link followed (ELOOP instead), no wait for a FIFO's other end or a device.
_SAFE = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def open_regular(
    path: Path | str, flags: int = os.O_RDONLY, mode: int = PRIVATE_MODE, *, doing: str = "open"
) -> int | None:
    """A file descriptor on the regular file at `path` (made with `mode` if `flags` say
    O_CREAT), or None when there is none; WriteFailed naming the path and what is there
    instead (a symbolic link, a FIFO, a directory, a device), or why it cannot be opened
    ("cannot <doing> <path>: <reason>")."""
    try:
        fd = os.open(path, flags | _SAFE, mode)
    except FileNotFoundError:
        return None
    except OSError as exc:
        # ELOOP: a link (O_NOFOLLOW); ENXIO: a socket, or a FIFO opened to write with
        # no reader; EISDIR: a directory opened to write. Say what it is.
        if exc.errno in (errno.ELOOP, errno.ENXIO, errno.EISDIR, errno.ENODEV):
            with contextlib.suppress(OSError):
                _refuse(path, os.lstat(path).st_mode)
        raise WriteFailed(f"cannot {doing} {path}: {exc.strerror}") from None
    try:
        _refuse(path, os.fstat(fd).st_mode)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _refuse(path: Path | str, mode: int) -> None:
    """WriteFailed unless `mode` is a regular file's."""
    if stat.S_ISREG(mode):
        return
    if stat.S_ISLNK(mode):
        raise WriteFailed(f"{path} is a symbolic link: refusing to follow it")
    raise WriteFailed(f"{path} is {file_kind(mode)}, not a regular file: refusing to use it")


def file_kind(mode: int) -> str:
    """What a file is, for a message: "a FIFO", "a directory", ..."""
    kinds = [
        (stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
    ]  # fmt: skip
    return next((kind for test, kind in kinds if test(mode)), "not a regular file")


def open_for_reading(path: Path | str) -> io.BufferedReader | None:
    """`open_regular` as a binary file object; None when there is no file."""
    fd = open_regular(path)
    return None if fd is None else os.fdopen(fd, "rb")


def read_capped(path: Path | str, limit: int) -> bytes | None:
    """The whole regular file, if it holds at most `limit` bytes: never more is read, so
    a huge (or sparse) file costs no memory. None when missing; ValueError when bigger."""
    with open_for_reading(path) or contextlib.nullcontext() as f:
        if f is None:
            return None
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"larger than {limit} bytes")
    return data


def file_hash(path: Path) -> str | None:
    """SHA-256 hex of the file's bytes, streamed, or None when there is no file."""
    try:
        with open_for_reading(path) or contextlib.nullcontext() as f:
            return None if f is None else hashlib.file_digest(f, "sha256").hexdigest()
    except OSError as exc:  # no permission, an I/O error
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

    def finish(self, *, like: Path | None = None, private: bool = False) -> None:
        """Whole and durable, with the owner and mode of `like` (the target by default),
        so the swap changes nothing but bytes; `private`: PRIVATE_MODE whatever its mode."""
        self._spill(b"")  # to disk now, if it was all in memory (an empty config too)
        assert self._file is not None
        try:
            self._file.flush()
            # On the descriptor, not the name: the name could be swapped for a link
            # between here and there, and chmod as root follows links.
            fd = self._file.fileno()
            _copy_ownership(like or self.target, fd, PRIVATE_MODE if private else None)
            os.fsync(fd)
            self._file.close()
        except OSError as exc:
            raise WriteFailed(f"cannot write {self.target}: {exc.strerror}") from None

    def open(self) -> io.BufferedReader:
        """The finished bytes, to read again (validation, the last good copy)."""
        f = open_for_reading(self.path)
        if f is None:
            raise WriteFailed(f"{self.path} disappeared while in use")
        return f

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
            # A leftover of ours, or whatever was planted at the name: unlink removes a
            # link itself, never what it points to; O_EXCL then makes a new file or fails.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        except IsADirectoryError:
            raise WriteFailed(
                f"{self.path} is a directory, not a regular file: refusing to use it"
            ) from None
        except OSError as exc:
            raise WriteFailed(f"cannot write in {self.target.parent}: {exc.strerror}") from None
        fd = open_regular(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_MODE)
        if fd is None:
            raise missing_folder(self.target.parent, "CONFIG_PATH or STATE_PATH")
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
    target: Path, data: bytes, *, like: Path | None = None, private: bool = False
) -> Iterator[str]:
    """A whole, fsynced copy of `data` beside `target`, removed unless swapped in."""
    with spool(target) as held:
        held.write(data)
        held.finish(like=like, private=private)
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


def copy_atomic(source: Path, target: Path, *, private: bool = False) -> None:
    """`target` becomes a copy of `source`'s bytes, streamed, atomically. It keeps its own
    owner and mode (a restored config is still the target's to read); or, `private` (the
    last good copy), takes the source's owner with PRIVATE_MODE."""
    f = open_for_reading(source)
    if f is None:
        raise WriteFailed(f"cannot copy {source}: it is missing")
    with spool(target) as held, f:
        try:
            while chunk := f.read(1 << 20):
                held.write(chunk)
        except OSError as exc:
            raise WriteFailed(f"cannot read {source}: {exc.strerror}") from None
        held.finish(like=source if private else target, private=private)
        swap(held.path, target)


def write_atomic(
    target: Path, data: bytes, *, like: Path | None = None, private: bool = False
) -> None:
    with staged(target, data, like=like, private=private) as temp:
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


def _copy_ownership(source: Path, dest: int, mode: int | None) -> None:
    """`dest` (a descriptor) takes the owner of the regular file `source`, and its mode
    unless `mode` is given."""
    try:
        st = os.lstat(source)  # a link's target is not ours to describe
    except FileNotFoundError:
        os.fchmod(dest, NEW_FILE_MODE if mode is None else mode)
        return
    _refuse(source, st.st_mode)
    os.fchmod(dest, st.st_mode & 0o7777 if mode is None else mode)
    if (st.st_uid, st.st_gid) != (os.getuid(), os.getgid()):
        with contextlib.suppress(PermissionError):  # only root may give a file away
            os.fchown(dest, st.st_uid, st.st_gid)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
