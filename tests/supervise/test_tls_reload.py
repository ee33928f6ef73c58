"""``fanout reload`` renews certificates without a restart: the node (``tls:``) and the
forwarders with ``sink.tls`` get SIGHUP and re-read their files (issue 16)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from fanout.ops.tls import make_ca, make_cert
from fanout.statefile import read_json
from fanout.testing import Topology, eventually
from tests.supervise.conftest import Supervised

pytestmark = pytest.mark.slow


@pytest.fixture
def tls_supervised(topo: Topology) -> Iterator[tuple[Supervised, Topology]]:
    pki = topo.root / "pki"
    make_ca(pki)
    n1, n2 = topo.node("n1"), topo.node("n2")
    for n in (n1, n2):
        issued = make_cert(pki, n.dir.name, n.dir / "tls", ips=["127.0.0.1"])
        n.use_tls(issued.cert, issued.key, pki / "ca.crt", issued.cert, issued.key)
    topo.link(n1, n2, sink={"tls": {"ca_file": str(pki / "ca.crt"),
                                    "cert_file": str(n1.dir / "tls" / "n1.crt"),
                                    "key_file": str(n1.dir / "tls" / "n1.key")}})
    n2.start_and_wait()
    s = Supervised(topo, n1)
    try:
        yield s, topo
    finally:
        s.kill_everything()


def test_reload_renews_the_node_certificate_without_a_restart(
        tls_supervised: tuple[Supervised, Topology]) -> None:
    s, topo = tls_supervised
    s.up()
    n1, n2 = topo.nodes["n1"], topo.nodes["n2"]
    with n1.client() as c:
        c.update("1// before{} 1\n")
    topo.wait_converged(n1, [n2])
    pids = s.pids()
    before = (read_json(n1.state_dir / "node.json") or {})["tls"]
    pki = topo.root / "pki"
    fresh = make_cert(pki, "n1-renewed", topo.root / "renewed", ips=["127.0.0.1"])
    for src, dst in ((fresh.cert, n1.dir / "tls" / "n1.crt"),
                     (fresh.key, n1.dir / "tls" / "n1.key")):
        shutil.copyfile(src, dst.with_suffix(".new"))
        os.chmod(dst.with_suffix(".new"), 0o600)
        os.replace(dst.with_suffix(".new"), dst)
    s.cli("reload", check=True)

    def renewed() -> None:
        tls = (read_json(n1.state_dir / "node.json") or {})["tls"]
        assert tls["reloads"] == before["reloads"] + 1 and tls["subject"] == "CN=n1-renewed"
        assert tls["lastError"] is None

    eventually(renewed, "the node serving the renewed certificate", 30)
    assert s.pids() == pids  # nothing restarted
    with n1.client() as c:
        c.update("2// after{} 2\n")
    ref = topo.wait_converged(n1, [n2])
    assert "after{}" in ref
