"""deploy/prometheus: the rules load in promtool, every alert has unit tests that pass
(one case that fires, one that must not), and they name only metrics a node serves."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from tests.deploy.conftest import RULE_TESTS, RULES, PromTools
from tests.deploy.promql import PROMETHEUS_BUILTINS, exported_metric_names, metric_names


def _alerts() -> dict[str, str]:
    doc = yaml.safe_load(RULES.read_text())
    return {r["alert"]: r["expr"] for g in doc["groups"] for r in g["rules"] if "alert" in r}


def test_promtool_checks_the_rules(prom_tools: PromTools) -> None:
    out = subprocess.run([prom_tools.promtool, "check", "rules", str(RULES)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(_alerts())} rules found" in out.stdout + out.stderr


def test_promtool_unit_tests_pass(prom_tools: PromTools) -> None:
    out = subprocess.run([prom_tools.promtool, "test", "rules", RULE_TESTS.name],
                         cwd=RULE_TESTS.parent, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout + out.stderr


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    doc = yaml.safe_load(RULE_TESTS.read_text())
    fires: set[str] = set()
    quiet: set[str] = set()
    for case in doc["tests"]:
        for t in case.get("alert_rule_test", []):
            (fires if t.get("exp_alerts") else quiet).add(t["alertname"])
    alerts = set(_alerts())
    assert len(alerts) >= 9
    assert alerts - fires == set(), "alerts without a case that fires"
    assert alerts - quiet == set(), "alerts without a case that must not fire"
    assert fires | quiet <= alerts, "unit tests for alerts that do not exist"


def test_rules_and_their_tests_name_only_exported_metrics(tmp_path: Path) -> None:
    exported = exported_metric_names(tmp_path) | PROMETHEUS_BUILTINS
    for alert, expr in _alerts().items():
        names = metric_names(expr)
        assert names, f"{alert}: no metric found in {expr!r}"
        assert names <= exported, f"{alert}: {sorted(names - exported)} are not served"
    doc = yaml.safe_load(RULE_TESTS.read_text())
    for case in doc["tests"]:
        for s in case["input_series"]:
            assert metric_names(s["series"]) <= exported, s["series"]


def test_metric_names_reads_promql() -> None:
    """The extraction the tests above rely on: it must find names, not swallow them."""
    assert metric_names('sum by (target) (rate(a_total{x=~"$i"}[$__rate_interval]))') == \
        {"a_total"}
    assert metric_names("min_over_time(a[30m]) > 0 and deriv(b[30m]) > 0") == {"a", "b"}
    assert metric_names("x offset 5m / on(instance) group_left(target) y") == {"x", "y"}
    assert metric_names('label_values(t_up{instance=~"$instance"}, target)') == {"t_up"}
    assert metric_names('1 - a{job="fanout"} / b < 0.10') == {"a", "b"}
