"""`syncjob diff`: what a pass would change, shown and not done.

It fetches and validates like a pass, then prints the unified diff between the file on
disk and what would be written. Nothing in the config folder changes: the served bytes
stay in memory (capped by MAX_BODY_SIZE), no lock file is made (the write is atomic, so
the file read is whole, old or new), no state is saved, nothing is reloaded or pushed.
The target's checker runs on a copy in a private temporary folder that links to what is
beside the config, since it reads a file and what the file names.
"""

import difflib
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import TextIO

from syncjob import checker, files, redact, validate
from syncjob.errors import ExitCode, SyncError, WriteFailed
from syncjob.settings import Settings


class Held(files.Spool):
    """The served bytes, kept in memory whole: a diff must not write in the folder."""

    MEMORY = sys.maxsize  # never spills; the source's body is capped by MAX_BODY_SIZE

    @property
    def content(self) -> bytes:
        return bytes(self._buffer)


def show_diff(settings: Settings, out: TextIO | None = None) -> int:
    """Print the diff; 0 when nothing would change, DIFFERS when something would.
    A failure raises the SyncError a pass would end with (65 refused, 69, 77, ...)."""
    try:
        return _show_diff(settings, out)
    except SyncError as exc:  # a source's words may echo our token: masked, as in a pass
        raise type(exc)(redact.scrub(str(exc), redact.secrets(settings))) from None


def _show_diff(settings: Settings, out: TextIO | None) -> int:
    from syncjob.source import Source

    path = settings.config_path
    held = Held(path)
    fetched = Source(settings).fetch(None, held)  # unconditional: the bytes are the point
    assert fetched is not None  # only a conditional request gets a 304
    new = held.content
    current = _read(path, settings.max_body_size)
    if current == new:
        print(f"{path}: in sync with the source (sha256 {held.sha256[:12]})", file=out)
        return ExitCode.OK
    if isinstance(current, Oversize):  # guarded as a pass guards it: streamed from the file
        with files.open_for_reading(path) or nullcontext() as whole:
            validate.check(new, whole, settings.config_type, settings.allow_empty)
    else:
        validate.check(new, current, settings.config_type, settings.allow_empty)
    if template := checker.command(settings):
        _check_copy(settings, template, new)
    stream = out or sys.stdout
    colour = out is None and sys.stdout.isatty() and "NO_COLOR" not in os.environ
    for line in _unified(path, current, new, fetched.version):
        stream.write(_coloured(line) if colour else line)
    return ExitCode.DIFFERS


class Oversize(int):
    """The size of a config on disk larger than MAX_BODY_SIZE: never read whole (a huge
    or sparse file would cost its size in memory, and print it); no served config can
    equal it, so the diff shows it replaced."""


def _read(path: Path, limit: int) -> bytes | Oversize | None:
    """The config's bytes, None when missing, Oversize when over `limit` bytes; a link or
    a FIFO in its place is refused (files.open_regular), as a pass refuses it."""
    try:
        f = files.open_for_reading(path)
        if f is None:
            return None
        with f:
            data = f.read(limit + 1)
            if len(data) > limit:
                return Oversize(os.fstat(f.fileno()).st_size)
            return data
    except OSError as exc:  # no permission, an I/O error
        raise WriteFailed(f"cannot read {path}: {exc.strerror}") from None


def _check_copy(settings: Settings, template: str, content: bytes) -> None:
    """The checker's verdict on the new bytes, from a copy outside the config folder.

    The copy's folder mirrors the config's with links to each of its entries, so relative
    paths in the config (`rule_files: [rules/*.yml]`, Alertmanager's templates) resolve to
    the same files as beside the config, which is only read."""
    config = settings.config_path
    with tempfile.TemporaryDirectory(prefix="syncjob-diff-") as folder:
        try:
            entries = [e for e in os.scandir(config.parent) if e.name != config.name]
        except OSError:  # unreadable: relative paths will not resolve, the checker says so
            entries = []
        for entry in entries:
            Path(folder, entry.name).symlink_to(entry.path)
        copy = Path(folder) / config.name
        copy.write_bytes(content)
        checker.run(
            template, str(copy), settings.check_timeout, secrets=lambda: redact.secrets(settings)
        )


def _unified(
    path: Path, current: bytes | Oversize | None, new: bytes, version: str | None
) -> Iterator[str]:
    before = _lines(current if isinstance(current, bytes) else b"")
    after = _lines(new)
    served = f"served by the source{f', version {version}' if version else ''}"
    if current is None:
        was = " (missing)"
    elif isinstance(current, Oversize):
        was = f" ({int(current)} bytes, over MAX_BODY_SIZE: not shown)"
    else:
        was = ""
    yield from difflib.unified_diff(
        before,
        after,
        fromfile=f"{path}{was}",
        tofile=f"{path} ({served})",
    )


def _lines(data: bytes) -> list[str]:
    lines = data.decode("utf-8", "replace").splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):  # as diff(1) says it
        lines[-1] += "\n\\ No newline at end of file\n"
    return lines


_COLOURS = (("+++", "\x1b[1m"), ("---", "\x1b[1m"), ("@@", "\x1b[36m"), ("+", "\x1b[32m"),
            ("-", "\x1b[31m"))  # fmt: skip


def _coloured(line: str) -> str:
    for prefix, colour in _COLOURS:
        if line.startswith(prefix):
            return f"{colour}{line.rstrip(chr(10))}\x1b[0m\n"
    return line
