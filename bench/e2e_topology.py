"""bench/e2e.py's topologies: nodes under their own supervisord each, as ``fanout demo``
runs them (``fanout init`` + ``fanout target add`` + ``fanout up``), and their processes.

- ``fan_out``: a primary and N targets, one forwarder per target at the primary.
- ``chain``: primary -> A -> B -> C -> D, each hop a single target, ``log_remote_changes``
  on every node that forwards (A, B, C), the way Warp 10 documents replication.

Target files get short timeouts so that a frozen target's forwarder gives up a request
after ``request_timeout`` and backs off at most ``retry_max``, rather than waiting 300 s.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import yaml

from fanout.cli.demo import stop_demo
from fanout.config import load_node_config
from fanout.ops.targets import add_target
from fanout.supervise import control
from fanout.supervise.paths import SupervisePaths
from fanout.supervise.status import Health, gather
from fanout.testing import NodeProc

FORWARDER = {"connect_timeout": 2.0, "request_timeout": 5.0, "retry_min": 0.1,
             "retry_max": 2.0}


@dataclass
class Cluster:
    """Node directories under ``root``; ``up()`` starts each one's supervisord, targets
    before sources; ``down()`` stops them all (resuming any frozen process first)."""

    root: Path
    nodes: dict[str, NodeProc] = field(default_factory=dict)
    edges: list[tuple[str, str]] = field(default_factory=list)  # (source, target)
    frozen: set[int] = field(default_factory=set)
    tls: bool = False  # every node serves mutual TLS, every forwarder presents a certificate

    def _pki(self) -> Path:
        from fanout.ops.tls import make_ca, make_cert

        pki = self.root / "pki"
        if not (pki / "ca.crt").exists():
            make_ca(pki)
            make_cert(pki, "node", dns=["localhost"], ips=["127.0.0.1"])
            make_cert(pki, "client", client=True)
        return pki

    def add(self, name: str, **overrides: Any) -> NodeProc:
        if self.tls:
            pki = self._pki()
            overrides["tls"] = {"cert_file": str(pki / "node.crt"),
                                "key_file": str(pki / "node.key"),
                                "client_ca_file": str(pki / "ca.crt")}
        n = NodeProc.init(self.root / name, name, "sqlite", **overrides)
        if self.tls:
            from fanout.tlsconfig import ClientTLS

            n.url = f"https://127.0.0.1:{n.port}"
            n.ssl_context = ClientTLS(pki / "ca.crt", pki / "client.crt",
                                      pki / "client.key").context()
        self.nodes[name] = n
        return n

    def link(self, src: str, dst: str) -> None:
        s, d = self.nodes[src], self.nodes[dst]
        path = add_target(s.config, dst, d.url, d.tokens["replicator"], None)
        data = yaml.safe_load(path.read_text())
        data.update(FORWARDER)
        if self.tls:
            pki = self._pki()
            data["sink"]["tls"] = {"ca_file": str(pki / "ca.crt"),
                                   "cert_file": str(pki / "client.crt"),
                                   "key_file": str(pki / "client.key")}
        path.write_text(yaml.safe_dump(data, sort_keys=False))  # keeps its mode 0600
        self.edges.append((src, dst))

    def up(self) -> None:
        sources = {s for s, _ in self.edges}
        for name in sorted(self.nodes, key=lambda n: (n in sources, n)):
            res = control.up(self.nodes[name].config)
            if not res.all_running:
                raise RuntimeError(f"{name}: not every program is running: {res.states}")

    def pids(self, name: str) -> dict[str, tuple[str, int]]:
        """Program name -> (kind, pid) from the node's supervisord (``fanout status``)."""
        st = gather(load_node_config(self.nodes[name].config), cpu_interval=0.0)
        return {p.name: (p.kind, p.pid) for p in st.processes if p.pid}

    def health(self) -> dict[str, str]:
        return {name: Health(gather(load_node_config(n.config), cpu_interval=0.0).health).name
                for name, n in self.nodes.items()}

    def all_pids(self) -> list[int]:
        """Every process of the topology: each supervisord and all it runs."""
        out = []
        for pid in self.supervisord_pids():
            with contextlib.suppress(psutil.Error):
                out += [pid, *(c.pid for c in psutil.Process(pid).children(recursive=True))]
        return out

    def supervisord_pids(self) -> list[int]:
        out = []
        for name in self.nodes:
            with contextlib.suppress(Exception):
                out.append(control.running_pid(
                    SupervisePaths.of(load_node_config(self.nodes[name].config))))
        return [p for p in out if p]

    def freeze(self, pid: int) -> None:
        self.frozen.add(pid)
        os.kill(pid, signal.SIGSTOP)

    def thaw(self, pid: int) -> None:
        os.kill(pid, signal.SIGCONT)
        self.frozen.discard(pid)

    def down(self) -> None:
        for pid in list(self.frozen):
            with contextlib.suppress(ProcessLookupError):
                self.thaw(pid)
        stop_demo(self.root, quiet=True)  # primary first, then every other node


def fan_out(root: Path, targets: int, tls: bool = False) -> Cluster:
    c = Cluster(root, tls=tls)
    c.add("primary")
    for i in range(1, targets + 1):
        c.add(f"t{i}")
        c.link("primary", f"t{i}")
    return c


def chain(root: Path, hops: tuple[str, ...] = ("A", "B", "C", "D"),
          tls: bool = False) -> Cluster:
    c = Cluster(root, tls=tls)
    c.add("primary")
    prev = "primary"
    for i, name in enumerate(hops):
        c.add(name, log_remote_changes=i < len(hops) - 1)
        c.link(prev, name)
        prev = name
    return c


class OtherCPU:
    """CPU the machine spent on anything but this run (other processes, kernel threads)
    between two calls, in % of one core: whether the machine was busy, as a figure."""

    def __init__(self, cluster: Cluster):
        self.cluster = cluster
        self._pids = [*cluster.all_pids(), os.getpid()]
        self.start()

    def _now(self) -> tuple[float, float, float]:
        t = psutil.cpu_times()  # guest time is inside user already; steal is not ours
        busy = t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0)
        return time.perf_counter(), busy, cpu_seconds(self._pids)

    def start(self) -> None:
        self._t0, self._busy0, self._ours0 = self._now()

    def pct(self) -> float:
        t1, busy1, ours1 = self._now()
        return round(100 * max(0.0, (busy1 - self._busy0) - (ours1 - self._ours0))
                     / max(1e-9, t1 - self._t0), 1)


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of these processes (their own, not their children's)."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
    return total
