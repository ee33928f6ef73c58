"""Histories, not just ids: operators' mistakes with real processes must lose nothing.

A primary re-created with the same id, a primary whose data directory is restored from an
older copy, and two live nodes with one id: every write acknowledged after the event
reaches every target, the targets say what happened (divergence, id collision), and
nothing is applied to the wrong history or dropped silently.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import yaml

from fanout.testing import Client, HTTPError, NodeProc, Topology, eventually, wait_until


class Writer(threading.Thread):
    """Writes one point per request, ``k// w{} k`` with k counting up, and keeps the k of
    every acknowledged write with the time its reply was read. Failed writes (the node is
    down) are not acknowledged and not kept."""

    def __init__(self, node: NodeProc, start_k: int = 0):
        super().__init__(daemon=True)
        self.node = node
        self.k = start_k
        self.acked: list[tuple[int, float]] = []
        self.max_latency = 0.0  # of acknowledged writes, seconds
        self.stop_event = threading.Event()
        self.lock = threading.Lock()

    def run(self) -> None:
        client: Client | None = None
        while not self.stop_event.is_set():
            k = self.k
            self.k += 1
            try:
                if client is None:
                    client = Client(self.node.url, self.node.tokens["ingest"], timeout=10)
                t0 = time.monotonic()
                client.update(f"{k}// w{{}} {k}\n")
                self.max_latency = max(self.max_latency, time.monotonic() - t0)
            except (OSError, HTTPError):
                if client is not None:
                    client.close()
                client = None
                time.sleep(0.05)
                continue
            with self.lock:
                self.acked.append((k, time.time()))
            time.sleep(0.01)
        if client is not None:
            client.close()

    def acked_after(self, t: float) -> list[int]:
        with self.lock:
            return [k for k, when in self.acked if when > t]

    def count(self) -> int:
        with self.lock:
            return len(self.acked)

    def stop(self) -> None:
        self.stop_event.set()
        self.join(30)


def held(node: NodeProc) -> set[int]:
    with node.client("reader") as c:
        text = c.fetch("w{}")
    return {int(line.split("//", 1)[0]) for line in text.splitlines() if line}


def marks_reply(node: NodeProc) -> dict:
    with node.client("replicator") as c:
        _, body = c.request("GET", "/api/v0/replication/marks")
    return json.loads(body)


def stop_primary(topo: Topology, p: NodeProc) -> None:
    name = p.dir.name
    for (src, _), proc in topo.forwarders.items():
        if src == name:
            proc.stop()
    topo.distributors[name].stop()
    p.stop()


def wait_for_writes(w: Writer, n: int, timeout: float = 60.0) -> None:
    target = w.count() + n
    wait_until(lambda: w.count() >= target, timeout, what=f"{n} more acknowledged writes")


def assert_reach_all(topo: Topology, targets: list[NodeProc], ks: list[int]) -> None:
    want = set(ks)
    assert want, "no write was acknowledged after the event: the test proves nothing"
    for t in targets:
        def check(t: NodeProc = t) -> None:
            missing = want - held(t)
            assert not missing, f"{t.dir.name} misses {len(missing)}: {sorted(missing)[:10]}"
        eventually(check, f"writes on {t.dir.name}", timeout=90)


def three_targets(topo: Topology) -> tuple[NodeProc, list[NodeProc]]:
    p = topo.node("p")
    targets = [topo.node(n) for n in ("t1", "t2", "t3")]
    for t in targets:
        topo.link(p, t)
    topo.start()
    return p, targets


def test_recreated_primary_same_id_reaches_every_target(topo: Topology) -> None:
    p, targets = three_targets(topo)
    w = Writer(p)
    w.start()
    try:
        wait_for_writes(w, 20)
        assert_reach_all(topo, targets, [k for k, _ in w.acked])
        old = marks_reply(p)["history"]
        stop_primary(topo, p)
        shutil.rmtree(p.dir / "data")  # the operator's mistake: same fanout.yaml, no data
        event = time.time()
        topo.start()
        wait_for_writes(w, 30)
    finally:
        w.stop()
    after = w.acked_after(event)
    assert len(after) >= 30
    assert_reach_all(topo, targets, after)
    print(f"\nre-create: {len(w.acked)} writes acknowledged, {len(after)} after the event, "
          f"all on {len(targets)} targets; max write latency {w.max_latency * 1000:.0f} ms")
    new = marks_reply(p)
    assert new["history"] != old
    for t in targets:
        st = topo.forwarder_state(p, t.dir.name)
        assert st["lastError"] is None and st["totalDuplicates"] == 0, st
        reply = marks_reply(t)
        assert set(reply["histories"]["p"]) == {old, new["history"]}
        # every write of the new history is there (a write whose reply was lost is too)
        mark = int(reply["histories"]["p"][new["history"]])
        assert mark >= len(after) and mark == int(reply["marks"]["p"])
        [d] = [d for d in reply["divergence"] if d["origin"] == "p"]
        assert d["history"] == new["history"] and d["base"] is None
        eventually(lambda t=t: _divergent_metric(t, 1.0), f"{t.dir.name} metrics")


def _divergent_metric(node: NodeProc, want: float) -> None:
    with node.client("reader") as c:
        _, body = c.request("GET", "/metrics")
    line = [x for x in body.decode().splitlines() if x.startswith("fanout_node_divergent_origins ")]
    assert line and float(line[0].split()[1]) == want, line


def test_restored_primary_reaches_every_target_and_divergence_is_reported(
        topo: Topology, short_tmp: Path) -> None:
    p, targets = three_targets(topo)
    w = Writer(p)
    w.start()
    try:
        wait_for_writes(w, 20)
        w.stop_event.set()
        w.join(30)
        assert_reach_all(topo, targets, [k for k, _ in w.acked])
        stop_primary(topo, p)
        backup = short_tmp / "backup"
        shutil.copytree(p.dir / "data", backup)  # last night's backup
        topo.start()
        lost = 15  # acknowledged and replicated, then lost by the restore
        with p.client() as c:
            for _ in range(lost):
                c.update(f"{w.k}// w{{}} {w.k}\n")
                w.k += 1
        assert_reach_all(topo, targets, list(range(w.k - lost, w.k)))
        stop_primary(topo, p)
        shutil.rmtree(p.dir / "data")
        shutil.copytree(backup, p.dir / "data")
        event = time.time()
        topo.start()
        w2 = Writer(p, start_k=w.k)
        w2.start()
        try:
            wait_for_writes(w2, 30)
        finally:
            w2.stop()
    finally:
        w.stop()
    assert_reach_all(topo, targets, w2.acked_after(event))
    print(f"\nrestore: {len(w2.acked)} writes acknowledged after the restore, all on "
          f"{len(targets)} targets; {lost} reported lost; max write latency "
          f"{max(w.max_latency, w2.max_latency) * 1000:.0f} ms")
    for t in targets:
        st = topo.forwarder_state(p, t.dir.name)
        assert st["lastError"] is None, st
        reply = marks_reply(t)
        divs = [d for d in reply["divergence"] if d["origin"] == "p"]
        assert divs and divs[-1]["ahead"] == lost, reply["divergence"]


def test_two_nodes_one_id_collision_is_named_and_heals(topo: Topology) -> None:
    """x1 and x2 are both configured as ``x``: a ring x1 -> t -> x1 (t re-logs), and x2
    also forwards to t. x1's own writes coming back are loops; x2's writes reaching x1
    are an id collision: refused by name (1420), kept pending at t, never applied to x1
    or dropped. t keeps the two histories of ``x`` apart. Once the operator gives x1
    another id (with its own empty store, as the error says), everything replicates."""
    x1 = topo.node("x1", id="x")
    x2 = topo.node("x2", id="x")
    t = topo.node("t", log_remote_changes=True)
    topo.link(x1, t)
    topo.link(x2, t)
    topo.link(t, x1)
    topo.start()
    with x1.client() as c:
        for i in range(5):
            c.update(f"{i}// own{{}} {i}\n")
    with x2.client() as c:
        for i in range(10):
            c.update(f"{i}// foreign{{}} {i}\n")
    h1, h2 = marks_reply(x1)["history"], marks_reply(x2)["history"]
    assert h1 != h2
    eventually(lambda: _eq(len(held_series(t, "foreign")), 10), "t has x2's writes")
    eventually(lambda: _eq(len(held_series(t, "own")), 5), "t has x1's writes")
    assert marks_reply(t)["histories"]["x"] == {h1: "5", h2: "10"}

    def refused() -> None:
        st = topo.forwarder_state(t, "x1")
        err = st.get("lastError") or {}
        assert err.get("errorNum") == 1420, st
        assert "'x'" in err["errorMessage"] and h2 in err["errorMessage"]
        assert st["running"] is True and st["pending"]["files"] >= 1

    started = time.monotonic()
    eventually(refused, "t's forwarder to report the collision", timeout=30)
    print(f"\ncollision reported by t's forwarder {time.monotonic() - started:.1f} s "
          "after x2's writes reached t")
    assert held_series(x1, "foreign") == set()  # nothing of x2 applied to x1
    assert held_series(x1, "own") == set(range(5))
    assert topo.forwarders[("t", "x1")].alive()
    def counted() -> None:
        with x1.client("reader") as c:
            _, body = c.request("GET", "/metrics")
        assert any(line.startswith("fanout_node_id_collisions_total ")
                   and float(line.split()[1]) >= 1 for line in body.decode().splitlines())

    eventually(counted, "x1's metrics to count the collision")
    # a restart under another id on the same store is refused, naming both ids
    x1.stop()
    cfg = yaml.safe_load(x1.config.read_text())
    cfg["id"] = "z"
    x1.config.write_text(yaml.safe_dump(cfg, sort_keys=False))
    assert x1.start().popen is not None
    wait_until(lambda: not x1.alive(), 30, what="x1 to refuse the id change")
    assert x1.popen is not None and x1.popen.returncode == 78
    assert "'x'" in x1.log_text() and "'z'" in x1.log_text()
    # the fix the message names: the new id gets its own empty store and datalog. Like an
    # operator's `fanout down`, stop x1's distributor and forwarder first: they write their
    # state files under data/ every second
    topo.distributors["x1"].stop()
    topo.forwarders[("x1", "t")].stop()
    shutil.rmtree(x1.dir / "data")
    topo.start()

    def healed() -> None:
        # (x1's own writes went with the store the operator wiped; t still has them)
        assert held_series(x1, "foreign") == set(range(10))
        assert held_series(t, "own") == set(range(5))
        err = topo.forwarder_state(t, "x1").get("lastError")
        assert err is None or err.get("errorNum") != 1420, err

    eventually(healed, "the refused writes to replicate", timeout=60)


def held_series(node: NodeProc, cls: str) -> set[int]:
    with node.client("reader") as c:
        text = c.fetch(f"{cls}{{}}")
    return {int(line.split("//", 1)[0]) for line in text.splitlines() if line}


def _eq(a: object, b: object) -> None:
    assert a == b, (a, b)
