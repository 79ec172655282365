"""ops/: the Prometheus alert rules and scrape config, and the Grafana dashboard, checked against the metrics
the worker and the shadow consumer really export (a renamed metric would otherwise silence an alert)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from rci.core.errors import RejectCode
from rci.streams.metrics import WorkerMetrics
from rci.streams.shadow.metrics import ShadowMetrics

ROOT = Path(__file__).resolve().parents[1]
PROMETHEUS = ROOT / "ops" / "prometheus"
DASHBOARD = ROOT / "ops" / "grafana" / "rci.json"
_SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}
_METRIC = re.compile(r"\b(rci_[a-z0-9_]+)\b")
_SELECTOR = re.compile(r"\b(rci_[a-z0-9_]+)\{([^}]*)\}")
_MATCHER = re.compile(r'([a-z_]+)\s*(=~|!~|!=|=)\s*"([^"]*)"')
# label values the code writes, where they are a closed set
_VALUES = {"deboost": {"true", "false"}, "agree": {"true", "false"}, "code": {c.value for c in RejectCode}}

needs_promtool = pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool not installed (scripts/bootstrap.sh installs Debian's prometheus)"
)


def exported() -> dict[str, tuple[str, ...]]:
    """Every series name the two processes export -> the metric's label names."""
    names: dict[str, tuple[str, ...]] = {}
    for process in (WorkerMetrics(), ShadowMetrics()):
        for metric in vars(process).values():
            if isinstance(metric, MetricWrapperBase):
                for suffix in _SUFFIXES[metric._type]:
                    names[metric._name + suffix] = tuple(metric._labelnames)
    return names


def alert_rules() -> list[dict]:
    groups = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def check_references(expr: str, names: dict[str, tuple[str, ...]]) -> None:
    for name in _METRIC.findall(expr):
        assert name in names, f"{name} is not exported (exported: {sorted(names)}) in: {expr}"
    for name, matchers in _SELECTOR.findall(expr):
        for label, _op, value in _MATCHER.findall(matchers):
            assert label in names[name], f"{name} has no label {label!r} in: {expr}"
            if label in _VALUES:
                assert value in _VALUES[label], f"{label}={value!r} is never written in: {expr}"


def test_the_ready_gauges_and_the_counters_are_exported_under_the_names_used() -> None:
    names = exported()
    for name in ("rci_worker_ready", "rci_shadow_ready", "rci_events_in_total", "rci_dead_letters_total",
                 "rci_consumer_lag", "rci_scores_out_total", "rci_shadow_pairs_total", "rci_shadow_abs_gap_sum"):
        assert name in names


def test_alerts_reference_only_exported_metrics_labels_and_values() -> None:
    names = exported()
    rules = alert_rules()
    assert {r["alert"] for r in rules} >= {"RciDeadLetterRateHigh", "RciConsumerLagHigh", "RciDeboostRateHigh",
                                           "RciTeacherDisagreementHigh", "RciWorkerNotReady", "RciShadowNotReady"}
    for rule in rules:
        check_references(rule["expr"], names)
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_every_alert_has_a_unit_test_that_fires_it() -> None:
    tests = yaml.safe_load((PROMETHEUS / "alerts.test.yml").read_text())["tests"]
    fired = {case["alertname"] for test in tests for case in test["alert_rule_test"] if case["exp_alerts"]}
    assert fired == {r["alert"] for r in alert_rules()}


@needs_promtool
def test_promtool_checks_the_rules_and_the_scrape_config() -> None:
    for args in (["check", "rules", "alerts.yml"], ["check", "config", "prometheus.yml"]):
        result = subprocess.run(["promtool", *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_promtool_unit_tests_fire_each_alert_on_a_synthetic_series() -> None:
    result = subprocess.run(["promtool", "test", "rules", "alerts.test.yml"], cwd=PROMETHEUS, capture_output=True,
                            text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_is_grafana_json_over_exported_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"] and isinstance(dashboard["panels"], list)
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    [datasource] = [v for v in dashboard["templating"]["list"] if v["type"] == "datasource"]
    exprs = dashboard_exprs()
    assert len(exprs) >= 10
    names = exported()
    for expr in exprs:
        check_references(expr, names)
    used = {name for expr in exprs for name in _METRIC.findall(expr)}
    for metric in ("rci_worker_ready", "rci_consumer_lag", "rci_dead_letters_total", "rci_shadow_pairs_total"):
        assert metric in used
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${%s}" % datasource["name"]


@needs_promtool
def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    """promtool parses each panel's query as a recording rule (Grafana's $__rate_interval replaced)."""
    rules = [{"record": f"rci:dashboard_query_{i}", "expr": expr.replace("$__rate_interval", "5m")}
             for i, expr in enumerate(dashboard_exprs())]  # fmt: skip
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
