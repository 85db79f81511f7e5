"""Where log records go: JSON lines or logfmt for machines, text for a person.

The only module that imports rich, and only for a person's tables (status, demo, diff).
"""

import json
import logging
import re
import sys
import time
from typing import Any, ClassVar


def _iso(record: logging.LogRecord) -> str:
    """UTC with milliseconds, as Prometheus logs: 2026-11-30T10:00:00.000Z."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{stamp}.{int(record.msecs):03d}Z"


class JsonLines(logging.Formatter):
    """One JSON object per line: time, level, message, and the record's `fields`."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": _iso(record),
            "level": record.levelname.lower(),
            "msg": record.getMessage(),
        }
        line.update(getattr(record, "fields", {}))
        if record.exc_info:
            line["traceback"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


# A logfmt value goes bare only when it cannot be misread: no space, quote, '=' or
# control character, and not empty (Prometheus's go-kit logger quotes the same way).
_BARE = re.compile(r"[^\s\"=\\\x00-\x1f\x7f]+")


def _logfmt_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if _BARE.fullmatch(text) else json.dumps(text)


class Logfmt(logging.Formatter):
    """Prometheus's own log shape: `ts=... level=info msg="pass written" hash=...`."""

    def format(self, record: logging.LogRecord) -> str:
        pairs: dict[str, Any] = {
            "ts": _iso(record),
            "level": record.levelname.lower(),
            "msg": record.getMessage(),
            **getattr(record, "fields", {}),
        }
        if record.exc_info:
            pairs["traceback"] = self.formatException(record.exc_info)
        return " ".join(f"{k}={_logfmt_value(v)}" for k, v in pairs.items() if v is not None)


class Text(logging.Formatter):
    """For a person: ISO time, level, message, then the fields (hash, version, duration)."""

    _COLOURS: ClassVar[dict[str, str]] = {
        "WARNING": "\x1b[33m",
        "ERROR": "\x1b[31m",
        "CRITICAL": "\x1b[31m",
    }

    def __init__(self, colour: bool) -> None:
        super().__init__()
        self.colour = colour

    def format(self, record: logging.LogRecord) -> str:
        level = f"{record.levelname:<7}"
        if self.colour and record.levelname in self._COLOURS:
            level = f"{self._COLOURS[record.levelname]}{level}\x1b[0m"
        fields = getattr(record, "fields", {})
        extra = " ".join(f"{k}={_logfmt_value(v)}" for k, v in fields.items() if v is not None)
        line = f"{_iso(record)} {level} {record.getMessage()}" + (f"  {extra}" if extra else "")
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def setup_logging(
    json_lines: bool, level: int | str = logging.INFO, log_format: str | None = None
) -> None:
    """LOG_FORMAT when set; else JSON lines when asked (APP_ENV=production) or when stderr
    is not a terminal, and text for a person at one."""
    terminal = sys.stderr.isatty()
    if log_format is None:
        log_format = "json" if json_lines or not terminal else "text"
    formatter = {"json": JsonLines, "logfmt": Logfmt}.get(log_format)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter() if formatter else Text(colour=terminal))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # urllib3 logs each retry with its own internals (`Retrying (Backoff(total=2, ...))
    # after connection broken by 'NewConnectionError(...)'`): syncjob logs its own line,
    # and LOG_LEVEL=debug, asking for everything, gets urllib3's too.
    debug = root.getEffectiveLevel() <= logging.DEBUG
    logging.getLogger("urllib3").setLevel(logging.NOTSET if debug else logging.ERROR)


def usage_error(message: str, prefix: str = "error") -> None:
    """A bad setting: one plain line on stderr, readable by a person and by grep."""
    print(f"syncjob: {prefix}: {message}", file=sys.stderr)


def print_json(doc: Any) -> None:
    print(json.dumps(doc, indent=2))


def show_status(settings: Any, state: Any, verdict: Any) -> None:
    """`syncjob status` for a person: the state file as a table, and the verdict."""
    from rich.console import Console
    from rich.table import Table

    def when(ts: float | None) -> str:
        if ts is None:
            return "never"
        try:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))
        except (OverflowError, OSError, ValueError):  # NaN, 1e300: a state file gone wrong
            return f"{ts!r} (not a time)"
        age = time.time() - ts
        return f"{stamp} ({age:.0f}s ago)" if age >= 0 else f"{stamp} ({-age:.0f}s from now)"

    table = Table(show_header=False, title=f"syncjob status: {settings.config_path}")
    table.add_column(style="bold")
    table.add_column()
    rows = {
        "state file": str(settings.state_path),
        "last attempt": when(state.last_attempt),
        "last success": when(state.last_success),
        "last change": when(state.last_change),
        "last exit code": str(state.last_exit_code),
        "last error": state.last_error or "",
        "applied sha256": state.applied_hash or "",
        "version": state.version or "",
        "consecutive failures": str(state.consecutive_failures),
        "pending reload": "yes" if state.pending_reload else "no",
        "rejected sha256": state.rejected_hash or "",
        "counts": ", ".join(f"{k} {v}" for k, v in vars(state.counts).items()),
    }
    for name, value in rows.items():
        table.add_row(name, value)
    console = Console()
    console.print(table)
    style = "green" if verdict.exit_code == 0 else "red"
    console.print(f"[{style}]{verdict.reason}[/{style}]", highlight=False)


def show_demo(passes: "list[Any]", answers: list[int], config: Any, state: Any) -> None:
    """The demo's report: what each pass did, what the source answered, where the files are."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="syncjob demo: two passes against an embedded AlertAgent")
    for column in ("pass", "source answered", "outcome", "exit", "config sha256", "ms"):
        table.add_column(column)
    for n, (outcome, status) in enumerate(zip(passes, answers, strict=False), start=1):
        table.add_row(
            str(n),
            str(status),
            outcome.summary,
            str(int(outcome.exit_code)),
            (outcome.config_hash or "")[:16],
            f"{outcome.duration * 1000:.1f}",
        )
    console = Console()
    console.print(table)
    console.print(f"config written to  {config}\nstate recorded in  {state}")
