"""deploy/grafana/fanout-dashboard.json: valid JSON whose every query names only metrics a
node serves, and which has the panels operators look for."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.deploy.conftest import DASHBOARD
from tests.deploy.promql import PROMETHEUS_BUILTINS, exported_metric_names, metric_names


def dashboard_queries(doc: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, query) for every panel target (rows included) and query variable."""
    def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for p in items:
            yield p
            yield from panels(p.get("panels", []))

    for p in panels(doc["panels"]):
        for t in p.get("targets", []):
            yield p["title"], t["expr"]
    for v in doc["templating"]["list"]:
        if v["type"] == "query":
            q = v["query"]
            yield f"variable {v['name']}", q["query"] if isinstance(q, dict) else q


def test_dashboard_queries_name_only_exported_metrics(tmp_path: Path) -> None:
    doc = json.loads(DASHBOARD.read_text())
    exported = exported_metric_names(tmp_path) | PROMETHEUS_BUILTINS
    queries = list(dashboard_queries(doc))
    assert len(queries) >= 15
    for where, expr in queries:
        names = metric_names(expr)
        assert names, f"{where}: no metric found in {expr!r}"
        assert names <= exported, f"{where}: {sorted(names - exported)} are not served"


def test_dashboard_shows_lag_backlog_throughput_errors_restarts() -> None:
    doc = json.loads(DASHBOARD.read_text())
    used = {n for _, expr in dashboard_queries(doc) for n in metric_names(expr)}
    for needed in ["fanout_target_lag_seconds", "fanout_target_ticks_behind",
                   "fanout_target_pending_files", "fanout_target_pending_bytes",
                   "fanout_target_events_total", "fanout_target_bytes_total",
                   "fanout_target_failed_connects_total", "fanout_node_failed_writes_total",
                   "fanout_process_start_time_seconds"]:
        assert needed in used, needed
    assert doc["uid"] and doc["title"]
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
