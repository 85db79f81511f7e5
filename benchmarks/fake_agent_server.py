"""The fake AlertAgent (tests/fake_alertagent.py) in a process of its own, for benchmarks.

    python benchmarks/fake_agent_server.py --content FILE [--dialect raw|envelope]
        [--etag quoted|raw-hash|none] [--backlog 1024] [--hold N]

Serves FILE's bytes, prints its URL on the first line of stdout, then reads commands on
stdin, one a line:

    records   prints one JSON line: {"cpu": seconds of CPU this server used so far,
              "records": [[arrival, method, cluster_id, status, bytes_in, bytes_out,
              conditional], ...]} for every request so far (arrival: time.time() when the
              request had been read; bytes: exact bytes on the wire; conditional: whether
              it carried If-None-Match)

--hold N: the first N config requests wait until all N have arrived, then are answered
together (a fleet released at one moment, as when a hung source comes back), so that a
benchmark can start many pollers in phase whatever the spread of their start-up.

It stops when stdin closes or on SIGTERM. Run apart from the measuring process, so that
neither its memory (a 64 MiB config) nor its CPU is charged to what is measured.

Also importable: `AgentProcess` starts and drives one, `write_rules` writes a realistic
Prometheus rules file of a given size without holding it in memory, `changed_since` names
syncjob's modules edited while a benchmark ran.
"""

import argparse
import contextlib
import json
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any, Self

ROOT = Path(__file__).resolve().parent.parent

RULE = """  - name: group-{i}
    rules:
      - alert: HighErrorRate{i}
        expr: sum(rate(http_requests_total{{job="api",code=~"5.."}}[5m])) by (instance) > 0.05
        for: 10m
        labels: {{severity: critical, team: platform}}
        annotations:
          summary: "High error rate on {{{{ $labels.instance }}}}"
"""


def write_rules(path: Path, size: int) -> None:
    """A rules file of at least `size` bytes (one group more than fits), written as it is
    made: the caller's peak RSS stays that of an idle interpreter."""
    with path.open("wb") as out:
        written = out.write(b"groups:\n")
        i = 0
        while written < size:
            written += out.write(RULE.format(i=i).encode())
            i += 1


def changed_since(started: float) -> list[str]:
    """syncjob's source files modified after `started` (a time.time()): the installed
    console script runs this working tree, which others may edit while a benchmark runs."""
    return sorted(
        str(path.relative_to(ROOT))
        for path in (ROOT / "syncjob").rglob("*")
        if path.suffix in (".py", ".json") and path.stat().st_mtime > started
    )


class _Stamped(list):  # type: ignore[type-arg]
    """FakeAlertAgent.requests with the arrival time of each request beside it."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def append(self, item: Any) -> None:
        self.times.append(time.time())  # called under the agent's lock, as the request is read
        super().append(item)


def serve(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(ROOT))
    from tests import fake_alertagent

    # socketserver listens with a backlog of 5: a fleet connecting at once would see SYNs
    # dropped and retried a second later, an artefact of the fake (Go listens with somaxconn).
    fake_alertagent._Server.request_queue_size = args.backlog
    agent = fake_alertagent.FakeAlertAgent(
        content=Path(args.content).read_bytes(), dialect=args.dialect, etag=args.etag
    )
    if args.hold:
        _hold_first(agent, args.hold)
    stamped = _Stamped()
    agent.requests = stamped  # before any client knows the URL
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        print(agent.url, flush=True)
        for line in sys.stdin:
            if line.strip() == "records":
                with agent._cond:
                    pairs = list(zip(stamped.times, stamped, strict=True))
                usage = resource.getrusage(resource.RUSAGE_SELF)
                rows = [
                    [t, r.method, r.query.get("cluster_id"), r.status, r.bytes_in, r.bytes_out,
                     "if-none-match" in r.headers]
                    for t, r in pairs
                ]  # fmt: skip
                print(json.dumps({"cpu": usage.ru_utime + usage.ru_stime, "records": rows}))
                sys.stdout.flush()
    finally:
        agent.close()


def _hold_first(agent: Any, n: int, timeout: float = 120) -> None:
    """Wrap the agent's answers: the first `n` GETs wait for one another (bounded)."""
    barrier, lock, answer = threading.Barrier(n, timeout=timeout), threading.Lock(), agent._answer
    seen = 0

    def held(rec: Any) -> Any:
        nonlocal seen
        with lock:
            seen += rec.method == "GET"
            wait = rec.method == "GET" and seen <= n
        if wait:
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait()
        return answer(rec)

    agent._answer = held


class Record:
    """One request as the server saw it."""

    __slots__ = ("bytes_in", "bytes_out", "cluster_id", "conditional", "method", "status", "t")

    def __init__(self, row: list[Any]) -> None:
        (self.t, self.method, self.cluster_id, self.status, self.bytes_in, self.bytes_out,
         self.conditional) = row  # fmt: skip

    @property
    def wire(self) -> int:
        return int(self.bytes_in + self.bytes_out)


class AgentProcess:
    """Start the server above in its own process; `records()` asks it what it saw."""

    def __init__(
        self,
        content: Path,
        *,
        dialect: str = "raw",
        etag: str = "quoted",
        backlog: int = 1024,
        hold: int = 0,
    ) -> None:
        argv = [sys.executable, str(Path(__file__).resolve()), "--content", str(content),
                "--dialect", dialect, "--etag", etag, "--backlog", str(backlog),
                "--hold", str(hold)]  # fmt: skip
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self._lock = threading.Lock()
        self.url = self._stdout.readline().strip()
        if not self.url.startswith("http"):
            self.close()
            raise RuntimeError(f"fake AlertAgent did not start (said {self.url!r})")
        self.cpu = 0.0

    @property
    def _stdout(self) -> IO[str]:
        assert self.proc.stdout is not None
        return self.proc.stdout

    def records(self) -> list[Record]:
        assert self.proc.stdin is not None
        with self._lock:
            self.proc.stdin.write("records\n")
            self.proc.stdin.flush()
            answer = json.loads(self._stdout.readline())
        self.cpu = float(answer["cpu"])
        return [Record(row) for row in answer["records"]]

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()  # the server's way out
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--content", required=True, help="file whose bytes are the config")
    parser.add_argument("--dialect", choices=["raw", "envelope"], default="raw")
    parser.add_argument("--etag", choices=["quoted", "raw-hash", "none"], default="quoted")
    parser.add_argument("--backlog", type=int, default=1024, help="listen backlog")
    parser.add_argument("--hold", type=int, default=0, help="answer the first N GETs together")
    serve(parser.parse_args())


if __name__ == "__main__":
    main()
