"""Run the installed `syncjob` as a user would: a subprocess, its exit code and its log lines."""

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The console script installed beside this interpreter (tox's venv, or the system's).
SYNCJOB = Path(sys.executable).with_name("syncjob")


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str

    @property
    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stderr.splitlines() if line.startswith("{")]

    @property
    def last(self) -> dict[str, Any]:
        """The pass's own log line: the last record."""
        return self.records[-1]


def pass_env(endpoint: str, config_path: Path, **settings: str) -> dict[str, str]:
    """Environment for one pass: quick retries so failure paths take milliseconds."""
    return {
        "ALERTAGENT_ENDPOINT": endpoint,
        "CLUSTER_ID": "cluster-1",
        "CONFIG_TYPE": "prometheus",
        "CONFIG_PATH": str(config_path),
        "MAX_RETRIES": "2",
        "RETRY_BACKOFF": "10ms",
        "HTTP_TIMEOUT": "5s",
        **settings,
    }


def syncjob(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> Run:
    proc = subprocess.run(
        [str(SYNCJOB), *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr)
