"""``GET /metrics``: Prometheus figures for every local process, from their state files.

Read at scrape time, so the node reports the distributor and every forwarder even though
they are separate processes; a process whose state file is missing simply has no series,
and ``fanout_state_age_seconds`` shows a state file that stopped being refreshed.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from fanout.node.http import authorize
from fanout.node.tokens import TokenTable
from fanout.statefile import read_json
from forwarder.config import target_files

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _num(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


class StateCollector(Collector):
    """``targets_dir`` given: only configured targets are reported, so a removed target's
    leftover state file cannot export ``fanout_target_up 0`` forever."""

    def __init__(self, state_dir: Path, targets_dir: Path | None = None):
        self.state_dir = state_dir
        self.targets_dir = targets_dir

    def _age(self, path: Path) -> float:
        try:
            return max(0.0, time.time() - path.stat().st_mtime)
        except FileNotFoundError:
            return float("nan")

    def collect(self) -> Iterator[Metric]:
        age = GaugeMetricFamily("fanout_state_age_seconds",
                                "Seconds since a process last wrote its state file",
                                labels=["process"])
        node_path = self.state_dir / "node.json"
        node = read_json(node_path)
        if node:
            age.add_metric(["node"], self._age(node_path))
            yield from self._node(node)
        dist_path = self.state_dir / "distributor.json"
        dist = read_json(dist_path)
        if dist:
            age.add_metric(["distributor"], self._age(dist_path))
            yield from self._distributor(dist)
        fwd: list[dict[str, Any]] = []
        configured = None if self.targets_dir is None else \
            {p.stem for p in target_files(self.targets_dir)}
        for path in sorted(self.state_dir.glob("forwarder-*.json")):
            st = read_json(path)
            if st and "target" in st and (configured is None or st["target"] in configured):
                age.add_metric([f"forwarder-{st['target']}"], self._age(path))
                fwd.append(st)
        yield from self._forwarders(fwd)
        yield age

    def _node(self, st: dict[str, Any]) -> Iterator[Metric]:
        yield GaugeMetricFamily("fanout_node_up", "1 while the node runs",
                                value=1.0 if st.get("running") else 0.0)
        yield GaugeMetricFamily("fanout_node_last_log_tick", "Last datalog seq committed",
                                value=_num(st.get("lastLogTick")))
        rep = st.get("replication") or {}
        for name, key, doc in [
            ("events", "totalEvents", "Records logged to the datalog"),
            ("points", "totalPoints", "Points applied to the store"),
            ("requests", "totalRequests", "HTTP requests served"),
            ("rejected_requests", "totalRejected", "HTTP requests answered 4xx/5xx"),
            ("commits", "totalCommits", "Group commits"),
            ("datalog_files", "totalFiles", "Datalog files published"),
            ("duplicates", "totalDuplicates", "Replicated records skipped as already applied"),
            ("gaps", "totalGaps", "Replicated records that skipped ahead of an origin's mark"),
            ("failed_commits", "failedCommits", "Commits that failed (disk full, ...)"),
        ]:
            yield CounterMetricFamily(f"fanout_node_{name}", doc, value=_num(st.get(key)))
        writes = st.get("writes") or {}
        yield GaugeMetricFamily("fanout_node_failing_writes_in_row",
                                "Write requests that failed in a row (0 after one commits)",
                                value=_num(writes.get("failingInRow")))
        yield CounterMetricFamily("fanout_node_failed_writes",
                                  "Write requests not committed (disk full, read-only, I/O)",
                                  value=_num(writes.get("totalFailed")))
        yield GaugeMetricFamily("fanout_node_datalog_writable",
                                "1 while the datalog directories accept new files",
                                value=0.0 if writes.get("datalogWritable") is False else 1.0)
        yield CounterMetricFamily("fanout_node_loops", "Replicated records dropped as loops",
                                  value=_num(rep.get("loops")))
        yield GaugeMetricFamily("fanout_node_divergent_origins",
                                "Origins this node holds writes of that the origin no longer "
                                "has (restored from an older copy, or re-created)",
                                value=float(len(rep.get("divergentOrigins") or [])))
        yield CounterMetricFamily("fanout_node_id_collisions",
                                  "Replication batches refused: a write of this node's id "
                                  "from a history it never had (errorNum 1420)",
                                  value=_num(rep.get("collisions")))
        yield CounterMetricFamily("fanout_node_replicated_records",
                                  "Records received from forwarders",
                                  value=_num(rep.get("records")))

    def _distributor(self, st: dict[str, Any]) -> Iterator[Metric]:
        yield GaugeMetricFamily("fanout_distributor_up", "1 while the distributor runs",
                                value=1.0 if st.get("running") else 0.0)
        for name, key, doc in [
            ("files_linked", "filesLinked", "Datalog files linked into every target"),
            ("bytes_linked", "bytesLinked", "Bytes of datalog files linked"),
            ("rescans", "rescans", "Full rescans of the datalog directory"),
            ("overflows", "overflows", "inotify queue overflows"),
        ]:
            yield CounterMetricFamily(f"fanout_distributor_{name}", doc, value=_num(st.get(key)))
        yield GaugeMetricFamily("fanout_distributor_datalog_backlog_files",
                                "Files waiting in the datalog directory",
                                value=_num(st.get("datalogBacklogFiles")))
        dropped = CounterMetricFamily("fanout_target_dropped_files",
                                      "Files removed by retention for one target",
                                      labels=["target"])
        dropped_b = CounterMetricFamily("fanout_target_dropped_bytes",
                                        "Bytes removed by retention for one target",
                                        labels=["target"])
        for name, t in sorted((st.get("targets") or {}).items()):
            dropped.add_metric([name], _num(t.get("dropped")))
            dropped_b.add_metric([name], _num(t.get("droppedBytes")))
        yield dropped
        yield dropped_b

    def _forwarders(self, states: list[dict[str, Any]]) -> Iterator[Metric]:
        g = {
            "up": "1 while the forwarder runs (running: true in its state)",
            "last_applied_tick": "Seq of the last record the target acknowledged",
            "ticks_behind": "Records available but not yet processed",
            "pending_files": "Files waiting in the target's source directory",
            "pending_bytes": "Bytes waiting in the target's source directory",
            "lag_seconds": "Age of the oldest file waiting for the target",
            "failed_connects_in_a_row": "Failed attempts since the last success",
            "last_error_num": "errorNum of the last error (0: none)",
        }
        c = {
            "events": ("totalEvents", "Records delivered"),
            "excluded": ("totalOperationsExcluded", "Records skipped (ignore_origins, via)"),
            "requests": ("totalRequests", "Batches acknowledged"),
            "failed_connects": ("totalFailedConnects", "Failed attempts"),
            "duplicates": ("totalDuplicates", "Records the target already had"),
            "quarantined": ("totalQuarantined", "Files moved to quarantine"),
            "bytes": ("totalBytes", "Bytes delivered"),
        }
        gauges = {k: GaugeMetricFamily(f"fanout_target_{k}", doc, labels=["target"])
                  for k, doc in g.items()}
        # counters are exposed with a _total suffix by prometheus-client
        counters = {k: CounterMetricFamily(f"fanout_target_{k}", doc, labels=["target"])
                    for k, (_, doc) in c.items()}
        for st in states:
            t = [st["target"]]
            pending = st.get("pending") or {}
            err = st.get("lastError") or {}
            gauges["up"].add_metric(t, 1.0 if st.get("running") else 0.0)
            gauges["last_applied_tick"].add_metric(t, _num(st.get("lastAppliedTick")))
            gauges["ticks_behind"].add_metric(t, _num(st.get("ticksBehind")))
            gauges["pending_files"].add_metric(t, _num(pending.get("files")))
            gauges["pending_bytes"].add_metric(t, _num(pending.get("bytes")))
            gauges["lag_seconds"].add_metric(t, _num(pending.get("oldestAgeSeconds")))
            gauges["failed_connects_in_a_row"].add_metric(
                t, _num((st.get("progress") or {}).get("failedConnects")))
            gauges["last_error_num"].add_metric(t, _num(err.get("errorNum")))
            for k, (key, _) in c.items():
                counters[k].add_metric(t, _num(st.get(key)))
        yield from gauges.values()
        yield from counters.values()


def registry_for(state_dir: Path, targets_dir: Path | None = None) -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(StateCollector(state_dir, targets_dir))
    return reg


def metrics_handler(state_dir: Path, tokens: TokenTable, targets_dir: Path | None = None
                    ) -> Callable[[web.Request], Awaitable[web.Response]]:
    registry = registry_for(state_dir, targets_dir)

    async def handle_metrics(request: web.Request) -> web.Response:
        authorize(request, tokens, "read")
        return web.Response(body=generate_latest(registry),
                            headers={"Content-Type": CONTENT_TYPE})

    return handle_metrics
