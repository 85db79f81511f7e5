"""Bytes on the wire per unchanged poll: syncjob's conditional request against a full fetch.

    python benchmarks/bench_polls.py [--sizes-kib 64 1024] [--polls 5]

For each AlertAgent dialect and ETag behaviour, and each config size (a realistic
Prometheus rules file), real one-shot `syncjob` passes run against the fake AlertAgent in
its own process: the first pass writes, then `--polls` passes find nothing changed.
Measured at the server: request + response bytes exactly as on the wire (status line,
headers and body), per poll. Baseline: what a client without conditional requests pays
for every poll, the full answer of that dialect (the first pass's fetch: raw YAML, or the
JSON envelope). Target: an unchanged poll costs at most 1 KiB.

Rows "no conditional" are servers that never answer 304 (the envelope with no ETag, which
syncjob cannot make conditional; a raw server that ignores If-None-Match): syncjob then
downloads the whole answer every poll, and must still write nothing (checked: the file's
inode and mtime stay the same, and the state counts one change).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from fake_agent_server import AgentProcess, changed_since, write_rules

SYNCJOB = Path(sys.executable).with_name("syncjob")
TARGET = 1024

# (dialect, ETag mode, what it is)
CASES = [
    ("raw", "quoted", "conditional"),
    ("raw", "raw-hash", "conditional"),
    ("envelope", "quoted", "conditional"),
    ("envelope", "none", "no conditional"),
    ("raw", "none", "no conditional"),
]


@dataclass
class Polls:
    """What the server saw of one case: the first fetch and the unchanged polls."""

    full: int  # bytes of the first pass's request + 200 answer
    poll: float  # median bytes of an unchanged poll, request + answer
    poll_in: float
    poll_out: float
    statuses: list[int]  # what the unchanged polls were answered
    untouched: bool  # the config file kept its inode and mtime through the unchanged passes
    changes: int  # the state's count of writes: 1, the first pass's
    outcomes: list[str]  # of the unchanged passes, from their log lines
    ms: float  # median wall time of an unchanged pass


def run_pass(env: dict[str, str]) -> tuple[float, str]:
    """One one-shot pass: its wall time and its outcome (from the JSON log line)."""
    started = time.perf_counter()
    done = subprocess.run([str(SYNCJOB)], env=env, capture_output=True, text=True, timeout=120)
    took = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"syncjob exited {done.returncode}: {done.stderr.strip()[-500:]}")
    outcome = json.loads(done.stderr.strip().splitlines()[-1])["outcome"]
    return took, outcome


def measure_case(
    work: Path, source: Path, dialect: str, etag: str, polls: int, base: dict[str, str]
) -> Polls:
    config = work / f"{dialect}-{etag}" / "rules.yml"
    with AgentProcess(source, dialect=dialect, etag=etag) as agent:
        env = {
            **base, "ALERTAGENT_ENDPOINT": agent.url, "CLUSTER_ID": "polls",
            "CONFIG_TYPE": "prometheus-rules", "CONFIG_PATH": str(config),
            "CHECK_COMMAND": "",  # promtool runs only on a write; bytes do not depend on it
        }  # fmt: skip
        _, first = run_pass(env)
        assert first == "written", first
        before = config.stat()
        passes = [run_pass(env) for _ in range(polls)]
        after = config.stat()
        records = agent.records()
    state = json.loads(config.with_name(f".{config.name}.syncjob.json").read_text())
    assert len(records) == polls + 1, [r.status for r in records]
    full, unchanged = records[0], records[1:]
    return Polls(
        full=full.wire,
        poll=statistics.median(r.wire for r in unchanged),
        poll_in=statistics.median(r.bytes_in for r in unchanged),
        poll_out=statistics.median(r.bytes_out for r in unchanged),
        statuses=sorted({r.status for r in unchanged}),
        untouched=(before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns),
        changes=state["counts"]["changes"],
        outcomes=sorted({o for _, o in passes}),
        ms=statistics.median(t for t, _ in passes) * 1000,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes-kib", type=int, nargs="+", default=[64, 1024])
    parser.add_argument("--polls", type=int, default=5, help="unchanged passes per case")
    args = parser.parse_args()
    base = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    began = time.time()

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for kib in args.sizes_kib:
            source = work / f"source-{kib}.yml"
            write_rules(source, kib << 10)
            size = source.stat().st_size
            for dialect, etag, kind in CASES:
                case = measure_case(work / str(kib), source, dialect, etag, args.polls, base)
                results.append((size, dialect, etag, kind, case))

    print(
        f"{args.polls} unchanged one-shot passes per row after a first pass that writes; "
        "bytes = request + response on the wire, per poll (median), counted by the server"
    )
    head = (
        f"{'config':>9} {'dialect':<9} {'ETag':<9} {'kind':<15} {'full fetch B':>12} "
        f"{'poll B':>9} {'(in+out)':<15} {'status':>6} {'ratio':>8} {'<=1KiB':>6} "
        f"{'writes':>6} {'pass ms':>7}"
    )
    print(head)
    print("-" * len(head))
    for size, dialect, etag, kind, c in results:
        writes = "none" if c.untouched and c.changes == 1 else "WROTE"
        statuses = ",".join(map(str, c.statuses))
        print(
            f"{size / 1024:>5.0f} KiB {dialect:<9} {etag:<9} {kind:<15} {c.full:>12,} "
            f"{c.poll:>9,.0f} {c.poll_in:>5.0f}+{c.poll_out:<9.0f} {statuses:>6} "
            f"{c.poll / c.full:>8.4f} {'yes' if c.poll <= TARGET else 'NO':>6} {writes:>6} "
            f"{c.ms:>7.0f}"
        )
        assert c.outcomes == ["in sync"], c.outcomes
    print(
        "full fetch B: the first pass's request and 200 answer, what a client without "
        "conditional requests pays every poll;\nratio: unchanged poll / full fetch; "
        "writes: the config file untouched by the unchanged passes (same inode and mtime);\n"
        "pass ms: median wall time of an unchanged one-shot pass (process start to exit)"
    )

    if edited := changed_since(began):
        print(f"! syncjob files edited while this ran (figures may mix versions): {edited}")


if __name__ == "__main__":
    main()
