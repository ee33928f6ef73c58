"""Targets added and recovered online: bootstrap, re-sync of memory nodes, gaps, pause."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time

import yaml

from fanout.testing import NodeProc, Topology, eventually, fanout_cmd, wait_until

from .test_failures import Load


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(fanout_cmd(*args), text=True, capture_output=True, timeout=120)


def applied(topo: Topology, src: NodeProc, target: str) -> int:
    return int(topo.forwarder_state(src, target).get("lastAppliedTick", 0))


def preload(node: NodeProc, requests: int, points: int = 1000) -> None:
    with node.client("ingest") as c:
        for k in range(requests):
            c.update("".join(f"{k * points + j}// pre{{n={j % 20}}} {k}\n"
                             for j in range(points)))


def test_bootstrap_a_fourth_target_under_load(topo: Topology) -> None:
    a = topo.node("a")
    others = [topo.node(n) for n in ("b", "c", "d")]
    for t in others:
        topo.link(a, t)
    e = topo.node("e")
    topo.start()
    preload(a, 100)  # 100,000 points already there: the snapshot takes a while
    with Load(a):
        shipping(topo, a, others)
        topo.link(a, e)  # its file exists; its forwarder is not running yet
        progress: list[list[int]] = []
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                progress.append([applied(topo, a, t.dir.name) for t in others])
                time.sleep(0.25)

        sampler = threading.Thread(target=sample)
        sampler.start()
        res = cli("bootstrap", "--config", str(a.config), "--target", "e")
        done.set()
        sampler.join()
        assert res.returncode == 0, res.stderr
        assert "restored" in res.stdout and "streamed" in res.stderr
        topo.forwarder(a, "e").start()
        shipping(topo, a, [e])  # e takes part in the load, not only in the final catch-up
    topo.wait_converged(a, [*others, e], timeout=90)
    # the three others kept replicating while e was bootstrapped
    assert len(progress) >= 2
    for i in range(3):
        assert progress[-1][i] > progress[0][i], progress
    eventually(lambda: _no_gap(topo, e), "e's counters")


def shipping(topo: Topology, src: NodeProc, targets: list[NodeProc]) -> None:
    """Every forwarder from src to targets has applied something under the load."""
    wait_until(lambda: all(applied(topo, src, t.dir.name) > 0 for t in targets), 60,
               what="every forwarder to apply a first batch")


def _no_gap(topo: Topology, node: NodeProc) -> None:
    st = topo.node_state(node)
    assert st["totalGaps"] == 0


def test_memory_node_resyncs_from_its_seed_after_a_kill(topo: Topology) -> None:
    a = topo.node("a")
    m = topo.node("m", "memory")
    seed_token = m.dir / "secrets" / "seed.token"
    seed_token.write_text(a.tokens["replicator"])
    os.chmod(seed_token, 0o600)
    data = yaml.safe_load(m.config.read_text())
    data["bootstrap_from"] = {"url": a.url, "token_file": "secrets/seed.token"}
    m.config.write_text(yaml.safe_dump(data))
    topo.link(a, m)
    topo.start()
    with Load(a) as load:
        shipping(topo, a, [m])
        m.kill()
        killed_at = load.acked
        # writes acknowledged while m is down: m must get them back from its seed
        wait_until(lambda: load.acked > killed_at + 20, 60, what="writes while m is down")
        m.start_and_wait()  # re-syncs from a before it serves
        resumed_at = load.acked
        wait_until(lambda: load.acked > resumed_at + 20, 60, what="writes after m is back")
    topo.wait_converged(a, [m], timeout=60)
    assert "re-synced from" in m.log_text()


def _retention_setup(topo: Topology, auto: bool) -> tuple[NodeProc, NodeProc]:
    a, b = topo.node("a"), topo.node("b")
    topo.link(a, b, retention={"max_files": 5}, auto_resync=auto)
    topo.start_nodes()
    topo.distributor(a).start()
    with a.client("ingest") as c:
        for i in range(30):
            c.update(f"{i}// r{{}} {i}\n")
    src = a.dir / "data" / "targets" / "b"
    wait_until(lambda: len(list(src.glob("*.dlog"))) == 5
               and not list(a.datalog_dir.glob("*.dlog")), 20, what="retention to apply")
    return a, b


def test_gap_after_retention_stops_with_1414(topo: Topology) -> None:
    a, _ = _retention_setup(topo, auto=False)
    fwd = topo.forwarder(a, "b").start()
    wait_until(lambda: not fwd.alive(), 20, what="forwarder to stop")
    assert fwd.popen is not None and fwd.popen.returncode == 3
    st = topo.forwarder_state(a, "b")
    assert st["lastError"]["errorNum"] == 1414
    assert "start tick not present" in st["lastError"]["errorMessage"]
    assert "origin a up to oseq 0" in st["lastError"]["errorMessage"]


def test_gap_after_retention_resyncs_with_auto_resync(topo: Topology) -> None:
    a, b = _retention_setup(topo, auto=True)
    topo.forwarder(a, "b").start()
    ref = topo.wait_converged(a, [b], timeout=60)
    assert ref.count("\n") == 30
    eventually(lambda: _eq(topo.forwarder_state(a, "b")["running"], True), "still running")
    assert "auto_resync restored" in topo.forwarders[("a", "b")].log_text()


def live_marks(node: NodeProc) -> object:
    """The target's marks as it answers now (node.json lags by up to a second)."""
    with node.client("replicator") as c:
        return json.loads(c.request("GET", "/api/v0/replication/marks")[1])["marks"]


def _eq(x: object, y: object) -> None:
    assert x == y


def test_pause_then_resume_under_load(topo: Topology) -> None:
    a, b = topo.node("a"), topo.node("b")
    topo.link(a, b)
    topo.start()
    with Load(a) as load:
        shipping(topo, a, [b])
        res = cli("pause", "--config", str(a.config), "b")
        assert res.returncode == 0, res.stderr
        eventually(lambda: _eq(topo.forwarder_state(a, "b")["phase"], "paused"), "paused")
        held = applied(topo, a, "b")
        mark = live_marks(b)
        paused_at = load.acked
        # positive signal that time passed for the paused forwarder: the load went on, the
        # distributor handed it more files and it rewrote its state since
        wait_until(lambda: load.acked > paused_at + 50, 60, what="writes while paused")
        seen = time.time()
        state_file = a.state_dir / "forwarder-b.json"
        wait_until(lambda: state_file.stat().st_mtime > seen + 1.0, 30,
                   what="the paused forwarder to rewrite its state twice")
        st = topo.forwarder_state(a, "b")
        assert st["phase"] == "paused" and st["running"] is True
        assert st["pending"]["files"] > 0
        assert applied(topo, a, "b") == held  # nothing sent while paused
        assert live_marks(b) == mark  # nor received
        res = cli("resume", "--config", str(a.config), "b")
        assert res.returncode == 0, res.stderr
        wait_until(lambda: applied(topo, a, "b") > held, 60, what="shipping after resume")
    topo.wait_converged(a, [b])
    eventually(lambda: _eq(topo.forwarder_state(a, "b")["phase"], "idle"), "idle again")
