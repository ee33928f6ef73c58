"""Partitions and a degraded link between a primary and three targets, each in its own
network namespace, under continuous writes."""

from __future__ import annotations

import threading
import time

import pytest

from fanout.testing import Client, HTTPError, NodeProc, eventually, wait_until
from tests.faults.netns import NetemUnavailable, NetTopology

pytestmark = pytest.mark.slow

TARGETS = ("t1", "t2", "t3")


class AckedLoad:
    """A writer thread: request k writes ``points`` points at timestamps k*points..; failed
    requests (timeouts, refused connections, 5xx) are retried after a pause with the same
    body. Remembers every acknowledged k."""

    def __init__(self, node: NodeProc, points: int = 10, pause: float = 0.01,
                 timeout: float = 2.0):
        self.node, self.points, self.pause, self.timeout = node, points, pause, timeout
        self.acked: list[int] = []
        self.failures = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def body(self, k: int) -> str:
        return "".join(f"{k * self.points + j}// load{{}} {k}\n" for j in range(self.points))

    def _run(self) -> None:
        c = Client(self.node.url, self.node.tokens["ingest"], timeout=self.timeout)
        k = 0
        try:
            while not self.stop.is_set():
                try:
                    c.update(self.body(k))
                except (OSError, HTTPError):
                    c.close()
                    self.failures += 1
                    self.stop.wait(0.2)
                    continue
                self.acked.append(k)
                k += 1
                if self.pause:
                    self.stop.wait(self.pause)
        finally:
            c.close()

    def __enter__(self) -> AckedLoad:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(30)

    def missing(self, fetched: str) -> list[int]:
        """Acknowledged requests with a point absent from a full fetch."""
        stamps = set()
        for line in fetched.splitlines():
            head = line.lstrip("=").split("/", 1)[0]
            if head.isdigit():
                stamps.add(int(head))
        return [k for k in self.acked
                if any(k * self.points + j not in stamps for j in range(self.points))]


def warmed_up(net: NetTopology, p: NodeProc) -> None:
    """Every forwarder has applied something: the processes are up and shipping."""
    wait_until(lambda: all(applied(net, p, t) > 0 for t in TARGETS), 30,
               what="every forwarder to apply a first batch")


def build(net: NetTopology) -> tuple[NodeProc, list[NodeProc]]:
    p = net.node("p")
    targets = [net.node(t) for t in TARGETS]
    for t in targets:
        net.link(p, t)
    net.start()
    return p, targets


def head_of(p: NodeProc) -> int:
    with p.client("reader") as c:
        return int(c.logger_state()["state"]["lastLogTick"])


def applied(net: NetTopology, p: NodeProc, target: str) -> int:
    return int(net.forwarder_state(p, target).get("lastAppliedTick", 0))


def finish(net: NetTopology, p: NodeProc, targets: list[NodeProc], load: AckedLoad,
           bases: dict[str, int] | None = None, timeout: float = 90) -> str:
    """Converged byte for byte, every acknowledged write present, every record applied once."""
    ref = net.wait_converged(p, targets, timeout=timeout)
    missing = load.missing(ref)
    assert not missing, f"{len(missing)} acknowledged writes missing, first {missing[:10]}"
    assert load.acked, "no write was acknowledged"
    head = head_of(p)
    for t in targets:
        assert net.fetch_all(t) == ref
        base = (bases or {}).get(t.dir.name, 0)

        def once(t: NodeProc = t, base: int = base) -> None:
            st = net.node_state(t)
            assert st["marks"] == {"p": str(head)}
            assert st["replication"]["records"] - st["totalDuplicates"] == head - base
            assert st["totalGaps"] == 0

        eventually(once, f"{t.dir.name} applied every record once", timeout=20)
    return ref


def sample_applied(net: NetTopology, p: NodeProc, names: list[str], seconds: float,
                   every: float = 0.5) -> list[tuple[float, dict[str, int]]]:
    out = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        out.append((time.monotonic(), {n: applied(net, p, n) for n in names}))
        time.sleep(every)
    return out


def assert_advancing(samples: list[tuple[float, dict[str, int]]], name: str,
                     window: float = 2.0) -> None:
    """In every window of ``window`` seconds within the samples the value grew."""
    for i, (t0, v0) in enumerate(samples):
        later = [(t, v) for t, v in samples[i:] if t - t0 <= window]
        if later[-1][0] - t0 < window - 0.6:
            break  # the tail: too short to be a whole window
        assert later[-1][1][name] > v0[name], (
            f"{name}'s lastAppliedTick stalled in [{t0 - samples[0][0]:.1f}s, +{window}s]: "
            f"{[v[name] for _, v in samples]}")


def test_cut_one_target(net: NetTopology) -> None:
    p, targets = build(net)
    with AckedLoad(p) as load:
        warmed_up(net, p)
        time.sleep(0.5)
        net.hosts.cut("t1")
        try:
            samples = sample_applied(net, p, ["t1", "t2", "t3"], 5.0)
        finally:
            net.hosts.heal("t1")
        time.sleep(2.0)
    for name in ("t2", "t3"):
        assert_advancing(samples, name)
    # t1 did fall behind while it was cut off (it may have applied the first second)
    assert samples[-1][1]["t1"] - samples[2][1]["t1"] < samples[-1][1]["t2"] - samples[2][1]["t2"]
    finish(net, p, targets, load)


def test_cut_primary(net: NetTopology) -> None:
    p, targets = build(net)
    with AckedLoad(p) as load:
        warmed_up(net, p)
        time.sleep(0.5)
        before = len(load.acked)
        net.hosts.cut("p")
        try:
            time.sleep(5.0)
        finally:
            net.hosts.heal("p")
        during_failures = load.failures
        time.sleep(3.0)
        assert len(load.acked) > before
    assert during_failures > 0, "writes should have failed while the primary was cut off"
    finish(net, p, targets, load)


def test_degraded_link(net: NetTopology) -> None:
    p, targets = build(net)
    with AckedLoad(p) as load:
        warmed_up(net, p)
        time.sleep(0.5)
        try:
            net.hosts.netem("t1", "delay 200ms loss 5%")
        except NetemUnavailable:
            net.hosts.shape("t1")  # no sch_netem in this kernel: a slow, tail-dropping link
        try:
            samples = sample_applied(net, p, ["t1", "t2", "t3"], 8.0)
        finally:
            net.hosts.clear("t1")
        time.sleep(1.0)
    for name in ("t2", "t3"):
        assert_advancing(samples, name)
    # the fault bit: t1 fell behind the others, who kept pace with each other
    last, first = samples[-1][1], samples[0][1]
    assert last["t1"] - first["t1"] < (last["t2"] - first["t2"]) * 0.8, samples
    assert abs(last["t2"] - last["t3"]) < 60, samples
    finish(net, p, targets, load)
