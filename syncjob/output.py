"""Where log records go: JSON lines for machines, rich for a person at a terminal.

The only module that imports rich, and only when a person is watching.
"""

import json
import logging
import sys
import time
from typing import Any


class JsonLines(logging.Formatter):
    """One JSON object per line: time, level, message, and the record's `fields`."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "msg": record.getMessage(),
        }
        line.update(getattr(record, "fields", {}))
        if record.exc_info:
            line["traceback"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def setup_logging(json_lines: bool, level: int | str = logging.INFO) -> None:
    """JSON lines when asked (APP_ENV=production) or when stderr is not a terminal."""
    handler: logging.Handler
    if json_lines or not sys.stderr.isatty():
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonLines())
    else:
        from rich.logging import RichHandler

        # No locals in tracebacks: they could hold a credential.
        handler = RichHandler(show_path=False, rich_tracebacks=True, markup=False)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


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
