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


def setup_logging(json_lines: bool, level: int = logging.INFO) -> None:
    """JSON lines when asked (APP_ENV=production) or when stderr is not a terminal."""
    handler: logging.Handler
    if json_lines or not sys.stderr.isatty():
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonLines())
    else:
        from rich.logging import RichHandler

        handler = RichHandler(show_path=False, rich_tracebacks=True, markup=False)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def usage_error(message: str) -> None:
    """A bad setting: one plain line on stderr, readable by a person and by grep."""
    print(f"syncjob: error: {message}", file=sys.stderr)


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
