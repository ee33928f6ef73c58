"""TLS for the network-namespace hosts: a private PKI made with ``fanout tls``'s library,
nodes that serve HTTPS (mutual TLS), links whose forwarders verify and present
certificates, and a raw AF_PACKET capture of one host's link."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from fanout.ops.tls import Issued, make_ca, make_cert
from fanout.testing import NodeProc, wait_until
from fanout.tlsconfig import ClientTLS
from tests.faults.netns import NetTopology


class PKI:
    """Two CAs (``ca``, the one everyone trusts, and ``other``), certificates on demand."""

    def __init__(self, root: Path):
        self.root = root / "pki"
        make_ca(self.root / "ca")
        make_ca(self.root / "other", "another CA")
        self.n = 0

    @property
    def ca(self) -> Path:
        return self.root / "ca" / "ca.crt"

    def issue(self, name: str, ip: str | None = None, ca: str = "ca", client: bool = False,
              dns: list[str] | None = None, expired: bool = False) -> Issued:
        self.n += 1
        out = self.root / "issued" / f"{self.n}"
        start = dt.datetime.now(dt.UTC) - dt.timedelta(days=3) if expired else None
        return make_cert(self.root / ca, name, out, dns=dns, ips=[ip] if ip else [],
                         client=client, days=1 if expired else 30, not_before=start)

    def client(self, ca: str = "ca") -> ClientTLS:
        c = self.issue(f"client{self.n}", ca=ca, client=True)
        return ClientTLS(self.ca, c.cert, c.key)


def install(src: Issued, cert: Path, key: Path) -> None:
    """Replace a certificate and key the way an operator (or certbot) does: new files
    renamed over the old ones."""
    for a, b in ((src.cert, cert), (src.key, key)):
        tmp = b.with_name(f".{b.name}.new")
        shutil.copyfile(a, tmp)
        os.chmod(tmp, 0o600 if b == key else 0o644)
        os.replace(tmp, b)


def tls_node(net: NetTopology, pki: PKI, node_id: str, cert: Issued | None = None,
             mutual: bool = True, **overrides: Any) -> NodeProc:
    """A node in its own host serving HTTPS with a certificate for its IP (or ``cert``);
    with ``mutual`` clients need a certificate from ``pki.ca``."""
    n = net.node(node_id, **overrides)
    ip = net.hosts.ip(net.host_of[node_id])
    issued = cert or pki.issue(node_id, ip)
    tls_dir = n.dir / "tls"
    tls_dir.mkdir()
    install(issued, tls_dir / "node.crt", tls_dir / "node.key")
    data = yaml.safe_load(n.config.read_text())
    data["tls"] = {"cert_file": "tls/node.crt", "key_file": "tls/node.key"}
    if mutual:
        shutil.copyfile(pki.ca, tls_dir / "ca.crt")
        data["tls"]["client_ca_file"] = "tls/ca.crt"
    n.config.write_text(yaml.safe_dump(data, sort_keys=False))
    n.url = f"https://{ip}:{net.PORT}"
    client = pki.client()
    n.ssl_context = client.context()
    if cert is not None:  # a deliberately broken certificate: the test's own client only
        n.ssl_context.check_hostname = False  # observes, whatever the node serves
        n.ssl_context.verify_mode = ssl.CERT_NONE
    return n


def tls_link(net: NetTopology, src: NodeProc, dst: NodeProc, tls: ClientTLS,
             **overrides: Any) -> Path:
    sink_tls = {k: str(v) for k, v in (("ca_file", tls.ca_file), ("cert_file", tls.cert_file),
                                       ("key_file", tls.key_file)) if v is not None}
    sink = dict(overrides.pop("sink", {}), tls=sink_tls)
    return net.link(src, dst, sink=sink, **overrides)


CAPTURE = r"""
import socket, sys, os, time
iface, out, stop = sys.argv[1], sys.argv[2], sys.argv[3]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(3))
s.bind((iface, 0))
s.settimeout(0.2)
open(out + ".ready", "w").close()
with open(out, "wb") as f:
    while not os.path.exists(stop):
        try:
            frame = s.recv(65535)
        except socket.timeout:
            continue
        f.write(len(frame).to_bytes(4, "big") + frame)
        f.flush()
"""


class Capture:
    """Every frame on one host's interface (a raw AF_PACKET socket inside its namespace),
    then only those of IPv4 packets to or from ``peer``."""

    def __init__(self, net: NetTopology, host: str, path: Path):
        h = net.hosts.hosts[host]
        self.path, self.stop = path, path.with_suffix(".stop")
        self.proc = subprocess.Popen(
            [*net.hosts.exec_prefix(host), sys.executable, "-c", CAPTURE, h["inner"],
             str(path), str(self.stop)], start_new_session=True)
        wait_until(lambda: (path.parent / (path.name + ".ready")).exists(), 30,
                   what="the capture to start")

    def close(self) -> None:
        self.stop.touch()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def payload(self, peer: str) -> bytes:
        """The frames to or from ``peer``, concatenated (TCP payloads and headers)."""
        want = bytes(int(x) for x in peer.split("."))
        data = self.path.read_bytes()
        out, i = [], 0
        while i + 4 <= len(data):
            n = int.from_bytes(data[i:i + 4], "big")
            frame = data[i + 4:i + 4 + n]
            i += 4 + n
            if len(frame) > 34 and frame[12:14] == b"\x08\x00" and \
                    want in (frame[26:30], frame[30:34]):
                out.append(frame[14:])
        return b"".join(out)


def wait_error(net: NetTopology, src: NodeProc, target: str, error_num: int,
               timeout: float = 60) -> dict[str, Any]:
    """The forwarder's lastError once it carries ``error_num``."""
    found: dict[str, Any] = {}

    def seen() -> bool:
        err = net.forwarder_state(src, target).get("lastError") or {}
        if err.get("errorNum") == error_num:
            found.update(err)
            return True
        return False

    try:
        wait_until(seen, timeout, interval=0.2, what=f"lastError {error_num}")
    except TimeoutError:
        st = net.forwarder_state(src, target)
        raise AssertionError(f"no lastError {error_num}: {st.get('lastError')}\n"
                             + net.logs_tail()) from None
    return found
