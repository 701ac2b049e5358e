"""The alert rules and the dashboard speak of metrics the services really expose.

An alert on a metric no service emits never fires; that is how the broker-outage alert
once watched an outcome the intake never reported. These tests read every expression in
`deploy/prometheus/alerts.yml` and the Grafana dashboard, and look each metric up in the
registry the four services fill when they are imported. The rules themselves are checked
and unit-tested with promtool.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

import leadflow_intake.app
import leadflow_router.app
import leadflow_scoring.app
import leadflow_sla.app
from leadflow import __version__

ROOT = Path(__file__).resolve().parents[3]
ALERTS = ROOT / "deploy/prometheus/alerts.yml"
ALERT_TESTS = ROOT / "deploy/prometheus/alerts.test.yml"
DASHBOARD = ROOT / "deploy/grafana/dashboards/leadflow.json"
RUNBOOK = ROOT / "docs/runbook.md"

SERVICES = (leadflow_intake.app, leadflow_scoring.app, leadflow_router.app, leadflow_sla.app)
METRIC = re.compile(r"\bleadflow_[a-z0-9_]+")
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("_count", "_sum", "_created"),
    "gauge": ("",),
    "info": ("_info",),
}


def exposed_names() -> set[str]:
    """Every sample name the services' metrics can produce."""
    assert SERVICES  # imported for their metrics
    names: set[str] = set()
    for family in REGISTRY.collect():
        names.add(family.name)
        names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ("",)))
    return names


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def dashboard_expressions() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [t["expr"] for panel in panels for t in panel.get("targets", []) if "expr" in t]


def test_every_metric_an_alert_names_is_exposed() -> None:
    exposed = exposed_names()
    missing = {
        (rule["alert"], name)
        for rule in alert_rules()
        for name in METRIC.findall(rule["expr"])
        if name not in exposed
    }
    assert not missing, f"alerts on metrics no service exposes: {sorted(missing)}"


def test_every_metric_the_dashboard_plots_is_exposed() -> None:
    exposed = exposed_names()
    expressions = dashboard_expressions()
    assert expressions
    missing = {name for expr in expressions for name in METRIC.findall(expr)} - exposed
    assert not missing, f"dashboard panels on metrics no service exposes: {sorted(missing)}"
    # Names are matched literally: a regex over metric names would hide a renamed one.
    assert not [expr for expr in expressions if "__name__" in expr]


@pytest.mark.parametrize(
    "metric",
    [
        "leadflow_intake_spool_depth_events",
        "leadflow_notifications_failed_total",
        "leadflow_sla_overdue_windows",
        "leadflow_consumer_paused",
        "leadflow_task_restarts_total",
        "leadflow_consumer_lag_messages",
    ],
)
def test_the_faults_an_operator_must_see_are_alerted_on_and_plotted(metric: str) -> None:
    assert any(metric in rule["expr"] for rule in alert_rules())
    assert any(metric in expr for expr in dashboard_expressions())


def test_the_intake_outage_alert_watches_the_outcome_the_intake_emits() -> None:
    source = (ROOT / "services/intake/leadflow_intake/api.py").read_text()
    outcomes = {
        m for rule in alert_rules() for m in re.findall(r'outcome="([a-z_]+)"', rule["expr"])
    }
    assert outcomes == {"not_stored"}
    assert '"not_stored"' in source


def test_shared_consumer_metrics_are_one_name_with_a_service_label() -> None:
    exposed = exposed_names()
    assert "leadflow_events_consumed_total" in exposed
    assert not [
        name for name in exposed if re.match(r"leadflow_(scoring|router|sla)_events_", name)
    ]


def test_the_build_info_names_the_running_version() -> None:
    assert REGISTRY.get_sample_value("leadflow_build_info", {"version": __version__}) == 1.0


def test_every_alert_has_a_runbook_line_and_a_runbook_section() -> None:
    runbook = RUNBOOK.read_text()
    headings = {line.lstrip("#").strip() for line in runbook.splitlines() if line.startswith("## ")}
    for rule in alert_rules():
        line = rule["annotations"].get("runbook", "")
        assert f"docs/runbook.md#{rule['alert'].lower()}" in line, rule["alert"]
        assert rule["alert"] in headings, f"docs/runbook.md has no section {rule['alert']}"


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("promtool is not installed (`make test` installs Debian's prometheus)")
    return found


def test_promtool_accepts_the_rules() -> None:
    result = subprocess.run(
        [promtool(), "check", "rules", str(ALERTS)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_of_the_rules_pass() -> None:
    result = subprocess.run(
        [promtool(), "test", "rules", str(ALERT_TESTS)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ALERT_TESTS.parent,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    tested = set(re.findall(r"alertname: (\w+)", ALERT_TESTS.read_text()))
    assert tested == {rule["alert"] for rule in alert_rules()}, "an alert without a unit test"
