"""One `fanout status` contract under both managers: the same topology (n1 run by the
manager, replicating to n2, a plain process), the same assertions on the JSON, the table
and the exit codes 0/1/2, under supervisord and under a real systemd."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fanout.testing import NodeProc, Topology, eventually
from tests.supervise.conftest import Supervised
from tests.supervise.systemd_ns import SystemdHost

pytestmark = pytest.mark.slow

EXPECTED = {"node": "node", "distributor": "distributor", "forwarder-n2": "forwarder"}


class Managed:
    """n1 under ``manager``, n2 its target; ``cli`` runs where the manager lives."""

    def __init__(self, manager: str, topo: Topology, n1: NodeProc, n2: NodeProc,
                 cli: Any):
        self.manager, self.topo, self.n1, self.n2, self._cli = manager, topo, n1, n2, cli

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self._cli(*args)

    def status(self) -> tuple[int, dict[str, Any]]:
        res = self.cli("status", "--json")
        assert res.returncode in (0, 1, 2), res.stderr
        return res.returncode, json.loads(res.stdout)


@pytest.fixture(params=["supervisord", "systemd"])
def managed(request: pytest.FixtureRequest, short_tmp: Path) -> Iterator[Managed]:
    if request.param == "supervisord":
        topo = Topology(short_tmp)
        n1, n2 = topo.node("n1"), topo.node("n2")
        topo.link(n1, n2)
        s = Supervised(topo, n1)
        try:
            yield Managed("supervisord", topo, n1, n2, s.cli)
        finally:
            s.kill_everything()
            topo.close()
        return
    host: SystemdHost = request.getfixturevalue("systemd_host")
    n1 = host.node("n1")
    n2 = host.topo.node("n2")
    host.topo.link(n1, n2)
    host.render(n1)
    host.ns.boot()
    yield Managed("systemd", host.topo, n1, n2,
                  lambda *args: host.cli(n1, *args))


def test_status_under_each_manager(managed: Managed) -> None:
    m = managed
    m.n2.start_and_wait()
    res = m.cli("up")
    assert res.returncode == 0, res.stdout + res.stderr
    with m.n1.client() as c:
        c.update("1000// a{} 1\n1001// a{} 2\n")
    m.topo.wait_converged(m.n1, [m.n2], timeout=90)

    def healthy() -> None:
        code, st = m.status()
        assert code == 0 and st["health"] == "healthy", st["reasons"]
        assert st["supervisor"]["manager"] == m.manager and st["supervisor"]["reachable"]
        rows = {p["name"]: p for p in st["processes"] if p["kind"] != "listener"}
        assert {n: p["kind"] for n, p in rows.items()} == EXPECTED
        for p in rows.values():
            assert p["state"] == "RUNNING" and p["pid"] > 0, p
            assert p["uptimeSeconds"] is not None and p["rssBytes"] > 0, p
            assert p["restarts5m"] == 0, p
        (t,) = st["targets"]
        assert t["name"] == "n2" and t["state"] == "RUNNING"
        assert t["ticksBehind"] == "0" and t["lastAppliedTick"] == st["node"]["lastLogTick"]
        assert st["node"]["lastLogTick"] == "1"  # one request, one record

    eventually(healthy, f"healthy under {m.manager}", 60)
    table = m.cli("status")
    assert table.returncode == 0
    assert table.stdout.startswith("fanout node n1: HEALTHY (exit 0)\n")
    assert f"\n{m.manager}: pid " in table.stdout
    for name in EXPECTED:
        assert f"\n{name} " in table.stdout
    print(f"--- fanout status under {m.manager}\n{table.stdout}")

    m.n2.stop()  # the target goes away: the next write is retried, the node is degraded
    with m.n1.client() as c:
        c.update("1002// a{} 3\n")

    def retrying() -> None:
        code, st = m.status()
        assert code == 1, st["reasons"]
        assert any(r.startswith("forwarder-n2 is retrying: ") for r in st["reasons"]), \
            st["reasons"]

    eventually(retrying, f"degraded under {m.manager}", 60)
    m.n2.start_and_wait()
    eventually(lambda: m.status()[0] == 0 or None, "healthy again", 60)
    assert "1002" in m.topo.wait_converged(m.n1, [m.n2], timeout=90)

    res = m.cli("down")
    assert res.returncode == 0, res.stderr
    code, st = m.status()
    assert code == 2 and st["health"] == "down", st["reasons"]
    assert all(p["state"] != "RUNNING" for p in st["processes"]), st["processes"]
    assert "DOWN (exit 2)" in m.cli("status").stdout
