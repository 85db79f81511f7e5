"""`syncjob --loop` over many passes: memory growth, and /healthz latency under load.

    python benchmarks/bench_loop.py [--passes 5000] [--requests 20000] [--clients 8]

1. Memory: a loop with a 1 ms interval against the fake AlertAgent; RSS after the first
   100 passes and after the last (target: they differ by at most 1 MiB).
2. Latency: a second process sends /healthz requests from several keep-alive clients,
   once while the loop idles (the baseline) and once while it runs passes back to back;
   p50 and p99 side by side (target: p99 under 10 ms during passes).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.fake_alertagent import FakeAlertAgent
from tests.targets import free_port, wait_until

SYNCJOB = Path(sys.executable).with_name("syncjob")

# The load: run in its own process so that its work does not steal the loop's GIL.
LOAD = """
import http.client, sys, threading, time, json
port, clients, total = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
latencies = []
def client():
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for _ in range(total // clients):
        start = time.perf_counter()
        conn.request("GET", "/healthz")
        response = conn.getresponse(); response.read()
        latencies.append(time.perf_counter() - start)
        assert response.status == 200, response.status
threads = [threading.Thread(target=client) for _ in range(clients)]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps(sorted(latencies)))
"""


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def passes(url: str) -> int:
    with urllib.request.urlopen(url + "/metrics?format=json", timeout=5) as response:
        return int(json.loads(response.read())["sync_count"])


def start_loop(agent: FakeAlertAgent, workdir: str, interval: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
        "ALERTAGENT_ENDPOINT": agent.url, "CLUSTER_ID": "bench", "CONFIG_TYPE": "prometheus",
        "CONFIG_PATH": str(Path(workdir) / "prometheus.yml"), "SYNC_INTERVAL": interval,
        "HTTP_PORT": str(port), "HTTP_ADDRESS": "127.0.0.1", "NO_PROXY": "*",
    }  # fmt: skip
    proc = subprocess.Popen([str(SYNCJOB), "--loop"], env=env, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: _answers(url), 20, "the loop's server")
    return proc, url


def _answers(url: str) -> bool:
    try:
        return passes(url) >= 1
    except OSError:
        return False


def load(url: str, clients: int, requests: int) -> list[float]:
    port = url.rsplit(":", 1)[1]
    done = subprocess.run(
        [sys.executable, "-c", LOAD, port, str(clients), str(requests)],
        capture_output=True, text=True, check=True, timeout=300,
    )  # fmt: skip
    return json.loads(done.stdout)


def pct(sorted_values: list[float], p: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * p))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passes", type=int, default=5000)
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()

    with FakeAlertAgent() as agent, tempfile.TemporaryDirectory() as workdir:
        idle, idle_url = start_loop(agent, workdir + "/idle", "1h")
        try:
            baseline = load(idle_url, args.clients, args.requests)
        finally:
            idle.terminate()
            idle.wait()

        proc, url = start_loop(agent, workdir + "/busy", "1ms")
        try:
            wait_until(lambda: passes(url) >= 100, 120, "100 passes")
            rss_100 = rss_mib(proc.pid)
            started, at_start = time.monotonic(), passes(url)
            busy = load(url, args.clients, args.requests)
            during = passes(url) - at_start
            wait_until(lambda: passes(url) >= args.passes, 3600, f"{args.passes} passes", 0.5)
            rss_end = rss_mib(proc.pid)
            elapsed = time.monotonic() - started
            total = passes(url)
        finally:
            proc.terminate()
            proc.wait()

    print(
        f"memory: RSS after 100 passes {rss_100:.1f} MiB, after {total} passes "
        f"{rss_end:.1f} MiB: {rss_end - rss_100:+.2f} MiB (target within 1 MiB)"
    )
    print(f"        ({(total - 100) / elapsed:.0f} passes/s after the first 100)")
    print(
        f"/healthz, {args.requests} requests from {args.clients} keep-alive clients in a "
        "second process:"
    )
    print(
        f"  loop idle (baseline)       p50 {pct(baseline, 0.5):6.2f} ms   "
        f"p99 {pct(baseline, 0.99):6.2f} ms"
    )
    print(
        f"  during passes ({during:>4} ran)  p50 {pct(busy, 0.5):6.2f} ms   "
        f"p99 {pct(busy, 0.99):6.2f} ms   (target p99 < 10 ms)"
    )
    print(f"  p99 ratio busy/idle {pct(busy, 0.99) / pct(baseline, 0.99):.2f}x")


if __name__ == "__main__":
    main()
