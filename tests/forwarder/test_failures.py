"""What a forwarder does when its target is down, refuses data, or it is killed."""

from __future__ import annotations

import json
import random
import signal
import threading
import time
from pathlib import Path

import pytest
import yaml

from fanout.testing import NodeProc, Topology, eventually, free_port, wait_until


class Load:
    """A writer thread at the primary; remembers how many requests were acknowledged."""

    def __init__(self, node: NodeProc, points: int = 10, pause: float = 0.005):
        self.node, self.points, self.pause = node, points, pause
        self.acked = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with self.node.client("ingest") as c:
            while not self.stop.is_set():
                k = self.acked
                c.update("".join(f"{k * self.points + j}// load{{}} {k}\n"
                                 for j in range(self.points)))
                self.acked += 1
                time.sleep(self.pause)

    def __enter__(self) -> Load:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(30)


def applied(topo: Topology, src: NodeProc, target: str) -> int:
    return int(topo.forwarder_state(src, target).get("lastAppliedTick", 0))


def test_one_target_down_does_not_slow_the_others(topo: Topology) -> None:
    a = topo.node("a")
    b, c, d = topo.node("b"), topo.node("c"), topo.node("d")
    for t in (b, c, d):
        topo.link(a, t)
    topo.start()
    with Load(a):
        wait_until(lambda: all(applied(topo, a, t) > 0 for t in ("b", "c", "d")), 60,
                   what="every forwarder to apply a first batch")
        c.stop()  # the target's process is down for a while
        lags: list[int] = []
        for _ in range(12):
            time.sleep(0.5)
            head = a.client("reader").logger_state()["state"]["lastLogTick"]
            lags.append(int(head) - min(applied(topo, a, "b"), applied(topo, a, "d")))
        stalled = applied(topo, a, "c")
        head = int(a.client("reader").logger_state()["state"]["lastLogTick"])
        assert head - stalled > 100, "the stopped target should be far behind"
        # the live targets stay within about a second and a half of the head all along
        assert max(lags) < 300, lags
        st = topo.forwarder_state(a, "c")
        assert st["phase"] == "backoff" and st["lastError"]["errorNum"] == 1400
        assert st["pending"]["files"] > 0
        c.start_and_wait()
    topo.wait_converged(a, [b, c, d])
    eventually(lambda: _check_caught_up(topo, a, "c"), "c caught up")


def _check_caught_up(topo: Topology, a: NodeProc, target: str) -> None:
    st = topo.forwarder_state(a, target)
    assert st["ticksBehind"] == "0" and st["pending"]["files"] == 0 and st["phase"] == "idle"
    assert st["progress"]["failedConnects"] == 0 and st["totalFailedConnects"] > 0


def _reader_token_target(topo: Topology, a: NodeProc, b: NodeProc, on_reject: str) -> Path:
    """b's *reader* token: logger-state answers, replication answers 403."""
    path = topo.link(a, b, on_reject=on_reject)
    (a.dir / "secrets" / "b.token").write_text(b.tokens["reader"] + "\n")
    return path


def test_403_with_on_reject_stop(topo: Topology) -> None:
    a, b = topo.node("a"), topo.node("b")
    _reader_token_target(topo, a, b, "stop")
    topo.start()
    a.client("ingest").update("1// x{} 1\n")
    fwd = topo.forwarders[("a", "b")]
    wait_until(lambda: not fwd.alive(), 20, what="forwarder to stop")
    assert fwd.popen is not None and fwd.popen.returncode == 3
    st = topo.forwarder_state(a, "b")
    assert st["running"] is False and st["phase"] == "failed"
    assert st["lastError"]["errorNum"] == 1402
    assert "403" in st["lastError"]["errorMessage"]
    assert "lacks the 'replicate' permission" in st["lastError"]["errorMessage"]
    assert len(list((a.dir / "data" / "targets" / "b").glob("*.dlog"))) == 1  # kept


def test_403_with_on_reject_quarantine(topo: Topology) -> None:
    a, b = topo.node("a"), topo.node("b")
    _reader_token_target(topo, a, b, "quarantine")
    topo.start()
    for i in range(3):
        a.client("ingest").update(f"{i}// x{{}} {i}\n")
    qdir = a.dir / "data" / "targets" / "b" / "quarantine"
    wait_until(lambda: len(list(qdir.glob("*.dlog"))) == 3, 20, what="3 quarantined files")
    notes = [json.loads(p.read_text()) for p in sorted(qdir.glob("*.json"))]
    assert len(notes) == 3
    assert all(n["errorNum"] == 1402 and n["status"] == 403 and "replicate" in n["reason"]
               for n in notes)
    fwd = topo.forwarders[("a", "b")]
    assert fwd.alive()
    eventually(lambda: _eq(topo.forwarder_state(a, "b")["totalQuarantined"], 3), "count")


def _eq(x: object, y: object) -> None:
    assert x == y


def test_max_connect_retries_stops_with_1400(topo: Topology) -> None:
    a = topo.node("a")
    closed = NodeProc.init(topo.root / "ghost", "ghost", port=free_port())  # never started
    topo.link(a, closed, max_connect_retries=3, retry_min=0.05, retry_max=0.1)
    topo.start()
    fwd = topo.forwarders[("a", "ghost")]
    wait_until(lambda: not fwd.alive(), 20, what="forwarder to give up")
    assert fwd.popen is not None and fwd.popen.returncode == 3
    st = topo.forwarder_state(a, "ghost")
    assert st["running"] is False and st["lastError"]["errorNum"] == 1400
    assert st["totalFailedConnects"] == 3 and st["progress"]["failedConnects"] == 3
    assert "after 3 tries" in st["lastError"]["errorMessage"]


def test_corrupt_file_stops_naming_file_and_offset(topo: Topology) -> None:
    a, b = topo.node("a"), topo.node("b")
    topo.link(a, b)
    topo.start_nodes()
    topo.distributor(a).start()
    for i in range(3):
        a.client("ingest").update(f"{i}// x{{}} {i}\n")
    src = a.dir / "data" / "targets" / "b"
    wait_until(lambda: len(list(src.glob("*.dlog"))) == 3, 20, what="3 linked files")
    victim = sorted(src.glob("*.dlog"))[1]
    raw = bytearray(victim.read_bytes())
    raw[-2] ^= 0xFF
    victim.write_bytes(bytes(raw))  # a new inode: the datalog's own copy is gone already
    fwd = topo.forwarder(a, "b").start()
    wait_until(lambda: not fwd.alive(), 20, what="forwarder to stop")
    st = topo.forwarder_state(a, "b")
    assert st["lastError"]["errorNum"] == 1401
    assert victim.name in st["lastError"]["errorMessage"]
    assert "offset 20" in st["lastError"]["errorMessage"]
    # the record before the corrupt file was delivered; nothing corrupt was applied
    assert b.client("reader").fetch("x{}") == "0// x{} 0\n"


@pytest.mark.slow
def test_sigkill_forwarder_repeatedly_under_load(topo: Topology) -> None:
    a, b = topo.node("a"), topo.node("b")
    topo.link(a, b, chunk_size=4096)  # small batches: many acks to be killed between
    topo.start()
    rnd = random.Random(11)
    with Load(a, points=20, pause=0.0):
        for _ in range(22):
            time.sleep(rnd.uniform(0.05, 0.4))
            fwd = topo.forwarders[("a", "b")]
            fwd.signal(signal.SIGKILL)
            fwd.popen.wait()  # type: ignore[union-attr]
            topo.forwarder(a, "b").start()
    topo.wait_converged(a, [b], timeout=90)
    head = int(a.client("reader").logger_state()["state"]["lastLogTick"])

    def accounted() -> None:
        st = topo.node_state(b)
        received = st["replication"]["records"]
        # every record applied exactly once; every resent one counted as a duplicate
        assert st["marks"] == {"a": str(head)}
        assert received - st["totalDuplicates"] == head
        assert st["totalGaps"] == 0

    eventually(accounted, "b's counters")


def test_warp10_sink_replays_through_the_warp10_api(topo: Topology) -> None:
    a, b = topo.node("a"), topo.node("b")
    path = topo.link(a, b)
    data = yaml.safe_load(path.read_text())
    data["sink"]["type"] = "warp10"
    path.write_text(yaml.safe_dump(data))
    (a.dir / "secrets" / "b.token").write_text(b.tokens["ingest"] + "\n")  # a write token
    topo.start()
    with a.client("ingest") as c:
        c.update("".join(f"{t}/1.5:2.5/3 w{{k=v}} {t}.5\n" for t in range(100)))
        c.meta("w{k=v}{team=ops}\n")
        c.meta("w{k=v}{site=x}\n", delta=True)
        c.delete("w{}", 10, 19)
        c.update("200// s{} 'a%20b'\n201// s{} T\n")
        c.delete("s{}")
    ref = topo.wait_converged(a, [b])
    assert "team=ops" in ref and "site=x" in ref and ref.count("\n") == 90
