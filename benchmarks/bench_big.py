"""Big configs: a pass that fetches, hashes, validates and writes 16 and 64 MiB, side by
side with the shell a user would otherwise write, in one run.

    python benchmarks/bench_big.py [--sizes 16 64] [--runs 3]

Baseline: `curl -sf -o tmp URL && sha256sum tmp && mv tmp config`. syncjob: one pass that
writes (the checker off, as the baseline checks nothing; the YAML is still read whole to
validate it). Peak RSS of each process (wait4), against a no-change pass's.
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

SYNCJOB = Path(sys.executable).with_name("syncjob")
RULE = """  - name: group-{i}
    rules:
      - alert: HighErrorRate{i}
        expr: sum(rate(http_requests_total{{job="api",code=~"5.."}}[5m])) by (instance) > 0.05
        for: 10m
        labels: {{severity: critical, team: platform}}
        annotations:
          summary: "High error rate on {{{{ $labels.instance }}}}"
"""


def rules_file(mib: int) -> bytes:
    parts, size, i = [b"groups:\n"], 8, 0
    while size < mib << 20:
        parts.append(RULE.format(i=i).encode())
        size += len(parts[-1])
        i += 1
    return b"".join(parts)


def measure(argv: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    started = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    return time.perf_counter() - started, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    base = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}

    print(
        f"{'MiB':>4} {'baseline s':>11} {'syncjob s':>10} {'ratio':>6} "
        f"{'peak RSS MiB':>13} {'no-change':>10} {'above':>7}"
    )
    for mib in args.sizes:
        content = rules_file(mib)
        with FakeAlertAgent(content=content) as agent, tempfile.TemporaryDirectory() as work:
            config = Path(work) / "rules.yml"
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
                baseline.append(measure(["sh", "-c", shell], base)[0])
                config.unlink(missing_ok=True)
                Path(work, f".{config.name}.syncjob.json").unlink(missing_ok=True)
                took, peak, code = measure([str(SYNCJOB)], env)
                assert code == 0, f"syncjob exited {code}"
                assert config.read_bytes() == content
                passes.append(took)
                rss.append(peak)
            _, no_change_rss, code = measure([str(SYNCJOB)], env)  # a 304
            assert code == 0
        b, s = statistics.median(baseline), statistics.median(passes)
        print(
            f"{mib:>4} {b:>11.2f} {s:>10.2f} {s / b:>5.1f}x {max(rss):>13.1f} "
            f"{no_change_rss:>10.1f} {max(rss) - no_change_rss:>+7.1f}"
        )


if __name__ == "__main__":
    main()
