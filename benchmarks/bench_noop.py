"""A no-change pass (the 304 path) against the floor of any CLI on this stack, in one run.

    python benchmarks/bench_noop.py [--runs 40]

Both are timed as whole processes, interleaved so that machine noise hits both alike;
peak RSS is each process's own (wait4). Quote the ratios: absolute times on a shared
machine mean little.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.fake_alertagent import FakeAlertAgent

HERE = Path(__file__).resolve().parent
SYNCJOB = Path(sys.executable).with_name("syncjob")


def measure(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and peak RSS in MiB of one process."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{argv[0]} exited {proc.returncode}")
    return elapsed, usage.ru_maxrss / 1024


def summary(name: str, samples: list[tuple[float, float]]) -> tuple[float, float]:
    times = sorted(t for t, _ in samples)
    rss = statistics.median(r for _, r in samples)
    p90 = times[int(len(times) * 0.9) - 1]
    print(
        f"{name:<28} median {statistics.median(times) * 1000:7.1f} ms   "
        f"p90 {p90 * 1000:7.1f} ms   peak RSS {rss:6.1f} MiB"
    )
    return statistics.median(times), rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()

    with (
        FakeAlertAgent(content=b"global:\n  scrape_interval: 15s\n") as agent,
        tempfile.TemporaryDirectory() as workdir,
    ):
        # As after `pip install`: bytecode cached (a source checkout under
        # PYTHONDONTWRITEBYTECODE would recompile every module on every run).
        base = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env = {
            **base,
            "ALERTAGENT_ENDPOINT": agent.url,
            "CLUSTER_ID": "bench",
            "CONFIG_TYPE": "prometheus",
            "CONFIG_PATH": str(Path(workdir) / "prometheus.yml"),
            "APP_ENV": "production",
        }
        measure([str(SYNCJOB)], env)  # the first pass writes; every later one is a 304
        floor_argv = [sys.executable, str(HERE / "floor_app.py")]
        floor, noop = [], []
        for _ in range(args.runs):
            floor.append(measure(floor_argv, env))
            noop.append(measure([str(SYNCJOB)], env))
        statuses = {r.status for r in agent.requests[1:]}

    print(f"{args.runs} runs each, interleaved; the source answered {sorted(statuses)} after the")
    print("first pass")
    floor_t, floor_rss = summary("floor (typer + urllib3)", floor)
    noop_t, noop_rss = summary("syncjob no-change pass", noop)
    print(
        f"wall time ratio {noop_t / floor_t:.2f}x (target <= 1.3x);  "
        f"peak RSS {noop_rss - floor_rss:+.1f} MiB (target <= +2 MiB)"
    )


if __name__ == "__main__":
    main()
