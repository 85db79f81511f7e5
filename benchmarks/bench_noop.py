"""A no-change pass (the 304 path) against the floor of any CLI on this stack, in one run.

    python benchmarks/bench_noop.py [--runs 40] [--push]

Both are timed as whole processes, interleaved so that machine noise hits both alike;
peak RSS is each process's own (wait4). Quote the ratios: absolute times on a shared
machine mean little.

--push: every pass also pushes its metrics to a real Pushgateway (the
prometheus-pushgateway binary on a loopback port), and the floor app also imports
prometheus_client.
"""

import argparse
import contextlib
import http.client
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.fake_alertagent import FakeAlertAgent

HERE = Path(__file__).resolve().parent
SYNCJOB = Path(sys.executable).with_name("syncjob")


def measure(argv: list[str], env: dict[str, str]) -> tuple[float, float, float]:
    """Wall seconds, peak RSS in MiB and CPU seconds (user + system) of one process.

    CPU time is what the process itself costs: on a busy machine the wall time also
    counts the time it waited for a core."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{argv[0]} exited {proc.returncode}")
    return elapsed, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


@contextlib.contextmanager
def pushgateway() -> Iterator[str]:
    """A real Pushgateway on a free loopback port; its URL.

    Started here rather than with tests/targets.py, which imports pytest: this process
    must stay small, as Linux charges each child it starts with this process's peak RSS.
    """
    binary = shutil.which("prometheus-pushgateway")
    if binary is None:
        sys.exit("--push needs prometheus-pushgateway: apt-get install prometheus-pushgateway")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    argv = [binary, f"--web.listen-address=127.0.0.1:{port}", "--persistence.file="]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while get(port, "/-/ready")[0] != 200:
            if proc.poll() is not None or time.monotonic() > deadline:
                sys.exit("prometheus-pushgateway did not start")
            time.sleep(0.05)  # polling a condition, with a deadline
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait()


def get(port: int, path: str) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read().decode()
    except OSError:
        return 0, ""
    finally:
        conn.close()


def summary(name: str, samples: list[tuple[float, float, float]]) -> tuple[float, float, float]:
    times = sorted(t for t, _, _ in samples)
    rss = statistics.median(r for _, r, _ in samples)
    cpu = statistics.median(c for _, _, c in samples)
    p90 = times[int(len(times) * 0.9) - 1]
    print(
        f"{name:<44} median {statistics.median(times) * 1000:7.1f} ms   "
        f"p90 {p90 * 1000:7.1f} ms   CPU {cpu * 1000:6.1f} ms   peak RSS {rss:6.1f} MiB"
    )
    return statistics.median(times), rss, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--push", action="store_true", help="push to a real Pushgateway")
    args = parser.parse_args()

    with (
        FakeAlertAgent(content=b"global:\n  scrape_interval: 15s\n") as agent,
        tempfile.TemporaryDirectory() as workdir,
        contextlib.ExitStack() as stack,
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
        if args.push:
            gateway = stack.enter_context(pushgateway())
            env |= {"PUSHGATEWAY_URL": gateway, "FLOOR_PUSH": "1"}
        measure([str(SYNCJOB)], env)  # the first pass writes; every later one is a 304
        floor_argv = [sys.executable, str(HERE / "floor_app.py")]
        floor, noop = [], []
        for _ in range(args.runs):
            floor.append(measure(floor_argv, env))
            noop.append(measure([str(SYNCJOB)], env))
        statuses = {r.status for r in agent.requests[1:]}
        if args.push:  # the pushes happened: the gateway holds the passes' series
            port = int(gateway.rsplit(":", 1)[1])
            pushed = [line for line in get(port, "/metrics")[1].splitlines()
                      if line.startswith("push_time_seconds{")]  # fmt: skip
            assert any('cluster_id="bench"' in line for line in pushed), pushed

    print(f"{args.runs} runs each, interleaved; the source answered {sorted(statuses)} after the")
    print("first pass" + ("; every pass pushed to a Pushgateway" if args.push else ""))
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    floor_t, floor_rss, floor_cpu = summary(
        "floor (typer + urllib3" + (" + prometheus_client)" if args.push else ")"), floor
    )
    noop_t, noop_rss, noop_cpu = summary("syncjob no-change pass", noop)
    print(
        f"wall time ratio {noop_t / floor_t:.2f}x (target <= 1.15x), "
        f"CPU time ratio {noop_cpu / floor_cpu:.2f}x;  "
        f"peak RSS {noop_rss - floor_rss:+.1f} MiB (target <= +2 MiB)"
    )
    print(f"(this process's own peak RSS, a floor under every RSS figure: {own:.1f} MiB)")


if __name__ == "__main__":
    main()
