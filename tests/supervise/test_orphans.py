"""supervisord killed with -9: its programs run on as orphans. ``fanout status`` names them
(exit 2), ``fanout down`` stops them, ``fanout up`` refuses to start beside them and then
starts cleanly once they are gone (issue 11)."""

from __future__ import annotations

import os
import signal

import psutil
import pytest

from fanout.testing import eventually, wait_until

from .conftest import Supervised

pytestmark = pytest.mark.slow


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _write(s: Supervised, start: int, count: int) -> None:
    with s.node.client() as c:
        for i in range(start, start + count):
            c.update(f"{1000 + i}// o{{}} {i}\n")


def test_sigkill_supervisord_orphans_found_stopped_and_replaced(supervised: Supervised) -> None:
    s = supervised
    s.up()
    pids = s.pids()
    locked = {pids["node"], pids["distributor"], pids["forwarder-n2"]}
    _write(s, 0, 10)
    os.kill(s.supervisord_pid(), signal.SIGKILL)
    wait_until(lambda: not _alive(s.supervisord_pid()), 30, what="supervisord gone")
    assert all(map(_alive, locked))  # the orphans

    code, st = s.status()
    assert code == 2
    assert {o["pid"] for o in st["orphans"]} == locked
    assert {o["role"] for o in st["orphans"]} == {"node", "distributor", "forwarder-n2"}
    assert any("orphan" in r and str(pids["node"]) in r for r in st["reasons"])
    table = s.cli("status").stdout
    assert "ORPHAN" in table and str(pids["node"]) in table

    res = s.cli("up")  # refuses to start a second set beside them
    assert res.returncode != 0
    assert str(pids["node"]) in res.stderr and "fanout down" in res.stderr
    assert all(map(_alive, locked))
    _write(s, 10, 5)  # and the orphans were not disturbed

    res = s.cli("down", check=True)
    assert "orphan" in res.stdout and str(pids["node"]) in res.stdout
    wait_until(lambda: not any(map(_alive, locked)), 30, what="orphans gone")
    code, st = s.status()
    assert code == 2 and st["orphans"] == []

    s.up()
    new = s.pids()
    assert not (set(new.values()) & locked)
    code, st = s.status()
    assert st["orphans"] == []
    _write(s, 15, 10)
    n2 = s.topo.nodes["n2"]

    def converged() -> None:
        with s.node.client("reader") as a, n2.client("reader") as b:
            ref = a.fetch("~o{}")
            assert ref.count("\n") >= 24 and b.fetch("~o{}") == ref

    eventually(converged, "writes after the new up replicate", timeout=60)
