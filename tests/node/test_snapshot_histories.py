"""Snapshots carry every (origin, history) mark; the restored-into node keeps its own
histories."""

from __future__ import annotations

import asyncio
import json

from fanout.ops.bootstrap import Endpoint, copy_snapshot
from fanout.testing import NodeProc


def marks(node: NodeProc) -> dict:
    with node.client("replicator") as c:
        _, body = c.request("GET", "/api/v0/replication/marks")
    return json.loads(body)


def test_snapshot_carries_histories_and_keeps_own(make_node) -> None:
    a = make_node("a").start_and_wait()
    with a.client() as c:
        for t in range(3):
            c.update(f"{t}// s{{}} {t}\n")
    h1 = marks(a)["history"]
    a.stop()
    a.start_and_wait()  # a new history, continuing a's oseq
    h2 = marks(a)["history"]
    with a.client() as c:
        for t in range(3, 5):
            c.update(f"{t}// s{{}} {t}\n")
    assert h1 != h2 and marks(a)["histories"] == {"a": {h1: "3", h2: "5"}}
    assert marks(a)["marks"] == {"a": "5"}
    b = make_node("b").start_and_wait()
    own = marks(b)["history"]
    result = asyncio.run(copy_snapshot(Endpoint(a.url, a.tokens["replicator"]),
                                       Endpoint(b.url, b.tokens["replicator"]), False))
    assert result["histories"] == {"a": {h1: "3", h2: "5"}}
    reply = marks(b)
    assert reply["histories"] == {"a": {h1: "3", h2: "5"}} and reply["marks"] == {"a": "5"}
    assert reply["history"] == own and reply["divergence"] == []
