"""Rule files and Alertmanager configs written the way real ones are.

Shapes taken from kube-prometheus, the monitoring mixins (node, kubernetes, etcd) and
Alertmanager's example configs: quoted annotations with `{{ $labels.x }}` and
`{{ $value | humanize }}` templates, colons and quotes inside strings, multi-line
`expr: |` blocks, folded `>-` descriptions, flow lists and mappings
(`group_by: ['alertname', 'cluster']`, `labels: {severity: critical}`), comments,
and in Alertmanager routes `&anchor`s and `<<: *anchor` merge keys.

Seeded generators (`random.Random`), so a benchmark and a test build the same files, and
hypothesis strategies over them. `write_rules` streams a file of a given size to disk.
"""

import random
from collections.abc import Iterator
from pathlib import Path

from hypothesis import strategies as st

METRICS = [
    "kube_pod_container_status_waiting_reason", "container_cpu_usage_seconds_total",
    "node_filesystem_avail_bytes", "apiserver_request_total", "etcd_server_has_leader",
    "kube_deployment_status_replicas_available", "node_memory_MemAvailable_bytes",
    "http_requests_total", "kubelet_volume_stats_available_bytes", "up",
]  # fmt: skip
LABELS = ["namespace", "pod", "container", "job", "instance", "service", "endpoint"]
JOBS = ["kube-state-metrics", "kubelet", "node-exporter", "apiserver", "etcd"]
SEVERITIES = ["critical", "warning", "info"]

EXPRESSIONS = [
    'max_over_time({m}{{reason="CrashLoopBackOff", job="{job}"}}[5m]) >= 1',
    'sum by ({a}, {b}) (rate({m}{{job="{job}", code=~"5.."}}[5m]))\n'
    '  /\nsum by ({a}, {b}) (rate({m}{{job="{job}"}}[5m])) > 0.05',
    '(\n  {m}{{job="{job}", fstype!=""}} / {m}{{job="{job}"}} * 100 < 15\nand\n'
    '  predict_linear({m}{{job="{job}"}}[6h], 4*60*60) < 0\n)',
    'absent(up{{job="{job}"}} == 1)',
    'sum by (cluster, {a}, {b}) (\n  irate({m}{{job="{job}", metrics_path="/metrics/cadvisor",'
    ' image!=""}}[5m])\n) * on (cluster, {a}) group_left(node) topk by (cluster, {a}) (\n'
    '  1, max by (cluster, {a}, node) (kube_pod_info{{node!=""}})\n)',
    'histogram_quantile(0.99, sum(rate({m}{{job="{job}"}}[5m])) without (instance, pod)) > 1',
]
SUMMARIES = [
    "Pod is crash looping.",
    "Filesystem is predicted to run out of space within the next 4 hours.",
    "{job} has disappeared from Prometheus target discovery.",
    "Deployment has not matched the expected number of replicas.",
]
DESCRIPTIONS = [
    "Pod {{{{ $labels.namespace }}}}/{{{{ $labels.pod }}}} ({{{{ $labels.container }}}}) is in "
    'waiting state (reason: "CrashLoopBackOff").',
    "Filesystem on {{{{ $labels.device }}}} at {{{{ $labels.instance }}}} has only "
    '{{{{ printf "%.2f" $value }}}}% available space left and is filling up.',
    "{{{{ $labels.job }}}}: {{{{ $value | humanizePercentage }}}} of requests failed: "
    "see {{{{ $externalURL }}}}.",
    "Deployment {{{{ $labels.namespace }}}}/{{{{ $labels.deployment }}}} has not matched the "
    "expected number of replicas for longer than 15 minutes ({{{{ $value | humanize }}}} left).",
]


def _quoted(rng: random.Random, text: str, indent: str) -> str:
    """`text` as a YAML scalar in one of the styles real files use, after a `key: `."""
    style = rng.choice(["single", "double", "folded", "plain"])
    if style == "plain" and not text.startswith(("{", "'", '"')) and ": " not in text \
            and " #" not in text:  # fmt: skip
        return text
    if style == "folded":
        return ">-\n" + "\n".join(f"{indent}  {line}" for line in _wrap(text))
    if style == "double":
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return "'" + text.replace("'", "''") + "'"


def _wrap(text: str, width: int = 60) -> Iterator[str]:
    line = ""
    for word in text.split(" "):
        if line and len(line) + len(word) > width:
            yield line
            line = word
        else:
            line = f"{line} {word}" if line else word
    yield line


def rule(rng: random.Random, i: int, indent: str = "  ") -> str:
    """One alerting or recording rule, as a sequence item at `indent`."""
    a, b = rng.sample(LABELS, 2)
    job, metric = rng.choice(JOBS), rng.choice(METRICS)
    expr = rng.choice(EXPRESSIONS).format(m=metric, a=a, b=b, job=job)
    inner = indent + "  "
    if "\n" in expr or rng.random() < 0.5:
        expr_text = "|\n" + "\n".join(f"{inner}  {line}" for line in expr.splitlines())
    else:
        expr_text = _quoted(rng, expr, inner)
    if rng.random() < 0.2:
        name = f"{a}_{b}:{metric}_{i}:sum_rate{rng.choice(['1m', '5m', '1h'])}"
        return f"{indent}- record: {name}\n{inner}expr: {expr_text}\n"
    severity = rng.choice(SEVERITIES)
    labels = (
        f"{inner}labels: {{severity: {severity}}}\n"
        if rng.random() < 0.3
        else f"{inner}labels:\n{inner}  severity: {severity}\n"
    )
    description = rng.choice(DESCRIPTIONS).format()
    summary = rng.choice(SUMMARIES).format(job=job)
    comment = f"{inner}# {rng.choice(['see the runbook', 'TODO: tune', 'from the mixin'])}\n"
    return (
        f"{indent}- alert: {metric.title().replace('_', '')}{i}\n"
        + (comment if rng.random() < 0.2 else "")
        + f"{inner}annotations:\n"
        f"{inner}  description: {_quoted(rng, description, inner + '  ')}\n"
        f"{inner}  runbook_url: https://runbooks.prometheus-operator.dev/runbooks/{job}/{i}\n"
        f"{inner}  summary: {_quoted(rng, summary, inner + '  ')}\n"
        f"{inner}expr: {expr_text}\n"
        f"{inner}for: {rng.choice(['1m', '5m', '15m', '1h'])}\n" + labels
    )


def group(rng: random.Random, i: int, rules: int, outer: str = "") -> str:
    """A rule group; `outer` is one of the two indentations in the wild: "" (`- name` at the
    column of `groups:`, as kube-prometheus renders) or "  " (as the mixins do)."""
    interval = (
        f"{outer}  interval: {rng.choice(['30s', '1m', '3m'])}\n" if rng.random() < 0.3 else ""
    )
    body = "".join(rule(rng, i * 100 + n, outer + "  ") for n in range(rules))
    return f"{outer}- name: {rng.choice(JOBS)}.rules.{i}\n{interval}{outer}  rules:\n{body}"


def rules_file(seed: int, groups: int = 3, rules: int = 4) -> str:
    rng = random.Random(seed)
    head = "# Generated from the kubernetes-mixin; do not edit.\n" if rng.random() < 0.5 else ""
    start = "---\n" if rng.random() < 0.2 else ""
    outer = rng.choice(["", "  "])
    return (
        start
        + head
        + "groups:\n"
        + "".join(group(rng, i, rng.randint(1, rules), outer) for i in range(groups))
    )


def write_rules(path: Path, size: int, seed: int = 0) -> None:
    """A realistic rules file of at least `size` bytes, written as it is made."""
    rng = random.Random(seed)
    with path.open("w") as out:
        written = out.write("# Generated from the kubernetes-mixin; do not edit.\ngroups:\n")
        i = 0
        while written < size:
            written += out.write(group(rng, i, rng.randint(1, 8), "  "))
            i += 1


RECEIVER_KINDS = [
    "  slack_configs:\n  - channel: '#alerts-{team}'\n    send_resolved: true\n"
    "    api_url: 'https://hooks.slack.com/services/T000/B000/{team}'\n"
    "    title: '{{{{ template \"slack.default.title\" . }}}}'\n"
    '    text: "{{{{ range .Alerts }}}}{{{{ .Annotations.description }}}}\\n{{{{ end }}}}"\n',
    "  pagerduty_configs:\n  - routing_key: 'r0ut1ngk3y{team}'\n"
    "    description: '{{{{ .CommonAnnotations.summary }}}}'\n",
    "  webhook_configs:\n  - url: 'http://alert-bridge.{team}.svc:8080/alerts'\n"
    "    max_alerts: 20\n",
    "  email_configs:\n  - to: '{team}@example.com'\n    from: 'alertmanager@example.com'\n"
    "    smarthost: 'smtp.example.com:587'\n"
    "    headers: {{Subject: '[{{{{ .Status }}}}] {team}'}}\n",
]


def alertmanager_config(seed: int, teams: int = 3) -> str:
    """An Alertmanager config with routes that share settings through an anchor and merge
    keys, as in Alertmanager's examples and many a company's config."""
    rng = random.Random(seed)
    names = [f"team-{chr(97 + i)}" for i in range(teams)]
    group_by = ", ".join(f"'{label}'" for label in ["alertname", *rng.sample(LABELS, 2)])
    routes = [
        "  - &team_route\n    receiver: " + names[0] + "\n"
        "    group_wait: 10s\n    group_by: [" + group_by + "]\n"
        f"    matchers: ['team=\"{names[0]}\"']\n"
    ]
    for name in names[1:]:
        routes.append(
            f"  - <<: *team_route\n    receiver: {name}\n    matchers: ['team=\"{name}\"']\n"
        )
    receivers = [f"- name: {name}\n" + rng.choice(RECEIVER_KINDS).format(team=name)
                 for name in names]  # fmt: skip
    return (
        "# Alertmanager configuration, rendered by AlertAgent\n"
        "global:\n  resolve_timeout: 5m\n"
        "templates:\n- '/etc/alertmanager/templates/*.tmpl'\n"
        "route:\n  receiver: " + names[0] + "\n"
        f"  group_by: [{group_by}]\n  group_wait: 30s\n  group_interval: 5m\n"
        "  repeat_interval: 3h\n  routes:\n"
        + "".join(routes)
        + 'inhibit_rules:\n- source_matchers: [severity="critical"]\n'
        "  target_matchers: [severity=\"warning\"]\n  equal: ['alertname', 'namespace']\n"
        "receivers:\n" + "".join(receivers)
    )


seeds = st.integers(min_value=0, max_value=2**32 - 1)
rules_files = st.builds(rules_file, seeds, st.integers(1, 4), st.integers(1, 5))
alertmanager_configs = st.builds(alertmanager_config, seeds, st.integers(1, 4))


SCRAPE_JOB = """  - job_name: '{name}'
    scrape_interval: {interval}
    metrics_path: /metrics
    scheme: {scheme}
    static_configs:
      - targets: [{targets}]
        labels: {{team: '{team}', env: "prod"}}
    relabel_configs:
      # keep only the pods that ask to be scraped
      - source_labels: [__address__]
        regex: '([^:]+)(?::\\d+)?'
        target_label: instance
        replacement: '${{1}}'
      - source_labels: [__meta_kubernetes_namespace, __meta_kubernetes_pod_name]
        separator: /
        target_label: pod
    metric_relabel_configs:
      - source_labels: [__name__]
        regex: 'go_gc_.*|process_.*'
        action: drop
"""


def write_prometheus_config(path: Path, size: int, seed: int = 0) -> None:
    """A Prometheus config of at least `size` bytes: scrape jobs with static targets,
    quoted regexes, `${1}` replacements, flow lists and comments."""
    rng = random.Random(seed)
    with path.open("w") as out:
        written = out.write(
            "# Rendered by AlertAgent\nglobal:\n  scrape_interval: 30s\n"
            "  external_labels: {cluster: 'prod-eu-1'}\nrule_files:\n  - 'rules/*.yml'\n"
            "scrape_configs:\n"
        )
        i = 0
        while written < size:
            hosts = ", ".join(f"'10.{i % 250}.{n}.{rng.randint(1, 254)}:9100'" for n in range(8))
            written += out.write(SCRAPE_JOB.format(
                name=f"{rng.choice(JOBS)}-{i}", interval=rng.choice(["15s", "30s", "1m"]),
                scheme=rng.choice(["http", "https"]), targets=hosts, team=f"team-{i % 7}",
            ))  # fmt: skip
            i += 1
