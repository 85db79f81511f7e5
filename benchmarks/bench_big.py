"""Big configs: a pass that fetches, hashes, validates and writes 32 and 64 MiB rules
files of two kinds, side by side with the shell a user would otherwise write, in one run.

    python benchmarks/bench_big.py [--sizes 32 64] [--kinds realistic plain] [--runs 3]

Kinds: `realistic` is written the way the monitoring mixins and kube-prometheus write rules
(tests/realistic.py: quoted `{{ $labels.x }}` templates, `expr: |` blocks, flow mappings,
comments); `plain` repeats one short group, as AlertAgent renders them.

Baseline: `curl -sf -o tmp URL && sha256sum tmp && mv tmp config`. syncjob: one pass that
writes (the checker off, as the baseline checks nothing; the YAML is still read whole to
validate it). Runs alternate between the two. Peak RSS of each process (wait4), against a
no-change pass's. Beside them, the least any full syntax check costs on this stack:
libyaml's C parser reading the same file, building nothing (`raw_parse`), timed inside a
process of its own after its start and imports, so an understatement of that floor.

The fake AlertAgent runs in its own process (benchmarks/fake_agent_server.py) and the
config is generated straight to a file: Linux charges a child, at exec, with the peak RSS
of the process it was forked (or vforked) from, so this process must stay small or every
figure reads as its own peak. That floor is printed; figures near it mean nothing.
"""

import argparse
import hashlib
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fake_agent_server import ROOT, AgentProcess, changed_since, write_rules

SYNCJOB = Path(sys.executable).with_name("syncjob")


def write_kind(kind: str, path: Path, size: int) -> None:
    """Made in a child: tests.realistic imports hypothesis, whose memory this process must
    not carry (see above)."""
    if kind == "plain":
        write_rules(path, size)
        return
    code = "import sys; from pathlib import Path; from tests.realistic import write_rules; " \
        "write_rules(Path(sys.argv[1]), int(sys.argv[2]))"  # fmt: skip
    subprocess.run([sys.executable, "-c", code, str(path), str(size)], cwd=ROOT, check=True)


def digest(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def measure(argv: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    started = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    return time.perf_counter() - started, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status)


def libyaml_parse(path: Path) -> float:
    """Seconds libyaml's C parser takes to read `path` through, building no Python objects."""
    code = """if True:
        import sys, time
        from yaml import CSafeLoader
        with open(sys.argv[1], "rb") as f:
            started = time.perf_counter()
            CSafeLoader(f).raw_parse()
        print(time.perf_counter() - started)"""
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, check=True)
    return float(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--kinds", nargs="+", default=["realistic", "plain"])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    base = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    began = time.time()

    rows = []
    for mib, kind in [(mib, kind) for mib in args.sizes for kind in args.kinds]:
        with tempfile.TemporaryDirectory() as work:
            source = Path(work) / "source.yml"
            write_kind(kind, source, mib << 20)
            want = digest(source)
            config = Path(work) / "rules.yml"
            with AgentProcess(source) as agent:
                env = {
                    **base, "ALERTAGENT_ENDPOINT": agent.url, "CLUSTER_ID": "big",
                    "CONFIG_TYPE": "prometheus-rules", "CONFIG_PATH": str(config),
                    "CHECK_COMMAND": "", "MAX_BODY_SIZE": "128MiB", "HTTP_TIMEOUT": "120s",
                }  # fmt: skip
                url = f"{agent.url}/api/v1/configs?cluster_id=big&type=prometheus-rules"
                shell = (f'curl -sf -o "{work}/tmp" "{url}" && sha256sum "{work}/tmp" >/dev/null '
                         f'&& mv "{work}/tmp" "{work}/shell.yml"')  # fmt: skip
                baseline, passes, rss = [], [], []
                for _ in range(args.runs):
                    took, _, code = measure(["sh", "-c", shell], base)
                    assert code == 0, f"the shell baseline exited {code}"
                    baseline.append(took)
                    config.unlink(missing_ok=True)
                    Path(work, f".{config.name}.syncjob.json").unlink(missing_ok=True)
                    took, peak, code = measure([str(SYNCJOB)], env)
                    assert code == 0, f"syncjob exited {code}"
                    assert digest(config) == want
                    passes.append(took)
                    rss.append(peak)
                _, no_change_rss, code = measure([str(SYNCJOB)], env)  # a 304
                assert code == 0
                assert [r.status for r in agent.records()][-1] == 304
            parse = statistics.median(libyaml_parse(source) for _ in range(args.runs))
        b, s = statistics.median(baseline), statistics.median(passes)
        rows.append((mib, kind, b, s, parse, max(rss), no_change_rss))

    print(f"median of {args.runs} runs; peak RSS: the largest of the runs")
    print(
        f"{'MiB':>4} {'kind':>10} {'baseline s':>11} {'syncjob s':>10} {'ratio':>6} "
        f"{'libyaml parse':>14} {'peak RSS MiB':>13} {'no-change':>10} {'above':>7}"
    )
    for mib, kind, b, s, parse, peak, no_change in rows:
        print(
            f"{mib:>4} {kind:>10} {b:>11.2f} {s:>10.2f} {s / b:>5.1f}x {parse:>8.2f} "
            f"{parse / b:>4.1f}x {peak:>13.1f} {no_change:>10.1f} {peak - no_change:>+7.1f}"
        )
    floor = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"(this process's own peak RSS, a floor under every RSS figure: {floor:.1f} MiB)")

    if edited := changed_since(began):
        print(f"! syncjob files edited while this ran (figures may mix versions): {edited}")


if __name__ == "__main__":
    main()
