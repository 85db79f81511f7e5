"""A fleet of syncjobs against one AlertAgent: load at the service, spread, no-op share.

    python benchmarks/bench_fleet.py [--clusters 200] [--ticks 3] [--concurrency 0 8]
        [--loops 40] [--interval 2] [--duration 40] [--size-kib 64]

One fake AlertAgent (raw dialect, quoted ETag: the newer server) runs in a process of its
own (benchmarks/fake_agent_server.py) and records every request: arrival time, bytes in
and out exactly as on the wire, status. Each syncjob has its own CLUSTER_ID and its own
CONFIG_PATH in a temporary directory; the config is a realistic rules file (--size-kib).
The checker is off (CHECK_COMMAND=""): promtool would only run on the first tick's writes.

(a) Cron: a scheduler tick starts one one-shot `syncjob` per cluster. The first tick
    writes, the next are no-ops. Per tick: requests and bytes per second at the server,
    when the requests arrived after the tick, the share of no-op passes (304 and exit 0
    "in sync"), how long the tick took on this machine, and what each pass cost. Run once
    per --concurrency: 0 starts all of them at once, as cron would (on 2 cores that is
    ~200 runnable tasks and ~3 GiB for ~25 s: the spread then measures the contention,
    not syncjob); K keeps at most K running, so each pass runs about as fast as alone.
    Either way this one machine stands in for a fleet of machines: the arrival spread is
    how fast 2 cores start Python processes (cron itself adds no jitter).
(b) Sidecars: --loops `syncjob --loop` processes (own HTTP_PORT on 127.0.0.1, SYNC_INTERVAL
    --interval) for --duration seconds. The server holds their first requests until all
    have arrived and answers them together, so the fleet starts in phase (as when a hung
    source comes back) whatever the spread of the start-ups on 2 cores. Run twice: as
    shipped (each interval +/-10%), and the baseline, lockstep, with the jitter set to 0
    in the process (`syncjob.loop.JITTER = 0`, the benchmark's own counterfactual).
    Reported: requests and bytes per second, the no-op share, the spread of the k-th pass
    after the release across the fleet, a histogram of arrival phases over the last
    intervals, and the coefficient of variation of the gaps between arrivals (1 for
    arrivals at random, much more for bursts).
Then the arithmetic for 10,000 clusters polling every 30 s, from the measured bytes.
"""

import argparse
import collections
import http.client
import itertools
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from fake_agent_server import AgentProcess, Record, changed_since, write_rules

SYNCJOB = Path(sys.executable).with_name("syncjob")
LOCKSTEP = (
    "import sys, syncjob.loop; syncjob.loop.JITTER = 0.0; "
    "from syncjob.cli import main; sys.argv[0] = 'syncjob'; main()"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def env_for(base: dict[str, str], url: str, work: Path, cluster: str) -> dict[str, str]:
    return {
        **base, "ALERTAGENT_ENDPOINT": url, "CLUSTER_ID": cluster,
        "CONFIG_TYPE": "prometheus-rules", "CONFIG_PATH": str(work / cluster / "rules.yml"),
        "CHECK_COMMAND": "", "NO_PROXY": "*",
    }  # fmt: skip


# --- (a) one-shot passes started by a scheduler tick ------------------------------------


@dataclass
class Pass:
    cluster: str
    started: float  # time.time()
    ended: float
    exit_code: int
    outcome: str  # from the pass's JSON log line
    cpu: float  # user + system seconds of the process
    error: str  # the end of its log, when it failed


def one_pass(env: dict[str, str], log: Path) -> Pass:
    with log.open("w") as err:
        started = time.time()
        proc = subprocess.Popen([str(SYNCJOB)], env=env, stdout=subprocess.DEVNULL, stderr=err)
    _, status, usage = os.wait4(proc.pid, 0)
    ended = time.time()
    proc.returncode = code = os.waitstatus_to_exitcode(status)
    text = log.read_text()
    outcome = "no log line"
    for line in reversed(text.splitlines()):
        try:
            outcome = json.loads(line)["outcome"]
            break
        except (ValueError, KeyError):
            continue
    error = " | ".join(text.strip().splitlines()[-3:])[-600:] if code else ""
    cpu = usage.ru_utime + usage.ru_stime
    return Pass(env["CLUSTER_ID"], started, ended, code, outcome, cpu, error)


class Machine:
    """Samples the machine while a tick runs: tasks runnable, memory taken (peak)."""

    def __init__(self) -> None:
        self.runnable = 0
        self.memory = 0.0  # MiB, MemAvailable at the start minus its lowest
        self._stop = threading.Event()
        self._start = self._available()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    @staticmethod
    def _available() -> float:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            running = int(Path("/proc/loadavg").read_text().split()[3].split("/")[0])
            self.runnable = max(self.runnable, running)
            self.memory = max(self.memory, self._start - self._available())

    def stop(self) -> "Machine":
        self._stop.set()
        self._thread.join()
        return self


@dataclass
class Tick:
    started: float
    passes: list[Pass]
    records: list[Record]  # what the server saw during the tick
    server_cpu: float  # seconds the server spent on them
    machine: Machine


def cron(
    args: argparse.Namespace, base: dict[str, str], source: Path, work: Path, concurrency: int
) -> float:
    """The ticks; returns the median bytes of a no-op poll."""
    clusters = [f"cluster-{i:04d}" for i in range(args.clusters)]
    for cluster in clusters:
        (work / cluster).mkdir(parents=True)
    workers = concurrency or args.clusters
    ticks: list[Tick] = []
    with AgentProcess(source) as agent, ThreadPoolExecutor(max_workers=workers) as pool:

        def run(cluster: str, number: int) -> Pass:
            log = work / cluster / f"tick-{number}.log"
            return one_pass(env_for(base, agent.url, work, cluster), log)

        seen, cpu = 0, 0.0
        for number in range(args.ticks):
            started, machine = time.time(), Machine()
            passes = list(pool.map(run, clusters, [number] * len(clusters)))
            records = agent.records()
            ticks.append(Tick(started, passes, records[seen:], agent.cpu - cpu, machine.stop()))
            seen, cpu = len(records), agent.cpu
            time.sleep(1)  # let the machine settle between ticks

    how = "all at once" if not concurrency else f"at most {concurrency} at a time"
    print(f"(a) cron: {args.clusters} one-shot passes per tick, started {how}")
    print("at the server; arrivals in seconds after the tick started:")
    print(
        f"{'tick':>4} {'exit codes':>10} {'no-op':>5} {'tick s':>6} {'req/s':>5} "
        f"{'KiB/s':>6} {'B/req':>6}  {'first':>5} {'p10':>5} {'p50':>5} {'p90':>5} "
        f"{'last':>5} {'spread':>6}"
    )
    noop_bytes: list[int] = []
    for n, tick in enumerate(ticks, 1):
        passes, records = tick.passes, tick.records
        took = max(p.ended for p in passes) - tick.started
        statuses = {r.cluster_id: r.status for r in records}
        noop = sum(
            p.exit_code == 0 and p.outcome == "in sync" and statuses.get(p.cluster) == 304
            for p in passes
        )
        wire = sum(r.wire for r in records)
        noop_bytes += [r.wire for r in records if r.status == 304]
        at = [r.t - tick.started for r in records]
        codes = collections.Counter(p.exit_code for p in passes)
        print(
            f"{n:>4} {_counts(codes):>10} {noop / len(passes):>5.0%} {took:>6.1f} "
            f"{len(records) / took:>5.1f} {wire / took / 1024:>6.1f} "
            f"{wire / max(1, len(records)):>6,.0f}  {min(at):>5.2f} {pct(at, 0.1):>5.2f} "
            f"{pct(at, 0.5):>5.2f} {pct(at, 0.9):>5.2f} {max(at):>5.2f} "
            f"{max(at) - min(at):>6.2f}"
        )
        if len(records) != len(passes):
            print(f"     ! the server saw {len(records)} requests for {len(passes)} passes")
        for p in passes:
            if p.exit_code != 0:
                print(f"     ! {p.cluster} exited {p.exit_code}: {p.error}")
    print("on this machine (2 cores); runnable and MiB: peaks while the tick ran:")
    print(
        f"{'tick':>4} {'launched s':>10} {'pass p50 s':>10} {'max s':>6} {'CPU/pass ms':>11} "
        f"{'server CPU ms/req':>17} {'runnable':>8} {'MiB':>5}"
    )
    for n, tick in enumerate(ticks, 1):
        durations = [p.ended - p.started for p in tick.passes]
        print(
            f"{n:>4} {max(p.started for p in tick.passes) - tick.started:>10.2f} "
            f"{statistics.median(durations):>10.2f} {max(durations):>6.2f} "
            f"{statistics.median(p.cpu for p in tick.passes) * 1000:>11.0f} "
            f"{tick.server_cpu / max(1, len(tick.records)) * 1000:>17.2f} "
            f"{tick.machine.runnable:>8} {tick.machine.memory:>5.0f}"
        )
    print()
    return statistics.median(noop_bytes) if noop_bytes else float("nan")


def _counts(counter: collections.Counter[int]) -> str:
    return " ".join(f"{code}:{n}" for code, n in sorted(counter.items()))


# --- (b) long-running sidecars ------------------------------------------------------------


@dataclass
class LoopRun:
    name: str
    released: float  # when the server answered the held first requests
    ended: float
    records: list[Record]
    failures: int  # summed over the loops' /metrics
    errors: set[str]
    exited_early: int


def get_json(port: int, path: str) -> dict[str, object]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        return dict(json.loads(conn.getresponse().read()))
    finally:
        conn.close()


def run_loops(
    args: argparse.Namespace, base: dict[str, str], source: Path, work: Path, jitter: bool
) -> LoopRun:
    name = "jitter +/-10%" if jitter else "lockstep (jitter 0)"
    argv = [str(SYNCJOB), "--loop"] if jitter else [sys.executable, "-c", LOCKSTEP, "--loop"]
    procs: list[tuple[subprocess.Popen[bytes], int]] = []
    with AgentProcess(source, hold=args.loops) as agent:
        try:
            for i in range(args.loops):
                cluster = f"loop-{i:03d}"
                port = free_port()
                env = env_for(base, agent.url, work, cluster) | {
                    "HTTP_PORT": str(port), "HTTP_ADDRESS": "127.0.0.1",
                    "SYNC_INTERVAL": f"{args.interval}s",
                }  # fmt: skip
                (work / cluster).mkdir(parents=True)
                with (work / cluster / "loop.log").open("w") as err:
                    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=err)
                procs.append((proc, port))
            deadline = time.time() + 120
            while len(records := agent.records()) < args.loops:
                if time.time() > deadline or any(p.poll() is not None for p, _ in procs):
                    raise SystemExit(f"{name}: the loops did not all start ({len(records)} GETs)")
                time.sleep(0.2)
            released = max(r.t for r in records[: args.loops])
            time.sleep(max(0.0, released + args.duration - time.time()))
            ended = time.time()
            exited_early = sum(p.poll() is not None for p, _ in procs)
            failures, errors = 0, set()
            for proc, port in procs:
                if proc.poll() is not None:
                    continue
                metrics = get_json(port, "/metrics?format=json")
                failures += int(str(metrics["failure_count"]))
                if metrics["last_error"]:
                    errors.add(str(metrics["last_error"]))
        finally:
            for proc, _ in procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for proc, _ in procs:
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        records = [r for r in agent.records() if r.t <= ended]
    return LoopRun(name, released, ended, records, failures, errors, exited_early)


def report_loops(args: argparse.Namespace, runs: list[LoopRun]) -> float:
    """Print the sidecar tables; returns the median bytes of a no-op poll."""
    interval = args.interval
    print()
    print(
        f"(b) sidecars: {args.loops} `syncjob --loop`, SYNC_INTERVAL={interval:g}s, "
        f"{args.duration:g} s from the moment their first requests were answered together"
    )
    print(
        f"{'run':<20} {'requests':>8} {'req/s':>6} {'KiB/s':>7} {'B/poll':>6} {'no-op':>6} "
        f"{'failures':>8} {'gap CV':>6}"
    )
    noop_bytes: list[int] = []
    for run in runs:
        steady = [r for r in run.records if r.t >= run.released + interval]
        span = run.ended - (run.released + interval)
        polls = [r for r in run.records if r.conditional]
        noop = [r for r in polls if r.status == 304]
        noop_bytes += [r.wire for r in noop]
        late = sorted(r.t for r in run.records if r.t >= (run.released + run.ended) / 2)
        gaps = [b - a for a, b in itertools.pairwise(late)]
        cv = statistics.pstdev(gaps) / statistics.mean(gaps)
        print(
            f"{run.name:<20} {len(run.records):>8} {len(steady) / span:>6.1f} "
            f"{sum(r.wire for r in steady) / span / 1024:>7.1f} "
            f"{statistics.median(r.wire for r in noop):>6.0f} "
            f"{len(noop) / max(1, len(run.records) - args.loops):>6.1%} "
            f"{run.failures:>8} {cv:>6.2f}"
        )
        if run.errors or run.exited_early:
            print(f"     ! errors: {sorted(run.errors)}; loops exited early: {run.exited_early}")
    print(
        "req/s, KiB/s: after the first interval; no-op: 304s among the polls after the first "
        "pass;\ngap CV: std-dev / mean of the gaps between consecutive arrivals, second half"
    )

    print()
    print(
        "spread across the fleet of the k-th pass after the release (p5..p95 of its arrival "
        "times;\nthe floor: the time 2 cores take to run the passes that came due together)"
    )
    print(f"{'pass k':>6} " + " ".join(f"{run.name:>22}" for run in runs))
    by_k = [_kth_arrivals(run) for run in runs]
    most = min(len(k) for k in by_k) - 1  # index 0: the held first pass
    for k in sorted({1, 2, 3, 5, *range(10, most + 1, 5), most}):
        if k > most:
            continue
        cells = []
        for kth in by_k:
            times = kth[k]
            spread = pct(times, 0.95) - pct(times, 0.05)
            cells.append(f"{spread:>8.2f} s {spread / interval:>5.0%} of T")
        print(f"{k:>6} " + " ".join(f"{c:>22}" for c in cells))

    last = 5
    print()
    print(
        f"arrival phase within the interval, last {last} intervals "
        f"(share of requests per tenth of T):"
    )
    print(f"{'run':<20} " + " ".join(f"{i / 10:>4.1f}" for i in range(10)))
    for run in runs:
        times = [r.t for r in run.records if r.t >= run.ended - last * interval]
        bins = collections.Counter(
            int(((t - run.released) % interval) / interval * 10) for t in times
        )
        print(f"{run.name:<20} " + " ".join(f"{bins[i] / len(times):>4.0%}" for i in range(10)))
    return statistics.median(noop_bytes)


def _kth_arrivals(run: LoopRun) -> list[list[float]]:
    """[k][loop] arrival time of each loop's k-th request, for k present in every loop."""
    per_loop: dict[str | None, list[float]] = collections.defaultdict(list)
    for r in run.records:
        per_loop[r.cluster_id].append(r.t)
    most = min(len(times) for times in per_loop.values())
    return [[sorted(times)[k] for times in per_loop.values()] for k in range(most)]


def extrapolate(noop_b: float, full_b: int) -> None:
    clusters, interval = 10_000, 30
    rate = clusters / interval
    print()
    print(f"10,000 clusters polling every {interval} s, from the bytes measured above:")
    rows = [
        ("requests/s at the service", f"{clusters:,} / {interval} s", f"{rate:,.0f} req/s"),
        (
            "bytes/s, nothing changed",
            f"{rate:,.0f} x {noop_b:,.0f} B",
            f"{rate * noop_b / 1024:,.0f} KiB/s = {rate * noop_b * 8 / 1e6:,.2f} Mbit/s",
        ),
        (
            "per day, nothing changed",
            "x 86,400 s",
            f"{rate * noop_b * 86400 / 2**30:,.1f} GiB/day",
        ),
        (
            "a change, fetched in full",
            f"{clusters:,} x {full_b:,} B over ~{interval} s",
            f"{clusters * full_b / interval / 2**20:,.1f} MiB/s for one interval",
        ),
        (
            "if every poll were full",
            f"{rate:,.0f} x {full_b:,} B",
            f"{rate * full_b / 2**20:,.1f} MiB/s = {rate * full_b * 8 / 1e9:,.2f} Gbit/s",
        ),
    ]
    for what, how, result in rows:
        print(f"  {what:<27} {how:<32} {result}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clusters", type=int, default=200, help="(a) passes per tick")
    parser.add_argument("--ticks", type=int, default=3)
    parser.add_argument(
        "--concurrency", type=int, nargs="+", default=[0, 8], help="(a) 0: all at once"
    )
    parser.add_argument("--loops", type=int, default=40, help="(b) sidecars")
    parser.add_argument("--interval", type=float, default=2.0, help="(b) seconds")
    parser.add_argument("--duration", type=float, default=40.0, help="(b) seconds per run")
    parser.add_argument("--size-kib", type=int, default=64, help="the config's size")
    args = parser.parse_args()
    base = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    began = time.time()

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        source = work / "source.yml"
        write_rules(source, args.size_kib << 10)
        print(f"config: a {source.stat().st_size:,}-byte rules file; raw dialect, quoted ETag")
        print()
        cron_noop_b = max(cron(args, base, source, work / f"cron-{k}", k) for k in args.concurrency)
        runs = [
            run_loops(args, base, source, work / "jitter", jitter=True),
            run_loops(args, base, source, work / "lockstep", jitter=False),
        ]
        loop_noop_b = report_loops(args, runs)
        full_b = runs[0].records[0].wire  # a first pass: request and the 200 in full
    print(
        f"\nno-op poll: {cron_noop_b:,.0f} B (one-shot), {loop_noop_b:,.0f} B (--loop); "
        f"full fetch: {full_b:,} B"
    )
    extrapolate(max(cron_noop_b, loop_noop_b), full_b)

    if edited := changed_since(began):
        print(f"! syncjob files edited while this ran (figures may mix versions): {edited}")


if __name__ == "__main__":
    main()
