"""Run the installed `syncjob` as a user would: a subprocess, its exit code and its log lines."""

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.targets import free_port, http_request, wait_until

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


class LoopProcess:
    def __init__(self, env: dict[str, str], log_path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = log_path.open("w")
        self.proc = subprocess.Popen(
            [str(SYNCJOB), "--loop"],
            env={**os.environ, **env, "HTTP_PORT": str(self.port), "HTTP_ADDRESS": "127.0.0.1"},
            stdout=subprocess.DEVNULL,
            stderr=self._log,
        )
        wait_until(self._listening, 15, "the loop's HTTP server")

    def _listening(self) -> bool:
        assert self.proc.poll() is None, self.log()
        try:
            return self.get("/healthz")[0] in (200, 503)
        except OSError:
            return False

    def get(self, path: str, method: str = "GET") -> tuple[int, bytes]:
        return http_request(method, self.url + path, timeout=5)

    def json(self, path: str) -> tuple[int, dict]:
        status, body = self.get(path)
        return status, json.loads(body)

    def log(self) -> str:
        return self.log_path.read_text()

    def records(self) -> list[dict]:
        return [json.loads(line) for line in self.log().splitlines() if line.startswith("{")]

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


@pytest.fixture
def start_loop(tmp_path):
    """Start `syncjob --loop` processes; all are stopped at the end of the test."""
    started = []

    def start(env):
        loop = LoopProcess(env, tmp_path / f"loop{len(started)}.log")
        started.append(loop)
        return loop

    yield start
    for loop in started:
        loop.stop()
