"""``GET /metrics``: Prometheus figures for every local process, from their state files.

Read at scrape time, so the node reports the distributor and every forwarder even though
they are separate processes; a process whose state file is missing simply has no series,
and ``fanout_state_age_seconds`` shows a state file that stopped being refreshed.

A target's backlog (``pending_files``, ``pending_bytes``, ``lag_seconds``) and
``ticks_behind`` are measured by the node at scrape time (its source directory, its own
last tick), not copied from the forwarder's state file: a frozen or dead forwarder stops
writing that file, and its last figures would hide the lag the alerts exist to catch.
``fanout_process_start_time_seconds`` changes on every restart, under either manager, so
Prometheus counts restarts with ``changes()``. The ``fanout_datalog_filesystem_*`` gauges
are the datalog's filesystem (the source directories share it: they are hard links).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime
from pathlib import Path

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from fanout.node.backlog import Backlog, fs_usage, scan_backlog
from fanout.node.http import authorize
from fanout.node.tokens import TokenTable
from fanout.state import (
    DistributorState,
    ForwarderState,
    NodeState,
    distributor_state_path,
    forwarder_state_files,
    forwarder_state_path,
    node_state_path,
)
from fanout.target_config import target_files

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class StateCollector(Collector):
    """``targets_dir`` given: only configured targets are reported, so a removed target's
    leftover state file cannot export ``fanout_target_up 0`` forever."""

    def __init__(self, state_dir: Path, targets_dir: Path | None = None,
                 datalog_dir: Path | None = None, clock: Callable[[], float] = time.time):
        self.state_dir = state_dir
        self.targets_dir = targets_dir
        self.datalog_dir = datalog_dir
        self.clock = clock

    def _age(self, path: Path) -> float:
        try:
            return max(0.0, self.clock() - path.stat().st_mtime)
        except FileNotFoundError:
            return float("nan")

    def collect(self) -> Iterator[Metric]:
        age = GaugeMetricFamily("fanout_state_age_seconds",
                                "Seconds since a process last wrote its state file",
                                labels=["process"])
        running = GaugeMetricFamily("fanout_process_running",
                                    "1 while the process's state file says it runs (a "
                                    "killed or hung process keeps saying so)",
                                    labels=["process"])
        started = GaugeMetricFamily("fanout_process_start_time_seconds",
                                    "When the process started (Unix time): changes() of it "
                                    "counts restarts", labels=["process"])
        node_path = node_state_path(self.state_dir)
        node = NodeState.read(node_path)
        if node:
            age.add_metric(["node"], self._age(node_path))
            running.add_metric(["node"], 1.0 if node.running else 0.0)
            started.add_metric(["node"], node.started)
            yield from self._node(node)
        dist_path = distributor_state_path(self.state_dir)
        dist = DistributorState.read(dist_path)
        if dist:
            age.add_metric(["distributor"], self._age(dist_path))
            running.add_metric(["distributor"], 1.0 if dist.running else 0.0)
            started.add_metric(["distributor"], _iso_time(dist.start_time))
            yield from self._distributor(dist)
        fwd: list[ForwarderState] = []
        configured = None if self.targets_dir is None else \
            {p.stem for p in target_files(self.targets_dir)}
        for path in forwarder_state_files(self.state_dir):
            st = ForwarderState.read(path)
            if st and (configured is None or st.target in configured):
                age.add_metric([st.process], self._age(path))
                running.add_metric([st.process], 1.0 if st.running else 0.0)
                if not st.brief:
                    started.add_metric([st.process], st.started)
                fwd.append(st)
        sources = {} if dist is None else \
            {name: Path(t.source_dir) for name, t in dist.targets.items() if t.source_dir}
        yield from self._forwarders(fwd, sources, node)
        yield age
        yield running
        yield started
        yield from self._filesystem()

    def _filesystem(self) -> Iterator[Metric]:
        usage = None if self.datalog_dir is None else fs_usage(self.datalog_dir)
        if usage is None:
            return
        for name, value, doc in [
            ("avail_bytes", usage.avail_bytes, "Bytes a non-root writer can still use"),
            ("size_bytes", usage.size_bytes, "Size of the filesystem"),
            ("files_free", usage.files_free, "Inodes a non-root writer can still use"),
            ("files", usage.files, "Inodes of the filesystem (0: not reported)"),
        ]:
            yield GaugeMetricFamily(f"fanout_datalog_filesystem_{name}",
                                    f"{doc} (the datalog's filesystem)", value=float(value))

    def _node(self, st: NodeState) -> Iterator[Metric]:
        yield GaugeMetricFamily("fanout_node_up", "1 while the node runs",
                                value=1.0 if st.running else 0.0)
        yield GaugeMetricFamily("fanout_node_last_log_tick", "Last datalog seq committed",
                                value=float(st.last_log_tick))
        rep = st.replication
        for name, value, doc in [
            ("events", st.total_events, "Records logged to the datalog"),
            ("points", st.total_points, "Points applied to the store"),
            ("requests", st.total_requests, "HTTP requests served"),
            ("rejected_requests", st.total_rejected, "HTTP requests answered 4xx/5xx"),
            ("commits", st.total_commits, "Group commits"),
            ("datalog_files", st.total_files, "Datalog files published"),
            ("duplicates", st.total_duplicates,
             "Replicated records skipped as already applied"),
            ("gaps", st.total_gaps, "Replicated records that skipped ahead of an origin's mark"),
            ("failed_commits", st.failed_commits, "Commits that failed (disk full, ...)"),
        ]:
            yield CounterMetricFamily(f"fanout_node_{name}", doc, value=float(value))
        writes = st.writes
        yield GaugeMetricFamily("fanout_node_failing_writes_in_row",
                                "Write requests that failed in a row (0 after one commits)",
                                value=float(writes.failing_in_row))
        yield CounterMetricFamily("fanout_node_failed_writes",
                                  "Write requests not committed (disk full, read-only, I/O)",
                                  value=float(writes.total_failed))
        yield GaugeMetricFamily("fanout_node_datalog_writable",
                                "1 while the datalog directories accept new files",
                                value=1.0 if writes.datalog_writable else 0.0)
        yield CounterMetricFamily("fanout_node_loops", "Replicated records dropped as loops",
                                  value=float(rep.loops))
        yield GaugeMetricFamily("fanout_node_divergent_origins",
                                "Origins this node holds writes of that the origin no longer "
                                "has (restored from an older copy, or re-created)",
                                value=float(len(rep.divergent_origins)))
        yield CounterMetricFamily("fanout_node_id_collisions",
                                  "Replication batches refused: a write of this node's id "
                                  "from a history it never had (errorNum 1420)",
                                  value=float(rep.collisions))
        yield CounterMetricFamily("fanout_node_replicated_records",
                                  "Records received from forwarders",
                                  value=float(rep.records))

    def _distributor(self, st: DistributorState) -> Iterator[Metric]:
        yield GaugeMetricFamily("fanout_distributor_up", "1 while the distributor runs",
                                value=1.0 if st.running else 0.0)
        for name, value, doc in [
            ("files_linked", st.files_linked, "Datalog files linked into every target"),
            ("bytes_linked", st.bytes_linked, "Bytes of datalog files linked"),
            ("rescans", st.rescans, "Full rescans of the datalog directory"),
            ("overflows", st.overflows, "inotify queue overflows"),
        ]:
            yield CounterMetricFamily(f"fanout_distributor_{name}", doc, value=float(value))
        yield GaugeMetricFamily("fanout_distributor_datalog_backlog_files",
                                "Files waiting in the datalog directory",
                                value=float(st.datalog_backlog_files))
        dropped = CounterMetricFamily("fanout_target_dropped_files",
                                      "Files removed by retention for one target",
                                      labels=["target"])
        dropped_b = CounterMetricFamily("fanout_target_dropped_bytes",
                                        "Bytes removed by retention for one target",
                                        labels=["target"])
        for name, t in sorted(st.targets.items()):
            dropped.add_metric([name], float(t.dropped))
            dropped_b.add_metric([name], float(t.dropped_bytes))
        yield dropped
        yield dropped_b

    def _forwarders(self, states: list[ForwarderState], sources: dict[str, Path],
                    node: NodeState | None) -> Iterator[Metric]:
        g = {
            "up": "1 while the forwarder runs (running: true in its state)",
            "paused": "1 while the target is paused (fanout pause): it lags by design",
            "last_applied_tick": "Seq of the last record the target acknowledged",
            "last_processed_tick": "Seq of the last record sent or skipped",
            "ticks_behind": "The node's last tick minus the last one processed",
            "pending_files": "Files waiting in the target's source directory",
            "pending_bytes": "Bytes waiting in the target's source directory",
            "lag_seconds": "Age of the oldest file waiting for the target (0: none)",
            "failed_connects_in_a_row": "Failed attempts since the last success",
            "last_error_num": "errorNum of the last error (0: none)",
        }
        c: dict[str, tuple[Callable[[ForwarderState], int], str]] = {
            "events": (lambda s: s.total_events, "Records delivered"),
            "excluded": (lambda s: s.total_operations_excluded,
                         "Records skipped (ignore_origins, via)"),
            "requests": (lambda s: s.total_requests, "Batches acknowledged"),
            "failed_connects": (lambda s: s.total_failed_connects, "Failed attempts"),
            "duplicates": (lambda s: s.total_duplicates, "Records the target already had"),
            "quarantined": (lambda s: s.total_quarantined, "Files moved to quarantine"),
            "bytes": (lambda s: s.total_bytes, "Bytes delivered"),
        }
        gauges = {k: GaugeMetricFamily(f"fanout_target_{k}", doc, labels=["target"])
                  for k, doc in g.items()}
        # counters are exposed with a _total suffix by prometheus-client
        counters = {k: CounterMetricFamily(f"fanout_target_{k}", doc, labels=["target"])
                    for k, (_, doc) in c.items()}
        now = self.clock()
        for st in states:
            t = [st.target]
            err_num = st.last_error.error_num if st.last_error else None
            source = sources.get(st.target)
            backlog = None if source is None else scan_backlog(source)
            if backlog is None:  # directory unknown or unreadable: the forwarder's figures
                backlog = self._reported_backlog(st, now)
            behind = st.ticks_behind if node is None or st.brief else \
                max(0, node.last_log_tick - st.last_processed_tick)
            gauges["up"].add_metric(t, 1.0 if st.running else 0.0)
            paused = forwarder_state_path(self.state_dir, st.target).with_suffix(".paused")
            gauges["paused"].add_metric(t, 1.0 if paused.exists() else 0.0)
            gauges["last_applied_tick"].add_metric(t, float(st.last_applied_tick))
            gauges["last_processed_tick"].add_metric(t, float(st.last_processed_tick))
            gauges["ticks_behind"].add_metric(t, float(behind))
            gauges["pending_files"].add_metric(t, float(backlog.files))
            gauges["pending_bytes"].add_metric(t, float(backlog.bytes))
            gauges["lag_seconds"].add_metric(t, backlog.lag_seconds(now))
            gauges["failed_connects_in_a_row"].add_metric(t, float(st.progress.failed_connects))
            gauges["last_error_num"].add_metric(t, float(err_num or 0))
            for k, (get, _) in c.items():
                counters[k].add_metric(t, float(get(st)))
        yield from gauges.values()
        yield from counters.values()

    def _reported_backlog(self, st: ForwarderState, now: float) -> Backlog:
        """The backlog as the forwarder last wrote it, its oldest file aged since then."""
        p = st.pending
        if not p.files:
            return Backlog(0, p.bytes, None)
        written = now - self._age(forwarder_state_path(self.state_dir, st.target))
        if written != written:  # NaN: the file vanished since it was read
            written = now
        return Backlog(p.files, p.bytes, written - p.oldest_age_seconds)


def _iso_time(text: str) -> float:
    """``2026-01-02T03:04:05Z`` as Unix time; NaN if unreadable (no series value lies)."""
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return float("nan")


def registry_for(state_dir: Path, targets_dir: Path | None = None,
                 datalog_dir: Path | None = None) -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(StateCollector(state_dir, targets_dir, datalog_dir))
    return reg


def metrics_handler(state_dir: Path, tokens: TokenTable, targets_dir: Path | None = None,
                    datalog_dir: Path | None = None
                    ) -> Callable[[web.Request], Awaitable[web.Response]]:
    registry = registry_for(state_dir, targets_dir, datalog_dir)

    async def handle_metrics(request: web.Request) -> web.Response:
        authorize(request, tokens, "read")
        # off the event loop: a scrape lists every target's source directory
        body = await asyncio.to_thread(generate_latest, registry)
        return web.Response(body=body,
                            headers={"Content-Type": CONTENT_TYPE})

    return handle_metrics
