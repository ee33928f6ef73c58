"""Snapshot and restore endpoints between two real nodes."""

from __future__ import annotations

import asyncio

import pytest

from fanout.ops.bootstrap import BootstrapError, Endpoint, copy_snapshot
from fanout.testing import HTTPError, NodeProc


def seed(node: NodeProc) -> None:
    with node.client("ingest") as c:
        c.update("".join(f"{t}/1.5:2.5/3 s{{k=v}} {t}.25\n" for t in range(2000)))
        c.update("7// b{} T\n8// str{} 'a%20b'\n")
        c.meta("s{k=v}{team=ops}\n")


def test_snapshot_restore_between_nodes(make_node) -> None:
    a = make_node("a").start_and_wait()
    b = make_node("b", "memory").start_and_wait()
    seed(a)
    result = asyncio.run(copy_snapshot(Endpoint(a.url, a.tokens["replicator"]),
                                       Endpoint(b.url, b.tokens["replicator"]), False))
    assert result["lastLogTick"] == "3" and result["points"] == 2002
    assert result["marks"] == {"a": "3"}
    fa = a.client("reader").fetch("~.*{}", showattr=True)
    assert b.client("reader").fetch("~.*{}", showattr=True) == fa
    with b.client("reader") as r:
        _, body = r.request("GET", "/api/v0/replication/marks")
    assert b'"a": "3"' in body
    # a second restore into a non-empty node is refused, and changes nothing
    with pytest.raises(BootstrapError, match="409"):
        asyncio.run(copy_snapshot(Endpoint(a.url, a.tokens["replicator"]),
                                  Endpoint(b.url, b.tokens["replicator"]), False))
    assert b.client("reader").fetch("~.*{}", showattr=True) == fa


def test_snapshot_and_restore_need_the_replicate_permission(make_node) -> None:
    a = make_node("a").start_and_wait()
    for tok in ("reader", "ingest"):
        with pytest.raises(HTTPError) as err:
            a.client(tok).request("GET", "/api/v0/replication/snapshot")
        assert err.value.status == 403
        with pytest.raises(HTTPError) as err:
            a.client(tok).request("POST", "/api/v0/replication/restore", b"x")
        assert err.value.status == 403


@pytest.mark.parametrize("cut", [2, 40, 200])
def test_cut_or_corrupt_stream_restores_nothing(make_node, cut: int) -> None:
    a = make_node("a").start_and_wait()
    b = make_node("b").start_and_wait()
    seed(a)
    _, snap = a.client("replicator").request("GET", "/api/v0/replication/snapshot")
    assert snap.startswith(b'{"format": "fanout-snapshot"') and snap.endswith(b"}\n")
    with pytest.raises(HTTPError) as err:
        b.client("replicator").request("POST", "/api/v0/replication/restore",
                                       snap[: len(snap) - cut])
    assert err.value.status == 400 and "bad snapshot" in err.value.body
    assert b.client("reader").fetch("~.*{}") == ""
    bad = snap.replace(b"'a%20b'", b"notavalue")
    with pytest.raises(HTTPError) as err:
        b.client("replicator").request("POST", "/api/v0/replication/restore", bad)
    assert err.value.status == 400 and "line" in err.value.body
    assert b.client("reader").fetch("~.*{}") == ""
