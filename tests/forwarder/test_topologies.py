"""Fan-out, chain, ring and diamond: every node converges, nothing loops or applies twice."""

from __future__ import annotations

import gzip
import threading

import pytest

from fanout.testing import CapturingProxy, NodeProc, Topology, eventually


def write_series(node: NodeProc, tag: str, requests: int, points: int = 20) -> int:
    with node.client("ingest") as c:
        for k in range(requests):
            c.update("".join(f"{k * points + j}// r{{at={tag}}} {k}\n" for j in range(points)))
    return requests


def test_fan_out_one_to_three(topo: Topology) -> None:
    a = topo.node("a")
    targets = [topo.node(n) for n in ("b", "c", "d")]
    for t in targets:
        topo.link(a, t)
    topo.start()
    write_series(a, "a", 50)
    with a.client("ingest") as c:
        c.meta("r{at=a}{owner=ops}\n")
        c.delete("r{at=a}", 0, 99)
    ref = topo.wait_converged(a, targets)
    assert "owner=ops" in ref and ref.count("\n") == 50 * 20 - 100
    for t in targets:
        def check(name: str = t.dir.name) -> None:
            st = topo.forwarder_state(a, name)
            assert st["running"] is True and st["lastError"] is None
            assert st["totalEvents"] == 52  # 50 updates, 1 meta, 1 delete
            assert st["lastAppliedTick"] == "52"  # a string: ticks are 64-bit
            assert st["totalDuplicates"] == 0 and st["ticksBehind"] == "0"
            assert st["pending"]["files"] == 0
        eventually(check, f"forwarder {t.dir.name} state")


def test_chain_a_b_c(topo: Topology) -> None:
    a, b, c = topo.node("a"), topo.node("b", log_remote_changes=True), topo.node("c")
    topo.link(a, b)
    topo.link(b, c)
    topo.start()
    write_series(a, "a", 30)
    topo.wait_converged(a, [b, c])
    # c's copy came through b: origin a kept, b in via
    eventually(lambda: _eq(topo.node_state(c)["marks"], {"a": "30"}), "c's marks")
    eventually(lambda: _eq(topo.node_state(b)["lastLogTick"], "30"), "b re-logged 30")


def _eq(a: object, b: object) -> None:
    assert a == b


def test_ring_with_writes_at_every_node(topo: Topology) -> None:
    nodes = [topo.node(n, log_remote_changes=True) for n in ("a", "b", "c")]
    a, b, c = nodes
    topo.link(a, b)
    topo.link(b, c)
    topo.link(c, a)
    topo.start()
    threads = [threading.Thread(target=write_series, args=(n, n.dir.name, 25)) for n in nodes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ref = topo.wait_converged(a, [b, c])
    assert ref.count("\n") == 3 * 25 * 20
    def check() -> None:
        for n in nodes:
            st = topo.node_state(n)
            # every origin's writes applied exactly once: marks are dense counts of writes
            assert st["marks"] == {"a": "25", "b": "25", "c": "25"}
            assert st["totalGaps"] == 0
            # its own 25 writes come back once around the ring and are dropped as loops
            assert st["replication"]["loops"] == 25
    eventually(check, "ring state")


def test_diamond(topo: Topology) -> None:
    a = topo.node("a")
    b, c = topo.node("b", log_remote_changes=True), topo.node("c", log_remote_changes=True)
    d = topo.node("d")
    for src, dst in ((a, b), (a, c), (b, d), (c, d)):
        topo.link(src, dst)
    topo.start()
    write_series(a, "a", 40)
    topo.wait_converged(a, [b, c, d])

    def check() -> None:
        st = topo.node_state(d)
        assert st["marks"] == {"a": "40"}
        # d got every record twice (through b and through c) and applied it once
        assert st["replication"]["records"] == 80
        assert st["totalDuplicates"] == 40
    eventually(check, "diamond state")


@pytest.mark.parametrize("compress", [False, True])
def test_compressed_batches(topo: Topology, compress: bool) -> None:
    """The batches on the wire are gzip (or not) as configured, and the target applies
    them either way: a relay in front of b sees what the forwarder really sent."""
    a, b = topo.node("a"), topo.node("b")
    with CapturingProxy(b.url) as wire:
        topo.link(a, b, sink={"compress": compress, "endpoint": wire.url})
        topo.start()
        write_series(a, "a", 10)
        topo.wait_converged(a, [b])
        posts = wire.posts("/api/v0/replicate")
    assert posts, "no batch went through the relay"
    for headers, body in posts:
        gzipped = body[:2] == b"\x1f\x8b"
        assert gzipped is compress, (headers, body[:16])
        ctype = {k.lower(): v for k, v in headers.items()}["content-type"]
        assert (ctype == "application/gzip") is compress, headers
    if compress:  # and what was sent inflates to the records the target applied
        assert sum(len(gzip.decompress(b)) for _, b in posts) > sum(len(b) for _, b in posts)
