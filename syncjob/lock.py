"""One pass at a time per config: cron and a hand run must not interleave writes."""

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from syncjob import files
from syncjob.errors import Busy
from syncjob.files import missing_folder


@contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Hold a non-blocking flock on `path`; Busy at once if another pass has it.

    flock dies with its process, so a pass killed with -9 never leaves a stale lock.
    A link, FIFO or directory planted at its name is refused, never followed or waited on.
    """
    fd = files.open_regular(
        path, os.O_RDONLY | os.O_CREAT, files.PRIVATE_MODE, doing="create lock file"
    )
    if fd is None:  # never created: a missing folder is most often a typo
        raise missing_folder(path.parent, "CONFIG_PATH")
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Busy(f"another pass holds {path}") from None
        yield
    finally:
        os.close(fd)
