"""Fuzzing a real node's ``/api/v0/replicate`` with framed records of random headers.

Every batch is answered 200 or a 4xx that says why, never a 5xx; a refused batch moves no
mark and no tick. With ``log_remote_changes`` what is accepted is logged again, so the
node's own datalog must stay readable (``fanout datalog verify``) whatever was sent.
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fanout.testing import NodeProc, fanout_cmd
from tests.node.test_validate import frame_of, headers

CTYPE = {"Content-Type": "application/x-fanout-records"}
BODIES = st.sampled_from([b"", b"1// fz{} 1\n", b"fz{}{k=v}\n", b"x y z\n", b"\xff\n"])
VALID_BODIES = st.sampled_from([b"", b"1// fz{} 1\n"])
SEEN: Counter[int] = Counter()


def in_seq_order(recs: list[tuple[dict[str, Any], bytes]]) -> list[tuple[Any, bytes]]:
    """An honest batch: seqs increasing, and a body that fits the op."""
    out = []
    for i, (h, body) in enumerate(recs):
        h = dict(h, seq=i + 1)
        out.append((h, b"" if h["op"] == "delete" else (body if h["op"] == "update"
                                                          else b"fz{}{k=v}\n")))
    return out


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProc]:
    n = NodeProc.init(tmp_path_factory.mktemp("recfuzz") / "n1", "n1",
                      log_remote_changes=True).start_and_wait()
    try:
        yield n
        assert n.alive(), n.log_text()[-3000:]
        assert "Traceback" not in n.log_text(), n.log_text()[-3000:]
        verify = subprocess.run(fanout_cmd("datalog", "verify", str(n.datalog_dir)),
                                capture_output=True, text=True, timeout=120)
        assert verify.returncode == 0, verify.stdout + verify.stderr
        with n.client("ingest") as c:
            assert c.update("1// still{} 1\n") == 200
        assert SEEN[200] and SEEN[400], f"the fuzzing must reach both outcomes: {SEEN}"
    finally:
        n.kill()


def position(node: NodeProc) -> tuple[Any, ...]:
    with node.client("replicator") as c:
        marks = json.loads(c.request("GET", "/api/v0/replication/marks")[1])
    return marks["lastLogTick"], marks["marks"]


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(recs=st.one_of(st.lists(st.tuples(headers(), BODIES), min_size=1, max_size=3),
                     st.lists(st.tuples(headers(hostile=False), VALID_BODIES), min_size=1,
                              max_size=3).map(in_seq_order)))
def test_random_record_headers(node: NodeProc, recs: list[tuple[Any, bytes]]) -> None:
    before = position(node)
    body = b"".join(frame_of(h, b) for h, b in recs)
    with node.client("replicator") as c:
        status, data = c.request("POST", "/api/v0/replicate", body, headers=CTYPE,
                                 check=False)
    SEEN[status] += 1
    assert status == 200 or 400 <= status < 500, (status, data[:500], recs)
    if status != 200:
        assert data.strip(), "a 4xx must say why"
        assert position(node) == before, ("a refused batch moved a mark", data[:300])
