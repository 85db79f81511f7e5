"""The simulation's world: a source, a target and a disk whose faults a test schedules.

`Faults` counts the pass's I/O boundaries (a write-open, an fsync, a rename in
syncjob.files; the source's fetch; the target's reload) and makes the Nth one fail:
a kill (`Killed`, which no `except Exception` stops), the disk filling up for real
(a filler file on the tiny tmpfs), the disk full for a moment (the next write, open,
fsync or rename says ENOSPC once), or the disk turning read-only (EROFS from then on).
`OsWithFaults` stands in for the `os` module inside syncjob.files, so the pass's own
code takes each fault at the very call where a real system would give it.
"""

import errno
import hashlib
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from syncjob import errors, files
from syncjob.dialects import Fetched

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT


class Killed(BaseException):
    """The process died here: nothing after it runs (only `finally` blocks, which remove
    temporary files, as the next pass would)."""


@dataclass(frozen=True)
class Label:
    """What some bytes are in the simulation's world."""

    kind: str  # "served" (version `number` from the source), "original" or "hand"
    number: int  # served: its version; original: 0; hand edits: their order
    bad: bool = False  # the target refuses it

    def __str__(self) -> str:
        name = {"served": "v", "original": "original", "hand": "hand-edit-"}[self.kind]
        bad = " (bad)" if self.bad else ""
        return f"{name}{self.number if self.kind != 'original' else ''}{bad}"


class Catalogue:
    """Every config the world has made, by bytes: what the target and the checks read."""

    def __init__(self) -> None:
        self.labels: dict[bytes, Label] = {}

    def make(self, label: Label) -> bytes:
        body = (
            f"global:\n  scrape_interval: 15s\n# {label}\n"
            f"scrape_configs:\n  - job_name: {label.kind}-{label.number}\n"
        ).encode()
        self.labels[body] = label
        return body

    def name(self, content: bytes | None) -> str:
        if content is None:
            return "nothing"
        label = self.labels.get(content)
        return str(label) if label else f"unknown bytes {content[:60]!r}"


class Faults:
    """At most one fault per pass: at the Nth boundary call (counted from 0), or at the
    Nth call of one boundary (`at` = ("reload", 1): the pass's second reload)."""

    def __init__(self, folder: Path) -> None:
        """`folder`: a tiny tmpfs (tests/disks.py), so that filling it takes little."""
        self.folder = folder
        self.filler = folder / "filler"
        self.reset()

    def reset(self, kind: str | None = None, at: int | tuple[str, int] = 0) -> None:
        self.kind, self.at = kind, at
        self.calls: Counter[str] = Counter()
        self.dead = False  # killed: what still runs is `finally` cleanup, never faulted
        self.read_only = False
        self.brief = False  # "full-briefly": the next disk call says ENOSPC, once

    def free(self) -> None:
        """Between passes the disk is whole again: room, and writable."""
        self.filler.unlink(missing_ok=True)
        self.reset()

    def boundary(self, where: str) -> None:
        if self.dead or self.kind is None:
            return
        if isinstance(self.at, int):
            reached = self.calls.total() == self.at
        else:
            reached = self.at == (where, self.calls[where])
        self.calls[where] += 1
        if not reached:
            return
        if self.kind == "kill":
            self.dead = True
            raise Killed(where)
        if self.kind == "full":
            self._fill()
        elif self.kind == "read-only":
            self.read_only = True
        elif self.kind == "full-briefly":  # the space comes back soon (a log rotated)
            self.brief = True

    def writing(self) -> None:
        """Any change to the folder: refused while it is read-only."""
        if self.read_only and not self.dead:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    def taking_space(self) -> None:
        """A create, an fsync or a rename: refused while the disk is full, briefly."""
        if self.brief and not self.dead:
            self.brief = False
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def _fill(self) -> None:
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            while True:
                os.write(fd, b"\0" * 4096)
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
        finally:
            os.close(fd)


class OsWithFaults:
    """The `os` module as syncjob.files sees it: each boundary may take the planned fault."""

    def __init__(self, faults: Faults) -> None:
        self._faults = faults

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    def open(self, path: Any, flags: int, mode: int = 0o777, **kw: Any) -> int:
        if flags & WRITE_FLAGS:
            self._faults.boundary("open for writing")
            self._faults.writing()
            self._faults.taking_space()
        return os.open(path, flags, mode, **kw)

    def fsync(self, fd: int) -> None:
        self._faults.boundary("fsync")
        self._faults.taking_space()
        os.fsync(fd)

    def replace(self, src: Any, dst: Any) -> None:
        self._faults.boundary("rename")
        self._faults.writing()
        self._faults.taking_space()
        os.replace(src, dst)

    def unlink(self, path: Any) -> None:
        self._faults.writing()
        os.unlink(path)

    def chmod(self, path: Any, mode: int) -> None:
        self._faults.writing()
        os.chmod(path, mode)

    def chown(self, path: Any, uid: int, gid: int) -> None:
        self._faults.writing()
        os.chown(path, uid, gid)

    def fchmod(self, fd: int, mode: int) -> None:
        self._faults.writing()
        os.fchmod(fd, mode)

    def fchown(self, fd: int, uid: int, gid: int) -> None:
        self._faults.writing()
        os.fchown(fd, uid, gid)


class Source:
    """Serves the newest version with its ETag (a 304 for a matching If-None-Match)."""

    def __init__(self, catalogue: Catalogue, faults: Faults) -> None:
        self.catalogue, self.faults = catalogue, faults
        self.versions: list[bytes] = []
        self.down = False

    def publish(self, bad: bool) -> bytes:
        body = self.catalogue.make(Label("served", len(self.versions) + 1, bad))
        self.versions.append(body)
        return body

    @property
    def newest(self) -> bytes:
        return self.versions[-1]

    def fetch(self, if_none_match: str | None, into: files.Spool) -> Fetched | None:
        self.faults.boundary("fetch")
        if self.down:
            raise errors.SourceUnavailable("source unreachable (simulated)")
        number = len(self.versions)
        etag = f'"v{number}"'
        if if_none_match == etag:
            return None
        into.write(self.newest)
        return Fetched(hashlib.sha256(self.newest).hexdigest(), f"v{number}", etag, "raw")


class Target:
    """Loads the real config file on reload, unless it is a bad one (it keeps the old).

    `faults` for the pass: one per reload call, in order: None, "unreachable" (never
    told), "lost" (loaded, then the answer is lost) or "killed" (loaded, then the pass
    dies before it hears back)."""

    def __init__(self, catalogue: Catalogue, faults: Faults, config: Path) -> None:
        self.catalogue, self.faults, self.config = catalogue, faults, config
        self.running: bytes | None = None
        self.last_reload_ok: bool | None = None  # None: never asked
        self.loaded: list[bytes] = []  # every config it loaded, in order
        self.calls = 0
        self.plan: tuple[str | None, ...] = ()

    def reload(self) -> None:
        self.faults.boundary("reload")
        fault = self.plan[self.calls] if self.calls < len(self.plan) else None
        self.calls += 1
        if fault == "unreachable":
            raise errors.TargetUnreachable("target unreachable (simulated)")
        try:
            content = self.config.read_bytes()
        except FileNotFoundError:
            content = None
        label = self.catalogue.labels.get(content) if content is not None else None
        if content is None or label is None or label.bad:
            self.last_reload_ok = False
            raise errors.TargetRejected(
                f"the target refused {self.catalogue.name(content)} (simulated)"
            )
        self.running, self.last_reload_ok = content, True
        self.loaded.append(content)
        if fault == "lost":
            raise errors.TargetUnreachable("the reload's answer was lost (simulated)")
        if fault == "killed":
            self.faults.dead = True
            raise Killed("after the target loaded")
