"""The node's HTTPS listener keeps the resource guards: silent TLS connections past the
open-file limit neither take the node down nor hold descriptors beyond the handshake
timeout, and the node serves normally afterwards."""

from __future__ import annotations

import contextlib
import socket
import time
from pathlib import Path

import pytest

from fanout.ops.tls import make_ca, make_cert
from fanout.testing import NodeProc, drop_closed, wait_until

pytestmark = pytest.mark.slow


def test_silent_tls_connections_past_fd_limit_leave_node_serving(tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    make_ca(pki)
    node = make_cert(pki, "n", ips=["127.0.0.1"])
    client = make_cert(pki, "c", client=True)
    limit = 256
    n = NodeProc.init(tmp_path / "n", "n", limits={"idle_timeout": 3.0})
    n.use_tls(node.cert, node.key, pki / "ca.crt", client.cert, client.key)
    n.args = ["prlimit", f"--nofile={limit}:{limit}", *n.args]
    n.start_and_wait()
    socks: list[socket.socket] = []
    try:
        for _ in range(int(limit * 1.1)):
            with contextlib.suppress(OSError):
                socks.append(socket.create_connection(("127.0.0.1", n.port), timeout=5))
        t0 = time.monotonic()
        assert n.alive(), n.log_text()[-2000:]

        wait_until(lambda: drop_closed(socks), 30, what="silent TLS connections closed by the node")
        assert time.monotonic() - t0 < 25
        assert n.alive(), n.log_text()[-2000:]
        with n.client() as c:
            assert c.update("1// fd.ok{} 1\n") == 200
        with n.client("reader") as c:
            assert "fd.ok{} 1" in c.fetch("fd.ok{}")
        assert "Traceback" not in n.log_text()
        assert n.stop() == 0
    finally:
        for s in socks:
            s.close()
        n.stop()
