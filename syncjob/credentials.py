"""Credentials files: ALERTAGENT_TOKEN_FILE, ALERTAGENT_BASIC_AUTH_FILE and the
Pushgateway's, read at every pass so that a rotated Secret is picked up without a restart.

A Kubernetes Secret is mounted as a chain of symbolic links, so links are followed here
(unlike beside the config); but what they lead to must be a regular file of a credential's
size: a FIFO would block the pass for ever, and a device or a huge file would fill the
memory. Every error names the file, never what is in it.
"""

import os
import stat

from syncjob.errors import UsageError
from syncjob.files import file_kind

MAX_BYTES = 64 * 1024  # a token or a user:password is a few hundred bytes


def read(path: str) -> str:
    """The secret in `path`, without the whitespace around it (the newline an editor or
    `kubectl create secret --from-file` leaves); UsageError when it cannot be read."""
    data = _read_regular(path)
    try:
        return data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise _unreadable(path, "not UTF-8 text") from None


def _read_regular(path: str) -> bytes:
    try:
        # O_NONBLOCK: opening a FIFO waits for a writer otherwise; a regular file ignores it.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise _unreadable(path, exc.strerror or type(exc).__name__) from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise _unreadable(path, f"it is {file_kind(mode)}, not a regular file")
    with os.fdopen(fd, "rb") as f:
        try:
            data = f.read(MAX_BYTES + 1)
        except OSError as exc:
            raise _unreadable(path, exc.strerror or type(exc).__name__) from None
    if len(data) > MAX_BYTES:
        raise _unreadable(path, f"it holds more than {MAX_BYTES // 1024} KiB")
    return data


def _unreadable(path: str, reason: str) -> UsageError:
    return UsageError(f"cannot read the credentials file {path}: {reason}")
