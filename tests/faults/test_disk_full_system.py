"""A full disk under a running topology: 507s, nothing acknowledged is lost, and it heals."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from fanout.testing import HTTPError, Topology, wait_until

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")


def fill(path: Path) -> int:
    """Take every free byte of path's filesystem; returns how many were taken."""
    n = 0
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                n += f.write(b"\0" * 4096)
        except OSError:
            pass
        try:  # the last partial block too
            while True:
                n += f.write(b"\0")
        except OSError:
            pass
    return n


def test_full_disk_under_a_running_topology(topo: Topology, small_fs: Path) -> None:
    a = topo.node("a", datalog_dir=str(small_fs / "datalog"),
                  targets_dir=str(small_fs / "forwarders.d"),
                  # FIXME: NodeProc.init takes a store *type*; this dict gives a memory store
                  store={"type": "sqlite", "path": str(small_fs / "store.sqlite")})  # type: ignore[arg-type]
    b = topo.node("b")
    topo.link(a, b, source_dir=str(small_fs / "targets" / "b"), state_dir=str(a.state_dir),
              node_config=str(a.config))
    topo.start()
    w = a.client("ingest")
    acked: list[str] = []

    def write(i: int, n: int = 20) -> None:
        lines = "".join(f"{i * 1000 + j}// full.w{{i={i}}} {j}\n" for j in range(n))
        w.update(lines)
        acked.extend(lines.splitlines())

    for i in range(10):
        write(i)
    topo.wait_converged(a, [b])

    filler = small_fs / "filler"
    assert fill(filler) > 0
    try:
        rejected = 0
        for i in range(10, 40):
            try:
                write(i, 200)
            except HTTPError as exc:
                assert exc.status == 507, exc
                assert "space" in exc.body
                rejected += 1
        assert rejected >= 25, f"only {rejected} of 30 writes refused on a full disk"
        # the distributor and the forwarder have met the full disk: each rewrote its state
        # file (about once a second) well after the disk filled up
        full_since = time.time()
        for state in (a.state_dir / "distributor.json", a.state_dir / "forwarder-b.json"):
            wait_until(lambda state=state: state.stat().st_mtime > full_since + 1.0, 60,
                       what=f"{state.name} to be rewritten on the full disk")
        for p in [*topo.distributors.values(), *topo.forwarders.values(), a, b]:
            assert p.alive(), (p.args, p.log_text()[-3000:])
        with a.client("reader") as r:
            for i in range(10, 40):
                got = r.fetch(f"full.w{{i={i}}}")
                assert got.count("\n") in (0, 200), f"write {i} half applied"
    finally:
        filler.unlink()

    for i in range(40, 60):
        write(i)
    fetched = topo.wait_converged(a, [b], timeout=90)
    with b.client("reader") as r:
        on_b = set(r.fetch("full.w{}").splitlines())
    missing = [line for line in acked if line not in on_b]
    assert not missing, f"{len(missing)} acknowledged points missing on b, e.g. {missing[:3]}"
    assert fetched.count("\n") >= len(acked)
    for p in [*topo.distributors.values(), *topo.forwarders.values()]:
        assert p.alive(), (p.args, p.log_text()[-3000:])
