"""Fixtures for supervision tests: real nodes, a real supervisord per test, and a
finalizer that leaves no process behind even when a test fails."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from fanout.testing import NodeProc, Topology, fanout_cmd
from tests.supervise.systemd_ns import BUILD, SystemdHost, unavailable


class Supervised:
    """One node (``n1``) run by ``fanout up``, with helpers to drive the CLI."""

    def __init__(self, topo: Topology, node: NodeProc):
        self.topo = topo
        self.node = node
        self.config = node.config
        self.state_dir = node.state_dir
        self.supervisord_pids: set[int] = set()

    def cli(self, *args: str, check: bool = False, timeout: float = 120) -> \
            subprocess.CompletedProcess[str]:
        res = subprocess.run(fanout_cmd(*args, "--config", str(self.config)), text=True,
                             capture_output=True, timeout=timeout, check=False)
        if check and res.returncode != 0:
            raise AssertionError(f"fanout {' '.join(args)} exited {res.returncode}:\n"
                                 f"{res.stdout}\n{res.stderr}\n{self.logs()}")
        return res

    def up(self) -> subprocess.CompletedProcess[str]:
        res = self.cli("up", check=True)
        self.supervisord_pids.add(self.supervisord_pid())
        return res

    def supervisord_pid(self) -> int:
        return int((self.state_dir / "supervisor" / "supervisord.pid").read_text())

    def status(self) -> tuple[int, dict[str, Any]]:
        res = self.cli("status", "--json")
        assert res.returncode in (0, 1, 2), res.stderr
        return res.returncode, json.loads(res.stdout)

    def process(self, name: str) -> dict[str, Any]:
        _, st = self.status()
        return next(p for p in st["processes"] if p["name"] == name)

    def pids(self) -> dict[str, int]:
        _, st = self.status()
        return {p["name"]: p["pid"] for p in st["processes"] if p["pid"]}

    def alerts(self) -> list[dict[str, Any]]:
        path = self.state_dir / "alerts.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line]

    def logs(self, n: int = 1500) -> str:
        out = []
        for p in sorted((self.state_dir / "logs").glob("*.log")):
            out.append(f"--- {p.name}\n{p.read_text(errors='replace')[-n:]}")
        return "\n".join(out)

    def kill_everything(self) -> None:
        """The finalizer: ``fanout down``, then SIGKILL whatever supervisord left."""
        with contextlib.suppress(Exception):
            self.cli("down", timeout=90)
        for pid in self.supervisord_pids:
            try:
                proc = psutil.Process(pid)
                children = proc.children(recursive=True)
            except psutil.Error:
                continue
            for c in children:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(c.pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def supervised(topo: Topology) -> Iterator[Supervised]:
    """n1 (to be run by supervisord) replicating to n2 (a plain process, started)."""
    n1 = topo.node("n1")
    n2 = topo.node("n2")
    topo.link(n1, n2)
    n2.start_and_wait()
    s = Supervised(topo, n1)
    try:
        yield s
    finally:
        s.kill_everything()


@pytest.fixture
def systemd_host() -> Iterator[SystemdHost]:
    why = unavailable()
    if why:
        pytest.skip(f"no namespaced systemd here: {why}")
    root = BUILD / uuid.uuid4().hex[:10]
    root.mkdir(parents=True)
    sentinel = Path("/tmp") / f"fanout-systemd-sentinel-{root.name}"
    sentinel.write_text("the host's /tmp must survive a namespaced systemd\n")
    h = SystemdHost(root)
    try:
        yield h
    finally:
        h.ns.close()
        h.topo.close()
        survived = sentinel.exists()
        sentinel.unlink(missing_ok=True)
        shutil.rmtree(root, ignore_errors=True)
        assert survived, "the namespaced systemd emptied the host's /tmp"
