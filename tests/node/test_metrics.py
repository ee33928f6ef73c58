"""/metrics: every local process's figures, from their state files, behind a read token."""

from __future__ import annotations

import os
import shutil
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from fanout.datalog.format import file_name
from fanout.node.metrics import StateCollector
from fanout.state import (
    DistributorState,
    ForwarderState,
    NodeState,
    Pending,
    TargetBacklog,
    distributor_state_path,
    forwarder_state_path,
    node_state_path,
)
from fanout.testing import HTTPError, Topology, eventually


def scrape(node, token: str | None = None, bearer: bool = False) -> dict:
    c = node.client("reader")
    headers = {"Authorization": f"Bearer {node.tokens['reader']}"} if bearer else None
    _, body = c.request("GET", "/metrics", headers=headers, token="" if bearer else token)
    out = {}
    for fam in text_string_to_metric_families(body.decode()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_metrics_cover_node_distributor_and_every_target(tmp_path) -> None:
    topo = Topology(tmp_path)
    try:
        a, b, c = topo.node("a"), topo.node("b"), topo.node("c")
        topo.link(a, b)
        topo.link(a, c)
        topo.start()
        with a.client("ingest") as w:
            for i in range(5):
                w.update(f"{i}// m{{}} {i}\n")
        topo.wait_converged(a, [b, c])

        def check() -> None:
            m = scrape(a, bearer=True)
            assert m[("fanout_node_last_log_tick", ())] == 5
            assert m[("fanout_node_events_total", ())] == 5
            assert m[("fanout_distributor_up", ())] == 1
            assert m[("fanout_distributor_files_linked_total", ())] == 5
            for t in ("b", "c"):
                lab = (("target", t),)
                assert m[("fanout_target_up", lab)] == 1
                assert m[("fanout_target_last_applied_tick", lab)] == 5
                assert m[("fanout_target_ticks_behind", lab)] == 0
                assert m[("fanout_target_pending_files", lab)] == 0
                assert m[("fanout_target_events_total", lab)] == 5
                assert m[("fanout_target_dropped_files_total", lab)] == 0
            assert m[("fanout_state_age_seconds", (("process", "forwarder-b"),))] < 5

        eventually(check, "metrics to show the converged topology")
        try:
            scrape(a, token=a.tokens["ingest"])
            raise AssertionError("a write-only token must not read metrics")
        except HTTPError as exc:
            assert exc.status == 403
    finally:
        topo.close()


@pytest.mark.slow
def test_forwarder_frozen_lag_grows_from_the_directory_not_its_state(tmp_path) -> None:
    """A SIGSTOPped forwarder stops writing its state file: the node still measures its
    backlog (files, bytes, oldest age) and ticks behind itself, so the lag is visible."""
    topo = Topology(tmp_path)
    try:
        a, b = topo.node("a"), topo.node("b")
        topo.link(a, b)
        topo.start()
        with a.client("ingest") as w:
            w.update("0// m{} 0\n")
        topo.wait_converged(a, [b])
        fwd = topo.forwarders[("a", "b")]
        lab = (("target", "b"),)
        proc = (("process", "forwarder-b"),)

        def idle() -> None:
            m = scrape(a, bearer=True)
            assert m[("fanout_target_lag_seconds", lab)] == 0
            assert m[("fanout_target_pending_files", lab)] == 0
            # both state files have caught up (each is written about once a second)
            assert m[("fanout_node_last_log_tick", ())] == 1
            assert m[("fanout_target_last_processed_tick", lab)] == 1
            assert m[("fanout_process_running", proc)] == 1
            assert m[("fanout_process_start_time_seconds", proc)] == \
                topo.forwarder_state(a, "b")["started"]

        eventually(idle, "an idle target to show no lag", timeout=30)
        fwd.signal(signal.SIGSTOP)
        try:
            with a.client("ingest") as w:
                for i in range(1, 4):
                    w.update(f"{i}// m{{}} {i}\n")

            def lagging() -> None:
                m = scrape(a, bearer=True)
                assert m[("fanout_target_pending_files", lab)] == 3
                assert m[("fanout_target_pending_bytes", lab)] > 0
                assert m[("fanout_target_lag_seconds", lab)] > 2
                assert m[("fanout_target_ticks_behind", lab)] == 3
                assert m[("fanout_state_age_seconds", proc)] > 2
                assert m[("fanout_process_running", proc)] == 1  # it cannot say otherwise

            eventually(lagging, "a frozen forwarder's lag to grow", timeout=30)
        finally:
            fwd.signal(signal.SIGCONT)

        def caught_up() -> None:
            m = scrape(a, bearer=True)
            assert m[("fanout_target_lag_seconds", lab)] == 0
            assert m[("fanout_target_pending_files", lab)] == 0
            assert m[("fanout_target_ticks_behind", lab)] == 0

        eventually(caught_up, "the thawed forwarder to catch up", timeout=60)
        topo.wait_converged(a, [b])
    finally:
        topo.close()


def _collect(state_dir: Path, datalog_dir: Path | None, now: float) -> dict:
    out = {}
    reg = CollectorRegistry(auto_describe=False)
    reg.register(StateCollector(state_dir, None, datalog_dir, clock=lambda: now))
    for fam in text_string_to_metric_families(generate_latest(reg).decode()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_collector_measures_backlog_restarts_and_filesystem(tmp_path: Path) -> None:
    """State files as the processes write them, a source directory with two files waiting
    (and one that is not a datalog file): the figures a rule or a dashboard reads."""
    state, datalog, src = tmp_path / "state", tmp_path / "datalog", tmp_path / "targets" / "b"
    for d in (state, datalog, src):
        d.mkdir(parents=True)
    now = time.time()
    NodeState(running=True, last_log_tick=12, started=now - 50).write(
        node_state_path(state))
    DistributorState(running=True, start_time="2026-01-02T03:04:05Z",
                     targets={"b": TargetBacklog(source_dir=str(src))}).write(
        distributor_state_path(state))
    # the forwarder's own figures are stale: it last saw nothing waiting
    fwd = ForwarderState("b", running=True, started=now - 40, last_processed_tick=7,
                         ticks_behind_read=0)
    fwd.write(forwarder_state_path(state, "b"))
    ForwarderState("c", running=False, brief=True).write(forwarder_state_path(state, "c"))
    (state / "forwarder-c.paused").write_text("paused\n")  # what `fanout pause` writes
    for seq, age, size in [(8, 30.0, 100), (11, 5.0, 50)]:
        f = src / file_name(seq, "a")
        f.write_bytes(b"x" * size)
        os.utime(f, (now - age, now - age))
    (src / "quarantine").mkdir()
    (src / ".tmp-00000000000000000013-a.dlog").write_bytes(b"y" * 999)

    m = _collect(state, datalog, now)
    b, c = (("target", "b"),), (("target", "c"),)
    assert m[("fanout_target_pending_files", b)] == 2
    assert m[("fanout_target_pending_bytes", b)] == 150
    assert abs(m[("fanout_target_lag_seconds", b)] - 30.0) < 0.01
    assert m[("fanout_target_ticks_behind", b)] == 12 - 7
    assert m[("fanout_target_last_processed_tick", b)] == 7
    assert m[("fanout_target_up", c)] == 0
    assert (m[("fanout_target_paused", b)], m[("fanout_target_paused", c)]) == (0, 1)
    assert m[("fanout_process_running", (("process", "forwarder-c"),))] == 0
    assert ("fanout_process_start_time_seconds", (("process", "forwarder-c"),)) not in m
    assert m[("fanout_process_start_time_seconds", (("process", "forwarder-b"),))] == now - 40
    assert m[("fanout_process_start_time_seconds", (("process", "node"),))] == now - 50
    assert m[("fanout_process_start_time_seconds", (("process", "distributor"),))] == \
        datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp()
    vfs = os.statvfs(datalog)
    assert m[("fanout_datalog_filesystem_size_bytes", ())] == vfs.f_blocks * vfs.f_frsize
    assert 0 < m[("fanout_datalog_filesystem_avail_bytes", ())] <= \
        m[("fanout_datalog_filesystem_size_bytes", ())]
    assert ("fanout_datalog_filesystem_files", ()) in m

    # the source directory gone: the forwarder's own figures, its oldest file aged since
    shutil.rmtree(src)
    ForwarderState("b", running=True, started=now - 40, last_processed_tick=7,
                   pending=Pending(4, 400, 10.0)).write(forwarder_state_path(state, "b"))
    written = forwarder_state_path(state, "b").stat().st_mtime
    os.utime(forwarder_state_path(state, "b"), (written - 20, written - 20))
    m = _collect(state, None, now)
    assert m[("fanout_target_pending_files", b)] == 4
    assert abs(m[("fanout_target_lag_seconds", b)] - (now - written + 30.0)) < 0.01
    assert ("fanout_datalog_filesystem_size_bytes", ()) not in m
