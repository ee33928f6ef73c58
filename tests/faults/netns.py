"""Network namespaces for fault tests: one bridge in the root namespace, one namespace per
host joined to it by a veth pair, so a test can cut a host off, heal it, or degrade its link.

Needs root and iproute2. Names start with ``fo<pid % 10000>`` so a later session can sweep
what a crashed run left behind (``sweep_leftovers``).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any

import yaml

from fanout.testing import (
    Client,
    HTTPError,
    NodeProc,
    Proc,
    Topology,
    eventually,
    fanout_cmd,
    forwarder_cmd,
)

OWNERS = Path("/tmp/fanout-netns")  # <prefix> -> pid of the test process that made it
_NAME = re.compile(r"^(fo\d+)(?:br|h\d+|b\d+|-.*)$")


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


def _tc(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["tc", *args], check=check, capture_output=True, text=True)


def available() -> str | None:
    """None if namespaces can be made here, else why not."""
    if os.geteuid() != 0:
        return "needs root"
    try:
        _ip("netns", "list")
    except (OSError, subprocess.CalledProcessError) as exc:
        return f"ip netns unavailable: {exc}"
    return None


def _owner_alive(prefix: str) -> bool:
    try:
        pid = int((OWNERS / prefix).read_text())
        os.kill(pid, 0)
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, ValueError, IndexError):
        return False
    return state != "Z"  # a zombie awaits only its parent's wait()


def sweep_leftovers() -> list[str]:
    """Delete namespaces and links named ``fo<digits>...`` whose owning test process is gone."""
    removed: list[str] = []
    for line in _ip("netns", "list", check=False).stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        m = _NAME.match(name)
        if m and not _owner_alive(m.group(1)):
            # the nodes, distributors and forwarders of the crashed run: each leads a group
            for pid in _ip("netns", "pids", name, check=False).stdout.split():
                with contextlib.suppress(OSError, ValueError):
                    os.killpg(int(pid), signal.SIGKILL)
                with contextlib.suppress(OSError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            _ip("netns", "del", name, check=False)
            removed.append(name)
    for line in _ip("-o", "link", "show", check=False).stdout.splitlines():
        parts = line.split(":")
        if len(parts) < 2:
            continue
        name = parts[1].strip().split("@")[0]
        m = _NAME.match(name)
        if m and not _owner_alive(m.group(1)):
            _ip("link", "del", name, check=False)
            removed.append(name)
    if OWNERS.is_dir():
        for f in OWNERS.iterdir():
            if not _owner_alive(f.name):
                f.unlink(missing_ok=True)
    return removed


class NetemUnavailable(RuntimeError):
    """The kernel has no sch_netem (tc answers "Specified qdisc kind is unknown")."""


class Hosts:
    """A bridge ``<prefix>br`` with 10.213.N.1/24 and one namespace per host."""

    @staticmethod
    def prefix_for(pid: int) -> str:
        return f"fo{pid % 10000}"

    def __init__(self) -> None:
        pid = os.getpid()
        self.prefix = self.prefix_for(pid)
        # 10.213.N from the pid; the next free N if a concurrent run holds that one
        used = _ip("-o", "addr", "show", check=False).stdout
        n = pid % 200 + 20
        while f" 10.213.{n}." in used and f"{self.prefix}br" not in used:
            n = (n - 19) % 200 + 20
        self.subnet = f"10.213.{n}"
        self.bridge = f"{self.prefix}br"
        self.hosts: dict[str, dict[str, str]] = {}
        OWNERS.mkdir(parents=True, exist_ok=True)
        (OWNERS / self.prefix).write_text(str(pid))
        # a leftover of a crashed run with the same prefix (pid reuse) goes first
        _ip("link", "del", self.bridge, check=False)
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.subnet}.1/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")

    def add(self, name: str) -> str:
        """A namespace for ``name`` joined to the bridge; returns its IP."""
        i = len(self.hosts) + 2
        ns, inner, outer = f"{self.prefix}-{name}", f"{self.prefix}h{i}", f"{self.prefix}b{i}"
        ip = f"{self.subnet}.{i}"
        _ip("netns", "del", ns, check=False)
        _ip("netns", "add", ns)
        self.hosts[name] = {"ns": ns, "inner": inner, "outer": outer, "ip": ip}
        _ip("link", "add", inner, "type", "veth", "peer", "name", outer)
        _ip("link", "set", inner, "netns", ns)
        _ip("link", "set", outer, "master", self.bridge)
        _ip("link", "set", outer, "up")
        _ip("-n", ns, "addr", "add", f"{ip}/24", "dev", inner)
        _ip("-n", ns, "link", "set", inner, "up")
        _ip("-n", ns, "link", "set", "lo", "up")
        return ip

    def ip(self, name: str) -> str:
        return self.hosts[name]["ip"]

    def exec_prefix(self, name: str) -> list[str]:
        return ["ip", "netns", "exec", self.hosts[name]["ns"]]

    def cut(self, name: str) -> None:
        _ip("link", "set", self.hosts[name]["outer"], "down")

    def heal(self, name: str) -> None:
        _ip("link", "set", self.hosts[name]["outer"], "up")

    def netem(self, name: str, spec: str) -> None:
        """``tc qdisc ... netem <spec>`` on both ends of the host's link."""
        h = self.hosts[name]
        r = _tc("qdisc", "replace", "dev", h["outer"], "root", "netem", *spec.split(),
                check=False)
        if r.returncode != 0:
            if "unknown" in r.stderr.lower():
                raise NetemUnavailable(r.stderr.strip())
            raise RuntimeError(f"tc netem failed: {r.stderr.strip()}")
        _ip("netns", "exec", h["ns"], "tc", "qdisc", "replace", "dev", h["inner"], "root",
            "netem", *spec.split())

    def shape(self, name: str, rate: str = "64kbit", burst: str = "2kb",
              limit: str = "2kb") -> None:
        """A slow, lossy link without netem: a token bucket whose small queue delays packets
        and drops what overflows it (tail drop), on both ends. The defaults give about 250 ms
        of queueing and steady losses under the tests' load."""
        h = self.hosts[name]
        args = ["root", "tbf", "rate", rate, "burst", burst, "limit", limit]
        _tc("qdisc", "replace", "dev", h["outer"], *args)
        _ip("netns", "exec", h["ns"], "tc", "qdisc", "replace", "dev", h["inner"], *args)

    def clear(self, name: str) -> None:
        h = self.hosts[name]
        _tc("qdisc", "del", "dev", h["outer"], "root", check=False)
        _ip("netns", "exec", h["ns"], "tc", "qdisc", "del", "dev", h["inner"], "root",
            check=False)

    def close(self) -> None:
        for h in self.hosts.values():
            _ip("netns", "del", h["ns"], check=False)
            _ip("link", "del", h["outer"], check=False)  # gone with its peer, normally
        self.hosts.clear()
        _ip("link", "del", self.bridge, check=False)
        (OWNERS / self.prefix).unlink(missing_ok=True)


class NetTopology(Topology):
    """A Topology whose nodes each live in their own host (namespace) of ``hosts``; a
    source's distributor and forwarders run in the source's host."""

    PORT = 8080  # every host has its own port space

    def __init__(self, root: Path, hosts: Hosts):
        super().__init__(root)
        self.hosts = hosts
        self.host_of: dict[str, str] = {}

    def node(self, node_id: str, store: str = "sqlite", host: str | None = None,
             **overrides: Any) -> NodeProc:
        host = host or node_id
        ip = self.hosts.ip(host) if host in self.hosts.hosts else self.hosts.add(host)
        n = NodeProc.init(self.root / node_id, node_id, store, port=self.PORT, **overrides)
        data = yaml.safe_load(n.config.read_text())
        data["listen"] = f"{ip}:{self.PORT}"
        n.config.write_text(yaml.safe_dump(data, sort_keys=False))
        n.url = f"http://{ip}:{self.PORT}"
        n.args = self.hosts.exec_prefix(host) + n.args
        self.nodes[node_id] = n
        self.host_of[node_id] = host
        return n

    def prefix(self, node: NodeProc) -> list[str]:
        return self.hosts.exec_prefix(self.host_of[node.dir.name])

    def distributor(self, src: NodeProc) -> Proc:
        p = Proc(self.prefix(src) + fanout_cmd("distribute", "--config", str(src.config)),
                 src.dir / "distributor.log")
        self.distributors[src.dir.name] = p
        return p

    def forwarder(self, src: NodeProc, target: str) -> Proc:
        key = (src.dir.name, target)
        p = Proc(self.prefix(src) + forwarder_cmd(self.targets[key]),
                 src.dir / f"forwarder-{target}.log")
        self.forwarders[key] = p
        return p

    def close(self) -> None:
        for p in [*self.forwarders.values(), *self.distributors.values(),
                  *self.nodes.values()]:
            with contextlib.suppress(Exception):
                p.kill()


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
        c = Client(self.node.url, self.node.tokens["ingest"], timeout=self.timeout,
                   ssl_context=self.node.ssl_context)
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
