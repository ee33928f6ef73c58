"""A soak: a primary and three targets, each in its own network namespace, under continuous
writes while random processes are SIGKILLed and restarted and random target hosts are cut
off. At the end everything is restarted and healed and must converge byte for byte with
every acknowledged write present and every record applied once.

Runs FANOUT_SOAK_SECONDS (default 120) seconds; ``make soak`` runs ten minutes.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections import Counter

import pytest

from fanout.store.sqlite import SqliteStore
from fanout.testing import NodeProc, Proc, wait_until
from tests.faults.netns import AckedLoad, NetTopology, applied, finish, head_of

pytestmark = pytest.mark.slow

TARGETS = ("t1", "t2", "t3")
SECONDS = float(os.environ.get("FANOUT_SOAK_SECONDS", "120"))
SEED = int(os.environ.get("FANOUT_SOAK_SEED", str(int(time.time()))))


def sigkill(p: Proc) -> None:
    p.signal(signal.SIGKILL)
    if p.popen is not None:
        p.popen.wait()


def stored_mark(node: NodeProc, origin: str) -> int:
    """The origin's mark in a stopped node's store: where its next process starts counting."""
    store = SqliteStore(node.dir / "data" / "store.sqlite")
    try:
        return store.marks().get(origin, 0)
    finally:
        store.close()


@pytest.mark.timeout(SECONDS + 400)
def test_soak(net: NetTopology, capsys: pytest.CaptureFixture[str]) -> None:
    rnd = random.Random(SEED)
    with capsys.disabled():
        print(f"\nsoak: {SECONDS:.0f}s, FANOUT_SOAK_SEED={SEED}")
    p = net.node("p")
    targets = {t: net.node(t) for t in TARGETS}
    for t in targets.values():
        net.link(p, t)
    net.start()
    kills: Counter[str] = Counter()
    cuts = 0
    bases: dict[str, int] = {}  # target -> p's mark when its current process started
    dups_before: Counter[str] = Counter()  # duplicates seen by earlier processes (lower bound)
    unexpected: list[str] = []
    bag: list[str] = []

    def check_alive() -> None:
        procs = {"node p": p, "distributor": net.distributors["p"],
                 **{f"node {t}": n for t, n in targets.items()},
                 **{f"forwarder {t}": f for (_, t), f in net.forwarders.items()}}
        for name, proc in procs.items():
            if not proc.alive():
                unexpected.append(f"{name} exited {proc.popen.returncode if proc.popen else '?'}")

    with AckedLoad(p, timeout=3.0) as load:
        wait_until(lambda: all(applied(net, p, t) > 0 for t in TARGETS), 60,
                   what="first batches")
        started = time.monotonic()
        while time.monotonic() - started < SECONDS:
            time.sleep(rnd.uniform(1, 4))
            check_alive()
            if not bag:  # every kind once per round, in a random order
                bag = ["target node", "primary node", "distributor", "forwarder", "partition"]
                rnd.shuffle(bag)
            kind = bag.pop()
            down = rnd.uniform(0.2, 2.0)
            if kind == "target node":
                name = rnd.choice(TARGETS)
                n = targets[name]
                dups_before[name] += int(net.node_state(n).get("totalDuplicates", 0))
                sigkill(n)
                bases[name] = stored_mark(n, "p")
                time.sleep(down)
                n.start_and_wait()
            elif kind == "primary node":
                sigkill(p)
                time.sleep(down)
                p.start_and_wait()
            elif kind == "distributor":
                sigkill(net.distributors["p"])
                time.sleep(down)
                net.distributor(p).start()
            elif kind == "forwarder":
                name = rnd.choice(TARGETS)
                sigkill(net.forwarders[("p", name)])
                time.sleep(down)
                net.forwarder(p, name).start()
            else:
                name = rnd.choice(TARGETS)
                net.hosts.cut(name)
                try:
                    time.sleep(rnd.uniform(1.0, 5.0))
                finally:
                    net.hosts.heal(name)
                cuts += 1
                continue
            kills[kind] += 1
        check_alive()
    soaked = time.monotonic() - started
    for name in TARGETS:
        net.hosts.heal(name)
    net.hosts.heal("p")
    net.start()  # anything that died on its own comes back too
    finish(net, p, list(targets.values()), load, bases=bases, timeout=120)
    head = head_of(p)
    states = {t: net.node_state(n) for t, n in targets.items()}
    rows = [
        f"soak: {soaked:.0f}s, seed {SEED}",
        f"{'kills: target node':<28}{kills['target node']:>8}",
        f"{'kills: primary node':<28}{kills['primary node']:>8}",
        f"{'kills: distributor':<28}{kills['distributor']:>8}",
        f"{'kills: forwarder':<28}{kills['forwarder']:>8}",
        f"{'partitions (target cut)':<28}{cuts:>8}",
        f"{'acknowledged writes':<28}{len(load.acked):>8}  ({load.failures} failed tries)",
        f"{'primary head tick':<28}{head:>8}",
        f"{'target':<8}{'records':>10}{'dups':>8}{'dups earlier':>14}{'base':>8}",
    ]
    for name in TARGETS:
        st = states[name]
        rows.append(f"{name:<8}{st['replication']['records']:>10}{st['totalDuplicates']:>8}"
                    f"{dups_before[name]:>14}{bases.get(name, 0):>8}")
    rows.append(f"unexpected exits: {unexpected or 'none'}")
    with capsys.disabled():
        print("\n" + "\n".join(rows))
    assert not unexpected, unexpected
