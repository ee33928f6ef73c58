"""TLS and mutual TLS between hosts in network namespaces: convergence, what a capture of
the replication link shows, each certificate failure named and then fixed without loss, a
renewal under load, and a fuzzed handshake."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import threading
from pathlib import Path

import pytest
import yaml

from fanout.testing import HTTPError, NodeProc, eventually, fanout_cmd, wait_until
from fanout.tlsconfig import (
    ERROR_TLS_CLIENT_CERT_REFUSED,
    ERROR_TLS_CLIENT_CERT_REQUIRED,
    ERROR_TLS_EXPIRED,
    ERROR_TLS_HOSTNAME,
    ERROR_TLS_UNKNOWN_CA,
    ClientTLS,
)
from tests.faults.netns import AckedLoad, NetTopology, applied, finish
from tests.faults.tlsnet import PKI, Capture, install, tls_link, tls_node, wait_error

pytestmark = pytest.mark.slow


@pytest.fixture
def pki(tmp_path: Path) -> PKI:
    return PKI(tmp_path)


def write_series(n: NodeProc, name: str, count: int) -> None:
    with n.client() as c:
        for k in range(count):
            c.update("".join(f"{k * 10 + j}// {name}{{}} {k}\n" for j in range(10)))


def test_fanout_and_ring_over_mutual_tls_converge(net: NetTopology, pki: PKI) -> None:
    p = tls_node(net, pki, "p")
    t1, t2 = tls_node(net, pki, "t1"), tls_node(net, pki, "t2")
    for t in (t1, t2):
        tls_link(net, p, t, pki.client())
    ring = [tls_node(net, pki, n, log_remote_changes=True) for n in ("a", "b", "c")]
    for src, dst in zip(ring, ring[1:] + ring[:1], strict=True):
        tls_link(net, src, dst, pki.client())
    net.start()
    with AckedLoad(p) as load:
        wait_until(lambda: len(load.acked) >= 100, 60, what="100 acknowledged writes")
    finish(net, p, [t1, t2], load)
    threads = [threading.Thread(target=write_series, args=(n, n.dir.name, 20)) for n in ring]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    ref = net.wait_converged(ring[0], ring[1:], timeout=90)
    assert ref.count("\n") == 3 * 20 * 10
    for n in ring:
        st = net.node_state(n)
        assert st["tls"]["mutual"] is True
        assert st["tls"]["subject"] == f"CN={n.dir.name}"


def _replicate_and_capture(net: NetTopology, pki: PKI, secure: bool,
                           tmp: Path) -> tuple[bytes, str, list[str]]:
    if secure:
        p, t = tls_node(net, pki, "p"), tls_node(net, pki, "t")
        tls_link(net, p, t, pki.client())
    else:
        p, t = net.node("p"), net.node("t")
        net.link(p, t)
    markers = [f"marker-{os.urandom(6).hex()}-{k}" for k in range(20)]
    net.start_nodes()
    cap = Capture(net, "p", tmp / ("tls.cap" if secure else "plain.cap"))
    try:
        net.start()
        with p.client() as c:
            for k, m in enumerate(markers):
                c.update(f"{k}// cap{{}} '{m}'\n")
        net.wait_converged(p, [t], timeout=60)
        wait_until(lambda: applied(net, p, "t") >= len(markers), 30, what="every record acked")
    finally:
        cap.close()
    link = cap.payload(net.hosts.ip("t"))
    return link, t.tokens["replicator"], markers


def test_capture_shows_tokens_and_values_only_over_plain_http(
        net: NetTopology, pki: PKI, tmp_path: Path) -> None:
    plain, token, markers = _replicate_and_capture(net, pki, False, tmp_path)
    # the capture works: over plain HTTP it holds the target's token and every value
    assert token.encode() in plain
    assert all(m.encode() in plain for m in markers)
    net.close()  # the same hosts (namespaces, addresses) again, now over mutual TLS
    net.nodes.clear()
    net.forwarders.clear()
    net.distributors.clear()
    net.targets.clear()
    net.root = tmp_path / "secure"
    secure, token2, markers2 = _replicate_and_capture(net, pki, True, tmp_path)
    assert len(secure) > 2000, "the capture saw the TLS link"
    assert token2.encode() not in secure
    assert not [m for m in markers2 if m.encode() in secure]
    assert b"X-Warp10-Token" not in secure and b"/api/v0/replicate" not in secure


def _nothing_applied(net: NetTopology, p: NodeProc, t: NodeProc) -> None:
    """The forwarder has failed a few times and the target has none of p's data."""
    wait_until(lambda: int(net.forwarder_state(p, "t").get("totalFailedConnects", 0)) >= 3,
               60, what="three failed tries")
    assert net.node_state(t).get("marks") == {}
    assert net.fetch_all(t) == ""


def _case(net: NetTopology, pki: PKI, case: str) -> tuple[NodeProc, NodeProc, int, object]:
    """Set up one broken link; returns p, t, the expected errorNum and a fix function."""
    p = tls_node(net, pki, "p")
    t_ip = net.hosts.add("t")
    good = pki.issue("t", t_ip)
    client = pki.client()
    if case == "unknown-ca":
        t = tls_node(net, pki, "t", cert=pki.issue("t", t_ip, ca="other"))
        expected = ERROR_TLS_UNKNOWN_CA
    elif case == "hostname":
        t = tls_node(net, pki, "t", cert=pki.issue("t", dns=["elsewhere.example"]))
        expected = ERROR_TLS_HOSTNAME
    elif case == "expired":
        t = tls_node(net, pki, "t", cert=pki.issue("t", t_ip, expired=True))
        expected = ERROR_TLS_EXPIRED
    elif case == "no-client-cert":
        t = tls_node(net, pki, "t", cert=good)
        client = ClientTLS(pki.ca)
        expected = ERROR_TLS_CLIENT_CERT_REQUIRED
    else:  # client certificate from another CA
        t = tls_node(net, pki, "t", cert=good)
        other = pki.client(ca="other")
        client = ClientTLS(pki.ca, other.cert_file, other.key_file)
        expected = ERROR_TLS_CLIENT_CERT_REFUSED
    path = tls_link(net, p, t, client)

    def fix() -> None:
        if case in ("unknown-ca", "hostname", "expired"):
            install(good, t.dir / "tls" / "node.crt", t.dir / "tls" / "node.key")
            t.signal(signal.SIGHUP)
            eventually(lambda: _reloaded(net, t), "the target reloaded its certificate", 30)
        elif case == "other-ca-client":
            fresh = pki.issue("fwd", client=True)
            assert client.cert_file is not None and client.key_file is not None
            install(fresh, client.cert_file, client.key_file)
            net.forwarders[("p", "t")].signal(signal.SIGHUP)
        else:  # give the forwarder a certificate: its target file changes, so restart it
            fresh = pki.issue("fwd", client=True)
            data = yaml.safe_load(path.read_text())
            data["sink"]["tls"].update(cert_file=str(fresh.cert), key_file=str(fresh.key))
            path.write_text(yaml.safe_dump(data, sort_keys=False))
            fwd = net.forwarders[("p", "t")]
            fwd.stop()
            net.forwarder(p, "t").start()

    return p, t, expected, fix


def _reloaded(net: NetTopology, t: NodeProc) -> None:
    tls = net.node_state(t)["tls"]
    assert tls["reloads"] >= 1 and tls["lastError"] is None


@pytest.mark.parametrize("case", ["unknown-ca", "hostname", "expired", "no-client-cert",
                                  "other-ca-client"])
def test_certificate_failure_is_named_then_fixed(net: NetTopology, pki: PKI,
                                                 case: str) -> None:
    p, t, expected, fix = _case(net, pki, case)
    net.start()
    with AckedLoad(p, pause=0.02) as load:
        wait_until(lambda: len(load.acked) >= 20, 60, what="20 acknowledged writes")
        err = wait_error(net, p, "t", expected)
        msg = err["errorMessage"]
        assert t.url in msg, msg
        assert ("subject CN=" in msg and " to " in msg) or "not set" in msg, msg
        _nothing_applied(net, p, t)
        log = net.forwarders[("p", "t")].log_text()
        # first failure logged, then rate-limited: far fewer lines than failures
        fails = int(net.forwarder_state(p, "t")["totalFailedConnects"])
        assert log.count("failed (") <= 1 + fails // 20, log[-3000:]
        fix()  # type: ignore[operator]
        wait_until(lambda: applied(net, p, "t") > 0, 90, what="replication to resume")
    finish(net, p, [t], load)
    if case != "no-client-cert":  # (that fix restarts the forwarder: a new log)
        assert "recovered after" in net.forwarders[("p", "t")].log_text()


def test_bad_certificate_reload_keeps_the_old_one(net: NetTopology, pki: PKI) -> None:
    t = tls_node(net, pki, "t")
    net.start_nodes()
    (t.dir / "tls" / "node.key").write_text("not a key\n")
    os.chmod(t.dir / "tls" / "node.key", 0o600)
    t.signal(signal.SIGHUP)

    def reported() -> None:
        tls = net.node_state(t)["tls"]
        assert tls["lastError"] and "still serving CN=t" in tls["lastError"], tls

    eventually(reported, "the failed reload in the node's state", 30)
    assert "certificate reload failed" in t.log_text()
    with t.client("reader") as c:
        assert c.logger_state()["server"]["serverId"] == "t"  # old certificate still served


def _serial(t: NodeProc, ctx: ssl.SSLContext) -> bytes:
    host = t.url.split("//")[1].split(":")[0]
    with socket.create_connection((host, 8080), 10) as raw, \
            ctx.wrap_socket(raw, server_hostname=host) as s:
        return s.getpeercert(binary_form=True) or b""


def test_certificate_renewed_under_load(net: NetTopology, pki: PKI) -> None:
    p, t = tls_node(net, pki, "p"), tls_node(net, pki, "t")
    tls_link(net, p, t, pki.client())
    net.start()
    assert t.ssl_context is not None
    with AckedLoad(p, pause=0.005) as load:
        wait_until(lambda: applied(net, p, "t") > 50, 60, what="replication under way")
        before = _serial(t, t.ssl_context)
        install(pki.issue("t", net.hosts.ip("t")), t.dir / "tls" / "node.crt",
                t.dir / "tls" / "node.key")
        t.signal(signal.SIGHUP)
        eventually(lambda: _reloaded(net, t), "the renewal", 30)
        assert _serial(t, t.ssl_context) != before  # new connections get the new one
        mark = applied(net, p, "t")
        wait_until(lambda: applied(net, p, "t") > mark + 50, 60, what="replication going on")
    assert t.alive() and p.alive()
    finish(net, p, [t], load)


def _client_hello() -> bytes:
    ctx = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="example")
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


def test_fuzzed_handshakes_never_take_the_node_down(net: NetTopology, pki: PKI) -> None:
    t = tls_node(net, pki, "t", limits={"idle_timeout": 2.0})
    net.start_nodes()
    host = net.hosts.ip("t")
    hello = _client_hello()
    rng = __import__("random").Random(16)
    held = []
    for i in range(300):
        s = socket.create_connection((host, 8080), 10)
        kind = i % 5
        if kind == 4:  # a server name that is not ASCII
            s.sendall(hello.replace(b"example", b"e\xc0ample"))
        elif kind == 0:
            s.sendall(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 600))))
        elif kind == 1:
            s.sendall(hello[:rng.randrange(1, len(hello))])  # truncated ClientHello
        elif kind == 2:
            corrupt = bytearray(hello)
            for _ in range(8):
                corrupt[rng.randrange(len(corrupt))] = rng.randrange(256)
            s.sendall(bytes(corrupt))
        # kind 3: connect and say nothing
        held.append(s)
    assert t.alive()
    with t.client("reader") as c:  # served while 300 broken handshakes are open
        assert c.logger_state()["server"]["serverId"] == "t"

    def dropped() -> bool:
        return all(_closed(s) for s in held)

    wait_until(dropped, 30, what="the node to drop every unfinished handshake")
    for s in held:
        s.close()
    assert t.alive()
    with t.client("ingest") as c:
        c.update("1// after{} 1\n")
    with pytest.raises(HTTPError), t.client("ingest") as c:
        c.update("not a line\n")  # still answering, and validating
    assert t.alive()


def _closed(s: socket.socket) -> bool:
    s.settimeout(0.05)
    try:
        while True:
            data = s.recv(4096)
            if not data:
                return True
    except TimeoutError:
        return False
    except OSError:
        return True


def test_bootstrap_and_bootstrap_from_over_mutual_tls(net: NetTopology, pki: PKI) -> None:
    """``fanout bootstrap`` reads the local node over its own TLS and restores into an https
    target with the target file's certificates; a memory node re-syncs from an https seed
    with ``bootstrap_from.tls``."""
    p, e = tls_node(net, pki, "p"), tls_node(net, pki, "e")
    net.start_nodes()
    write_series(p, "pre", 30)  # history e does not have
    client = pki.client()
    tls_link(net, p, e, client)
    net.distributor(p).start()
    wait_until(lambda: (p.state_dir / "distributor.json").exists(), 30,
               what="the distributor")
    res = subprocess.run([*net.prefix(p), *fanout_cmd("bootstrap", "--config", str(p.config),
                                                      "--target", "e")],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "restored" in res.stdout
    net.start()
    write_series(p, "post", 10)
    net.wait_converged(p, [e], timeout=60)

    m = tls_node(net, pki, "m", store="memory")
    seed = m.dir / "secrets" / "seed.token"
    seed.write_text(p.tokens["replicator"])
    os.chmod(seed, 0o600)
    mine = pki.client()
    data = yaml.safe_load(m.config.read_text())
    data["bootstrap_from"] = {"url": p.url, "token_file": "secrets/seed.token",
                              "tls": {"ca_file": str(mine.ca_file),
                                      "cert_file": str(mine.cert_file),
                                      "key_file": str(mine.key_file)}}
    m.config.write_text(yaml.safe_dump(data))
    m.start_and_wait(60)
    assert "re-synced from" in m.log_text()
    assert net.fetch_all(m) == net.fetch_all(p)
