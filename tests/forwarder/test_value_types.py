"""Every value type and input form Warp 10 accepts, through fan-out, a ring, and a
snapshot/restore: every replica (sqlite and memory stores) ends byte-identical.

The writes use the client spellings (raw quotes, hex:, HHCode positions, relative
timestamps, attributes on update lines); the origin normalizes them once, so the replicas
only ever see canonical records and cannot disagree.
"""

from __future__ import annotations

import asyncio

from fanout.ops.bootstrap import Endpoint, copy_snapshot
from fanout.testing import NodeProc, Topology, eventually

NOW = {"X-Warp10-Now": "1700000000000000"}


def body(tag: str) -> str:
    return (
        f"1// bin{{at={tag}}} b64:AAH-_w\n"
        f"=2// hex:0001feff\n"
        f"=3// b64:\n"
        f"1// dbl{{at={tag}}} NaN\n"
        f"=2// Infinity\n"
        f"=3// -Infinity\n"
        f"=4// 1e400\n"
        f"=5// +.5\n"
        f"1// str{{at={tag}}}{{unit=none}} 'it's'\n"
        f'=2// "double quoted"\n'
        f"1// bool{{at={tag}}} t\n"
        f"=2// f\n"
        f"=+3// +42\n"
        f"1/-5372670727227936656/7 pos{{at={tag}}} HH:48.0:-4.5\n"
        f"=2/48.5:-4.25/ 1\n"
        f"1// multi{{at={tag}}} [ 1 2.5 T 'x' b64:AQ NaN 10/48.0:-4.5/3/[ 'a%2Fb' ] ]\n"
        f"=2// [!1 2]\n"
        f"=3// []\n"
        f"T-5// rel{{at={tag}}} 1\n"
    )


def write(node: NodeProc, tag: str) -> None:
    with node.client("ingest") as c:
        c.update(body(tag), headers=NOW)


def expected_lines(ref: str, tag: str) -> None:
    """The canonical forms every replica must show for ``tag``'s writes."""
    for line in (
        f"1// bin{{at={tag}}}{{}} b64:AAH-_w",
        f"2// bin{{at={tag}}}{{}} b64:AAH-_w",
        f"3// bin{{at={tag}}}{{}} b64:",
        f"1// dbl{{at={tag}}}{{}} NaN",
        f"4// dbl{{at={tag}}}{{}} Infinity",
        f"3// dbl{{at={tag}}}{{}} -Infinity",
        f"1// str{{at={tag}}}{{unit=none}} 'it%27s'",
        f"2// str{{at={tag}}}{{unit=none}} 'double%20quoted'",
        f"3// bool{{at={tag}}}{{}} 42",
        f"1/47.99999998882413:-4.500000067055225/7 pos{{at={tag}}}{{}} -5372670727227936656",
        f"1// multi{{at={tag}}}{{}} [ 1 2.5 T 'x' b64:AQ NaN 10/48.0:-4.5/3/[ 'a%2Fb' ] ]",
        f"2// multi{{at={tag}}}{{}} [! 1 2 ]",
        f"3// multi{{at={tag}}}{{}} [ ]",
        f"1699999999999995// rel{{at={tag}}}{{}} 1",
    ):
        assert line in ref.splitlines(), line


def test_fan_out_every_value_type(topo: Topology) -> None:
    a = topo.node("a")
    targets = [topo.node("b"), topo.node("c", store="memory")]
    for t in targets:
        topo.link(a, t)
    topo.start()
    write(a, "a")
    ref = topo.wait_converged(a, targets)  # byte-for-byte equal full fetches
    expected_lines(ref, "a")
    assert ref.count("\n") == 19


def test_ring_every_value_type(topo: Topology) -> None:
    nodes = [topo.node("a", log_remote_changes=True),
             topo.node("b", store="memory", log_remote_changes=True),
             topo.node("c", log_remote_changes=True)]
    a, b, c = nodes
    topo.link(a, b)
    topo.link(b, c)
    topo.link(c, a)
    topo.start()
    for n in nodes:
        write(n, n.dir.name)
    ref = topo.wait_converged(a, [b, c])
    for n in nodes:
        expected_lines(ref, n.dir.name)
    assert ref.count("\n") == 3 * 19

    def check() -> None:
        for n in nodes:
            st = topo.node_state(n)
            # each write request is two records (readings, then the attributes block)
            assert st["marks"] == {"a": "2", "b": "2", "c": "2"}
            assert st["totalGaps"] == 0
    eventually(check, "ring marks")


def test_snapshot_restore_every_value_type(make_node) -> None:
    a = make_node("a").start_and_wait()
    b = make_node("b", "memory").start_and_wait()
    c = make_node("c").start_and_wait()
    write(a, "a")
    for dst in (b, c):
        asyncio.run(copy_snapshot(Endpoint(a.url, a.tokens["replicator"]),
                                  Endpoint(dst.url, dst.tokens["replicator"]), False))
    fa = a.client("reader").fetch("~.*{}", showattr=True)
    expected_lines(fa, "a")
    assert b.client("reader").fetch("~.*{}", showattr=True) == fa
    assert c.client("reader").fetch("~.*{}", showattr=True) == fa
