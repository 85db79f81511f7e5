"""The alerting rules in monitoring/: promtool accepts them and their unit tests pass.

The unit tests themselves (which alert fires in which story, and which stays quiet) live
in monitoring/syncjob-alerts.test.yml; this file runs them and guards what promtool cannot:
that the rules only use series syncjob publishes, and that every alert is tested both ways.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.targets import require_binary

REPO = Path(__file__).resolve().parent.parent
RULES = REPO / "monitoring" / "syncjob-alerts.yml"
RULE_TESTS = REPO / "monitoring" / "syncjob-alerts.test.yml"

# Every series syncjob pushes to the Pushgateway and serves on --loop's /metrics.
# A rename on either side must break this test, not silently mute an alert.
SYNCJOB_SERIES = frozenset(
    {
        "config_sync_runs_total",
        "config_sync_failures_total",
        "config_sync_changes_total",
        "config_sync_reloads_total",
        "config_sync_rollbacks_total",
        "config_sync_last_run_timestamp_seconds",
        "config_sync_last_success_timestamp_seconds",
        "config_sync_last_change_timestamp_seconds",
        "config_sync_last_duration_seconds",
        "config_sync_consecutive_failures",
        "config_sync_last_exit_code",
        "config_sync_in_sync",
        "config_sync_info",
    }
)

# PromQL words that look like identifiers but are not metric names.
_KEYWORDS = frozenset(
    ("and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
     "offset", "bool", "inf", "nan")
)  # fmt: skip
_STRING = re.compile(r""""(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`""")
_NAME_MATCHER = re.compile(r"""__name__\s*=\s*(?:"([^"]*)"|'([^']*)')""")
_LABEL_LIST = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
# an identifier that is not the tail of a number or duration (1e3, 15m) and not a call
_IDENTIFIER = re.compile(r"(?<![\w:.])([a-zA-Z_:][\w:]*)(?![\w:])(?!\s*\()")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (enough PromQL for alert rules)."""
    names = {a or b for a, b in _NAME_MATCHER.findall(expr)}
    expr = re.sub(r"#[^\n]*", "", expr)
    expr = re.sub(r"\{[^}]*\}", "", _STRING.sub('""', expr))  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges and subqueries
    expr = _LABEL_LIST.sub("", expr)
    names.update(n for n in _IDENTIFIER.findall(expr) if n.lower() not in _KEYWORDS)
    return names


def _load(path: Path) -> Any:
    with path.open(encoding="utf-8") as f:
        return yaml.safe_load(f)


def _alert_rules() -> list[dict[str, Any]]:
    groups = _load(RULES)["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def _promtool(*args: str) -> None:
    promtool = require_binary("promtool", "prometheus")
    result = subprocess.run(
        [promtool, *args], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, (
        f"promtool {' '.join(args)} exited {result.returncode}:\n{result.stdout}{result.stderr}"
    )


@pytest.mark.integration
def test_promtool_accepts_the_rules() -> None:
    _promtool("check", "rules", str(RULES))


@pytest.mark.integration
def test_rule_unit_tests_pass() -> None:
    _promtool("test", "rules", str(RULE_TESTS))


def test_metric_names_parses_what_alert_rules_use() -> None:
    expr = (
        'sum by (cluster_id) (rate(a_total{job="x", le="1e3"}[5m] offset 1h)) > 1e3 '
        'unless on(cluster_id) group_left b_seconds > bool 0 and {__name__="c"}'
    )
    assert metric_names(expr) == {"a_total", "b_seconds", "c"}


def test_rules_use_only_series_syncjob_publishes() -> None:
    rules = _alert_rules()
    assert rules
    for rule in rules:
        names = metric_names(rule["expr"])
        assert names, f"{rule['alert']}: no metric name found in {rule['expr']!r}"
        unknown = names - SYNCJOB_SERIES
        assert not unknown, f"{rule['alert']} uses series syncjob does not publish: {unknown}"


def test_alerts_name_the_cluster_and_config_type() -> None:
    for rule in _alert_rules():
        text = rule["annotations"]["summary"] + rule["annotations"]["description"]
        for label in ("cluster_id", "config_type"):
            assert f"$labels.{label}" in text, f"{rule['alert']} does not mention {label}"
        assert rule["labels"]["severity"] in {"warning", "critical"}


def test_every_alert_is_tested_firing_and_quiet() -> None:
    """promtool passes a test of a misspelt alert that expects nothing: check the names."""
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in _load(RULE_TESTS)["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    alerts = {rule["alert"] for rule in _alert_rules()}
    assert (firing | quiet) <= alerts, f"tests name unknown alerts: {(firing | quiet) - alerts}"
    assert not alerts - firing, f"never tested firing: {alerts - firing}"
    assert not alerts - quiet, f"never tested quiet: {alerts - quiet}"
