"""A real Prometheus scrapes a running topology's /metrics with a read token, evaluates
the shipped rules (``for:`` and two thresholds shortened in a copy), fires
FanoutTargetLagging while the target node is frozen (SIGSTOP) and FanoutStateFileStale
while the forwarder is; thawed, each resolves."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from fanout.testing import Topology, eventually, free_port, wait_until
from tests.deploy.conftest import DASHBOARD, RULES, PromTools
from tests.deploy.test_grafana_dashboard import dashboard_queries

LAG_THRESHOLD = 2  # seconds, instead of 300
STALE_AFTER = 5  # seconds, instead of 60
FOR = "2s"
# alert -> (shipped threshold, the test's): the rest of each expression is the shipped one
THRESHOLDS = {
    "FanoutTargetLagging": ("fanout_target_lag_seconds > 300",
                            f"fanout_target_lag_seconds > {LAG_THRESHOLD}"),
    "FanoutStateFileStale": ("fanout_state_age_seconds > 60",
                             f"fanout_state_age_seconds > {STALE_AFTER}"),
}


def write_rules_copy(dest: Path) -> None:
    """The shipped rules with every ``for:`` shortened and two thresholds lowered, so the
    test runs in seconds; each substitution must hit the shipped expression once."""
    doc = yaml.safe_load(RULES.read_text())
    hit = set()
    for group in doc["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = FOR
            if rule.get("alert") in THRESHOLDS:
                shipped, short = THRESHOLDS[rule["alert"]]
                assert rule["expr"].count(shipped) == 1, (shipped, rule["expr"])
                rule["expr"] = rule["expr"].replace(shipped, short)
                hit.add(rule["alert"])
    assert hit == set(THRESHOLDS)
    dest.write_text(yaml.safe_dump(doc, sort_keys=False))


class Prometheus:
    """``prometheus`` on 127.0.0.1 with its data in ``root``; stopped by ``close``."""

    def __init__(self, binary: str, root: Path, scrape_port: int, read_token: str):
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        token = root / "read.token"
        token.write_text(read_token)
        token.chmod(0o600)
        write_rules_copy(root / "rules.yml")
        target = {"targets": [f"127.0.0.1:{scrape_port}"]}
        (root / "prometheus.yml").write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s",
                       "scrape_timeout": "1s"},
            "rule_files": ["rules.yml"],
            "scrape_configs": [
                {"job_name": "fanout", "authorization": {"credentials_file": "read.token"},
                 "static_configs": [target]},
                # the same node without a token: it must refuse
                {"job_name": "anonymous", "static_configs": [target]},
            ],
        }))
        self.log = open(root / "prometheus.log", "wb")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            [binary, f"--config.file={root / 'prometheus.yml'}",
             f"--storage.tsdb.path={root / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def api(self, path: str, **params: str) -> Any:
        url = f"{self.url}{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=10) as r:
            doc = json.load(r)
        assert doc["status"] == "success", doc
        return doc["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        return self.api("/api/v1/query", query=expr)["result"]

    def wait_ready(self) -> None:
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited {self.proc.returncode}:\n"
                                   + (self.root / "prometheus.log").read_text()[-3000:])
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=5) as r:
                    return r.status == 200
            except (OSError, urllib.error.URLError):
                return False

        wait_until(ready, 60, interval=0.2, what="prometheus to be ready")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@pytest.fixture
def prometheus_for(prom_tools: PromTools, short_tmp: Path) -> Iterator[Any]:
    started: list[Prometheus] = []

    def start(scrape_port: int, read_token: str) -> Prometheus:
        root = short_tmp / "prometheus"
        root.mkdir()
        p = Prometheus(prom_tools.prometheus, root, scrape_port, read_token)
        started.append(p)
        p.wait_ready()
        return p

    yield start
    for p in started:
        p.close()


def _firing(prom: Prometheus, alert: str) -> list[dict[str, Any]]:
    return [a for a in prom.api("/api/v1/alerts")["alerts"]
            if a["labels"]["alertname"] == alert and a["state"] == "firing"]


@pytest.mark.slow
def test_prometheus_scrapes_the_lag_and_fires_when_a_target_freezes(
        topo: Topology, prometheus_for: Any) -> None:
    a, b = topo.node("a"), topo.node("b")
    topo.link(a, b)
    topo.start()
    with a.client("ingest") as w:
        w.update("0// m{} 0\n")
    topo.wait_converged(a, [b])
    prom = prometheus_for(a.port, a.tokens["reader"])

    def scraped() -> None:
        targets = {t["labels"]["job"]: t for t in prom.api("/api/v1/targets")["activeTargets"]}
        assert targets["fanout"]["health"] == "up", targets["fanout"]["lastError"]
        assert targets["anonymous"]["health"] == "down"
        assert "401" in targets["anonymous"]["lastError"] or \
            "403" in targets["anonymous"]["lastError"], targets["anonymous"]["lastError"]
        lag = prom.query('fanout_target_lag_seconds{job="fanout"}')
        assert [(s["metric"]["target"], s["metric"]["instance"], s["value"][1]) for s in lag] \
            == [("b", f"127.0.0.1:{a.port}", "0")]

    eventually(scraped, "prometheus to scrape a's lag with the read token", timeout=60)

    def rules_healthy() -> None:
        groups = prom.api("/api/v1/rules")["groups"]
        rules = [r for g in groups for r in g["rules"]]
        assert len(rules) == len(yaml.safe_load(RULES.read_text())["groups"][0]["rules"])
        bad = [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
        assert not bad, bad

    eventually(rules_healthy, "every shipped rule to evaluate without error", timeout=30)
    assert _firing(prom, "FanoutTargetLagging") == []

    b.signal(signal.SIGSTOP)
    try:
        with a.client("ingest") as w:
            for i in range(1, 4):
                w.update(f"{i}// m{{}} {i}\n")

        def fires() -> None:
            lag = prom.query('fanout_target_lag_seconds{job="fanout", target="b"}')
            assert float(lag[0]["value"][1]) > LAG_THRESHOLD
            alerts = _firing(prom, "FanoutTargetLagging")
            assert [(x["labels"]["target"], x["labels"]["severity"]) for x in alerts] == \
                [("b", "warning")]
            assert alerts[0]["annotations"]["runbook"] == \
                "docs/operations.md#fanouttargetlagging"

        eventually(fires, "FanoutTargetLagging to fire for the frozen target", timeout=60)
        _check_dashboard_queries(prom)
    finally:
        b.signal(signal.SIGCONT)

    def resolved() -> None:
        assert prom.query('fanout_target_lag_seconds{job="fanout", target="b"} > 0') == []
        assert _firing(prom, "FanoutTargetLagging") == []

    eventually(resolved, "the alert to resolve once the target thaws", timeout=90)
    topo.wait_converged(a, [b])

    # a frozen forwarder: its state file still says running, and goes stale
    fwd = topo.forwarders[("a", "b")]
    fwd.signal(signal.SIGSTOP)
    try:
        def stale() -> None:
            alerts = _firing(prom, "FanoutStateFileStale")
            assert "forwarder-b" in {x["labels"]["process"] for x in alerts}, alerts

        eventually(stale, "FanoutStateFileStale to fire for the frozen forwarder", timeout=60)
    finally:
        fwd.signal(signal.SIGCONT)

    def fresh() -> None:
        alerts = _firing(prom, "FanoutStateFileStale")
        assert "forwarder-b" not in {x["labels"]["process"] for x in alerts}, alerts

    eventually(fresh, "the stale alert to resolve once the forwarder thaws", timeout=60)


def _check_dashboard_queries(prom: Prometheus) -> None:
    """Every dashboard query is valid PromQL for this Prometheus and has data from the
    live topology (checked while an alert fires, so the ALERTS panel has some too)."""
    doc = json.loads(DASHBOARD.read_text())
    for where, expr in dashboard_queries(doc):
        m = re.match(r"^\s*label_values\((.*),\s*\w+\s*\)\s*$", expr)
        q = m.group(1) if m else expr
        q = (q.replace("$__rate_interval", "1m").replace("$instance", ".*")
             .replace("$target", ".*"))
        assert prom.query(q), f"{where}: no data for {q!r}"
