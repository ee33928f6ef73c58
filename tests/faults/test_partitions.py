"""Partitions and a degraded link between a primary and three targets, each in its own
network namespace, under continuous writes."""

from __future__ import annotations

import time

import pytest

from fanout.testing import NodeProc, wait_until
from tests.faults.netns import AckedLoad, NetemUnavailable, NetTopology, applied, finish

pytestmark = pytest.mark.slow

TARGETS = ("t1", "t2", "t3")


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


def recovers(net: NetTopology, p: NodeProc, name: str,
             samples: list[tuple[float, dict[str, int]]]) -> None:
    """The faulty target applies past what it had at the end of the samples: the link is
    back and it ships under the load (not only in the final catch-up)."""
    last = samples[-1][1][name]
    wait_until(lambda: applied(net, p, name) > last, 60, what=f"{name} to apply again")


def test_cut_one_target(net: NetTopology) -> None:
    p, targets = build(net)
    with AckedLoad(p) as load:
        warmed_up(net, p)
        net.hosts.cut("t1")
        try:
            samples = sample_applied(net, p, ["t1", "t2", "t3"], 5.0)
        finally:
            net.hosts.heal("t1")
        recovers(net, p, "t1", samples)
    for name in ("t2", "t3"):
        assert_advancing(samples, name)
    # t1 did fall behind while it was cut off (it may have applied the first second)
    assert samples[-1][1]["t1"] - samples[2][1]["t1"] < samples[-1][1]["t2"] - samples[2][1]["t2"]
    finish(net, p, targets, load)


def test_cut_primary(net: NetTopology) -> None:
    p, targets = build(net)
    with AckedLoad(p) as load:
        warmed_up(net, p)
        failed_before = load.failures
        net.hosts.cut("p")
        try:
            # writes fail while the primary is cut off (each try times out after 2 s)
            wait_until(lambda: load.failures >= failed_before + 2, 60,
                       what="writes to fail while the primary is cut off")
        finally:
            net.hosts.heal("p")
        healed_at = len(load.acked)
        wait_until(lambda: len(load.acked) > healed_at + 10, 60,
                   what="writes to be acknowledged again once healed")
    finish(net, p, targets, load)


def test_degraded_link(net: NetTopology) -> None:
    p, targets = build(net)
    with AckedLoad(p) as load:
        warmed_up(net, p)
        try:
            net.hosts.netem("t1", "delay 200ms loss 5%")
        except NetemUnavailable:
            net.hosts.shape("t1")  # no sch_netem in this kernel: a slow, tail-dropping link
        try:
            samples = sample_applied(net, p, ["t1", "t2", "t3"], 8.0)
        finally:
            net.hosts.clear("t1")
        recovers(net, p, "t1", samples)
    for name in ("t2", "t3"):
        assert_advancing(samples, name)
    # the fault bit: t1 fell behind the others, who kept pace with each other
    last, first = samples[-1][1], samples[0][1]
    assert last["t1"] - first["t1"] < (last["t2"] - first["t2"]) * 0.8, samples
    assert abs(last["t2"] - last["t3"]) < 60, samples
    finish(net, p, targets, load)
